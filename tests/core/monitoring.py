"""A monitor on a real store and detector, and the DM conversations the monitor tests feed it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.support.fakes import FakeClock
from vigil.bots.core.models import ChatMessage
from vigil.bots.core.monitor import Monitor, MonitorConfig
from vigil.bots.core.policy import PolicyConfig
from vigil.detector.onnx_detector import OnnxDetector
from vigil.storage.sqlite import SqliteStore

START = datetime(2026, 3, 1, 18, 0, tzinfo=UTC)


def policy(**overrides: object) -> PolicyConfig:
    values: dict[str, object] = {
        "threshold": 0.7,
        "sustain_messages": 2,
        "hysteresis": 0.1,
        "cooldown": timedelta(hours=6),
        "update_min_delta": 0.01,
        "max_alerts_per_hour": 10,
        "shadow_mode": False,
    }
    values.update(overrides)
    return PolicyConfig(**values)  # type: ignore[arg-type]


class Conversation:
    """Builds DM messages between two people with increasing ids and timestamps."""

    def __init__(
        self, *, space: str = "guild-1", channel: str = "dm-1", a: str = "adult", b: str = "kid"
    ) -> None:
        self.space, self.channel, self.a, self.b = space, channel, a, b
        self.count = 0

    def say(self, author: str, text: str, **extra: object) -> ChatMessage:
        self.count += 1
        other = self.b if author == self.a else self.a
        fields: dict[str, object] = {
            "platform": "test",
            "space_id": self.space,
            "channel_id": self.channel,
            "message_id": f"{self.channel}-{self.count}",
            "author_id": author,
            "text": text,
            "timestamp": START + timedelta(seconds=self.count),
            "is_dm": True,
            "recipient_ids": (other,),
        }
        fields.update(extra)
        return ChatMessage(**fields)  # type: ignore[arg-type]


def make_monitor(
    store: SqliteStore, detector: OnnxDetector, clock: FakeClock, **policy_overrides: object
) -> Monitor:
    return Monitor(
        store=store,
        detector=detector,
        config=MonitorConfig(policy=policy(**policy_overrides), window_messages=10, evidence_messages=3),
        clock=clock,
    )
