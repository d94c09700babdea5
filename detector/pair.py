"""Pair-level risk from per-message scores, at O(1) cost per message.

Each member of a pair keeps a running, exponentially weighted mean of their own messages' risk and a message
count. Risk is attributed to an author: the member whose own messages look like grooming is the suspect; the
other party's messages never raise the suspect's score. A member with few messages is damped towards zero
(``ramp``), so one spiky message cannot make a pair risky on its own.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vigil.detector.types import AuthorRisk, MessageScore


class PairModelConfigError(ValueError):
    """The model metadata's ``pair_model`` section is invalid."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EmaPairModel:
    """``pair_model = {"type": "ema", "alpha": .., "min_messages": ..}`` in a model's metadata."""

    alpha: float
    min_messages: int

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha <= 1.0:
            raise PairModelConfigError(f"pair_model.alpha must be in (0, 1], got {self.alpha!r}")
        if self.min_messages < 1:
            raise PairModelConfigError(f"pair_model.min_messages must be >= 1, got {self.min_messages!r}")

    @classmethod
    def from_metadata(cls, section: Mapping[str, Any]) -> EmaPairModel:
        kind = section.get("type")
        if kind != "ema":
            raise PairModelConfigError(f"unknown pair_model.type {kind!r} (supported: 'ema')")
        try:
            return cls(alpha=float(section["alpha"]), min_messages=int(section["min_messages"]))
        except KeyError as missing:
            raise PairModelConfigError(f"pair_model is missing {missing.args[0]!r}") from None

    def initial_state(self) -> str:
        return "{}"

    def update(self, *, state: str, author_id: str, other_id: str, score: MessageScore) -> str:
        authors = _load(state)
        count, mean = authors.get(author_id, (0, 0.0))
        count += 1
        # Bias-corrected EMA: the first messages weigh as a plain mean, later ones decay with alpha.
        weight = max(self.alpha, 1.0 / count)
        mean += weight * (score.risk - mean)
        authors[author_id] = (count, mean)
        authors.setdefault(other_id, (0, 0.0))
        return json.dumps({k: [c, round(m, 6)] for k, (c, m) in authors.items()}, separators=(",", ":"))

    def author_risks(self, *, state: str) -> tuple[AuthorRisk, ...]:
        risks = [
            AuthorRisk(author_id=author, risk=mean * min(1.0, count / self.min_messages))
            for author, (count, mean) in _load(state).items()
        ]
        return tuple(sorted(risks, key=lambda r: (-r.risk, r.author_id)))


def _load(state: str) -> dict[str, tuple[int, float]]:
    raw = json.loads(state) if state else {}
    out: dict[str, tuple[int, float]] = {}
    for author, value in raw.items():
        count, mean = int(value[0]), float(value[1])
        if count < 0 or not math.isfinite(mean):
            raise ValueError("corrupt pair model state")
        out[str(author)] = (count, mean)
    return out
