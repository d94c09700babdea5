"""Catch-up: what a server's channels got while Vigil was stopped is read from history after a restart.

Discord resends missed events only when a session RESUMEs; a restarted Vigil starts a new session and would
never see what was said meanwhile. Through the real discord.py against the fake Discord: the messages come
back from history, oldest first across channels, before any live message; a resumed session and a server
Vigil never saw are not read back; ``catch_up_hours = 0`` turns it off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.discord.conftest import GROOMING_SCRIPT, Vigil, running_vigil
from tests.discord.fake_discord import FakeDiscord, Json
from vigil.bots.core.models import ChatMessage
from vigil.bots.core.monitor import SkipReason
from vigil.bots.discord import DiscordOptions

FAST = DiscordOptions(guild_ready_timeout_s=0.05, shutdown_grace_s=2.0)


@contextlib.asynccontextmanager
async def vigil_on(
    fake: FakeDiscord, database: Path, model_dir: Path, *, catch_up_hours: int = 24
) -> AsyncIterator[Vigil]:
    async with running_vigil(
        fake, database=database, model_dir=model_dir, options=FAST, catch_up_hours=catch_up_hours
    ) as vigil:
        yield vigil


def history_reads(fake: FakeDiscord) -> list[str]:
    return [c.path for c in fake.calls_to("GET", r"/channels/\d+/messages") if "after" in c.query]


def old_message(fake: FakeDiscord, text: str) -> Json:
    """A message sent ten minutes ago, before Vigil came (more than the five minutes' overlap)."""
    payload = fake.message_payload(author=fake.adult, content=text)
    payload["id"] = fake.snowflake(datetime.now(UTC) - timedelta(minutes=10))
    fake.messages[payload["id"]] = payload
    return payload


async def send_while_stopped(fake: FakeDiscord, payloads: list[Json]) -> None:
    # Dispatched to the dead session only: a new session (IDENTIFY) never receives them.
    for payload in payloads:
        await fake.send_message(payload)


async def test_messages_sent_while_stopped_are_read_back_oldest_first_before_live_ones(
    fake: FakeDiscord, tmp_path: Path, keyword_model_dir: Path
) -> None:
    database = tmp_path / "vigil.sqlite3"
    async with vigil_on(fake, database, keyword_model_dir) as first:
        opener = await first.say(fake.kid, "hello there")
    assert history_reads(fake) == [], "nothing was stored before: nothing to catch up on the first start"

    # Built in the order they are sent (ids grow with time), one in the thread between the adult's lines.
    missed = [
        fake.message_payload(author=fake.adult, content=t, reply_to=opener) for t in GROOMING_SCRIPT[:3]
    ]
    missed.append(fake.message_payload(author=fake.kid, content="in the thread", channel_id=fake.thread))
    missed += [
        fake.message_payload(author=fake.adult, content=t, reply_to=opener) for t in GROOMING_SCRIPT[3:]
    ]
    await send_while_stopped(fake, missed)

    async with vigil_on(fake, database, keyword_model_dir) as second:
        live = await second.say(fake.kid, "are you still there", reply_to=opener)
        for payload in missed:
            await second.handler.wait_for(payload["id"])
        # The overlap reads the stored opener again: the monitor skips it as a duplicate.
        assert second.handler.results[opener["id"]].skipped is not None
        handled = [m for m in second.handler.results if m != opener["id"]]
        assert handled == [p["id"] for p in missed] + [live["id"]], "oldest first, across channels, then live"
        alerts = await second.store.alerts_for_space(platform="discord", space_id=fake.guild_id, limit=5)
        assert [(a.key.user_a, a.key.user_b) for a in alerts] == [tuple(sorted((fake.adult.id, fake.kid.id)))]
        # Each channel with newer messages is read once; the alert channel and quiet channels are not.
        assert sorted(history_reads(fake)) == sorted(
            [f"/channels/{fake.general}/messages", f"/channels/{fake.thread}/messages"]
        )


async def test_what_was_stored_already_is_not_handled_twice(
    fake: FakeDiscord, tmp_path: Path, keyword_model_dir: Path
) -> None:
    database = tmp_path / "vigil.sqlite3"
    async with vigil_on(fake, database, keyword_model_dir) as first:
        stored = [await first.say(fake.kid, f"message {n}") for n in range(3)]
    [missed] = [fake.message_payload(author=fake.adult, content="age age")]
    await send_while_stopped(fake, [missed])
    async with vigil_on(fake, database, keyword_model_dir) as second:
        await second.handler.wait_for(missed["id"])
        # The overlap reads the stored ones again; the monitor recognises them by id.
        assert {p["id"] for p in stored} <= {m.message_id for m in second.handler.seen}
        assert all(second.handler.results[p["id"]].skipped is not None for p in stored)
        assert second.handler.results[missed["id"]].skipped is not SkipReason.DUPLICATE


async def test_a_restart_before_anything_was_stored_still_reads_back_what_was_missed(
    fake: FakeDiscord, tmp_path: Path, keyword_model_dir: Path
) -> None:
    database = tmp_path / "vigil.sqlite3"
    before = old_message(fake, "said before Vigil came")
    async with vigil_on(fake, database, keyword_model_dir) as first:
        # Connected and stored no message; the first run is on record all the same.
        assert await first.store.get_record("discord.watching_since", "*") is not None
    missed = fake.message_payload(author=fake.adult, content="age age")
    await send_while_stopped(fake, [missed])
    async with vigil_on(fake, database, keyword_model_dir) as second:
        await second.handler.wait_for(missed["id"])
        assert before["id"] not in second.handler.results


async def test_a_server_added_after_the_first_run_is_not_read_back(
    fake: FakeDiscord, tmp_path: Path, keyword_model_dir: Path
) -> None:
    database = tmp_path / "vigil.sqlite3"
    async with vigil_on(fake, database, keyword_model_dir) as first:
        # Written before the first connection: a run killed before it stored anything still counts.
        assert await first.store.get_record("discord.watching_since", "*") is not None
    # The bot is added to the server only now (its member joined_at), and the server was busy before.
    fake.joined_at = datetime.now(UTC) + timedelta(seconds=1)
    before = fake.message_payload(author=fake.adult, content="age age")
    await send_while_stopped(fake, [before])
    async with vigil_on(fake, database, keyword_model_dir) as second:
        await second.say(fake.kid, "hello")
        assert before["id"] not in second.handler.results
    assert history_reads(fake) == []


async def test_a_server_vigil_never_saw_is_not_read_back(
    fake: FakeDiscord, tmp_path: Path, keyword_model_dir: Path
) -> None:
    old = old_message(fake, "age age")
    async with vigil_on(fake, tmp_path / "vigil.sqlite3", keyword_model_dir) as vigil:
        await vigil.say(fake.kid, "hello")
        assert old["id"] not in vigil.handler.results
    assert history_reads(fake) == []


async def test_a_resumed_session_is_not_read_back_discord_resends_what_it_missed(
    fake: FakeDiscord, tmp_path: Path, keyword_model_dir: Path
) -> None:
    database = tmp_path / "vigil.sqlite3"
    async with vigil_on(fake, database, keyword_model_dir) as first:
        await first.say(fake.kid, "hello")
    async with vigil_on(fake, database, keyword_model_dir) as second:
        await second.say(fake.kid, "back again")
        reads = len(history_reads(fake))
        await fake.reconnect()
        await fake.wait_until(lambda: len(fake.resumes) == 1 and fake.connected, what="a RESUME")
        await second.say(fake.kid, "after the resume")
        assert len(history_reads(fake)) == reads


async def test_catch_up_hours_zero_turns_it_off(
    fake: FakeDiscord, tmp_path: Path, keyword_model_dir: Path
) -> None:
    database = tmp_path / "vigil.sqlite3"
    async with vigil_on(fake, database, keyword_model_dir) as first:
        await first.say(fake.kid, "hello")
    missed = fake.message_payload(author=fake.adult, content="age age")
    await send_while_stopped(fake, [missed])
    async with vigil_on(fake, database, keyword_model_dir, catch_up_hours=0) as second:
        await second.say(fake.kid, "back again")
        assert missed["id"] not in second.handler.results
    assert history_reads(fake) == []


async def test_a_channel_whose_history_cannot_be_read_is_logged_and_the_others_caught_up(
    fake: FakeDiscord, tmp_path: Path, keyword_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = tmp_path / "vigil.sqlite3"
    async with vigil_on(fake, database, keyword_model_dir) as first:
        await first.say(fake.kid, "hello")
    in_thread = fake.message_payload(author=fake.kid, content="in the thread", channel_id=fake.thread)
    in_general = fake.message_payload(author=fake.adult, content="age age")
    await send_while_stopped(fake, [in_thread, in_general])
    fake.fail_next("GET", rf"/channels/{fake.thread}/messages", status=403)
    with caplog.at_level(logging.WARNING, logger="vigil.bots.discord.adapter"):
        async with vigil_on(fake, database, keyword_model_dir) as second:
            await second.handler.wait_for(in_general["id"])
            assert in_thread["id"] not in second.handler.results
    assert any(
        "could not read the history of Discord channel" in r.getMessage() and fake.thread in r.getMessage()
        for r in caplog.records
    )


async def test_a_message_arriving_as_the_catch_up_ends_does_not_overtake_one_that_waited(
    fake: FakeDiscord, tmp_path: Path, keyword_model_dir: Path
) -> None:
    """The race behind a flaky crash suite, made deterministic. A gateway frame cannot be timed to land in
    the few loop turns between the catch-up's end and the wake-up of the messages that waited for it, so the
    catch-up is a task the test ends, and the late message is handed to the adapter's ingest exactly then."""
    async with vigil_on(fake, tmp_path / "vigil.sqlite3", keyword_model_dir) as vigil:
        await vigil.say(fake.kid, "hello")
        adapter = vigil.adapter
        guild = adapter._bot.get_guild(int(fake.guild_id))
        assert guild is not None

        def live(text: str) -> ChatMessage:
            payload = fake.message_payload(author=fake.adult, content=text)
            return ChatMessage(
                platform="discord",
                space_id=fake.guild_id,
                channel_id=fake.general,
                message_id=payload["id"],
                author_id=fake.adult.id,
                text=text,
                timestamp=datetime.now(UTC),
            )

        waited, late = live("sent during the catch-up"), live("sent as it ended")
        loop = asyncio.get_running_loop()
        tasks: list[asyncio.Task[None]] = []
        catch_up_over = asyncio.Event()

        async def catch_up() -> None:
            await catch_up_over.wait()
            # Runs before the catch-up's waiters are woken: the late message's task starts first.
            loop.call_soon(lambda: tasks.append(asyncio.create_task(adapter._ingest(late, live_in=guild))))

        adapter._catch_ups[guild.id] = (guild, asyncio.create_task(catch_up()))
        tasks.append(asyncio.create_task(adapter._ingest(waited, live_in=guild)))
        for _ in range(5):
            await asyncio.sleep(0)
        assert waited.message_id not in vigil.handler.results, "it waits for the catch-up"
        catch_up_over.set()
        await vigil.handler.wait_for(waited.message_id)
        await vigil.handler.wait_for(late.message_id)
        await asyncio.gather(*tasks)
        handled = [m.message_id for m in vigil.handler.seen]
        assert handled[-2:] == [waited.message_id, late.message_id]
