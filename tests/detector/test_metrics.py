from __future__ import annotations

import math

import pytest

from vigil.detector.metrics import (
    CONVERSATION_METRIC_KEYS,
    SEGMENT_METRIC_KEYS,
    ConversationOutcome,
    SegmentOutcome,
    average_precision,
    f_beta,
    latency_penalty,
    latency_steepness,
    precision,
    recall,
    summarise,
    summarise_segments,
)

EXPECTED_KEYS = {
    "conversations_pos",
    "conversations_neg",
    "messages",
    "precision",
    "recall",
    "f1",
    "f0_5",
    "pr_auc",
    "suspect_accuracy",
    "suspect_accuracy_interleaved",
    "victim_flag_rate",
    "median_messages_to_alert",
    "median_fraction_seen",
    "speed",
    "f_latency",
    "false_alerts_per_10k_messages",
    "messages_per_second",
}


def _outcome(
    *,
    source: str = "src",
    label: int,
    messages: int,
    suspects: frozenset[str] = frozenset(),
    first_alert_index: int | None = None,
    first_alert_suspect_id: str | None = None,
    alerted_suspect_ids: frozenset[str] = frozenset(),
    alerted_on_suspect_pair: bool = False,
    alerts_count: int = 0,
    max_risk: float = 0.0,
    interleaved: bool = True,
) -> ConversationOutcome:
    return ConversationOutcome(
        source=source,
        label=label,
        interleaved=interleaved,
        messages=messages,
        suspects=suspects,
        first_alert_index=first_alert_index,
        first_alert_suspect_id=first_alert_suspect_id,
        alerted_suspect_ids=alerted_suspect_ids,
        alerted_on_suspect_pair=alerted_on_suspect_pair,
        alerts_count=alerts_count,
        max_risk=max_risk,
    )


def _true_positive(
    *,
    source: str = "src",
    messages: int = 10,
    at: int = 4,
    suspect: str = "off-a",
    named: str | None = None,
    also_named: frozenset[str] = frozenset(),
    interleaved: bool = True,
    max_risk: float = 0.9,
) -> ConversationOutcome:
    first_named = suspect if named is None else named
    return _outcome(
        source=source,
        label=1,
        messages=messages,
        suspects=frozenset({suspect}),
        first_alert_index=at,
        first_alert_suspect_id=first_named,
        alerted_suspect_ids=frozenset({first_named}) | also_named,
        alerted_on_suspect_pair=True,
        alerts_count=1,
        max_risk=max_risk,
        interleaved=interleaved,
    )


# The four basic cases. Hand computation for summarise(FOUR_CASES, elapsed_s=4.0):
#   TP = 1 (pj, 10 messages, alert at k=4), FN = 1 (pj, 20 messages), FP = 1 (chat, 30 messages, 2 alerts),
#   TN = 1 (chat, 40 messages).
#   precision = 1 / (1 + 1) = 0.5, recall = 1 / (1 + 1) = 0.5, f1 = 0.5,
#   f0.5 = 1.25 * 0.25 / (0.25 * 0.5 + 0.5) = 0.3125 / 0.625 = 0.5.
#   Ranking by max_risk: 0.9 (+), 0.8 (-), 0.3 (+), 0.1 (-): AP = (1/1 + 2/3) / 2 = 5/6.
#   Median positive length = median(10, 20) = 15, so p = ln 3 / 14;
#   penalty(4) = -1 + 2 / (1 + 3 ** (-3/14)); speed = 1 - penalty(4); f_latency = 0.5 * speed.
#   False alerts: 2 alerts over 30 + 40 = 70 label-0 messages: 2 / 70 * 10_000 = 285.714...
#   messages = 100, throughput = 100 / 4.0 = 25.
FOUR_CASES = (
    _true_positive(source="pj", messages=10, at=4, max_risk=0.9),
    _outcome(source="pj", label=1, messages=20, suspects=frozenset({"off-b"}), max_risk=0.3),
    _outcome(
        source="chat",
        label=0,
        messages=30,
        first_alert_index=5,
        first_alert_suspect_id="u-x",
        alerted_suspect_ids=frozenset({"u-x"}),
        alerts_count=2,
        max_risk=0.8,
    ),
    _outcome(source="chat", label=0, messages=40, max_risk=0.1),
)
SPEED_FOUR_CASES = 1 - (-1 + 2 / (1 + 3 ** (-3 / 14)))


def test_outcome_classification() -> None:
    true_positive, false_negative, false_positive, true_negative = FOUR_CASES

    assert true_positive.is_true_positive
    assert false_negative.is_false_negative
    assert false_positive.is_false_positive
    assert not any(
        (true_negative.is_true_positive, true_negative.is_false_negative, true_negative.is_false_positive)
    )


def test_alert_on_a_non_suspect_pair_does_not_make_a_true_positive() -> None:
    # A label-1 channel where the only alert was on two bystanders: still a false negative.
    outcome = _outcome(
        label=1,
        messages=10,
        suspects=frozenset({"off-a"}),
        first_alert_index=3,
        first_alert_suspect_id="u-bystander",
        alerted_suspect_ids=frozenset({"u-bystander"}),
        alerted_on_suspect_pair=False,
        alerts_count=1,
    )

    summary = summarise([outcome], elapsed_s=1.0)

    assert outcome.is_false_negative
    assert summary["recall"] == 0.0
    assert summary["precision"] is None  # no TP and no label-0 alert: nothing counted as predicted
    assert summary["victim_flag_rate"] == 1.0


def test_summarise_four_basic_cases() -> None:
    summary = summarise(FOUR_CASES, elapsed_s=4.0)

    assert summary["conversations_pos"] == 2
    assert summary["conversations_neg"] == 2
    assert summary["messages"] == 100
    assert summary["precision"] == pytest.approx(0.5)
    assert summary["recall"] == pytest.approx(0.5)
    assert summary["f1"] == pytest.approx(0.5)
    assert summary["f0_5"] == pytest.approx(0.5)
    assert summary["pr_auc"] == pytest.approx(5 / 6)
    assert summary["suspect_accuracy"] == 1.0
    assert summary["suspect_accuracy_interleaved"] == 1.0
    assert summary["victim_flag_rate"] == 0.0
    assert summary["median_messages_to_alert"] == 4
    assert summary["median_fraction_seen"] == pytest.approx(0.4)
    assert summary["speed"] == pytest.approx(SPEED_FOUR_CASES)
    assert summary["f_latency"] == pytest.approx(0.5 * SPEED_FOUR_CASES)
    assert summary["false_alerts_per_10k_messages"] == pytest.approx(2 / 70 * 10_000)
    assert summary["messages_per_second"] == pytest.approx(25.0)


def test_exact_key_set() -> None:
    summary = summarise(FOUR_CASES, elapsed_s=1.0)

    assert set(CONVERSATION_METRIC_KEYS) == EXPECTED_KEYS
    assert set(summary) == EXPECTED_KEYS | {"by_source"}
    by_source = summary["by_source"]
    assert isinstance(by_source, dict)
    assert all(set(metrics) == EXPECTED_KEYS for metrics in by_source.values())


def test_by_source_split() -> None:
    summary = summarise(FOUR_CASES, elapsed_s=4.0)
    by_source = summary["by_source"]
    assert isinstance(by_source, dict)
    assert list(by_source) == ["chat", "pj"]

    chat, pj = by_source["chat"], by_source["pj"]
    # chat: one FP, one TN. precision = 0 / (0 + 1) = 0; no positives, so recall and everything after is None.
    assert chat["conversations_pos"] == 0
    assert chat["conversations_neg"] == 2
    assert chat["messages"] == 70
    assert chat["precision"] == 0.0
    assert chat["recall"] is None
    assert chat["f1"] is None
    assert chat["pr_auc"] is None
    assert chat["speed"] is None
    assert chat["false_alerts_per_10k_messages"] == pytest.approx(2 / 70 * 10_000)
    # Per-source throughput is the overall figure.
    assert chat["messages_per_second"] == pytest.approx(25.0)
    # pj: TP + FN. precision = 1/1, recall = 1/2, f1 = 2 * 0.5 / 1.5 = 2/3,
    # f0.5 = 1.25 * 0.5 / (0.25 + 0.5) = 5/6; both positives rank above nothing negative: AP = 1.
    assert pj["precision"] == 1.0
    assert pj["recall"] == 0.5
    assert pj["f1"] == pytest.approx(2 / 3)
    assert pj["f0_5"] == pytest.approx(5 / 6)
    assert pj["pr_auc"] == pytest.approx(1.0)
    assert pj["speed"] == pytest.approx(SPEED_FOUR_CASES)  # same median length (15) as overall
    assert pj["false_alerts_per_10k_messages"] is None


def test_latency_steepness_and_penalty() -> None:
    # Median positive length 11: p = ln 3 / 10. penalty(1) = -1 + 2 / 2 = 0;
    # penalty(11) = -1 + 2 / (1 + e^(-ln 3)) = -1 + 2 / (4/3) = 0.5.
    steepness = latency_steepness(11)

    assert steepness == pytest.approx(math.log(3) / 10)
    assert latency_penalty(1, steepness=steepness) == 0.0
    assert latency_penalty(11, steepness=steepness) == pytest.approx(0.5)
    assert 0.99 < latency_penalty(10_000, steepness=steepness) <= 1.0
    assert latency_steepness(1) == pytest.approx(math.log(3))
    assert latency_steepness(0.5) == pytest.approx(math.log(3))


def test_speed_and_f_latency() -> None:
    # Two TPs of 11 messages, alerted at k=1 (penalty 0) and k=11 (penalty 0.5): speed = 1 - 0.25 = 0.75.
    # One FP: precision = 2/3, recall = 1, f1 = 2 * (2/3) / (5/3) = 0.8; f_latency = 0.8 * 0.75 = 0.6.
    outcomes = [
        _true_positive(messages=11, at=1),
        _true_positive(messages=11, at=11),
        _outcome(label=0, messages=9, first_alert_index=2, first_alert_suspect_id="u-x", alerts_count=1),
    ]

    summary = summarise(outcomes, elapsed_s=1.0)

    assert summary["f1"] == pytest.approx(0.8)
    assert summary["speed"] == pytest.approx(0.75)
    assert summary["f_latency"] == pytest.approx(0.6)
    assert summary["median_messages_to_alert"] == 6.0  # median(1, 11)
    assert summary["median_fraction_seen"] == pytest.approx((1 / 11 + 1) / 2)


def test_average_precision_on_a_known_ranking() -> None:
    # 0.9 (+), 0.8 (-), 0.7 (+), 0.6 (-): AP = (1/1 + 2/3) / 2 = 5/6.
    assert average_precision([0.9, 0.8, 0.7, 0.6], labels=[1, 0, 1, 0]) == pytest.approx(5 / 6)
    # Perfect ranking and worst ranking of one positive among four.
    assert average_precision([0.9, 0.1, 0.2], labels=[1, 0, 0]) == 1.0
    assert average_precision([0.1, 0.9, 0.8, 0.7], labels=[1, 0, 0, 0]) == pytest.approx(1 / 4)


def test_average_precision_ties_are_one_threshold_and_order_independent() -> None:
    # Groups: {0.9: +} -> precision 1/1; {0.8: -, +} -> both counted, precision 2/3; {0.5: -};
    # {0.2: +} -> precision 3/5. AP = (1 + 2/3 + 3/5) / 3 = 34/45.
    scores = [0.9, 0.8, 0.8, 0.5, 0.2]
    labels = [1, 0, 1, 0, 1]

    assert average_precision(scores, labels=labels) == pytest.approx(34 / 45)
    assert average_precision(scores[::-1], labels=labels[::-1]) == pytest.approx(34 / 45)
    # All tied: precision = share of positives, whatever the order.
    assert average_precision([0.5] * 4, labels=[1, 0, 0, 0]) == pytest.approx(1 / 4)


def test_average_precision_without_positives_is_none() -> None:
    assert average_precision([0.3, 0.2], labels=[0, 0]) is None
    assert average_precision([], labels=[]) is None
    with pytest.raises(ValueError, match="same length"):
        average_precision([0.3], labels=[])


def test_victim_flag_and_suspect_accuracy_interleaved_vs_not() -> None:
    # TP1 interleaved, first alert names the suspect: correct.
    # TP2 interleaved, first alert names the decoy (a later one names the offender): wrong, and a victim flag.
    # TP3 not interleaved, first alert names the suspect: correct.
    # suspect_accuracy = 2/3; interleaved only = 1/2; victim_flag_rate = 1/3 (TP2).
    outcomes = [
        _true_positive(suspect="off-1"),
        _true_positive(suspect="off-2", named="dec-2", also_named=frozenset({"off-2"})),
        _true_positive(suspect="off-3", interleaved=False),
    ]

    summary = summarise(outcomes, elapsed_s=1.0)

    assert summary["suspect_accuracy"] == pytest.approx(2 / 3)
    assert summary["suspect_accuracy_interleaved"] == pytest.approx(1 / 2)
    assert summary["victim_flag_rate"] == pytest.approx(1 / 3)


def test_suspect_accuracy_interleaved_is_none_without_interleaved_true_positives() -> None:
    summary = summarise([_true_positive(interleaved=False)], elapsed_s=1.0)

    assert summary["suspect_accuracy"] == 1.0
    assert summary["suspect_accuracy_interleaved"] is None


def test_false_alerts_per_10k_messages_counts_label_0_only() -> None:
    # Label 0: 1 alert in 5,000 messages and 2 in 15,000: 3 / 20,000 * 10,000 = 1.5.
    # The label-1 conversation's alert and messages do not count.
    outcomes = [
        _outcome(label=0, messages=5_000, first_alert_index=10, first_alert_suspect_id="u-1", alerts_count=1),
        _outcome(
            label=0, messages=15_000, first_alert_index=99, first_alert_suspect_id="u-2", alerts_count=2
        ),
        _true_positive(messages=1_000, at=50),
    ]

    assert summarise(outcomes, elapsed_s=1.0)["false_alerts_per_10k_messages"] == pytest.approx(1.5)


def test_undefined_metrics_are_none() -> None:
    empty = summarise([], elapsed_s=0.0)
    assert empty["conversations_pos"] == 0
    assert empty["messages"] == 0
    assert empty["by_source"] == {}
    assert all(
        empty[key] is None for key in EXPECTED_KEYS - {"conversations_pos", "conversations_neg", "messages"}
    )

    # Only quiet negatives: nothing predicted, no positives.
    quiet = summarise([_outcome(label=0, messages=10)], elapsed_s=2.0)
    assert quiet["precision"] is None
    assert quiet["recall"] is None
    assert quiet["f1"] is None
    assert quiet["pr_auc"] is None
    assert quiet["speed"] is None
    assert quiet["f_latency"] is None
    assert quiet["false_alerts_per_10k_messages"] == 0.0
    assert quiet["messages_per_second"] == pytest.approx(5.0)

    # Only missed positives: recall 0, precision undefined, no latency.
    missed = summarise([_outcome(label=1, messages=10, suspects=frozenset({"off-a"}))], elapsed_s=1.0)
    assert missed["recall"] == 0.0
    assert missed["precision"] is None
    assert missed["f1"] is None
    assert missed["suspect_accuracy"] is None
    assert missed["median_messages_to_alert"] is None
    assert missed["median_fraction_seen"] is None
    assert missed["speed"] is None
    assert missed["victim_flag_rate"] == 0.0
    assert missed["false_alerts_per_10k_messages"] is None


def test_small_functions_edge_cases() -> None:
    assert precision(0, false_positives=0) is None
    assert recall(0, false_negatives=0) is None
    assert f_beta(0.0, recall=0.0, beta=1.0) == 0.0
    assert f_beta(None, recall=0.5, beta=1.0) is None
    # F2 with P = 0.5, R = 1: 5 * 0.5 / (4 * 0.5 + 1) = 2.5 / 3.
    assert f_beta(0.5, recall=1.0, beta=2.0) == pytest.approx(2.5 / 3)


def test_inconsistent_outcomes_are_refused() -> None:
    with pytest.raises(ValueError, match="first_alert_index"):
        _outcome(label=0, messages=5, first_alert_index=2)
    with pytest.raises(ValueError, match="first_alert_index"):
        _outcome(label=0, messages=5, alerts_count=1)
    with pytest.raises(ValueError, match="outside"):
        _outcome(label=0, messages=5, first_alert_index=6, alerts_count=1)
    with pytest.raises(ValueError, match="label"):
        _outcome(label=2, messages=5)
    with pytest.raises(ValueError, match="NaN"):
        _outcome(label=0, messages=5, max_risk=math.nan)


def test_summarise_segments() -> None:
    # threshold 0.5: a 0.9 (+) TP, a 0.7 (-) FP, a 0.4 (+) FN, b 0.2 (-) TN, b 0.6 (-) FP.
    # precision = 1/3, recall = 1/2, f0.5 = 1.25 * (1/6) / (0.25/3 + 1/2) = (5/24) / (7/12) = 5/14.
    # Ranking 0.9 +, 0.7 -, 0.6 -, 0.4 +, 0.2 -: AP = (1 + 2/4) / 2 = 0.75.
    outcomes = [
        SegmentOutcome(source="a", label=1, score=0.9),
        SegmentOutcome(source="a", label=0, score=0.7),
        SegmentOutcome(source="a", label=1, score=0.4),
        SegmentOutcome(source="b", label=0, score=0.2),
        SegmentOutcome(source="b", label=0, score=0.6),
    ]

    summary = summarise_segments(outcomes, threshold=0.5)

    assert set(summary) == set(SEGMENT_METRIC_KEYS) | {"by_source"}
    assert set(SEGMENT_METRIC_KEYS) == {
        "precision",
        "recall",
        "f0_5",
        "pr_auc",
        "segments_pos",
        "segments_neg",
    }
    assert summary["precision"] == pytest.approx(1 / 3)
    assert summary["recall"] == pytest.approx(1 / 2)
    assert summary["f0_5"] == pytest.approx(5 / 14)
    assert summary["pr_auc"] == pytest.approx(0.75)
    assert (summary["segments_pos"], summary["segments_neg"]) == (2, 3)
    by_source = summary["by_source"]
    assert isinstance(by_source, dict)
    # a: precision 1/2, recall 1/2, f0.5 = 0.5, AP over 0.9 +, 0.7 -, 0.4 + = (1 + 2/3) / 2 = 5/6.
    assert by_source["a"]["precision"] == pytest.approx(0.5)
    assert by_source["a"]["f0_5"] == pytest.approx(0.5)
    assert by_source["a"]["pr_auc"] == pytest.approx(5 / 6)
    # b: one FP, no positives.
    assert by_source["b"]["precision"] == 0.0
    assert by_source["b"]["recall"] is None
    assert by_source["b"]["f0_5"] is None
    assert by_source["b"]["pr_auc"] is None
    # The threshold is inclusive.
    assert summarise_segments(outcomes, threshold=0.9)["precision"] == 1.0
