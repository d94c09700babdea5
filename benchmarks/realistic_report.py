"""Per-conversation report on a labelled conversation file, through the production path ``vigil eval`` uses.

    python -m benchmarks.realistic_report --data examples/realistic_conversations.jsonl [--model-dir DIR]
        [--config FILE] [--threshold T] [--json OUT]

``vigil eval`` gives the totals (precision, recall, PR-AUC); this says, for each conversation, whether it
alerted, after how many of the suspect's own messages, how high any pair's risk went, and whether the person
the highest-risk pair names as the likely groomer is the real suspect. It replays each record exactly as
``vigil eval`` does: ``open_app`` in replay mode with shadow alerts, a temporary SQLite file, the record
turned into ``ChatMessage``s by ``eval_messages`` (platform "eval", the record in its own space), fed
through ``App.replay`` (the monitor's batches). Nothing here scores or decides on its own.

``meta.first_signal_index`` (hand-set in ``examples/realistic_conversations.jsonl``) is shown as the number of
suspect messages up to the first one a moderator would have reason to look at, next to when the alert came.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vigil.bots.app import App, open_app
from vigil.bots.core.monitor import HandleResult
from vigil.bots.core.policy import Decision
from vigil.bots.core.replay import BadRecord, ConversationRecord, eval_messages, iter_records
from vigil.config.settings import Settings, load_settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationRow:
    """What happened to one conversation. Counts of suspect messages are 1-based and inclusive."""

    id: str
    label: int
    setting: str
    kind: str
    messages: int
    suspect_messages: int
    alerted: bool
    # The message (0-based) whose handling raised the first alert, and how many suspect messages came by then.
    first_alert_index: int | None
    suspect_messages_at_alert: int | None
    first_alert_names_suspect: bool | None
    # An alert on a pair that includes a suspect: what `vigil eval` counts as a true positive.
    alert_on_suspect_pair: bool | None
    peak_pair_risk: float
    # Mean per-message risk (before the pair model's ramp over the first messages) of the suspect in a
    # grooming conversation, and of the author the highest-risk pair names in a look-alike.
    mean_message_risk: float | None
    # The likely groomer named by the pair update with the highest risk, and whether that is a real suspect.
    top_risk_author: str | None
    top_risk_author_correct: bool | None
    # Hand-set: suspect messages up to and including the first one a moderator would have reason to look at.
    suspect_messages_at_first_signal: int | None


def _meta_of(path: Path) -> dict[str, dict[str, Any]]:
    """``meta`` of every line by record id; the production reader does not keep it."""
    metas: dict[str, dict[str, Any]] = {}
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except ValueError:
                continue  # iter_records reports it
            if (
                isinstance(data, dict)
                and isinstance(data.get("meta"), dict)
                and isinstance(data.get("id"), str)
            ):
                metas[data["id"]] = data["meta"]
    return metas


def _row(
    record: ConversationRecord, meta: dict[str, Any], results: Sequence[HandleResult]
) -> ConversationRow:
    suspects = set(record.suspects)
    authors = [message.author for message in record.messages]
    suspect_so_far: list[int] = []
    count = 0
    for author in authors:
        count += author in suspects
        suspect_so_far.append(count)
    first_alert_index: int | None = None
    first_alert_suspect: str | None = None
    on_suspect_pair = False
    peak = 0.0
    top_author: str | None = None
    message_risks: dict[str, list[float]] = {}
    for index, result in enumerate(results):
        if result.risk is not None:
            message_risks.setdefault(authors[index], []).append(result.risk)
        for pair in result.pairs:
            if pair.risk > peak:
                peak, top_author = pair.risk, pair.suspect_id
        for event in result.alerts:
            if event.decision is not Decision.RAISE:
                continue
            key = event.alert.key
            on_suspect_pair = on_suspect_pair or key.user_a in suspects or key.user_b in suspects
            if first_alert_index is None:
                first_alert_index, first_alert_suspect = index, event.alert.suspect_id
    first_signal = meta.get("first_signal_index")
    signal_count = (
        suspect_so_far[first_signal]
        if isinstance(first_signal, int) and 0 <= first_signal < len(authors) and suspects
        else None
    )
    positive = record.label == 1
    means = {author: sum(risks) / len(risks) for author, risks in message_risks.items()}
    suspect_means = [means[author] for author in suspects if author in means]
    mean_message_risk = max(suspect_means, default=None) if positive else means.get(top_author or "")
    return ConversationRow(
        id=record.id,
        label=record.label,
        setting=record.setting,
        kind=str(meta.get("pace") or meta.get("kind") or "-"),
        messages=len(record.messages),
        suspect_messages=count,
        alerted=first_alert_index is not None,
        first_alert_index=first_alert_index,
        suspect_messages_at_alert=(
            suspect_so_far[first_alert_index] if first_alert_index is not None and positive else None
        ),
        first_alert_names_suspect=(
            first_alert_suspect in suspects if first_alert_suspect is not None and positive else None
        ),
        alert_on_suspect_pair=on_suspect_pair if positive else None,
        peak_pair_risk=peak,
        mean_message_risk=mean_message_risk,
        top_risk_author=top_author,
        top_risk_author_correct=(top_author in suspects) if positive and top_author is not None else None,
        suspect_messages_at_first_signal=signal_count,
    )


async def _replay(app: App, record: ConversationRecord, *, ordinal: int) -> list[HandleResult]:
    messages = eval_messages(record, ordinal=ordinal)
    results: list[HandleResult] = []
    async for chunk in app.replay(messages):
        results.extend(chunk)
    if len(results) != len(messages):
        raise RuntimeError(f"{record.id}: {len(messages)} messages in, {len(results)} results out")
    return results


async def build_report(
    data: Path, *, settings: Settings, threshold: float | None = None
) -> tuple[list[ConversationRow], float, list[str]]:
    """Replay every conversation of ``data``; returns the rows, the threshold used and the bad lines."""
    settings = dataclasses.replace(settings, policy=dataclasses.replace(settings.policy, shadow_mode=True))
    metas = await asyncio.to_thread(_meta_of, data)
    rows: list[ConversationRow] = []
    bad: list[str] = []
    with tempfile.TemporaryDirectory(prefix="vigil-realistic-") as folder:
        database = str(Path(folder) / "report.sqlite3")
        async with open_app(settings, database=database, replay=True, threshold=threshold) as app:
            for ordinal, record in enumerate(iter_records(data)):
                if isinstance(record, BadRecord):
                    bad.append(f"{record.path}:{record.line_number}: {record.reason}")
                    continue
                if not isinstance(record, ConversationRecord):
                    bad.append(f"{record.path}:{record.line_number}: a segment, not a conversation")
                    continue
                results = await _replay(app, record, ordinal=ordinal)
                rows.append(_row(record, metas.get(record.id, {}), results))
            used = app.monitor.config.policy.threshold
    return rows, used, bad


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


_COLUMNS = (
    ("id", "id"),
    ("label", "label"),
    ("setting", "setting"),
    ("kind", "pace/kind"),
    ("messages", "msgs"),
    ("suspect_messages", "susp msgs"),
    ("suspect_messages_at_first_signal", "susp@signal"),
    ("alerted", "alerted"),
    ("suspect_messages_at_alert", "susp@alert"),
    ("first_alert_names_suspect", "alert names susp"),
    ("mean_message_risk", "mean msg risk"),
    ("peak_pair_risk", "peak pair risk"),
    ("top_risk_author_correct", "top-risk author ok"),
)


def format_table(rows: Sequence[ConversationRow], *, threshold: float) -> str:
    table = [[title for _, title in _COLUMNS]]
    table.extend([_cell(getattr(row, key)) for key, _ in _COLUMNS] for row in rows)
    widths = [max(len(line[i]) for line in table) for i in range(len(_COLUMNS))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)) for line in table]
    positives = [row for row in rows if row.label == 1]
    negatives = [row for row in rows if row.label == 0]
    over = sum(row.peak_pair_risk >= threshold for row in positives)
    alerted = sum(bool(row.alert_on_suspect_pair) for row in positives)
    named = sum(bool(row.top_risk_author_correct) for row in positives)
    lines.append(
        f"threshold {threshold:.2f} · grooming: {alerted}/{len(positives)} alerted on the suspect's pair, "
        f"{over}/{len(positives)} with a pair at or over the threshold, top-risk author is the suspect in "
        f"{named}/{len(positives)} · look-alikes: {sum(r.alerted for r in negatives)}/{len(negatives)} "
        "alerted"
    )
    return "\n".join(lines)


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.realistic_report", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--data", type=Path, required=True, help="a conversations file (.jsonl or .jsonl.xz)")
    parser.add_argument(
        "--model-dir", type=Path, help="model directory (default: the configured/shipped one)"
    )
    parser.add_argument("--config", type=Path, help="Vigil TOML config (default: built-in defaults)")
    parser.add_argument("--threshold", type=float, help="override the alert threshold")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING)
    arguments = parse_arguments(argv)
    if not arguments.data.exists():
        print(f"no such file: {arguments.data}", file=sys.stderr)
        return 2
    settings = load_settings(arguments.config)
    if arguments.model_dir is not None:
        settings = dataclasses.replace(
            settings, detector=dataclasses.replace(settings.detector, model_dir=str(arguments.model_dir))
        )
    rows, threshold, bad = asyncio.run(
        build_report(arguments.data, settings=settings, threshold=arguments.threshold)
    )
    for line in bad:
        print(f"skipped: {line}", file=sys.stderr)
    print(format_table(rows, threshold=threshold))
    if arguments.json is not None:
        payload = {"threshold": threshold, "bad_records": bad, "rows": [dataclasses.asdict(r) for r in rows]}
        arguments.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
