"""Socket Mode: the SDK's WebSocket client against the fake's ``apps.connections.open`` URL."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.slack.harness import ADMIN, ADULT, KID, MOD, TEAM, SlackHarness, running_slack
from vigil.bots.slack.blocks import ACTION_CLAIM
from vigil.detector.onnx_detector import OnnxDetector
from vigil.storage.sqlite import SqliteStore


@pytest.fixture
async def socket(sqlite_store: SqliteStore, keyword_detector: OnnxDetector) -> AsyncIterator[SlackHarness]:
    async with running_slack(store=sqlite_store, detector=keyword_detector, mode="socket") as harness:
        yield harness


def ack_for(slack: SlackHarness, envelope_id: str) -> dict[str, Any] | None:
    return next((a for a in slack.fake.socket_acks if a.get("envelope_id") == envelope_id), None)


async def test_envelopes_are_acknowledged_and_handled(socket: SlackHarness) -> None:
    slack = socket
    opened = slack.fake.calls_to("apps.connections.open")
    assert len(opened) == 1 and opened[0].token == slack.fake.app_token
    assert slack.adapter.http_port is None  # no HTTP server without HTTP mode or OAuth
    await slack.configure()

    event = slack.message_event(user=ADULT, text=f"<@{KID}> hello there")
    await slack.fake.socket_send(
        {
            "envelope_id": "env-event",
            "type": "events_api",
            "accepts_response_payload": False,
            "retry_attempt": 0,
            "retry_reason": "",
            "payload": slack.event_body(event),
        }
    )
    await slack.fake.wait_for(lambda: ack_for(slack, "env-event"), what="the events_api ack")
    await slack.fake.wait_for(lambda: slack.handler.messages, what="the message handled")
    assert slack.handler.messages[0].message_id == f"{event['channel']}/{event['ts']}"

    name = slack.response_name()
    await slack.fake.socket_send(
        {
            "envelope_id": "env-command",
            "type": "slash_commands",
            "accepts_response_payload": True,
            "payload": {
                "team_id": TEAM,
                "channel_id": "CGENERAL1",
                "user_id": ADMIN,
                "command": "/vigil",
                "text": "threshold",
                "api_app_id": "A1",
                "response_url": slack.fake.response_url(name),
                "trigger_id": "t",
            },
        }
    )
    await slack.fake.wait_for(lambda: ack_for(slack, "env-command"), what="the slash command ack")
    answer = await slack.fake.wait_for_response(name)
    assert "threshold is 0.70" in answer["text"]

    name = slack.response_name()
    action = {"action_id": ACTION_CLAIM, "type": "button", "value": "1"}
    await slack.fake.socket_send(
        {
            "envelope_id": "env-action",
            "type": "interactive",
            "accepts_response_payload": False,
            "payload": slack.action_payload(action, user=MOD, name=name),
        }
    )
    await slack.fake.wait_for(lambda: ack_for(slack, "env-action"), what="the interactive ack")
    assert "No such case" in (await slack.fake.wait_for_response(name))["text"]


async def test_the_sdk_reconnects_when_slack_asks(socket: SlackHarness) -> None:
    slack = socket
    await slack.fake.wait_for(lambda: slack.fake.socket_connections == 1, what="the first connection")
    started = time.monotonic()
    await slack.fake.socket_send({"type": "disconnect", "reason": "refresh_requested"})
    await slack.fake.wait_for(lambda: slack.fake.socket_connections == 2, what="a new connection", within=10)
    assert len(slack.fake.calls_to("apps.connections.open")) == 2
    assert time.monotonic() - started < 10


async def test_an_uninstall_is_acknowledged_in_socket_mode(socket: SlackHarness) -> None:
    slack = socket
    await slack.fake.socket_send(
        {
            "envelope_id": "env-uninstall",
            "type": "events_api",
            "accepts_response_payload": False,
            "retry_attempt": 0,
            "retry_reason": "",
            "payload": slack.event_body({"type": "app_uninstalled"}),
        }
    )
    await slack.fake.wait_for(lambda: ack_for(slack, "env-uninstall"), what="the app_uninstalled ack")
    await slack.fake.wait_for(lambda: slack.adapter.health.problem(TEAM), what="the workspace's problem")


async def test_a_message_envelope_is_acknowledged_only_once_stored(socket: SlackHarness) -> None:
    slack = socket
    await slack.configure()
    event = slack.message_event(user=ADULT, text=f"<@{KID}> hello there")
    await slack.fake.socket_send(
        {
            "envelope_id": "env-stored",
            "type": "events_api",
            "accepts_response_payload": False,
            "retry_attempt": 0,
            "retry_reason": "",
            "payload": slack.event_body(event),
        }
    )
    await slack.fake.wait_for(lambda: ack_for(slack, "env-stored"), what="the events_api ack")
    assert f"{event['channel']}/{event['ts']}" in slack.handler.results, "acknowledged before it was handled"
