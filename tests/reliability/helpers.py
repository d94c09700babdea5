"""Shared pieces for the ingest and reliability tests: message builders and detector doubles."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from vigil.bots.app import App
from vigil.bots.core.models import ChatMessage
from vigil.bots.core.monitor import Monitor
from vigil.bots.core.policy import PolicyConfig
from vigil.bots.core.ports import AlertReviewer, MessageScore, ModelInfo, Store
from vigil.config.settings import PolicySettings, Settings
from vigil.detector.onnx_detector import OnnxDetector
from vigil.detector.pair import EmaPairModel

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


SETTINGS = Settings(policy=PolicySettings(window_messages=20, evidence_messages=3))


def make_monitor(store: Store, detector: object, **policy_overrides: object) -> Monitor:
    """The monitor as the composition root `vigil run` uses (``App``) builds it, with the tests' policy."""
    app = App(
        settings=SETTINGS,
        store=store,
        detector=detector,  # type: ignore[arg-type]
        policy=policy(**policy_overrides),
    )
    return app.monitor


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

    @property
    def reviewer(self) -> AlertReviewer | None:
        return self._inner.reviewer

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


# Crash suites: 20 seeds run two at a time. Each seed mostly waits on its own processes (starts, round
# trips) and has its own fake, process and database, so two at once keep the suites inside the CI budget.
SEED_PAIRS = [(seed, seed + 1) for seed in range(1, 21, 2)]
_Result = TypeVar("_Result")


def seed_pair_id(seeds: tuple[int, int]) -> str:
    return f"{seeds[0]}+{seeds[1]}"


async def run_seed_pair(
    seeds: tuple[int, int], folder: Path, run: Callable[[int, Path], Coroutine[Any, Any, _Result]]
) -> list[tuple[int, _Result]]:
    """``run(seed, its own folder)`` for both seeds at once; each seed with its result. A TaskGroup: if one
    seed fails, the other is cancelled (its process killed by its own clean-up), not left running."""
    folders = [folder / f"seed-{seed}" for seed in seeds]
    for each in folders:
        each.mkdir()
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(run(seed, each)) for seed, each in zip(seeds, folders, strict=True)]
    return [(seed, task.result()) for seed, task in zip(seeds, tasks, strict=True)]
