"""Async storage: the ``Store`` contract and its SQLite implementation."""

from __future__ import annotations

from storage.protocol import SchemaTooNewError, Store, StoreError

__all__ = ["SchemaTooNewError", "Store", "StoreError"]
