"""Shared set-up for the case tests: a real SQLite file and the keyword model under the composition root
`vigil run` uses (``App``: monitor, case service and outbox wired as in production), on a fake clock;
hostile text and an HTML page reader for the evidence pages, and the case commands run in-process."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

from tests.support.fakes import FakeClock, RecordingSink
from vigil.bots.app import App
from vigil.bots.case_commands import register_case_commands
from vigil.bots.core.case_service import CaseService
from vigil.bots.core.cases import Actor, Role
from vigil.bots.core.models import Alert, ChatMessage, WindowMessage
from vigil.bots.core.monitor import Monitor
from vigil.bots.core.outbox import OutboxWorker
from vigil.bots.core.policy import PolicyConfig
from vigil.config.settings import PolicySettings, Settings
from vigil.detector.onnx_detector import OnnxDetector
from vigil.storage.sqlite import SqliteStore

START = datetime(2026, 3, 1, 18, 0, tzinfo=UTC)
SETTINGS = Settings(policy=PolicySettings(window_messages=20, evidence_messages=3))
PLATFORM = "test"
SPACE = "guild-1"


def actor(*roles: Role, user_id: str = "mod-1", space_id: str = SPACE, platform: str = PLATFORM) -> Actor:
    return Actor(platform=platform, space_id=space_id, user_id=user_id, roles=frozenset(roles))


MODERATOR = actor(Role.MODERATOR)
CHILD_SAFETY = actor(Role.MODERATOR, Role.CHILD_SAFETY, user_id="cs-1")
MEMBER = actor(user_id="member-1")


def policy() -> PolicyConfig:
    return PolicyConfig(
        threshold=0.7,
        sustain_messages=2,
        hysteresis=0.1,
        cooldown=timedelta(hours=6),
        update_min_delta=0.5,
        max_alerts_per_hour=100,
        shadow_mode=False,
    )


@dataclass(slots=True)
class Harness:
    store: SqliteStore
    monitor: Monitor
    service: CaseService
    clock: FakeClock
    sink: RecordingSink
    outbox: OutboxWorker
    # Wake-ups of the outbox since the last raise_alert: what case actions enqueued for delivery.
    notified: list[int] = field(default_factory=list)
    sent: int = 0

    def message(
        self,
        author: str,
        text: str,
        *,
        to: str,
        space_id: str = SPACE,
        channel_id: str | None = None,
        at: datetime | None = None,
    ) -> ChatMessage:
        self.sent += 1
        return ChatMessage(
            platform=PLATFORM,
            space_id=space_id,
            channel_id=channel_id or f"dm-{min(author, to)}-{max(author, to)}",
            message_id=f"m-{self.sent}",
            author_id=author,
            text=text,
            timestamp=at or self.clock.now,
            is_dm=True,
            recipient_ids=(to,),
        )

    async def talk(
        self, adult: str, kid: str, *, risky: bool, turns: int = 3, space_id: str = SPACE
    ) -> list[Alert]:
        """A DM: ``adult`` says something risky (or not) and ``kid`` answers, ``turns`` times."""
        alerts: list[Alert] = []
        for _ in range(turns):
            for author, to, text in (
                (adult, kid, "secret groom" if risky else "hello there"),
                (kid, adult, "hello there"),
            ):
                result = await self.monitor.handle(self.message(author, text, to=to, space_id=space_id))
                alerts.extend(event.alert for event in result.alerts)
                self.clock.advance(timedelta(seconds=30))
        return alerts

    async def raise_alert(self, adult: str = "adult", kid: str = "kid", *, space_id: str = SPACE) -> Alert:
        alerts = await self.talk(adult, kid, risky=True, space_id=space_id)
        assert alerts, "the keyword model should have raised an alert"
        self.notified.clear()  # the monitor's own wake-up for the new alert
        alert = await self.store.get_alert(alerts[0].alert_id)
        assert alert is not None
        return alert

    async def deliver(self) -> int:
        return await self.outbox.drain_once()


def make_harness(store: SqliteStore, detector: OnnxDetector, *, clock: FakeClock | None = None) -> Harness:
    clock = clock or FakeClock(START)
    app = App(settings=SETTINGS, store=store, detector=detector, policy=policy(), clock=clock)
    sink = RecordingSink()
    outbox = app.attach_sink(sink)
    notified: list[int] = []
    wake = outbox.notify

    def noted() -> None:
        notified.append(1)
        wake()

    outbox.notify = noted  # type: ignore[method-assign]
    return Harness(
        store=store,
        monitor=app.monitor,
        service=app.cases,
        clock=clock,
        sink=sink,
        outbox=outbox,
        notified=notified,
    )


HOSTILE = '<script>alert("x")</script><img src="https://evil.example/p.png"> & \'quotes\''


# Markup, quotes, an ampersand and template syntax: a page must show all of it as typed, and evaluate none.
INJECTION = '<script>alert(1)</script> "quoted" & {{ 7*7 }} {% if true %}evaluated{% endif %}'


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def read_page(page: str) -> tuple[set[str], str]:
    """The elements an HTML page holds and its text as a reader sees it (entities decoded, whatever their
    spelling: ``&#34;`` and ``&quot;`` read the same)."""
    parser = _Page()
    parser.feed(page)
    parser.close()
    return set(parser.tags), "".join(parser.text)


def link(message: WindowMessage) -> str:
    return f"https://chat.example/{message.channel_id}/{message.message_id}"


async def hostile_case(harness: Harness) -> Alert:
    alert = await harness.raise_alert()
    await harness.monitor.handle(harness.message("adult", HOSTILE, to="kid"))
    return alert


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="vigil")
    root.add_argument("--config")
    register_case_commands(root.add_subparsers(dest="command", required=True))
    return root


async def vigil(config: Path, *argv: str) -> int:
    args = parser().parse_args(["--config", str(config), *argv])
    result: int = await args.handler(args)
    return result
