"""Which conversations a message belongs to: the pairs of people Vigil watches.

Vigil scores conversations between two people, not single messages. ``PairResolver`` decides, for each
incoming message, which two-person conversations ("pairs") it is part of. The rules are written for
community admins in ``docs/pairing.md``; keep the two in step.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeAlias

from vigil.bots.core.models import ChatMessage, PairKey

__all__ = ["MENTION_SCAN_LIMIT", "Location", "PairResolver", "TurnMemory", "location_of"]

logger = logging.getLogger(__name__)

# Only this many mentioned users (or DM recipients) are looked at, so a message with thousands of mentions
# costs no more than one with fifty.
MENTION_SCAN_LIMIT = 50

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# (platform, space_id, channel_id, thread_id): where turn-taking is observed.
Location: TypeAlias = tuple[str, str, str, str | None]
_PartnerTest: TypeAlias = Callable[[str | None], bool]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Turn:
    """What the resolver remembers of one human message in a location."""

    message_id: str
    author_id: str
    at_s: float
    # The people this message replied to or mentioned (humans other than its author), at most the cap.
    addressed_ids: tuple[str, ...]
    # The people this message was paired with, by whichever rule (at most the cap).
    partner_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnMemory:
    """What the resolver remembers of one location, as text the store keeps (``PairResolver.memory_of``):
    message ids, author ids, times and who was addressed and paired; never message text."""

    location: Location
    turns: str  # JSON
    last_at_s: float  # the newest remembered message's time, seconds since the epoch

    @property
    def last_at(self) -> datetime:
        return datetime.fromtimestamp(self.last_at_s, tz=UTC)


class PairResolver:
    """Resolves which pairs a ``ChatMessage`` joins, remembering a little recent history per location.

    Rules (``docs/pairing.md`` says the same in plain words):

    * A message from a bot (``author_is_bot``, or an author in ``bot_user_ids``) forms no pair and is not
      remembered: for turn-taking, bot messages are invisible. A bot, the author themself and empty ids
      never form a pair.
    * Direct message (``is_dm``): one pair with each of ``recipient_ids``. When the platform gave no
      recipients, the pair is with the author of the replied-to message, if any, and with the most recent
      other person who wrote in that DM channel (however long ago, as long as it is still remembered).
    * Channel or thread message by A, in this order:

      a. the author of the message A replied to;
      b. each user A mentioned, in the order given;
      c. turn-taking: B, the author of the previous human message in the same location (the thread when
         the message is in one, otherwise the channel), when B's message came within ``turn_gap_s`` of A's
         and either B's message replied to or mentioned A, or B's message replied to and mentioned nobody
         and the human message just before it was A's, also within ``turn_gap_s`` (A, B, A);
      d. continuing: when a-c give no partner, the person A was last paired with in the location (the first
         partner of A's latest paired message, or the author of the latest message paired with A, whichever
         came later), when that message is still remembered and came within ``turn_gap_s`` of A's, and that
         person also wrote a remembered message within ``turn_gap_s``: A's burst of messages, or a chat among
         other people's messages, stays one conversation while both people are in it.

    * At most ``max_pairs_per_message`` pairs per message (5 by default), taken in the order above, with
      duplicates removed; only the first ``MENTION_SCAN_LIMIT`` mentions or recipients are looked at.
    * Keys come back in that order; each is ``PairKey.of(platform, space_id, author, other)``.

    Memory is bounded: the last ``memory_per_location`` human messages per location, for the
    ``max_locations`` most recently active locations. A message it still remembers (by id) gets the same
    answer again and is not remembered twice, so replaying a conversation rebuilds the memory a restart
    lost without disturbing it. Not thread-safe: call it from one task.
    """

    def __init__(
        self,
        *,
        memory_per_location: int = 8,
        max_locations: int = 10_000,
        turn_gap_s: float = 600.0,
        max_pairs_per_message: int = 5,
    ) -> None:
        if memory_per_location < 2:
            raise ValueError("memory_per_location must be at least 2 to see turn-taking")
        if max_locations < 1:
            raise ValueError("max_locations must be at least 1")
        if not turn_gap_s >= 0:
            raise ValueError("turn_gap_s must be a non-negative number of seconds")
        if max_pairs_per_message < 1:
            raise ValueError("max_pairs_per_message must be at least 1")
        self._memory_per_location = memory_per_location
        self._max_locations = max_locations
        self._turn_gap_s = turn_gap_s
        self._max_pairs_per_message = max_pairs_per_message
        self._turns_by_location: OrderedDict[Location, deque[_Turn]] = OrderedDict()

    @property
    def max_locations(self) -> int:
        return self._max_locations

    @property
    def location_count(self) -> int:
        """How many locations are remembered (at most ``max_locations``)."""
        return len(self._turns_by_location)

    @property
    def remembered_turn_count(self) -> int:
        """How many messages are remembered in all (at most ``max_locations * memory_per_location``)."""
        return sum(len(turns) for turns in self._turns_by_location.values())

    def memory_of(self, location: Location) -> TurnMemory | None:
        """The remembered turns of ``location``, to keep across restarts (None: nothing remembered)."""
        turns = self._turns_by_location.get(location)
        if not turns:
            return None
        rows = [
            [t.message_id, t.author_id, t.at_s, list(t.addressed_ids), list(t.partner_ids)] for t in turns
        ]
        return TurnMemory(
            location=location, turns=json.dumps(rows, separators=(",", ":")), last_at_s=turns[-1].at_s
        )

    def restore(self, memory: TurnMemory) -> None:
        """Remember ``memory``'s turns again (after a restart), as the oldest of its location's; a malformed
        one is skipped with a warning: it only costs turn-taking pairs until the location is active again."""
        try:
            rows = json.loads(memory.turns)
            turns = [
                _Turn(
                    message_id=str(message_id),
                    author_id=str(author_id),
                    at_s=float(at_s),
                    addressed_ids=tuple(str(i) for i in addressed),
                    partner_ids=tuple(str(i) for i in partners),
                )
                for message_id, author_id, at_s, addressed, partners in rows
            ]
        except (ValueError, TypeError) as error:
            logger.warning(
                "skipped a stored turn-taking memory that could not be read (%s)", type(error).__name__
            )
            return
        for turn in turns[-self._memory_per_location :]:
            self._remember(memory.location, turn)

    def forget_all(self) -> None:
        """Forget every remembered turn (before reading them again from the store)."""
        self._turns_by_location.clear()

    def replay(self, message: ChatMessage, *, bot_user_ids: frozenset[str] = frozenset()) -> None:
        """A message stored before (a redelivery, a replay after a restart): remembered as ``resolve`` would,
        unless its location already remembers a later message. A restored memory then stays as the last run
        left it while a replay from further back passes over it, and an empty one is rebuilt in order."""
        turns = self._turns_by_location.get(location_of(message))
        if turns and _seconds_since_epoch(message.timestamp) < turns[-1].at_s:
            return
        self.resolve(message, bot_user_ids=bot_user_ids)

    def resolve(
        self, message: ChatMessage, *, bot_user_ids: frozenset[str] = frozenset()
    ) -> tuple[PairKey, ...]:
        """Return the pairs ``message`` joins, in rule order, and remember it (unless a bot wrote it)."""
        author_id = message.author_id
        if message.author_is_bot or not author_id or author_id in bot_user_ids:
            return ()

        def is_partner(user_id: str | None) -> bool:
            return bool(user_id) and user_id != author_id and user_id not in bot_user_ids

        location = location_of(message)
        history: Sequence[_Turn] = self._turns_by_location.get(location, ())
        remembered = next(
            (
                turn
                for turn in history
                if turn.message_id == message.message_id and turn.author_id == author_id
            ),
            None,
        )
        if remembered is not None:
            # Seen already (a redelivery): the same answer, and history is not written twice.
            return self._keys(message, remembered.partner_ids)
        at_s = _seconds_since_epoch(message.timestamp)
        if message.is_dm:
            addressed_ids = self._first_partners(
                message.recipient_ids[:MENTION_SCAN_LIMIT], is_partner=is_partner
            )
            if addressed_ids:
                partner_ids = addressed_ids
            else:
                partner_ids = self._first_partners(
                    [message.reply_to_author_id, _most_recent_other_speaker(history, author_id=author_id)],
                    is_partner=is_partner,
                )
        else:
            if len(message.mentioned_user_ids) > MENTION_SCAN_LIMIT:
                logger.debug(
                    "message %s mentions %d users; looking at the first %d",
                    message.message_id,
                    len(message.mentioned_user_ids),
                    MENTION_SCAN_LIMIT,
                )
            addressed_ids = self._first_partners(
                [message.reply_to_author_id, *message.mentioned_user_ids[:MENTION_SCAN_LIMIT]],
                is_partner=is_partner,
            )
            turn_partner_id = self._turn_partner(history, author_id=author_id, at_s=at_s)
            partner_ids = self._first_partners([*addressed_ids, turn_partner_id], is_partner=is_partner)
            if not partner_ids:
                partner_ids = self._first_partners(
                    [self._continued_partner(history, author_id=author_id, at_s=at_s)], is_partner=is_partner
                )
        self._remember(
            location,
            _Turn(
                message_id=message.message_id,
                author_id=author_id,
                at_s=at_s,
                addressed_ids=addressed_ids,
                partner_ids=partner_ids,
            ),
        )
        return self._keys(message, partner_ids)

    @staticmethod
    def _keys(message: ChatMessage, partner_ids: Sequence[str]) -> tuple[PairKey, ...]:
        return tuple(
            PairKey.of(
                platform=message.platform, space_id=message.space_id, first=message.author_id, second=other
            )
            for other in partner_ids
        )

    def _first_partners(
        self, candidate_ids: Iterable[str | None], *, is_partner: _PartnerTest
    ) -> tuple[str, ...]:
        """The first distinct partners among ``candidate_ids``, at most the per-message cap."""
        partner_ids: dict[str, None] = {}
        for user_id in candidate_ids:
            if user_id is not None and is_partner(user_id):
                partner_ids[user_id] = None
                if len(partner_ids) == self._max_pairs_per_message:
                    break
        return tuple(partner_ids)

    def _turn_partner(self, history: Sequence[_Turn], *, author_id: str, at_s: float) -> str | None:
        if not history:
            return None
        previous = history[-1]
        if previous.author_id == author_id or abs(at_s - previous.at_s) > self._turn_gap_s:
            return None
        if author_id in previous.addressed_ids:
            return previous.author_id
        if previous.addressed_ids or len(history) < 2:
            return None  # B was talking to someone else, or A had not spoken before B
        before = history[-2]
        if before.author_id == author_id and abs(previous.at_s - before.at_s) <= self._turn_gap_s:
            return previous.author_id
        return None

    def _continued_partner(self, history: Sequence[_Turn], *, author_id: str, at_s: float) -> str | None:
        partner_id = None
        for turn in reversed(history):
            if abs(at_s - turn.at_s) > self._turn_gap_s:
                return None
            if turn.author_id == author_id and turn.partner_ids:
                partner_id = turn.partner_ids[0]
                break
            if turn.author_id != author_id and author_id in turn.partner_ids:
                partner_id = turn.author_id
                break
        if partner_id is None:
            return None
        # The partner must still be in the conversation, not long gone from the channel.
        partner_present = any(
            turn.author_id == partner_id and abs(at_s - turn.at_s) <= self._turn_gap_s for turn in history
        )
        return partner_id if partner_present else None

    def _remember(self, location: Location, turn: _Turn) -> None:
        turns = self._turns_by_location.get(location)
        if turns is None:
            turns = deque(maxlen=self._memory_per_location)
            self._turns_by_location[location] = turns
            if len(self._turns_by_location) > self._max_locations:
                forgotten, _ = self._turns_by_location.popitem(last=False)
                logger.debug("forgot the least recently active location %s", forgotten)
        else:
            self._turns_by_location.move_to_end(location)
        turns.append(turn)


def location_of(message: ChatMessage) -> Location:
    """Where the resolver observes ``message``'s turn-taking: its channel, or its thread in one."""
    # A DM is one conversation whatever thread a reply lands in.
    thread_id = None if message.is_dm else message.thread_id
    return (message.platform, message.space_id, message.channel_id, thread_id)


def _most_recent_other_speaker(history: Sequence[_Turn], *, author_id: str) -> str | None:
    """The last person other than the author who wrote in a location (bots are never in the history)."""
    for turn in reversed(history):
        if turn.author_id != author_id:
            return turn.author_id
    return None


def _seconds_since_epoch(timestamp: datetime) -> float:
    # Timestamps should be aware UTC; a naive one is read as UTC rather than failing the message.
    if timestamp.utcoffset() is None:
        timestamp = timestamp.replace(tzinfo=UTC)
    return (timestamp - _EPOCH).total_seconds()
