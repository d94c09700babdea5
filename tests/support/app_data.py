"""Settings, policy and a grooming channel conversation for the tests that replay messages through ``App``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from vigil.bots.core.models import ChatMessage
from vigil.bots.core.policy import PolicyConfig
from vigil.config.settings import PolicySettings, Settings

START = datetime(2026, 3, 1, 18, 0, tzinfo=UTC)


SETTINGS = Settings(policy=PolicySettings(window_messages=20, evidence_messages=3))


POLICY = PolicyConfig(
    threshold=0.7,
    sustain_messages=2,
    hysteresis=0.1,
    cooldown=timedelta(0),
    update_min_delta=0.05,
    max_alerts_per_hour=1000,
    shadow_mode=False,
)


def channel_message(number: int, *, author: str, to: str, text: str) -> ChatMessage:
    return ChatMessage(
        platform="test",
        space_id="guild-1",
        channel_id="general",
        message_id=f"m-{number}",
        author_id=author,
        text=text,
        timestamp=START + timedelta(seconds=number),
        reply_to_author_id=to,
    )


def grooming(count: int) -> list[ChatMessage]:
    return [
        channel_message(n, author="adult", to="kid", text="secret groom")
        if n % 2 == 0
        else channel_message(n, author="kid", to="adult", text="hello there")
        for n in range(count)
    ]
