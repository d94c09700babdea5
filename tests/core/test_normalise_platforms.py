"""A mention costs nothing: the same grooming line scores the same on Slack, Discord and the HTTP API.

Everything is real: the shipped ONNX model (``load_default_model_dir``), the Monitor and SQLite files, the
Slack adapter (slack-bolt behind signed HTTP requests, ``tests/slack/harness.py``) and the Discord adapter
(discord.py against the fake gateway, ``tests/discord/conftest.py``). Before ``model_text`` the mention
reached the model as typed ("@UKIDA0002 ...", "<@1234...> ..."), a token training never showed it (training
data writes every mention as ``<user>`` and removes it): this line scored 0.79 without a mention, 0.69 with
"@kid-7", 0.55 / 0.42 on Slack ("@UKID0001" / "@UKIDA0002") and 0.40 / 0.38 on Discord ("<@id>" / "<@!id>").
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import discord
import pytest
import yarl

from tests.discord.conftest import running_vigil
from tests.discord.fake_discord import FakeDiscord
from tests.slack.harness import ADULT, KID, running_slack
from vigil.bots.core.models import ChatMessage, PairKey
from vigil.bots.core.monitor import HandleResult, Monitor, MonitorConfig
from vigil.bots.core.normalise import model_text, normalise_text
from vigil.bots.core.policy import PolicyConfig
from vigil.detector import OnnxDetector, load_default_model_dir
from vigil.storage.sqlite import SqliteStore

LINE = "dont tell your parents about us, its our secret"
START = datetime(2026, 3, 1, 18, 0, tzinfo=UTC)


@pytest.fixture
async def shipped_detector() -> AsyncIterator[OnnxDetector]:
    detector = await OnnxDetector.load(load_default_model_dir(), intra_op_threads=1, max_batch=32)
    try:
        yield detector
    finally:
        await detector.aclose()


@pytest.fixture
async def fake_discord(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    server = FakeDiscord()
    await server.start()
    monkeypatch.setattr(discord.http.Route, "BASE", server.api_base)
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(server.gateway_url))
    try:
        yield server
    finally:
        await server.close()


def _policy() -> PolicyConfig:
    return PolicyConfig(
        threshold=0.7,
        sustain_messages=2,
        hysteresis=0.1,
        cooldown=timedelta(hours=6),
        update_min_delta=0.01,
        max_alerts_per_hour=10,
        shadow_mode=False,
    )


def _http(text: str, *, number: int, mentioned: tuple[str, ...] = (), dm: bool = False) -> ChatMessage:
    return ChatMessage(
        platform="http",
        space_id="tenant-1",
        channel_id="dm-1" if dm else "general",
        message_id=f"m-{number}",
        author_id="adult-1",
        text=text,
        timestamp=START + timedelta(seconds=number),
        is_dm=dm,
        recipient_ids=("kid-7",) if dm else (),
        mentioned_user_ids=mentioned,
    )


async def test_a_mention_does_not_change_a_lines_score_on_any_platform(
    tmp_path: Path, shipped_detector: OnnxDetector, fake_discord: FakeDiscord
) -> None:
    results: dict[str, HandleResult] = {}
    delivered: dict[str, ChatMessage] = {}

    # HTTP API: a DM without a mention, and a channel message mentioning a listed id.
    http_store = SqliteStore(tmp_path / "http.sqlite3")
    await http_store.open()
    try:
        monitor = Monitor(store=http_store, detector=shipped_detector, config=MonitorConfig(policy=_policy()))
        for label, message in (
            ("http, no mention", _http(LINE, number=1, dm=True)),
            ("http, @id listed", _http(f"@kid-7 {LINE}", number=2, mentioned=("kid-7",))),
        ):
            results[label] = await monitor.handle(message)
            delivered[label] = message
    finally:
        await http_store.close()

    # Slack: the adapter renders <@U...> as "@U..." for people; both a short and a real-looking id.
    slack_store = SqliteStore(tmp_path / "slack.sqlite3")
    await slack_store.open()
    try:
        async with running_slack(store=slack_store, detector=shipped_detector) as slack:
            for label, text in (
                ("slack <@KID>", f"<@{KID}> {LINE}"),
                ("slack <@UKIDA0002>", f"<@UKIDA0002> {LINE}"),
            ):
                results[label] = await slack.say(user=ADULT, text=text)
                delivered[label] = slack.handler.messages[-1]
    finally:
        await slack_store.close()

    # Discord: the content as typed, mentions as <@id> and the nickname form <@!id>.
    async with running_vigil(
        fake_discord, database=tmp_path / "discord.sqlite3", model_dir=load_default_model_dir()
    ) as vigil:
        kid = fake_discord.kid
        for label, text in (
            ("discord <@id>", f"<@{kid.id}> {LINE}"),
            ("discord <@!id>", f"<@!{kid.id}> {LINE}"),
        ):
            payload = await vigil.say(fake_discord.adult, text, mentions=[kid])
            results[label] = vigil.handler.results[payload["id"]]
            delivered[label] = next(m for m in vigil.handler.seen if m.message_id == payload["id"])
        assert results["discord <@id>"].pairs[0].key == PairKey.of(
            platform="discord", space_id=fake_discord.guild_id, first=fake_discord.adult.id, second=kid.id
        )

    # The mention really arrived (rendered for people on Slack, as typed on Discord) and pairs the two.
    assert delivered["slack <@KID>"].text == f"@{KID} {LINE}"
    assert delivered["slack <@KID>"].mentioned_user_ids == (KID,)
    assert delivered["slack <@UKIDA0002>"].text == f"@UKIDA0002 {LINE}"
    assert delivered["discord <@!id>"].text == f"<@!{fake_discord.kid.id}> {LINE}"
    assert all(results[label].pairs for label in results), "every message formed a pair"
    # What the model sees is the same text everywhere, and was not before model_text.
    assert {model_text(m.text, mentioned_user_ids=m.mentioned_user_ids) for m in delivered.values()} == {LINE}
    assert len({normalise_text(m.text) for m in delivered.values()}) == len(delivered)

    plain = results["http, no mention"].risk
    assert plain is not None
    for label, result in results.items():
        assert result.risk is not None, label
        assert abs(result.risk - plain) <= 1e-6, f"{label}: {result.risk} vs {plain} without a mention"
