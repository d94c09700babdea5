"""A throwaway PostgreSQL server for the store tests: one per pytest process (so one per xdist worker).

``initdb`` into a temporary folder and ``postgres`` listening only on a Unix socket there (no TCP port,
nothing shared between workers), with durability off for speed; stopped at the end of the session. Each test
gets its own database, cloned from an empty template. The binaries come from PATH or Debian's
/usr/lib/postgresql/<version>/bin. Where there are none, the tests that need the server skip, but fail under
CI (the environment variable CI set): ``.ci/run`` installs the OS package ``postgresql`` when it is missing.
Postgres refuses to run as root, so as root the server (and initdb, psql) run as the ``postgres`` account.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "PostgresServer",
    "find_postgres_bin",
    "fresh_database",
    "postgres_server_or_skip",
    "start_postgres_server",
]

_START_TIMEOUT_S = 30.0
_TEMPLATE = "vigil_template"


def find_postgres_bin() -> Path | None:
    """The folder holding ``initdb`` and ``postgres``: on PATH, else the newest Debian install."""
    on_path = shutil.which("initdb")
    if on_path is not None and shutil.which("postgres") is not None:
        return Path(on_path).resolve().parent
    installs = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    for folder in reversed(installs):
        if (folder / "initdb").exists() and (folder / "postgres").exists():
            return folder
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class PostgresServer:
    """A running server: its socket folder, and fresh database names for the tests."""

    socket_dir: Path
    user: str
    worker: str
    _numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def dsn(self, database: str) -> str:
        return f"postgresql://{self.user}@/{database}?host={self.socket_dir}"

    def new_database_name(self) -> str:
        # The xdist worker's id keeps names apart should two workers ever share a server.
        return f"vigil_{self.worker}_{next(self._numbers)}"

    def psql_command(self, sql: str, *, database: str = "postgres") -> None:
        """Run one statement as the superuser (CREATE DATABASE cannot run inside a transaction block)."""
        subprocess.run(
            [
                str(self.socket_dir / "bin" / "psql"),
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(self.socket_dir),
                "-U",
                self.user,
                "-d",
                database,
                "-c",
                sql,
            ],
            check=True,
            capture_output=True,
            timeout=60,
            **_as_owner(self.user),
        )


def _as_owner(user: str) -> dict[str, Any]:
    """``subprocess`` arguments that run a Postgres binary as ``user`` (only needed when we are root).

    Not ``runuser``: the server's own pid must get the stop signal, which runuser does not pass on.
    """
    if os.geteuid() != 0:
        return {}
    owner = pwd.getpwnam(user)
    return {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}


@contextlib.contextmanager
def start_postgres_server(bin_dir: Path) -> Iterator[PostgresServer]:
    running_as_root = os.geteuid() == 0
    user = "postgres" if running_as_root else pwd.getpwuid(os.geteuid()).pw_name
    # Short, under /tmp: a Unix socket path must stay under ~107 bytes, and pytest's tmp folders are 0700.
    base = Path(tempfile.mkdtemp(prefix="vigil-pg-"))
    data = base / "data"
    try:
        # A symlink to the binaries (psql included) under the folder the owner can read.
        (base / "bin").symlink_to(bin_dir)
        if running_as_root:
            owner = pwd.getpwnam(user)
            os.chown(base, owner.pw_uid, owner.pw_gid)
        subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                user,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
            check=True,
            capture_output=True,
            timeout=120,
            **_as_owner(user),
        )
        log = base / "server.log"
        process = subprocess.Popen(
            [
                str(bin_dir / "postgres"),
                "-D",
                str(data),
                "-c",
                "listen_addresses=",
                "-c",
                f"unix_socket_directories={base}",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "shared_buffers=16MB",
                "-c",
                "max_connections=60",
                "-c",
                "logging_collector=off",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log.open("wb"),
            **_as_owner(user),
        )
        try:
            server = PostgresServer(
                socket_dir=base, user=user, worker=os.environ.get("PYTEST_XDIST_WORKER", "main")
            )
            _wait_until_ready(server, process, log)
            server.psql_command(f"CREATE DATABASE {_TEMPLATE}")
            yield server
        finally:
            # SIGINT: the fast shutdown (disconnects clients, no waiting for them).
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _wait_until_ready(server: PostgresServer, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"postgres exited at start: {log.read_text(errors='replace')[-2000:]}")
        try:
            server.psql_command("SELECT 1")
            return
        except subprocess.CalledProcessError:
            time.sleep(0.1)
    raise RuntimeError("postgres did not accept connections in time")


def postgres_server_or_skip() -> Path:
    """The binaries' folder, or skip (fail under CI) with the reason."""
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        if os.environ.get("CI"):
            pytest.fail(
                "no PostgreSQL server binaries: .ci/run installs the OS package postgresql when missing"
            )
        pytest.skip(
            "no PostgreSQL server binaries (initdb, postgres) on this machine (apt-get install postgresql)"
        )
    return bin_dir


@contextlib.contextmanager
def fresh_database(server: PostgresServer) -> Iterator[str]:
    """A new empty database for one test (cloned from the empty template), its DSN; dropped afterwards.

    Synchronous (psql): async fixtures cannot be asked for by name from the async store fixture.
    """
    name = server.new_database_name()
    server.psql_command(f"CREATE DATABASE {name} TEMPLATE {_TEMPLATE}")
    try:
        yield server.dsn(name)
    finally:
        # FORCE: a test that failed with a connection still open must not leave its database behind.
        server.psql_command(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
