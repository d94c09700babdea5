"""``python -m benchmarks.detector`` times the raw limit and the detector path in paired rounds."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from benchmarks.detector import BATCH_SIZES, main
from tests.support.keyword_model import build_keyword_model


def test_reports_the_median_of_paired_rounds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model_dir = build_keyword_model(tmp_path / "model")
    out = tmp_path / "result.json"
    argv = ["--model-dir", str(model_dir), "--messages", "40", "--concurrency", "8", "--repeats", "1"]
    assert main([*argv, "--rounds", "3", "--json", str(out)]) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["messages"] == 40
    assert set(result["raw_onnx_msgs_per_s_by_batch"]) == {str(size) for size in BATCH_SIZES}
    assert result["raw_onnx_msgs_per_s"] == max(result["raw_onnx_msgs_per_s_by_batch"].values())
    raw, detector = result["raw_msgs_per_s_by_round"], result["detector_msgs_per_s_by_round"]
    assert len(raw) == len(detector) == len(result["ratio_to_raw_by_round"]) == 3
    assert min(raw) > 0 and min(detector) > 0
    ratios = [d / r for r, d in zip(raw, detector, strict=True)]
    assert result["ratio_to_raw_by_round"] == pytest.approx(ratios)
    assert result["ratio_to_raw"] == pytest.approx(statistics.median(ratios))
    assert result["detector_msgs_per_s"] == pytest.approx(statistics.median(detector))
    assert "3 paired rounds" in capsys.readouterr().out


def test_refuses_zero_rounds(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["--model-dir", str(tmp_path), "--rounds", "0"])
