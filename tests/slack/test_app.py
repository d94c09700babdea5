"""The Slack adapter end to end in HTTP mode: real bolt, signed requests, the fake Web API, the real core."""

from __future__ import annotations

import json
import logging
import re
import time
from collections import Counter
from typing import Any

import pytest

from tests.slack.fake_slack import Failure
from tests.slack.harness import (
    ADMIN,
    ADULT,
    ALERTS,
    GENERAL,
    KID,
    MEMBER,
    MOD,
    MODS_GROUP,
    PUBLIC_ALERTS,
    QUIET,
    SAFETY,
    SAFETY_GROUP,
    TEAM,
    SlackHarness,
)
from tests.support.fuzz import FUZZ_CASES, cases
from vigil.bots.core.cases import CaseState, Role
from vigil.bots.core.models import PairKey
from vigil.bots.core.monitor import SkipReason
from vigil.bots.slack.blocks import (
    ACTION_CLAIM,
    ACTION_CONFIRM,
    ACTION_DISMISS,
    ACTION_ESCALATE,
    ACTION_TRANSCRIPT,
)


def text_of(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


async def case_state(slack: SlackHarness, number: int) -> CaseState:
    record = await slack.store.get_case(platform="slack", space_id=TEAM, case_number=number)
    assert record is not None
    return record.state


async def alert_blocks_now(slack: SlackHarness, channel: str, ts: str) -> str:
    return text_of(slack.fake.posted[(channel, ts)]["blocks"])


# ------------------------------------------------------------------------------ setup and permissions


async def test_only_workspace_admins_change_settings(slack: SlackHarness) -> None:
    refused = await slack.command(f"setup <#{ALERTS}|alerts> <!subteam^{MODS_GROUP}|@mods>", user=MOD)
    assert "Only workspace admins" in refused["text"]
    assert refused["response_type"] == "ephemeral"
    assert await slack.store.get_space_settings(platform="slack", space_id=TEAM) is None

    saved = await slack.command(
        f"setup <#{ALERTS}|alerts> <!subteam^{MODS_GROUP}|@mods> <!subteam^{SAFETY_GROUP}|@safety>",
        user=ADMIN,
    )
    assert saved["text"].startswith("Saved.") and "public" not in saved["text"]
    settings = await slack.store.get_space_settings(platform="slack", space_id=TEAM)
    assert settings is not None
    assert (settings.alert_channel_id, settings.moderator_role_id, settings.child_safety_role_id) == (
        ALERTS,
        MODS_GROUP,
        SAFETY_GROUP,
    )
    # One part by name; a public alert channel is accepted with a warning.
    warned = await slack.command(f"setup alerts <#{PUBLIC_ALERTS}|general-alerts>", user=ADMIN)
    assert "*public*" in warned["text"]
    settings = await slack.store.get_space_settings(platform="slack", space_id=TEAM)
    assert settings is not None and settings.alert_channel_id == PUBLIC_ALERTS
    assert settings.child_safety_role_id == SAFETY_GROUP

    assert "Only workspace admins" in (await slack.command("threshold 0.5", user=MOD))["text"]
    assert "0.80" in (await slack.command("threshold 0.8", user=ADMIN))["text"]
    # One rule for every platform (the moderator service): 0.05 to 0.99. A tiny value would make every pair
    # alert while showing as 0.00.
    for refused in ("1.5", "1e-320", "0.01", "nan", "inf", "high"):
        answer = (await slack.command(f"threshold {refused}", user=ADMIN))["text"]
        assert "between 0.05 and 0.99" in answer, refused
    settings = await slack.store.get_space_settings(platform="slack", space_id=TEAM)
    assert settings is not None and settings.threshold == 0.8
    # users.info decides who is an admin; usergroups.users.list who is a moderator.
    assert slack.fake.calls_to("users.info")
    assert not (await slack.command("status", user=MEMBER))["text"].startswith("*Vigil status*")
    status = await slack.command("status", user=MOD)
    assert status["text"].startswith("*Vigil status*") and "0.80" in status["text"]
    assert "Alert delivery: OK" in status["text"]
    assert "Vigil" in (await slack.command("", user=MEMBER))["text"]  # help


async def test_a_test_alert_checks_the_alert_channel(slack: SlackHarness) -> None:
    assert "run `/vigil setup" in (await slack.command("test", user=ADMIN))["text"]
    await slack.configure()
    assert "Only members of the moderator user group" in (await slack.command("test", user=MEMBER))["text"]

    answer = await slack.command("test", user=MOD)

    assert answer["text"] == f"Test alert posted in <#{ALERTS}>. Real alerts will arrive there the same way."
    ((channel, _), posted), *_ = slack.fake.posted.items()
    assert channel == ALERTS and posted["text"].startswith(f"<!subteam^{MODS_GROUP}> Vigil test alert")
    assert await slack.store.count_pairs() == 0
    # A channel Vigil was not invited to: the reason, in Slack's advice.
    slack.fake.channels[ALERTS]["is_member"] = False
    refused = await slack.command("test", user=MOD)
    assert refused["text"].startswith("The test alert could not be posted:")


async def test_roles_come_from_slack_user_groups(slack: SlackHarness) -> None:
    await slack.configure()
    access = await slack.adapter._roles.access(
        slack.adapter._client,
        team_id=TEAM,
        user_id=SAFETY,
        settings=await slack.store.get_space_settings(platform="slack", space_id=TEAM),
    )
    assert access.actor.roles == {Role.MODERATOR, Role.CHILD_SAFETY}


async def test_free_plans_use_private_channels_as_groups(slack: SlackHarness) -> None:
    slack.fake.channels["GMODTEAM1"] = {"is_private": True, "is_member": True, "members": [MOD, SAFETY]}
    slack.fake.channels["GSAFETY01"] = {"is_private": True, "is_member": True, "members": [SAFETY]}
    answer = await slack.command(
        f"setup <#{ALERTS}|alerts> moderators <#GMODTEAM1|mod-team> child-safety <#GSAFETY01|safety>",
        user=ADMIN,
    )
    assert "members of <#GMODTEAM1>" in answer["text"]
    settings = await slack.store.get_space_settings(platform="slack", space_id=TEAM)
    assert settings is not None
    assert (settings.alert_channel_id, settings.moderator_role_id, settings.child_safety_role_id) == (
        ALERTS,
        "GMODTEAM1",
        "GSAFETY01",
    )
    assert (await slack.command("status", user=MOD))["text"].startswith("*Vigil status*")
    assert not (await slack.command("status", user=MEMBER))["text"].startswith("*Vigil status*")
    assert slack.fake.calls_to("conversations.members")


# ------------------------------------------------------------------------------ alerts and cases


async def test_grooming_pattern_posts_one_alert_then_edits_it(slack: SlackHarness) -> None:
    await slack.configure()
    await slack.grooming_conversation()
    channel, ts = await slack.alert_posted()
    assert channel == ALERTS
    posted = slack.fake.calls_to("chat.postMessage")[0]
    # The notification text names nobody and quotes nothing.
    assert ADULT not in str(posted.args["text"]) and "secret" not in str(posted.args["text"])
    blocks = await alert_blocks_now(slack, channel, ts)
    assert "case #1" in blocks and f"<@{ADULT}>" in blocks and f"<@{KID}>" in blocks
    assert f"<#{GENERAL}>" in blocks
    assert "https://fake.slack.test/archives/" in blocks  # permalinks from chat.getPermalink
    assert "secret" in blocks  # contributing excerpts and signals
    # Rising risk edits the same message.
    await slack.fake.wait_for_calls("chat.update")
    await slack.say(user=ADULT, text=f"<@{KID}> secret groom secret groom")
    await slack.outbox.drain_once()
    assert len(slack.fake.calls_to("chat.postMessage")) == 1
    assert all(c.args["ts"] == ts for c in slack.fake.calls_to("chat.update"))
    # The kid is never the suspect.
    alerts = await slack.store.alerts_for_space(platform="slack", space_id=TEAM, limit=5)
    assert len(alerts) == 1 and alerts[0].suspect_id == ADULT and alerts[0].delivery_ref == f"{ALERTS}/{ts}"


async def test_case_buttons_claim_confirm_escalate_and_snooze(slack: SlackHarness) -> None:
    await slack.configure()
    await slack.grooming_conversation()
    channel, ts = await slack.alert_posted()

    refused = await slack.click(ACTION_CLAIM, case=1, user=MEMBER, message_ts=ts)
    assert refused is not None and "Only moderators" in refused["text"]
    assert refused["response_type"] == "ephemeral" and refused.get("replace_original") is False

    updates = len(slack.fake.calls_to("chat.update"))
    claimed = await slack.click(ACTION_CLAIM, case=1, user=MOD, message_ts=ts)
    assert claimed is not None and "claimed" in claimed["text"]
    assert await case_state(slack, 1) is CaseState.CLAIMED
    await slack.fake.wait_for(
        lambda: "Claimed" in text_of(slack.fake.posted[(channel, ts)]["blocks"]), what="the alert re-rendered"
    )
    assert len(slack.fake.calls_to("chat.update")) > updates
    assert f"claimed by <@{MOD}>" in await alert_blocks_now(slack, channel, ts)

    again = await slack.click(ACTION_CLAIM, case=1, user=SAFETY, message_ts=ts)
    assert again is not None and "already claimed" in again["text"]

    confirmed = await slack.click(ACTION_CONFIRM, case=1, user=MOD, message_ts=ts)
    assert confirmed is not None and "confirmed" in confirmed["text"]

    snoozed = await slack.choose_snooze(case=1, hours=24, user=MOD)
    assert "snoozed" in snoozed["text"]
    pair = await slack.store.load_pair(PairKey.of(platform="slack", space_id=TEAM, first=ADULT, second=KID))
    assert pair is not None and pair.snoozed_until is not None

    escalated = await slack.click(ACTION_ESCALATE, case=1, user=MOD, message_ts=ts)
    assert escalated is not None and "escalated" in escalated["text"]
    guidance = text_of(escalated["blocks"])
    assert "CyberTipline" in guidance and "CEOP" in guidance and "Trust & Safety" in guidance
    assert await case_state(slack, 1) is CaseState.ESCALATED
    await slack.fake.wait_for(
        lambda: "Escalated" in text_of(slack.fake.posted[(channel, ts)]["blocks"]), what="escalated alert"
    )
    assert len(slack.fake.calls_to("chat.postMessage")) == 1


async def test_transcript_only_for_the_child_safety_group(slack: SlackHarness) -> None:
    await slack.configure()
    await slack.grooming_conversation()
    _, ts = await slack.alert_posted()
    refused = await slack.click(ACTION_TRANSCRIPT, case=1, user=MOD, message_ts=ts)
    assert refused is not None and "child-safety" in refused["text"] and "blocks" not in refused
    sent = await slack.click(ACTION_TRANSCRIPT, case=1, user=SAFETY, message_ts=ts)
    assert sent is not None and "sent as a text file" in sent["text"]  # the file: test_private_files.py
    # When the file cannot be sent, the messages come in the ephemeral answer instead.
    slack.fake.fail("files.getUploadURLExternal", Failure(error="internal_error"))
    shown = await slack.click(ACTION_TRANSCRIPT, case=1, user=SAFETY, message_ts=ts)
    assert shown is not None and shown["response_type"] == "ephemeral"
    transcript = text_of(shown["blocks"])
    assert "secret groom" in transcript and f"<@{KID}>" in transcript
    # Scores beside the likely groomer's lines only, and said so; the child's replies carry none.
    assert "likely groomer's messages only" in transcript
    scored = re.findall(r"(`[0-9.]+` )?\d{4}-\d\d-\d\d \d\d:\d\d UTC <@(\w+)>", transcript)
    assert {author for score, author in scored if score} == {ADULT}
    assert {author for score, author in scored if not score} == {KID}
    # The slash command form checks the same.
    assert "child-safety" in (await slack.command("case 1 transcript", user=MOD))["text"]


async def test_dismiss_opens_a_modal_and_the_reason_closes_the_case(slack: SlackHarness) -> None:
    await slack.configure()
    await slack.grooming_conversation()
    channel, ts = await slack.alert_posted()
    await slack.click(ACTION_DISMISS, case=1, user=MOD, message_ts=ts, wait=False)
    opened = (await slack.fake.wait_for_calls("views.open"))[0]
    view = opened.args["view"]
    assert view["callback_id"] == "vigil_dismiss_modal"
    metadata = view["private_metadata"]

    status, body = await slack.submit_dismiss(private_metadata=metadata, user=MOD, reason="   ")
    assert status == 200 and json.loads(body)["response_action"] == "errors"
    status, body = await slack.submit_dismiss(private_metadata=metadata, user=MEMBER, reason="fine")
    assert status == 200 and "Only moderators" in json.loads(body)["errors"]["reason"]
    assert await case_state(slack, 1) is CaseState.OPEN

    status, body = await slack.submit_dismiss(private_metadata=metadata, user=MOD, reason="they are siblings")
    assert status == 200 and body == ""
    assert await case_state(slack, 1) is CaseState.DISMISSED
    await slack.fake.wait_for(
        lambda: "siblings" in text_of(slack.fake.posted[(channel, ts)]["blocks"]), what="dismissed alert"
    )
    await slack.fake.wait_for_calls("chat.postEphemeral")
    case = await slack.command("case 1", user=MOD)
    assert "Dismissed" in text_of(case["blocks"]) and "dismiss" in text_of(case["blocks"])
    # The moderator's form was never replaced by a refusal.
    assert not slack.fake.calls_to("views.update")


async def test_a_member_who_clicks_dismiss_is_told_at_once_not_after_writing_a_reason(
    slack: SlackHarness,
) -> None:
    await slack.configure()
    await slack.grooming_conversation()
    _, ts = await slack.alert_posted()
    await slack.click(ACTION_DISMISS, case=1, user=MEMBER, message_ts=ts, wait=False)
    # The form opens first (Slack's trigger expires in 3 s), then is replaced by the refusal.
    opened = (await slack.fake.wait_for_calls("views.open"))[0]
    assert opened.args["view"]["callback_id"] == "vigil_dismiss_modal"
    updated = (await slack.fake.wait_for_calls("views.update"))[0]
    assert updated.args["view_id"] == "V1"
    refusal = updated.args["view"]
    assert "callback_id" not in refusal and "submit" not in refusal
    assert "Only moderators" in text_of(refusal["blocks"])
    assert await case_state(slack, 1) is CaseState.OPEN


async def test_case_commands(slack: SlackHarness) -> None:
    await slack.configure()
    await slack.grooming_conversation()
    await slack.alert_posted()
    listed = await slack.command(f"cases <@{ADULT}|adult>", user=MOD)
    assert "#1" in listed["text"]
    assert "Only moderators" in (await slack.command("cases", user=MEMBER))["text"]
    noted = await slack.command("case 1 note spoke to the parents", user=MOD)
    assert "Note added" in noted["text"]
    detail = await slack.command("case 1", user=MOD)
    assert "spoke to the parents" in text_of(detail["blocks"])
    pair = await slack.command(f"pair <@{ADULT}> <@{KID}>", user=MOD)
    assert "Open case: #1" in pair["text"]
    # In words, most frequent first: "age" came in three of the adult's messages, "secret" in two.
    signals = "• Signals so far: asks the other person's age; asks to keep the conversation secret"
    assert signals in pair["text"]
    assert (
        "Only members of the moderator"
        in (await slack.command(f"pair <@{ADULT}> <@{KID}>", user=MEMBER))["text"]
    )
    assert "No such case" in (await slack.command("case 99", user=MOD))["text"]


async def test_pair_says_why_there_is_no_alert_yet(slack: SlackHarness) -> None:
    await slack.configure(threshold=0.8)
    await slack.say(user=MEMBER, text=f"<@{KID}> hello there")
    await slack.say(user=KID, text=f"<@{MEMBER}> hi")

    pair = await slack.command(f"pair <@{MEMBER}> <@{KID}>", user=MOD)

    # The space's own threshold, and the sustain rule the monitor applies.
    assert "• No open case: no alert: the risk (" in pair["text"]
    assert "below the alert threshold (0.80)" in pair["text"] and "messages in a row" in pair["text"]
    assert "• Signals so far: none" in pair["text"]


async def test_member_report_from_the_message_shortcut(slack: SlackHarness) -> None:
    await slack.configure()
    first = {"type": "message", "user": KID, "text": "hi", "ts": slack.next_ts()}
    reported = {
        "type": "message",
        "user": ADULT,
        "text": "send me a photo, our little secret",
        "ts": slack.next_ts(),
    }
    slack.fake.history[QUIET] = [first, reported]
    own = await slack.report(user=KID, channel=QUIET, message={**first})
    assert "person you are worried about" in own["text"]

    answer = await slack.report(user=KID, channel=QUIET, message=reported)
    assert answer["response_type"] == "ephemeral" and "Thank you" in answer["text"]
    assert slack.fake.calls_to("conversations.history")
    record = await slack.store.get_case(platform="slack", space_id=TEAM, case_number=1)
    assert record is not None and record.alert.suspect_id == ADULT and record.alert.other_id == KID
    channel, ts = await slack.alert_posted()
    assert "member report" in await alert_blocks_now(slack, channel, ts)


# ------------------------------------------------------------------------------ ingest


async def test_ignored_channels_and_bot_messages_are_not_read(slack: SlackHarness) -> None:
    await slack.configure()
    answer = await slack.command(f"ignore <#{QUIET}|quiet>", user=ADMIN)
    assert "ignores" in answer["text"]
    result = await slack.say(user=ADULT, text=f"<@{KID}> secret groom", channel=QUIET)
    assert result.skipped is SkipReason.IGNORED_CHANNEL
    await slack.command(f"unignore <#{QUIET}|quiet>", user=ADMIN)
    assert (await slack.say(user=ADULT, text=f"<@{KID}> hello", channel=QUIET)).skipped is None

    before = len(slack.handler.messages)
    await slack.send_event(slack.message_event(user=ADULT, text="beep", bot_id="B999"))
    await slack.send_event(
        {
            **slack.message_event(user=ADULT, text="beep"),
            "subtype": "bot_message",
            "user": None,
            "bot_id": "B9",
        }
    )
    await slack.send_event({**slack.message_event(user=ADULT, text="joined"), "subtype": "channel_join"})
    # The app's own bot user: bolt drops its events before any listener.
    await slack.send_event(slack.message_event(user="UBOT", text="secret groom"))
    await slack.say(user=KID, text="marker")  # events are handled in order of arrival here
    assert [m.text for m in slack.handler.messages[before:]] == ["marker"]


async def test_edits_are_rescored_and_thread_replies_pair_with_the_parent(slack: SlackHarness) -> None:
    await slack.configure()
    parent = slack.message_event(user=KID, text="anyone up for a game tonight")
    await slack.send_event(parent)
    await slack.fake.wait_for(lambda: len(slack.handler.messages) == 1)
    reply = await slack.say(user=ADULT, text="hello there", thread_ts=parent["ts"], parent_user_id=KID)
    assert reply.pairs and reply.pairs[0].key == PairKey.of(
        platform="slack", space_id=TEAM, first=ADULT, second=KID
    )
    edit_ts = f"{int(time.time())}.000500"
    await slack.send_event(
        {
            "type": "message",
            "subtype": "message_changed",
            "channel": GENERAL,
            "channel_type": "channel",
            "hidden": True,
            "ts": edit_ts,
            "message": {
                "type": "message",
                "user": ADULT,
                "text": "secret secret",
                "ts": slack.handler.messages[-1].message_id.split("/")[1],
                "thread_ts": parent["ts"],
                "parent_user_id": KID,
                "edited": {"user": ADULT, "ts": edit_ts},
            },
            "previous_message": {"type": "message", "user": ADULT, "text": "hello there"},
        }
    )
    edited = await slack.fake.wait_for(
        lambda: len(slack.handler.messages) == 3 and slack.handler.messages[-1]
    )
    assert edited.message_id.endswith(f":edit:{edit_ts}") and edited.text == "secret secret"
    result = slack.handler.results[edited.message_id]
    assert result.risk is not None and result.risk > 0.9


def deletion(channel: str, ts: str, *, author: str) -> dict[str, Any]:
    return {
        "type": "message",
        "subtype": "message_deleted",
        "channel": channel,
        "channel_type": "channel",
        "hidden": True,
        "ts": f"{int(time.time())}.000900",
        "deleted_ts": ts,
        "previous_message": {"type": "message", "user": author, "text": "gone", "ts": ts},
    }


async def test_deleted_messages_and_their_edits_are_forgotten_by_the_store(
    erasing_slack: SlackHarness,
) -> None:
    slack = erasing_slack
    forgotten: list[tuple[str, str, str]] = slack.store.forgotten  # type: ignore[attr-defined]
    await slack.configure()
    key = PairKey.of(platform="slack", space_id=TEAM, first=ADULT, second=KID)
    await slack.say(user=KID, text=f"<@{ADULT}> hello there")
    said = await slack.say(user=ADULT, text=f"<@{KID}> see you later")
    channel, ts = said.message_id.split("/")
    edit_ts = f"{int(time.time())}.000300"
    await slack.send_event(
        {
            "type": "message",
            "subtype": "message_changed",
            "channel": channel,
            "channel_type": "channel",
            "message": {"user": ADULT, "text": f"<@{KID}> see you soon", "ts": ts, "edited": {"ts": edit_ts}},
            "previous_message": {"user": ADULT, "text": f"<@{KID}> see you later", "ts": ts},
        }
    )
    await slack.fake.wait_for(lambda: len(slack.handler.messages) == 3, what="the edit handled")
    window = [m.message_id for m in await slack.store.load_window(key)]
    assert said.message_id in window and f"{said.message_id}:edit:{edit_ts}" in window

    await slack.send_event(deletion(channel, ts, author=ADULT))
    await slack.fake.wait_for(lambda: forgotten, what="the store asked to forget the message")
    assert forgotten == [("slack", TEAM, said.message_id)]
    window = [m.message_id for m in await slack.store.load_window(key)]
    assert not [m for m in window if m.startswith(said.message_id)]

    # With an open case the conversation is evidence: the store keeps a deleted message.
    await slack.grooming_conversation()
    await slack.alert_posted()
    last = slack.handler.messages[-2]
    assert last.author_id == ADULT
    await slack.send_event(deletion(GENERAL, last.message_id.split("/")[1], author=ADULT))
    await slack.fake.wait_for(lambda: len(forgotten) == 2, what="the second deletion")
    assert last.message_id in [m.message_id for m in await slack.store.load_window(key)]


# ------------------------------------------------------------------------------ request verification


async def test_bad_signatures_and_stale_timestamps_are_rejected(slack: SlackHarness) -> None:
    await slack.configure()
    body = json.dumps(slack.event_body(slack.message_event(user=ADULT, text="hello")))
    status, _ = await slack.post(body, content_type="application/json", signature="v0=" + "0" * 64)
    assert status == 401
    stale = int(time.time()) - 6 * 60
    status, _ = await slack.post(body, content_type="application/json", timestamp=stale)
    assert status == 401
    # A correctly signed fresh request goes through; the two above never reached a listener.
    await slack.say(user=KID, text="marker")
    assert [m.text for m in slack.handler.messages] == ["marker"]


async def test_a_message_is_stored_before_slack_gets_its_acknowledgement(slack: SlackHarness) -> None:
    # Slack never redelivers an acknowledged event: a crash between the 200 and the commit lost messages.
    await slack.configure()
    event = slack.message_event(user=ADULT, text=f"<@{KID}> hello there")
    await slack.send_event(event)  # returns on Slack's 200
    message_id = f"{GENERAL}/{event['ts']}"
    assert message_id in slack.handler.results, "acknowledged before it was handled"
    key = PairKey.of(platform="slack", space_id=TEAM, first=ADULT, second=KID)
    assert message_id in [m.message_id for m in await slack.store.load_window(key)]


@pytest.mark.parametrize("event_type", ["app_uninstalled", "tokens_revoked"])
async def test_uninstalling_a_token_install_is_acknowledged_and_reported(
    event_type: str, slack: SlackHarness, caplog: pytest.LogCaptureFixture
) -> None:
    await slack.configure()
    event: dict[str, Any] = {"type": event_type}
    if event_type == "tokens_revoked":
        event["tokens"] = {"bot": ["UBOT"]}
    await slack.send_event(event)  # asserts HTTP 200: Slack retries, then disables, unacknowledged events
    problem = slack.adapter.health.problem(TEAM)
    assert problem is not None and problem.permanent and "install" in problem.description
    assert [r.levelname for r in caplog.records if "Vigil's Slack token" in r.getMessage()] == ["ERROR"]


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
async def test_a_body_that_is_not_json_is_refused_cleanly_and_never_logged(
    signed: bool, slack: SlackHarness, caplog: pytest.LogCaptureFixture
) -> None:
    await slack.configure()
    caplog.set_level(logging.DEBUG)
    body = "{not json: secret groom text"
    status, _ = await slack.post(
        body, content_type="application/json", signature=None if signed else "v0=" + "0" * 64
    )
    assert status == (400 if signed else 401)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not [r for r in caplog.records if "secret groom" in r.getMessage()], "a log line carries the body"
    await slack.say(user=KID, text="marker")
    assert [m.text for m in slack.handler.messages] == ["marker"]


async def test_a_wrongly_signed_body_never_reaches_a_log(
    slack: SlackHarness, caplog: pytest.LogCaptureFixture
) -> None:
    await slack.configure()
    caplog.set_level(logging.DEBUG)
    body = json.dumps(slack.event_body(slack.message_event(user=ADULT, text="secret groom text")))
    for options in ({"signature": "v0=" + "0" * 64}, {"timestamp": int(time.time()) - 6 * 60}):
        status, _ = await slack.post(body, content_type="application/json", **options)
        assert status == 401
    assert not [r for r in caplog.records if "secret groom" in r.getMessage()], "a log line carries the body"


async def test_a_reported_dm_vigil_cannot_read_is_reported_as_the_message_alone(slack: SlackHarness) -> None:
    # Vigil is not in members' DMs: conversations.history fails there; the shortcut's message is all it has.
    await slack.configure()
    reported = {"type": "message", "user": ADULT, "text": "don't tell your mum, ok?", "ts": slack.next_ts()}
    answer = await slack.report(user=KID, channel="D0KIDDM01", message=reported)
    assert slack.fake.calls_to("conversations.history")
    assert answer["response_type"] == "ephemeral"
    record = await slack.store.get_case(platform="slack", space_id=TEAM, case_number=1)
    assert "Thank you" in answer["text"], answer["text"]
    assert record is not None and record.alert.suspect_id == ADULT and record.alert.other_id == KID


async def test_fuzzed_signed_events_never_fail_the_app(
    slack: SlackHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """FUZZ_CASES broken but correctly signed event bodies: never a 5xx, never a listener traceback."""
    await slack.configure()
    templates: list[Any] = [
        slack.event_body(slack.message_event(user=ADULT, text=f"<@{KID}> how old are you")),
        slack.event_body(
            {
                "type": "message",
                "subtype": "message_changed",
                "channel": GENERAL,
                "message": slack.message_event(user=ADULT, text="edited"),
                "previous_message": slack.message_event(user=ADULT, text="before"),
            }
        ),
        slack.event_body(
            {"type": "message", "subtype": "message_deleted", "channel": GENERAL, "deleted_ts": "1.2"}
        ),
        slack.event_body({"type": "app_uninstalled"}),
    ]
    statuses: Counter[int] = Counter()
    for number, case in cases(templates, seed=14):
        status, _ = await slack.post(json.dumps(case), content_type="application/json")
        statuses[status] += 1
        assert status < 500, (number, status)
    assert statuses[200] > FUZZ_CASES // 5, statuses
    tracebacks = [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info]
    assert not tracebacks, [r.getMessage() for r in tracebacks[:3]]
    await slack.say(user=KID, text="marker")
