"""The training data reader and the author-disjoint split, on tiny synthetic records (not the shared data)."""

from __future__ import annotations

import json
import logging
import lzma
from pathlib import Path
from typing import Any

import pytest

from training.data import (
    Conversation,
    DataFormatError,
    ReplayBudget,
    Split,
    SplitConfig,
    assign_splits,
    load_dataset,
    model_text,
    offender_groups,
    read_conversations,
    select_replay_set,
    write_conversations,
    write_split,
)


def _record(
    record_id: str,
    source: str,
    *,
    label: int = 0,
    suspects: tuple[str, ...] = (),
    authors: tuple[str, str] = ("u-aaaaaaaaaaaa", "u-bbbbbbbbbbbb"),
    interleaved: bool = True,
    messages: int = 4,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": record_id,
        "source": source,
        "label": label,
        "setting": "dm",
        "interleaved": interleaved,
        "suspects": list(suspects),
        "messages": [
            {"author": authors[i % 2], "text": f"message {i} of {record_id}", "reply_to": None, "ts": None}
            for i in range(messages)
        ],
    }
    if meta:
        record["meta"] = meta
    return record


def _write(path: Path, records: list[dict[str, Any]], *, xz: bool = False) -> Path:
    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
    if xz:
        with lzma.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _corpus(folder: Path) -> Path:
    """A small shared-format data folder: 30 offenders across three PJ sources, and negatives."""
    conversations = folder / "conversations"
    conversations.mkdir(parents=True)
    koutli, chatcoder, pj24 = [], [], []
    for n in range(30):
        offender, decoy = f"off-{n:012x}", f"dec-{n:012x}"
        pair = (offender, decoy)
        koutli.append(
            _record(
                f"pjk-{n:04d}", "pj_koutli", label=1, suspects=(offender,), authors=pair, interleaved=False
            )
        )
        if n % 3 == 0:
            chatcoder.append(
                _record(f"pjcc1-{n:04d}", "pj_chatcoder1", label=1, suspects=(offender,), authors=pair)
            )
        if n % 5 == 0:
            pj24.append(_record(f"pj24-{n:04d}", "pj_pj24", label=1, suspects=(offender,), authors=pair))
    _write(conversations / "pj_koutli.jsonl.xz", koutli, xz=True)
    _write(conversations / "pj_chatcoder1.jsonl", chatcoder)
    _write(conversations / "pj_pj24.jsonl.xz", pj24, xz=True)
    negatives = [_record(f"irc-{n:04d}", "irc_disentanglement", messages=50) for n in range(20)]
    _write(conversations / "irc_disentanglement.jsonl.xz", negatives, xz=True)
    nps = [
        _record(f"nps-{n:04d}", "nps_chat", meta={"age_band": "teens" if n < 2 else "20s"}) for n in range(10)
    ]
    _write(conversations / "nps_chat.jsonl", nps)
    return folder


def test_reads_xz_and_plain_files_alike(tmp_path: Path) -> None:
    records = [_record("x-0001", "src"), _record("x-0002", "src", messages=3)]
    plain = read_conversations(_write(tmp_path / "a.jsonl", records))
    packed = read_conversations(_write(tmp_path / "a.jsonl.xz", records, xz=True))
    assert plain == packed
    assert [c.id for c in packed] == ["x-0001", "x-0002"]
    assert len(packed[1].messages) == 3
    assert packed[0].messages[0].text == "message 0 of x-0001"


def test_bad_line_is_reported_with_its_line_number(tmp_path: Path) -> None:
    good = json.dumps(_record("x-0001", "src"))
    path = tmp_path / "bad.jsonl.xz"
    with lzma.open(path, "wt", encoding="utf-8") as handle:
        handle.write(good + "\n" + "{not json\n" + good.replace("x-0001", "x-0003") + "\n")
    with pytest.raises(DataFormatError) as caught:
        read_conversations(path)
    assert caught.value.line == 2
    assert f"{path}:2:" in str(caught.value)


def test_invalid_record_names_line_and_problem(tmp_path: Path) -> None:
    broken = _record("x-0002", "src", label=1)  # label 1 without suspects
    path = _write(tmp_path / "bad.jsonl", [_record("x-0001", "src"), _record("x-0003", "src"), broken])
    with pytest.raises(DataFormatError, match=r"bad\.jsonl:3: a label-1 record needs suspects"):
        read_conversations(path)


def test_non_strict_reading_skips_and_logs_bad_lines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "mixed.jsonl"
    lines = [json.dumps(_record("x-0001", "src")), "[1, 2]", json.dumps(_record("x-0003", "src"))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="training.data"):
        conversations = read_conversations(path, strict=False)
    assert [c.id for c in conversations] == ["x-0001", "x-0003"]
    assert any("mixed.jsonl:2: not a JSON object" in r.getMessage() for r in caplog.records)


def test_split_is_deterministic(tmp_path: Path) -> None:
    dataset = load_dataset([_corpus(tmp_path / "data")])
    first = assign_splits(dataset.conversations, config=SplitConfig(seed=13))
    second = assign_splits(tuple(reversed(dataset.conversations)), config=SplitConfig(seed=13))
    assert first == second
    other_seed = assign_splits(dataset.conversations, config=SplitConfig(seed=14))
    assert other_seed != first
    assert set(first.values()) == set(Split)


def test_split_is_author_disjoint_across_sources(tmp_path: Path) -> None:
    dataset = load_dataset([_corpus(tmp_path / "data")])
    splits = assign_splits(dataset.conversations, config=SplitConfig(seed=13))
    offender_split: dict[str, set[Split]] = {}
    for conversation in dataset.conversations:
        for suspect in conversation.suspects:
            offender_split.setdefault(suspect, set()).add(splits[conversation.id])
    assert all(len(s) == 1 for s in offender_split.values())
    # offender 0 has a record in all three PJ sources: all three land in one split
    assert splits["pjk-0000"] == splits["pjcc1-0000"] == splits["pj24-0000"]
    # label-0 records: the split fractions hold per stratum, and the NPS teens room is in train and val
    nps = {c.id: splits[c.id] for c in dataset.conversations if c.source == "nps_chat"}
    assert {nps["nps-0000"], nps["nps-0001"]} == {Split.TRAIN, Split.VAL}
    irc = [splits[c.id] for c in dataset.conversations if c.source == "irc_disentanglement"]
    assert (irc.count(Split.VAL), irc.count(Split.CALIB), irc.count(Split.TRAIN)) == (4, 2, 14)


def test_offenders_sharing_a_record_are_grouped() -> None:
    def conv(record_id: str, suspects: tuple[str, ...]) -> Conversation:
        return Conversation(
            id=record_id, source="s", label=1, setting="dm", interleaved=True, suspects=suspects, messages=()
        )

    groups = offender_groups([conv("a", ("off-2",)), conv("b", ("off-2", "off-1")), conv("c", ("off-3",))])
    assert groups == {"a": "off-1", "b": "off-1", "c": "off-3"}


def test_replay_sets_round_trip_in_the_shared_format(tmp_path: Path) -> None:
    dataset = load_dataset([_corpus(tmp_path / "data")])
    manifest = write_split(
        dataset, tmp_path / "split", config=SplitConfig(seed=13), budget=ReplayBudget(koutli_records=2)
    )
    val = load_dataset([tmp_path / "split" / "val"])
    assert [c.id for c in val.conversations] == manifest["replay_sets"]["val"]["ids"]
    originals = {c.id: c for c in dataset.conversations}
    assert all(originals[c.id] == c for c in val.conversations)
    splits = assign_splits(dataset.conversations, config=SplitConfig(seed=13))
    assert all(splits[c.id] == Split.VAL for c in val.conversations)
    assert sum(c.source == "pj_koutli" for c in val.conversations) <= 2
    chosen = select_replay_set(
        dataset.conversations, splits, split=Split.VAL, budget=ReplayBudget(koutli_records=2), seed=13
    )
    assert [c.id for c in chosen] == [c.id for c in val.conversations]


def test_write_then_read_xz(tmp_path: Path) -> None:
    conversations = read_conversations(
        _write(tmp_path / "in.jsonl", [_record("x-0002", "s"), _record("x-0001", "s")])
    )
    assert write_conversations(tmp_path / "out.jsonl.xz", conversations) == 2
    assert [c.id for c in read_conversations(tmp_path / "out.jsonl.xz")] == ["x-0001", "x-0002"]


def test_model_text_drops_participant_placeholders() -> None:
    assert model_text("<user>, quite stable though  :)") == "quite stable though :)"
    assert model_text("hi <user> call me at <phone>") == "hi call me at <phone>"
    assert model_text("<user>") == ""
