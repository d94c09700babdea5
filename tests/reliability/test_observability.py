"""Metrics and logs: the /metrics endpoint, per-instance registries, JSON lines, no message text in logs."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import ClientSession

from tests.reliability.helpers import ControlledDetector, MessageFactory, make_monitor
from tests.support.fakes import RecordingSink
from vigil.bots.core.case_service import CaseService
from vigil.bots.core.ingest import IngestQueue
from vigil.bots.core.models import DeliveryResult
from vigil.bots.core.monitor import HandleResult
from vigil.bots.core.outbox import OutboxConfig, OutboxWorker
from vigil.bots.core.replay import ConversationRecord, iter_records, record_to_messages
from vigil.bots.metrics import (
    MetricsServer,
    MetricsSnapshot,
    VigilMetrics,
    configure_logging,
    fetch_metrics,
    format_status,
)
from vigil.detector.onnx_detector import OnnxDetector
from vigil.storage.sqlite import SqliteStore

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo_conversations.jsonl"
METRIC_NAMES = (
    "vigil_messages_total",
    "vigil_pairs",
    "vigil_queue_depth",
    "vigil_alerts_total",
    "vigil_outbox_pending",
    "vigil_detector_latency_seconds",
    "vigil_shed_total",
)


async def test_metrics_endpoint_serves_every_metric_from_a_running_pipeline(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector
) -> None:
    metrics = VigilMetrics()
    monitor = make_monitor(sqlite_store, metrics.instrument(keyword_detector))
    queue = IngestQueue(monitor=monitor, capacity=100, observer=metrics)
    make = MessageFactory()
    worker = asyncio.create_task(queue.run())
    try:
        for _ in range(3):
            await queue.handle(make.dm("adult", "kid", "secret groom"))
        await queue.handle(make.dm("adult", "kid", "secret groom"))  # a duplicate id below
        duplicate = make.dm("kid", "adult", "hello")
        await queue.handle(duplicate)
        await queue.handle(duplicate)
    finally:
        queue.close()
        await worker
    await metrics.refresh_store_gauges(sqlite_store)
    async with MetricsServer(metrics, port=0) as server:
        async with (
            ClientSession() as session,
            session.get(f"http://127.0.0.1:{server.port}/metrics") as response,
        ):
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            body = await response.text()
        snapshot = await fetch_metrics(port=server.port)
    for name in METRIC_NAMES:
        assert f"# TYPE {name.removesuffix('_total')}" in body
    assert snapshot.value("vigil_messages_total", outcome="scored") == 5
    assert snapshot.value("vigil_messages_total", outcome="duplicate") == 1
    assert snapshot.value("vigil_alerts_total", decision="raise") == 1
    assert snapshot.value("vigil_pairs") == 1
    assert snapshot.value("vigil_outbox_pending") == 1  # nobody delivered the alert in this test
    # One model call per scored message: the duplicate is recognised before scoring.
    assert snapshot.value("vigil_detector_latency_seconds_count") == 5
    assert snapshot.value("vigil_shed_total", reason="chatter_full") == 0
    status = format_status(snapshot)
    assert "messages: duplicate 1, scored 5" in status and "alerts: raise 1" in status
    assert "outbox pending: 1" in status and "shed: none" in status


async def test_each_metrics_object_has_its_own_registry() -> None:
    first, second = VigilMetrics(), VigilMetrics()
    first.queue_depth.set(7)
    assert MetricsSnapshot.parse(second.render().decode()).value("vigil_queue_depth") == 0
    assert MetricsSnapshot.parse(first.render().decode()).value("vigil_queue_depth") == 7


async def test_the_endpoint_listens_on_localhost_by_default_and_stops_cleanly() -> None:
    server = MetricsServer(VigilMetrics(), port=0)
    await server.start()
    port = server.port
    await server.stop()
    with pytest.raises(OSError):
        await fetch_metrics(port=port, timeout_s=1.0)


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = configure_logging("INFO", json=True, stream=stream)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def test_json_logs_carry_case_ids(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector, json_log: io.StringIO
) -> None:
    monitor = make_monitor(sqlite_store, keyword_detector)
    make = MessageFactory()
    for _ in range(3):
        await monitor.handle(make.dm("adult", "kid", "secret groom"))
    logging.getLogger("vigil.test").info(
        "context fields pass through", extra={"alert_id": 9, "batch_size": 3}
    )
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    raised = [line for line in lines if line["message"].startswith("alert raised")]
    assert len(raised) == 1
    assert raised[0]["case_number"] == 1 and raised[0]["alert_id"] == 1 and raised[0]["level"] == "INFO"
    assert lines[-1]["alert_id"] == 9 and lines[-1]["batch_size"] == 3
    assert all({"ts", "level", "logger", "message"} <= set(line) for line in lines)


async def test_no_log_record_at_info_or_above_contains_message_text(
    tmp_path: Path, keyword_detector: OnnxDetector, caplog: pytest.LogCaptureFixture
) -> None:
    """A replay through every logging path: alerts, deliveries and failures, shedding, a failed batch."""
    caplog.set_level(logging.DEBUG)
    texts: set[str] = set()
    async with SqliteStore(tmp_path / "replay.sqlite3") as store:
        detector = ControlledDetector(keyword_detector, fail_calls=[3])
        metrics = VigilMetrics()
        monitor = make_monitor(store, metrics.instrument(detector))
        sink = RecordingSink(failures=[DeliveryResult(ok=False, error="503 unavailable")], raise_times=1)
        outbox = OutboxWorker(
            store=store, cases=CaseService(store=store), sink=sink, config=OutboxConfig(retry_initial_s=0.01)
        )
        queue = IngestQueue(monitor=monitor, capacity=16, max_batch=8, observer=metrics, log_interval_s=0.0)
        worker = asyncio.create_task(queue.run())
        try:
            messages = [
                m
                for record in iter_records(DEMO)
                if isinstance(record, ConversationRecord)
                for m in record_to_messages(record, platform="demo")
            ]
            make = MessageFactory()
            grooming = [make.dm("adult", "kid", "keep it secret, what is your age? groom") for _ in range(4)]
            futures: list[asyncio.Future[HandleResult]] = []
            everything = [*grooming, *messages]
            for start in range(0, len(everything), 24):  # waves larger than the queue: some are shed
                futures.extend(queue.submit(m) for m in everything[start : start + 24])
                await asyncio.sleep(0.01)
            await asyncio.gather(*futures, return_exceptions=True)
            for _ in range(4):
                await outbox.drain_once()
                await asyncio.sleep(0.02)
            texts = {m.text for m in [*grooming, *messages]}
        finally:
            queue.close()
            await worker
    assert sink.posted, "the replay must raise and deliver an alert, or the test checks too little"
    assert queue.stats().failed and sum(queue.stats().shed.values())
    informative = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert informative
    # Every message text of at least 8 characters, and every 8-character slice of longer ones.
    needles = {t[i : i + 8] for t in texts if len(t.strip()) >= 8 for i in range(0, len(t) - 7, 4)}
    for record in informative:
        rendered = record.getMessage() + (record.exc_text or "")
        leaked = [needle for needle in needles if needle in rendered]
        assert not leaked, f"{record.name} logged message text at {record.levelname}: {leaked[:3]}"
