"""Crash safety: `vigil scan` killed with SIGKILL at random points and restarted ends where a clean run ends.

Each seed kills the scan twice mid-run (when the database's ``seen_messages`` count passes a random target),
then runs it to completion, and compares the database with one uninterrupted run: the same pairs with the same
message counts and risk, the same alerts (one per pair, no duplicates), and an empty outbox.

Some channels reply to the previous message; in others two people only take turns (no replies, no
mentions), so their pairs, and the alerts of the grooming ones, depend on the resolver's turn-taking memory,
which a restart loses and the resumed scan rebuilds from the messages it replays (docs/operations.md).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
FILLER = ("hello there", "nice game tonight", "ok see you later", "lol nice", "hello", "see you")
GROOMING = ("keep it secret ok", "what is your age", "our secret tonight", "secret groom", "age age")


def write_conversations(path: Path, *, seed: int = 7, dms: int = 20, reply_channels: int = 3) -> int:
    """DMs (some alert-worthy), reply-chain channels and turn-taking channels (a few thousand messages with
    the defaults); returns the message count."""
    rng = random.Random(seed)
    records: list[dict[str, object]] = []
    total = 0
    for n in range(dms):
        adult, other = f"u-adult{n:02d}", f"u-peer{n:02d}"
        grooming = n % 4 == 0
        messages: list[dict[str, object]] = []
        for i in range(rng.randint(30, 70)):
            author = adult if i % 2 == 0 else other
            text = rng.choice(GROOMING) if grooming and author == adult and i > 6 else rng.choice(FILLER)
            messages.append({"author": author, "text": text, "reply_to": None, "ts": None})
        records.append(_record(f"dm-{n:03d}", "dm", messages, suspects=[adult] if grooming else []))
        total += len(messages)
    for n in range(reply_channels):
        people = [f"u-chan{n}-{k}" for k in range(8)]
        messages = []
        previous = ""
        for i in range(rng.randint(150, 250)):
            author = rng.choice([p for p in people if p != previous])
            messages.append(
                {"author": author, "text": rng.choice(FILLER), "reply_to": i - 1 if i else None, "ts": None}
            )
            previous = author
        records.append(_record(f"chan-{n:03d}", "channel", messages, suspects=[]))
        total += len(messages)
    for n in range(8):
        # Turn-taking only: two people alternate, nobody replies or mentions; half of them grooming.
        adult, kid = f"u-turn{n}-adult", f"u-turn{n}-kid"
        grooming = n % 2 == 0
        messages = []
        for i in range(rng.randint(30, 60)):
            author = adult if i % 2 == 0 else kid
            text = rng.choice(GROOMING) if grooming and author == adult and i > 6 else rng.choice(FILLER)
            messages.append({"author": author, "text": text, "reply_to": None, "ts": None})
        records.append(_record(f"turn-{n:03d}", "channel", messages, suspects=[adult] if grooming else []))
        total += len(messages)
    rng.shuffle(records)
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records), encoding="utf-8")
    return total


def _record(
    record_id: str, setting: str, messages: list[dict[str, object]], *, suspects: list[str]
) -> dict[str, object]:
    return {
        "id": record_id,
        "source": "crash_test",
        "label": 1 if suspects else 0,
        "setting": setting,
        "interleaved": True,
        "suspects": suspects,
        "messages": messages,
    }


@dataclass(frozen=True, slots=True)
class DatabaseState:
    pairs: dict[tuple[str, str, str], tuple[int, float]]
    alerts: dict[tuple[str, str, str], int]
    seen: int
    outbox: int


def read_state(database: Path) -> DatabaseState:
    with closing(sqlite3.connect(database)) as connection:
        pairs = {
            (space, a, b): (count, round(risk, 6))
            for space, a, b, count, risk in connection.execute(
                "SELECT space_id, user_a, user_b, message_count, risk FROM pairs"
            )
        }
        alerts: dict[tuple[str, str, str], int] = {}
        for space, a, b in connection.execute("SELECT space_id, user_a, user_b FROM alerts"):
            alerts[(space, a, b)] = alerts.get((space, a, b), 0) + 1
        seen = connection.execute("SELECT count(*) FROM seen_messages").fetchone()[0]
        outbox = connection.execute("SELECT count(*) FROM outbox").fetchone()[0]
    return DatabaseState(pairs=pairs, alerts=alerts, seen=seen, outbox=outbox)


def seen_count(database: Path) -> int:
    try:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=0.2)) as connection:
            return int(connection.execute("SELECT count(*) FROM seen_messages").fetchone()[0])
    except sqlite3.Error:
        return 0  # not created yet, or mid-migration


def scan_command(data: Path, database: Path, config: Path) -> list[str]:
    return [sys.executable, "-m", "vigil", "--config", str(config), "scan", str(data), "--db", str(database)]


def run_to_completion(command: list[str]) -> None:
    completed = subprocess.run(
        command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120, check=False
    )
    assert completed.returncode == 0, completed.stderr.decode(errors="replace")[-2000:]


def run_and_kill(command: list[str], database: Path, *, at_seen: int) -> bool:
    """Start the scan and SIGKILL it once ``at_seen`` messages are committed; False if it finished first."""
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            if seen_count(database) >= at_seen:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
                return True
            time.sleep(0.005)
        return False
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def scan_setup(tmp_path_factory: pytest.TempPathFactory, keyword_model_dir: Path) -> tuple[Path, Path, int]:
    folder = tmp_path_factory.mktemp("crash")
    data = folder / "conversations.jsonl"
    # About 900 messages: enough for kills at random points, small enough for CI (20 seeds x 3 runs).
    total = write_conversations(data, dms=8, reply_channels=1)
    config = folder / "vigil.toml"
    config.write_text(
        f'[detector]\nmodel_dir = "{keyword_model_dir.as_posix()}"\nintra_op_threads = 1\n', encoding="utf-8"
    )
    return data, config, total


@pytest.fixture(scope="module")
def clean_state(
    scan_setup: tuple[Path, Path, int], tmp_path_factory: pytest.TempPathFactory
) -> DatabaseState:
    data, config, total = scan_setup
    database = tmp_path_factory.mktemp("clean") / "clean.sqlite3"
    run_to_completion(scan_command(data, database, config))
    state = read_state(database)
    assert state.seen == total
    assert state.alerts and all(count == 1 for count in state.alerts.values())
    # Four of the turn-taking channels are grooming, and their alerts rest on turn-taking alone.
    assert sum(1 for (_, a, b) in state.alerts if a.startswith("u-turn") and b.startswith("u-turn")) == 4
    assert state.outbox == 0
    return state


def kill_twice_and_resume(seed: int, folder: Path, *, data: Path, config: Path, total: int) -> Path:
    """One seed: the scan killed at two random points, then run to its end; the database."""
    database = folder / "killed.sqlite3"
    command = scan_command(data, database, config)
    rng = random.Random(seed)
    first, second = sorted(rng.sample(range(total // 10, total * 9 // 10), 2))
    kills = 0
    for target in (first, second):
        kills += run_and_kill(command, database, at_seen=target)
        # A kill loses at most the chunk in flight; nothing committed is ever lost.
        assert seen_count(database) >= min(target, total) - 64, seed
    assert kills >= 1, "the scan finished before any kill point; make the input larger"
    run_to_completion(command)
    return database


# Issue 14: at least 20 kill schedules (two SIGKILLs each, at random points). Two seeds at a time, in
# threads: each mostly waits for its processes, and each has its own database.
@pytest.mark.parametrize(
    "seeds", [(seed, seed + 1) for seed in range(1, 21, 2)], ids=lambda seeds: f"{seeds[0]}+{seeds[1]}"
)
def test_sigkill_at_random_points_then_restart_matches_a_clean_run(
    seeds: tuple[int, int], scan_setup: tuple[Path, Path, int], clean_state: DatabaseState, tmp_path: Path
) -> None:
    data, config, total = scan_setup
    folders = [tmp_path / f"seed-{seed}" for seed in seeds]
    for folder in folders:
        folder.mkdir()
    with ThreadPoolExecutor(max_workers=len(seeds)) as pool:
        runs = [
            pool.submit(kill_twice_and_resume, seed, folder, data=data, config=config, total=total)
            for seed, folder in zip(seeds, folders, strict=True)
        ]
        databases = [run.result() for run in runs]
    for seed, database in zip(seeds, databases, strict=True):
        state = read_state(database)
        assert state.seen == total, seed
        assert state.pairs == clean_state.pairs, seed
        assert state.alerts == clean_state.alerts, seed  # same pairs, one alert each
        assert state.outbox == 0, seed
        with closing(sqlite3.connect(database)) as connection:
            assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
