"""Crash safety through the HTTP API: `vigil run` killed with SIGKILL mid-stream, restarted, fed again.

The platform side behaves as the API asks (docs/http-api.md): a batch answered 200 is stored; anything not
answered is sent again. Here the platform simply resends every batch after the restart. Each seed kills the
process once, while a batch is in flight at a random point of the stream, and the end state must equal one
uninterrupted run: the same pairs with the same message counts and risk, one alert per pair, none lost.
The conversations are those of the scan crash test, turn-taking-only channels included.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.reliability.helpers import SEED_PAIRS, run_seed_pair, seed_pair_id
from tests.reliability.state import DatabaseState, read_state, write_conversations
from tests.support.process import REPO, SECRET, free_port, start_vigil, wait_until_listening
from vigil.bots.http.client import VigilApiError, VigilClient

BATCH = 50
START = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)


def wire_batches(folder: Path) -> list[list[dict[str, object]]]:
    """Part of the scan crash test's conversations (every turn-taking channel, 4 DMs, the first 40 messages
    of a reply-chain channel: about 590 messages) as HTTP API messages, in batches, one after another."""
    data = folder / "conversations.jsonl"
    write_conversations(data)
    records = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()]
    kept = [r for r in records if r["id"].startswith("turn-")]
    kept += [r for r in records if r["id"].startswith("dm-")][:4]
    kept += [{**r, "messages": r["messages"][:40]} for r in records if r["id"].startswith("chan-")][:1]
    kept.sort(key=lambda record: str(record["id"]))
    messages: list[dict[str, object]] = []
    clock = START
    for record in kept:
        authors = sorted({m["author"] for m in record["messages"]})
        for index, message in enumerate(record["messages"]):
            clock += timedelta(seconds=5)
            author = str(message["author"])
            wire: dict[str, object] = {
                "space_id": "tenant-1",
                "channel_id": record["id"],
                "message_id": f"{record['id']}-{index}",
                "author_id": author,
                "text": message["text"],
                "timestamp": clock.isoformat(),
            }
            if record["setting"] == "dm":
                wire["is_dm"] = True
                wire["recipient_ids"] = [a for a in authors if a != author]
            elif message["reply_to"] is not None:
                replied = record["messages"][int(message["reply_to"])]
                wire["reply_to_message_id"] = f"{record['id']}-{message['reply_to']}"
                wire["reply_to_author_id"] = replied["author"]
            messages.append(wire)
    return [messages[i : i + BATCH] for i in range(0, len(messages), BATCH)]


def write_config(folder: Path, *, model_dir: Path, port: int) -> Path:
    config = folder / "vigil.toml"
    config.write_text(
        f'[storage]\ndatabase = "run.sqlite3"\n[detector]\nmodel_dir = "{model_dir.as_posix()}"\n'
        f"intra_op_threads = 1\n[http]\nenabled = true\nport = {port}\n",
        encoding="utf-8",
    )
    return config


async def send_all(client: VigilClient, batches: list[list[dict[str, object]]]) -> None:
    for batch in batches:
        for _ in range(50):
            try:
                await client.send_messages(batch)
                break
            except VigilApiError as error:  # 429 / 503: resend after Retry-After, as the API asks
                await asyncio.sleep(error.retry_after or 0.2)
        else:
            raise AssertionError("a batch was never accepted")


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode(errors="replace")[-2000:]


async def run_once(folder: Path, *, model_dir: Path, batches: list[list[dict[str, object]]]) -> None:
    port = free_port()
    config = write_config(folder, model_dir=model_dir, port=port)
    env = {**os.environ, "VIGIL_HTTP_SECRET": SECRET, "PYTHONPATH": str(REPO)}
    process = await start_vigil(config, env)
    try:
        await wait_until_listening(port, process)
        async with VigilClient(f"http://127.0.0.1:{port}", SECRET) as client:
            await send_all(client, batches)
    finally:
        await stop(process)


@pytest.fixture(scope="module")
def http_batches(tmp_path_factory: pytest.TempPathFactory) -> list[list[dict[str, object]]]:
    return wire_batches(tmp_path_factory.mktemp("http-crash-data"))


@pytest.fixture(scope="module")
def clean_http_state(
    http_batches: list[list[dict[str, object]]],
    tmp_path_factory: pytest.TempPathFactory,
    keyword_model_dir: Path,
) -> DatabaseState:
    folder = tmp_path_factory.mktemp("http-clean")
    asyncio.run(run_once(folder, model_dir=keyword_model_dir, batches=http_batches))
    state = read_state(folder / "run.sqlite3")
    assert state.seen == sum(len(batch) for batch in http_batches)
    turn_taking = [key for key in state.alerts if key[1].startswith("u-turn")]
    assert len(turn_taking) == 4, "the turn-taking channels' grooming alerts are part of the comparison"
    return state


async def kill_and_resend(
    seed: int, folder: Path, *, batches: list[list[dict[str, object]]], model_dir: Path
) -> DatabaseState:
    """``vigil run`` killed with batch ``seed``'s kill point in flight, then everything sent again."""
    rng = random.Random(seed)
    killed_at = rng.randrange(1, len(batches) - 1)
    port = free_port()
    config = write_config(folder, model_dir=model_dir, port=port)
    env = {**os.environ, "VIGIL_HTTP_SECRET": SECRET, "PYTHONPATH": str(REPO)}
    process = await start_vigil(config, env)
    try:
        await wait_until_listening(port, process)
        async with VigilClient(f"http://127.0.0.1:{port}", SECRET) as client:
            await send_all(client, batches[:killed_at])
            # The next batch is in flight when the process dies: it may or may not have been committed.
            in_flight = asyncio.create_task(client.send_messages(batches[killed_at]))
            await asyncio.sleep(rng.uniform(0.0, 0.05))
            process.kill()
            await process.wait()
            # Answered just before the kill, or cut off by it: either is a possible outcome.
            with contextlib.suppress(Exception):
                await in_flight
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    # The platform sends everything again; what was stored is answered `duplicate`.
    await run_once(folder, model_dir=model_dir, batches=batches)
    return read_state(folder / "run.sqlite3")


# Issue 14: at least 20 kill points per ingest path, two seeds at a time (each its own process and database).
@pytest.mark.parametrize("seeds", SEED_PAIRS, ids=seed_pair_id)
async def test_sigkill_mid_stream_then_resend_matches_a_clean_run(
    seeds: tuple[int, int],
    http_batches: list[list[dict[str, object]]],
    clean_http_state: DatabaseState,
    tmp_path: Path,
    keyword_model_dir: Path,
) -> None:
    async def one_seed(seed: int, folder: Path) -> DatabaseState:
        return await kill_and_resend(seed, folder, batches=http_batches, model_dir=keyword_model_dir)

    for seed, state in await run_seed_pair(seeds, tmp_path, one_seed):
        assert state.seen == clean_http_state.seen, seed
        assert state.pairs == clean_http_state.pairs, seed
        # Same pairs, one alert each: none lost, none doubled.
        assert state.alerts == clean_http_state.alerts, seed
