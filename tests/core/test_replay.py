from __future__ import annotations

import dataclasses
import json
import lzma
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from vigil.bots.core.replay import (
    BadRecord,
    ConversationRecord,
    RecordMessage,
    SegmentRecord,
    Setting,
    eval_messages,
    iter_records,
    record_to_messages,
)

DEMO_FILE = Path(__file__).resolve().parents[2] / "examples" / "demo_conversations.jsonl"


def _conversation(**overrides: object) -> dict[str, object]:
    record: dict[str, object] = {
        "id": "t-0001",
        "source": "test",
        "label": 1,
        "setting": "dm",
        "interleaved": True,
        "suspects": ["u-adult"],
        "messages": [
            {"author": "u-adult", "text": "hi", "reply_to": None, "ts": None},
            {"author": "u-kid", "text": "hey", "reply_to": 0, "ts": None},
            {"author": "u-adult", "text": "how old are you?", "reply_to": None, "ts": None},
        ],
        "meta": {"description": "test"},
    }
    record.update(overrides)
    return record


def _segment(**overrides: object) -> dict[str, object]:
    segment: dict[str, object] = {"id": "s-0001", "source": "segs", "label": 0, "text": "hello there"}
    segment.update(overrides)
    return segment


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _record(
    *,
    messages: tuple[RecordMessage, ...],
    setting: Setting = "dm",
    record_id: str = "r-1",
    source: str = "src",
) -> ConversationRecord:
    return ConversationRecord(
        id=record_id,
        source=source,
        label=0,
        setting=setting,
        interleaved=True,
        suspects=(),
        messages=messages,
        line_number=1,
        path=Path("x.jsonl"),
    )


def test_reads_plain_jsonl(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "a.jsonl", [json.dumps(_conversation()), json.dumps(_segment())])

    records = list(iter_records(path))

    assert len(records) == 2
    conversation, segment = records
    assert isinstance(conversation, ConversationRecord)
    assert conversation.id == "t-0001"
    assert conversation.source == "test"
    assert conversation.label == 1
    assert conversation.setting == "dm"
    assert conversation.interleaved is True
    assert conversation.suspects == ("u-adult",)
    assert conversation.messages == (
        RecordMessage(author="u-adult", text="hi", reply_to=None),
        RecordMessage(author="u-kid", text="hey", reply_to=0),
        RecordMessage(author="u-adult", text="how old are you?", reply_to=None),
    )
    assert (conversation.line_number, conversation.path) == (1, path)
    assert segment == SegmentRecord(
        id="s-0001", source="segs", label=0, text="hello there", line_number=2, path=path
    )


def test_reads_xz_compressed_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl.xz"
    with lzma.open(path, "wt", encoding="utf-8") as stream:
        stream.write(json.dumps(_conversation()) + "\n")
        stream.write(json.dumps(_conversation(id="t-0002", label=0, suspects=[])) + "\n")

    records = list(iter_records(path))

    assert [type(record) for record in records] == [ConversationRecord, ConversationRecord]
    assert [record.line_number for record in records] == [1, 2]
    assert isinstance(records[1], ConversationRecord)
    assert records[1].label == 0


def test_compression_is_detected_by_content_not_name(tmp_path: Path) -> None:
    path = tmp_path / "misnamed.jsonl"
    path.write_bytes(lzma.compress((json.dumps(_segment()) + "\n").encode()))

    assert [type(record) for record in iter_records(path)] == [SegmentRecord]


def test_blank_lines_are_skipped_but_counted(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "a.jsonl", ["", json.dumps(_segment()), "   ", json.dumps(_segment())])

    assert [record.line_number for record in iter_records(path)] == [2, 4]


def test_crlf_line_endings_and_a_byte_order_mark_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "windows.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf" + json.dumps(_segment()).encode() + b"\r\n" + json.dumps(_segment()).encode()
    )

    assert [type(record) for record in iter_records(path)] == [SegmentRecord, SegmentRecord]


@pytest.mark.parametrize(
    ("line", "reason_part"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({"id": "x", "source": "s", "label": 0}), "neither a conversation"),
        (json.dumps(_conversation(messages=[])), "'messages' is empty"),
        (json.dumps(_conversation(messages="hi")), "'messages' must be a list"),
        (json.dumps(_conversation(messages=["hi"])), "messages[0] must be an object"),
        (json.dumps(_conversation(messages=[{"author": "u-adult"}])), "messages[0].text is missing"),
        (
            json.dumps(_conversation(messages=[{"author": 5, "text": "hi"}])),
            "messages[0].author must be a string",
        ),
        (
            json.dumps(_conversation(messages=[{"author": "u-adult", "text": ""}])),
            "messages[0].text is empty",
        ),
        (
            json.dumps(_conversation(messages=[{"author": "u-adult", "text": "hi", "reply_to": 0}])),
            "not the index of an earlier message",
        ),
        (
            json.dumps(_conversation(messages=[{"author": "u-adult", "text": "hi", "reply_to": "0"}])),
            "reply_to must be an integer or null",
        ),
        (json.dumps(_conversation(label=2)), "'label' must be 0 or 1"),
        (json.dumps(_conversation(label=True)), "'label' must be 0 or 1"),
        (json.dumps(_conversation(label="1")), "'label' must be 0 or 1"),
        (json.dumps(_conversation(setting="group")), "'setting' must be"),
        (json.dumps(_conversation(interleaved="yes")), "'interleaved' must be true or false"),
        (json.dumps(_conversation(suspects="u-adult")), "'suspects' must be a list"),
        (json.dumps(_conversation(suspects=[])), "needs at least one id in 'suspects'"),
        (json.dumps(_conversation(label=0)), "must have an empty 'suspects'"),
        (json.dumps(_conversation(suspects=["u-nobody"])), "wrote no message: u-nobody"),
        (json.dumps({k: v for k, v in _conversation().items() if k != "id"}), "'id' is missing"),
        (json.dumps(_conversation(id=7)), "'id' must be a string"),
        (json.dumps(_segment(text=3)), "'text' must be a string"),
        (json.dumps(_segment(label=None)), "'label' must be 0 or 1"),
    ],
)
def test_a_bad_line_becomes_a_bad_record_and_reading_goes_on(
    tmp_path: Path, line: str, reason_part: str
) -> None:
    path = _write_lines(tmp_path / "a.jsonl", [json.dumps(_segment()), line, json.dumps(_conversation())])

    first, bad, last = iter_records(path)

    assert isinstance(first, SegmentRecord)
    assert isinstance(bad, BadRecord)
    assert (bad.path, bad.line_number) == (path, 2)
    assert reason_part in bad.reason
    assert isinstance(last, ConversationRecord)
    assert last.line_number == 3


def test_invalid_utf8_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    good = json.dumps(_segment()).encode()
    path.write_bytes(good + b"\n" + b'{"id": "\xff\xfe"}\n' + good + b"\n")

    records = list(iter_records(path))

    assert [type(record) for record in records] == [SegmentRecord, BadRecord, SegmentRecord]
    assert isinstance(records[1], BadRecord)
    assert records[1].line_number == 2
    assert "UTF-8" in records[1].reason


def test_truncated_xz_stream_ends_with_a_bad_record(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl.xz"
    payload = "".join(
        json.dumps(_segment(id=f"s-{index}", text=f"text {index} " * 50)) + "\n" for index in range(200)
    )
    compressed = lzma.compress(payload.encode())
    path.write_bytes(compressed[: len(compressed) // 2])

    records = list(iter_records(path))

    assert isinstance(records[-1], BadRecord)
    assert "xz stream" in records[-1].reason
    assert all(isinstance(record, SegmentRecord) for record in records[:-1])


def test_missing_file_raises_file_not_found_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"

    with pytest.raises(FileNotFoundError) as caught:
        iter_records(missing)

    assert caught.value.filename == str(missing)


def test_record_to_messages_maps_ids_replies_and_timestamps() -> None:
    record = _record(
        record_id="c-9",
        source="src",
        setting="channel",
        messages=(
            RecordMessage(author="u-a", text="first"),
            RecordMessage(author="u-b", text="second", reply_to=0),
            RecordMessage(author="u-c", text="third", reply_to=1),
        ),
    )

    messages = record_to_messages(record)

    assert [message.message_id for message in messages] == ["c-9:0", "c-9:1", "c-9:2"]
    assert {(message.platform, message.space_id, message.channel_id) for message in messages} == {
        ("replay", "src", "c-9")
    }
    assert [message.author_id for message in messages] == ["u-a", "u-b", "u-c"]
    assert [message.text for message in messages] == ["first", "second", "third"]
    assert [(message.reply_to_message_id, message.reply_to_author_id) for message in messages] == [
        (None, None),
        ("c-9:0", "u-a"),
        ("c-9:1", "u-b"),
    ]
    start = datetime(2024, 1, 1, tzinfo=UTC)
    assert [message.timestamp for message in messages] == [start + timedelta(seconds=i) for i in range(3)]
    assert all(message.timestamp.utcoffset() == timedelta(0) for message in messages)
    assert not any(message.is_dm for message in messages)
    assert all(message.recipient_ids == () and message.mentioned_user_ids == () for message in messages)


def test_eval_messages_put_each_record_of_a_run_in_a_space_of_its_own() -> None:
    record = _record(record_id="c-9", source="src", messages=(RecordMessage(author="u-a", text="first"),))
    first, again = eval_messages(record, ordinal=0), eval_messages(record, ordinal=1)
    assert [m.space_id for m in first] == ["0:src/c-9"] and [m.space_id for m in again] == ["1:src/c-9"]
    assert {m.platform for m in first} == {"eval"}
    # Everything else is the replay's translation.
    plain = record_to_messages(record, platform="eval")
    assert [dataclasses.replace(m, space_id="src") for m in first] == plain


def test_two_party_dm_recipient_is_the_other_author() -> None:
    record = _record(
        messages=(
            RecordMessage(author="u-a", text="hi"),
            RecordMessage(author="u-b", text="hey"),
            RecordMessage(author="u-a", text="how are you"),
        )
    )

    messages = record_to_messages(record, platform="demo")

    assert all(message.is_dm and message.platform == "demo" for message in messages)
    assert [message.recipient_ids for message in messages] == [("u-b",), ("u-a",), ("u-b",)]


def test_multi_party_dm_recipients_are_all_other_authors() -> None:
    record = _record(
        messages=(
            RecordMessage(author="u-a", text="hi"),
            RecordMessage(author="u-b", text="hey"),
            RecordMessage(author="u-c", text="yo"),
        )
    )

    messages = record_to_messages(record)

    assert [message.recipient_ids for message in messages] == [("u-b", "u-c"), ("u-a", "u-c"), ("u-a", "u-b")]


def test_base_time_is_converted_to_utc_and_naive_is_refused() -> None:
    record = _record(
        messages=(RecordMessage(author="u-a", text="hi"), RecordMessage(author="u-b", text="yo"))
    )
    plus_two = timezone(timedelta(hours=2))

    messages = record_to_messages(record, base_time=datetime(2024, 5, 1, 12, 0, tzinfo=plus_two))

    assert messages[1].timestamp == datetime(2024, 5, 1, 10, 0, 1, tzinfo=UTC)
    assert messages[1].timestamp.tzinfo == UTC
    with pytest.raises(ValueError, match="timezone-aware"):
        record_to_messages(record, base_time=datetime(2024, 5, 1))


def test_demo_file_has_five_conversations_and_one_positive() -> None:
    records = list(iter_records(DEMO_FILE))

    assert all(isinstance(record, ConversationRecord) for record in records), records
    conversations = [record for record in records if isinstance(record, ConversationRecord)]
    assert len(conversations) == 5
    assert len({record.id for record in conversations}) == 5
    assert {record.source for record in conversations} == {"demo"}
    positives = [record for record in conversations if record.label == 1]
    assert len(positives) == 1
    (grooming,) = positives
    assert grooming.setting == "dm"
    assert grooming.suspects == ("u-demo-adult",)
    assert {message.author for message in grooming.messages} == {"u-demo-adult", "u-demo-kid"}
    assert 60 <= len(grooming.messages) <= 90  # two sessions: enough of the adult's messages to alert on
    for record in conversations:
        assert all(message.author.startswith("u-demo-") for message in record.messages)
        if record.label == 0:
            assert 20 <= len(record.messages) <= 40
        assert len(record_to_messages(record)) == len(record.messages)
