"""Golden scores: does this runtime still compute the scores a model directory was calibrated on?

A model's threshold and pair-model settings were calibrated on the numbers one onnxruntime (and tokenizers)
produced. Another version can move every score, and with them every alert decision, without any error: int8
kernels change between releases (onnxruntime 1.29 scores single messages of the shipped model up to 0.24
apart from 1.31). So a model directory carries ``golden.json``: fixed inputs with the probabilities they
scored when the model was made, the versions that scored them and a tolerance. ``OnnxDetector.load`` scores
the same inputs, each alone (batch size 1, so the result does not depend on batch-mates), and compares.

This module holds the file format, the inputs and the comparison; ``onnx_detector`` does the scoring, both
when writing the file (``write_golden``, called by training) and when checking it at load time.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Any

import numpy as np
import onnxruntime as ort
import tokenizers

from vigil.bots.core.ports import MessageScore, ModelInfo

GOLDEN_FILE = "golden.json"
GOLDEN_FORMAT = 1
# Largest absolute difference allowed on any risk or signal probability. Measured on the shipped model
# (detector/MODEL_CARD.md, "Runtime check"): repeated runs and 1, 2 or 4 threads on one runtime agree exactly;
# onnxruntime 1.29 moves these inputs by up to 0.016 (and single messages elsewhere by up to 0.24). 0.005
# leaves room for last-bit float differences between CPUs and still catches that change with a 3x margin.
DEFAULT_TOLERANCE = 0.005
# The CPU features that choose onnxruntime's int8 kernels (u8s8 without VNNI can saturate): recorded so a
# mismatch on the same runtime version can be told apart from a runtime change.
_INT8_CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")
_PREVIEW_CHARS = 40
# Far below any tolerance worth setting; keeps the file readable.
_DECIMALS = 6
_KIND_NAMES: Mapping[type[Any] | UnionType, str] = {
    int: "an integer",
    str: "a string",
    list: "an array",
    int | float: "a number",
}

# Fixed inputs: grooming-like lines, ordinary chat, empty and one-character messages, a message far past
# max_length (truncated), chat-speak and odd Unicode (homoglyphs, emoji, zero-width, CJK, RTL).
GOLDEN_TEXTS: tuple[str, ...] = (
    "how old are you? dont tell your mom about me ok",
    "can you send me a pic, we can meet this weekend",
    "ur so mature for ur age, u know that? not like other girls",
    "do u have a webcam? add me on snap so we can video chat",
    "i could buy you a new phone if you want, just between us",
    "are your parents home right now? delete our messages after",
    "hey how was school today",
    "gg that was a great match",
    "The meeting is moved to 3pm, see the agenda.",
    "my mom said i cant go out tonight, homework first :(",
    "Thanks for the review! I'll push the fix before standup and ping you on the PR.",
    "",
    "k",
    "asl? 13 f here lol",
    "h0w 0ld r u?? i w0nt t3ll any1 😉😉",
    "hоw оld аre yоu",  # Cyrillic о and а: the detector sees what the monitor hands it, homoglyphs and all
    "se\u200bcr\u200bet 🤫 ¿qué tal? 你好吗 مرحبا ﬁne",
    (
        "So yesterday we finally went to the lake with the whole family, my uncle brought his new boat and "
        "we spent hours fishing, swimming and arguing about who caught the biggest fish, and then it started "
        "raining so hard that we all had to hide under the bridge until the storm passed, which took ages, "
        "and by the time we got home everyone was soaked and tired but honestly it was the best day of the "
        "summer so far and I can't wait to go back next week if the weather holds up."
    ),
)


class GoldenFileError(ValueError):
    """``golden.json`` is unreadable or malformed; the message names the file and the key."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeVersions:
    """What computed a set of scores: the libraries that can move them, and the CPU's int8 features."""

    onnxruntime: str
    tokenizers: str
    numpy: str
    machine: str
    cpu_flags: tuple[str, ...]

    @classmethod
    def current(cls) -> RuntimeVersions:
        return cls(
            onnxruntime=str(ort.__version__),
            tokenizers=str(tokenizers.__version__),
            numpy=str(np.__version__),
            machine=platform.machine(),
            cpu_flags=_int8_cpu_flags(),
        )

    def describe(self) -> str:
        flags = ", ".join(self.cpu_flags) or "none of " + "/".join(_INT8_CPU_FLAGS)
        return (
            f"onnxruntime {self.onnxruntime}, tokenizers {self.tokenizers}, numpy {self.numpy} "
            f"on {self.machine} ({flags})"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class GoldenCase:
    text: str
    risk: float
    signals: tuple[float, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class GoldenSet:
    """The contents of ``golden.json``."""

    model_name: str
    model_version: str
    model_sha256: str
    signals: tuple[str, ...]
    produced_with: RuntimeVersions
    tolerance: float
    cases: tuple[GoldenCase, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class GoldenDifference:
    """The largest difference found: which input (index into the cases) and which probability."""

    index: int
    text: str
    output: str  # "risk" or a signal name
    expected: float
    actual: float

    @property
    def size(self) -> float:
        return abs(self.actual - self.expected)

    def describe(self) -> str:
        return (
            f"{self.output} of golden input {self.index} ({preview(self.text)}): "
            f"expected {self.expected:.4f}, got {self.actual:.4f}"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class GoldenCheck:
    """The result of scoring a golden set on this runtime."""

    golden: GoldenSet
    runtime: RuntimeVersions
    largest: GoldenDifference

    @property
    def max_diff(self) -> float:
        return self.largest.size

    @property
    def passed(self) -> bool:
        return self.max_diff <= self.golden.tolerance

    def drift_message(self, *, model_dir: Path) -> str:
        """What moved, on which runtime, and what to do about it; for the error and the warning alike."""
        made = self.golden.produced_with
        here = self.runtime
        locked = f"onnxruntime=={made.onnxruntime} and tokenizers=={made.tokenizers}"
        if made.onnxruntime != here.onnxruntime or made.tokenizers != here.tokenizers:
            cause = (
                f"The goldens were made with onnxruntime {made.onnxruntime} and tokenizers "
                f"{made.tokenizers}; this is onnxruntime {here.onnxruntime} and tokenizers {here.tokenizers}"
            )
            remedy = f"Install the locked versions ({locked}; requirements/runtime.lock)"
        elif (made.machine, made.cpu_flags) != (here.machine, here.cpu_flags):
            cause = (
                f"The versions match (onnxruntime {made.onnxruntime}, tokenizers {made.tokenizers}) but the "
                f"machine differs: goldens made on {made.describe()}, this is {here.describe()}; int8 "
                "kernels differ between CPUs"
            )
            remedy = "Run on a CPU with the same int8 features"
        else:
            cause = (
                f"The goldens were made with this same onnxruntime {made.onnxruntime} and tokenizers "
                f"{made.tokenizers} on the same kind of CPU, so something else changed the scores: another "
                f"build of onnxruntime, numpy ({made.numpy} there, {here.numpy} here) or edited model files"
            )
            remedy = f"Reinstall the locked packages ({locked}; requirements/runtime.lock)"
        return (
            f"{model_dir / GOLDEN_FILE}: this runtime scores the model differently from the runtime it was "
            "calibrated on, so its threshold and alert decisions no longer mean what they were measured to "
            f"mean. {cause}. Largest difference {self.max_diff:.4f} (tolerance {self.golden.tolerance:g}): "
            f"{self.largest.describe()}. {remedy}, or set [detector] accept_runtime_drift = true to run "
            "anyway, knowing that scores moved and the threshold was not recalibrated for them"
        )


def preview(text: str) -> str:
    """A golden input, shortened for messages (they are Vigil's own fixed strings, never user text)."""
    if not text:
        return "the empty message"
    shown = text if len(text) <= _PREVIEW_CHARS else text[: _PREVIEW_CHARS - 3] + "..."
    return json.dumps(shown, ensure_ascii=True)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def make_golden(
    score_alone: Callable[[str], MessageScore],
    *,
    info: ModelInfo,
    model_sha256: str,
    tolerance: float = DEFAULT_TOLERANCE,
    texts: Sequence[str] = GOLDEN_TEXTS,
) -> GoldenSet:
    """Score each text alone with the model as it runs here, and record what produced the numbers."""
    if not 0.0 < tolerance < 1.0:
        raise ValueError(f"tolerance must be between 0 and 1, got {tolerance!r}")
    cases = []
    for text in texts:
        score = score_alone(text)
        # Rounded here, not only in the file, so the returned set equals what read_golden gives back.
        cases.append(
            GoldenCase(
                text=text,
                risk=round(score.risk, _DECIMALS),
                signals=tuple(round(value, _DECIMALS) for value in score.signals),
            )
        )
    return GoldenSet(
        model_name=info.name,
        model_version=info.version,
        model_sha256=model_sha256,
        signals=info.signals,
        produced_with=RuntimeVersions.current(),
        tolerance=tolerance,
        cases=tuple(cases),
    )


def compare_golden(golden: GoldenSet, score_alone: Callable[[str], MessageScore]) -> GoldenCheck:
    """Score every golden input alone and find the largest difference from the recorded probabilities."""
    if not golden.cases:
        raise ValueError("a golden set needs at least one case")
    largest: GoldenDifference | None = None
    for index, case in enumerate(golden.cases):
        score = score_alone(case.text)
        pairs = [("risk", case.risk, score.risk)]
        pairs += [
            (name, expected, actual)
            for name, expected, actual in zip(golden.signals, case.signals, score.signals, strict=True)
        ]
        for output, expected, actual in pairs:
            # NaN never compares greater, so it must win explicitly.
            size = abs(actual - expected) if math.isfinite(actual) else math.inf
            if largest is None or size > largest.size:
                largest = GoldenDifference(
                    index=index, text=case.text, output=output, expected=expected, actual=actual
                )
    assert largest is not None
    return GoldenCheck(golden=golden, runtime=RuntimeVersions.current(), largest=largest)


def golden_to_json(golden: GoldenSet) -> str:
    made = golden.produced_with
    payload: dict[str, Any] = {
        "format": GOLDEN_FORMAT,
        "about": (
            "Scores of fixed inputs, each scored alone (batch size 1), by the runtime below. Vigil compares "
            "them at load time and refuses a runtime that differs by more than the tolerance (absolute, on "
            "probabilities). Regenerate: python -m training.golden --model-dir DIR"
        ),
        "model": {"name": golden.model_name, "version": golden.model_version, "sha256": golden.model_sha256},
        "produced_with": {
            "onnxruntime": made.onnxruntime,
            "tokenizers": made.tokenizers,
            "numpy": made.numpy,
            "machine": made.machine,
            "cpu_flags": list(made.cpu_flags),
        },
        "tolerance": golden.tolerance,
        "signals": list(golden.signals),
        "cases": [
            {
                "text": case.text,
                "risk": case.risk,
                "signals": dict(zip(golden.signals, case.signals, strict=True)),
            }
            for case in golden.cases
        ],
    }
    return json.dumps(payload, indent=2, ensure_ascii=False) + "\n"


def write_golden_file(golden: GoldenSet, path: Path) -> None:
    # Write then rename, so a crash never leaves a half-written file that would refuse every start.
    partial = path.with_name(path.name + ".partial")
    partial.write_text(golden_to_json(golden), encoding="utf-8")
    partial.replace(path)


def read_golden(path: Path) -> GoldenSet:
    """Parse ``golden.json``; raises ``GoldenFileError`` naming the file and key."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise GoldenFileError(f"{path} cannot be read as JSON: {error}") from error
    reader = _Reader(path=path)
    section = reader.mapping(raw, "", "the file")
    file_format = reader.value(section, "format", int)
    if file_format != GOLDEN_FORMAT:
        raise GoldenFileError(f"{path}: key 'format' is {file_format}; this version reads {GOLDEN_FORMAT}")
    model = reader.mapping(section, "model", "model")
    made = reader.mapping(section, "produced_with", "produced_with")
    signals = tuple(reader.strings(section, "signals"))
    tolerance = reader.number(section, "tolerance")
    if not 0.0 < tolerance < 1.0:
        raise GoldenFileError(f"{path}: key 'tolerance' must be between 0 and 1, got {tolerance!r}")
    cases = []
    raw_cases = reader.value(section, "cases", list)
    if not raw_cases:
        raise GoldenFileError(f"{path}: key 'cases' is empty")
    for index, raw_case in enumerate(raw_cases):
        key = f"cases[{index}]"
        case = reader.mapping({key: raw_case}, key, key)
        case_signals = reader.mapping(case, "signals", f"{key}.signals")
        if set(case_signals) != set(signals):
            raise GoldenFileError(
                f"{path}: key '{key}.signals' must name exactly the signals {list(signals)}"
            )
        cases.append(
            GoldenCase(
                text=reader.value(case, "text", str, within=key),
                risk=reader.number(case, "risk", within=key),
                signals=tuple(reader.number(case_signals, name, within=f"{key}.signals") for name in signals),
            )
        )
    return GoldenSet(
        model_name=reader.value(model, "name", str, within="model"),
        model_version=reader.value(model, "version", str, within="model"),
        model_sha256=reader.value(model, "sha256", str, within="model"),
        signals=signals,
        produced_with=RuntimeVersions(
            onnxruntime=reader.value(made, "onnxruntime", str, within="produced_with"),
            tokenizers=reader.value(made, "tokenizers", str, within="produced_with"),
            numpy=reader.value(made, "numpy", str, within="produced_with"),
            machine=reader.value(made, "machine", str, within="produced_with"),
            cpu_flags=tuple(reader.strings(made, "cpu_flags", within="produced_with")),
        ),
        tolerance=tolerance,
        cases=tuple(cases),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Reader:
    path: Path

    def _key(self, key: str, within: str | None) -> str:
        return f"{within}.{key}" if within else key

    def mapping(self, section: Any, key: str, name: str) -> Mapping[str, Any]:
        value = section if not key else section.get(key) if isinstance(section, Mapping) else None
        if not isinstance(value, Mapping):
            raise GoldenFileError(f"{self.path}: {name!r} must be a JSON object")
        return value

    def value(
        self, section: Mapping[str, Any], key: str, kind: type[Any] | UnionType, *, within: str | None = None
    ) -> Any:
        full = self._key(key, within)
        if key not in section:
            raise GoldenFileError(f"{self.path}: key {full!r} is missing")
        value = section[key]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise GoldenFileError(f"{self.path}: key {full!r} must be {_KIND_NAMES[kind]}, got {value!r}")
        return value

    def number(self, section: Mapping[str, Any], key: str, *, within: str | None = None) -> float:
        value = self.value(section, key, int | float, within=within)
        if not math.isfinite(value):
            raise GoldenFileError(f"{self.path}: key {self._key(key, within)!r} must be a finite number")
        return float(value)

    def strings(self, section: Mapping[str, Any], key: str, *, within: str | None = None) -> list[str]:
        values = self.value(section, key, list, within=within)
        if not all(isinstance(item, str) for item in values):
            raise GoldenFileError(f"{self.path}: key {self._key(key, within)!r} must be a list of strings")
        return list(values)


def _int8_cpu_flags() -> tuple[str, ...]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:  # not Linux: record nothing rather than guess
        return ()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            present = set(line.split(":", 1)[1].split())
            return tuple(flag for flag in _INT8_CPU_FLAGS if flag in present)
    return ()
