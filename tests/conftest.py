from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.storage.postgres_server import (
    PostgresServer,
    fresh_database,
    postgres_server_or_skip,
    start_postgres_server,
)
from tests.support.files import umask
from tests.support.gru_model import build_gru_keyword_model
from tests.support.keyword_model import build_keyword_model
from tests.support.nats_server import NatsServer, nats_server_or_skip, start_nats_server
from vigil.detector.onnx_detector import OnnxDetector
from vigil.storage.sqlite import SqliteStore

# The files whose tests take longest (crash suites, emulated CPUs, the shipped model's evaluations, fuzzers).
# They run first: with several workers (`.ci/run` uses pytest-xdist), a long test started last would leave
# the other workers idle while it finishes.
LONGEST_FIRST = (
    "tests/reliability/",
    "tests/broker/test_scale_out_processes.py",
    "tests/detector/test_portability.py",
    "tests/realistic/test_shipped_model.py",
    "tests/importers/test_slack_export.py",
    "tests/http/test_server.py",
    "tests/slack/test_app.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A stable sort of whole files: each file's tests stay together and in order, so module fixtures are
    # set up once.
    def longest_first(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return 0 if path.startswith(LONGEST_FIRST) else 1

    items.sort(key=longest_first)


@pytest.fixture(scope="session")
def keyword_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_keyword_model(tmp_path_factory.mktemp("keyword-model"))


@pytest.fixture
async def keyword_detector(keyword_model_dir: Path) -> AsyncIterator[OnnxDetector]:
    detector = await OnnxDetector.load(keyword_model_dir, intra_op_threads=1, max_batch=32)
    try:
        yield detector
    finally:
        await detector.aclose()


@pytest.fixture(scope="session")
def gru_keyword_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The keyword model with a GRU pair model (tests/support/gru_model.py)."""
    return build_gru_keyword_model(tmp_path_factory.mktemp("gru-keyword-model"))


@pytest.fixture
async def gru_keyword_detector(gru_keyword_model_dir: Path) -> AsyncIterator[OnnxDetector]:
    detector = await OnnxDetector.load(gru_keyword_model_dir, intra_op_threads=1, max_batch=32)
    try:
        yield detector
    finally:
        await detector.aclose()


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "vigil.sqlite3")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    # The usual default umask: without Vigil's own modes, new files would be world-readable.
    with umask(0o022):
        yield


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server per test process, started on first use only: a run without Postgres
    tests starts no server."""
    with start_postgres_server(postgres_server_or_skip()) as server:
        yield server


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh empty database for one test."""
    with fresh_database(postgres_server) as dsn:
        yield dsn


@pytest.fixture
def nats_server() -> Iterator[NatsServer]:
    """A NATS server with JetStream for one test (the broker tests restart it, so it is not shared)."""
    with start_nats_server(nats_server_or_skip()) as server:
        yield server
