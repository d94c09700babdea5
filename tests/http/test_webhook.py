"""WebhookSink against a real local receiver, alone and through the real OutboxWorker."""

from __future__ import annotations

import json
import socket
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp
import msgspec
import pytest
from aiohttp import web

from tests.http.conftest import Api, wire_message
from tests.http.deliveries import a_delivery
from tests.support.fakes import FakeClock
from vigil.bots.core.cases import Actor, CaseAction, Role
from vigil.bots.core.monitor import Monitor
from vigil.bots.core.outbox import OutboxConfig, OutboxWorker
from vigil.bots.http.client import verify_webhook
from vigil.bots.http.schema import WebhookPayload
from vigil.bots.http.webhook import PollingSink, WebhookSink, parse_retry_after
from vigil.config.settings import Secret
from vigil.storage.sqlite import SqliteStore

WEBHOOK_SECRET = "webhook-secret-abcdef0123456789"


@dataclass(slots=True)
class Receiver:
    """A local webhook endpoint answering scripted statuses and recording what it got."""

    url: str = ""
    statuses: deque[int] = field(default_factory=deque)
    headers: dict[str, str] = field(default_factory=dict)
    received: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append((body, dict(request.headers)))
        status = self.statuses.popleft() if self.statuses else 200
        return web.Response(status=status, text="ok", headers=self.headers if status == 429 else None)

    def verified(self) -> list[dict[str, object]]:
        """The bodies whose signature checks out, decoded."""
        payloads = []
        for body, headers in self.received:
            assert verify_webhook(
                body,
                timestamp=headers["X-Vigil-Timestamp"],
                signature=headers["X-Vigil-Signature"],
                secret=WEBHOOK_SECRET,
            )
            payloads.append(json.loads(body))
        return payloads


async def _moved(request: web.Request) -> web.Response:
    raise web.HTTPFound("/hook")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver()
    app = web.Application()
    app.router.add_post("/hook", state.handle)
    app.router.add_post("/moved", _moved)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        yield state
    finally:
        await runner.cleanup()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_post_and_update_are_signed_and_marked(receiver: Receiver) -> None:
    sink = WebhookSink(receiver.url, Secret(WEBHOOK_SECRET), signal_labels={"secrecy": "asks for secrecy"})
    try:
        posted = await sink.post(a_delivery())
        assert posted.ok and posted.ref == "webhook:7"
        updated = await sink.update(a_delivery(revision=2), ref=posted.ref)
        assert updated.ok
    finally:
        await sink.aclose()
    first, second = receiver.verified()
    assert first["updated"] is False and second["updated"] is True
    # The body is what the document's WebhookPayload says, to the key.
    for payload in (first, second):
        assert msgspec.to_builtins(msgspec.convert(payload, WebhookPayload)) == payload
    assert first["case_number"] == 3 and first["signals"] == ["asks for secrecy"]
    assert first["evidence"][0]["excerpt"] == "keep it secret"  # type: ignore[index]
    headers = [h for _, h in receiver.received]
    assert [h["X-Vigil-Event"] for h in headers] == ["alert.created", "alert.updated"]
    assert [h["X-Vigil-Delivery"] for h in headers] == ["7.1", "7.2"]
    # A different secret does not verify.
    body, header = receiver.received[0]
    assert not verify_webhook(
        body,
        timestamp=header["X-Vigil-Timestamp"],
        signature=header["X-Vigil-Signature"],
        secret="not-the-secret-0123456789",
    )


async def test_failures_are_results_never_exceptions(receiver: Receiver) -> None:
    receiver.statuses.extend([500, 429, 401, 408])
    receiver.headers["Retry-After"] = "42"
    async with aiohttp.ClientSession() as session:
        sink = WebhookSink(receiver.url, Secret(WEBHOOK_SECRET), session=session)
        server_error = await sink.post(a_delivery())
        assert not server_error.ok and not server_error.permanent and "500" in (server_error.error or "")
        limited = await sink.post(a_delivery())
        assert not limited.ok and limited.retry_after == 42.0
        refused = await sink.post(a_delivery())
        assert not refused.ok and refused.permanent
        timeout = await sink.post(a_delivery())
        assert not timeout.ok and not timeout.permanent
        moved = await WebhookSink(
            receiver.url.replace("/hook", "/moved"), Secret(WEBHOOK_SECRET), session=session
        ).post(a_delivery())
        assert not moved.ok and moved.permanent and "redirect" in (moved.error or "")
        await sink.aclose()
        assert not session.closed  # a shared session belongs to its owner
    # The redirect was not followed: the receiver saw four deliveries, not five.
    assert len(receiver.received) == 4


async def test_connection_errors_and_timeouts_are_transient() -> None:
    url = f"http://127.0.0.1:{free_port()}/hook?token=do-not-log"
    sink = WebhookSink(url, Secret(WEBHOOK_SECRET), timeout_s=2.0)
    try:
        result = await sink.post(a_delivery())
    finally:
        await sink.aclose()
    assert not result.ok and not result.permanent
    assert "do-not-log" not in (result.error or "")


def test_bad_configuration_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="absolute"):
        WebhookSink("ftp://example.org/hook", Secret(WEBHOOK_SECRET))
    with pytest.raises(ValueError, match="at least"):
        WebhookSink("https://example.org/hook", Secret("short"))


def test_retry_after_takes_seconds_or_a_date() -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("120", now=now) == 120.0
    assert parse_retry_after("Sun, 01 Mar 2026 12:01:00 GMT", now=now) == 60.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None, now=now) is None


async def test_an_alert_from_the_api_reaches_the_webhook_after_a_failure(
    api: Api, monitor: Monitor, sqlite_store: SqliteStore, receiver: Receiver
) -> None:
    """The whole path: signed ingest → monitor → outbox → webhook (500, then 200 on the retry)."""
    cases = api.cases
    sink = WebhookSink(receiver.url, Secret(WEBHOOK_SECRET))
    receiver.statuses.append(500)
    try:
        status, _, _ = await api.send([wire_message(i, text="secret groom secret groom") for i in range(3)])
        assert status == 200
        clock = FakeClock(datetime.now(UTC))
        outbox = OutboxWorker(
            store=sqlite_store,
            cases=cases,
            sink=sink,
            config=OutboxConfig(retry_initial_s=5.0, retry_max_s=60.0),
            clock=clock,
        )
        assert await outbox.drain_once() == 0  # the receiver failed
        assert await sqlite_store.pending_delivery_count() == 1
        clock.advance(timedelta(seconds=4))
        assert await outbox.drain_once() == 0  # backoff not over: not even attempted
        assert len(receiver.received) == 1
        clock.advance(timedelta(seconds=2))
        assert await outbox.drain_once() == 1
        assert await sqlite_store.pending_delivery_count() == 0

        # A moderator acts: the outbox re-renders the alert, as an update carrying the new case state.
        actor = Actor(
            platform="http", space_id="tenant-1", user_id="mod-1", roles=frozenset({Role.MODERATOR})
        )
        claimed = await cases.act(actor=actor, case_number=1, action=CaseAction.CLAIM)
        assert claimed.ok
        assert await outbox.drain_once() == 1
    finally:
        await sink.aclose()
    payloads = receiver.verified()
    assert [p["updated"] for p in payloads] == [False, False, True]
    assert payloads[1]["suspect_id"] == "adult" and payloads[1]["case"] == {
        "state": "open",
        "claimed_by": None,
    }
    assert payloads[2]["case"] == {"state": "claimed", "claimed_by": "mod-1"}
    stored = await sqlite_store.alerts_for_space(platform="http", space_id="tenant-1", limit=1)
    assert stored[0].delivery_ref == f"webhook:{stored[0].alert_id}"


async def test_without_a_webhook_alerts_count_as_delivered_for_polling() -> None:
    sink = PollingSink()
    posted = await sink.post(a_delivery())
    assert posted.ok and posted.ref == "api:7"
    assert (await sink.update(a_delivery(revision=2), ref="api:7")).ref == "api:7"
