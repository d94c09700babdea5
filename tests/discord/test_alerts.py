"""Alerts on Discord: one post per case, edited as risk grows; failures become results; restarts keep
buttons working."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.discord.conftest import Vigil, running_vigil
from tests.discord.fake_discord import FakeDiscord
from vigil.bots.core.monitor import SkipReason
from vigil.bots.core.policy import Decision


def _embed(call_json: Any) -> dict[str, Any]:
    embeds = call_json["embeds"]
    assert len(embeds) == 1
    return dict(embeds[0])


def _field(embed: dict[str, Any], name: str) -> str:
    values = [f["value"] for f in embed["fields"] if f["name"] == name]
    assert values, f"no field {name!r} in {[f['name'] for f in embed['fields']]}"
    return str(values[0])


async def test_a_grooming_conversation_gives_one_alert_that_is_edited_as_risk_grows(vigil: Vigil) -> None:
    fake = vigil.fake
    await vigil.setup_server()
    sent = await vigil.groom()
    decisions = [e.decision for m in sent for e in vigil.handler.results[m["id"]].alerts]
    assert decisions.count(Decision.RAISE) == 1 and Decision.UPDATE in decisions

    posts = fake.calls_to("POST", rf"/channels/{fake.alerts}/messages")
    assert len(posts) == 1, "one case is one message"
    message_id = fake.bot_messages(fake.alerts)[0]["id"]
    edits = fake.calls_to("PATCH", rf"/channels/{fake.alerts}/messages/{message_id}")
    assert len(edits) == decisions.count(Decision.UPDATE)
    assert fake.calls_to("POST", rf"/channels/{fake.general}/messages") == []

    post = posts[0].json
    # The moderator role is pinged on the first post, and only that role.
    assert post["content"].startswith(f"<@&{fake.mod_role}>")
    assert post["allowed_mentions"] == {"roles": [int(fake.mod_role)], "parse": []}
    embed = _embed(edits[-1].json)
    assert embed["title"] == "Vigil · case #1"
    for name in ("adult", "kid", "Adult", "Kid"):
        assert name not in embed["title"], "titles never name anyone"
    assert fake.adult.id in _field(embed, "Likely groomer") and fake.kid.id in _field(embed, "Other party")
    assert f"<#{fake.general}>" in _field(embed, "Where")
    assert "asks to keep the conversation secret" in _field(embed, "Signals")
    evidence = [f for f in embed["fields"] if f["name"].startswith("risk ")]
    assert evidence and all(f["value"].startswith("||") for f in evidence), "excerpts are spoilered"
    jump = f"https://discord.com/channels/{fake.guild_id}/{fake.general}/"
    assert all(jump in f["value"] for f in evidence)
    assert "Risk 0.9" in embed["description"] and "rising" in embed["description"]
    assert "open" in _field(embed, "State")
    # Six buttons, whose custom ids carry the case number.
    ids = [c["custom_id"] for row in edits[-1].json["components"] for c in row["components"]]
    assert ids == [
        f"vigil:{a}:1" for a in ("claim", "dismiss", "confirm", "escalate", "snooze", "transcript")
    ]
    alert = (await vigil.store.alerts_for_space(platform="discord", space_id=fake.guild_id, limit=5))[0]
    assert alert.delivery_ref == f"{fake.alerts}/{message_id}"
    assert await vigil.store.pending_delivery_count() == 0


async def test_the_suspects_earlier_cases_are_listed_on_a_new_alert(vigil: Vigil) -> None:
    fake = vigil.fake
    await vigil.setup_server()
    await vigil.groom()
    await vigil.groom(kid=fake.member)
    posts = fake.calls_to("POST", rf"/channels/{fake.alerts}/messages")
    assert len(posts) == 2
    latest = fake.calls_to("PATCH", rf"/channels/{fake.alerts}/messages/\d+")[-1]
    assert "#1 · open" in _field(_embed(latest.json), "This member's earlier cases")


async def test_rate_limit_and_server_errors_are_retried_until_delivered(vigil: Vigil) -> None:
    fake = vigil.fake
    await vigil.setup_server()
    route = rf"/channels/{fake.alerts}/messages"
    fake.rate_limit_next("POST", route, retry_after=45.0)
    fake.fail_next("POST", route, status=503, body={"message": "Service Unavailable", "code": 0})
    # discord.py itself retries a 500 once after a second; the sink never sees that one.
    fake.fail_next("POST", route, status=500, body={"message": "Internal Server Error", "code": 0})
    sent = await vigil.groom(drain=False)
    assert any(e.decision is Decision.RAISE for m in sent for e in vigil.handler.results[m["id"]].alerts)

    assert await vigil.drain() == 0  # 429 → retry_after 45 s
    assert len(fake.calls_to("POST", route)) == 1
    vigil.clock.advance(timedelta(seconds=44))
    assert await vigil.drain() == 0
    assert len(fake.calls_to("POST", route)) == 1, "Retry-After is honoured"
    vigil.clock.advance(timedelta(seconds=2))
    assert await vigil.drain() == 0  # 503 → transient, backoff
    assert len(fake.calls_to("POST", route)) == 2
    vigil.clock.advance(timedelta(seconds=11))
    assert await vigil.drain() >= 1  # 500, retried by discord.py, then posted; then the pending update
    assert len(fake.calls_to("POST", route)) == 4
    assert len(fake.bot_messages(fake.alerts)) == 1, "delivered once"
    assert await vigil.store.pending_delivery_count() == 0


async def test_missing_alert_channel_and_missing_permission_are_permanent_failures(vigil: Vigil) -> None:
    fake = vigil.fake
    sink = vigil.adapter.sink
    await vigil.groom(drain=False)
    alert = (await vigil.store.alerts_for_space(platform="discord", space_id=fake.guild_id, limit=5))[0]

    result = await sink.post(await vigil.outbox.delivery(alert))
    assert not result.ok and result.permanent and "/vigil setup" in (result.error or "")

    await vigil.setup_server()
    delivery = await vigil.outbox.delivery(alert)  # now with the alert channel and role that setup chose
    fake.fail_next(
        "POST",
        rf"/channels/{fake.alerts}/messages",
        status=403,
        body={"message": "Missing Permissions", "code": 50013},
    )
    result = await sink.post(delivery)
    assert not result.ok and result.permanent
    assert "Send Messages" in (result.error or "") and "403" in (result.error or "")
    status = await fake.slash(user=fake.mod, subcommand="status")
    reply = (await fake.wait_for_reply(status))[-1].json["content"]
    assert "Last delivery problem" in reply and "403" in reply

    result = await sink.post(delivery)
    assert result.ok and result.ref is not None and result.ref.startswith(f"{fake.alerts}/")
    status = await fake.slash(user=fake.mod, subcommand="status")
    assert "Last delivery problem" not in (await fake.wait_for_reply(status))[-1].json["content"]


async def test_a_deleted_alert_message_is_posted_again_on_the_next_update(vigil: Vigil) -> None:
    fake = vigil.fake
    await vigil.setup_server()
    sent = await vigil.groom(drain=False)
    await vigil.drain()
    first = fake.bot_messages(fake.alerts)[0]["id"]
    fake.messages.pop(first)  # a moderator deleted the alert message
    await vigil.say(fake.adult, "groom groom groom", reply_to=sent[0])
    await vigil.drain()
    messages = fake.bot_messages(fake.alerts)
    assert len(messages) == 1 and messages[0]["id"] != first
    alert = (await vigil.store.alerts_for_space(platform="discord", space_id=fake.guild_id, limit=5))[0]
    assert alert.delivery_ref == f"{fake.alerts}/{messages[0]['id']}"


async def test_after_a_restart_the_buttons_of_an_old_alert_still_work(
    fake: FakeDiscord, tmp_path: Path, keyword_model_dir: Path
) -> None:
    database = tmp_path / "restart.sqlite3"
    async with running_vigil(fake, database=database, model_dir=keyword_model_dir) as first:
        await first.setup_server()
        sent = await first.groom()
        clock = first.clock
    old_message = fake.bot_messages(fake.alerts)[0]["id"]

    async with running_vigil(fake, database=database, model_dir=keyword_model_dir, clock=clock) as second:
        assert len(fake.identifies) == 2
        click = await fake.click(user=fake.mod, message_id=old_message, custom_id="vigil:claim:1")
        reply = (await fake.wait_for_reply(click))[-1]
        assert reply.json["content"] == "Case #1 claimed."
        assert await second.drain() == 1
        edit = fake.calls_to("PATCH", rf"/channels/{fake.alerts}/messages/{old_message}")[-1]
        assert f"claimed by <@{fake.mod.id}>" in _field(_embed(edit.json), "State")
        # Messages seen before the restart are not counted twice if Discord sends them again.
        await fake.send_message(sent[-1])
        assert (await second.handler.wait_for(sent[-1]["id"])).skipped is SkipReason.DUPLICATE
        assert len(fake.calls_to("POST", rf"/channels/{fake.alerts}/messages")) == 1
