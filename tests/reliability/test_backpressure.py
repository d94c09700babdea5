"""A flood at ten times the queue's capacity: chatter is shed by the documented policy, with counters and a
rate-limited warning; direct messages and messages touching an alerted pair are all processed; the queue
recovers when the flood ends."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest

from tests.reliability.helpers import MessageFactory, make_monitor
from vigil.bots.core.ingest import IngestQueue, ShedReason, ShedResult
from vigil.bots.core.models import ChatMessage, PairKey
from vigil.bots.core.monitor import HandleResult
from vigil.bots.metrics import MetricsSnapshot, VigilMetrics
from vigil.detector.onnx_detector import OnnxDetector
from vigil.storage.sqlite import SqliteStore

CAPACITY = 50


async def test_flood_sheds_chatter_keeps_priority_work_and_recovers(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    metrics = VigilMetrics()
    monitor = make_monitor(sqlite_store, keyword_detector)
    queue = IngestQueue(monitor=monitor, capacity=CAPACITY, max_batch=16, observer=metrics)
    watched = PairKey.of(platform="test", space_id="guild-1", first="suspect", second="kid")
    queue.watch(watched)
    make = MessageFactory()
    rng = random.Random(5)
    worker = asyncio.create_task(queue.run())
    try:
        # The flood: 10 x capacity messages in waves of 25, far faster than the worker takes them. Priority
        # work is a few percent of it (fewer than the capacity in all), as in a real raid on a channel.
        flood: list[tuple[str, ChatMessage]] = []
        for i in range(10 * CAPACITY):
            roll = rng.random()
            if roll < 0.04:
                flood.append(("dm", make.dm(f"d{i}", f"e{i}", "hello there")))
            elif roll < 0.07:
                flood.append(("watched", make.channel("suspect", "hello there", mentions=(f"p{i}",))))
            else:
                flood.append(("chatter", make.channel(f"c{i}", "nice game lol", mentions=(f"q{i}",))))
        futures: list[asyncio.Future[HandleResult]] = []
        for start in range(0, len(flood), 25):
            futures.extend(queue.submit(message) for _, message in flood[start : start + 25])
            assert queue.depth <= CAPACITY
            await asyncio.sleep(0)
        results: list[HandleResult] = await asyncio.gather(*futures)

        by_kind: dict[str, list[HandleResult]] = {}
        for (kind, _), result in zip(flood, results, strict=True):
            by_kind.setdefault(kind, []).append(result)
        # Priority work survives the flood in full; only chatter is shed.
        assert by_kind["dm"] and all(not isinstance(r, ShedResult) for r in by_kind["dm"])
        assert by_kind["watched"] and all(not isinstance(r, ShedResult) for r in by_kind["watched"])
        shed = [r for r in by_kind["chatter"] if isinstance(r, ShedResult)]
        assert len(shed) >= len(flood) // 2
        stats = queue.stats()
        assert sum(stats.shed.values()) == len(shed)
        assert set(stats.shed) <= {ShedReason.CHATTER_FULL.value, ShedReason.CHATTER_DISPLACED.value}
        assert stats.shed.get(ShedReason.CHATTER_DISPLACED.value, 0) >= 1  # DMs made room for themselves
        assert stats.processed + len(shed) == len(flood)

        # The counters say the same, per reason.
        snapshot = MetricsSnapshot.parse(metrics.render().decode())
        for reason, count in stats.shed.items():
            assert snapshot.value("vigil_shed_total", reason=reason) == count
        assert snapshot.value("vigil_messages_total", outcome="shed") == len(shed)
        assert snapshot.value("vigil_messages_total", outcome="scored") == stats.processed
        assert snapshot.value("vigil_queue_depth") == 0

        # One rate-limited warning for the whole flood, and a line when it is over; never message text.
        shedding = [r for r in caplog.records if "shedding messages" in r.getMessage()]
        assert len(shedding) == 1 and shedding[0].levelno == logging.WARNING
        assert any("load shedding over" in r.getMessage() for r in caplog.records)

        # Recovery: after the flood, ordinary traffic is accepted and processed again, nothing shed.
        after = [make.channel(f"r{i}", "hello there", mentions=(f"s{i}",)) for i in range(CAPACITY)]
        recovered = await asyncio.gather(*(queue.handle(m) for m in after))
        assert all(not isinstance(r, ShedResult) for r in recovered)
        assert sum(queue.stats().shed.values()) == len(shed)
    finally:
        queue.close()
        await asyncio.wait_for(worker, timeout=10)


async def test_a_sustained_overload_sheds_continuously_and_logs_periodically(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector, caplog: pytest.LogCaptureFixture
) -> None:
    """Producers offering more than the worker can take for a while, with awaits in between (a real flood)."""
    queue = IngestQueue(
        monitor=make_monitor(sqlite_store, keyword_detector), capacity=20, max_batch=8, log_interval_s=0.05
    )
    make = MessageFactory()
    worker = asyncio.create_task(queue.run())
    try:
        offered = accepted = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 0.5
        while loop.time() < deadline:
            for i in range(50):
                offered += 1
                accepted += queue.submit_nowait(make.channel(f"a{i}", "nice game", mentions=(f"b{i}",)))
            await asyncio.sleep(0.005)
        assert accepted < offered
        queue.close()  # the worker finishes what was accepted, then returns
        await asyncio.wait_for(worker, timeout=30)
        stats = queue.stats()
        assert stats.processed == accepted and sum(stats.shed.values()) == offered - accepted
        warnings = [r for r in caplog.records if "shedding messages" in r.getMessage()]
        assert 2 <= len(warnings) <= 0.5 / 0.05 + 2
    finally:
        queue.close()
        await asyncio.wait_for(worker, timeout=10)
