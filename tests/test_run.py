"""``vigil run`` as a real process: HTTP ingest in, console alerts out, clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web

from tests.support.process import REPO, SECRET, free_port, start_vigil, wait_until_listening
from vigil.bots.core.models import ChatMessage
from vigil.bots.http.client import VigilClient


def grooming_batch(start: datetime) -> list[ChatMessage]:
    return [
        ChatMessage(
            platform="chatapp",
            space_id="tenant-1",
            channel_id="dm-7",
            message_id=f"msg-{i}",
            author_id="u-adult" if i % 2 == 0 else "u-kid",
            text="secret groom" if i % 2 == 0 else "ok lol",
            timestamp=start + timedelta(seconds=i),
            is_dm=True,
            recipient_ids=("u-kid",) if i % 2 == 0 else ("u-adult",),
        )
        for i in range(10)
    ]


async def test_run_serves_http_ingest_posts_alerts_and_stops_cleanly(
    tmp_path: Path, keyword_model_dir: Path
) -> None:
    port, metrics_port = free_port(), free_port()
    config = tmp_path / "vigil.toml"
    config.write_text(
        f'[storage]\ndatabase = "run.sqlite3"\n[detector]\nmodel_dir = "{keyword_model_dir}"\n'
        f"intra_op_threads = 1\n[http]\nenabled = true\nport = {port}\n[console]\nenabled = true\n"
        f"[metrics]\nenabled = true\nport = {metrics_port}\n",
        encoding="utf-8",
    )
    env = {**os.environ, "VIGIL_HTTP_SECRET": SECRET, "PYTHONPATH": str(REPO)}
    process = await start_vigil(config, env)
    try:
        await wait_until_listening(port, process)
        async with VigilClient(f"http://127.0.0.1:{port}", SECRET) as client:
            results = await client.send_messages(grooming_batch(datetime.now(UTC)))
        assert [r["status"] for r in results] == ["accepted"] * 10
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        alert = json.loads(line)
        assert (
            alert["suspect_id"] == "u-adult" and alert["case_number"] == 1 and alert["platform"] == "chatapp"
        )
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, stderr.decode()
    assert SECRET not in stderr.decode()
    # One logging setup: each line once (the CLI's early handler is replaced by the config's, not doubled).
    assert stderr.decode().count("vigil stopped") == 1
    # Its worker claims what the HTTP API's route delivers: Discord's and Slack's alerts are their adapters'.
    assert "delivering alerts of any platform but discord, slack;" in stderr.decode()
    # The state outlives the process: the alert is in the database for the next start.
    assert (tmp_path / "run.sqlite3").exists()


async def test_console_also_prints_alerts_that_a_webhook_delivers(
    tmp_path: Path, keyword_model_dir: Path
) -> None:
    # `[console] enabled` promises "also print alerts": beside a webhook, each alert goes to both, once.
    received: list[dict[str, object]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    hook_port = runner.addresses[0][1]
    port = free_port()
    config = tmp_path / "vigil.toml"
    config.write_text(
        f'[storage]\ndatabase = "run.sqlite3"\n[detector]\nmodel_dir = "{keyword_model_dir}"\n'
        f"intra_op_threads = 1\n[http]\nenabled = true\nport = {port}\n"
        f'webhook_url = "http://127.0.0.1:{hook_port}/hook"\n[console]\nenabled = true\n',
        encoding="utf-8",
    )
    env = {
        **os.environ,
        "VIGIL_HTTP_SECRET": SECRET,
        "VIGIL_WEBHOOK_SECRET": "another-secret-for-webhooks",
        "PYTHONPATH": str(REPO),
    }
    process = await start_vigil(config, env)
    try:
        await wait_until_listening(port, process)
        async with VigilClient(f"http://127.0.0.1:{port}", SECRET) as client:
            await client.send_messages(grooming_batch(datetime.now(UTC)))
        assert process.stdout is not None
        printed = json.loads(await asyncio.wait_for(process.stdout.readline(), timeout=30))
        assert printed["suspect_id"] == "u-adult" and printed["case_number"] == 1
        assert [(r["suspect_id"], r["case_number"]) for r in received] == [("u-adult", 1)]
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
        await runner.cleanup()
    assert process.returncode == 0, stderr.decode()
    assert stdout.decode().strip() == ""  # printed once, not once more as a fallback


async def test_run_refuses_to_start_without_the_secrets_it_needs(
    tmp_path: Path, keyword_model_dir: Path
) -> None:
    config = tmp_path / "vigil.toml"
    config.write_text(
        f'[detector]\nmodel_dir = "{keyword_model_dir}"\n[discord]\nenabled = true\n', encoding="utf-8"
    )
    env = {k: v for k, v in os.environ.items() if k != "VIGIL_DISCORD_TOKEN"} | {"PYTHONPATH": str(REPO)}
    process = await start_vigil(config, env)
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 2
    assert "VIGIL_DISCORD_TOKEN" in stderr.decode()
