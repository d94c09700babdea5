"""The PostgreSQL schema as ordered migrations, tracked in the one-row table ``vigil_schema_version``.

The same discipline as SQLite's (``storage/migrations.py``): migration ``n`` (1-based) takes a database from
version ``n - 1`` to ``n`` inside one transaction together with its version bump; scripts are append-only once
released; a database newer than this code is refused before anything is written. Postgres has its own
numbering (its version 1 is SQLite's version 4, in one script): the two schemas are separate histories.

Several processes may start together against one database: a session-level advisory lock is held while the
version is read and the migrations run, so exactly one of them migrates and the others find the work done.
"""

from __future__ import annotations

import logging
from typing import Any

from vigil.bots.core.ports import SchemaTooNewError

__all__ = [
    "ADVISORY_LOCK_CLASS",
    "ENCRYPTION_CHECK_LOCK",
    "LATEST_SCHEMA_VERSION",
    "MIGRATIONS",
    "MIGRATION_LOCK",
    "apply_migrations",
    "ensure_schema_not_too_new",
    "read_schema_version",
]

logger = logging.getLogger(__name__)

# pg_advisory_lock(int4, int4) keys: the first names Vigil ("VIGI" in ASCII), the second what is locked.
ADVISORY_LOCK_CLASS = 0x56494749
MIGRATION_LOCK = 1
ENCRYPTION_CHECK_LOCK = 2

# TEXT COLLATE "C" wherever text is compared or sorted: SQLite compares bytes, and the pair key's
# user_a < user_b (and every ORDER BY on ids) must not depend on the server's locale. Free text written by
# people (messages, moderators' notes, record values) is BYTEA holding UTF-8: Postgres' TEXT refuses the
# character NUL, which chat platforms pass through and SQLite stores. JSON columns escape it already.
_SCHEMA_V1 = """
CREATE TABLE vigil_schema_version (
    singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    version   INTEGER NOT NULL
);
INSERT INTO vigil_schema_version (version) VALUES (0);

-- Idempotency: a redelivered platform message is recognised and skipped.
CREATE TABLE seen_messages (
    platform   TEXT COLLATE "C" NOT NULL,
    space_id   TEXT COLLATE "C" NOT NULL,
    message_id TEXT COLLATE "C" NOT NULL,
    seen_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (platform, space_id, message_id)
);
CREATE INDEX seen_messages_by_time ON seen_messages (seen_at);
CREATE INDEX seen_messages_by_space_time ON seen_messages (platform, space_id, seen_at);

CREATE TABLE pairs (
    pair_id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    platform               TEXT COLLATE "C" NOT NULL,
    space_id               TEXT COLLATE "C" NOT NULL,
    user_a                 TEXT COLLATE "C" NOT NULL,
    user_b                 TEXT COLLATE "C" NOT NULL,
    first_seen             TIMESTAMPTZ NOT NULL,
    last_seen              TIMESTAMPTZ NOT NULL,
    message_count          BIGINT NOT NULL,
    channel_ids            TEXT NOT NULL,  -- JSON array of channel ids
    model_state            TEXT NOT NULL,
    risk                   DOUBLE PRECISION NOT NULL,
    suspect_id             TEXT,
    above_threshold_streak BIGINT NOT NULL,
    snoozed_until          TIMESTAMPTZ,
    UNIQUE (platform, space_id, user_a, user_b),
    CHECK (user_a < user_b)
);
CREATE INDEX pairs_by_user_b ON pairs (platform, space_id, user_b);
CREATE INDEX pairs_by_last_seen ON pairs (last_seen);

-- seq is the insertion order within a pair: writers of one pair hold its row lock (storage/postgres.py).
CREATE TABLE window_messages (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pair_id    BIGINT NOT NULL REFERENCES pairs (pair_id) ON DELETE CASCADE,
    message_id TEXT COLLATE "C" NOT NULL,
    channel_id TEXT NOT NULL,
    thread_id  TEXT,
    author_id  TEXT NOT NULL,
    text       BYTEA NOT NULL,  -- UTF-8 (sealed when encrypted)
    timestamp  TIMESTAMPTZ NOT NULL,
    risk       DOUBLE PRECISION NOT NULL,
    signals    TEXT NOT NULL  -- JSON array of signal names
);
CREATE INDEX window_messages_by_pair ON window_messages (pair_id, seq);
CREATE INDEX window_messages_by_time ON window_messages (timestamp);

CREATE TABLE risk_history (
    point_id   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pair_id    BIGINT NOT NULL REFERENCES pairs (pair_id) ON DELETE CASCADE,
    timestamp  TIMESTAMPTZ NOT NULL,
    message_id TEXT NOT NULL,
    risk       DOUBLE PRECISION NOT NULL,
    suspect_id TEXT
);
CREATE INDEX risk_history_by_pair ON risk_history (pair_id, point_id);
CREATE INDEX risk_history_by_time ON risk_history (timestamp);

-- Alerts are the moderators' case record: they name the pair by its natural key, so no cascade from pairs
-- can ever remove a case. The case columns are SQLite's schema version 2.
CREATE TABLE alerts (
    alert_id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    platform       TEXT COLLATE "C" NOT NULL,
    space_id       TEXT COLLATE "C" NOT NULL,
    user_a         TEXT COLLATE "C" NOT NULL,
    user_b         TEXT COLLATE "C" NOT NULL,
    case_number    BIGINT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    risk           DOUBLE PRECISION NOT NULL,
    peak_risk      DOUBLE PRECISION NOT NULL,
    suspect_id     TEXT NOT NULL,
    other_id       TEXT NOT NULL,
    channel_ids    TEXT NOT NULL,  -- JSON array
    signals        TEXT NOT NULL,  -- JSON array
    evidence       TEXT NOT NULL,  -- JSON array of WindowMessage objects (texts sealed one by one)
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    revision       BIGINT NOT NULL,
    shadow         BOOLEAN NOT NULL,
    model_name     TEXT NOT NULL,
    delivery_ref   TEXT,
    case_state     TEXT NOT NULL DEFAULT 'open'
        CHECK (case_state IN ('open', 'claimed', 'dismissed', 'confirmed', 'escalated')),
    case_source    TEXT NOT NULL DEFAULT 'alert' CHECK (case_source IN ('alert', 'member_report')),
    claimed_by     TEXT,
    dismiss_reason BYTEA,  -- UTF-8 (sealed when encrypted)
    hold_until     TIMESTAMPTZ,
    closed_at      TIMESTAMPTZ,
    text_purged_at TIMESTAMPTZ,
    UNIQUE (platform, space_id, case_number)
);
-- One open alert per pair: it is updated, never re-raised.
CREATE UNIQUE INDEX alerts_open_by_pair ON alerts (platform, space_id, user_a, user_b) WHERE status = 'open';
CREATE INDEX alerts_by_space_created ON alerts (platform, space_id, created_at);
CREATE INDEX alerts_by_case_state ON alerts (case_state, closed_at);
CREATE INDEX alerts_by_suspect ON alerts (platform, space_id, suspect_id);
CREATE INDEX alerts_by_pair ON alerts (platform, space_id, user_a, user_b);

-- Case numbers only go up; the counter's row lock serialises numbering across processes.
CREATE TABLE case_counters (
    platform         TEXT COLLATE "C" NOT NULL,
    space_id         TEXT COLLATE "C" NOT NULL,
    last_case_number BIGINT NOT NULL,
    PRIMARY KEY (platform, space_id)
);

CREATE TABLE outbox (
    item_id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id        BIGINT NOT NULL REFERENCES alerts (alert_id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('post', 'update')),
    revision        BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    last_error      TEXT,
    UNIQUE (alert_id, kind)
);
CREATE INDEX outbox_due ON outbox (next_attempt_at, item_id);

CREATE TABLE space_settings (
    platform             TEXT COLLATE "C" NOT NULL,
    space_id             TEXT COLLATE "C" NOT NULL,
    threshold            DOUBLE PRECISION,
    alert_channel_id     TEXT,
    moderator_role_id    TEXT,
    child_safety_role_id TEXT,
    ignored_channel_ids  TEXT NOT NULL,  -- JSON array, sorted
    shadow_mode          BOOLEAN,
    PRIMARY KEY (platform, space_id)
);

-- The audit trail: append-only, enforced by the server. case_number is NULL for entries about no case.
CREATE TABLE case_audit (
    event_id    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    platform    TEXT COLLATE "C" NOT NULL,
    space_id    TEXT COLLATE "C" NOT NULL,
    case_number BIGINT,
    at          TIMESTAMPTZ NOT NULL,
    actor_id    TEXT NOT NULL,
    action      TEXT NOT NULL,
    before      BYTEA,  -- UTF-8
    after       BYTEA,  -- UTF-8
    detail      BYTEA  -- UTF-8 (sealed when encrypted)
);
CREATE INDEX case_audit_by_case ON case_audit (platform, space_id, case_number, event_id);

CREATE FUNCTION vigil_case_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'case_audit is append-only: audit events cannot be changed or deleted';
END;
$$;
CREATE TRIGGER case_audit_append_only BEFORE UPDATE OR DELETE ON case_audit
    FOR EACH ROW EXECUTE FUNCTION vigil_case_audit_append_only();

-- Messages preserved for a case, apart from the rolling window.
CREATE TABLE case_evidence (
    evidence_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id    BIGINT NOT NULL REFERENCES alerts (alert_id) ON DELETE CASCADE,
    message_id  TEXT COLLATE "C" NOT NULL,
    channel_id  TEXT NOT NULL,
    thread_id   TEXT,
    author_id   TEXT NOT NULL,
    text        BYTEA NOT NULL,  -- UTF-8 (sealed when encrypted)
    timestamp   TIMESTAMPTZ NOT NULL,
    risk        DOUBLE PRECISION NOT NULL,
    signals     TEXT NOT NULL,  -- JSON array
    UNIQUE (alert_id, message_id)
);
CREATE INDEX case_evidence_by_author ON case_evidence (author_id);

CREATE TABLE records (
    namespace TEXT COLLATE "C" NOT NULL,
    key       TEXT COLLATE "C" NOT NULL,
    value     BYTEA NOT NULL,  -- UTF-8 (sealed when encrypted)
    PRIMARY KEY (namespace, key)
);

-- Facts about the database itself (the encryption marker and key check value).
CREATE TABLE meta (
    key   TEXT COLLATE "C" PRIMARY KEY,
    value TEXT NOT NULL
);

-- The pair resolver's turn-taking memory: ids and times, never message text.
CREATE TABLE turn_memory (
    platform   TEXT COLLATE "C" NOT NULL,
    space_id   TEXT COLLATE "C" NOT NULL,
    channel_id TEXT COLLATE "C" NOT NULL,
    thread_id  TEXT COLLATE "C" NOT NULL,  -- '' outside a thread
    turns      TEXT NOT NULL,
    last_at    TIMESTAMPTZ NOT NULL,  -- the newest remembered message's time (the platform's)
    saved_at   TIMESTAMPTZ NOT NULL,  -- when Vigil saved it (its clock): what retention goes by
    PRIMARY KEY (platform, space_id, channel_id, thread_id)
);
CREATE INDEX turn_memory_by_saved ON turn_memory (saved_at);
CREATE INDEX turn_memory_by_last ON turn_memory (last_at);
"""

# Version 2 (SQLite's version 5): several delivery workers share the outbox. An item handed to one worker
# carries that claim's token and the end of its lease; other workers skip it until the lease has run out.
_SCHEMA_V2 = """
ALTER TABLE outbox ADD COLUMN claimed_by TEXT COLLATE "C";
ALTER TABLE outbox ADD COLUMN claimed_until TIMESTAMPTZ;
"""

# Version 3 (Postgres only): scale-out fencing. The lease revision of the scoring worker that last wrote a
# partition's pairs; a worker whose lease was taken over cannot commit after the new owner has written.
_SCHEMA_V3 = """
CREATE TABLE partition_fences (
    stream    TEXT COLLATE "C" NOT NULL,
    partition INTEGER NOT NULL,
    epoch     BIGINT NOT NULL,  -- the lease registry's incarnation (the broker's bucket creation time)
    revision  BIGINT NOT NULL,  -- the lease's revision within it
    PRIMARY KEY (stream, partition)
);
"""

MIGRATIONS: tuple[str, ...] = (_SCHEMA_V1, _SCHEMA_V2, _SCHEMA_V3)
LATEST_SCHEMA_VERSION = len(MIGRATIONS)


async def read_schema_version(connection: Any) -> int:
    """0 for an empty database (no version table yet in the connection's search path)."""
    if await connection.fetchval("SELECT to_regclass('vigil_schema_version')") is None:
        return 0
    version = await connection.fetchval("SELECT version FROM vigil_schema_version")
    return 0 if version is None else int(version)


def ensure_schema_not_too_new(version: int, *, database: str) -> None:
    if version > LATEST_SCHEMA_VERSION:
        raise SchemaTooNewError(
            f"The {database} has schema version {version}, but this Vigil only knows schema versions up "
            f"to {LATEST_SCHEMA_VERSION}. It was written by a newer Vigil: upgrade Vigil to use it. The "
            "database was left untouched."
        )


async def apply_migrations(connection: Any, *, database: str) -> int:
    """Bring the database up to ``LATEST_SCHEMA_VERSION``; return the version it ends at.

    Holds the migration advisory lock throughout (waiting for another process that holds it), so the
    version read here is the one the migrations start from. asyncpg errors propagate; the caller maps them.
    """
    await connection.execute("SELECT pg_advisory_lock($1, $2)", ADVISORY_LOCK_CLASS, MIGRATION_LOCK)
    try:
        version = await read_schema_version(connection)
        ensure_schema_not_too_new(version, database=database)
        while version < LATEST_SCHEMA_VERSION:
            async with connection.transaction():
                # No parameters: asyncpg sends the script with the simple protocol, statements and all.
                await connection.execute(MIGRATIONS[version])
                version += 1
                await connection.execute("UPDATE vigil_schema_version SET version = $1", version)
            logger.info("Migrated the %s to schema version %d", database, version)
        return version
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1, $2)", ADVISORY_LOCK_CLASS, MIGRATION_LOCK)
