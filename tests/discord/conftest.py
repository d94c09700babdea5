"""Fixtures for the Discord suite: the fake Discord server, and a whole Vigil (real discord.py, real Monitor,
real SqliteStore file, real ONNX keyword model, real CaseService, real OutboxWorker) connected to it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import discord
import pytest
import yarl

from tests.discord.fake_discord import FakeDiscord, Json, User
from tests.support.fakes import FakeClock
from vigil.bots.app import App
from vigil.bots.core.case_service import CaseService
from vigil.bots.core.ingest import IngestQueue
from vigil.bots.core.models import ChatMessage
from vigil.bots.core.monitor import HandleResult, Monitor
from vigil.bots.core.outbox import OutboxWorker
from vigil.bots.core.policy import PolicyConfig
from vigil.bots.core.ports import MessageHandler
from vigil.bots.core.sinks import RoutingSink
from vigil.bots.discord import DiscordAdapter, DiscordOptions, InteractionOptions
from vigil.config.settings import DiscordSettings, PolicySettings, Secret, Settings
from vigil.detector.onnx_detector import OnnxDetector
from vigil.storage.sqlite import SqliteStore

# With the keyword model: "age age" sits just above the 0.7 threshold (an alert after the third), then
# "secret" and "groom" push the pair's risk up, so the open alert is updated three times.
GROOMING_SCRIPT = ("age age", "age age", "age age", "secret", "secret groom", "groom groom")


@pytest.fixture(autouse=True)
def no_discord_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Any ERROR from discord.py fails the test; no log line may carry the token or a message's text."""
    caplog.set_level(logging.DEBUG, logger="vigil")
    yield
    records = caplog.get_records("setup") + caplog.get_records("call")
    errors = [r for r in records if r.levelno >= logging.ERROR and r.name.startswith("discord")]
    assert not errors, "discord.py logged errors: " + "; ".join(r.getMessage() for r in errors)
    ours = [r for r in records if r.name.startswith("vigil")]
    for record in ours:
        text = record.getMessage()
        assert "test-token" not in text, f"a log line carries the token: {record.name}"
        # Whole script lines: a bare "groom" also occurs in test names, hence in temporary paths.
        leaked = [line for line in GROOMING_SCRIPT if line in text and line != "age age"]
        assert not leaked, f"a log line carries message text: {record.name}: {text}"


@pytest.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    server = FakeDiscord()
    await server.start()
    monkeypatch.setattr(discord.http.Route, "BASE", server.api_base)
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(server.gateway_url))
    try:
        yield server
    finally:
        await server.close()


class RecordingHandler:
    """The monitor, with a record of what it was handed (for waiting on events in tests)."""

    def __init__(self, monitor: MessageHandler) -> None:
        self._monitor = monitor
        self.seen: list[ChatMessage] = []
        self.results: dict[str, HandleResult] = {}
        # Close the gate to hold every call until it opens again.
        self.gate = asyncio.Event()
        self.gate.set()
        self.active = 0
        self.max_active = 0
        self.fail_ids: set[str] = set()

    async def handle(self, message: ChatMessage) -> HandleResult:
        self.seen.append(message)
        if message.message_id in self.fail_ids:
            raise RuntimeError("the monitor broke")
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await self.gate.wait()
            result = await self._monitor.handle(message)
        finally:
            self.active -= 1
        self.results[message.message_id] = result
        return result

    async def wait_for(self, message_id: str, *, within_s: float = 5.0) -> HandleResult:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while message_id not in self.results:
            if loop.time() > deadline:
                raise AssertionError(f"message {message_id} was never handled")
            await asyncio.sleep(0.005)
        return self.results[message_id]


SETTINGS = Settings(policy=PolicySettings(window_messages=20, evidence_messages=3))


def policy() -> PolicyConfig:
    return PolicyConfig(
        threshold=0.7,
        sustain_messages=2,
        hysteresis=0.1,
        cooldown=timedelta(hours=6),
        update_min_delta=0.01,
        max_alerts_per_hour=10,
        shadow_mode=False,
    )


@dataclass
class Vigil:
    fake: FakeDiscord
    store: SqliteStore
    monitor: Monitor
    cases: CaseService
    clock: FakeClock
    outbox: OutboxWorker
    adapter: DiscordAdapter
    handler: RecordingHandler
    task: asyncio.Task[None]
    # With ``queue_capacity``: the ingest queue between the adapter and the monitor (its worker not started).
    queue: IngestQueue | None = None

    async def drain(self) -> int:
        return await self.outbox.drain_once()

    async def say(self, author: User, text: str, **options: Any) -> Json:
        """A member writes a message; returns once Vigil has handled it."""
        payload = self.fake.message_payload(author=author, content=text, **options)
        await self.fake.send_message(payload)
        await self.handler.wait_for(payload["id"])
        return payload

    async def setup_server(self, *, child_safety: bool = True) -> None:
        options: list[Json] = [
            {"name": "alert_channel", "type": 7, "value": self.fake.alerts},
            {"name": "moderator_role", "type": 8, "value": self.fake.mod_role},
        ]
        resolved: Json = {
            "channels": self.fake.resolved_channel(self.fake.alerts, "vigil-alerts")["channels"],
            "roles": {
                **self.fake.resolved_role(self.fake.mod_role, "Moderators")["roles"],
                **self.fake.resolved_role(self.fake.safety_role, "Child safety")["roles"],
            },
        }
        if child_safety:
            options.append({"name": "child_safety_role", "type": 8, "value": self.fake.safety_role})
        interaction = await self.fake.slash(
            user=self.fake.owner, subcommand="setup", options=options, resolved=resolved
        )
        await self.fake.wait_for_reply(interaction)

    async def groom(
        self, *, adult: User | None = None, kid: User | None = None, drain: bool = True, **options: Any
    ) -> list[Json]:
        """A conversation where the adult's replies look more and more like grooming (RAISE, then UPDATEs)."""
        adult = adult or self.fake.adult
        kid = kid or self.fake.kid
        sent = [await self.say(kid, "hello there", **options)]
        for text in GROOMING_SCRIPT:
            sent.append(await self.say(adult, text, reply_to=sent[0], **options))
            if drain:
                await self.drain()
        return sent


@contextlib.asynccontextmanager
async def running_vigil(
    fake: FakeDiscord,
    *,
    database: Path,
    model_dir: Path,
    sharded: bool = False,
    discord_settings: DiscordSettings | None = None,
    clock: FakeClock | None = None,
    token: str | None = None,
    store_class: type[SqliteStore] = SqliteStore,
    options: DiscordOptions | None = None,
    catch_up_hours: int = 24,
    queue_capacity: int | None = None,
) -> AsyncIterator[Vigil]:
    clock = clock or FakeClock(datetime.now(UTC))
    detector = await OnnxDetector.load(model_dir, intra_op_threads=1, max_batch=32)
    store = store_class(database)
    await store.open()
    task: asyncio.Task[None] | None = None
    try:
        # The composition root `vigil run` uses; the adapter is built here, with the test's options.
        app = App(settings=SETTINGS, store=store, detector=detector, policy=policy(), clock=clock)
        monitor, cases = app.monitor, app.cases
        queue = (
            IngestQueue(monitor=monitor, capacity=queue_capacity, max_batch=8, log_interval_s=0.0)
            if queue_capacity is not None
            else None
        )
        handler = RecordingHandler(queue if queue is not None else monitor)
        adapter = DiscordAdapter(
            settings=discord_settings
            or DiscordSettings(enabled=True, sharded=sharded, catch_up_hours=catch_up_hours),
            token=Secret(token or fake.token),
            handler=handler,
            monitor=monitor,
            cases=cases,
            store=store,
            clock=clock,
            signal_labels={"secrecy": "asks to keep the conversation secret", "asks_age": "asks about age"},
            options=options
            or DiscordOptions(
                guild_ready_timeout_s=0.05,
                shutdown_grace_s=2.0,
                interactions=InteractionOptions(report_history=5),
            ),
        )
        outbox = app.attach_sink(RoutingSink({"discord": adapter.sink}))
        task = asyncio.create_task(adapter.run())
        vigil = Vigil(
            fake=fake,
            store=store,
            monitor=monitor,
            cases=cases,
            clock=clock,
            outbox=outbox,
            adapter=adapter,
            handler=handler,
            task=task,
            queue=queue,
        )
        guilds_before = len(fake.identifies) + len(fake.resumes)
        await fake.wait_until(
            lambda: task.done() or (len(fake.identifies) > guilds_before and fake.connected),
            what="the bot to identify",
        )
        if task.done():
            task.result()  # raises what stopped the adapter
            raise AssertionError("the adapter stopped before connecting")
        await fake.wait_until(
            lambda: adapter.client.get_guild(int(fake.guild_id)) is not None, what="the guild to arrive"
        )
        yield vigil
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await store.close()
        await detector.aclose()


@pytest.fixture
async def vigil(fake: FakeDiscord, tmp_path: Path, keyword_model_dir: Path) -> AsyncIterator[Vigil]:
    async with running_vigil(
        fake, database=tmp_path / "vigil.sqlite3", model_dir=keyword_model_dir
    ) as running:
        yield running
