"""The SQLite schema as ordered migrations, tracked by ``PRAGMA user_version``.

Migration ``n`` (1-based) takes a database from ``user_version = n - 1`` to ``user_version = n``. Scripts are
append-only: once released, a script is never edited; a schema change is a new script at the end.
"""

from __future__ import annotations

import logging
import sqlite3

import aiosqlite

from vigil.bots.core.ports import SchemaTooNewError

__all__ = [
    "LATEST_SCHEMA_VERSION",
    "MIGRATIONS",
    "apply_migrations",
    "ensure_schema_not_too_new",
    "read_schema_version",
    "split_sql_script",
]

logger = logging.getLogger(__name__)

_SCHEMA_V1 = """
-- Idempotency: a redelivered platform message is recognised and skipped.
CREATE TABLE seen_messages (
    platform   TEXT NOT NULL,
    space_id   TEXT NOT NULL,
    message_id TEXT NOT NULL,
    seen_at    TEXT NOT NULL,
    PRIMARY KEY (platform, space_id, message_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE pairs (
    pair_id                INTEGER PRIMARY KEY,
    platform               TEXT NOT NULL,
    space_id               TEXT NOT NULL,
    user_a                 TEXT NOT NULL,
    user_b                 TEXT NOT NULL,
    first_seen             TEXT NOT NULL,
    last_seen              TEXT NOT NULL,
    message_count          INTEGER NOT NULL,
    channel_ids            TEXT NOT NULL,  -- JSON array of channel ids
    model_state            TEXT NOT NULL,
    risk                   REAL NOT NULL,
    suspect_id             TEXT,
    above_threshold_streak INTEGER NOT NULL,
    snoozed_until          TEXT,
    UNIQUE (platform, space_id, user_a, user_b),
    CHECK (user_a < user_b)
) STRICT;

-- The UNIQUE index above serves lookups by user_a; this one serves pairs_for_user's user_b side.
CREATE INDEX pairs_by_user_b ON pairs (platform, space_id, user_b);

-- seq is the insertion order: a new row always gets a rowid above every existing one.
CREATE TABLE window_messages (
    seq        INTEGER PRIMARY KEY,
    pair_id    INTEGER NOT NULL REFERENCES pairs (pair_id) ON DELETE CASCADE,
    message_id TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    thread_id  TEXT,
    author_id  TEXT NOT NULL,
    text       TEXT NOT NULL,
    timestamp  TEXT NOT NULL,
    risk       REAL NOT NULL,
    signals    TEXT NOT NULL  -- JSON array of signal names
) STRICT;

CREATE INDEX window_messages_by_pair ON window_messages (pair_id, seq);

CREATE TABLE risk_history (
    point_id   INTEGER PRIMARY KEY,
    pair_id    INTEGER NOT NULL REFERENCES pairs (pair_id) ON DELETE CASCADE,
    timestamp  TEXT NOT NULL,
    message_id TEXT NOT NULL,
    risk       REAL NOT NULL,
    suspect_id TEXT
) STRICT;

CREATE INDEX risk_history_by_pair ON risk_history (pair_id, point_id);

-- Alerts are the moderators' case record: they name the pair by its natural key rather than pair_id, so
-- no cascade from pairs can ever remove a case.
CREATE TABLE alerts (
    alert_id     INTEGER PRIMARY KEY,
    platform     TEXT NOT NULL,
    space_id     TEXT NOT NULL,
    user_a       TEXT NOT NULL,
    user_b       TEXT NOT NULL,
    case_number  INTEGER NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    risk         REAL NOT NULL,
    peak_risk    REAL NOT NULL,
    suspect_id   TEXT NOT NULL,
    other_id     TEXT NOT NULL,
    channel_ids  TEXT NOT NULL,  -- JSON array
    signals      TEXT NOT NULL,  -- JSON array
    evidence     TEXT NOT NULL,  -- JSON array of WindowMessage objects
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    revision     INTEGER NOT NULL,
    shadow       INTEGER NOT NULL CHECK (shadow IN (0, 1)),
    model_name   TEXT NOT NULL,
    delivery_ref TEXT,
    UNIQUE (platform, space_id, case_number)
) STRICT;

-- One open alert per pair: it is updated, never re-raised.
CREATE UNIQUE INDEX alerts_open_by_pair ON alerts (platform, space_id, user_a, user_b)
    WHERE status = 'open';
CREATE INDEX alerts_by_space_created ON alerts (platform, space_id, created_at);

-- Case numbers only go up: the counter survives even if an alert row were ever removed.
CREATE TABLE case_counters (
    platform         TEXT NOT NULL,
    space_id         TEXT NOT NULL,
    last_case_number INTEGER NOT NULL,
    PRIMARY KEY (platform, space_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE outbox (
    item_id         INTEGER PRIMARY KEY,
    alert_id        INTEGER NOT NULL REFERENCES alerts (alert_id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('post', 'update')),
    revision        INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,
    UNIQUE (alert_id, kind)
) STRICT;

CREATE INDEX outbox_due ON outbox (next_attempt_at, item_id);

CREATE TABLE space_settings (
    platform             TEXT NOT NULL,
    space_id             TEXT NOT NULL,
    threshold            REAL,
    alert_channel_id     TEXT,
    moderator_role_id    TEXT,
    child_safety_role_id TEXT,
    ignored_channel_ids  TEXT NOT NULL,  -- JSON array, sorted
    shadow_mode          INTEGER CHECK (shadow_mode IN (0, 1)),
    PRIMARY KEY (platform, space_id)
) STRICT, WITHOUT ROWID;
"""

_SCHEMA_V2 = """
-- Cases: every alert is a case; these columns are its moderation state (bots/core/cases.py).
ALTER TABLE alerts ADD COLUMN case_state TEXT NOT NULL DEFAULT 'open'
    CHECK (case_state IN ('open', 'claimed', 'dismissed', 'confirmed', 'escalated'));
ALTER TABLE alerts ADD COLUMN case_source TEXT NOT NULL DEFAULT 'alert'
    CHECK (case_source IN ('alert', 'member_report'));
ALTER TABLE alerts ADD COLUMN claimed_by TEXT;
ALTER TABLE alerts ADD COLUMN dismiss_reason TEXT;
-- A preservation hold: nothing of the case is purged before this instant.
ALTER TABLE alerts ADD COLUMN hold_until TEXT;
-- When the case was dismissed (retention counts from here).
ALTER TABLE alerts ADD COLUMN closed_at TEXT;
-- When retention removed the case's message text; the case and its audit trail stay.
ALTER TABLE alerts ADD COLUMN text_purged_at TEXT;

CREATE INDEX alerts_by_case_state ON alerts (case_state, closed_at);
CREATE INDEX alerts_by_suspect ON alerts (platform, space_id, suspect_id);
-- Retention asks, per pair, whether any of its cases (open or closed) protects it.
CREATE INDEX alerts_by_pair ON alerts (platform, space_id, user_a, user_b);

-- The audit trail: append-only. case_number is NULL for entries about no case (privacy requests).
CREATE TABLE case_audit (
    event_id    INTEGER PRIMARY KEY,
    platform    TEXT NOT NULL,
    space_id    TEXT NOT NULL,
    case_number INTEGER,
    at          TEXT NOT NULL,
    actor_id    TEXT NOT NULL,
    action      TEXT NOT NULL,
    before      TEXT,
    after       TEXT,
    detail      TEXT
) STRICT;

CREATE INDEX case_audit_by_case ON case_audit (platform, space_id, case_number, event_id);

CREATE TRIGGER case_audit_no_update BEFORE UPDATE ON case_audit
BEGIN
    SELECT RAISE(ABORT, 'case_audit is append-only: audit events cannot be changed');
END;

CREATE TRIGGER case_audit_no_delete BEFORE DELETE ON case_audit
BEGIN
    SELECT RAISE(ABORT, 'case_audit is append-only: audit events cannot be deleted');
END;

-- Messages preserved for a case (at escalation, or from a member's report), apart from the rolling window:
-- window trimming and window retention never touch them.
CREATE TABLE case_evidence (
    evidence_id INTEGER PRIMARY KEY,
    alert_id    INTEGER NOT NULL REFERENCES alerts (alert_id) ON DELETE CASCADE,
    message_id  TEXT NOT NULL,
    channel_id  TEXT NOT NULL,
    thread_id   TEXT,
    author_id   TEXT NOT NULL,
    text        TEXT NOT NULL,
    timestamp   TEXT NOT NULL,
    risk        REAL NOT NULL,
    signals     TEXT NOT NULL,  -- JSON array
    UNIQUE (alert_id, message_id)
) STRICT;

CREATE INDEX case_evidence_by_author ON case_evidence (author_id);

-- Small namespaced values for components that need a few durable strings (e.g. Slack OAuth installations).
CREATE TABLE records (
    namespace TEXT NOT NULL,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (namespace, key)
) STRICT, WITHOUT ROWID;

-- Facts about the database itself (the encryption marker and key check value).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX seen_messages_by_time ON seen_messages (seen_at);
CREATE INDEX risk_history_by_time ON risk_history (timestamp);
CREATE INDEX window_messages_by_time ON window_messages (timestamp);
CREATE INDEX pairs_by_last_seen ON pairs (last_seen);
"""

# Version 3: `vigil rekey` may replace an encrypted audit detail by its re-encryption (a new key, bound to its
# row); nothing else about an audit event can change, and a plaintext detail never can.
_SCHEMA_V3 = """
DROP TRIGGER case_audit_no_update;

CREATE TRIGGER case_audit_no_update BEFORE UPDATE ON case_audit
WHEN NEW.event_id IS NOT OLD.event_id OR NEW.platform IS NOT OLD.platform
    OR NEW.space_id IS NOT OLD.space_id OR NEW.case_number IS NOT OLD.case_number OR NEW.at IS NOT OLD.at
    OR NEW.actor_id IS NOT OLD.actor_id OR NEW.action IS NOT OLD.action OR NEW.before IS NOT OLD.before
    OR NEW.after IS NOT OLD.after
    OR NOT coalesce(OLD.detail GLOB 'v[12]:*:*' AND NEW.detail GLOB 'v2:*:*', 0)
BEGIN
    SELECT RAISE(ABORT, 'case_audit is append-only: audit events cannot be changed');
END;
"""

_SCHEMA_V4 = """
-- The pair resolver's turn-taking memory, one row per location: ids and times, never message text. Kept so
-- a restart does not lose the pairs that exist only through turn-taking (issue 14); purged by retention.
CREATE TABLE turn_memory (
    platform   TEXT NOT NULL,
    space_id   TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    thread_id  TEXT NOT NULL,  -- '' outside a thread
    turns      TEXT NOT NULL,  -- JSON: [message_id, author_id, at_s, addressed_ids, partner_ids] per turn
    last_at    TEXT NOT NULL,  -- the newest remembered message's time (the platform's)
    saved_at   TEXT NOT NULL,  -- when Vigil saved it (its clock): what retention goes by
    PRIMARY KEY (platform, space_id, channel_id, thread_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX turn_memory_by_saved ON turn_memory (saved_at);
"""

# Version 5: several delivery workers share the outbox. An item handed to one worker carries that claim's
# token and the end of its lease; other workers skip it until the lease has run out (a worker killed
# mid-post).
_SCHEMA_V5 = """
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE outbox ADD COLUMN claimed_until TEXT;
"""

MIGRATIONS: tuple[str, ...] = (_SCHEMA_V1, _SCHEMA_V2, _SCHEMA_V3, _SCHEMA_V4, _SCHEMA_V5)
LATEST_SCHEMA_VERSION = len(MIGRATIONS)


def split_sql_script(script: str) -> list[str]:
    """Split a script into complete statements.

    ``executescript`` would commit any open transaction first (Python 3.11), so each migration's statements
    are executed one by one inside our own ``BEGIN IMMEDIATE``. ``sqlite3.complete_statement`` keeps
    semicolons inside literals, comments and trigger bodies from splitting a statement.
    """
    statements: list[str] = []
    pending = ""
    *terminated_pieces, tail = script.split(";")
    for piece in terminated_pieces:
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if _has_sql(pending):
                statements.append(pending.strip())
            pending = ""
    if _has_sql(pending + tail):
        raise ValueError("SQL script ends with an incomplete statement (every statement needs its ';')")
    return statements


def _has_sql(text: str) -> bool:
    code = "\n".join(line.split("--", 1)[0] for line in text.splitlines())
    return bool(code.strip(" \t\r\n;"))


async def read_schema_version(connection: aiosqlite.Connection) -> int:
    async with connection.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    return 0 if row is None else int(row[0])


def ensure_schema_not_too_new(version: int, *, database: str) -> None:
    if version > LATEST_SCHEMA_VERSION:
        raise SchemaTooNewError(
            f"The database {database} has schema version {version}, but this Vigil only knows schema "
            f"versions up to {LATEST_SCHEMA_VERSION}. It was written by a newer Vigil: upgrade Vigil to "
            "use it. The database was left untouched."
        )


async def apply_migrations(connection: aiosqlite.Connection, *, database: str) -> int:
    """Bring the database up to ``LATEST_SCHEMA_VERSION``; return the version it ends at.

    Each migration runs in one ``BEGIN IMMEDIATE`` transaction together with its ``user_version`` bump, so a
    failure leaves the database at the previous version. The version is re-read under the write lock, so two
    processes opening the same file at once never apply a migration twice. The connection must be in
    autocommit mode (``isolation_level=None``). sqlite3 errors propagate; the caller turns them into
    ``StoreError``.
    """
    version = await read_schema_version(connection)
    ensure_schema_not_too_new(version, database=database)
    while version < LATEST_SCHEMA_VERSION:
        applied = False
        await _execute(connection, "BEGIN IMMEDIATE")
        try:
            version = await read_schema_version(connection)
            ensure_schema_not_too_new(version, database=database)
            if version < LATEST_SCHEMA_VERSION:
                for statement in split_sql_script(MIGRATIONS[version]):
                    await _execute(connection, statement)
                version += 1
                # PRAGMA takes no parameters; version is our own int.
                await _execute(connection, f"PRAGMA user_version = {version:d}")
                applied = True
            await connection.commit()
        except BaseException:
            await connection.rollback()
            raise
        if applied:
            logger.info("Migrated %s to schema version %d", database, version)
    return version


async def _execute(connection: aiosqlite.Connection, statement: str) -> None:
    async with connection.execute(statement):
        pass
