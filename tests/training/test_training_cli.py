"""The shared end of the training commands: a clear error and exit 2 on bad input, JSON on success."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from training.cli import run_reported
from training.counter_gate import main as counter_gate_main


def test_a_report_is_printed_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_reported(lambda args: {"seen": args.value}, argparse.Namespace(value=3), prog="x") == 0
    assert json.loads(capsys.readouterr().out) == {"seen": 3}


def test_bad_input_is_a_clear_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "metadata.json").write_text(json.dumps({"name": "no pair model"}), encoding="utf-8")
    argv = ["--model", str(tmp_path), "--fit", str(tmp_path / "fit.jsonl"), "--work", str(tmp_path)]
    assert counter_gate_main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("training.counter_gate: ") and "no recurrent pair model" in err
