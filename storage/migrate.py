"""Copy a Vigil SQLite database into an empty PostgreSQL database (``vigil migrate-store``).

Rows are copied as stored, ids included: alert ids (which the outbox, preserved evidence and dismiss reasons
refer to), case numbers and the per-space case counters, pair ids, audit event ids. Encrypted values are
copied as their ciphertext: every value is bound to its column and to a row identity made of ids and
timestamps that the copy keeps (``storage/sqlite.py``), so the same key opens them in Postgres, and the copy
itself needs no key. Timestamps go from SQLite's fixed-width UTC text to ``TIMESTAMPTZ`` (microseconds both),
free text from TEXT to UTF-8 ``BYTEA``, flags from 0/1 to ``BOOLEAN``, as ``PostgresStore`` stores them.

Whole or nothing: the copy runs in one Postgres transaction that first locks every table and checks that
they are empty, so a failure (or a Vigil started against the target meanwhile) leaves the target as it was:
at most its empty schema, which a re-run accepts. The SQLite file is opened read-only, in one read
transaction, so the copy is one consistent snapshot of it.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import aiosqlite
import asyncpg

from vigil.bots.core.ports import StoreError
from vigil.storage import migrations as sqlite_migrations
from vigil.storage import postgres_migrations
from vigil.storage.postgres import _CONNECTION_ERRORS, _describe, _server_message
from vigil.storage.sqlite import _timestamp_from_text

__all__ = ["NOT_COPIED", "MigrationError", "MigrationReport", "copied_columns", "migrate_sqlite_to_postgres"]

logger = logging.getLogger(__name__)

_BATCH_ROWS = 1000
_CONNECT_TIMEOUT_S = 10.0
_ENCRYPTION_MARKER = "encryption"
_ENCRYPTION_NONE = "none"


class MigrationError(StoreError):
    """The copy was refused or failed; the target holds nothing of it."""


def _same(value: Any) -> Any:
    return value


def _timestamp(value: Any) -> Any:
    return None if value is None else _timestamp_from_text(value)


def _utf8(value: Any) -> Any:
    return None if value is None else str(value).encode("utf-8")


def _flag(value: Any) -> Any:
    return None if value is None else bool(value)


_TS = _timestamp
_BYTES = _utf8
_BOOL = _flag


@dataclass(frozen=True, slots=True, kw_only=True)
class _Table:
    """A table to copy: its columns with their SQLite-to-Postgres conversions, and its identity column."""

    name: str
    columns: tuple[tuple[str, Callable[[Any], Any]], ...]
    identity: str | None = None

    @property
    def column_names(self) -> str:
        return ", ".join(name for name, _ in self.columns)

    def insert_sql(self) -> str:
        placeholders = ", ".join(f"${index}" for index in range(1, len(self.columns) + 1))
        # Identity columns are GENERATED ALWAYS: the copy keeps SQLite's ids, so it overrides them.
        overriding = " OVERRIDING SYSTEM VALUE" if self.identity else ""
        return f"INSERT INTO {self.name} ({self.column_names}){overriding} VALUES ({placeholders})"

    def convert(self, row: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(conversion(value) for (_, conversion), value in zip(self.columns, row, strict=True))


def _plain(*names: str) -> tuple[tuple[str, Callable[[Any], Any]], ...]:
    return tuple((name, _same) for name in names)


# In an order that satisfies the foreign keys (pairs before their window, alerts before outbox/evidence).
_TABLES: tuple[_Table, ...] = (
    _Table(name="meta", columns=_plain("key", "value")),
    _Table(name="seen_messages", columns=(*_plain("platform", "space_id", "message_id"), ("seen_at", _TS))),
    _Table(
        name="pairs",
        identity="pair_id",
        columns=(
            *_plain("pair_id", "platform", "space_id", "user_a", "user_b"),
            ("first_seen", _TS),
            ("last_seen", _TS),
            *_plain(
                "message_count", "channel_ids", "model_state", "risk", "suspect_id", "above_threshold_streak"
            ),
            ("snoozed_until", _TS),
        ),
    ),
    _Table(
        name="window_messages",
        identity="seq",
        columns=(
            *_plain("seq", "pair_id", "message_id", "channel_id", "thread_id", "author_id"),
            ("text", _BYTES),
            ("timestamp", _TS),
            *_plain("risk", "signals"),
        ),
    ),
    _Table(
        name="risk_history",
        identity="point_id",
        columns=(
            *_plain("point_id", "pair_id"),
            ("timestamp", _TS),
            *_plain("message_id", "risk", "suspect_id"),
        ),
    ),
    _Table(
        name="alerts",
        identity="alert_id",
        columns=(
            *_plain(
                "alert_id",
                "platform",
                "space_id",
                "user_a",
                "user_b",
                "case_number",
                "status",
                "risk",
                "peak_risk",
                "suspect_id",
                "other_id",
                "channel_ids",
                "signals",
                "evidence",  # JSON with its own text timestamps and sealed texts: copied as is
            ),
            ("created_at", _TS),
            ("updated_at", _TS),
            ("revision", _same),
            ("shadow", _BOOL),
            *_plain("model_name", "delivery_ref", "case_state", "case_source", "claimed_by"),
            ("dismiss_reason", _BYTES),
            ("hold_until", _TS),
            ("closed_at", _TS),
            ("text_purged_at", _TS),
        ),
    ),
    _Table(name="case_counters", columns=_plain("platform", "space_id", "last_case_number")),
    _Table(
        name="outbox",
        identity="item_id",
        columns=(
            *_plain("item_id", "alert_id", "kind", "revision", "attempts"),
            ("next_attempt_at", _TS),
            ("last_error", _same),
        ),
    ),
    _Table(
        name="space_settings",
        columns=(
            *_plain(
                "platform",
                "space_id",
                "threshold",
                "alert_channel_id",
                "moderator_role_id",
                "child_safety_role_id",
                "ignored_channel_ids",
            ),
            ("shadow_mode", _BOOL),
        ),
    ),
    _Table(
        name="case_audit",
        identity="event_id",
        columns=(
            *_plain("event_id", "platform", "space_id", "case_number"),
            ("at", _TS),
            *_plain("actor_id", "action"),
            ("before", _BYTES),
            ("after", _BYTES),
            ("detail", _BYTES),
        ),
    ),
    _Table(
        name="case_evidence",
        identity="evidence_id",
        columns=(
            *_plain("evidence_id", "alert_id", "message_id", "channel_id", "thread_id", "author_id"),
            ("text", _BYTES),
            ("timestamp", _TS),
            *_plain("risk", "signals"),
        ),
    ),
    _Table(name="records", columns=(*_plain("namespace", "key"), ("value", _BYTES))),
    _Table(
        name="turn_memory",
        columns=(
            *_plain("platform", "space_id", "channel_id", "thread_id", "turns"),
            ("last_at", _TS),
            ("saved_at", _TS),
        ),
    ),
)

# SQLite columns left behind on purpose. A delivery claim names a worker of the database being left: after
# the move every pending item is free for the new database's workers.
NOT_COPIED: Mapping[str, frozenset[str]] = MappingProxyType(
    {"outbox": frozenset({"claimed_by", "claimed_until"})}
)


def copied_columns() -> dict[str, frozenset[str]]:
    """The columns the copy carries, per table (a test holds them against the SQLite schema)."""
    return {table.name: frozenset(name for name, _ in table.columns) for table in _TABLES}


TABLE_NAMES: tuple[str, ...] = tuple(table.name for table in _TABLES)
# meta holds facts about the database (the encryption marker), which a Vigil started once against an empty
# target writes: it is replaced by the source's, and does not make the target "hold data".
_DATA_TABLES = tuple(name for name in TABLE_NAMES if name != "meta")


@dataclass(frozen=True, slots=True, kw_only=True)
class MigrationReport:
    """What was copied (or, for a dry run, would be): rows per table in copy order."""

    source: str
    target: str
    counts: tuple[tuple[str, int], ...]
    encrypted: bool
    dry_run: bool

    @property
    def total(self) -> int:
        return sum(count for _, count in self.counts)


async def migrate_sqlite_to_postgres(
    *,
    source: Path,
    dsn: str,
    dry_run: bool = False,
    on_rows: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
    batch: int = _BATCH_ROWS,
) -> MigrationReport:
    """Copy the SQLite database ``source`` into the empty Postgres database at ``dsn``.

    ``on_total`` gets the number of rows to copy once known, ``on_rows`` each batch's row count. A dry run
    makes every check and counts the rows, but writes nothing (not even the target's schema). Raises
    ``MigrationError`` with a message for the person at the terminal; the DSN never appears in it.
    """
    if batch < 1:
        raise ValueError("batch must be positive")
    target = _describe(dsn)
    async with _open_source(source) as reader:
        await _check_source(reader, source=source)
        # One read transaction: the counts and the copy see one snapshot, whatever else reads the file.
        await _run(reader, "BEGIN")
        try:
            counts = tuple([(name, await _count(reader, name)) for name in TABLE_NAMES])
            encrypted = await _source_encrypted(reader)
            if on_total is not None:
                on_total(sum(count for _, count in counts))
            connection = await _connect(dsn, target=target)
            try:
                async with _mapped_errors(target):
                    if dry_run:
                        await _check_target_readonly(connection, target=target)
                    else:
                        await postgres_migrations.apply_migrations(connection, database=target)
                        await _copy(
                            connection, reader, counts=counts, target=target, batch=batch, on_rows=on_rows
                        )
            finally:
                await connection.close()
        finally:
            await _run(reader, "ROLLBACK")  # it only read
    report = MigrationReport(
        source=str(source), target=target, counts=counts, encrypted=encrypted, dry_run=dry_run
    )
    if not dry_run:
        logger.info("Copied %d rows from %s into the %s", report.total, source, target)
    return report


async def _run(reader: aiosqlite.Connection, statement: str) -> None:
    async with reader.execute(statement):
        pass


@asynccontextmanager
async def _open_source(path: Path) -> AsyncIterator[aiosqlite.Connection]:
    """The SQLite file, read-only (``mode=ro``): the copy never changes its source."""
    if not await asyncio.to_thread(path.is_file):
        raise MigrationError(f"no SQLite database at {path}: check --from")
    resolved = await asyncio.to_thread(path.resolve)
    uri = f"{resolved.as_uri()}?mode=ro"
    try:
        connection = await aiosqlite.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error:
        raise MigrationError(f"cannot open {path} read-only as a SQLite database") from None
    try:
        yield connection
    finally:
        await connection.close()


async def _check_source(reader: aiosqlite.Connection, *, source: Path) -> None:
    try:
        version = await sqlite_migrations.read_schema_version(reader)
        async with reader.execute("SELECT name FROM sqlite_master WHERE type = 'table'") as cursor:
            tables = {str(row[0]) for row in await cursor.fetchall()}
    except sqlite3.DatabaseError:
        raise MigrationError(f"{source} is not a SQLite database (nothing was copied)") from None
    if version == 0 or not set(TABLE_NAMES) <= tables:
        raise MigrationError(
            f"{source} is not a Vigil database: it lacks Vigil's tables (nothing was copied)"
        )
    latest = sqlite_migrations.LATEST_SCHEMA_VERSION
    if version > latest:
        raise MigrationError(
            f"{source} has schema version {version}, newer than this Vigil's {latest}: it was written by a "
            "newer Vigil. Upgrade Vigil, then migrate (nothing was copied)."
        )
    if version < latest:
        raise MigrationError(
            f"{source} has schema version {version}, older than this Vigil's {latest}. Run this Vigil once "
            'on it first (e.g. `vigil purge --dry-run` with [storage] backend = "sqlite" and database set to '
            "it), which upgrades it, then migrate (nothing was copied)."
        )


async def _count(reader: aiosqlite.Connection, table: str) -> int:
    # table is one of our own names, never input.
    async with reader.execute(f"SELECT count(*) FROM {table}") as cursor:
        row = await cursor.fetchone()
    return 0 if row is None else int(row[0])


async def _source_encrypted(reader: aiosqlite.Connection) -> bool:
    async with reader.execute("SELECT value FROM meta WHERE key = ?", (_ENCRYPTION_MARKER,)) as cursor:
        row = await cursor.fetchone()
    return row is not None and str(row[0]) != _ENCRYPTION_NONE


async def _connect(dsn: str, *, target: str) -> Any:
    try:
        return await asyncpg.connect(
            dsn, timeout=_CONNECT_TIMEOUT_S, server_settings={"application_name": "vigil migrate-store"}
        )
    except asyncpg.PostgresError as error:
        raise MigrationError(f"Cannot connect to the {target}: {_server_message(error)}") from None
    except (*_CONNECTION_ERRORS, ValueError, asyncpg.ClientConfigurationError) as error:
        # The driver's own messages may quote parts of the DSN: only the kind of failure is shown.
        raise MigrationError(
            f"Cannot connect to the {target} ({type(error).__name__}): check that the server runs and that "
            "the DSN in the environment is right."
        ) from None


@asynccontextmanager
async def _mapped_errors(target: str) -> AsyncIterator[None]:
    """Server errors as ``MigrationError``: the server's message only, never its DETAIL (row values)."""
    try:
        yield
    except asyncpg.PostgresError as error:
        raise MigrationError(
            f"Copying into the {target} failed: {_server_message(error)}. Nothing was copied; the target is "
            "as it was (at most its empty schema), so the command can be run again."
        ) from None
    except _CONNECTION_ERRORS as error:
        raise MigrationError(
            f"Lost the connection to the {target} ({type(error).__name__}). Nothing was copied; run the "
            "command again."
        ) from None


async def _check_target_readonly(connection: Any, *, target: str) -> None:
    version = await postgres_migrations.read_schema_version(connection)
    postgres_migrations.ensure_schema_not_too_new(version, database=target)
    if version > 0:
        await _ensure_empty(connection, target=target)


async def _ensure_empty(connection: Any, *, target: str) -> None:
    holding = [
        name
        for name in _DATA_TABLES
        # name is one of our own table names.
        if await connection.fetchval(f"SELECT EXISTS (SELECT 1 FROM {name})")
    ]
    if holding:
        raise MigrationError(
            f"The {target} already holds data ({', '.join(holding)}): migrate-store only copies into an "
            "empty database and never merges. Point the DSN at a new, empty database (nothing was copied)."
        )


async def _copy(
    connection: Any,
    reader: aiosqlite.Connection,
    *,
    counts: Sequence[tuple[str, int]],
    target: str,
    batch: int,
    on_rows: Callable[[int], None] | None,
) -> None:
    async with connection.transaction():
        # Held to the commit: no Vigil started against the target meanwhile can write between the check
        # and the copy, nor see a half-copied database.
        await connection.execute(f"LOCK TABLE {', '.join(TABLE_NAMES)} IN ACCESS EXCLUSIVE MODE")
        await _ensure_empty(connection, target=target)
        await connection.execute("DELETE FROM meta")
        for table in _TABLES:
            insert = table.insert_sql()
            # ORDER BY the key so ids arrive ascending (as SQLite handed them out).
            order = f" ORDER BY {table.identity}" if table.identity else ""
            async with reader.execute(f"SELECT {table.column_names} FROM {table.name}{order}") as cursor:
                while rows := list(await cursor.fetchmany(batch)):
                    await connection.executemany(insert, _converted(table, rows, target=target))
                    if on_rows is not None:
                        on_rows(len(rows))
            if table.identity:
                # New rows continue after the copied ids (is_called false on an empty table: starts at 1).
                key = table.identity
                await connection.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', '{key}'), "
                    f"coalesce(max({key}), 1), max({key}) IS NOT NULL) FROM {table.name}"
                )
        expected = dict(counts)
        for name in TABLE_NAMES:
            copied = int(await connection.fetchval(f"SELECT count(*) FROM {name}"))
            if copied != expected[name]:
                raise MigrationError(
                    f"{name}: {copied} rows in the {target} after the copy, {expected[name]} in the source; "
                    "nothing was copied."
                )


def _converted(table: _Table, rows: Sequence[Sequence[Any]], *, target: str) -> list[tuple[Any, ...]]:
    try:
        return [table.convert(row) for row in rows]
    except (ValueError, TypeError) as error:
        # The kind of failure only: the offending value may be someone's message.
        raise MigrationError(
            f"{table.name}: a row of the SQLite database cannot be read ({type(error).__name__}: a damaged "
            f"value?). Nothing was copied into the {target}."
        ) from None
