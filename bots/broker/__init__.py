"""Scale-out: a message broker between the platforms' gateways and the scoring workers (docs/scale.md)."""

from __future__ import annotations
