"""The scale-out topology as real processes, for the replay test and the benchmark: ``vigil gateway`` (the
HTTP API) publishing to a real NATS server, ``vigil worker`` processes scoring into one Postgres database,
``vigil deliver`` posting alerts to a webhook receiver that counts them. Workers can be SIGKILLed and
restarted (as a supervisor would), and the broker restarted, while a replay is under way."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from tests.support.process import REPO, SECRET, wait_until_listening
from vigil.bots.core.models import ChatMessage
from vigil.bots.http.client import VigilApiError, VigilClient

WEBHOOK_SECRET = "a-webhook-secret-of-some-length"
STREAM = "VIGIL_REPLAY"
BATCH = 50


def write_config(
    folder: Path,
    *,
    http_port: int,
    webhook_port: int,
    model_dir: str = "",
    partitions: int = 16,
    lease_s: float = 3.0,
    backend: str = "postgres",
    broker: bool = True,
) -> Path:
    """One config for every process of the topology (and, with ``broker=False`` and SQLite, the single
    process it is compared with). No cooldown or hourly cap: the comparison is about what is raised."""
    config = folder / ("scale.toml" if broker else "single.toml")
    config.write_text(
        f'[storage]\nbackend = "{backend}"\ndatabase = "single.sqlite3"\n'
        f'[detector]\nmodel_dir = "{model_dir}"\nintra_op_threads = 1\n'
        "[policy]\ncooldown_minutes = 0\nmax_alerts_per_hour = 3600\n"
        f"[http]\nenabled = true\nport = {http_port}\n"
        f'webhook_url = "http://127.0.0.1:{webhook_port}/alerts"\n'
        "[outbox]\npoll_interval_s = 0.5\n"
        f'[broker]\nenabled = {"true" if broker else "false"}\nstream = "{STREAM}"\n'
        f"partitions = {partitions}\nlease_s = {lease_s}\n",
        encoding="utf-8",
    )
    return config


def wire(message: ChatMessage) -> dict[str, object]:
    """A chat message as the HTTP API takes it."""
    entry: dict[str, object] = {
        "space_id": message.space_id,
        "channel_id": message.channel_id,
        "message_id": message.message_id,
        "author_id": message.author_id,
        "text": message.text,
        "timestamp": message.timestamp.isoformat(),
    }
    if message.is_dm:
        entry["is_dm"] = True
        entry["recipient_ids"] = list(message.recipient_ids)
    if message.reply_to_message_id is not None:
        entry["reply_to_message_id"] = message.reply_to_message_id
        entry["reply_to_author_id"] = message.reply_to_author_id
    return entry


@dataclass
class WebhookReceiver:
    """Counts the alerts posted to it (``alert.created``) per (space, case number)."""

    created: Counter[tuple[str, int]] = field(default_factory=Counter)
    updates: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        if request.headers.get("X-Vigil-Event") == "alert.created":
            self.created[(str(body["space_id"]), int(body["case_number"]))] += 1
        else:
            self.updates += 1
        return web.json_response({})


@contextlib.asynccontextmanager
async def webhook_receiver(port: int) -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    app = web.Application()
    app.router.add_post("/alerts", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield receiver
    finally:
        await runner.cleanup()


class Topology:
    """The processes of one scale-out run, started from one config and one environment."""

    def __init__(self, *, config: Path, env: dict[str, str], folder: Path) -> None:
        self.config = config
        self.env = env
        self.folder = folder
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self.kills = 0
        # Where each process's current life starts in its log.
        self._log_offsets: dict[str, int] = {}

    async def start(self, role: str, name: str, *extra: str) -> None:
        path = self.folder / f"{name}.log"
        self._log_offsets[name] = path.stat().st_size if path.exists() else 0
        log = path.open("ab")
        self.processes[name] = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "vigil",
            "--config",
            str(self.config),
            role,
            "--name",
            name,
            *extra,
            cwd=REPO,
            env=self.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
        )

    async def kill(self, name: str) -> None:
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        await process.wait()
        self.kills += 1

    async def stop_all(self) -> dict[str, int | None]:
        codes: dict[str, int | None] = {}
        for process in self.processes.values():
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for name, process in self.processes.items():
            try:
                await asyncio.wait_for(process.wait(), timeout=60)
            except TimeoutError:
                process.kill()
                await process.wait()
            codes[name] = process.returncode
        return codes

    def current_log(self, name: str) -> str:
        """What the process wrote since its last start."""
        with (self.folder / f"{name}.log").open("rb") as log:
            log.seek(self._log_offsets[name])
            return log.read().decode(errors="replace")

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")


def environment(*, dsn: str | None, nats_url: str | None) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "VIGIL_HTTP_SECRET": SECRET,
        "VIGIL_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    if dsn is not None:
        env["VIGIL_POSTGRES_DSN"] = dsn
    if nats_url is not None:
        env["VIGIL_NATS_URL"] = nats_url
    return env


async def send_all(port: int, messages: Sequence[ChatMessage], *, pace_s: float = 0.0) -> None:
    """POST every message in batches, ``pace_s`` apart (live traffic), resending a batch answered 429/503
    (as the API asks)."""
    batches = [[wire(m) for m in messages[i : i + BATCH]] for i in range(0, len(messages), BATCH)]
    async with VigilClient(f"http://127.0.0.1:{port}", SECRET, timeout_s=180) as client:
        for batch in batches:
            await asyncio.sleep(pace_s)
            for _ in range(100):
                try:
                    await client.send_messages(batch)
                    break
                except VigilApiError as error:
                    await asyncio.sleep(error.retry_after or 0.5)
            else:
                raise AssertionError("a batch was never accepted")


async def wait_for_gateway(port: int, topology: Topology, name: str) -> None:
    try:
        await wait_until_listening(port, topology.processes[name])
    except AssertionError as error:
        raise AssertionError(f"{error}: {topology.log(name)[-3000:]}") from None


async def wait_until(condition: object, *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert callable(condition)
        if await condition():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
