"""Early cuts and the standard-English rewrite used to measure the detector (training/variants.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from training.data import Conversation, Message, read_conversations, write_conversations
from training.variants import (
    SEGMENT_MESSAGES,
    TRAINING_SEGMENT_LENGTHS,
    TRAINING_SEGMENTS_GROOMING,
    TRAINING_SEGMENTS_OTHER,
    main,
    segments,
    training_segments,
    variants,
)

OFF, DEC = "off-aaaaaaaaaaaa", "dec-bbbbbbbbbbbb"


def _conversation(
    conversation_id: str, *, label: int, interleaved: bool = True, size: int = 120
) -> Conversation:
    authors = [OFF, DEC] if label else ["u-aaaaaaaaaaaa", "u-bbbbbbbbbbbb"]
    return Conversation(
        id=conversation_id,
        source="pj_chatcoder1" if label else "dailydialog",
        label=label,
        setting="dm",
        interleaved=interleaved,
        suspects=(OFF,) if label else (),
        messages=tuple(Message(author=authors[i % 2], text=f"wat r u doin {i}") for i in range(size)),
    )


def test_only_interleaved_grooming_is_cut_and_rewritten() -> None:
    out = variants(
        [
            _conversation("a", label=1),
            _conversation("b", label=0),
            _conversation("c", label=1, interleaved=False),
        ]
    )
    assert {name: [c.id for c in items] for name, items in out.items()} == {
        "standard": ["a"],
        "first50": ["a"],
        "standard_first50": ["a"],
        "first100": ["a"],
        "standard_first100": ["a"],
        "later100": [],  # 120 messages: too few for a window from message 100
    }
    assert len(out["first50"][0].messages) == 50
    assert out["first100"][0].suspects == (OFF,)
    rewritten = out["standard"][0].messages[0].text
    assert "what" in rewritten.lower() and " r " not in f" {rewritten.lower()} "


def test_a_cut_keeps_the_suspects_even_before_they_write() -> None:
    conversation = Conversation(
        id="d",
        source="pj_pj24",
        label=1,
        setting="dm",
        interleaved=True,
        suspects=(OFF,),
        messages=tuple(Message(author=DEC if i < 60 else OFF, text="hi") for i in range(80)),
    )
    assert variants([conversation])["first50"][0].suspects == (OFF,)


def test_a_later_window_starts_at_message_100_with_replies_before_it_pointing_nowhere() -> None:
    base = _conversation("e", label=1, size=260)
    messages = list(base.messages)
    messages[101] = dataclasses.replace(messages[101], reply_to=100)  # inside the window
    messages[102] = dataclasses.replace(messages[102], reply_to=99)  # before it
    (window,) = variants([dataclasses.replace(base, messages=tuple(messages))])["later100"]
    assert len(window.messages) == 100 and window.messages[0].text == "wat r u doin 100"
    assert [m.reply_to for m in window.messages[:3]] == [None, 0, None]
    assert window.suspects == (OFF,) and window.label == 1


def test_cli_writes_readable_files(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    write_conversations(source, [_conversation("a", label=1)])
    assert main(["--out", str(tmp_path / "out"), str(source)]) == 0
    assert [len(c.messages) for c in read_conversations(tmp_path / "out" / "first50.jsonl")] == [50]


def test_segments_are_flattened_windows_of_both_speakers_with_the_conversation_label() -> None:
    flattened = segments([_conversation("a", label=1), _conversation("b", label=0, size=40)])
    by_source: dict[str, list[dict[str, object]]] = {}
    for record in flattened:
        by_source.setdefault(str(record["source"]), []).append(record)
    assert {k: len(v) for k, v in by_source.items()} == {"pj_chatcoder1": 3, "dailydialog": 2}
    assert all(r["label"] == 1 for r in by_source["pj_chatcoder1"])
    text = str(by_source["pj_chatcoder1"][0]["text"])
    assert len(text.split(" ")) == 5 * SEGMENT_MESSAGES  # every message of the window, in one line
    assert segments([_conversation("c", label=1, interleaved=False)]) == []


def test_training_segments_vary_in_length_and_layout_and_keep_the_label() -> None:
    grooming, ordinary = _conversation("a", label=1, size=300), _conversation("b", label=0, size=300)
    flattened = training_segments([grooming, ordinary, _conversation("c", label=1, interleaved=False)])
    by_label = {label: [r for r in flattened if r["label"] == label] for label in (0, 1)}
    assert len(by_label[1]) == TRAINING_SEGMENTS_GROOMING  # none from the non-interleaved chat
    assert len(by_label[0]) == TRAINING_SEGMENTS_OTHER
    assert {r["source"] for r in by_label[1]} == {"pj_chatcoder1"}
    words_per_message = 5
    lengths = {len(str(r["text"]).split()) // words_per_message for r in flattened}
    assert lengths <= set(TRAINING_SEGMENT_LENGTHS) and len(lengths) > 2
    layouts = {"\n" in str(r["text"]) for r in by_label[1]}
    assert layouts == {True, False}  # joined by line breaks and by spaces
    for record in flattened:  # consecutive messages, in order
        numbers = [int(word) for word in str(record["text"]).split() if word.isdigit()]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    assert training_segments([grooming], seed=1) != training_segments([grooming], seed=0)
    assert training_segments([grooming], seed=0) == training_segments([grooming], seed=0)
