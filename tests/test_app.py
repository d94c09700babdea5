"""The composition root: ``App.replay`` (demo, scan, eval), the ingest queue ``vigil run`` starts with, and
which alerts its delivery worker claims."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from pathlib import Path

import pytest

from tests.support.app_data import POLICY, SETTINGS, channel_message, grooming
from tests.support.fakes import RecordingSink
from vigil.bots.app import App, _build_services, delivery_scope
from vigil.bots.core.ingest import Priority
from vigil.bots.core.models import ANY_PLATFORM, DeliveryScope
from vigil.config.settings import (
    ConsoleSettings,
    DiscordSettings,
    HttpSettings,
    Secret,
    Secrets,
    SlackSettings,
)
from vigil.detector.onnx_detector import OnnxDetector
from vigil.storage.sqlite import SqliteStore


async def test_replay_feeds_chunks_in_order_and_delivers_what_each_raised(
    tmp_path: Path, keyword_detector: OnnxDetector
) -> None:
    async with SqliteStore(tmp_path / "vigil.sqlite3") as store:
        app = App(settings=SETTINGS, store=store, detector=keyword_detector, policy=POLICY)
        sink = RecordingSink()
        app.attach_sink(sink)
        messages = grooming(10)
        posted_after_chunk: list[int] = []
        handled: list[str] = []
        async for results in app.replay(messages, chunk=4):
            handled.extend(result.message_id for result in results)
            posted_after_chunk.append(len(sink.posted))
        assert handled == [m.message_id for m in messages]
        assert len(posted_after_chunk) == 3, "10 messages in chunks of 4"
        assert posted_after_chunk[-1] == 1, "the alert is delivered during the replay, not after it"


async def test_the_ingest_queue_watches_pairs_with_an_open_alert_from_the_start(
    tmp_path: Path, keyword_detector: OnnxDetector
) -> None:
    """After a restart, a flood must not shed the messages of a pair moderators are looking at."""
    database = tmp_path / "vigil.sqlite3"
    async with SqliteStore(database) as store:
        app = App(settings=SETTINGS, store=store, detector=keyword_detector, policy=POLICY)
        async for _ in app.replay(grooming(10)):
            pass
    async with SqliteStore(database) as store:
        restarted = App(settings=SETTINGS, store=store, detector=keyword_detector, policy=POLICY)
        queue = await restarted.ingest_queue()
        from_the_pair = channel_message(100, author="adult", to="kid", text="you there?")
        from_others = channel_message(101, author="gamer1", to="gamer2", text="gg")
        assert queue.priority_of(from_the_pair) is Priority.PRIORITY
        assert queue.priority_of(from_others) is Priority.CHATTER
        assert queue.stats().watched_pairs == 1


def _only(*platforms: str) -> DeliveryScope:
    return DeliveryScope(platforms=frozenset(platforms))


def _all_but(*platforms: str) -> DeliveryScope:
    return DeliveryScope(except_platforms=frozenset(platforms))


@pytest.mark.parametrize(
    ("chat_sinks", "fallback", "expected"),
    [
        # The console alone prints any alert.
        ((), False, ANY_PLATFORM),
        (("discord",), False, _only("discord")),
        (("discord", "slack"), False, _only("discord", "slack")),
        # The HTTP API's route delivers any platform but the chat platforms, whose sinks are elsewhere.
        ((), True, _all_but("discord", "slack")),
        (("slack",), True, _all_but("discord")),
        (("discord", "slack"), True, ANY_PLATFORM),
    ],
)
def test_a_worker_claims_the_platforms_its_sinks_deliver(
    chat_sinks: Collection[str], fallback: bool, expected: DeliveryScope
) -> None:
    assert delivery_scope(chat_sinks=chat_sinks, fallback=fallback) == expected


_SECRETS = Secrets(
    discord_token=Secret("discord-token"),
    slack_bot_token=Secret("xoxb-slack-bot-token"),
    slack_app_token=Secret("xapp-slack-app-token"),
    http_secret=Secret("http-secret-of-16-chars"),
)


@pytest.mark.parametrize(
    ("enabled", "covered"),
    [
        ({"discord", "console"}, {"discord"}),
        ({"discord", "http"}, {"discord", "forum", "http"}),
        ({"http", "console"}, {"forum", "http"}),
        ({"console"}, {"discord", "slack", "forum", "http"}),
        ({"slack", "http"}, {"slack", "forum", "http"}),
    ],
)
async def test_vigil_runs_worker_claims_what_the_enabled_sinks_deliver(
    tmp_path: Path, keyword_detector: OnnxDetector, enabled: set[str], covered: set[str]
) -> None:
    settings = dataclasses.replace(
        SETTINGS,
        discord=DiscordSettings(enabled="discord" in enabled),
        slack=SlackSettings(enabled="slack" in enabled),
        http=HttpSettings(enabled="http" in enabled),
        console=ConsoleSettings(enabled="console" in enabled),
    )
    async with SqliteStore(tmp_path / "vigil.sqlite3") as store:
        app = App(settings=settings, store=store, detector=keyword_detector, policy=POLICY)
        # The services `vigil run` builds (nothing runs or connects until their runs start).
        services = _build_services(app, secrets=_SECRETS, handler=await app.ingest_queue())
        try:
            scope = services.delivery_scope()
        finally:
            for close in services.closers:
                await close()
    assert {name for name in ("discord", "slack", "forum", "http") if scope.covers(name)} == covered
