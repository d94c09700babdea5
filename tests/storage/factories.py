"""The store backends every contract suite runs against: one factory per backend, opened on a test's
request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from vigil.bots.core.ports import Store
from vigil.storage import InMemoryStore, SqliteStore
from vigil.storage.postgres import PostgresStore

# A factory gets the test's request (to ask for fixtures such as a Postgres database) and its tmp_path.
StoreFactory = Callable[[pytest.FixtureRequest, Path], Awaitable[Store]]


async def _open_sqlite_in_memory(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    store = SqliteStore(":memory:")
    await store.open()
    return store


async def _open_sqlite_file(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    store = SqliteStore(tmp_path / "contract.sqlite3")
    await store.open()
    return store


async def _open_memory(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    store = InMemoryStore()
    await store.open()
    return store


async def _open_postgres(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    # A fresh database on this test process's throwaway server (tests/storage/conftest.py).
    store = PostgresStore(request.getfixturevalue("postgres_dsn"), max_connections=2)
    await store.open()
    return store


# Add a backend here and it runs the whole suite.
STORE_FACTORIES: tuple[tuple[str, StoreFactory], ...] = (
    ("sqlite-memory", _open_sqlite_in_memory),
    ("sqlite-file", _open_sqlite_file),
    ("memory", _open_memory),
    ("postgres", _open_postgres),
)
