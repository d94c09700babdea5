"""Some of a bot's shards per process: ``vigil run --shards 1-2 --shard-count 4`` through the real discord.py.

The fake Discord sends a shard's session only the servers on that shard (guild id >> 22 modulo the count), as
Discord does, so the process sees its own servers and nothing of the others'.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import discord
import pytest

from tests.discord.conftest import GROOMING_SCRIPT, running_vigil
from tests.discord.fake_discord import FakeDiscord, User
from tests.reliability.state import seen_count
from tests.support.process import REPO
from vigil.bots.cli import build_parser, with_shard_options
from vigil.bots.discord import DiscordOptions, InteractionOptions
from vigil.config.settings import DiscordSettings, Settings

# discord.py waits 5 s between two shards' IDENTIFYs; the fake has no such limit.
FAST = DiscordOptions(
    guild_ready_timeout_s=0.05,
    shutdown_grace_s=2.0,
    identify_interval_s=0.01,
    interactions=InteractionOptions(report_history=5),
)


def run_options(*options: str) -> DiscordSettings:
    """The ``[discord]`` settings of ``vigil run`` with these options, over a config enabling Discord."""
    args = build_parser().parse_args(["run", *options])
    return with_shard_options(Settings(discord=DiscordSettings(enabled=True)), args).discord


async def status_reply(fake: FakeDiscord, user: User) -> str:
    interaction = await fake.slash(user=user, subcommand="status")
    [reply] = await fake.wait_for_reply(interaction)
    return str((reply.json.get("data") or reply.json).get("content") or "")


async def test_a_process_identifies_only_its_shards_and_handles_the_servers_on_them(
    fake: FakeDiscord, tmp_path: Path, keyword_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake.move_guild_to_shard(2, 4)
    settings = run_options("--shards", "1-2", "--shard-count", "4")
    async with running_vigil(
        fake,
        database=tmp_path / "shards.sqlite3",
        model_dir=keyword_model_dir,
        discord_settings=settings,
        options=FAST,
    ) as vigil:
        assert [identify["shard"] for identify in fake.identifies] == [[1, 4], [2, 4]]
        assert fake.calls_to("GET", "/gateway/bot") == [], "the given count, not Discord's recommendation"
        client = vigil.adapter.client
        assert isinstance(client, discord.AutoShardedClient) and sorted(client.shards) == [1, 2]
        guild = client.get_guild(int(fake.guild_id))
        assert guild is not None and guild.shard_id == 2

        # End to end on shard 2: setup, messages through ingest and the monitor, the alert posted.
        await vigil.setup_server()
        sent = await vigil.groom()
        # Each scored (the first opens the pair, so it has none yet).
        assert all(vigil.handler.results[payload["id"]].skipped is None for payload in sent[1:])
        alerts = await vigil.store.alerts_for_space(platform="discord", space_id=fake.guild_id, limit=5)
        assert len(alerts) == 1 and len(fake.bot_messages(fake.alerts)) == 1

        status = await status_reply(fake, fake.mod)
        assert "**Vigil status**: connected" in status and "this process runs shards 1-2 of 4" in status
    logged = [r.getMessage() for r in caplog.records if r.name == "vigil.bots.discord.adapter"]
    assert "this process runs Discord shards 1-2 of 4; the other shards need their own processes" in logged


async def test_a_restarted_process_catches_up_on_the_servers_of_its_shards(
    fake: FakeDiscord, tmp_path: Path, keyword_model_dir: Path
) -> None:
    fake.move_guild_to_shard(1, 4)
    database = tmp_path / "shards.sqlite3"
    settings = run_options("--shards", "1-2", "--shard-count", "4")
    async with running_vigil(
        fake, database=database, model_dir=keyword_model_dir, discord_settings=settings, options=FAST
    ) as first:
        opener = await first.say(fake.kid, "hello there")
        await fake.wait_until(lambda: len(fake.identifies) == 2, what="shard 2 to identify")
    missed = [
        fake.message_payload(author=fake.adult, content=text, reply_to=opener) for text in GROOMING_SCRIPT[:3]
    ]
    for payload in missed:
        await fake.send_message(payload)  # to the dead session: the new one never gets them
    async with running_vigil(
        fake, database=database, model_dir=keyword_model_dir, discord_settings=settings, options=FAST
    ) as second:
        for payload in missed:
            assert (await second.handler.wait_for(payload["id"])).skipped is None
        await fake.wait_until(lambda: len(fake.identifies) == 4, what="shard 2 to identify again")
        assert [identify["shard"] for identify in fake.identifies] == [[1, 4], [2, 4]] * 2
        read_back = [c.path for c in fake.calls_to("GET", r"/channels/\d+/messages") if "after" in c.query]
        assert read_back == [f"/channels/{fake.general}/messages"]


async def test_a_whole_bot_in_one_process_is_not_said_to_run_a_subset(
    fake: FakeDiscord, tmp_path: Path, keyword_model_dir: Path
) -> None:
    settings = run_options("--shard-count", "2")
    assert settings.runs_sharded and settings.shard_subset() is None
    fake.move_guild_to_shard(1, 2)
    async with running_vigil(
        fake,
        database=tmp_path / "whole.sqlite3",
        model_dir=keyword_model_dir,
        discord_settings=settings,
        options=FAST,
    ) as vigil:
        assert [identify["shard"] for identify in fake.identifies] == [[0, 2], [1, 2]]
        await vigil.setup_server()
        status = await status_reply(fake, fake.mod)
        assert "**Vigil status**: connected" in status and "shards" not in status


async def test_vigil_run_with_shard_options_runs_those_shards(
    fake: FakeDiscord, tmp_path: Path, keyword_model_dir: Path
) -> None:
    # One shard: a second would wait discord.py's 5 s before identifying (the test above runs two).
    fake.move_guild_to_shard(2, 4)
    config = tmp_path / "vigil.toml"
    config.write_text(
        f'[storage]\ndatabase = "run.sqlite3"\n[detector]\nmodel_dir = "{keyword_model_dir.as_posix()}"\n'
        "intra_op_threads = 1\n[discord]\nenabled = true\n",
        encoding="utf-8",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.run_against_fakes",
        "--discord-api",
        fake.api_base,
        "--discord-gateway",
        fake.gateway_url,
        "--",
        "--config",
        str(config),
        "run",
        "--shards",
        "2",
        "--shard-count",
        "4",
        cwd=REPO,
        env={**os.environ, "VIGIL_DISCORD_TOKEN": fake.token, "PYTHONPATH": str(REPO)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await fake.wait_until(
            lambda: process.returncode is not None or fake.connected,
            within_s=60,
            what="vigil run to identify",
        )
        opener = fake.message_payload(author=fake.kid, content="hello there")
        await fake.send_message(opener)
        await fake.send_message(fake.message_payload(author=fake.adult, content="age age", reply_to=opener))
        await fake.wait_until(
            lambda: process.returncode is not None or seen_count(tmp_path / "run.sqlite3") == 2,
            within_s=30,
            what="both messages to be stored",
        )
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    log = stderr.decode(errors="replace")
    assert process.returncode == 0, log[-2000:]
    assert [identify["shard"] for identify in fake.identifies] == [[2, 4]]
    assert "vigil running: discord (shard 2 of 4)" in log
    assert "this process runs Discord shard 2 of 4" in log
