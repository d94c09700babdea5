"""Metric definitions for ``vigil eval``: pure functions over per-conversation (or per-segment) outcomes.

A conversation's outcome is decided by its label and by where alerts fired:

- label 1 with an alert on a pair that contains a suspect: true positive;
- label 1 without such an alert: false negative (alerts on other pairs do not rescue it);
- label 0 with any alert: false positive; label 0 without alerts: true negative.

Alerts on non-suspect pairs inside a label-1 conversation do not enter precision; ``victim_flag_rate`` and
``suspect_accuracy`` report who the alerts blamed. Every metric that would divide by zero is ``None``.

Latency follows Vogt, Leser & Akbik (ACL 2021, "Early Detection of Sexual Predators in Chats"):
``penalty(k) = -1 + 2 / (1 + exp(-p (k - 1)))`` for an alert after ``k`` messages, with ``p`` chosen so that
the penalty at the median length of the positive conversations is 0.5; ``speed = 1 - median penalty`` over
true positives, and ``f_latency = f1 * speed``.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

logger = logging.getLogger(__name__)

CONVERSATION_METRIC_KEYS: tuple[str, ...] = (
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
)

SEGMENT_METRIC_KEYS: tuple[str, ...] = (
    "precision",
    "recall",
    "f0_5",
    "pr_auc",
    "segments_pos",
    "segments_neg",
)

_OutcomeT = TypeVar("_OutcomeT", "ConversationOutcome", "SegmentOutcome")


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationOutcome:
    """What happened when one labelled conversation was replayed through the monitor.

    ``first_alert_index`` is the number of messages seen (1-based) when the first alert of the conversation
    fired, on any pair; ``first_alert_suspect_id`` is who that alert named as the likely groomer.
    ``alerted_suspect_ids`` collects everyone any alert in the conversation named as the likely groomer.
    ``max_risk`` is the highest pair risk seen: the ranking score for PR-AUC.
    """

    source: str
    label: int
    interleaved: bool
    messages: int
    suspects: frozenset[str]
    first_alert_index: int | None
    first_alert_suspect_id: str | None
    alerted_suspect_ids: frozenset[str]
    alerted_on_suspect_pair: bool
    alerts_count: int
    max_risk: float

    def __post_init__(self) -> None:
        if self.label not in (0, 1):
            raise ValueError(f"label must be 0 or 1, got {self.label!r}")
        if self.messages < 0 or self.alerts_count < 0:
            raise ValueError("messages and alerts_count cannot be negative")
        if (self.first_alert_index is None) != (self.alerts_count == 0):
            raise ValueError("first_alert_index must be set exactly when alerts_count > 0")
        if self.first_alert_index is not None and not 1 <= self.first_alert_index <= self.messages:
            raise ValueError(f"first_alert_index {self.first_alert_index} is outside 1..{self.messages}")
        if self.alerted_on_suspect_pair and self.alerts_count == 0:
            raise ValueError("alerted_on_suspect_pair needs at least one alert")
        if math.isnan(self.max_risk):
            raise ValueError("max_risk is NaN")

    @property
    def is_true_positive(self) -> bool:
        return self.label == 1 and self.alerted_on_suspect_pair

    @property
    def is_false_negative(self) -> bool:
        return self.label == 1 and not self.alerted_on_suspect_pair

    @property
    def is_false_positive(self) -> bool:
        return self.label == 0 and self.alerts_count > 0


@dataclass(frozen=True, slots=True, kw_only=True)
class SegmentOutcome:
    """A flattened text segment's label and the detector's score for it."""

    source: str
    label: int
    score: float

    def __post_init__(self) -> None:
        if self.label not in (0, 1):
            raise ValueError(f"label must be 0 or 1, got {self.label!r}")
        if math.isnan(self.score):
            raise ValueError("score is NaN")


def precision(true_positives: int, *, false_positives: int) -> float | None:
    """TP / (TP + FP); ``None`` when nothing was predicted positive."""
    predicted = true_positives + false_positives
    return true_positives / predicted if predicted else None


def recall(true_positives: int, *, false_negatives: int) -> float | None:
    """TP / (TP + FN); ``None`` when there are no positives."""
    positives = true_positives + false_negatives
    return true_positives / positives if positives else None


def f_beta(precision: float | None, *, recall: float | None, beta: float) -> float | None:
    """F-beta; ``None`` when precision or recall is undefined, 0.0 when both are zero."""
    if precision is None or recall is None:
        return None
    beta_squared = beta * beta
    denominator = beta_squared * precision + recall
    if denominator == 0:
        return 0.0
    return (1 + beta_squared) * precision * recall / denominator


def average_precision(scores: Sequence[float], *, labels: Sequence[int]) -> float | None:
    """Average precision (the step-wise area under the precision-recall curve) of ranking by ``scores``.

    AP = sum over positives of the precision at that positive's rank, divided by the number of positives.
    Tied scores form one threshold, as in scikit-learn's ``average_precision_score``: every positive in a
    tie group gets the precision measured after the whole group, so the result never depends on input
    order. ``None`` when there are no positives.
    """
    if len(scores) != len(labels):
        raise ValueError("scores and labels must have the same length")
    total_positives = sum(1 for label in labels if label == 1)
    if total_positives == 0:
        return None
    ranked = sorted(zip(scores, labels, strict=True), key=lambda pair: pair[0], reverse=True)
    summed_precision = 0.0
    seen = 0
    seen_positives = 0
    index = 0
    while index < len(ranked):
        group_score = ranked[index][0]
        group_positives = 0
        while index < len(ranked) and ranked[index][0] == group_score:
            group_positives += ranked[index][1] == 1
            index += 1
        seen = index
        seen_positives += group_positives
        summed_precision += group_positives * (seen_positives / seen)
    return summed_precision / total_positives


def latency_steepness(median_positive_length: float) -> float:
    """The ``p`` that puts the latency penalty at 0.5 after ``median_positive_length`` messages.

    From ``-1 + 2 / (1 + exp(-p (m - 1))) = 0.5``: ``exp(-p (m - 1)) = 1/3``, so ``p = ln 3 / (m - 1)``;
    for ``m <= 1`` (no room to be late) ``p = ln 3``.
    """
    if median_positive_length <= 1:
        return math.log(3)
    return math.log(3) / (median_positive_length - 1)


def latency_penalty(messages_seen: float, *, steepness: float) -> float:
    """Vogt et al.'s penalty for alerting after ``messages_seen`` messages: 0 at once, towards 1 later."""
    # messages_seen >= 1 keeps the exponent <= 0, so exp cannot overflow.
    return -1 + 2 / (1 + math.exp(-steepness * (messages_seen - 1)))


def _median(values: Iterable[float]) -> float | None:
    collected = list(values)
    return float(statistics.median(collected)) if collected else None


def _share(matching: int, *, total: int) -> float | None:
    return matching / total if total else None


def _product(first: float | None, second: float | None) -> float | None:
    return None if first is None or second is None else first * second


def _suspect_accuracy(true_positives: Sequence[ConversationOutcome]) -> float | None:
    named_a_suspect = sum(
        1 for outcome in true_positives if outcome.first_alert_suspect_id in outcome.suspects
    )
    return _share(named_a_suspect, total=len(true_positives))


def _conversation_metrics(
    outcomes: Sequence[ConversationOutcome], *, messages_per_second: float | None
) -> dict[str, object]:
    positives = [outcome for outcome in outcomes if outcome.label == 1]
    negatives = [outcome for outcome in outcomes if outcome.label == 0]
    true_positives = [outcome for outcome in positives if outcome.is_true_positive]
    interleaved_true_positives = [outcome for outcome in true_positives if outcome.interleaved]
    false_positive_count = sum(1 for outcome in negatives if outcome.is_false_positive)

    conversation_precision = precision(len(true_positives), false_positives=false_positive_count)
    conversation_recall = recall(len(true_positives), false_negatives=len(positives) - len(true_positives))
    f1 = f_beta(conversation_precision, recall=conversation_recall, beta=1.0)

    # Every true positive has an alert, so first_alert_index is set; the filter only narrows the type.
    alert_indices = [
        (outcome.first_alert_index, outcome.messages)
        for outcome in true_positives
        if outcome.first_alert_index is not None
    ]
    median_positive_length = _median(outcome.messages for outcome in positives)
    speed: float | None = None
    if median_positive_length is not None and alert_indices:
        steepness = latency_steepness(median_positive_length)
        median_penalty = _median(latency_penalty(index, steepness=steepness) for index, _ in alert_indices)
        speed = None if median_penalty is None else 1 - median_penalty

    negative_messages = sum(outcome.messages for outcome in negatives)
    false_alerts = sum(outcome.alerts_count for outcome in negatives)

    return {
        "conversations_pos": len(positives),
        "conversations_neg": len(negatives),
        "messages": sum(outcome.messages for outcome in outcomes),
        "precision": conversation_precision,
        "recall": conversation_recall,
        "f1": f1,
        "f0_5": f_beta(conversation_precision, recall=conversation_recall, beta=0.5),
        "pr_auc": average_precision(
            [outcome.max_risk for outcome in outcomes], labels=[outcome.label for outcome in outcomes]
        ),
        "suspect_accuracy": _suspect_accuracy(true_positives),
        "suspect_accuracy_interleaved": _suspect_accuracy(interleaved_true_positives),
        "victim_flag_rate": _share(
            sum(1 for outcome in positives if outcome.alerted_suspect_ids - outcome.suspects),
            total=len(positives),
        ),
        "median_messages_to_alert": _median(index for index, _ in alert_indices),
        "median_fraction_seen": _median(index / length for index, length in alert_indices),
        "speed": speed,
        "f_latency": _product(f1, speed),
        "false_alerts_per_10k_messages": (
            false_alerts / negative_messages * 10_000 if negative_messages else None
        ),
        "messages_per_second": messages_per_second,
    }


def _segment_metrics(outcomes: Sequence[SegmentOutcome], *, threshold: float) -> dict[str, object]:
    positives = [outcome for outcome in outcomes if outcome.label == 1]
    true_positive_count = sum(1 for outcome in positives if outcome.score >= threshold)
    false_positive_count = sum(1 for outcome in outcomes if outcome.label == 0 and outcome.score >= threshold)
    segment_precision = precision(true_positive_count, false_positives=false_positive_count)
    segment_recall = recall(true_positive_count, false_negatives=len(positives) - true_positive_count)
    return {
        "precision": segment_precision,
        "recall": segment_recall,
        "f0_5": f_beta(segment_precision, recall=segment_recall, beta=0.5),
        "pr_auc": average_precision(
            [outcome.score for outcome in outcomes], labels=[outcome.label for outcome in outcomes]
        ),
        "segments_pos": len(positives),
        "segments_neg": len(outcomes) - len(positives),
    }


def _by_source(
    outcomes: Sequence[_OutcomeT], *, metrics: Callable[[Sequence[_OutcomeT]], dict[str, object]]
) -> dict[str, object]:
    grouped: dict[str, list[_OutcomeT]] = {}
    for outcome in outcomes:
        grouped.setdefault(outcome.source, []).append(outcome)
    return {source: metrics(grouped[source]) for source in sorted(grouped)}


def summarise(outcomes: Sequence[ConversationOutcome], *, elapsed_s: float) -> dict[str, object]:
    """Every conversation metric (``CONVERSATION_METRIC_KEYS``) overall, and per source in ``by_source``.

    Per-source figures are computed over that source's outcomes alone (including the latency ``p``, from
    that source's median positive length, as Vogt et al. do per data set); ``messages_per_second`` is the
    overall throughput everywhere, ``None`` when ``elapsed_s`` is not positive.
    """
    total_messages = sum(outcome.messages for outcome in outcomes)
    messages_per_second = total_messages / elapsed_s if elapsed_s > 0 else None
    summary = _conversation_metrics(outcomes, messages_per_second=messages_per_second)
    summary["by_source"] = _by_source(
        outcomes, metrics=lambda group: _conversation_metrics(group, messages_per_second=messages_per_second)
    )
    return summary


def summarise_segments(outcomes: Sequence[SegmentOutcome], *, threshold: float) -> dict[str, object]:
    """Every segment metric (``SEGMENT_METRIC_KEYS``) overall, and per source in ``by_source``.

    A segment is predicted positive when ``score >= threshold``.
    """
    summary = _segment_metrics(outcomes, threshold=threshold)
    summary["by_source"] = _by_source(
        outcomes, metrics=lambda group: _segment_metrics(group, threshold=threshold)
    )
    return summary
