"""Multi-workspace distribution: bolt's OAuth flow with installations and states kept in Vigil's store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from slack_sdk.oauth.installation_store.models.installation import Installation

from tests.slack.harness import (
    ADULT,
    KID,
    TEAM_2,
    TOKEN_2,
    SlackHarness,
    install,
    running_slack,
    second_workspace,
)
from tests.support.fakes import FakeClock
from vigil.bots.slack.app import REDIRECT_PATH
from vigil.bots.slack.installation_store import BOT_NAMESPACE, VigilInstallationStore, VigilOAuthStateStore
from vigil.detector.onnx_detector import OnnxDetector
from vigil.storage.sqlite import SqliteStore


@pytest.fixture
async def distributed(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector
) -> AsyncIterator[SlackHarness]:
    async with running_slack(
        store=sqlite_store, detector=keyword_detector, oauth=True, customise=second_workspace
    ) as harness:
        yield harness


async def test_installing_stores_the_workspace_and_its_events_are_handled(distributed: SlackHarness) -> None:
    slack = distributed
    status, _ = await install(slack)
    assert status == 200
    exchange = slack.fake.calls_to("oauth.v2.access")
    assert len(exchange) == 1 and exchange[0].args["code"] == "code-1"
    raw = await slack.store.get_record(BOT_NAMESPACE, f"-:{TEAM_2}")
    assert raw is not None and TOKEN_2 in raw
    bot = await VigilInstallationStore(records=slack.store).async_find_bot(enterprise_id=None, team_id=TEAM_2)
    assert bot is not None and bot.bot_token == TOKEN_2 and bot.bot_user_id == "UBOT2"

    # Events from the new workspace are authorised with its own token, and its alerts posted with it.
    await slack.configure(team=TEAM_2)
    await slack.grooming_conversation(team=TEAM_2)
    channel, ts = await slack.alert_posted()
    assert slack.fake.posted[(channel, ts)]["token"] == TOKEN_2
    assert slack.handler.messages[0].space_id == TEAM_2
    assert {slack.handler.messages[0].author_id} <= {ADULT, KID}

    # Uninstalling removes the installation (bolt's token revocation listeners).
    await slack.send_event({"type": "app_uninstalled"}, team=TEAM_2)
    await slack.eventually(lambda: _gone(slack), what="the installation removed after app_uninstalled")


async def _gone(slack: SlackHarness) -> bool:
    return await slack.store.get_record(BOT_NAMESPACE, f"-:{TEAM_2}") is None


async def test_a_callback_without_a_valid_state_installs_nothing(distributed: SlackHarness) -> None:
    slack = distributed
    async with slack.session.get(f"{slack.root}{REDIRECT_PATH}?code=code-1&state=forged") as response:
        assert response.status == 400  # no state cookie from this browser
    async with slack.session.get(
        f"{slack.root}{REDIRECT_PATH}?code=code-1&state=forged",
        headers={"Cookie": "slack-app-oauth-state=forged"},
    ) as response:
        assert response.status == 401  # a state Vigil never issued
    assert not slack.fake.calls_to("oauth.v2.access")
    assert await slack.store.list_records(BOT_NAMESPACE) == {}


async def test_state_values_are_single_use_and_expire(sqlite_store: SqliteStore) -> None:
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    states = VigilOAuthStateStore(records=sqlite_store, expiration=timedelta(minutes=10), clock=clock)
    first = await states.async_issue()
    assert await states.async_consume(first)
    assert not await states.async_consume(first)
    late = await states.async_issue()
    clock.advance(timedelta(minutes=11))
    assert not await states.async_consume(late)
    stale = await states.async_issue()
    clock.advance(timedelta(minutes=11))
    await states.async_issue()  # sweeps the expired one
    assert stale not in await sqlite_store.list_records("slack.oauth_state")


async def test_installation_store_round_trip(sqlite_store: SqliteStore) -> None:
    store = VigilInstallationStore(records=sqlite_store)
    installation = Installation(
        app_id="A1",
        team_id="T9",
        bot_token="xoxb-9",
        bot_id="B9",
        bot_user_id="U9BOT",
        bot_scopes=["chat:write"],
        user_id="U9ADMIN",
        installed_at=1767225600.0,
    )
    await store.async_save(installation)
    found = await store.async_find_installation(enterprise_id=None, team_id="T9")
    assert found is not None and found.bot_token == "xoxb-9" and found.user_id == "U9ADMIN"
    by_user = await store.async_find_installation(enterprise_id=None, team_id="T9", user_id="U9ADMIN")
    assert by_user is not None
    await store.async_delete_all(enterprise_id=None, team_id="T9")
    assert await store.async_find_bot(enterprise_id=None, team_id="T9") is None
    assert await store.async_find_installation(enterprise_id=None, team_id="T9") is None
    assert await store.async_find_installation(enterprise_id=None, team_id="T9", user_id="U9ADMIN") is None
