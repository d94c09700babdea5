"""Drives the real slack-bolt ``AsyncApp`` inside ``SlackAdapter`` with signed HTTP requests, against the fake
Web API, with the real monitor, SQLite store, ONNX keyword model, case service and outbox worker;
and an auth.test the fake can hold back (the auth.test herd tests)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import re
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from tests.slack.fake_slack import FakeSlack, TokenInfo
from vigil.bots.app import App
from vigil.bots.core.case_service import CaseService
from vigil.bots.core.ingest import IngestQueue
from vigil.bots.core.models import ChatMessage, SpaceSettings
from vigil.bots.core.monitor import HandleResult, Monitor
from vigil.bots.core.outbox import OutboxWorker
from vigil.bots.core.policy import PolicyConfig
from vigil.bots.core.ports import MessageHandler
from vigil.bots.slack.app import (
    BOT_SCOPES,
    EVENTS_PATH,
    INSTALL_PATH,
    REDIRECT_PATH,
    SlackAdapter,
    SlackOAuthCredentials,
)
from vigil.bots.slack.blocks import (
    DISMISS_CALLBACK,
    DISMISS_REASON_ACTION,
    DISMISS_REASON_BLOCK,
    REPORT_CALLBACK,
)
from vigil.config.settings import (
    OutboxSettings,
    PolicySettings,
    Secret,
    Secrets,
    Settings,
    SlackMode,
    SlackSettings,
)
from vigil.detector.onnx_detector import OnnxDetector
from vigil.storage.sqlite import SqliteStore

SIGNING_SECRET = "test-signing-secret"
TEAM = "T1"
ALERTS = "CALERTS01"
GENERAL = "CGENERAL1"
PUBLIC_ALERTS = "CPUBLIC01"
QUIET = "CQUIET001"
ADMIN = "UADMIN01"
MOD = "UMOD0001"
SAFETY = "USAFE001"
ADULT = "UADULT01"
KID = "UKID0001"
MEMBER = "UMEMBER1"
MODS_GROUP = "SMODS001"
SAFETY_GROUP = "SSAFE001"

GROOMING_SCRIPT = ("age age", "age age", "age age", "secret", "secret groom", "groom groom")


def sign(body: str, *, timestamp: int, secret: str = SIGNING_SECRET) -> str:
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


SETTINGS = Settings(
    policy=PolicySettings(window_messages=20, evidence_messages=3),
    outbox=OutboxSettings(retry_initial_s=0.05, retry_max_s=30.0, poll_interval_s=0.05),
)


def policy() -> PolicyConfig:
    return PolicyConfig(
        threshold=0.7,
        sustain_messages=2,
        hysteresis=0.1,
        cooldown=timedelta(hours=6),
        update_min_delta=0.05,
        max_alerts_per_hour=10,
        shadow_mode=False,
    )


def populate(fake: FakeSlack) -> None:
    fake.users.update(
        {
            ADMIN: {"is_admin": True},
            MOD: {},
            SAFETY: {},
            ADULT: {},
            KID: {},
            MEMBER: {},
        }
    )
    fake.usergroups.update({MODS_GROUP: [MOD, SAFETY], SAFETY_GROUP: [SAFETY]})
    fake.channels.update(
        {
            ALERTS: {"is_private": True, "is_member": True},
            GENERAL: {"is_private": False, "is_member": True},
            PUBLIC_ALERTS: {"is_private": False, "is_member": True},
            QUIET: {"is_private": False, "is_member": True},
        }
    )


class ErasingSqliteStore(SqliteStore):
    """The real SqliteStore, remembering which deletions the adapter passed on."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.forgotten: list[tuple[str, str, str]] = []

    async def forget_message(self, *, platform: str, space_id: str, message_id: str, now: datetime) -> int:
        removed = await super().forget_message(
            platform=platform, space_id=space_id, message_id=message_id, now=now
        )
        self.forgotten.append((platform, space_id, message_id))
        return removed


class RecordingHandler:
    """The monitor, remembering what each message id came to (so tests know a listener finished)."""

    def __init__(self, monitor: MessageHandler) -> None:
        self._monitor = monitor
        self.results: dict[str, HandleResult] = {}
        self.messages: list[ChatMessage] = []

    async def handle(self, message: ChatMessage) -> HandleResult:
        result = await self._monitor.handle(message)
        self.messages.append(message)
        self.results[message.message_id] = result
        return result


@dataclass(slots=True)
class SlackHarness:
    fake: FakeSlack
    adapter: SlackAdapter
    store: SqliteStore
    monitor: Monitor
    cases: CaseService
    handler: RecordingHandler
    outbox: OutboxWorker
    session: aiohttp.ClientSession
    # With ``queue_capacity``: the ingest queue between the adapter and the monitor (its worker not started).
    queue: IngestQueue | None = None
    _ts: itertools.count[int] = field(default_factory=itertools.count)
    _names: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _start: int = field(default_factory=lambda: int(time.time()) - 3600)

    @property
    def url(self) -> str:
        return f"{self.root}{EVENTS_PATH}"

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.adapter.http_port}"

    def next_ts(self) -> str:
        return f"{self._start + next(self._ts)}.000100"

    def response_name(self) -> str:
        return f"r{next(self._names)}"

    async def eventually(self, check: Callable[[], Awaitable[Any]], *, what: str, within: float = 5.0) -> Any:
        """Poll an async ``check`` until it returns something truthy."""
        deadline = time.monotonic() + within
        while True:
            result = await check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.02)

    async def configure(self, *, team: str = TEAM, **overrides: Any) -> None:
        values: dict[str, Any] = {
            "platform": "slack",
            "space_id": team,
            "alert_channel_id": ALERTS,
            "moderator_role_id": MODS_GROUP,
            "child_safety_role_id": SAFETY_GROUP,
        }
        values.update(overrides)
        await self.store.put_space_settings(SpaceSettings(**values))

    # ------------------------------------------------------------------ raw requests

    async def post(
        self,
        body: str,
        *,
        content_type: str,
        timestamp: int | None = None,
        signature: str | None = None,
    ) -> tuple[int, str]:
        stamp = int(time.time()) if timestamp is None else timestamp
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": str(stamp),
            "X-Slack-Signature": signature or sign(body, timestamp=stamp),
        }
        async with self.session.post(self.url, data=body.encode(), headers=headers) as response:
            return response.status, await response.text()

    async def post_json(self, payload: dict[str, Any], **kwargs: Any) -> tuple[int, str]:
        return await self.post(json.dumps(payload), content_type="application/json", **kwargs)

    async def post_form(self, fields: dict[str, str], **kwargs: Any) -> tuple[int, str]:
        return await self.post(
            urllib.parse.urlencode(fields), content_type="application/x-www-form-urlencoded", **kwargs
        )

    async def post_interaction(self, payload: dict[str, Any]) -> tuple[int, str]:
        return await self.post_form({"payload": json.dumps(payload)})

    # ------------------------------------------------------------------ events

    def event_body(self, event: dict[str, Any], *, team: str = TEAM) -> dict[str, Any]:
        return {
            "token": "legacy",
            "team_id": team,
            "api_app_id": "A1",
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{next(self._names)}",
            "event_time": int(time.time()),
            "authorizations": [{"team_id": team, "user_id": "UBOT", "is_bot": True}],
        }

    def message_event(
        self,
        *,
        user: str,
        text: str,
        channel: str = GENERAL,
        channel_type: str = "channel",
        ts: str | None = None,
        team: str = TEAM,
        **extra: Any,
    ) -> dict[str, Any]:
        return {
            "type": "message",
            "channel": channel,
            "user": user,
            "text": text,
            "ts": ts or self.next_ts(),
            "channel_type": channel_type,
            "team": team,
            **extra,
        }

    async def send_event(self, event: dict[str, Any], *, team: str = TEAM) -> None:
        status, _ = await self.post_json(self.event_body(event, team=team))
        assert status == 200

    async def say(
        self, *, user: str, text: str, channel: str = GENERAL, team: str = TEAM, **extra: Any
    ) -> HandleResult:
        """Send a message event and wait until the monitor has handled it."""
        event = self.message_event(user=user, text=text, channel=channel, team=team, **extra)
        await self.send_event(event, team=team)
        message_id = f"{channel}/{event['ts']}"
        result: HandleResult = await self.fake.wait_for(
            lambda: self.handler.results.get(message_id), what=f"message {message_id} handled"
        )
        return result

    async def grooming_conversation(self, *, channel: str = GENERAL, team: str = TEAM) -> None:
        for line in GROOMING_SCRIPT:
            await self.say(user=ADULT, text=f"<@{KID}> {line}", channel=channel, team=team)
            await self.say(user=KID, text=f"<@{ADULT}> ok", channel=channel, team=team)

    async def alert_posted(self) -> tuple[str, str]:
        """Wait for the alert message in the alert channel; its (channel, ts)."""
        calls = await self.fake.wait_for_calls("chat.postMessage")
        channel = str(calls[0].args["channel"])
        ts = next(ts for (c, ts) in self.fake.posted if c == channel)
        return channel, ts

    # ------------------------------------------------------------------ interactions

    async def command(
        self, text: str, *, user: str, channel: str = GENERAL, team: str = TEAM
    ) -> dict[str, Any]:
        name = self.response_name()
        status, _ = await self.post_form(
            {
                "token": "legacy",
                "team_id": team,
                "team_domain": "fake",
                "channel_id": channel,
                "channel_name": "general",
                "user_id": user,
                "user_name": user.lower(),
                "command": "/vigil",
                "text": text,
                "api_app_id": "A1",
                "response_url": self.fake.response_url(name),
                "trigger_id": "trigger-" + name,
            }
        )
        assert status == 200
        return await self.fake.wait_for_response(name)

    def action_payload(
        self,
        action: dict[str, Any],
        *,
        user: str,
        name: str,
        channel: str = ALERTS,
        message_ts: str = "1.0",
    ) -> dict[str, Any]:
        return {
            "type": "block_actions",
            "team": {"id": TEAM, "domain": "fake"},
            "user": {"id": user, "team_id": TEAM},
            "api_app_id": "A1",
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel},
            "trigger_id": "trigger-" + name,
            "channel": {"id": channel, "name": "alerts"},
            "message": {"ts": message_ts, "text": "alert"},
            "response_url": self.fake.response_url(name),
            "actions": [{**action, "block_id": "b", "action_ts": str(time.time())}],
        }

    async def click(
        self, action_id: str, *, case: int, user: str, wait: bool = True, **kwargs: Any
    ) -> dict[str, Any] | None:
        name = self.response_name()
        action = {"action_id": action_id, "type": "button", "value": str(case)}
        status, _ = await self.post_interaction(self.action_payload(action, user=user, name=name, **kwargs))
        assert status == 200
        return await self.fake.wait_for_response(name) if wait else None

    async def choose_snooze(self, *, case: int, hours: int, user: str) -> dict[str, Any]:
        name = self.response_name()
        action = {
            "action_id": "vigil_snooze",
            "type": "static_select",
            "selected_option": {"text": {"type": "plain_text", "text": "x"}, "value": f"{case}:{hours}"},
        }
        status, _ = await self.post_interaction(self.action_payload(action, user=user, name=name))
        assert status == 200
        return await self.fake.wait_for_response(name)

    async def submit_dismiss(self, *, private_metadata: str, user: str, reason: str) -> tuple[int, str]:
        payload = {
            "type": "view_submission",
            "team": {"id": TEAM, "domain": "fake"},
            "user": {"id": user, "team_id": TEAM},
            "api_app_id": "A1",
            "trigger_id": "trigger-view",
            "view": {
                "id": "V1",
                "type": "modal",
                "callback_id": DISMISS_CALLBACK,
                "private_metadata": private_metadata,
                "state": {
                    "values": {
                        DISMISS_REASON_BLOCK: {
                            DISMISS_REASON_ACTION: {"type": "plain_text_input", "value": reason}
                        }
                    }
                },
            },
        }
        return await self.post_interaction(payload)

    async def report(self, *, user: str, channel: str, message: dict[str, Any]) -> dict[str, Any]:
        name = self.response_name()
        payload = {
            "type": "message_action",
            "callback_id": REPORT_CALLBACK,
            "team": {"id": TEAM, "domain": "fake"},
            "user": {"id": user, "team_id": TEAM},
            "channel": {"id": channel, "name": "somewhere"},
            "message": message,
            "message_ts": message["ts"],
            "response_url": self.fake.response_url(name),
            "trigger_id": "trigger-" + name,
            "action_ts": str(time.time()),
        }
        status, _ = await self.post_interaction(payload)
        assert status == 200
        return await self.fake.wait_for_response(name)


@contextlib.asynccontextmanager
async def running_slack(
    *,
    store: SqliteStore,
    detector: OnnxDetector,
    mode: SlackMode = "http",
    oauth: bool = False,
    customise: Callable[[FakeSlack], None] | None = None,
    adapter_options: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
    queue_capacity: int | None = None,
) -> AsyncIterator[SlackHarness]:
    fake = FakeSlack()
    populate(fake)
    if customise is not None:
        customise(fake)
    await fake.start()
    # The composition root `vigil run` uses; the adapter is built here, with the test's options.
    app = App(settings=SETTINGS, store=store, detector=detector, policy=policy())
    monitor, cases = app.monitor, app.cases
    queue = (
        IngestQueue(monitor=monitor, capacity=queue_capacity, max_batch=8, log_interval_s=0.0)
        if queue_capacity is not None
        else None
    )
    handler = RecordingHandler(queue if queue is not None else monitor)
    slack_settings = SlackSettings(
        enabled=True, mode=mode, http_host="127.0.0.1", http_port=0, oauth=oauth, **dict(settings or {})
    )
    secrets = Secrets(
        slack_bot_token=None if oauth else Secret(fake.bot_token),
        slack_app_token=Secret(fake.app_token),
        slack_signing_secret=Secret(SIGNING_SECRET),
    )
    labels = dict(zip(detector.info.signals, detector.info.signal_labels, strict=True))
    adapter = SlackAdapter(
        settings=slack_settings,
        secrets=secrets,
        handler=handler,
        monitor=monitor,
        cases=cases,
        store=store,
        client_base_url=fake.base_url,
        oauth=SlackOAuthCredentials(client_id="111.222", client_secret=Secret("client-secret"))
        if oauth
        else None,
        signal_labels=labels,
        role_cache_s=0.0,
        **dict(adapter_options or {}),
    )
    outbox = app.attach_sink(adapter.sink)
    session = aiohttp.ClientSession()
    run = asyncio.create_task(adapter.run())
    worker = asyncio.create_task(outbox.run())
    try:
        started = asyncio.create_task(adapter.wait_started())
        done, _ = await asyncio.wait({started, run}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if run in done:
            run.result()
        assert started in done, "the Slack adapter did not start"
        yield SlackHarness(
            fake=fake,
            adapter=adapter,
            store=store,
            monitor=monitor,
            cases=cases,
            handler=handler,
            outbox=outbox,
            session=session,
            queue=queue,
        )
    finally:
        worker.cancel()
        await adapter.aclose()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
        with contextlib.suppress(asyncio.CancelledError):
            await run
        await session.close()
        await fake.close()


# A second workspace installing the app through the OAuth flow (the OAuth tests and those that need two).
TEAM_2 = "T2"
TOKEN_2 = "xoxb-second-workspace"


def second_workspace(fake: FakeSlack) -> None:
    fake.tokens[TOKEN_2] = TokenInfo(team_id=TEAM_2, user_id="UBOT2", bot_id="BBOT2")
    fake.oauth_codes["code-1"] = {
        "app_id": "A1",
        "access_token": TOKEN_2,
        "token_type": "bot",
        "scope": ",".join(BOT_SCOPES),
        "bot_user_id": "UBOT2",
        "team": {"id": TEAM_2, "name": "Second"},
        "enterprise": None,
        "is_enterprise_install": False,
        "authed_user": {"id": "UINSTALL"},
    }


async def install(slack: SlackHarness) -> tuple[int, str]:
    async with slack.session.get(slack.root + INSTALL_PATH, allow_redirects=False) as page:
        assert page.status == 200
        html = await page.text()
        cookie = page.headers["Set-Cookie"].split(";")[0]
    state = re.search(r"state=([\w-]+)", html)
    assert state is not None and "client_id=111.222" in html and "scope=channels:history" in html
    url = f"{slack.root}{REDIRECT_PATH}?code=code-1&state={state.group(1)}"
    async with slack.session.get(url, headers={"Cookie": cookie}, allow_redirects=False) as done:
        return done.status, await done.text()


class HeldAuthTest:
    """Once ``hold()`` is called, the fake answers auth.test only after ``release()``."""

    def __init__(self) -> None:
        self.held = 0
        self._holding = False
        self._released = asyncio.Event()

    def hold(self) -> None:
        self._holding = True

    def release(self) -> None:
        self._released.set()

    async def wait(self) -> None:
        if self._holding:
            self.held += 1
            await self._released.wait()


def body_of(slack: SlackHarness, event: dict[str, Any]) -> dict[str, Any]:
    return slack.event_body(event, team=str(event["team"]))


def handled(slack: SlackHarness, events: list[dict[str, Any]]) -> bool:
    return all(f"{e['channel']}/{e['ts']}" in slack.handler.results for e in events)


async def release_after_burst(
    held: HeldAuthTest, slack: SlackHarness, events: list[dict[str, Any]], *, within: float = 2.0
) -> None:
    """Lets auth.test answer once every event waits for one (the old herd) or all were handled; else after
    ``within`` seconds (the burst then waits for the one call in flight)."""
    with contextlib.suppress(AssertionError):
        await slack.fake.wait_for(lambda: held.held >= len(events) or handled(slack, events), within=within)
    held.release()
