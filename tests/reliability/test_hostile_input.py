"""Hostile input through the real monitor and queue: huge messages and mention bombs cost bounded time."""

from __future__ import annotations

import asyncio
import dataclasses
import time

from tests.reliability.helpers import MessageFactory, make_monitor
from vigil.bots.core.ingest import IngestQueue
from vigil.bots.core.models import PairKey
from vigil.bots.core.pairing import MENTION_SCAN_LIMIT
from vigil.detector.onnx_detector import OnnxDetector
from vigil.storage.sqlite import SqliteStore

# Generous for a loaded 2-core machine; each case below takes well under a tenth of it when idle.
BOUND_S = 3.0
MEGABYTE = 1_000_000
KEY = PairKey.of(platform="test", space_id="guild-1", first="a", second="b")


async def test_one_megabyte_messages_cost_bounded_time_and_storage(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector
) -> None:
    monitor = make_monitor(sqlite_store, keyword_detector)
    make = MessageFactory()
    payloads = [
        "secret " * (MEGABYTE // 7),  # words the model knows
        "x" * MEGABYTE,  # one giant token
        "\u200b" * (MEGABYTE - 6) + "secret",  # invisible padding before the text
        "z̷̢͉̈" * (MEGABYTE // 5),  # zalgo marks
        "🎉" * (MEGABYTE // 4),  # nothing meaningful
    ]
    for payload in payloads:
        started = time.perf_counter()
        result = await monitor.handle(make.dm("a", "b", payload))
        assert time.perf_counter() - started < BOUND_S
        assert result.skipped is None or result.skipped.value == "no_text"
    window = await sqlite_store.load_window(KEY)
    # Scored text is capped before normalising, so invisible padding longer than the scan window (128,000
    # characters) hides what follows it; that message is then skipped as no_text (see docs/operations.md).
    assert 3 <= len(window) <= 4
    assert all(len(m.text) <= monitor.config.stored_text_chars for m in window)


async def test_a_batch_of_huge_messages_through_the_queue_is_bounded(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector
) -> None:
    queue = IngestQueue(monitor=make_monitor(sqlite_store, keyword_detector), capacity=100, max_batch=32)
    make = MessageFactory()
    messages = [make.channel(f"u{i}", "hello there " * (MEGABYTE // 12), mentions=("v",)) for i in range(32)]
    worker = asyncio.create_task(queue.run())
    try:
        started = time.perf_counter()
        results = await asyncio.gather(*(queue.handle(m) for m in messages))
        assert time.perf_counter() - started < 2 * BOUND_S
        assert all(r.skipped is None for r in results)
    finally:
        queue.close()
        await worker


async def test_ten_thousand_mentions_or_recipients_cost_bounded_time(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector
) -> None:
    monitor = make_monitor(sqlite_store, keyword_detector)
    make = MessageFactory()
    crowd = tuple(f"user-{i}" for i in range(10_000))
    bomb = make.channel("spammer", "hello there", mentions=crowd)
    started = time.perf_counter()
    result = await monitor.handle(bomb)
    assert time.perf_counter() - started < BOUND_S
    assert 0 < len(result.pairs) <= 5  # the resolver's per-message cap, not 10,000 pairs
    dm = dataclasses.replace(
        make.dm("spammer", "x", "hello there"), recipient_ids=crowd, message_id="dm-bomb"
    )
    started = time.perf_counter()
    result = await monitor.handle(dm)
    assert time.perf_counter() - started < BOUND_S
    assert 0 < len(result.pairs) <= MENTION_SCAN_LIMIT
    # The queue's priority check looks at the same capped prefix, so it is cheap too.
    queue = IngestQueue(monitor=monitor, capacity=10)
    queue.watch(KEY)
    started = time.perf_counter()
    for _ in range(1000):
        queue.priority_of(bomb)
    assert time.perf_counter() - started < BOUND_S
