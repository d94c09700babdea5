"""Vigil: flags likely child-grooming conversations for human moderators. Run as ``python -m bots``."""

from __future__ import annotations

__all__: list[str] = []
