"""The alert reviewer through the real monitor: a real ONNX reviewer (keyword weights), SQLite, the keyword
model. It holds alerts back, is read again only at the suspect's own messages, then needs two readings in
a row; it never delays an alert it passes, and a failing reviewer raises the alert."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from tests.core.monitoring import START, Conversation, make_monitor
from tests.support.fakes import FakeClock
from tests.support.keyword_model import add_keyword_reviewer, build_keyword_model
from vigil.bots.app import open_app
from vigil.bots.core.policy import Decision
from vigil.bots.core.ports import ReviewLine
from vigil.bots.core.replay import ConversationRecord, eval_messages, iter_records
from vigil.config.settings import load_settings
from vigil.detector.onnx_detector import ModelLoadError, OnnxDetector, load_default_model_dir
from vigil.detector.reviewer import encode_window
from vigil.storage.sqlite import SqliteStore

REPO = Path(__file__).resolve().parents[2]

# The kid's first message says "sister"; the adult's messages carry the keyword model's risk.
SCRIPT = [
    ("kid", "sister"),
    ("adult", "secret groom"),
    ("kid", "ok"),
    ("adult", "secret"),
    ("kid", "lol"),  # the policy raises here (sustain 2) without a reviewer
    ("adult", "secret groom"),
    ("kid", "ok"),
    ("adult", "secret"),
    ("kid", "ok"),
    ("adult", "secret"),  # the window of 8 no longer holds "sister"; the one at message 7 still does
    ("kid", "ok"),
    ("adult", "secret"),  # both windows are clean: raised
    ("kid", "ok"),
]


@pytest.fixture
async def reviewed_detector(tmp_path: Path) -> AsyncIterator[OnnxDetector]:
    model_dir = add_keyword_reviewer(
        build_keyword_model(tmp_path / "model"), word_weights={"sister": -6.0}, window_messages=8
    )
    detector = await OnnxDetector.load(model_dir, intra_op_threads=1)
    try:
        yield detector
    finally:
        await detector.aclose()


async def _raised_at(
    store: SqliteStore, detector: OnnxDetector, script: Sequence[tuple[str, str]]
) -> list[int]:
    monitor = make_monitor(store, detector, FakeClock(START))
    talk = Conversation()
    raised = []
    for index, (author, text) in enumerate(script):
        result = await monitor.handle(talk.say(author, text))
        if any(event.decision is Decision.RAISE for event in result.alerts):
            raised.append(index)
    return raised


async def test_without_a_reviewer_the_policy_raises_at_once(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector
) -> None:
    assert keyword_detector.reviewer is None
    assert await _raised_at(sqlite_store, keyword_detector, SCRIPT) == [4]


async def test_a_held_alert_is_raised_when_two_readings_in_a_row_pass(
    sqlite_store: SqliteStore, reviewed_detector: OnnxDetector
) -> None:
    assert await _raised_at(sqlite_store, reviewed_detector, SCRIPT) == [11]
    alerts = await sqlite_store.alerts_for_space(platform="test", space_id="guild-1", limit=10)
    assert [(a.suspect_id, a.other_id) for a in alerts] == [("adult", "kid")]


async def test_a_reviewer_that_passes_never_delays_the_alert(
    sqlite_store: SqliteStore, reviewed_detector: OnnxDetector
) -> None:
    clean = [(author, "hello" if text == "sister" else text) for author, text in SCRIPT]
    assert await _raised_at(sqlite_store, reviewed_detector, clean) == [4]


async def test_a_held_alert_is_read_again_only_at_the_suspects_messages(
    sqlite_store: SqliteStore, reviewed_detector: OnnxDetector
) -> None:
    # After the hold the kid talks on; only the adult's next message may raise it (two clean windows).
    script = [*SCRIPT[:6], *[("kid", "ok")] * 8, ("adult", "secret"), ("kid", "ok")]
    assert await _raised_at(sqlite_store, reviewed_detector, script) == [14]


async def test_the_hold_survives_a_restart(tmp_path: Path, reviewed_detector: OnnxDetector) -> None:
    path = tmp_path / "vigil.sqlite3"
    store = SqliteStore(path)
    await store.open()
    try:
        assert await _raised_at(store, reviewed_detector, SCRIPT[:8]) == []
    finally:
        await store.close()
    # A new process: the run and the window come back from the file, so the next adult message is read
    # as after a hold (two windows), not as a first attempt.
    store = SqliteStore(path)
    await store.open()
    try:
        monitor = make_monitor(store, reviewed_detector, FakeClock(START))
        talk = Conversation()
        talk.count = 8
        decisions = []
        for author, text in SCRIPT[8:]:
            result = await monitor.handle(talk.say(author, text))
            decisions.append([e.decision for e in result.alerts])
        assert decisions == [[], [], [], [Decision.RAISE], []]
    finally:
        await store.close()


class _BrokenReviewer:
    threshold = 0.5
    window_messages = 8

    async def review(self, lines: Sequence[ReviewLine]) -> float:
        raise RuntimeError("the reviewer's session died")


class _WithBrokenReviewer:
    def __init__(self, detector: OnnxDetector) -> None:
        self._detector = detector
        self.reviewer = _BrokenReviewer()

    def __getattr__(self, name: str) -> object:
        return getattr(self._detector, name)


async def test_a_failing_reviewer_raises_the_alert(
    sqlite_store: SqliteStore, reviewed_detector: OnnxDetector, caplog: pytest.LogCaptureFixture
) -> None:
    detector = _WithBrokenReviewer(reviewed_detector)
    assert await _raised_at(sqlite_store, detector, SCRIPT) == [4]  # type: ignore[arg-type]
    assert "the alert reviewer failed (RuntimeError)" in caplog.text
    assert "sister" not in caplog.text and "secret" not in caplog.text


def test_the_window_keeps_the_newest_messages_whole(keyword_model_dir: Path) -> None:
    tokenizer = Tokenizer.from_file(str(keyword_model_dir / "tokenizer.json"))
    vocab = tokenizer.get_vocab()
    lines = [
        ReviewLine(own=i % 2 == 0, text=" ".join(["lol"] * 5 + [f"{word}"]))
        for i, word in enumerate(["hello", "there", "nice", "game"])
    ]

    def encode(max_length: int, message_tokens: int = 40) -> list[int]:
        return encode_window(
            lines,
            tokenizer=tokenizer,
            max_length=max_length,
            message_tokens=message_tokens,
            own_prefix="me:",
            other_prefix="them:",
        )

    # Each message: a prefix ("me" or "them" are not in this vocabulary, ":" neither: 2 unknown tokens)
    # and 6 words, 8 tokens; 20 tokens fit the last two whole, never a part of the third.
    ids = encode(20)
    assert ids[0] == vocab["[CLS]"] and ids[-1] == vocab["[SEP]"]
    assert len(ids) == 2 + 16
    assert ids[-2] == vocab["game"] and vocab["there"] not in ids and vocab["nice"] in ids
    assert len(encode(200)) == 2 + 32
    # A long message is cut to message_tokens after its prefix.
    assert len(encode(200, message_tokens=3)) == 2 + 4 * 5


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda r: r.pop("file"), "missing key 'file'"),
        (lambda r: r.update(file="gone.onnx"), "no reviewer file"),
        (lambda r: r.update(threshold=1.5), "threshold must be in (0, 1)"),
        (lambda r: r.update(colour="blue"), "unknown keys ['colour']"),
        (lambda r: r["golden"][0].update(probability=0.9), "reads a golden window as"),
    ],
)
async def test_a_bad_reviewer_section_is_a_clear_load_error(
    tmp_path: Path, change: object, expected: str
) -> None:
    model_dir = add_keyword_reviewer(build_keyword_model(tmp_path / "model"), word_weights={"sister": -6.0})
    metadata = json.loads((model_dir / "metadata.json").read_text(encoding="utf-8"))
    change(metadata["reviewer"])  # type: ignore[operator]
    (model_dir / "metadata.json").write_text(json.dumps(metadata), encoding="utf-8")
    with pytest.raises(ModelLoadError, match="key 'reviewer'") as raised:
        await OnnxDetector.load(model_dir, intra_op_threads=1)
    assert expected in str(raised.value)


async def _alerted(model_dir: Path, record: ConversationRecord, folder: Path) -> bool:
    settings = load_settings(None)
    settings = dataclasses.replace(
        settings,
        detector=dataclasses.replace(settings.detector, model_dir=str(model_dir)),
        policy=dataclasses.replace(settings.policy, shadow_mode=True),
    )
    async with open_app(settings, database=str(folder / "vigil.sqlite3"), replay=True) as app:
        raised = False
        async for chunk in app.replay(eval_messages(record, ordinal=0)):
            raised = raised or any(e.decision is Decision.RAISE for r in chunk for e in r.alerts)
        return raised


async def test_the_shipped_reviewer_holds_back_two_friends_the_pair_model_alerts_on(tmp_path: Path) -> None:
    # rl-023 of the development set: two 13-year-olds before a dance (snap, "send pics!!", "dont tell her",
    # a sleepover). The shipped pair model alerts on it; its reviewer holds the alert back.
    shipped = load_default_model_dir()
    (record,) = [
        r
        for r in iter_records(REPO / "examples" / "realistic_conversations.jsonl")
        if isinstance(r, ConversationRecord) and r.id == "rl-023"
    ]
    unreviewed = tmp_path / "model"
    shutil.copytree(shipped, unreviewed)
    metadata = json.loads((unreviewed / "metadata.json").read_text(encoding="utf-8"))
    assert metadata.pop("reviewer")["threshold"] == 0.3
    (unreviewed / "metadata.json").write_text(json.dumps(metadata), encoding="utf-8")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert await _alerted(unreviewed, record, tmp_path / "a")
    assert not await _alerted(shipped, record, tmp_path / "b")
