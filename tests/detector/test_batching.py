"""The micro-batcher with plain coroutine run_batch functions: ordering, coalescing, errors, cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest

from vigil.detector.batching import Batcher, BatcherClosedError, BatchResultMismatchError


class BadItemError(ValueError):
    pass


@dataclass(slots=True, kw_only=True)
class RecordingDoubler:
    """run_batch that doubles ints, records each batch, fails on negatives and can hold on a gate."""

    batches: list[list[int]] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    hold_on: int | None = None  # a batch containing this item waits for the gate
    started: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        await asyncio.sleep(0)
        if self.hold_on is not None and self.hold_on in items:
            self.started.set()
            await self.gate.wait()
        if any(item < 0 for item in items):
            raise BadItemError(f"negative item in {list(items)}")
        return [item * 2 for item in items]


async def settle() -> None:
    """Let every runnable task take its next step (a few rounds, since steps schedule steps)."""
    for _ in range(10):
        await asyncio.sleep(0)


@pytest.fixture
async def doubler() -> RecordingDoubler:
    return RecordingDoubler()


@pytest.fixture
async def batcher(doubler: RecordingDoubler) -> AsyncIterator[Batcher[int, int]]:
    async with Batcher(doubler, max_batch=4, max_wait_s=0.005, queue_size=64) as started:
        yield started


async def test_results_come_back_in_each_callers_order(batcher: Batcher[int, int]) -> None:
    calls = [
        list(range(start, start + size))
        for start, size in zip(range(0, 500, 10), [1, 3, 7, 2, 9] * 10, strict=True)
    ]
    results = await asyncio.gather(*(batcher.submit(items) for items in calls))
    assert results == [[item * 2 for item in items] for items in calls]
    assert await batcher.submit([]) == []


async def test_concurrent_calls_are_coalesced_up_to_max_batch() -> None:
    doubler = RecordingDoubler()
    async with Batcher(doubler, max_batch=16, max_wait_s=0.05, queue_size=1024) as batcher:
        results = await asyncio.gather(*(batcher.submit([i]) for i in range(50)))
    assert results == [[i * 2] for i in range(50)]
    sizes = [len(batch) for batch in doubler.batches]
    assert sum(sizes) == 50
    assert max(sizes) == 16
    assert len(sizes) <= 5  # 50 single-item calls, ceil(50 / 16) = 4 full-ish batches, not 50


async def test_a_call_larger_than_max_batch_is_split(
    batcher: Batcher[int, int], doubler: RecordingDoubler
) -> None:
    items = list(range(30))
    assert await batcher.submit(items) == [item * 2 for item in items]
    assert all(len(batch) <= 4 for batch in doubler.batches)
    assert [item for batch in doubler.batches for item in batch] == items


async def test_a_failing_batch_fails_only_its_own_callers(
    batcher: Batcher[int, int], doubler: RecordingDoubler
) -> None:
    doubler.hold_on = 1000
    blocker = asyncio.create_task(batcher.submit([1000]))
    await doubler.started.wait()
    # While the worker is held, queue two batches of four: the first holds the bad item.
    same_batch = [asyncio.create_task(batcher.submit(items)) for items in ([1, 2], [-3], [4])]
    other_batch = [asyncio.create_task(batcher.submit(items)) for items in ([5, 6], [7, 8])]
    await settle()
    doubler.gate.set()

    assert await blocker == [2000]
    for task in same_batch:
        with pytest.raises(BadItemError):
            await task
    assert [await task for task in other_batch] == [[10, 12], [14, 16]]
    assert doubler.batches[1] == [1, 2, -3, 4]
    # The worker lives on.
    assert await batcher.submit([9]) == [18]


async def test_result_count_mismatch_is_an_error_for_that_batch() -> None:
    async def drop_one(items: Sequence[int]) -> list[int]:
        return list(items[:-1]) if len(items) > 1 else list(items)

    async with Batcher(drop_one, max_batch=8, max_wait_s=0.0, queue_size=16) as batcher:
        with pytest.raises(BatchResultMismatchError, match="returned 2 results for 3 items"):
            await batcher.submit([1, 2, 3])
        assert await batcher.submit([7]) == [7]


async def test_a_cancelled_waiting_caller_is_skipped_and_others_proceed(
    batcher: Batcher[int, int], doubler: RecordingDoubler
) -> None:
    doubler.hold_on = 1000
    blocker = asyncio.create_task(batcher.submit([1000]))
    await doubler.started.wait()
    cancelled = asyncio.create_task(batcher.submit([1, 2, 3]))
    survivor = asyncio.create_task(batcher.submit([4, 5]))
    await settle()
    cancelled.cancel()
    await settle()
    doubler.gate.set()

    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert await survivor == [8, 10]
    assert await blocker == [2000]
    assert all(item not in batch for batch in doubler.batches for item in (1, 2, 3))
    assert await batcher.submit([6]) == [12]


async def test_cancelling_a_caller_whose_batch_is_running_leaves_its_batchmates_alone(
    batcher: Batcher[int, int], doubler: RecordingDoubler
) -> None:
    doubler.hold_on = 1000
    cancelled = asyncio.create_task(batcher.submit([1000]))
    batchmate = asyncio.create_task(batcher.submit([1]))
    await doubler.started.wait()
    cancelled.cancel()
    await settle()
    doubler.gate.set()

    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert await batchmate == [2]
    assert doubler.batches[0] == [1000, 1]
    assert await batcher.submit([3]) == [6]


async def test_the_queue_is_bounded_and_submit_waits_for_room() -> None:
    doubler = RecordingDoubler(hold_on=1000)
    async with Batcher(doubler, max_batch=2, max_wait_s=0.0, queue_size=4) as batcher:
        blocker = asyncio.create_task(batcher.submit([1000]))
        await doubler.started.wait()
        big = asyncio.create_task(batcher.submit(list(range(10))))
        small = asyncio.create_task(batcher.submit([42]))
        await settle()

        assert batcher.queued == 4
        assert not big.done()
        assert not small.done()
        doubler.gate.set()
        assert await big == [item * 2 for item in range(10)]
        assert await small == [84]
        assert await blocker == [2000]


async def test_a_caller_cancelled_while_waiting_for_room_is_skipped() -> None:
    doubler = RecordingDoubler(hold_on=1000)
    async with Batcher(doubler, max_batch=2, max_wait_s=0.0, queue_size=2) as batcher:
        blocker = asyncio.create_task(batcher.submit([1000]))
        await doubler.started.wait()
        stuck = asyncio.create_task(batcher.submit([1, 2, 3, 4]))
        await settle()
        stuck.cancel()
        await settle()
        doubler.gate.set()
        assert await blocker == [2000]
        with pytest.raises(asyncio.CancelledError):
            await stuck
        assert await batcher.submit([5]) == [10]
    assert all(item not in batch for batch in doubler.batches for item in (1, 2, 3, 4))


async def test_submit_after_aclose_fails_clearly(doubler: RecordingDoubler) -> None:
    batcher = Batcher(doubler, max_batch=4, max_wait_s=0.0, queue_size=8, name="test-batcher")
    batcher.start()
    assert await batcher.submit([1]) == [2]
    await batcher.aclose()
    await batcher.aclose()  # idempotent
    assert not batcher.running
    with pytest.raises(BatcherClosedError, match=r"test-batcher is closed: submit\(\) after aclose\(\)"):
        await batcher.submit([1])
    with pytest.raises(BatcherClosedError):
        batcher.start()


async def test_submit_before_start_fails_clearly(doubler: RecordingDoubler) -> None:
    batcher = Batcher(doubler, max_batch=4, max_wait_s=0.0, queue_size=8)
    with pytest.raises(RuntimeError, match="not started"):
        await batcher.submit([1])


async def test_aclose_finishes_queued_work() -> None:
    doubler = RecordingDoubler(hold_on=1000)
    batcher = Batcher(doubler, max_batch=2, max_wait_s=0.0, queue_size=16)
    batcher.start()
    pending = [asyncio.create_task(batcher.submit(items)) for items in ([1000], [1, 2, 3], [4])]
    await doubler.started.wait()
    closing = asyncio.create_task(batcher.aclose())
    await settle()
    with pytest.raises(BatcherClosedError):
        await batcher.submit([5])
    doubler.gate.set()
    await closing
    assert [await task for task in pending] == [[2000], [2, 4, 6], [8]]


async def test_a_run_batch_that_raises_cancelled_error_does_not_stop_the_worker() -> None:
    async def cancels_on_zero(items: Sequence[int]) -> list[int]:
        if 0 in items:
            raise asyncio.CancelledError
        return list(items)

    async with Batcher(cancels_on_zero, max_batch=4, max_wait_s=0.0, queue_size=8) as batcher:
        with pytest.raises(RuntimeError, match="run_batch was cancelled"):
            await batcher.submit([0])
        assert batcher.running
        assert await batcher.submit([3]) == [3]


async def test_invalid_settings_are_refused(doubler: RecordingDoubler) -> None:
    with pytest.raises(ValueError, match="max_batch"):
        Batcher(doubler, max_batch=0, max_wait_s=0.0, queue_size=8)
    with pytest.raises(ValueError, match="max_wait_s"):
        Batcher(doubler, max_batch=1, max_wait_s=-1.0, queue_size=8)
    with pytest.raises(ValueError, match="queue_size"):
        Batcher(doubler, max_batch=1, max_wait_s=0.0, queue_size=0)


class WorkerKillerError(BaseException):
    """Not an Exception: stands for a bug or interrupt that per-batch error handling cannot absorb."""


async def test_a_dying_worker_fails_its_callers_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    async def dies_on_zero(items: Sequence[int]) -> list[int]:
        if 0 in items:
            raise WorkerKillerError
        return list(items)

    batcher = Batcher(dies_on_zero, max_batch=4, max_wait_s=0.0, queue_size=8, name="fragile")
    batcher.start()
    with caplog.at_level("ERROR", logger="detector.batching"):
        with pytest.raises(BatcherClosedError, match="stopped before these items were done") as raised:
            await batcher.submit([0])
        assert isinstance(raised.value.__cause__, WorkerKillerError)
        await settle()
    assert not batcher.running
    assert "fragile: worker stopped unexpectedly" in caplog.text
    with pytest.raises(BatcherClosedError, match="fragile has stopped"):
        await batcher.submit([1])
    await batcher.aclose()
