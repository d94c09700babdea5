"""The HTTP API under test: the real server on 127.0.0.1 (port 0) in front of the real pipeline.

Built on the composition root `vigil run` uses (``App``): real SQLite file, real ONNX runtime on the keyword
model (so "secret groom" raises an alert), the real ingest queue, Monitor and CaseService; requests go
through a real aiohttp client over TCP.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from vigil.bots.app import App
from vigil.bots.core.cases import Cases
from vigil.bots.core.monitor import Monitor
from vigil.bots.core.policy import PolicyConfig
from vigil.bots.core.ports import MessageHandler
from vigil.bots.http.server import HttpApi
from vigil.bots.http.signing import signed_headers, signed_request_headers
from vigil.config.settings import HttpSettings, PolicySettings, Secret, Settings
from vigil.detector.onnx_detector import OnnxDetector
from vigil.storage.sqlite import SqliteStore

SECRET = "test-secret-0123456789abcdef"
START = datetime(2026, 3, 1, 18, 0, tzinfo=UTC)


def policy() -> PolicyConfig:
    return PolicyConfig(
        threshold=0.7,
        sustain_messages=2,
        hysteresis=0.1,
        cooldown=timedelta(hours=6),
        update_min_delta=0.01,
        max_alerts_per_hour=100,
        shadow_mode=False,
    )


SETTINGS = Settings(policy=PolicySettings(window_messages=20, evidence_messages=3))


def make_app(store: SqliteStore, detector: OnnxDetector) -> App:
    """The pipeline as ``vigil run`` composes it, with the tests' policy."""
    return App(settings=SETTINGS, store=store, detector=detector, policy=policy())


def make_monitor(store: SqliteStore, detector: OnnxDetector) -> Monitor:
    return make_app(store, detector).monitor


def wire_message(index: int, *, text: str = "hello there", **overrides: object) -> dict[str, object]:
    """A DM from "adult" to "kid" in the HTTP API's wire format."""
    message: dict[str, object] = {
        "space_id": "tenant-1",
        "channel_id": "dm-1",
        "message_id": f"m-{index}",
        "author_id": "adult",
        "text": text,
        "timestamp": (START + timedelta(seconds=index)).isoformat().replace("+00:00", "Z"),
        "is_dm": True,
        "recipient_ids": ["kid"],
    }
    message.update(overrides)
    return message


@dataclass(slots=True)
class Api:
    """A running server and a client session pointed at it."""

    http: HttpApi
    base_url: str
    session: aiohttp.ClientSession
    store: SqliteStore
    cases: Cases

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        params: Mapping[str, str] | None = None,
        sign: bool = True,
        now: float | None = None,
        secret: str = SECRET,
        headers: Mapping[str, str] | None = None,
        scheme: str = "v2",
    ) -> tuple[int, dict[str, object], Mapping[str, str]]:
        status, raw, answered = await self.fetch(
            method,
            path,
            body=body,
            params=params,
            sign=sign,
            now=now,
            secret=secret,
            headers=headers,
            scheme=scheme,
        )
        return status, json.loads(raw) if raw.strip() else None, answered

    async def fetch(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        params: Mapping[str, str] | None = None,
        sign: bool = True,
        now: float | None = None,
        secret: str = SECRET,
        headers: Mapping[str, str] | None = None,
        scheme: str = "v2",
    ) -> tuple[int, bytes, Mapping[str, str]]:
        """``request`` without reading the answer as JSON (the chart is an SVG)."""
        sent = dict(headers or {})
        target = path + ("?" + urllib.parse.urlencode(params) if params else "")
        if sign and scheme == "v2":
            sent.update(
                signed_request_headers(method=method, target=target, body=body, secret=secret, now=now)
            )
        elif sign:
            sent.update(signed_headers(body, secret=secret, now=now))
        async with self.session.request(method, self.base_url + target, data=body, headers=sent) as response:
            return response.status, await response.read(), response.headers

    async def send(
        self, messages: Sequence[object], **kwargs: object
    ) -> tuple[int, dict[str, object], Mapping[str, str]]:
        body = json.dumps({"messages": list(messages)}).encode()
        return await self.request("POST", "/v1/messages", body=body, **kwargs)  # type: ignore[arg-type]


async def start_api(
    *,
    app: App,
    handler: MessageHandler,
    settings: HttpSettings | None = None,
) -> AsyncIterator[Api]:
    http = HttpApi(
        settings=settings or HttpSettings(host="127.0.0.1", port=0),
        secret=Secret(SECRET),
        handler=handler,
        cases=app.cases,
        store=app.store,
        moderation=app.moderator_service,
        signal_labels=app.signal_labels,
    )
    port = await http.start()
    try:
        async with aiohttp.ClientSession() as session:
            yield Api(
                http=http,
                base_url=f"http://127.0.0.1:{port}",
                session=session,
                store=app.store,
                cases=app.cases,
            )
    finally:
        await http.aclose()


@pytest.fixture
async def app(sqlite_store: SqliteStore, keyword_detector: OnnxDetector) -> App:
    return make_app(sqlite_store, keyword_detector)


@pytest.fixture
async def monitor(app: App) -> Monitor:
    return app.monitor


@pytest.fixture
async def api(app: App) -> AsyncIterator[Api]:
    """As in production: the API hands messages to the one ingest queue, which feeds the monitor."""
    queue = await app.ingest_queue()
    draining = asyncio.create_task(queue.run())
    try:
        async for running in start_api(app=app, handler=queue):
            yield running
    finally:
        queue.close()
        await draining
