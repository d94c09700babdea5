"""A message event Vigil could not store is not acknowledged, so Slack sends it again instead of losing it.

Slack never redelivers an acknowledged event. A message whose batch failed (the disk full, the database locked
past its timeout) or that arrived while Vigil was stopping is answered with an error (HTTP 500; over Socket
Mode, no ack), and Slack's retry is stored.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.slack.harness import ADULT, GENERAL, KID, TEAM, SlackHarness, running_slack, sign
from vigil.bots.core.ingest import ShedReason, ShedResult
from vigil.bots.core.models import ChatMessage, PairKey
from vigil.bots.core.monitor import HandleResult, SkipReason
from vigil.bots.core.ports import StoreError
from vigil.detector.onnx_detector import OnnxDetector
from vigil.storage.sqlite import SqliteStore


async def post_retry(slack: SlackHarness, body: dict[str, Any], *, retry: int) -> int:
    """The body sent again as Slack retries it: the same event_id, the retry headers, a fresh signature."""
    text = json.dumps(body)
    stamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": str(stamp),
        "X-Slack-Signature": sign(text, timestamp=stamp),
        "X-Slack-Retry-Num": str(retry),
        "X-Slack-Retry-Reason": "http_error",
    }
    async with slack.session.post(slack.url, data=text.encode(), headers=headers) as response:
        return response.status


def fail_once(
    slack: SlackHarness, monkeypatch: pytest.MonkeyPatch, outcome: Exception | HandleResult
) -> asyncio.Event:
    """The handler's next message raises ``outcome`` or comes back as it, without being stored; the event
    returned is set once that happened."""
    original = slack.handler.handle
    pending = [outcome]
    happened = asyncio.Event()

    async def handle(message: ChatMessage) -> HandleResult:
        if not pending:
            return await original(message)
        happened.set()
        first = pending.pop()
        if isinstance(first, Exception):
            raise first
        return first

    monkeypatch.setattr(slack.handler, "handle", handle)
    return happened


async def stored(slack: SlackHarness, message_id: str) -> bool:
    key = PairKey.of(platform="slack", space_id=TEAM, first=ADULT, second=KID)
    return message_id in [m.message_id for m in await slack.store.load_window(key)]


@pytest.mark.parametrize("failure", ["store_error", "stopping"])
async def test_a_message_not_stored_is_answered_with_an_error_and_its_retry_is_stored(
    failure: str, slack: SlackHarness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    await slack.configure()
    event = slack.message_event(user=ADULT, text=f"<@{KID}> secret groom text")
    message_id = f"{GENERAL}/{event['ts']}"
    outcome: Exception | HandleResult = (
        StoreError("The disk holding vigil.sqlite3 is full")
        if failure == "store_error"
        else ShedResult(message_id=message_id, skipped=SkipReason.SHED, reason=ShedReason.STOPPED)
    )
    fail_once(slack, monkeypatch, outcome)
    body = slack.event_body(event)
    status, _ = await slack.post_json(body)
    assert status == 500, "acknowledged, so Slack would never send it again"
    assert not await stored(slack, message_id)
    assert await post_retry(slack, body, retry=1) == 200
    assert await stored(slack, message_id)
    assert not [r for r in caplog.records if r.exc_info], "logged once, without a traceback"
    assert "secret groom" not in caplog.text


@pytest.fixture
async def socket(sqlite_store: SqliteStore, keyword_detector: OnnxDetector) -> AsyncIterator[SlackHarness]:
    async with running_slack(store=sqlite_store, detector=keyword_detector, mode="socket") as harness:
        yield harness


async def test_over_socket_mode_a_message_not_stored_is_not_acked_and_its_retry_is(
    socket: SlackHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    slack = socket
    await slack.configure()
    failed = fail_once(slack, monkeypatch, StoreError("The disk holding vigil.sqlite3 is full"))
    event = slack.message_event(user=ADULT, text=f"<@{KID}> hello there")
    payload = slack.event_body(event)

    def envelope(envelope_id: str, attempt: int) -> dict[str, Any]:
        return {
            "envelope_id": envelope_id,
            "type": "events_api",
            "accepts_response_payload": False,
            "retry_attempt": attempt,
            "retry_reason": "timeout" if attempt else "",
            "payload": payload,
        }

    await slack.fake.socket_send(envelope("env-1", 0))
    await asyncio.wait_for(failed.wait(), timeout=5)
    await asyncio.sleep(0.1)  # time enough for an ack that should not come
    await slack.fake.socket_send(envelope("env-1-retry", 1))
    acked = await slack.fake.wait_for(
        lambda: [
            a["envelope_id"] for a in slack.fake.socket_acks if a.get("envelope_id", "").startswith("env-1")
        ],
        what="the retry's ack",
    )
    assert acked == ["env-1-retry"]
    assert await stored(slack, f"{GENERAL}/{event['ts']}")
