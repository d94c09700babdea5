"""Retention and erasure: what Vigil forgets, and when. The rules in plain words are in docs/privacy.md.

``purge`` works in short batches (one small transaction each), so it is safe to run while messages arrive and
idempotent: a second run right after the first finds nothing. ``forget`` erases one member on request.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from vigil.bots.core.cases import Actor
from vigil.bots.core.clock import Clock, utc_now
from vigil.bots.core.labels import pseudonymiser
from vigil.bots.core.ports import RetentionWorkStore

__all__ = [
    "ForgetReport",
    "PurgeReport",
    "RetentionSchedule",
    "RetentionTask",
    "forget",
    "purge",
]

logger = logging.getLogger(__name__)

_BATCH = 500
# One retention call: a batch removed (its count), or with ``dry_run`` the count of all candidates.
_Step = Callable[[], Awaitable[int]]
# Audit entries about no case and every space of a platform (erasure requests) carry this space id.
ALL_SPACES = "*"
# A location's turn-taking memory is removed this long after it was last saved (it matters for minutes).
TURN_MEMORY_KEPT = timedelta(days=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionSchedule:
    """How long each kind of data is kept (see docs/privacy.md)."""

    message_days: int = 14
    pair_idle_days: int = 30
    dismissed_case_text_days: int = 30
    preservation_hold_days: int = 365
    batch: int = _BATCH

    def __post_init__(self) -> None:
        for name in ("message_days", "pair_idle_days", "dismissed_case_text_days", "preservation_hold_days"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.batch < 1:
            raise ValueError("batch must be at least 1")

    @property
    def hold_period(self) -> timedelta:
        return timedelta(days=self.preservation_hold_days)

    @property
    def bookkeeping_days(self) -> int:
        """Message ids and risk history outlive the longest of the message and pair periods."""
        return max(self.message_days, self.pair_idle_days)


@dataclass(frozen=True, slots=True, kw_only=True)
class PurgeReport:
    """What one purge removed (or, dry, would remove), per category."""

    dry_run: bool
    case_texts: int = 0
    window_messages: int = 0
    idle_pairs: int = 0
    seen_messages: int = 0
    risk_points: int = 0
    turn_memories: int = 0

    @property
    def total(self) -> int:
        return (
            self.case_texts
            + self.window_messages
            + self.idle_pairs
            + self.seen_messages
            + self.risk_points
            + self.turn_memories
        )

    def lines(self) -> list[str]:
        verb = "would remove" if self.dry_run else "removed"
        return [
            f"case texts (dismissed, or hold ended) {verb}: {self.case_texts}",
            f"window messages older than the message period {verb}: {self.window_messages}",
            f"idle pairs {verb}: {self.idle_pairs}",
            f"seen message ids {verb}: {self.seen_messages}",
            f"risk history points {verb}: {self.risk_points}",
            f"turn-taking memories {verb}: {self.turn_memories}",
        ]


async def purge(
    store: RetentionWorkStore, *, schedule: RetentionSchedule, now: datetime, dry_run: bool
) -> PurgeReport:
    """Apply ``schedule`` at ``now``. With ``dry_run`` nothing changes; the report counts what would go."""
    limit = schedule.batch
    bookkeeping = now - timedelta(days=schedule.bookkeeping_days)
    # Case texts first: a case whose text just went no longer protects anything.
    case_texts = await _drain(
        lambda: store.purge_case_texts(
            dismissed_before=now - timedelta(days=schedule.dismissed_case_text_days),
            now=now,
            limit=limit,
            dry_run=dry_run,
        ),
        limit=limit,
        dry_run=dry_run,
    )
    window_messages = await _drain(
        lambda: store.purge_window_messages(
            older_than=now - timedelta(days=schedule.message_days), now=now, limit=limit, dry_run=dry_run
        ),
        limit=limit,
        dry_run=dry_run,
    )
    idle_pairs = await _drain(
        lambda: store.purge_idle_pairs(
            idle_since=now - timedelta(days=schedule.pair_idle_days), now=now, limit=limit, dry_run=dry_run
        ),
        limit=limit,
        dry_run=dry_run,
    )
    seen_messages = await _drain(
        lambda: store.purge_seen_messages(older_than=bookkeeping, limit=limit, dry_run=dry_run),
        limit=limit,
        dry_run=dry_run,
    )
    risk_points = await _drain(
        lambda: store.purge_risk_history(older_than=bookkeeping, now=now, limit=limit, dry_run=dry_run),
        limit=limit,
        dry_run=dry_run,
    )
    # Ids and times of a location's last messages: useful only within the resolver's turn gap (minutes).
    turn_memories = await _drain(
        lambda: store.purge_turn_memory(saved_before=now - TURN_MEMORY_KEPT, limit=limit, dry_run=dry_run),
        limit=limit,
        dry_run=dry_run,
    )
    report = PurgeReport(
        dry_run=dry_run,
        case_texts=case_texts,
        window_messages=window_messages,
        idle_pairs=idle_pairs,
        seen_messages=seen_messages,
        risk_points=risk_points,
        turn_memories=turn_memories,
    )
    logger.info("retention %s: %s", "dry run" if dry_run else "purge", "; ".join(report.lines()))
    return report


async def _drain(step: _Step, *, limit: int, dry_run: bool) -> int:
    if dry_run:
        return await step()
    total = 0
    while True:
        removed = await step()
        total += removed
        if removed < limit:
            return total
        # Let arriving messages take the store between batches.
        await asyncio.sleep(0)


class RetentionTask:
    """Runs ``purge`` every ``interval`` until cancelled (``vigil run``). Failures are logged, not fatal."""

    def __init__(
        self,
        *,
        store: RetentionWorkStore,
        schedule: RetentionSchedule,
        clock: Clock = utc_now,
        interval: timedelta = timedelta(hours=1),
    ) -> None:
        if interval <= timedelta(0):
            raise ValueError("interval must be positive")
        self._store = store
        self._schedule = schedule
        self._clock = clock
        self._interval = interval
        self.runs = 0

    async def run_once(self) -> PurgeReport:
        report = await purge(self._store, schedule=self._schedule, now=self._clock(), dry_run=False)
        self.runs += 1
        return report

    async def run(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                # Retention must not stop moderation; the next run tries again.
                logger.exception("retention run failed; retrying in %s", self._interval)
            await asyncio.sleep(self._interval.total_seconds())


@dataclass(frozen=True, slots=True, kw_only=True)
class ForgetReport:
    """What an erasure removed (or, in a dry run, would remove), and what a preservation hold kept."""

    platform: str
    found: bool
    dry_run: bool = False
    pairs: int = 0
    window_messages: int = 0
    risk_points: int = 0
    evidence_messages: int = 0
    case_evidence_texts: int = 0
    held_pairs: int = 0
    held_cases: int = 0
    cases_changed: tuple[tuple[str, int], ...] = ()

    def lines(self) -> list[str]:
        if not self.found:
            return ["nothing found for this member"]
        verb = "would be removed" if self.dry_run else "removed"
        lines = [
            f"pairs {verb}: {self.pairs}",
            f"window messages {verb}: {self.window_messages}",
            f"risk history points {verb}: {self.risk_points}",
            f"preserved case messages {verb}: {self.evidence_messages}",
            f"message texts {'that would be ' if self.dry_run else ''}blanked in case evidence: "
            f"{self.case_evidence_texts}",
        ]
        if self.cases_changed:
            where = ", ".join(f"{self.platform}/{space}/{number}" for space, number in self.cases_changed)
            lines.append(f"cases whose evidence {'would lose' if self.dry_run else 'lost'} messages: {where}")
        if self.held_pairs or self.held_cases:
            lines.append(
                f"kept under a preservation hold: {self.held_pairs} pairs, {self.held_cases} cases "
                "(they go when the hold ends)"
            )
        return lines


class _DryRunDone(Exception):
    """Rolls a dry run's transaction back: the counts are the real erasure's, nothing is kept."""


async def forget(
    store: RetentionWorkStore,
    *,
    platform: str,
    user_id: str,
    actor: Actor,
    now: datetime,
    dry_run: bool = False,
) -> ForgetReport:
    """Erase what Vigil keeps about ``user_id`` in every space of ``platform``, except what a hold covers.

    The request is audited (a case-less audit entry, and one in each case whose evidence lost messages); it
    names the member only by a salted pseudonym, so the audit trail does not keep what was erased. Case
    records (numbers, states, audit trails) stay. ``dry_run`` runs the same erasure and rolls it back.
    """
    if not user_id:
        raise ValueError("forget needs a user id")
    report = ForgetReport(platform=platform, found=False)
    try:
        async with store.transaction():
            erased = await store.erase_user(platform=platform, user_id=user_id, now=now)
            report = ForgetReport(
                platform=platform,
                found=any(
                    (
                        erased.pairs,
                        erased.held_pairs,
                        erased.held_cases,
                        erased.evidence_messages,
                        erased.case_evidence_texts,
                    )
                ),
                dry_run=dry_run,
                pairs=erased.pairs,
                window_messages=erased.window_messages,
                risk_points=erased.risk_points,
                evidence_messages=erased.evidence_messages,
                case_evidence_texts=erased.case_evidence_texts,
                held_pairs=erased.held_pairs,
                held_cases=erased.held_cases,
                cases_changed=erased.cases_changed,
            )
            if dry_run:
                raise _DryRunDone
            pseudonym = (await pseudonymiser(store))(f"{platform}:{user_id}")
            detail = {
                "member": pseudonym,
                "pairs": report.pairs,
                "window_messages": report.window_messages,
                "risk_points": report.risk_points,
                "evidence_messages": report.evidence_messages,
                "case_evidence_texts": report.case_evidence_texts,
                "held_pairs": report.held_pairs,
                "held_cases": report.held_cases,
            }
            # The request's own entry; then each changed case's trail says its evidence changed, and why.
            case_detail = {"member": pseudonym, "note": "a member's messages were erased on request"}
            entries: list[tuple[str, int | None, Mapping[str, object]]] = [(ALL_SPACES, None, detail)]
            entries += [(space_id, number, case_detail) for space_id, number in report.cases_changed]
            for space_id, case_number, entry in entries:
                await store.append_audit(
                    platform=platform,
                    space_id=space_id,
                    case_number=case_number,
                    at=now,
                    actor_id=actor.user_id,
                    action="forget",
                    detail=json.dumps(entry, sort_keys=True),
                )
    except _DryRunDone:
        return report
    logger.info(
        "erasure request on %s: %d pairs removed, %d pairs and %d cases kept under hold",
        platform,
        report.pairs,
        report.held_pairs,
        report.held_cases,
    )
    return report
