"""Grooming-risk detector: text in, scores out. Knows nothing about chat platforms."""

from __future__ import annotations

from vigil.bots.core.ports import AuthorRisk, Detector, MessageScore, ModelInfo, PairModel
from vigil.detector.batching import Batcher, BatcherClosedError, BatchResultMismatchError
from vigil.detector.golden import GoldenCheck, GoldenFileError, RuntimeVersions
from vigil.detector.onnx_detector import (
    ModelLoadError,
    ModelOutputError,
    OnnxDetector,
    RuntimeCheck,
    RuntimeDriftError,
    load_default_model_dir,
    read_model_info,
    resolve_model_dir,
    write_golden,
)
from vigil.detector.pair import (
    FLATTENED_OWN,
    EmaPairModel,
    GruPairModel,
    PairModelConfigError,
    PairModelOutputError,
)

__all__ = [
    "FLATTENED_OWN",
    "AuthorRisk",
    "BatchResultMismatchError",
    "Batcher",
    "BatcherClosedError",
    "Detector",
    "EmaPairModel",
    "GoldenCheck",
    "GoldenFileError",
    "GruPairModel",
    "MessageScore",
    "ModelInfo",
    "ModelLoadError",
    "ModelOutputError",
    "OnnxDetector",
    "PairModel",
    "PairModelConfigError",
    "PairModelOutputError",
    "RuntimeCheck",
    "RuntimeDriftError",
    "RuntimeVersions",
    "load_default_model_dir",
    "read_model_info",
    "resolve_model_dir",
    "write_golden",
]
