"""The ONNX Runtime detector: a model directory in, batched message scores out.

A model directory holds ``model.onnx``, ``tokenizer.json`` (Hugging Face ``tokenizers``) and
``metadata.json``, and should hold ``golden.json`` (see ``golden``). A learned (``gru``) pair model adds its
own graph, named by ``metadata.json`` ``pair_model.file``. Everything about the directory is checked
at load time, including one trial run and the golden scores, so a bad model, or a runtime that no longer
computes the scores the model was calibrated on, fails at startup with a message naming the file and the key
rather than moving alert decisions silently.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from tokenizers import Encoding, Tokenizer

from vigil.bots.core.ports import MessageScore, ModelInfo, PairModel
from vigil.detector.batching import Batcher
from vigil.detector.cues import TextCues, UnknownCuesError, text_cues
from vigil.detector.golden import (
    DEFAULT_TOLERANCE,
    GOLDEN_FILE,
    GoldenCheck,
    GoldenFileError,
    GoldenSet,
    compare_golden,
    file_sha256,
    make_golden,
    read_golden,
    write_golden_file,
)
from vigil.detector.pair import EmaPairModel, GruPairModel, PairModelConfigError
from vigil.detector.reviewer import OnnxReviewer, ReviewerConfigError

logger = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
METADATA_FILE = "metadata.json"
METADATA_FORMAT = 1
FEEDABLE_INPUTS = ("input_ids", "attention_mask", "token_type_ids")

# Text beyond this many characters per token of max_length cannot reach the model (a WordPiece token covers
# at most 100 characters), so cut it before tokenising: a 100 kB message then costs what a short one does.
_MAX_CHARS_PER_TOKEN = 100
# Length-sorted sub-batches: start a new one when padding would exceed this share of the real tokens...
# Padding costs compute, but so do small sub-batches (their matrix products run less efficiently): on IRC chat
# in batches of 256, 1.15 and 8 rows kept the path nearest the raw limit on the AMD EPYC machine, where the
# old 1.05 and 4 cut batches into ~6-row sub-batches (docs/performance.md, "Larger batches").
_MAX_PADDING_RATIO = 1.15
# ...but only once the current one has this many rows, so session.run's fixed cost stays amortised.
_MIN_SUB_BATCH = 8

Int64Array = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.floating[Any]]


class ModelLoadError(Exception):
    """A model directory cannot be used; the message names the file (and key) at fault."""


class ModelOutputError(RuntimeError):
    """The ONNX graph returned outputs of a shape the metadata does not describe."""


class RuntimeDriftError(ModelLoadError):
    """This onnxruntime (or tokenizers, or CPU) scores the golden inputs unlike the one that made them.

    ``check`` holds the figures: the versions on both sides and the largest difference.
    """

    def __init__(self, message: str, *, check: GoldenCheck) -> None:
        super().__init__(message)
        self.check = check


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeCheck:
    """What the load-time golden check found.

    ``status``: ``ok`` (within tolerance), ``drift_accepted`` (beyond it, loaded because
    ``accept_runtime_drift`` was set), ``unchecked`` (the directory has no ``golden.json``), ``skipped``
    (the caller asked for no check, e.g. to write a new ``golden.json``).
    """

    status: Literal["ok", "drift_accepted", "unchecked", "skipped"]
    check: GoldenCheck | None = None

    def describe(self) -> str:
        if self.check is None:
            if self.status == "skipped":
                return "golden check: skipped"
            return f"golden check: not possible, the model directory has no {GOLDEN_FILE}"
        check = self.check
        figures = (
            f"max diff {check.max_diff:.4f} over {len(check.golden.cases)} inputs, "
            f"tolerance {check.golden.tolerance:g}"
        )
        if self.status == "ok":
            return f"golden check: ok ({figures})"
        return (
            "golden check: DRIFT beyond the tolerance, accepted by [detector] accept_runtime_drift "
            f"({figures}; {check.largest.describe()})"
        )


def load_default_model_dir() -> Path:
    """The model directory shipped inside the installed ``vigil.detector`` package."""
    return Path(str(files("vigil.detector").joinpath("model")))


def resolve_model_dir(configured: str | None) -> Path:
    """``[detector] model_dir`` when set, else the shipped model."""
    return Path(configured) if configured else load_default_model_dir()


def read_model_info(model_dir: Path) -> ModelInfo:
    """A model's name, version and signal labels from its ``metadata.json`` alone, with no ONNX session: for
    commands that show cases in plain words without scoring anything."""
    path = model_dir / METADATA_FILE
    return _parse_metadata(_read_json_object(path), path=path).info


@dataclass(frozen=True, slots=True, kw_only=True)
class _GruPairSpec:
    """``pair_model`` of type ``gru`` as metadata.json states it; ``_load_pair_model`` opens the graph."""

    file: str
    state_size: int
    feature_size: int
    embedding_output: str
    # feature_size less the signal logits and the risk logit: the width of model.onnx's embedding output.
    embedding_size: int
    # The signal logits the pair model was trained on, where they are not the explanations' (metadata
    # pair_model.signals_output): explanation heads can then improve without retraining the pair model.
    signals_output: str | None = None
    # metadata pair_model.explanation_signals: the explanations' signal logits (outputs.signals) follow the
    # risk logit in the features, so pair model members can read both generations of signal heads.
    explanation_signals: bool = False
    # metadata pair_model.text_cues: cues read from the text itself close the features (vigil.detector.cues).
    text_cues: TextCues | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class _ModelSpec:
    """What the detector needs from ``metadata.json``, validated."""

    info: ModelInfo
    risk_output: str
    signals_output: str
    pair_model: EmaPairModel | _GruPairSpec

    @property
    def gru(self) -> _GruPairSpec | None:
        return self.pair_model if isinstance(self.pair_model, _GruPairSpec) else None


@dataclass(frozen=True, slots=True, kw_only=True)
class _OnnxScorer:
    """The blocking half: tokeniser and session. Called from one worker thread, one batch at a time."""

    session: ort.InferenceSession
    tokenizer: Tokenizer
    input_names: frozenset[str]
    risk_output: str
    signals_output: str
    signal_count: int
    max_chars: int
    pad_id: int
    pad_type_id: int
    # Set when the pair model reads MessageScore.features: fetched in the same session.run.
    embedding_output: str | None = None
    embedding_size: int = 0
    # The pair model's own signal logits, when they are not signals_output's.
    pair_signals_output: str | None = None
    # The explanations' signal logits appended to the features (after the risk logit).
    explanation_signals: bool = False
    # The age cues of the text appended last (metadata pair_model.text_cues).
    text_cues: TextCues | None = None

    def score_alone(self, text: str) -> MessageScore:
        """One text in a batch of its own: no batch-mates and no padding, so the same result every time."""
        return self.score_batch([text])[0]

    def score_batch(self, texts: Sequence[str]) -> list[MessageScore]:
        cut = [text[: self.max_chars] for text in texts]
        encodings = self.tokenizer.encode_batch(cut)
        # Sorting by length lets each sub-batch pad to a width close to its rows' own lengths.
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        scores: dict[int, MessageScore] = {}
        for group in _length_groups([len(encodings[i].ids) for i in order]):
            rows = [order[position] for position in group]
            batch = self._run([encodings[i] for i in rows], [cut[i] for i in rows])
            for row, score in zip(rows, batch, strict=True):
                scores[row] = score
        return [scores[i] for i in range(len(texts))]

    def _run(self, encodings: Sequence[Encoding], texts: Sequence[str]) -> list[MessageScore]:
        batch_size = len(encodings)
        # At least one column: a batch of empty texts from a tokenizer without special tokens has none.
        width = max(1, *(len(encoding.ids) for encoding in encodings))
        input_ids = np.full((batch_size, width), self.pad_id, dtype=np.int64)
        attention_mask = np.zeros((batch_size, width), dtype=np.int64)
        token_type_ids = np.full((batch_size, width), self.pad_type_id, dtype=np.int64)
        for row, encoding in enumerate(encodings):
            length = len(encoding.ids)
            input_ids[row, :length] = encoding.ids
            attention_mask[row, :length] = 1
            token_type_ids[row, :length] = encoding.type_ids
        candidates = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": token_type_ids,
        }
        feed = {name: array for name, array in candidates.items() if name in self.input_names}
        fetch = [self.risk_output, self.signals_output]
        if self.embedding_output is not None:
            fetch.append(self.embedding_output)
        if self.pair_signals_output is not None:
            fetch.append(self.pair_signals_output)
        outputs = self.session.run(fetch, feed)
        risk_logits = np.asarray(outputs[0])
        signal_logits = np.asarray(outputs[1])
        if risk_logits.shape == (batch_size, 1):
            risk_logits = risk_logits.reshape(batch_size)
        if risk_logits.shape != (batch_size,):
            raise ModelOutputError(
                f"output {self.risk_output!r} has shape {list(risk_logits.shape)}; expected [{batch_size}] "
                "(one risk logit per message)"
            )
        if signal_logits.shape != (batch_size, self.signal_count):
            raise ModelOutputError(
                f"output {self.signals_output!r} has shape {list(signal_logits.shape)}; expected "
                f"[{batch_size}, {self.signal_count}] because metadata.json lists {self.signal_count} signals"
            )
        risks: list[float] = _sigmoid(risk_logits).tolist()
        signals: list[list[float]] = _sigmoid(signal_logits).tolist()
        if self.embedding_output is None:
            return [
                MessageScore(risk=risk, signals=tuple(row)) for risk, row in zip(risks, signals, strict=True)
            ]
        pair_signal_logits = signal_logits
        if self.pair_signals_output is not None:
            pair_signal_logits = np.asarray(outputs[3])
            if pair_signal_logits.shape != (batch_size, self.signal_count):
                raise ModelOutputError(
                    f"output {self.pair_signals_output!r} has shape {list(pair_signal_logits.shape)}; "
                    f"expected [{batch_size}, {self.signal_count}] (metadata.json pair_model.signals_output)"
                )
        features = self._features(
            np.asarray(outputs[2]),
            pair_signal_logits,
            risk_logits,
            explanation_signal_logits=signal_logits if self.explanation_signals else None,
            texts=texts,
        )
        return [
            MessageScore(risk=risk, signals=tuple(row), features=features[index])
            for index, (risk, row) in enumerate(zip(risks, signals, strict=True))
        ]

    def _features(
        self,
        embedding: FloatArray,
        signal_logits: FloatArray,
        risk_logits: FloatArray,
        *,
        explanation_signal_logits: FloatArray | None,
        texts: Sequence[str],
    ) -> npt.NDArray[np.float32]:
        """The pair model's input per row: embedding, raw signal logits, raw risk logit, then the
        explanations' raw signal logits and the text's age cues where the pair model reads them (float32)."""
        batch_size = risk_logits.shape[0]
        if embedding.shape != (batch_size, self.embedding_size):
            raise ModelOutputError(
                f"output {self.embedding_output!r} has shape {list(embedding.shape)}; expected "
                f"[{batch_size}, {self.embedding_size}] (metadata.json pair_model.feature_size less "
                f"the signal and risk logits)"
            )
        parts = [embedding, signal_logits, risk_logits.reshape(batch_size, 1)]
        if explanation_signal_logits is not None:
            parts.append(explanation_signal_logits)
        if self.text_cues is not None:
            parts.append(self.text_cues.matrix(texts))
        features = np.concatenate(parts, axis=1, dtype=np.float32)
        # Rows are views of one array: read-only, so no holder of one score can change another's.
        features.setflags(write=False)
        return features


@dataclass(frozen=True, slots=True, kw_only=True)
class _LoadedModel:
    scorer: _OnnxScorer
    spec: _ModelSpec
    pair_model: PairModel
    reviewer: OnnxReviewer | None
    metadata: Mapping[str, Any]
    runtime_check: RuntimeCheck


class OnnxDetector:
    """``Detector`` backed by ONNX Runtime on CPU; concurrent ``score`` calls share batches.

    Create it with ``await OnnxDetector.load(model_dir)``; close it with ``await detector.aclose()``.
    """

    __slots__ = ("_batcher", "_model")

    def __init__(self, *, model: _LoadedModel, max_batch: int, max_wait_s: float, queue_size: int) -> None:
        self._model = model
        info = model.spec.info
        self._batcher: Batcher[str, MessageScore] = Batcher(
            self._score_batch,
            max_batch=max_batch,
            max_wait_s=max_wait_s,
            queue_size=queue_size,
            name=f"OnnxDetector({info.name} {info.version})",
        )

    @classmethod
    async def load(
        cls,
        model_dir: Path,
        *,
        intra_op_threads: int = 2,
        inter_op_threads: int = 1,
        max_batch: int = 256,
        max_wait_s: float = 0.002,
        queue_size: int = 4096,
        accept_runtime_drift: bool = False,
    ) -> OnnxDetector:
        """Load and check a model directory (off the event loop), then start the batching worker.

        Raises ``ModelLoadError``; ``RuntimeDriftError`` when this runtime scores the golden inputs beyond
        their tolerance, unless ``accept_runtime_drift`` (then a WARNING is logged and loading goes on).
        """
        model = await asyncio.to_thread(
            _load_model,
            Path(model_dir),
            intra_op_threads=intra_op_threads,
            inter_op_threads=inter_op_threads,
            accept_runtime_drift=accept_runtime_drift,
        )
        detector = cls(model=model, max_batch=max_batch, max_wait_s=max_wait_s, queue_size=queue_size)
        detector._batcher.start()
        info = model.spec.info
        logger.info(
            "loaded model %s %s from %s (inputs %s, %d signals, max_length %d, %s, %s; %s)",
            info.name,
            info.version,
            model_dir,
            sorted(model.scorer.input_names),
            len(info.signals),
            info.max_length,
            type(model.pair_model).__name__,
            "alert reviewer" if model.reviewer is not None else "no alert reviewer",
            model.runtime_check.describe(),
        )
        return detector

    @property
    def info(self) -> ModelInfo:
        return self._model.spec.info

    @property
    def pair_model(self) -> PairModel:
        return self._model.pair_model

    @property
    def reviewer(self) -> OnnxReviewer | None:
        return self._model.reviewer

    @property
    def runtime_check(self) -> RuntimeCheck:
        """What the golden check at load time found (``vigil check-config`` prints it)."""
        return self._model.runtime_check

    @property
    def metadata(self) -> Mapping[str, Any]:
        """``metadata.json`` as loaded, read-only (objects are mappings, arrays are tuples)."""
        return self._model.metadata

    async def score(self, texts: Sequence[str]) -> list[MessageScore]:
        # A bare str is a Sequence[str] too; scoring it letter by letter is never what the caller meant.
        if isinstance(texts, str):
            raise TypeError("score() takes a sequence of texts, not a single str")
        # Checked here so one bad caller cannot fail the other callers sharing its batch.
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"score() takes texts of type str, got {type(text).__name__}")
        return await self._batcher.submit(texts)

    async def aclose(self) -> None:
        """Finish the calls already queued, then stop. Later ``score`` calls raise ``BatcherClosedError``."""
        await self._batcher.aclose()

    async def _score_batch(self, texts: Sequence[str]) -> list[MessageScore]:
        return await asyncio.to_thread(self._model.scorer.score_batch, texts)


def write_golden(model_dir: Path, *, tolerance: float = DEFAULT_TOLERANCE) -> GoldenSet:
    """Score the golden inputs with the model in ``model_dir`` on this runtime and write its ``golden.json``.

    Training calls it for every model it writes; ``python -m training.golden`` for an existing directory.
    Run it on the runtime the model is calibrated and shipped with: the file records it as the reference.
    """
    model_dir = Path(model_dir)
    model = _load_model(
        model_dir, intra_op_threads=1, inter_op_threads=1, accept_runtime_drift=False, check_runtime=False
    )
    golden = make_golden(
        model.scorer.score_alone,
        info=model.spec.info,
        model_sha256=file_sha256(model_dir / MODEL_FILE),
        tolerance=tolerance,
    )
    write_golden_file(golden, model_dir / GOLDEN_FILE)
    return golden


def _load_model(
    model_dir: Path,
    *,
    intra_op_threads: int,
    inter_op_threads: int,
    accept_runtime_drift: bool,
    check_runtime: bool = True,
) -> _LoadedModel:
    if not model_dir.exists():
        raise ModelLoadError(f"model directory {model_dir} does not exist")
    if not model_dir.is_dir():
        raise ModelLoadError(f"model directory {model_dir} is not a directory")
    for name in (MODEL_FILE, TOKENIZER_FILE, METADATA_FILE):
        if not (model_dir / name).is_file():
            raise ModelLoadError(f"model directory {model_dir} has no {name} (expected {model_dir / name})")

    metadata_path = model_dir / METADATA_FILE
    raw_metadata = _read_json_object(metadata_path)
    spec = _parse_metadata(raw_metadata, path=metadata_path)
    pair_model = _load_pair_model(model_dir, spec=spec, metadata_path=metadata_path)
    tokenizer, pad_id, pad_type_id = _load_tokenizer(
        model_dir / TOKENIZER_FILE, max_length=spec.info.max_length
    )
    model_path = model_dir / MODEL_FILE
    session = _open_session(model_path, intra_op_threads=intra_op_threads, inter_op_threads=inter_op_threads)
    input_names = _check_graph(session, spec=spec, path=model_path)

    scorer = _OnnxScorer(
        session=session,
        tokenizer=tokenizer,
        input_names=input_names,
        risk_output=spec.risk_output,
        signals_output=spec.signals_output,
        signal_count=len(spec.info.signals),
        max_chars=spec.info.max_length * _MAX_CHARS_PER_TOKEN,
        pad_id=pad_id,
        pad_type_id=pad_type_id,
        embedding_output=spec.gru.embedding_output if spec.gru else None,
        embedding_size=spec.gru.embedding_size if spec.gru else 0,
        pair_signals_output=spec.gru.signals_output if spec.gru else None,
        explanation_signals=spec.gru.explanation_signals if spec.gru else False,
        text_cues=spec.gru.text_cues if spec.gru else None,
    )
    # A trial run catches what the graph's declared shapes cannot show (dynamic signal count, bad ops).
    try:
        trial = scorer.score_batch([""])[0]
    except ModelOutputError as error:
        raise ModelLoadError(f"{model_path}: {error}") from error
    except Exception as error:
        raise ModelLoadError(f"{model_path} failed a trial run on an empty message: {error}") from error
    if spec.gru is not None:
        # The pair graph's declared shapes are checked; a step on the trial message catches the rest.
        try:
            pair_model.update(state=pair_model.initial_state(), author_id="a", other_id="b", score=trial)
        except Exception as error:
            raise ModelLoadError(
                f"{model_dir / spec.gru.file} failed a trial run on an empty message: {error}"
            ) from error
    reviewer = _load_reviewer(model_dir, raw_metadata.get("reviewer"), threads=intra_op_threads)
    runtime_check = (
        _check_runtime(model_dir, scorer=scorer, spec=spec, accept_drift=accept_runtime_drift)
        if check_runtime
        else RuntimeCheck(status="skipped")
    )
    return _LoadedModel(
        scorer=scorer,
        spec=spec,
        pair_model=pair_model,
        reviewer=reviewer,
        metadata=_read_only(raw_metadata),
        runtime_check=runtime_check,
    )


def _load_reviewer(model_dir: Path, section: object, *, threads: int) -> OnnxReviewer | None:
    if section is None:
        return None
    path = model_dir / METADATA_FILE
    if not isinstance(section, dict):
        raise ModelLoadError(f"{path}: key 'reviewer' must be an object, got {type(section).__name__}")
    try:
        return OnnxReviewer.load(
            model_dir=model_dir, tokenizer_file=model_dir / TOKENIZER_FILE, section=section, threads=threads
        )
    except ReviewerConfigError as error:
        raise ModelLoadError(f"{path}: key 'reviewer': {error}") from error


def _load_pair_model(model_dir: Path, *, spec: _ModelSpec, metadata_path: Path) -> PairModel:
    if isinstance(spec.pair_model, EmaPairModel):
        return spec.pair_model
    gru = spec.pair_model
    path = model_dir / gru.file
    if not path.is_file():
        raise ModelLoadError(
            f"{metadata_path}: key 'pair_model.file' names {gru.file!r}, but {model_dir} has no such file"
        )
    try:
        return GruPairModel.load(path, state_size=gru.state_size, feature_size=gru.feature_size)
    except PairModelConfigError as error:
        raise ModelLoadError(str(error)) from error


def _check_runtime(
    model_dir: Path, *, scorer: _OnnxScorer, spec: _ModelSpec, accept_drift: bool
) -> RuntimeCheck:
    """Score golden.json's inputs alone and compare: refuse (or, if accepted, warn about) a moved runtime."""
    path = model_dir / GOLDEN_FILE
    if not path.is_file():
        # Warn rather than refuse: admins plug in their own models, which come without one. The shipped
        # model always carries one (a test asserts it).
        logger.warning(
            "%s has no %s, so Vigil cannot check that this onnxruntime computes the scores the model was "
            "calibrated on; write one on the runtime you calibrated with: python -m training.golden "
            "--model-dir %s",
            model_dir,
            GOLDEN_FILE,
            model_dir,
        )
        return RuntimeCheck(status="unchecked")
    try:
        golden = read_golden(path)
    except GoldenFileError as error:
        raise ModelLoadError(str(error)) from error
    if golden.signals != spec.info.signals:
        raise ModelLoadError(
            f"{path}: key 'signals' is {list(golden.signals)}, but metadata.json lists "
            f"{list(spec.info.signals)}; regenerate it (python -m training.golden --model-dir {model_dir})"
        )
    model_sha256 = file_sha256(model_dir / MODEL_FILE)
    if golden.model_sha256 != model_sha256:
        # Not a runtime change, so accept_runtime_drift does not cover it: the file describes another model.
        raise ModelLoadError(
            f"{path} was made for another {MODEL_FILE} (sha256 {golden.model_sha256[:12]}..., this one "
            f"{model_sha256[:12]}...); regenerate it on the runtime the model was calibrated with "
            f"(python -m training.golden --model-dir {model_dir}) or delete it"
        )
    check = compare_golden(golden, scorer.score_alone)
    if check.passed:
        return RuntimeCheck(status="ok", check=check)
    message = check.drift_message(model_dir=model_dir)
    if not accept_drift:
        raise RuntimeDriftError(message, check=check)
    logger.warning("%s. Loading anyway: [detector] accept_runtime_drift = true", message)
    return RuntimeCheck(status="drift_accepted", check=check)


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ModelLoadError(f"{path} is not UTF-8: {error}") from error
    except json.JSONDecodeError as error:
        raise ModelLoadError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(raw, dict):
        raise ModelLoadError(f"{path} must hold a JSON object, got {type(raw).__name__}")
    return raw


def _parse_metadata(metadata: Mapping[str, Any], *, path: Path) -> _ModelSpec:
    reader = _MetadataReader(path=path)
    metadata_format = reader.integer(metadata, "format")
    if metadata_format != METADATA_FORMAT:
        raise ModelLoadError(
            f"{path}: key 'format' is {metadata_format}; this version of Vigil reads format {METADATA_FORMAT}"
        )
    max_length = reader.integer(metadata, "max_length")
    if max_length < 1:
        raise ModelLoadError(f"{path}: key 'max_length' must be >= 1, got {max_length}")
    outputs = reader.mapping(metadata, "outputs")
    signal_entries = reader.array(metadata, "signals")
    names: list[str] = []
    labels: list[str] = []
    for index, entry in enumerate(signal_entries):
        key = f"signals[{index}]"
        if not isinstance(entry, Mapping):
            raise ModelLoadError(f"{path}: key {key!r} must be an object with 'name' and 'label'")
        names.append(reader.string(entry, "name", within=key))
        labels.append(reader.string(entry, "label", within=key))
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ModelLoadError(f"{path}: key 'signals' repeats the names {duplicates}")
    pair_section = reader.mapping(metadata, "pair_model")
    pair_model: EmaPairModel | _GruPairSpec
    if pair_section.get("type") == "gru":
        pair_model = _parse_gru_section(pair_section, reader=reader, signal_count=len(names))
    else:
        try:
            pair_model = EmaPairModel.from_metadata(pair_section)
        except (PairModelConfigError, TypeError, ValueError) as error:
            raise ModelLoadError(f"{path}: key 'pair_model' is invalid: {error}") from error
    info = ModelInfo(
        name=reader.string(metadata, "name"),
        version=reader.string(metadata, "version"),
        max_length=max_length,
        default_threshold=reader.probability(metadata, "default_threshold"),
        signals=tuple(names),
        signal_labels=tuple(labels),
        signal_threshold=reader.probability(metadata, "signal_threshold"),
    )
    return _ModelSpec(
        info=info,
        risk_output=reader.string(outputs, "risk", within="outputs"),
        signals_output=reader.string(outputs, "signals", within="outputs"),
        pair_model=pair_model,
    )


def _parse_gru_section(
    section: Mapping[str, Any], *, reader: _MetadataReader, signal_count: int
) -> _GruPairSpec:
    within = "pair_model"
    file = reader.string(section, "file", within=within)
    if Path(file).name != file or file in {".", ".."}:
        raise ModelLoadError(
            f"{reader.path}: key 'pair_model.file' must name a file inside the model directory, got {file!r}"
        )
    state_size = reader.integer(section, "state_size", within=within)
    feature_size = reader.integer(section, "feature_size", within=within)
    embedding_output = reader.string(section, "embedding_output", within=within)
    signals_output = (
        reader.string(section, "signals_output", within=within) if "signals_output" in section else None
    )
    explanation_signals = (
        reader.boolean(section, "explanation_signals", within=within)
        if "explanation_signals" in section
        else False
    )
    cues_version = reader.string(section, "text_cues", within=within) if "text_cues" in section else None
    try:
        cues = text_cues(cues_version) if cues_version is not None else None
    except UnknownCuesError as error:
        raise ModelLoadError(
            f"{reader.path}: key 'pair_model.text_cues': {error} "
            "(upgrade Vigil for a model trained on newer cues)"
        ) from None
    if state_size < 1:
        raise ModelLoadError(f"{reader.path}: key 'pair_model.state_size' must be >= 1, got {state_size}")
    logits = signal_count * (2 if explanation_signals else 1) + 1 + (len(cues.names) if cues else 0)
    embedding_size = feature_size - logits
    if embedding_size < 1:
        described = (
            f"{signal_count} signal logits, 1 risk logit and {signal_count} explanation signal logits"
            if explanation_signals
            else f"{signal_count} signal logits and 1 risk logit"
        )
        raise ModelLoadError(
            f"{reader.path}: key 'pair_model.feature_size' is {feature_size}, but the features are the "
            f"embedding, {described}, so it must be > {logits}"
        )
    return _GruPairSpec(
        file=file,
        state_size=state_size,
        feature_size=feature_size,
        embedding_output=embedding_output,
        embedding_size=embedding_size,
        signals_output=signals_output,
        explanation_signals=explanation_signals,
        text_cues=cues,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _MetadataReader:
    """Typed look-ups in metadata.json whose errors name the file and the full key."""

    path: Path

    def _get(self, section: Mapping[str, Any], key: str, *, within: str | None) -> tuple[str, Any]:
        full_key = f"{within}.{key}" if within else key
        if key not in section:
            raise ModelLoadError(f"{self.path}: key {full_key!r} is missing")
        return full_key, section[key]

    def _wrong(self, full_key: str, expected: str, value: Any) -> ModelLoadError:
        return ModelLoadError(f"{self.path}: key {full_key!r} must be {expected}, got {value!r}")

    def string(self, section: Mapping[str, Any], key: str, *, within: str | None = None) -> str:
        full_key, value = self._get(section, key, within=within)
        if not isinstance(value, str) or not value:
            raise self._wrong(full_key, "a non-empty string", value)
        return value

    def integer(self, section: Mapping[str, Any], key: str, *, within: str | None = None) -> int:
        full_key, value = self._get(section, key, within=within)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._wrong(full_key, "an integer", value)
        return value

    def boolean(self, section: Mapping[str, Any], key: str, *, within: str | None = None) -> bool:
        full_key, value = self._get(section, key, within=within)
        if not isinstance(value, bool):
            raise self._wrong(full_key, "true or false", value)
        return value

    def probability(self, section: Mapping[str, Any], key: str, *, within: str | None = None) -> float:
        full_key, value = self._get(section, key, within=within)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
            raise self._wrong(full_key, "a number between 0 and 1", value)
        return float(value)

    def mapping(
        self, section: Mapping[str, Any], key: str, *, within: str | None = None
    ) -> Mapping[str, Any]:
        full_key, value = self._get(section, key, within=within)
        if not isinstance(value, Mapping):
            raise self._wrong(full_key, "an object", value)
        return value

    def array(self, section: Mapping[str, Any], key: str, *, within: str | None = None) -> list[Any]:
        full_key, value = self._get(section, key, within=within)
        if not isinstance(value, list):
            raise self._wrong(full_key, "an array", value)
        return value


def _load_tokenizer(path: Path, *, max_length: int) -> tuple[Tokenizer, int, int]:
    """The tokenizer set to truncate at ``max_length`` and not to pad (we pad per batch ourselves)."""
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as error:
        raise ModelLoadError(f"{path} is not a valid tokenizers file: {error}") from error
    padding = tokenizer.padding
    if padding is not None:
        pad_id, pad_type_id = int(padding["pad_id"]), int(padding["pad_type_id"])
    else:
        pad_token_id = tokenizer.token_to_id("[PAD]")
        if pad_token_id is None:
            pad_token_id = tokenizer.token_to_id("<pad>")
        # Padded positions are masked out, so any id works when the tokenizer names none.
        pad_id, pad_type_id = (pad_token_id if pad_token_id is not None else 0), 0
    # Exported tokenizers often pad to a fixed length; padding to the batch's longest row is much cheaper.
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length)
    return tokenizer, pad_id, pad_type_id


def _open_session(path: Path, *, intra_op_threads: int, inter_op_threads: int) -> ort.InferenceSession:
    if intra_op_threads < 0 or inter_op_threads < 0:
        raise ValueError("thread counts must be >= 0 (0 lets ONNX Runtime choose)")
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = inter_op_threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as error:
        raise ModelLoadError(f"{path} is not a loadable ONNX model: {error}") from error


def _check_graph(session: ort.InferenceSession, *, spec: _ModelSpec, path: Path) -> frozenset[str]:
    """The graph's inputs are ones we can feed and its outputs are the ones the metadata names."""
    input_names: set[str] = set()
    for graph_input in session.get_inputs():
        if graph_input.name not in FEEDABLE_INPUTS:
            raise ModelLoadError(
                f"{path} declares input {graph_input.name!r}, which Vigil cannot feed "
                f"(it feeds only {', '.join(FEEDABLE_INPUTS)})"
            )
        if graph_input.type != "tensor(int64)":
            raise ModelLoadError(
                f"{path} declares input {graph_input.name!r} as {graph_input.type}; Vigil feeds tensor(int64)"
            )
        input_names.add(graph_input.name)
    if "input_ids" not in input_names:
        raise ModelLoadError(f"{path} declares no 'input_ids' input, so it cannot take text")

    outputs = {graph_output.name: graph_output for graph_output in session.get_outputs()}
    for key, name in (("outputs.risk", spec.risk_output), ("outputs.signals", spec.signals_output)):
        if name not in outputs:
            raise ModelLoadError(
                f"metadata.json key {key!r} names output {name!r}, but {path} has outputs {sorted(outputs)}"
            )
    # A symbolic dimension ("S") cannot be checked here; the trial run after loading catches those.
    declared_shape = outputs[spec.signals_output].shape
    declared_signals = declared_shape[-1] if len(declared_shape) == 2 else None
    signal_count = len(spec.info.signals)
    if isinstance(declared_signals, int) and declared_signals != signal_count:
        raise ModelLoadError(
            f"{path}: output {spec.signals_output!r} gives {declared_signals} signals per message, "
            f"but metadata.json lists {signal_count} signals"
        )
    if spec.gru is not None:
        _check_embedding_output(outputs, gru=spec.gru, signal_count=signal_count, path=path)
    return frozenset(input_names)


def _check_embedding_output(
    outputs: Mapping[str, Any], *, gru: _GruPairSpec, signal_count: int, path: Path
) -> None:
    if gru.signals_output is not None:
        if gru.signals_output not in outputs:
            raise ModelLoadError(
                f"metadata.json key 'pair_model.signals_output' names output {gru.signals_output!r}, but "
                f"{path} has outputs {sorted(outputs)}"
            )
        pair_shape = list(outputs[gru.signals_output].shape)
        if len(pair_shape) != 2 or (isinstance(pair_shape[1], int) and pair_shape[1] != signal_count):
            raise ModelLoadError(
                f"{path}: output {gru.signals_output!r} has shape {pair_shape}; metadata.json lists "
                f"{signal_count} signals, so it must be [batch, {signal_count}]"
            )
    name = gru.embedding_output
    if name not in outputs:
        raise ModelLoadError(
            f"metadata.json key 'pair_model.embedding_output' names output {name!r}, but {path} has outputs "
            f"{sorted(outputs)}"
        )
    shape = list(outputs[name].shape)
    if len(shape) != 2:
        raise ModelLoadError(f"{path}: output {name!r} has shape {shape}; expected [batch, embedding size]")
    # A symbolic width is checked by the trial run after loading.
    if isinstance(shape[1], int) and shape[1] != gru.embedding_size:
        raise ModelLoadError(
            f"{path}: output {name!r} is {shape[1]} wide, but metadata.json key 'pair_model.feature_size' "
            f"{gru.feature_size} = embedding + {gru.feature_size - gru.embedding_size} signal and risk "
            f"logits needs {gru.embedding_size}"
        )


def _sigmoid(logits: FloatArray) -> FloatArray:
    # exp(-log(1 + e^-x)) never overflows, unlike 1 / (1 + e^-x) for large negative x.
    result: FloatArray = np.exp(-np.logaddexp(0.0, -logits.astype(np.float64)))
    return result


def _length_groups(sorted_lengths: Sequence[int]) -> list[range]:
    """Split positions of ascending lengths into runs whose padding stays near their real token count."""
    groups: list[range] = []
    start = 0
    tokens = 0
    for position, raw_length in enumerate(sorted_lengths):
        length = max(1, raw_length)
        rows = position - start
        if rows >= _MIN_SUB_BATCH and (rows + 1) * length > _MAX_PADDING_RATIO * (tokens + length):
            groups.append(range(start, position))
            start, tokens = position, 0
        tokens += length
    if start < len(sorted_lengths):
        groups.append(range(start, len(sorted_lengths)))
    return groups


def _read_only(value: Any) -> Any:
    """A deep read-only copy of parsed JSON: objects become mappings, arrays become tuples."""
    if isinstance(value, dict):
        return MappingProxyType({key: _read_only(item) for key, item in value.items()})
    if isinstance(value, list):
        return tuple(_read_only(item) for item in value)
    return value
