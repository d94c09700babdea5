"""Starting and stopping: fatal setup problems are clear errors; cancelling closes the connection."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.discord.conftest import running_vigil
from tests.discord.fake_discord import FakeDiscord
from vigil.bots.discord import DiscordFatalError, DiscordOptions


async def test_a_bad_token_is_a_clear_fatal_error_that_does_not_show_the_token(
    fake: FakeDiscord, tmp_path: Path, keyword_model_dir: Path
) -> None:
    with pytest.raises(DiscordFatalError) as caught:
        async with running_vigil(
            fake, database=tmp_path / "bad.sqlite3", model_dir=keyword_model_dir, token="wrong-token.x.y"
        ):
            pass
    message = str(caught.value)
    assert "rejected the bot token" in message and "VIGIL_DISCORD_TOKEN" in message
    assert "wrong-token" not in message
    assert [(c.method, c.path, c.authorized) for c in fake.calls] == [("GET", "/users/@me", False)]
    assert fake.identifies == []


async def test_a_missing_message_content_intent_is_a_clear_fatal_error(
    fake: FakeDiscord, tmp_path: Path, keyword_model_dir: Path
) -> None:
    fake.reject_intents = True
    with pytest.raises(DiscordFatalError) as caught:
        async with running_vigil(fake, database=tmp_path / "intents.sqlite3", model_dir=keyword_model_dir):
            pass
    assert "Message Content" in str(caught.value) and "developer portal" in str(caught.value)
    assert len(fake.identifies) == 1, "no reconnect loop"


async def test_cancelling_run_closes_the_connection(
    fake: FakeDiscord, tmp_path: Path, keyword_model_dir: Path
) -> None:
    async with running_vigil(
        fake, database=tmp_path / "cancel.sqlite3", model_dir=keyword_model_dir
    ) as vigil:
        await vigil.setup_server()
        await vigil.groom(drain=False)
        [alert] = await vigil.store.alerts_for_space(platform="discord", space_id=fake.guild_id, limit=1)
        delivery = await vigil.outbox.delivery(alert)
        vigil.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await vigil.task
        assert vigil.adapter.client.is_closed()
        await fake.wait_until(lambda: not fake.connected, what="the socket to close")
        # The outbox may still run during shutdown: the sink answers with a result, it does not raise.
        result = await vigil.adapter.sink.post(delivery)
        assert not result.ok and not result.permanent and result.retry_after == 5.0


async def test_login_is_retried_while_discord_is_unreachable(
    fake: FakeDiscord, tmp_path: Path, keyword_model_dir: Path
) -> None:
    fake.fail_next("GET", "/users/@me", status=503, times=2)
    options = DiscordOptions(guild_ready_timeout_s=0.05, login_retry_initial_s=0.01)
    async with running_vigil(
        fake, database=tmp_path / "retry.sqlite3", model_dir=keyword_model_dir, options=options
    ) as vigil:
        assert len(fake.calls_to("GET", "/users/@me")) == 3
        hello = await vigil.say(fake.kid, "hello there")
        assert hello["id"] in vigil.handler.results
