"""Crash safety through Slack's Events API: `vigil run` (Slack in HTTP mode) killed with SIGKILL mid-stream.

Slack behaves as its Events API documents: each event callback is its own signed POST; a 2xx answer is the
acknowledgement, and an acknowledged event is never sent again; an event left unanswered (the connection cut
by the kill, or an error status) is sent again with the same ``event_id`` and ``X-Slack-Retry-Num`` /
``X-Slack-Retry-Reason`` headers. Vigil answers only once the message is committed (bolt's
``process_before_response``). Each seed sends the stream one event at a time and kills the process while one
event is in flight: at a random moment, or (every fourth seed) just after it answered, as if the answer were
lost on its way to Slack. Right after the kill the database must hold every answered event. The process is
started again, the unacknowledged event redelivered, then the rest of the stream, and the end state must equal
one uninterrupted run's: every message stored once, the same pairs, the same alerts (one per pair: none lost,
none doubled).

The conversations are a part of the scan crash test's as Slack messages: turn-taking-only channels (the four
grooming ones among them), a grooming DM (``channel_type`` ``im``) and a channel whose replies are in threads.
Slack never redelivers an acknowledged event, so no replay rebuilds the turn-taking memory: it is stored with
the messages (the ``turn_memory`` table) and read back at start, and every pair, the one the kill fell in
included, must hold the same messages with the same risk as in the uninterrupted run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.reliability.helpers import SEED_PAIRS, run_seed_pair, seed_pair_id
from tests.reliability.slack_stream import (
    SlackEvent,
    assert_same_as_clean,
    checked_clean_run,
    kill,
    populate,
    slack_events,
)
from tests.reliability.state import DatabaseState, read_state, seen_count
from tests.slack.fake_slack import FakeSlack
from tests.slack.harness import sign
from tests.support.process import REPO, free_port, wait_until_listening
from vigil.bots.slack.app import EVENTS_PATH

SIGNING_SECRET = "crash-suite-signing-secret"
# Slack's retry policy: the first delivery and at most three retries.
MAX_RETRIES = 3


def write_config(folder: Path, *, model_dir: Path, port: int) -> Path:
    config = folder / "vigil.toml"
    config.write_text(
        f'[storage]\ndatabase = "run.sqlite3"\n[detector]\nmodel_dir = "{model_dir.as_posix()}"\n'
        f'intra_op_threads = 1\n[slack]\nenabled = true\nmode = "http"\nhttp_port = {port}\n',
        encoding="utf-8",
    )
    return config


@dataclass(slots=True)
class RunningVigil:
    process: asyncio.subprocess.Process
    url: str
    log: Path

    def log_tail(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-3000:]


async def start(folder: Path, *, fake: FakeSlack, model_dir: Path, name: str) -> RunningVigil:
    """`vigil run` with Slack in HTTP mode, its Web API pointed at the fake; listening when this returns."""
    port = free_port()
    config = write_config(folder, model_dir=model_dir, port=port)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "VIGIL_SLACK_BOT_TOKEN": fake.bot_token,
        "VIGIL_SLACK_SIGNING_SECRET": SIGNING_SECRET,
    }
    log = folder / f"{name}.log"
    with log.open("wb") as stderr:  # a file, not a pipe nobody reads: the process can never block on it
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.support.run_against_fakes",
            "--slack-api",
            fake.base_url,
            "--",
            "--config",
            str(config),
            "run",
            cwd=REPO,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
        )
    running = RunningVigil(process=process, url=f"http://127.0.0.1:{port}{EVENTS_PATH}", log=log)
    try:
        await wait_until_listening(port, process)
    except AssertionError as error:
        await kill(process)
        raise AssertionError(f"{error}\n{running.log_tail()}") from None
    return running


async def stop(vigil: RunningVigil) -> None:
    if vigil.process.returncode is None:
        vigil.process.send_signal(signal.SIGTERM)
    await asyncio.wait_for(vigil.process.wait(), timeout=60)
    assert vigil.process.returncode == 0, vigil.log_tail()


async def deliver(
    session: aiohttp.ClientSession, url: str, event: SlackEvent, *, retry: int, reason: str
) -> int:
    """One delivery attempt, signed now as Slack signs each attempt; the HTTP status of the answer."""
    stamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": str(stamp),
        "X-Slack-Signature": sign(event.body, timestamp=stamp, secret=SIGNING_SECRET),
    }
    if retry:
        headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": reason}
    async with session.post(url, data=event.body.encode(), headers=headers) as response:
        await response.read()
        return response.status


async def send_in_order(
    session: aiohttp.ClientSession, url: str, events: list[SlackEvent], *, first_is_a_retry: bool = False
) -> None:
    """Each event until it is acknowledged (2xx); an error answer is retried as Slack retries it."""
    for position, event in enumerate(events):
        retry, reason = (1, "http_timeout") if first_is_a_retry and position == 0 else (0, "")
        while not 200 <= (status := await deliver(session, url, event, retry=retry, reason=reason)) < 300:
            retry, reason = retry + 1, "http_error"
            assert retry <= MAX_RETRIES, f"Slack would have given up on an event answered {status}"


async def run_once(folder: Path, *, model_dir: Path, events: list[SlackEvent]) -> None:
    fake = FakeSlack()
    populate(fake, events)
    await fake.start()
    try:
        vigil = await start(folder, fake=fake, model_dir=model_dir, name="clean")
        try:
            async with aiohttp.ClientSession() as session:
                await send_in_order(session, vigil.url, events)
        finally:
            await stop(vigil)
    finally:
        await fake.close()


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> list[SlackEvent]:
    return slack_events(tmp_path_factory.mktemp("slack-crash-data"))


@pytest.fixture(scope="module")
def clean_slack_state(
    events: list[SlackEvent], tmp_path_factory: pytest.TempPathFactory, keyword_model_dir: Path
) -> DatabaseState:
    folder = tmp_path_factory.mktemp("slack-clean")
    asyncio.run(run_once(folder, model_dir=keyword_model_dir, events=events))
    return checked_clean_run(read_state(folder / "run.sqlite3"), events=events)


async def kill_and_resume(
    seed: int, folder: Path, *, events: list[SlackEvent], model_dir: Path
) -> DatabaseState:
    """One seed: killed with an event in flight, restarted, the rest redelivered; the end state."""
    rng = random.Random(seed)
    killed_at = rng.randrange(1, len(events) - 1)
    # Every fourth seed the process dies just after answering, before Slack reads the answer: a stored event
    # is sent again (the other seeds cut the delivery at a random moment, mostly before or after the commit).
    answer_lost = seed % 4 == 0
    fake = FakeSlack()
    populate(fake, events)
    await fake.start()
    try:
        vigil = await start(folder, fake=fake, model_dir=model_dir, name="killed")
        try:
            async with aiohttp.ClientSession() as session:
                await send_in_order(session, vigil.url, events[:killed_at])
                in_flight = asyncio.create_task(
                    deliver(session, vigil.url, events[killed_at], retry=0, reason="")
                )
                if answer_lost:
                    await asyncio.wait({in_flight})
                else:  # an event takes about 5 ms here: before, during or after its commit
                    await asyncio.sleep(rng.uniform(0.0, 0.01))
                await kill(vigil.process)
                status: int | None = None
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    status = await in_flight
        finally:
            await kill(vigil.process)
        answered = status is not None and 200 <= status < 300
        stored = seen_count(folder / "run.sqlite3")
        # Everything answered was committed, the event in flight included if its answer came back.
        assert stored in (killed_at, killed_at + 1), (seed, stored)
        if answered:
            assert stored == killed_at + 1, f"seed {seed}: vigil acknowledged an event it had not stored"
        acknowledged = answered and not answer_lost
        # Slack sends again what was not acknowledged, then the rest; never what was.
        vigil = await start(folder, fake=fake, model_dir=model_dir, name="restarted")
        try:
            async with aiohttp.ClientSession() as session:
                rest = events[killed_at + 1 :] if acknowledged else events[killed_at:]
                await send_in_order(session, vigil.url, rest, first_is_a_retry=not acknowledged)
        finally:
            await stop(vigil)
    finally:
        await fake.close()
    return read_state(folder / "run.sqlite3")


# Issue 14: at least 20 kill points per ingest path, two seeds at a time.
@pytest.mark.parametrize("seeds", SEED_PAIRS, ids=seed_pair_id)
async def test_sigkill_with_an_event_in_flight_then_redelivery_matches_a_clean_run(
    seeds: tuple[int, int],
    events: list[SlackEvent],
    clean_slack_state: DatabaseState,
    tmp_path: Path,
    keyword_model_dir: Path,
) -> None:
    async def one_seed(seed: int, folder: Path) -> DatabaseState:
        return await kill_and_resume(seed, folder, events=events, model_dir=keyword_model_dir)

    for seed, state in await run_seed_pair(seeds, tmp_path, one_seed):
        assert_same_as_clean(seed, state, clean_slack_state)
