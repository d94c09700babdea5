from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.bots.core.models import ChatMessage, PairKey
from vigil.bots.core.pairing import MENTION_SCAN_LIMIT, PairResolver, TurnMemory, location_of

START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@dataclass(slots=True, kw_only=True)
class Conversation:
    """Builds messages in one space with increasing ids and timestamps."""

    platform: str = "discord"
    space_id: str = "guild-1"
    now: datetime = START
    message_ids: itertools.count[int] = field(default_factory=itertools.count)

    def message(
        self,
        author_id: str,
        *,
        channel_id: str = "general",
        after_s: float = 10.0,
        **fields: object,
    ) -> ChatMessage:
        self.now += timedelta(seconds=after_s)
        return ChatMessage(
            platform=self.platform,
            space_id=self.space_id,
            channel_id=channel_id,
            message_id=f"m{next(self.message_ids)}",
            author_id=author_id,
            text="hi",
            timestamp=self.now,
            **fields,  # type: ignore[arg-type]
        )


def key(first: str, second: str) -> PairKey:
    return PairKey.of(platform="discord", space_id="guild-1", first=first, second=second)


@pytest.fixture
def chat() -> Conversation:
    return Conversation()


# -- channel rules -------------------------------------------------------------------------------------


def test_reply_pairs_author_with_replied_to_author(chat: Conversation) -> None:
    resolver = PairResolver()
    message = chat.message("alice", reply_to_message_id="m0", reply_to_author_id="bob")
    assert resolver.resolve(message) == (key("alice", "bob"),)


def test_each_mention_forms_a_pair_in_order(chat: Conversation) -> None:
    resolver = PairResolver()
    message = chat.message("alice", mentioned_user_ids=("carol", "bob"))
    assert resolver.resolve(message) == (key("alice", "carol"), key("alice", "bob"))


def test_reply_comes_before_mentions_and_duplicates_are_removed(chat: Conversation) -> None:
    resolver = PairResolver()
    message = chat.message(
        "alice", reply_to_author_id="bob", mentioned_user_ids=("carol", "bob", "carol", "dave")
    )
    assert resolver.resolve(message) == (key("alice", "bob"), key("alice", "carol"), key("alice", "dave"))


def test_self_reply_and_self_mention_form_no_pair(chat: Conversation) -> None:
    resolver = PairResolver()
    message = chat.message("alice", reply_to_author_id="alice", mentioned_user_ids=("alice",))
    assert resolver.resolve(message) == ()


def test_empty_ids_form_no_pair(chat: Conversation) -> None:
    resolver = PairResolver()
    assert resolver.resolve(chat.message("alice", reply_to_author_id="", mentioned_user_ids=("",))) == ()
    assert resolver.resolve(chat.message("", reply_to_author_id="bob")) == ()


def test_mentions_are_capped(chat: Conversation) -> None:
    resolver = PairResolver()
    mentioned = tuple(f"user{number}" for number in range(10_000))
    pairs = resolver.resolve(chat.message("alice", mentioned_user_ids=mentioned))
    assert pairs == tuple(key("alice", f"user{number}") for number in range(5))
    assert resolver.remembered_turn_count == 1


def test_only_the_first_mentions_are_looked_at(chat: Conversation) -> None:
    resolver = PairResolver()
    mentioned = ("alice",) * MENTION_SCAN_LIMIT + ("bob",)
    assert resolver.resolve(chat.message("alice", mentioned_user_ids=mentioned)) == ()


def test_pair_cap_is_configurable(chat: Conversation) -> None:
    resolver = PairResolver(max_pairs_per_message=2)
    message = chat.message("alice", reply_to_author_id="bob", mentioned_user_ids=("carol", "dave"))
    assert resolver.resolve(message) == (key("alice", "bob"), key("alice", "carol"))


# -- bots ----------------------------------------------------------------------------------------------


def test_bot_message_forms_no_pair_and_is_not_remembered(chat: Conversation) -> None:
    resolver = PairResolver()
    message = chat.message("helper-bot", author_is_bot=True, reply_to_author_id="alice")
    assert resolver.resolve(message) == ()
    assert resolver.location_count == 0


def test_author_listed_as_bot_forms_no_pair(chat: Conversation) -> None:
    resolver = PairResolver()
    message = chat.message("vigil", reply_to_author_id="alice")
    assert resolver.resolve(message, bot_user_ids=frozenset({"vigil"})) == ()
    assert resolver.location_count == 0


def test_nobody_is_paired_with_a_bot(chat: Conversation) -> None:
    resolver = PairResolver()
    bots = frozenset({"vigil"})
    message = chat.message("alice", reply_to_author_id="vigil", mentioned_user_ids=("vigil", "bob"))
    assert resolver.resolve(message, bot_user_ids=bots) == (key("alice", "bob"),)
    dm = chat.message("alice", channel_id="dm-1", is_dm=True, recipient_ids=("vigil",))
    assert resolver.resolve(dm, bot_user_ids=bots) == ()


def test_bot_messages_are_invisible_to_turn_taking(chat: Conversation) -> None:
    resolver = PairResolver()
    resolver.resolve(chat.message("alice"))
    resolver.resolve(chat.message("bob"))
    resolver.resolve(chat.message("helper-bot", author_is_bot=True))
    assert resolver.resolve(chat.message("alice")) == (key("alice", "bob"),)


# -- direct messages -----------------------------------------------------------------------------------


def test_dm_pairs_with_each_recipient(chat: Conversation) -> None:
    resolver = PairResolver()
    message = chat.message("alice", channel_id="dm-1", is_dm=True, recipient_ids=("bob", "alice", "carol"))
    assert resolver.resolve(message) == (key("alice", "bob"), key("alice", "carol"))


def test_dm_without_recipients_falls_back_to_previous_speaker(chat: Conversation) -> None:
    resolver = PairResolver()
    assert resolver.resolve(chat.message("bob", channel_id="dm-1", is_dm=True)) == ()
    later = chat.message("alice", channel_id="dm-1", is_dm=True, after_s=86_400.0)
    assert resolver.resolve(later) == (key("alice", "bob"),)
    # alice writing twice in a row still finds bob
    assert resolver.resolve(chat.message("alice", channel_id="dm-1", is_dm=True)) == (key("alice", "bob"),)


def test_dm_fallback_uses_reply_target_and_ignores_threads(chat: Conversation) -> None:
    resolver = PairResolver()
    resolver.resolve(chat.message("bob", channel_id="dm-1", is_dm=True))
    message = chat.message("alice", channel_id="dm-1", is_dm=True, thread_id="t-9", reply_to_author_id="bob")
    assert resolver.resolve(message) == (key("alice", "bob"),)


def test_dm_fallback_only_looks_in_that_dm(chat: Conversation) -> None:
    resolver = PairResolver()
    resolver.resolve(chat.message("bob", channel_id="dm-1", is_dm=True))
    assert resolver.resolve(chat.message("alice", channel_id="dm-2", is_dm=True)) == ()


# -- turn-taking ---------------------------------------------------------------------------------------


def test_alternating_speakers_form_a_pair(chat: Conversation) -> None:
    resolver = PairResolver()
    assert resolver.resolve(chat.message("alice")) == ()
    assert resolver.resolve(chat.message("bob")) == ()
    assert resolver.resolve(chat.message("alice")) == (key("alice", "bob"),)
    assert resolver.resolve(chat.message("bob")) == (key("alice", "bob"),)


def test_answering_a_message_addressed_to_you_forms_a_pair(chat: Conversation) -> None:
    resolver = PairResolver()
    assert resolver.resolve(chat.message("bob", mentioned_user_ids=("alice",))) == (key("alice", "bob"),)
    assert resolver.resolve(chat.message("alice")) == (key("alice", "bob"),)


def test_no_turn_taking_when_the_previous_speaker_addressed_someone_else(chat: Conversation) -> None:
    resolver = PairResolver()
    resolver.resolve(chat.message("alice"))
    resolver.resolve(chat.message("bob", reply_to_author_id="carol"))
    assert resolver.resolve(chat.message("alice")) == ()


def test_no_turn_taking_when_someone_else_spoke_in_between(chat: Conversation) -> None:
    resolver = PairResolver()
    resolver.resolve(chat.message("alice"))
    resolver.resolve(chat.message("carol"))
    resolver.resolve(chat.message("bob"))
    assert resolver.resolve(chat.message("alice")) == ()


def test_no_turn_taking_after_the_gap(chat: Conversation) -> None:
    resolver = PairResolver(turn_gap_s=600.0)
    resolver.resolve(chat.message("alice"))
    resolver.resolve(chat.message("bob"))
    assert resolver.resolve(chat.message("alice", after_s=601.0)) == ()


def test_no_turn_taking_when_the_earlier_turn_is_too_old(chat: Conversation) -> None:
    resolver = PairResolver(turn_gap_s=600.0)
    resolver.resolve(chat.message("alice"))
    resolver.resolve(chat.message("bob", after_s=3_600.0))
    assert resolver.resolve(chat.message("alice", after_s=5.0)) == ()


def test_turn_taking_exactly_at_the_gap_counts(chat: Conversation) -> None:
    resolver = PairResolver(turn_gap_s=600.0)
    resolver.resolve(chat.message("alice"))
    resolver.resolve(chat.message("bob", after_s=600.0))
    assert resolver.resolve(chat.message("alice", after_s=600.0)) == (key("alice", "bob"),)


def test_turn_partner_comes_after_explicit_partners(chat: Conversation) -> None:
    resolver = PairResolver()
    resolver.resolve(chat.message("alice"))
    resolver.resolve(chat.message("bob"))
    message = chat.message("alice", mentioned_user_ids=("carol",))
    assert resolver.resolve(message) == (key("alice", "carol"), key("alice", "bob"))


def test_a_burst_of_messages_stays_in_the_conversation(chat: Conversation) -> None:
    resolver = PairResolver()
    resolver.resolve(chat.message("alice"))
    resolver.resolve(chat.message("bob"))
    assert resolver.resolve(chat.message("alice")) == (key("alice", "bob"),)
    assert resolver.resolve(chat.message("alice")) == (key("alice", "bob"),)
    assert resolver.resolve(chat.message("alice")) == (key("alice", "bob"),)


def test_a_conversation_continues_among_other_peoples_messages(chat: Conversation) -> None:
    resolver = PairResolver()
    resolver.resolve(chat.message("alice"))
    resolver.resolve(chat.message("bob"))
    assert resolver.resolve(chat.message("alice")) == (key("alice", "bob"),)
    assert resolver.resolve(chat.message("carol")) == ()
    assert resolver.resolve(chat.message("dave")) == ()
    assert resolver.resolve(chat.message("bob")) == (key("alice", "bob"),)
    assert resolver.resolve(chat.message("carol")) == ()
    assert resolver.resolve(chat.message("alice")) == (key("alice", "bob"),)


def test_no_continuing_when_the_partner_is_gone(chat: Conversation) -> None:
    resolver = PairResolver(turn_gap_s=600.0)
    resolver.resolve(chat.message("alice"))
    resolver.resolve(chat.message("bob"))
    resolver.resolve(chat.message("alice", after_s=300.0))
    resolver.resolve(chat.message("carol", after_s=300.0, mentioned_user_ids=("dave",)))
    # Alice's paired message is 400 s old, but Bob last wrote 700 s ago.
    assert resolver.resolve(chat.message("alice", after_s=100.0)) == ()


def test_no_continuing_after_the_authors_own_gap(chat: Conversation) -> None:
    resolver = PairResolver(turn_gap_s=600.0)
    resolver.resolve(chat.message("alice"))
    resolver.resolve(chat.message("bob"))
    resolver.resolve(chat.message("alice"))
    resolver.resolve(chat.message("carol", after_s=590.0, mentioned_user_ids=("dave",)))
    resolver.resolve(chat.message("bob", after_s=5.0, mentioned_user_ids=("dave",)))
    # Bob is still here, but Alice's conversation with him paused for longer than the turn gap.
    assert resolver.resolve(chat.message("alice", after_s=10.0)) == ()


def test_people_who_were_never_paired_do_not_continue(chat: Conversation) -> None:
    resolver = PairResolver()
    resolver.resolve(chat.message("alice"))
    resolver.resolve(chat.message("bob"))
    resolver.resolve(chat.message("carol"))
    assert resolver.resolve(chat.message("dave")) == ()
    assert resolver.resolve(chat.message("dave")) == ()
    assert resolver.resolve(chat.message("alice", mentioned_user_ids=("alice",))) == ()


def test_no_continuing_once_the_partner_is_out_of_memory(chat: Conversation) -> None:
    resolver = PairResolver(memory_per_location=3)
    resolver.resolve(chat.message("alice"))
    resolver.resolve(chat.message("bob"))
    resolver.resolve(chat.message("alice"))
    resolver.resolve(chat.message("carol"))
    resolver.resolve(chat.message("dave"))
    assert resolver.resolve(chat.message("alice")) == ()


def test_explicit_partners_come_before_continuing(chat: Conversation) -> None:
    resolver = PairResolver()
    resolver.resolve(chat.message("alice"))
    resolver.resolve(chat.message("bob"))
    resolver.resolve(chat.message("alice"))
    assert resolver.resolve(chat.message("alice", mentioned_user_ids=("carol",))) == (key("alice", "carol"),)
    # Her conversation is now the one with Carol, who has not written: nothing to continue.
    assert resolver.resolve(chat.message("alice")) == ()


def test_threads_and_channels_are_separate_locations(chat: Conversation) -> None:
    resolver = PairResolver()
    resolver.resolve(chat.message("alice"))
    resolver.resolve(chat.message("bob", thread_id="thread-1"))
    assert resolver.resolve(chat.message("alice")) == ()
    resolver.resolve(chat.message("alice", thread_id="thread-1"))
    assert resolver.resolve(chat.message("bob", thread_id="thread-1")) == (key("alice", "bob"),)
    assert resolver.location_count == 2


def test_channels_and_spaces_are_separate_locations(chat: Conversation) -> None:
    resolver = PairResolver()
    resolver.resolve(chat.message("alice"))
    resolver.resolve(chat.message("bob"))
    assert resolver.resolve(chat.message("alice", channel_id="random")) == ()
    other_space = Conversation(space_id="guild-2", now=chat.now)
    assert resolver.resolve(other_space.message("alice")) == ()


# -- memory --------------------------------------------------------------------------------------------


def test_locations_are_forgotten_least_recently_used_first(chat: Conversation) -> None:
    resolver = PairResolver(max_locations=2)
    resolver.resolve(chat.message("alice", channel_id="a"))
    resolver.resolve(chat.message("bob", channel_id="a"))
    resolver.resolve(chat.message("alice", channel_id="b"))
    resolver.resolve(chat.message("bob", channel_id="b"))
    # "a" was used less recently than "b": a third channel pushes "a" out.
    resolver.resolve(chat.message("carol", channel_id="c"))
    assert resolver.location_count == 2
    assert resolver.resolve(chat.message("alice", channel_id="b")) == (key("alice", "bob"),)
    assert resolver.resolve(chat.message("alice", channel_id="a")) == ()
    assert resolver.location_count == 2


def test_recent_use_keeps_a_location(chat: Conversation) -> None:
    resolver = PairResolver(max_locations=2)
    resolver.resolve(chat.message("alice", channel_id="a"))
    resolver.resolve(chat.message("bob", channel_id="a"))
    resolver.resolve(chat.message("carol", channel_id="b"))
    resolver.resolve(chat.message("dave", channel_id="b"))
    assert resolver.resolve(chat.message("alice", channel_id="a")) == (key("alice", "bob"),)
    # "a" is now the most recently used, so a third channel pushes "b" out.
    resolver.resolve(chat.message("erin", channel_id="c"))
    assert resolver.resolve(chat.message("bob", channel_id="a")) == (key("alice", "bob"),)
    assert resolver.resolve(chat.message("carol", channel_id="b")) == ()


def test_memory_per_location_is_bounded(chat: Conversation) -> None:
    resolver = PairResolver(memory_per_location=3, max_locations=4)
    for number in range(100):
        resolver.resolve(chat.message(f"user{number % 7}", channel_id=f"c{number % 9}"))
    assert resolver.location_count == 4
    assert resolver.remembered_turn_count <= 12


@pytest.mark.parametrize(
    "settings_",
    [
        {"memory_per_location": 1},
        {"max_locations": 0},
        {"turn_gap_s": -1.0},
        {"turn_gap_s": float("nan")},
        {"max_pairs_per_message": 0},
    ],
)
def test_invalid_settings_are_rejected(settings_: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        PairResolver(**settings_)  # type: ignore[arg-type]


def test_naive_timestamps_do_not_fail(chat: Conversation) -> None:
    resolver = PairResolver()
    resolver.resolve(chat.message("alice"))
    naive = ChatMessage(
        platform="discord",
        space_id="guild-1",
        channel_id="general",
        message_id="naive",
        author_id="bob",
        text="hi",
        timestamp=datetime(1, 1, 1),
    )
    assert resolver.resolve(naive) == ()


def test_same_messages_give_same_keys_in_same_order(chat: Conversation) -> None:
    messages = [
        chat.message("alice", mentioned_user_ids=("dave", "carol")),
        chat.message("bob", reply_to_author_id="alice"),
        chat.message("alice"),
        chat.message("carol", channel_id="dm", is_dm=True, recipient_ids=("erin", "alice")),
    ]
    expected = [
        (key("alice", "dave"), key("alice", "carol")),
        (key("alice", "bob"),),
        (key("alice", "bob"),),
        (key("carol", "erin"), key("alice", "carol")),
    ]
    for _ in range(2):
        resolver = PairResolver()
        assert [resolver.resolve(message) for message in messages] == expected


# -- properties ----------------------------------------------------------------------------------------

USERS = ("u1", "u2", "u3", "u4", "bot1", "bot2")
BOT_IDS = frozenset({"bot1", "bot2"})


@st.composite
def chat_messages(draw: st.DrawFn) -> ChatMessage:
    author_id = draw(st.sampled_from(USERS))
    is_dm = draw(st.booleans())
    return ChatMessage(
        platform="discord",
        space_id=draw(st.sampled_from(("s1", "s2"))),
        channel_id=draw(st.sampled_from(("c1", "c2", "c3", "dm1"))),
        thread_id=draw(st.sampled_from((None, None, "t1", "t2"))),
        message_id="m",
        author_id=author_id,
        text="hi",
        timestamp=START + timedelta(seconds=draw(st.integers(min_value=0, max_value=10_000))),
        is_dm=is_dm,
        author_is_bot=draw(st.booleans()) and author_id.startswith("bot"),
        reply_to_author_id=draw(st.one_of(st.none(), st.sampled_from(USERS))),
        mentioned_user_ids=tuple(draw(st.lists(st.sampled_from(USERS), max_size=12))),
        recipient_ids=tuple(draw(st.lists(st.sampled_from(USERS), max_size=8))) if is_dm else (),
    )


@settings(max_examples=200)
@given(
    messages=st.lists(chat_messages(), max_size=60),
    memory_per_location=st.integers(min_value=2, max_value=4),
    max_locations=st.integers(min_value=1, max_value=5),
    max_pairs_per_message=st.integers(min_value=1, max_value=5),
)
def test_resolution_invariants(
    messages: list[ChatMessage], memory_per_location: int, max_locations: int, max_pairs_per_message: int
) -> None:
    resolver = PairResolver(
        memory_per_location=memory_per_location,
        max_locations=max_locations,
        turn_gap_s=600.0,
        max_pairs_per_message=max_pairs_per_message,
    )
    for message in messages:
        pairs = resolver.resolve(message, bot_user_ids=BOT_IDS)
        assert len(pairs) <= max_pairs_per_message
        assert len(set(pairs)) == len(pairs)
        for pair in pairs:
            assert message.author_id in pair
            assert pair.other(message.author_id) != message.author_id
            assert pair.user_a < pair.user_b
            assert not BOT_IDS & {pair.user_a, pair.user_b}
            assert (pair.platform, pair.space_id) == (message.platform, message.space_id)
        if message.author_is_bot or message.author_id in BOT_IDS:
            assert pairs == ()
        assert resolver.location_count <= max_locations
        assert resolver.remembered_turn_count <= max_locations * memory_per_location


def test_a_redelivered_message_gets_the_same_answer_and_is_remembered_once(chat: Conversation) -> None:
    resolver = PairResolver()
    first = chat.message("alice")
    answer = chat.message("bob", mentioned_user_ids=("alice",))
    turns = [first, answer, chat.message("alice")]
    results = [resolver.resolve(message) for message in turns]
    assert results[2] == (key("alice", "bob"),)
    remembered = resolver.remembered_turn_count
    # A platform replays the last two (a RESUME): same answers, and history unchanged.
    assert [resolver.resolve(message) for message in turns[1:]] == results[1:]
    assert resolver.remembered_turn_count == remembered
    # So the conversation goes on as if nothing had been replayed: bob answers alice by turn-taking.
    assert resolver.resolve(chat.message("bob")) == (key("bob", "alice"),)


# -- memory kept across restarts -----------------------------------------------------------------------


def test_a_restored_memory_pairs_the_next_message_as_the_first_resolver_would(chat: Conversation) -> None:
    first, restarted = PairResolver(), PairResolver()
    for author in ("alice", "bob", "alice"):
        first.resolve(chat.message(author))
    location = location_of(chat.message("bob", after_s=0))
    memory = first.memory_of(location)
    assert memory is not None and "hi" not in memory.turns  # ids and times, never text
    restarted.restore(memory)
    nxt = chat.message("bob")
    assert restarted.resolve(nxt) == first.resolve(nxt) == (key("bob", "alice"),)
    assert PairResolver().resolve(chat.message("carol")) == ()
    assert restarted.memory_of(location) == first.memory_of(location)


def test_a_malformed_memory_is_skipped_with_a_warning(
    chat: Conversation, caplog: pytest.LogCaptureFixture
) -> None:
    resolver = PairResolver()
    location = ("discord", "guild-1", "general", None)
    resolver.restore(TurnMemory(location=location, turns='[["m1", "alice"]]', last_at_s=0.0))
    resolver.restore(TurnMemory(location=location, turns="not json", last_at_s=0.0))
    assert resolver.memory_of(location) is None
    assert [r.levelname for r in caplog.records] == ["WARNING", "WARNING"]


def test_a_replay_from_further_back_leaves_a_restored_memory_as_it_was(chat: Conversation) -> None:
    first = PairResolver()
    # More than the 8 turns a location remembers: the first ones are not in the restored memory.
    authors = ("alice", "bob", "alice", "carol", "alice", "bob") * 2
    messages = [chat.message(author) for author in authors]
    for message in messages:
        first.resolve(message)
    location = location_of(messages[0])
    restarted = PairResolver()
    memory = first.memory_of(location)
    assert memory is not None
    restarted.restore(memory)
    for message in messages:  # a platform resending everything after the restart
        restarted.replay(message)
        assert restarted.memory_of(location) == memory
    nxt = chat.message("alice")
    assert restarted.resolve(nxt) == first.resolve(nxt)


def test_a_replay_rebuilds_an_empty_memory_in_order(chat: Conversation) -> None:
    first, rebuilt = PairResolver(), PairResolver()
    messages = [chat.message(author) for author in ("alice", "bob", "alice")]
    for message in messages:
        first.resolve(message)
        rebuilt.replay(message)
    location = location_of(messages[0])
    assert rebuilt.memory_of(location) == first.memory_of(location)
