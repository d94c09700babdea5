"""The hand-written training conversations (``examples/written``): format, labels and suspects, the split,
and no overlap with either realistic test set."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from training.data import read_conversations
from training.modern_lines import GROOMING_STAGES
from training.pair_head import POLICY_SOURCE, WRITTEN_SOURCE
from vigil.bots.core.replay import ConversationRecord, iter_records

REPO = Path(__file__).resolve().parents[2]
WRITTEN = REPO / "examples" / "written"
REALISTIC_SETS = (
    REPO / "examples" / "realistic_conversations.jsonl",
    REPO / "examples" / "realistic_heldout.jsonl",
)
AUTHOR_RE = re.compile(r"^u-[0-9a-f]{12}$")


def _raw(name: str) -> list[dict[str, Any]]:
    with (WRITTEN / name).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


@pytest.fixture(scope="module")
def split() -> dict[str, list[dict[str, Any]]]:
    return {"train": _raw("train.jsonl"), "held": _raw("held.jsonl")}


def test_every_record_is_a_valid_conversation(split: dict[str, list[dict[str, Any]]]) -> None:
    for name, records in split.items():
        assert len(records) == len(read_conversations(WRITTEN / f"{name}.jsonl"))
        replayed = list(iter_records(WRITTEN / f"{name}.jsonl"))
        assert all(isinstance(record, ConversationRecord) for record in replayed)
        for record in records:
            assert record["source"] == WRITTEN_SOURCE["source"], record["id"]
            messages = record["messages"]
            assert 12 <= len(messages) <= 90, record["id"]
            authors = {message["author"] for message in messages}
            assert all(AUTHOR_RE.match(author) for author in authors), record["id"]
            assert (record["setting"] == "dm") == (len(authors) == 2), record["id"]
            suspects = set(record["suspects"])
            if record["label"] == 1:
                assert suspects and suspects <= authors, record["id"]
            else:
                assert not suspects, record["id"]
            for index, message in enumerate(messages):
                assert message["text"].strip(), record["id"]
                target = message["reply_to"]
                assert target is None or 0 <= target < index, record["id"]
                if "stage" in message:
                    assert message["stage"] in GROOMING_STAGES, record["id"]
                    assert message["author"] in suspects, record["id"]


def test_split_is_disjoint_and_keeps_minimal_pairs_together(split: dict[str, list[dict[str, Any]]]) -> None:
    train_ids = {record["id"] for record in split["train"]}
    held_ids = {record["id"] for record in split["held"]}
    assert not train_ids & held_ids
    assert len(train_ids) == len(split["train"]) and len(held_ids) == len(split["held"])
    # Each minimal-pair writer numbers its own pairs from 1.
    pairs = {
        name: {
            (record["meta"]["writer"], record["meta"]["pair"])
            for record in records
            if "pair" in record["meta"]
        }
        for name, records in split.items()
    }
    assert pairs["train"] and pairs["held"] and not pairs["train"] & pairs["held"]
    # A quarter of each writer's conversations is held out.
    writers = Counter(record["meta"]["writer"] for record in split["held"])
    assert set(writers) == set("ABCDEFGHIJKLQRSTUVWXYZ")
    assert all(9 <= count <= 11 for count in writers.values())


def test_both_labels_and_settings_are_covered(split: dict[str, list[dict[str, Any]]]) -> None:
    for records in split.values():
        kinds = Counter((record["label"], record["setting"]) for record in records)
        assert {(1, "dm"), (1, "channel"), (0, "dm"), (0, "channel")} <= set(kinds)
    staged = Counter(
        message["stage"] for record in split["train"] for message in record["messages"] if "stage" in message
    )
    assert set(staged) == set(GROOMING_STAGES)


def _normalised(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def test_the_policy_set_is_apart_from_training_and_balanced(split: dict[str, list[dict[str, Any]]]) -> None:
    # Its four writers (M-P) wrote only for choosing the alert policy: nothing in it is trained on.
    policy = _raw("policy.jsonl")
    assert len(policy) == len(read_conversations(WRITTEN / "policy.jsonl")) == 120
    assert {record["source"] for record in policy} == {POLICY_SOURCE}
    assert {record["meta"]["writer"] for record in policy} == set("MNOP")
    assert Counter(record["label"] for record in policy) == {0: 60, 1: 60}
    trained = {record["id"] for records in split.values() for record in records}
    assert not trained & {record["id"] for record in policy}
    for record in policy:
        assert (record["label"] == 1) == bool(record["suspects"]), record["id"]


def test_no_overlap_with_the_realistic_test_sets(split: dict[str, list[dict[str, Any]]]) -> None:
    written = [
        _normalised(message["text"])
        for records in (*split.values(), _raw("policy.jsonl"))
        for record in records
        for message in record["messages"]
    ]
    for path in REALISTIC_SETS:
        held_lines = {_normalised(record.text) for record in _messages(path)}
        assert len(held_lines) > 500
        shingles = {
            tuple(words[i : i + 8])
            for words in (line.split() for line in held_lines)
            for i in range(len(words) - 7)
        }
        # Everyday phrases ("i'll think about it") may recur; a written conversation copied from a test set
        # would share dozens of lines.
        reused = {line for line in written if len(line.split()) >= 5 and line in held_lines}
        assert len(reused) < len(set(written)) / 1000, sorted(reused)
        shared = sum(
            any(tuple(words[i : i + 8]) in shingles for i in range(len(words) - 7))
            for words in (line.split() for line in written)
        )
        assert shared / len(written) < 0.005


def _messages(path: Path) -> list[Any]:
    out: list[Any] = []
    for record in iter_records(path):
        assert isinstance(record, ConversationRecord)
        out.extend(record.messages)
    return out
