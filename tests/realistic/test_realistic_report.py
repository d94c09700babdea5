"""``python -m benchmarks.realistic_report`` agrees with ``vigil eval`` on the realistic set, row by row.

Both run for real: the report as a subprocess, ``vigil eval`` through the CLI, on the same ONNX model (a
keyword model, so the test is fast and produces both true and false alerts at the threshold used).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.keyword_model import build_keyword_model
from vigil.bots.cli import main as vigil_main
from vigil.detector.metrics import average_precision

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "examples" / "realistic_conversations.jsonl"
THRESHOLD = 0.5
WEIGHTS = {
    "secret": 6.0,
    "snap": 6.0,
    "snapchat": 6.0,
    "telegram": 6.0,
    "pic": 5.0,
    "photo": 5.0,
    "mature": 6.0,
    "old": 3.0,
    "robux": 4.0,
    "delete": 5.0,
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_keyword_model(
        tmp_path_factory.mktemp("realistic-keyword-model"), weights=WEIGHTS, alpha=0.5, min_messages=2
    )


@pytest.fixture(scope="module")
def report(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    out = tmp_path_factory.mktemp("report") / "report.json"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.realistic_report",
            "--data",
            str(DATA),
            "--model-dir",
            str(model_dir),
            "--threshold",
            str(THRESHOLD),
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(out.read_text(encoding="utf-8")), completed.stdout


@pytest.fixture(scope="module")
def evaluation(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("eval")
    config = folder / "vigil.toml"
    config.write_text(f'[detector]\nmodel_dir = "{model_dir}"\n', encoding="utf-8")
    out = folder / "eval.json"
    code = vigil_main(
        [
            "--config",
            str(config),
            "eval",
            "--data",
            str(DATA),
            "--threshold",
            str(THRESHOLD),
            "--json",
            str(out),
        ]
    )
    assert code == 0
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return result


def _raw() -> list[dict[str, Any]]:
    lines = DATA.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_one_row_per_conversation_with_the_files_counts(report: tuple[dict[str, Any], str]) -> None:
    payload, stdout = report
    rows = payload["rows"]
    raw = _raw()
    assert payload["bad_records"] == []
    assert payload["threshold"] == THRESHOLD
    assert [row["id"] for row in rows] == [record["id"] for record in raw]
    for row, record in zip(rows, raw, strict=True):
        suspects = set(record["suspects"])
        assert row["label"] == record["label"]
        assert row["messages"] == len(record["messages"])
        assert row["suspect_messages"] == sum(m["author"] in suspects for m in record["messages"])
        signal = record["meta"].get("first_signal_index")
        expected = (
            None if signal is None else sum(m["author"] in suspects for m in record["messages"][: signal + 1])
        )
        assert row["suspect_messages_at_first_signal"] == expected
        assert 0.0 <= row["peak_pair_risk"] <= 1.0
        assert row["id"] in stdout
    assert "look-alikes:" in stdout.splitlines()[-1]


def test_alert_positions_are_consistent(report: tuple[dict[str, Any], str]) -> None:
    rows = report[0]["rows"]
    raw = {record["id"]: record for record in _raw()}
    for row in rows:
        if not row["alerted"]:
            assert row["first_alert_index"] is None and row["suspect_messages_at_alert"] is None
            continue
        record = raw[row["id"]]
        index = row["first_alert_index"]
        assert 0 <= index < len(record["messages"])
        # An alert needs the pair's risk over the threshold, so the peak is at least that high.
        assert row["peak_pair_risk"] >= THRESHOLD
        if row["label"] == 1:
            suspects = set(record["suspects"])
            assert row["suspect_messages_at_alert"] == sum(
                m["author"] in suspects for m in record["messages"][: index + 1]
            )
            assert row["suspect_messages_at_alert"] >= 1


def test_the_report_matches_vigil_eval(
    report: tuple[dict[str, Any], str], evaluation: dict[str, Any]
) -> None:
    rows = report[0]["rows"]
    positives = [row for row in rows if row["label"] == 1]
    negatives = [row for row in rows if row["label"] == 0]
    true_positives = [row for row in positives if row["alert_on_suspect_pair"]]
    false_positives = [row for row in negatives if row["alerted"]]
    # Both kinds happen at this threshold, so the comparison below can tell a wrong row from a right one.
    assert 0 < len(true_positives) < len(positives)
    assert false_positives
    assert evaluation["conversations_pos"] == len(positives)
    assert evaluation["conversations_neg"] == len(negatives)
    assert evaluation["recall"] == pytest.approx(len(true_positives) / len(positives))
    assert evaluation["precision"] == pytest.approx(
        len(true_positives) / (len(true_positives) + len(false_positives))
    )
    assert evaluation["pr_auc"] == pytest.approx(
        average_precision([row["peak_pair_risk"] for row in rows], labels=[row["label"] for row in rows])
    )
    # `vigil eval` counts messages seen up to and including the alerting one.
    assert evaluation["median_messages_to_alert"] == pytest.approx(
        statistics.median(row["first_alert_index"] + 1 for row in true_positives)
    )
