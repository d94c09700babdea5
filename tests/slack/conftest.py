from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.slack.harness import ErasingSqliteStore, SlackHarness, running_slack
from vigil.detector.onnx_detector import OnnxDetector
from vigil.storage.sqlite import SqliteStore


@pytest.fixture
async def slack(sqlite_store: SqliteStore, keyword_detector: OnnxDetector) -> AsyncIterator[SlackHarness]:
    async with running_slack(store=sqlite_store, detector=keyword_detector) as harness:
        yield harness


@pytest.fixture
async def erasing_slack(tmp_path: Path, keyword_detector: OnnxDetector) -> AsyncIterator[SlackHarness]:
    store = ErasingSqliteStore(str(tmp_path / "erasing.sqlite3"))
    await store.open()
    try:
        async with running_slack(store=store, detector=keyword_detector) as harness:
            yield harness
    finally:
        await store.close()
