"""The platform-neutral core, the Discord, Slack and HTTP adapters and the CLI (installed as vigil.bots)."""

from __future__ import annotations

__all__: list[str] = []
