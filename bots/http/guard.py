"""What aiohttp's server lacks: a deadline on each request's line and headers, and a cap on connections.

aiohttp reads a request's line and headers with no deadline of its own: only its keep-alive timer closes a
connection that never completes a request, and under ``web.AppRunner`` that timer is an hour. A client that
sends nothing, or trickles header bytes (slowloris), holds its connection; and any number may connect. Both
of Vigil's aiohttp servers (the HTTP API, Slack's HTTP endpoint) listen through a ``ConnectionGuard``:

* the deadline: a connection's request line and headers must be complete ``header_timeout_s`` after it
  opened, and on a keep-alive connection ``header_timeout_s`` after the first byte that follows the previous
  answer; otherwise it is closed. An idle keep-alive connection is aiohttp's keep-alive timer's business
  (``KEEPALIVE_TIMEOUT_S``), and so is a pipelined request whose first bytes came before the previous
  answer and whose head then stalls (the guard cannot tell them from the previous request without parsing
  HTTP; it gains a client nothing an idle connection does not). The guard learns that a head is complete when
  aiohttp hands the request to the app (``middleware``) and that the request is done when the app returns;
  bodies have the servers' own timeouts.
* the cap: beyond ``max_connections`` a new connection is answered 503 and closed at once, and a WARNING is
  logged at most once a minute. Open connections keep working.

How: ``runner.server`` (a ``web.Server``) is aiohttp's documented protocol factory for ``loop.create_server``;
the guard creates the listening socket itself with a factory that wraps each of aiohttp's protocols in a thin
``asyncio.Protocol`` which passes every call through and watches the bytes go by. aiohttp is pinned in
``requirements/*.lock``; a new version needs the tests in ``tests/http/test_guard.py`` to pass.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import cast

from aiohttp import web

logger = logging.getLogger(__name__)

HEADER_TIMEOUT_S = 10.0
# aiohttp's own default for ``web.run_app`` (``AppRunner`` keeps idle connections for an hour): an idle
# connection holds one of the capped places, so it should not hold it long.
KEEPALIVE_TIMEOUT_S = 75.0
_WARN_EVERY_S = 60.0
_REFUSAL_BODY = json.dumps(
    {"error": "overloaded", "detail": "too many open connections; retry after 1 second"}
).encode()
# Written before the request is read, so the client gets an answer rather than a bare reset.
_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: application/json\r\n"
    b"Retry-After: 1\r\n"
    b"Connection: close\r\n"
    b"Content-Length: " + str(len(_REFUSAL_BODY)).encode() + b"\r\n\r\n" + _REFUSAL_BODY
)


class _ExceptionTypeOnly(logging.Filter):
    """aiohttp logs a request it cannot parse with the exception, whose text quotes the raw bytes (message
    text, headers): keep only the exception's type."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info is not None and record.exc_info[1] is not None:
            record.msg = f"{record.getMessage()} ({type(record.exc_info[1]).__name__})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def payload_free_logger(name: str) -> logging.Logger:
    """The logger named ``name``, filtered to log exceptions by type only: pass it to ``web.AppRunner``."""
    server_logger = logging.getLogger(name)
    if not any(isinstance(existing, _ExceptionTypeOnly) for existing in server_logger.filters):
        server_logger.addFilter(_ExceptionTypeOnly())
    return server_logger


class ConnectionGuard:
    """The header deadline and the connection cap of one aiohttp server (see the module's docstring).

    Put ``middleware`` first in the app's middlewares, ``await listen(runner, ...)`` instead of a
    ``web.TCPSite``, and ``close()`` before ``runner.cleanup()``.
    """

    def __init__(
        self, *, name: str, max_connections: int, header_timeout_s: float = HEADER_TIMEOUT_S
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if header_timeout_s <= 0:
            raise ValueError("header_timeout_s must be positive")
        self._name = name
        self._max_connections = max_connections
        self._header_timeout_s = header_timeout_s
        self._open: dict[asyncio.BaseTransport, _GuardedConnection] = {}
        self._listener: asyncio.Server | None = None
        self._last_warning: float | None = None
        self._refused = 0

    @property
    def header_timeout_s(self) -> float:
        return self._header_timeout_s

    @property
    def max_connections(self) -> int:
        return self._max_connections

    @property
    def open_connections(self) -> int:
        return len(self._open)

    async def listen(self, runner: web.AppRunner, *, host: str, port: int) -> int:
        """Listen on ``host``/``port`` (0: any free port) for ``runner`` (set up); returns the bound port."""
        if self._listener is not None:
            raise RuntimeError(f"{self._name} is already listening")
        server = runner.server
        if server is None:
            raise RuntimeError("call runner.setup() before listen()")
        if self.middleware not in runner.app.middlewares:
            # Without it every request would be cut off at the header deadline.
            raise RuntimeError("the app must have the guard's middleware")
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(lambda: _GuardedConnection(self, server), host, port)
        return int(self._listener.sockets[0].getsockname()[1])

    def close(self) -> None:
        """Stop accepting connections; ``runner.cleanup()`` closes the open ones."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        transport = request.transport
        connection = self._open.get(transport) if transport is not None else None
        if connection is None:
            return await handler(request)
        connection.request_started()
        try:
            return await handler(request)
        finally:
            connection.request_finished()

    # ------------------------------------------------------------------ for _GuardedConnection

    def _admit(self, transport: asyncio.BaseTransport, connection: _GuardedConnection) -> bool:
        if len(self._open) < self._max_connections:
            self._open[transport] = connection
            return True
        self._refused += 1
        now = asyncio.get_running_loop().time()
        if self._last_warning is None or now - self._last_warning >= _WARN_EVERY_S:
            logger.warning(
                "%s: %d connections are open, the most allowed; refused %d new ones since the last warning "
                "(logged at most once a minute)",
                self._name,
                self._max_connections,
                self._refused,
            )
            self._last_warning = now
            self._refused = 0
        return False

    def _forget(self, transport: asyncio.BaseTransport) -> None:
        self._open.pop(transport, None)


class _GuardedConnection(asyncio.Protocol):
    """One connection: aiohttp's protocol inside, passed every call; the header deadline around it."""

    def __init__(self, guard: ConnectionGuard, server: web.Server) -> None:
        self._guard = guard
        self._server = server
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        # The app is handling a request: its head is complete, the body is the server's business.
        self._busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream = cast(asyncio.Transport, transport)
        if not self._guard._admit(transport, self):
            stream.write(_REFUSAL)
            stream.close()
            return
        self._transport = stream
        self._arm()
        self._inner = self._server()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return
        if not self._busy and self._deadline is None:
            # The first byte of the next request on a keep-alive connection: its head's time starts now.
            self._arm()
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._transport is not None:
            self._guard._forget(self._transport)
            self._transport = None
        inner, self._inner = self._inner, None
        if inner is not None:
            inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def request_started(self) -> None:
        """aiohttp parsed a request's line and headers and hands it to the app."""
        self._disarm()
        self._busy = True

    def request_finished(self) -> None:
        """The app answered; the next request's head gets its time from its first byte."""
        self._busy = False

    def _arm(self) -> None:
        self._disarm()
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(self._guard.header_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self._transport is not None:
            # No address: a peer's address is an id.
            logger.debug(
                "closed a connection whose request headers took over %ss", self._guard.header_timeout_s
            )
            self._transport.close()
