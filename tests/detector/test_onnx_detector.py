"""OnnxDetector against real onnxruntime and tokenizers, on the tiny model directory from conftest."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.detector.conftest import TINY_MAX_LENGTH, TINY_SIGNALS, WORDS, ModelDirFactory
from vigil.bots.core.ports import ReviewLine
from vigil.detector import (
    BatcherClosedError,
    Detector,
    EmaPairModel,
    MessageScore,
    ModelLoadError,
    OnnxDetector,
    load_default_model_dir,
)
from vigil.detector.onnx_detector import _MAX_PADDING_RATIO, _MIN_SUB_BATCH, _length_groups

CHAT_LINES = (
    "hi how are you",
    "what is your age",
    "lol ok",
    "dont tell your parents this is our secret",
    "want to meet later tonight",
    "",
    "send a pic",
    "nice game cool",
    "Hello HELLO hello",
    "words the model never saw: zebra quantum",
)


def as_array(scores: Sequence[MessageScore]) -> np.ndarray:
    return np.array([[score.risk, *score.signals] for score in scores], dtype=np.float64)


def varied_texts(count: int) -> list[str]:
    rng = np.random.default_rng(5)
    texts = []
    for _ in range(count):
        length = int(rng.integers(0, 30))  # 0 to past max_length, so rows truncate and pad differently
        texts.append(" ".join(WORDS[int(i)] for i in rng.integers(0, len(WORDS), size=length)))
    return texts


def rewrite_metadata(model_dir: Path, change: dict[str, Any]) -> None:
    path = model_dir / "metadata.json"
    metadata = json.loads(path.read_text(encoding="utf-8"))
    metadata.update(change)
    path.write_text(json.dumps(metadata), encoding="utf-8")


async def test_scores_are_probabilities_deterministic_and_in_order(tiny_detector: OnnxDetector) -> None:
    first = await tiny_detector.score(CHAT_LINES)
    second = await tiny_detector.score(CHAT_LINES)
    reversed_scores = await tiny_detector.score(list(reversed(CHAT_LINES)))

    assert first == second
    np.testing.assert_allclose(as_array(reversed_scores), as_array(first)[::-1], rtol=1e-6, atol=1e-7)
    assert len(first) == len(CHAT_LINES)
    for score in first:
        assert 0.0 <= score.risk <= 1.0
        assert len(score.signals) == len(TINY_SIGNALS)
        assert all(0.0 <= signal <= 1.0 for signal in score.signals)
    # Different texts get different scores: the model really ran on each row.
    assert len({score.risk for score in first}) > len(CHAT_LINES) // 2


async def test_concurrent_calls_match_one_by_one(tiny_model_dir: Path) -> None:
    texts = varied_texts(300)
    detector = await OnnxDetector.load(tiny_model_dir, intra_op_threads=1, max_batch=32, max_wait_s=0.01)
    try:
        one_by_one = [(await detector.score([text]))[0] for text in texts]
        singles = await asyncio.gather(*(detector.score([text]) for text in texts))
        chunks = await asyncio.gather(*(detector.score(texts[i : i + 7]) for i in range(0, len(texts), 7)))
        whole = await detector.score(texts)
    finally:
        await detector.aclose()

    expected = as_array(one_by_one)
    np.testing.assert_allclose(as_array([scores[0] for scores in singles]), expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        as_array([s for chunk in chunks for s in chunk]), expected, rtol=1e-6, atol=1e-7
    )
    np.testing.assert_allclose(as_array(whole), expected, rtol=1e-6, atol=1e-7)


async def test_satisfies_detector_protocol_and_exposes_metadata(tiny_detector: OnnxDetector) -> None:
    detector: Detector = tiny_detector
    assert detector.info.name == "vigil-tiny-test"
    assert detector.info.version == "0.0.1"
    assert detector.info.max_length == TINY_MAX_LENGTH
    assert detector.info.signals == tuple(signal["name"] for signal in TINY_SIGNALS)
    assert detector.info.signal_labels == tuple(signal["label"] for signal in TINY_SIGNALS)
    assert detector.info.default_threshold == 0.7
    assert detector.info.signal_threshold == 0.5
    assert tiny_detector.pair_model == EmaPairModel(alpha=0.1, min_messages=8)
    assert tiny_detector.metadata["policy_defaults"]["sustain_messages"] == 3
    with pytest.raises(TypeError):
        tiny_detector.metadata["name"] = "changed"  # type: ignore[index]
    with pytest.raises(TypeError):
        tiny_detector.metadata["policy_defaults"]["sustain_messages"] = 1


@pytest.mark.parametrize("token_type_ids", [True, False])
async def test_feeds_exactly_the_inputs_the_graph_declares(
    build_model_dir: ModelDirFactory, *, token_type_ids: bool
) -> None:
    # onnxruntime refuses a feed that lacks a declared input ("Required inputs ... are missing") and one
    # that names an undeclared input ("Invalid input name"), so a successful run proves the feed matched.
    model_dir = build_model_dir(token_type_ids=token_type_ids)
    detector = await OnnxDetector.load(model_dir, intra_op_threads=1)
    try:
        scores = await detector.score(["how old are you", "", "hi"])
    finally:
        await detector.aclose()
    assert len(scores) == 3
    assert all(math.isfinite(score.risk) for score in scores)


async def test_token_type_ids_reach_the_graph(build_model_dir: ModelDirFactory) -> None:
    # The same weights with and without a token-type embedding: only a fed token_type_ids can differ.
    with_types = await OnnxDetector.load(build_model_dir(name="typed", token_type_ids=True))
    without_types = await OnnxDetector.load(build_model_dir(name="untyped", token_type_ids=False))
    try:
        typed, untyped = await with_types.score(["hi there"]), await without_types.score(["hi there"])
    finally:
        await with_types.aclose()
        await without_types.aclose()
    assert typed[0].risk != pytest.approx(untyped[0].risk)


async def test_empty_texts_are_scored(build_model_dir: ModelDirFactory) -> None:
    for special_tokens in (True, False):
        # Without special tokens an empty text has no tokens at all: the batch still needs one column.
        model_dir = build_model_dir(name=f"special-{special_tokens}", special_tokens=special_tokens)
        detector = await OnnxDetector.load(model_dir, intra_op_threads=1)
        try:
            only_empty = await detector.score([""])
            mixed = await detector.score(["", "hi how are you", ""])
            assert await detector.score([]) == []
        finally:
            await detector.aclose()
        assert 0.0 <= only_empty[0].risk <= 1.0
        assert len(only_empty[0].signals) == len(TINY_SIGNALS)
        assert mixed[0].risk == pytest.approx(only_empty[0].risk, abs=1e-7)
        assert mixed[2].risk == pytest.approx(only_empty[0].risk, abs=1e-7)


async def test_huge_text_is_truncated_to_max_length(tiny_detector: OnnxDetector) -> None:
    words = [WORDS[i % len(WORDS)] for i in range(25_000)]
    huge = " ".join(words)[:100_000]
    # [CLS] and [SEP] take two of max_length's positions.
    kept = " ".join(words[: TINY_MAX_LENGTH - 2])

    started = time.perf_counter()
    huge_score, kept_score = await tiny_detector.score([huge, kept])
    elapsed = time.perf_counter() - started

    assert elapsed < 5.0
    assert huge_score.risk == pytest.approx(kept_score.risk, abs=1e-6)
    assert huge_score.signals == pytest.approx(kept_score.signals, abs=1e-6)


async def test_score_rejects_a_bare_string_and_non_strings(tiny_detector: OnnxDetector) -> None:
    with pytest.raises(TypeError, match="not a single str"):
        await tiny_detector.score("hello")
    with pytest.raises(TypeError, match="str"):
        await tiny_detector.score(["hello", 3])  # type: ignore[list-item]
    assert len(await tiny_detector.score(["hello"])) == 1


async def test_score_after_aclose_fails_clearly(tiny_model_dir: Path) -> None:
    detector = await OnnxDetector.load(tiny_model_dir)
    await detector.aclose()
    await detector.aclose()  # idempotent
    with pytest.raises(BatcherClosedError, match="closed"):
        await detector.score(["hi"])


# --- load errors --------------------------------------------------------------------------------------------


async def test_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ModelLoadError, match=r"model directory .*nowhere does not exist"):
        await OnnxDetector.load(missing)


async def test_directory_that_is_a_file(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "model"
    not_a_dir.write_text("x", encoding="utf-8")
    with pytest.raises(ModelLoadError, match="is not a directory"):
        await OnnxDetector.load(not_a_dir)


@pytest.mark.parametrize("file_name", ["model.onnx", "tokenizer.json", "metadata.json"])
async def test_missing_file(tiny_model_dir: Path, file_name: str) -> None:
    (tiny_model_dir / file_name).unlink()
    with pytest.raises(ModelLoadError) as raised:
        await OnnxDetector.load(tiny_model_dir)
    assert f"has no {file_name}" in str(raised.value)
    assert str(tiny_model_dir / file_name) in str(raised.value)


async def test_corrupt_onnx(tiny_model_dir: Path) -> None:
    (tiny_model_dir / "model.onnx").write_bytes(b"\x08\x07this is not a protobuf model" * 10)
    with pytest.raises(ModelLoadError, match=r"model\.onnx is not a loadable ONNX model"):
        await OnnxDetector.load(tiny_model_dir)


async def test_corrupt_tokenizer(tiny_model_dir: Path) -> None:
    (tiny_model_dir / "tokenizer.json").write_text('{"version": "1.0", "model": 7}', encoding="utf-8")
    with pytest.raises(ModelLoadError, match=r"tokenizer\.json is not a valid tokenizers file"):
        await OnnxDetector.load(tiny_model_dir)


async def test_metadata_not_json(tiny_model_dir: Path) -> None:
    (tiny_model_dir / "metadata.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelLoadError, match=r"metadata\.json is not valid JSON"):
        await OnnxDetector.load(tiny_model_dir)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"max_length": None}, "'max_length'"),
        ({"max_length": "64"}, "'max_length' must be an integer"),
        ({"max_length": 0}, "'max_length' must be >= 1"),
        ({"format": 2}, "'format' is 2"),
        ({"name": ""}, "'name' must be a non-empty string"),
        ({"outputs": {"risk": "risk_logit"}}, "'outputs.signals' is missing"),
        ({"signals": [{"name": "asks_age"}]}, "'signals[0].label' is missing"),
        ({"signals": "asks_age"}, "'signals' must be an array"),
        ({"default_threshold": 1.5}, "'default_threshold' must be a number between 0 and 1"),
        ({"signal_threshold": True}, "'signal_threshold' must be a number between 0 and 1"),
        ({"pair_model": {"type": "lstm"}}, "'pair_model' is invalid"),
        ({"pair_model": {"type": "ema", "alpha": 0.1}}, "'pair_model' is invalid"),
    ],
)
async def test_bad_metadata_names_the_key(tiny_model_dir: Path, change: dict[str, Any], key: str) -> None:
    missing = [name for name, value in change.items() if value is None]
    rewrite_metadata(tiny_model_dir, {name: value for name, value in change.items() if value is not None})
    if missing:
        path = tiny_model_dir / "metadata.json"
        metadata = json.loads(path.read_text(encoding="utf-8"))
        for name in missing:
            del metadata[name]
        path.write_text(json.dumps(metadata), encoding="utf-8")
    with pytest.raises(ModelLoadError) as raised:
        await OnnxDetector.load(tiny_model_dir)
    assert "metadata.json" in str(raised.value)
    assert key in str(raised.value)


async def test_input_we_cannot_feed(build_model_dir: ModelDirFactory) -> None:
    model_dir = build_model_dir(extra_input="position_ids")
    with pytest.raises(ModelLoadError, match=r"declares input 'position_ids', which Vigil cannot feed"):
        await OnnxDetector.load(model_dir)


async def test_output_names_absent_from_graph(tiny_model_dir: Path) -> None:
    rewrite_metadata(tiny_model_dir, {"outputs": {"risk": "logits", "signals": "signal_logits"}})
    with pytest.raises(ModelLoadError) as raised:
        await OnnxDetector.load(tiny_model_dir)
    message = str(raised.value)
    assert "'outputs.risk'" in message
    assert "'logits'" in message
    assert "risk_logit" in message  # the outputs the graph does have


@pytest.mark.parametrize("symbolic_signal_dim", [False, True])
async def test_signal_count_mismatch(build_model_dir: ModelDirFactory, *, symbolic_signal_dim: bool) -> None:
    # A fixed dimension is caught from the graph's declaration, a symbolic one by the trial run.
    model_dir = build_model_dir(graph_signals=len(TINY_SIGNALS) + 1, symbolic_signal_dim=symbolic_signal_dim)
    with pytest.raises(ModelLoadError) as raised:
        await OnnxDetector.load(model_dir)
    message = str(raised.value)
    assert "signal_logits" in message
    assert f"lists {len(TINY_SIGNALS)} signals" in message


# Golden values of the shipped model (2026.12.11, whose message model is 2026.12.2's: risk as since
# 2026.11.0, signals from the explanation heads retrained on modern grooming moves): text -> (risk,
# {signal: p}) for the signals that matter for that text. Re-train -> update these. Scored together in
# one batch of five; the portable export scores each message as it would alone, so these equal
# golden.json's values.
SHIPPED_GOLDEN: tuple[tuple[str, float, dict[str, float]], ...] = (
    ("hey how was school today", 0.7040, {"asks_age": 0.006, "secrecy": 0.008}),
    ("how old are you? dont tell your mom about me ok", 0.7250, {"asks_age": 0.903, "secrecy": 0.980}),
    ("gg that was a great match", 0.1918, {"asks_age": 0.000, "meeting": 0.010}),
    ("can you send me a pic, we can meet this weekend", 0.8127, {"personal_info": 0.920, "meeting": 0.595}),
    ("The meeting is moved to 3pm, see the agenda.", 0.1285, {"meeting": 0.079, "secrecy": 0.000}),
)


async def test_shipped_model_golden() -> None:
    detector = await OnnxDetector.load(load_default_model_dir(), intra_op_threads=1)
    try:
        assert (detector.info.name, detector.info.version) == ("vigil-minilm-grooming", "2026.12.11")
        scores = await detector.score([text for text, _, _ in SHIPPED_GOLDEN])
        # The alert reviewer (2026.12.11) passed its golden windows at load; these are two of its readings.
        reviewer = detector.reviewer
        assert reviewer is not None and (reviewer.threshold, reviewer.window_messages) == (0.3, 24)
        friends = [
            ReviewLine(own=False, text="did u finish the maths hw"),
            ReviewLine(own=True, text="nah not yet lol"),
            ReviewLine(own=False, text="dont tell mom i copied yours"),
            ReviewLine(own=True, text="ok i wont"),
        ]
        adult = [
            ReviewLine(own=True, text="how old are you"),
            ReviewLine(own=False, text="13"),
            ReviewLine(own=True, text="you seem really mature for your age"),
            ReviewLine(own=False, text="thanks"),
            ReviewLine(own=True, text="this is our secret ok, dont tell your parents we talk"),
        ]
        assert await reviewer.review(friends) < 0.05
        assert await reviewer.review(adult) > 0.95
        signal_index = {name: i for i, name in enumerate(detector.info.signals)}
    finally:
        await detector.aclose()
    for (text, risk, signals), score in zip(SHIPPED_GOLDEN, scores, strict=True):
        # The golden check's tolerance: float paths may differ in the last bits across CPUs.
        assert score.risk == pytest.approx(risk, abs=0.005), text
        for name, probability in signals.items():
            assert score.signals[signal_index[name]] == pytest.approx(probability, abs=0.005), (text, name)


def test_length_groups_partition_in_order_and_keep_padding_near_the_real_tokens() -> None:
    # The sub-batching rule behind score_batch: private, but the rule that sets the detector's throughput.
    lengths = sorted([3] * 5 + [4] * 7 + [9] * 2 + [12] * 30 + [40] * 6 + [64] * 11 + [0])
    groups = _length_groups(lengths)
    assert [position for group in groups for position in group] == list(range(len(lengths)))
    for group in groups:
        rows = [max(1, lengths[position]) for position in group]
        # A group grows past its first _MIN_SUB_BATCH rows only while padding stays within the ratio.
        if len(rows) > _MIN_SUB_BATCH:
            assert len(rows) * max(rows) <= _MAX_PADDING_RATIO * sum(rows)
