"""Settings schema (TOML + environment) and the example configuration."""

from __future__ import annotations

__all__: list[str] = []
