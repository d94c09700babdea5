"""Discord message → ``ChatMessage``: the only place that knows how Discord shapes a message.

Ids are Discord snowflakes as strings. ``space_id`` is the guild id, or ``"dm"`` for direct messages to the
bot. In a thread, ``channel_id`` is the thread's parent channel (so ignoring a channel also ignores its
threads) and ``thread_id`` is the thread.

An edit is scored as a message of its own whose id is ``<id>:edit:<ms>``, ``<ms>`` being the edit's timestamp
in epoch milliseconds: a redelivered edit event has the same id, so the monitor's idempotency holds for edits
too, and every real edit gets a new one. The original text stays in the window: editing a message does not
erase what was said.
"""

from __future__ import annotations

from datetime import UTC, datetime

import discord

from vigil.bots.core.models import ChatMessage

__all__ = [
    "DM_SPACE",
    "PLATFORM",
    "base_message_id",
    "edit_message_id",
    "is_ingestible",
    "jump_url",
    "location_of",
    "to_chat_message",
]

PLATFORM = "discord"
DM_SPACE = "dm"
_EDIT_MARK = ":edit:"
# Only what people type: replies included; joins, pins, boosts, thread starters and the like are not.
_HUMAN_MESSAGE_TYPES = frozenset({discord.MessageType.default, discord.MessageType.reply})


def is_ingestible(message: discord.Message, *, own_user_id: int | None) -> bool:
    """Whether a message is a person's own words: not the bot's, not another bot's or webhook's, not a
    system message, and not empty."""
    author = message.author
    if own_user_id is not None and author.id == own_user_id:
        return False
    if author.bot or author.system or message.webhook_id is not None:
        return False
    if message.type not in _HUMAN_MESSAGE_TYPES:
        return False
    return bool(message.content.strip())


def location_of(channel: object) -> tuple[str, str | None]:
    """``(channel_id, thread_id)`` for a message's channel: a thread is filed under its parent channel."""
    if isinstance(channel, discord.Thread):
        parent = channel.parent_id
        return (str(parent) if parent else str(channel.id)), str(channel.id)
    channel_id = getattr(channel, "id", None)
    return str(channel_id), None


def edit_message_id(message_id: int, edited_at: datetime) -> str:
    return f"{message_id}{_EDIT_MARK}{round(edited_at.timestamp() * 1000)}"


def base_message_id(message_id: str) -> str:
    """The Discord message id behind a Vigil message id (an edit's id names the message it edited)."""
    return message_id.split(_EDIT_MARK, 1)[0]


def jump_url(*, space_id: str, channel_id: str, thread_id: str | None, message_id: str) -> str:
    guild = "@me" if space_id == DM_SPACE else space_id
    return f"https://discord.com/channels/{guild}/{thread_id or channel_id}/{base_message_id(message_id)}"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _dm_participants(channel: object) -> tuple[str, ...]:
    """Everyone in a DM as the platform reports it: the other person and the bot itself."""
    people: list[str] = []
    if isinstance(channel, discord.DMChannel):
        if channel.recipient is not None:
            people.append(str(channel.recipient.id))
        if channel.me is not None:
            people.append(str(channel.me.id))
    elif isinstance(channel, discord.GroupChannel):
        people.extend(str(user.id) for user in channel.recipients)
        people.append(str(channel.me.id))
    return tuple(dict.fromkeys(people))


def _reply_target(message: discord.Message) -> tuple[str | None, str | None]:
    reference = message.reference
    if reference is None or reference.type is not discord.MessageReferenceType.reply:
        return None, None
    replied_id = str(reference.message_id) if reference.message_id is not None else None
    resolved = reference.resolved if isinstance(reference.resolved, discord.Message) else None
    if resolved is None:
        resolved = reference.cached_message
    if resolved is None or resolved.author.bot:
        return replied_id, None
    return replied_id, str(resolved.author.id)


def to_chat_message(
    message: discord.Message, *, message_id: str | None = None, timestamp: datetime | None = None
) -> ChatMessage:
    """Translate a Discord message. ``message_id``/``timestamp`` override the message's own (for edits)."""
    is_dm = message.guild is None
    channel_id, thread_id = location_of(message.channel)
    reply_to_message_id, reply_to_author_id = _reply_target(message)
    author_id = message.author.id
    mentioned = tuple(
        dict.fromkeys(str(user.id) for user in message.mentions if not user.bot and user.id != author_id)
    )
    recipients = (
        tuple(user for user in _dm_participants(message.channel) if user != str(author_id)) if is_dm else ()
    )
    space_id = DM_SPACE if message.guild is None else str(message.guild.id)
    return ChatMessage(
        platform=PLATFORM,
        space_id=space_id,
        channel_id=channel_id,
        message_id=message_id or str(message.id),
        author_id=str(author_id),
        text=message.content,
        timestamp=_utc(timestamp or message.created_at),
        is_dm=is_dm,
        thread_id=thread_id,
        author_is_bot=message.author.bot or message.webhook_id is not None,
        reply_to_message_id=reply_to_message_id,
        reply_to_author_id=reply_to_author_id,
        mentioned_user_ids=mentioned,
        recipient_ids=recipients,
        author_display_name=message.author.display_name,
    )
