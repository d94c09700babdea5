"""``python -m benchmarks.pair_update`` runs both pair models on real scores and reports their figures."""

from __future__ import annotations

import json
import lzma
from pathlib import Path
from typing import Any

from benchmarks.pair_update import main
from tests.support.gru_model import build_gru_keyword_model
from tests.support.keyword_model import build_keyword_model


def _write_conversations(data: Path) -> None:
    folder = data / "conversations"
    folder.mkdir(parents=True)
    lines = ["hi how are you", "what is your age", "lol ok", "this is our secret", "want to meet", "ok bye"]
    records: list[dict[str, Any]] = [
        {
            "id": f"pj24-{n}",
            "source": "pj_pj24",
            "label": 0,
            "setting": "dm",
            "interleaved": True,
            "suspects": [],
            "messages": [
                {
                    "author": ("u-a", "u-b")[i % 2] + str(n),
                    "text": lines[i % len(lines)],
                    "reply_to": None,
                    "ts": None,
                }
                for i in range(12)
            ],
        }
        for n in range(3)
    ]
    records.append({**records[0], "id": "pj24-9", "messages": records[0]["messages"][:3]})  # too short
    with lzma.open(folder / "pj_pj24.jsonl.xz", "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in records)


def test_compares_the_two_pair_models_per_update(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _write_conversations(data)
    ema = build_keyword_model(tmp_path / "ema")
    gru = build_gru_keyword_model(tmp_path / "gru")
    out = tmp_path / "result.json"
    argv = ["--data", str(data), "--model-dir", str(gru), "--baseline-model-dir", str(ema)]
    assert main([*argv, "--sources", "pj_pj24", "--updates", "60", "--rounds", "2", "--json", str(out)]) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["pairs"] == 3 and result["updates_per_round"] == 60
    for name in ("baseline", "model"):
        timing = result[name]
        assert 0 < timing["update_us"]["median"] <= timing["update_and_author_risks_us"]["median"]
        assert timing["author_risks_us"]["min"] > 0
    # A GRU state holds a hidden state per member; an EMA state two numbers.
    assert result["model"]["state_bytes"]["median"] > 2 * result["baseline"]["state_bytes"]["median"]
    assert len(result["ratio_model_over_baseline"]["per_round"]) == 2
    assert len(result["load_average_1m_after_each_round"]) == 2
