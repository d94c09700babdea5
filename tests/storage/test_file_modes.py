"""The database and its WAL files are owner-only (0600) whatever the umask; looser ones are tightened."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from tests.support.files import mode
from vigil.bots.core.files import (
    create_private_file,
    make_private_dirs,
    replace_private_file,
    tighten_private_file,
    write_private_file,
)
from vigil.bots.core.ports import StoreError
from vigil.storage import SqliteStore

SECRET_TEXT = "meet me after school, don't tell anyone"


def wal_and_shm(database: Path) -> tuple[Path, Path]:
    return database.with_name(f"{database.name}-wal"), database.with_name(f"{database.name}-shm")


def write_through_sqlite(database: Path) -> sqlite3.Connection:
    """A connection in WAL mode with one committed write; -wal and -shm exist until it closes."""
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("CREATE TABLE IF NOT EXISTS t (x TEXT)")
    connection.execute("INSERT INTO t VALUES ('x')")
    return connection


def test_sqlite_gives_the_wal_and_shm_files_the_database_file_s_mode(
    tmp_path: Path, permissive_umask: None
) -> None:
    # The claim the store relies on, checked against the SQLite this Python links.
    plain = tmp_path / "plain.sqlite3"
    with closing(write_through_sqlite(plain)):
        assert [mode(p) for p in (plain, *wal_and_shm(plain))] == [0o644] * 3  # the umask's doing

    private = tmp_path / "private.sqlite3"
    assert create_private_file(private)
    with closing(write_through_sqlite(private)):
        assert [mode(p) for p in (private, *wal_and_shm(private))] == [0o600] * 3

    # Copied from the database file, not derived from the umask: 0640 survives a strict umask.
    group = tmp_path / "group.sqlite3"
    create_private_file(group)
    group.chmod(0o640)
    strict = os.umask(0o077)
    try:
        with closing(write_through_sqlite(group)):
            assert [mode(p) for p in (group, *wal_and_shm(group))] == [0o640] * 3
    finally:
        os.umask(strict)


async def test_a_new_database_and_its_wal_files_are_owner_only(
    tmp_path: Path, permissive_umask: None
) -> None:
    database = tmp_path / "vigil.sqlite3"
    async with SqliteStore(database) as store:
        await store.put_record("test", "key", SECRET_TEXT)
        wal, shm = wal_and_shm(database)
        assert wal.exists() and shm.exists()
        assert (mode(database), mode(wal), mode(shm)) == (0o600, 0o600, 0o600)
    assert mode(database) == 0o600


async def test_a_world_readable_database_and_leftover_wal_files_are_tightened_with_one_warning(
    tmp_path: Path, permissive_umask: None, caplog: pytest.LogCaptureFixture
) -> None:
    database = tmp_path / "vigil.sqlite3"
    async with SqliteStore(database) as store:
        await store.put_record("test", "key", SECRET_TEXT)
    # An older Vigil's files: readable by everyone, with the WAL files a crash leaves behind.
    database.chmod(0o644)
    with closing(write_through_sqlite(database)) as other:
        wal, shm = wal_and_shm(database)
        assert (mode(wal), mode(shm)) == (0o644, 0o644)
        caplog.set_level(logging.INFO, logger="vigil.storage.sqlite")

        async with SqliteStore(database) as store:
            assert await store.get_record("test", "key") == SECRET_TEXT
            assert (mode(database), mode(wal), mode(shm)) == (0o600, 0o600, 0o600)
        other.execute("INSERT INTO t VALUES ('y')")

    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    line = warnings[0].getMessage()
    assert str(database) in line and "-wal" in line and "-shm" in line and "0644" in line
    assert SECRET_TEXT not in caplog.text

    # Private now: the next open has nothing to say.
    caplog.clear()
    async with SqliteStore(database):
        pass
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_group_access_is_removed_too(tmp_path: Path, permissive_umask: None) -> None:
    database = tmp_path / "vigil.sqlite3"
    async with SqliteStore(database):
        pass
    database.chmod(0o660)
    async with SqliteStore(database):
        pass
    # Message text is for the service account only; others use the CLI as that account.
    assert mode(database) == 0o600


async def test_a_missing_folder_is_still_an_error_and_nothing_is_created(tmp_path: Path) -> None:
    # A mistyped path must not quietly start an empty database somewhere new.
    missing = tmp_path / "no-such-folder" / "vigil.sqlite3"
    with pytest.raises(StoreError, match="folder exists"):
        await SqliteStore(missing).open()
    assert not missing.parent.exists()


async def test_in_memory_databases_create_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    async with SqliteStore(":memory:") as store:
        await store.put_record("test", "key", "value")
    assert await asyncio.to_thread(os.listdir, tmp_path) == []


def test_private_file_helpers_ignore_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o000)
    try:
        make_private_dirs(tmp_path / "a" / "b")
        assert (mode(tmp_path / "a"), mode(tmp_path / "a" / "b")) == (0o700, 0o700)
        (tmp_path / "open").mkdir()
        (tmp_path / "open").chmod(0o755)
        make_private_dirs(tmp_path / "open")
        assert mode(tmp_path / "open") == 0o755  # an existing folder is the admin's choice

        write_private_file(tmp_path / "a" / "new.txt", b"text", durable=True)
        assert mode(tmp_path / "a" / "new.txt") == 0o600
        with pytest.raises(FileExistsError):
            write_private_file(tmp_path / "a" / "new.txt", b"again")

        report = tmp_path / "report.html"
        report.write_text("old", encoding="utf-8")
        assert mode(report) == 0o666
        replace_private_file(report, b"new")
        assert mode(report) == 0o600 and report.read_bytes() == b"new"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "open", "report.html"]

        assert tighten_private_file(tmp_path / "missing") is None
        assert tighten_private_file(tmp_path / "a") is None  # folders are not files
        loose = tmp_path / "loose"
        loose.write_bytes(b"")
        assert tighten_private_file(loose) == 0o666 and mode(loose) == 0o600
        assert tighten_private_file(loose) is None
    finally:
        os.umask(previous)
