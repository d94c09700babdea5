"""auth.test in OAuth mode: one call per installed workspace's token, not one per event.

bolt's OAuth authorization looked up each event's installation and then called auth.test with its token for
every event (40 concurrent events, 40 calls), and Slack rate-limits auth.test. The lookup stays per event,
so an uninstalled or revoked workspace's events are refused at once; a token Slack refuses is not kept. As in
test_auth_herd, the fake's auth.test answers are held while a burst arrives, so that every event reaches
authorization before any answer: what the fake then counts is what the adapter would send Slack.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.slack.fake_slack import TokenInfo
from tests.slack.harness import (
    ADULT,
    KID,
    TEAM_2,
    TOKEN_2,
    HeldAuthTest,
    SlackHarness,
    handled,
    install,
    release_after_burst,
    running_slack,
    second_workspace,
)
from vigil.bots.slack.app import BOT_SCOPES
from vigil.bots.slack.installation_store import BOT_NAMESPACE
from vigil.detector.onnx_detector import OnnxDetector
from vigil.storage.sqlite import SqliteStore

BURST = 40  # HTTP: under the endpoint's 64 connections
REFUSED = "no longer available"  # bolt's "reinstall this app" answer
NEW_TOKEN = "xoxb-second-workspace-reinstalled"


@pytest.fixture
async def installed(
    held_auth_test: HeldAuthTest, sqlite_store: SqliteStore, keyword_detector: OnnxDetector
) -> AsyncIterator[SlackHarness]:
    """The OAuth adapter with the second workspace installed through the install pages and configured."""
    async with running_slack(
        store=sqlite_store, detector=keyword_detector, oauth=True, customise=second_workspace
    ) as slack:
        status, _ = await install(slack)
        assert status == 200
        await slack.configure(team=TEAM_2)
        yield slack


def auth_tests(slack: SlackHarness) -> int:
    return len(slack.fake.calls_to("auth.test"))


def messages(slack: SlackHarness, count: int, *, label: str) -> list[dict[str, Any]]:
    return [
        slack.message_event(user=KID if n % 2 else ADULT, text=f"{label} {n}", team=TEAM_2)
        for n in range(count)
    ]


async def deliver(slack: SlackHarness, events: list[dict[str, Any]]) -> list[str]:
    """Post the events at once; the answers' bodies (bolt answers after the listener, or with its refusal)."""
    answers = await asyncio.gather(*(slack.post_json(slack.event_body(e, team=TEAM_2)) for e in events))
    assert [status for status, _ in answers] == [200] * len(events)
    return [text for _, text in answers]


async def burst_delivered(slack: SlackHarness, held: HeldAuthTest, events: list[dict[str, Any]]) -> list[str]:
    held.hold()
    releasing = asyncio.create_task(release_after_burst(held, slack, events))
    answers = await deliver(slack, events)
    await releasing
    return answers


async def test_a_burst_of_events_from_one_workspace_shares_one_auth_test_call(
    installed: SlackHarness, held_auth_test: HeldAuthTest
) -> None:
    slack = installed
    before = auth_tests(slack)  # the install flow's own call
    events = messages(slack, BURST, label="burst")
    answers = await burst_delivered(slack, held_auth_test, events)
    assert not any(REFUSED in text for text in answers)
    assert handled(slack, events)
    assert held_auth_test.held == 1
    assert auth_tests(slack) == before + 1
    assert {m.space_id for m in slack.handler.messages} == {TEAM_2}
    # Its answer is kept: later events make no call.
    later = messages(slack, 5, label="later")
    await deliver(slack, later)
    assert handled(slack, later)
    assert auth_tests(slack) == before + 1


async def test_events_one_after_another_make_one_auth_test_call(installed: SlackHarness) -> None:
    slack = installed
    before = auth_tests(slack)
    for n in range(10):
        await slack.say(user=ADULT, text=f"<@{KID}> hello {n}", team=TEAM_2)
    assert auth_tests(slack) == before + 1
    # Answered with the workspace's own token and identity, as bolt's authorization did.
    assert slack.fake.calls_to("auth.test")[-1].token == TOKEN_2
    assert all(m.space_id == TEAM_2 for m in slack.handler.messages)


@pytest.mark.parametrize(
    "removal",
    [
        {"type": "app_uninstalled"},
        {"type": "tokens_revoked", "tokens": {"oauth": [], "bot": ["UBOT2"]}},
    ],
    ids=["app_uninstalled", "tokens_revoked"],
)
async def test_events_after_an_uninstall_or_revocation_are_refused_despite_the_kept_answer(
    installed: SlackHarness, removal: dict[str, Any]
) -> None:
    slack = installed
    before = auth_tests(slack)
    await slack.say(user=ADULT, text="before", team=TEAM_2)
    await slack.say(user=KID, text="before again", team=TEAM_2)
    assert auth_tests(slack) == before + 1

    await slack.send_event(removal, team=TEAM_2)
    await slack.eventually(lambda: _bot_gone(slack), what=f"the bot token removed after {removal['type']}")
    gone = messages(slack, 3, label="gone")
    answers = await deliver(slack, gone)
    assert all(REFUSED in text for text in answers)
    assert not any(f"{e['channel']}/{e['ts']}" in slack.handler.results for e in gone)
    assert auth_tests(slack) == before + 1  # no installation, so no token to check

    # A reinstall is checked again, once.
    status, _ = await reinstall(slack, token=TOKEN_2)
    assert status == 200
    reinstalled = auth_tests(slack)
    await slack.say(user=ADULT, text="back", team=TEAM_2)
    await slack.say(user=KID, text="back again", team=TEAM_2)
    assert auth_tests(slack) == reinstalled + 1


async def _bot_gone(slack: SlackHarness) -> bool:
    return await slack.store.get_record(BOT_NAMESPACE, f"-:{TEAM_2}") is None


async def reinstall(slack: SlackHarness, *, token: str) -> tuple[int, str]:
    """The second workspace installed again through the install pages, Slack granting ``token``."""
    slack.fake.oauth_codes["code-1"] = {
        "app_id": "A1",
        "access_token": token,
        "token_type": "bot",
        "scope": ",".join(BOT_SCOPES),
        "bot_user_id": "UBOT2",
        "team": {"id": TEAM_2, "name": "Second"},
        "enterprise": None,
        "is_enterprise_install": False,
        "authed_user": {"id": "UINSTALL"},
    }
    return await install(slack)


async def test_a_new_token_for_the_workspace_is_checked_once_and_used(installed: SlackHarness) -> None:
    """The kept answer is for the token it was given for: a reinstall granting another token (or bolt's
    token rotation) is checked by the first event with it."""
    slack = installed
    before = auth_tests(slack)
    await slack.say(user=ADULT, text="old token", team=TEAM_2)
    assert auth_tests(slack) == before + 1
    slack.fake.tokens[NEW_TOKEN] = TokenInfo(team_id=TEAM_2, user_id="UBOT2", bot_id="BBOT2")
    status, _ = await reinstall(slack, token=NEW_TOKEN)
    assert status == 200
    reinstalled = auth_tests(slack)  # the install flow's own call
    for n in range(3):
        await slack.say(user=KID, text=f"new token {n}", team=TEAM_2)
    assert auth_tests(slack) == reinstalled + 1
    assert slack.fake.calls_to("auth.test")[-1].token == NEW_TOKEN


async def test_a_token_slack_refuses_is_refused_with_one_call_per_burst_and_not_kept(
    installed: SlackHarness, held_auth_test: HeldAuthTest, caplog: pytest.LogCaptureFixture
) -> None:
    """As bolt's own authorization did: each event is answered (200) with bolt's "reinstall" message and
    nothing is handled. The failure is not kept: a later event asks again, and once Slack accepts the token
    events are handled."""
    slack = installed
    identity = slack.fake.tokens.pop(TOKEN_2)  # auth.test now answers invalid_auth
    before = auth_tests(slack)
    events = messages(slack, BURST, label="refused")
    answers = await burst_delivered(slack, held_auth_test, events)
    assert all(REFUSED in text for text in answers)
    assert not slack.handler.messages
    assert held_auth_test.held == 1
    assert auth_tests(slack) == before + 1
    refusals = [r for r in caplog.records if "AuthorizeResult" in r.getMessage()]
    assert len(refusals) == BURST

    again = messages(slack, 1, label="again")
    assert all(REFUSED in text for text in await deliver(slack, again))
    assert auth_tests(slack) == before + 2

    slack.fake.tokens[TOKEN_2] = TokenInfo(
        team_id=identity.team_id, user_id=identity.user_id, bot_id=identity.bot_id
    )
    accepted = messages(slack, 3, label="accepted")
    for event in accepted:
        assert not any(REFUSED in text for text in await deliver(slack, [event]))
    assert handled(slack, accepted)
    assert auth_tests(slack) == before + 3
