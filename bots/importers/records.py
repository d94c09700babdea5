"""What the importers produce: recorded conversations that keep the platform's own ids, times and mentions.

``ImportedConversation`` is a ``ConversationRecord`` (label 0, no suspects: an export has no ground truth), so
everything that reads records reads these too; ``conversation_to_messages`` replays one with its real message
ids, timestamps, threads, mentions and DM members instead of the synthetic ones ``record_to_messages`` makes.
Display names are kept apart, for the scan report only: they never enter a ``ChatMessage``'s text or ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from vigil.bots.core.models import ChatMessage
from vigil.bots.core.replay import ConversationRecord, RecordMessage, record_to_messages

# The platform of replayed JSON Lines records (what ``vigil scan`` has always used).
SCAN_PLATFORM = "scan"


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportedMessage(RecordMessage):
    """A message as exported: ``reply_to`` (inherited) is the index of an earlier message of the record."""

    message_id: str
    timestamp: datetime
    thread_id: str | None = None
    mentioned_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportedConversation(ConversationRecord):
    """One exported channel or DM. ``members`` are the DM's participants as the export lists them."""

    platform: str
    space_id: str
    channel_id: str
    members: tuple[str, ...] = ()
    # (user id, display name) for the authors of this conversation: for the scan report, never for scoring.
    display_names: tuple[tuple[str, str], ...] = ()
    # The server or workspace and the channel as the export names them (the scan report shows them beside
    # the ids); None when the export does not say.
    space_name: str | None = None
    channel_name: str | None = None


def display_names_of(record: ConversationRecord) -> Mapping[str, str]:
    """The display names an importer found for a record's authors (empty for JSON Lines records)."""
    return dict(record.display_names) if isinstance(record, ImportedConversation) else {}


def place_names_of(record: ConversationRecord) -> Mapping[tuple[str, str], str]:
    """``("space", id)`` and ``("channel", id)`` to the names the export gives them (empty for JSON Lines)."""
    if not isinstance(record, ImportedConversation):
        return {}
    names: dict[tuple[str, str], str] = {}
    if record.space_name:
        names["space", record.space_id] = record.space_name
    if record.channel_name:
        names["channel", record.channel_id] = record.channel_name
    return names


def conversation_to_messages(record: ConversationRecord, *, platform: str | None = None) -> list[ChatMessage]:
    """The ``ChatMessage`` stream of a record: real ids and times for imports, synthetic ones otherwise.

    ``platform`` defaults to the export's own platform ("discord", "slack") for imports and to "scan" for
    JSON Lines records.
    """
    if not isinstance(record, ImportedConversation):
        return record_to_messages(record, platform=platform or SCAN_PLATFORM)
    is_dm = record.setting == "dm"
    members = record.members or tuple(dict.fromkeys(m.author for m in record.messages))
    messages: list[ChatMessage] = []
    for message in record.messages:
        if not isinstance(message, ImportedMessage):
            raise TypeError(f"{record.id}: an imported conversation holds a message without its platform id")
        reply_to = record.messages[message.reply_to] if message.reply_to is not None else None
        messages.append(
            ChatMessage(
                platform=platform or record.platform,
                space_id=record.space_id,
                channel_id=record.channel_id,
                message_id=message.message_id,
                author_id=message.author,
                text=message.text,
                timestamp=message.timestamp,
                is_dm=is_dm,
                thread_id=message.thread_id,
                reply_to_message_id=reply_to.message_id if isinstance(reply_to, ImportedMessage) else None,
                reply_to_author_id=reply_to.author if reply_to is not None else None,
                mentioned_user_ids=message.mentioned_ids,
                recipient_ids=tuple(m for m in members if m != message.author) if is_dm else (),
            )
        )
    return messages
