"""``SqliteStore``: the ``Store`` contract on one aiosqlite connection.

One connection, one ``asyncio.Lock``: every operation holds the lock, and ``transaction()`` holds it from
``BEGIN IMMEDIATE`` to ``COMMIT``, so tasks sharing a store never see each other's uncommitted writes. The
task holding the lock may call store methods freely (they join its transaction). A task the holder spawns
and then awaits while holding a transaction would wait forever: keep such work outside the ``async with``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, closing
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiosqlite

from bots.core.models import (
    Alert,
    AlertStatus,
    OutboxItem,
    OutboxKind,
    PairKey,
    PairState,
    RiskPoint,
    SpaceSettings,
    WindowMessage,
)
from storage.migrations import apply_migrations, ensure_schema_not_too_new, read_schema_version
from storage.protocol import StoreError

__all__ = ["SqliteStore"]

logger = logging.getLogger(__name__)

_IN_MEMORY = ":memory:"
_MAX_DELIVERY_ERROR_CHARS = 500

_PAIR_COLUMNS = (
    "pair_id, platform, space_id, user_a, user_b, first_seen, last_seen, message_count, channel_ids, "
    "model_state, risk, suspect_id, above_threshold_streak, snoozed_until"
)
_PAIR_KEY_MATCH = "platform = ? AND space_id = ? AND user_a = ? AND user_b = ?"
_ALERT_COLUMNS = (
    "alert_id, platform, space_id, user_a, user_b, case_number, status, risk, peak_risk, suspect_id, "
    "other_id, channel_ids, signals, evidence, created_at, updated_at, revision, shadow, model_name, "
    "delivery_ref"
)
_OUTBOX_COLUMNS = "item_id, alert_id, kind, revision, attempts, next_attempt_at, last_error"


class SqliteStore:
    """The SQLite ``Store``: WAL, ``STRICT`` tables, foreign keys on, migrations by ``user_version``.

    ``path`` is a database file (created if missing) or ``":memory:"`` for tests. ``busy_timeout_s`` is how
    long an operation waits for a lock held by another process before failing with ``StoreError``.
    """

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 5.0) -> None:
        if busy_timeout_s < 0:
            raise ValueError("busy_timeout_s must not be negative")
        self._database = str(path)
        self._busy_timeout_s = busy_timeout_s
        self._connection: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._lock_holder: asyncio.Task[Any] | None = None

    @property
    def database(self) -> str:
        return self._database

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
            if self._connection is not None:
                raise StoreError(f"The store for {self._database} is already open.")
            _keep_aiosqlite_from_logging_parameters()
            async with self._mapped_errors("opening the database"):
                if self._database != _IN_MEMORY:
                    # A failed aiosqlite.connect leaves its worker thread posting to the event loop after
                    # the caller moved on; a plain probe connection finds those failures first.
                    await asyncio.to_thread(_probe_connect, self._database)
                connection = await aiosqlite.connect(
                    self._database, timeout=self._busy_timeout_s, isolation_level=None
                )
            try:
                version = await self._prepare(connection)
            except BaseException:
                await _close_quietly(connection, database=self._database)
                raise
            self._connection = connection
        logger.info("Opened store %s at schema version %d", self._database, version)

    async def close(self) -> None:
        async with self._exclusive():
            connection, self._connection = self._connection, None
            if connection is None:
                return
            async with self._mapped_errors("closing the database"):
                await connection.close()
        logger.info("Closed store %s", self._database)

    async def _prepare(self, connection: aiosqlite.Connection) -> int:
        async with self._mapped_errors("opening the database"):
            connection.row_factory = sqlite3.Row
            await _execute(connection, f"PRAGMA busy_timeout = {round(self._busy_timeout_s * 1000):d}")
            # Checked before anything that writes (the WAL switch included), so a newer database stays
            # byte-for-byte untouched. This first read is also where a non-database file is detected.
            ensure_schema_not_too_new(await read_schema_version(connection), database=self._database)
            if self._database != _IN_MEMORY:
                journal_mode = await _fetch_value(connection, "PRAGMA journal_mode = WAL", ())
                if str(journal_mode).lower() != "wal":
                    logger.warning(
                        "Could not switch %s to WAL (journal mode is %s); is it on a network filesystem?",
                        self._database,
                        journal_mode,
                    )
            await _execute(connection, "PRAGMA foreign_keys = ON")
            if await _fetch_value(connection, "PRAGMA foreign_keys", ()) != 1:
                raise StoreError("This SQLite build cannot enforce foreign keys; Vigil needs them.")
            await _execute(connection, "PRAGMA synchronous = NORMAL")
            return await apply_migrations(connection, database=self._database)

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
            async with self._committed(self._require_connection(), action="a transaction"):
                yield

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
    async def _reading(self, action: str) -> AsyncIterator[aiosqlite.Connection]:
        async with self._exclusive():
            connection = self._require_connection()
            async with self._mapped_errors(action):
                yield connection

    @asynccontextmanager
    async def _writing(self, action: str) -> AsyncIterator[aiosqlite.Connection]:
        """One write operation: its own transaction, or a savepoint inside the caller's transaction."""
        async with self._exclusive() as joined:
            connection = self._require_connection()
            if not joined:
                async with self._committed(connection, action=action), self._mapped_errors(action):
                    yield connection
                return
            if not connection.in_transaction:
                raise StoreError(
                    f"The transaction on {self._database} was already rolled back by SQLite after an "
                    f"earlier error; refusing to continue with {action} outside it."
                )
            async with self._mapped_errors(action):
                # Keeps a multi-statement operation all-or-nothing even if the caller catches its error.
                await _execute(connection, "SAVEPOINT store_operation")
                try:
                    yield connection
                except BaseException:
                    if connection.in_transaction:
                        await _execute(connection, "ROLLBACK TO store_operation")
                        await _execute(connection, "RELEASE store_operation")
                    raise
                await _execute(connection, "RELEASE store_operation")

    @asynccontextmanager
    async def _committed(self, connection: aiosqlite.Connection, *, action: str) -> AsyncIterator[None]:
        try:
            async with self._mapped_errors(f"starting {action}"):
                # IMMEDIATE takes the write lock up front, so the busy timeout applies here, not mid-way.
                await _execute(connection, "BEGIN IMMEDIATE")
        except BaseException:
            # Cancelled while waiting for the lock, the BEGIN still runs later on aiosqlite's thread; the
            # rollback queued behind it keeps the next caller from finding a transaction already open.
            await self._rollback_quietly(connection)
            raise
        try:
            yield
        except BaseException:
            await self._rollback_quietly(connection)
            raise
        if not connection.in_transaction:
            raise StoreError(
                f"{action.capitalize()} on {self._database} was rolled back by SQLite after an error; "
                "nothing in it was saved."
            )
        try:
            async with self._mapped_errors(f"committing {action}"):
                await connection.commit()
        except BaseException:
            await self._rollback_quietly(connection)
            raise

    async def _rollback_quietly(self, connection: aiosqlite.Connection) -> None:
        # A failed rollback must not hide the error that caused it.
        try:
            await connection.rollback()
        except (sqlite3.Error, ValueError) as error:
            logger.warning("Rollback on %s failed: %s", self._database, error)

    @asynccontextmanager
    async def _mapped_errors(self, action: str) -> AsyncIterator[None]:
        try:
            yield
        except sqlite3.Error as error:
            raise self._store_error(error, action=action) from error

    def _store_error(self, error: sqlite3.Error, *, action: str) -> StoreError:
        code = getattr(error, "sqlite_errorcode", None)
        primary_code = code & 0xFF if isinstance(code, int) else None
        database = self._database
        if primary_code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in str(error):
            return StoreError(
                f"The database {database} is locked by another process or connection; gave up after "
                f"waiting {self._busy_timeout_s:g}s while {action}. Is another Vigil using the same file?"
            )
        if primary_code == sqlite3.SQLITE_NOTADB:
            return StoreError(
                f"{database} is not a SQLite database (or it is encrypted). Check the configured database "
                "path; Vigil will not overwrite the file."
            )
        if primary_code == sqlite3.SQLITE_CORRUPT:
            return StoreError(f"The database {database} is corrupt ({error}); restore it from a backup.")
        if primary_code == sqlite3.SQLITE_CANTOPEN:
            return StoreError(
                f"Cannot open the database file {database}: check that its folder exists and that Vigil "
                "may write there."
            )
        if primary_code == sqlite3.SQLITE_READONLY:
            return StoreError(f"The database {database} is read-only; Vigil needs to write to it.")
        if primary_code == sqlite3.SQLITE_FULL:
            return StoreError(f"The disk holding {database} is full; free some space.")
        # SQLite's messages name tables and columns, never the bound values, so no message text leaks here.
        return StoreError(f"SQLite error while {action} in {database}: {error}")

    def _require_connection(self) -> aiosqlite.Connection:
        if self._connection is None:
            raise StoreError(
                f"The store for {self._database} is not open; call open() or use 'async with' first."
            )
        return self._connection

    # ------------------------------------------------------------------ messages and pairs

    async def claim_message(
        self, *, platform: str, space_id: str, message_id: str, seen_at: datetime
    ) -> bool:
        parameters = (platform, space_id, message_id, _timestamp_text(seen_at))
        async with self._writing("recording a seen message") as connection:
            inserted = await _execute(
                connection,
                "INSERT INTO seen_messages (platform, space_id, message_id, seen_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                parameters,
            )
        return inserted == 1

    async def load_pair(self, key: PairKey) -> PairState | None:
        async with self._reading("loading a pair") as connection:
            rows = await _fetch_rows(
                connection, f"SELECT {_PAIR_COLUMNS} FROM pairs WHERE {_PAIR_KEY_MATCH}", _key_parameters(key)
            )
        return _pair_from_row(rows[0]) if rows else None

    async def save_pair(self, state: PairState) -> None:
        parameters = (
            *_key_parameters(state.key),
            _timestamp_text(state.first_seen),
            _timestamp_text(state.last_seen),
            state.message_count,
            _json_strings(state.channel_ids),
            state.model_state,
            state.risk,
            state.suspect_id,
            state.above_threshold_streak,
            None if state.snoozed_until is None else _timestamp_text(state.snoozed_until),
        )
        async with self._writing("saving a pair") as connection:
            # An upsert, never INSERT OR REPLACE: replacing would delete the row and cascade to its window.
            await _execute(
                connection,
                "INSERT INTO pairs (platform, space_id, user_a, user_b, first_seen, last_seen, "
                "message_count, channel_ids, model_state, risk, suspect_id, above_threshold_streak, "
                "snoozed_until) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (platform, space_id, user_a, user_b) DO UPDATE SET "
                "first_seen = excluded.first_seen, last_seen = excluded.last_seen, "
                "message_count = excluded.message_count, channel_ids = excluded.channel_ids, "
                "model_state = excluded.model_state, risk = excluded.risk, suspect_id = excluded.suspect_id, "
                "above_threshold_streak = excluded.above_threshold_streak, "
                "snoozed_until = excluded.snoozed_until",
                parameters,
            )

    async def pairs_for_user(self, *, platform: str, space_id: str, user_id: str) -> list[PairState]:
        async with self._reading("listing a user's pairs") as connection:
            # Two indexed lookups rather than an OR, which SQLite may answer by scanning the whole space.
            # No pair has the user on both sides, so UNION ALL returns no duplicates.
            rows = await _fetch_rows(
                connection,
                f"SELECT {_PAIR_COLUMNS} FROM pairs WHERE platform = ? AND space_id = ? AND user_a = ? "
                f"UNION ALL SELECT {_PAIR_COLUMNS} FROM pairs "
                "WHERE platform = ? AND space_id = ? AND user_b = ? ORDER BY pair_id",
                (platform, space_id, user_id, platform, space_id, user_id),
            )
        return [_pair_from_row(row) for row in rows]

    async def count_pairs(self) -> int:
        async with self._reading("counting pairs") as connection:
            return int(await _fetch_value(connection, "SELECT count(*) FROM pairs", ()))

    async def iter_pairs(self, *, batch: int) -> AsyncIterator[list[PairState]]:
        """Every pair, ``batch`` at a time, in insertion order; the lock is not held between batches."""
        if batch < 1:
            raise ValueError("batch must be at least 1")
        after_pair_id = 0
        while True:
            async with self._reading("listing pairs") as connection:
                rows = await _fetch_rows(
                    connection,
                    f"SELECT {_PAIR_COLUMNS} FROM pairs WHERE pair_id > ? ORDER BY pair_id LIMIT ?",
                    (after_pair_id, batch),
                )
            if not rows:
                return
            yield [_pair_from_row(row) for row in rows]
            if len(rows) < batch:
                return
            after_pair_id = int(rows[-1]["pair_id"])

    # ------------------------------------------------------------------ windows and risk history

    async def append_window(self, key: PairKey, message: WindowMessage, *, keep: int) -> None:
        if keep < 0:
            raise ValueError("keep must not be negative")
        timestamp = _timestamp_text(message.timestamp)
        async with self._writing("appending to a pair's window") as connection:
            pair_id = await self._require_pair_id(connection, key, action="append_window")
            await _execute(
                connection,
                "INSERT INTO window_messages (pair_id, message_id, channel_id, thread_id, author_id, text, "
                "timestamp, risk, signals) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    pair_id,
                    message.message_id,
                    message.channel_id,
                    message.thread_id,
                    message.author_id,
                    message.text,
                    timestamp,
                    message.risk,
                    _json_strings(message.signals),
                ),
            )
            # Everything at or below the (keep+1)-th newest seq goes; NULL (a short window) deletes nothing.
            await _execute(
                connection,
                "DELETE FROM window_messages WHERE pair_id = ? AND seq <= ("
                "SELECT seq FROM window_messages WHERE pair_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                (pair_id, pair_id, keep),
            )

    async def load_window(self, key: PairKey) -> list[WindowMessage]:
        async with self._reading("loading a pair's window") as connection:
            rows = await _fetch_rows(
                connection,
                "SELECT w.message_id, w.channel_id, w.thread_id, w.author_id, w.text, w.timestamp, w.risk, "
                "w.signals FROM window_messages AS w JOIN pairs AS p ON p.pair_id = w.pair_id "
                "WHERE p.platform = ? AND p.space_id = ? AND p.user_a = ? AND p.user_b = ? ORDER BY w.seq",
                _key_parameters(key),
            )
        return [_window_message_from_row(row) for row in rows]

    async def append_risk(self, point: RiskPoint) -> None:
        timestamp = _timestamp_text(point.timestamp)
        async with self._writing("appending to a pair's risk history") as connection:
            pair_id = await self._require_pair_id(connection, point.key, action="append_risk")
            await _execute(
                connection,
                "INSERT INTO risk_history (pair_id, timestamp, message_id, risk, suspect_id) "
                "VALUES (?, ?, ?, ?, ?)",
                (pair_id, timestamp, point.message_id, point.risk, point.suspect_id),
            )

    async def risk_history(self, key: PairKey, *, limit: int) -> list[RiskPoint]:
        """The newest ``limit`` points, oldest first (in the order they were appended)."""
        if limit < 0:
            raise ValueError("limit must not be negative")
        async with self._reading("loading a pair's risk history") as connection:
            rows = await _fetch_rows(
                connection,
                "SELECT * FROM (SELECT r.point_id, r.timestamp, r.message_id, r.risk, r.suspect_id "
                "FROM risk_history AS r JOIN pairs AS p ON p.pair_id = r.pair_id "
                "WHERE p.platform = ? AND p.space_id = ? AND p.user_a = ? AND p.user_b = ? "
                "ORDER BY r.point_id DESC LIMIT ?) ORDER BY point_id",
                (*_key_parameters(key), limit),
            )
        return [
            RiskPoint(
                key=key,
                timestamp=_timestamp_from_text(row["timestamp"]),
                message_id=str(row["message_id"]),
                risk=float(row["risk"]),
                suspect_id=_optional_text(row["suspect_id"]),
            )
            for row in rows
        ]

    async def _require_pair_id(self, connection: aiosqlite.Connection, key: PairKey, *, action: str) -> int:
        pair_id = await _fetch_value(
            connection, f"SELECT pair_id FROM pairs WHERE {_PAIR_KEY_MATCH}", _key_parameters(key)
        )
        if pair_id is None:
            raise StoreError(
                f"{action}: no such pair in {self._database} ({key}); save_pair must come first."
            )
        return int(pair_id)

    # ------------------------------------------------------------------ alerts

    async def create_alert(self, alert: Alert) -> Alert:
        """Store ``alert`` with a new ``alert_id`` and its space's next case number (inputs ignored)."""
        platform, space_id = alert.key.platform, alert.key.space_id
        columns = _alert_parameters(alert)
        async with self._writing("creating an alert") as connection:
            await _execute(
                connection,
                "INSERT INTO case_counters (platform, space_id, last_case_number) VALUES (?, ?, 1) "
                "ON CONFLICT (platform, space_id) DO UPDATE SET last_case_number = last_case_number + 1",
                (platform, space_id),
            )
            case_number = int(
                await _fetch_value(
                    connection,
                    "SELECT last_case_number FROM case_counters WHERE platform = ? AND space_id = ?",
                    (platform, space_id),
                )
            )
            async with connection.execute(
                "INSERT INTO alerts (platform, space_id, user_a, user_b, case_number, status, risk, "
                "peak_risk, suspect_id, other_id, channel_ids, signals, evidence, created_at, updated_at, "
                "revision, shadow, model_name, delivery_ref) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*_key_parameters(alert.key), case_number, *columns),
            ) as cursor:
                alert_id = cursor.lastrowid
        if alert_id is None:
            raise StoreError(f"SQLite did not report the new alert's id in {self._database}.")
        return dataclasses.replace(alert, alert_id=alert_id, case_number=case_number)

    async def update_alert(self, alert: Alert) -> None:
        """Overwrite the alert's mutable fields; its pair, case number and ``created_at`` never change.

        A ``delivery_ref`` of None keeps the stored one, so a copy read before the delivery landed cannot
        erase the handle the outbox worker recorded.
        """
        parameters = (
            alert.status.value,
            alert.risk,
            alert.peak_risk,
            alert.suspect_id,
            alert.other_id,
            _json_strings(alert.channel_ids),
            _json_strings(alert.signals),
            _evidence_json(alert.evidence),
            _timestamp_text(alert.updated_at),
            alert.revision,
            int(alert.shadow),
            alert.model_name,
            alert.delivery_ref,
            alert.alert_id,
        )
        async with self._writing("updating an alert") as connection:
            updated = await _execute(
                connection,
                "UPDATE alerts SET status = ?, risk = ?, peak_risk = ?, suspect_id = ?, other_id = ?, "
                "channel_ids = ?, signals = ?, evidence = ?, updated_at = ?, revision = ?, shadow = ?, "
                "model_name = ?, delivery_ref = coalesce(?, delivery_ref) WHERE alert_id = ?",
                parameters,
            )
            if updated == 0:
                raise StoreError(f"No alert {alert.alert_id} in {self._database} to update.")

    async def get_alert(self, alert_id: int) -> Alert | None:
        async with self._reading("loading an alert") as connection:
            rows = await _fetch_rows(
                connection, f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE alert_id = ?", (alert_id,)
            )
        return _alert_from_row(rows[0]) if rows else None

    async def open_alert_for_pair(self, key: PairKey) -> Alert | None:
        async with self._reading("loading a pair's open alert") as connection:
            # The literal 'open' (not a parameter) lets SQLite use the partial index on open alerts.
            rows = await _fetch_rows(
                connection,
                f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE {_PAIR_KEY_MATCH} AND status = 'open'",
                _key_parameters(key),
            )
        return _alert_from_row(rows[0]) if rows else None

    async def alerts_for_space(self, *, platform: str, space_id: str, limit: int) -> list[Alert]:
        """Newest first, by case number (the order the alerts were created in)."""
        if limit < 0:
            raise ValueError("limit must not be negative")
        async with self._reading("listing a space's alerts") as connection:
            rows = await _fetch_rows(
                connection,
                f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE platform = ? AND space_id = ? "
                "ORDER BY case_number DESC LIMIT ?",
                (platform, space_id, limit),
            )
        return [_alert_from_row(row) for row in rows]

    async def count_alerts_since(self, *, platform: str, space_id: str, since: datetime) -> int:
        parameters = (platform, space_id, _timestamp_text(since))
        async with self._reading("counting a space's alerts") as connection:
            count = await _fetch_value(
                connection,
                "SELECT count(*) FROM alerts WHERE platform = ? AND space_id = ? AND created_at >= ?",
                parameters,
            )
        return int(count)

    # ------------------------------------------------------------------ outbox

    async def enqueue_delivery(
        self, *, alert_id: int, kind: OutboxKind, revision: int, now: datetime
    ) -> None:
        parameters = (alert_id, kind.value, revision, _timestamp_text(now))
        async with self._writing("queueing an alert delivery") as connection:
            await _execute(
                connection,
                "INSERT INTO outbox (alert_id, kind, revision, attempts, next_attempt_at) "
                "VALUES (?, ?, ?, 0, ?) ON CONFLICT (alert_id, kind) DO UPDATE SET "
                "revision = max(revision, excluded.revision), "
                "next_attempt_at = min(next_attempt_at, excluded.next_attempt_at)",
                parameters,
            )

    async def due_deliveries(self, *, now: datetime, limit: int) -> list[OutboxItem]:
        """Items due at ``now``, oldest first; an UPDATE waits while its alert's POST is pending."""
        if limit < 0:
            raise ValueError("limit must not be negative")
        parameters = (_timestamp_text(now), limit)
        async with self._reading("listing due deliveries") as connection:
            rows = await _fetch_rows(
                connection,
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox AS item WHERE item.next_attempt_at <= ? "
                "AND NOT (item.kind = 'update' AND EXISTS ("
                "SELECT 1 FROM outbox AS post WHERE post.alert_id = item.alert_id AND post.kind = 'post')) "
                "ORDER BY item.next_attempt_at, item.item_id LIMIT ?",
                parameters,
            )
        return [_outbox_item_from_row(row) for row in rows]

    async def complete_delivery(self, item_id: int, *, alert_id: int, revision: int, ref: str | None) -> None:
        async with self._writing("completing a delivery") as connection:
            await _execute(
                connection, "DELETE FROM outbox WHERE item_id = ? AND revision <= ?", (item_id, revision)
            )
            if ref is not None:
                await _execute(
                    connection, "UPDATE alerts SET delivery_ref = ? WHERE alert_id = ?", (ref, alert_id)
                )

    async def fail_delivery(self, item_id: int, *, error: str, next_attempt_at: datetime) -> None:
        parameters = (error[:_MAX_DELIVERY_ERROR_CHARS], _timestamp_text(next_attempt_at), item_id)
        async with self._writing("recording a failed delivery") as connection:
            await _execute(
                connection,
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? "
                "WHERE item_id = ?",
                parameters,
            )

    async def pending_delivery_count(self) -> int:
        async with self._reading("counting pending deliveries") as connection:
            return int(await _fetch_value(connection, "SELECT count(*) FROM outbox", ()))

    # ------------------------------------------------------------------ space settings

    async def get_space_settings(self, *, platform: str, space_id: str) -> SpaceSettings | None:
        async with self._reading("loading space settings") as connection:
            rows = await _fetch_rows(
                connection,
                "SELECT threshold, alert_channel_id, moderator_role_id, child_safety_role_id, "
                "ignored_channel_ids, shadow_mode FROM space_settings WHERE platform = ? AND space_id = ?",
                (platform, space_id),
            )
        if not rows:
            return None
        row = rows[0]
        threshold = row["threshold"]
        shadow_mode = row["shadow_mode"]
        return SpaceSettings(
            platform=platform,
            space_id=space_id,
            threshold=None if threshold is None else float(threshold),
            alert_channel_id=_optional_text(row["alert_channel_id"]),
            moderator_role_id=_optional_text(row["moderator_role_id"]),
            child_safety_role_id=_optional_text(row["child_safety_role_id"]),
            ignored_channel_ids=frozenset(_strings_from_json(row["ignored_channel_ids"])),
            shadow_mode=None if shadow_mode is None else bool(shadow_mode),
        )

    async def put_space_settings(self, settings: SpaceSettings) -> None:
        parameters = (
            settings.platform,
            settings.space_id,
            settings.threshold,
            settings.alert_channel_id,
            settings.moderator_role_id,
            settings.child_safety_role_id,
            _json_strings(sorted(settings.ignored_channel_ids)),
            None if settings.shadow_mode is None else int(settings.shadow_mode),
        )
        async with self._writing("saving space settings") as connection:
            await _execute(
                connection,
                "INSERT INTO space_settings (platform, space_id, threshold, alert_channel_id, "
                "moderator_role_id, child_safety_role_id, ignored_channel_ids, shadow_mode) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (platform, space_id) DO UPDATE SET "
                "threshold = excluded.threshold, alert_channel_id = excluded.alert_channel_id, "
                "moderator_role_id = excluded.moderator_role_id, "
                "child_safety_role_id = excluded.child_safety_role_id, "
                "ignored_channel_ids = excluded.ignored_channel_ids, shadow_mode = excluded.shadow_mode",
                parameters,
            )


# ---------------------------------------------------------------------- statement helpers


async def _execute(connection: aiosqlite.Connection, sql: str, parameters: Sequence[Any] = ()) -> int:
    """Run one statement; return how many rows it changed."""
    async with connection.execute(sql, parameters) as cursor:
        return cursor.rowcount


async def _fetch_rows(
    connection: aiosqlite.Connection, sql: str, parameters: Sequence[Any]
) -> list[sqlite3.Row]:
    return list(await connection.execute_fetchall(sql, parameters))


async def _fetch_value(connection: aiosqlite.Connection, sql: str, parameters: Sequence[Any]) -> Any:
    """The first column of the first row, or None when there is no row."""
    async with connection.execute(sql, parameters) as cursor:
        row = await cursor.fetchone()
    return None if row is None else row[0]


def _probe_connect(database: str) -> None:
    with closing(sqlite3.connect(database)):
        pass


def _keep_aiosqlite_from_logging_parameters() -> None:
    # aiosqlite logs every call with its bound parameters (message text) at DEBUG. Unless someone chose a
    # level for that logger on purpose, a root logger at DEBUG must not copy chat messages into the logs.
    aiosqlite_logger = logging.getLogger("aiosqlite")
    if aiosqlite_logger.level == logging.NOTSET:
        aiosqlite_logger.setLevel(logging.INFO)


async def _close_quietly(connection: aiosqlite.Connection, *, database: str) -> None:
    try:
        await connection.close()
    except (sqlite3.Error, ValueError) as error:
        logger.warning("Closing %s after a failed open also failed: %s", database, error)


# ---------------------------------------------------------------------- value conversions


def _key_parameters(key: PairKey) -> tuple[str, str, str, str]:
    return (key.platform, key.space_id, key.user_a, key.user_b)


def _timestamp_text(moment: datetime) -> str:
    # Fixed-width UTC text sorts like the instants it names, so SQL can compare it directly.
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("naive datetime: the store takes timezone-aware UTC datetimes only")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _timestamp_from_text(text: Any) -> datetime:
    return datetime.fromisoformat(str(text)).astimezone(UTC)


def _optional_timestamp(text: Any) -> datetime | None:
    return None if text is None else _timestamp_from_text(text)


def _optional_text(value: Any) -> str | None:
    return None if value is None else str(value)


def _json_strings(values: Iterable[str]) -> str:
    return json.dumps(list(values), ensure_ascii=False)


def _strings_from_json(text: Any) -> tuple[str, ...]:
    return tuple(str(value) for value in json.loads(str(text)))


def _evidence_json(evidence: Iterable[WindowMessage]) -> str:
    return json.dumps(
        [
            {
                "message_id": message.message_id,
                "channel_id": message.channel_id,
                "thread_id": message.thread_id,
                "author_id": message.author_id,
                "text": message.text,
                "timestamp": _timestamp_text(message.timestamp),
                "risk": message.risk,
                "signals": list(message.signals),
            }
            for message in evidence
        ],
        ensure_ascii=False,
    )


def _evidence_from_json(text: Any) -> tuple[WindowMessage, ...]:
    return tuple(
        WindowMessage(
            message_id=str(item["message_id"]),
            channel_id=str(item["channel_id"]),
            thread_id=_optional_text(item["thread_id"]),
            author_id=str(item["author_id"]),
            text=str(item["text"]),
            timestamp=_timestamp_from_text(item["timestamp"]),
            risk=float(item["risk"]),
            signals=tuple(str(signal) for signal in item["signals"]),
        )
        for item in json.loads(str(text))
    )


def _pair_from_row(row: sqlite3.Row) -> PairState:
    return PairState(
        key=PairKey(
            platform=str(row["platform"]),
            space_id=str(row["space_id"]),
            user_a=str(row["user_a"]),
            user_b=str(row["user_b"]),
        ),
        first_seen=_timestamp_from_text(row["first_seen"]),
        last_seen=_timestamp_from_text(row["last_seen"]),
        message_count=int(row["message_count"]),
        channel_ids=_strings_from_json(row["channel_ids"]),
        model_state=str(row["model_state"]),
        risk=float(row["risk"]),
        suspect_id=_optional_text(row["suspect_id"]),
        above_threshold_streak=int(row["above_threshold_streak"]),
        snoozed_until=_optional_timestamp(row["snoozed_until"]),
    )


def _window_message_from_row(row: sqlite3.Row) -> WindowMessage:
    return WindowMessage(
        message_id=str(row["message_id"]),
        channel_id=str(row["channel_id"]),
        thread_id=_optional_text(row["thread_id"]),
        author_id=str(row["author_id"]),
        text=str(row["text"]),
        timestamp=_timestamp_from_text(row["timestamp"]),
        risk=float(row["risk"]),
        signals=_strings_from_json(row["signals"]),
    )


def _alert_parameters(alert: Alert) -> tuple[Any, ...]:
    """The columns after ``case_number``, in ``INSERT INTO alerts`` order."""
    return (
        alert.status.value,
        alert.risk,
        alert.peak_risk,
        alert.suspect_id,
        alert.other_id,
        _json_strings(alert.channel_ids),
        _json_strings(alert.signals),
        _evidence_json(alert.evidence),
        _timestamp_text(alert.created_at),
        _timestamp_text(alert.updated_at),
        alert.revision,
        int(alert.shadow),
        alert.model_name,
        alert.delivery_ref,
    )


def _alert_from_row(row: sqlite3.Row) -> Alert:
    return Alert(
        alert_id=int(row["alert_id"]),
        key=PairKey(
            platform=str(row["platform"]),
            space_id=str(row["space_id"]),
            user_a=str(row["user_a"]),
            user_b=str(row["user_b"]),
        ),
        case_number=int(row["case_number"]),
        status=AlertStatus(row["status"]),
        risk=float(row["risk"]),
        peak_risk=float(row["peak_risk"]),
        suspect_id=str(row["suspect_id"]),
        other_id=str(row["other_id"]),
        channel_ids=_strings_from_json(row["channel_ids"]),
        signals=_strings_from_json(row["signals"]),
        evidence=_evidence_from_json(row["evidence"]),
        created_at=_timestamp_from_text(row["created_at"]),
        updated_at=_timestamp_from_text(row["updated_at"]),
        revision=int(row["revision"]),
        shadow=bool(row["shadow"]),
        model_name=str(row["model_name"]),
        delivery_ref=_optional_text(row["delivery_ref"]),
    )


def _outbox_item_from_row(row: sqlite3.Row) -> OutboxItem:
    return OutboxItem(
        item_id=int(row["item_id"]),
        alert_id=int(row["alert_id"]),
        kind=OutboxKind(row["kind"]),
        revision=int(row["revision"]),
        attempts=int(row["attempts"]),
        next_attempt_at=_timestamp_from_text(row["next_attempt_at"]),
        last_error=_optional_text(row["last_error"]),
    )
