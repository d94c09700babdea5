"""The detector's contract: text in, scores out. Knows nothing about chat platforms."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageScore:
    """Scores for one (normalised) message text.

    ``risk`` is the probability that the message is written by an adult grooming a minor.
    ``signals`` are probabilities aligned with ``ModelInfo.signals`` (e.g. ``asks_age``).
    ``features`` is what a learned pair model reads (read-only float32: the message embedding, the signal
    logits, the risk logit); set only when the model directory's pair model needs it, else None.
    """

    risk: float
    signals: tuple[float, ...]
    features: npt.NDArray[np.float32] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelInfo:
    """What a model directory's metadata says about the model."""

    name: str
    version: str
    max_length: int
    default_threshold: float
    signals: tuple[str, ...]
    # Human-readable label per signal name, for alerts ("asks the other person's age").
    signal_labels: tuple[str, ...]
    signal_threshold: float

    def signal_words(self) -> dict[str, str]:
        """Each signal's name mapped to its plain words, as alerts, cases and evidence packs show them."""
        return dict(zip(self.signals, self.signal_labels, strict=True))


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorRisk:
    """The pair model's view of one member of a pair after a message."""

    author_id: str
    risk: float


class PairModel(Protocol):
    """Turns per-message scores into a pair's risk, at O(1) cost per message.

    ``state`` is an opaque JSON string the caller stores with the pair and hands back next time.
    ``speaker_known=False`` marks a chunk of flattened text (a segment without speaker boundaries): it is
    credited to ``author_id``, but may hold the other member's words too.
    """

    def initial_state(self) -> str: ...

    def update(
        self, *, state: str, author_id: str, other_id: str, score: MessageScore, speaker_known: bool = True
    ) -> str: ...

    def author_risks(self, *, state: str) -> tuple[AuthorRisk, ...]: ...


class Detector(Protocol):
    """Scores message texts. Implementations batch concurrent calls; order of results matches ``texts``."""

    @property
    def info(self) -> ModelInfo: ...

    @property
    def pair_model(self) -> PairModel: ...

    async def score(self, texts: Sequence[str]) -> list[MessageScore]: ...

    async def aclose(self) -> None: ...
