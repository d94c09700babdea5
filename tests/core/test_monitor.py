"""The Monitor end to end: real SQLite file, real ONNX runtime (a keyword model, so scores are known)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.core.monitoring import START, Conversation, make_monitor, policy
from tests.support.fakes import FakeClock, RecordingSink
from tests.support.keyword_model import DEFAULT_WEIGHTS, build_keyword_model
from vigil.bots.core.case_service import CaseService
from vigil.bots.core.models import Alert, ChatMessage, DeliveryResult, PairKey, PairState, SpaceSettings
from vigil.bots.core.monitor import Monitor, MonitorConfig, SkipReason
from vigil.bots.core.outbox import OutboxConfig, OutboxWorker
from vigil.bots.core.policy import Decision
from vigil.bots.core.ports import MessageScore
from vigil.detector.onnx_detector import OnnxDetector
from vigil.storage.sqlite import SqliteStore


async def test_grooming_pattern_raises_one_alert_naming_the_adult(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector
) -> None:
    clock = FakeClock(START)
    monitor = make_monitor(sqlite_store, keyword_detector, clock)
    talk = Conversation()
    script = [
        (talk.a, "hello there"),
        (talk.b, "hello"),
        (talk.a, "what is your age"),
        (talk.b, "see you later"),
        (talk.a, "keep it secret ok"),
        (talk.b, "ok"),
        (talk.a, "our secret tonight"),
        (talk.b, "lol"),
        (talk.a, "secret secret secret"),
    ]
    results = [await monitor.handle(talk.say(author, text)) for author, text in script]
    events = [e for r in results for e in r.alerts]
    raised = [e for e in events if e.decision is Decision.RAISE]
    assert len(raised) == 1
    alert = raised[0].alert
    assert alert.suspect_id == "adult" and alert.other_id == "kid"
    assert alert.case_number == 1
    # Evidence is the suspect's own strongest messages, in chronological order, with the signals they carry.
    assert alert.evidence and all(m.author_id == "adult" for m in alert.evidence)
    assert [m.timestamp for m in alert.evidence] == sorted(m.timestamp for m in alert.evidence)
    assert "secrecy" in alert.signals
    # The kid is never named as the suspect at any step.
    assert all(p.suspect_id != "kid" for r in results for p in r.pairs if p.risk > 0.5)
    stored = await sqlite_store.alerts_for_space(platform="test", space_id="guild-1", limit=10)
    assert len(stored) == 1


async def test_ordinary_chat_raises_nothing(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector
) -> None:
    monitor = make_monitor(sqlite_store, keyword_detector, FakeClock(START))
    talk = Conversation()
    for i in range(30):
        author = talk.a if i % 2 else talk.b
        result = await monitor.handle(talk.say(author, "nice game tonight lol"))
        assert result.alerts == ()
    assert await sqlite_store.alerts_for_space(platform="test", space_id="guild-1", limit=10) == []


async def test_rising_risk_updates_the_open_alert_instead_of_raising_again(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector
) -> None:
    monitor = make_monitor(sqlite_store, keyword_detector, FakeClock(START), update_min_delta=0.05)
    talk = Conversation()
    decisions: list[Decision] = []
    # "age age" is just over the threshold (logit 1, p 0.73); "secret" and "groom" push the EMA higher.
    for text in ["age age", "age age", "age age", "secret", "secret groom", "groom groom"]:
        result = await monitor.handle(talk.say(talk.a, text))
        decisions.extend(e.decision for e in result.alerts)
    assert decisions[0] is Decision.RAISE
    assert decisions.count(Decision.RAISE) == 1
    assert Decision.UPDATE in decisions
    alerts = await sqlite_store.alerts_for_space(platform="test", space_id="guild-1", limit=10)
    assert len(alerts) == 1
    assert alerts[0].revision == 1 + decisions.count(Decision.UPDATE)
    assert alerts[0].peak_risk >= alerts[0].risk > 0.7


async def test_redelivered_message_is_ignored(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector
) -> None:
    monitor = make_monitor(sqlite_store, keyword_detector, FakeClock(START))
    talk = Conversation()
    message = talk.say(talk.a, "hello there")
    first = await monitor.handle(message)
    again = await monitor.handle(message)
    assert first.skipped is None and again.skipped is SkipReason.DUPLICATE
    state = await sqlite_store.load_pair(first.pairs[0].key)
    assert state is not None and state.message_count == 1


async def test_edge_cases_are_clean_skips_or_scored(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector
) -> None:
    monitor = make_monitor(sqlite_store, keyword_detector, FakeClock(START))
    await sqlite_store.put_space_settings(
        SpaceSettings(platform="test", space_id="guild-1", ignored_channel_ids=frozenset({"muted"}))
    )
    talk = Conversation()
    assert (await monitor.handle(talk.say(talk.a, "hi", author_is_bot=True))).skipped is SkipReason.BOT
    assert (
        await monitor.handle(talk.say(talk.a, "hi", channel_id="muted"))
    ).skipped is SkipReason.IGNORED_CHANNEL
    for blank in ["", "   \n\t ", "🎉🎉🔥", "\u200b\u200d\u2060"]:
        assert (await monitor.handle(talk.say(talk.a, blank))).skipped is SkipReason.NO_TEXT
    huge = await monitor.handle(talk.say(talk.a, "hello " * 20_000))  # 120 kB
    assert huge.skipped is None and huge.risk is not None
    odd = await monitor.handle(talk.say(talk.a, "se\ud800cret z̷̢͉̈a̶l̵g̴o \u202egnirts"))
    assert odd.skipped is None
    window = await sqlite_store.load_window(huge.pairs[0].key)
    # What is kept for moderators is capped: the least text needed.
    assert all(len(m.text) <= monitor.config.stored_text_chars for m in window)
    assert window[-1].text.startswith("se")  # the lone surrogate was replaced, the rest kept
    for broken in ({"author_id": ""}, {"message_id": "m\ud800"}, {"timestamp": datetime(2026, 3, 1, 18, 0)}):
        assert (await monitor.handle(talk.say(talk.a, "hello", **broken))).skipped is SkipReason.MALFORMED
    monitor.register_bot_user(platform="test", user_id="vigil-bot")
    own = await monitor.handle(talk.say("vigil-bot", "case #1 posted"))
    assert own.skipped is SkipReason.BOT


async def test_shadow_mode_records_but_never_enqueues(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector
) -> None:
    monitor = make_monitor(sqlite_store, keyword_detector, FakeClock(START), shadow_mode=True)
    talk = Conversation()
    for _ in range(4):
        await monitor.handle(talk.say(talk.a, "secret groom"))
    alerts = await sqlite_store.alerts_for_space(platform="test", space_id="guild-1", limit=10)
    assert len(alerts) == 1 and alerts[0].shadow
    assert await sqlite_store.pending_delivery_count() == 0
    # Nor is any text copied into the case: shadow mode keeps no more than watching does.
    assert await sqlite_store.load_evidence(alerts[0].alert_id) == []


async def test_a_raised_alert_keeps_the_window_that_led_to_it(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector
) -> None:
    monitor = make_monitor(sqlite_store, keyword_detector, FakeClock(START))
    talk = Conversation()
    raised, raised_by = [], []
    for text in ("i'm 13", "what school", "secret groom", "secret groom", "secret groom", "secret groom"):
        message = talk.say(talk.a, text)
        result = await monitor.handle(message)
        for event in result.alerts:
            if event.decision is Decision.RAISE:
                raised.append(event.alert)
                raised_by.append(message.message_id)
    assert len(raised) == 1
    preserved = await sqlite_store.load_evidence(raised[0].alert_id)
    # The window as it stood when the case opened: from the first message, up to the one that raised it.
    window = await sqlite_store.load_window(raised[0].key)
    assert preserved and preserved == window[: len(preserved)]
    assert preserved[0].text == "i'm 13" and preserved[-1].message_id == raised_by[0]


async def test_space_threshold_override_and_shadow_override(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector
) -> None:
    monitor = make_monitor(sqlite_store, keyword_detector, FakeClock(START))
    await sqlite_store.put_space_settings(SpaceSettings(platform="test", space_id="guild-1", threshold=0.99))
    talk = Conversation()
    for _ in range(6):
        assert (await monitor.handle(talk.say(talk.a, "secret"))).alerts == ()


async def test_hourly_cap_defers_posting_but_loses_nothing(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector
) -> None:
    clock = FakeClock(START)
    monitor = make_monitor(sqlite_store, keyword_detector, clock, max_alerts_per_hour=1)
    sink = RecordingSink()
    outbox = OutboxWorker(
        store=sqlite_store,
        cases=CaseService(store=sqlite_store),
        sink=sink,
        config=OutboxConfig(),
        clock=clock,
    )
    for pair in range(3):
        talk = Conversation(channel=f"dm-{pair}", a=f"adult-{pair}", b=f"kid-{pair}")
        for _ in range(3):
            await monitor.handle(talk.say(talk.a, "secret groom"))
    assert len(await sqlite_store.alerts_for_space(platform="test", space_id="guild-1", limit=10)) == 3
    assert await outbox.drain_once() == 1
    assert await sqlite_store.pending_delivery_count() == 2
    clock.advance(timedelta(hours=1, seconds=1))
    assert await outbox.drain_once() == 2
    assert sorted(a.case_number for a in sink.posted) == [1, 2, 3]


async def test_state_survives_restart_without_duplicate_alerts(
    tmp_path: Path, keyword_detector: OnnxDetector
) -> None:
    path = tmp_path / "restart.sqlite3"
    talk = Conversation()
    messages = [talk.say(talk.a, "secret groom") for _ in range(6)]
    store = SqliteStore(path)
    await store.open()
    monitor = make_monitor(store, keyword_detector, FakeClock(START))
    for message in messages[:3]:
        await monitor.handle(message)
    await store.close()

    store = SqliteStore(path)
    await store.open()
    try:
        monitor = make_monitor(store, keyword_detector, FakeClock(START))
        # The first three are redelivered after the restart (a platform replay), then the rest arrive.
        results = [await monitor.handle(m) for m in messages]
        assert [r.skipped for r in results[:3]] == [SkipReason.DUPLICATE] * 3
        assert all(e.decision is not Decision.RAISE for r in results for e in r.alerts)
        alerts = await store.alerts_for_space(platform="test", space_id="guild-1", limit=10)
        assert len(alerts) == 1
        state = await store.load_pair(alerts[0].key)
        assert state is not None and state.message_count == 6
    finally:
        await store.close()


async def test_concurrent_messages_keep_per_pair_order(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector
) -> None:
    monitor = make_monitor(sqlite_store, keyword_detector, FakeClock(START))
    talks = [Conversation(channel=f"dm-{i}", a=f"a{i}", b=f"b{i}") for i in range(8)]
    batches = [[t.say(t.a if j % 2 else t.b, "hello there") for j in range(10)] for t in talks]

    async def feed(messages: list[ChatMessage]) -> None:
        for message in messages:
            await monitor.handle(message)

    await asyncio.gather(*(feed(b) for b in batches))
    for talk, batch in zip(talks, batches, strict=True):
        key = PairKey.of(platform="test", space_id="guild-1", first=talk.a, second=talk.b)
        state = await sqlite_store.load_pair(key)
        assert state is not None and state.message_count == 10
        window = await sqlite_store.load_window(key)
        assert [m.message_id for m in window] == [m.message_id for m in batch]


async def test_outbox_retries_failed_posts_then_updates_by_reference(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector
) -> None:
    clock = FakeClock(START)
    monitor = make_monitor(sqlite_store, keyword_detector, clock, update_min_delta=0.01)
    sink = RecordingSink(
        failures=[
            DeliveryResult(ok=False, error="429 rate limited", retry_after=30.0),
            DeliveryResult(ok=False, error="500 internal error"),
        ]
    )
    outbox = OutboxWorker(
        store=sqlite_store,
        cases=CaseService(store=sqlite_store),
        sink=sink,
        config=OutboxConfig(retry_initial_s=5.0, retry_max_s=60.0),
        clock=clock,
    )
    talk = Conversation()
    for text in ["age age", "age age", "age age"]:
        await monitor.handle(talk.say(talk.a, text))
    assert await outbox.drain_once() == 0  # 429
    clock.advance(timedelta(seconds=29))
    assert await outbox.drain_once() == 0  # Retry-After not over yet: nothing attempted
    assert sink.attempts == 1
    clock.advance(timedelta(seconds=2))
    assert await outbox.drain_once() == 0  # 500
    # Risk grows while the post is failing: the update never overtakes the post, and the post, once through,
    # shows the newest revision, so the update queued meanwhile is done with it (one delivery, not two).
    await monitor.handle(talk.say(talk.a, "secret groom"))
    clock.advance(timedelta(seconds=11))
    assert await outbox.drain_once() == 1
    assert len(sink.posted) == 1 and sink.updated == []
    stored = await sqlite_store.get_alert(sink.posted[0].alert_id)
    assert stored is not None and stored.revision == sink.posted[0].revision > 1
    assert stored.delivery_ref == f"ref-{stored.alert_id}"
    assert await sqlite_store.pending_delivery_count() == 0
    # A later rise is an update of the posted alert, by its reference.
    await monitor.handle(talk.say(talk.a, "secret groom secret groom"))
    assert await outbox.drain_once() == 1
    assert len(sink.posted) == 1 and len(sink.updated) == 1
    assert sink.updated[0][1] == f"ref-{sink.posted[0].alert_id}"


async def test_a_sink_that_raises_does_not_stop_delivery(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector
) -> None:
    clock = FakeClock(START)
    monitor = make_monitor(sqlite_store, keyword_detector, clock)
    sink = RecordingSink(raise_times=1)
    outbox = OutboxWorker(
        store=sqlite_store,
        cases=CaseService(store=sqlite_store),
        sink=sink,
        config=OutboxConfig(retry_initial_s=1.0),
        clock=clock,
    )
    talk = Conversation()
    for _ in range(3):
        await monitor.handle(talk.say(talk.a, "secret groom"))
    assert await outbox.drain_once() == 0
    clock.advance(timedelta(seconds=2))
    assert await outbox.drain_once() == 1
    assert len(sink.posted) == 1


async def test_detector_failure_loses_no_state(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector
) -> None:
    monitor = make_monitor(sqlite_store, keyword_detector, FakeClock(START))
    talk = Conversation()
    first = await monitor.handle(talk.say(talk.a, "hello there"))
    await keyword_detector.aclose()
    failed = talk.say(talk.a, "secret")
    with pytest.raises(RuntimeError):
        await monitor.handle(failed)
    state = await sqlite_store.load_pair(first.pairs[0].key)
    assert state is not None and state.message_count == 1
    # The failed message was never claimed, so a redelivery is processed, not dropped as a duplicate.
    assert await sqlite_store.claim_message(
        platform="test", space_id="guild-1", message_id=failed.message_id, seen_at=START
    )


def _turn_taking_channel() -> list[ChatMessage]:
    """Two people taking turns in a busy channel, never replying or mentioning: pairs only by turn-taking."""
    lines = [
        ("kid", "anyone want to play"),
        ("adult", "secret groom"),
        ("kid", "ok"),
        ("adult", "secret groom"),
        ("kid", "why"),
        ("adult", "secret groom"),
        ("kid", "fine"),
        ("adult", "secret groom"),
        ("kid", "ok"),
        ("adult", "secret groom"),
    ]
    return [
        ChatMessage(
            platform="test",
            space_id="guild-1",
            channel_id="general",
            message_id=f"general-{index}",
            author_id=author,
            text=text,
            timestamp=START + timedelta(seconds=index),
        )
        for index, (author, text) in enumerate(lines)
    ]


async def _uninterrupted_run(
    tmp_path: Path, detector: OnnxDetector, messages: Sequence[ChatMessage]
) -> tuple[list[Alert], PairState | None]:
    """The alerts of one run without restarts (one, asserted) and the state of the alerted pair."""
    async with SqliteStore(tmp_path / "reference.sqlite3") as store:
        reference = make_monitor(store, detector, FakeClock(START))
        for message in messages:
            await reference.handle(message)
        alerts = await store.alerts_for_space(platform="test", space_id="guild-1", limit=10)
        assert len(alerts) == 1, "the uninterrupted run alerts once"
        return alerts, await store.load_pair(alerts[0].key)


@pytest.mark.parametrize("killed_after", [1, 2, 3, 4, 5, 6, 7, 8])
async def test_a_replay_after_a_restart_rebuilds_turn_taking_memory(
    tmp_path: Path, keyword_detector: OnnxDetector, killed_after: int
) -> None:
    messages = _turn_taking_channel()
    expected, expected_state = await _uninterrupted_run(tmp_path, keyword_detector, messages)

    path = tmp_path / "restarted.sqlite3"
    store = SqliteStore(path)
    await store.open()
    first = make_monitor(store, keyword_detector, FakeClock(START))
    for message in messages[:killed_after]:
        await first.handle(message)
    await store.close()
    store = SqliteStore(path)
    await store.open()
    try:
        # A new process (empty memory) replays the source from the start, as `vigil scan` resumes.
        second = make_monitor(store, keyword_detector, FakeClock(START))
        results = [await second.handle(message) for message in messages]
        assert [r.skipped for r in results[:killed_after]] == [SkipReason.DUPLICATE] * killed_after
        alerts = await store.alerts_for_space(platform="test", space_id="guild-1", limit=10)
        assert [(a.key, a.suspect_id) for a in alerts] == [(e.key, e.suspect_id) for e in expected]
        state = await store.load_pair(alerts[0].key)
        assert state is not None and expected_state is not None
        assert state.message_count == expected_state.message_count
    finally:
        await store.close()


@pytest.mark.parametrize("killed_after", [1, 2, 3, 4, 5, 6, 7, 8])
async def test_a_restart_without_a_replay_keeps_turn_taking_memory(
    tmp_path: Path, keyword_detector: OnnxDetector, killed_after: int
) -> None:
    """What Slack and live Discord do: acknowledged messages never come again. The memory was stored with
    them, so the new process pairs the next message as the uninterrupted one did."""
    messages = _turn_taking_channel()
    [expected], expected_state = await _uninterrupted_run(tmp_path, keyword_detector, messages)

    path = tmp_path / "restarted.sqlite3"
    store = SqliteStore(path)
    await store.open()
    first = make_monitor(store, keyword_detector, FakeClock(START))
    for message in messages[:killed_after]:
        await first.handle(message)
    await store.close()
    store = SqliteStore(path)
    await store.open()
    try:
        second = make_monitor(store, keyword_detector, FakeClock(START + timedelta(seconds=killed_after)))
        for message in messages[killed_after:]:
            await second.handle(message)
        alerts = await store.alerts_for_space(platform="test", space_id="guild-1", limit=10)
        assert [(a.key, a.suspect_id) for a in alerts] == [(expected.key, expected.suspect_id)]
        state = await store.load_pair(expected.key)
        assert state is not None and expected_state is not None
        assert (state.message_count, state.risk) == (expected_state.message_count, expected_state.risk)
    finally:
        await store.close()


class CountingDetector:
    """The real detector, counting the texts it is asked to score."""

    def __init__(self, detector: OnnxDetector) -> None:
        self._detector = detector
        self.scored = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._detector, name)

    async def score(self, texts: Sequence[str]) -> list[MessageScore]:
        self.scored += len(texts)
        return await self._detector.score(texts)


async def test_a_replay_is_not_scored_again(tmp_path: Path, keyword_detector: OnnxDetector) -> None:
    messages = _turn_taking_channel()
    store = SqliteStore(tmp_path / "replay.sqlite3")
    await store.open()
    try:
        counting = CountingDetector(keyword_detector)
        monitor = Monitor(
            store=store,
            detector=counting,  # type: ignore[arg-type]
            config=MonitorConfig(policy=policy(), window_messages=10, evidence_messages=3),
            clock=FakeClock(START),
        )
        await monitor.handle_batch(messages[:6])
        first = counting.scored
        # The same six again, then the rest, in one batch: only the four new ones reach the model.
        results = await monitor.handle_batch(messages)
        assert counting.scored - first == 4
        assert [r.skipped for r in results[:6]] == [SkipReason.DUPLICATE] * 6
        assert all(r.skipped is not SkipReason.DUPLICATE for r in results[6:])
    finally:
        await store.close()


async def _round_trips_for_a_batch(store: SqliteStore, monitor: Monitor, messages: list[ChatMessage]) -> int:
    """How many calls a batch makes on aiosqlite's thread (each is a hand-off there and a wake-up back)."""
    connection = store._require_connection()
    calls = 0
    original = connection._execute

    async def counted(fn: object, *args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        return await original(fn, *args, **kwargs)

    connection._execute = counted  # type: ignore[method-assign]
    try:
        results = await monitor.handle_batch(messages)
    finally:
        del connection._execute
    assert all(result.skipped is None for result in results)
    return calls


async def test_a_batch_costs_the_same_round_trips_to_sqlite_however_many_messages_it_holds(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector
) -> None:
    """Pairs are read in two calls and written in one per batch, not several calls per message."""
    clock = FakeClock(START)
    monitor = make_monitor(sqlite_store, keyword_detector, clock)
    talks = [Conversation(channel=f"dm-{n}", a=f"adult-{n}", b=f"kid-{n}") for n in range(8)]
    # Every pair exists and the turn-taking memory is restored before the batches that are counted.
    await monitor.handle_batch([talk.say(talk.a, "hello there") for talk in talks])

    def batch(per_pair: int) -> list[ChatMessage]:
        return [
            talk.say(talk.a if turn % 2 else talk.b, "how was school today")
            for turn in range(per_pair)
            for talk in talks
        ]

    small = await _round_trips_for_a_batch(sqlite_store, monitor, batch(1))
    large = await _round_trips_for_a_batch(sqlite_store, monitor, batch(8))
    # The same handful for 8 messages and for 64 (one more when risk points are written at all): settings,
    # seen, BEGIN, claim, pairs, open alerts, savepoint, pairs/window/trim/risks, release, turn memory per
    # location, COMMIT. Five calls a message, as before batching, would be 40 and 320.
    assert large - small <= 1, (small, large)
    assert large <= 13 + len(talks), large
    key = PairKey.of(platform="test", space_id="guild-1", first=talks[0].a, second=talks[0].b)
    window = await sqlite_store.load_window(key)
    assert [m.text for m in window][-8:] == ["how was school today"] * 8


async def test_one_batch_decides_as_message_after_message_does(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector, tmp_path: Path
) -> None:
    """A whole conversation in one batch (its pairs read once and written at its end) raises and updates
    the same alert, with the same evidence and pair state, as the messages handed over one at a time."""
    script = [
        ("adult", "hello there"),
        ("kid", "hello"),
        ("adult", "what is your age"),
        ("adult", "keep it secret ok"),
        ("kid", "ok"),
        ("adult", "our secret tonight"),
        ("adult", "secret groom"),
        ("kid", "lol"),
        ("adult", "secret groom secret groom age"),
    ]

    async def run(store: SqliteStore, *, batched: bool) -> tuple[list[tuple[str, ...]], list[object]]:
        monitor = make_monitor(store, keyword_detector, FakeClock(START), update_min_delta=0.01)
        talk = Conversation()
        messages = [talk.say(author, text) for author, text in script]
        if batched:
            results = await monitor.handle_batch(messages)
        else:
            results = [await monitor.handle(message) for message in messages]
        decisions = [tuple(e.decision.value for e in r.alerts) for r in results]
        key = PairKey.of(platform="test", space_id="guild-1", first="adult", second="kid")
        [alert] = await store.alerts_for_space(platform="test", space_id="guild-1", limit=5)
        state = [
            await store.load_pair(key),
            await store.load_window(key),
            await store.risk_history(key, limit=50),
            dataclasses.replace(alert, alert_id=0, created_at=START, updated_at=START),
            await store.pending_delivery_count(),
        ]
        return decisions, state

    one_by_one = await run(sqlite_store, batched=False)
    async with SqliteStore(tmp_path / "batched.sqlite3") as store:
        batched = await run(store, batched=True)
    assert batched == one_by_one
    assert ("raise",) in batched[0] and ("update",) in batched[0]


async def test_an_open_alert_keeps_naming_its_suspect_until_the_other_clearly_passes_them(
    sqlite_store: SqliteStore, tmp_path: Path
) -> None:
    # "hmm" nudges the child's risk just past the adult's; "age age age" takes it well past.
    model_dir = build_keyword_model(tmp_path / "model", weights={**DEFAULT_WEIGHTS, "hmm": 0.5})
    detector = await OnnxDetector.load(model_dir, intra_op_threads=1)
    try:
        monitor = make_monitor(sqlite_store, detector, FakeClock(START))
        talk = Conversation()
        script = [
            (talk.a, "age age"),
            (talk.b, "lol"),
            (talk.a, "age age"),
            (talk.b, "lol"),  # the alert is raised, naming the adult
            (talk.b, "age age age"),
            (talk.b, "age age age"),
            (talk.b, "age age"),
            (talk.b, "age age hmm"),  # the child's risk passes the adult's by 0.04: updated, still the adult
            (talk.b, "age age hmm"),  # by 0.06: the same
            (talk.b, "age age age"),  # by 0.14: the alert names the child
        ]
        events = []
        for author, text in script:
            result = await monitor.handle(talk.say(author, text))
            top = max(result.pairs, key=lambda pair: pair.risk)
            events.extend((top.suspect_id, event.decision, event.alert.suspect_id) for event in result.alerts)
    finally:
        await detector.aclose()
    assert events == [
        ("adult", Decision.RAISE, "adult"),
        ("kid", Decision.UPDATE, "adult"),
        ("kid", Decision.UPDATE, "adult"),
        ("kid", Decision.UPDATE, "kid"),
    ]
    stored = await sqlite_store.alerts_for_space(platform="test", space_id="guild-1", limit=10)
    assert [(alert.suspect_id, alert.other_id) for alert in stored] == [("kid", "adult")]
