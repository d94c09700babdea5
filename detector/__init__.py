"""Grooming-risk detector: text in, scores out. Knows nothing about chat platforms."""

from __future__ import annotations

from detector.pair import EmaPairModel, PairModelConfigError
from detector.types import AuthorRisk, Detector, MessageScore, ModelInfo, PairModel

__all__ = ["AuthorRisk", "Detector", "EmaPairModel", "MessageScore", "ModelInfo", "PairModel", "PairModelConfigError"]
