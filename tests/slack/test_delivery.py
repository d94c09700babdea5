"""Alert delivery through the real outbox: rate limits, server errors, missing access, revoked tokens."""

from __future__ import annotations

import logging

import pytest

from tests.slack.fake_slack import Failure
from tests.slack.harness import ALERTS, KID, MOD, TEAM, SlackHarness
from vigil.bots.slack.blocks import ACTION_CLAIM


async def test_a_rate_limited_post_is_retried_after_retry_after(slack: SlackHarness) -> None:
    await slack.configure()
    slack.fake.fail("chat.postMessage", Failure(status=429, error="ratelimited", retry_after=1))
    await slack.grooming_conversation()
    calls = await slack.fake.wait_for_calls("chat.postMessage", count=2, within=10)
    assert calls[1].at - calls[0].at >= 0.9  # Slack's Retry-After was honoured
    assert len([key for key in slack.fake.posted if key[0] == ALERTS]) == 1

    async def delivered() -> bool:
        alerts = await slack.store.alerts_for_space(platform="slack", space_id=TEAM, limit=5)
        return bool(alerts) and alerts[0].delivery_ref is not None

    await slack.eventually(delivered, what="the delivery acknowledged")
    assert slack.adapter.health.problem(TEAM) is None


async def test_a_server_error_is_transient(slack: SlackHarness) -> None:
    await slack.configure()
    slack.fake.fail("chat.postMessage", Failure(status=500, error="internal_error"))
    await slack.grooming_conversation()
    await slack.fake.wait_for_calls("chat.postMessage", count=2)
    await slack.fake.wait_for(lambda: any(c == ALERTS for c, _ in slack.fake.posted), what="the alert posted")
    assert slack.adapter.health.problem(TEAM) is None


async def test_a_missing_channel_membership_is_permanent_and_shown_in_status(
    slack: SlackHarness, caplog: pytest.LogCaptureFixture
) -> None:
    await slack.configure()
    slack.fake.channels[ALERTS]["is_member"] = False
    await slack.grooming_conversation()
    await slack.fake.wait_for(lambda: slack.adapter.health.problem(TEAM), what="the failure recorded")
    problem = slack.adapter.health.problem(TEAM)
    assert problem is not None and problem.permanent and problem.code == "not_in_channel"
    status = await slack.command("status", user=MOD)
    assert "Alerts are not being delivered" in status["text"] and "/invite @Vigil" in status["text"]
    # Reported once in the log however often delivery is tried.
    alert = (await slack.store.alerts_for_space(platform="slack", space_id=TEAM, limit=1))[0]
    delivery = await slack.outbox.delivery(alert)
    for _ in range(3):
        result = await slack.adapter.sink.post(delivery)
        assert not result.ok and result.permanent
    web_logger = "vigil.bots.slack.web"
    reports = [r for r in caplog.records if r.name == web_logger and "not a member" in r.getMessage()]
    assert len(reports) == 1 and reports[0].levelno == logging.ERROR
    # Fixed by the admin: the next delivery works and the problem clears.
    slack.fake.channels[ALERTS]["is_member"] = True
    assert (await slack.adapter.sink.post(delivery)).ok
    assert slack.adapter.health.problem(TEAM) is None


async def test_a_revoked_token_is_a_permanent_failure_reported_to_moderators(
    slack: SlackHarness, caplog: pytest.LogCaptureFixture
) -> None:
    await slack.configure()
    await slack.say(user=KID, text="hello there")  # bolt checks the token once, on its first request
    slack.fake.revoked_tokens.add(slack.fake.bot_token)
    await slack.grooming_conversation()
    await slack.fake.wait_for(lambda: slack.adapter.health.problem(TEAM), what="the failure recorded")
    problem = slack.adapter.health.problem(TEAM)
    assert problem is not None and problem.permanent and problem.is_token_problem
    reports = [r for r in caplog.records if r.name == "vigil.bots.slack.web"]
    assert len(reports) == 1 and "token_revoked" in reports[0].getMessage()
    assert slack.fake.bot_token not in caplog.text
    # Even though Vigil cannot look up anyone's role now, /vigil status says what is wrong.
    status = await slack.command("status", user=MOD)
    assert "token" in status["text"] and "reinstall" in status["text"]


async def test_a_deleted_alert_message_is_posted_again(slack: SlackHarness) -> None:
    await slack.configure()
    await slack.grooming_conversation()
    channel, ts = await slack.alert_posted()
    await slack.outbox.drain_once()
    del slack.fake.posted[(channel, ts)]
    await slack.click(ACTION_CLAIM, case=1, user=MOD, message_ts=ts)
    await slack.fake.wait_for_calls("chat.postMessage", count=2)

    async def new_ref() -> str | None:
        alert = (await slack.store.alerts_for_space(platform="slack", space_id=TEAM, limit=1))[0]
        return alert.delivery_ref if alert.delivery_ref != f"{channel}/{ts}" else None

    ref = await slack.eventually(new_ref, what="the new reference stored")
    new_ts = next(t for c, t in slack.fake.posted if c == channel)
    assert ref == f"{channel}/{new_ts}"
    assert new_ts != ts
    assert "Claimed" in str(slack.fake.posted[(channel, new_ts)]["blocks"])
