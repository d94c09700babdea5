"""Shared pieces for the ingest and reliability tests: message builders and detector doubles."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from vigil.bots.core.models import ChatMessage
from vigil.bots.core.monitor import Monitor, MonitorConfig
from vigil.bots.core.policy import PolicyConfig
from vigil.detector.onnx_detector import OnnxDetector
from vigil.detector.pair import EmaPairModel
from vigil.detector.types import MessageScore, ModelInfo
from vigil.storage.protocol import Store

START = datetime(2026, 3, 1, 18, 0, tzinfo=UTC)


def policy(**overrides: object) -> PolicyConfig:
    values: dict[str, object] = {
        "threshold": 0.7,
        "sustain_messages": 2,
        "hysteresis": 0.1,
        "cooldown": timedelta(hours=6),
        "update_min_delta": 0.01,
        "max_alerts_per_hour": 1000,
        "shadow_mode": False,
    }
    values.update(overrides)
    return PolicyConfig(**values)  # type: ignore[arg-type]


def make_monitor(store: Store, detector: object, **policy_overrides: object) -> Monitor:
    return Monitor(
        store=store,
        detector=detector,  # type: ignore[arg-type]
        config=MonitorConfig(policy=policy(**policy_overrides), window_messages=20, evidence_messages=3),
    )


class MessageFactory:
    """Builds messages with unique ids and increasing timestamps."""

    def __init__(self, *, platform: str = "test", space: str = "guild-1") -> None:
        self.platform = platform
        self.space = space
        self._counter = itertools.count(1)

    def channel(
        self,
        author: str,
        text: str,
        *,
        channel: str = "general",
        reply_to_author: str | None = None,
        mentions: Sequence[str] = (),
    ) -> ChatMessage:
        n = next(self._counter)
        return ChatMessage(
            platform=self.platform,
            space_id=self.space,
            channel_id=channel,
            message_id=f"m-{n}",
            author_id=author,
            text=text,
            timestamp=START + timedelta(milliseconds=n),
            reply_to_message_id=f"m-{n - 1}" if reply_to_author else None,
            reply_to_author_id=reply_to_author,
            mentioned_user_ids=tuple(mentions),
        )

    def dm(self, author: str, other: str, text: str) -> ChatMessage:
        n = next(self._counter)
        low, high = sorted((author, other))
        return ChatMessage(
            platform=self.platform,
            space_id=self.space,
            channel_id=f"dm-{low}-{high}",
            message_id=f"m-{n}",
            author_id=author,
            text=text,
            timestamp=START + timedelta(milliseconds=n),
            is_dm=True,
            recipient_ids=(other,),
        )


class ControlledDetector:
    """Wraps a real detector: can hold every call at a gate, and fail chosen calls (1-based), once each."""

    def __init__(self, inner: OnnxDetector, *, fail_calls: Sequence[int] = ()) -> None:
        self._inner = inner
        self.gate = asyncio.Event()
        self.gate.set()
        self.calls = 0
        self.batch_sizes: list[int] = []
        self._fail_calls = set(fail_calls)

    @property
    def info(self) -> ModelInfo:
        return self._inner.info

    @property
    def pair_model(self) -> EmaPairModel:
        return self._inner.pair_model

    async def score(self, texts: Sequence[str]) -> list[MessageScore]:
        self.calls += 1
        call = self.calls
        self.batch_sizes.append(len(texts))
        await self.gate.wait()
        if call in self._fail_calls:
            raise RuntimeError(f"injected detector failure on call {call}")
        return await self._inner.score(texts)

    async def aclose(self) -> None:
        await self._inner.aclose()
