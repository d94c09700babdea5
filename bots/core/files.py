"""Files that hold message text: created owner-only (0600, folders 0700) whatever the process umask.

The database, its ``-wal``/``-shm`` files, evidence packs and scan reports quote chat messages, so no other
account on the machine may read them. A umask can only take permissions away, and a permissive one (0022,
the usual default) leaves new files world-readable, so every file and folder is created with an explicit
mode and then ``chmod``-ed to it exactly.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

__all__ = [
    "PRIVATE_DIR_MODE",
    "PRIVATE_FILE_MODE",
    "create_private_file",
    "make_private_dirs",
    "replace_private_file",
    "tighten_private_file",
    "write_private_file",
]

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
# Group and other permissions: what "tightening" a file removes.
_SHARED_BITS = 0o077


def make_private_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents, each 0700. Folders that already exist keep their mode."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:
            # Someone else created it first; it is theirs, and keeps its mode.
            continue
        os.chmod(folder, PRIVATE_DIR_MODE)


def create_private_file(path: Path) -> bool:
    """Create ``path`` empty with mode 0600 unless it exists; True when this call created it."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return False
    try:
        os.fchmod(descriptor, PRIVATE_FILE_MODE)
    finally:
        os.close(descriptor)
    return True


def tighten_private_file(path: Path) -> int | None:
    """Remove group and other permissions from a regular file; returns its old mode when it had any.

    None when the file is missing, is not a regular file, or was already owner-only. ``OSError`` (for
    instance ``PermissionError`` on a file another account owns) propagates.
    """
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    mode = stat.S_IMODE(status.st_mode)
    if not stat.S_ISREG(status.st_mode) or not mode & _SHARED_BITS:
        return None
    os.chmod(path, mode & ~_SHARED_BITS)
    return mode


def write_private_file(path: Path, content: bytes, *, durable: bool = False) -> None:
    """Create ``path`` (it must not exist) with mode 0600 and write ``content``; fsync it when ``durable``."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    with os.fdopen(descriptor, "wb") as file:
        os.fchmod(file.fileno(), PRIVATE_FILE_MODE)
        file.write(content)
        file.flush()
        if durable:
            os.fsync(file.fileno())


def replace_private_file(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` atomically with mode 0600, replacing any file there (and its mode)."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            os.fchmod(file.fileno(), PRIVATE_FILE_MODE)
            file.write(content)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
