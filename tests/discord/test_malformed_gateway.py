"""Malformed gateway payloads through the real discord.py parser: logged and skipped, never fatal."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.discord.conftest import Vigil, running_vigil
from tests.discord.fake_discord import FakeDiscord, Json
from tests.support.fuzz import cases


def _only_ids_and_content(fake: FakeDiscord) -> tuple[str, Json | None]:
    return "MESSAGE_UPDATE", {"id": fake.snowflake(), "channel_id": fake.general, "content": "edited"}


def _null_member(fake: FakeDiscord) -> tuple[str, Json | None]:
    return "MESSAGE_CREATE", {**fake.message_payload(author=fake.adult, content="hi"), "member": None}


def _no_author(fake: FakeDiscord) -> tuple[str, Json | None]:
    payload = fake.message_payload(author=fake.adult, content="hi")
    del payload["author"]
    return "MESSAGE_CREATE", payload


def _no_content(fake: FakeDiscord) -> tuple[str, Json | None]:
    payload = fake.message_payload(author=fake.adult, content="hi")
    del payload["content"]
    return "MESSAGE_CREATE", payload


def _null_data(fake: FakeDiscord) -> tuple[str, Json | None]:
    return "MESSAGE_CREATE", None


MALFORMED: dict[str, Callable[[FakeDiscord], tuple[str, Json | None]]] = {
    "update-with-only-ids-and-content": _only_ids_and_content,
    "member-null": _null_member,
    "no-author": _no_author,
    "no-content": _no_content,
    "d-null": _null_data,
}


async def _still_serving(vigil: Vigil) -> None:
    """A good message after the bad one is read and scored, and the adapter is still running."""
    good = await vigil.say(vigil.fake.kid, "hello, anyone up for a game")
    assert good["id"] in vigil.handler.results
    assert not vigil.task.done(), "the Discord adapter stopped"


@pytest.mark.parametrize("name", sorted(MALFORMED))
async def test_a_malformed_dispatch_is_skipped_and_the_bot_keeps_reading(
    name: str, fake: FakeDiscord, tmp_path: Path, keyword_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_vigil(fake, database=tmp_path / "v.sqlite3", model_dir=keyword_model_dir) as vigil:
        event, data = MALFORMED[name](fake)
        await fake.dispatch_raw(event, data)
        await _still_serving(vigil)
    skipped = [r for r in caplog.records if r.name.startswith("vigil") and r.levelno == logging.ERROR]
    assert skipped, "the skipped payload must be logged at ERROR"
    assert all(getattr(r, "gateway_event", None) == event for r in skipped)


@pytest.mark.parametrize("sharded", [False, True], ids=["one-connection", "auto-sharded"])
async def test_a_frame_that_is_not_json_reconnects_and_the_bot_keeps_reading(
    sharded: bool,
    fake: FakeDiscord,
    tmp_path: Path,
    keyword_model_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running_vigil(
        fake, database=tmp_path / "v.sqlite3", model_dir=keyword_model_dir, sharded=sharded
    ) as vigil:
        connections = len(fake.identifies) + len(fake.resumes)
        await fake.send_frame("this is not json {")
        await fake.wait_until(
            lambda: len(fake.identifies) + len(fake.resumes) > connections and fake.connected,
            what="the adapter to connect again",
        )
        await fake.wait_until(
            lambda: vigil.adapter.client.get_guild(int(fake.guild_id)) is not None, what="the guild again"
        )
        await _still_serving(vigil)
    errors = [r for r in caplog.records if r.name.startswith("vigil") and r.levelno == logging.ERROR]
    assert [getattr(r, "error_type", None) for r in errors] == ["JSONDecodeError"]


async def test_fuzzed_gateway_events_never_stop_the_bot(
    fake: FakeDiscord, tmp_path: Path, keyword_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """FUZZ_CASES broken events through the real discord.py parser and handlers: none stops the bot."""
    async with running_vigil(fake, database=tmp_path / "v.sqlite3", model_dir=keyword_model_dir) as vigil:
        message = fake.message_payload(author=fake.adult, content="how old are you", mentions=[fake.kid])
        templates: list[Any] = [
            {"t": "MESSAGE_CREATE", "d": message},
            {"t": "MESSAGE_CREATE", "d": fake.message_payload(author=fake.kid, content="hi", dm=True)},
            {
                "t": "MESSAGE_UPDATE",
                "d": {**message, "content": "edited", "edited_timestamp": message["timestamp"]},
            },
            {
                "t": "MESSAGE_DELETE",
                "d": {"id": message["id"], "channel_id": fake.general, "guild_id": fake.guild_id},
            },
            {
                "t": "MESSAGE_DELETE_BULK",
                "d": {"ids": [message["id"]], "channel_id": fake.general, "guild_id": fake.guild_id},
            },
        ]
        for _, case in cases(templates, seed=14):
            event = case.get("t") if isinstance(case, dict) else None
            data = case.get("d") if isinstance(case, dict) else case
            await fake.dispatch_raw(event if isinstance(event, str) else "MESSAGE_CREATE", data)
        good = fake.message_payload(author=fake.kid, content="still there?")
        await fake.send_message(good)
        await vigil.handler.wait_for(good["id"], within_s=300.0)
        assert not vigil.task.done(), "the Discord adapter stopped"
    tracebacks = [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info]
    assert not tracebacks, [r.getMessage() for r in tracebacks[:3]]


async def test_the_same_malformed_event_is_reported_once_not_flooded(
    fake: FakeDiscord, tmp_path: Path, keyword_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_vigil(fake, database=tmp_path / "v.sqlite3", model_dir=keyword_model_dir) as vigil:
        for _ in range(5):
            await fake.dispatch_raw("MESSAGE_CREATE", None)
        await fake.dispatch_raw("MESSAGE_DELETE", None)
        await _still_serving(vigil)
    errors = [r for r in caplog.records if r.name.startswith("vigil") and r.levelno == logging.ERROR]
    assert [getattr(r, "gateway_event", None) for r in errors] == ["MESSAGE_CREATE", "MESSAGE_DELETE"]
