"""Pair-level risk from per-message scores, at O(1) cost per message.

Two pair models, chosen by the model directory's ``metadata.json`` key ``pair_model``:

* ``gru`` (``GruPairModel``): a small learned recurrent model (``pair_model.onnx``). Each member keeps a
  hidden state that every message of the pair advances (their own messages and the other member's, told
  apart by an ``own`` flag), and a risk that only their own messages set.
* ``ema`` (``EmaPairModel``, older models): each member keeps a running, exponentially weighted mean of their
  own messages' risk and a message count; a member with few messages is damped towards zero (``ramp``), so
  one spiky message cannot make a pair risky on its own.

In both, risk is attributed to an author: the member whose own messages look like grooming is the suspect;
the other party's messages never set the suspect's score.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from vigil.bots.core.ports import AuthorRisk, MessageScore

logger = logging.getLogger(__name__)

# The GRU pair model's state format; a state in another format (the EMA model's) starts afresh.
GRU_STATE_VERSION = 1
GRU_OUTPUTS = ("risk_logit", "next_state")
_FLOAT_TENSOR = "tensor(float)"
# ``own`` for a chunk of flattened text (a segment): words of either member, credited to one. The pair model
# is trained on such chunks with this value (training.pair_head), so it reads them apart from chat messages.
FLATTENED_OWN = 0.5
# Enough of the file's sha256 to tell two pair models apart in a stored state.
_FINGERPRINT_CHARS = 12

Float32Array = npt.NDArray[np.float32]


class PairModelConfigError(ValueError):
    """The model metadata's ``pair_model`` section, or the pair model file it names, is invalid."""


class PairModelOutputError(RuntimeError):
    """The pair model's graph returned outputs of the wrong shape or non-finite values."""


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
            raise PairModelConfigError(f"unknown pair_model.type {kind!r} (supported: 'ema', 'gru')")
        try:
            return cls(alpha=float(section["alpha"]), min_messages=int(section["min_messages"]))
        except KeyError as missing:
            raise PairModelConfigError(f"pair_model is missing {missing.args[0]!r}") from None

    def initial_state(self) -> str:
        return "{}"

    def update(
        self, *, state: str, author_id: str, other_id: str, score: MessageScore, speaker_known: bool = True
    ) -> str:
        del speaker_known  # a running mean of risks has no notion of who wrote what
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
    if not isinstance(raw, dict):
        raise ValueError("corrupt pair model state")
    if _is_versioned(raw):
        # Written by a newer pair model (the GRU's) before this model directory was put back: its hidden
        # states mean nothing here, so the pair starts afresh rather than failing every message.
        return {}
    out: dict[str, tuple[int, float]] = {}
    for author, value in raw.items():
        try:
            count, mean = int(value[0]), float(value[1])
        except (TypeError, IndexError, KeyError, ValueError):
            raise ValueError("corrupt pair model state") from None
        if count < 0 or not math.isfinite(mean):
            raise ValueError("corrupt pair model state")
        out[str(author)] = (count, mean)
    return out


def _is_versioned(raw: Mapping[str, Any]) -> bool:
    """A ``{"v": <int>, ...}`` state (GRU); an EMA state maps author ids, even one named "v", to lists."""
    version = raw.get("v")
    return isinstance(version, int) and not isinstance(version, bool)


@dataclass(frozen=True, slots=True)
class _Member:
    """One member in a GRU pair state: hidden state, own-message count, current risk."""

    hidden: Float32Array
    count: int
    risk: float


@dataclass(frozen=True, slots=True, kw_only=True)
class GruPairModel:
    """``pair_model = {"type": "gru", "file", "state_size", "feature_size", "embedding_output"}``.

    ``session`` runs one GRU step for a batch of rows: inputs ``features`` float32 [N, feature_size] (the
    message's embedding, signal logits and risk logit, ``MessageScore.features``), ``own`` float32 [N, 1]
    (1 for the member who wrote the message, 0 for the other, ``FLATTENED_OWN`` for a chunk of flattened text
    credited to the member) and ``state`` float32 [N, state_size];
    outputs ``risk_logit`` float32 [N] and ``next_state`` float32 [N, state_size]. Create it with ``load``.

    The stored state is ``{"v": 1, "k": <model fingerprint>, "m": {member: [own messages, risk,
    base64 of the float32 little-endian hidden state]}}``: about 400 bytes per member at state size 64.
    """

    session: ort.InferenceSession
    state_size: int
    feature_size: int
    # The pair model file's sha256 prefix: a state written by another pair model (a model upgrade) starts
    # afresh instead of feeding this one hidden states it was never trained on.
    fingerprint: str

    @classmethod
    def load(cls, path: Path, *, state_size: int, feature_size: int) -> GruPairModel:
        """Open ``path`` and check its graph against the contract; raises ``PairModelConfigError``."""
        if state_size < 1 or feature_size < 1:
            raise PairModelConfigError("state_size and feature_size must be >= 1")
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            raise PairModelConfigError(f"{path} cannot be read: {error}") from error
        options = ort.SessionOptions()
        # Tiny graph, run inline in the monitor for every message: threads would cost more than they save.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            session = ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as error:
            raise PairModelConfigError(f"{path} is not a loadable ONNX model: {error}") from error
        _check_gru_graph(session, path=path, state_size=state_size, feature_size=feature_size)
        return cls(
            session=session,
            state_size=state_size,
            feature_size=feature_size,
            fingerprint=hashlib.sha256(data).hexdigest()[:_FINGERPRINT_CHARS],
        )

    def initial_state(self) -> str:
        return "{}"

    def update(
        self, *, state: str, author_id: str, other_id: str, score: MessageScore, speaker_known: bool = True
    ) -> str:
        if author_id == other_id:
            raise ValueError("author_id and other_id must be two different members")
        features = self._features_of(score)
        members = self._load(state)
        empty = _Member(hidden=np.zeros(self.state_size, dtype=np.float32), count=0, risk=0.0)
        author = members.get(author_id, empty)
        other = members.get(other_id, empty)
        # One step for both members: the author's row sees own=1 (FLATTENED_OWN for flattened text), the other
        # member's own=0.
        own = 1.0 if speaker_known else FLATTENED_OWN
        feed = {
            "features": np.stack([features, features]),
            "own": np.array([[own], [0.0]], dtype=np.float32),
            "state": np.stack([author.hidden, other.hidden]),
        }
        risk_logit, next_state = self.session.run(list(GRU_OUTPUTS), feed)
        risk_logit = np.asarray(risk_logit)
        next_state = np.asarray(next_state, dtype=np.float32)
        if risk_logit.shape != (2,) or next_state.shape != (2, self.state_size):
            raise PairModelOutputError(
                f"pair model returned risk_logit {list(risk_logit.shape)} and next_state "
                f"{list(next_state.shape)}; expected [2] and [2, {self.state_size}]"
            )
        if not (np.isfinite(risk_logit).all() and np.isfinite(next_state).all()):
            raise PairModelOutputError("pair model returned a non-finite risk logit or state")
        # Only the author's risk moves: the other member's messages inform their state, never their risk.
        members[author_id] = _Member(
            hidden=next_state[0], count=author.count + 1, risk=sigmoid(float(risk_logit[0]))
        )
        members[other_id] = _Member(hidden=next_state[1], count=other.count, risk=other.risk)
        return self._dump(members)

    def author_risks(self, *, state: str) -> tuple[AuthorRisk, ...]:
        risks = [
            AuthorRisk(author_id=author, risk=member.risk) for author, member in self._load(state).items()
        ]
        return tuple(sorted(risks, key=lambda r: (-r.risk, r.author_id)))

    def _features_of(self, score: MessageScore) -> Float32Array:
        if score.features is None:
            raise ValueError(
                "the GRU pair model needs MessageScore.features (embedding, signal logits and risk logit); "
                "this score has none: score with the detector of the same model directory"
            )
        features = np.asarray(score.features, dtype=np.float32)
        if features.shape != (self.feature_size,):
            raise ValueError(
                f"MessageScore.features has shape {list(features.shape)}; the pair model takes "
                f"[{self.feature_size}]"
            )
        return features

    def _dump(self, members: Mapping[str, _Member]) -> str:
        encoded = {
            author: [
                member.count,
                member.risk,
                base64.b64encode(member.hidden.astype("<f4").tobytes()).decode(),
            ]
            for author, member in members.items()
        }
        return json.dumps(
            {"v": GRU_STATE_VERSION, "k": self.fingerprint, "m": encoded}, separators=(",", ":")
        )

    def _load(self, state: str) -> dict[str, _Member]:
        raw = json.loads(state) if state else {}
        if not isinstance(raw, dict):
            raise ValueError("corrupt pair model state: not a JSON object")
        if not _is_versioned(raw):
            # "{}" is every model's initial state; anything else here was written by the EMA model of an
            # older model directory, whose means cannot seed a hidden state: the pair starts afresh.
            if not all(isinstance(value, list) and len(value) == 2 for value in raw.values()):
                raise ValueError("corrupt pair model state: neither the GRU's nor the EMA's format")
            return {}
        if raw["v"] != GRU_STATE_VERSION:
            raise ValueError(f"pair model state has version {raw['v']}; this Vigil reads {GRU_STATE_VERSION}")
        if raw.get("k") != self.fingerprint:
            logger.debug("pair state written by another pair model; starting it afresh")
            return {}
        entries = raw.get("m")
        if not isinstance(entries, dict):
            raise ValueError("corrupt pair model state: no member map")
        members: dict[str, _Member] = {}
        for author, value in entries.items():
            members[str(author)] = self._member(value)
        return members

    def _member(self, value: Any) -> _Member:
        if not (isinstance(value, list) and len(value) == 3):
            raise ValueError("corrupt pair model state: a member is not [count, risk, hidden]")
        count, risk, encoded = value
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError("corrupt pair model state: bad message count")
        if isinstance(risk, bool) or not isinstance(risk, int | float) or not 0.0 <= risk <= 1.0:
            raise ValueError("corrupt pair model state: risk is not a probability")
        if not isinstance(encoded, str):
            raise ValueError("corrupt pair model state: hidden state is not a string")
        try:
            data = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise ValueError("corrupt pair model state: hidden state is not base64") from None
        if len(data) != 4 * self.state_size:
            raise ValueError(
                f"corrupt pair model state: hidden state has {len(data)} bytes, "
                f"expected {4 * self.state_size}"
            )
        hidden = np.frombuffer(data, dtype="<f4").astype(np.float32)
        if not np.isfinite(hidden).all():
            raise ValueError("corrupt pair model state: non-finite hidden state")
        return _Member(hidden=hidden, count=count, risk=float(risk))


def _check_gru_graph(
    session: ort.InferenceSession, *, path: Path, state_size: int, feature_size: int
) -> None:
    """The graph takes ``features``, ``own``, ``state`` and gives ``risk_logit``, ``next_state`` (float32)."""
    expected_inputs: dict[str, tuple[int, ...]] = {
        "features": (feature_size,),
        "own": (1,),
        "state": (state_size,),
    }
    expected_outputs: dict[str, tuple[int, ...]] = {"risk_logit": (), "next_state": (state_size,)}
    for kind, declared, expected in (
        ("inputs", session.get_inputs(), expected_inputs),
        ("outputs", session.get_outputs(), expected_outputs),
    ):
        names = sorted(item.name for item in declared)
        if names != sorted(expected):
            raise PairModelConfigError(f"{path} has {kind} {names}; a GRU pair model has {sorted(expected)}")
        for item in declared:
            tail = expected[item.name]
            wanted = ["N", *tail]
            if item.type != _FLOAT_TENSOR:
                raise PairModelConfigError(f"{path}: {item.name!r} is {item.type}; expected {_FLOAT_TENSOR}")
            shape = list(item.shape or [])
            if not shape:
                continue  # no shape declared (unknown rank): the trial run at load time checks it
            # The batch dimension must be symbolic; the others must match where declared as numbers.
            if len(shape) != len(wanted) or any(
                isinstance(got, int) and got != want for got, want in zip(shape[1:], tail, strict=True)
            ):
                raise PairModelConfigError(
                    f"{path}: {item.name!r} has shape {shape}; expected {wanted} (metadata.json "
                    f"pair_model.feature_size {feature_size}, state_size {state_size})"
                )
            if isinstance(shape[0], int) and shape[0] != -1:
                raise PairModelConfigError(
                    f"{path}: {item.name!r} has a fixed batch dimension {shape[0]}; it must be dynamic"
                )


def sigmoid(logit: float) -> float:
    """The probability of a logit, without overflow for logits far from zero (confident outputs)."""
    # exp(-log(1 + e^-x)) never overflows, unlike 1 / (1 + e^-x) for large negative x.
    return math.exp(-float(np.logaddexp(0.0, -logit)))
