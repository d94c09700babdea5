"""State benchmark: memory, database size, start-up time and per-message cost as the stored state grows.

    python -m benchmarks.state [--model-dir DIR] [--quick] [--json OUT]

1. Builds a database with 100,000 active pairs and 1,000,000 stored messages (``--quick``: 10,000 and
   100,000): pairs with real ``EmaPairModel`` state, ten window messages each, one idempotency claim per
   message and a risk point every fifth message. Rows are written straight into the schema the store created,
   in large ``executemany`` transactions (the store's per-row API would take many minutes), then read back
   through ``SqliteStore`` to check they are what the store itself would have written.
2. Start-up in a fresh process on that database: open the store, load the model (``--model-dir``, the
   shipped model by default), handle a first message, then 2,000 more (``--quick``: 500); that process's
   peak RSS is ``rss_mb``, and ``db_mb`` is the database's size on disk.
3. Per-message cost through the real ``Monitor`` and ``SqliteStore`` at 1k, 10k and 100k pairs (``--quick``:
   100, 1k, 10k; window 50) and at windows of 20, 50, 100 and 200 messages (1,000 pairs with full windows),
   for messages to existing pairs in batches of 64 as the ingest queue hands them over. Short rounds visit
   every point in turn and the best of twelve (``--quick``: five) counts, so load from other processes hits
   all points alike. The detector is the tiny keyword model (``tests/support/keyword_model.py``): the
   figure is the cost of the state (SQLite, pair state, window, policy), not of the language model.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.common import machine, model_fingerprint, peak_rss_mb, write_json
from vigil.bots.core.models import ChatMessage, PairKey
from vigil.bots.core.monitor import Monitor, MonitorConfig
from vigil.bots.core.policy import PolicyConfig
from vigil.bots.core.ports import MessageScore
from vigil.detector.onnx_detector import OnnxDetector, load_default_model_dir
from vigil.detector.pair import EmaPairModel
from vigil.storage.sqlite import SqliteStore

logger = logging.getLogger(__name__)

PLATFORM = "bench"
SPACES = 10
BASE = datetime(2025, 1, 1, tzinfo=UTC)
LINES = (
    "hey",
    "anyone up for a game tonight?",
    "did you finish the maths homework",
    "that boss fight took me like 40 tries",
    "can someone send the link to the server rules",
    "i think the new update broke the map",
    "haha that's so true",
    "wait what happened in the last episode, no spoilers pls",
    "does this build look ok to you? i went full crit",
    "thanks for the help yesterday, it worked!",
)
TARGET_RSS_MB = 500.0
TARGET_STARTUP_S = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Scale:
    pairs: int
    messages_per_pair: int
    ladder: tuple[int, ...]
    window_pairs: int
    measured_messages: int
    rounds: int
    steady_messages: int


FULL = Scale(
    pairs=100_000,
    messages_per_pair=10,
    ladder=(1_000, 10_000, 100_000),
    window_pairs=1000,
    measured_messages=400,
    rounds=12,
    steady_messages=2000,
)
QUICK = Scale(
    pairs=10_000,
    messages_per_pair=10,
    ladder=(100, 1_000, 10_000),
    window_pairs=200,
    measured_messages=150,
    rounds=5,
    steady_messages=500,
)
WINDOWS = (20, 50, 100, 200)


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _users(index: int) -> tuple[str, str]:
    return f"u{index:07d}", f"v{index:07d}"


def _space(index: int) -> str:
    return f"guild-{index % SPACES}"


def generate(database: Path, *, first: int, last: int, messages_per_pair: int) -> None:
    """Add pairs ``first`` to ``last - 1``, ``messages_per_pair`` stored messages each, into the schema."""
    pair_model = EmaPairModel(alpha=0.5, min_messages=2)
    rng = random.Random(first)
    with closing(sqlite3.connect(database, isolation_level=None)) as connection:
        connection.execute("PRAGMA synchronous = OFF")
        connection.execute("PRAGMA journal_mode = WAL")
        next_pair_id = (
            int(connection.execute("SELECT coalesce(max(pair_id), 0) FROM pairs").fetchone()[0]) + 1
        )
        chunk = 20_000
        for start in range(first, last, chunk):
            stop = min(last, start + chunk)
            pair_rows: list[tuple[Any, ...]] = []
            window_rows: list[tuple[Any, ...]] = []
            seen_rows: list[tuple[Any, ...]] = []
            risk_rows: list[tuple[Any, ...]] = []
            for index in range(start, stop):
                pair_id = next_pair_id + index - first
                a, b = _users(index)
                space = _space(index)
                channel = f"dm-{index}"
                state = pair_model.initial_state()
                for n in range(messages_per_pair):
                    author = a if n % 2 == 0 else b
                    risk = rng.random() * 0.2
                    state = pair_model.update(
                        state=state,
                        author_id=author,
                        other_id=b if author == a else a,
                        score=MessageScore(risk=risk, signals=(0.0, 0.0)),
                    )
                    moment = _ts(BASE + timedelta(seconds=index * 60 + n))
                    message_id = f"g{index}-{n}"
                    window_rows.append(
                        (pair_id, message_id, channel, None, author, rng.choice(LINES), moment, risk, "[]")
                    )
                    seen_rows.append((PLATFORM, space, message_id, moment))
                    if n % 5 == 4:
                        risk_rows.append((pair_id, moment, message_id, risk, author))
                top = pair_model.author_risks(state=state)[0]
                last_seen = _ts(BASE + timedelta(seconds=index * 60 + messages_per_pair))
                first_seen = _ts(BASE + timedelta(seconds=index * 60))
                counts = (messages_per_pair, json.dumps([channel]), state, top.risk, top.author_id, 0, None)
                pair_rows.append((pair_id, PLATFORM, space, a, b, first_seen, last_seen, *counts))
            connection.execute("BEGIN")
            connection.executemany(
                "INSERT INTO pairs (pair_id, platform, space_id, user_a, user_b, first_seen, last_seen, "
                "message_count, channel_ids, model_state, risk, suspect_id, above_threshold_streak, "
                "snoozed_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                pair_rows,
            )
            connection.executemany(
                "INSERT INTO window_messages (pair_id, message_id, channel_id, thread_id, author_id, text, "
                "timestamp, risk, signals) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                window_rows,
            )
            connection.executemany(
                "INSERT INTO seen_messages (platform, space_id, message_id, seen_at) VALUES (?, ?, ?, ?)",
                seen_rows,
            )
            connection.executemany(
                "INSERT INTO risk_history (pair_id, timestamp, message_id, risk, suspect_id) "
                "VALUES (?, ?, ?, ?, ?)",
                risk_rows,
            )
            connection.execute("COMMIT")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


async def create_schema(database: Path) -> None:
    async with SqliteStore(database):
        pass


async def check_readback(database: Path, *, index: int, messages_per_pair: int) -> None:
    """The generated rows read back through the store as the monitor would have written them."""
    a, b = _users(index)
    key = PairKey.of(platform=PLATFORM, space_id=_space(index), first=a, second=b)
    async with SqliteStore(database) as store:
        state = await store.load_pair(key)
        window = await store.load_window(key)
    if state is None or state.message_count != messages_per_pair or len(window) != messages_per_pair:
        raise SystemExit(f"generated state does not read back through SqliteStore ({key})")


def policy() -> PolicyConfig:
    return PolicyConfig(
        threshold=0.7,
        sustain_messages=2,
        hysteresis=0.1,
        cooldown=timedelta(hours=6),
        update_min_delta=0.05,
        max_alerts_per_hour=10,
        shadow_mode=False,
    )


def traffic(*, pairs: int, count: int, tag: str, seed: int) -> list[ChatMessage]:
    """DMs between the members of random existing pairs."""
    rng = random.Random(seed)
    messages = []
    for n in range(count):
        index = rng.randrange(pairs)
        a, b = _users(index)
        author, other = (a, b) if rng.random() < 0.5 else (b, a)
        messages.append(
            ChatMessage(
                platform=PLATFORM,
                space_id=_space(index),
                channel_id=f"dm-{index}",
                message_id=f"{tag}-{n}",
                author_id=author,
                text=rng.choice(LINES),
                timestamp=BASE + timedelta(days=30, seconds=n),
                is_dm=True,
                recipient_ids=(other,),
            )
        )
    return messages


@dataclass(frozen=True, slots=True, kw_only=True)
class Point:
    """One per-message cost measurement: a database with ``pairs`` pairs and a window of ``window``."""

    label: str
    database: Path
    pairs: int
    window: int


async def per_message_us(
    points: Sequence[Point], detector: OnnxDetector, *, count: int, rounds: int
) -> dict[str, float]:
    """Microseconds per message at each point: best of ``rounds`` rounds of ``count`` messages.

    Rounds visit the points in turn, so a busy moment on a shared machine hits every point alike.
    """
    best = {point.label: float("inf") for point in points}
    async with contextlib.AsyncExitStack() as stack:
        monitors: list[tuple[Point, Monitor]] = []
        for point in points:
            store = await stack.enter_async_context(SqliteStore(point.database))
            config = MonitorConfig(policy=policy(), window_messages=point.window)
            monitor = Monitor(store=store, detector=detector, config=config)
            await monitor.handle_batch(
                traffic(pairs=point.pairs, count=64, tag=f"{point.label}-warm", seed=1)
            )
            monitors.append((point, monitor))
        for round_number in range(rounds):
            for point, monitor in monitors:
                # Unique ids: a message id seen before is a duplicate and skips the state work.
                tag = f"{point.label}-{round_number}-{time.monotonic_ns()}"
                messages = traffic(pairs=point.pairs, count=count, tag=tag, seed=round_number + 2)
                started = time.perf_counter()
                for start in range(0, len(messages), 64):
                    await monitor.handle_batch(messages[start : start + 64])
                elapsed_us = (time.perf_counter() - started) / len(messages) * 1e6
                best[point.label] = min(best[point.label], elapsed_us)
    return {label: round(value, 1) for label, value in best.items()}


def db_mb(database: Path) -> float:
    files = [database, database.with_name(database.name + "-wal")]
    return round(sum(f.stat().st_size for f in files if f.exists()) / 1e6, 1)


# ------------------------------------------------------------------------------------------- start-up probe


async def startup_probe(database: Path, model_dir: Path, *, steady: int) -> dict[str, Any]:
    """Run in a fresh process: open the store, load the model, handle one message; report times and RSS."""
    started = time.perf_counter()
    store = SqliteStore(database)
    await store.open()
    opened = time.perf_counter()
    detector = await OnnxDetector.load(model_dir)
    loaded = time.perf_counter()
    try:
        monitor = Monitor(store=store, detector=detector, config=MonitorConfig(policy=policy()))
        first = traffic(pairs=1000, count=1, tag="startup", seed=99)[0]
        result = await monitor.handle(first)
        handled = time.perf_counter()
        counted = await store.count_pairs()
        count_pairs_s = time.perf_counter() - handled
        # Steady state: more messages on random pairs, then the peak RSS.
        messages = traffic(pairs=counted, count=steady, tag="steady", seed=7)
        for start in range(0, len(messages), 64):
            await monitor.handle_batch(messages[start : start + 64])
    finally:
        await detector.aclose()
        await store.close()
    return {
        "startup_s": round(handled - started, 3),
        "store_open_s": round(opened - started, 3),
        "model_load_s": round(loaded - opened, 3),
        "first_message_s": round(handled - loaded, 3),
        "first_message_scored": result.skipped is None,
        "count_pairs_s": round(count_pairs_s, 4),
        "pairs": counted,
        "steady_messages": steady,
        "model": f"{detector.info.name} {detector.info.version}",
        "model_sha256": model_fingerprint(model_dir),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def run_probe(database: Path, model_dir: Path, *, steady: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.state", "--startup-probe", str(database)]
    started = time.perf_counter()
    completed = subprocess.run(
        [*command, "--model-dir", str(model_dir), "--steady", str(steady)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if completed.returncode != 0:
        raise SystemExit(f"start-up probe failed:\n{completed.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    # The whole process: interpreter start and imports, the start-up above, the steady-state messages.
    result["process_wall_s"] = round(time.perf_counter() - started, 2)
    return result


# ---------------------------------------------------------------------------------------------- the run


def keyword_model(folder: Path) -> Path:
    # The test support module builds it; it needs the `onnx` package from the test extra.
    from tests.support.keyword_model import build_keyword_model  # noqa: PLC0415

    return build_keyword_model(folder / "keyword-model")


async def build(database: Path, *, pairs: int, messages_per_pair: int) -> float:
    """A database holding ``pairs`` pairs of ``messages_per_pair`` messages; returns the seconds it took."""
    await create_schema(database)
    started = time.perf_counter()
    await asyncio.to_thread(generate, database, first=0, last=pairs, messages_per_pair=messages_per_pair)
    elapsed = time.perf_counter() - started
    await check_readback(database, index=pairs - 1, messages_per_pair=messages_per_pair)
    return elapsed


async def run_benchmark(arguments: argparse.Namespace) -> dict[str, Any]:
    scale = QUICK if arguments.quick else FULL
    machine_before = machine()
    with tempfile.TemporaryDirectory(prefix="vigil-state-") as tmp:
        folder = Path(tmp)
        big = folder / "state.sqlite3"
        generation_s = await build(big, pairs=scale.pairs, messages_per_pair=scale.messages_per_pair)
        with closing(sqlite3.connect(big)) as connection:
            stored = int(connection.execute("SELECT count(*) FROM window_messages").fetchone()[0])
        size_mb = db_mb(big)
        probe = await asyncio.to_thread(run_probe, big, arguments.model_dir, steady=scale.steady_messages)

        points: list[Point] = []
        for size in scale.ladder:
            database = big if size == scale.pairs else folder / f"pairs-{size}.sqlite3"
            if database != big:
                await build(database, pairs=size, messages_per_pair=scale.messages_per_pair)
            points.append(Point(label=f"pairs-{size}", database=database, pairs=size, window=50))
        for window in WINDOWS:
            database = folder / f"window-{window}.sqlite3"
            await build(database, pairs=scale.window_pairs, messages_per_pair=window)
            points.append(
                Point(label=f"window-{window}", database=database, pairs=scale.window_pairs, window=window)
            )
        detector = await OnnxDetector.load(keyword_model(folder), intra_op_threads=1)
        try:
            costs = await per_message_us(points, detector, count=scale.measured_messages, rounds=scale.rounds)
        finally:
            await detector.aclose()
    by_pairs = {str(size): costs[f"pairs-{size}"] for size in scale.ladder}
    by_window = {str(window): costs[f"window-{window}"] for window in WINDOWS}
    pair_costs = list(by_pairs.values())
    window_costs = list(by_window.values())
    return {
        "rss_mb": probe["peak_rss_mb"],
        "db_mb": size_mb,
        "startup_s": probe["startup_s"],
        "per_message_us_by_pairs": by_pairs,
        "per_message_us_by_window": by_window,
        "pairs": scale.pairs,
        "stored_messages": stored,
        "startup": probe,
        "generation_s": round(generation_s, 1),
        "flatness": {
            "pairs_largest_over_smallest": round(pair_costs[-1] / pair_costs[0], 2),
            "window_largest_over_smallest": round(window_costs[-1] / window_costs[0], 2),
        },
        "per_message_detector": "keyword test model (isolates the state cost)",
        "benchmark_process_peak_rss_mb": round(peak_rss_mb(), 1),
        "quick": bool(arguments.quick),
        "machine_before": machine_before,
        "machine_after": machine(),
        "targets": {
            "rss_mb < 500": probe["peak_rss_mb"] < TARGET_RSS_MB,
            "startup_s < 5": probe["startup_s"] < TARGET_STARTUP_S,
        },
    }


def report(result: dict[str, Any]) -> str:
    startup = result["startup"]
    return "\n".join(
        [
            f"machine: {result['machine_before']['nproc']} cores {result['machine_before']['cpu_model']}; "
            f"load average before {result['machine_before']['load_average']}, after "
            f"{result['machine_after']['load_average']}",
            f"state: {result['pairs']:,} pairs, {result['stored_messages']:,} stored messages, database "
            f"{result['db_mb']} MB (generated in {result['generation_s']} s)",
            f"start-up ({startup['model']}): {result['startup_s']} s = store {startup['store_open_s']} s "
            f"+ model {startup['model_load_s']} s + first message {startup['first_message_s']} s; "
            f"count_pairs {startup['count_pairs_s']} s",
            f"peak RSS of that process ({result['startup']['steady_messages']:,} messages later): "
            f"{result['rss_mb']} MB",
            f"per message (keyword model, batches of 64) by pairs: {result['per_message_us_by_pairs']} µs",
            f"per message by window length: {result['per_message_us_by_window']} µs",
            "targets: " + ", ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in result["targets"].items()),
        ]
    )


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.state", description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=load_default_model_dir())
    parser.add_argument("--quick", action="store_true", help="10x smaller state (under a minute)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--startup-probe", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--steady", type=int, default=2000, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING)
    arguments = parse_arguments(argv)
    if arguments.startup_probe is not None:
        probe = startup_probe(arguments.startup_probe, arguments.model_dir, steady=arguments.steady)
        print(json.dumps(asyncio.run(probe)))
        return 0
    result = asyncio.run(run_benchmark(arguments))
    print(report(result))
    if arguments.json is not None:
        write_json(arguments.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
