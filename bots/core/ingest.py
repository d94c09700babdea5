"""Backpressure in front of the ``Monitor``: a bounded queue, micro-batches, and a documented shedding policy.

Adapters hand every translated message to an ``IngestQueue`` instead of calling the monitor directly. One
worker (``run()``) drains the queue in micro-batches of up to ``max_batch`` messages into
``Monitor.handle_batch``, so the detector scores many texts per ONNX call and SQLite commits many messages
per transaction. When the queue is full, work is shed by priority instead of growing without bound:

* **Priority work** is every direct message, and every message that touches a *watched* member: the
  author, the replied-to author or a mentioned user is a member of a pair with an open alert (or, by default,
  of a pair whose risk is already inside the policy's hysteresis band, i.e. on its way to an alert).
* **Chatter** is everything else: channel messages between people Vigil has no concern about.

When a message arrives at a full queue:

1. chatter is refused (reason ``chatter_full``): the newest chatter goes first;
2. priority work displaces the newest queued chatter (that chatter is shed, reason ``chatter_displaced``);
3. only when the queue holds nothing but priority work is priority work itself refused
   (reason ``priority_full``); that is logged like every other shed.

Nothing is dropped silently: a shed message's caller gets a ``ShedResult`` (``skipped == "shed"``), every shed
is counted per reason (``stats().shed``, and the ``shed_total{reason}`` metric through the observer) and a
WARNING is logged at most once per ``log_interval_s`` while shedding lasts. A caller that must not be shed
(the HTTP ingest API: its client can retry) passes ``may_shed=False``: such a message is never displaced once
queued, and when there is no room for it ``Overloaded`` is raised carrying a ``retry_after`` in seconds.

If ``handle_batch`` raises (a detector or store failure), only the callers of that batch get the exception;
the worker logs it, counts it and goes on with the next batch.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import Counter, OrderedDict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, NoReturn, Protocol, TypeVar

from vigil.bots.core.models import AlertStatus, ChatMessage, PairKey
from vigil.bots.core.monitor import HandleResult, Monitor, SkipReason
from vigil.bots.core.pairing import MENTION_SCAN_LIMIT
from vigil.bots.core.ports import StoreError

__all__ = [
    "SHED_SKIP_VALUE",
    "Admission",
    "AdmissionQueue",
    "IngestObserver",
    "IngestQueue",
    "IngestStats",
    "Overloaded",
    "Priority",
    "ShedReason",
    "ShedResult",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# ``HandleResult.skipped`` of a shed message compares equal to this string.
SHED_SKIP_VALUE = SkipReason.SHED.value


class Priority(enum.IntEnum):
    CHATTER = 0
    PRIORITY = 1


class ShedReason(enum.StrEnum):
    """Why a message was not processed (the ``reason`` label of ``shed_total``)."""

    # Chatter arriving at a full queue.
    CHATTER_FULL = "chatter_full"
    # Queued chatter dropped to make room for priority work.
    CHATTER_DISPLACED = "chatter_displaced"
    # Priority work arriving at a queue that holds nothing else: the last resort.
    PRIORITY_FULL = "priority_full"
    # Still queued when the queue was stopped.
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True, kw_only=True)
class ShedResult(HandleResult):
    """The result handed to the caller of a message that was shed: never scored, never stored."""

    reason: ShedReason


class Overloaded(Exception):
    """No room for a message that may not be shed. Retry after ``retry_after`` seconds (HTTP: 429)."""

    def __init__(self, *, retry_after: float, reason: str) -> None:
        self.retry_after = retry_after
        self.reason = reason
        super().__init__(f"Vigil is overloaded ({reason}); retry after {retry_after:.0f}s")


class IngestObserver(Protocol):
    """What the queue reports as it works (``bots.metrics.VigilMetrics`` implements it)."""

    def on_shed(self, reason: ShedReason) -> None: ...

    def on_refused(self) -> None: ...

    def on_depth(self, depth: int) -> None: ...

    def on_results(self, results: Sequence[HandleResult], *, seconds: float) -> None: ...

    def on_batch_failed(self, size: int) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestStats:
    capacity: int
    depth: int
    in_flight: int
    accepted: int
    processed: int
    failed: int
    refused: int
    shed: Mapping[str, int]
    watched_pairs: int
    messages_per_s: float


# ---------------------------------------------------------------------------------------------- admission


@dataclass(frozen=True, slots=True, kw_only=True)
class _Slot(Generic[T]):
    seq: int
    item: T
    priority: Priority
    pinned: bool

    @property
    def sheddable_chatter(self) -> bool:
        return self.priority is Priority.CHATTER and not self.pinned


@dataclass(frozen=True, slots=True, kw_only=True)
class Admission(Generic[T]):
    """What ``AdmissionQueue.offer`` decided: accepted (maybe displacing a queued item), or refused."""

    accepted: bool
    reason: ShedReason | None = None
    displaced: T | None = None


class AdmissionQueue(Generic[T]):
    """The shedding policy as a plain data structure (no asyncio): bounded, arrival-ordered, by priority.

    ``offer`` never lets more than ``capacity`` items wait. ``take`` returns the oldest items in arrival
    order. Displacement removes the newest sheddable chatter lazily (marked, skipped by ``take``), so every
    operation is O(1) amortised.
    """

    def __init__(self, *, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity!r}")
        self._capacity = capacity
        self._slots: deque[_Slot[T]] = deque()
        # Sheddable chatter still queued, oldest first (a subsequence of ``_slots``).
        self._chatter: deque[_Slot[T]] = deque()
        self._dropped: set[int] = set()
        self._live = 0
        self._seq = 0

    @property
    def capacity(self) -> int:
        return self._capacity

    def __len__(self) -> int:
        return self._live

    def offer(self, item: T, *, priority: Priority, pinned: bool = False) -> Admission[T]:
        displaced: T | None = None
        if self._live >= self._capacity:
            if priority is Priority.CHATTER:
                return Admission(accepted=False, reason=ShedReason.CHATTER_FULL)
            if not self._chatter:
                return Admission(accepted=False, reason=ShedReason.PRIORITY_FULL)
            victim = self._chatter.pop()  # the newest sheddable chatter
            self._dropped.add(victim.seq)
            self._live -= 1
            displaced = victim.item
            self._compact()
        self._seq += 1
        slot = _Slot(seq=self._seq, item=item, priority=priority, pinned=pinned)
        self._slots.append(slot)
        if slot.sheddable_chatter:
            self._chatter.append(slot)
        self._live += 1
        if displaced is not None:
            return Admission(accepted=True, reason=ShedReason.CHATTER_DISPLACED, displaced=displaced)
        return Admission(accepted=True)

    def take(self, limit: int) -> list[T]:
        """Up to ``limit`` of the oldest waiting items, in arrival order."""
        taken: list[T] = []
        while self._slots and len(taken) < limit:
            slot = self._slots.popleft()
            if slot.seq in self._dropped:
                self._dropped.discard(slot.seq)
                continue
            if slot.sheddable_chatter:
                # Arrival order is kept in both deques, so the oldest live chatter is this very slot.
                self._chatter.popleft()
            self._live -= 1
            taken.append(slot.item)
        return taken

    def drain(self) -> list[T]:
        return self.take(self._live)

    def _compact(self) -> None:
        # Dropped slots are skipped by take(); rebuild only when they outnumber the live ones.
        if len(self._dropped) > max(self._live, 64):
            self._slots = deque(slot for slot in self._slots if slot.seq not in self._dropped)
            self._dropped.clear()


# ---------------------------------------------------------------------------------------------- watch list


_Member = tuple[str, str, str]


class _WatchList:
    """Pairs whose members' messages are priority work; bounded, least recently refreshed dropped first."""

    def __init__(self, *, max_pairs: int) -> None:
        self._max_pairs = max_pairs
        self._pairs: OrderedDict[PairKey, None] = OrderedDict()
        self._members: Counter[_Member] = Counter()

    def __len__(self) -> int:
        return len(self._pairs)

    def __contains__(self, key: object) -> bool:
        return key in self._pairs

    def add(self, key: PairKey) -> None:
        if key in self._pairs:
            self._pairs.move_to_end(key)
            return
        self._pairs[key] = None
        for member in _members(key):
            self._members[member] += 1
        while len(self._pairs) > self._max_pairs:
            oldest, _ = self._pairs.popitem(last=False)
            self._forget(oldest)

    def discard(self, key: PairKey) -> None:
        if key in self._pairs:
            del self._pairs[key]
            self._forget(key)

    def has_member(self, member: _Member) -> bool:
        return self._members.get(member, 0) > 0

    def _forget(self, key: PairKey) -> None:
        for member in _members(key):
            self._members[member] -= 1
            if self._members[member] <= 0:
                del self._members[member]


def _members(key: PairKey) -> tuple[_Member, _Member]:
    return (key.platform, key.space_id, key.user_a), (key.platform, key.space_id, key.user_b)


# ---------------------------------------------------------------------------------------------- the queue


@dataclass(frozen=True, slots=True, kw_only=True)
class _Entry:
    message: ChatMessage
    pinned: bool
    # None for fire-and-forget submissions (``submit_nowait``).
    future: asyncio.Future[HandleResult] | None = field(default=None)


class IngestQueue:
    """A ``MessageHandler`` that queues, batches and sheds in front of a ``Monitor`` (see the module doc).

    Start ``run()`` as a task (it returns after ``close()`` once the queue is drained). ``capacity`` bounds
    the messages waiting, not counting the batches being processed (at most ``concurrency`` batches of at most
    ``max_batch`` messages).

    ``concurrency=2`` keeps a second batch in flight when at least ``max_batch / 2`` messages wait, so under
    load the detector scores batch n+1 while the monitor writes batch n to SQLite. Messages are still applied
    in arrival order: batches are scored first come, first served (the detector's batcher is FIFO) and the
    monitor applies them under a FIFO lock. Use ``concurrency=1`` with a detector that may reorder calls.
    """

    def __init__(
        self,
        *,
        monitor: Monitor,
        capacity: int,
        max_batch: int = 64,
        concurrency: int = 2,
        observer: IngestObserver | None = None,
        watch_rising_pairs: bool = True,
        max_watched_pairs: int = 100_000,
        log_interval_s: float = 10.0,
        watched: Iterable[PairKey] = (),
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch!r}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency!r}")
        if max_watched_pairs < 1:
            raise ValueError(f"max_watched_pairs must be >= 1, got {max_watched_pairs!r}")
        self._monitor = monitor
        self._queue: AdmissionQueue[_Entry] = AdmissionQueue(capacity=capacity)
        self._max_batch = max_batch
        self._concurrency = concurrency
        self._pipeline_depth = max(1, max_batch // 2)
        self._batches_in_flight = 0
        self._observer = observer
        policy = monitor.config.policy
        # Pairs inside the hysteresis band are on their way to an alert: their messages must not be shed.
        self._watch_risk = policy.threshold - policy.hysteresis if watch_rising_pairs else None
        self._alerted = _WatchList(max_pairs=max_watched_pairs)
        self._rising = _WatchList(max_pairs=max_watched_pairs)
        for key in watched:
            self._alerted.add(key)
        self._log_interval_s = log_interval_s
        self._wakeup = asyncio.Event()
        self._closing = False
        self._running = False
        self._in_flight = 0
        self._accepted = 0
        self._processed = 0
        self._failed = 0
        self._refused = 0
        self._shed: Counter[ShedReason] = Counter()
        self._shed_since_log: Counter[ShedReason] = Counter()
        self._next_shed_log = 0.0
        self._shedding = False
        self._rate = 0.0  # messages/s processed, smoothed
        self._last_done = 0.0

    # ------------------------------------------------------------------ submitting

    @property
    def capacity(self) -> int:
        return self._queue.capacity

    @property
    def depth(self) -> int:
        return len(self._queue)

    async def handle(self, message: ChatMessage, *, may_shed: bool = True) -> HandleResult:
        """Queue ``message`` and wait for its result (a ``ShedResult`` if it was shed).

        With ``may_shed=False`` the message is never shed: ``Overloaded`` is raised when there is no room.
        Exceptions from the monitor for this message's batch are raised here.
        """
        return await self.submit(message, may_shed=may_shed)

    def submit(self, message: ChatMessage, *, may_shed: bool = True) -> asyncio.Future[HandleResult]:
        """Queue ``message`` now; the returned future resolves to its result. See ``handle``."""
        future: asyncio.Future[HandleResult] = asyncio.get_running_loop().create_future()
        self._admit(message, pinned=not may_shed, future=future)
        return future

    def submit_nowait(self, message: ChatMessage) -> bool:
        """Fire and forget: True when queued, False when shed (counted and logged, never silent)."""
        return self._admit(message, pinned=False, future=None)

    def priority_of(self, message: ChatMessage) -> Priority:
        """Direct messages and messages touching watched members are priority work; the rest is chatter."""
        if message.is_dm:
            return Priority.PRIORITY
        if not (len(self._alerted) or len(self._rising)):
            return Priority.CHATTER
        platform, space = message.platform, message.space_id
        mentioned = message.mentioned_user_ids[:MENTION_SCAN_LIMIT]
        candidates = (message.author_id, message.reply_to_author_id, *mentioned)
        for user_id in candidates:
            if user_id is None:
                continue
            member = (platform, space, user_id)
            if self._alerted.has_member(member) or self._rising.has_member(member):
                return Priority.PRIORITY
        return Priority.CHATTER

    def watch(self, key: PairKey) -> None:
        """Treat this pair's members' messages as priority work (e.g. open alerts found at start-up)."""
        self._alerted.add(key)

    def unwatch(self, key: PairKey) -> None:
        """The pair's alert was closed: its messages are ordinary work again."""
        self._alerted.discard(key)
        self._rising.discard(key)

    def _admit(
        self, message: ChatMessage, *, pinned: bool, future: asyncio.Future[HandleResult] | None
    ) -> bool:
        if self._closing:
            if pinned:
                self._refuse("stopping")
            self._shed_entry(_Entry(message=message, pinned=pinned, future=future), ShedReason.STOPPED)
            return False
        entry = _Entry(message=message, pinned=pinned, future=future)
        priority = self.priority_of(message)
        if pinned and len(self._queue) >= self._queue.capacity and priority is Priority.CHATTER:
            # A pinned message never displaces other chatter: its caller can retry, theirs cannot.
            self._refuse("queue full")
        admission = self._queue.offer(entry, priority=priority, pinned=pinned)
        if not admission.accepted:
            assert admission.reason is not None
            if pinned:
                self._refuse("queue full of priority work")
            self._shed_entry(entry, admission.reason)
            return False
        if admission.displaced is not None:
            self._shed_entry(admission.displaced, ShedReason.CHATTER_DISPLACED)
        self._accepted += 1
        self._report_depth()
        self._wakeup.set()
        return True

    def _refuse(self, why: str) -> NoReturn:
        self._refused += 1
        if self._observer is not None:
            self._observer.on_refused()
        raise Overloaded(retry_after=self._retry_after(), reason=why)

    def _retry_after(self) -> float:
        # Time to drain what is queued at the recent rate, within sane bounds.
        waiting = len(self._queue) + self._in_flight
        if self._rate <= 0.0:
            return 1.0
        return float(min(60.0, max(1.0, round(waiting / self._rate, 1))))

    def _shed_entry(self, entry: _Entry, reason: ShedReason) -> None:
        self._shed[reason] += 1
        self._shed_since_log[reason] += 1
        if self._observer is not None:
            self._observer.on_shed(reason)
        if entry.future is not None and not entry.future.done():
            message = entry.message
            entry.future.set_result(
                ShedResult(message_id=message.message_id, skipped=SkipReason.SHED, reason=reason)
            )
        self._log_shedding()

    def _log_shedding(self) -> None:
        now = asyncio.get_running_loop().time()
        if now < self._next_shed_log:
            return
        self._next_shed_log = now + self._log_interval_s
        summary = _counts_text(self._shed_since_log)
        self._shed_since_log.clear()
        self._shedding = True
        logger.warning(
            "overloaded: shedding messages (queue %d/%d, %d in flight, %.0f msg/s); "
            "shed since the last report: %s",
            len(self._queue),
            self._queue.capacity,
            self._in_flight,
            self._rate,
            summary,
        )

    def _report_depth(self) -> None:
        if self._observer is not None:
            self._observer.on_depth(len(self._queue))

    # ------------------------------------------------------------------ the worker

    async def run(self) -> None:
        """Drain the queue into the monitor until cancelled, or until ``close()`` and the queue is empty."""
        if self._running:
            raise RuntimeError("IngestQueue.run() is already running")
        self._running = True
        slots = asyncio.Semaphore(self._concurrency)
        batches: set[asyncio.Task[None]] = set()
        try:
            while True:
                await slots.acquire()
                batch = await self._next_batch()
                if not batch:
                    break
                task = asyncio.create_task(self._process(batch), name="ingest-batch")
                batches.add(task)
                task.add_done_callback(batches.discard)
                task.add_done_callback(lambda _: slots.release())
            if batches:
                await asyncio.wait(batches)
        finally:
            for task in batches:
                task.cancel()
            if batches:
                # wait() rather than gather(): our own cancellation must not be swallowed here.
                await asyncio.wait(batches)
            self._running = False
            self._abandon_queued()

    def close(self) -> None:
        """Stop taking messages; ``run()`` finishes what is queued, then returns."""
        self._closing = True
        self._wakeup.set()

    def stats(self) -> IngestStats:
        return IngestStats(
            capacity=self._queue.capacity,
            depth=len(self._queue),
            in_flight=self._in_flight,
            accepted=self._accepted,
            processed=self._processed,
            failed=self._failed,
            refused=self._refused,
            shed={reason.value: count for reason, count in self._shed.items()},
            watched_pairs=len(self._alerted) + len(self._rising),
            messages_per_s=self._rate,
        )

    async def _next_batch(self) -> list[_Entry]:
        while True:
            waiting = len(self._queue)
            # A second batch starts only under pressure: with a short queue it is cheaper to let messages
            # gather while the batch in flight finishes (one large ONNX call costs less than two small ones).
            wanted = 1 if self._batches_in_flight == 0 or self._closing else self._pipeline_depth
            if waiting >= wanted:
                batch = self._queue.take(self._max_batch)
                self._report_depth()
                return batch
            if self._closing and waiting == 0:
                return []
            self._wakeup.clear()
            if self._shedding and waiting == 0:
                self._shedding = False
                logger.warning(
                    "load shedding over: the queue is empty again (shed so far: %s)", _counts_text(self._shed)
                )
            await self._wakeup.wait()

    async def _process(self, batch: list[_Entry]) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        self._in_flight += len(batch)
        self._batches_in_flight += 1
        try:
            results = await self._monitor.handle_batch([entry.message for entry in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"the monitor returned {len(results)} results for {len(batch)} messages")
        except Exception as error:
            self._fail(batch, error)
            return
        except BaseException:
            # Cancelled mid-batch (shutdown): the transaction rolled back, so these were not processed.
            self._abandon(batch)
            raise
        finally:
            self._in_flight -= len(batch)
            self._batches_in_flight -= 1
            self._wakeup.set()
        finished = loop.time()
        elapsed = max(finished - started, 1e-6)
        # Back to back (overlapping batches, or a busy queue), the gap between completions is the honest rate.
        instant = len(batch) / max(finished - max(started, self._last_done), 1e-6)
        self._last_done = finished
        self._rate = instant if self._rate == 0.0 else 0.8 * self._rate + 0.2 * instant
        self._processed += len(batch)
        self._learn(results)
        if self._observer is not None:
            self._observer.on_results(results, seconds=elapsed)
        for entry, result in zip(batch, results, strict=True):
            if entry.future is not None and not entry.future.done():
                entry.future.set_result(result)

    def _fail(self, batch: list[_Entry], error: Exception) -> None:
        self._failed += len(batch)
        if self._observer is not None:
            self._observer.on_batch_failed(len(batch))
        # Store errors are written for operators; other exception texts could quote input, so name the type.
        detail = f"{type(error).__name__}: {error}" if isinstance(error, StoreError) else type(error).__name__
        logger.error(
            "a batch of %d messages failed (%s); its callers get the error, the queue goes on",
            len(batch),
            detail,
        )
        logger.debug("batch failure details", exc_info=error)
        for entry in batch:
            if entry.future is not None and not entry.future.done():
                entry.future.set_exception(error)

    def _learn(self, results: Sequence[HandleResult]) -> None:
        """Keep the watch lists current from what the monitor just decided."""
        for result in results:
            for event in result.alerts:
                if event.alert.status is AlertStatus.OPEN:
                    self._alerted.add(event.alert.key)
            if self._watch_risk is None:
                continue
            for pair in result.pairs:
                if pair.risk >= self._watch_risk:
                    self._rising.add(pair.key)
                elif pair.key in self._rising:
                    self._rising.discard(pair.key)

    def _abandon_queued(self) -> None:
        self._abandon(self._queue.drain())
        self._report_depth()

    def _abandon(self, entries: Sequence[_Entry]) -> None:
        """The worker stopped: nobody may be left waiting on a message that will never be processed."""
        for entry in entries:
            if entry.pinned and entry.future is not None and not entry.future.done():
                self._refused += 1
                entry.future.set_exception(Overloaded(retry_after=1.0, reason="stopping"))
                continue
            self._shed_entry(entry, ShedReason.STOPPED)


def _counts_text(counts: Mapping[ShedReason, int]) -> str:
    return ", ".join(f"{reason.value}={count}" for reason, count in sorted(counts.items())) or "none"
