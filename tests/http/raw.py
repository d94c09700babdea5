"""Raw HTTP/1.1 over asyncio sockets: the slow and silent clients an HTTP library would not let a test be."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

# Long enough for a test to notice a server that never closes, short enough to keep the suite fast.
NEVER_S = 2.5


@dataclass(slots=True)
class Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self, *, within: float = NEVER_S) -> tuple[int, dict[str, str], bytes]:
        """The next response: status, headers (lower-case names), body (by Content-Length)."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), within)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines if line)
        }
        length = int(headers.get("content-length", "0"))
        body = await asyncio.wait_for(self.reader.readexactly(length), within) if length else b""
        return int(status_line.split(" ", 2)[1]), headers, body

    async def closed_within(self, seconds: float = NEVER_S) -> tuple[float, bytes]:
        """Seconds until the server closes the connection (end of stream or reset), and what it sent;
        fails if it is still open after ``seconds``."""
        started = time.monotonic()
        received = b""
        try:
            while chunk := await asyncio.wait_for(self.reader.read(4096), seconds):
                received += chunk
        except ConnectionError:
            pass
        except TimeoutError:
            raise AssertionError(f"the server kept the connection open for {seconds} s") from None
        return time.monotonic() - started, received

    async def trickle(self, data: bytes, *, every_s: float) -> None:
        """Send ``data`` one byte at a time; stops quietly when the server closes the connection."""
        with contextlib.suppress(ConnectionError):
            for byte in data:
                await asyncio.sleep(every_s)
                await self.send(bytes([byte]))

    def close(self) -> None:
        self.writer.close()


@contextlib.asynccontextmanager
async def connect(port: int) -> AsyncIterator[Connection]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    connection = Connection(reader, writer)
    try:
        yield connection
    finally:
        connection.close()


@contextlib.asynccontextmanager
async def trickling(connection: Connection, data: bytes, *, every_s: float) -> AsyncIterator[None]:
    """``data`` trickled into ``connection`` in the background while the block runs."""
    task = asyncio.create_task(connection.trickle(data, every_s=every_s))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: vigil.test\r\n\r\n".encode()
