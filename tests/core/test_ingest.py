"""The ingest queue: micro-batching into the monitor, the shedding policy, Overloaded, failures, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reliability.helpers import ControlledDetector, MessageFactory, make_monitor
from vigil.bots.core.ingest import (
    SHED_SKIP_VALUE,
    AdmissionQueue,
    IngestQueue,
    Overloaded,
    Priority,
    ShedReason,
    ShedResult,
)
from vigil.bots.core.models import PairKey
from vigil.bots.core.monitor import HandleResult
from vigil.bots.core.policy import Decision
from vigil.detector.onnx_detector import OnnxDetector
from vigil.storage.sqlite import SqliteStore

# ---------------------------------------------------------------------------------------------- the policy


@dataclass(frozen=True, slots=True)
class _Item:
    n: int
    priority: Priority
    pinned: bool


_offer = st.tuples(st.just("offer"), st.sampled_from(list(Priority)), st.booleans())
_take = st.tuples(st.just("take"), st.integers(min_value=1, max_value=7), st.just(False))


@settings(max_examples=200, deadline=None)
@given(
    capacity=st.integers(min_value=1, max_value=8), operations=st.lists(st.one_of(_offer, _take), max_size=80)
)
def test_admission_policy_invariants(capacity: int, operations: list[tuple[str, object, bool]]) -> None:
    queue: AdmissionQueue[_Item] = AdmissionQueue(capacity=capacity)
    model: list[_Item] = []  # what should be waiting, in arrival order
    taken: list[_Item] = []
    counter = 0
    for kind, value, pinned in operations:
        if kind == "take":
            assert isinstance(value, int)
            got = queue.take(value)
            assert got == model[: len(got)] and len(got) == min(value, len(model))
            del model[: len(got)]
            taken.extend(got)
        else:
            assert isinstance(value, Priority)
            counter += 1
            item = _Item(counter, value, pinned)
            sheddable = [i for i in model if i.priority is Priority.CHATTER and not i.pinned]
            admission = queue.offer(item, priority=value, pinned=pinned)
            if len(model) < capacity:
                assert admission.accepted and admission.displaced is None
                model.append(item)
            elif value is Priority.CHATTER:
                # Full: chatter is refused, whatever is queued.
                assert not admission.accepted and admission.reason is ShedReason.CHATTER_FULL
            elif sheddable:
                # Full: priority work displaces the newest sheddable chatter, never pinned or priority work.
                assert admission.accepted and admission.displaced == sheddable[-1]
                assert admission.reason is ShedReason.CHATTER_DISPLACED
                model.remove(sheddable[-1])
                model.append(item)
            else:
                assert not admission.accepted and admission.reason is ShedReason.PRIORITY_FULL
        assert len(queue) == len(model) <= capacity
    assert queue.drain() == model
    assert len(queue) == 0


def test_admission_queue_compacts_displaced_slots() -> None:
    queue: AdmissionQueue[int] = AdmissionQueue(capacity=100)
    for n in range(100):
        queue.offer(n, priority=Priority.CHATTER)
    for n in range(100, 300):
        queue.offer(n, priority=Priority.PRIORITY)
    # 100 chatter displaced, then 100 priority refused: only the first 100 priority items wait.
    assert queue.drain() == list(range(100, 200))


# ---------------------------------------------------------------------------------------------- the queue


@pytest.fixture
async def gated(keyword_detector: OnnxDetector) -> ControlledDetector:
    return ControlledDetector(keyword_detector)


@contextlib.asynccontextmanager
async def running(queue: IngestQueue) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(queue.run())
    try:
        yield task
    finally:
        queue.close()
        await asyncio.wait_for(task, timeout=10)


async def test_messages_are_processed_in_micro_batches_in_arrival_order(
    sqlite_store: SqliteStore, gated: ControlledDetector
) -> None:
    monitor = make_monitor(sqlite_store, gated)
    queue = IngestQueue(monitor=monitor, capacity=1000, max_batch=16)
    make = MessageFactory()
    messages = [make.dm(f"a{i % 5}", f"b{i % 5}", "hello there") for i in range(100)]
    futures = [queue.submit(m) for m in messages]
    assert queue.depth == 100
    async with running(queue):
        results = await asyncio.gather(*futures)
    assert [r.message_id for r in results] == [m.message_id for m in messages]
    assert all(r.skipped is None and r.pairs for r in results)
    assert gated.batch_sizes == [16] * 6 + [4]
    for i in range(5):
        key = PairKey.of(platform="test", space_id="guild-1", first=f"a{i}", second=f"b{i}")
        window = await sqlite_store.load_window(key)
        expected = [m.message_id for m in messages if m.author_id == f"a{i}"][-20:]
        assert [w.message_id for w in window] == expected
    stats = queue.stats()
    assert stats.processed == 100 and stats.depth == 0 and stats.failed == 0


async def test_a_full_queue_sheds_chatter_and_keeps_direct_messages(
    sqlite_store: SqliteStore, gated: ControlledDetector, caplog: pytest.LogCaptureFixture
) -> None:
    monitor = make_monitor(sqlite_store, gated)
    queue = IngestQueue(monitor=monitor, capacity=4, max_batch=4)
    make = MessageFactory()
    chatter = [queue.submit(make.channel(f"u{i}", "nice game lol", mentions=(f"v{i}",))) for i in range(5)]
    assert chatter[4].done()
    shed = chatter[4].result()
    assert isinstance(shed, ShedResult) and shed.reason is ShedReason.CHATTER_FULL
    assert shed.skipped == SHED_SKIP_VALUE and shed.pairs == ()
    dm = queue.submit(make.dm("x", "y", "hello"))
    # The newest chatter made room for the direct message.
    assert chatter[3].done() and isinstance(chatter[3].result(), ShedResult)
    assert chatter[3].result().reason is ShedReason.CHATTER_DISPLACED  # type: ignore[attr-defined]
    assert queue.submit_nowait(make.channel("z", "hello")) is False
    assert queue.stats().shed == {"chatter_full": 2, "chatter_displaced": 1}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "shedding" in r.getMessage()]
    assert len(warnings) == 1  # rate-limited: one line for the whole burst
    async with running(queue):
        processed = await asyncio.gather(*chatter[:3], dm)
    assert all(not isinstance(r, ShedResult) for r in processed)


async def test_may_shed_false_raises_overloaded_instead_of_shedding(
    sqlite_store: SqliteStore, gated: ControlledDetector
) -> None:
    monitor = make_monitor(sqlite_store, gated)
    queue = IngestQueue(monitor=monitor, capacity=2)
    make = MessageFactory()
    pinned = [queue.submit(make.dm("a", "b", "hello"), may_shed=False) for _ in range(2)]
    with pytest.raises(Overloaded) as raised:
        await queue.handle(make.dm("a", "b", "hello"), may_shed=False)
    assert raised.value.retry_after >= 1.0
    # Pinned messages are never displaced, even by other priority work: that one is shed instead.
    extra_dm = await queue.handle(make.dm("c", "d", "hello"))
    assert isinstance(extra_dm, ShedResult) and extra_dm.reason is ShedReason.PRIORITY_FULL
    assert queue.stats().refused == 1
    async with running(queue):
        assert all(r.skipped is None for r in await asyncio.gather(*pinned))


async def test_pinned_chatter_does_not_displace_other_chatter(
    sqlite_store: SqliteStore, gated: ControlledDetector
) -> None:
    queue = IngestQueue(monitor=make_monitor(sqlite_store, gated), capacity=1)
    make = MessageFactory()
    first = queue.submit(make.channel("a", "hello", mentions=("b",)))
    with pytest.raises(Overloaded):
        queue.submit(make.channel("c", "hello", mentions=("d",)), may_shed=False)
    assert not first.done()
    async with running(queue):
        await first


async def test_alerted_pairs_become_priority_work(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector
) -> None:
    monitor = make_monitor(sqlite_store, keyword_detector)
    queue = IngestQueue(monitor=monitor, capacity=100, watch_rising_pairs=False)
    make = MessageFactory()
    chatter = make.channel("groomer", "hello there", mentions=("bystander",))
    assert queue.priority_of(chatter) is Priority.CHATTER
    async with running(queue):
        results = [await queue.handle(make.dm("groomer", "kid", "secret groom")) for _ in range(3)]
    assert any(e.decision is Decision.RAISE for r in results for e in r.alerts)
    # The suspect's channel messages, and messages addressed to either member, are now priority work.
    assert queue.priority_of(make.channel("groomer", "hello")) is Priority.PRIORITY
    assert queue.priority_of(make.channel("other", "hello", mentions=("kid",))) is Priority.PRIORITY
    assert queue.priority_of(make.channel("other", "hello", reply_to_author="groomer")) is Priority.PRIORITY
    assert queue.priority_of(make.channel("other", "hello", mentions=("someone",))) is Priority.CHATTER
    queue.unwatch(PairKey.of(platform="test", space_id="guild-1", first="groomer", second="kid"))
    assert queue.priority_of(make.channel("groomer", "hello")) is Priority.CHATTER
    queue.watch(PairKey.of(platform="test", space_id="guild-1", first="groomer", second="kid"))
    assert queue.priority_of(make.channel("groomer", "hello")) is Priority.PRIORITY
    # Another space is another community: not watched there.
    elsewhere = MessageFactory(space="guild-2").channel("groomer", "hello")
    assert queue.priority_of(elsewhere) is Priority.CHATTER


async def test_rising_pairs_are_watched_before_they_alert(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector
) -> None:
    monitor = make_monitor(sqlite_store, keyword_detector, sustain_messages=50)
    queue = IngestQueue(monitor=monitor, capacity=100)
    make = MessageFactory()
    async with running(queue):
        for _ in range(3):
            await queue.handle(make.dm("adult", "kid", "secret groom"))
        assert queue.priority_of(make.channel("adult", "hello")) is Priority.PRIORITY
        # Risk falls back below the band: ordinary again.
        for _ in range(12):
            await queue.handle(make.dm("adult", "kid", "calm calm"))
    assert queue.priority_of(make.channel("adult", "hello")) is Priority.CHATTER


async def test_a_failing_batch_fails_only_its_callers(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector
) -> None:
    detector = ControlledDetector(keyword_detector, fail_calls=[2])
    detector.gate.clear()
    queue = IngestQueue(monitor=make_monitor(sqlite_store, detector), capacity=100, max_batch=4)
    make = MessageFactory()
    futures = [queue.submit(make.dm("a", "b", "hello")) for _ in range(12)]
    async with running(queue):
        await asyncio.sleep(0)
        detector.gate.set()
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
    assert [isinstance(o, RuntimeError) for o in outcomes] == [False] * 4 + [True] * 4 + [False] * 4
    assert queue.stats().failed == 4 and queue.stats().processed == 8
    key = PairKey.of(platform="test", space_id="guild-1", first="a", second="b")
    state = await sqlite_store.load_pair(key)
    assert state is not None and state.message_count == 8


async def test_close_drains_then_sheds_new_work(sqlite_store: SqliteStore, gated: ControlledDetector) -> None:
    queue = IngestQueue(monitor=make_monitor(sqlite_store, gated), capacity=10)
    make = MessageFactory()
    queued = [queue.submit(make.dm("a", "b", "hello")) for _ in range(5)]
    task = asyncio.create_task(queue.run())
    queue.close()
    late = await queue.handle(make.dm("a", "b", "hello"))
    assert isinstance(late, ShedResult) and late.reason is ShedReason.STOPPED
    with pytest.raises(Overloaded):
        await queue.handle(make.dm("a", "b", "hello"), may_shed=False)
    await asyncio.wait_for(task, timeout=10)
    assert all(r.skipped is None for r in await asyncio.gather(*queued))


async def test_cancelling_the_worker_leaves_nobody_waiting(
    sqlite_store: SqliteStore, gated: ControlledDetector
) -> None:
    gated.gate.clear()
    queue = IngestQueue(monitor=make_monitor(sqlite_store, gated), capacity=10, max_batch=2)
    make = MessageFactory()
    futures = [queue.submit(make.dm("a", "b", "hello")) for _ in range(4)]
    pinned = queue.submit(make.dm("a", "b", "hello"), may_shed=False)
    task = asyncio.create_task(queue.run())
    await asyncio.sleep(0.05)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    outcomes: list[HandleResult | BaseException] = await asyncio.gather(*futures, return_exceptions=True)
    # The batch in flight was rolled back and the queued ones never started: all shed as stopped.
    assert all(isinstance(o, ShedResult) and o.reason is ShedReason.STOPPED for o in outcomes)
    with pytest.raises(Overloaded):
        await pinned


async def test_a_cancelled_caller_does_not_disturb_the_worker(
    sqlite_store: SqliteStore, gated: ControlledDetector
) -> None:
    gated.gate.clear()
    queue = IngestQueue(monitor=make_monitor(sqlite_store, gated), capacity=10)
    make = MessageFactory()
    async with running(queue):
        caller = asyncio.create_task(queue.handle(make.dm("a", "b", "hello")))
        await asyncio.sleep(0.01)
        caller.cancel()
        gated.gate.set()
        with contextlib.suppress(asyncio.CancelledError):
            await caller
        assert (await queue.handle(make.dm("a", "b", "hello"))).skipped is None
