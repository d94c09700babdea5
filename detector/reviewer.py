"""The alert reviewer: a second reading of a pair's recent messages, together, before an alert is raised.

The pair model reads one message at a time and keeps a small state; it cannot look back at what was said
and weigh it again once the conversation has moved on ("dont tell mom" from a sister, "did u finish the
maths hw" from a classmate). The reviewer is a fine-tuned sentence encoder over the pair's last
``window_messages`` messages, each marked as the reviewed member's ("me:") or the other's ("them:"), newest
kept when they do not all fit ``max_length`` tokens. It runs only when the alert policy is about to raise an
alert (a handful of times per alerting pair), reads the window Vigil stores anyway, keeps nothing, and can
only hold an alert back: ``bots.core.monitor`` owns the rule.

A model directory ships one with a ``reviewer`` section in ``metadata.json``::

    "reviewer": {"file": "reviewer.onnx", "threshold": 0.5, "max_length": 128, "window_messages": 24,
                 "message_tokens": 40, "own_prefix": "me:", "other_prefix": "them:",
                 "golden": [{"lines": [[true, "hi"], [false, "hey"]], "probability": 0.01}]}

The graph takes ``input_ids`` and ``attention_mask`` (int64, [batch, tokens]) and gives ``logit`` [batch].
``training.reviewer`` trains and exports it, through :func:`encode_window`, the one rule for both.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from vigil.bots.core.ports import ReviewLine

__all__ = ["GOLDEN_TOLERANCE", "OnnxReviewer", "ReviewerConfigError", "ReviewerSpec", "encode_window"]

logger = logging.getLogger(__name__)

# How far this runtime's probability for a golden window may be from the one recorded at export.
GOLDEN_TOLERANCE = 0.03


class ReviewerConfigError(ValueError):
    """The ``reviewer`` section of a model's metadata, or its files, cannot be used."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewerSpec:
    file: str
    threshold: float
    max_length: int
    window_messages: int
    message_tokens: int
    own_prefix: str
    other_prefix: str
    golden: tuple[tuple[tuple[ReviewLine, ...], float], ...] = ()

    @classmethod
    def parse(cls, section: Mapping[str, Any]) -> ReviewerSpec:
        known = {
            "file", "threshold", "max_length", "window_messages", "message_tokens", "own_prefix",
            "other_prefix", "golden", "source", "training", "validation", "sha256", "pooling", "rule",
        }  # fmt: skip
        unknown = sorted(set(section) - known)
        if unknown:
            raise ReviewerConfigError(f"unknown keys {unknown}")
        try:
            spec = cls(
                file=str(section["file"]),
                threshold=float(section["threshold"]),
                max_length=int(section["max_length"]),
                window_messages=int(section["window_messages"]),
                message_tokens=int(section.get("message_tokens", 40)),
                own_prefix=str(section.get("own_prefix", "me:")),
                other_prefix=str(section.get("other_prefix", "them:")),
                golden=tuple(
                    (
                        tuple(ReviewLine(own=bool(own), text=str(text)) for own, text in item["lines"]),
                        float(item["probability"]),
                    )
                    for item in section.get("golden", ())
                ),
            )
        except KeyError as error:
            raise ReviewerConfigError(f"missing key {error}") from error
        except (TypeError, ValueError) as error:
            raise ReviewerConfigError(str(error)) from error
        if not 0.0 < spec.threshold < 1.0:
            raise ReviewerConfigError(f"threshold must be in (0, 1), got {spec.threshold}")
        if spec.max_length < 8 or spec.window_messages < 1 or spec.message_tokens < 1:
            raise ReviewerConfigError("max_length must be >= 8, window_messages and message_tokens >= 1")
        return spec


def encode_window(
    lines: Sequence[ReviewLine],
    *,
    tokenizer: Tokenizer,
    max_length: int,
    message_tokens: int,
    own_prefix: str,
    other_prefix: str,
) -> list[int]:
    """Token ids of a window: [CLS], then each message as its prefix and at most ``message_tokens`` of its
    tokens, oldest first, then [SEP]. Messages are taken from the newest back while they fit whole, so the
    message that would raise the alert is always read."""
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    if cls_id is None or sep_id is None:
        raise ReviewerConfigError("the tokenizer has no [CLS] or [SEP] token")
    prefixes = {
        True: tokenizer.encode(own_prefix, add_special_tokens=False).ids,
        False: tokenizer.encode(other_prefix, add_special_tokens=False).ids,
    }
    encoded = tokenizer.encode_batch([line.text for line in lines], add_special_tokens=False)
    ids: list[int] = []
    for line, encoding in zip(reversed(lines), reversed(encoded), strict=True):
        message = prefixes[line.own] + encoding.ids[:message_tokens]
        if len(ids) + len(message) > max_length - 2:
            break
        ids = message + ids
    return [cls_id, *ids, sep_id]


class OnnxReviewer:
    """``AlertReviewer`` backed by ONNX Runtime. Build it with :meth:`load`; ``review`` runs off the loop."""

    __slots__ = ("_session", "_spec", "_tokenizer")

    def __init__(self, *, session: ort.InferenceSession, tokenizer: Tokenizer, spec: ReviewerSpec) -> None:
        self._session = session
        self._tokenizer = tokenizer
        self._spec = spec

    @classmethod
    def load(
        cls, *, model_dir: Path, tokenizer_file: Path, section: Mapping[str, Any], threads: int = 1
    ) -> OnnxReviewer:
        """Open and check the reviewer a ``reviewer`` metadata section names (blocking; call off the loop).

        Raises ``ReviewerConfigError`` for a bad section, a missing or unloadable file, a graph without the
        expected inputs and output, or golden windows this runtime scores beyond ``GOLDEN_TOLERANCE``."""
        spec = ReviewerSpec.parse(section)
        path = model_dir / spec.file
        if not path.is_file():
            raise ReviewerConfigError(f"no reviewer file {path}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:
            raise ReviewerConfigError(f"{path} is not a loadable ONNX model: {error}") from error
        inputs = {node.name for node in session.get_inputs()}
        outputs = {node.name for node in session.get_outputs()}
        if inputs != {"input_ids", "attention_mask"} or "logit" not in outputs:
            raise ReviewerConfigError(
                f"{path}: expected inputs input_ids, attention_mask and output logit; "
                f"got inputs {sorted(inputs)}, outputs {sorted(outputs)}"
            )
        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        tokenizer.no_padding()
        tokenizer.no_truncation()
        reviewer = cls(session=session, tokenizer=tokenizer, spec=spec)
        try:
            reviewer.probability(())
        except Exception as error:
            raise ReviewerConfigError(f"{path} failed a trial run on an empty window: {error}") from error
        for lines, expected in spec.golden:
            got = reviewer.probability(lines)
            if abs(got - expected) > GOLDEN_TOLERANCE:
                raise ReviewerConfigError(
                    f"{path}: this runtime reads a golden window as {got:.4f}, the export recorded "
                    f"{expected:.4f} (tolerance {GOLDEN_TOLERANCE})"
                )
        return reviewer

    @property
    def threshold(self) -> float:
        return self._spec.threshold

    @property
    def window_messages(self) -> int:
        return self._spec.window_messages

    @property
    def spec(self) -> ReviewerSpec:
        return self._spec

    def encode(self, lines: Sequence[ReviewLine]) -> list[int]:
        spec = self._spec
        return encode_window(
            lines,
            tokenizer=self._tokenizer,
            max_length=spec.max_length,
            message_tokens=spec.message_tokens,
            own_prefix=spec.own_prefix,
            other_prefix=spec.other_prefix,
        )

    def probability(self, lines: Sequence[ReviewLine]) -> float:
        """P(grooming) of the member under review (blocking)."""
        ids = np.asarray([self.encode(lines[-self._spec.window_messages :])], dtype=np.int64)
        (logit,) = self._session.run(["logit"], {"input_ids": ids, "attention_mask": np.ones_like(ids)})
        value = float(np.asarray(logit).reshape(-1)[0])
        if not math.isfinite(value):
            raise ValueError(f"the reviewer gave a non-finite logit ({value})")
        return 1.0 / (1.0 + math.exp(-value)) if value >= 0 else math.exp(value) / (1.0 + math.exp(value))

    async def review(self, lines: Sequence[ReviewLine]) -> float:
        return await asyncio.to_thread(self.probability, tuple(lines))
