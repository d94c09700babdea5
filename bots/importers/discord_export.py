"""DiscordChatExporter JSON exports (one channel, thread or DM per file) as recorded conversations.

Read: ``guild.id``, ``channel.id``/``type``, and per message ``id``, ``type``, ``timestamp``, ``content``,
``author.id``/``isBot``/``nickname``/``name``, ``reference.messageId`` and ``mentions[].id``. Attachments,
embeds, stickers and reactions are ignored and never downloaded. Bot messages, system messages (joins, pins,
calls) and messages without text are left out. A DM or group DM export becomes a ``dm`` record, anything else
a ``channel`` record.

A file yields one ``ImportedConversation`` and a ``BadRecord`` per unusable message (``line_number`` is the
message's 1-based position in ``messages``), or a single ``BadRecord`` (``line_number`` 0) when the file
itself is not a usable export.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

from vigil.bots.core.replay import BadRecord
from vigil.bots.importers.records import ImportedConversation, ImportedMessage

logger = logging.getLogger(__name__)

PLATFORM = "discord"
DM_CHANNEL_TYPES = frozenset({"DirectTextChat", "DirectGroupTextChat"})
# Message types that carry what a person wrote; the rest are system notices.
TEXT_MESSAGE_TYPES = frozenset({"Default", "Reply", "ThreadStarterMessage"})
# Direct messages have no guild; DiscordChatExporter writes this id for them.
DM_GUILD_ID = "0"


class _BadEntry(ValueError):
    pass


def looks_like_discord_export(data: object) -> bool:
    return isinstance(data, dict) and "channel" in data and "messages" in data and "guild" in data


def iter_discord_export(path: Path) -> Iterator[ImportedConversation | BadRecord]:
    """Read one export file; never raises for bad content (a missing file raises ``FileNotFoundError``)."""
    with path.open("rb") as handle:
        raw = handle.read()
    try:
        data: object = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        yield BadRecord(path=path, line_number=0, reason=f"not UTF-8 text (byte {error.start})")
        return
    except (ValueError, RecursionError) as error:
        yield BadRecord(path=path, line_number=0, reason=f"invalid JSON: {error}")
        return
    yield from discord_export_records(data, path=path)


def discord_export_records(data: object, *, path: Path) -> Iterator[ImportedConversation | BadRecord]:
    """The records of an already parsed export document."""
    if not looks_like_discord_export(data):
        yield BadRecord(
            path=path,
            line_number=0,
            reason="not a DiscordChatExporter JSON export (expected 'guild', 'channel' and 'messages')",
        )
        return
    assert isinstance(data, dict)
    try:
        channel = _object(data["channel"], "channel")
        channel_id = _string(channel, "id", "channel")
        guild = _object(data["guild"], "guild")
        guild_id = _string(guild, "id", "guild")
        raw_messages = data["messages"]
        if not isinstance(raw_messages, list):
            raise _BadEntry("'messages' must be an array")
    except _BadEntry as error:
        yield BadRecord(path=path, line_number=0, reason=str(error))
        return
    channel_type = channel.get("type")
    is_dm = (isinstance(channel_type, str) and channel_type in DM_CHANNEL_TYPES) or guild_id == DM_GUILD_ID

    messages: list[ImportedMessage] = []
    index_of: dict[str, int] = {}
    names: dict[str, str] = {}
    skipped = 0
    for position, raw in enumerate(raw_messages):
        try:
            message, name = _message(raw, position=position, index_of=index_of, count=len(messages))
        except _BadEntry as error:
            yield BadRecord(path=path, line_number=position + 1, reason=f"messages[{position}]: {error}")
            continue
        if message is None:
            skipped += 1
            continue
        if message.message_id in index_of:
            yield BadRecord(
                path=path,
                line_number=position + 1,
                reason=f"messages[{position}]: message id {message.message_id} appears twice; kept the first",
            )
            continue
        index_of[message.message_id] = len(messages)
        messages.append(message)
        if name:
            names.setdefault(message.author, name)
    if skipped:
        logger.info("%s: left out %d bot, system or empty messages", path, skipped)
    if not messages:
        yield BadRecord(
            path=path,
            line_number=0,
            reason="no messages with text by people (only bots, system or attachments)",
        )
        return
    yield ImportedConversation(
        id=channel_id,
        source=f"{PLATFORM}:{guild_id}",
        label=0,
        setting="dm" if is_dm else "channel",
        interleaved=not is_dm,
        suspects=(),
        messages=tuple(messages),
        line_number=1,
        path=path,
        platform=PLATFORM,
        space_id=guild_id,
        channel_id=channel_id,
        display_names=tuple(sorted(names.items())),
        space_name=None if is_dm else _name(guild),
        channel_name=_name(channel),
    )


def _message(
    raw: object, *, position: int, index_of: Mapping[str, int], count: int
) -> tuple[ImportedMessage | None, str | None]:
    entry = _object(raw, "the message")
    message_id = _string(entry, "id", "message")
    kind = entry.get("type", "Default")
    author = _object(entry.get("author"), "'author'")
    author_id = _string(author, "id", "author")
    if not isinstance(kind, str):
        raise _BadEntry(f"'type' must be a string, got {_kind(kind)}")
    if kind not in TEXT_MESSAGE_TYPES or author.get("isBot") is True:
        return None, None
    content = entry.get("content")
    if not isinstance(content, str):
        raise _BadEntry(f"'content' must be a string, got {_kind(content)}")
    if not content.strip():
        return None, None
    timestamp = _timestamp(entry.get("timestamp"))
    reply_to: int | None = None
    reference = entry.get("reference")
    if isinstance(reference, dict):
        target = reference.get("messageId")
        if isinstance(target, str) and target in index_of and index_of[target] < count:
            reply_to = index_of[target]
    mentions: list[str] = []
    raw_mentions = entry.get("mentions", [])
    if isinstance(raw_mentions, list):
        for mention in raw_mentions:
            if isinstance(mention, dict) and isinstance(mention.get("id"), str) and mention["id"]:
                mentions.append(mention["id"])
    name = author.get("nickname") or author.get("name")
    return (
        ImportedMessage(
            author=author_id,
            text=content,
            reply_to=reply_to,
            message_id=message_id,
            timestamp=timestamp,
            mentioned_ids=tuple(dict.fromkeys(mentions)),
        ),
        name if isinstance(name, str) else None,
    )


def _object(value: object, what: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise _BadEntry(f"{what} must be an object, got {_kind(value)}")
    return value


def _string(data: Mapping[str, object], key: str, what: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _BadEntry(f"{what} '{key}' must be a non-empty string, got {_kind(value)}")
    return value


def _timestamp(value: object) -> datetime:
    if not isinstance(value, str):
        raise _BadEntry(f"'timestamp' must be a string, got {_kind(value)}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _BadEntry(f"'timestamp' is not an ISO 8601 date and time: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        # DiscordChatExporter always writes an offset; a bare time is taken as UTC rather than refused.
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise _BadEntry(f"'timestamp' is out of range: {value[:40]!r}") from None


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "an empty string" if not value.strip() else "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _name(entry: Mapping[str, object]) -> str | None:
    """A server's or channel's name as the export gives it, if it is a usable one (for the scan report)."""
    name = entry.get("name")
    return name.strip()[:100] if isinstance(name, str) and name.strip() else None
