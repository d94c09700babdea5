"""A generic async micro-batcher: many small concurrent calls in, few large batches out.

One worker task takes items from a bounded queue and hands up to ``max_batch`` of them at a time to
``run_batch``. A caller's items may be spread over several batches (a call larger than ``max_batch`` always
is); the caller gets its results back in its own order once all of them are done.

``run_batch`` is a coroutine function. Blocking work (``session.run``) belongs in ``asyncio.to_thread`` inside
it, so the event loop stays free while a batch runs and the next one fills up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class BatcherClosedError(RuntimeError):
    """The batcher is closed (or its worker stopped), so it cannot take or finish work."""


class BatchResultMismatchError(RuntimeError):
    """``run_batch`` returned a different number of results than it was given items."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Request(Generic[T, R]):
    """One ``submit`` call: its items, the results gathered so far and the future its caller awaits."""

    items: tuple[T, ...]
    future: asyncio.Future[list[R]]
    results: dict[int, R] = field(default_factory=dict)

    def settle(self, *, index: int, result: R) -> None:
        if self.future.done():
            return
        self.results[index] = result
        if len(self.results) == len(self.items):
            self.future.set_result([self.results[i] for i in range(len(self.items))])

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Entry(Generic[T, R]):
    """One queued item: which request it belongs to and where its result goes."""

    request: _Request[T, R]
    index: int

    @property
    def item(self) -> T:
        return self.request.items[self.index]

    @property
    def wanted(self) -> bool:
        # A cancelled caller, or one whose other items already failed, needs no more work done.
        return not self.request.future.done()


class Batcher(Generic[T, R]):
    """Coalesces concurrent ``submit`` calls into batches for one ``run_batch`` coroutine function.

    - ``max_batch``: the most items handed to ``run_batch`` at once.
    - ``max_wait_s``: how long the worker waits, after the first item of a batch, for more to arrive.
    - ``queue_size``: the most items waiting; ``submit`` awaits room beyond it (backpressure).

    If ``run_batch`` raises, every caller with an item in that batch gets the exception; other batches and
    the worker carry on. Use ``async with Batcher(...)`` or ``start()`` / ``aclose()``.
    """

    def __init__(
        self,
        run_batch: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        *,
        max_batch: int,
        max_wait_s: float,
        queue_size: int,
        name: str = "batcher",
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch!r}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be >= 0, got {max_wait_s!r}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size!r}")
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._name = name
        self._queue: asyncio.Queue[_Entry[T, R]] = asyncio.Queue(maxsize=queue_size)
        self._worker: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def queued(self) -> int:
        """Items waiting in the queue (not counting a batch being run)."""
        return self._queue.qsize()

    @property
    def running(self) -> bool:
        return self._worker is not None and not self._worker.done()

    def start(self) -> None:
        """Start the worker task on the running event loop."""
        if self._closed:
            raise BatcherClosedError(f"{self._name} is closed; it cannot be started again")
        if self._worker is not None:
            raise RuntimeError(f"{self._name} is already started")
        self._worker = asyncio.create_task(self._work(), name=f"{self._name}-worker")
        self._worker.add_done_callback(self._on_worker_done)

    async def __aenter__(self) -> Batcher[T, R]:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def submit(self, items: Sequence[T]) -> list[R]:
        """Run ``items`` through ``run_batch`` (coalesced with other callers'); results in the same order."""
        self._check_open()
        if not items:
            return []
        loop = asyncio.get_running_loop()
        request: _Request[T, R] = _Request(items=tuple(items), future=loop.create_future())
        try:
            for index in range(len(request.items)):
                await self._queue.put(_Entry(request=request, index=index))
                # The worker may have stopped while we waited for room: nobody would ever serve this.
                self._check_open(accepting=False)
            return await request.future
        except BaseException:
            # Cancelled or refused: mark the request done so the worker skips any of its queued items.
            request.future.cancel()
            raise

    async def aclose(self) -> None:
        """Stop taking new calls, finish the ones already queued, then stop the worker. Idempotent."""
        self._closed = True
        worker = self._worker
        if worker is None or worker.done():
            return
        try:
            await self._queue.join()
        finally:
            worker.cancel()
            # wait() rather than await: the worker's CancelledError is expected, our own caller's is not.
            await asyncio.wait({worker})

    def _check_open(self, *, accepting: bool = True) -> None:
        if accepting and self._closed:
            raise BatcherClosedError(f"{self._name} is closed: submit() after aclose()")
        if self._worker is None:
            raise RuntimeError(f"{self._name} is not started: call start() or use 'async with'")
        if self._worker.done():
            raise BatcherClosedError(f"{self._name} has stopped: its worker is no longer running")

    async def _work(self) -> None:
        batch: list[_Entry[T, R]] = []
        try:
            while True:
                await self._fill_batch(batch)
                await self._run_one(batch)
                for _ in batch:
                    self._queue.task_done()
                batch.clear()
        except BaseException as error:
            # Whatever the reason we stop, no caller may be left waiting on items we hold or left queued.
            stopped = BatcherClosedError(f"{self._name} stopped before these items were done")
            if not isinstance(error, asyncio.CancelledError):
                stopped.__cause__ = error
            for entry in batch:
                entry.request.fail(stopped)
                self._queue.task_done()
            self._fail_queued(stopped)
            raise

    async def _fill_batch(self, batch: list[_Entry[T, R]]) -> None:
        """Wait for one item, then gather more until ``max_batch`` or ``max_wait_s`` after the first."""
        batch.append(await self._queue.get())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._max_wait_s
        while len(batch) < self._max_batch:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining_s = deadline - loop.time()
            if remaining_s <= 0:
                return
            try:
                async with asyncio.timeout(remaining_s):
                    batch.append(await self._queue.get())
            except TimeoutError:
                return

    async def _run_one(self, batch: list[_Entry[T, R]]) -> None:
        live = [entry for entry in batch if entry.wanted]
        if not live:
            return
        items = [entry.item for entry in live]
        try:
            results = await self._run_batch(items)
            if len(results) != len(items):
                raise BatchResultMismatchError(
                    f"{self._name}: run_batch returned {len(results)} results for {len(items)} items"
                )
        except asyncio.CancelledError as cancelled:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # we are being shut down; _work fails this batch's callers
            # run_batch itself raised CancelledError: its failure, not a reason for the worker to stop.
            self._fan_out(live, RuntimeError(f"{self._name}: run_batch was cancelled"), cause=cancelled)
        except Exception as error:
            self._fan_out(live, error, cause=None)
        else:
            for entry, result in zip(live, results, strict=True):
                entry.request.settle(index=entry.index, result=result)

    def _fan_out(self, live: list[_Entry[T, R]], error: Exception, *, cause: BaseException | None) -> None:
        if cause is not None:
            error.__cause__ = cause
        logger.warning(
            "%s: a batch of %d items failed; its callers get the error",
            self._name,
            len(live),
            exc_info=error,
        )
        for entry in live:
            entry.request.fail(error)

    def _fail_queued(self, error: BatcherClosedError) -> None:
        while True:
            try:
                entry = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            entry.request.fail(error)
            self._queue.task_done()

    def _on_worker_done(self, worker: asyncio.Task[None]) -> None:
        if worker.cancelled():
            return
        error = worker.exception()
        if error is not None:
            # Never die silently: callers already got BatcherClosedError; the cause goes to the log.
            logger.error("%s: worker stopped unexpectedly", self._name, exc_info=error)
