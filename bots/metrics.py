"""Operational visibility: Prometheus metrics, the ``/metrics`` endpoint and structured logs.

Everything hangs off one ``VigilMetrics`` object per process (its own ``CollectorRegistry``, no module-level
state), so tests and several pipelines in one process never share counters.

- ``VigilMetrics``: the counters, gauges and histograms (names below); it is the ``IngestObserver`` of the
  ``IngestQueue``, ``instrument(detector)`` times every scoring call, ``refresh_store_gauges`` /
  ``refresh_forever`` read the pair count and the outbox size from the store.
- ``MetricsServer``: an aiohttp server with ``GET /metrics`` (Prometheus text format), localhost by default.
- ``configure_logging``: plain or JSON-lines logs; JSON records carry ``case_number``/``alert_id`` fields.
- ``fetch_metrics`` / ``format_status``: read a running Vigil's endpoint back and summarise it (``vigil
  status``).

Metric names (prefix ``vigil_``): ``messages_total{outcome}``, ``pairs``, ``queue_depth``,
``alerts_total{decision}``, ``outbox_pending``, ``detector_latency_seconds``, ``shed_total{reason}``,
``ingest_refused_total``, ``ingest_batch_seconds``, ``metrics_refresh_errors_total``.

Never log message text at INFO or above: nothing here does, and the JSON formatter adds only ids.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TextIO

from aiohttp import ClientSession, ClientTimeout, web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.parser import text_string_to_metric_families

from vigil.bots.core.ingest import ShedReason
from vigil.bots.core.monitor import HandleResult

if TYPE_CHECKING:
    from vigil.bots.core.ports import (
        AlertReviewer,
        Detector,
        MessageScore,
        ModelInfo,
        PairModel,
        ServiceGaugeStore,
    )

__all__ = [
    "DEFAULT_LATENCY_BUCKETS",
    "InstrumentedDetector",
    "JsonLogFormatter",
    "MetricsServer",
    "MetricsSnapshot",
    "VigilMetrics",
    "configure_logging",
    "fetch_metrics",
    "format_status",
]

logger = logging.getLogger(__name__)

NAMESPACE = "vigil"
DEFAULT_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_OUTCOME_SCORED = "scored"


class VigilMetrics:
    """The process's metrics, in a private registry. Implements ``bots.core.ingest.IngestObserver`` and the
    scoring worker's ``WorkerObserver``."""

    def __init__(self) -> None:
        registry = CollectorRegistry(auto_describe=True)
        self.registry = registry
        self.messages = Counter(
            "messages",
            "Messages by outcome: scored, a skip reason (duplicate, bot, no_pair, ...), shed or error.",
            ["outcome"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.pairs = Gauge(
            "pairs",
            "Pairs of people with stored state (refreshed periodically).",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.queue_depth = Gauge(
            "queue_depth", "Messages waiting in the ingest queue.", namespace=NAMESPACE, registry=registry
        )
        self.alerts = Counter(
            "alerts",
            "Alert decisions: raise (a new case) or update (an open case's risk rose).",
            ["decision"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.outbox_pending = Gauge(
            "outbox_pending",
            "Alert deliveries waiting in the outbox (refreshed periodically); growing means the sink fails.",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.detector_latency = Histogram(
            "detector_latency_seconds",
            "Time for one detector scoring call (a batch of texts), queueing in the detector included.",
            namespace=NAMESPACE,
            registry=registry,
            buckets=DEFAULT_LATENCY_BUCKETS,
        )
        self.shed = Counter(
            "shed",
            "Messages shed by the ingest queue under overload, by reason (see docs/operations.md).",
            ["reason"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.refused = Counter(
            "ingest_refused",
            "Messages refused with Overloaded (HTTP 429) because they may not be shed and there was no room.",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "ingest_batch_seconds",
            "Time for the monitor to process one micro-batch (score, pair state, policy, commit).",
            namespace=NAMESPACE,
            registry=registry,
            buckets=DEFAULT_LATENCY_BUCKETS,
        )
        # Scale-out (vigil worker): what the worker holds and what waits on the broker for any worker.
        self.partitions_owned = Gauge(
            "partitions_owned",
            "Broker partitions this scoring worker holds (vigil worker).",
            # Labelled so that only a worker exports it (a labelled metric has no sample until set).
            ["role"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.broker_backlog = Gauge(
            "broker_backlog",
            "Messages on the broker not yet scored by any worker (vigil worker); growing: too few workers.",
            ["role"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.refresh_errors = Counter(
            "metrics_refresh_errors",
            "Failed periodic reads of the store gauges (pairs, outbox_pending).",
            namespace=NAMESPACE,
            registry=registry,
        )
        # Every shed reason is exported from the start, so a rate() over it never starts from nothing.
        for reason in ShedReason:
            self.shed.labels(reason=reason.value)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)

    # ------------------------------------------------------------------ IngestObserver

    def on_shed(self, reason: ShedReason) -> None:
        self.shed.labels(reason=reason.value).inc()
        self.messages.labels(outcome="shed").inc()

    def on_refused(self) -> None:
        self.refused.inc()

    def on_depth(self, depth: int) -> None:
        self.queue_depth.set(depth)

    def on_results(self, results: Sequence[HandleResult], *, seconds: float) -> None:
        self.batch_seconds.observe(seconds)
        self.observe_results(results)

    def on_batch_failed(self, size: int) -> None:
        self.messages.labels(outcome="error").inc(size)

    # ------------------------------------------------------------------ WorkerObserver (vigil worker)

    def on_partitions(self, count: int) -> None:
        self.partitions_owned.labels(role="worker").set(count)

    def on_backlog(self, count: int) -> None:
        self.broker_backlog.labels(role="worker").set(count)

    def observe_results(self, results: Sequence[HandleResult]) -> None:
        """Count outcomes and alert decisions (also usable without a queue, e.g. for a replay)."""
        for result in results:
            outcome = _OUTCOME_SCORED if result.skipped is None else str(result.skipped.value)
            self.messages.labels(outcome=outcome).inc()
            for event in result.alerts:
                self.alerts.labels(decision=event.decision.value).inc()

    # ------------------------------------------------------------------ store gauges and the detector

    def instrument(self, detector: Detector) -> InstrumentedDetector:
        return InstrumentedDetector(detector, histogram=self.detector_latency)

    async def refresh_store_gauges(self, store: ServiceGaugeStore) -> None:
        self.pairs.set(await store.count_pairs())
        self.outbox_pending.set(await store.pending_delivery_count())

    async def refresh_forever(self, store: ServiceGaugeStore, *, interval_s: float = 30.0) -> None:
        """Refresh the store gauges every ``interval_s`` until cancelled; failures are counted and logged."""
        while True:
            try:
                await self.refresh_store_gauges(store)
            except Exception as error:  # a metrics read must never stop the bot
                self.refresh_errors.inc()
                logger.warning("could not refresh the store metrics: %s", type(error).__name__)
            await asyncio.sleep(interval_s)


class InstrumentedDetector:
    """A ``Detector`` that records how long each ``score`` call takes; everything else is passed through."""

    def __init__(self, detector: Detector, *, histogram: Histogram) -> None:
        self._detector = detector
        self._histogram = histogram

    @property
    def info(self) -> ModelInfo:
        return self._detector.info

    @property
    def pair_model(self) -> PairModel:
        return self._detector.pair_model

    @property
    def reviewer(self) -> AlertReviewer | None:
        return self._detector.reviewer

    async def score(self, texts: Sequence[str]) -> list[MessageScore]:
        started = time.perf_counter()
        try:
            return await self._detector.score(texts)
        finally:
            self._histogram.observe(time.perf_counter() - started)

    async def aclose(self) -> None:
        await self._detector.aclose()


# ---------------------------------------------------------------------------------------------- the endpoint


class MetricsServer:
    """Serves ``GET /metrics`` for one ``VigilMetrics``. ``port=0`` picks a free port (see ``port``)."""

    def __init__(self, metrics: VigilMetrics, *, host: str = "127.0.0.1", port: int) -> None:
        self._metrics = metrics
        self._host = host
        self._requested_port = port
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        """The port actually listened on (after ``start``)."""
        if self._runner is None:
            raise RuntimeError("the metrics server is not started")
        for address in self._runner.addresses:
            if isinstance(address, tuple) and len(address) >= 2:
                return int(address[1])
        raise RuntimeError("the metrics server has no TCP address")

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("the metrics server is already started")
        app = web.Application()
        app.router.add_get("/metrics", self._serve_metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._requested_port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        logger.info("metrics endpoint listening on http://%s:%d/metrics", self._host, self.port)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def serve(self) -> None:
        """Start, serve until cancelled, then stop (for a ``TaskGroup``)."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _serve_metrics(self, request: web.Request) -> web.Response:
        # Prometheus text 0.0.4 by default; OpenMetrics when the scraper asks for it.
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encoder(self._metrics.registry), headers={"Content-Type": content_type})


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsSnapshot:
    """Samples read from a ``/metrics`` page: ``samples[name][labels] = value``; labels as sorted pairs."""

    samples: Mapping[str, Mapping[tuple[tuple[str, str], ...], float]]

    def value(self, name: str, **labels: str) -> float | None:
        return self.samples.get(name, {}).get(tuple(sorted(labels.items())))

    def total(self, name: str) -> float:
        return sum(self.samples.get(name, {}).values())

    @classmethod
    def parse(cls, text: str) -> MetricsSnapshot:
        samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
        return cls(samples=samples)


def format_status(snapshot: MetricsSnapshot) -> str:
    """A few lines for ``vigil status``: traffic, backlog, alerts and shedding of a running Vigil."""

    def labelled(name: str, label: str) -> str:
        values = {
            dict(labels).get(label, "?"): value
            for labels, value in snapshot.samples.get(name, {}).items()
            if value
        }
        return ", ".join(f"{key} {value:,.0f}" for key, value in sorted(values.items())) or "none"

    count = snapshot.value("vigil_detector_latency_seconds_count") or 0.0
    total = snapshot.value("vigil_detector_latency_seconds_sum") or 0.0
    mean_ms = f"{1000 * total / count:.1f} ms" if count else "-"
    partitions = snapshot.value("vigil_partitions_owned", role="worker")
    backlog = snapshot.value("vigil_broker_backlog", role="worker") or 0
    # Only a scoring worker (vigil worker) exports the broker's figures.
    broker = (
        [f"broker: {partitions:,.0f} partition(s) held; {backlog:,.0f} message(s) waiting for a worker"]
        if partitions is not None
        else []
    )
    return "\n".join(
        [
            *broker,
            f"messages: {labelled('vigil_messages_total', 'outcome')}",
            f"pairs: {snapshot.value('vigil_pairs') or 0:,.0f}",
            f"queue depth: {snapshot.value('vigil_queue_depth') or 0:,.0f}",
            f"alerts: {labelled('vigil_alerts_total', 'decision')}",
            f"outbox pending: {snapshot.value('vigil_outbox_pending') or 0:,.0f}",
            f"shed: {labelled('vigil_shed_total', 'reason')}; refused (429): "
            f"{snapshot.value('vigil_ingest_refused_total') or 0:,.0f}",
            f"detector: {count:,.0f} scoring calls, mean {mean_ms}",
        ]
    )


async def fetch_metrics(*, host: str = "127.0.0.1", port: int, timeout_s: float = 5.0) -> MetricsSnapshot:
    """Read a running Vigil's ``/metrics`` (raises ``aiohttp.ClientError`` / ``TimeoutError`` when down)."""
    async with (
        ClientSession(timeout=ClientTimeout(total=timeout_s)) as session,
        session.get(f"http://{host}:{port}/metrics") as response,
    ):
        response.raise_for_status()
        return MetricsSnapshot.parse(await response.text())


# ---------------------------------------------------------------------------------------------- logging

# Record attributes copied into JSON lines when a caller passes them with ``extra=``.
_CONTEXT_FIELDS = (
    "case_number",
    "alert_id",
    "platform",
    "space_id",
    "batch_size",
    "reason",
    "gateway_event",
    "error_type",
    "error_at",
)
# Ids the core already writes into its messages ("case 3 (alert 7)"), lifted into fields.
_CASE_IN_MESSAGE = re.compile(r"\bcase #?(\d+)\b")
_ALERT_IN_MESSAGE = re.compile(r"\balert (\d+)\b")
_HANDLER_MARK = "_vigil_handler"


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, case/alert ids and any context fields."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        for name in _CONTEXT_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                payload[name] = value
        if "case_number" not in payload and (case := _CASE_IN_MESSAGE.search(message)) is not None:
            payload["case_number"] = int(case.group(1))
        if "alert_id" not in payload and (alert := _ALERT_IN_MESSAGE.search(message)) is not None:
            payload["alert_id"] = int(alert.group(1))
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False, default=str)


def configure_logging(level: str | int, *, json: bool, stream: TextIO | None = None) -> logging.Handler:
    """Send the root logger's records to ``stream`` (stderr), as JSON lines or plain text. Idempotent.

    Also keeps ``aiosqlite`` (which logs bound parameters, i.e. message text, at DEBUG) at INFO or above.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_MARK, False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    setattr(handler, _HANDLER_MARK, True)
    if json:
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    quiet = logging.getLogger("aiosqlite")
    if quiet.getEffectiveLevel() < logging.INFO:
        quiet.setLevel(logging.INFO)
    return handler
