"""The ``vigil`` command line: parses arguments and prints; ``vigil.bots.app`` wires the pipeline."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib.metadata
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import aiohttp

from vigil.bots.app import (
    REPLAY_CONCURRENCY,
    App,
    AppError,
    open_app,
    open_broker,
    outbox_worker_name,
    stop_on_signals,
)
from vigil.bots.case_commands import register_case_commands
from vigil.bots.cli_help import add_command
from vigil.bots.core.cases import Actor, Role
from vigil.bots.core.models import Alert, ChatMessage, PairKey
from vigil.bots.core.monitor import HandleResult
from vigil.bots.core.policy import Decision
from vigil.bots.core.ports import StoreError
from vigil.bots.core.replay import (
    BadRecord,
    ConversationRecord,
    SegmentRecord,
    eval_messages,
    iter_records,
    record_to_messages,
)
from vigil.bots.core.segments import score_segment
from vigil.bots.core.sinks import ConsoleSink
from vigil.bots.http.signing import MIN_SECRET_CHARS
from vigil.bots.importers import (
    conversation_to_messages,
    display_names_of,
    iter_conversations,
    place_names_of,
)
from vigil.bots.init_wizard import INIT_EXAMPLES, INIT_SUMMARY, add_init_arguments, init_command
from vigil.bots.metrics import VigilMetrics, configure_logging, fetch_metrics, format_status
from vigil.bots.migrate_store import register_migrate_store
from vigil.bots.progress import CONVERSATIONS, Progress, input_size
from vigil.bots.resources import SHOWABLE, demo_conversations_path, shipped_text
from vigil.bots.scan_report import PairTrajectory, latest_alerts, write_scan_report
from vigil.config.settings import (
    MAX_SHARD_COUNT,
    ConfigError,
    Secret,
    Secrets,
    Settings,
    check_settings,
    format_shard_ids,
    load_settings,
    parse_shard_ids,
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

logger = logging.getLogger(__name__)


class CliError(Exception):
    """A problem the person at the terminal can fix; printed without a traceback."""


def _settings(path: str | None) -> tuple[Settings, Path]:
    if path is None:
        return load_settings(None), Path.cwd()
    config_path = Path(path)
    return load_settings(config_path), config_path.resolve().parent


async def _write_json(path: Path, payload: object) -> None:
    await asyncio.to_thread(path.write_text, json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def _raised(results: Sequence[HandleResult]) -> int:
    return sum(1 for result in results for event in result.alerts if event.decision is Decision.RAISE)


# ---------------------------------------------------------------- demo


async def _demo(args: argparse.Namespace) -> int:
    settings, _ = _settings(args.config)
    data = Path(args.data) if args.data else demo_conversations_path()
    if not data.exists():
        raise CliError(f"demo data not found: {data}")
    out = sys.stdout
    with tempfile.TemporaryDirectory(prefix="vigil-demo-") as tmp:
        database = str(Path(tmp) / "vigil-demo.sqlite3")
        async with open_app(settings, database=database, replay=True) as app:
            app.attach_sink(ConsoleSink(out, signal_labels=app.signal_labels))
            out.write(
                f"Vigil demo · model {app.detector.info.name} {app.detector.info.version} · "
                f"threshold {app.monitor.config.policy.threshold:.2f} · database {database}\n\n"
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
                async for results in app.replay(messages):
                    alerts += _raised(results)
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
    sizes = await asyncio.to_thread(lambda: [input_size(path) for path in paths])
    async with open_app(settings, database=args.db, replay=True) as app:
        outbox = app.attach_sink(ConsoleSink(sys.stdout, signal_labels=app.signal_labels, style=style))
        progress = Progress(
            "scan",
            tally=CONVERSATIONS,
            total=sum(sizes),
            # Alerts reach stdout as they come: on the same terminal they would land inside a rewritten line.
            rewrite=False if sys.stdout.isatty() else None,
        )
        alerts = bad = skipped = 0
        names: dict[str, str] = {}
        places: dict[tuple[str, str], str] = {}
        spaces: set[tuple[str, str]] = set()

        def scanned() -> Iterator[ChatMessage]:
            nonlocal bad, skipped
            for path, size in zip(paths, sizes, strict=True):
                share = progress.file(size)
                for record in iter_conversations(path, on_read=share.read):
                    if isinstance(record, BadRecord):
                        bad += 1
                        progress.note(f"{record.path}:{record.line_number}: skipped: {record.reason}")
                        continue
                    if isinstance(record, SegmentRecord):
                        skipped += 1
                        continue
                    messages = conversation_to_messages(record, platform="scan")
                    names.update(display_names_of(record))
                    places.update(place_names_of(record))
                    spaces.update((m.platform, m.space_id) for m in messages[:1])
                    # Chunks may span records (order is kept), so files of many tiny conversations batch too.
                    yield from messages
                    progress.tick(conversations=1)
                # JSON Lines files report as they are read; an export counts whole once parsed.
                share.done()

        with progress:
            async for results in app.replay(scanned()):
                progress.tick(messages=len(results))
                alerts += _raised(results)
        await outbox.drain_once()
        pairs = await app.store.count_pairs()
        # Read alerts back from the store, so a resumed scan's report includes the earlier run's alerts.
        flagged = [
            alert
            for platform, space in sorted(spaces)
            for alert in await app.store.alerts_for_space(platform=platform, space_id=space, limit=100_000)
        ]
        elapsed = progress.elapsed
        summary = {
            "files": len(paths),
            "conversations": progress.count("conversations"),
            "messages": progress.count("messages"),
            "pairs": pairs,
            "alerts": alerts,
            "bad_records": bad,
            "segments_skipped": skipped,
            "seconds": round(elapsed, 2),
            "messages_per_second": round(progress.count("messages") / max(elapsed, 1e-9), 1),
        }
        if args.report:
            trajectories = await _trajectories(app, flagged)
            await write_scan_report(
                flagged,
                out_html=Path(f"{args.report}.html"),
                out_json=Path(f"{args.report}.json"),
                signal_labels=app.signal_labels,
                display_names=names,
                summary=summary,
                trajectories=trajectories,
                place_names=places,
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


async def _trajectories(app: App, flagged: Sequence[Alert]) -> dict[PairKey, PairTrajectory]:
    """Each flagged pair's risk trajectory for the report's charts, through the moderators' one service."""
    found: dict[PairKey, PairTrajectory] = {}
    for alert in latest_alerts(flagged):
        key = alert.key
        operator = Actor(
            platform=key.platform, space_id=key.space_id, user_id="cli:scan", roles=frozenset(Role)
        )
        answer = await app.moderator_service(key.platform).pair_history(
            operator, first=alert.suspect_id, second=alert.other_id
        )
        if answer.value is not None:
            found[key] = PairTrajectory(points=answer.value.points, threshold=answer.value.threshold)
    return found


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
    app: App, record: ConversationRecord, progress: Progress, *, ordinal: int
) -> ConversationOutcome:
    messages = eval_messages(record, ordinal=ordinal)
    tracker = _Tracker(record=record)
    async for results in app.replay(messages):
        tracker.add(results)
        progress.tick(messages=len(results))
    progress.tick(conversations=1)
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
    sizes = await asyncio.to_thread(lambda: [input_size(path) for path in paths])
    with tempfile.TemporaryDirectory(prefix="vigil-eval-") as tmp:
        database = str(Path(tmp) / "eval.sqlite3")
        async with open_app(settings, database=database, replay=True, threshold=args.threshold) as app:
            progress = Progress("eval", tally=CONVERSATIONS, total=sum(sizes))
            pending: set[asyncio.Task[ConversationOutcome]] = set()
            started = 0
            with progress:
                for path, size in zip(paths, sizes, strict=True):
                    share = progress.file(size)
                    for record in iter_records(path, on_read=share.read):
                        if isinstance(record, BadRecord):
                            bad.append(
                                {
                                    "path": str(record.path),
                                    "line": record.line_number,
                                    "reason": record.reason,
                                }
                            )
                            progress.note(f"{record.path}:{record.line_number}: skipped: {record.reason}")
                            continue
                        if isinstance(record, SegmentRecord):
                            # The whole text, cut into message-sized chunks run through the pair model.
                            scored = await score_segment(app.detector, record.text)
                            segments.append(
                                SegmentOutcome(source=record.source, label=record.label, score=scored.risk)
                            )
                            progress.tick(messages=scored.chunks, conversations=1)
                            continue
                        if len(pending) >= REPLAY_CONCURRENCY:
                            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                            outcomes.extend(task.result() for task in done)
                        task = _eval_conversation(app, record, progress, ordinal=started)
                        started += 1
                        pending.add(asyncio.create_task(task))
                    # Read, not yet all scored: at most REPLAY_CONCURRENCY conversations behind, close enough.
                    share.done()
                if pending:
                    outcomes.extend(await asyncio.gather(*pending))
            elapsed = progress.elapsed
            threshold = app.monitor.config.policy.threshold
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


def add_shard_options(parser: argparse.ArgumentParser) -> None:
    """``--shards`` and ``--shard-count``: the Discord shards a process runs, over the config's choice.

    Read them with ``with_shard_options``; every command that connects to Discord takes the same two."""
    parser.add_argument(
        "--shards",
        metavar="IDS",
        help='only these Discord shards, as "0-3" or "0,2,5-7" (overrides [discord] shard_ids; needs '
        "--shard-count or [discord] shard_count)",
    )
    parser.add_argument(
        "--shard-count",
        type=int,
        metavar="N",
        help="the bot's number of Discord shards, the same in each of its processes (overrides [discord] "
        "shard_count)",
    )


def with_shard_options(settings: Settings, args: argparse.Namespace) -> Settings:
    """``settings`` with ``--shards`` and ``--shard-count`` applied; ``CliError`` when they cannot be."""
    shards: str | None = args.shards
    count: int | None = args.shard_count
    given = [name for name, value in (("--shards", shards), ("--shard-count", count)) if value is not None]
    if not given:
        return settings
    if not settings.discord.enabled:
        raise CliError(
            f"{' and '.join(given)} choose{'s' if len(given) == 1 else ''} Discord shards, but [discord] is "
            "not enabled in the config"
        )
    if count is not None and not 1 <= count <= MAX_SHARD_COUNT:
        raise CliError(f"--shard-count: expected an integer between 1 and {MAX_SHARD_COUNT}, got {count}")
    shard_count = count if count is not None else settings.discord.shard_count
    shard_ids = shards if shards is not None else settings.discord.shard_ids
    if shards is not None and shard_count == 0:
        raise CliError(
            "--shards needs --shard-count (or [discord] shard_count in the config): the bot's number of "
            "shards, the same in each of its processes"
        )
    if shards is not None or shard_ids.strip():
        try:
            shard_ids = format_shard_ids(parse_shard_ids(shard_ids, shard_count=shard_count))
        except ValueError as error:
            where = "--shards" if shards is not None else f"[discord] shard_ids with --shard-count {count}"
            raise CliError(f"{where}: {error}") from None
    discord = dataclasses.replace(settings.discord, shard_ids=shard_ids, shard_count=shard_count)
    return dataclasses.replace(settings, discord=discord)


async def _run(args: argparse.Namespace) -> int:
    settings, config_dir = _settings(args.config)
    settings = with_shard_options(settings, args)
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
    stop = asyncio.Event()
    async with open_app(
        settings, database=database, replay=False, metrics=VigilMetrics(), backend=settings.storage.backend
    ) as app:
        with stop_on_signals(stop):
            await app.serve(secrets=secrets, stop=stop)
    return 0


async def _deliver(args: argparse.Namespace) -> int:
    settings, config_dir = _settings(args.config)
    configure_logging(args.log_level or settings.logging.level, json=settings.logging.json)
    problems = [p for p in check_settings(settings, os.environ) if not p.startswith("note:")]
    if problems:
        raise CliError("cannot start:\n" + "\n".join(f"- {p}" for p in problems))
    if args.workers < 1:
        raise CliError("--workers must be at least 1")
    secrets = resolve_secrets(settings, os.environ)
    database = settings.resolved_database_path(config_dir)
    stop = asyncio.Event()
    async with open_app(settings, database=database, replay=False, backend=settings.storage.backend) as app:
        with stop_on_signals(stop):
            await app.deliver(
                secrets=secrets,
                stop=stop,
                workers=args.workers,
                name=args.name or outbox_worker_name("deliver"),
            )
    return 0


def _scale_out_settings(args: argparse.Namespace, *, command: str) -> tuple[Settings, Secrets]:
    """The settings of ``vigil gateway`` and ``vigil worker``, refused unless they describe a scale-out."""
    settings, _ = _settings(args.config)
    configure_logging(args.log_level or settings.logging.level, json=settings.logging.json)
    if command == "gateway":
        settings = with_shard_options(settings, args)
    if not settings.broker.enabled:
        raise CliError(f"vigil {command} needs [broker] enabled = true in the config (docs/scale.md)")
    if settings.storage.backend != "postgres":
        # Processes on several machines share one database: a SQLite file cannot be shared that way.
        raise CliError(f'vigil {command} needs [storage] backend = "postgres" (docs/scale.md)')
    problems = [p for p in check_settings(settings, os.environ) if not p.startswith("note:")]
    if problems:
        raise CliError("cannot start:\n" + "\n".join(f"- {p}" for p in problems))
    return settings, resolve_secrets(settings, os.environ)


async def _gateway(args: argparse.Namespace) -> int:
    settings, secrets = _scale_out_settings(args, command="gateway")
    if not any((settings.discord.enabled, settings.slack.enabled, settings.http.enabled)):
        raise CliError("nothing to receive: enable [discord], [slack] or [http] in the config")
    from vigil.bots.broker.nats import JetStreamPublisher  # noqa: PLC0415

    name = args.name or outbox_worker_name("gateway")
    stop = asyncio.Event()
    async with (
        open_app(settings, database="", replay=False, metrics=VigilMetrics(), backend="postgres") as app,
        open_broker(settings, secrets=secrets, name=name) as broker,
    ):
        publisher = JetStreamPublisher(broker=broker, cipher=app.cipher, is_bot_user=app.monitor.is_bot_user)
        with stop_on_signals(stop):
            await app.serve(secrets=secrets, stop=stop, publisher=publisher, worker_name=name)
    return 0


async def _worker(args: argparse.Namespace) -> int:
    settings, secrets = _scale_out_settings(args, command="worker")
    if args.metrics_port is not None:
        if not 1 <= args.metrics_port <= 65535:
            raise CliError("--metrics-port must be between 1 and 65535")
        # Several workers on one host share a config but not a port.
        settings = dataclasses.replace(
            settings, metrics=dataclasses.replace(settings.metrics, enabled=True, port=args.metrics_port)
        )
    name = args.name or outbox_worker_name("worker")
    stop = asyncio.Event()
    async with (
        open_app(settings, database="", replay=False, backend="postgres", metrics=VigilMetrics()) as app,
        open_broker(settings, secrets=secrets, name=name) as broker,
    ):
        with stop_on_signals(stop):
            await app.work(broker=broker, cipher=app.cipher, stop=stop, name=name)
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
    init = add_command(sub, "init", summary=INIT_SUMMARY, examples=INIT_EXAMPLES)
    add_init_arguments(init)
    init.set_defaults(handler=init_command)

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
        examples=(
            "vigil run --config my-vigil.toml",
            "vigil run --config my-vigil.toml --log-level debug",
            "vigil run --config my-vigil.toml --shards 0-3 --shard-count 16   # a quarter of a bot's shards",
        ),
    )
    add_shard_options(run)
    run.set_defaults(handler=_run)

    deliver = add_command(
        sub,
        "deliver",
        summary="only deliver alerts from the shared outbox (webhook, console): extra delivery workers "
        "beside `vigil run` (docs/scale.md)",
        examples=(
            "vigil deliver --config my-vigil.toml",
            "vigil deliver --config my-vigil.toml --workers 4 --name deliver-b",
        ),
    )
    deliver.add_argument(
        "--workers", type=int, default=1, help="delivery workers in this process (default: %(default)s)"
    )
    deliver.add_argument(
        "--name",
        help="this process's worker name, unique among live workers and the same across its restarts "
        "(default: the host name and 'deliver')",
    )
    deliver.set_defaults(handler=_deliver)

    gateway = add_command(
        sub,
        "gateway",
        summary="scale-out: receive from the platforms enabled in the config and publish to the broker; "
        "commands and alert delivery as under `vigil run` ([broker], docs/scale.md)",
        examples=(
            "vigil gateway --config scale.toml",
            "vigil gateway --config scale.toml --shards 0-3 --shard-count 16 --name gateway-a",
        ),
    )
    add_shard_options(gateway)
    gateway.add_argument(
        "--name",
        help="this process's name, unique among live processes and the same across its restarts "
        "(default: the host name and 'gateway')",
    )
    gateway.set_defaults(handler=_gateway)

    worker = add_command(
        sub,
        "worker",
        summary="scale-out: score the broker's messages, sharing its partitions with the other workers "
        "([broker], docs/scale.md)",
        examples=("vigil worker --config scale.toml", "vigil worker --config scale.toml --name worker-b"),
    )
    worker.add_argument(
        "--name",
        help="this worker's name, unique among live workers and the same across its restarts "
        "(default: the host name and 'worker')",
    )
    worker.add_argument(
        "--metrics-port",
        type=int,
        help="serve this worker's Prometheus metrics on this port (overrides [metrics]; enables them)",
    )
    worker.set_defaults(handler=_worker)

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
    register_migrate_store(sub)
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
    except (CliError, AppError, ConfigError, ModelLoadError, StoreError, ValueError) as exc:
        print(f"vigil: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
