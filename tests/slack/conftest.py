from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.slack.fake_slack import FakeSlack
from tests.slack.harness import ErasingSqliteStore, HeldAuthTest, SlackHarness, running_slack
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


@pytest.fixture
def held_auth_test(monkeypatch: pytest.MonkeyPatch) -> HeldAuthTest:
    """The fake answers auth.test only after ``release()`` once ``hold()`` was called (test_auth_herd)."""
    held = HeldAuthTest()
    answer = FakeSlack._api

    async def held_api(fake: FakeSlack, request: web.Request) -> web.Response:
        if request.match_info["method"] == "auth.test":
            await held.wait()
        return await answer(fake, request)

    # The fake routes to its bound method when it starts, so the class is patched before that.
    monkeypatch.setattr(FakeSlack, "_api", held_api)
    return held
