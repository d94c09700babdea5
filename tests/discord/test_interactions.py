"""Moderators and members on Discord: /vigil commands, the alert buttons, the Dismiss form, member reports."""

from __future__ import annotations

from typing import Any

import discord

from tests.discord.conftest import Vigil
from tests.discord.fake_discord import FakeDiscord, Json, RestCall, User
from vigil.bots.core.cases import CaseSource, CaseState
from vigil.bots.discord.commands import REPORT_COMMAND_NAME


def _content(calls: list[RestCall]) -> str:
    return "\n".join(
        str(c.json.get("content") or (c.json.get("data") or {}).get("content") or "") for c in calls
    )


def _ephemeral(calls: list[RestCall]) -> bool:
    return all((c.json.get("flags") or (c.json.get("data") or {}).get("flags") or 0) & 64 for c in calls)


async def _slash(fake: FakeDiscord, user: User, subcommand: str, **kwargs: Any) -> str:
    interaction = await fake.slash(user=user, subcommand=subcommand, **kwargs)
    calls = await fake.wait_for_reply(interaction)
    assert _ephemeral(calls)
    return _content(calls)


def _setup_options(fake: FakeDiscord, channel: str) -> dict[str, Any]:
    return {
        "options": [
            {"name": "alert_channel", "type": 7, "value": channel},
            {"name": "moderator_role", "type": 8, "value": fake.mod_role},
        ],
        "resolved": {
            **fake.resolved_channel(channel),
            **fake.resolved_role(fake.mod_role, "Moderators"),
        },
    }


async def _click(fake: FakeDiscord, user: User, case: int, action: str, *, count: int = 1) -> str:
    message = next(
        m
        for m in fake.bot_messages(fake.alerts)
        if m["components"] and f"vigil:claim:{case}" in str(m["components"])
    )
    interaction = await fake.click(user=user, message_id=message["id"], custom_id=f"vigil:{action}:{case}")
    calls = await fake.wait_for_reply(interaction, count=count)
    assert _ephemeral([c for c in calls if not c.path.endswith("/callback") or c.json["type"] != 9])
    return _content(calls)


def _state_field(fake: FakeDiscord) -> str:
    last = fake.calls_to("PATCH", rf"/channels/{fake.alerts}/messages/\d+")[-1].json
    return next(str(f["value"]) for f in last["embeds"][0]["fields"] if f["name"] == "State")


def _buttons(fake: FakeDiscord) -> dict[str, bool]:
    last = fake.calls_to("PATCH", rf"/channels/{fake.alerts}/messages/\d+")[-1].json
    return {
        c["custom_id"].split(":")[1]: not c["disabled"]
        for row in last["components"]
        for c in row["components"]
    }


async def test_setup_needs_manage_server_and_lists_missing_permissions(vigil: Vigil) -> None:
    fake = vigil.fake
    refused = await _slash(fake, fake.mod, "setup", **_setup_options(fake, fake.alerts))
    assert "Manage Server" in refused
    assert await vigil.store.get_space_settings(platform="discord", space_id=fake.guild_id) is None

    locked = await _slash(fake, fake.owner, "setup", **_setup_options(fake, fake.locked))
    assert "Missing permissions" in locked
    assert "Send Messages, Embed Links" in locked and "View Channel" not in locked.split("Missing")[1]
    status = await _slash(fake, fake.mod, "status")
    assert "missing permissions" in status and "Send Messages" in status

    public = await _slash(fake, fake.owner, "setup", **_setup_options(fake, fake.public))
    assert "everyone in the server can see that channel" in public

    good = await _slash(fake, fake.owner, "setup", **_setup_options(fake, fake.alerts))
    assert "every permission I need" in good and "everyone in the server" not in good
    assert "cannot see direct messages between members" in good
    settings = await vigil.store.get_space_settings(platform="discord", space_id=fake.guild_id)
    assert settings is not None
    assert (settings.alert_channel_id, settings.moderator_role_id) == (fake.alerts, fake.mod_role)
    assert settings.child_safety_role_id is None


async def test_status_threshold_pair_case_and_cases_commands(vigil: Vigil) -> None:
    fake = vigil.fake
    await vigil.setup_server()
    await vigil.groom()

    assert "for moderators" in await _slash(fake, fake.member, "status")
    status = await _slash(fake, fake.mod, "status")
    assert "connected" in status and "keyword-test-model" in status
    assert "Threshold: 0.70 (default)" in status and "Alerts today (UTC): 1" in status
    assert "Pending deliveries (all servers): 0" in status

    assert "Manage Server" in await _slash(
        fake, fake.mod, "threshold", options=[{"name": "value", "type": 10, "value": 0.9}]
    )
    changed = await _slash(
        fake, fake.owner, "threshold", options=[{"name": "value", "type": 10, "value": 0.9}]
    )
    assert "0.90" in changed
    settings = await vigil.store.get_space_settings(platform="discord", space_id=fake.guild_id)
    assert settings is not None and settings.threshold == 0.9
    assert "Threshold: 0.90" in await _slash(fake, fake.mod, "status")
    assert "reset" in await _slash(fake, fake.owner, "threshold")
    settings = await vigil.store.get_space_settings(platform="discord", space_id=fake.guild_id)
    assert settings is not None and settings.threshold is None

    pair_options = {
        "options": [
            {"name": "first", "type": 6, "value": fake.adult.id},
            {"name": "second", "type": 6, "value": fake.kid.id},
        ],
        "resolved": fake.resolved_users(fake.adult, fake.kid),
    }
    assert "for moderators" in await _slash(fake, fake.member, "pair", **pair_options)
    pair = await _slash(fake, fake.mod, "pair", **pair_options)
    assert "Open case: #1" in pair and f"likely groomer <@{fake.adult.id}>" in pair
    assert "Risk history" in pair
    # In words, most frequent first: "age" came in three of the adult's messages, "secret" in two.
    assert "Signals so far: asks about age; asks to keep the conversation secret" in pair
    # The trajectory as a picture beside the words (Discord shows bitmaps, not SVG).
    assert "Chart: the pair's risk over its last" in pair
    [chart] = [c.files for c in fake.calls if "vigil-pair-risk.png" in c.files]
    png = chart["vigil-pair-risk.png"]
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000

    refused = await _slash(fake, fake.member, "case", options=[{"name": "number", "type": 4, "value": 1}])
    assert "Only moderators" in refused
    case = await fake.slash(
        user=fake.mod, subcommand="case", options=[{"name": "number", "type": 4, "value": 1}]
    )
    reply = (await fake.wait_for_reply(case))[-1].json
    assert reply["embeds"][0]["title"] == "Vigil · case #1" and reply["flags"] & 64
    assert "No such case" in await _slash(
        fake, fake.mod, "case", options=[{"name": "number", "type": 4, "value": 9}]
    )

    listed = await _slash(fake, fake.mod, "cases")
    assert "#1 · open" in listed
    by_user = await _slash(
        fake,
        fake.mod,
        "cases",
        options=[{"name": "user", "type": 6, "value": fake.member.id}],
        resolved=fake.resolved_users(fake.member),
    )
    assert "No cases" in by_user


async def test_every_button_acts_on_the_case_and_the_alert_follows(vigil: Vigil) -> None:
    fake = vigil.fake
    await vigil.setup_server()
    await vigil.groom()

    assert "Only moderators" in await _click(fake, fake.member, 1, "claim")
    assert await vigil.drain() == 0, "a refused click changes nothing"

    assert await _click(fake, fake.mod, 1, "claim") == "Case #1 claimed."
    assert await vigil.drain() == 1
    assert f"claimed by <@{fake.mod.id}>" in _state_field(fake)
    assert _buttons(fake)["claim"] is False and _buttons(fake)["confirm"] is True

    assert "already claimed" in await _click(fake, fake.safety, 1, "claim")

    assert await _click(fake, fake.mod, 1, "confirm") == "Case #1 confirmed."
    await vigil.drain()
    assert "concern confirmed" in _state_field(fake)

    snoozed = await _click(fake, fake.mod, 1, "snooze")
    assert "snoozed until" in snoozed
    pair = (await vigil.store.alerts_for_space(platform="discord", space_id=fake.guild_id, limit=1))[0].key
    state = await vigil.store.load_pair(pair)
    assert state is not None and state.snoozed_until is not None

    escalated = await _click(fake, fake.mod, 1, "escalate")
    assert "escalated" in escalated
    for where in ("https://dis.gd/request", "https://report.cybertip.org/", "ceop.police.uk"):
        assert where in escalated
    assert f"https://discord.com/channels/{fake.guild_id}/{fake.general}/" in escalated, (
        "message links to report"
    )
    await vigil.drain()
    assert "escalated" in _state_field(fake) and "Evidence held until" in _state_field(fake)
    assert _buttons(fake) == {
        "claim": False,
        "dismiss": False,
        "confirm": False,
        "escalate": False,
        "snooze": True,
        "transcript": True,
    }
    record = await vigil.store.get_case(platform="discord", space_id=fake.guild_id, case_number=1)
    assert record is not None and record.state is CaseState.ESCALATED and record.hold_until is not None
    assert await vigil.store.load_evidence(record.alert.alert_id), "evidence is preserved"


async def test_transcript_is_for_the_child_safety_role_only(vigil: Vigil) -> None:
    fake = vigil.fake
    await vigil.setup_server()
    await vigil.groom()
    refused = await _click(fake, fake.mod, 1, "transcript")
    assert "child-safety" in refused and "groom" not in refused
    transcript = await _click(fake, fake.safety, 1, "transcript")
    assert "Transcript of case #1: 6 message(s), attached" in transcript and "secret" not in transcript
    [reply] = [c for c in fake.calls if c.files]
    [(name, data)] = reply.files.items()
    assert name == "vigil-case-1-transcript.txt"
    text = data.decode("utf-8")
    assert (
        text.count("    secret groom\n") >= 1
        and text.count(f"/channels/{fake.guild_id}/{fake.general}/") == 6
    )
    assert text.count(f"user {fake.adult.id} [score") == 6
    audit = await vigil.store.audit_events(platform="discord", space_id=fake.guild_id, case_number=1)
    assert [e.action for e in audit] == ["transcript_viewed"] and audit[0].actor_id == fake.safety.id


async def test_dismiss_opens_a_form_and_records_the_reason(vigil: Vigil) -> None:
    fake = vigil.fake
    await vigil.setup_server()
    await vigil.groom()
    message = fake.bot_messages(fake.alerts)[0]
    click = await fake.click(user=fake.mod, message_id=message["id"], custom_id="vigil:dismiss:1")
    modal = (await fake.wait_for_reply(click))[0].json
    assert modal["type"] == 9 and modal["data"]["title"] == "Dismiss case #1"
    form_id = modal["data"]["custom_id"]
    assert form_id.startswith("vigil:dismiss-reason:1:")
    assert await vigil.drain() == 0, "opening the form changes nothing"

    submitted = await fake.submit_modal(
        user=fake.mod, custom_id=form_id, values={"reason": "  they are siblings  "}
    )
    reply = _content(await fake.wait_for_reply(submitted))
    assert "Case #1 dismissed" in reply
    await vigil.drain()
    assert "dismissed" in _state_field(fake) and "Reason: they are siblings" in _state_field(fake)
    assert _buttons(fake) == {
        "claim": False,
        "dismiss": False,
        "confirm": False,
        "escalate": False,
        "snooze": False,
        "transcript": True,
    }
    record = await vigil.store.get_case(platform="discord", space_id=fake.guild_id, case_number=1)
    assert record is not None and record.dismiss_reason == "they are siblings"

    # Two moderators opening the form at once each get their own form.
    again = await fake.click(user=fake.safety, message_id=message["id"], custom_id="vigil:dismiss:1")
    other = await fake.click(user=fake.mod, message_id=message["id"], custom_id="vigil:dismiss:1")
    ids = {(await fake.wait_for_reply(i))[0].json["data"]["custom_id"] for i in (again, other)}
    assert len(ids) == 2
    late = await fake.submit_modal(user=fake.safety, custom_id=ids.pop(), values={"reason": ""})
    assert "cannot be dismissed" in _content(await fake.wait_for_reply(late))


async def test_a_member_without_the_role_is_refused_before_the_dismiss_form(vigil: Vigil) -> None:
    fake = vigil.fake
    await vigil.setup_server()
    await vigil.groom()
    message = fake.bot_messages(fake.alerts)[0]

    click = await fake.click(user=fake.member, message_id=message["id"], custom_id="vigil:dismiss:1")

    (reply,) = await fake.wait_for_reply(click)
    assert reply.json["type"] != 9, "no form to fill in only to be refused"
    assert "Only moderators" in _content([reply]) and _ephemeral([reply])


async def test_pair_says_why_there_is_no_alert_yet(vigil: Vigil) -> None:
    fake = vigil.fake
    await vigil.setup_server()
    first = await vigil.say(fake.member, "hello there")
    await vigil.say(fake.kid, "hello", reply_to=first)

    shown = await _slash(
        fake,
        fake.mod,
        "pair",
        options=[
            {"name": "first", "type": 6, "value": fake.member.id},
            {"name": "second", "type": 6, "value": fake.kid.id},
        ],
        resolved=fake.resolved_users(fake.member, fake.kid),
    )

    assert "No open case." in shown and "Signals so far: none" in shown
    assert "below the alert threshold (0.70)" in shown and "for 2 messages in a row" in shown


async def test_help_lists_the_commands_for_everyone(vigil: Vigil) -> None:
    shown = await _slash(vigil.fake, vigil.fake.member, "help")
    assert "/vigil setup" in shown and "/vigil test" in shown and REPORT_COMMAND_NAME in shown


async def test_a_test_alert_checks_the_alert_channel(vigil: Vigil) -> None:
    fake = vigil.fake
    before_setup = await _slash(fake, fake.owner, "test")
    assert "could not be posted" in before_setup and "/vigil setup" in before_setup
    await vigil.setup_server()
    assert "for moderators" in await _slash(fake, fake.member, "test")

    reply = await _slash(fake, fake.mod, "test")

    assert f"Test alert posted in <#{fake.alerts}>" in reply
    (posted,) = fake.bot_messages(fake.alerts)
    assert posted["content"] == f"<@&{fake.mod_role}> Vigil test alert"
    assert posted["embeds"][0]["title"] == "Vigil · test alert" and not posted.get("components")
    assert await vigil.store.count_pairs() == 0 and await vigil.drain() == 0, "no case, nothing queued"


async def test_vigil_is_offered_only_to_members_who_can_manage_messages(vigil: Vigil) -> None:
    await vigil.setup_server()
    (registered,) = vigil.fake.calls_to("PUT", r"/applications/\d+/commands")
    group = next(c for c in registered.json if c["name"] == "vigil")
    assert int(group["default_member_permissions"]) == discord.Permissions(manage_messages=True).value
    assert group["dm_permission"] is False
    # The alert-channel picker offers text and announcement channels only (not voice, forum, stage, category).
    setup = next(option for option in group["options"] if option["name"] == "setup")
    channel = next(option for option in setup["options"] if option["name"] == "alert_channel")
    assert sorted(channel["channel_types"]) == sorted(
        [discord.ChannelType.text.value, discord.ChannelType.news.value]
    )


async def test_a_member_reports_a_conversation_from_the_message_menu(vigil: Vigil) -> None:
    fake = vigil.fake
    await vigil.setup_server()
    first = await vigil.say(fake.adult, "hello there")
    await vigil.say(fake.kid, "hello", reply_to=first)
    await fake.send_message(fake.message_payload(author=fake.other_bot, content="beep"))  # not in reports
    worrying = await vigil.say(fake.adult, "see you tonight ok", reply_to=first)

    assert await vigil.store.alerts_for_space(platform="discord", space_id=fake.guild_id, limit=5) == []
    own = await fake.context_menu(user=fake.adult, name=REPORT_COMMAND_NAME, message_id=worrying["id"])
    assert "not your own" in _content(await fake.wait_for_reply(own))

    report = await fake.context_menu(user=fake.kid, name=REPORT_COMMAND_NAME, message_id=worrying["id"])
    calls = await fake.wait_for_reply(report)
    assert _ephemeral(calls)
    text = _content(calls)
    assert "moderators have been told" in text and "#" not in text, "the reporter never sees case numbers"
    history = fake.calls_to("GET", rf"/channels/{fake.general}/messages")
    assert history and history[-1].query["before"] == worrying["id"] and history[-1].query["limit"] == "5"

    [alert] = await vigil.store.alerts_for_space(platform="discord", space_id=fake.guild_id, limit=5)
    assert alert.suspect_id == fake.adult.id and alert.other_id == fake.kid.id
    record = await vigil.store.case_for_alert(alert.alert_id)
    assert record is not None and record.source is CaseSource.MEMBER_REPORT
    preserved = await vigil.store.load_evidence(alert.alert_id)
    assert [m.message_id for m in preserved][-1] == worrying["id"]
    assert all(m.author_id in (fake.adult.id, fake.kid.id) for m in preserved)
    assert await vigil.drain() == 1
    posted = fake.calls_to("POST", rf"/channels/{fake.alerts}/messages")[-1].json
    assert "reported by a member" in posted["embeds"][0]["title"]


async def test_a_bot_message_cannot_be_reported(vigil: Vigil) -> None:
    fake = vigil.fake
    await vigil.setup_server()
    beep: Json = fake.message_payload(author=fake.other_bot, content="beep")
    await fake.send_message(beep)
    report = await fake.context_menu(user=fake.kid, name=REPORT_COMMAND_NAME, message_id=beep["id"])
    assert "from a bot" in _content(await fake.wait_for_reply(report))
