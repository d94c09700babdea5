"""End-to-end pipeline benchmark: real chat through the production path, against the detector's own limit.

    python -m benchmarks.pipeline --data /work/shared/data [--model-dir DIR] [--quick] [--json OUT]

The path is the one ``vigil run`` wires: ``open_app`` (settings defaults, the model directory, a
SQLite file, the outbox worker attached and running) with an ``IngestQueue`` in front of the ``Monitor``
(normalise, pair resolution, score, pair state and window, policy, alert + outbox row in one transaction per
micro-batch), ``VigilMetrics`` observing, and a recording alert sink. Replayed traffic is a mix of channel
logs, one-on-one chats and grooming conversations from the shared data, many conversations interleaved
(``benchmarks.common``).

1. warm-up;
2. detector-only limit: ``OnnxDetector.score`` on the raw texts of the saturation segment, 256-text chunks
   from 4 concurrent callers, same thread and batch settings (run before and after step 3; the best counts);
3. saturation: the segment offered as fast as the queue takes it (at most 512 messages outstanding, so
   nothing is shed); ``pipeline_msgs_per_s`` = messages / wall time;
4. latency: the following messages offered open-loop at 50% of the measured saturation rate, each at its
   scheduled arrival time; latency from that arrival to (a) the message's batch being committed (the pair's
   state is durable) and (b) the alert revision it produced being handed to the sink.

The policy is the production one with ``replay=True`` (no cooldown and no hourly cap, as ``vigil scan``),
because the hourly cap deliberately holds alerts back for an hour and would turn alert latency into the cap.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import logging
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import (
    ReplayMix,
    current_rss_mb,
    load_mix,
    machine,
    model_fingerprint,
    peak_rss_mb,
    percentile,
    write_json,
)
from vigil.bots.app import open_app
from vigil.bots.core.ingest import IngestQueue, ShedResult
from vigil.bots.core.models import Alert, ChatMessage, DeliveryResult
from vigil.bots.core.monitor import HandleResult
from vigil.bots.core.outbox import OutboxWorker
from vigil.bots.core.ports import Delivery
from vigil.bots.metrics import VigilMetrics
from vigil.config.settings import Settings
from vigil.detector.onnx_detector import OnnxDetector, load_default_model_dir

logger = logging.getLogger(__name__)

TARGET_RATIO = 0.70
TARGET_MSGS_PER_S = 300.0
TARGET_P99_MS = 250.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    warmup: int
    saturation: int
    latency_s: float
    window: int
    capacity: int
    max_batch: int


FULL = Plan(warmup=1000, saturation=20_000, latency_s=60.0, window=512, capacity=4096, max_batch=64)
QUICK = Plan(warmup=300, saturation=3000, latency_s=15.0, window=512, capacity=4096, max_batch=64)


class TimingSink:
    """Accepts every alert and records when each (alert, revision) was handed over."""

    def __init__(self) -> None:
        self.handed: dict[int, list[tuple[int, float]]] = {}

    def _record(self, alert: Alert) -> DeliveryResult:
        self.handed.setdefault(alert.alert_id, []).append((alert.revision, time.perf_counter()))
        return DeliveryResult(ok=True, ref=f"bench-{alert.alert_id}")

    async def post(self, delivery: Delivery) -> DeliveryResult:
        return self._record(delivery.alert)

    async def update(self, delivery: Delivery, *, ref: str) -> DeliveryResult:
        return self._record(delivery.alert)

    def handed_at(self, alert_id: int, revision: int) -> float | None:
        times = [at for rev, at in self.handed.get(alert_id, ()) if rev >= revision]
        return min(times) if times else None


@dataclass(slots=True)
class Recorder:
    """Arrival-to-commit latencies and the alert revisions messages produced, for one phase."""

    committed_s: list[float] = field(default_factory=list)
    # (alert_id, revision, arrival, committed) of every alert revision the phase's messages produced.
    alert_events: list[tuple[int, int, float, float]] = field(default_factory=list)
    shed: int = 0
    failed: int = 0
    done_at: float = 0.0

    def record(self, future: asyncio.Future[HandleResult], *, arrival: float) -> None:
        now = time.perf_counter()
        self.done_at = max(self.done_at, now)
        if future.cancelled() or future.exception() is not None:
            self.failed += 1
            return
        result = future.result()
        if isinstance(result, ShedResult):
            self.shed += 1
            return
        self.committed_s.append(now - arrival)
        for event in result.alerts:
            if not event.alert.shadow:
                self.alert_events.append((event.alert.alert_id, event.alert.revision, arrival, now))


async def feed_saturated(queue: IngestQueue, messages: Sequence[ChatMessage], *, window: int) -> Recorder:
    """Offer messages as fast as the queue takes them, at most ``window`` outstanding (so none is shed)."""
    recorder = Recorder()
    room = asyncio.Semaphore(window)
    pending: list[asyncio.Future[HandleResult]] = []

    def done(future: asyncio.Future[HandleResult], *, arrival: float) -> None:
        room.release()
        recorder.record(future, arrival=arrival)

    for message in messages:
        await room.acquire()
        arrival = time.perf_counter()
        future = queue.submit(message)
        future.add_done_callback(functools.partial(done, arrival=arrival))
        pending.append(future)
    await asyncio.gather(*pending, return_exceptions=True)
    return recorder


async def feed_at_rate(
    queue: IngestQueue, messages: Sequence[ChatMessage], *, rate: float, duration_s: float
) -> tuple[Recorder, int]:
    """Open loop: message i arrives at ``start + i / rate``; latency counts from that scheduled time."""
    recorder = Recorder()
    count = min(len(messages), int(rate * duration_s))
    pending: list[asyncio.Future[HandleResult]] = []
    start = time.perf_counter()
    sent = 0
    while sent < count:
        due = min(count, int((time.perf_counter() - start) * rate) + 1)
        while sent < due:
            arrival = start + sent / rate
            future = queue.submit(messages[sent])
            future.add_done_callback(functools.partial(recorder.record, arrival=arrival))
            pending.append(future)
            sent += 1
        await asyncio.sleep(max(0.0, start + sent / rate - time.perf_counter()))
    await asyncio.gather(*pending, return_exceptions=True)
    return recorder, count


async def detector_only(
    model_dir: Path, texts: Sequence[str], settings: Settings, *, chunk: int = 256, callers: int = 4
) -> float:
    """``OnnxDetector.score`` alone on ``texts``, in large chunks from concurrent callers: messages/s."""
    detector = await OnnxDetector.load(
        model_dir,
        intra_op_threads=settings.detector.intra_op_threads,
        inter_op_threads=settings.detector.inter_op_threads,
        max_batch=settings.detector.max_batch,
        queue_size=settings.detector.queue_size,
    )
    try:
        await detector.score(list(texts[:chunk]))  # warm-up
        chunks = iter([texts[i : i + chunk] for i in range(0, len(texts), chunk)])

        async def caller() -> None:
            for part in chunks:
                await detector.score(part)

        started = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for _ in range(callers):
                group.create_task(caller())
        return len(texts) / (time.perf_counter() - started)
    finally:
        await detector.aclose()


def alert_latencies(
    recorder: Recorder, sink: TimingSink, *, from_commit: bool = False
) -> tuple[list[float], int]:
    """Arrival (or commit) to the sink receiving that alert revision (or a later one)."""
    latencies: list[float] = []
    undelivered = 0
    for alert_id, revision, arrival, committed in recorder.alert_events:
        handed = sink.handed_at(alert_id, revision)
        if handed is None:
            undelivered += 1
        else:
            latencies.append(handed - (committed if from_commit else arrival))
    return latencies, undelivered


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000.0, 1)


def _summary(latencies_s: Sequence[float]) -> dict[str, Any]:
    return {
        "count": len(latencies_s),
        "p50_ms": _ms(percentile(latencies_s, 50)),
        "p95_ms": _ms(percentile(latencies_s, 95)),
        "p99_ms": _ms(percentile(latencies_s, 99)),
        "max_ms": _ms(max(latencies_s) if latencies_s else None),
    }


async def wait_for_outbox(outbox_pending: Callable[[], Awaitable[int]], *, timeout_s: float) -> None:
    for _ in range(int(timeout_s / 0.05)):
        if await outbox_pending() == 0:
            return
        await asyncio.sleep(0.05)


async def run_benchmark(arguments: argparse.Namespace) -> dict[str, Any]:
    plan = dataclasses.replace(
        QUICK if arguments.quick else FULL,
        **({"latency_s": arguments.latency_seconds} if arguments.latency_seconds else {}),
    )
    model_dir: Path = arguments.model_dir
    machine_before = machine()
    loading = time.perf_counter()
    # Enough for the latency phase at up to ~800 msg/s saturation (it runs at half of that).
    wanted = plan.warmup + plan.saturation + int(400 * plan.latency_s)
    mix: ReplayMix = await asyncio.to_thread(load_mix, arguments.data, messages=wanted)
    loading_s = time.perf_counter() - loading
    messages = mix.messages
    warmup = messages[: plan.warmup]
    saturation = messages[plan.warmup : plan.warmup + plan.saturation]
    latency_stream = messages[plan.warmup + plan.saturation :]

    base = Settings()
    threads = {"intra_op_threads": arguments.intra_op_threads} if arguments.intra_op_threads else {}
    settings = dataclasses.replace(
        base, detector=dataclasses.replace(base.detector, model_dir=str(model_dir), **threads)
    )
    sink = TimingSink()
    metrics = VigilMetrics()
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as folder:
        database = Path(folder) / "bench.sqlite3"
        async with open_app(
            settings, database=str(database), replay=True, metrics=metrics, backend=arguments.backend
        ) as p:
            outbox: OutboxWorker = p.attach_sink(sink)
            # As `vigil run` wires it: the detector timed by the metrics, the queue observed.
            queue = IngestQueue(
                monitor=p.monitor,
                capacity=plan.capacity,
                max_batch=plan.max_batch,
                concurrency=arguments.concurrency,
                observer=metrics,
            )
            model_name = f"{p.detector.info.name} {p.detector.info.version}"
            async with asyncio.TaskGroup() as group:
                workers = [group.create_task(queue.run()), group.create_task(outbox.run())]
                try:
                    await feed_saturated(queue, warmup, window=plan.window)
                    texts = [m.text for m in saturation]
                    limit_before = await detector_only(model_dir, texts, settings)

                    started = time.perf_counter()
                    saturated = await feed_saturated(queue, saturation, window=plan.window)
                    pipeline_s = saturated.done_at - started
                    pipeline_rate = len(saturation) / pipeline_s

                    limit_after = await detector_only(model_dir, texts, settings)
                    limit = max(limit_before, limit_after)

                    rate = arguments.rate or 0.5 * pipeline_rate
                    timed, offered = await feed_at_rate(
                        queue, latency_stream, rate=rate, duration_s=plan.latency_s
                    )
                    await wait_for_outbox(p.store.pending_delivery_count, timeout_s=30.0)
                    pairs = await p.store.count_pairs()
                finally:
                    queue.close()
                    await workers[0]
                    workers[1].cancel()
    alerts_timed, undelivered = alert_latencies(timed, sink)
    alerts_saturated, _ = alert_latencies(saturated, sink)
    handoff = [
        *alert_latencies(saturated, sink, from_commit=True)[0],
        *alert_latencies(timed, sink, from_commit=True)[0],
    ]
    commit = _summary(timed.committed_s)
    alert = _summary(alerts_timed)
    stats = queue.stats()
    result: dict[str, Any] = {
        "store": arguments.backend,
        "model": model_name,
        "model_dir": str(model_dir),
        "model_sha256": model_fingerprint(model_dir),
        "pipeline_msgs_per_s": round(pipeline_rate, 1),
        "detector_only_msgs_per_s": round(limit, 1),
        "ratio_to_detector": round(pipeline_rate / limit, 3),
        # Headline latency: arrival to durable (committed), every message, at 50% of saturation.
        "p50_ms": commit["p50_ms"],
        "p95_ms": commit["p95_ms"],
        "p99_ms": commit["p99_ms"],
        "committed_latency": commit,
        "alert_latency": {**alert, "undelivered": undelivered},
        "offered_rate_msgs_per_s": round(rate, 1),
        "latency_phase_messages": offered,
        "latency_phase_seconds": round(offered / rate, 1),
        "latency_phase_shed": timed.shed,
        "latency_phase_failed": timed.failed,
        "saturation_messages": len(saturation),
        "saturation_commit_latency": _summary(saturated.committed_s),
        "saturation_alert_latency": _summary(alerts_saturated),
        # Commit to sink (the outbox's share of alert latency), over every alert revision of both phases.
        "alert_handoff_latency": _summary(handoff),
        "queue_concurrency": arguments.concurrency,
        "intra_op_threads": settings.detector.intra_op_threads,
        "detector_only_runs_msgs_per_s": [round(limit_before, 1), round(limit_after, 1)],
        "alerts_handed_to_sink": sum(len(v) for v in sink.handed.values()),
        "pairs_in_database": pairs,
        "queue": {
            "capacity": plan.capacity,
            "max_batch": plan.max_batch,
            "processed": stats.processed,
            "shed": dict(stats.shed),
            "failed": stats.failed,
        },
        "mix": {"conversations": mix.conversations, "by_class": mix.by_class, "by_source": mix.by_source},
        "data_loading_s": round(loading_s, 1),
        "rss_mb_now": round(current_rss_mb(), 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "quick": bool(arguments.quick),
        "machine_before": machine_before,
        "machine_after": machine(),
        "targets": {
            "ratio_to_detector >= 0.70": pipeline_rate / limit >= TARGET_RATIO,
            "pipeline_msgs_per_s >= 300": pipeline_rate >= TARGET_MSGS_PER_S,
            "p99_ms < 250 (committed)": (commit["p99_ms"] or 0.0) < TARGET_P99_MS,
            "p99_ms < 250 (alert to sink)": alert["p99_ms"] is not None and alert["p99_ms"] < TARGET_P99_MS,
        },
    }
    return result


def report(result: dict[str, Any]) -> str:
    commit, alert = result["committed_latency"], result["alert_latency"]
    lines = [
        f"model {result['model']} ({result['model_dir']}, model.onnx sha256 {result['model_sha256']})",
        f"machine: {result['machine_before']['nproc']} cores {result['machine_before']['cpu_model']}; "
        f"load average before {result['machine_before']['load_average']}, "
        f"after {result['machine_after']['load_average']}",
        f"store: {result['store']}",
        f"mix: {result['mix']['conversations']} conversations {result['mix']['by_class']}",
        f"pipeline (saturated, {result['saturation_messages']} messages): "
        f"{result['pipeline_msgs_per_s']:.1f} msg/s",
        f"detector only (same texts): {result['detector_only_msgs_per_s']:.1f} msg/s "
        f"(runs {result['detector_only_runs_msgs_per_s']})",
        f"ratio to detector: {result['ratio_to_detector']:.2f}",
        f"latency at {result['offered_rate_msgs_per_s']:.0f} msg/s offered "
        f"({result['latency_phase_messages']} messages, {result['latency_phase_shed']} shed):",
        f"  arrival -> committed: p50 {commit['p50_ms']} ms, p95 {commit['p95_ms']} ms, "
        f"p99 {commit['p99_ms']} ms (n={commit['count']})",
        f"  arrival -> alert at sink: p50 {alert['p50_ms']} ms, p95 {alert['p95_ms']} ms, "
        f"p99 {alert['p99_ms']} ms (n={alert['count']}, undelivered {alert['undelivered']})",
        f"  commit -> alert at sink (all phases): p50 {result['alert_handoff_latency']['p50_ms']} ms, "
        f"p99 {result['alert_handoff_latency']['p99_ms']} ms (n={result['alert_handoff_latency']['count']})",
        f"peak RSS {result['peak_rss_mb']} MB",
        "targets: " + ", ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in result["targets"].items()),
    ]
    return "\n".join(lines)


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pipeline", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", type=Path, required=True, help="the shared data folder (has conversations/)"
    )
    parser.add_argument("--model-dir", type=Path, default=load_default_model_dir())
    parser.add_argument("--quick", action="store_true", help="3,000 saturation messages, 15 s of latency")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--concurrency", type=int, default=2, help="IngestQueue batches in flight")
    parser.add_argument(
        "--intra-op-threads", type=int, help="[detector] intra_op_threads (default: the config default)"
    )
    parser.add_argument(
        "--rate", type=float, help="offered rate of the latency phase (default: 50%% of saturation)"
    )
    parser.add_argument("--latency-seconds", type=float, help="length of the latency phase")
    parser.add_argument(
        "--backend",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="the store: a fresh SQLite file (default), or the empty PostgreSQL database whose DSN is in "
        "VIGIL_POSTGRES_DSN",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING)
    arguments = parse_arguments(argv)
    result = asyncio.run(run_benchmark(arguments))
    print(report(result))
    if arguments.json is not None:
        write_json(arguments.json, result)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(main())
