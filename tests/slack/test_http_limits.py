"""Slack's HTTP endpoint against slow and many clients: the body timeout (408), the header deadline and the
connection cap (``bots.http.guard``), with raw sockets as the clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.http.raw import connect, get, trickling
from tests.slack.harness import ADULT, KID, SlackHarness, running_slack, sign
from vigil.bots.slack.app import EVENTS_PATH
from vigil.detector.onnx_detector import OnnxDetector
from vigil.storage.sqlite import SqliteStore

SECRET_TEXT = "secret groom trickled in"
# Event-loop and scheduling slack on a loaded CI machine.
MARGIN_S = 0.5


@contextlib.asynccontextmanager
async def slack_with(
    store: SqliteStore, detector: OnnxDetector, **options: Any
) -> AsyncIterator[tuple[SlackHarness, int]]:
    async with running_slack(store=store, detector=detector, adapter_options=options) as slack:
        port = slack.adapter.http_port
        assert port is not None
        yield slack, port


def signed_head(body: bytes) -> bytes:
    stamp = int(time.time())
    return (
        f"POST {EVENTS_PATH} HTTP/1.1\r\nHost: vigil.test\r\nContent-Type: application/json\r\n"
        f"X-Slack-Request-Timestamp: {stamp}\r\nX-Slack-Signature: {sign(body.decode(), timestamp=stamp)}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()


async def test_a_body_trickled_in_too_slowly_is_answered_408_and_never_logged(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with slack_with(sqlite_store, keyword_detector, http_body_timeout_s=0.3) as (slack, port):
        event = slack.message_event(user=ADULT, text=f"<@{KID}> {SECRET_TEXT}")
        body = json.dumps(slack.event_body(event)).encode()
        async with connect(port) as client:
            await client.send(signed_head(body) + body[:10])
            started = time.monotonic()
            async with trickling(client, body[10:], every_s=0.1):
                status, headers, _ = await client.response()
                answered = time.monotonic() - started
                closed, _ = await client.closed_within()
        assert status == 408 and headers["connection"] == "close"
        assert answered < 0.3 + MARGIN_S, answered
        # aiohttp reads and drops what still comes for a second, then closes.
        assert closed < 1.0 + MARGIN_S, closed
        assert not slack.handler.messages
        # The same event sent whole is handled.
        status, _ = await slack.post(body.decode(), content_type="application/json")
        assert status == 200
    for record in caplog.records:
        assert SECRET_TEXT not in record.getMessage()
        assert record.exc_info is None or SECRET_TEXT not in str(record.exc_info[1])


async def test_a_request_head_trickled_in_is_closed_at_the_deadline(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector
) -> None:
    async with (
        slack_with(sqlite_store, keyword_detector, http_header_timeout_s=0.5) as (slack, port),
        connect(port) as slow,
    ):
        await slow.send(b"POST /slack/ev")
        async with trickling(slow, b"ents HTTP/1.1\r\nX-Slow: " + b"a" * 100, every_s=0.2):
            elapsed, answer = await slow.closed_within()
        assert 0.4 <= elapsed < 0.5 + MARGIN_S, elapsed
        assert answer == b""
        # Signed events still arrive.
        await slack.say(user=ADULT, text="hello")


async def test_connections_beyond_the_cap_are_refused_and_the_open_ones_served(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with slack_with(sqlite_store, keyword_detector, http_max_connections=2) as (slack, port):
        async with connect(port) as first, connect(port) as second:
            await asyncio.sleep(0.05)  # the server has accepted both
            async with connect(port) as extra:
                _, answer = await extra.closed_within(1.0)
            assert answer.startswith(b"HTTP/1.1 503 "), answer[:40]
            for open_one in (first, second):
                await open_one.send(get("/nothing-here"))
                status, _, _ = await open_one.response()
                assert status == 404
        # Both closed: their places are free again.
        await slack.eventually(
            lambda: _served(slack), what="a signed event accepted once places came free", within=2.0
        )
    warnings = [r.getMessage() for r in caplog.records if r.name == "vigil.bots.http.guard"]
    assert len(warnings) == 1 and warnings[0].startswith("Slack HTTP endpoint: 2 connections are open")


async def _served(slack: SlackHarness) -> bool:
    event = slack.message_event(user=ADULT, text="hello")
    try:
        status, _ = await slack.post_json(slack.event_body(event))
    except OSError:
        return False
    return status == 200
