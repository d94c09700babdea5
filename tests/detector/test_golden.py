"""The runtime check: golden.json scored alone at load time, drift refused or (when accepted) warned about.

A real runtime change cannot be installed inside a test, so drift is made the other way round: a copy of the
shipped model directory whose golden.json says the inputs scored differently (and, in one variant, on another
onnxruntime). The shipped model itself must pass on the locked runtime.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

import onnxruntime as ort
import pytest
import tokenizers

from tests.detector.conftest import ModelDirFactory
from training.golden import main as golden_main
from vigil.bots.cli import main
from vigil.detector import (
    ModelLoadError,
    OnnxDetector,
    RuntimeDriftError,
    load_default_model_dir,
    write_golden,
)
from vigil.detector.golden import (
    DEFAULT_TOLERANCE,
    GOLDEN_FILE,
    GOLDEN_TEXTS,
    GoldenFileError,
    RuntimeVersions,
    read_golden,
)

REPO = Path(__file__).resolve().parents[2]


def shipped_copy(tmp_path: Path) -> Path:
    """The shipped model directory, copied so its golden.json can be edited."""
    model_dir = tmp_path / "shipped-copy"
    shutil.copytree(load_default_model_dir(), model_dir)
    return model_dir


def edit_golden(
    model_dir: Path, *, shift: float = 0.0, case: int = 3, **produced_with: object
) -> dict[str, Any]:
    """Move one golden risk by ``shift`` and overwrite recorded versions; returns the edited document."""
    path = model_dir / GOLDEN_FILE
    golden: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    golden["cases"][case]["risk"] += shift
    golden["produced_with"].update(produced_with)
    path.write_text(json.dumps(golden), encoding="utf-8")
    return golden


def write_config(tmp_path: Path, model_dir: Path, extra: str = "") -> Path:
    config = tmp_path / "vigil.toml"
    config.write_text(
        f'[detector]\nmodel_dir = "{model_dir}"\nintra_op_threads = 1\n{extra}', encoding="utf-8"
    )
    return config


# --- the shipped model ----------------------------------------------------------------------------------


async def test_shipped_model_carries_goldens_and_passes_on_the_locked_runtime() -> None:
    model_dir = load_default_model_dir()
    assert (model_dir / GOLDEN_FILE).is_file(), "the shipped model must always carry golden.json"
    golden = read_golden(model_dir / GOLDEN_FILE)
    detector = await OnnxDetector.load(model_dir, intra_op_threads=1)
    try:
        check = detector.runtime_check
        assert check.status == "ok"
        assert check.check is not None
        assert check.check.max_diff <= golden.tolerance
        # The same runtime gives the same numbers; only the 6-decimal rounding of the file remains.
        assert check.check.max_diff < 1e-6
        assert "golden check: ok (max diff 0.0000 over" in check.describe()
    finally:
        await detector.aclose()
    assert (golden.model_name, golden.model_version) == (detector.info.name, detector.info.version)
    assert golden.signals == detector.info.signals
    assert golden.tolerance == DEFAULT_TOLERANCE
    assert golden.produced_with.onnxruntime == ort.__version__
    assert golden.produced_with.tokenizers == tokenizers.__version__


def test_shipped_goldens_were_made_with_the_locked_runtime() -> None:
    # Bumping the lock without regenerating golden.json would leave the file naming the wrong reference.
    lock = (REPO / "requirements" / "runtime.lock").read_text(encoding="utf-8")
    locked = {
        name: version
        for name, version in re.findall(r"^(onnxruntime|tokenizers)==([^\s;\\]+)", lock, flags=re.MULTILINE)
    }
    golden = read_golden(load_default_model_dir() / GOLDEN_FILE)
    assert golden.produced_with.onnxruntime == locked["onnxruntime"]
    assert golden.produced_with.tokenizers == locked["tokenizers"]


def test_golden_inputs_are_varied() -> None:
    golden = read_golden(load_default_model_dir() / GOLDEN_FILE)
    texts = [case.text for case in golden.cases]
    assert texts == list(GOLDEN_TEXTS)
    assert 12 <= len(texts) <= 24
    assert "" in texts and any(len(text) == 1 for text in texts)
    assert any(not text.isascii() for text in texts)
    tokenizer = tokenizers.Tokenizer.from_file(str(load_default_model_dir() / "tokenizer.json"))
    tokenizer.no_truncation()
    assert max(len(tokenizer.encode(text).ids) for text in texts) > 64  # one input is truncated
    risks = [case.risk for case in golden.cases]
    # Message risks on both sides of 0.67 (the old EMA threshold), so a drift either way is visible.
    assert sum(risk >= 0.67 for risk in risks) >= 4 and sum(risk < 0.5 for risk in risks) >= 6


# --- drift ----------------------------------------------------------------------------------------------


async def test_scores_beyond_the_tolerance_refuse_to_load(tmp_path: Path) -> None:
    model_dir = shipped_copy(tmp_path)
    # Recorded on this very machine (the shipped goldens may come from another CPU, which words it otherwise).
    here = RuntimeVersions.current()
    golden = edit_golden(
        model_dir, shift=2 * DEFAULT_TOLERANCE, machine=here.machine, cpu_flags=list(here.cpu_flags)
    )
    with pytest.raises(RuntimeDriftError) as raised:
        await OnnxDetector.load(model_dir, intra_op_threads=1)
    message = str(raised.value)
    assert str(model_dir / GOLDEN_FILE) in message
    assert f"onnxruntime {ort.__version__}" in message
    assert f"Largest difference {2 * DEFAULT_TOLERANCE:.4f}" in message
    assert "risk of golden input 3" in message
    assert f"onnxruntime=={ort.__version__}" in message  # how to proceed: the locked packages...
    assert "accept_runtime_drift = true" in message  # ...or accepting the drift
    # Same versions on the same machine: the message must not blame a version or a CPU change.
    assert "something else changed" in message
    assert raised.value.check.largest.index == 3
    assert raised.value.check.largest.output == "risk"
    assert raised.value.check.largest.expected == pytest.approx(golden["cases"][3]["risk"])


async def test_the_message_names_both_onnxruntime_versions(tmp_path: Path) -> None:
    model_dir = shipped_copy(tmp_path)
    edit_golden(model_dir, shift=-0.035, case=0, onnxruntime="1.30.0")
    with pytest.raises(RuntimeDriftError) as raised:
        await OnnxDetector.load(model_dir, intra_op_threads=1)
    message = str(raised.value)
    assert "made with onnxruntime 1.30.0" in message
    assert f"this is onnxruntime {ort.__version__}" in message
    assert "Largest difference 0.0350" in message
    assert "onnxruntime==1.30.0" in message
    assert 'golden input 0 ("how old are you?' in message


async def test_same_versions_on_another_cpu_say_so(tmp_path: Path) -> None:
    model_dir = shipped_copy(tmp_path)
    edit_golden(model_dir, shift=0.02, machine="aarch64")
    with pytest.raises(RuntimeDriftError) as raised:
        await OnnxDetector.load(model_dir, intra_op_threads=1)
    message = str(raised.value)
    assert "The versions match (onnxruntime" in message and "but the machine differs" in message
    assert "on aarch64" in message and "Run on a CPU with the same int8 features" in message


async def test_a_signal_drift_counts_as_much_as_a_risk_drift(tmp_path: Path) -> None:
    model_dir = shipped_copy(tmp_path)
    path = model_dir / GOLDEN_FILE
    golden = json.loads(path.read_text(encoding="utf-8"))
    golden["cases"][5]["signals"]["secrecy"] -= 0.02
    path.write_text(json.dumps(golden), encoding="utf-8")
    with pytest.raises(RuntimeDriftError, match=r"secrecy of golden input 5"):
        await OnnxDetector.load(model_dir, intra_op_threads=1)


async def test_within_the_tolerance_loads(tmp_path: Path) -> None:
    model_dir = shipped_copy(tmp_path)
    edit_golden(model_dir, shift=DEFAULT_TOLERANCE / 2)
    detector = await OnnxDetector.load(model_dir, intra_op_threads=1)
    try:
        assert detector.runtime_check.status == "ok"
        assert detector.runtime_check.check is not None
        assert detector.runtime_check.check.max_diff == pytest.approx(DEFAULT_TOLERANCE / 2, abs=1e-6)
    finally:
        await detector.aclose()


async def test_accepted_drift_loads_and_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    model_dir = shipped_copy(tmp_path)
    edit_golden(model_dir, shift=0.03, onnxruntime="1.30.0")
    caplog.set_level(logging.WARNING, logger="vigil")
    detector = await OnnxDetector.load(model_dir, intra_op_threads=1, accept_runtime_drift=True)
    try:
        assert detector.runtime_check.status == "drift_accepted"
        assert "DRIFT" in detector.runtime_check.describe()
        scores = await detector.score(["hey how was school today"])
        assert 0.0 <= scores[0].risk <= 1.0
    finally:
        await detector.aclose()
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING and "golden" in r.getMessage()]
    text = warning.getMessage()
    assert "made with onnxruntime 1.30.0" in text and f"this is onnxruntime {ort.__version__}" in text
    assert "Largest difference 0.0300" in text and "risk of golden input 3" in text
    assert "accept_runtime_drift = true" in text


# --- directories without, or with a broken, golden.json --------------------------------------------------


async def test_no_golden_file_loads_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    model_dir = shipped_copy(tmp_path)
    (model_dir / GOLDEN_FILE).unlink()
    caplog.set_level(logging.WARNING, logger="vigil")
    detector = await OnnxDetector.load(model_dir, intra_op_threads=1)
    try:
        assert detector.runtime_check.status == "unchecked"
        assert detector.runtime_check.check is None
    finally:
        await detector.aclose()
    [warning] = [r for r in caplog.records if "no golden.json" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert "python -m training.golden" in warning.getMessage()


async def test_golden_file_of_another_model_is_refused_even_when_drift_is_accepted(tmp_path: Path) -> None:
    model_dir = shipped_copy(tmp_path)
    path = model_dir / GOLDEN_FILE
    golden = json.loads(path.read_text(encoding="utf-8"))
    golden["model"]["sha256"] = "0" * 64
    path.write_text(json.dumps(golden), encoding="utf-8")
    with pytest.raises(ModelLoadError, match=r"was made for another model\.onnx") as raised:
        await OnnxDetector.load(model_dir, intra_op_threads=1, accept_runtime_drift=True)
    assert not isinstance(raised.value, RuntimeDriftError)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda g: g.update(format=2), "'format' is 2"),
        (lambda g: g.pop("tolerance"), "'tolerance' is missing"),
        (lambda g: g.update(tolerance=0), "'tolerance' must be between 0 and 1"),
        (lambda g: g["cases"][1].update(risk="high"), "'cases[1].risk' must be a number"),
        (lambda g: g["cases"][2]["signals"].pop("sexual"), "'cases[2].signals' must name exactly"),
        (lambda g: g.update(signals=["asks_age"]), "'cases[0].signals' must name exactly"),
        (lambda g: g.update(cases=[]), "'cases' is empty"),
        (lambda g: g["produced_with"].pop("onnxruntime"), "'produced_with.onnxruntime' is missing"),
    ],
)
async def test_malformed_golden_file_names_the_key(tmp_path: Path, edit: Any, expected: str) -> None:
    model_dir = shipped_copy(tmp_path)
    path = model_dir / GOLDEN_FILE
    golden = json.loads(path.read_text(encoding="utf-8"))
    edit(golden)
    path.write_text(json.dumps(golden), encoding="utf-8")
    with pytest.raises(ModelLoadError) as raised:
        await OnnxDetector.load(model_dir, intra_op_threads=1)
    assert str(path) in str(raised.value) and expected in str(raised.value)
    with pytest.raises(GoldenFileError):
        read_golden(path)


async def test_signals_that_disagree_with_the_metadata_are_refused(tmp_path: Path) -> None:
    model_dir = shipped_copy(tmp_path)
    path = model_dir / GOLDEN_FILE
    golden = json.loads(path.read_text(encoding="utf-8"))
    golden["signals"] = list(reversed(golden["signals"]))
    path.write_text(json.dumps(golden), encoding="utf-8")
    with pytest.raises(ModelLoadError, match=r"key 'signals' is .* but metadata\.json lists"):
        await OnnxDetector.load(model_dir, intra_op_threads=1)


# --- writing --------------------------------------------------------------------------------------------


async def test_write_golden_records_this_runtime_and_the_next_load_passes(
    build_model_dir: ModelDirFactory,
) -> None:
    model_dir = build_model_dir()
    golden = write_golden(model_dir, tolerance=0.002)
    assert golden.produced_with.onnxruntime == ort.__version__
    assert golden.tolerance == 0.002
    assert [case.text for case in golden.cases] == list(GOLDEN_TEXTS)
    assert read_golden(model_dir / GOLDEN_FILE) == golden
    detector = await OnnxDetector.load(model_dir, intra_op_threads=1)
    try:
        assert detector.runtime_check.status == "ok"
        # The goldens are the scores alone: scoring each text by itself now gives the recorded numbers.
        for case in golden.cases[:5]:
            (score,) = await detector.score([case.text])
            assert score.risk == pytest.approx(case.risk, abs=1e-6)
    finally:
        await detector.aclose()


def test_training_golden_command_rewrites_the_file_identically(tmp_path: Path) -> None:
    model_dir = shipped_copy(tmp_path)
    before = (model_dir / GOLDEN_FILE).read_bytes()
    (model_dir / GOLDEN_FILE).unlink()
    assert golden_main(["--model-dir", str(model_dir)]) == 0
    after = (model_dir / GOLDEN_FILE).read_bytes()
    here = RuntimeVersions.current()
    expected = json.loads(before)
    if (expected["produced_with"]["machine"], tuple(expected["produced_with"]["cpu_flags"])) == (
        here.machine,
        here.cpu_flags,
    ):
        assert after == before
    # Another kind of CPU records itself; every score must still come out the same.
    expected["produced_with"].update(machine=here.machine, cpu_flags=list(here.cpu_flags))
    assert json.loads(after) == expected


# --- vigil check-config ---------------------------------------------------------------------------------


def test_check_config_reports_a_passing_golden_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config"]) == 0
    out = capsys.readouterr().out
    assert "model: vigil-minilm-grooming 2026.12.11 from" in out
    assert f"runtime: onnxruntime {ort.__version__}, tokenizers {tokenizers.__version__}" in out
    assert f"goldens made with onnxruntime {ort.__version__}" in out
    assert re.search(r"golden check: ok \(max diff 0\.0000 over \d+ inputs, tolerance 0\.005\)", out)
    assert out.rstrip().endswith("OK")


def test_check_config_fails_on_drift_and_names_both_versions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir = shipped_copy(tmp_path)
    edit_golden(model_dir, shift=0.035, onnxruntime="1.30.0")
    assert main(["check-config", str(write_config(tmp_path, model_dir))]) == 1
    out = capsys.readouterr().out
    assert "model: vigil-minilm-grooming 2026.12.11 from" in out
    assert f"runtime: onnxruntime {ort.__version__}" in out and "goldens made with onnxruntime 1.30.0" in out
    assert "golden check: FAILED (max diff 0.0350 over" in out
    assert "accept_runtime_drift = true" in out
    assert "1 problem(s) found" in out


def test_check_config_passes_accepted_drift_with_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir = shipped_copy(tmp_path)
    edit_golden(model_dir, shift=0.035, onnxruntime="1.30.0")
    config = write_config(tmp_path, model_dir, "accept_runtime_drift = true\n")
    assert main(["check-config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "golden check: DRIFT beyond the tolerance, accepted by [detector] accept_runtime_drift" in out
    assert "max diff 0.0350" in out
    assert "- note: this runtime scores the model beyond the golden tolerance" in out
    assert out.rstrip().endswith("OK")


def test_check_config_says_when_a_model_cannot_be_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir = shipped_copy(tmp_path)
    (model_dir / GOLDEN_FILE).unlink()
    assert main(["check-config", str(write_config(tmp_path, model_dir))]) == 0
    out = capsys.readouterr().out
    assert "golden check: not possible, the model directory has no golden.json" in out
    assert "- note: " in out and "python -m training.golden" in out
