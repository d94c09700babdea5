"""Async storage: the ``Store`` contract and its SQLite implementation."""

from __future__ import annotations

from storage.protocol import SchemaTooNewError, Store, StoreError
from storage.sqlite import SqliteStore

__all__ = ["SchemaTooNewError", "SqliteStore", "Store", "StoreError"]
