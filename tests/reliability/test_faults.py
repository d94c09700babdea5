"""Faults to survive: a detector batch failing, a locked database, a full disk, a sink down for hours."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest

from tests.reliability.helpers import START, ControlledDetector, MessageFactory, make_monitor, policy
from tests.support.fakes import FakeClock
from vigil.bots.core.case_service import CaseService
from vigil.bots.core.ingest import IngestQueue
from vigil.bots.core.models import Alert, ChatMessage, DeliveryResult, PairKey
from vigil.bots.core.monitor import HandleResult, Monitor, MonitorConfig
from vigil.bots.core.outbox import OutboxConfig, OutboxWorker
from vigil.bots.core.policy import Decision
from vigil.bots.core.ports import Delivery, StoreError
from vigil.detector.onnx_detector import OnnxDetector
from vigil.storage.sqlite import SqliteStore

# ---------------------------------------------------------------------------------------------- detector


async def test_a_detector_failure_fails_one_batch_and_a_redelivery_completes_the_state(
    tmp_path: Path, keyword_detector: OnnxDetector
) -> None:
    make = MessageFactory()
    script = [
        make.dm("adult", "kid", "secret groom") if i % 2 == 0 else make.dm("kid", "adult", "hello")
        for i in range(24)
    ]
    script += [make.dm(f"x{i % 3}", f"y{i % 3}", "nice game tonight") for i in range(24)]

    async def replay(database: Path, detector: object) -> tuple[list[HandleResult | BaseException], Monitor]:
        store = SqliteStore(database)
        await store.open()
        monitor = make_monitor(store, detector)
        queue = IngestQueue(monitor=monitor, capacity=100, max_batch=8)
        futures = [queue.submit(m) for m in script]
        worker = asyncio.create_task(queue.run())
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        # The platform redelivers what failed (idempotent ids make that safe), as an adapter would.
        failed = [m for m, o in zip(script, outcomes, strict=True) if isinstance(o, BaseException)]
        retried = await asyncio.gather(*(queue.handle(m) for m in failed))
        assert all(r.skipped is None for r in retried)
        queue.close()
        await worker
        await store.close()
        return outcomes, monitor

    clean, _ = await replay(tmp_path / "clean.sqlite3", keyword_detector)
    assert not any(isinstance(o, BaseException) for o in clean)
    flaky = ControlledDetector(keyword_detector, fail_calls=[2])
    outcomes, _ = await replay(tmp_path / "flaky.sqlite3", flaky)
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(failed) == 8 and all("injected" in str(o) for o in failed)  # exactly one batch

    def summary(path: Path) -> tuple[dict[tuple[str, str], int], list[tuple[str, str]]]:
        with closing(sqlite3.connect(path)) as connection:
            pairs = dict(
                ((a, b), n)
                for a, b, n in connection.execute("SELECT user_a, user_b, message_count FROM pairs")
            )
            alerts = list(connection.execute("SELECT user_a, user_b FROM alerts"))
        return pairs, alerts

    assert summary(tmp_path / "flaky.sqlite3") == summary(tmp_path / "clean.sqlite3")
    assert summary(tmp_path / "clean.sqlite3")[1] == [("adult", "kid")]


# ---------------------------------------------------------------------------------------------- locks


async def test_a_briefly_locked_database_is_waited_out(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector
) -> None:
    monitor = make_monitor(sqlite_store, keyword_detector)
    make = MessageFactory()
    await monitor.handle(make.dm("a", "b", "hello"))  # schema and pair exist
    other = sqlite3.connect(sqlite_store.database, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock...
        loop = asyncio.get_running_loop()
        loop.call_later(0.3, other.execute, "COMMIT")  # ...for 300 ms
        started = loop.time()
        result = await monitor.handle(make.dm("a", "b", "hello again"))
        waited = loop.time() - started
    finally:
        other.close()
    assert result.skipped is None and waited >= 0.25
    state = await sqlite_store.load_pair(result.pairs[0].key)
    assert state is not None and state.message_count == 2


async def test_a_lock_held_past_the_timeout_is_a_clear_error_and_nothing_is_half_written(
    tmp_path: Path, keyword_detector: OnnxDetector
) -> None:
    store = SqliteStore(tmp_path / "locked.sqlite3", busy_timeout_s=0.2)
    await store.open()
    try:
        monitor = make_monitor(store, keyword_detector)
        make = MessageFactory()
        message = make.dm("a", "b", "hello")
        other = sqlite3.connect(store.database, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreError, match="locked"):
                await monitor.handle(message)
            other.execute("COMMIT")
        finally:
            other.close()
        # The failed message was not claimed: its redelivery is processed normally.
        assert (await monitor.handle(message)).skipped is None
    finally:
        await store.close()


# ---------------------------------------------------------------------------------------------- full disk


@contextlib.contextmanager
def tiny_filesystem(path: Path, *, size: str) -> Iterator[None]:
    """A size-limited tmpfs at ``path``; skips the test where this process may not mount one (not root)."""
    path.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a size-limited tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode(errors='replace').strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


async def fill_until_store_error(monitor: Monitor, make: MessageFactory) -> tuple[StoreError, ChatMessage]:
    for n in range(5000):
        message = make.dm(f"a{n}", f"b{n}", "hello there " * 80)
        try:
            await monitor.handle(message)
        except StoreError as error:
            return error, message
    raise AssertionError("the store never filled up")


def integrity(database: Path) -> str:
    with closing(sqlite3.connect(database)) as connection:
        return str(connection.execute("PRAGMA integrity_check").fetchone()[0])


async def check_full_disk(database: Path, detector: OnnxDetector, *, limit_pages: int | None) -> ChatMessage:
    store = SqliteStore(database)
    await store.open()
    try:
        if limit_pages is not None:
            # Only the store's own connection's page limit counts (a private attribute; in a test only).
            connection = store._connection
            assert connection is not None
            await connection.execute(f"PRAGMA max_page_count = {limit_pages}")
        monitor = make_monitor(store, detector)
        make = MessageFactory()
        error, failed = await fill_until_store_error(monitor, make)
        assert "is full" in str(error) and str(database) in str(error)
        stored = await store.count_pairs()
        assert stored > 0
    finally:
        await store.close()
    assert integrity(database) == "ok"
    reopened = SqliteStore(database)
    await reopened.open()
    try:
        assert await reopened.count_pairs() == stored  # everything committed before the error is there
    finally:
        await reopened.close()
    return failed


async def test_a_full_disk_is_a_clear_store_error_and_the_database_stays_intact(
    tmp_path: Path, keyword_detector: OnnxDetector
) -> None:
    """Real ENOSPC: the database on a 1 MB tmpfs. Once space is freed, the failed message is processed."""
    small = tmp_path / "small"
    with tiny_filesystem(small, size="1m"):
        database = small / "vigil.sqlite3"
        failed = await check_full_disk(database, keyword_detector, limit_pages=None)
        await asyncio.to_thread(
            subprocess.run, ["mount", "-o", "remount,size=8m", str(small)], check=True, capture_output=True
        )
        async with SqliteStore(database) as store:
            result = await make_monitor(store, keyword_detector).handle(failed)
            assert result.skipped is None  # it was never claimed, so the redelivery counts
        assert integrity(database) == "ok"


async def test_a_database_at_its_page_limit_is_a_clear_store_error_and_stays_intact(
    tmp_path: Path, keyword_detector: OnnxDetector
) -> None:
    """The same without root: SQLite's own page limit returns the error a full disk does (SQLITE_FULL)."""
    database = tmp_path / "limited.sqlite3"
    failed = await check_full_disk(database, keyword_detector, limit_pages=64)
    async with SqliteStore(database) as store:
        assert (await make_monitor(store, keyword_detector).handle(failed)).skipped is None


# ---------------------------------------------------------------------------------------------- the sink


class FlakySink:
    """Down (timeouts and 5xx in turn) until ``clock`` reaches ``recover_at``; then records deliveries."""

    def __init__(self, clock: FakeClock, *, recover_at: timedelta) -> None:
        self._clock = clock
        self._recover_at = START + recover_at
        self.failures = 0
        self.posted: list[Alert] = []
        self.updated: list[tuple[Alert, str]] = []

    def _down(self) -> DeliveryResult | None:
        if self._clock.now >= self._recover_at:
            return None
        self.failures += 1
        if self.failures % 2:
            raise TimeoutError("sink timed out")
        return DeliveryResult(ok=False, error="503 service unavailable")

    async def post(self, delivery: Delivery) -> DeliveryResult:
        failure = self._down()
        if failure is not None:
            return failure
        alert = delivery.alert
        self.posted.append(alert)
        return DeliveryResult(ok=True, ref=f"ref-{alert.alert_id}")

    async def update(self, delivery: Delivery, *, ref: str) -> DeliveryResult:
        failure = self._down()
        if failure is not None:
            return failure
        self.updated.append((delivery.alert, ref))
        return DeliveryResult(ok=True, ref=ref)


async def test_a_sink_down_for_hours_delivers_everything_once_it_recovers(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector
) -> None:
    clock = FakeClock(START)
    monitor = Monitor(
        store=sqlite_store,
        detector=keyword_detector,
        config=MonitorConfig(policy=policy(update_min_delta=0.02), window_messages=20),
        clock=clock,
    )
    sink = FlakySink(clock, recover_at=timedelta(hours=3))
    outbox = OutboxWorker(
        store=sqlite_store,
        cases=CaseService(store=sqlite_store),
        sink=sink,
        config=OutboxConfig(retry_initial_s=5.0, retry_max_s=900.0),
        clock=clock,
    )
    make = MessageFactory()
    raised: set[int] = set()
    recovered_at: timedelta | None = None
    step = timedelta(seconds=30)
    # Six hours of simulated time: new alerts and risk updates keep arriving during the outage.
    for tick in range(6 * 120):
        if tick < 200 and tick % 20 == 0:
            n = tick // 20
            for text in ("age age", "age age", "age age"):
                result = await monitor.handle(make.dm(f"adult{n}", f"kid{n}", text))
                raised.update(e.alert.alert_id for e in result.alerts if e.decision is Decision.RAISE)
        if tick < 200 and tick % 20 == 10:
            await monitor.handle(make.dm(f"adult{tick // 20}", f"kid{tick // 20}", "secret groom"))
        await outbox.drain_once()
        if recovered_at is None and await sqlite_store.pending_delivery_count() == 0 and sink.posted:
            recovered_at = clock.now - START
        clock.advance(step)
    assert len(raised) == 10 and sink.failures > 50
    assert await sqlite_store.pending_delivery_count() == 0
    # Everything went out once the sink was back, within one maximum backoff (plus a poll step).
    assert recovered_at is not None and recovered_at <= timedelta(hours=3, seconds=900) + step
    assert sorted(a.alert_id for a in sink.posted) == sorted(raised)  # each alert posted exactly once
    for alert_id in raised:
        stored = await sqlite_store.get_alert(alert_id)
        assert stored is not None and stored.delivery_ref == f"ref-{alert_id}"
        # The latest revision reached the moderators (posted as such, or updated afterwards).
        latest = max(
            [a.revision for a in sink.posted if a.alert_id == alert_id]
            + [a.revision for a, _ in sink.updated if a.alert_id == alert_id]
        )
        assert latest == stored.revision
    assert PairKey.of(platform="test", space_id="guild-1", first="adult0", second="kid0") in {
        a.key for a in sink.posted
    }
