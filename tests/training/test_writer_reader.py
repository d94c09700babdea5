"""The writer-age reader (``training.writer_reader``): which messages it learns from, how it is scored, and
(with torch) the fit reading the raw features it was given."""

from __future__ import annotations

import numpy as np
import pytest

from training.pair_head import WRITER_ADULT, WRITER_MINOR, WRITER_UNKNOWN, CandidateSequence
from training.writer_reader import writer_auc, writer_examples


def sequence(
    conversation: str, candidate: str, text_ids: list[int], own: list[float], roles: list[float] | None
) -> CandidateSequence:
    return CandidateSequence(
        conversation_id=conversation,
        source=f"source-{conversation[0]}",
        label=0,
        text_ids=np.array(text_ids, dtype=np.int64),
        own=np.array(own, dtype=np.float32),
        weight=1.0,
        pair_id=f"{conversation}:a|b",
        candidate=candidate,
        interleaved=True,
        writer_minor=np.array(roles, dtype=np.float32) if roles is not None else None,
    )


def test_the_examples_are_the_candidates_own_messages_whose_writer_is_known() -> None:
    sequences = [
        # the child's sequence: its own messages 0, 2, 4; message 1 is the adult's
        sequence(
            "x1", "kid", [0, 1, 2, 3, 4], [1, 0, 1, 0, 1], [WRITER_MINOR, WRITER_ADULT] * 2 + [WRITER_MINOR]
        ),
        # the adult's sequence of the same pair: its own messages 1 and 3
        sequence(
            "x1", "adult", [0, 1, 2, 3, 4], [0, 1, 0, 1, 0], [WRITER_MINOR, WRITER_ADULT] * 2 + [WRITER_MINOR]
        ),
        sequence("y1", "bystander", [5, 6], [1, 1], [WRITER_UNKNOWN, WRITER_UNKNOWN]),
        sequence("z1", "nobody-named", [7], [1], None),
    ]
    rows, labels, sources = writer_examples(sequences, per_writer=2, seed=0)
    by_row = dict(zip(rows.tolist(), labels.tolist(), strict=True))
    assert set(by_row) <= {0, 2, 4, 1, 3}
    assert {row for row, label in by_row.items() if label == 1.0} <= {0, 2, 4}
    assert {row for row, label in by_row.items() if label == 0.0} == {1, 3}
    assert sum(1 for label in labels if label == 1.0) == 2  # at most per_writer of the child's three
    assert set(sources) == {"source-x"}


def test_writers_are_scored_by_their_mean_reading() -> None:
    matrix = np.array([[2.0], [1.0], [-1.0], [-3.0], [0.5]], dtype=np.float32)
    roles = [WRITER_MINOR, WRITER_MINOR, WRITER_ADULT, WRITER_ADULT, WRITER_MINOR]
    sequences = [
        sequence("a1", "kid", [0, 1], [1, 1], roles[:2]),
        sequence("a2", "adult", [2, 3], [1, 1], roles[2:4]),
        sequence("a3", "kid2", [4], [1], roles[4:]),
    ]
    report = writer_auc(sequences, matrix, np.array([1.0], dtype=np.float32), 0.0)
    assert report["writers"] == 3.0 and report["auc"] == 1.0
    assert report["adult_mean"] < 0.5 < report["child_mean"]
    flipped = writer_auc(sequences, matrix, np.array([-1.0], dtype=np.float32), 0.0)
    assert flipped["auc"] == 0.0


def test_the_fit_returns_weights_on_the_raw_features() -> None:
    pytest.importorskip("torch")  # training extra
    from training.writer_reader import fit_reader  # noqa: PLC0415

    rng = np.random.default_rng(0)
    labels = (rng.random(2000) < 0.5).astype(np.float32)
    informative = labels * 2.0 + rng.normal(size=2000) * 0.5 + 100.0  # far from zero, scaled
    noise = rng.normal(size=2000) * 10.0
    x = np.stack([informative, noise], -1).astype(np.float32)
    weight, bias = fit_reader(x, labels, ["s"] * 2000)
    child = 1.0 / (1.0 + np.exp(-(x @ weight + bias)))
    assert weight[0] > 0.0 and abs(weight[1]) < abs(weight[0]) / 10
    assert ((child > 0.5) == (labels == 1.0)).mean() > 0.9
