"""Integrity of ``examples/realistic_conversations.jsonl``, Vigil's own evaluation set of modern chat.

The file is read with the production reader (``vigil.bots.core.replay``), so what these tests accept is what
``vigil eval`` and ``vigil scan`` will replay. The rest checks what the reader does not: the promises that
``examples/realistic_conversations.md`` makes about the set (balance, coverage, hand-set first signals,
made-up ids, mentions that point at participants, no personal data or media, nothing explicit).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vigil.bots.core.replay import BadRecord, ConversationRecord, iter_records, record_to_messages

DATA = Path(__file__).resolve().parents[2] / "examples" / "realistic_conversations.jsonl"

TOP_KEYS = {"id", "interleaved", "label", "messages", "meta", "setting", "source", "suspects"}
MESSAGE_KEYS = {"author", "reply_to", "text", "ts"}
PLATFORMS = {"discord", "slack", "http"}
# Made-up ids, visibly so: Discord snowflakes padded with zeros, Slack ids with "RL", readable ids elsewhere.
AUTHOR_ID = {
    "discord": re.compile(r"119000000000\d{7}"),
    "slack": re.compile(r"U0RL\d{4}"),
    "http": re.compile(r"u-rl\d{2}-[a-z0-9-]+"),
}
# As the adapters put them in the text: Discord keeps `<@id>` in the content; Slack's plain_text gives `@U…`.
DISCORD_MENTION = re.compile(r"<@!?(\d+)>")
SLACK_MENTION = re.compile(r"@([UW][A-Z0-9]{2,})\b")

URL = re.compile(
    r"(?:https?://|www\.|\b[\w-]+\.(?:com|net|org|io|gg|me|ly|tv|co|uk|app|link)\b(?!\w))", re.IGNORECASE
)
EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
# Seven or more digits, possibly split by spaces, dots, dashes or brackets, optionally after "+".
PHONE = re.compile(r"(?<![\w<@])\+?\d(?:[\s().-]*\d){6,}")
STREET = re.compile(
    r"\b\d{1,5}\s+(?:[A-Z][a-z]+\s+){1,3}(?:street|st|road|rd|avenue|ave|lane|ln|drive|dr|close|way)\b",
    re.IGNORECASE,
)
MEDIA = re.compile(
    r"\.(?:png|jpe?g|gif|webp|heic|mp4|mov|webm|mp3|wav)\b|cdn\.discord|tenor|giphy|attachment", re.IGNORECASE
)
# The set is non-explicit by design: none of these words may appear anywhere in it.
EXPLICIT = re.compile(
    r"\b(?:nudes?|naked|sex|sexy|sexual|boobs?|horny|underwear|lingerie|topless|undress\w*)\b", re.IGNORECASE
)


def _lines() -> list[str]:
    return [line for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]


def _raw() -> list[dict[str, Any]]:
    return [json.loads(line) for line in _lines()]


def _texts(record: dict[str, Any]) -> Iterator[str]:
    for message in record["messages"]:
        yield message["text"]


@pytest.fixture(scope="module")
def raw() -> list[dict[str, Any]]:
    return _raw()


@pytest.fixture(scope="module")
def records() -> list[ConversationRecord]:
    parsed = list(iter_records(DATA))
    bad = [record for record in parsed if isinstance(record, BadRecord)]
    assert not bad, [f"line {record.line_number}: {record.reason}" for record in bad]
    conversations = [record for record in parsed if isinstance(record, ConversationRecord)]
    assert len(conversations) == len(parsed)
    return conversations


def test_every_line_is_a_conversation_the_production_reader_accepts(
    records: list[ConversationRecord],
) -> None:
    assert len(records) == len(_lines()) >= 36
    for record in records:
        assert record.source == "vigil-realistic"
        assert record.interleaved is True
        # And it turns into the ChatMessage stream eval and scan replay, one per message.
        assert len(record_to_messages(record, platform="eval")) == len(record.messages)


def test_ids_are_unique(raw: list[dict[str, Any]]) -> None:
    counts = Counter(record["id"] for record in raw)
    assert [record_id for record_id, n in counts.items() if n > 1] == []


def test_lines_are_canonical_json_with_sorted_keys_at_every_level(raw: list[dict[str, Any]]) -> None:
    for line, record in zip(_lines(), raw, strict=True):
        assert line == json.dumps(record, ensure_ascii=False, sort_keys=True), record["id"]
        assert set(record) == TOP_KEYS, record["id"]
        for message in record["messages"]:
            assert set(message) == MESSAGE_KEYS, record["id"]
            assert message["ts"] is None
            assert message["text"] == message["text"].strip() and message["text"]


def test_labels_and_suspects_agree(raw: list[dict[str, Any]]) -> None:
    for record in raw:
        authors = {message["author"] for message in record["messages"]}
        children = set(record["meta"]["child_authors"])
        assert children <= authors, record["id"]
        if record["label"] == 1:
            assert record["suspects"], record["id"]
            assert set(record["suspects"]) <= authors, record["id"]
            assert not set(record["suspects"]) & children, record["id"]
            assert children, f"{record['id']}: a grooming conversation names its child"
            assert record["meta"]["pace"] in {"fast", "slow"}
            assert record["meta"]["age_cue"].strip()
            assert "kind" not in record["meta"]
        else:
            assert record["label"] == 0
            assert record["suspects"] == [], record["id"]
            assert record["meta"]["kind"].strip()
            assert "pace" not in record["meta"] and "first_signal_index" not in record["meta"]


def test_reply_to_points_at_an_earlier_message_by_someone_else(raw: list[dict[str, Any]]) -> None:
    for record in raw:
        messages = record["messages"]
        for index, message in enumerate(messages):
            target = message["reply_to"]
            if target is None:
                continue
            assert type(target) is int and 0 <= target < index, (record["id"], index)
            assert messages[target]["author"] != message["author"], (record["id"], index)


def test_sizes_balance_and_coverage(raw: list[dict[str, Any]]) -> None:
    labels = Counter(record["label"] for record in raw)
    assert labels[1] >= 18 and labels[0] >= 18
    for record in raw:
        assert 12 <= len(record["messages"]) <= 90, record["id"]
    for label in (0, 1):
        subset = [record for record in raw if record["label"] == label]
        assert {record["setting"] for record in subset} == {"dm", "channel"}, label
        assert {record["meta"]["platform"] for record in subset} == PLATFORMS, label
    positives = [record for record in raw if record["label"] == 1]
    assert {record["meta"]["pace"] for record in positives} == {"fast", "slow"}
    # Slow ones are weeks of rapport compressed: 40 to 80 messages.
    for record in positives:
        if record["meta"]["pace"] == "slow":
            assert 40 <= len(record["messages"]) <= 80, record["id"]
    # Look-alikes of many kinds, not one kind repeated.
    assert len({record["meta"]["kind"] for record in raw if record["label"] == 0}) >= 12


def test_author_ids_are_made_up_and_every_author_has_a_display_name(raw: list[dict[str, Any]]) -> None:
    seen: dict[str, str] = {}
    for record in raw:
        platform = record["meta"]["platform"]
        authors = {message["author"] for message in record["messages"]}
        for author in authors:
            assert AUTHOR_ID[platform].fullmatch(author), (record["id"], author)
            # An id belongs to one conversation only: no state or identity is shared between records.
            assert seen.setdefault(author, record["id"]) == record["id"], author
        assert set(record["meta"]["display_names"]) == authors, record["id"]


def test_mentions_use_the_platforms_form_and_point_at_participants(raw: list[dict[str, Any]]) -> None:
    mentions = 0
    for record in raw:
        platform = record["meta"]["platform"]
        authors = {message["author"] for message in record["messages"]}
        for text in _texts(record):
            discord = DISCORD_MENTION.findall(text)
            slack = SLACK_MENTION.findall(text)
            if platform != "discord":
                assert not discord, (record["id"], text)
            if platform != "slack":
                assert not slack, (record["id"], text)
            for target in (*discord, *slack):
                assert target in authors, (record["id"], text)
                mentions += 1
    assert mentions >= 5


def test_no_links_media_or_personal_data(raw: list[dict[str, Any]]) -> None:
    for record in raw:
        for text in _texts(record):
            # Discord mentions are long digit runs by design; they are checked above.
            plain = DISCORD_MENTION.sub("<user>", text)
            for name, pattern in (
                ("url", URL),
                ("email", EMAIL),
                ("phone", PHONE),
                ("street address", STREET),
                ("media", MEDIA),
                ("explicit term", EXPLICIT),
            ):
                assert not pattern.search(plain), f"{record['id']}: {name} in {text!r}"


@pytest.mark.parametrize(
    ("pattern", "sample"),
    [
        (URL, "join us at https://example.test/x"),
        (URL, "www.something.org"),
        (URL, "my page is coolsite.gg"),
        (EMAIL, "mail me at kid.name+1@mail.example"),
        (PHONE, "text me 07700 900123"),
        (PHONE, "call +1 (555) 010-9999"),
        (STREET, "i live at 12 Oak Tree Road"),
        (MEDIA, "look at pic.png"),
        (MEDIA, "cdn.discordapp thing"),
        (EXPLICIT, "send nudes"),
    ],
)
def test_the_personal_data_patterns_do_catch_what_they_are_for(pattern: re.Pattern[str], sample: str) -> None:
    assert pattern.search(DISCORD_MENTION.sub("<user>", sample))


def test_the_phone_pattern_ignores_discord_mentions_and_ordinary_numbers() -> None:
    assert not PHONE.search(DISCORD_MENTION.sub("<user>", "<@1190000000000010001> 2800 vbucks at 7:45"))
    assert not PHONE.search("3/4 + 2/3 is 17/12, 18 out of 20")


def test_first_signal_is_set_by_hand_on_a_suspect_message(raw: list[dict[str, Any]]) -> None:
    for record in raw:
        if record["label"] != 1:
            continue
        messages = record["messages"]
        index = record["meta"]["first_signal_index"]
        assert type(index) is int and 0 <= index < len(messages), record["id"]
        assert messages[index]["author"] in record["suspects"], record["id"]
        suspects_so_far = sum(m["author"] in record["suspects"] for m in messages[: index + 1])
        if record["meta"]["pace"] == "fast":
            # Blatant within the adult's first 15 messages.
            assert suspects_so_far <= 15, record["id"]
        else:
            # Sparse and late: the first clear signal comes in the second half of the log.
            assert index >= len(messages) // 2, record["id"]


def test_channel_logs_have_bystanders_and_the_pair_is_visible_to_the_pairing_rules(
    raw: list[dict[str, Any]],
) -> None:
    """In a replayed channel a message pairs only by replies or turn-taking (mentions are not replayed)."""
    for record in raw:
        if record["setting"] != "channel" or record["label"] != 1:
            continue
        messages = record["messages"]
        suspects = set(record["suspects"])
        children = set(record["meta"]["child_authors"])
        authors = {message["author"] for message in messages}
        if record["id"] != "rl-015":  # the late-night log is nearly empty on purpose
            assert len(authors - suspects - children) >= 2, record["id"]
        linked = sum(
            1
            for i, message in enumerate(messages)
            if message["author"] in suspects
            and (
                (message["reply_to"] is not None and messages[message["reply_to"]]["author"] in children)
                or (i > 0 and messages[i - 1]["author"] in children)
            )
        )
        assert linked >= 5, record["id"]
