"""The modern-style training conversations: format, labels and suspects, variety, style balance, and no
overlap with the held-out realistic test set."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from training.data import read_conversations
from training.modern_lines import (
    GROOMING_STAGES,
    KIND_NAMES,
    MAX_MESSAGES,
    MIN_MESSAGES,
    SOURCE,
    modern_conversations,
)
from training.weak_labels import MODERN_STAGE_SIGNALS
from vigil.bots.core.replay import BadRecord, ConversationRecord, iter_records

REPO = Path(__file__).resolve().parents[2]
REALISTIC = REPO / "examples" / "realistic_conversations.jsonl"
AUTHOR_RE = re.compile(r"^u-[0-9a-f]{12}$")

# What counts as the adult asking about, or remarking on, the child's age (after any style transform).
AGE_CUE_RE = re.compile(
    r"how old|\bgrade\b|\bage\b|years? old|birthday|bday|middle school|high school|year of school|"
    r"\b1[0-7]\b|remember being|type like (?:you're|ur|youre|your|u r|you are) older|"
    r"(?:wh?at|wut|which) school|\bmiddle\b",
    re.IGNORECASE,
)
CHILD_AGE_RE = re.compile(r"\b1[0-6]\b|\b(?:5|6|7|8|9|10)th\b|middle school|\bgrade\b", re.IGNORECASE)
STAGE_CUE_RE = {
    "platform": re.compile(
        r"snap|\bsc\b|telegram|whatsapp|kik|insta|\bsignal\b|discord|\bdm\b|message me|\bmsg\b|number|"
        r"text|txt|account|phone|"
        r"\b(?:username|@)",
        re.IGNORECASE,
    ),
    "gifts": re.compile(
        r"robux|vbucks|nitro|gift|skin|\$\d+|cashapp|venmo|\bpass\b|buy|bought|sent|(?:get|got) (?:you|u|ya)|"
        r"coins|bucks|minecoins|pay me back|have? extra|have? too many|\bpremium\b|boosts?|card|\bmic\b|kit|"
        r"raspberry|tablet|stylus|brush|plugin|crunchyroll|wig|figure|manga|crystals|airpods|headset|"
        r"headphones|pedal|ring light|course|commission|\brank\b|cape|java|realms|emote|\bpet\b|gamepass|"
        r"fl studio|markers|interface|capo|plushie|korblox|headless|mvp|bundle|battle pass|haul|skincare|"
        r"hoodie|case|tripod|lip gloss|keyboard|pack|"
        r"charger|laptop|set\b",
        re.IGNORECASE,
    ),
    "meeting": re.compile(
        r"meet|pick (?:you|u|ya) up|hang out|drive|\blive\b|school|(?:wait|w8) for|friends? house|\birl\b|"
        r"real life",
        re.IGNORECASE,
    ),
    "photos": re.compile(r"pic|photo|selfie|wearing|outfit|mirror|face|look like", re.IGNORECASE),
    "secrecy": re.compile(
        r"tell|secret|between us|delete|around|home|nearby|phone|asks|disappearing|vanish|understand|alone",
        re.IGNORECASE,
    ),
}
# Words that must appear in both labels so that a model cannot pick the label from the vocabulary.
SHARED_VOCABULARY = {
    "age": re.compile(r"how old|\bgrade\b|\bage\b", re.IGNORECASE),
    "app": re.compile(r"\bsnap|telegram|whatsapp|\bkik\b|\binsta", re.IGNORECASE),
    "gift": re.compile(r"\bgift", re.IGNORECASE),
    "secret": re.compile(r"secret|don'?t tell|dont tell|delete", re.IGNORECASE),
    "meet": re.compile(r"\bmeet", re.IGNORECASE),
    "pick up": re.compile(r"\bpick (?:you|u|them|him|her|us)? ?up\b|\bpick up\b", re.IGNORECASE),
    "photo": re.compile(r"\bpic|photo", re.IGNORECASE),
}
CHAT_MARKER_RE = re.compile(r"\b(?:u|ur|r|wat|wut|cuz|plz|pls|luv|2nite|idk|k|kk|ya|thx|b4|l8r)\b")
# Named look-alike kinds (``--kind``), left out of the default mix.
LOOKALIKE_KINDS = ("older_sibling", "support_line", "game_countdown")
# A message that is only a number ("27", "27." after standardise): a countdown tick, a level, a score part.
BARE_NUMBER_RE = re.compile(r"^\d{1,3}[.!]?$")


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


@pytest.fixture(scope="module")
def corpus() -> list[dict[str, Any]]:
    return modern_conversations(seed=0, count_grooming=600, count_benign=900)


@pytest.fixture(scope="module")
def lookalikes() -> dict[str, list[dict[str, Any]]]:
    return {
        kind: modern_conversations(seed=13, count_grooming=0, count_benign=40, kinds=(kind,))
        for kind in LOOKALIKE_KINDS
    }


def _texts(records: Iterable[dict[str, Any]], *, label: int | None = None) -> list[str]:
    return [m["text"] for r in records if label is None or r["label"] == label for m in r["messages"]]


def test_counts_ids_and_format(corpus: list[dict[str, Any]]) -> None:
    assert Counter(r["label"] for r in corpus) == {1: 600, 0: 900}
    ids = [r["id"] for r in corpus]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    for record in corpus:
        assert record["source"] == SOURCE
        assert record["interleaved"] is True
        assert record["setting"] in ("dm", "channel")
        assert MIN_MESSAGES <= len(record["messages"]) <= MAX_MESSAGES
        assert isinstance(record["meta"]["kind"], str)
        for message in record["messages"]:
            assert set(message) - {"stage"} == {"author", "text", "reply_to", "ts"}
            assert AUTHOR_RE.match(message["author"])
            assert message["reply_to"] is None
            assert message["ts"] is None
            assert message["text"].strip() == message["text"]
            assert message["text"]
            assert not re.search(r"[{}\[\]|]", message["text"]), message["text"]  # every slot filled


def test_only_the_adults_grooming_moves_carry_a_stage(corpus: list[dict[str, Any]]) -> None:
    regex_only = {"romance", "age_cue", "reassure"}
    staged: Counter[str] = Counter()
    for record in corpus:
        for message in record["messages"]:
            if "stage" not in message:
                continue
            assert record["label"] == 1, record["id"]
            assert message["author"] in record["suspects"], (record["id"], message)
            staged[message["stage"]] += 1
    assert set(staged) == set(MODERN_STAGE_SIGNALS) | regex_only
    assert set(MODERN_STAGE_SIGNALS) | {"romance"} == set(GROOMING_STAGES)
    # Every platform move is labelled as one, whatever style it was rendered in.
    platform = [m["text"] for r in corpus for m in r["messages"] if m.get("stage") == "platform"]
    assert all(STAGE_CUE_RE["platform"].search(text) for text in platform)
    # Most of the adult's lines are still small talk, with no stage.
    adult = [m for r in corpus if r["label"] == 1 for m in r["messages"] if m["author"] in r["suspects"]]
    assert 0.3 < sum("stage" in m for m in adult) / len(adult) < 0.8


def test_labels_do_not_follow_ids(corpus: list[dict[str, Any]]) -> None:
    first_half = [r["label"] for r in corpus[: len(corpus) // 2]]
    assert 0.3 < sum(first_half) / len(first_half) < 0.5  # 600 of 1500 overall, shuffled


def test_settings_and_authors(corpus: list[dict[str, Any]]) -> None:
    for record in corpus:
        authors = {m["author"] for m in record["messages"]}
        if record["setting"] == "dm":
            assert len(authors) == 2, record["id"]
        else:
            assert len(authors) >= 3, record["id"]
        if record["label"] == 1 and record["setting"] == "channel":
            # the adult, the child and 1-3 bystanders
            assert 3 <= len(authors) <= 5, record["id"]
    settings = Counter((r["label"], r["setting"]) for r in corpus)
    assert all(settings[(label, setting)] > 50 for label in (0, 1) for setting in ("dm", "channel"))


def test_every_writer_is_named_a_child_or_an_adult_on_request(corpus: list[dict[str, Any]]) -> None:
    assert not any("child_authors" in r["meta"] or "adult_authors" in r["meta"] for r in corpus)
    named = modern_conversations(seed=0, count_grooming=60, count_benign=90, name_writers=True)
    plain = modern_conversations(seed=0, count_grooming=60, count_benign=90)
    assert [r["messages"] for r in named] == [r["messages"] for r in plain]
    looks = [
        r
        for kind in LOOKALIKE_KINDS
        for r in modern_conversations(
            seed=13, count_grooming=0, count_benign=20, kinds=(kind,), name_writers=True
        )
    ]
    for record in [*named, *looks]:
        children, adults = set(record["meta"]["child_authors"]), set(record["meta"]["adult_authors"])
        assert not children & adults, record["id"]
        assert {m["author"] for m in record["messages"]} == children | adults, record["id"]
        if record["label"] == 1:
            assert set(record["suspects"]) <= adults
        kind = record["meta"]["kind"]
        if kind in ("adult_flirting", "workplace"):
            assert not children, record["id"]
        if kind == "teen_friends":
            assert not adults, record["id"]
        if kind in ("parent_child", "older_sibling", "support_line"):
            assert children and adults, record["id"]


def test_grooming_records_have_an_adult_suspect_who_asks_the_age(corpus: list[dict[str, Any]]) -> None:
    for record in (r for r in corpus if r["label"] == 1):
        assert len(record["suspects"]) == 1
        suspect = record["suspects"][0]
        mine = [m["text"] for m in record["messages"] if m["author"] == suspect]
        stages = record["meta"]["stages"]
        assert mine, record["id"]
        assert any(AGE_CUE_RE.search(text) for text in mine), (record["id"], mine)
        assert len(stages) >= 3 and "age" in stages, record["id"]
        assert set(stages) <= set(GROOMING_STAGES)
        for stage, cue in STAGE_CUE_RE.items():
            if stage in stages:
                assert any(cue.search(text) for text in mine), (record["id"], stage, mine)
        # The child (the other main author: the first to answer the adult) states an age or grade.
        child = next(m["author"] for m in record["messages"] if m["author"] != suspect)
        child_age = record["meta"]["child_age"]
        assert 11 <= child_age <= 15
        if record["setting"] == "dm":
            theirs = [m["text"] for m in record["messages"] if m["author"] == child]
            assert any(CHILD_AGE_RE.search(text) for text in theirs), (record["id"], theirs)


def test_grooming_varies_in_pace_platform_and_stage_order(corpus: list[dict[str, Any]]) -> None:
    grooming = [r for r in corpus if r["label"] == 1]
    assert Counter(r["meta"]["pace"] for r in grooming).keys() == {"slow", "fast", "subtle"}
    assert len({r["meta"]["platform"] for r in grooming}) >= 8
    assert len({tuple(r["meta"]["stages"]) for r in grooming}) > 300
    assert Counter(stage for r in grooming for stage in r["meta"]["stages"]).keys() == set(GROOMING_STAGES)
    subtle = [r for r in grooming if r["meta"]["pace"] == "subtle"]
    assert all(not {"photos", "romance", "meeting"} & set(r["meta"]["stages"]) for r in subtle)
    fast = [r for r in grooming if r["meta"]["pace"] == "fast"]
    assert all({"photos", "romance", "meeting"} & set(r["meta"]["stages"]) for r in fast)
    slow = [len(r["messages"]) for r in grooming if r["meta"]["pace"] == "slow"]
    quick = [len(r["messages"]) for r in fast]
    assert sum(slow) / len(slow) > 1.5 * sum(quick) / len(quick)


def test_benign_records_have_no_suspects(corpus: list[dict[str, Any]]) -> None:
    benign = [r for r in corpus if r["label"] == 0]
    assert all(r["suspects"] == [] for r in benign)
    kinds = Counter(r["meta"]["kind"] for r in benign)
    assert set(kinds) == {
        "teen_friends",
        "adult_flirting",
        "parent_child",
        "coach_team",
        "tutor",
        "parents_chat",
        "gamer_gifts",
        "hobby_server",
        "workplace",
    }
    assert all(count >= 30 for count in kinds.values())


def test_hard_negatives_share_the_grooming_vocabulary(corpus: list[dict[str, Any]]) -> None:
    def share(label: int, pattern: re.Pattern[str]) -> float:
        records = [r for r in corpus if r["label"] == label]
        return sum(any(pattern.search(m["text"]) for m in r["messages"]) for r in records) / len(records)

    for name, pattern in SHARED_VOCABULARY.items():
        assert share(0, pattern) > 0.05, name
        assert share(1, pattern) > 0.05, name
    anything = re.compile("|".join(p.pattern for p in SHARED_VOCABULARY.values()), re.IGNORECASE)
    assert share(0, anything) > 0.8


def test_style_and_length_do_not_give_the_label_away(corpus: list[dict[str, Any]]) -> None:
    def chat_share(label: int) -> float:
        texts = _texts(corpus, label=label)
        return sum(bool(CHAT_MARKER_RE.search(t)) for t in texts) / len(texts)

    def standard_share(label: int) -> float:
        texts = _texts(corpus, label=label)
        return sum(t[:1].isupper() and t[-1:] in ".?!" for t in texts) / len(texts)

    def mean_length(label: int) -> float:
        records = [r for r in corpus if r["label"] == label]
        return sum(len(r["messages"]) for r in records) / len(records)

    # Benign rooms hold more adults (coaches, parents), who write chat-speak a little less often.
    assert 0.1 < chat_share(1) < 0.6 and 0.1 < chat_share(0) < 0.6
    assert abs(chat_share(1) - chat_share(0)) < 0.1
    assert abs(standard_share(1) - standard_share(0)) < 0.1
    assert 0.8 < mean_length(1) / mean_length(0) < 1.25


def test_lines_are_varied(corpus: list[dict[str, Any]]) -> None:
    for label, minimum in ((1, 8000), (0, 10000)):
        texts = _texts(corpus, label=label)
        assert len(set(texts)) > minimum, (label, len(set(texts)))
        # No single line dominates (short replies like "ok" are common, but not this common).
        assert Counter(texts).most_common(1)[0][1] < 0.02 * len(texts)


def test_deterministic_for_a_seed() -> None:
    first = modern_conversations(seed=7, count_grooming=15, count_benign=20)
    assert first == modern_conversations(seed=7, count_grooming=15, count_benign=20)
    other = modern_conversations(seed=8, count_grooming=15, count_benign=20)
    assert _texts(first) != _texts(other)


def test_counts_are_validated() -> None:
    assert modern_conversations(seed=0, count_grooming=0, count_benign=0) == []
    with pytest.raises(ValueError, match=">= 0"):
        modern_conversations(seed=0, count_grooming=-1, count_benign=3)


def test_curious_child_kind_is_named_not_mixed(corpus: list[dict[str, Any]]) -> None:
    # The default mix is what earlier recipes trained on: the named kind must not leak into it.
    assert "curious_child" not in {r["meta"]["kind"] for r in corpus if r["label"] == 0}
    records = modern_conversations(
        seed=11, count_grooming=0, count_benign=40, kinds=("curious_child",), id_prefix="vkid"
    )
    assert [r["id"] for r in records] == [f"vkid-{i:05d}" for i in range(40)]
    assert {r["meta"]["kind"] for r in records} == {"curious_child"}
    assert {r["label"] for r in records} == {0} and all(r["suspects"] == [] for r in records)
    assert all(r["setting"] == "dm" and len({m["author"] for m in r["messages"]}) == 2 for r in records)
    # The child asks the adult the questions a groomer would ask a child.
    asks = re.compile(r"how old|what grade|anyone else live|call (?:you|u|ya)")
    assert sum(any(asks.search(m["text"].lower()) for m in r["messages"]) for r in records) >= 20


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown conversation kinds"):
        modern_conversations(seed=0, count_grooming=0, count_benign=3, kinds=("pen_pals",))


def test_lookalike_kinds_are_named_not_mixed(corpus: list[dict[str, Any]]) -> None:
    # Earlier recipes trained on the default mix byte for byte: the new kinds must only come when named.
    assert set(LOOKALIKE_KINDS) <= set(KIND_NAMES)
    assert not set(LOOKALIKE_KINDS) & {r["meta"]["kind"] for r in corpus}


@pytest.mark.parametrize("kind", LOOKALIKE_KINDS)
def test_lookalike_kind_is_benign_deterministic_and_filled(
    kind: str, lookalikes: dict[str, list[dict[str, Any]]]
) -> None:
    records = lookalikes[kind]
    assert records == modern_conversations(seed=13, count_grooming=0, count_benign=40, kinds=(kind,))
    assert _texts(records) != _texts(
        modern_conversations(seed=14, count_grooming=0, count_benign=40, kinds=(kind,))
    )
    assert {r["meta"]["kind"] for r in records} == {kind}
    assert {r["label"] for r in records} == {0} and all(r["suspects"] == [] for r in records)
    for record in records:
        assert MIN_MESSAGES <= len(record["messages"]) <= MAX_MESSAGES, record["id"]
        authors = {m["author"] for m in record["messages"]}
        if kind == "game_countdown":
            assert record["setting"] == "channel" and len(authors) >= 3, record["id"]
        else:
            assert record["setting"] == "dm" and len(authors) == 2, record["id"]
        for message in record["messages"]:
            assert message["text"] and "stage" not in message
            assert not re.search(r"[{}\[\]|]", message["text"]), message["text"]  # every slot filled
    texts = _texts(records)
    assert len(set(texts)) > 0.5 * len(texts)


def test_older_sibling_shares_the_grooming_words_inside_a_named_family(
    lookalikes: dict[str, list[dict[str, Any]]],
) -> None:
    records = lookalikes["older_sibling"]
    family = re.compile(r"\b(?:mom|dad|grandma|brother|sister|cousin|parents)\b", re.IGNORECASE)
    assert all(any(family.search(m["text"]) for m in r["messages"]) for r in records)
    joined = [" ".join(m["text"] for m in r["messages"]) for r in records]
    looks_like = re.compile(
        r"don'?t tell|pick (?:you|u|ya) up|outside the school|robux|vbucks|\bpic\b|delete|new number|"
        r"\b1[1-5]\b",
        re.IGNORECASE,
    )
    assert sum(bool(looks_like.search(text)) for text in joined) >= 0.8 * len(records)


def test_support_line_asks_about_safety_and_never_for_secrets_photos_or_apps(
    lookalikes: dict[str, list[dict[str, Any]]],
) -> None:
    records = lookalikes["support_line"]
    joined = [" ".join(m["text"] for m in r["messages"]) for r in records]
    safety = re.compile(
        r"safe|any ?(?:one|1) at home|how old|confidential|(?:tell|give) me (?:your|ur) name|live with",
        re.IGNORECASE,
    )
    assert sum(bool(safety.search(text)) for text in joined) >= 0.8 * len(records)
    trusted = re.compile(r"trusted adult|someone (?:you|u) trust|counsellor|shout|childline|988|741741")
    assert sum(bool(trusted.search(text.lower())) for text in joined) >= 0.5 * len(records)
    # Neither side ever asks for a secret, a photo, a gift or another app.
    never = re.compile(
        r"\bpic|photo|selfie|\bsnap|telegram|whatsapp|\bkik\b|\bgift|robux|vbucks|don'?t tell|"
        r"between us|our secret|\bmeet\b|send me",
        re.IGNORECASE,
    )
    assert [t for t in _texts(records) if never.search(t)] == []


def test_game_countdown_has_runs_of_bare_numbers(lookalikes: dict[str, list[dict[str, Any]]]) -> None:
    def longest_run(record: dict[str, Any]) -> int:
        best = run = 0
        previous = None
        for message in record["messages"]:
            if BARE_NUMBER_RE.match(message["text"]):
                run = run + 1 if run and message["author"] == previous else 1
            else:
                run = 0
            previous = message["author"]
            best = max(best, run)
        return best

    records = lookalikes["game_countdown"]
    assert sum(longest_run(r) >= 3 for r in records) >= 0.7 * len(records)
    # The numbers a countdown shares with ages (18-40) are the ones that matter.
    numbers = {int(t.rstrip(".!")) for t in _texts(records) if BARE_NUMBER_RE.match(t)}
    assert len(numbers & set(range(18, 41))) >= 10


def test_no_overlap_with_the_realistic_test_set(
    corpus: list[dict[str, Any]], lookalikes: dict[str, list[dict[str, Any]]]
) -> None:
    held_out: list[str] = []
    for record in iter_records(REALISTIC):
        assert isinstance(record, ConversationRecord)
        held_out += [_norm(m.text) for m in record.messages]
    assert len(held_out) > 500
    held_lines = set(held_out)
    held_shingles = {
        tuple(words[i : i + 8])
        for words in (line.split() for line in held_lines)
        for i in range(len(words) - 7)
    }
    named = [text for records in lookalikes.values() for text in _texts(records)]
    generated = [_norm(text) for text in (*_texts(corpus), *named)]
    # Exact reuse: any line of five words or more. Shorter lines ("ok", "how old r u", "my lips are sealed")
    # are what everyone types and say nothing about where a line came from.
    reused = sorted({line for line in generated if len(line.split()) >= 5 and line in held_lines})
    assert reused == []
    shared = sum(
        any(tuple(words[i : i + 8]) in held_shingles for i in range(len(words) - 7))
        for words in (line.split() for line in generated)
    )
    assert shared / len(generated) < 0.02


def test_cli_writes_a_file_that_replays(tmp_path: Path) -> None:
    out = tmp_path / "modern.jsonl"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "training.modern_lines",
            "--out",
            str(out),
            "--seed",
            "3",
            "--grooming",
            "20",
            "--benign",
            "30",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "wrote 50 conversations" in completed.stderr
    records = list(iter_records(out))
    assert [r for r in records if isinstance(r, BadRecord)] == []
    assert len(records) == 50
    assert all(isinstance(r, ConversationRecord) for r in records)
    assert Counter(r.label for r in records if isinstance(r, ConversationRecord)) == {1: 20, 0: 30}
    # The training reader takes it too, and the file is exactly what the function returns.
    assert len(read_conversations(out)) == 50
    lines = out.read_text(encoding="utf-8").splitlines()
    expected = modern_conversations(seed=3, count_grooming=20, count_benign=30)
    assert [json.loads(line) for line in lines] == expected
