"""The shipped model on Vigil's realistic conversations, through ``vigil eval`` (the production monitor).
Floors, not targets: the model card reports the figures. On the development set
(``realistic_conversations``) 2026.12.11 (2026.12.10 with an alert reviewer that reads a pair's last
messages together before an alert is raised) alerts on 20 of 20 grooming conversations and none of 21
look-alikes (2026.12.10: 1 of 21, ``rl-023``, which the reviewer holds back); on the held-out set
(``realistic_heldout``, 24 grooming and 30 look-alike conversations written apart from every template and
training conversation and never used to choose a model) 24 of 24 and none of 30 (2026.12.10: 1,
``cal-n-018``); on the held-out quarter of the hand-written training conversations
(``examples/written/held.jsonl``, whose writers also wrote the trained-on three quarters) 72 of 80
(2026.12.10: 73) and 7 of 70 for writers A-S (2026.12.9: 8), 21 of 25 and 11 of 25 for the minimal pairs of
writers T-X (2026.12.9: 12), 10 of 10 and 1 of 10 for writers Y-Z (the same): 103 of 115 and 19 of 105. The
development set was read while earlier models were chosen, so its figures flatter them. A retrained model
that falls below these fails here before it ships.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vigil.bots.cli import main as vigil_main

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "examples" / "realistic_conversations.jsonl"
HELD_OUT = ROOT / "examples" / "realistic_heldout.jsonl"
WRITTEN_HELD = ROOT / "examples" / "written" / "held.jsonl"
# Measured 0.88 (both layouts) for 2026.12.1: the floor leaves room for a retrained model's noise.
SEGMENTS_PR_AUC_FLOOR = 0.8


def vigil_eval(data: Path, out_dir: Path) -> dict[str, Any]:
    """``vigil eval`` of ``data`` with the shipped model, its JSON report."""
    out = out_dir / "eval.json"
    assert vigil_main(["eval", "--data", str(data), "--json", str(out)]) == 0
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return result


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return vigil_eval(DATA, tmp_path_factory.mktemp("shipped-eval"))


def test_most_realistic_grooming_conversations_alert_early_on_the_suspect(evaluation: dict[str, Any]) -> None:
    assert evaluation["conversations_pos"] == 20
    assert evaluation["recall"] >= 0.95  # 20 of 20
    assert evaluation["suspect_accuracy"] == 1.0
    assert evaluation["victim_flag_rate"] == 0.0
    # Conversation messages (both sides) before the first alert.
    assert evaluation["median_messages_to_alert"] <= 20


def test_look_alikes_stay_almost_silent(evaluation: dict[str, Any]) -> None:
    assert evaluation["conversations_neg"] == 21
    assert evaluation["precision"] == 1.0  # no look-alike of 21 (2026.12.10: one)
    assert evaluation["pr_auc"] >= 0.98  # 1.000


@pytest.fixture(scope="module")
def held_out(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return vigil_eval(HELD_OUT, tmp_path_factory.mktemp("held-out-eval"))


def test_held_out_realistic_conversations(held_out: dict[str, Any]) -> None:
    assert (held_out["conversations_pos"], held_out["conversations_neg"]) == (24, 30)
    assert held_out["recall"] == 1.0  # 24 of 24
    assert held_out["precision"] == 1.0  # no look-alike of 30 (2026.12.10: one)
    assert held_out["suspect_accuracy"] == 1.0
    assert held_out["victim_flag_rate"] == 0.0
    assert held_out["pr_auc"] >= 0.99  # 0.995


@pytest.fixture(scope="module")
def written_held(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return vigil_eval(WRITTEN_HELD, tmp_path_factory.mktemp("written-held-eval"))


def test_held_out_hand_written_conversations(written_held: dict[str, Any]) -> None:
    # Writers A-S 80 and 70, T-X (minimal pairs, 2026-12-06) 25 and 25, Y-Z (siblings and cousins) 10 and 10.
    assert (written_held["conversations_pos"], written_held["conversations_neg"]) == (115, 105)
    assert written_held["recall"] >= 0.87  # 103 of 115 (72 of 80, 21 of 25, 10 of 10)
    assert written_held["precision"] >= 0.8  # 19 look-alikes of 105 (7 of 70, 11 of 25, 1 of 10): 103 of 122
    assert written_held["pr_auc"] >= 0.93  # 0.958


@pytest.fixture(scope="module")
def segment_evaluation(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The realistic conversations flattened whole (no speaker boundaries), joined by line breaks and by
    spaces: segments in a modern style, unlike the Perverted-Justice segments the held-out set holds."""
    folder = tmp_path_factory.mktemp("shipped-segments")
    records = []
    for line in DATA.read_text(encoding="utf-8").splitlines():
        conversation = json.loads(line)
        texts = [message["text"] for message in conversation["messages"]]
        for layout, joiner in (("lines", "\n"), ("space", " ")):
            records.append(
                {
                    "id": f"{conversation['id']}~{layout}",
                    "source": f"realistic-{layout}",
                    "label": conversation["label"],
                    "text": joiner.join(texts),
                }
            )
    data = folder / "segments.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    result: dict[str, Any] = vigil_eval(data, folder)["segments"]
    return result


def test_flattened_realistic_conversations_rank_grooming_first(segment_evaluation: dict[str, Any]) -> None:
    assert (segment_evaluation["segments_pos"], segment_evaluation["segments_neg"]) == (40, 42)
    assert segment_evaluation["pr_auc"] >= SEGMENTS_PR_AUC_FLOOR
    for layout in ("lines", "space"):
        assert segment_evaluation["by_source"][f"realistic-{layout}"]["pr_auc"] >= SEGMENTS_PR_AUC_FLOOR
