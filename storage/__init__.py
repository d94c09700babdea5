"""Async storage: the ``Store`` contract and its SQLite implementation."""

from __future__ import annotations

from vigil.storage.crypto import TextCipher
from vigil.storage.protocol import CaseRecord, SchemaTooNewError, Store, StoreError, UserErasure
from vigil.storage.sqlite import SqliteStore

__all__ = [
    "CaseRecord",
    "SchemaTooNewError",
    "SqliteStore",
    "Store",
    "StoreError",
    "TextCipher",
    "UserErasure",
]
