"""Async storage: the ``Store`` contract and its SQLite implementation."""

from __future__ import annotations

from storage.crypto import TextCipher
from storage.protocol import CaseRecord, SchemaTooNewError, Store, StoreError, UserErasure
from storage.sqlite import SqliteStore

__all__ = [
    "CaseRecord",
    "SchemaTooNewError",
    "SqliteStore",
    "Store",
    "StoreError",
    "TextCipher",
    "UserErasure",
]
