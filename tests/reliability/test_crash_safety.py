"""Crash safety: `vigil scan` killed with SIGKILL at random points and restarted ends where a clean run ends.

Each seed kills the scan twice mid-run (when the database's ``seen_messages`` count passes a random target),
then runs it to completion, and compares the database with one uninterrupted run: the same pairs with the same
message counts and risk, the same alerts (one per pair, no duplicates), and an empty outbox.

Some channels reply to the previous message; in others two people only take turns (no replies, no
mentions), so their pairs, and the alerts of the grooming ones, depend on the resolver's turn-taking memory,
which a restart loses and the resumed scan rebuilds from the messages it replays (docs/operations.md).
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import pytest

from tests.reliability.state import (
    DatabaseState,
    read_state,
    seen_count,
    write_conversations,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


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
