"""Slack event payloads → ``ChatMessage``: the only place that knows what a Slack message looks like.

Message ids (``ChatMessage.message_id``), unique within a workspace:

* a message: ``"<channel_id>/<ts>"`` (Slack's ``ts`` is unique only within its channel);
* an edited version of it: ``"<channel_id>/<ts>:edit:<edited_ts>"`` (the same ``:edit:`` mark as on Discord,
  so one store rule forgets a deleted message with its edits). An edit is scored as one more turn of the
  conversation (the monitor's cost per message stays constant and it never re-reads the window), so a message
  rewritten from "hello" into something worse is still seen; redelivery of the same edit is a duplicate.

``message_ref`` turns either form back into ``(channel_id, ts)`` for permalinks and deletions.
"""

from __future__ import annotations

import dataclasses
import html
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from vigil.bots.core.models import ChatMessage

__all__ = [
    "PLATFORM",
    "DeletedMessage",
    "edited_message_id",
    "message_id",
    "message_ref",
    "plain_text",
    "to_chat_message",
    "to_deleted_message",
    "to_edited_message",
]

logger = logging.getLogger(__name__)

PLATFORM = "slack"

# Subtypes that carry a person's own words; everything else (joins, topic changes, bot posts...) is ignored.
_USER_TEXT_SUBTYPES = frozenset({None, "thread_broadcast", "file_share", "me_message"})
_EDIT_MARK = ":edit:"
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_CHANNEL = re.compile(r"<#([CGD][A-Z0-9]+)(?:\|([^>]*))?>")
_SUBTEAM = re.compile(r"<!subteam\^([A-Z0-9]+)(?:\|([^>]*))?>")
_SPECIAL = re.compile(r"<!(here|channel|everyone)(?:\|[^>]*)?>")
_LINK = re.compile(r"<((?:https?|mailto|tel):[^|>]+)(?:\|([^>]*))?>")
_MAX_MENTIONS = 100


def message_id(channel_id: str, ts: str) -> str:
    return f"{channel_id}/{ts}"


def edited_message_id(channel_id: str, ts: str, edited_ts: str) -> str:
    return f"{channel_id}/{ts}{_EDIT_MARK}{edited_ts}"


def message_ref(vigil_message_id: str) -> tuple[str, str] | None:
    """``(channel_id, ts)`` of a Slack message id (original or edit); None if it is not one of ours."""
    base = vigil_message_id.split(_EDIT_MARK, 1)[0]
    channel_id, _, ts = base.partition("/")
    if not channel_id or not ts:
        return None
    return channel_id, ts


def plain_text(text: str) -> str:
    """Slack's markup as a person reads it: ``<@U1>`` → ``@U1``, ``<url|label>`` → ``label (url)``."""
    text = _MENTION.sub(lambda m: f"@{m.group(1)}", text)
    text = _CHANNEL.sub(lambda m: f"#{m.group(2) or m.group(1)}", text)
    text = _SUBTEAM.sub(lambda m: m.group(2) or f"@{m.group(1)}", text)
    text = _SPECIAL.sub(lambda m: f"@{m.group(1)}", text)
    text = _LINK.sub(lambda m: f"{m.group(2)} ({m.group(1)})" if m.group(2) else m.group(1), text)
    return html.unescape(text)


def _timestamp(ts: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(ts), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _mentions(text: str) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for match in _MENTION.finditer(text):
        seen[match.group(1)] = None
        if len(seen) >= _MAX_MENTIONS:
            break
    return tuple(seen)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _is_from_a_person(message: Mapping[str, Any]) -> bool:
    return (
        message.get("subtype") in _USER_TEXT_SUBTYPES
        and not message.get("bot_id")
        and not message.get("bot_profile")
        and _str(message.get("user")) is not None
        and _str(message.get("text")) is not None
    )


def _build(
    message: Mapping[str, Any],
    *,
    team_id: str,
    channel_id: str,
    channel_type: str | None,
    vigil_id: str,
) -> ChatMessage | None:
    ts = _str(message.get("ts"))
    if ts is None:
        return None
    timestamp = _timestamp(ts)
    if timestamp is None:
        return None
    raw = str(message["text"])
    thread_ts = _str(message.get("thread_ts"))
    in_thread = thread_ts is not None and thread_ts != ts
    is_dm = channel_type == "im" or (channel_type is None and channel_id.startswith("D"))
    return ChatMessage(
        platform=PLATFORM,
        space_id=team_id,
        channel_id=channel_id,
        message_id=vigil_id,
        author_id=str(message["user"]),
        text=plain_text(raw),
        timestamp=timestamp,
        is_dm=is_dm,
        thread_id=thread_ts if in_thread else None,
        reply_to_message_id=message_id(channel_id, thread_ts) if in_thread and thread_ts else None,
        reply_to_author_id=_str(message.get("parent_user_id")) if in_thread else None,
        mentioned_user_ids=_mentions(raw),
    )


def to_chat_message(event: Mapping[str, Any], *, team_id: str) -> ChatMessage | None:
    """A ``message`` event (channels, private channels, DMs, group DMs) as a ``ChatMessage``; None to skip.

    Skipped: bot messages, subtypes without a person's text (joins, topic changes, ...), edits and deletions
    (see ``to_edited_message`` / ``to_deleted_message``), and malformed events. A reply in a thread replies
    to the thread's parent (its author is ``parent_user_id``). DMs (``channel_type`` ``im``) leave
    ``recipient_ids`` empty: the event does not say who else is in the DM, and the pair resolver falls back to
    the previous speaker. Group DMs (``mpim``) are treated like channels: mentions, replies, turn-taking.
    """
    channel_id = _str(event.get("channel"))
    if channel_id is None or not team_id or not _is_from_a_person(event):
        return None
    ts = str(event.get("ts", ""))
    return _build(
        event,
        team_id=team_id,
        channel_id=channel_id,
        channel_type=_str(event.get("channel_type")),
        vigil_id=message_id(channel_id, ts),
    )


def to_edited_message(event: Mapping[str, Any], *, team_id: str) -> ChatMessage | None:
    """A ``message_changed`` event whose text a person edited, as a new version to score; None otherwise.

    Slack also sends ``message_changed`` when a thread gets a reply or a link unfurls: without an ``edited``
    mark or with unchanged text there is nothing new to score.
    """
    channel_id = _str(event.get("channel"))
    new = event.get("message")
    if channel_id is None or not team_id or not isinstance(new, Mapping) or not _is_from_a_person(new):
        return None
    edited = new.get("edited")
    if not isinstance(edited, Mapping) or _str(edited.get("ts")) is None:
        return None
    previous = event.get("previous_message")
    if isinstance(previous, Mapping) and previous.get("text") == new.get("text"):
        return None
    ts = _str(new.get("ts"))
    if ts is None:
        return None
    edited_ts = str(edited["ts"])
    built = _build(
        new,
        team_id=team_id,
        channel_id=channel_id,
        channel_type=_str(event.get("channel_type")),
        vigil_id=edited_message_id(channel_id, ts, edited_ts),
    )
    if built is None:
        return None
    # The edit happened now, not when the message was first sent: turn-taking needs the edit's time.
    edited_at = _timestamp(edited_ts)
    return built if edited_at is None else dataclasses.replace(built, timestamp=edited_at)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeletedMessage:
    """A ``message_deleted`` event: which message (its Vigil id) and, when Slack says, who wrote it."""

    team_id: str
    channel_id: str
    ts: str
    message_id: str
    author_id: str | None


def to_deleted_message(event: Mapping[str, Any], *, team_id: str) -> DeletedMessage | None:
    channel_id = _str(event.get("channel"))
    ts = _str(event.get("deleted_ts"))
    previous = event.get("previous_message")
    if ts is None and isinstance(previous, Mapping):
        ts = _str(previous.get("ts"))
    if channel_id is None or ts is None or not team_id:
        return None
    author = _str(previous.get("user")) if isinstance(previous, Mapping) else None
    return DeletedMessage(
        team_id=team_id, channel_id=channel_id, ts=ts, message_id=message_id(channel_id, ts), author_id=author
    )
