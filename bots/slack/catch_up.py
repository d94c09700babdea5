"""Slack catch-up: what a workspace's conversations got while Vigil was away, read back from their history.

Slack resends an event it got no acknowledgement for, but gives up after three retries over about five
minutes; what was said during a longer outage never arrives as an event. At start the adapter reads it from
the Web API instead: the conversations the bot is a member of (``users.conversations``), each one's messages
newer than the window's floor (``conversations.history``, newest first, paginated) and the replies newer than
the floor in threads whose ``latest_reply`` is (``conversations.replies``). Each message is translated exactly
as a live event is (``to_chat_message`` on the event's shape), and all of them are returned oldest first
across conversations, each once.

Rate limits are waited out (``Retry-After``, a few times per call); a conversation whose history cannot be
read is counted by error code and skipped; nothing here logs message text or ids of people.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from vigil.bots.core.models import ChatMessage
from vigil.bots.slack.translate import to_chat_message
from vigil.bots.slack.web import WEB_API_ERRORS, ApiFailure, classify_failure

__all__ = [
    "ALL_TYPES",
    "CHANNEL_TYPES",
    "CatchUpOptions",
    "CatchUpWindow",
    "Conversation",
    "MissedMessages",
    "catch_up_window",
    "read_missed",
]

logger = logging.getLogger(__name__)

# The conversation types read back, and the ones left when the app lacks im:read / mpim:read (installed
# from a manifest older than catch-up).
ALL_TYPES = "public_channel,private_channel,mpim,im"
CHANNEL_TYPES = "public_channel,private_channel"


@dataclass(frozen=True, slots=True, kw_only=True)
class CatchUpOptions:
    """Tuning with production defaults; tests shorten the waits."""

    # At most this many messages read per conversation, thread replies included, newest first: when more
    # were said, the oldest of them are not read (the newest continue into what arrives live).
    per_conversation: int = 1000
    # Read from this long before the last message Vigil stored: one in flight at a crash was sent before it
    # (Slack's clock) and stored, if at all, by Vigil's clock.
    overlap_s: float = 300.0
    # Messages asked for per call (Slack recommends at most 200).
    page_size: int = 200
    # Thread parents older than the floor looked at per conversation for replies newer than it: replies go
    # to threads started before the outage too. Bounded, so that a quick restart reads little.
    thread_parents: int = 200
    # A rate-limited call is retried this many times, each after Slack's Retry-After (at most this long).
    rate_limit_retries: int = 5
    max_retry_after_s: float = 60.0
    # A live message event waits at most this long for its workspace's catch-up, unacknowledged; then it is
    # handled anyway (out of order rather than lost).
    live_wait_s: float = 120.0


@dataclass(frozen=True, slots=True, kw_only=True)
class CatchUpWindow:
    """What to read: messages newer than ``since`` (up to ``until``); thread parents newer than
    ``threads_since`` are looked at for replies newer than ``since``."""

    since: datetime
    threads_since: datetime
    until: datetime


def catch_up_window(
    *,
    now: datetime,
    hours: int,
    overlap: timedelta,
    watching_since: datetime | None,
    last_seen: datetime | None,
    resume_from: datetime | None,
) -> CatchUpWindow | None:
    """The window of a workspace's catch-up; None when there is nothing to read.

    The floor is the latest of: ``hours`` ago; when Vigil began watching the workspace, less the overlap
    (nothing from before it came is read); the last message stored, less the overlap. ``resume_from`` is the
    floor of a catch-up that did not finish (stopped, crashed, a transient failure): it is read again from
    there, still no further back than ``hours``. Nothing is read on the first run in a workspace (no record
    of watching it and nothing stored).
    """
    if hours <= 0 or (watching_since is None and last_seen is None and resume_from is None):
        return None
    earliest = now - timedelta(hours=hours)
    floors = [earliest]
    if watching_since is not None:
        floors.append(watching_since - overlap)
    if last_seen is not None:
        floors.append(last_seen - overlap)
    since = max(floors)
    if resume_from is not None:
        since = max(earliest, min(since, resume_from))
    threads_since = earliest if watching_since is None else max(earliest, watching_since - overlap)
    if since >= now:
        return None
    return CatchUpWindow(since=since, threads_since=min(threads_since, since), until=now)


@dataclass(frozen=True, slots=True)
class Conversation:
    """A conversation the bot is a member of, with the ``channel_type`` its message events carry."""

    id: str
    channel_type: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MissedMessages:
    """What a catch-up read: the messages to hand over, oldest first, and how the reading went."""

    messages: tuple[ChatMessage, ...] = ()
    # Conversations listed and read (in full or in part), and those the missed messages came from.
    conversations: int = 0
    with_messages: int = 0
    # Conversations with more than ``per_conversation`` messages to read: their oldest missed ones were not.
    capped: int = 0
    # Conversations (or the listing, as "list") that could not be read, by Slack's error code.
    failures: Mapping[str, int] = field(default_factory=dict)
    # False when a transient failure (rate limits past the retries, a server error, the network) left part
    # unread: the next start reads from the same floor again.
    complete: bool = True


def _ts(moment: datetime) -> str:
    return f"{moment.timestamp():.6f}"


def _decimal(value: object) -> Decimal | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _channel_type(conversation: Mapping[str, Any]) -> str:
    if conversation.get("is_im"):
        return "im"
    if conversation.get("is_mpim"):
        return "mpim"
    if conversation.get("is_private") or conversation.get("is_group"):
        return "group"
    return "channel"


def _next_cursor(response: AsyncSlackResponse) -> str | None:
    metadata = response.get("response_metadata")
    cursor = metadata.get("next_cursor") if isinstance(metadata, Mapping) else None
    return cursor if isinstance(cursor, str) and cursor else None


def _messages(response: AsyncSlackResponse) -> list[Mapping[str, Any]]:
    return [m for m in response.get("messages") or [] if isinstance(m, Mapping)]


class _Unreadable(Exception):
    """A Web API call failed (after the rate-limit retries)."""

    def __init__(self, failure: ApiFailure) -> None:
        super().__init__(failure.code)
        self.failure = failure


@dataclass(slots=True)
class _Read:
    """One conversation's reading: the messages newer than the floor, what is left of its bound, and whether
    the bound stopped it before the floor."""

    found: list[Mapping[str, Any]]
    budget: int
    capped: bool = False


class _Reader:
    def __init__(self, client: AsyncWebClient, *, options: CatchUpOptions) -> None:
        self._client = client
        self._options = options

    async def _call(self, call: Callable[[], Awaitable[AsyncSlackResponse]]) -> AsyncSlackResponse:
        """``call()``, waiting out rate limits; any other failure raises ``_Unreadable``."""
        retries = 0
        while True:
            try:
                return await call()
            except WEB_API_ERRORS as error:
                failure = classify_failure(error)
                if failure.code != "ratelimited" or retries >= self._options.rate_limit_retries:
                    raise _Unreadable(failure) from None
            retries += 1
            wait = min(failure.retry_after or 1.0, self._options.max_retry_after_s)
            logger.debug("Slack catch-up rate limited; retrying in %.1fs", wait)
            await asyncio.sleep(wait)

    async def conversations(self, types: str) -> list[Conversation]:
        found: list[Conversation] = []
        cursor: str | None = None
        while True:
            response = await self._call(
                functools.partial(
                    self._client.users_conversations,
                    types=types,
                    exclude_archived=True,
                    limit=self._options.page_size,
                    cursor=cursor,
                )
            )
            for entry in response.get("channels") or []:
                if not isinstance(entry, Mapping) or entry.get("is_archived"):
                    continue
                conversation_id = entry.get("id")
                if isinstance(conversation_id, str) and conversation_id:
                    found.append(Conversation(id=conversation_id, channel_type=_channel_type(entry)))
            cursor = _next_cursor(response)
            if cursor is None:
                return found

    async def read(self, conversation: Conversation, window: CatchUpWindow) -> _Read:
        """The conversation's messages newer than the floor, thread replies included, newest first."""
        options = self._options
        since = Decimal(_ts(window.since))
        read = _Read(found=[], budget=options.per_conversation)
        threads: list[str] = []
        older = 0
        cursor: str | None = None
        while True:
            response = await self._call(
                functools.partial(
                    self._client.conversations_history,
                    channel=conversation.id,
                    # From the thread parents' floor: older parents may have new replies.
                    oldest=_ts(window.threads_since),
                    latest=_ts(window.until),
                    inclusive=False,
                    limit=min(options.page_size, read.budget),
                    cursor=cursor,
                )
            )
            page = _messages(response)
            read.budget -= len(page)
            for message in page:
                ts = _decimal(message.get("ts"))
                if ts is None:
                    continue
                if ts > since:
                    read.found.append(message)
                else:
                    older += 1
                latest_reply = _decimal(message.get("latest_reply"))
                is_parent = message.get("thread_ts") in (None, message.get("ts"))
                if is_parent and latest_reply is not None and latest_reply > since:
                    threads.append(str(message["ts"]))
            cursor = _next_cursor(response)
            if cursor is None or not page or older >= options.thread_parents:
                break
            if read.budget <= 0:
                # Newest first: stopped before the floor only if no older message was reached yet.
                read.capped = older == 0
                break
        for thread_ts in threads:
            await self._replies(conversation, thread_ts, window, read)
        return read

    async def _replies(
        self, conversation: Conversation, thread_ts: str, window: CatchUpWindow, read: _Read
    ) -> None:
        since = Decimal(_ts(window.since))
        cursor: str | None = None
        while True:
            if read.budget <= 0:
                read.capped = True
                return
            response = await self._call(
                functools.partial(
                    self._client.conversations_replies,
                    channel=conversation.id,
                    ts=thread_ts,
                    oldest=_ts(window.since),
                    latest=_ts(window.until),
                    inclusive=False,
                    limit=min(self._options.page_size, read.budget),
                    cursor=cursor,
                )
            )
            page = _messages(response)
            read.budget -= len(page)
            for message in page:
                ts = _decimal(message.get("ts"))
                # The parent comes with its replies; it was read with the history if it is new.
                if ts is not None and ts > since and message.get("ts") != thread_ts:
                    read.found.append(message)
            cursor = _next_cursor(response)
            if cursor is None or not page:
                return


async def read_missed(
    client: AsyncWebClient,
    *,
    team_id: str,
    window: CatchUpWindow,
    ignored_channel_ids: frozenset[str] = frozenset(),
    options: CatchUpOptions,
) -> MissedMessages:
    """The messages a workspace's conversations got in ``window``, translated, oldest first, each once.

    Problems are logged here (WARNING, once per catch-up, by error code: never message text); the result
    says whether anything was left unread for a reason that may pass (``complete``).
    """
    reader = _Reader(client, options=options)
    failures: Counter[str] = Counter()
    try:
        try:
            conversations = await reader.conversations(ALL_TYPES)
        except _Unreadable as unreadable:
            if unreadable.failure.code != "missing_scope":
                raise
            conversations = await reader.conversations(CHANNEL_TYPES)
            logger.warning(
                "Slack workspace %s: direct messages and group DMs are not caught up: the app lacks the "
                "im:read / mpim:read scopes; update it from the manifest (vigil show slack-manifest) and "
                "reinstall",
                team_id,
            )
    except _Unreadable as unreadable:
        failure = unreadable.failure
        logger.warning(
            "Slack workspace %s: could not list the conversations to catch up (%s); messages sent while "
            "Vigil was away are not scored",
            team_id,
            failure.description,
        )
        return MissedMessages(failures={"list": 1}, complete=failure.permanent)
    chosen = [c for c in conversations if c.id not in ignored_channel_ids]
    complete = True
    capped = 0
    by_id: dict[str, tuple[Decimal, ChatMessage]] = {}
    sources: set[str] = set()
    for conversation in chosen:
        try:
            read = await reader.read(conversation, window)
        except _Unreadable as unreadable:
            failures[unreadable.failure.code] += 1
            complete = complete and unreadable.failure.permanent
            continue
        capped += read.capped
        for message in read.found:
            event = {
                **message,
                "channel": conversation.id,
                "channel_type": conversation.channel_type,
                "team": team_id,
            }
            translated = to_chat_message(event, team_id=team_id)
            ts = _decimal(message.get("ts"))
            if translated is None or ts is None:
                continue
            by_id.setdefault(translated.message_id, (ts, translated))
            sources.add(conversation.id)
    if failures:
        logger.warning(
            "Slack workspace %s: could not read the history of %d conversation(s) (%s); messages sent there "
            "while Vigil was away are not scored",
            team_id,
            sum(failures.values()),
            ", ".join(f"{code}: {count}" for code, count in sorted(failures.items())),
        )
    if capped:
        logger.warning(
            "Slack workspace %s: %d conversation(s) got more than %d messages while Vigil was away; the "
            "oldest of them are not scored",
            team_id,
            capped,
            options.per_conversation,
        )
    ordered = sorted(by_id.values(), key=lambda entry: (entry[0], entry[1].channel_id))
    return MissedMessages(
        messages=tuple(message for _, message in ordered),
        conversations=len(chosen),
        with_messages=len(sources),
        capped=capped,
        failures=dict(failures),
        complete=complete,
    )
