"""The ``vigil`` command line: the one place where settings, store, detector, monitor and sinks are wired."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib.metadata
import json
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, TextIO

import aiohttp

from vigil.bots.case_commands import register_case_commands
from vigil.bots.cli_help import add_command
from vigil.bots.core.case_service import CaseService
from vigil.bots.core.ingest import IngestQueue
from vigil.bots.core.models import ChatMessage
from vigil.bots.core.monitor import HandleResult, Monitor, MonitorConfig
from vigil.bots.core.outbox import OutboxConfig, OutboxWorker
from vigil.bots.core.policy import Decision, PolicyConfig
from vigil.bots.core.protocols import AlertSink
from vigil.bots.core.replay import (
    BadRecord,
    ConversationRecord,
    SegmentRecord,
    iter_records,
    record_to_messages,
)
from vigil.bots.core.retention import RetentionSchedule, RetentionTask
from vigil.bots.core.segments import score_segment
from vigil.bots.core.sinks import ConsoleSink, MirroredSink, RoutingSink
from vigil.bots.http.signing import MIN_SECRET_CHARS
from vigil.bots.importers import conversation_to_messages, display_names_of, iter_conversations
from vigil.bots.metrics import MetricsServer, VigilMetrics, configure_logging, fetch_metrics, format_status
from vigil.bots.resources import SHOWABLE, demo_conversations_path, shipped_text
from vigil.bots.scan_report import write_scan_report
from vigil.config.settings import (
    ConfigError,
    Secret,
    Secrets,
    Settings,
    check_settings,
    load_settings,
    resolve_secrets,
)
from vigil.detector.golden import GoldenCheck, RuntimeVersions
from vigil.detector.metrics import ConversationOutcome, SegmentOutcome, summarise, summarise_segments
from vigil.detector.onnx_detector import (
    ModelLoadError,
    OnnxDetector,
    RuntimeCheck,
    RuntimeDriftError,
    resolve_model_dir,
)
from vigil.storage.crypto import TextCipher
from vigil.storage.protocol import StoreError
from vigil.storage.sqlite import SqliteStore

logger = logging.getLogger(__name__)

# Replays feed the monitor in chunks; records are replayed concurrently so the detector can batch them.
REPLAY_CHUNK = 64
REPLAY_CONCURRENCY = 8


class CliError(Exception):
    """A problem the person at the terminal can fix; printed without a traceback."""


class Pipeline:
    """Store, detector, monitor and case service, opened together; the outbox is attached once sinks exist.

    The monitor and the case service are built before the adapters (which need them), and the outbox after
    (it needs the adapters' sinks), so both notify the outbox through the pipeline.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        store: SqliteStore,
        detector: OnnxDetector,
        policy: PolicyConfig,
        metrics: VigilMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.detector = detector
        self.signal_labels = detector.info.signal_words()
        self.monitor = Monitor(
            store=store,
            detector=metrics.instrument(detector) if metrics is not None else detector,
            config=MonitorConfig(
                policy=policy,
                window_messages=settings.policy.window_messages,
                evidence_messages=settings.policy.evidence_messages,
            ),
            on_delivery_enqueued=self.notify_outbox,
        )
        self.cases = CaseService(
            store=store,
            dismiss_snooze=timedelta(minutes=settings.policy.cooldown_minutes),
            hold_period=RetentionSchedule.from_settings(settings.retention).hold_period,
            on_delivery_enqueued=self.notify_outbox,
        )
        self._outbox: OutboxWorker | None = None

    def attach_sink(self, sink: AlertSink) -> OutboxWorker:
        if self._outbox is not None:
            raise RuntimeError("an alert sink is already attached")
        self._outbox = OutboxWorker(
            store=self.store,
            sink=sink,
            config=OutboxConfig(
                retry_initial_s=self.settings.outbox.retry_initial_s,
                retry_max_s=self.settings.outbox.retry_max_s,
                poll_interval_s=self.settings.outbox.poll_interval_s,
            ),
        )
        return self._outbox

    def notify_outbox(self) -> None:
        if self._outbox is not None:
            self._outbox.notify()


def _settings(path: str | None) -> tuple[Settings, Path]:
    if path is None:
        return load_settings(None), Path.cwd()
    config_path = Path(path)
    return load_settings(config_path), config_path.resolve().parent


@contextlib.asynccontextmanager
async def open_pipeline(
    settings: Settings,
    *,
    database: str,
    replay: bool,
    threshold: float | None = None,
    metrics: VigilMetrics | None = None,
) -> AsyncIterator[Pipeline]:
    """Open the detector and the store (with the configured cipher) and build the pipeline on them.

    ``replay`` is for offline runs over files (scan, eval): no hourly cap and no cooldown, since replayed
    timestamps and wall time mean nothing for moderators' workload.
    """
    model_dir = resolve_model_dir(settings.detector.model_dir)
    detector = await OnnxDetector.load(
        model_dir,
        intra_op_threads=settings.detector.intra_op_threads,
        inter_op_threads=settings.detector.inter_op_threads,
        max_batch=settings.detector.max_batch,
        queue_size=settings.detector.queue_size,
        accept_runtime_drift=settings.detector.accept_runtime_drift,
    )
    try:
        store = SqliteStore(database, cipher=TextCipher.from_environment(settings.encryption, os.environ))
        await store.open()
        try:
            policy = _policy(settings, detector, replay=replay, threshold=threshold)
            yield Pipeline(settings=settings, store=store, detector=detector, policy=policy, metrics=metrics)
        finally:
            await store.close()
    finally:
        await detector.aclose()


def _policy(
    settings: Settings, detector: OnnxDetector, *, replay: bool, threshold: float | None
) -> PolicyConfig:
    configured = settings.policy
    defaults = detector.metadata.get("policy_defaults", {})
    chosen_threshold = threshold or configured.threshold or detector.info.default_threshold
    return PolicyConfig(
        threshold=chosen_threshold,
        sustain_messages=configured.sustain_messages or int(defaults.get("sustain_messages", 3)),
        hysteresis=min(configured.hysteresis, chosen_threshold / 2),
        cooldown=timedelta(0) if replay else timedelta(minutes=configured.cooldown_minutes),
        update_min_delta=configured.update_min_delta,
        max_alerts_per_hour=1_000_000 if replay else configured.max_alerts_per_hour,
        shadow_mode=configured.shadow_mode,
    )


async def _write_json(path: Path, payload: object) -> None:
    await asyncio.to_thread(path.write_text, json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def _chunks(messages: Sequence[ChatMessage], size: int) -> Iterator[Sequence[ChatMessage]]:
    for start in range(0, len(messages), size):
        yield messages[start : start + size]


class _Progress:
    """Prints a progress line to stderr at most every few seconds on long runs."""

    def __init__(self, label: str, *, every_s: float = 5.0, stream: TextIO = sys.stderr) -> None:
        self._label = label
        self._every_s = every_s
        self._stream = stream
        self._started = time.perf_counter()
        self._last = self._started
        self.messages = 0
        self.conversations = 0

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._started

    def tick(self, *, messages: int, conversations: int = 0) -> None:
        self.messages += messages
        self.conversations += conversations
        now = time.perf_counter()
        if now - self._last >= self._every_s:
            self._last = now
            rate = self.messages / max(now - self._started, 1e-9)
            self._stream.write(
                f"{self._label}: {self.conversations:,} conversations, {self.messages:,} messages, "
                f"{rate:,.0f} msg/s\n"
            )
            self._stream.flush()


# ---------------------------------------------------------------- demo


async def _demo(args: argparse.Namespace) -> int:
    settings, _ = _settings(args.config)
    data = Path(args.data) if args.data else demo_conversations_path()
    if not data.exists():
        raise CliError(f"demo data not found: {data}")
    out = sys.stdout
    with tempfile.TemporaryDirectory(prefix="vigil-demo-") as tmp:
        database = str(Path(tmp) / "vigil-demo.sqlite3")
        async with open_pipeline(settings, database=database, replay=True) as pipeline:
            outbox = pipeline.attach_sink(ConsoleSink(out, signal_labels=pipeline.signal_labels))
            out.write(
                f"Vigil demo · model {pipeline.detector.info.name} {pipeline.detector.info.version} · "
                f"threshold {pipeline.monitor.config.policy.threshold:.2f} · database {database}\n\n"
            )
            flagged: list[str] = []
            total = 0
            for record in iter_records(data):
                if not isinstance(record, ConversationRecord):
                    continue
                messages = record_to_messages(record, platform="demo")
                total += 1
                description = ""
                out.write(f"▶ {record.id} · {record.setting} · {len(messages)} messages {description}\n")
                alerts = 0
                for chunk in _chunks(messages, REPLAY_CHUNK):
                    results = await pipeline.monitor.handle_batch(chunk)
                    alerts += sum(1 for r in results for e in r.alerts if e.decision is Decision.RAISE)
                    await outbox.drain_once()
                if alerts:
                    flagged.append(record.id)
                else:
                    out.write("  no alert: nothing here for moderators\n\n")
            out.write(
                f"Demo finished: {total} conversations replayed, flagged: {', '.join(flagged) or 'none'}.\n"
            )
    return 0


# ---------------------------------------------------------------- scan


async def _scan(args: argparse.Namespace) -> int:
    settings, _ = _settings(args.config)
    paths = [Path(p) for p in args.files]
    for path in paths:
        if not path.exists():
            raise CliError(f"no such file: {path}")
    style: Literal["text", "json"] = "json" if args.json else "text"
    async with open_pipeline(settings, database=args.db, replay=True) as pipeline:
        outbox = pipeline.attach_sink(
            ConsoleSink(sys.stdout, signal_labels=pipeline.signal_labels, style=style)
        )
        progress = _Progress("scan")
        alerts = bad = skipped = 0
        names: dict[str, str] = {}
        spaces: set[tuple[str, str]] = set()
        pending: list[ChatMessage] = []

        async def feed(chunk: Sequence[ChatMessage]) -> int:
            results = await pipeline.monitor.handle_batch(chunk)
            progress.tick(messages=len(chunk))
            await outbox.drain_once()
            return sum(1 for r in results for e in r.alerts if e.decision is Decision.RAISE)

        for path in paths:
            for record in iter_conversations(path):
                if isinstance(record, BadRecord):
                    bad += 1
                    print(f"{record.path}:{record.line_number}: skipped: {record.reason}", file=sys.stderr)
                    continue
                if isinstance(record, SegmentRecord):
                    skipped += 1
                    continue
                messages = conversation_to_messages(record, platform="scan")
                names.update(display_names_of(record))
                spaces.update((m.platform, m.space_id) for m in messages[:1])
                # Chunks may span records (order is kept), so files of many tiny conversations batch too.
                pending.extend(messages)
                while len(pending) >= REPLAY_CHUNK:
                    alerts += await feed(pending[:REPLAY_CHUNK])
                    del pending[:REPLAY_CHUNK]
                progress.tick(messages=0, conversations=1)
        if pending:
            alerts += await feed(pending)
        await outbox.drain_once()
        pairs = await pipeline.store.count_pairs()
        # Read alerts back from the store, so a resumed scan's report includes the earlier run's alerts.
        flagged = [
            alert
            for platform, space in sorted(spaces)
            for alert in await pipeline.store.alerts_for_space(
                platform=platform, space_id=space, limit=100_000
            )
        ]
        elapsed = progress.elapsed
        summary = {
            "files": len(paths),
            "conversations": progress.conversations,
            "messages": progress.messages,
            "pairs": pairs,
            "alerts": alerts,
            "bad_records": bad,
            "segments_skipped": skipped,
            "seconds": round(elapsed, 2),
            "messages_per_second": round(progress.messages / max(elapsed, 1e-9), 1),
        }
        if args.report:
            await write_scan_report(
                flagged,
                out_html=Path(f"{args.report}.html"),
                out_json=Path(f"{args.report}.json"),
                signal_labels=pipeline.signal_labels,
                display_names=names,
                summary=summary,
            )
            print(f"report: {args.report}.html and {args.report}.json", file=sys.stderr)
    print(
        f"Scan summary: {summary['conversations']:,} conversations, {summary['messages']:,} messages, "
        f"{pairs:,} pairs, {alerts:,} new alerts ({len(flagged):,} in the database), {bad} bad records "
        f"skipped, {summary['messages_per_second']:,} messages/s",
        file=sys.stderr,
    )
    print(
        f"kept: {args.db} holds the scanned messages' text and the alerts; run the same scan again to "
        "resume, or delete it when you are done",
        file=sys.stderr,
    )
    if args.summary_json:
        await _write_json(Path(args.summary_json), summary)
    return 0


# ---------------------------------------------------------------- eval


@dataclass(slots=True)
class _Tracker:
    """Folds one replayed conversation's monitor results into a ``ConversationOutcome``."""

    record: ConversationRecord
    seen: int = 0
    first_alert_index: int | None = None
    first_alert_suspect_id: str | None = None
    alerted_suspect_ids: set[str] = field(default_factory=set)
    alerted_on_suspect_pair: bool = False
    alerts: int = 0
    max_risk: float = 0.0

    def add(self, results: Sequence[HandleResult]) -> None:
        suspects = set(self.record.suspects)
        for result in results:
            self.seen += 1
            for pair in result.pairs:
                self.max_risk = max(self.max_risk, pair.risk)
            for event in result.alerts:
                alert = event.alert
                if event.decision is Decision.RAISE:
                    self.alerts += 1
                    if self.first_alert_index is None:
                        self.first_alert_index = self.seen
                        self.first_alert_suspect_id = alert.suspect_id
                    if alert.key.user_a in suspects or alert.key.user_b in suspects:
                        self.alerted_on_suspect_pair = True
                # An update can move attribution to the other member: that counts for the victim-flag rate.
                self.alerted_suspect_ids.add(alert.suspect_id)

    def outcome(self) -> ConversationOutcome:
        return ConversationOutcome(
            source=self.record.source,
            label=self.record.label,
            interleaved=self.record.interleaved,
            messages=len(self.record.messages),
            suspects=frozenset(self.record.suspects),
            first_alert_index=self.first_alert_index,
            first_alert_suspect_id=self.first_alert_suspect_id,
            alerted_suspect_ids=frozenset(self.alerted_suspect_ids),
            alerted_on_suspect_pair=self.alerted_on_suspect_pair,
            alerts_count=self.alerts,
            max_risk=self.max_risk,
        )


async def _eval_conversation(
    pipeline: Pipeline, record: ConversationRecord, progress: _Progress
) -> ConversationOutcome:
    # Each record is its own space so that no state leaks between conversations.
    messages = [
        dataclasses.replace(m, space_id=f"{record.source}/{record.id}")
        for m in record_to_messages(record, platform="eval")
    ]
    tracker = _Tracker(record=record)
    for chunk in _chunks(messages, REPLAY_CHUNK):
        tracker.add(await pipeline.monitor.handle_batch(chunk))
        progress.tick(messages=len(chunk))
    progress.tick(messages=0, conversations=1)
    return tracker.outcome()


async def _eval(args: argparse.Namespace) -> int:
    settings, _ = _settings(args.config)
    settings = dataclasses.replace(settings, policy=dataclasses.replace(settings.policy, shadow_mode=True))
    paths = [Path(p) for p in args.data]
    for path in paths:
        if not path.exists():
            raise CliError(f"no such file: {path}")
    outcomes: list[ConversationOutcome] = []
    segments: list[SegmentOutcome] = []
    bad: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="vigil-eval-") as tmp:
        database = str(Path(tmp) / "eval.sqlite3")
        async with open_pipeline(
            settings, database=database, replay=True, threshold=args.threshold
        ) as pipeline:
            progress = _Progress("eval")
            pending: set[asyncio.Task[ConversationOutcome]] = set()
            for path in paths:
                for record in iter_records(path):
                    if isinstance(record, BadRecord):
                        bad.append(
                            {"path": str(record.path), "line": record.line_number, "reason": record.reason}
                        )
                        print(
                            f"{record.path}:{record.line_number}: skipped: {record.reason}", file=sys.stderr
                        )
                        continue
                    if isinstance(record, SegmentRecord):
                        # The whole text, cut into message-sized chunks run through the pair model.
                        scored = await score_segment(pipeline.detector, record.text)
                        segments.append(
                            SegmentOutcome(source=record.source, label=record.label, score=scored.risk)
                        )
                        progress.tick(messages=scored.chunks, conversations=1)
                        continue
                    if len(pending) >= REPLAY_CONCURRENCY:
                        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                        outcomes.extend(task.result() for task in done)
                    pending.add(asyncio.create_task(_eval_conversation(pipeline, record, progress)))
            if pending:
                outcomes.extend(await asyncio.gather(*pending))
            elapsed = progress.elapsed
            threshold = pipeline.monitor.config.policy.threshold
    report: dict[str, object] = {}
    if outcomes:
        report.update(summarise(outcomes, elapsed_s=elapsed))
    if segments:
        report["segments"] = summarise_segments(segments, threshold=threshold)
    report["threshold"] = threshold
    report["bad_records"] = bad
    _print_eval_table(report)
    if args.json:
        await _write_json(Path(args.json), report)
    return 0


_TABLE_KEYS = (
    ("conversations_pos", "pos"),
    ("conversations_neg", "neg"),
    ("messages", "messages"),
    ("precision", "P"),
    ("recall", "R"),
    ("f0_5", "F0.5"),
    ("pr_auc", "PR-AUC"),
    ("suspect_accuracy", "suspect"),
    ("victim_flag_rate", "victim"),
    ("median_fraction_seen", "seen@alert"),
    ("false_alerts_per_10k_messages", "FA/10k"),
)


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _print_eval_table(report: dict[str, object]) -> None:
    rows: list[tuple[str, dict[str, object]]] = []
    by_source = report.get("by_source")
    if isinstance(by_source, dict):
        rows.extend(
            (str(name), values) for name, values in sorted(by_source.items()) if isinstance(values, dict)
        )
    if "messages" in report:
        rows.append(("ALL", report))
    if rows:
        header = ["source", *(label for _, label in _TABLE_KEYS)]
        table = [
            header,
            *([name, *(_fmt(values.get(key)) for key, _ in _TABLE_KEYS)] for name, values in rows),
        ]
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        for row in table:
            print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
        print(
            f"speed {_fmt(report.get('speed'))} · F-latency {_fmt(report.get('f_latency'))} · "
            f"{_fmt(report.get('messages_per_second'))} messages/s · "
            f"threshold {_fmt(report.get('threshold'))}"
        )
    segments = report.get("segments")
    if isinstance(segments, dict):
        print(
            "segments: "
            + ", ".join(
                f"{k} {_fmt(segments.get(k))}"
                for k in ("segments_pos", "segments_neg", "precision", "recall", "f0_5", "pr_auc")
            )
        )


# ---------------------------------------------------------------- check-config and run


async def _check_config(args: argparse.Namespace) -> int:
    settings, _ = _settings(args.config)
    problems = list(check_settings(settings, os.environ))
    problems.extend(_secret_value_problems(settings, os.environ))
    model_dir = resolve_model_dir(settings.detector.model_dir)
    try:
        detector = await OnnxDetector.load(
            model_dir,
            intra_op_threads=1,
            max_batch=1,
            accept_runtime_drift=settings.detector.accept_runtime_drift,
        )
    except RuntimeDriftError as exc:
        golden = exc.check.golden
        print(f"model: {golden.model_name} {golden.model_version} from {model_dir}")
        print(_runtime_line(exc.check))
        print(
            f"golden check: FAILED (max diff {exc.check.max_diff:.4f} over {len(golden.cases)} inputs, "
            f"tolerance {golden.tolerance:g}; {exc.check.largest.describe()})"
        )
        problems.append(f"model: {exc}")
    except ModelLoadError as exc:
        problems.append(f"model: {exc}")
    else:
        check = detector.runtime_check
        print(f"model: {detector.info.name} {detector.info.version} from {model_dir}")
        print(_runtime_line(check.check))
        print(check.describe())
        problems.extend(_runtime_notes(check, model_dir=model_dir))
        await detector.aclose()
    print(f"config: {args.config or '(defaults)'}")
    for problem in problems:
        print(f"- {problem}")
    fatal = [p for p in problems if not p.startswith("note:")]
    print("OK" if not fatal else f"{len(fatal)} problem(s) found")
    return 0 if not fatal else 1


def _secret_value_problems(settings: Settings, environ: Mapping[str, str]) -> list[str]:
    """What ``vigil run`` would refuse about a set secret's value (never the value itself)."""
    problems: list[str] = []
    secrets = resolve_secrets(settings, environ)
    checked: list[tuple[str, Secret | None]] = []
    if settings.http.enabled:
        checked.append((settings.http.secret_env, secrets.http_secret))
        if settings.http.webhook_url:
            checked.append((settings.http.webhook_secret_env, secrets.webhook_secret))
    for name, secret in checked:
        if secret is not None and len(secret.reveal()) < MIN_SECRET_CHARS:
            problems.append(
                f"the environment variable {name} holds {len(secret.reveal())} characters; "
                f"it must hold at least {MIN_SECRET_CHARS}"
            )
    try:
        TextCipher.from_environment(settings.encryption, environ)
    except ConfigError as exc:
        problems.extend(exc.problems)
    return problems


def _runtime_line(check: GoldenCheck | None) -> str:
    line = f"runtime: {RuntimeVersions.current().describe()}"
    if check is not None:
        made = check.golden.produced_with
        line += f"; goldens made with onnxruntime {made.onnxruntime}, tokenizers {made.tokenizers}"
    return line


def _runtime_notes(check: RuntimeCheck, *, model_dir: Path) -> list[str]:
    if check.status == "drift_accepted" and check.check is not None:
        made = check.check.golden.produced_with
        return [
            "note: this runtime scores the model beyond the golden tolerance, so its scores and alert "
            "decisions moved from what was calibrated; running anyway because [detector] "
            f"accept_runtime_drift = true (onnxruntime=={made.onnxruntime} and tokenizers=={made.tokenizers} "
            "remove the drift)"
        ]
    if check.status == "unchecked":
        return [
            f"note: {model_dir} has no golden.json, so this runtime cannot be checked against the one the "
            f"model was calibrated on (write one: python -m training.golden --model-dir {model_dir})"
        ]
    return []


@dataclass(slots=True)
class _Services:
    """What ``vigil run`` starts besides the outbox: long-running coroutines and how to close them."""

    runs: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    closers: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    sinks: dict[str, AlertSink] = field(default_factory=dict)
    fallback: AlertSink | None = None
    # [console] enabled: every alert delivered elsewhere is printed too (alone, the console is the sink).
    console: AlertSink | None = None
    names: list[str] = field(default_factory=list)

    def alert_sink(self) -> AlertSink:
        if self.console is not None and not self.sinks and self.fallback is None:
            return self.console
        routing = RoutingSink(self.sinks, fallback=self.fallback)
        return routing if self.console is None else MirroredSink(routing, mirror=self.console)


def _required(secret: Secret | None, *, what: str) -> Secret:
    if secret is None:  # check_settings reported it already; this guards a changed environment
        raise CliError(f"{what} is not set in the environment")
    return secret


def _build_services(pipeline: Pipeline, *, secrets: Secrets, handler: IngestQueue) -> _Services:
    # Imported here: only `vigil run` needs the platform libraries, and they cost every other command ~0.5 s.
    from vigil.bots.discord import DiscordAdapter  # noqa: PLC0415
    from vigil.bots.http import HttpApi, PollingSink, WebhookSink  # noqa: PLC0415
    from vigil.bots.slack import SlackAdapter, read_oauth_credentials  # noqa: PLC0415

    settings = pipeline.settings
    labels = pipeline.signal_labels
    services = _Services()
    if settings.discord.enabled:
        discord_adapter = DiscordAdapter(
            settings=settings.discord,
            token=_required(secrets.discord_token, what=settings.discord.token_env),
            handler=handler,
            monitor=pipeline.monitor,
            cases=pipeline.cases,
            store=pipeline.store,
            signal_labels=labels,
        )
        services.sinks["discord"] = discord_adapter.sink
        services.runs.append(discord_adapter.run)
        services.closers.append(discord_adapter.aclose)
        services.names.append("discord")
    if settings.slack.enabled:
        slack_adapter = SlackAdapter(
            settings=settings.slack,
            secrets=secrets,
            handler=handler,
            monitor=pipeline.monitor,
            cases=pipeline.cases,
            store=pipeline.store,
            oauth=read_oauth_credentials(settings.slack, os.environ) if settings.slack.oauth else None,
            signal_labels=labels,
        )
        services.sinks["slack"] = slack_adapter.sink
        services.runs.append(slack_adapter.run)
        services.closers.append(slack_adapter.aclose)
        services.names.append(f"slack ({settings.slack.mode} mode)")
    if settings.http.enabled:
        api = HttpApi(
            settings=settings.http,
            secret=_required(secrets.http_secret, what=settings.http.secret_env),
            handler=handler,
            cases=pipeline.cases,
            store=pipeline.store,
            signal_labels=labels,
        )
        services.runs.append(api.run)
        services.closers.append(api.aclose)
        services.names.append(f"http api on {settings.http.host}:{settings.http.port}")
        # Self-hosted platforms name themselves, so their alerts take the fallback route.
        if settings.http.webhook_url:
            webhook = WebhookSink(
                settings.http.webhook_url,
                _required(secrets.webhook_secret, what=settings.http.webhook_secret_env),
                signal_labels=labels,
                cases=pipeline.cases,
            )
            services.closers.append(webhook.aclose)
            services.fallback = webhook
    if settings.console.enabled:
        services.names.append("console")
        services.console = ConsoleSink(sys.stdout, signal_labels=labels, style="json")
    if settings.http.enabled and services.fallback is None:
        # No webhook: platforms read alerts through GET /v1/cases, so posting is a no-op that always succeeds.
        services.fallback = PollingSink()
    return services


async def _run(args: argparse.Namespace) -> int:
    # Platform libraries load only for `vigil run` (see _build_services).
    from vigil.bots.discord import DiscordFatalError  # noqa: PLC0415
    from vigil.bots.slack import SlackAdapterError  # noqa: PLC0415

    settings, config_dir = _settings(args.config)
    configure_logging(args.log_level or settings.logging.level, json=settings.logging.json)
    problems = [p for p in check_settings(settings, os.environ) if not p.startswith("note:")]
    if problems:
        raise CliError("cannot start:\n" + "\n".join(f"- {p}" for p in problems))
    if not any(
        (settings.discord.enabled, settings.slack.enabled, settings.http.enabled, settings.console.enabled)
    ):
        raise CliError("nothing to run: enable [discord], [slack], [http] or [console] in the config")
    secrets = resolve_secrets(settings, os.environ)
    database = settings.resolved_database_path(config_dir)
    metrics = VigilMetrics()
    async with open_pipeline(settings, database=database, replay=False, metrics=metrics) as pipeline:
        # Every platform feeds one bounded queue: backpressure, documented shedding (docs/operations.md).
        queue = IngestQueue(
            monitor=pipeline.monitor,
            capacity=settings.ingest.capacity,
            max_batch=settings.detector.max_batch,
            observer=metrics,
        )
        services = _build_services(pipeline, secrets=secrets, handler=queue)
        outbox = pipeline.attach_sink(services.alert_sink())
        retention = RetentionTask(
            store=pipeline.store, schedule=RetentionSchedule.from_settings(settings.retention)
        )
        background: list[Callable[[], Coroutine[Any, Any, None]]] = [
            outbox.run,
            retention.run,
            lambda: metrics.refresh_forever(pipeline.store),
        ]
        if settings.metrics.enabled:
            background.append(
                MetricsServer(metrics, host=settings.metrics.host, port=settings.metrics.port).serve
            )
            services.names.append(f"metrics on {settings.metrics.host}:{settings.metrics.port}")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        logger.info("vigil running: %s; database %s", ", ".join(services.names), database)
        try:
            async with asyncio.TaskGroup() as group:
                workers = [group.create_task(run()) for run in background]
                draining = group.create_task(queue.run())
                adapters = [group.create_task(run()) for run in services.runs]
                await stop.wait()
                logger.info("stopping: finishing work in flight")
                for task in adapters:
                    task.cancel()
                queue.close()  # accepted messages are still scored and stored; then run() returns
                await draining
                await outbox.drain_once()
                for task in workers:
                    task.cancel()
        except* (DiscordFatalError, SlackAdapterError) as fatal:
            raise CliError("; ".join(str(error) for error in fatal.exceptions)) from None
        finally:
            for close in services.closers:
                with contextlib.suppress(Exception):
                    await close()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
        logger.info("vigil stopped")
    return 0


async def _status(args: argparse.Namespace) -> int:
    settings, _ = _settings(args.config)
    host, port = settings.metrics.host, settings.metrics.port
    try:
        snapshot = await fetch_metrics(host=host, port=port)
    except (aiohttp.ClientError, TimeoutError, OSError):
        print(f"no running Vigil answered on {host}:{port} (is `vigil run` up, with [metrics] enabled?)")
        return 1
    print(format_status(snapshot))
    return 0


async def _show(args: argparse.Namespace) -> int:
    sys.stdout.write(shipped_text(args.name))
    return 0


# ---------------------------------------------------------------- entry point


def _installed_version() -> str:
    try:
        return importlib.metadata.version("vigil")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vigil", description="Flags likely child-grooming conversations for human moderators."
    )
    parser.add_argument("--config", "-c", help="TOML config file (default: built-in defaults)")
    parser.add_argument("--log-level", default=None, help="override [logging] level")
    parser.add_argument("--version", action="version", version=f"vigil {_installed_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = add_command(
        sub,
        "demo",
        summary="replay the bundled example conversations and show the alerts",
        examples=("vigil demo", "vigil demo --data my-conversations.jsonl"),
    )
    demo.add_argument("--data", help="a conversations file to replay instead of the bundled one")
    demo.set_defaults(handler=_demo)

    scan = add_command(
        sub,
        "scan",
        summary="replay chat exports and print alerts: DiscordChatExporter JSON, Slack export zip or folder, "
        "JSON Lines (.jsonl, .jsonl.xz)",
        examples=(
            "vigil scan exports/general.json exports/dms.json --report scan",
            "vigil scan slack-export.zip --db /tmp/scan.sqlite3   # keep the scan's database out of the way",
        ),
    )
    scan.add_argument("files", nargs="+")
    scan.add_argument(
        "--report", metavar="PREFIX", help="also write PREFIX.html and PREFIX.json (flagged pairs)"
    )
    scan.add_argument(
        "--db",
        default="vigil-scan.sqlite3",
        help="SQLite file the scan keeps: the scanned messages' text (encrypted only with [encryption]), "
        "pairs and alerts; a re-run with the same file resumes and reports only new alerts; delete it when "
        "done (default: %(default)s in the current folder)",
    )
    scan.add_argument("--json", action="store_true", help="print alerts as JSON lines")
    scan.add_argument("--summary-json", help="also write the summary to this file")
    scan.set_defaults(handler=_scan)

    evaluate = add_command(
        sub,
        "eval",
        summary="measure the detector through the production monitor and policy",
        examples=(
            "vigil eval --data examples/realistic_heldout.jsonl",
            "vigil eval --data labelled.jsonl --threshold 0.9 --json metrics.json",
        ),
    )
    evaluate.add_argument("--data", nargs="+", required=True, help="conversation or segment files")
    evaluate.add_argument("--json", help="write the metrics to this file")
    evaluate.add_argument("--threshold", type=float, help="override the alert threshold")
    evaluate.set_defaults(handler=_eval)

    check = add_command(
        sub,
        "check-config",
        summary="validate a config and say what each enabled platform needs",
        examples=("vigil check-config my-vigil.toml",),
    )
    check.add_argument("path", nargs="?", help="config file (same as --config)")
    check.set_defaults(handler=_check_config)

    run = add_command(
        sub,
        "run",
        summary="start the adapters enabled in the config",
        examples=("vigil run --config my-vigil.toml", "vigil run --config my-vigil.toml --log-level debug"),
    )
    run.set_defaults(handler=_run)

    status = add_command(
        sub,
        "status",
        summary="traffic, backlog, alerts and shedding of a running Vigil ([metrics])",
        examples=("vigil status --config my-vigil.toml",),
    )
    status.set_defaults(handler=_status)

    show = add_command(
        sub,
        "show",
        summary="print a file shipped with Vigil: example config, Slack app manifest, model card",
        examples=("vigil show example-config > my-vigil.toml",),
    )
    show.add_argument("name", choices=sorted(SHOWABLE))
    show.set_defaults(handler=_show)

    register_case_commands(sub)
    # The global options also work after the command (`vigil run --config my-vigil.toml`, as people type it);
    # SUPPRESS keeps a value given before the command when none is given after it.
    for command in sub.choices.values():
        command.add_argument("--config", "-c", default=argparse.SUPPRESS, help="TOML config file")
        command.add_argument("--log-level", default=argparse.SUPPRESS, help="override [logging] level")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "path", None):
        args.config = args.path
    # One handler, replaced (not doubled) when `run` applies the config's level and format.
    configure_logging(args.log_level or "WARNING", json=False)
    try:
        return int(asyncio.run(args.handler(args)))
    # ValueError: the case commands' clear refusals (missing case, no such space, unsafe output folder).
    except (CliError, ConfigError, ModelLoadError, StoreError, ValueError) as exc:
        print(f"vigil: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
