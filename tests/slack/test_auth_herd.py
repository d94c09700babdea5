"""auth.test in single-token mode: a burst of events at start makes one call, not one per event.

bolt's built-in single-token authorization called auth.test on the first request and kept the answer only once
it was back, so every event arriving meanwhile made its own call (611 in a Socket Mode flood), and Slack
rate-limits auth.test. Here the fake's auth.test answers are held while the burst arrives, so that every event
reaches authorization before any answer: what the fake then counts is what the adapter would send Slack.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.slack.fake_slack import Failure, FakeSlack
from tests.slack.harness import (
    ADULT,
    KID,
    HeldAuthTest,
    SlackHarness,
    body_of,
    handled,
    release_after_burst,
    running_slack,
)
from vigil.bots.slack.app import SlackAdapterError
from vigil.config.settings import SlackMode
from vigil.detector.onnx_detector import OnnxDetector
from vigil.storage.sqlite import SqliteStore

OTHER_TEAM = "T2"
OTHER_CHANNEL = "COTHER001"


def burst(slack: SlackHarness, count: int) -> list[dict[str, Any]]:
    """Message events, every tenth from another workspace (the token's authorization is not per team)."""
    return [
        slack.message_event(user=ADULT, text=f"<@{KID}> round {n}", channel=OTHER_CHANNEL, team=OTHER_TEAM)
        if n % 10 == 9
        else slack.message_event(user=KID, text=f"<@{ADULT}> round {n}")
        for n in range(count)
    ]


async def deliver(slack: SlackHarness, mode: SlackMode, events: list[dict[str, Any]]) -> list[str]:
    """Send the events at once; for HTTP, the answers' bodies (Socket Mode acks are on the fake)."""
    if mode == "socket":
        for event in events:
            await slack.fake.socket_send(
                {
                    "envelope_id": f"env-{event['ts']}",
                    "type": "events_api",
                    "accepts_response_payload": False,
                    "retry_attempt": 0,
                    "retry_reason": "",
                    "payload": body_of(slack, event),
                }
            )
        return []
    answers = await asyncio.gather(*(slack.post_json(body_of(slack, event)) for event in events))
    assert [status for status, _ in answers] == [200] * len(events)
    return [text for _, text in answers]


@contextlib.asynccontextmanager
async def flooding(
    sqlite_store: SqliteStore,
    keyword_detector: OnnxDetector,
    mode: SlackMode,
    customise: Callable[[FakeSlack], None] | None = None,
) -> AsyncIterator[SlackHarness]:
    async with running_slack(
        store=sqlite_store, detector=keyword_detector, mode=mode, customise=customise
    ) as slack:
        await slack.configure()
        await slack.configure(team=OTHER_TEAM)
        yield slack


async def burst_delivered(
    slack: SlackHarness, mode: SlackMode, held: HeldAuthTest, events: list[dict[str, Any]]
) -> list[str]:
    held.hold()
    sending: asyncio.Task[list[str]] = asyncio.create_task(deliver(slack, mode, events))
    releasing = asyncio.create_task(release_after_burst(held, slack, events))
    answers = await sending
    await releasing
    return answers


async def wait_handled(slack: SlackHarness, mode: SlackMode, events: list[dict[str, Any]]) -> None:
    await slack.fake.wait_for(lambda: handled(slack, events), what="every event handled", within=15.0)
    if mode == "socket":
        await slack.fake.wait_for(
            lambda: len(slack.fake.socket_acks) >= len(events), what="every envelope acknowledged"
        )


COUNTS: dict[SlackMode, int] = {"socket": 120, "http": 40}  # HTTP: under the endpoint's 64 connections


@pytest.mark.parametrize("mode", ["socket", "http"])
async def test_a_burst_of_events_at_start_makes_no_auth_test_call_beyond_the_adapters_own(
    mode: SlackMode,
    held_auth_test: HeldAuthTest,
    sqlite_store: SqliteStore,
    keyword_detector: OnnxDetector,
) -> None:
    async with flooding(sqlite_store, keyword_detector, mode) as slack:
        assert len(slack.fake.calls_to("auth.test")) == 1, "the adapter checks its token at start"
        events = burst(slack, COUNTS[mode])
        await burst_delivered(slack, mode, held_auth_test, events)
        await wait_handled(slack, mode, events)
        assert len(slack.fake.calls_to("auth.test")) == 1
        # Events of another workspace are still handled, as that workspace's.
        others = [m for m in slack.handler.messages if m.space_id == OTHER_TEAM]
        assert len(others) == sum(1 for e in events if e["team"] == OTHER_TEAM) > 0


@pytest.mark.parametrize("mode", ["socket", "http"])
async def test_when_the_check_at_start_failed_a_burst_shares_one_auth_test_call(
    mode: SlackMode,
    held_auth_test: HeldAuthTest,
    sqlite_store: SqliteStore,
    keyword_detector: OnnxDetector,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def rate_limited_once(fake: FakeSlack) -> None:
        fake.fail("auth.test", Failure(status=429, error="ratelimited", retry_after=0.01))

    async with flooding(sqlite_store, keyword_detector, mode, customise=rate_limited_once) as slack:
        assert any("could not check the Slack bot token yet" in r.getMessage() for r in caplog.records)
        events = burst(slack, COUNTS[mode])
        await burst_delivered(slack, mode, held_auth_test, events)
        await wait_handled(slack, mode, events)
        # The failed check at start, then one call for the whole burst; its answer is kept.
        assert held_auth_test.held == 1
        assert len(slack.fake.calls_to("auth.test")) == 2
        later = [slack.message_event(user=KID, text=f"<@{ADULT}> one more")]
        await deliver(slack, mode, later)
        await slack.fake.wait_for(lambda: handled(slack, later), what="a later event handled")
        assert len(slack.fake.calls_to("auth.test")) == 2


async def test_a_token_revoked_after_a_failed_check_refuses_the_burst_with_one_auth_test_call(
    held_auth_test: HeldAuthTest,
    sqlite_store: SqliteStore,
    keyword_detector: OnnxDetector,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As bolt's own authorization did: each event is answered (200) with bolt's "reinstall" message and
    the error is logged; nothing is handled. A later event asks again."""

    def down_once(fake: FakeSlack) -> None:
        fake.fail("auth.test", Failure(status=503, error="service_unavailable"))

    async with flooding(sqlite_store, keyword_detector, "http", customise=down_once) as slack:
        slack.fake.revoked_tokens.add(slack.fake.bot_token)
        events = burst(slack, COUNTS["http"])
        answers = await burst_delivered(slack, "http", held_auth_test, events)
        assert all("no longer available" in text for text in answers)
        assert not slack.handler.messages
        assert len(slack.fake.calls_to("auth.test")) == 2
        refused = [r for r in caplog.records if "Failed to authorize with the given token" in r.getMessage()]
        assert len(refused) == len(events)
        status, text = await slack.post_json(body_of(slack, slack.message_event(user=KID, text="later")))
        assert status == 200 and "no longer available" in text
        assert len(slack.fake.calls_to("auth.test")) == 3


async def test_a_token_refused_at_start_still_stops_the_adapter(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector
) -> None:
    def revoked(fake: FakeSlack) -> None:
        fake.revoked_tokens.add(fake.bot_token)

    with pytest.raises(SlackAdapterError, match="refused the bot token"):
        async with running_slack(store=sqlite_store, detector=keyword_detector, customise=revoked):
            pass
