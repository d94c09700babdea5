"""Crash safety through Discord: `vigil run` (the real discord.py) killed with SIGKILL mid-stream, restarted.

Discord behaves as it does for a bot: events go to the current gateway session only, a session that died is
not resumed by a new process, and what was said meanwhile stays in channel history. Each seed kills the
process while messages stream in (some delivered but not yet stored), sends more while it is down, then
starts it again and goes on sending at once, so live messages arrive while Vigil reads the missed ones back
from history (docs/discord.md, catch-up). The end state must equal one uninterrupted run: the same pairs with
the same message counts and risk (every pair's messages scored in the order they were sent), one alert per
pair, none lost. The channels are the scan crash test's turn-taking ones (pairs that exist only through the
resolver's turn-taking memory, which the restart loses) and part of a reply-chain channel.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.discord.fake_discord import FakeDiscord, Json, User
from tests.reliability.state import DatabaseState, read_state, seen_count, write_conversations
from tests.support.process import REPO

REPLY_CHANNEL_MESSAGES = 40


@dataclass(frozen=True, slots=True)
class Line:
    channel: str  # the conversation's id; one Discord channel each
    author: str
    text: str
    reply_to: int | None  # index into the same conversation


def conversations(folder: Path) -> list[Line]:
    data = folder / "conversations.jsonl"
    write_conversations(data)
    records = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()]
    kept = [r for r in records if r["id"].startswith("turn-")]
    kept += [r for r in records if r["id"].startswith("chan-")][:1]
    kept.sort(key=lambda record: str(record["id"]))
    lines: list[Line] = []
    for record in kept:
        messages = record["messages"]
        if record["id"].startswith("chan-"):
            messages = messages[:REPLY_CHANNEL_MESSAGES]
        for message in messages:
            lines.append(
                Line(record["id"], str(message["author"]), str(message["text"]), message["reply_to"])
            )
    return lines


class World:
    """One fake Discord with the conversations' people and channels, and the payloads sent so far."""

    def __init__(self, fake: FakeDiscord, lines: list[Line]) -> None:
        self.fake = fake
        self.lines = lines
        self.users: dict[str, User] = {}
        self.channels: dict[str, str] = {}
        for line in lines:
            if line.author not in self.users:
                self.users[line.author] = fake.add_user(line.author)
            if line.channel not in self.channels:
                self.channels[line.channel] = fake.add_channel(line.channel)
        self.sent: dict[tuple[str, int], Json] = {}
        self._index: dict[str, int] = {}

    async def send(self, line: Line) -> None:
        index = self._index.get(line.channel, 0)
        self._index[line.channel] = index + 1
        reply = self.sent[(line.channel, line.reply_to)] if line.reply_to is not None else None
        payload = self.fake.message_payload(
            author=self.users[line.author],
            content=line.text,
            channel_id=self.channels[line.channel],
            reply_to=reply,
        )
        self.sent[(line.channel, index)] = payload
        await self.fake.send_message(payload)

    def canonical(self, state: DatabaseState) -> DatabaseState:
        """The state with Discord's ids replaced by the conversations' names, to compare across fakes."""
        names = {user.id: name for name, user in self.users.items()}

        def key(space: str, a: str, b: str) -> tuple[str, str, str]:
            assert space == self.fake.guild_id
            low, high = sorted((names[a], names[b]))
            return ("guild", low, high)

        return DatabaseState(
            pairs={key(*k): v for k, v in state.pairs.items()},
            alerts={key(*k): v for k, v in state.alerts.items()},
            seen=state.seen,
            outbox=state.outbox,
        )


async def start(folder: Path, world: World, *, model_dir: Path) -> asyncio.subprocess.Process:
    config = folder / "vigil.toml"
    config.write_text(
        f'[storage]\ndatabase = "run.sqlite3"\n[detector]\nmodel_dir = "{model_dir.as_posix()}"\n'
        "intra_op_threads = 1\n[discord]\nenabled = true\n",
        encoding="utf-8",
    )
    env = {**os.environ, "VIGIL_DISCORD_TOKEN": world.fake.token, "PYTHONPATH": str(REPO)}
    identified = len(world.fake.identifies)
    log = (folder / "vigil.log").open("ab")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.run_against_fakes",
        "--discord-api",
        world.fake.api_base,
        "--discord-gateway",
        world.fake.gateway_url,
        "--",
        "--config",
        str(config),
        "run",
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=log,
    )
    log.close()
    await world.fake.wait_until(
        lambda: (
            process.returncode is not None
            or (len(world.fake.identifies) > identified and world.fake.connected)
        ),
        within_s=60,
        what="vigil run to identify on the gateway",
    )
    assert process.returncode is None, (folder / "vigil.log").read_text(errors="replace")[-2000:]
    return process


async def finish(folder: Path, process: asyncio.subprocess.Process, *, expected: int) -> None:
    database = folder / "run.sqlite3"
    for _ in range(3000):
        if seen_count(database) >= expected:
            break
        assert process.returncode is None, (folder / "vigil.log").read_text(errors="replace")[-2000:]
        await asyncio.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    await asyncio.wait_for(process.wait(), timeout=60)
    assert process.returncode == 0, (folder / "vigil.log").read_text(errors="replace")[-2000:]


@pytest.fixture(scope="module")
def discord_lines(tmp_path_factory: pytest.TempPathFactory) -> list[Line]:
    return conversations(tmp_path_factory.mktemp("discord-crash-data"))


@pytest.fixture(scope="module")
def clean_discord_state(
    discord_lines: list[Line], tmp_path_factory: pytest.TempPathFactory, keyword_model_dir: Path
) -> DatabaseState:
    folder = tmp_path_factory.mktemp("discord-clean")

    async def run() -> DatabaseState:
        fake = FakeDiscord()
        await fake.start()
        try:
            world = World(fake, discord_lines)
            process = await start(folder, world, model_dir=keyword_model_dir)
            for line in discord_lines:
                await world.send(line)
            await finish(folder, process, expected=len(discord_lines))
            return world.canonical(read_state(folder / "run.sqlite3"))
        finally:
            await fake.close()

    state = asyncio.run(run())
    assert state.seen == len(discord_lines)
    turn_taking = [key for key in state.alerts if key[1].startswith("u-turn")]
    assert len(turn_taking) == 4, "the turn-taking channels' grooming alerts are part of the comparison"
    return state


# Issue 14: at least 20 kill points per ingest path.
@pytest.mark.parametrize("seed", range(1, 21))
async def test_sigkill_mid_stream_then_restart_matches_a_clean_run(
    seed: int,
    discord_lines: list[Line],
    clean_discord_state: DatabaseState,
    tmp_path: Path,
    keyword_model_dir: Path,
) -> None:
    rng = random.Random(seed)
    total = len(discord_lines)
    killed_at = rng.randrange(20, total - 40)
    back_at = killed_at + rng.randrange(0, 30)
    fake = FakeDiscord()
    await fake.start()
    try:
        world = World(fake, discord_lines)
        process = await start(tmp_path, world, model_dir=keyword_model_dir)
        try:
            for line in discord_lines[:killed_at]:
                await world.send(line)
            # Delivered to the gateway, perhaps not yet stored when the process dies.
            await asyncio.sleep(rng.uniform(0.0, 0.05))
            process.kill()
            await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        for line in discord_lines[killed_at:back_at]:
            await world.send(line)  # said while Vigil is down: only channel history has them
        process = await start(tmp_path, world, model_dir=keyword_model_dir)
        for line in discord_lines[back_at:]:
            await world.send(line)  # live, while the missed ones are being read back
        await finish(tmp_path, process, expected=total)
        state = world.canonical(read_state(tmp_path / "run.sqlite3"))
    finally:
        await fake.close()
    assert state.seen == clean_discord_state.seen
    assert state.pairs == clean_discord_state.pairs
    assert state.alerts == clean_discord_state.alerts  # same pairs, one alert each: none lost, none doubled
