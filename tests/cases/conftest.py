from __future__ import annotations

import pytest

from tests.cases.helpers import Harness, make_harness
from vigil.detector.onnx_detector import OnnxDetector
from vigil.storage.sqlite import SqliteStore


@pytest.fixture
async def harness(sqlite_store: SqliteStore, keyword_detector: OnnxDetector) -> Harness:
    return make_harness(sqlite_store, keyword_detector)
