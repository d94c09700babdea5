"""``python -m benchmarks.reviewer`` times the alert reviewer against the detector, in rounds."""

from __future__ import annotations

import json
import lzma
import statistics
from pathlib import Path

import pytest

from benchmarks.reviewer import main
from tests.support.keyword_model import add_keyword_reviewer, build_keyword_model


def _data(root: Path) -> Path:
    conversations = root / "conversations"
    conversations.mkdir(parents=True)
    words = ("hello there", "nice game", "see you later", "keep it secret", "lol ok", "sister")
    records = [
        {
            "id": f"c-{n}",
            "source": "toy",
            "label": 0,
            "interleaved": True,
            "setting": "dm",
            "suspects": [],
            "messages": [
                {"author": "a" if i % 2 else "b", "text": words[(n + i) % len(words)]} for i in range(30)
            ],
        }
        for n in range(5)
    ]
    with lzma.open(conversations / "toy.jsonl.xz", "wt", encoding="utf-8") as out:
        out.writelines(json.dumps(record) + "\n" for record in records)
    return root


def test_reports_review_cost_in_rounds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model_dir = add_keyword_reviewer(
        build_keyword_model(tmp_path / "model"), word_weights={"sister": -6.0}, window_messages=8
    )
    out = tmp_path / "result.json"
    argv = ["--data", str(_data(tmp_path / "data")), "--model-dir", str(model_dir), "--sources", "toy"]
    assert main([*argv, "--windows", "12", "--rounds", "3", "--json", str(out)]) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    assert json.loads(capsys.readouterr().out) == result
    assert result["windows"] == 12 and len(result["rounds"]) == 3
    assert result["messages_per_window_mean"] == 8.0  # 30-message chats: every window is full
    worth = [r["messages_worth"] for r in result["rounds"]]
    assert min(worth) > 0 and result["messages_worth_median"] == pytest.approx(
        statistics.median(worth), abs=0.01
    )
    assert all(r["review_ms_p99"] >= r["review_ms_median"] > 0 for r in result["rounds"])


def test_a_model_without_a_reviewer_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir = build_keyword_model(tmp_path / "model")
    argv = ["--data", str(_data(tmp_path / "data")), "--model-dir", str(model_dir), "--sources", "toy"]
    assert main(argv) == 2
    assert "ships no alert reviewer" in capsys.readouterr().err
