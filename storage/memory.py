"""``InMemoryStore``: the ``Store`` contract in plain Python dicts and lists, for tests.

It also proves that the core's storage ports (``vigil.bots.core.ports``) can be implemented by a second
backend. Its rules are ``SqliteStore``'s, one for one: case numbers per space, outbox revisions, what
*protects* a pair from retention, holds in erasure, deleted messages with their edits, window trimming.

Locking is also ``SqliteStore``'s: one ``asyncio.Lock``. Every operation holds it, and ``transaction()``
holds it from start to commit, so tasks sharing the store never see each other's uncommitted writes. The
task holding the lock may call store methods freely (they join its transaction). A transaction copies the
tables when it starts and puts the copy back if its block raises (cancellation included). An operation
checks everything before it changes anything, so on its own, or inside a transaction, it is all or nothing.

Nothing is written to disk and nothing is encrypted. ``close()`` keeps the data, so opening the same
instance again is like reopening a database file after a restart. Row ids only go up and are never handed
out again once committed (SQLite gives a new row the id of the newest row deleted before it), and each
transaction's copy costs time in proportion to the data held: fine for tests, not for production volumes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import logging
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, NamedTuple, Self, TypeVar

from vigil.bots.core.cases import AuditEvent, CaseState
from vigil.bots.core.models import (
    ANY_PLATFORM,
    Alert,
    AlertStatus,
    DeliveryScope,
    OutboxItem,
    OutboxKind,
    PairKey,
    PairState,
    RiskPoint,
    SpaceSettings,
    WindowMessage,
)
from vigil.bots.core.pairing import TurnMemory
from vigil.bots.core.ports import CaseRecord, FenceToken, PairChanges, StoreError, UserErasure
from vigil.storage.claims import claim_prefix, new_claim_token

__all__ = ["InMemoryStore"]

logger = logging.getLogger(__name__)

_MAX_DELIVERY_ERROR_CHARS = 500
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_Row = TypeVar("_Row")

# A case protects its pair while its alert is open and its state is one of these (not escalated), or while
# a hold covers it.
_PROTECTING_STATES = frozenset({CaseState.OPEN, CaseState.CLAIMED, CaseState.CONFIRMED})

# (platform, space_id, channel_id, thread_id), thread_id "" outside a thread (as SqliteStore keys it).
_LocationKey = tuple[str, str, str, str]


class _WindowRow(NamedTuple):
    seq: int  # insertion order across every window
    message: WindowMessage


class _RiskRow(NamedTuple):
    point_id: int
    point: RiskPoint


class _EvidenceRow(NamedTuple):
    evidence_id: int
    message: WindowMessage


class _AuditRow(NamedTuple):
    platform: str
    space_id: str
    case_number: int | None
    event: AuditEvent


class _TurnRow(NamedTuple):
    turns: str
    last_at: datetime
    saved_at: datetime


@dataclasses.dataclass(slots=True, kw_only=True)
class _Tables:
    """Every table of the store. The values are immutable; ``copy`` copies the containers only."""

    # (platform, space_id) -> message_id -> seen_at
    seen: dict[tuple[str, str], dict[str, datetime]] = dataclasses.field(default_factory=dict)
    pair_ids: dict[PairKey, int] = dataclasses.field(default_factory=dict)
    # pair_id -> state; ids only grow, so the dict's order is the pairs' insertion order.
    pairs: dict[int, PairState] = dataclasses.field(default_factory=dict)
    windows: dict[int, list[_WindowRow]] = dataclasses.field(default_factory=dict)
    risks: dict[int, list[_RiskRow]] = dataclasses.field(default_factory=dict)
    # alert_id -> the alert with its case columns, in creation order; alerts are never deleted.
    alerts: dict[int, CaseRecord] = dataclasses.field(default_factory=dict)
    alerts_by_pair: dict[PairKey, list[int]] = dataclasses.field(default_factory=dict)
    alerts_by_case: dict[tuple[str, str, int], int] = dataclasses.field(default_factory=dict)
    case_counters: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)
    outbox: dict[int, OutboxItem] = dataclasses.field(default_factory=dict)
    # item_id -> (claim token, lease end): the claim columns of SQLite's outbox. Items are stored claim=None.
    outbox_claims: dict[int, tuple[str, datetime]] = dataclasses.field(default_factory=dict)
    settings: dict[tuple[str, str], SpaceSettings] = dataclasses.field(default_factory=dict)
    # namespace -> key -> value
    records: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    audit: list[_AuditRow] = dataclasses.field(default_factory=list)
    evidence: dict[int, list[_EvidenceRow]] = dataclasses.field(default_factory=dict)
    turn_memory: dict[_LocationKey, _TurnRow] = dataclasses.field(default_factory=dict)
    # Scale-out fencing: (stream, partition) -> the highest lease token that wrote (PartitionFences).
    fences: dict[tuple[str, int], FenceToken] = dataclasses.field(default_factory=dict)
    # The last id handed out per kind of row (a rolled-back transaction hands its ids out again).
    last_pair_id: int = 0
    last_seq: int = 0
    last_point_id: int = 0
    last_alert_id: int = 0
    last_item_id: int = 0
    last_event_id: int = 0
    last_evidence_id: int = 0

    def copy(self) -> _Tables:
        return _Tables(
            seen={space: dict(ids) for space, ids in self.seen.items()},
            pair_ids=dict(self.pair_ids),
            pairs=dict(self.pairs),
            windows={pair_id: list(rows) for pair_id, rows in self.windows.items()},
            risks={pair_id: list(rows) for pair_id, rows in self.risks.items()},
            alerts=dict(self.alerts),
            alerts_by_pair={key: list(ids) for key, ids in self.alerts_by_pair.items()},
            alerts_by_case=dict(self.alerts_by_case),
            case_counters=dict(self.case_counters),
            outbox=dict(self.outbox),
            outbox_claims=dict(self.outbox_claims),
            settings=dict(self.settings),
            records={namespace: dict(values) for namespace, values in self.records.items()},
            audit=list(self.audit),
            evidence={alert_id: list(rows) for alert_id, rows in self.evidence.items()},
            turn_memory=dict(self.turn_memory),
            fences=dict(self.fences),
            last_pair_id=self.last_pair_id,
            last_seq=self.last_seq,
            last_point_id=self.last_point_id,
            last_alert_id=self.last_alert_id,
            last_item_id=self.last_item_id,
            last_event_id=self.last_event_id,
            last_evidence_id=self.last_evidence_id,
        )


class InMemoryStore:
    """The in-memory ``Store``: ``SqliteStore``'s behaviour without SQLite, persistence or encryption."""

    def __init__(self) -> None:
        self._tables = _Tables()
        self._is_open = False
        self._lock = asyncio.Lock()
        self._lock_holder: asyncio.Task[Any] | None = None

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        async with self._exclusive():
            if self._is_open:
                raise StoreError("The in-memory store is already open.")
            self._is_open = True
        logger.info("Opened an in-memory store")

    async def close(self) -> None:
        async with self._exclusive():
            if not self._is_open:
                return
            self._is_open = False
        logger.info("Closed an in-memory store")

    # ------------------------------------------------------------------ locking and transactions

    def transaction(self) -> AbstractAsyncContextManager[None]:
        """Everything inside commits together, or rolls back when the block raises (and re-raises).

        Nested use in the same task joins the outer transaction.
        """
        return self._transaction()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        async with self._exclusive() as joined:
            if joined:
                yield
                return
            saved = self._require_open().copy()
            try:
                yield
            except BaseException:
                self._tables = saved
                raise
            if not self._is_open:
                self._tables = saved
                raise StoreError(
                    "The in-memory store was closed during a transaction; nothing in it was saved."
                )

    @asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[bool]:
        """Hold the store lock; yields True when the current task already held it (a join)."""
        task = asyncio.current_task()
        if task is not None and self._lock_holder is task:
            yield True
            return
        async with self._lock:
            self._lock_holder = task
            try:
                yield False
            finally:
                self._lock_holder = None

    @asynccontextmanager
    async def _tables_locked(self) -> AsyncIterator[_Tables]:
        """One operation: the tables, under the lock (joining the caller's transaction, if any)."""
        async with self._exclusive():
            yield self._require_open()

    def _require_open(self) -> _Tables:
        if not self._is_open:
            raise StoreError("The in-memory store is not open; call open() or use 'async with' first.")
        return self._tables

    # ------------------------------------------------------------------ messages and pairs

    async def claim_message(
        self, *, platform: str, space_id: str, message_id: str, seen_at: datetime
    ) -> bool:
        seen_at = _utc(seen_at)
        async with self._tables_locked() as tables:
            seen = tables.seen.setdefault((platform, space_id), {})
            if message_id in seen:
                return False
            seen[message_id] = seen_at
            return True

    async def claim_messages(
        self, *, platform: str, space_id: str, message_ids: Sequence[str], seen_at: datetime
    ) -> frozenset[str]:
        seen_at = _utc(seen_at)
        async with self._tables_locked() as tables:
            seen = tables.seen.setdefault((platform, space_id), {})
            claimed: set[str] = set()
            for message_id in message_ids:
                if message_id not in seen:
                    seen[message_id] = seen_at
                    claimed.add(message_id)
            return frozenset(claimed)

    async def seen_message_ids(
        self, *, platform: str, space_id: str, message_ids: Sequence[str]
    ) -> frozenset[str]:
        if not message_ids:
            return frozenset()
        async with self._tables_locked() as tables:
            seen = tables.seen.get((platform, space_id), {})
            return frozenset(message_id for message_id in message_ids if message_id in seen)

    async def last_claimed_at(self, *, platform: str, space_id: str) -> datetime | None:
        async with self._tables_locked() as tables:
            return max(tables.seen.get((platform, space_id), {}).values(), default=None)

    async def load_pair(self, key: PairKey) -> PairState | None:
        async with self._tables_locked() as tables:
            pair_id = tables.pair_ids.get(key)
            return None if pair_id is None else tables.pairs[pair_id]

    async def save_pair(self, state: PairState) -> None:
        state = dataclasses.replace(
            state,
            first_seen=_utc(state.first_seen),
            last_seen=_utc(state.last_seen),
            channel_ids=tuple(state.channel_ids),
            snoozed_until=_optional_utc(state.snoozed_until),
        )
        async with self._tables_locked() as tables:
            if not state.key.user_a < state.key.user_b:
                raise StoreError(
                    "In-memory store error while saving a pair: CHECK constraint failed: user_a < user_b"
                )
            # An upsert: the pair keeps its id, its place in the order and its window.
            pair_id = tables.pair_ids.get(state.key)
            if pair_id is None:
                tables.last_pair_id += 1
                pair_id = tables.last_pair_id
                tables.pair_ids[state.key] = pair_id
            tables.pairs[pair_id] = state

    async def load_pairs(self, keys: Collection[PairKey]) -> dict[PairKey, PairState]:
        async with self._tables_locked() as tables:
            return {
                key: tables.pairs[pair_id]
                for key in keys
                if (pair_id := tables.pair_ids.get(key)) is not None
            }

    async def apply_pair_changes(self, changes: PairChanges) -> None:
        if changes.keep < 0:
            raise ValueError("keep must not be negative")
        # All or nothing, as SQLite's savepoint makes it: checked before anything is written, so a caller
        # that catches the error inside its own transaction finds nothing half applied.
        async with self._transaction():
            saved = {state.key for state in changes.pairs}
            stored = await self.load_pairs([*(k for k, _ in changes.window), *(p.key for p in changes.risks)])
            for key, action in [
                *((key, "append_window") for key, _ in changes.window),
                *((point.key, "append_risk") for point in changes.risks),
            ]:
                if key not in saved and key not in stored:
                    async with self._tables_locked() as tables:
                        _require_pair_id(tables, key, action=action)
            for state in changes.pairs:
                await self.save_pair(state)
            for key, message in changes.window:
                await self.append_window(key, message, keep=changes.keep)
            for point in changes.risks:
                await self.append_risk(point)

    async def pairs_for_user(self, *, platform: str, space_id: str, user_id: str) -> list[PairState]:
        async with self._tables_locked() as tables:
            return [
                state
                for state in tables.pairs.values()
                if state.key.platform == platform
                and state.key.space_id == space_id
                and user_id in (state.key.user_a, state.key.user_b)
            ]

    async def count_pairs(self) -> int:
        async with self._tables_locked() as tables:
            return len(tables.pairs)

    async def iter_pairs(self, *, batch: int) -> AsyncIterator[list[PairState]]:
        """Every pair, ``batch`` at a time, in insertion order; the lock is not held between batches."""
        if batch < 1:
            raise ValueError("batch must be at least 1")
        after_pair_id = 0
        while True:
            async with self._tables_locked() as tables:
                rows = list(
                    itertools.islice(
                        (
                            (pair_id, state)
                            for pair_id, state in tables.pairs.items()
                            if pair_id > after_pair_id
                        ),
                        batch,
                    )
                )
            if not rows:
                return
            yield [state for _, state in rows]
            if len(rows) < batch:
                return
            after_pair_id = rows[-1][0]

    # ------------------------------------------------------------------ windows and risk history

    async def append_window(self, key: PairKey, message: WindowMessage, *, keep: int) -> None:
        if keep < 0:
            raise ValueError("keep must not be negative")
        message = _stored_message(message)
        async with self._tables_locked() as tables:
            pair_id = _require_pair_id(tables, key, action="append_window")
            tables.last_seq += 1
            rows = tables.windows.setdefault(pair_id, [])
            rows.append(_WindowRow(tables.last_seq, message))
            # Only the newest ``keep`` stay (none at all when keep is 0, the new message included).
            del rows[: max(0, len(rows) - keep)]

    async def forget_message(self, *, platform: str, space_id: str, message_id: str, now: datetime) -> int:
        now = _utc(now)
        edits = message_id + ":edit:"

        def deleted(row: _WindowRow) -> bool:
            return row.message.message_id == message_id or row.message.message_id.startswith(edits)

        removed = 0
        async with self._tables_locked() as tables:
            for pair_id, rows in tables.windows.items():
                key = tables.pairs[pair_id].key
                if key.platform != platform or key.space_id != space_id:
                    continue
                kept = [row for row in rows if not deleted(row)]
                if len(kept) == len(rows) or _protected(tables, key, now=now):
                    continue
                removed += len(rows) - len(kept)
                rows[:] = kept
        return removed

    async def load_window(self, key: PairKey) -> list[WindowMessage]:
        async with self._tables_locked() as tables:
            pair_id = tables.pair_ids.get(key)
            rows = [] if pair_id is None else tables.windows.get(pair_id, [])
            return [row.message for row in rows]

    async def append_risk(self, point: RiskPoint) -> None:
        point = dataclasses.replace(point, timestamp=_utc(point.timestamp))
        async with self._tables_locked() as tables:
            pair_id = _require_pair_id(tables, point.key, action="append_risk")
            tables.last_point_id += 1
            tables.risks.setdefault(pair_id, []).append(_RiskRow(tables.last_point_id, point))

    async def risk_history(self, key: PairKey, *, limit: int) -> list[RiskPoint]:
        """The newest ``limit`` points, oldest first (in the order they were appended)."""
        if limit < 0:
            raise ValueError("limit must not be negative")
        async with self._tables_locked() as tables:
            pair_id = tables.pair_ids.get(key)
            rows = [] if pair_id is None or limit == 0 else tables.risks.get(pair_id, [])[-limit:]
            return [row.point for row in rows]

    # ------------------------------------------------------------------ alerts

    async def create_alert(self, alert: Alert) -> Alert:
        """Store ``alert`` with a new ``alert_id`` and its space's next case number (inputs ignored)."""
        stored = dataclasses.replace(_alert_values(alert), created_at=_utc(alert.created_at))
        key = alert.key
        async with self._tables_locked() as tables:
            if stored.status == AlertStatus.OPEN and _open_alert_id(tables, key) is not None:
                raise StoreError(_one_open_alert_per_pair("creating an alert"))
            space = (key.platform, key.space_id)
            case_number = tables.case_counters.get(space, 0) + 1
            tables.case_counters[space] = case_number
            tables.last_alert_id += 1
            alert_id = tables.last_alert_id
            tables.alerts[alert_id] = CaseRecord(
                alert=dataclasses.replace(stored, alert_id=alert_id, case_number=case_number)
            )
            tables.alerts_by_pair.setdefault(key, []).append(alert_id)
            tables.alerts_by_case[(key.platform, key.space_id, case_number)] = alert_id
        return dataclasses.replace(alert, alert_id=alert_id, case_number=case_number)

    async def update_alert(self, alert: Alert) -> None:
        """Overwrite the alert's mutable fields; its pair, case number and ``created_at`` never change.

        A ``delivery_ref`` of None keeps the stored one, so a copy read before the delivery landed cannot
        erase the handle the outbox worker recorded.
        """
        values = _alert_values(alert)
        async with self._tables_locked() as tables:
            case = tables.alerts.get(alert.alert_id)
            if case is None:
                raise StoreError(f"No alert {alert.alert_id} in the in-memory store to update.")
            updated = _updated_alert(case.alert, values)
            _check_one_open_alert(tables, updated, action="updating an alert")
            tables.alerts[alert.alert_id] = dataclasses.replace(case, alert=updated)

    async def get_alert(self, alert_id: int) -> Alert | None:
        async with self._tables_locked() as tables:
            case = tables.alerts.get(alert_id)
            return None if case is None else case.alert

    async def open_alert_for_pair(self, key: PairKey) -> Alert | None:
        async with self._tables_locked() as tables:
            alert_id = _open_alert_id(tables, key)
            return None if alert_id is None else tables.alerts[alert_id].alert

    async def open_alerts_for_pairs(self, keys: Collection[PairKey]) -> dict[PairKey, Alert]:
        async with self._tables_locked() as tables:
            return {
                key: tables.alerts[alert_id].alert
                for key in keys
                if (alert_id := _open_alert_id(tables, key)) is not None
            }

    async def open_alert_keys(self) -> list[PairKey]:
        async with self._tables_locked() as tables:
            return sorted(
                record.alert.key
                for record in tables.alerts.values()
                if record.alert.status == AlertStatus.OPEN
            )

    async def alerts_for_space(self, *, platform: str, space_id: str, limit: int) -> list[Alert]:
        """Newest first, by case number (the order the alerts were created in)."""
        if limit < 0:
            raise ValueError("limit must not be negative")
        async with self._tables_locked() as tables:
            cases = _cases_of_space(tables, platform=platform, space_id=space_id)
        return [case.alert for case in _newest_first(cases)[:limit]]

    async def count_alerts_since(self, *, platform: str, space_id: str, since: datetime) -> int:
        since = _utc(since)
        async with self._tables_locked() as tables:
            cases = _cases_of_space(tables, platform=platform, space_id=space_id)
        return sum(1 for case in cases if case.alert.created_at >= since)

    # ------------------------------------------------------------------ outbox

    async def enqueue_delivery(
        self, *, alert_id: int, kind: OutboxKind, revision: int, now: datetime
    ) -> None:
        now = _utc(now)
        async with self._tables_locked() as tables:
            if alert_id not in tables.alerts:
                raise StoreError(
                    "In-memory store error while queueing an alert delivery: FOREIGN KEY constraint failed "
                    f"(no alert {alert_id})"
                )
            pending = next(
                (item for item in tables.outbox.values() if item.alert_id == alert_id and item.kind == kind),
                None,
            )
            if pending is None:
                tables.last_item_id += 1
                tables.outbox[tables.last_item_id] = OutboxItem(
                    item_id=tables.last_item_id,
                    alert_id=alert_id,
                    kind=kind,
                    revision=revision,
                    attempts=0,
                    next_attempt_at=now,
                    last_error=None,
                )
            else:
                # At most one pending item per (alert, kind): the newest revision, due at the earliest time.
                tables.outbox[pending.item_id] = dataclasses.replace(
                    pending,
                    revision=max(pending.revision, revision),
                    next_attempt_at=min(pending.next_attempt_at, now),
                )

    async def due_deliveries(self, *, now: datetime, limit: int) -> list[OutboxItem]:
        """Items due at ``now`` and not claimed, oldest first; an UPDATE waits while its alert's POST is
        pending."""
        if limit < 0:
            raise ValueError("limit must not be negative")
        now = _utc(now)
        async with self._tables_locked() as tables:
            return _due_items(tables, now=now, limit=limit)

    async def claim_deliveries(
        self, *, now: datetime, limit: int, lease: timedelta, worker: str, scope: DeliveryScope = ANY_PLATFORM
    ) -> list[OutboxItem]:
        if limit < 0:
            raise ValueError("limit must not be negative")
        if lease <= timedelta(0):
            raise ValueError("lease must be positive")
        now = _utc(now)
        claim = new_claim_token(worker)
        async with self._tables_locked() as tables:
            due = _due_items(tables, now=now, limit=limit, scope=scope)
            for item in due:
                tables.outbox_claims[item.item_id] = (claim, now + lease)
        return [dataclasses.replace(item, claim=claim) for item in due]

    async def release_claims(self, *, worker: str) -> int:
        prefix = claim_prefix(worker)
        async with self._tables_locked() as tables:
            released = [
                item_id for item_id, (claim, _) in tables.outbox_claims.items() if claim.startswith(prefix)
            ]
            for item_id in released:
                del tables.outbox_claims[item_id]
        return len(released)

    async def extend_claim(self, *, claim: str, until: datetime) -> int:
        until = _utc(until)
        async with self._tables_locked() as tables:
            held = [item_id for item_id, (token, _) in tables.outbox_claims.items() if token == claim]
            for item_id in held:
                tables.outbox_claims[item_id] = (claim, until)
        return len(held)

    async def complete_delivery(
        self, item_id: int, *, alert_id: int, revision: int, ref: str | None, claim: str | None = None
    ) -> bool:
        async with self._tables_locked() as tables:
            if claim is not None and _claim_of(tables, item_id) != claim:
                return False
            # The alert as delivered covers every pending item of it up to that revision (a post and an
            # update due together); a newer revision enqueued meanwhile stays, and so does another's claim.
            done = [
                item.item_id
                for item in tables.outbox.values()
                if (
                    item.item_id == item_id
                    or (item.alert_id == alert_id and _claim_of(tables, item.item_id) in (None, claim))
                )
                and item.revision <= revision
            ]
            for done_id in done:
                del tables.outbox[done_id]
                tables.outbox_claims.pop(done_id, None)
            if claim is not None:
                # A newer revision enqueued during the post is due again at once, for any worker.
                for held_id in [
                    item.item_id
                    for item in tables.outbox.values()
                    if (item.item_id == item_id or item.alert_id == alert_id)
                    and _claim_of(tables, item.item_id) == claim
                ]:
                    del tables.outbox_claims[held_id]
            case = tables.alerts.get(alert_id)
            if ref is not None and case is not None:
                tables.alerts[alert_id] = dataclasses.replace(
                    case, alert=dataclasses.replace(case.alert, delivery_ref=ref)
                )
        return True

    async def fail_delivery(
        self, item_id: int, *, error: str, next_attempt_at: datetime, claim: str | None = None
    ) -> bool:
        next_attempt_at = _utc(next_attempt_at)
        async with self._tables_locked() as tables:
            item = tables.outbox.get(item_id)
            if item is None or (claim is not None and _claim_of(tables, item_id) != claim):
                return False
            tables.outbox[item_id] = dataclasses.replace(
                item,
                attempts=item.attempts + 1,
                last_error=error[:_MAX_DELIVERY_ERROR_CHARS],
                next_attempt_at=next_attempt_at,
            )
            tables.outbox_claims.pop(item_id, None)
        return True

    async def pending_delivery_count(self) -> int:
        async with self._tables_locked() as tables:
            return len(tables.outbox)

    # ------------------------------------------------------------------ space settings

    async def get_space_settings(self, *, platform: str, space_id: str) -> SpaceSettings | None:
        async with self._tables_locked() as tables:
            return tables.settings.get((platform, space_id))

    async def put_space_settings(self, settings: SpaceSettings) -> None:
        settings = dataclasses.replace(
            settings,
            ignored_channel_ids=frozenset(settings.ignored_channel_ids),
            shadow_mode=None if settings.shadow_mode is None else bool(settings.shadow_mode),
        )
        async with self._tables_locked() as tables:
            tables.settings[(settings.platform, settings.space_id)] = settings

    # ------------------------------------------------------------------ records (namespaced key-value)

    async def put_record(self, namespace: str, key: str, value: str) -> None:
        async with self._tables_locked() as tables:
            tables.records.setdefault(namespace, {})[key] = value

    async def get_record(self, namespace: str, key: str) -> str | None:
        async with self._tables_locked() as tables:
            return tables.records.get(namespace, {}).get(key)

    async def delete_record(self, namespace: str, key: str) -> bool:
        async with self._tables_locked() as tables:
            values = tables.records.get(namespace)
            if values is None or key not in values:
                return False
            del values[key]
            if not values:
                del tables.records[namespace]
            return True

    async def list_records(self, namespace: str) -> dict[str, str]:
        async with self._tables_locked() as tables:
            # By key: code point order, which is the byte order of SQLite's UTF-8 comparison.
            return dict(sorted(tables.records.get(namespace, {}).items()))

    # ------------------------------------------------------------------ cases

    async def get_case(self, *, platform: str, space_id: str, case_number: int) -> CaseRecord | None:
        async with self._tables_locked() as tables:
            alert_id = tables.alerts_by_case.get((platform, space_id, case_number))
            return None if alert_id is None else tables.alerts[alert_id]

    async def case_for_alert(self, alert_id: int) -> CaseRecord | None:
        async with self._tables_locked() as tables:
            return tables.alerts.get(alert_id)

    async def update_case(self, case: CaseRecord) -> None:
        values = _alert_values(case.alert)
        hold_until = _optional_utc(case.hold_until)
        closed_at = _optional_utc(case.closed_at)
        text_purged_at = _optional_utc(case.text_purged_at)
        alert_id = case.alert.alert_id
        async with self._tables_locked() as tables:
            stored = tables.alerts.get(alert_id)
            if stored is None:
                raise StoreError(f"No case (alert {alert_id}) in the in-memory store to update.")
            alert = _updated_alert(stored.alert, values)
            _check_one_open_alert(tables, alert, action="updating a case")
            tables.alerts[alert_id] = CaseRecord(
                alert=alert,
                state=case.state,
                source=case.source,
                claimed_by=case.claimed_by,
                dismiss_reason=case.dismiss_reason,
                hold_until=hold_until,
                closed_at=closed_at,
                text_purged_at=text_purged_at,
            )

    async def list_cases(
        self,
        *,
        platform: str,
        space_id: str,
        limit: int,
        user_id: str | None = None,
        before_case_number: int | None = None,
    ) -> list[CaseRecord]:
        if limit < 0:
            raise ValueError("limit must not be negative")
        async with self._tables_locked() as tables:
            cases = _cases_of_space(tables, platform=platform, space_id=space_id)
        if user_id is not None:
            cases = [
                case
                for case in cases
                if user_id in (case.alert.suspect_id, case.alert.key.user_a, case.alert.key.user_b)
            ]
        if before_case_number is not None:
            cases = [case for case in cases if case.alert.case_number < before_case_number]
        return _newest_first(cases)[:limit]

    async def iter_cases(self, *, platform: str | None, batch: int) -> AsyncIterator[list[CaseRecord]]:
        """Every case (of ``platform``, or all), oldest first; the lock is not held between batches."""
        if batch < 1:
            raise ValueError("batch must be at least 1")
        after_alert_id = 0
        while True:
            async with self._tables_locked() as tables:
                rows = list(
                    itertools.islice(
                        (
                            (alert_id, case)
                            for alert_id, case in tables.alerts.items()
                            if alert_id > after_alert_id
                            and (platform is None or case.alert.key.platform == platform)
                        ),
                        batch,
                    )
                )
            if not rows:
                return
            yield [case for _, case in rows]
            if len(rows) < batch:
                return
            after_alert_id = rows[-1][0]

    # ------------------------------------------------------------------ audit trail

    async def append_audit(
        self,
        *,
        platform: str,
        space_id: str,
        case_number: int | None,
        at: datetime,
        actor_id: str,
        action: str,
        before: str | None = None,
        after: str | None = None,
        detail: str | None = None,
    ) -> AuditEvent:
        at = _utc(at)
        async with self._tables_locked() as tables:
            tables.last_event_id += 1
            event = AuditEvent(
                event_id=tables.last_event_id,
                case_number=0 if case_number is None else case_number,
                at=at,
                actor_id=actor_id,
                action=action,
                before=before,
                after=after,
                detail=detail,
            )
            tables.audit.append(_AuditRow(platform, space_id, case_number, event))
        return event

    async def audit_events(
        self, *, platform: str, space_id: str, case_number: int | None
    ) -> list[AuditEvent]:
        async with self._tables_locked() as tables:
            # None matches only the entries about no case (SQL's ``IS``).
            return [
                row.event
                for row in tables.audit
                if row.platform == platform and row.space_id == space_id and row.case_number == case_number
            ]

    # ------------------------------------------------------------------ preserved evidence

    async def preserve_evidence(self, *, alert_id: int, messages: Sequence[WindowMessage]) -> int:
        stored = [_stored_message(message) for message in messages]
        async with self._tables_locked() as tables:
            if not stored:
                return 0
            if alert_id not in tables.alerts:
                raise StoreError(
                    "In-memory store error while preserving case evidence: FOREIGN KEY constraint failed "
                    f"(no alert {alert_id})"
                )
            rows = tables.evidence.setdefault(alert_id, [])
            present = {row.message.message_id for row in rows}
            added = 0
            for message in stored:
                if message.message_id in present:
                    continue
                tables.last_evidence_id += 1
                rows.append(_EvidenceRow(tables.last_evidence_id, message))
                present.add(message.message_id)
                added += 1
            return added

    async def load_evidence(self, alert_id: int) -> list[WindowMessage]:
        async with self._tables_locked() as tables:
            rows = sorted(
                tables.evidence.get(alert_id, []), key=lambda row: (row.message.timestamp, row.evidence_id)
            )
        return [row.message for row in rows]

    # ------------------------------------------------------------------ retention
    #
    # Under a limit, rows go in the order SqliteStore's indexes give: oldest first, then by id.

    async def purge_window_messages(
        self, *, older_than: datetime, now: datetime, limit: int, dry_run: bool = False
    ) -> int:
        older_than, now = _utc(older_than), _utc(now)
        _check_purge_limit(limit)
        async with self._tables_locked() as tables:
            candidates = sorted(
                (row.message.timestamp, row.seq, pair_id)
                for pair_id, rows in tables.windows.items()
                if not _protected(tables, tables.pairs[pair_id].key, now=now)
                for row in rows
                if row.message.timestamp < older_than
            )
            if dry_run:
                return len(candidates)
            _remove_rows(tables.windows, candidates[:limit], row_id=lambda row: row.seq)
            return min(limit, len(candidates))

    async def purge_idle_pairs(
        self, *, idle_since: datetime, now: datetime, limit: int, dry_run: bool = False
    ) -> int:
        idle_since, now = _utc(idle_since), _utc(now)
        _check_purge_limit(limit)
        async with self._tables_locked() as tables:
            candidates = sorted(
                (state.last_seen, pair_id)
                for pair_id, state in tables.pairs.items()
                if state.last_seen < idle_since
                and (state.snoozed_until is None or state.snoozed_until <= now)
                and not _protected(tables, state.key, now=now)
            )
            if dry_run:
                return len(candidates)
            for _, pair_id in candidates[:limit]:
                _delete_pair(tables, pair_id)
            return min(limit, len(candidates))

    async def purge_case_texts(
        self, *, dismissed_before: datetime, now: datetime, limit: int, dry_run: bool = False
    ) -> int:
        _check_purge_limit(limit)
        now, dismissed_before = _utc(now), _utc(dismissed_before)

        def purgeable(case: CaseRecord) -> bool:
            if case.text_purged_at is not None or (case.hold_until is not None and case.hold_until > now):
                return False
            if case.state == CaseState.DISMISSED:
                return case.closed_at is not None and case.closed_at < dismissed_before
            return case.state == CaseState.ESCALATED

        def order(case: CaseRecord) -> tuple[bool, bool, datetime, int]:
            # Dismissed cases first, then escalated ones; each by when it was closed (never: first), then id.
            closed_at = case.closed_at
            return (
                case.state != CaseState.DISMISSED,
                closed_at is not None,
                closed_at or _EPOCH,
                case.alert.alert_id,
            )

        async with self._tables_locked() as tables:
            candidates = sorted((case for case in tables.alerts.values() if purgeable(case)), key=order)
            if dry_run:
                return len(candidates)
            for case in candidates[:limit]:
                # Texts are blanked; ids, times and scores stay for the record.
                blank = tuple(dataclasses.replace(message, text="") for message in case.alert.evidence)
                alert_id = case.alert.alert_id
                tables.alerts[alert_id] = dataclasses.replace(
                    case, alert=dataclasses.replace(case.alert, evidence=blank), text_purged_at=now
                )
                tables.evidence.pop(alert_id, None)
            return min(limit, len(candidates))

    async def purge_seen_messages(self, *, older_than: datetime, limit: int, dry_run: bool = False) -> int:
        older_than = _utc(older_than)
        _check_purge_limit(limit)
        async with self._tables_locked() as tables:
            candidates = sorted(
                (seen_at, platform, space_id, message_id)
                for (platform, space_id), seen in tables.seen.items()
                for message_id, seen_at in seen.items()
                if seen_at < older_than
            )
            if dry_run:
                return len(candidates)
            for _, platform, space_id, message_id in candidates[:limit]:
                seen = tables.seen[(platform, space_id)]
                del seen[message_id]
                if not seen:
                    del tables.seen[(platform, space_id)]
            return min(limit, len(candidates))

    async def save_turn_memory(self, memory: TurnMemory, *, saved_at: datetime) -> None:
        platform, space_id, channel_id, thread_id = memory.location
        row = _TurnRow(turns=memory.turns, last_at=_utc(memory.last_at), saved_at=_utc(saved_at))
        async with self._tables_locked() as tables:
            tables.turn_memory[(platform, space_id, channel_id, thread_id or "")] = row

    async def advance_fence(self, *, stream: str, partition: int, token: FenceToken) -> bool:
        async with self._tables_locked() as tables:
            if tables.fences.get((stream, partition), token) > token:
                return False
            tables.fences[(stream, partition)] = token
            return True

    async def load_turn_memory(self, *, limit: int) -> list[TurnMemory]:
        async with self._tables_locked() as tables:
            rows = sorted(tables.turn_memory.items())
        rows.sort(key=lambda item: item[1].last_at, reverse=True)
        # A negative limit is no limit, as SQL's LIMIT reads it.
        if limit >= 0:
            rows = rows[:limit]
        return [
            TurnMemory(
                location=(platform, space_id, channel_id, thread_id or None),
                turns=row.turns,
                # Through the stored microsecond timestamp, as SqliteStore reads it back.
                last_at_s=row.last_at.timestamp(),
            )
            for (platform, space_id, channel_id, thread_id), row in rows
        ]

    async def purge_turn_memory(self, *, saved_before: datetime, limit: int, dry_run: bool = False) -> int:
        saved_before = _utc(saved_before)
        _check_purge_limit(limit)
        async with self._tables_locked() as tables:
            candidates = sorted(
                (row.saved_at, location)
                for location, row in tables.turn_memory.items()
                if row.saved_at < saved_before
            )
            if dry_run:
                return len(candidates)
            for _, location in candidates[:limit]:
                del tables.turn_memory[location]
            return min(limit, len(candidates))

    async def purge_risk_history(
        self, *, older_than: datetime, now: datetime, limit: int, dry_run: bool = False
    ) -> int:
        older_than, now = _utc(older_than), _utc(now)
        _check_purge_limit(limit)
        async with self._tables_locked() as tables:
            candidates = sorted(
                (row.point.timestamp, row.point_id, pair_id)
                for pair_id, rows in tables.risks.items()
                if not _protected(tables, tables.pairs[pair_id].key, now=now)
                for row in rows
                if row.point.timestamp < older_than
            )
            if dry_run:
                return len(candidates)
            _remove_rows(tables.risks, candidates[:limit], row_id=lambda row: row.point_id)
            return min(limit, len(candidates))

    # ------------------------------------------------------------------ erasure

    async def erase_user(self, *, platform: str, user_id: str, now: datetime) -> UserErasure:
        now = _utc(now)
        pairs = window_messages = risk_points = evidence_messages = evidence_texts = 0
        held_pairs = held_cases = 0
        cases_changed: list[tuple[str, int]] = []
        async with self._tables_locked() as tables:
            their_pairs = [
                (pair_id, state.key)
                for pair_id, state in tables.pairs.items()
                if state.key.platform == platform and user_id in (state.key.user_a, state.key.user_b)
            ]
            for pair_id, key in their_pairs:
                if _held(tables, key, now=now):
                    held_pairs += 1
                    continue
                window_messages += len(tables.windows.get(pair_id, ()))
                risk_points += len(tables.risks.get(pair_id, ()))
                _delete_pair(tables, pair_id)
                pairs += 1
            their_cases = sorted(
                (
                    case
                    for case in tables.alerts.values()
                    if case.alert.key.platform == platform
                    and user_id in (case.alert.key.user_a, case.alert.key.user_b)
                ),
                key=lambda case: (case.alert.key.space_id, case.alert.case_number),
            )
            for case in their_cases:
                if case.hold_until is not None and case.hold_until > now:
                    held_cases += 1
                    continue
                alert = case.alert
                rows = tables.evidence.get(alert.alert_id, [])
                kept = [row for row in rows if row.message.author_id != user_id]
                removed = len(rows) - len(kept)
                if removed:
                    tables.evidence[alert.alert_id] = kept
                evidence_messages += removed
                theirs = [m for m in alert.evidence if m.author_id == user_id and m.text != ""]
                if removed or theirs:
                    cases_changed.append((alert.key.space_id, alert.case_number))
                if theirs:
                    evidence_texts += len(theirs)
                    blanked = tuple(
                        dataclasses.replace(m, text="") if m.author_id == user_id else m
                        for m in alert.evidence
                    )
                    tables.alerts[alert.alert_id] = dataclasses.replace(
                        case, alert=dataclasses.replace(alert, evidence=blanked)
                    )
            # Ids and times only, but theirs: every location whose memory names them (as JSON) goes.
            needle = json.dumps(user_id)
            for location in [
                location
                for location, row in tables.turn_memory.items()
                if location[0] == platform and needle in row.turns
            ]:
                del tables.turn_memory[location]
        return UserErasure(
            pairs=pairs,
            window_messages=window_messages,
            risk_points=risk_points,
            evidence_messages=evidence_messages,
            case_evidence_texts=evidence_texts,
            held_pairs=held_pairs,
            held_cases=held_cases,
            cases_changed=tuple(cases_changed),
        )


# ---------------------------------------------------------------------- table helpers


def _require_pair_id(tables: _Tables, key: PairKey, *, action: str) -> int:
    pair_id = tables.pair_ids.get(key)
    if pair_id is None:
        raise StoreError(f"{action}: no such pair in the in-memory store ({key}); save_pair must come first.")
    return pair_id


def _delete_pair(tables: _Tables, pair_id: int) -> None:
    """The pair with its window and risk history (SQLite's ON DELETE CASCADE)."""
    state = tables.pairs.pop(pair_id)
    del tables.pair_ids[state.key]
    tables.windows.pop(pair_id, None)
    tables.risks.pop(pair_id, None)


def _protected(tables: _Tables, key: PairKey, *, now: datetime) -> bool:
    """A case protects its pair while it is open and not escalated, or while a hold covers it."""
    for alert_id in tables.alerts_by_pair.get(key, ()):
        case = tables.alerts[alert_id]
        if case.alert.status == AlertStatus.OPEN and case.state in _PROTECTING_STATES:
            return True
        if case.hold_until is not None and case.hold_until > now:
            return True
    return False


def _held(tables: _Tables, key: PairKey, *, now: datetime) -> bool:
    return any(
        (hold_until := tables.alerts[alert_id].hold_until) is not None and hold_until > now
        for alert_id in tables.alerts_by_pair.get(key, ())
    )


def _remove_rows(
    rows_by_pair: dict[int, list[_Row]],
    chosen: Iterable[tuple[datetime, int, int]],
    *,
    row_id: Callable[[_Row], int],
) -> None:
    """Delete the chosen ``(timestamp, row id, pair id)`` rows from a per-pair table."""
    doomed: dict[int, set[int]] = {}
    for _, chosen_id, pair_id in chosen:
        doomed.setdefault(pair_id, set()).add(chosen_id)
    for pair_id, ids in doomed.items():
        rows_by_pair[pair_id] = [row for row in rows_by_pair[pair_id] if row_id(row) not in ids]


def _open_alert_id(tables: _Tables, key: PairKey) -> int | None:
    return next(
        (
            alert_id
            for alert_id in tables.alerts_by_pair.get(key, ())
            if tables.alerts[alert_id].alert.status == AlertStatus.OPEN
        ),
        None,
    )


def _check_one_open_alert(tables: _Tables, alert: Alert, *, action: str) -> None:
    """One open alert per pair (SqliteStore's unique index on open alerts)."""
    if alert.status != AlertStatus.OPEN:
        return
    open_id = _open_alert_id(tables, alert.key)
    if open_id is not None and open_id != alert.alert_id:
        raise StoreError(_one_open_alert_per_pair(action))


def _one_open_alert_per_pair(action: str) -> str:
    return (
        f"In-memory store error while {action}: UNIQUE constraint failed: the pair already has an open "
        "alert (one open alert per pair)"
    )


def _cases_of_space(tables: _Tables, *, platform: str, space_id: str) -> list[CaseRecord]:
    return [
        case
        for case in tables.alerts.values()
        if case.alert.key.platform == platform and case.alert.key.space_id == space_id
    ]


def _newest_first(cases: Iterable[CaseRecord]) -> list[CaseRecord]:
    return sorted(cases, key=lambda case: case.alert.case_number, reverse=True)


def _check_purge_limit(limit: int) -> None:
    if limit < 1:
        raise ValueError("limit must be at least 1")


# ---------------------------------------------------------------------- value conversions
#
# Values are stored as SqliteStore reads them back: datetimes aware UTC, sequences as tuples.


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("naive datetime: the store takes timezone-aware UTC datetimes only")
    return moment.astimezone(UTC)


def _optional_utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else _utc(moment)


def _stored_message(message: WindowMessage) -> WindowMessage:
    return dataclasses.replace(message, timestamp=_utc(message.timestamp), signals=tuple(message.signals))


def _alert_values(alert: Alert) -> Alert:
    """``alert`` with its mutable fields checked and converted (``created_at`` is left as it is)."""
    return dataclasses.replace(
        alert,
        channel_ids=tuple(alert.channel_ids),
        signals=tuple(alert.signals),
        evidence=tuple(_stored_message(message) for message in alert.evidence),
        updated_at=_utc(alert.updated_at),
        shadow=bool(alert.shadow),
    )


def _updated_alert(stored: Alert, values: Alert) -> Alert:
    """``stored`` with the mutable fields of ``values``; a None ``delivery_ref`` keeps the stored one."""
    return dataclasses.replace(
        stored,
        status=values.status,
        risk=values.risk,
        peak_risk=values.peak_risk,
        suspect_id=values.suspect_id,
        other_id=values.other_id,
        channel_ids=values.channel_ids,
        signals=values.signals,
        evidence=values.evidence,
        updated_at=values.updated_at,
        revision=values.revision,
        shadow=values.shadow,
        model_name=values.model_name,
        delivery_ref=stored.delivery_ref if values.delivery_ref is None else values.delivery_ref,
    )


def _claim_of(tables: _Tables, item_id: int) -> str | None:
    held = tables.outbox_claims.get(item_id)
    return held[0] if held is not None else None


def _due_items(
    tables: _Tables, *, now: datetime, limit: int, scope: DeliveryScope = ANY_PLATFORM
) -> list[OutboxItem]:
    """SQLite's ``_DUE``: due, not under a live claim, no other item of its alert under one, and an UPDATE
    behind its alert's pending POST waits; of an alert whose platform ``scope`` covers."""
    posting = {item.alert_id for item in tables.outbox.values() if item.kind == OutboxKind.POST}
    leased = {item_id for item_id, (_, until) in tables.outbox_claims.items() if until > now}
    busy_alerts = {tables.outbox[item_id].alert_id for item_id in leased if item_id in tables.outbox}
    due = [
        item
        for item in tables.outbox.values()
        if item.next_attempt_at <= now
        and item.item_id not in leased
        and item.alert_id not in busy_alerts
        and not (item.kind == OutboxKind.UPDATE and item.alert_id in posting)
        and (scope.is_everything or _alert_covered(tables, item.alert_id, scope))
    ]
    due.sort(key=lambda item: (item.next_attempt_at, item.item_id))
    return due[:limit]


def _alert_covered(tables: _Tables, alert_id: int, scope: DeliveryScope) -> bool:
    case = tables.alerts.get(alert_id)
    return case is not None and scope.covers(case.alert.key.platform)
