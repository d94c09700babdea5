"""Discord messages into Vigil: what is read, what is skipped, edits, deletions, reconnects, shutdown."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.discord.conftest import Vigil, running_vigil
from tests.discord.fake_discord import FakeDiscord, Json
from vigil.bots.core.models import PairKey
from vigil.bots.core.monitor import SkipReason
from vigil.bots.discord import DiscordOptions
from vigil.bots.discord.translate import DM_SPACE
from vigil.storage.sqlite import SqliteStore


class ForgetfulStore(SqliteStore):
    """The real SqliteStore, remembering which deletions the adapter passed on."""

    forgotten: list[str]

    async def forget_message(self, *, platform: str, space_id: str, message_id: str, now: datetime) -> int:
        self.forgotten = [*getattr(self, "forgotten", []), message_id]
        return await super().forget_message(
            platform=platform, space_id=space_id, message_id=message_id, now=now
        )


def _key(fake: FakeDiscord) -> PairKey:
    return PairKey.of(platform="discord", space_id=fake.guild_id, first=fake.adult.id, second=fake.kid.id)


async def _sentinel(vigil: Vigil) -> Json:
    """A plain message handled after everything dispatched before it has been looked at."""
    return await vigil.say(vigil.fake.member, "nice game tonight")


async def test_messages_are_translated_with_their_place_and_people(vigil: Vigil) -> None:
    fake = vigil.fake
    hello = await vigil.say(fake.kid, "hello there")
    reply = await vigil.say(
        fake.adult, "hello", reply_to=hello, mentions=[fake.kid, fake.other_bot, fake.member]
    )
    in_thread = await vigil.say(fake.adult, "see you later", channel_id=fake.thread)
    seen = {m.message_id: m for m in vigil.handler.seen}

    message = seen[reply["id"]]
    assert (message.platform, message.space_id, message.channel_id) == (
        "discord",
        fake.guild_id,
        fake.general,
    )
    assert message.author_id == fake.adult.id and message.text == "hello" and not message.is_dm
    assert message.reply_to_message_id == hello["id"] and message.reply_to_author_id == fake.kid.id
    assert message.mentioned_user_ids == (fake.kid.id, fake.member.id), "bots never join a pair"
    assert message.timestamp.tzinfo is not None and message.timestamp.utcoffset() is not None
    assert message.author_display_name == "Adult"
    threaded = seen[in_thread["id"]]
    assert (threaded.channel_id, threaded.thread_id) == (fake.general, fake.thread)
    assert vigil.handler.results[reply["id"]].pairs[0].key == _key(fake)


async def test_direct_messages_to_the_bot_are_read_as_dms(vigil: Vigil) -> None:
    fake = vigil.fake
    dm = await vigil.say(fake.kid, "hello there", dm=True)
    message = next(m for m in vigil.handler.seen if m.message_id == dm["id"])
    assert message.is_dm and message.space_id == DM_SPACE and message.channel_id == fake.dm_channel
    assert message.recipient_ids == (fake.bot.id,)
    # The only other person in a DM to the bot is the bot itself: no pair, nothing stored.
    assert vigil.handler.results[dm["id"]].skipped is SkipReason.NO_PAIR


async def test_bot_webhook_own_and_system_messages_are_ignored(vigil: Vigil) -> None:
    fake = vigil.fake
    for payload in (
        fake.message_payload(author=fake.other_bot, content="secret groom"),
        fake.message_payload(author=fake.bot, content="secret groom"),
        fake.message_payload(author=fake.adult, content="secret groom", webhook=True),
        fake.message_payload(author=fake.adult, content="joined", message_type=7),
        fake.message_payload(author=fake.adult, content="   "),
    ):
        await fake.send_message(payload)
    sentinel = await _sentinel(vigil)
    assert [m.message_id for m in vigil.handler.seen] == [sentinel["id"]]


async def test_ignored_channels_and_their_threads_are_skipped_until_unignored(vigil: Vigil) -> None:
    fake = vigil.fake

    async def command(name: str, channel: str) -> None:
        interaction = await fake.slash(
            user=fake.owner,
            subcommand=name,
            options=[{"name": "channel", "type": 7, "value": channel}],
            resolved=fake.resolved_channel(channel),
        )
        await fake.wait_for_reply(interaction)

    await command("ignore", fake.noisy)
    await command("ignore", fake.general)
    settings = await vigil.store.get_space_settings(platform="discord", space_id=fake.guild_id)
    assert settings is not None and settings.ignored_channel_ids == {fake.noisy, fake.general}
    in_noisy = await vigil.say(fake.adult, "secret", channel_id=fake.noisy)
    in_thread = await vigil.say(fake.adult, "secret", channel_id=fake.thread)
    # Handed over in order with everything else, and skipped by the monitor before anything is stored.
    for payload in (in_noisy, in_thread):
        assert vigil.handler.results[payload["id"]].skipped is SkipReason.IGNORED_CHANNEL
    assert (
        await vigil.store.seen_message_ids(
            platform="discord", space_id=fake.guild_id, message_ids=[in_noisy["id"], in_thread["id"]]
        )
        == frozenset()
    )

    await command("unignore", fake.general)
    threaded = await vigil.say(fake.adult, "hello there", channel_id=fake.thread)
    assert vigil.handler.results[threaded["id"]].skipped is not SkipReason.IGNORED_CHANNEL


async def test_an_edit_is_scored_as_a_new_message_once(vigil: Vigil) -> None:
    fake = vigil.fake
    hello = await vigil.say(fake.kid, "hello there")
    original = await vigil.say(fake.adult, "hello", reply_to=hello)
    edited = await fake.edit_message(original["id"], "our secret ok")
    stamp = round(datetime.fromisoformat(edited["edited_timestamp"]).timestamp() * 1000)
    edit_id = f"{original['id']}:edit:{stamp}"
    result = await vigil.handler.wait_for(edit_id)
    assert result.skipped is None and result.risk is not None and result.risk > 0.9
    message = next(m for m in vigil.handler.seen if m.message_id == edit_id)
    assert message.text == "our secret ok" and message.timestamp == datetime.fromisoformat(
        edited["edited_timestamp"]
    )
    window = await vigil.store.load_window(_key(fake))
    assert [m.text for m in window] == ["hello", "our secret ok"], "the original words stay"

    # Discord sends the same edit again: the cached message already has that text, so it is skipped (after a
    # restart, with no cache, the monitor drops it: the edit's id is the same).
    await fake.dispatch("MESSAGE_UPDATE", edited)
    unfurl = {**edited, "edited_timestamp": None, "embeds": [{"type": "link", "url": "https://example.com"}]}
    await fake.dispatch("MESSAGE_UPDATE", unfurl)  # not a text edit
    await _sentinel(vigil)
    assert [m.message_id for m in vigil.handler.seen if ":edit:" in m.message_id] == [edit_id]
    state = await vigil.store.load_pair(_key(fake))
    assert state is not None and state.message_count == 2


async def test_deleted_messages_leave_the_window_but_evidence_of_an_open_case_stays(
    fake: FakeDiscord, tmp_path: Path, keyword_model_dir: Path
) -> None:
    async with running_vigil(
        fake, database=tmp_path / "forget.sqlite3", model_dir=keyword_model_dir, store_class=ForgetfulStore
    ) as vigil:
        store = vigil.store
        assert isinstance(store, ForgetfulStore)
        hello = await vigil.say(fake.kid, "hello there")
        chat = await vigil.say(fake.adult, "hello", reply_to=hello)
        await fake.edit_message(chat["id"], "hello there")
        await vigil.say(fake.adult, "see you later", reply_to=hello)
        await fake.delete_message(chat["id"])
        await fake.wait_until(lambda: chat["id"] in getattr(store, "forgotten", []), what="the deletion")
        assert [m.text for m in await store.load_window(_key(fake))] == ["see you later"]

        await vigil.setup_server()
        sent = await vigil.groom(kid=fake.member, adult=fake.adult)
        evidence_id = sent[-1]["id"]
        await fake.delete_message(evidence_id)
        await fake.wait_until(lambda: evidence_id in store.forgotten, what="the second deletion")
        key = PairKey.of(
            platform="discord", space_id=fake.guild_id, first=fake.adult.id, second=fake.member.id
        )
        assert evidence_id in [m.message_id for m in await store.load_window(key)], (
            "an open case keeps its window"
        )
        [alert] = await store.alerts_for_space(platform="discord", space_id=fake.guild_id, limit=5)
        assert evidence_id in [m.message_id for m in alert.evidence]


async def test_a_failing_handler_is_logged_and_does_not_stop_ingest(
    vigil: Vigil, caplog: pytest.LogCaptureFixture
) -> None:
    fake = vigil.fake
    broken = fake.message_payload(author=fake.adult, content="our secret groom")
    vigil.handler.fail_ids.add(broken["id"])
    await fake.send_message(broken)
    sentinel = await _sentinel(vigil)
    assert sentinel["id"] in vigil.handler.results and broken["id"] not in vigil.handler.results
    adapter_logger = "vigil.bots.discord.adapter"
    [failure] = [r for r in caplog.records if r.name == adapter_logger and r.levelname == "ERROR"]
    assert broken["id"] in failure.getMessage() and "secret" not in failure.getMessage()


async def test_a_gateway_reconnect_resumes_without_losing_or_repeating_work(vigil: Vigil) -> None:
    fake = vigil.fake
    first = await vigil.say(fake.kid, "hello there")
    seen = await vigil.say(fake.adult, "hello", reply_to=first)
    fake.replay_overlap = 1  # Discord may send again the last event the client already had
    await fake.reconnect()
    missed = fake.message_payload(author=fake.adult, content="see you later", reply_to=first)
    await fake.send_message(missed)  # sent while the bot is away: buffered, replayed on RESUME
    assert (await vigil.handler.wait_for(missed["id"], within_s=10.0)).skipped is None
    assert len(fake.identifies) == 1 and len(fake.resumes) == 1
    assert fake.gateway_paths[-1].startswith("/resume-gateway"), "RESUME goes to READY's resume_gateway_url"
    assert fake.resumes[0]["session_id"] and fake.resumes[0]["token"] == fake.token
    await fake.wait_until(lambda: seen["id"] in [m.message_id for m in vigil.handler.seen[2:]], what="replay")
    assert vigil.handler.results[seen["id"]].skipped is SkipReason.DUPLICATE
    state = await vigil.store.load_pair(_key(fake))
    assert state is not None and state.message_count == 2
    after = await vigil.say(fake.kid, "ok", reply_to=missed)
    assert vigil.handler.results[after["id"]].skipped is None


async def test_shutdown_waits_for_work_in_flight(
    fake: FakeDiscord, tmp_path: Path, keyword_model_dir: Path
) -> None:
    options = DiscordOptions(guild_ready_timeout_s=0.05, shutdown_grace_s=5.0)
    async with running_vigil(
        fake, database=tmp_path / "bounded.sqlite3", model_dir=keyword_model_dir, options=options
    ) as vigil:
        vigil.handler.gate.clear()
        payloads = [fake.message_payload(author=fake.kid, content=f"hello there {i}") for i in range(6)]
        for payload in payloads:
            await fake.send_message(payload)
        await fake.wait_until(lambda: vigil.handler.active == 6, what="six events in flight")

        closing = asyncio.create_task(vigil.adapter.aclose())
        await asyncio.sleep(0.05)
        assert not closing.done(), "shutdown waits for the messages being handled"
        vigil.handler.gate.set()
        await asyncio.wait_for(closing, timeout=5.0)
        assert [p["id"] for p in payloads if p["id"] in vigil.handler.results] == [p["id"] for p in payloads]
        assert vigil.adapter.client.is_closed()


async def test_a_flood_is_shed_by_the_ingest_queue_and_never_piles_up_in_the_adapter(
    fake: FakeDiscord, tmp_path: Path, keyword_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """While the store is stalled (a slow disk, a long write) the server keeps talking: the real adapter hands
    every message to the real ingest queue, which holds at most its capacity and sheds chatter by its
    documented policy; direct messages and the pair with an open alert are never shed; all of it recovers."""
    # Above the 64 events the adapter once held at a time (until stored), as in production (2,048).
    capacity = 128
    async with running_vigil(
        fake, database=tmp_path / "flood.sqlite3", model_dir=keyword_model_dir, queue_capacity=capacity
    ) as vigil:
        queue = vigil.queue
        assert queue is not None
        worker = asyncio.create_task(queue.run())
        try:
            sent = await vigil.groom()
            assert await vigil.store.open_alert_for_pair(_key(fake)) is not None
            chatters = [fake.add_user(f"gamer{n}") for n in range(12)]
            chatter: list[Json] = []
            kept: list[Json] = []
            caplog.set_level(logging.WARNING, logger="vigil.bots.core.ingest")
            async with vigil.store.transaction():  # the worker's next batch waits for the store
                for n in range(600):
                    chatter.append(
                        await fake.send_message(
                            fake.message_payload(author=chatters[n % 12], content=f"gg round {n}")
                        )
                    )
                    if n % 60 == 0:
                        kept.append(
                            await fake.send_message(
                                fake.message_payload(author=fake.member, content=f"hi {n}", dm=True)
                            )
                        )
                        kept.append(
                            await fake.send_message(
                                fake.message_payload(
                                    author=fake.adult, content=f"you there {n}", reply_to=sent[0]
                                )
                            )
                        )
                flood = [p["id"] for p in chatter + kept]
                await fake.wait_until(
                    lambda: {m.message_id for m in vigil.handler.seen} >= set(flood), what="the flood"
                )
                stats = queue.stats()
                assert stats.depth <= capacity
                # What the adapter holds is what the queue admitted (queued, or taken by its two workers in
                # batches of 8), not the flood.
                assert stats.depth + stats.in_flight <= capacity + 2 * 8
                await fake.wait_until(
                    lambda: len(vigil.adapter._in_flight) <= stats.depth + stats.in_flight,
                    what="the adapter to hold only what the queue admitted",
                )
                shed = [
                    p["id"]
                    for p in chatter
                    if (r := vigil.handler.results.get(p["id"])) and r.skipped == "shed"
                ]
                assert len(shed) >= 600 - capacity
            for payload in kept:
                result = await vigil.handler.wait_for(payload["id"])
                assert result.skipped != "shed", "direct messages and the alerted pair are never shed"
            for payload in chatter:
                await vigil.handler.wait_for(payload["id"])
            assert sum(queue.stats().shed.values()) == len(shed)
            assert any("overloaded: shedding messages" in r.getMessage() for r in caplog.records)
            after = await vigil.say(fake.member, "good games everyone", reply_to=chatter[-1])
            assert vigil.handler.results[after["id"]].skipped is None, "recovered: chatter is scored again"
        finally:
            queue.close()
            await worker


async def test_sharded_bots_ask_for_the_gateway_and_identify_a_shard(
    fake: FakeDiscord, tmp_path: Path, keyword_model_dir: Path
) -> None:
    async with running_vigil(
        fake, database=tmp_path / "sharded.sqlite3", model_dir=keyword_model_dir, sharded=True
    ) as vigil:
        assert fake.calls_to("GET", "/gateway/bot")
        assert fake.identifies[0]["shard"] == [0, 1]
        assert fake.identifies[0]["intents"] == (1 << 0) | (1 << 9) | (1 << 12) | (1 << 15)
        hello = await vigil.say(fake.kid, "hello there")
        assert hello["id"] in vigil.handler.results


async def test_identify_asks_for_exactly_the_intents_vigil_needs(vigil: Vigil) -> None:
    identify: dict[str, Any] = vigil.fake.identifies[0]
    # guilds, guild_messages, dm_messages, message_content: nothing about members or presences.
    assert identify["intents"] == (1 << 0) | (1 << 9) | (1 << 12) | (1 << 15)
    assert "shard" not in identify


async def test_the_invite_link_with_exact_permissions_is_logged_at_start(
    caplog: pytest.LogCaptureFixture, vigil: Vigil
) -> None:
    started = [r.getMessage() for r in caplog.get_records("setup") if r.name == "vigil.bots.discord.adapter"]
    (line,) = [m for m in started if "to add Vigil to a server" in m]
    # The same link as docs/discord.md step 2, with this application's id filled in.
    assert line.endswith(
        f"https://discord.com/oauth2/authorize?client_id={vigil.fake.app_id}"
        "&scope=bot+applications.commands&permissions=84992"
    )
