"""Retention with a controlled clock: each category, holds, dry runs, idempotence, and messages arriving."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from datetime import timedelta

import pytest

from tests.cases.helpers import CHILD_SAFETY, MODERATOR, PLATFORM, SPACE, Harness
from vigil.bots.core.cases import CaseAction, CaseState
from vigil.bots.core.retention import PurgeReport, RetentionSchedule, RetentionTask, purge
from vigil.config.settings import RetentionSettings
from vigil.storage.sqlite import SqliteStore

SCHEDULE = RetentionSettings().schedule()


def table_dump(database: str) -> dict[str, list[tuple[object, ...]]]:
    with sqlite3.connect(database) as connection:
        tables = [
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        ]
        return {table: connection.execute(f"SELECT * FROM {table}").fetchall() for table in tables}


async def run(
    harness: Harness, *, dry_run: bool = False, schedule: RetentionSchedule = SCHEDULE
) -> PurgeReport:
    return await purge(harness.store, schedule=schedule, now=harness.clock.now, dry_run=dry_run)


def test_schedule_from_settings_and_validation() -> None:
    schedule = RetentionSettings(
        message_days=7, pair_idle_days=60, dismissed_case_text_days=10, preservation_hold_days=90
    ).schedule()
    assert schedule.bookkeeping_days == 60 and schedule.hold_period == timedelta(days=90)
    with pytest.raises(ValueError, match="message_days"):
        RetentionSchedule(message_days=0)


async def test_old_window_text_goes_unless_an_open_case_protects_it(harness: Harness) -> None:
    await harness.talk("friend-1", "friend-2", risky=False)
    alert = await harness.raise_alert("adult", "kid")
    harness.clock.advance(timedelta(days=15))

    report = await run(harness)

    quiet = await harness.store.pairs_for_user(platform=PLATFORM, space_id=SPACE, user_id="friend-1")
    assert report.window_messages == 6 and report.idle_pairs == 0
    assert len(quiet) == 1 and await harness.store.load_window(quiet[0].key) == []
    assert len(await harness.store.load_window(alert.key)) == 6
    again = await run(harness)
    assert again.total == 0


async def test_idle_pairs_go_with_their_window_and_risk(harness: Harness) -> None:
    await harness.talk("friend-1", "friend-2", risky=False)
    alert = await harness.raise_alert("adult", "kid")
    harness.clock.advance(timedelta(days=31))

    report = await run(harness)

    assert report.idle_pairs == 1 and report.seen_messages == 12
    assert await harness.store.pairs_for_user(platform=PLATFORM, space_id=SPACE, user_id="friend-1") == []
    assert await harness.store.load_pair(alert.key) is not None
    assert len(await harness.store.risk_history(alert.key, limit=100)) > 0


async def test_dismissed_cases_keep_their_record_but_lose_their_text(harness: Harness) -> None:
    alert = await harness.raise_alert()
    await harness.service.act(
        actor=MODERATOR, case_number=alert.case_number, action=CaseAction.DISMISS, reason="a game"
    )
    harness.clock.advance(timedelta(days=29))
    early = await run(harness)
    assert early.case_texts == 0 and early.window_messages == 6  # a dismissed case protects no window
    harness.clock.advance(timedelta(days=2))

    report = await run(harness)

    assert report.case_texts == 1 and report.idle_pairs == 1
    result = await harness.service.get(actor=MODERATOR, case_number=alert.case_number)
    assert result.case is not None
    view = result.case
    assert view.state is CaseState.DISMISSED and view.dismiss_reason == "a game"
    assert [e.action for e in view.audit] == ["dismiss"]
    assert view.alert.evidence and all(m.text == "" for m in view.alert.evidence)
    assert [m.message_id for m in view.alert.evidence] == [m.message_id for m in alert.evidence]
    case = await harness.store.case_for_alert(alert.alert_id)
    assert case is not None and case.text_purged_at == harness.clock.now


async def test_a_hold_keeps_everything_until_it_ends(harness: Harness) -> None:
    alert = await harness.raise_alert()
    await harness.service.act(actor=MODERATOR, case_number=alert.case_number, action=CaseAction.ESCALATE)
    preserved = await harness.store.load_evidence(alert.alert_id)
    window = await harness.store.load_window(alert.key)
    risk = await harness.store.risk_history(alert.key, limit=100)

    harness.clock.advance(timedelta(days=364))
    report = await run(harness)

    # Only bookkeeping without text (message ids, turn-taking memory), which is not the case's.
    assert report.total == report.seen_messages + report.turn_memories
    assert await harness.store.load_evidence(alert.alert_id) == preserved
    assert await harness.store.load_window(alert.key) == window
    assert await harness.store.risk_history(alert.key, limit=100) == risk

    harness.clock.advance(timedelta(days=2))
    after = await run(harness)

    assert after.case_texts == 1 and after.window_messages == 6 and after.idle_pairs == 1
    assert await harness.store.load_evidence(alert.alert_id) == []
    assert await harness.store.load_pair(alert.key) is None
    case = await harness.store.case_for_alert(alert.alert_id)
    assert case is not None and case.state is CaseState.ESCALATED and case.text_purged_at is not None


async def test_releasing_a_hold_lets_retention_apply(harness: Harness) -> None:
    alert = await harness.raise_alert()
    number = alert.case_number
    await harness.service.act(actor=MODERATOR, case_number=number, action=CaseAction.ESCALATE)
    harness.clock.advance(timedelta(days=40))
    assert (await run(harness)).case_texts == 0

    await harness.service.act(actor=CHILD_SAFETY, case_number=number, action=CaseAction.RELEASE_HOLD)
    report = await run(harness)

    assert report.case_texts == 1 and report.idle_pairs == 1
    assert await harness.store.load_evidence(alert.alert_id) == []


async def test_a_dry_run_changes_nothing(harness: Harness) -> None:
    await harness.talk("friend-1", "friend-2", risky=False)
    alert = await harness.raise_alert()
    await harness.service.act(actor=MODERATOR, case_number=alert.case_number, action=CaseAction.DISMISS)
    harness.clock.advance(timedelta(days=40))
    before = table_dump(harness.store.database)

    dry = await run(harness, dry_run=True)

    assert table_dump(harness.store.database) == before
    real = await run(harness)
    assert dry.dry_run and not real.dry_run
    assert (dry.case_texts, dry.window_messages, dry.idle_pairs, dry.seen_messages) == (
        real.case_texts,
        real.window_messages,
        real.idle_pairs,
        real.seen_messages,
    )
    assert dry.total > 0 and "would remove" in dry.lines()[0]


async def test_purge_while_messages_arrive(harness: Harness) -> None:
    for index in range(10):
        await harness.talk(f"old-{index}", f"other-{index}", risky=False, turns=2)
    harness.clock.advance(timedelta(days=31))
    small_batches = RetentionSchedule(batch=3)

    async def chatter() -> None:
        for _ in range(10):
            await harness.talk("new-1", "new-2", risky=False, turns=1)
            await asyncio.sleep(0)

    report, _ = await asyncio.gather(run(harness, schedule=small_batches), chatter())

    assert report.idle_pairs == 10
    fresh = await harness.store.pairs_for_user(platform=PLATFORM, space_id=SPACE, user_id="new-1")
    assert len(fresh) == 1 and fresh[0].message_count == 20
    assert len(await harness.store.load_window(fresh[0].key)) == 20
    assert (await run(harness)).total == 0


async def test_retention_task_runs_every_interval_and_survives_failures(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await harness.talk("friend-1", "friend-2", risky=False)
    harness.clock.advance(timedelta(days=31))
    task = RetentionTask(
        store=harness.store, schedule=SCHEDULE, clock=harness.clock, interval=timedelta(milliseconds=10)
    )

    ran_twice = asyncio.Event()
    run_once = task.run_once

    async def counting_run() -> PurgeReport:
        report = await run_once()
        if task.runs >= 2:
            ran_twice.set()
        return report

    task.run_once = counting_run  # type: ignore[method-assign]
    runner = asyncio.create_task(task.run())
    async with asyncio.timeout(5):
        await ran_twice.wait()
    assert await harness.store.count_pairs() == 0

    broken = RetentionTask(
        store=SqliteStore(harness.store.database),  # never opened: every purge fails
        schedule=SCHEDULE,
        interval=timedelta(milliseconds=10),
    )
    with caplog.at_level(logging.ERROR, logger="vigil.bots.core.retention"):
        failing = asyncio.create_task(broken.run())
        await asyncio.sleep(0.1)
    assert not failing.done() and "retention run failed" in caplog.text
    for background in (runner, failing):
        background.cancel()
    await asyncio.gather(runner, failing, return_exceptions=True)
