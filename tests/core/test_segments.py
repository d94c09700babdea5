"""Segments (flattened chat text): the chunking rule, and scoring a segment as one member's messages with the
real detector and pair model (the keyword model with its EMA, and with a GRU pair model)."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from tests.support.gru_model import FLATTENED_KEYWORD_GRU_WEIGHTS, build_gru_keyword_model, reference_step
from tests.support.keyword_model import FILLER
from vigil.bots.core.normalise import model_text
from vigil.bots.core.segments import SegmentScore, chunk_limits, score_segment, split_segment
from vigil.detector import FLATTENED_OWN, OnnxDetector, load_default_model_dir

REPO = Path(__file__).resolve().parents[2]
KEYWORD_MAX_LENGTH = 32  # tests.support.keyword_model's max_length


def filler_words(count: int) -> str:
    return " ".join(FILLER[i % len(FILLER)] for i in range(count))


# --- split_segment ------------------------------------------------------------------------------------------


def test_limits_follow_the_models_input_length() -> None:
    assert chunk_limits(64) == (31, 256)
    assert chunk_limits(32) == (15, 128)
    assert chunk_limits(1) == (1, 4)


def test_splits_at_line_breaks_and_sentence_ends() -> None:
    text = "hey there\r\nhow old r u?\n\n  ok. cool!  see u at 3.30\u2028bye… lol"
    assert split_segment(text, max_length=64) == (
        "hey there",
        "how old r u?",
        "ok.",
        "cool!",
        "see u at 3.30",
        "bye…",
        "lol",
    )


def test_nothing_to_split() -> None:
    assert split_segment("", max_length=64) == ()
    assert split_segment(" \n\n\t . ", max_length=64) == (".",)


def test_a_long_line_is_cut_by_words_and_every_word_is_kept_in_order() -> None:
    words = [f"w{i}" for i in range(200)]
    chunks = split_segment(" ".join(words), max_length=KEYWORD_MAX_LENGTH)
    max_words, max_chars = chunk_limits(KEYWORD_MAX_LENGTH)
    assert len(chunks) == math.ceil(200 / max_words)
    assert all(len(chunk.split()) <= max_words and len(chunk) <= max_chars for chunk in chunks)
    assert " ".join(chunks).split() == words


def test_long_words_and_runs_without_spaces_are_cut_by_characters() -> None:
    max_words, max_chars = chunk_limits(KEYWORD_MAX_LENGTH)
    run = "x" * (3 * max_chars + 5)
    chunks = split_segment(f"start {run} end", max_length=KEYWORD_MAX_LENGTH)
    assert all(len(chunk) <= max_chars for chunk in chunks)
    assert "".join(chunks).replace(" ", "") == f"start{run}end"
    # Many long words: the character limit, not the word limit, closes each chunk.
    long_words = ["abcdefghijklmnopqrstuvwxyz"] * 40
    chunks = split_segment(" ".join(long_words), max_length=KEYWORD_MAX_LENGTH)
    assert all(len(chunk) <= max_chars for chunk in chunks)
    assert max(len(chunk.split()) for chunk in chunks) < max_words
    assert " ".join(chunks).split() == long_words


def test_random_texts_keep_every_word_within_the_limits() -> None:
    rng = np.random.default_rng(17)
    alphabet = [*"abcdefghij .!?\n", "…", "  ", "\t"]
    for _ in range(200):
        text = "".join(rng.choice(alphabet, size=int(rng.integers(0, 600))))
        max_length = int(rng.integers(1, 80))
        max_words, max_chars = chunk_limits(max_length)
        chunks = split_segment(text, max_length=max_length)
        assert all(chunk and chunk == chunk.strip() for chunk in chunks)
        assert all(len(chunk.split()) <= max_words and len(chunk) <= max_chars for chunk in chunks)
        assert "".join("".join(chunks).split()) == "".join(text.split())


def test_chunks_of_real_chat_fit_the_shipped_models_input() -> None:
    # Flattened chat as segments come: every message of the realistic conversations, in one run of text.
    lines = [
        message["text"]
        for line in (REPO / "examples" / "realistic_conversations.jsonl")
        .read_text(encoding="utf-8")
        .splitlines()
        for message in json.loads(line)["messages"]
    ]
    model_dir = load_default_model_dir()
    max_length = json.loads((model_dir / "metadata.json").read_text(encoding="utf-8"))["max_length"]
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    flat = " ".join(lines)
    chunks = split_segment(flat, max_length=max_length)
    assert len(chunks) > 100
    # What the model reads of each chunk: model_text, as score_segment and the Monitor apply it.
    assert max(len(tokenizer.encode(model_text(chunk)).ids) for chunk in chunks) <= max_length
    assert len(tokenizer.encode(flat).ids) > 20 * max_length


# --- score_segment ------------------------------------------------------------------------------------------


async def test_grooming_after_200_words_changes_the_score(keyword_detector: OnnxDetector) -> None:
    ordinary = filler_words(200)
    groomed = ordinary + "\nsecret groom secret\nour secret groom"
    quiet = await score_segment(keyword_detector, ordinary)
    flagged = await score_segment(keyword_detector, groomed)
    assert quiet.risk < 0.1 and flagged.risk > 0.7
    assert flagged.chunks == quiet.chunks + 2 == len(split_segment(groomed, max_length=KEYWORD_MAX_LENGTH))
    # Scored whole as one input, as eval used to, the same text never reaches the grooming lines.
    (whole,) = await keyword_detector.score([groomed])
    assert whole.risk < 0.1


async def test_the_segment_score_is_the_highest_risk_over_its_chunks(keyword_detector: OnnxDetector) -> None:
    # EMA (alpha 0.5, min_messages 2): the grooming line early on is the peak; later ordinary lines lower it.
    early = await score_segment(keyword_detector, "secret groom\nsecret groom\n" + filler_words(100))
    late_only = await score_segment(keyword_detector, filler_words(100))
    assert early.risk > 0.9 and late_only.risk < 0.1


async def test_a_segment_with_nothing_to_score(keyword_detector: OnnxDetector) -> None:
    for text in ("", " ... \n !!! 🙂"):
        assert await score_segment(keyword_detector, text) == SegmentScore(risk=0.0, chunks=0)


@pytest.fixture
async def gru_keyword_detector(tmp_path: Path) -> AsyncIterator[OnnxDetector]:
    model_dir = build_gru_keyword_model(tmp_path / "gru-model", weights=FLATTENED_KEYWORD_GRU_WEIGHTS)
    detector = await OnnxDetector.load(model_dir, intra_op_threads=1)
    try:
        yield detector
    finally:
        await detector.aclose()


async def test_with_a_gru_the_chunks_are_one_members_messages(gru_keyword_detector: OnnxDetector) -> None:
    text = filler_words(60) + "\nsecret groom\nsecret groom secret\n" + filler_words(40)
    result = await score_segment(gru_keyword_detector, text)
    chunks = split_segment(text, max_length=KEYWORD_MAX_LENGTH)
    scores = await gru_keyword_detector.score(list(chunks))
    hidden = np.zeros((2, FLATTENED_KEYWORD_GRU_WEIGHTS.state_size), np.float32)
    risks = []
    for score in scores:
        assert score.features is not None
        logits, hidden = reference_step(
            FLATTENED_KEYWORD_GRU_WEIGHTS,
            np.stack([score.features, score.features]),
            np.array([[FLATTENED_OWN], [0.0]], np.float32),  # the chunk's speaker is unknown
            hidden,
        )
        risks.append(1.0 / (1.0 + math.exp(-float(logits[0]))))
    assert result.chunks == len(chunks)
    assert result.risk == pytest.approx(max(risks), abs=1e-5)
    assert max(risks) > 0.7 > risks[-1]  # the peak is the grooming line, not the end
