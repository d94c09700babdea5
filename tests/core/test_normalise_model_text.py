"""``model_text``: the one rule for the model's input, in training and in the Monitor (mentions -> ``<user>``
-> removed, after ``normalise_text``'s character steps and before its word folding)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from training.data import model_text as training_model_text
from vigil.bots.core.models import ChatMessage
from vigil.bots.core.monitor import Monitor, MonitorConfig, SkipReason
from vigil.bots.core.normalise import USER_PLACEHOLDER, is_meaningful, model_text, normalise_text
from vigil.bots.core.policy import PolicyConfig
from vigil.bots.core.ports import AlertReviewer, MessageScore, ModelInfo, PairModel
from vigil.bots.slack.translate import to_chat_message as slack_to_chat_message
from vigil.detector.onnx_detector import OnnxDetector
from vigil.storage.sqlite import SqliteStore

START = datetime(2026, 3, 1, 18, 0, tzinfo=UTC)

# (text, mentioned_user_ids, what the model sees)
MENTIONS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    # Discord markup: user, nickname, role, channel and slash-command mentions
    ("<@123456789012345678> dont tell your parents", (), "dont tell your parents"),
    ("<@!123456789012345678>, how old r u?", (), "how old r u?"),
    ("hey <@&987654321> and <#123456789> look", (), "hey and look"),
    ("use </report:123456789> now", (), "use now"),
    # Slack markup (raw: what an HTTP client may forward) and as the Slack adapter renders it
    ("<@U0123ABCD|bob> <!here> <!channel> <!everyone> <!subteam^S0123ABCD|@devs> hi", (), "hi"),
    ("see <#C0123ABCD|random> and <#C0456EFGH|>", (), "see and"),
    ("@UKIDA0002 dont tell your parents", (), "dont tell your parents"),
    ("@W0123ABCD: and @S0123ABCD", (), "and"),
    ("hi @UKIDA0002@UADULT001 there", (), "hi there"),
    ("#C0123ABCD is quiet", (), "is quiet"),
    ("@everyone @here @channel meeting", (), "meeting"),
    # any id the message lists, whatever it looks like: short Slack ids, HTTP ids
    ("@U1 hi @U12", ("U1",), "hi @U12"),
    ("@U1 hi @U12", ("U1", "U12"), "hi"),
    ("@UKIDA0002@kid@UKIDA0002@kid hi", ("kid",), "hi"),  # a run mixing rendered and listed ids
    ("<@kid-7|Kid> and @kid-7's mum", ("kid-7",), "and 's mum"),
    ("@Anna are you home", ("Anna",), "are you home"),
    # the placeholder rule: leading ", : ; >" and spaces go with it
    ("<@1>: <@2>, wanna chat?", (), "wanna chat?"),
    ("<@123>", (), ""),
)

# Not mentions: left as typed (normalised as any text).
NOT_MENTIONS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("meet me @ the park", (), "meet me @ the park"),
    ("see you @home @5pm", (), "see you @home @5pm"),
    ("@Anna are you home", (), "@Anna are you home"),  # a display name nobody listed
    ("mail bob@U1.com", ("U1",), "mail bob@U1.com"),
    ("mail me at kid@here.org", (), "mail me at kid@here.org"),
    ("@UNKNOWNUSER and @U123 and #general", (), "@UNKNOWNUSER and @U123 and #general"),
    ("i <3 u, call <phone> or <url>", (), "i <3 u, call <phone> or <url>"),
    ("@U12", ("U1",), "@U12"),
)


@pytest.mark.parametrize(("text", "ids", "expected"), MENTIONS + NOT_MENTIONS)
def test_mentions_become_the_training_placeholder_and_are_removed(
    text: str, ids: tuple[str, ...], expected: str
) -> None:
    assert model_text(text, mentioned_user_ids=ids) == expected


def test_mentions_are_removed_before_leetspeak_folding_can_turn_them_into_letters() -> None:
    # normalise_text alone folds a Slack id inside brackets into letters, which no rule recognises afterwards.
    assert normalise_text("(@U01AB3CDE) h3llo") == "(@UOIABECDE) hello"
    assert model_text("(@U01AB3CDE) h3llo") == "( ) hello"
    assert model_text("(@l33t) h3llo", mentioned_user_ids=("l33t",)) == "( ) hello"
    assert model_text("(@l33t) h3llo") == "(@leet) hello"
    # Cyrillic letters spelling an id are folded to Latin, and then the id is a mention too.
    assert model_text("@UКIDA0002 hi") == "hi"


def test_normalisation_still_applies_around_mentions() -> None:
    assert model_text("<@123> h0w 0ld r u\u200b? sooooo cute") == "how old r u? sooo cute"
    assert model_text("s <@1> e x") == "sex"
    assert model_text("ｈｉ <@123>") == "hi"
    assert model_text("<@123> hello there world", max_chars=13) == "hello there"
    assert model_text("anything", max_chars=0) == ""


def test_many_and_odd_listed_ids_are_bounded_and_literal() -> None:
    # The first 100 ids count ("a.b*c(" means itself, not a pattern); empty and over-long ids are ignored.
    ids = ("a.b*c(", "", "x" * 300, *(f"user{i}" for i in range(150)))
    text = "@user0 @user96 @user97 @a.b*c( @abbc( @xxx hi"
    assert model_text(text, mentioned_user_ids=ids) == "@user97 @abbc( @xxx hi"


def _old_training_rule(text: str) -> str:
    """training.data.model_text before it became the production rule, kept here as the reference."""
    cleaned = re.sub(r"<user>", " ", text)
    cleaned = re.sub(r"^[\s,:;>]+", "", cleaned)
    return re.sub(r"\s{2,}", " ", cleaned).strip()


# Training lines that normalisation leaves alone: the placeholder rule is exactly the old one.
TRAINING_STYLE_LINES = (
    "<user>, quite stable though  :)",
    "hi <user> call me at <phone>",
    "<user>",
    "<user>: try sudo apt-get update",
    "> <user> said that",
    ";; <user> ; ok",
    "thanks <user> <user>",
    "lol <user>'s cat",
    "send it to <email> or <url>",
    "age? <user>",
)


@pytest.mark.parametrize("line", TRAINING_STYLE_LINES)
def test_the_training_placeholder_rule_is_unchanged(line: str) -> None:
    assert training_model_text(line) == model_text(line) == _old_training_rule(line)


MENTION_TEXT = st.sampled_from(
    [
        "<@123>",
        "<@!9>",
        "<@&7>",
        "<#5>",
        "<@U0123ABCD|bob>",
        "@UKIDA0002",
        "@U1",
        "@kid",
        "@everyone",
        "<!here>",
        "<user>",
        "h3llo",
        "s",
        "e",
        "x",
        ",",
        ":",
        ">",
        "@",
        "ｈｉ",
        "о",
        "\u200b",
        " ",
        "  ",
        "0",
        "U0123ABCD",
    ]
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    pieces=st.lists(MENTION_TEXT, max_size=14),
    ids=st.lists(st.sampled_from(["U1", "kid", "123", "l33t", "ｋid", ""]), max_size=3),
    max_chars=st.integers(min_value=1, max_value=60),
)
def test_model_text_never_raises_is_capped_clean_and_idempotent(
    pieces: list[str], ids: list[str], max_chars: int
) -> None:
    text = "".join(pieces)
    result = model_text(text, mentioned_user_ids=ids, max_chars=max_chars)
    assert len(result) <= max_chars
    assert result == result.strip() and "  " not in result
    assert USER_PLACEHOLDER not in result
    assert not result.startswith((",", ":", ";", ">"))
    assert model_text(result, mentioned_user_ids=ids, max_chars=max_chars) == result


# ------------------------------------------------------------------------- parity: training vs serving


class RecordingDetector:
    """The real detector, with a record of the exact texts the Monitor handed it."""

    def __init__(self, inner: OnnxDetector) -> None:
        self._inner = inner
        self.texts: list[str] = []

    @property
    def info(self) -> ModelInfo:
        return self._inner.info

    @property
    def pair_model(self) -> PairModel:
        return self._inner.pair_model

    @property
    def reviewer(self) -> AlertReviewer | None:
        return self._inner.reviewer

    async def score(self, texts: Sequence[str]) -> list[MessageScore]:
        self.texts.extend(texts)
        return await self._inner.score(texts)

    async def aclose(self) -> None:
        await self._inner.aclose()


def _policy() -> PolicyConfig:
    return PolicyConfig(
        threshold=0.7,
        sustain_messages=2,
        hysteresis=0.1,
        cooldown=timedelta(hours=6),
        update_min_delta=0.01,
        max_alerts_per_hour=10,
        shadow_mode=False,
    )


def _http(text: str, *, number: int, mentioned: tuple[str, ...] = ()) -> ChatMessage:
    return ChatMessage(
        platform="http",
        space_id="tenant-1",
        channel_id="chan-1",
        message_id=f"m-{number}",
        author_id="adult-1",
        text=text,
        timestamp=START + timedelta(seconds=number),
        mentioned_user_ids=mentioned,
        recipient_ids=("kid-7",),
        is_dm=True,
    )


def _discord(text: str, *, number: int, mentioned: tuple[str, ...]) -> ChatMessage:
    # What bots/discord/translate.py makes of a guild message: the content verbatim, mentions by id.
    return ChatMessage(
        platform="discord",
        space_id="111",
        channel_id="222",
        message_id=str(1000 + number),
        author_id="333",
        text=text,
        timestamp=START + timedelta(seconds=number),
        mentioned_user_ids=mentioned,
    )


def _slack(raw: str, *, number: int) -> ChatMessage:
    event = {
        "type": "message",
        "channel": "C0GENERAL1",
        "user": "UADULT001",
        "text": raw,
        "ts": f"{1767225600 + number}.000100",
        "channel_type": "channel",
    }
    message = slack_to_chat_message(event, team_id="T1")
    assert message is not None
    return message


def _deliveries(line: str, *, first_number: int) -> list[tuple[str, ChatMessage]]:
    """One line with a mention, as each platform hands it to the Monitor."""
    number = iter(range(first_number, first_number + 100))
    return [
        ("slack", _slack(line.format(mention="<@UKIDA0002>"), number=next(number))),
        ("slack short id", _slack(line.format(mention="<@UKID01>"), number=next(number))),
        ("discord", _discord(line.format(mention="<@444>"), number=next(number), mentioned=("444",))),
        (
            "discord nickname",
            _discord(line.format(mention="<@!444>"), number=next(number), mentioned=("444",)),
        ),
        ("discord role", _discord(line.format(mention="<@&555>"), number=next(number), mentioned=())),
        ("everyone", _discord(line.format(mention="@everyone"), number=next(number), mentioned=())),
        ("http", _http(line.format(mention="@kid-7"), number=next(number), mentioned=("kid-7",))),
    ]


# (a line as the training data has it, the same line as each platform delivers it)
PARITY_LINES: tuple[tuple[str, str], ...] = (
    ("<user> dont tell your parents about us", "{mention} dont tell your parents about us"),
    ("<user>, how old r u? h0w 0ld", "{mention}, how old r u? h0w 0ld"),
    ("hi <user> call me at <phone>", "hi {mention} call me at <phone>"),
    ("sooooo cute <user> s e c r e t", "sooooo cute {mention} s e c r e t"),
    ("<user>: <user> wanna chat?", "{mention}: {mention} wanna chat?"),
    ("(<user>) c@n u k33p a s3cr3t", "({mention}) c@n u k33p a s3cr3t"),
    ("<user>", "{mention}"),
)


async def test_training_and_the_monitor_give_the_model_the_same_text(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector
) -> None:
    detector = RecordingDetector(keyword_detector)
    monitor = Monitor(store=sqlite_store, detector=detector, config=MonitorConfig(policy=_policy()))
    number = 0
    for training_line, platform_line in PARITY_LINES:
        expected = training_model_text(training_line)
        deliveries = _deliveries(platform_line, first_number=number + 1)
        number += len(deliveries)
        # The Slack adapter shows the mention to people as "@UKIDA0002": the stored text stays readable.
        slack_text = deliveries[0][1].text
        assert "@UKIDA0002" in slack_text and "<@" not in slack_text
        detector.texts.clear()
        results = await monitor.handle_batch([message for _, message in deliveries])
        if not expected:
            assert all(r.skipped is SkipReason.NO_TEXT for r in results), training_line
            assert detector.texts == []
            continue
        assert all(r.skipped in (None, SkipReason.NO_PAIR) and r.risk is not None for r in results)
        for (label, _), seen in zip(deliveries, detector.texts, strict=True):
            assert seen == expected, f"{label}: {training_line!r}"
        # A training line without placeholders and the same plain message: the same text too.
        number += 1
        plain = training_line.replace("<user>", " ").strip()
        detector.texts.clear()
        await monitor.handle(_http(plain, number=number))
        assert detector.texts == [training_model_text(plain)]


async def test_only_the_model_input_changes_the_window_keeps_the_rendered_text(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector
) -> None:
    monitor = Monitor(store=sqlite_store, detector=keyword_detector, config=MonitorConfig(policy=_policy()))
    message = _slack("<@UKIDA0002> age age", number=1)
    result = await monitor.handle(message)
    assert result.pairs, "the mention pairs the author with the person mentioned"
    window = await sqlite_store.load_window(result.pairs[0].key)
    assert [m.text for m in window] == ["@UKIDA0002 age age"]
    # A message that is only a mention has nothing to score (training drops such lines too).
    only = await monitor.handle(_slack("<@UKIDA0002>", number=2))
    assert only.skipped is SkipReason.NO_TEXT
    assert not is_meaningful(model_text("<@UKIDA0002>", mentioned_user_ids=("UKIDA0002",)))
