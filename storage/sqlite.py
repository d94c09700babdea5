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
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn, Self

import aiosqlite

from vigil.bots.core.cases import AuditEvent, CaseSource, CaseState
from vigil.bots.core.files import create_private_file, tighten_private_file
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
from vigil.bots.core.ports import CaseRecord, PairChanges, StoreError, UserErasure
from vigil.storage.claims import claim_prefix, new_claim_token
from vigil.storage.crypto import CipherError, TextCipher
from vigil.storage.migrations import apply_migrations, ensure_schema_not_too_new, read_schema_version

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
# Outbox items (alias item) due at the three ? (now): not under a live claim, no other item of the alert under
# one (an alert is delivered by one worker at a time), and an UPDATE waits behind its alert's pending POST.
_DUE = (
    "item.next_attempt_at <= ? AND (item.claimed_until IS NULL OR item.claimed_until <= ?) "
    "AND NOT (item.kind = 'update' AND EXISTS ("
    "SELECT 1 FROM outbox AS post WHERE post.alert_id = item.alert_id AND post.kind = 'post')) "
    "AND NOT EXISTS (SELECT 1 FROM outbox AS other WHERE other.alert_id = item.alert_id "
    "AND other.item_id <> item.item_id AND other.claimed_until > ?)"
)
_CASE_COLUMNS = (
    f"{_ALERT_COLUMNS}, case_state, case_source, claimed_by, dismiss_reason, hold_until, closed_at, "
    "text_purged_at"
)
_WINDOW_COLUMNS = "message_id, channel_id, thread_id, author_id, text, timestamp, risk, signals"
_AUDIT_COLUMNS = "event_id, case_number, at, actor_id, action, before, after, detail"

# Encrypted columns; each name is the associated data of its values, so a value moved elsewhere won't open.
# Ids per IN (...) query.
_IN_CHUNK = 500
# Pair keys per VALUES list (four parameters each; SQLite before 3.32 allows 999 parameters per statement).
_KEYS_CHUNK = 240
# A VALUES list of pair keys joined to a table aliased ``p`` through its unique (platform, space, a, b) index.
_KEYS_JOIN = (
    "p.platform = k.column1 AND p.space_id = k.column2 AND p.user_a = k.column3 AND p.user_b = k.column4"
)
_PAIR_UPSERT = (
    "INSERT INTO pairs (platform, space_id, user_a, user_b, first_seen, last_seen, message_count, "
    "channel_ids, model_state, risk, suspect_id, above_threshold_streak, snoozed_until) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (platform, space_id, user_a, user_b) DO UPDATE SET "
    "first_seen = excluded.first_seen, last_seen = excluded.last_seen, "
    "message_count = excluded.message_count, channel_ids = excluded.channel_ids, "
    "model_state = excluded.model_state, risk = excluded.risk, suspect_id = excluded.suspect_id, "
    "above_threshold_streak = excluded.above_threshold_streak, snoozed_until = excluded.snoozed_until"
)
_WINDOW_TEXT = "window_messages.text"
_EVIDENCE_TEXT = "alerts.evidence.text"
_DISMISS_REASON = "alerts.dismiss_reason"
_CASE_EVIDENCE_TEXT = "case_evidence.text"
_AUDIT_DETAIL = "case_audit.detail"
_RECORD_VALUE = "records.value"
_KEY_CHECK = "meta.key_check"
_KEY_CHECK_PLAINTEXT = "vigil key check v1"
_ENCRYPTION_MARKER = "encryption"
_ENCRYPTION_NONE = "none"
_ENCRYPTION_AES_GCM = "aes-256-gcm"

# A case protects its pair's messages while it is open and not escalated, or while a hold covers it.
# Parameters: the pair's alias is p, then one parameter: now.
_PAIR_PROTECTED = (
    "EXISTS (SELECT 1 FROM alerts AS a WHERE a.platform = p.platform AND a.space_id = p.space_id "
    "AND a.user_a = p.user_a AND a.user_b = p.user_b AND ((a.status = 'open' AND a.case_state IN "
    "('open', 'claimed', 'confirmed')) OR a.hold_until > ?))"
)
_PAIR_HELD = (
    "EXISTS (SELECT 1 FROM alerts AS a WHERE a.platform = p.platform AND a.space_id = p.space_id "
    "AND a.user_a = p.user_a AND a.user_b = p.user_b AND a.hold_until > ?)"
)

# (value, row identity) -> value: the row identity is bound into the ciphertext (storage/crypto.py).
Seal = Callable[[str, str], str]

# The mutable alert columns (``SqliteStore._alert_update_values`` gives their values). A None delivery_ref
# keeps the stored one, so a copy read before the delivery landed cannot erase the handle the outbox recorded.
_ALERT_UPDATE_SET = (
    "status = ?, risk = ?, peak_risk = ?, suspect_id = ?, other_id = ?, channel_ids = ?, signals = ?, "
    "evidence = ?, updated_at = ?, revision = ?, shadow = ?, model_name = ?, "
    "delivery_ref = coalesce(?, delivery_ref)"
)


class SqliteStore:
    """The SQLite ``Store``: WAL, ``STRICT`` tables, foreign keys on, migrations by ``user_version``.

    ``path`` is a database file (created if missing) or ``":memory:"`` for tests. ``busy_timeout_s`` is how
    long an operation waits for a lock held by another process before failing with ``StoreError``.

    With a ``cipher``, message texts (window, alert evidence, preserved evidence), audit details, dismiss
    reasons and record values are encrypted on write and decrypted on read. A database remembers at first use
    whether it is encrypted: opening it with the wrong key, without a key when it is encrypted, or with a key
    when it is not, fails with ``StoreError`` before any data is read or written.
    """

    def __init__(
        self, path: str | Path, *, busy_timeout_s: float = 5.0, cipher: TextCipher | None = None
    ) -> None:
        if busy_timeout_s < 0:
            raise ValueError("busy_timeout_s must not be negative")
        self._database = str(path)
        self._busy_timeout_s = busy_timeout_s
        self._cipher = cipher
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
                    await self._make_files_private()
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

    async def _make_files_private(self) -> None:
        """Create the database file 0600 before SQLite does, and tighten an existing one and its WAL files.

        SQLite creates a new database with 0644 less the umask, and its ``-wal``/``-shm`` files with the
        database file's mode (whatever the umask), so a database created here 0600 keeps all three private.
        Files left readable by others (by an older Vigil or a copy) are made owner-only, with one warning.
        """
        if self._database in ("", _IN_MEMORY) or self._database.startswith("file:"):
            return  # SQLite names, not paths: nothing on disk that Vigil creates
        path = Path(self._database)
        try:
            await asyncio.to_thread(create_private_file, path)
        except OSError:
            raise StoreError(_cannot_open(self._database)) from None
        tightened: list[str] = []
        for candidate in (path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")):
            try:
                old_mode = await asyncio.to_thread(tighten_private_file, candidate)
            except OSError as error:
                logger.warning(
                    "%s is open to other accounts and could not be made owner-only (%s); "
                    "chmod 600 it: it holds message text",
                    candidate,
                    error.strerror or type(error).__name__,
                )
                continue
            if old_mode is not None:
                tightened.append(f"{candidate} (was {old_mode:04o})")
        if tightened:
            logger.warning(
                "Made %s owner-only: other accounts had access to them, and they hold message text",
                ", ".join(tightened),
            )

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
            version = await apply_migrations(connection, database=self._database)
            await self._check_encryption(connection)
            return version

    async def _check_encryption(self, connection: aiosqlite.Connection) -> None:
        """Compare the cipher with what the database recorded at first use (and record it then)."""
        await _execute(connection, "BEGIN IMMEDIATE")
        try:
            marker = await _fetch_value(
                connection, "SELECT value FROM meta WHERE key = ?", (_ENCRYPTION_MARKER,)
            )
            if marker is None:
                await self._record_encryption(connection)
            elif marker == _ENCRYPTION_NONE:
                if self._cipher is not None:
                    raise StoreError(
                        f"The database {self._database} was created without encryption, but an "
                        "encryption key is set (VIGIL_ENCRYPTION_KEY by default). Unset the key to use this "
                        "database, or start a new database to have its text encrypted."
                    )
            else:
                await self._verify_key(connection)
            await connection.commit()
        except BaseException:
            await self._rollback_quietly(connection)
            raise

    async def _record_encryption(self, connection: aiosqlite.Connection) -> None:
        if self._cipher is None:
            await _execute(
                connection,
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                (_ENCRYPTION_MARKER, _ENCRYPTION_NONE),
            )
            return
        holds_text = await _fetch_value(
            connection,
            "SELECT EXISTS (SELECT 1 FROM window_messages) OR EXISTS (SELECT 1 FROM alerts) "
            "OR EXISTS (SELECT 1 FROM case_evidence) OR EXISTS (SELECT 1 FROM case_audit) "
            "OR EXISTS (SELECT 1 FROM records)",
            (),
        )
        if holds_text:
            raise StoreError(
                f"The database {self._database} already holds unencrypted text, but an encryption key is set "
                "(VIGIL_ENCRYPTION_KEY by default). Unset the key to use this database, or start a new "
                "database to have its text encrypted."
            )
        await _execute(
            connection,
            "INSERT INTO meta (key, value) VALUES (?, ?), (?, ?)",
            (
                _ENCRYPTION_MARKER,
                _ENCRYPTION_AES_GCM,
                _KEY_CHECK,
                self._cipher.encrypt(_KEY_CHECK_PLAINTEXT, column=_KEY_CHECK, row=""),
            ),
        )
        logger.info(
            "Database %s: text will be encrypted at rest (key id %s)", self._database, self._cipher.key_id
        )

    async def _verify_key(self, connection: aiosqlite.Connection) -> None:
        check = str(await _fetch_value(connection, "SELECT value FROM meta WHERE key = ?", (_KEY_CHECK,)))
        if self._cipher is None:
            raise StoreError(
                f"The database {self._database} is encrypted, but no encryption key is set. Set the key it "
                "was created with in the environment (VIGIL_ENCRYPTION_KEY by default)."
            )
        try:
            opened = self._cipher.decrypt(check, column=_KEY_CHECK, row="")
        except CipherError:
            opened = None
        if opened != _KEY_CHECK_PLAINTEXT:
            raise StoreError(
                f"Wrong encryption key for {self._database}: it was encrypted with key id "
                f"{TextCipher.key_id_of(check)}, and the configured keys have ids "
                f"{', '.join(sorted(self._cipher.key_ids))}. Set the right key (or add it to the old keys "
                "during a rotation). Nothing was read or written."
            )
        if TextCipher.key_id_of(check) != self._cipher.key_id:
            # After a rotation the check follows the current key, so the old key can be retired later.
            await _execute(
                connection,
                "UPDATE meta SET value = ? WHERE key = ?",
                (self._cipher.encrypt(_KEY_CHECK_PLAINTEXT, column=_KEY_CHECK, row=""), _KEY_CHECK),
            )

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
    async def _writing(
        self, action: str, *, single_statement: bool = False
    ) -> AsyncIterator[aiosqlite.Connection]:
        """One write operation: its own transaction, or a savepoint inside the caller's transaction.

        ``single_statement``: the operation is one SQL statement, which SQLite already undoes on error (or its
        statements leave a consistent state whichever of them fails, as the caller documents), so the
        savepoint (two more round trips to aiosqlite's thread, on the per-message hot path) is skipped.
        """
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
            if single_statement:
                async with self._mapped_errors(action):
                    yield connection
                return
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
            return StoreError(_cannot_open(database))
        if primary_code == sqlite3.SQLITE_READONLY:
            return StoreError(f"The database {database} is read-only; Vigil needs to write to it.")
        if primary_code == sqlite3.SQLITE_FULL:
            return StoreError(f"The disk holding {database} is full; free some space.")
        # SQLite's messages name tables and columns, never the bound values, so no message text leaks here.
        return StoreError(f"SQLite error while {action} in {database}: {error}")

    def _seal(self, text: str, *, column: str, row: str) -> str:
        # "" stays "": it is what retention leaves behind, and there is nothing in it to hide.
        if self._cipher is None or text == "":
            return text
        return self._cipher.encrypt(text, column=column, row=row)

    def _unseal(self, value: str, *, column: str, row: str) -> str:
        if self._cipher is None or value == "":
            return value
        try:
            return self._cipher.decrypt(value, column=column, row=row)
        except CipherError as error:
            raise StoreError(f"Cannot decrypt data in {self._database}: {error}.") from None

    def _sealer(self, column: str) -> Seal:
        return lambda text, row: self._seal(text, column=column, row=row)

    def _unsealer(self, column: str) -> Seal:
        return lambda value, row: self._unseal(value, column=column, row=row)

    def _alert_from_row(self, row: sqlite3.Row) -> Alert:
        return _alert_from_row(row, unseal=self._unsealer(_EVIDENCE_TEXT))

    def _case_from_row(self, row: sqlite3.Row) -> CaseRecord:
        reason = _optional_text(row["dismiss_reason"])
        return CaseRecord(
            alert=self._alert_from_row(row),
            state=CaseState(row["case_state"]),
            source=CaseSource(row["case_source"]),
            claimed_by=_optional_text(row["claimed_by"]),
            dismiss_reason=(
                None
                if reason is None
                else self._unseal(reason, column=_DISMISS_REASON, row=str(row["alert_id"]))
            ),
            hold_until=_optional_timestamp(row["hold_until"]),
            closed_at=_optional_timestamp(row["closed_at"]),
            text_purged_at=_optional_timestamp(row["text_purged_at"]),
        )

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
        async with self._writing("recording a seen message", single_statement=True) as connection:
            inserted = await _execute(
                connection,
                "INSERT INTO seen_messages (platform, space_id, message_id, seen_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                parameters,
            )
        return inserted == 1

    async def claim_messages(
        self, *, platform: str, space_id: str, message_ids: Sequence[str], seen_at: datetime
    ) -> frozenset[str]:
        if not message_ids:
            return frozenset()
        claimed: set[str] = set()
        seen = _timestamp_text(seen_at)
        unique = list(dict.fromkeys(message_ids))
        step = _IN_CHUNK // 4
        single = len(unique) <= step
        async with self._writing("recording seen messages", single_statement=single) as connection:
            # One statement a chunk (SQLite binds at most 32,766 parameters); RETURNING names only the rows
            # actually inserted, so the ids seen before are not claimed again.
            for start in range(0, len(unique), step):
                chunk = unique[start : start + step]
                rows = await _fetch_rows(
                    connection,
                    "INSERT INTO seen_messages (platform, space_id, message_id, seen_at) VALUES "
                    + ", ".join("(?, ?, ?, ?)" for _ in chunk)
                    + " ON CONFLICT DO NOTHING RETURNING message_id",
                    [value for message_id in chunk for value in (platform, space_id, message_id, seen)],
                )
                claimed.update(str(row["message_id"]) for row in rows)
        return frozenset(claimed)

    async def seen_message_ids(
        self, *, platform: str, space_id: str, message_ids: Sequence[str]
    ) -> frozenset[str]:
        if not message_ids:
            return frozenset()
        seen: set[str] = set()
        async with self._reading("checking which messages were seen") as connection:
            # SQLite binds at most 32,766 parameters; batches are far smaller, chunks keep any size safe.
            for start in range(0, len(message_ids), _IN_CHUNK):
                chunk = list(message_ids[start : start + _IN_CHUNK])
                rows = await _fetch_rows(
                    connection,
                    "SELECT message_id FROM seen_messages WHERE platform = ? AND space_id = ? "
                    f"AND message_id IN ({', '.join('?' * len(chunk))})",
                    (platform, space_id, *chunk),
                )
                seen.update(str(row["message_id"]) for row in rows)
        return frozenset(seen)

    async def last_claimed_at(self, *, platform: str, space_id: str) -> datetime | None:
        async with self._reading("finding when a space's messages were last seen") as connection:
            rows = await _fetch_rows(
                connection,
                "SELECT MAX(seen_at) AS last FROM seen_messages WHERE platform = ? AND space_id = ?",
                (platform, space_id),
            )
        return _optional_timestamp(rows[0]["last"]) if rows else None

    async def load_pair(self, key: PairKey) -> PairState | None:
        async with self._reading("loading a pair") as connection:
            rows = await _fetch_rows(
                connection, f"SELECT {_PAIR_COLUMNS} FROM pairs WHERE {_PAIR_KEY_MATCH}", _key_parameters(key)
            )
        return _pair_from_row(rows[0]) if rows else None

    async def save_pair(self, state: PairState) -> None:
        await self.apply_pair_changes(PairChanges(pairs=(state,)))

    async def load_pairs(self, keys: Collection[PairKey]) -> dict[PairKey, PairState]:
        rows = await self._rows_for_keys(keys, table="pairs", columns=_PAIR_COLUMNS, action="loading pairs")
        return {state.key: state for state in map(_pair_from_row, rows)}

    async def _rows_for_keys(
        self, keys: Collection[PairKey], *, table: str, columns: str, action: str, where: str = ""
    ) -> list[sqlite3.Row]:
        """The rows of ``table`` (keyed by pair) for ``keys``: one query per chunk of keys, through the
        table's (platform, space_id, user_a, user_b) index."""
        unique = list(dict.fromkeys(keys))
        found: list[sqlite3.Row] = []
        async with self._reading(action) as connection:
            for start in range(0, len(unique), _KEYS_CHUNK):
                chunk = unique[start : start + _KEYS_CHUNK]
                found += await _fetch_rows(
                    connection,
                    f"SELECT {_qualified(columns, 'p')} FROM ({_key_values(len(chunk))}) AS k "
                    f"JOIN {table} AS p ON {_KEYS_JOIN}{where}",
                    [value for key in chunk for value in _key_parameters(key)],
                )
        return found

    async def apply_pair_changes(self, changes: PairChanges) -> None:
        """A handful of round trips to aiosqlite's thread for the whole batch (one ``executemany`` per
        kind of row), under one savepoint when inside a transaction."""
        if changes.keep < 0:
            raise ValueError("keep must not be negative")
        if not changes:
            return
        # The last state of each pair wins, as if saved one after another.
        latest = {state.key: state for state in changes.pairs}
        seal = self._sealer(_WINDOW_TEXT)
        # One row alone needs no savepoint (two more round trips): a failed INSERT changes nothing, and a
        # window trim that fails after its INSERT only leaves that window one message long until the next.
        single = len(latest) + len(changes.window) + len(changes.risks) == 1
        async with self._writing("saving pair state", single_statement=single) as connection:
            if latest:
                # An upsert, not INSERT OR REPLACE, whose delete would cascade to the window.
                await connection.executemany(_PAIR_UPSERT, [_pair_parameters(s) for s in latest.values()])
            if changes.window:
                inserted = await _execute_many(
                    connection,
                    "INSERT INTO window_messages (pair_id, message_id, channel_id, thread_id, author_id, "
                    "text, timestamp, risk, signals) SELECT pair_id, ?, ?, ?, ?, ?, ?, ?, ? FROM pairs "
                    f"WHERE {_PAIR_KEY_MATCH}",
                    [
                        (
                            message.message_id,
                            message.channel_id,
                            message.thread_id,
                            message.author_id,
                            seal(message.text, _message_row(message)),
                            _timestamp_text(message.timestamp),
                            message.risk,
                            _json_strings(message.signals),
                            *_key_parameters(key),
                        )
                        for key, message in changes.window
                    ],
                )
                if inserted != len(changes.window):
                    await self._missing_pair(connection, [key for key, _ in changes.window], "append_window")
                # Everything at or below each window's (keep+1)-th newest seq goes; NULL deletes nothing.
                await connection.executemany(
                    "DELETE FROM window_messages WHERE pair_id = (SELECT pair_id FROM pairs WHERE "
                    f"{_PAIR_KEY_MATCH}) AND seq <= (SELECT seq FROM window_messages WHERE pair_id = "
                    f"(SELECT pair_id FROM pairs WHERE {_PAIR_KEY_MATCH}) ORDER BY seq DESC LIMIT 1 "
                    "OFFSET ?)",
                    [
                        (*_key_parameters(key), *_key_parameters(key), changes.keep)
                        for key in dict.fromkeys(key for key, _ in changes.window)
                    ],
                )
            if changes.risks:
                inserted = await _execute_many(
                    connection,
                    "INSERT INTO risk_history (pair_id, timestamp, message_id, risk, suspect_id) "
                    f"SELECT pair_id, ?, ?, ?, ? FROM pairs WHERE {_PAIR_KEY_MATCH}",
                    [
                        (
                            _timestamp_text(point.timestamp),
                            point.message_id,
                            point.risk,
                            point.suspect_id,
                            *_key_parameters(point.key),
                        )
                        for point in changes.risks
                    ],
                )
                if inserted != len(changes.risks):
                    await self._missing_pair(
                        connection, [point.key for point in changes.risks], "append_risk"
                    )

    async def _missing_pair(
        self, connection: aiosqlite.Connection, keys: Sequence[PairKey], action: str
    ) -> NoReturn:
        """Name the pair a batch wrote rows for but which does not exist (the error path only)."""
        for key in dict.fromkeys(keys):
            found = await _fetch_value(
                connection, f"SELECT 1 FROM pairs WHERE {_PAIR_KEY_MATCH}", _key_parameters(key)
            )
            if found is None:
                self._no_such_pair(key, action=action)
        raise StoreError(f"{action}: not every row was stored in {self._database}")

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
        await self.apply_pair_changes(PairChanges(window=((key, message),), keep=keep))

    async def forget_message(self, *, platform: str, space_id: str, message_id: str, now: datetime) -> int:
        async with self._writing("forgetting a deleted message") as connection:
            # Its edits too ("<id>:edit:<ms>"). A prefix compare, not LIKE: LIKE refuses patterns over 50,000
            # bytes, and an id is whatever the platform sent.
            edits = message_id + ":edit:"
            cursor = await connection.execute(
                "DELETE FROM window_messages WHERE (message_id = ? OR substr(message_id, 1, ?) = ?) "
                "AND pair_id IN (SELECT p.pair_id FROM pairs AS p WHERE p.platform = ? AND p.space_id = ? "
                f"AND NOT {_PAIR_PROTECTED})",
                (message_id, len(edits), edits, platform, space_id, _timestamp_text(now)),
            )
            return int(cursor.rowcount)

    async def load_window(self, key: PairKey) -> list[WindowMessage]:
        async with self._reading("loading a pair's window") as connection:
            rows = await _fetch_rows(
                connection,
                "SELECT w.message_id, w.channel_id, w.thread_id, w.author_id, w.text, w.timestamp, w.risk, "
                "w.signals FROM window_messages AS w JOIN pairs AS p ON p.pair_id = w.pair_id "
                "WHERE p.platform = ? AND p.space_id = ? AND p.user_a = ? AND p.user_b = ? ORDER BY w.seq",
                _key_parameters(key),
            )
        unseal = self._unsealer(_WINDOW_TEXT)
        return [_window_message_from_row(row, unseal=unseal) for row in rows]

    async def append_risk(self, point: RiskPoint) -> None:
        await self.apply_pair_changes(PairChanges(risks=(point,)))

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

    def _no_such_pair(self, key: PairKey, *, action: str) -> NoReturn:
        raise StoreError(f"{action}: no such pair in {self._database} ({key}); save_pair must come first.")

    # ------------------------------------------------------------------ alerts

    async def create_alert(self, alert: Alert) -> Alert:
        """Store ``alert`` with a new ``alert_id`` and its space's next case number (inputs ignored)."""
        platform, space_id = alert.key.platform, alert.key.space_id
        columns = _alert_parameters(alert, seal=self._sealer(_EVIDENCE_TEXT))
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

    def _alert_update_values(self, alert: Alert) -> tuple[object, ...]:
        """The values for ``_ALERT_UPDATE_SET``, in its order."""
        return (
            alert.status.value,
            alert.risk,
            alert.peak_risk,
            alert.suspect_id,
            alert.other_id,
            _json_strings(alert.channel_ids),
            _json_strings(alert.signals),
            _evidence_json(alert.evidence, seal=self._sealer(_EVIDENCE_TEXT)),
            _timestamp_text(alert.updated_at),
            alert.revision,
            int(alert.shadow),
            alert.model_name,
            alert.delivery_ref,
        )

    async def update_alert(self, alert: Alert) -> None:
        """Overwrite the alert's mutable fields; its pair, case number and ``created_at`` never change.

        A ``delivery_ref`` of None keeps the stored one, so a copy read before the delivery landed cannot
        erase the handle the outbox worker recorded.
        """
        parameters = (*self._alert_update_values(alert), alert.alert_id)
        async with self._writing("updating an alert") as connection:
            updated = await _execute(
                connection,
                f"UPDATE alerts SET {_ALERT_UPDATE_SET} WHERE alert_id = ?",
                parameters,
            )
            if updated == 0:
                raise StoreError(f"No alert {alert.alert_id} in {self._database} to update.")

    async def get_alert(self, alert_id: int) -> Alert | None:
        async with self._reading("loading an alert") as connection:
            rows = await _fetch_rows(
                connection, f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE alert_id = ?", (alert_id,)
            )
        return self._alert_from_row(rows[0]) if rows else None

    async def open_alert_for_pair(self, key: PairKey) -> Alert | None:
        async with self._reading("loading a pair's open alert") as connection:
            # The literal 'open' (not a parameter) lets SQLite use the partial index on open alerts.
            rows = await _fetch_rows(
                connection,
                f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE {_PAIR_KEY_MATCH} AND status = 'open'",
                _key_parameters(key),
            )
        return self._alert_from_row(rows[0]) if rows else None

    async def open_alerts_for_pairs(self, keys: Collection[PairKey]) -> dict[PairKey, Alert]:
        # The literal 'open' (not a parameter) lets SQLite use the partial index on open alerts.
        rows = await self._rows_for_keys(
            keys,
            table="alerts",
            columns=_ALERT_COLUMNS,
            action="loading pairs' open alerts",
            where=" AND p.status = 'open'",
        )
        return {alert.key: alert for alert in map(self._alert_from_row, rows)}

    async def open_alert_keys(self) -> list[PairKey]:
        async with self._reading("listing the pairs with an open alert") as connection:
            rows = await _fetch_rows(
                connection,
                "SELECT platform, space_id, user_a, user_b FROM alerts WHERE status = 'open' "
                "ORDER BY platform, space_id, user_a, user_b",
                (),
            )
        return [
            PairKey(
                platform=row["platform"], space_id=row["space_id"], user_a=row["user_a"], user_b=row["user_b"]
            )
            for row in rows
        ]

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
        return [self._alert_from_row(row) for row in rows]

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
        """Items due at ``now`` and not claimed, oldest first; an UPDATE waits while its alert's POST is
        pending."""
        if limit < 0:
            raise ValueError("limit must not be negative")
        moment = _timestamp_text(now)
        async with self._reading("listing due deliveries") as connection:
            rows = await _fetch_rows(
                connection,
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox AS item WHERE {_DUE} "
                "ORDER BY item.next_attempt_at, item.item_id LIMIT ?",
                (moment, moment, moment, limit),
            )
        return [_outbox_item_from_row(row) for row in rows]

    async def claim_deliveries(
        self, *, now: datetime, limit: int, lease: timedelta, worker: str, scope: DeliveryScope = ANY_PLATFORM
    ) -> list[OutboxItem]:
        """The due items (as ``due_deliveries``) of the alerts ``scope`` covers, leased to one new claim in
        one write transaction: SQLite has a single writer (``BEGIN IMMEDIATE``, across processes too), so no
        other claim can interleave."""
        if limit < 0:
            raise ValueError("limit must not be negative")
        if lease <= timedelta(0):
            raise ValueError("lease must be positive")
        moment = _timestamp_text(now)
        claim = new_claim_token(worker)
        in_scope, scope_parameters = _scope_condition(scope)
        async with self._writing("claiming due deliveries") as connection:
            rows = await _fetch_rows(
                connection,
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox AS item WHERE {_DUE}{in_scope} "
                "ORDER BY item.next_attempt_at, item.item_id LIMIT ?",
                (moment, moment, moment, *scope_parameters, limit),
            )
            if rows:
                ids = [int(row["item_id"]) for row in rows]
                await _execute(
                    connection,
                    "UPDATE outbox SET claimed_by = ?, claimed_until = ? "
                    f"WHERE item_id IN ({', '.join('?' * len(ids))})",
                    (claim, _timestamp_text(now + lease), *ids),
                )
        return [dataclasses.replace(_outbox_item_from_row(row), claim=claim) for row in rows]

    async def release_claims(self, *, worker: str) -> int:
        prefix = claim_prefix(worker)
        async with self._writing("releasing delivery claims") as connection:
            return await _execute(
                connection,
                "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL "
                "WHERE substr(claimed_by, 1, length(?)) = ?",
                (prefix, prefix),
            )

    async def extend_claim(self, *, claim: str, until: datetime) -> int:
        async with self._writing("extending a delivery claim") as connection:
            return await _execute(
                connection,
                "UPDATE outbox SET claimed_until = ? WHERE claimed_by = ?",
                (_timestamp_text(until), claim),
            )

    async def complete_delivery(
        self, item_id: int, *, alert_id: int, revision: int, ref: str | None, claim: str | None = None
    ) -> bool:
        async with self._writing("completing a delivery") as connection:
            if claim is not None and not await _fetch_value(
                connection, "SELECT 1 FROM outbox WHERE item_id = ? AND claimed_by = ?", (item_id, claim)
            ):
                return False
            # The alert as delivered covers every pending item of it up to that revision (a post and an
            # update due together); a newer revision enqueued meanwhile stays. Another worker's claim stays.
            await _execute(
                connection,
                "DELETE FROM outbox WHERE (item_id = ? OR (alert_id = ? AND (claimed_by IS NULL "
                "OR claimed_by = ?))) AND revision <= ?",
                (item_id, alert_id, claim, revision),
            )
            if claim is not None:
                # A newer revision enqueued during the post is due again at once, for any worker.
                await _execute(
                    connection,
                    "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL "
                    "WHERE claimed_by = ? AND (item_id = ? OR alert_id = ?)",
                    (claim, item_id, alert_id),
                )
            if ref is not None:
                await _execute(
                    connection, "UPDATE alerts SET delivery_ref = ? WHERE alert_id = ?", (ref, alert_id)
                )
        return True

    async def fail_delivery(
        self, item_id: int, *, error: str, next_attempt_at: datetime, claim: str | None = None
    ) -> bool:
        error = error[:_MAX_DELIVERY_ERROR_CHARS]
        parameters = (error, _timestamp_text(next_attempt_at), item_id, claim, claim)
        async with self._writing("recording a failed delivery") as connection:
            changed = await _execute(
                connection,
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, "
                "claimed_by = NULL, claimed_until = NULL WHERE item_id = ? AND (? IS NULL OR claimed_by = ?)",
                parameters,
            )
        return changed > 0

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

    # ------------------------------------------------------------------ records (namespaced key-value)

    async def put_record(self, namespace: str, key: str, value: str) -> None:
        parameters = (
            namespace,
            key,
            self._seal(value, column=_RECORD_VALUE, row=_record_row(namespace, key)),
        )
        async with self._writing("saving a record") as connection:
            await _execute(
                connection,
                "INSERT INTO records (namespace, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value",
                parameters,
            )

    async def get_record(self, namespace: str, key: str) -> str | None:
        async with self._reading("loading a record") as connection:
            value = await _fetch_value(
                connection, "SELECT value FROM records WHERE namespace = ? AND key = ?", (namespace, key)
            )
        if value is None:
            return None
        return self._unseal(str(value), column=_RECORD_VALUE, row=_record_row(namespace, key))

    async def delete_record(self, namespace: str, key: str) -> bool:
        async with self._writing("deleting a record") as connection:
            deleted = await _execute(
                connection, "DELETE FROM records WHERE namespace = ? AND key = ?", (namespace, key)
            )
        return deleted > 0

    async def list_records(self, namespace: str) -> dict[str, str]:
        async with self._reading("listing records") as connection:
            rows = await _fetch_rows(
                connection, "SELECT key, value FROM records WHERE namespace = ? ORDER BY key", (namespace,)
            )
        return {
            str(row["key"]): self._unseal(
                str(row["value"]), column=_RECORD_VALUE, row=_record_row(namespace, str(row["key"]))
            )
            for row in rows
        }

    # ------------------------------------------------------------------ cases

    async def get_case(self, *, platform: str, space_id: str, case_number: int) -> CaseRecord | None:
        async with self._reading("loading a case") as connection:
            rows = await _fetch_rows(
                connection,
                f"SELECT {_CASE_COLUMNS} FROM alerts WHERE platform = ? AND space_id = ? AND case_number = ?",
                (platform, space_id, case_number),
            )
        return self._case_from_row(rows[0]) if rows else None

    async def case_for_alert(self, alert_id: int) -> CaseRecord | None:
        async with self._reading("loading a case") as connection:
            rows = await _fetch_rows(
                connection, f"SELECT {_CASE_COLUMNS} FROM alerts WHERE alert_id = ?", (alert_id,)
            )
        return self._case_from_row(rows[0]) if rows else None

    async def update_case(self, case: CaseRecord) -> None:
        alert = case.alert
        parameters = (
            *self._alert_update_values(alert),
            case.state.value,
            case.source.value,
            case.claimed_by,
            (
                None
                if case.dismiss_reason is None
                else self._seal(case.dismiss_reason, column=_DISMISS_REASON, row=str(alert.alert_id))
            ),
            _optional_timestamp_text(case.hold_until),
            _optional_timestamp_text(case.closed_at),
            _optional_timestamp_text(case.text_purged_at),
            alert.alert_id,
        )
        async with self._writing("updating a case") as connection:
            updated = await _execute(
                connection,
                f"UPDATE alerts SET {_ALERT_UPDATE_SET}, case_state = ?, case_source = ?, claimed_by = ?, "
                "dismiss_reason = ?, hold_until = ?, closed_at = ?, text_purged_at = ? WHERE alert_id = ?",
                parameters,
            )
            if updated == 0:
                raise StoreError(f"No case (alert {alert.alert_id}) in {self._database} to update.")

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
        conditions = ["platform = ?", "space_id = ?"]
        parameters: list[Any] = [platform, space_id]
        if user_id is not None:
            conditions.append("(suspect_id = ? OR user_a = ? OR user_b = ?)")
            parameters.extend((user_id, user_id, user_id))
        if before_case_number is not None:
            conditions.append("case_number < ?")
            parameters.append(before_case_number)
        parameters.append(limit)
        async with self._reading("listing cases") as connection:
            rows = await _fetch_rows(
                connection,
                f"SELECT {_CASE_COLUMNS} FROM alerts WHERE {' AND '.join(conditions)} "
                "ORDER BY case_number DESC LIMIT ?",
                parameters,
            )
        return [self._case_from_row(row) for row in rows]

    async def iter_cases(self, *, platform: str | None, batch: int) -> AsyncIterator[list[CaseRecord]]:
        """Every case (of ``platform``, or all), oldest first; the lock is not held between batches."""
        if batch < 1:
            raise ValueError("batch must be at least 1")
        after_alert_id = 0
        platform_match = "" if platform is None else " AND platform = ?"
        while True:
            parameters: tuple[Any, ...] = (
                (after_alert_id, batch) if platform is None else (after_alert_id, platform, batch)
            )
            async with self._reading("listing cases") as connection:
                rows = await _fetch_rows(
                    connection,
                    f"SELECT {_CASE_COLUMNS} FROM alerts WHERE alert_id > ?{platform_match} "
                    "ORDER BY alert_id LIMIT ?",
                    parameters,
                )
            if not rows:
                return
            yield [self._case_from_row(row) for row in rows]
            if len(rows) < batch:
                return
            after_alert_id = int(rows[-1]["alert_id"])

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
        parameters = (
            platform,
            space_id,
            case_number,
            _timestamp_text(at),
            actor_id,
            action,
            before,
            after,
            (
                None
                if detail is None
                else self._seal(
                    detail,
                    column=_AUDIT_DETAIL,
                    row=_audit_row(
                        platform=platform,
                        space_id=space_id,
                        case_number=case_number,
                        at=_timestamp_text(at),
                        actor_id=actor_id,
                        action=action,
                    ),
                )
            ),
        )
        async with (
            self._writing("appending to the audit trail") as connection,
            connection.execute(
                "INSERT INTO case_audit (platform, space_id, case_number, at, actor_id, action, before, "
                "after, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                parameters,
            ) as cursor,
        ):
            event_id = cursor.lastrowid
        if event_id is None:
            raise StoreError(f"SQLite did not report the new audit event's id in {self._database}.")
        return AuditEvent(
            event_id=event_id,
            case_number=0 if case_number is None else case_number,
            at=_timestamp_from_text(_timestamp_text(at)),
            actor_id=actor_id,
            action=action,
            before=before,
            after=after,
            detail=detail,
        )

    async def audit_events(
        self, *, platform: str, space_id: str, case_number: int | None
    ) -> list[AuditEvent]:
        async with self._reading("loading the audit trail") as connection:
            rows = await _fetch_rows(
                connection,
                f"SELECT {_AUDIT_COLUMNS} FROM case_audit WHERE platform = ? AND space_id = ? "
                "AND case_number IS ? ORDER BY event_id",
                (platform, space_id, case_number),
            )
        return [
            AuditEvent(
                event_id=int(row["event_id"]),
                case_number=0 if row["case_number"] is None else int(row["case_number"]),
                at=_timestamp_from_text(row["at"]),
                actor_id=str(row["actor_id"]),
                action=str(row["action"]),
                before=_optional_text(row["before"]),
                after=_optional_text(row["after"]),
                detail=(
                    None
                    if row["detail"] is None
                    else self._unseal(
                        str(row["detail"]),
                        column=_AUDIT_DETAIL,
                        row=_audit_row(
                            platform=platform,
                            space_id=space_id,
                            case_number=case_number,
                            at=str(row["at"]),
                            actor_id=str(row["actor_id"]),
                            action=str(row["action"]),
                        ),
                    )
                ),
            )
            for row in rows
        ]

    # ------------------------------------------------------------------ preserved evidence

    async def preserve_evidence(self, *, alert_id: int, messages: Sequence[WindowMessage]) -> int:
        added = 0
        async with self._writing("preserving case evidence") as connection:
            for message in messages:
                added += await _execute(
                    connection,
                    f"INSERT INTO case_evidence (alert_id, {_WINDOW_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (alert_id, message_id) DO NOTHING",
                    (
                        alert_id,
                        message.message_id,
                        message.channel_id,
                        message.thread_id,
                        message.author_id,
                        self._seal(message.text, column=_CASE_EVIDENCE_TEXT, row=_message_row(message)),
                        _timestamp_text(message.timestamp),
                        message.risk,
                        _json_strings(message.signals),
                    ),
                )
        return added

    async def load_evidence(self, alert_id: int) -> list[WindowMessage]:
        async with self._reading("loading case evidence") as connection:
            rows = await _fetch_rows(
                connection,
                f"SELECT {_WINDOW_COLUMNS} FROM case_evidence WHERE alert_id = ? "
                "ORDER BY timestamp, evidence_id",
                (alert_id,),
            )
        unseal = self._unsealer(_CASE_EVIDENCE_TEXT)
        return [_window_message_from_row(row, unseal=unseal) for row in rows]

    # ------------------------------------------------------------------ key rotation

    async def rekey(
        self,
        *,
        batch_rows: int = 500,
        on_batch: Callable[[int], None] | None = None,
        on_rows: Callable[[int], None] | None = None,
    ) -> int:
        """Rewrite every encrypted value not yet under the current key and bound to its row; returns how many.

        Each batch of ``batch_rows`` rows commits on its own, so an interrupted run keeps its progress and a
        second run finishes the rest (values already current are skipped). ``on_batch`` gets each batch's
        count of rewritten rows, ``on_rows`` its count of rows read (progress towards ``count_rekey_rows``).
        Refused on a database without encryption.
        """
        cipher = self._cipher
        if cipher is None:
            raise StoreError(f"{self._database} is not encrypted: there is nothing to re-encrypt.")
        total = 0
        for table, key_column, columns, rewrite in self._rekey_plan():
            after: object = -1
            while True:
                async with self._reading(f"reading {table} to re-encrypt") as connection:
                    rows = await _fetch_rows(
                        connection,
                        f"SELECT {key_column} AS row_key, {columns} FROM {table} "
                        f"WHERE {key_column} > ? ORDER BY {key_column} LIMIT ?",
                        (after, batch_rows),
                    )
                if not rows:
                    break
                after = rows[-1]["row_key"]
                updates = [update for row in rows if (update := rewrite(row)) is not None]
                if updates:
                    names = updates[0].columns
                    assignments = ", ".join(f"{name} = ?" for name in names)
                    # Compare-and-set: a value Vigil changed meanwhile (it may be running) is left alone.
                    unchanged = " AND ".join(f"{name} IS ?" for name in names)
                    async with self._writing(f"re-encrypting {table}") as connection:
                        cursor = await connection.executemany(
                            f"UPDATE {table} SET {assignments} WHERE {key_column} = ? AND {unchanged}",
                            [(*update.new, update.row_key, *update.old) for update in updates],
                        )
                    # executemany's rowcount sums the rows each statement changed.
                    total += cursor.rowcount
                    if on_batch is not None:
                        on_batch(cursor.rowcount)
                if on_rows is not None:
                    on_rows(len(rows))
        return total

    async def count_rekey_rows(self) -> int:
        """How many rows ``rekey`` reads, for its progress: counted, nothing decrypted."""
        if self._cipher is None:
            raise StoreError(f"{self._database} is not encrypted: there is nothing to re-encrypt.")
        total = 0
        async with self._reading("counting the rows to re-encrypt") as connection:
            for table, *_ in self._rekey_plan():
                total += int(await _fetch_value(connection, f"SELECT count(*) FROM {table}", ()))
        return total

    def _rekey_plan(self) -> list[tuple[str, str, str, Callable[[sqlite3.Row], _Rewrite | None]]]:
        """Per table: its key column, the columns read, and a row -> (SET clause, values, key) or None."""
        cipher = self._cipher
        assert cipher is not None

        def fresh(value: object, *, column: str, row: str) -> str | None:
            text = "" if value is None else str(value)
            if text == "" or cipher.is_current(text):
                return None
            return self._seal(self._unseal(text, column=column, row=row), column=column, row=row)

        def window(column: str) -> Callable[[sqlite3.Row], _Rewrite | None]:
            def rewrite(row: sqlite3.Row) -> _Rewrite | None:
                identity = _message_row_of(
                    str(row["message_id"]), str(row["author_id"]), str(row["channel_id"])
                )
                sealed = fresh(row["text"], column=column, row=identity)
                return (
                    None
                    if sealed is None
                    else _Rewrite(
                        columns=("text",), new=(sealed,), old=(row["text"],), row_key=row["row_key"]
                    )
                )

            return rewrite

        def alert(row: sqlite3.Row) -> _Rewrite | None:
            items = json.loads(str(row["evidence"]))
            changed = False
            for item in items:
                identity = _message_row_of(
                    str(item["message_id"]), str(item["author_id"]), str(item["channel_id"])
                )
                sealed = fresh(item["text"], column=_EVIDENCE_TEXT, row=identity)
                if sealed is not None:
                    item["text"], changed = sealed, True
            reason = fresh(row["dismiss_reason"], column=_DISMISS_REASON, row=str(row["row_key"]))
            if not changed and reason is None:
                return None
            return _Rewrite(
                columns=("evidence", "dismiss_reason"),
                new=(
                    json.dumps(items, ensure_ascii=False) if changed else str(row["evidence"]),
                    reason if reason is not None else row["dismiss_reason"],
                ),
                old=(row["evidence"], row["dismiss_reason"]),
                row_key=row["row_key"],
            )

        def record(row: sqlite3.Row) -> _Rewrite | None:
            identity = _record_row(str(row["namespace"]), str(row["key"]))
            sealed = fresh(row["value"], column=_RECORD_VALUE, row=identity)
            return (
                None
                if sealed is None
                else _Rewrite(columns=("value",), new=(sealed,), old=(row["value"],), row_key=row["row_key"])
            )

        def audit(row: sqlite3.Row) -> _Rewrite | None:
            number = row["case_number"]
            identity = _audit_row(
                platform=str(row["platform"]),
                space_id=str(row["space_id"]),
                case_number=None if number is None else int(number),
                at=str(row["at"]),
                actor_id=str(row["actor_id"]),
                action=str(row["action"]),
            )
            sealed = fresh(row["detail"], column=_AUDIT_DETAIL, row=identity)
            return (
                None
                if sealed is None
                else _Rewrite(
                    columns=("detail",), new=(sealed,), old=(row["detail"],), row_key=row["row_key"]
                )
            )

        return [
            (
                "window_messages",
                "seq",
                "message_id, author_id, channel_id, text",
                window(_WINDOW_TEXT),
            ),
            (
                "case_evidence",
                "evidence_id",
                "message_id, author_id, channel_id, text",
                window(_CASE_EVIDENCE_TEXT),
            ),
            ("alerts", "alert_id", "evidence, dismiss_reason", alert),
            # WITHOUT ROWID: keyed by its primary key's two columns, joined (a unit separator in neither).
            ("records", "(namespace || char(31) || key)", "namespace, key, value", record),
            (
                "case_audit",
                "event_id",
                "platform, space_id, case_number, at, actor_id, action, detail",
                audit,
            ),
        ]

    # ------------------------------------------------------------------ retention

    async def _purge(
        self,
        *,
        action: str,
        table: str,
        key: str,
        candidates: str,
        parameters: Sequence[Any],
        limit: int,
        dry_run: bool,
    ) -> int:
        """Delete (or, dry, count) the rows of ``table`` whose ``key`` the ``candidates`` query selects."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if dry_run:
            async with self._reading(action) as connection:
                return int(await _fetch_value(connection, f"SELECT count(*) FROM ({candidates})", parameters))
        async with self._writing(action) as connection:
            return await _execute(
                connection, f"DELETE FROM {table} WHERE {key} IN ({candidates} LIMIT ?)", (*parameters, limit)
            )

    async def purge_window_messages(
        self, *, older_than: datetime, now: datetime, limit: int, dry_run: bool = False
    ) -> int:
        return await self._purge(
            action="purging old window messages",
            table="window_messages",
            key="seq",
            candidates=(
                "SELECT w.seq FROM window_messages AS w JOIN pairs AS p ON p.pair_id = w.pair_id "
                f"WHERE w.timestamp < ? AND NOT {_PAIR_PROTECTED}"
            ),
            parameters=(_timestamp_text(older_than), _timestamp_text(now)),
            limit=limit,
            dry_run=dry_run,
        )

    async def purge_idle_pairs(
        self, *, idle_since: datetime, now: datetime, limit: int, dry_run: bool = False
    ) -> int:
        now_text = _timestamp_text(now)
        return await self._purge(
            action="purging idle pairs",
            table="pairs",
            key="pair_id",
            candidates=(
                "SELECT p.pair_id FROM pairs AS p WHERE p.last_seen < ? "
                f"AND (p.snoozed_until IS NULL OR p.snoozed_until <= ?) AND NOT {_PAIR_PROTECTED}"
            ),
            parameters=(_timestamp_text(idle_since), now_text, now_text),
            limit=limit,
            dry_run=dry_run,
        )

    async def purge_case_texts(
        self, *, dismissed_before: datetime, now: datetime, limit: int, dry_run: bool = False
    ) -> int:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        candidates = (
            "FROM alerts WHERE text_purged_at IS NULL AND (hold_until IS NULL OR hold_until <= ?) "
            "AND ((case_state = 'dismissed' AND closed_at < ?) OR case_state = 'escalated')"
        )
        parameters = (_timestamp_text(now), _timestamp_text(dismissed_before))
        if dry_run:
            async with self._reading("counting case texts to purge") as connection:
                return int(await _fetch_value(connection, f"SELECT count(*) {candidates}", parameters))
        async with self._writing("purging case texts") as connection:
            rows = await _fetch_rows(
                connection, f"SELECT alert_id, evidence {candidates} LIMIT ?", (*parameters, limit)
            )
            for row in rows:
                # Texts are blanked without decrypting them; ids, times and scores stay for the record.
                blank = [{**item, "text": ""} for item in json.loads(str(row["evidence"]))]
                await _execute(
                    connection,
                    "UPDATE alerts SET evidence = ?, text_purged_at = ? WHERE alert_id = ?",
                    (json.dumps(blank, ensure_ascii=False), _timestamp_text(now), row["alert_id"]),
                )
                await _execute(connection, "DELETE FROM case_evidence WHERE alert_id = ?", (row["alert_id"],))
        return len(rows)

    async def purge_seen_messages(self, *, older_than: datetime, limit: int, dry_run: bool = False) -> int:
        return await self._purge(
            action="purging old message ids",
            table="seen_messages",
            key="(platform, space_id, message_id)",
            candidates="SELECT platform, space_id, message_id FROM seen_messages WHERE seen_at < ?",
            parameters=(_timestamp_text(older_than),),
            limit=limit,
            dry_run=dry_run,
        )

    async def save_turn_memory(self, memory: TurnMemory, *, saved_at: datetime) -> None:
        platform, space_id, channel_id, thread_id = memory.location
        async with self._writing("saving turn-taking memory", single_statement=True) as connection:
            await _execute(
                connection,
                "INSERT INTO turn_memory "
                "(platform, space_id, channel_id, thread_id, turns, last_at, saved_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (platform, space_id, channel_id, thread_id) "
                "DO UPDATE SET turns = excluded.turns, last_at = excluded.last_at, "
                "saved_at = excluded.saved_at",
                (
                    platform,
                    space_id,
                    channel_id,
                    thread_id or "",
                    memory.turns,
                    _timestamp_text(memory.last_at),
                    _timestamp_text(saved_at),
                ),
            )

    async def load_turn_memory(self, *, limit: int) -> list[TurnMemory]:
        async with self._reading("loading turn-taking memory") as connection:
            rows = await _fetch_rows(
                connection,
                "SELECT platform, space_id, channel_id, thread_id, turns, last_at FROM turn_memory "
                "ORDER BY last_at DESC LIMIT ?",
                (limit,),
            )
        return [
            TurnMemory(
                location=(
                    str(row["platform"]),
                    str(row["space_id"]),
                    str(row["channel_id"]),
                    str(row["thread_id"]) or None,
                ),
                turns=str(row["turns"]),
                last_at_s=_timestamp_from_text(row["last_at"]).timestamp(),
            )
            for row in rows
        ]

    async def purge_turn_memory(self, *, saved_before: datetime, limit: int, dry_run: bool = False) -> int:
        return await self._purge(
            action="purging old turn-taking memory",
            table="turn_memory",
            key="(platform, space_id, channel_id, thread_id)",
            candidates="SELECT platform, space_id, channel_id, thread_id FROM turn_memory WHERE saved_at < ?",
            parameters=(_timestamp_text(saved_before),),
            limit=limit,
            dry_run=dry_run,
        )

    async def purge_risk_history(
        self, *, older_than: datetime, now: datetime, limit: int, dry_run: bool = False
    ) -> int:
        return await self._purge(
            action="purging old risk history",
            table="risk_history",
            key="point_id",
            candidates=(
                "SELECT r.point_id FROM risk_history AS r JOIN pairs AS p ON p.pair_id = r.pair_id "
                f"WHERE r.timestamp < ? AND NOT {_PAIR_PROTECTED}"
            ),
            parameters=(_timestamp_text(older_than), _timestamp_text(now)),
            limit=limit,
            dry_run=dry_run,
        )

    # ------------------------------------------------------------------ erasure

    async def erase_user(self, *, platform: str, user_id: str, now: datetime) -> UserErasure:
        now_text = _timestamp_text(now)
        pairs = window_messages = risk_points = evidence_messages = evidence_texts = 0
        held_pairs = held_cases = 0
        cases_changed: list[tuple[str, int]] = []
        async with self._writing("erasing a user's data") as connection:
            pair_rows = await _fetch_rows(
                connection,
                f"SELECT p.pair_id, {_PAIR_HELD} AS held FROM pairs AS p "
                "WHERE p.platform = ? AND (p.user_a = ? OR p.user_b = ?)",
                (now_text, platform, user_id, user_id),
            )
            for row in pair_rows:
                if row["held"]:
                    held_pairs += 1
                    continue
                pair_id = int(row["pair_id"])
                window_messages += await _execute(
                    connection, "DELETE FROM window_messages WHERE pair_id = ?", (pair_id,)
                )
                risk_points += await _execute(
                    connection, "DELETE FROM risk_history WHERE pair_id = ?", (pair_id,)
                )
                pairs += await _execute(connection, "DELETE FROM pairs WHERE pair_id = ?", (pair_id,))
            case_rows = await _fetch_rows(
                connection,
                "SELECT alert_id, space_id, case_number, evidence, hold_until > ? AS held FROM alerts "
                "WHERE platform = ? AND (user_a = ? OR user_b = ?) ORDER BY space_id, case_number",
                (now_text, platform, user_id, user_id),
            )
            for row in case_rows:
                if row["held"]:
                    held_cases += 1
                    continue
                removed = await _execute(
                    connection,
                    "DELETE FROM case_evidence WHERE alert_id = ? AND author_id = ?",
                    (row["alert_id"], user_id),
                )
                evidence_messages += removed
                items = json.loads(str(row["evidence"]))
                theirs = [item for item in items if item["author_id"] == user_id and item["text"] != ""]
                if removed or theirs:
                    cases_changed.append((str(row["space_id"]), int(row["case_number"])))
                if theirs:
                    evidence_texts += len(theirs)
                    blanked = [
                        {**item, "text": ""} if item["author_id"] == user_id else item for item in items
                    ]
                    await _execute(
                        connection,
                        "UPDATE alerts SET evidence = ? WHERE alert_id = ?",
                        (json.dumps(blanked, ensure_ascii=False), row["alert_id"]),
                    )
            # Ids and times only, but theirs: the location's memory goes (it costs turn-taking pairs there
            # until the next messages).
            await _execute(
                connection,
                "DELETE FROM turn_memory WHERE platform = ? AND instr(turns, ?) > 0",
                (platform, json.dumps(user_id)),
            )
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


# ---------------------------------------------------------------------- statement helpers


async def _execute(connection: aiosqlite.Connection, sql: str, parameters: Sequence[Any] = ()) -> int:
    """Run one statement; return how many rows it changed.

    One round trip to aiosqlite's thread: the statement has run to completion when ``execute`` returns, and
    closing its cursor (another round trip) is left to the garbage collector, which needs no thread.
    """
    cursor = await connection.execute(sql, parameters)
    return cursor.rowcount


async def _execute_many(
    connection: aiosqlite.Connection, sql: str, parameters: Iterable[Sequence[Any]]
) -> int:
    """Run one statement for every parameter row (one round trip); return the rows changed in all."""
    cursor = await connection.executemany(sql, parameters)
    return cursor.rowcount


def _key_values(count: int) -> str:
    return "VALUES " + ", ".join(["(?, ?, ?, ?)"] * count)


def _qualified(columns: str, alias: str) -> str:
    return ", ".join(f"{alias}.{column.strip()}" for column in columns.split(","))


async def _fetch_rows(
    connection: aiosqlite.Connection, sql: str, parameters: Sequence[Any]
) -> list[sqlite3.Row]:
    return list(await connection.execute_fetchall(sql, parameters))


async def _fetch_value(connection: aiosqlite.Connection, sql: str, parameters: Sequence[Any]) -> Any:
    """The first column of the first row, or None when there is no row (one round trip; the queries
    passed here return at most one row)."""
    rows = await connection.execute_fetchall(sql, parameters)
    for row in rows:
        return row[0]
    return None


def _cannot_open(database: str) -> str:
    return (
        f"Cannot open the database file {database}: check that its folder exists and that Vigil may write "
        "there."
    )


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


def _optional_timestamp_text(moment: datetime | None) -> str | None:
    return None if moment is None else _timestamp_text(moment)


def _optional_text(value: Any) -> str | None:
    return None if value is None else str(value)


def _json_strings(values: Iterable[str]) -> str:
    return json.dumps(list(values), ensure_ascii=False)


def _strings_from_json(text: Any) -> tuple[str, ...]:
    return tuple(str(value) for value in json.loads(str(text)))


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _Rewrite:
    """One row's re-encryption: the columns, their new and current values, and the row's key."""

    columns: tuple[str, ...]
    new: tuple[object, ...]
    old: tuple[object, ...]
    row_key: object


def _same(text: str, row: str) -> str:
    return text


def _message_row_of(message_id: str, author_id: str, channel_id: str) -> str:
    """A message text's row identity: who wrote it, which message, where (a swap between rows fails)."""
    return "\x1f".join((message_id, author_id, channel_id))


def _message_row(message: WindowMessage) -> str:
    return _message_row_of(message.message_id, message.author_id, message.channel_id)


def _record_row(namespace: str, key: str) -> str:
    return f"{namespace}\x1f{key}"


def _audit_row(
    *, platform: str, space_id: str, case_number: int | None, at: str, actor_id: str, action: str
) -> str:
    return "\x1f".join((platform, space_id, str(case_number), at, actor_id, action))


def _evidence_json(evidence: Iterable[WindowMessage], *, seal: Seal = _same) -> str:
    return json.dumps(
        [
            {
                "message_id": message.message_id,
                "channel_id": message.channel_id,
                "thread_id": message.thread_id,
                "author_id": message.author_id,
                "text": seal(message.text, _message_row(message)),
                "timestamp": _timestamp_text(message.timestamp),
                "risk": message.risk,
                "signals": list(message.signals),
            }
            for message in evidence
        ],
        ensure_ascii=False,
    )


def _evidence_from_json(text: Any, *, unseal: Seal = _same) -> tuple[WindowMessage, ...]:
    return tuple(
        WindowMessage(
            message_id=str(item["message_id"]),
            channel_id=str(item["channel_id"]),
            thread_id=_optional_text(item["thread_id"]),
            author_id=str(item["author_id"]),
            text=unseal(
                str(item["text"]),
                _message_row_of(str(item["message_id"]), str(item["author_id"]), str(item["channel_id"])),
            ),
            timestamp=_timestamp_from_text(item["timestamp"]),
            risk=float(item["risk"]),
            signals=tuple(str(signal) for signal in item["signals"]),
        )
        for item in json.loads(str(text))
    )


def _pair_parameters(state: PairState) -> tuple[Any, ...]:
    return (
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


def _window_message_from_row(row: sqlite3.Row, *, unseal: Seal = _same) -> WindowMessage:
    return WindowMessage(
        message_id=str(row["message_id"]),
        channel_id=str(row["channel_id"]),
        thread_id=_optional_text(row["thread_id"]),
        author_id=str(row["author_id"]),
        text=unseal(
            str(row["text"]),
            _message_row_of(str(row["message_id"]), str(row["author_id"]), str(row["channel_id"])),
        ),
        timestamp=_timestamp_from_text(row["timestamp"]),
        risk=float(row["risk"]),
        signals=_strings_from_json(row["signals"]),
    )


def _alert_parameters(alert: Alert, *, seal: Seal = _same) -> tuple[Any, ...]:
    """The columns after ``case_number``, in ``INSERT INTO alerts`` order."""
    return (
        alert.status.value,
        alert.risk,
        alert.peak_risk,
        alert.suspect_id,
        alert.other_id,
        _json_strings(alert.channel_ids),
        _json_strings(alert.signals),
        _evidence_json(alert.evidence, seal=seal),
        _timestamp_text(alert.created_at),
        _timestamp_text(alert.updated_at),
        alert.revision,
        int(alert.shadow),
        alert.model_name,
        alert.delivery_ref,
    )


def _alert_from_row(row: sqlite3.Row, *, unseal: Seal = _same) -> Alert:
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
        evidence=_evidence_from_json(row["evidence"], unseal=unseal),
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


def _scope_condition(scope: DeliveryScope) -> tuple[str, tuple[str, ...]]:
    """What ``_DUE`` gains under ``scope`` (outbox items aliased item), and its parameters: the item's alert
    is of a platform the scope covers. Nothing for any platform: an unscoped claim reads the outbox alone."""
    if scope.is_everything:
        return "", ()
    conditions: list[str] = []
    parameters: list[str] = []
    if scope.platforms is not None:
        included = sorted(scope.platforms)
        # SQLite accepts an empty IN (): a scope naming no platform claims nothing.
        conditions.append(f"scoped.platform IN ({', '.join('?' * len(included))})")
        parameters.extend(included)
    if scope.except_platforms:
        excluded = sorted(scope.except_platforms)
        conditions.append(f"scoped.platform NOT IN ({', '.join('?' * len(excluded))})")
        parameters.extend(excluded)
    return (
        " AND EXISTS (SELECT 1 FROM alerts AS scoped WHERE scoped.alert_id = item.alert_id "
        f"AND {' AND '.join(conditions)})",
        tuple(parameters),
    )
