"""Async storage: implementations of the core's store ports (``vigil.bots.core.ports``)."""

from __future__ import annotations

from vigil.storage.crypto import TextCipher
from vigil.storage.memory import InMemoryStore
from vigil.storage.sqlite import SqliteStore

__all__ = ["InMemoryStore", "SqliteStore", "TextCipher"]
