"""Slack payloads → ChatMessage, Block Kit escaping, command argument parsing, failure classification."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import aiohttp
from slack_sdk.errors import SlackApiError

from vigil.bots.core.cases import CaseSource, CaseState, CaseView
from vigil.bots.core.models import Alert, AlertStatus, PairKey, WindowMessage
from vigil.bots.slack.blocks import ACTION_CLAIM, ACTION_TRANSCRIPT, alert_blocks, alert_text, mrkdwn_escape
from vigil.bots.slack.commands import parse_channel, parse_user, parse_usergroup
from vigil.bots.slack.translate import (
    edited_message_id,
    message_ref,
    plain_text,
    to_chat_message,
    to_deleted_message,
    to_edited_message,
)
from vigil.bots.slack.web import classify_failure

TS = "1767225600.000100"


def event(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "type": "message",
        "channel": "C123ABC",
        "user": "UAAA111",
        "text": "hello there",
        "ts": TS,
        "channel_type": "channel",
    }
    base.update(fields)
    return base


def test_a_channel_message_becomes_a_chat_message() -> None:
    message = to_chat_message(
        event(text="hi <@UBBB222> and <@UCCC333|carol>, see <#C999|random>"), team_id="T1"
    )
    assert message is not None
    assert message.platform == "slack" and message.space_id == "T1" and message.channel_id == "C123ABC"
    assert message.message_id == f"C123ABC/{TS}"
    assert message.author_id == "UAAA111"
    assert message.mentioned_user_ids == ("UBBB222", "UCCC333")
    assert message.text == "hi @UBBB222 and @UCCC333, see #random"
    assert message.timestamp == datetime.fromtimestamp(float(TS), UTC)
    assert not message.is_dm and message.thread_id is None and message.reply_to_author_id is None


def test_a_thread_reply_replies_to_the_parent() -> None:
    message = to_chat_message(event(thread_ts="1767225500.000200", parent_user_id="UPARENT1"), team_id="T1")
    assert message is not None
    assert message.thread_id == "1767225500.000200"
    assert message.reply_to_message_id == "C123ABC/1767225500.000200"
    assert message.reply_to_author_id == "UPARENT1"
    # The parent itself (thread_ts == ts) is a top-level message.
    parent = to_chat_message(event(thread_ts=TS), team_id="T1")
    assert parent is not None and parent.thread_id is None and parent.reply_to_message_id is None


def test_direct_messages_are_dms_without_known_recipients() -> None:
    dm = to_chat_message(event(channel="D0DM0001", channel_type="im"), team_id="T1")
    assert dm is not None and dm.is_dm and dm.recipient_ids == ()
    group_dm = to_chat_message(event(channel="G0MP0001", channel_type="mpim"), team_id="T1")
    assert group_dm is not None and not group_dm.is_dm


def test_bots_and_subtypes_without_a_persons_text_are_skipped() -> None:
    assert to_chat_message(event(bot_id="B1"), team_id="T1") is None
    assert to_chat_message(event(subtype="bot_message", bot_id="B1", user=None), team_id="T1") is None
    assert to_chat_message(event(subtype="channel_join", text="<@U1> has joined"), team_id="T1") is None
    assert to_chat_message(event(subtype="channel_topic"), team_id="T1") is None
    assert to_chat_message(event(text=""), team_id="T1") is None
    assert to_chat_message(event(user=None), team_id="T1") is None
    assert to_chat_message(event(), team_id="") is None
    assert to_chat_message(event(ts="not-a-ts"), team_id="T1") is None
    # A person's own words in these subtypes are read.
    assert to_chat_message(event(subtype="thread_broadcast", thread_ts="1.0"), team_id="T1") is not None
    assert to_chat_message(event(subtype="file_share", text="look at this"), team_id="T1") is not None


def test_an_edit_is_a_new_version_with_its_own_id() -> None:
    changed = {
        "type": "message",
        "subtype": "message_changed",
        "channel": "C123ABC",
        "channel_type": "channel",
        "message": {
            "user": "UAAA111",
            "text": "keep it secret",
            "ts": TS,
            "edited": {"user": "UAAA111", "ts": "1767225700.000000"},
        },
        "previous_message": {"user": "UAAA111", "text": "hello", "ts": TS},
    }
    message = to_edited_message(changed, team_id="T1")
    assert message is not None
    assert message.message_id == edited_message_id("C123ABC", TS, "1767225700.000000")
    assert message.message_id == f"C123ABC/{TS}:edit:1767225700.000000"
    assert message.text == "keep it secret"
    assert message.timestamp == datetime.fromtimestamp(1767225700, UTC)
    assert message_ref(message.message_id) == ("C123ABC", TS)
    # A thread reply or an unfurl also sends message_changed: no edit mark or the same text → nothing new.
    unmarked = {
        **changed,
        "message": {"user": "UAAA111", "text": "keep it secret", "ts": TS, "reply_count": 1},
    }
    assert to_edited_message(unmarked, team_id="T1") is None
    same_text = {**changed, "previous_message": {"user": "UAAA111", "text": "keep it secret", "ts": TS}}
    assert to_edited_message(same_text, team_id="T1") is None
    by_bot = {**changed, "message": {**changed["message"], "bot_id": "B1"}}  # type: ignore[dict-item]
    assert to_edited_message(by_bot, team_id="T1") is None


def test_a_deletion_names_the_message_and_its_author() -> None:
    deleted = to_deleted_message(
        {
            "type": "message",
            "subtype": "message_deleted",
            "channel": "C123ABC",
            "deleted_ts": TS,
            "previous_message": {"user": "UAAA111", "text": "x", "ts": TS},
        },
        team_id="T1",
    )
    assert deleted is not None
    assert deleted.message_id == f"C123ABC/{TS}" and deleted.author_id == "UAAA111"
    assert to_deleted_message({"type": "message", "subtype": "message_deleted"}, team_id="T1") is None


def test_plain_text_reads_slack_markup() -> None:
    assert plain_text("&lt;3 &amp; <https://x.test|a link> <!here> <!subteam^S1|@mods>") == (
        "<3 & a link (https://x.test) @here @mods"
    )


def test_command_arguments() -> None:
    assert parse_channel("<#C0ALERTS|mod-alerts>") == "C0ALERTS"
    assert parse_channel("C0ALERTS") == "C0ALERTS"
    assert parse_channel("#mod-alerts") is None
    assert parse_user("<@U0ABCDEF|sam>") == "U0ABCDEF"
    assert parse_usergroup("<!subteam^S0MODS01|@mods>") == "S0MODS01"
    assert parse_usergroup("@mods") is None


def _view(text: str, state: CaseState = CaseState.OPEN) -> CaseView:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    message = WindowMessage(
        message_id=f"C1AAAAA/{TS}",
        channel_id="C1AAAAA",
        thread_id=None,
        author_id="UADULT1",
        text=text,
        timestamp=now,
        risk=0.9,
    )
    alert = Alert(
        alert_id=1,
        key=PairKey.of(platform="slack", space_id="T1", first="UADULT1", second="UKID001"),
        case_number=7,
        status=AlertStatus.OPEN,
        risk=0.91,
        peak_risk=0.95,
        suspect_id="UADULT1",
        other_id="UKID001",
        channel_ids=("C1AAAAA", "D1DMDMD"),
        signals=("secrecy",),
        evidence=(message,),
        created_at=now,
        updated_at=now,
        revision=1,
        shadow=False,
        model_name="m <1>",
    )
    return CaseView(
        alert=alert,
        state=state,
        source=CaseSource.ALERT,
        claimed_by=None,
        dismiss_reason=None,
        hold_until=None,
        audit=(),
        earlier_cases=(),
    )


def test_alert_blocks_escape_member_text_and_notifications_carry_no_names() -> None:
    view = _view("<!channel> look <https://evil.test|here> & <@UOTHER1>")
    blocks = alert_blocks(view, signal_labels={"secrecy": "secrecy"}, permalinks={}, trend="steady")
    rendered = str(blocks)
    assert "<!channel>" not in rendered and "<https://evil.test" not in rendered
    assert mrkdwn_escape("<!channel>") in rendered
    assert "<@UADULT1>" in rendered and "a direct message" in rendered
    text = alert_text(view)
    assert "UADULT1" not in text and "look" not in text and "#7" in text
    actions = blocks[-1]["elements"]
    assert actions[0]["action_id"] == ACTION_CLAIM
    dismissed = alert_blocks(_view("x", CaseState.DISMISSED), signal_labels={}, permalinks={}, trend="steady")
    assert [e["action_id"] for e in dismissed[-1]["elements"]] == [ACTION_TRANSCRIPT]


def _api_error(status: int, body: dict[str, object], headers: dict[str, str] | None = None) -> SlackApiError:
    response = SimpleNamespace(status_code=status, data=body, headers=headers or {})
    return SlackApiError("failed", response)  # type: ignore[no-untyped-call]


def test_failures_are_classified_for_retrying() -> None:
    limited = classify_failure(_api_error(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "7"}))
    assert limited.retry_after == 7.0 and not limited.permanent
    assert not classify_failure(_api_error(503, {})).permanent
    for code in ("not_in_channel", "channel_not_found", "invalid_auth", "token_revoked"):
        failure = classify_failure(_api_error(200, {"ok": False, "error": code}))
        assert failure.permanent, code
        assert failure.description and failure.code == code
    assert classify_failure(_api_error(200, {"ok": False, "error": "token_revoked"})).is_token_problem
    assert not classify_failure(aiohttp.ClientConnectionError()).permanent
    assert not classify_failure(_api_error(200, {"ok": False, "error": "fatal_error"})).permanent
