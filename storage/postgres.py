"""``PostgresStore``: the ``Store`` contract on PostgreSQL, for several Vigil processes sharing one database.

Driver: asyncpg rather than psycopg 3. Vigil is asyncio all the way down, and asyncpg was written for asyncio
alone (psycopg 3's async API wraps a sync-first design); it speaks the binary protocol, so timestamps, floats
and arrays cross without text parsing, and pipelines ``executemany``; it brings its own connection pool; and
in published benchmarks it is the fastest Python driver by a wide margin. It is one compiled wheel with no
libpq, which keeps the optional extra (``pip install vigil[postgres]``) small.

Within one process a store behaves exactly like ``SqliteStore``: one ``asyncio.Lock`` serialises operations,
``transaction()`` holds one pooled connection from ``BEGIN`` to ``COMMIT``, the task holding it may call
store methods freely (they join, each write under a savepoint so a failed one leaves the rest). Between
processes the server's locks take over:

* ``apply_pair_changes`` locks the rows of every pair it touches (``SELECT ... FOR UPDATE``, in key order so
  two writers never deadlock) before writing, so two processes appending to one pair are serialised: no
  window message or risk point is lost and each window is trimmed consistently.
* ``create_alert`` numbers cases through an upsert on the space's counter row, whose row lock serialises it.
* ``claim_deliveries`` (several delivery workers) claims due outbox items with ``FOR UPDATE SKIP LOCKED``
  and leases them, so two workers never get one item.
* Migrations and the encryption check run under advisory locks (``storage/postgres_migrations.py``).

The DSN is a secret (it may hold a password): it is never logged nor put in an error message; errors name
the database only by ``database`` (its name, nothing else). Server errors are reported by their message
alone, never their DETAIL (which can quote a row's values), and are not chained.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, NoReturn, Self
from urllib.parse import unquote, urlsplit

import asyncpg

from vigil.bots.core.cases import AuditEvent, CaseSource, CaseState
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
from vigil.bots.core.ports import (
    CaseRecord,
    FenceToken,
    PairChanges,
    StoreError,
    TransientStoreError,
    UserErasure,
)
from vigil.storage.claims import claim_prefix, new_claim_token
from vigil.storage.crypto import CipherError, TextCipher
from vigil.storage.postgres_migrations import (
    ADVISORY_LOCK_CLASS,
    ENCRYPTION_CHECK_LOCK,
    apply_migrations,
)

# The same encodings as SQLite (JSON columns, the row identities bound into ciphertexts), so a stored value
# means the same in both backends.
from vigil.storage.sqlite import (
    _audit_row,
    _evidence_from_json,
    _evidence_json,
    _json_strings,
    _message_row,
    _message_row_of,
    _record_row,
    _strings_from_json,
    _timestamp_text,
)

__all__ = ["PostgresStore"]

logger = logging.getLogger(__name__)

_MAX_DELIVERY_ERROR_CHARS = 500

_PAIR_COLUMNS = (
    "pair_id, platform, space_id, user_a, user_b, first_seen, last_seen, message_count, channel_ids, "
    "model_state, risk, suspect_id, above_threshold_streak, snoozed_until"
)
_ALERT_COLUMNS = (
    "alert_id, platform, space_id, user_a, user_b, case_number, status, risk, peak_risk, suspect_id, "
    "other_id, channel_ids, signals, evidence, created_at, updated_at, revision, shadow, model_name, "
    "delivery_ref"
)
_CASE_COLUMNS = (
    f"{_ALERT_COLUMNS}, case_state, case_source, claimed_by, dismiss_reason, hold_until, closed_at, "
    "text_purged_at"
)
_OUTBOX_COLUMNS = "item_id, alert_id, kind, revision, attempts, next_attempt_at, last_error"
_WINDOW_COLUMNS = "message_id, channel_id, thread_id, author_id, text, timestamp, risk, signals"
_AUDIT_COLUMNS = "event_id, case_number, at, actor_id, action, before, after, detail"

# Pair keys cross as four text arrays, unnested into rows k(platform, space_id, user_a, user_b, ord).
_KEYS_FROM = (
    "unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY "
    "AS k(platform, space_id, user_a, user_b, ord)"
)
_KEYS_JOIN = (
    "p.platform = k.platform AND p.space_id = k.space_id AND p.user_a = k.user_a AND p.user_b = k.user_b"
)
_PAIR_UPSERT = (
    "INSERT INTO pairs (platform, space_id, user_a, user_b, first_seen, last_seen, message_count, "
    "channel_ids, model_state, risk, suspect_id, above_threshold_streak, snoozed_until) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) "
    "ON CONFLICT (platform, space_id, user_a, user_b) DO UPDATE SET "
    "first_seen = excluded.first_seen, last_seen = excluded.last_seen, "
    "message_count = excluded.message_count, channel_ids = excluded.channel_ids, "
    "model_state = excluded.model_state, risk = excluded.risk, suspect_id = excluded.suspect_id, "
    "above_threshold_streak = excluded.above_threshold_streak, snoozed_until = excluded.snoozed_until"
)
# The mutable alert columns ($1..$13); a None delivery_ref keeps the stored one (as SqliteStore).
_ALERT_UPDATE_SET = (
    "status = $1, risk = $2, peak_risk = $3, suspect_id = $4, other_id = $5, channel_ids = $6, signals = $7, "
    "evidence = $8, updated_at = $9, revision = $10, shadow = $11, model_name = $12, "
    "delivery_ref = coalesce($13, delivery_ref)"
)


def _pair_protected(now: str) -> str:
    """A case protects its pair (alias p) while open and not escalated, or while a hold covers it."""
    return (
        "EXISTS (SELECT 1 FROM alerts AS a WHERE a.platform = p.platform AND a.space_id = p.space_id "
        "AND a.user_a = p.user_a AND a.user_b = p.user_b AND ((a.status = 'open' AND a.case_state IN "
        f"('open', 'claimed', 'confirmed')) OR a.hold_until > {now}))"
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

# Outbox items (alias item) due at $1: not under a live claim, no other item of the alert under one (an alert
# is delivered by one worker at a time), and an UPDATE waits behind its alert's pending POST.
_DUE = (
    "item.next_attempt_at <= $1 AND (item.claimed_until IS NULL OR item.claimed_until <= $1) "
    "AND NOT (item.kind = 'update' AND EXISTS ("
    "SELECT 1 FROM outbox AS post WHERE post.alert_id = item.alert_id AND post.kind = 'post')) "
    "AND NOT EXISTS (SELECT 1 FROM outbox AS other WHERE other.alert_id = item.alert_id "
    "AND other.item_id <> item.item_id AND other.claimed_until > $1)"
)

# Connection-level failures (the server went away, a timeout, a refused socket): no SQLSTATE to report.
_CONNECTION_ERRORS = (asyncpg.InterfaceError, OSError, TimeoutError)
# admin_shutdown, crash_shutdown, cannot_connect_now: the server is stopping or starting.
_SERVER_GOING_AWAY = frozenset({"57P01", "57P02", "57P03"})


class PostgresStore:
    """The PostgreSQL ``Store``. ``dsn`` is a libpq-style URL or key=value string (a secret: never shown).

    ``min_connections``/``max_connections`` size the pool; ``connect_timeout_s`` bounds each connection
    attempt. With a ``cipher``, the same texts as ``SqliteStore`` are encrypted (same columns, same row
    identities), and the database remembers at first use whether it is encrypted.
    """

    def __init__(
        self,
        dsn: str,
        *,
        cipher: TextCipher | None = None,
        min_connections: int = 1,
        max_connections: int = 4,
        connect_timeout_s: float = 10.0,
    ) -> None:
        if not dsn.strip():
            raise ValueError("the PostgreSQL DSN is empty")
        if not 1 <= min_connections <= max_connections:
            raise ValueError("need 1 <= min_connections <= max_connections")
        if connect_timeout_s <= 0:
            raise ValueError("connect_timeout_s must be positive")
        self._dsn = dsn
        self._database = _describe(dsn)
        self._cipher = cipher
        self._min_connections = min_connections
        self._max_connections = max_connections
        self._connect_timeout_s = connect_timeout_s
        self._pool: Any = None
        self._lock = asyncio.Lock()
        self._lock_holder: asyncio.Task[Any] | None = None
        # The connection of the operation or transaction holding the lock (joined by the holder's calls).
        self._active: Any = None

    def __repr__(self) -> str:
        return f"PostgresStore({self._database})"

    @property
    def database(self) -> str:
        """What to call the database in messages: its name only, never the DSN."""
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
            if self._pool is not None:
                raise StoreError(f"The store for the {self._database} is already open.")
            pool = await self._create_pool()
            try:
                async with self._mapped_errors("opening the database"), pool.acquire() as connection:
                    version = await apply_migrations(connection, database=self._database)
                    await self._check_encryption(connection)
            except BaseException:
                await _close_pool_quietly(pool, database=self._database)
                raise
            self._pool = pool
        logger.info("Opened store %s at schema version %d", self._database, version)

    async def _create_pool(self) -> Any:
        try:
            return await asyncpg.create_pool(
                self._dsn,
                min_size=self._min_connections,
                max_size=self._max_connections,
                timeout=self._connect_timeout_s,
                # What pg_stat_activity shows for these connections.
                server_settings={"application_name": "vigil"},
            )
        except asyncpg.PostgresError as error:
            raise StoreError(f"Cannot connect to the {self._database}: {_server_message(error)}") from None
        except (*_CONNECTION_ERRORS, ValueError, asyncpg.ClientConfigurationError) as error:
            # The driver's own messages may quote parts of the DSN: only the kind of failure is shown.
            raise StoreError(
                f"Cannot connect to the {self._database} ({type(error).__name__}): check that the server "
                "runs and that the DSN in the environment is right."
            ) from None

    async def close(self) -> None:
        async with self._exclusive():
            pool, self._pool = self._pool, None
            if pool is None:
                return
            async with self._mapped_errors("closing the database"):
                await asyncio.wait_for(pool.close(), timeout=10)
        logger.info("Closed store %s", self._database)

    async def _check_encryption(self, connection: Any) -> None:
        """Compare the cipher with what the database recorded at first use (and record it then)."""
        async with connection.transaction():
            # Two processes opening a fresh database together must not both record a marker.
            await connection.execute(
                "SELECT pg_advisory_xact_lock($1, $2)", ADVISORY_LOCK_CLASS, ENCRYPTION_CHECK_LOCK
            )
            marker = await connection.fetchval("SELECT value FROM meta WHERE key = $1", _ENCRYPTION_MARKER)
            if marker is None:
                await self._record_encryption(connection)
            elif marker == _ENCRYPTION_NONE:
                if self._cipher is not None:
                    raise StoreError(
                        f"The {self._database} was created without encryption, but an encryption key is "
                        "set (VIGIL_ENCRYPTION_KEY by default). Unset the key to use this database, or start "
                        "a new database to have its text encrypted."
                    )
            else:
                await self._verify_key(connection)

    async def _record_encryption(self, connection: Any) -> None:
        if self._cipher is None:
            await connection.execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2)", _ENCRYPTION_MARKER, _ENCRYPTION_NONE
            )
            return
        holds_text = await connection.fetchval(
            "SELECT EXISTS (SELECT 1 FROM window_messages) OR EXISTS (SELECT 1 FROM alerts) "
            "OR EXISTS (SELECT 1 FROM case_evidence) OR EXISTS (SELECT 1 FROM case_audit) "
            "OR EXISTS (SELECT 1 FROM records)"
        )
        if holds_text:
            raise StoreError(
                f"The {self._database} already holds unencrypted text, but an encryption key is set "
                "(VIGIL_ENCRYPTION_KEY by default). Unset the key to use this database, or start a new "
                "database to have its text encrypted."
            )
        await connection.execute(
            "INSERT INTO meta (key, value) VALUES ($1, $2), ($3, $4)",
            _ENCRYPTION_MARKER,
            _ENCRYPTION_AES_GCM,
            _KEY_CHECK,
            self._cipher.encrypt(_KEY_CHECK_PLAINTEXT, column=_KEY_CHECK, row=""),
        )
        logger.info("%s: text will be encrypted at rest (key id %s)", self._database, self._cipher.key_id)

    async def _verify_key(self, connection: Any) -> None:
        check = str(await connection.fetchval("SELECT value FROM meta WHERE key = $1", _KEY_CHECK))
        if self._cipher is None:
            raise StoreError(
                f"The {self._database} is encrypted, but no encryption key is set. Set the key it was "
                "created with in the environment (VIGIL_ENCRYPTION_KEY by default)."
            )
        try:
            opened = self._cipher.decrypt(check, column=_KEY_CHECK, row="")
        except CipherError:
            opened = None
        if opened != _KEY_CHECK_PLAINTEXT:
            raise StoreError(
                f"Wrong encryption key for the {self._database}: it was encrypted with key id "
                f"{TextCipher.key_id_of(check)}, and the configured keys have ids "
                f"{', '.join(sorted(self._cipher.key_ids))}. Set the right key (or add it to the old keys "
                "during a rotation). Nothing was read or written."
            )
        if TextCipher.key_id_of(check) != self._cipher.key_id:
            await connection.execute(
                "UPDATE meta SET value = $1 WHERE key = $2",
                self._cipher.encrypt(_KEY_CHECK_PLAINTEXT, column=_KEY_CHECK, row=""),
                _KEY_CHECK,
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
            pool = self._require_pool()
            async with self._mapped_errors("starting a transaction"):
                connection = await pool.acquire()
            try:
                transaction = connection.transaction()
                async with self._mapped_errors("starting a transaction"):
                    await transaction.start()
                self._active = connection
                try:
                    yield
                except BaseException:
                    await self._rollback_quietly(transaction)
                    raise
                finally:
                    self._active = None
                async with self._mapped_errors("committing a transaction"):
                    await transaction.commit()
            finally:
                await _release(pool, connection)

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
    async def _connection(self, action: str, *, write: bool = True) -> AsyncIterator[Any]:
        """One operation's connection: its own (a transaction when it writes), or the holder's.

        Inside the caller's transaction a write runs under a savepoint: Postgres aborts the whole
        transaction on any error, and a store operation that fails must leave the rest of it usable.
        """
        async with self._exclusive() as joined:
            if joined and self._active is not None:
                connection = self._active
                async with self._mapped_errors(action):
                    if write:
                        async with connection.transaction():
                            yield connection
                    else:
                        yield connection
                return
            pool = self._require_pool()
            async with self._mapped_errors(action):
                connection = await pool.acquire()
            self._active = connection
            try:
                async with self._mapped_errors(action):
                    if write:
                        async with connection.transaction():
                            yield connection
                    else:
                        yield connection
            finally:
                self._active = None
                await _release(pool, connection)

    async def _rollback_quietly(self, transaction: Any) -> None:
        # A failed rollback must not hide the error that caused it (the pool resets the connection anyway).
        try:
            await transaction.rollback()
        except (asyncpg.PostgresError, *_CONNECTION_ERRORS) as error:
            logger.warning("Rollback on %s failed: %s", self._database, type(error).__name__)

    @asynccontextmanager
    async def _mapped_errors(self, action: str) -> AsyncIterator[None]:
        try:
            yield
        except asyncpg.PostgresError as error:
            raise self._store_error(error, action=action) from None
        except _CONNECTION_ERRORS as error:
            raise TransientStoreError(
                f"Lost the connection to the {self._database} while {action} ({type(error).__name__})."
            ) from None

    def _store_error(self, error: asyncpg.PostgresError, *, action: str) -> StoreError:
        state = str(getattr(error, "sqlstate", None) or "")
        if state.startswith("08") or state in _SERVER_GOING_AWAY:
            # The connection broke or the server is restarting: the transaction was rolled back.
            return TransientStoreError(
                f"PostgreSQL error while {action} in the {self._database}: {_server_message(error)}"
            )
        if state in ("40001", "40P01"):
            return TransientStoreError(
                f"A concurrent writer conflicted with {action} in the {self._database} ({state}); nothing "
                "of it was saved: try again."
            )
        return StoreError(
            f"PostgreSQL error while {action} in the {self._database}: {_server_message(error)}"
        )

    def _require_pool(self) -> Any:
        if self._pool is None:
            raise StoreError(
                f"The store for the {self._database} is not open; call open() or use 'async with' first."
            )
        return self._pool

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
            raise StoreError(f"Cannot decrypt data in the {self._database}: {error}.") from None

    def _evidence_seal(self, text: str, row: str) -> str:
        return self._seal(text, column=_EVIDENCE_TEXT, row=row)

    def _evidence_unseal(self, value: str, row: str) -> str:
        return self._unseal(value, column=_EVIDENCE_TEXT, row=row)

    def _alert_from_row(self, row: Any) -> Alert:
        return Alert(
            alert_id=int(row["alert_id"]),
            key=_key_of(row),
            case_number=int(row["case_number"]),
            status=AlertStatus(row["status"]),
            risk=float(row["risk"]),
            peak_risk=float(row["peak_risk"]),
            suspect_id=str(row["suspect_id"]),
            other_id=str(row["other_id"]),
            channel_ids=_strings_from_json(row["channel_ids"]),
            signals=_strings_from_json(row["signals"]),
            evidence=_evidence_from_json(row["evidence"], unseal=self._evidence_unseal),
            created_at=_utc_from_db(row["created_at"]),
            updated_at=_utc_from_db(row["updated_at"]),
            revision=int(row["revision"]),
            shadow=bool(row["shadow"]),
            model_name=str(row["model_name"]),
            delivery_ref=row["delivery_ref"],
        )

    def _case_from_row(self, row: Any) -> CaseRecord:
        reason = _optional_text(row["dismiss_reason"])
        return CaseRecord(
            alert=self._alert_from_row(row),
            state=CaseState(row["case_state"]),
            source=CaseSource(row["case_source"]),
            claimed_by=row["claimed_by"],
            dismiss_reason=(
                None
                if reason is None
                else self._unseal(reason, column=_DISMISS_REASON, row=str(row["alert_id"]))
            ),
            hold_until=_optional_utc_from_db(row["hold_until"]),
            closed_at=_optional_utc_from_db(row["closed_at"]),
            text_purged_at=_optional_utc_from_db(row["text_purged_at"]),
        )

    def _window_message_from_row(self, row: Any, *, column: str) -> WindowMessage:
        return WindowMessage(
            message_id=str(row["message_id"]),
            channel_id=str(row["channel_id"]),
            thread_id=row["thread_id"],
            author_id=str(row["author_id"]),
            text=self._unseal(
                _text(row["text"]),
                column=column,
                row=_message_row_of(str(row["message_id"]), str(row["author_id"]), str(row["channel_id"])),
            ),
            timestamp=_utc_from_db(row["timestamp"]),
            risk=float(row["risk"]),
            signals=_strings_from_json(row["signals"]),
        )

    # ------------------------------------------------------------------ messages and pairs

    async def claim_message(
        self, *, platform: str, space_id: str, message_id: str, seen_at: datetime
    ) -> bool:
        seen = _utc(seen_at)
        async with self._connection("recording a seen message") as connection:
            status = await connection.execute(
                "INSERT INTO seen_messages (platform, space_id, message_id, seen_at) VALUES ($1, $2, $3, $4) "
                "ON CONFLICT DO NOTHING",
                platform,
                space_id,
                message_id,
                seen,
            )
        return _row_count(status) == 1

    async def claim_messages(
        self, *, platform: str, space_id: str, message_ids: Sequence[str], seen_at: datetime
    ) -> frozenset[str]:
        if not message_ids:
            return frozenset()
        seen = _utc(seen_at)
        unique = list(dict.fromkeys(message_ids))
        async with self._connection("recording seen messages") as connection:
            # One statement for the whole batch; RETURNING names only the rows actually inserted.
            rows = await connection.fetch(
                "INSERT INTO seen_messages (platform, space_id, message_id, seen_at) "
                "SELECT $1, $2, m, $3 FROM unnest($4::text[]) AS m "
                "ON CONFLICT DO NOTHING RETURNING message_id",
                platform,
                space_id,
                seen,
                unique,
            )
        return frozenset(str(row["message_id"]) for row in rows)

    async def seen_message_ids(
        self, *, platform: str, space_id: str, message_ids: Sequence[str]
    ) -> frozenset[str]:
        if not message_ids:
            return frozenset()
        async with self._connection("checking which messages were seen", write=False) as connection:
            rows = await connection.fetch(
                "SELECT message_id FROM seen_messages WHERE platform = $1 AND space_id = $2 "
                "AND message_id = ANY($3::text[])",
                platform,
                space_id,
                list(message_ids),
            )
        return frozenset(str(row["message_id"]) for row in rows)

    async def last_claimed_at(self, *, platform: str, space_id: str) -> datetime | None:
        async with self._connection("finding when a space's messages were last seen", write=False) as c:
            last = await c.fetchval(
                "SELECT max(seen_at) FROM seen_messages WHERE platform = $1 AND space_id = $2",
                platform,
                space_id,
            )
        return _optional_utc_from_db(last)

    async def load_pair(self, key: PairKey) -> PairState | None:
        async with self._connection("loading a pair", write=False) as connection:
            row = await connection.fetchrow(
                f"SELECT {_PAIR_COLUMNS} FROM pairs "
                "WHERE platform = $1 AND space_id = $2 AND user_a = $3 AND user_b = $4",
                *_key_parameters(key),
            )
        return None if row is None else _pair_from_row(row)

    async def save_pair(self, state: PairState) -> None:
        await self.apply_pair_changes(PairChanges(pairs=(state,)))

    async def load_pairs(self, keys: Collection[PairKey]) -> dict[PairKey, PairState]:
        rows = await self._rows_for_keys(keys, table="pairs", columns=_PAIR_COLUMNS, action="loading pairs")
        return {state.key: state for state in map(_pair_from_row, rows)}

    async def _rows_for_keys(
        self, keys: Collection[PairKey], *, table: str, columns: str, action: str, where: str = ""
    ) -> list[Any]:
        """The rows of ``table`` (keyed by pair) for ``keys``, in one query through its key index."""
        unique = list(dict.fromkeys(keys))
        if not unique:
            return []
        async with self._connection(action, write=False) as connection:
            return list(
                await connection.fetch(
                    f"SELECT {_qualified(columns, 'p')} FROM {_KEYS_FROM} "
                    f"JOIN {table} AS p ON {_KEYS_JOIN}{where} ORDER BY k.ord",
                    *_key_arrays(unique),
                )
            )

    async def apply_pair_changes(self, changes: PairChanges) -> None:
        """A fixed number of round trips however many pairs the batch touches (arrays unnested server-side).

        The rows of the touched pairs are locked first, in key order: a second process writing one of them
        waits for this transaction, and two processes locking overlapping sets never deadlock.
        """
        if changes.keep < 0:
            raise ValueError("keep must not be negative")
        if not changes:
            return
        # The last state of each pair wins, as if saved one after another. Every value is converted (and a
        # naive datetime refused) before anything is written.
        latest = {state.key: state for state in changes.pairs}
        upserts = [_pair_parameters(latest[key]) for key in sorted(latest, key=_key_parameters)]
        window = [
            (key, message, self._seal(message.text, column=_WINDOW_TEXT, row=_message_row(message)))
            for key, message in changes.window
        ]
        window_times = [_utc(message.timestamp) for _, message in changes.window]
        risk_times = [_utc(point.timestamp) for point in changes.risks]
        touched = sorted(
            {*latest, *(key for key, _ in changes.window), *(point.key for point in changes.risks)},
            key=_key_parameters,
        )
        async with self._connection("saving pair state") as connection:
            await connection.fetch(
                f"SELECT p.pair_id FROM {_KEYS_FROM} JOIN pairs AS p ON {_KEYS_JOIN} "
                "ORDER BY k.ord FOR UPDATE OF p",
                *_key_arrays(touched),
            )
            if upserts:
                # An upsert, not delete-and-insert, which would cascade to the window.
                await connection.executemany(_PAIR_UPSERT, upserts)
            if not (window or changes.risks):
                return
            ids = {
                _key_of(row): int(row["pair_id"])
                for row in await connection.fetch(
                    f"SELECT p.pair_id, p.platform, p.space_id, p.user_a, p.user_b FROM {_KEYS_FROM} "
                    f"JOIN pairs AS p ON {_KEYS_JOIN}",
                    *_key_arrays(touched),
                )
            }
            if window:
                for key, _, _ in window:
                    if key not in ids:
                        self._no_such_pair(key, action="append_window")
                await connection.execute(
                    "INSERT INTO window_messages (pair_id, message_id, channel_id, thread_id, author_id, "
                    "text, timestamp, risk, signals) SELECT pair_id, message_id, channel_id, thread_id, "
                    "author_id, text, timestamp, risk, signals FROM unnest($1::bigint[], $2::text[], "
                    "$3::text[], $4::text[], $5::text[], $6::bytea[], $7::timestamptz[], $8::float8[], "
                    "$9::text[]) WITH ORDINALITY AS w(pair_id, message_id, channel_id, thread_id, "
                    "author_id, text, timestamp, risk, signals, ord) ORDER BY ord",
                    [ids[key] for key, _, _ in window],
                    [message.message_id for _, message, _ in window],
                    [message.channel_id for _, message, _ in window],
                    [message.thread_id for _, message, _ in window],
                    [message.author_id for _, message, _ in window],
                    [_utf8(sealed) for _, _, sealed in window],
                    window_times,
                    [message.risk for _, message, _ in window],
                    [_json_strings(message.signals) for _, message, _ in window],
                )
                # Everything at or below each window's (keep+1)-th newest seq goes; NULL deletes nothing.
                await connection.execute(
                    "DELETE FROM window_messages AS w USING unnest($1::bigint[]) AS t(pair_id) "
                    "WHERE w.pair_id = t.pair_id AND w.seq <= (SELECT x.seq FROM window_messages AS x "
                    "WHERE x.pair_id = t.pair_id ORDER BY x.seq DESC LIMIT 1 OFFSET $2)",
                    list(dict.fromkeys(ids[key] for key, _, _ in window)),
                    changes.keep,
                )
            if changes.risks:
                for point in changes.risks:
                    if point.key not in ids:
                        self._no_such_pair(point.key, action="append_risk")
                await connection.execute(
                    "INSERT INTO risk_history (pair_id, timestamp, message_id, risk, suspect_id) "
                    "SELECT pair_id, timestamp, message_id, risk, suspect_id FROM unnest($1::bigint[], "
                    "$2::timestamptz[], $3::text[], $4::float8[], $5::text[]) WITH ORDINALITY "
                    "AS r(pair_id, timestamp, message_id, risk, suspect_id, ord) ORDER BY ord",
                    [ids[point.key] for point in changes.risks],
                    risk_times,
                    [point.message_id for point in changes.risks],
                    [point.risk for point in changes.risks],
                    [point.suspect_id for point in changes.risks],
                )

    async def pairs_for_user(self, *, platform: str, space_id: str, user_id: str) -> list[PairState]:
        async with self._connection("listing a user's pairs", write=False) as connection:
            rows = await connection.fetch(
                f"SELECT {_PAIR_COLUMNS} FROM pairs WHERE platform = $1 AND space_id = $2 "
                "AND (user_a = $3 OR user_b = $3) ORDER BY pair_id",
                platform,
                space_id,
                user_id,
            )
        return [_pair_from_row(row) for row in rows]

    async def count_pairs(self) -> int:
        async with self._connection("counting pairs", write=False) as connection:
            return int(await connection.fetchval("SELECT count(*) FROM pairs"))

    async def iter_pairs(self, *, batch: int) -> AsyncIterator[list[PairState]]:
        """Every pair, ``batch`` at a time, in insertion order; the lock is not held between batches."""
        if batch < 1:
            raise ValueError("batch must be at least 1")
        after_pair_id = 0
        while True:
            async with self._connection("listing pairs", write=False) as connection:
                rows = await connection.fetch(
                    f"SELECT {_PAIR_COLUMNS} FROM pairs WHERE pair_id > $1 ORDER BY pair_id LIMIT $2",
                    after_pair_id,
                    batch,
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
        moment = _utc(now)
        async with self._connection("forgetting a deleted message") as connection:
            # Its edits too ("<id>:edit:<ms>"): a prefix test, which takes any length of id.
            status = await connection.execute(
                "DELETE FROM window_messages WHERE (message_id = $1 OR starts_with(message_id, $2)) "
                "AND pair_id IN (SELECT p.pair_id FROM pairs AS p WHERE p.platform = $3 AND p.space_id = $4 "
                f"AND NOT {_pair_protected('$5')})",
                message_id,
                message_id + ":edit:",
                platform,
                space_id,
                moment,
            )
        return _row_count(status)

    async def load_window(self, key: PairKey) -> list[WindowMessage]:
        async with self._connection("loading a pair's window", write=False) as connection:
            rows = await connection.fetch(
                "SELECT w.message_id, w.channel_id, w.thread_id, w.author_id, w.text, w.timestamp, w.risk, "
                "w.signals FROM window_messages AS w JOIN pairs AS p ON p.pair_id = w.pair_id "
                "WHERE p.platform = $1 AND p.space_id = $2 AND p.user_a = $3 AND p.user_b = $4 "
                "ORDER BY w.seq",
                *_key_parameters(key),
            )
        return [self._window_message_from_row(row, column=_WINDOW_TEXT) for row in rows]

    async def append_risk(self, point: RiskPoint) -> None:
        await self.apply_pair_changes(PairChanges(risks=(point,)))

    async def risk_history(self, key: PairKey, *, limit: int) -> list[RiskPoint]:
        """The newest ``limit`` points, oldest first (in the order they were appended)."""
        if limit < 0:
            raise ValueError("limit must not be negative")
        async with self._connection("loading a pair's risk history", write=False) as connection:
            rows = await connection.fetch(
                "SELECT * FROM (SELECT r.point_id, r.timestamp, r.message_id, r.risk, r.suspect_id "
                "FROM risk_history AS r JOIN pairs AS p ON p.pair_id = r.pair_id "
                "WHERE p.platform = $1 AND p.space_id = $2 AND p.user_a = $3 AND p.user_b = $4 "
                "ORDER BY r.point_id DESC LIMIT $5) AS newest ORDER BY point_id",
                *_key_parameters(key),
                limit,
            )
        return [
            RiskPoint(
                key=key,
                timestamp=_utc_from_db(row["timestamp"]),
                message_id=str(row["message_id"]),
                risk=float(row["risk"]),
                suspect_id=row["suspect_id"],
            )
            for row in rows
        ]

    def _no_such_pair(self, key: PairKey, *, action: str) -> NoReturn:
        raise StoreError(
            f"{action}: no such pair in the {self._database} ({key}); save_pair must come first."
        )

    # ------------------------------------------------------------------ alerts

    async def create_alert(self, alert: Alert) -> Alert:
        """Store ``alert`` with a new ``alert_id`` and its space's next case number (inputs ignored)."""
        columns = self._alert_parameters(alert)
        async with self._connection("creating an alert") as connection:
            # The counter row's lock, held to commit, serialises numbering between processes.
            case_number = int(
                await connection.fetchval(
                    "INSERT INTO case_counters AS c (platform, space_id, last_case_number) "
                    "VALUES ($1, $2, 1) ON CONFLICT (platform, space_id) "
                    "DO UPDATE SET last_case_number = c.last_case_number + 1 RETURNING last_case_number",
                    alert.key.platform,
                    alert.key.space_id,
                )
            )
            alert_id = int(
                await connection.fetchval(
                    "INSERT INTO alerts (platform, space_id, user_a, user_b, case_number, status, risk, "
                    "peak_risk, suspect_id, other_id, channel_ids, signals, evidence, created_at, "
                    "updated_at, revision, shadow, model_name, delivery_ref) VALUES ($1, $2, $3, $4, $5, $6, "
                    "$7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) RETURNING alert_id",
                    *_key_parameters(alert.key),
                    case_number,
                    *columns,
                )
            )
        return dataclasses.replace(alert, alert_id=alert_id, case_number=case_number)

    def _alert_parameters(self, alert: Alert) -> tuple[Any, ...]:
        """The columns after ``case_number``, in ``INSERT INTO alerts`` order."""
        return (
            alert.status.value,
            alert.risk,
            alert.peak_risk,
            alert.suspect_id,
            alert.other_id,
            _json_strings(alert.channel_ids),
            _json_strings(alert.signals),
            _evidence_json(alert.evidence, seal=self._evidence_seal),
            _utc(alert.created_at),
            _utc(alert.updated_at),
            alert.revision,
            alert.shadow,
            alert.model_name,
            alert.delivery_ref,
        )

    def _alert_update_values(self, alert: Alert) -> tuple[Any, ...]:
        """The values for ``_ALERT_UPDATE_SET``, in its order."""
        return (
            alert.status.value,
            alert.risk,
            alert.peak_risk,
            alert.suspect_id,
            alert.other_id,
            _json_strings(alert.channel_ids),
            _json_strings(alert.signals),
            _evidence_json(alert.evidence, seal=self._evidence_seal),
            _utc(alert.updated_at),
            alert.revision,
            alert.shadow,
            alert.model_name,
            alert.delivery_ref,
        )

    async def update_alert(self, alert: Alert) -> None:
        """Overwrite the alert's mutable fields; its pair, case number and ``created_at`` never change."""
        values = self._alert_update_values(alert)
        async with self._connection("updating an alert") as connection:
            status = await connection.execute(
                f"UPDATE alerts SET {_ALERT_UPDATE_SET} WHERE alert_id = $14", *values, alert.alert_id
            )
            if _row_count(status) == 0:
                raise StoreError(f"No alert {alert.alert_id} in the {self._database} to update.")

    async def get_alert(self, alert_id: int) -> Alert | None:
        async with self._connection("loading an alert", write=False) as connection:
            row = await connection.fetchrow(
                f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE alert_id = $1", alert_id
            )
        return None if row is None else self._alert_from_row(row)

    async def open_alert_for_pair(self, key: PairKey) -> Alert | None:
        async with self._connection("loading a pair's open alert", write=False) as connection:
            # The literal 'open' lets the planner use the partial index on open alerts.
            row = await connection.fetchrow(
                f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE platform = $1 AND space_id = $2 "
                "AND user_a = $3 AND user_b = $4 AND status = 'open'",
                *_key_parameters(key),
            )
        return None if row is None else self._alert_from_row(row)

    async def open_alerts_for_pairs(self, keys: Collection[PairKey]) -> dict[PairKey, Alert]:
        rows = await self._rows_for_keys(
            keys,
            table="alerts",
            columns=_ALERT_COLUMNS,
            action="loading pairs' open alerts",
            where=" AND p.status = 'open'",
        )
        return {alert.key: alert for alert in map(self._alert_from_row, rows)}

    async def open_alert_keys(self) -> list[PairKey]:
        async with self._connection("listing the pairs with an open alert", write=False) as connection:
            rows = await connection.fetch(
                "SELECT platform, space_id, user_a, user_b FROM alerts WHERE status = 'open' "
                "ORDER BY platform, space_id, user_a, user_b"
            )
        return [_key_of(row) for row in rows]

    async def alerts_for_space(self, *, platform: str, space_id: str, limit: int) -> list[Alert]:
        """Newest first, by case number (the order the alerts were created in)."""
        if limit < 0:
            raise ValueError("limit must not be negative")
        async with self._connection("listing a space's alerts", write=False) as connection:
            rows = await connection.fetch(
                f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE platform = $1 AND space_id = $2 "
                "ORDER BY case_number DESC LIMIT $3",
                platform,
                space_id,
                limit,
            )
        return [self._alert_from_row(row) for row in rows]

    async def count_alerts_since(self, *, platform: str, space_id: str, since: datetime) -> int:
        moment = _utc(since)
        async with self._connection("counting a space's alerts", write=False) as connection:
            count = await connection.fetchval(
                "SELECT count(*) FROM alerts WHERE platform = $1 AND space_id = $2 AND created_at >= $3",
                platform,
                space_id,
                moment,
            )
        return int(count)

    # ------------------------------------------------------------------ outbox

    async def enqueue_delivery(
        self, *, alert_id: int, kind: OutboxKind, revision: int, now: datetime
    ) -> None:
        moment = _utc(now)
        async with self._connection("queueing an alert delivery") as connection:
            await connection.execute(
                "INSERT INTO outbox AS o (alert_id, kind, revision, attempts, next_attempt_at) "
                "VALUES ($1, $2, $3, 0, $4) ON CONFLICT (alert_id, kind) DO UPDATE SET "
                "revision = greatest(o.revision, excluded.revision), "
                "next_attempt_at = least(o.next_attempt_at, excluded.next_attempt_at)",
                alert_id,
                kind.value,
                revision,
                moment,
            )

    async def due_deliveries(self, *, now: datetime, limit: int) -> list[OutboxItem]:
        """Items due at ``now`` and not claimed, oldest first; an UPDATE waits while its alert's POST is
        pending. A read: several workers use ``claim_deliveries``."""
        if limit < 0:
            raise ValueError("limit must not be negative")
        moment = _utc(now)
        async with self._connection("listing due deliveries", write=False) as connection:
            rows = await connection.fetch(
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox AS item WHERE {_DUE} "
                "ORDER BY item.next_attempt_at, item.item_id LIMIT $2",
                moment,
                limit,
            )
        return [_outbox_item_from_row(row) for row in rows]

    async def claim_deliveries(
        self, *, now: datetime, limit: int, lease: timedelta, worker: str, scope: DeliveryScope = ANY_PLATFORM
    ) -> list[OutboxItem]:
        """Take up to ``limit`` due items of the alerts ``scope`` covers for one new claim: each is leased
        (``claimed_by``, ``claimed_until = now + lease``) in the same statement that selects it, skipping rows
        another worker is claiming (``FOR UPDATE SKIP LOCKED``; a row claimed and committed meanwhile is
        re-checked and no longer due). The items come back oldest first, as ``due_deliveries``."""
        if limit < 0:
            raise ValueError("limit must not be negative")
        if lease <= timedelta(0):
            raise ValueError("lease must be positive")
        moment = _utc(now)
        claim = new_claim_token(worker)
        in_scope, scope_parameters = _scope_condition(scope, first_parameter=5)
        async with self._connection("claiming due deliveries") as connection:
            rows = await connection.fetch(
                "WITH due AS (SELECT item.item_id FROM outbox AS item "
                f"WHERE {_DUE}{in_scope} ORDER BY item.next_attempt_at, item.item_id LIMIT $2 "
                "FOR UPDATE SKIP LOCKED) "
                "UPDATE outbox AS o SET claimed_by = $4, claimed_until = $3 FROM due "
                f"WHERE o.item_id = due.item_id RETURNING {_qualified(_OUTBOX_COLUMNS, 'o')}",
                moment,
                limit,
                moment + lease,
                claim,
                *scope_parameters,
            )
        ordered = sorted(rows, key=lambda row: (row["next_attempt_at"], row["item_id"]))
        return [dataclasses.replace(_outbox_item_from_row(row), claim=claim) for row in ordered]

    async def release_claims(self, *, worker: str) -> int:
        async with self._connection("releasing delivery claims") as connection:
            status = await connection.execute(
                "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL WHERE starts_with(claimed_by, $1)",
                claim_prefix(worker),
            )
        return int(status.rsplit(" ", 1)[-1])

    async def extend_claim(self, *, claim: str, until: datetime) -> int:
        async with self._connection("extending a delivery claim") as connection:
            status = await connection.execute(
                "UPDATE outbox SET claimed_until = $1 WHERE claimed_by = $2", _utc(until), claim
            )
        return int(status.rsplit(" ", 1)[-1])

    async def complete_delivery(
        self, item_id: int, *, alert_id: int, revision: int, ref: str | None, claim: str | None = None
    ) -> bool:
        async with self._connection("completing a delivery") as connection:
            # The row lock keeps the claim from being taken over between this check and the writes below.
            if claim is not None and not await connection.fetchval(
                "SELECT 1 FROM outbox WHERE item_id = $1 AND claimed_by = $2 FOR UPDATE", item_id, claim
            ):
                return False
            # The alert as delivered covers every pending item of it up to that revision; a newer revision
            # enqueued meanwhile stays, and so does another worker's claim.
            await connection.execute(
                "DELETE FROM outbox WHERE (item_id = $1 OR (alert_id = $2 AND (claimed_by IS NULL "
                "OR claimed_by = $4))) AND revision <= $3",
                item_id,
                alert_id,
                revision,
                claim,
            )
            if claim is not None:
                # A newer revision enqueued during the post is due again at once, for any worker.
                await connection.execute(
                    "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL "
                    "WHERE claimed_by = $1 AND (item_id = $2 OR alert_id = $3)",
                    claim,
                    item_id,
                    alert_id,
                )
            if ref is not None:
                await connection.execute(
                    "UPDATE alerts SET delivery_ref = $1 WHERE alert_id = $2", ref, alert_id
                )
        return True

    async def fail_delivery(
        self, item_id: int, *, error: str, next_attempt_at: datetime, claim: str | None = None
    ) -> bool:
        moment = _utc(next_attempt_at)
        async with self._connection("recording a failed delivery") as connection:
            status = await connection.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2, "
                "claimed_by = NULL, claimed_until = NULL "
                "WHERE item_id = $3 AND ($4::text IS NULL OR claimed_by = $4)",
                # A diagnostic, cut short anyway: NUL (which TEXT refuses) becomes U+FFFD.
                error[:_MAX_DELIVERY_ERROR_CHARS].replace("\x00", "\ufffd"),
                moment,
                item_id,
                claim,
            )
        return bool(status != "UPDATE 0")

    async def pending_delivery_count(self) -> int:
        async with self._connection("counting pending deliveries", write=False) as connection:
            return int(await connection.fetchval("SELECT count(*) FROM outbox"))

    # ------------------------------------------------------------------ space settings

    async def get_space_settings(self, *, platform: str, space_id: str) -> SpaceSettings | None:
        async with self._connection("loading space settings", write=False) as connection:
            row = await connection.fetchrow(
                "SELECT threshold, alert_channel_id, moderator_role_id, child_safety_role_id, "
                "ignored_channel_ids, shadow_mode FROM space_settings WHERE platform = $1 AND space_id = $2",
                platform,
                space_id,
            )
        if row is None:
            return None
        threshold = row["threshold"]
        return SpaceSettings(
            platform=platform,
            space_id=space_id,
            threshold=None if threshold is None else float(threshold),
            alert_channel_id=row["alert_channel_id"],
            moderator_role_id=row["moderator_role_id"],
            child_safety_role_id=row["child_safety_role_id"],
            ignored_channel_ids=frozenset(_strings_from_json(row["ignored_channel_ids"])),
            shadow_mode=row["shadow_mode"],
        )

    async def put_space_settings(self, settings: SpaceSettings) -> None:
        async with self._connection("saving space settings") as connection:
            await connection.execute(
                "INSERT INTO space_settings (platform, space_id, threshold, alert_channel_id, "
                "moderator_role_id, child_safety_role_id, ignored_channel_ids, shadow_mode) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (platform, space_id) DO UPDATE SET "
                "threshold = excluded.threshold, alert_channel_id = excluded.alert_channel_id, "
                "moderator_role_id = excluded.moderator_role_id, "
                "child_safety_role_id = excluded.child_safety_role_id, "
                "ignored_channel_ids = excluded.ignored_channel_ids, shadow_mode = excluded.shadow_mode",
                settings.platform,
                settings.space_id,
                settings.threshold,
                settings.alert_channel_id,
                settings.moderator_role_id,
                settings.child_safety_role_id,
                _json_strings(sorted(settings.ignored_channel_ids)),
                settings.shadow_mode,
            )

    # ------------------------------------------------------------------ records (namespaced key-value)

    async def put_record(self, namespace: str, key: str, value: str) -> None:
        sealed = _utf8(self._seal(value, column=_RECORD_VALUE, row=_record_row(namespace, key)))
        async with self._connection("saving a record") as connection:
            await connection.execute(
                "INSERT INTO records (namespace, key, value) VALUES ($1, $2, $3) "
                "ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value",
                namespace,
                key,
                sealed,
            )

    async def get_record(self, namespace: str, key: str) -> str | None:
        async with self._connection("loading a record", write=False) as connection:
            value = await connection.fetchval(
                "SELECT value FROM records WHERE namespace = $1 AND key = $2", namespace, key
            )
        if value is None:
            return None
        return self._unseal(_text(value), column=_RECORD_VALUE, row=_record_row(namespace, key))

    async def delete_record(self, namespace: str, key: str) -> bool:
        async with self._connection("deleting a record") as connection:
            status = await connection.execute(
                "DELETE FROM records WHERE namespace = $1 AND key = $2", namespace, key
            )
        return _row_count(status) > 0

    async def list_records(self, namespace: str) -> dict[str, str]:
        async with self._connection("listing records", write=False) as connection:
            rows = await connection.fetch(
                "SELECT key, value FROM records WHERE namespace = $1 ORDER BY key", namespace
            )
        return {
            str(row["key"]): self._unseal(
                _text(row["value"]), column=_RECORD_VALUE, row=_record_row(namespace, str(row["key"]))
            )
            for row in rows
        }

    # ------------------------------------------------------------------ cases

    async def get_case(self, *, platform: str, space_id: str, case_number: int) -> CaseRecord | None:
        async with self._connection("loading a case", write=False) as connection:
            row = await connection.fetchrow(
                f"SELECT {_CASE_COLUMNS} FROM alerts WHERE platform = $1 AND space_id = $2 "
                "AND case_number = $3",
                platform,
                space_id,
                case_number,
            )
        return None if row is None else self._case_from_row(row)

    async def case_for_alert(self, alert_id: int) -> CaseRecord | None:
        async with self._connection("loading a case", write=False) as connection:
            row = await connection.fetchrow(
                f"SELECT {_CASE_COLUMNS} FROM alerts WHERE alert_id = $1", alert_id
            )
        return None if row is None else self._case_from_row(row)

    async def update_case(self, case: CaseRecord) -> None:
        alert = case.alert
        values = (
            *self._alert_update_values(alert),
            case.state.value,
            case.source.value,
            case.claimed_by,
            (
                None
                if case.dismiss_reason is None
                else _utf8(self._seal(case.dismiss_reason, column=_DISMISS_REASON, row=str(alert.alert_id)))
            ),
            _optional_utc(case.hold_until),
            _optional_utc(case.closed_at),
            _optional_utc(case.text_purged_at),
            alert.alert_id,
        )
        async with self._connection("updating a case") as connection:
            status = await connection.execute(
                f"UPDATE alerts SET {_ALERT_UPDATE_SET}, case_state = $14, case_source = $15, "
                "claimed_by = $16, dismiss_reason = $17, hold_until = $18, closed_at = $19, "
                "text_purged_at = $20 WHERE alert_id = $21",
                *values,
            )
            if _row_count(status) == 0:
                raise StoreError(f"No case (alert {alert.alert_id}) in the {self._database} to update.")

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
        conditions = ["platform = $1", "space_id = $2"]
        parameters: list[Any] = [platform, space_id]
        if user_id is not None:
            parameters.append(user_id)
            number = len(parameters)
            conditions.append(f"(suspect_id = ${number} OR user_a = ${number} OR user_b = ${number})")
        if before_case_number is not None:
            parameters.append(before_case_number)
            conditions.append(f"case_number < ${len(parameters)}")
        parameters.append(limit)
        async with self._connection("listing cases", write=False) as connection:
            rows = await connection.fetch(
                f"SELECT {_CASE_COLUMNS} FROM alerts WHERE {' AND '.join(conditions)} "
                f"ORDER BY case_number DESC LIMIT ${len(parameters)}",
                *parameters,
            )
        return [self._case_from_row(row) for row in rows]

    async def iter_cases(self, *, platform: str | None, batch: int) -> AsyncIterator[list[CaseRecord]]:
        """Every case (of ``platform``, or all), oldest first; the lock is not held between batches."""
        if batch < 1:
            raise ValueError("batch must be at least 1")
        after_alert_id = 0
        while True:
            async with self._connection("listing cases", write=False) as connection:
                rows = await connection.fetch(
                    f"SELECT {_CASE_COLUMNS} FROM alerts WHERE alert_id > $1 "
                    "AND ($2::text IS NULL OR platform = $2) ORDER BY alert_id LIMIT $3",
                    after_alert_id,
                    platform,
                    batch,
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
        moment = _utc(at)
        sealed = (
            None
            if detail is None
            else self._seal(
                detail,
                column=_AUDIT_DETAIL,
                row=_audit_row(
                    platform=platform,
                    space_id=space_id,
                    case_number=case_number,
                    at=_timestamp_text(moment),
                    actor_id=actor_id,
                    action=action,
                ),
            )
        )
        async with self._connection("appending to the audit trail") as connection:
            event_id = await connection.fetchval(
                "INSERT INTO case_audit (platform, space_id, case_number, at, actor_id, action, before, "
                "after, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING event_id",
                platform,
                space_id,
                case_number,
                moment,
                actor_id,
                action,
                _optional_utf8(before),
                _optional_utf8(after),
                _optional_utf8(sealed),
            )
        return AuditEvent(
            event_id=int(event_id),
            case_number=0 if case_number is None else case_number,
            at=moment,
            actor_id=actor_id,
            action=action,
            before=before,
            after=after,
            detail=detail,
        )

    async def audit_events(
        self, *, platform: str, space_id: str, case_number: int | None
    ) -> list[AuditEvent]:
        async with self._connection("loading the audit trail", write=False) as connection:
            rows = await connection.fetch(
                f"SELECT {_AUDIT_COLUMNS} FROM case_audit WHERE platform = $1 AND space_id = $2 "
                "AND case_number IS NOT DISTINCT FROM $3 ORDER BY event_id",
                platform,
                space_id,
                case_number,
            )
        events = []
        for row in rows:
            at = _utc_from_db(row["at"])
            detail = _optional_text(row["detail"])
            events.append(
                AuditEvent(
                    event_id=int(row["event_id"]),
                    case_number=0 if row["case_number"] is None else int(row["case_number"]),
                    at=at,
                    actor_id=str(row["actor_id"]),
                    action=str(row["action"]),
                    before=_optional_text(row["before"]),
                    after=_optional_text(row["after"]),
                    detail=(
                        None
                        if detail is None
                        else self._unseal(
                            detail,
                            column=_AUDIT_DETAIL,
                            row=_audit_row(
                                platform=platform,
                                space_id=space_id,
                                case_number=case_number,
                                at=_timestamp_text(at),
                                actor_id=str(row["actor_id"]),
                                action=str(row["action"]),
                            ),
                        )
                    ),
                )
            )
        return events

    # ------------------------------------------------------------------ preserved evidence

    async def preserve_evidence(self, *, alert_id: int, messages: Sequence[WindowMessage]) -> int:
        # The first of messages sharing an id is kept, as when they are inserted one by one.
        unique = list({message.message_id: message for message in reversed(messages)}.values())[::-1]
        if not unique:
            return 0
        times = [_utc(message.timestamp) for message in unique]
        async with self._connection("preserving case evidence") as connection:
            status = await connection.execute(
                f"INSERT INTO case_evidence (alert_id, {_WINDOW_COLUMNS}) SELECT $1, message_id, channel_id, "
                "thread_id, author_id, text, timestamp, risk, signals FROM unnest($2::text[], $3::text[], "
                "$4::text[], $5::text[], $6::bytea[], $7::timestamptz[], $8::float8[], $9::text[]) "
                "WITH ORDINALITY AS e(message_id, channel_id, thread_id, author_id, text, timestamp, risk, "
                "signals, ord) ORDER BY ord ON CONFLICT (alert_id, message_id) DO NOTHING",
                alert_id,
                [message.message_id for message in unique],
                [message.channel_id for message in unique],
                [message.thread_id for message in unique],
                [message.author_id for message in unique],
                [
                    _utf8(self._seal(message.text, column=_CASE_EVIDENCE_TEXT, row=_message_row(message)))
                    for message in unique
                ],
                times,
                [message.risk for message in unique],
                [_json_strings(message.signals) for message in unique],
            )
        return _row_count(status)

    async def load_evidence(self, alert_id: int) -> list[WindowMessage]:
        async with self._connection("loading case evidence", write=False) as connection:
            rows = await connection.fetch(
                f"SELECT {_WINDOW_COLUMNS} FROM case_evidence WHERE alert_id = $1 "
                "ORDER BY timestamp, evidence_id",
                alert_id,
            )
        return [self._window_message_from_row(row, column=_CASE_EVIDENCE_TEXT) for row in rows]

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
            async with self._connection(action, write=False) as connection:
                return int(
                    await connection.fetchval(f"SELECT count(*) FROM ({candidates}) AS c", *parameters)
                )
        async with self._connection(action) as connection:
            status = await connection.execute(
                f"DELETE FROM {table} WHERE {key} IN ({candidates} LIMIT ${len(parameters) + 1})",
                *parameters,
                limit,
            )
        return _row_count(status)

    async def purge_window_messages(
        self, *, older_than: datetime, now: datetime, limit: int, dry_run: bool = False
    ) -> int:
        return await self._purge(
            action="purging old window messages",
            table="window_messages",
            key="seq",
            candidates=(
                "SELECT w.seq FROM window_messages AS w JOIN pairs AS p ON p.pair_id = w.pair_id "
                f"WHERE w.timestamp < $1 AND NOT {_pair_protected('$2')}"
            ),
            parameters=(_utc(older_than), _utc(now)),
            limit=limit,
            dry_run=dry_run,
        )

    async def purge_idle_pairs(
        self, *, idle_since: datetime, now: datetime, limit: int, dry_run: bool = False
    ) -> int:
        return await self._purge(
            action="purging idle pairs",
            table="pairs",
            key="pair_id",
            candidates=(
                "SELECT p.pair_id FROM pairs AS p WHERE p.last_seen < $1 "
                f"AND (p.snoozed_until IS NULL OR p.snoozed_until <= $2) AND NOT {_pair_protected('$2')}"
            ),
            parameters=(_utc(idle_since), _utc(now)),
            limit=limit,
            dry_run=dry_run,
        )

    async def purge_case_texts(
        self, *, dismissed_before: datetime, now: datetime, limit: int, dry_run: bool = False
    ) -> int:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        candidates = (
            "FROM alerts WHERE text_purged_at IS NULL AND (hold_until IS NULL OR hold_until <= $1) "
            "AND ((case_state = 'dismissed' AND closed_at < $2) OR case_state = 'escalated')"
        )
        moment, before = _utc(now), _utc(dismissed_before)
        if dry_run:
            async with self._connection("counting case texts to purge", write=False) as connection:
                return int(await connection.fetchval(f"SELECT count(*) {candidates}", moment, before))
        async with self._connection("purging case texts") as connection:
            rows = await connection.fetch(
                f"SELECT alert_id, evidence {candidates} ORDER BY alert_id LIMIT $3 FOR UPDATE",
                moment,
                before,
                limit,
            )
            # Texts are blanked without decrypting them; ids, times and scores stay for the record.
            await connection.executemany(
                "UPDATE alerts SET evidence = $1, text_purged_at = $2 WHERE alert_id = $3",
                [
                    (
                        json.dumps(
                            [{**item, "text": ""} for item in json.loads(str(row["evidence"]))],
                            ensure_ascii=False,
                        ),
                        moment,
                        row["alert_id"],
                    )
                    for row in rows
                ],
            )
            await connection.execute(
                "DELETE FROM case_evidence WHERE alert_id = ANY($1::bigint[])",
                [row["alert_id"] for row in rows],
            )
        return len(rows)

    async def purge_seen_messages(self, *, older_than: datetime, limit: int, dry_run: bool = False) -> int:
        return await self._purge(
            action="purging old message ids",
            table="seen_messages",
            key="(platform, space_id, message_id)",
            candidates="SELECT platform, space_id, message_id FROM seen_messages WHERE seen_at < $1",
            parameters=(_utc(older_than),),
            limit=limit,
            dry_run=dry_run,
        )

    async def save_turn_memory(self, memory: TurnMemory, *, saved_at: datetime) -> None:
        platform, space_id, channel_id, thread_id = memory.location
        saved = _utc(saved_at)
        async with self._connection("saving turn-taking memory") as connection:
            await connection.execute(
                "INSERT INTO turn_memory "
                "(platform, space_id, channel_id, thread_id, turns, last_at, saved_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (platform, space_id, channel_id, thread_id) "
                "DO UPDATE SET turns = excluded.turns, last_at = excluded.last_at, "
                "saved_at = excluded.saved_at",
                platform,
                space_id,
                channel_id,
                thread_id or "",
                memory.turns,
                memory.last_at,
                saved,
            )

    async def advance_fence(self, *, stream: str, partition: int, token: FenceToken) -> bool:
        async with self._connection("advancing a partition's fence") as connection:
            # ON CONFLICT locks the row even when the WHERE refuses the update: a racing owner waits.
            row = await connection.fetchrow(
                "INSERT INTO partition_fences (stream, partition, epoch, revision) VALUES ($1, $2, $3, $4) "
                "ON CONFLICT (stream, partition) DO UPDATE "
                "SET epoch = excluded.epoch, revision = excluded.revision "
                "WHERE (partition_fences.epoch, partition_fences.revision) "
                "<= (excluded.epoch, excluded.revision) RETURNING epoch",
                stream,
                partition,
                token.epoch,
                token.revision,
            )
        return row is not None

    async def load_turn_memory(self, *, limit: int) -> list[TurnMemory]:
        async with self._connection("loading turn-taking memory", write=False) as connection:
            rows = await connection.fetch(
                "SELECT platform, space_id, channel_id, thread_id, turns, last_at FROM turn_memory "
                "ORDER BY last_at DESC LIMIT $1",
                limit,
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
                last_at_s=_utc_from_db(row["last_at"]).timestamp(),
            )
            for row in rows
        ]

    async def purge_turn_memory(self, *, saved_before: datetime, limit: int, dry_run: bool = False) -> int:
        return await self._purge(
            action="purging old turn-taking memory",
            table="turn_memory",
            key="(platform, space_id, channel_id, thread_id)",
            candidates=(
                "SELECT platform, space_id, channel_id, thread_id FROM turn_memory WHERE saved_at < $1"
            ),
            parameters=(_utc(saved_before),),
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
                f"WHERE r.timestamp < $1 AND NOT {_pair_protected('$2')}"
            ),
            parameters=(_utc(older_than), _utc(now)),
            limit=limit,
            dry_run=dry_run,
        )

    # ------------------------------------------------------------------ erasure

    async def erase_user(self, *, platform: str, user_id: str, now: datetime) -> UserErasure:
        moment = _utc(now)
        pairs = window_messages = risk_points = evidence_messages = evidence_texts = 0
        held_pairs = held_cases = 0
        cases_changed: list[tuple[str, int]] = []
        async with self._connection("erasing a user's data") as connection:
            pair_rows = await connection.fetch(
                "SELECT p.pair_id, EXISTS (SELECT 1 FROM alerts AS a WHERE a.platform = p.platform "
                "AND a.space_id = p.space_id AND a.user_a = p.user_a AND a.user_b = p.user_b "
                "AND a.hold_until > $1) AS held FROM pairs AS p "
                "WHERE p.platform = $2 AND (p.user_a = $3 OR p.user_b = $3) "
                "ORDER BY p.pair_id FOR UPDATE OF p",
                moment,
                platform,
                user_id,
            )
            erased = [int(row["pair_id"]) for row in pair_rows if not row["held"]]
            held_pairs = len(pair_rows) - len(erased)
            if erased:
                window_messages = _row_count(
                    await connection.execute(
                        "DELETE FROM window_messages WHERE pair_id = ANY($1::bigint[])", erased
                    )
                )
                risk_points = _row_count(
                    await connection.execute(
                        "DELETE FROM risk_history WHERE pair_id = ANY($1::bigint[])", erased
                    )
                )
                pairs = _row_count(
                    await connection.execute("DELETE FROM pairs WHERE pair_id = ANY($1::bigint[])", erased)
                )
            case_rows = await connection.fetch(
                "SELECT alert_id, space_id, case_number, evidence, coalesce(hold_until > $1, false) AS held "
                "FROM alerts WHERE platform = $2 AND (user_a = $3 OR user_b = $3) "
                "ORDER BY space_id, case_number FOR UPDATE",
                moment,
                platform,
                user_id,
            )
            for row in case_rows:
                if row["held"]:
                    held_cases += 1
                    continue
                removed = _row_count(
                    await connection.execute(
                        "DELETE FROM case_evidence WHERE alert_id = $1 AND author_id = $2",
                        row["alert_id"],
                        user_id,
                    )
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
                    await connection.execute(
                        "UPDATE alerts SET evidence = $1 WHERE alert_id = $2",
                        json.dumps(blanked, ensure_ascii=False),
                        row["alert_id"],
                    )
            # Ids and times only, but theirs: the location's memory goes.
            await connection.execute(
                "DELETE FROM turn_memory WHERE platform = $1 AND strpos(turns, $2) > 0",
                platform,
                json.dumps(user_id),
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


# ---------------------------------------------------------------------- helpers


def _describe(dsn: str) -> str:
    """ "PostgreSQL database <name>" from a URL DSN (its path), else just "PostgreSQL database"."""
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return "PostgreSQL database"
    name = unquote(parts.path.lstrip("/")) if parts.scheme in ("postgres", "postgresql") else ""
    return f"PostgreSQL database {name}" if name and name.isprintable() else "PostgreSQL database"


def _server_message(error: asyncpg.PostgresError) -> str:
    # args[0] is the server's message; str(error) would add its DETAIL, which may quote row values.
    message = error.args[0] if error.args else ""
    return f"{message} ({getattr(error, 'sqlstate', '?')})" if message else type(error).__name__


async def _release(pool: Any, connection: Any) -> None:
    # Shielded: a task cancelled while giving its connection back must still give it back.
    try:
        await asyncio.shield(pool.release(connection))
    except (asyncpg.PostgresError, *_CONNECTION_ERRORS) as error:
        logger.warning("Returning a connection to the pool failed: %s", type(error).__name__)


async def _close_pool_quietly(pool: Any, *, database: str) -> None:
    try:
        await asyncio.wait_for(pool.close(), timeout=10)
    except (asyncpg.PostgresError, *_CONNECTION_ERRORS) as error:
        logger.warning("Closing the %s after a failed open also failed: %s", database, type(error).__name__)
        pool.terminate()


def _utf8(text: str) -> bytes:
    return text.encode("utf-8")


def _optional_utf8(text: str | None) -> bytes | None:
    return None if text is None else text.encode("utf-8")


def _text(value: bytes) -> str:
    return bytes(value).decode("utf-8")


def _optional_text(value: bytes | None) -> str | None:
    return None if value is None else bytes(value).decode("utf-8")


def _row_count(status: str) -> int:
    """The row count of a command tag ("INSERT 0 3", "DELETE 2", "UPDATE 1")."""
    return int(status.rsplit(" ", 1)[-1])


def _qualified(columns: str, alias: str) -> str:
    return ", ".join(f"{alias}.{column.strip()}" for column in columns.split(","))


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("naive datetime: the store takes timezone-aware UTC datetimes only")
    return moment.astimezone(UTC)


def _optional_utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else _utc(moment)


def _utc_from_db(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _optional_utc_from_db(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(UTC)


def _key_parameters(key: PairKey) -> tuple[str, str, str, str]:
    return (key.platform, key.space_id, key.user_a, key.user_b)


def _key_arrays(keys: Iterable[PairKey]) -> tuple[list[str], list[str], list[str], list[str]]:
    platforms: list[str] = []
    spaces: list[str] = []
    firsts: list[str] = []
    seconds: list[str] = []
    for key in keys:
        platforms.append(key.platform)
        spaces.append(key.space_id)
        firsts.append(key.user_a)
        seconds.append(key.user_b)
    return platforms, spaces, firsts, seconds


def _key_of(row: Any) -> PairKey:
    return PairKey(
        platform=str(row["platform"]),
        space_id=str(row["space_id"]),
        user_a=str(row["user_a"]),
        user_b=str(row["user_b"]),
    )


def _pair_parameters(state: PairState) -> tuple[Any, ...]:
    return (
        *_key_parameters(state.key),
        _utc(state.first_seen),
        _utc(state.last_seen),
        state.message_count,
        _json_strings(state.channel_ids),
        state.model_state,
        state.risk,
        state.suspect_id,
        state.above_threshold_streak,
        _optional_utc(state.snoozed_until),
    )


def _pair_from_row(row: Any) -> PairState:
    return PairState(
        key=_key_of(row),
        first_seen=_utc_from_db(row["first_seen"]),
        last_seen=_utc_from_db(row["last_seen"]),
        message_count=int(row["message_count"]),
        channel_ids=_strings_from_json(row["channel_ids"]),
        model_state=str(row["model_state"]),
        risk=float(row["risk"]),
        suspect_id=row["suspect_id"],
        above_threshold_streak=int(row["above_threshold_streak"]),
        snoozed_until=_optional_utc_from_db(row["snoozed_until"]),
    )


def _outbox_item_from_row(row: Any) -> OutboxItem:
    return OutboxItem(
        item_id=int(row["item_id"]),
        alert_id=int(row["alert_id"]),
        kind=OutboxKind(row["kind"]),
        revision=int(row["revision"]),
        attempts=int(row["attempts"]),
        next_attempt_at=_utc_from_db(row["next_attempt_at"]),
        last_error=row["last_error"],
    )


def _scope_condition(scope: DeliveryScope, *, first_parameter: int) -> tuple[str, tuple[list[str], ...]]:
    """What ``_DUE`` gains under ``scope`` (outbox items aliased item), numbering its parameters (text arrays)
    from ``first_parameter``: the item's alert is of a platform the scope covers. A subquery rather than a
    join, so ``FOR UPDATE`` still locks outbox rows alone. Nothing for any platform."""
    if scope.is_everything:
        return "", ()
    conditions: list[str] = []
    parameters: list[list[str]] = []
    if scope.platforms is not None:
        # An empty array matches nothing: a scope naming no platform claims nothing.
        conditions.append(f"scoped.platform = ANY(${first_parameter + len(parameters)}::text[])")
        parameters.append(sorted(scope.platforms))
    if scope.except_platforms:
        conditions.append(f"scoped.platform <> ALL(${first_parameter + len(parameters)}::text[])")
        parameters.append(sorted(scope.except_platforms))
    return (
        " AND EXISTS (SELECT 1 FROM alerts AS scoped WHERE scoped.alert_id = item.alert_id "
        f"AND {' AND '.join(conditions)})",
        tuple(parameters),
    )
