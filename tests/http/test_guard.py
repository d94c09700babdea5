"""Slow and many connections: the header deadline and the connection cap (``bots.http.guard``), on the HTTP
API itself and on a bare aiohttp app, with raw sockets as the clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tests.http.conftest import SECRET
from tests.http.raw import Connection, connect, get, trickling
from vigil.bots.app import App
from vigil.bots.http.guard import ConnectionGuard
from vigil.bots.http.server import HttpApi
from vigil.config.settings import HttpSettings, Secret

DEADLINE_S = 0.5
# Event-loop and scheduling slack on a loaded CI machine.
MARGIN_S = 0.5
GUARD_LOGGER = "vigil.bots.http.guard"


@contextlib.asynccontextmanager
async def serving(
    app: App, *, header_timeout_s: float = DEADLINE_S, max_connections: int = 256
) -> AsyncIterator[int]:
    """The HTTP API on 127.0.0.1; yields its port."""
    http = HttpApi(
        settings=HttpSettings(host="127.0.0.1", port=0),
        secret=Secret(SECRET),
        handler=app.monitor,
        cases=app.cases,
        store=app.store,
        moderation=app.moderator_service,
        header_timeout_s=header_timeout_s,
        max_connections=max_connections,
    )
    port = await http.start()
    try:
        yield port
    finally:
        await http.aclose()


async def assert_served(connection: Connection) -> None:
    await connection.send(get("/healthz"))
    status, _, body = await connection.response()
    assert (status, json.loads(body)) == (200, {"status": "ok"})


# ------------------------------------------------------------------ the header deadline


async def test_a_request_head_trickled_in_is_closed_at_the_deadline(app: App) -> None:
    async with serving(app) as port, connect(port) as slow:
        await slow.send(b"GET /healthz HT")
        async with trickling(slow, b"TP/1.1\r\nX-Slow: " + b"a" * 100, every_s=0.2):
            elapsed, answer = await slow.closed_within()
    assert DEADLINE_S - 0.1 <= elapsed < DEADLINE_S + MARGIN_S, elapsed
    assert answer == b"", "nothing is answered to a request that never arrived"


async def test_a_connection_that_sends_nothing_is_closed_at_the_deadline(app: App) -> None:
    async with serving(app) as port, connect(port) as silent:
        elapsed, answer = await silent.closed_within()
    assert DEADLINE_S - 0.1 <= elapsed < DEADLINE_S + MARGIN_S, elapsed
    assert answer == b""


async def test_keep_alive_requests_work_and_the_next_head_has_the_same_deadline(app: App) -> None:
    async with serving(app) as port, connect(port) as client:
        await assert_served(client)
        # Idle between requests for longer than the deadline: that is keep-alive's business, not the guard's.
        await asyncio.sleep(DEADLINE_S + 0.3)
        await assert_served(client)
        await assert_served(client)
        # A third request trickled in: its deadline runs from its first byte.
        await client.send(b"G")
        async with trickling(client, b"ET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 100, every_s=0.2):
            elapsed, _ = await client.closed_within()
    assert elapsed < DEADLINE_S + MARGIN_S, elapsed


async def test_a_pipelined_head_trickled_in_behind_a_request_is_closed_at_the_deadline(app: App) -> None:
    async with serving(app) as port, connect(port) as client:
        # The first request whole, the next one's first bytes in the same packet, the rest trickled in.
        await client.send(get("/healthz") + b"GET /healthz HTTP/1.1\r\n")
        status, _, _ = await client.response()
        assert status == 200
        async with trickling(client, b"X-Slow: " + b"a" * 100, every_s=0.2):
            elapsed, _ = await client.closed_within()
    # Its time runs from the first byte after the answer.
    assert elapsed < 0.2 + DEADLINE_S + MARGIN_S, elapsed


# ------------------------------------------------------------------ the connection cap


async def test_connections_beyond_the_cap_are_refused_and_the_open_ones_served(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with (
        serving(app, header_timeout_s=10.0, max_connections=3) as port,
        connect(port) as first,
        connect(port) as second,
        connect(port) as third,
    ):
        await asyncio.sleep(0.05)  # the server has accepted all three
        for _ in range(2):
            async with connect(port) as extra:
                elapsed, answer = await extra.closed_within(1.0)
            assert answer.startswith(b"HTTP/1.1 503 "), answer[:40]
            assert b"Retry-After: 1\r\n" in answer and b'"error": "overloaded"' in answer
            assert elapsed < 0.5
        for open_one in (first, second, third):
            await assert_served(open_one)
            await assert_served(open_one)
        # One closes: a new connection gets its place.
        first.close()
        for _ in range(50):
            async with connect(port) as late:
                await late.send(get("/healthz"))
                with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
                    status, _, _ = await late.response()
                    if status == 200:
                        break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("a place that came free was not given to a new connection")
    warnings = [r for r in caplog.records if r.name == GUARD_LOGGER and r.levelno >= logging.WARNING]
    assert len(warnings) == 1, "refusals are logged at most once a minute"
    assert "3 connections are open" in warnings[0].getMessage()
    assert "127.0.0.1" not in warnings[0].getMessage()


# ------------------------------------------------------------------ the guard on a bare app


@contextlib.asynccontextmanager
async def bare_app(guard: ConnectionGuard) -> AsyncIterator[int]:
    async def slow_echo(request: web.Request) -> web.Response:
        await asyncio.sleep(0.6)
        return web.Response(body=await request.read())

    app = web.Application(middlewares=[guard.middleware])
    app.router.add_post("/echo", slow_echo)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        yield await guard.listen(runner, host="127.0.0.1", port=0)
    finally:
        guard.close()
        await runner.cleanup()


async def test_the_deadline_covers_the_head_only_not_a_slow_body_or_handler() -> None:
    guard = ConnectionGuard(name="test", header_timeout_s=0.2, max_connections=4)
    async with bare_app(guard) as port, connect(port) as client:
        await client.send(b"POST /echo HTTP/1.1\r\nHost: vigil.test\r\nContent-Length: 5\r\n\r\n")
        # The body arrives over 0.5 s, the answer 0.6 s after the head: both well past its 0.2 s deadline.
        await client.trickle(b"hello", every_s=0.1)
        status, _, body = await client.response()
        assert (status, body) == (200, b"hello")
        assert guard.open_connections == 1
    for _ in range(50):
        if guard.open_connections == 0:
            break
        await asyncio.sleep(0.01)
    assert guard.open_connections == 0, "a closed connection gives its place back"


async def test_listening_without_the_middleware_is_refused() -> None:
    guard = ConnectionGuard(name="test", max_connections=4)
    runner = web.AppRunner(web.Application())
    await runner.setup()
    try:
        with pytest.raises(RuntimeError, match="middleware"):
            await guard.listen(runner, host="127.0.0.1", port=0)
    finally:
        await runner.cleanup()
