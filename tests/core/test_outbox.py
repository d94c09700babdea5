"""The outbox builds each alert's ``Delivery`` once (case, destination, trend); sinks read no storage."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.core.monitoring import START, Conversation, make_monitor
from tests.support.fakes import FakeClock, RecordingSink
from vigil.bots.core.case_service import CaseService
from vigil.bots.core.cases import Actor, CaseAction, CaseState, Role
from vigil.bots.core.models import ANY_PLATFORM, DeliveryScope, OutboxItem, PairKey, RiskPoint, SpaceSettings
from vigil.bots.core.outbox import OutboxConfig, OutboxWorker
from vigil.bots.core.ports import TREND_POINTS, TransientStoreError, Trend, trend_of
from vigil.detector.onnx_detector import OnnxDetector
from vigil.storage.sqlite import SqliteStore


def test_one_trend_rule_for_every_platform() -> None:
    assert trend_of([]) is Trend.NEW and trend_of([0.8]) is Trend.NEW
    assert trend_of([0.5, 0.7, 0.9]) is Trend.RISING
    assert trend_of([0.9, 0.8]) is Trend.FALLING
    assert trend_of([0.80, 0.82]) is Trend.STEADY
    # Only the latest points count: an old low start does not make today's plateau "rising".
    assert trend_of([0.1] + [0.9] * TREND_POINTS) is Trend.STEADY


def test_a_delivery_scope_covers_its_platforms_but_the_excepted_ones() -> None:
    gateway = DeliveryScope(platforms=frozenset({"discord", "slack"}), except_platforms=frozenset({"slack"}))
    webhook = DeliveryScope(except_platforms=frozenset({"discord", "slack"}))
    nothing = DeliveryScope(platforms=frozenset())
    names = ("discord", "slack", "forum")

    assert [name for name in names if ANY_PLATFORM.covers(name)] == ["discord", "slack", "forum"]
    assert [name for name in names if gateway.covers(name)] == ["discord"]
    assert [name for name in names if webhook.covers(name)] == ["forum"]
    assert not any(nothing.covers(name) for name in names)
    assert DeliveryScope().is_everything and ANY_PLATFORM.is_everything and not webhook.is_everything
    # As the logs name a worker's scope.
    assert [str(scope) for scope in (ANY_PLATFORM, gateway, webhook, nothing)] == [
        "any platform",
        "discord",
        "any platform but discord, slack",
        "no platform",
    ]


async def test_the_sink_gets_the_case_its_destination_and_the_trend(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector
) -> None:
    clock = FakeClock(START)
    await sqlite_store.put_space_settings(
        SpaceSettings(
            platform="test", space_id="guild-1", alert_channel_id="alerts-1", moderator_role_id="mods-1"
        )
    )
    monitor = make_monitor(sqlite_store, keyword_detector, clock, update_min_delta=0.01)
    cases = CaseService(store=sqlite_store, clock=clock)
    sink = RecordingSink()
    outbox = OutboxWorker(store=sqlite_store, cases=cases, sink=sink, config=OutboxConfig(), clock=clock)
    talk = Conversation()
    for _ in range(3):
        await monitor.handle(talk.say(talk.a, "secret groom"))
    assert await outbox.drain_once() == 1
    [first] = sink.deliveries
    assert first.channel_id == "alerts-1" and first.moderator_role_id == "mods-1"
    assert first.case.state is CaseState.OPEN and first.alert.suspect_id == "adult"
    assert first.risk_points and first.risk_points[-1] == pytest.approx(first.alert.risk)

    # Risk rises: the update shows the trend the store recorded, ending at the alert's new risk.
    await monitor.handle(talk.say(talk.a, "secret groom secret groom age"))
    assert await outbox.drain_once() == 1
    rising = sink.deliveries[-1]
    assert rising.alert.risk > first.alert.risk
    assert rising.risk_points[-1] == pytest.approx(rising.alert.risk) and rising.trend is Trend.RISING
    assert len(rising.risk_points) <= TREND_POINTS

    # A moderator claims the case: the sink re-renders it with the new state, without asking anyone.
    moderator = Actor(platform="test", space_id="guild-1", user_id="mod-7", roles=frozenset({Role.MODERATOR}))
    claimed = await cases.act(actor=moderator, case_number=first.alert.case_number, action=CaseAction.CLAIM)
    assert claimed.ok
    assert await outbox.drain_once() == 1
    last = sink.deliveries[-1]
    assert last.case.state is CaseState.CLAIMED and last.case.claimed_by == "mod-7"
    assert [event.action for event in last.case.audit][-1] == "claim"


async def _one_alert_waiting(
    store: SqliteStore, detector: OnnxDetector, *, clock: FakeClock, config: OutboxConfig
) -> tuple[OutboxWorker, RecordingSink]:
    """An outbox worker on ``store`` and its sink, with one alert raised and not yet delivered."""
    monitor = make_monitor(store, detector, clock)
    sink = RecordingSink()
    outbox = OutboxWorker(
        store=store, cases=CaseService(store=store, clock=clock), sink=sink, config=config, clock=clock
    )
    talk = Conversation()
    for _ in range(3):
        await monitor.handle(talk.say(talk.a, "secret groom"))
    return outbox, sink


class _TrendFailsOnce(SqliteStore):
    """A store whose risk-trend read fails once, as a locked or briefly unreachable database would."""

    failures = 1

    async def risk_history(self, key: PairKey, *, limit: int) -> list[RiskPoint]:
        if self.failures:
            self.failures -= 1
            raise OSError("database is locked")
        return await super().risk_history(key, limit=limit)


async def test_a_delivery_that_cannot_be_read_is_retried_not_lost(
    tmp_path: Path, keyword_detector: OnnxDetector
) -> None:
    clock = FakeClock(START)
    async with _TrendFailsOnce(tmp_path / "trend.sqlite3") as store:
        outbox, sink = await _one_alert_waiting(
            store, keyword_detector, clock=clock, config=OutboxConfig(retry_initial_s=5.0)
        )
        assert await outbox.drain_once() == 0
        assert sink.attempts == 0 and await store.pending_delivery_count() == 1
        clock.advance(timedelta(seconds=6))
        assert await outbox.drain_once() == 1
        assert len(sink.posted) == 1 and await store.pending_delivery_count() == 0


class _ConflictsAtFirst(SqliteStore):
    """A store whose first claims and first completions fail as a concurrent writer's deadlock would."""

    claim_failures = 1
    complete_failures = 2
    completions = 0

    async def claim_deliveries(self, **kwargs: Any) -> list[OutboxItem]:
        if self.claim_failures:
            self.claim_failures -= 1
            raise TransientStoreError("A concurrent writer conflicted with claiming due deliveries (40P01)")
        return await super().claim_deliveries(**kwargs)

    async def complete_delivery(self, item_id: int, **kwargs: Any) -> bool:
        self.completions += 1
        if self.complete_failures:
            self.complete_failures -= 1
            raise TransientStoreError("A concurrent writer conflicted with completing a delivery (40P01)")
        return await super().complete_delivery(item_id, **kwargs)


async def test_a_transient_store_failure_neither_stops_the_worker_nor_posts_twice(
    tmp_path: Path, keyword_detector: OnnxDetector, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(START)
    async with _ConflictsAtFirst(tmp_path / "conflicts.sqlite3") as store:
        outbox, sink = await _one_alert_waiting(
            store, keyword_detector, clock=clock, config=OutboxConfig(poll_interval_s=0.01)
        )
        # The first claim fails: the worker goes on. The post's completion fails twice: it is tried again,
        # not posted again.
        worker = asyncio.create_task(outbox.run())
        try:
            async with asyncio.timeout(30):
                while await store.pending_delivery_count():
                    assert not worker.done()
                    await asyncio.sleep(0.05)
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        assert len(sink.posted) == 1 and sink.attempts == 1
        assert store.claim_failures == 0 and store.completions == 3
        assert "failed transiently" in caplog.text and "trying again" in caplog.text
        # Nothing of the chat in the log.
        assert "secret groom" not in caplog.text
