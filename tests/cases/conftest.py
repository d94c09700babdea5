from __future__ import annotations

import pytest

from detector.onnx_detector import OnnxDetector
from storage.sqlite import SqliteStore
from tests.cases.helpers import Harness, make_harness


@pytest.fixture
async def harness(sqlite_store: SqliteStore, keyword_detector: OnnxDetector) -> Harness:
    return make_harness(sqlite_store, keyword_detector)
