"""Fixtures for the store tests: a throwaway PostgreSQL server per test process, a fresh database per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.storage.postgres_server import (
    PostgresServer,
    fresh_database,
    postgres_server_or_skip,
    start_postgres_server,
)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """Started on first use only: a run without Postgres tests starts no server."""
    with start_postgres_server(postgres_server_or_skip()) as server:
        yield server


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer) -> Iterator[str]:
    with fresh_database(postgres_server) as dsn:
        yield dsn
