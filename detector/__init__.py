"""Grooming-risk detector: text in, scores out. Knows nothing about chat platforms."""

from __future__ import annotations

from vigil.detector.batching import Batcher, BatcherClosedError, BatchResultMismatchError
from vigil.detector.onnx_detector import (
    ModelLoadError,
    ModelOutputError,
    OnnxDetector,
    load_default_model_dir,
)
from vigil.detector.pair import EmaPairModel, PairModelConfigError
from vigil.detector.types import AuthorRisk, Detector, MessageScore, ModelInfo, PairModel

__all__ = [
    "AuthorRisk",
    "BatchResultMismatchError",
    "Batcher",
    "BatcherClosedError",
    "Detector",
    "EmaPairModel",
    "MessageScore",
    "ModelInfo",
    "ModelLoadError",
    "ModelOutputError",
    "OnnxDetector",
    "PairModel",
    "PairModelConfigError",
    "load_default_model_dir",
]
