"""Reading the shared conversation data, and the author-disjoint train / calib / val split.

The shared data (``/work/shared/data``) is JSON Lines, optionally xz-compressed, one conversation per line
(see the data README). This module reads it into frozen records, assigns every record to a split and writes
the calibration and validation splits back in the same format, so that ``vigil eval`` can replay them.

Split rules (deterministic for a given seed and data):

- label-1 records are split by OFFENDER: offender ids that occur together in a record form one group
  (union-find over ``suspects``), and every record of a group lands in the group's split, whichever source it
  comes from (``pj_koutli``, ``pj_chatcoder1``, ``pj_pj24``, ``pan12_sample``);
- label-0 records are split by record id;
- within a stratum the keys are ordered by a seeded SHA-256 and cut at the split fractions (val first, then
  calib, then train), so small sources still get their share. Strata: offenders with an interleaved record
  (ChatCoder-1, PJ24, PAN12) apart from offenders seen only in ``pj_koutli``; label-0 records per source, with
  the NPS teens room apart from the other NPS rooms (so that the teens room is in both train and val).

Run ``python -m training.data split --data /work/shared/data --out .artifacts/split`` to write the calib and
val replay sets; see :class:`ReplayBudget` for what is kept.
"""

from __future__ import annotations

import argparse
import enum
import hashlib
import json
import logging
import lzma
import math
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from vigil.bots.core.normalise import model_text as serving_model_text

logger = logging.getLogger(__name__)

KOUTLI = "pj_koutli"
PJ_SOURCES = ("pj_koutli", "pj_chatcoder1", "pj_pj24")
PAN12 = "pan12_sample"
# Negatives that look most like grooming (sexual, teen, chat-speak): reported and weighted apart.
HARD_NEGATIVE_SOURCES = ("sexting_adult", "formspring", "nps_chat", "pan12_sample")


class DataFormatError(ValueError):
    """A line of a data file is not a valid record. ``line`` is 1-based."""

    def __init__(self, *, path: Path, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


class Split(enum.StrEnum):
    TRAIN = "train"
    CALIB = "calib"
    VAL = "val"


class Role(enum.StrEnum):
    """Who wrote a message of a record, as far as training is concerned. Never a model feature."""

    OFFENDER = "offender"
    DECOY = "decoy"  # the other side of a label-1 record (adult PJ volunteer posing as a minor)
    OTHER = "other"  # any author of a label-0 record


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    author: str
    text: str
    reply_to: int | None = None
    stage: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Conversation:
    id: str
    source: str
    label: int
    setting: str
    interleaved: bool
    suspects: tuple[str, ...]
    messages: tuple[Message, ...]
    meta: Mapping[str, Any] = field(default_factory=dict)

    def role(self, author: str) -> Role:
        if self.label == 0:
            return Role.OTHER
        return Role.OFFENDER if author in self.suspects else Role.DECOY

    def to_json(self) -> dict[str, Any]:
        """The record in the shared format (the same keys as the source files)."""
        messages: list[dict[str, Any]] = []
        for message in self.messages:
            item: dict[str, Any] = {
                "author": message.author,
                "reply_to": message.reply_to,
                "text": message.text,
                "ts": None,
            }
            if message.stage is not None:
                item["stage"] = message.stage
            messages.append(item)
        record: dict[str, Any] = {
            "id": self.id,
            "interleaved": self.interleaved,
            "label": self.label,
            "messages": messages,
            "setting": self.setting,
            "source": self.source,
            "suspects": list(self.suspects),
        }
        if self.meta:
            record["meta"] = dict(self.meta)
        return record


@dataclass(frozen=True, slots=True, kw_only=True)
class StageLine:
    """One line of ``grooming_stage_lines``: a chat line labelled with a grooming stage."""

    id: str
    text: str
    stage: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Example:
    """One training example of the message model (``training.train``, ``training.message_heads``)."""

    text: str
    risk: int  # 1 = offender text
    weight: float  # risk-loss weight (0 = signals only)
    source: str
    role: str  # offender / decoy / other / stage_line
    kind: str  # message / window / line
    signals: tuple[int, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Dataset:
    conversations: tuple[Conversation, ...]
    stage_lines: tuple[StageLine, ...] = ()

    def by_source(self) -> dict[str, list[Conversation]]:
        out: dict[str, list[Conversation]] = defaultdict(list)
        for conversation in self.conversations:
            out[conversation.source].append(conversation)
        return dict(sorted(out.items()))


# --------------------------------------------------------------------------------------------- reading


def _open_text(path: Path) -> IO[str]:
    if path.name.endswith(".xz"):
        return lzma.open(path, "rt", encoding="utf-8")
    return path.open("r", encoding="utf-8")


def _parse_line(path: Path, number: int, line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as error:
        raise DataFormatError(path=path, line=number, reason=f"invalid JSON ({error.msg})") from None
    if not isinstance(value, dict):
        raise DataFormatError(path=path, line=number, reason="not a JSON object")
    return value


def iter_json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line; a line that is not a JSON object raises."""
    with _open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, _parse_line(path, number, line)


def _require(raw: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in raw:
        raise ValueError(f"missing key {key!r}")
    value = raw[key]
    # bool is an int: refuse it where an int is wanted.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"{key!r} has the wrong type ({type(value).__name__})")
    return value


def parse_conversation(raw: Mapping[str, Any]) -> Conversation:
    """Validate one conversation object; raises ``ValueError`` naming what is wrong."""
    record_id = _require(raw, "id", str)
    label = _require(raw, "label", int)
    if label not in (0, 1):
        raise ValueError(f"label must be 0 or 1, got {label!r}")
    raw_messages = _require(raw, "messages", list)
    if not raw_messages:
        raise ValueError("no messages")
    messages: list[Message] = []
    for index, item in enumerate(raw_messages):
        if not isinstance(item, dict):
            raise ValueError(f"messages[{index}] is not an object")
        try:
            author = _require(item, "author", str)
            text = _require(item, "text", str)
        except ValueError as error:
            raise ValueError(f"messages[{index}]: {error}") from None
        reply_to = item.get("reply_to")
        if reply_to is not None and (
            not isinstance(reply_to, int) or isinstance(reply_to, bool) or not 0 <= reply_to < index
        ):
            raise ValueError(f"messages[{index}].reply_to must be the index of an earlier message")
        stage = item.get("stage")
        if stage is not None and not isinstance(stage, str):
            raise ValueError(f"messages[{index}].stage must be a string")
        messages.append(Message(author=author, text=text, reply_to=reply_to, stage=stage))
    suspects = _require(raw, "suspects", list)
    if not all(isinstance(s, str) for s in suspects):
        raise ValueError("suspects must be author ids")
    if label == 1 and not suspects:
        raise ValueError("a label-1 record needs suspects")
    meta = raw.get("meta", {})
    if not isinstance(meta, dict):
        raise ValueError("meta must be an object")
    return Conversation(
        id=record_id,
        source=_require(raw, "source", str),
        label=label,
        setting=_require(raw, "setting", str),
        interleaved=bool(raw.get("interleaved", True)),
        suspects=tuple(suspects),
        messages=tuple(messages),
        meta=meta,
    )


def read_conversations(path: Path, *, strict: bool = True) -> list[Conversation]:
    """Read a conversations file (``.jsonl`` or ``.jsonl.xz``).

    A bad line raises :class:`DataFormatError` with its line number; with ``strict=False`` it is logged (with
    the line number) and skipped instead.
    """
    out: list[Conversation] = []
    with _open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                raw = _parse_line(path, number, line)
                try:
                    out.append(parse_conversation(raw))
                except ValueError as error:
                    raise DataFormatError(path=path, line=number, reason=str(error)) from None
            except DataFormatError as error:
                if strict:
                    raise
                logger.warning("skipping bad line: %s", error)
    return out


def read_stage_lines(path: Path) -> list[StageLine]:
    out: list[StageLine] = []
    for number, raw in iter_json_lines(path):
        try:
            out.append(
                StageLine(
                    id=_require(raw, "id", str),
                    text=_require(raw, "text", str),
                    stage=_require(raw, "stage", str),
                )
            )
        except ValueError as error:
            raise DataFormatError(path=path, line=number, reason=str(error)) from None
    return out


def _data_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.endswith((".jsonl", ".jsonl.xz")))


def load_dataset(paths: Sequence[Path], *, strict: bool = True) -> Dataset:
    """Load a data folder (with ``conversations/`` and ``lines/``), a flat folder of files, or files."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            if (path / "conversations").is_dir():
                files += _data_files(path / "conversations")
                if (path / "lines").is_dir():
                    files += _data_files(path / "lines")
            else:
                files += _data_files(path)
        else:
            files.append(path)
    conversations: list[Conversation] = []
    stage_lines: list[StageLine] = []
    for file in files:
        if file.name.startswith("grooming_stage_lines"):
            stage_lines += read_stage_lines(file)
        else:
            conversations += read_conversations(file, strict=strict)
    ids = [c.id for c in conversations]
    if len(set(ids)) != len(ids):
        raise ValueError("record ids are not unique across the files")
    logger.info(
        "loaded %d conversations and %d stage lines from %d files", len(ids), len(stage_lines), len(files)
    )
    return Dataset(
        conversations=tuple(sorted(conversations, key=lambda c: c.id)), stage_lines=tuple(stage_lines)
    )


# ------------------------------------------------------------------------------------------- splitting


@dataclass(frozen=True, slots=True, kw_only=True)
class SplitConfig:
    seed: int = 13
    val: float = 0.2
    calib: float = 0.1

    def __post_init__(self) -> None:
        if self.val < 0 or self.calib < 0 or self.val + self.calib >= 1:
            raise ValueError("split fractions must be >= 0 and leave room for train")


def _rank(seed: int, key: str) -> str:
    return hashlib.sha256(f"vigil-split:{seed}:{key}".encode()).hexdigest()


def offender_groups(conversations: Iterable[Conversation]) -> dict[str, str]:
    """Map each label-1 record id to its offender group (the smallest offender id of the connected group)."""
    parent: dict[str, str] = {}

    def find(item: str) -> str:
        root = item
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while parent[item] != root:
            parent[item], item = root, parent[item]
        return root

    positives = [c for c in conversations if c.label == 1]
    for conversation in positives:
        first, *rest = sorted(conversation.suspects)
        for other in rest:
            a, b = find(first), find(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
    return {c.id: find(sorted(c.suspects)[0]) for c in positives}


def _stratum(conversation: Conversation) -> str:
    stratum = conversation.source
    if conversation.meta.get("age_band") == "teens":
        stratum += ":teens"
    return stratum


def assign_splits(conversations: Sequence[Conversation], *, config: SplitConfig) -> dict[str, Split]:
    """Assign every record id to a split (see the module docstring for the rules)."""
    groups = offender_groups(conversations)
    interleaved_groups = {groups[c.id] for c in conversations if c.label == 1 and c.interleaved}
    # stratum -> split keys (offender groups or record ids)
    strata: dict[str, set[str]] = defaultdict(set)
    for conversation in conversations:
        if conversation.label == 1:
            group = groups[conversation.id]
            name = "offenders:interleaved" if group in interleaved_groups else "offenders:non-interleaved"
            strata[name].add(f"offender:{group}")
        else:
            strata[f"records:{_stratum(conversation)}"].add(f"record:{conversation.id}")
    key_split: dict[str, Split] = {}
    for keys in strata.values():
        ordered = sorted(keys, key=lambda k: (_rank(config.seed, k), k))
        # cut points in whole records (the first ceil(val * n) go to val, and so on)
        val_end = math.ceil(config.val * len(ordered) - 1e-9)
        calib_end = math.ceil((config.val + config.calib) * len(ordered) - 1e-9)
        for index, key in enumerate(ordered):
            if index < val_end:
                key_split[key] = Split.VAL
            elif index < calib_end:
                key_split[key] = Split.CALIB
            else:
                key_split[key] = Split.TRAIN
    out: dict[str, Split] = {}
    for conversation in conversations:
        key = (
            f"offender:{groups[conversation.id]}" if conversation.label == 1 else f"record:{conversation.id}"
        )
        out[conversation.id] = key_split[key]
    return out


def split_rank(conversation: Conversation, *, seed: int) -> str:
    """A seeded order for picking records inside a split (used for the replay subsets)."""
    return _rank(seed, f"pick:{conversation.id}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayBudget:
    """What the calib / val replay sets keep, so that replaying one costs at most ~150k messages.

    - every ChatCoder-1, PJ24 and PAN12 record of the split (interleaved PJ chats, the realistic case);
    - up to ``koutli_records`` pj_koutli records (and at most ``koutli_messages`` messages) of offenders
      who have no interleaved record: a pj_koutli record of an interleaved offender repeats a ChatCoder-1 or
      PJ24 chat in a worse (non-interleaved) order;
    - for every other source, records in seeded order until ``negative_messages`` messages (at least one
      record); nps_chat, sexting_adult and formspring fit entirely.
    """

    koutli_records: int = 30
    koutli_messages: int = 60_000
    negative_messages: int = 10_000


def select_replay_set(
    conversations: Sequence[Conversation],
    splits: Mapping[str, Split],
    *,
    split: Split,
    budget: ReplayBudget,
    seed: int,
) -> list[Conversation]:
    groups = offender_groups(conversations)
    interleaved_groups = {groups[c.id] for c in conversations if c.label == 1 and c.interleaved}
    chosen: list[Conversation] = []
    by_source: dict[str, list[Conversation]] = defaultdict(list)
    for conversation in conversations:
        if splits[conversation.id] == split:
            by_source[conversation.source].append(conversation)
    for source, records in sorted(by_source.items()):
        ordered = sorted(records, key=lambda c: split_rank(c, seed=seed))
        if source == KOUTLI:
            total = 0
            kept = 0
            for conversation in ordered:
                if groups[conversation.id] in interleaved_groups:
                    continue
                if kept >= budget.koutli_records:
                    break
                if total + len(conversation.messages) > budget.koutli_messages:
                    continue
                chosen.append(conversation)
                total += len(conversation.messages)
                kept += 1
        elif source == PAN12 or any(c.label == 1 for c in records):
            chosen += ordered
        else:
            total = 0
            for conversation in ordered:
                if total and total + len(conversation.messages) > budget.negative_messages:
                    continue
                chosen.append(conversation)
                total += len(conversation.messages)
    return sorted(chosen, key=lambda c: c.id)


# ------------------------------------------------------------------------------------------- writing


def write_conversations(path: Path, conversations: Iterable[Conversation]) -> int:
    """Write records in the shared format (keys sorted, records sorted by id). Returns the count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    records = sorted(conversations, key=lambda c: c.id)
    tmp = path.with_name(path.name + ".tmp")
    lines = [json.dumps(c.to_json(), ensure_ascii=False, sort_keys=True) + "\n" for c in records]
    if path.name.endswith(".xz"):
        with lzma.open(tmp, "wt", encoding="utf-8") as handle:
            handle.writelines(lines)
    else:
        with tmp.open("w", encoding="utf-8") as handle:
            handle.writelines(lines)
    tmp.replace(path)
    return len(records)


def summarise(conversations: Iterable[Conversation]) -> dict[str, dict[str, int]]:
    """Records, messages and label-1 records per source."""
    out: dict[str, dict[str, int]] = {}
    for conversation in conversations:
        entry = out.setdefault(conversation.source, {"records": 0, "messages": 0, "label1": 0})
        entry["records"] += 1
        entry["messages"] += len(conversation.messages)
        entry["label1"] += conversation.label
    return dict(sorted(out.items()))


def write_split(dataset: Dataset, out: Path, *, config: SplitConfig, budget: ReplayBudget) -> dict[str, Any]:
    """Write ``out/{calib,val}/<source>.jsonl`` and ``out/manifest.json``; return the manifest."""
    splits = assign_splits(dataset.conversations, config=config)
    manifest: dict[str, Any] = {
        "seed": config.seed,
        "fractions": {"val": config.val, "calib": config.calib, "train": 1 - config.val - config.calib},
        "budget": {
            "koutli_records": budget.koutli_records,
            "koutli_messages": budget.koutli_messages,
            "negative_messages": budget.negative_messages,
        },
        "full_split": {},
        "replay_sets": {},
    }
    for split in Split:
        members = [c for c in dataset.conversations if splits[c.id] == split]
        offenders = sorted({s for c in members if c.label == 1 for s in c.suspects})
        manifest["full_split"][split.value] = {"offenders": len(offenders), "sources": summarise(members)}
    for split in (Split.CALIB, Split.VAL):
        chosen = select_replay_set(
            dataset.conversations, splits, split=split, budget=budget, seed=config.seed
        )
        folder = out / split.value
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.jsonl"):
            stale.unlink()
        per_source: dict[str, list[Conversation]] = defaultdict(list)
        for conversation in chosen:
            per_source[conversation.source].append(conversation)
        for source, records in per_source.items():
            write_conversations(folder / f"{source}.jsonl", records)
        summary = summarise(chosen)
        manifest["replay_sets"][split.value] = {
            "sources": summary,
            "messages": sum(s["messages"] for s in summary.values()),
            "ids": [c.id for c in chosen],
        }
    (out / "manifest.json").write_text(
        json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8"
    )
    return manifest


# ------------------------------------------------------------------------------------- model text


def model_text(text: str) -> str:
    """The text the model sees: production's rule, ``vigil.bots.core.normalise.model_text``, itself.

    ``<user>`` (an addressee or a name) is ~400 per 1,000 IRC/NPS messages and ~1 per 1,000 PJ messages; left
    in, it teaches the model the source, not grooming, so it is removed, and a live message's mentions
    (``<@123>``, ``@U0123ABCD``) become ``<user>`` and are removed the same way. ``<phone>``, ``<url>`` and
    ``<email>`` are kept: they stand for content (a phone number offered) that a live message shows as the
    real thing. The text is normalised as live messages are (leetspeak, lookalike letters, invisible
    characters; ``normalise_text``) and cut to the Monitor's default 2,000 characters. The data's records
    list no mentioned ids: every participant mention in them is already ``<user>``.
    """
    return serving_model_text(text)


# ------------------------------------------------------------------------------------------------ CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.data", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    split_cmd = commands.add_parser("split", help="write the calib and val replay sets as JSONL per source")
    split_cmd.add_argument("--data", type=Path, nargs="+", required=True, help="data folder(s) or files")
    split_cmd.add_argument("--out", type=Path, required=True)
    split_cmd.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    dataset = load_dataset(args.data)
    manifest = write_split(dataset, args.out, config=SplitConfig(seed=args.seed), budget=ReplayBudget())
    for split in ("calib", "val"):
        entry = manifest["replay_sets"][split]
        print(f"{split}: {len(entry['ids'])} records, {entry['messages']} messages -> {args.out / split}")
        for source, summary in entry["sources"].items():
            print(f"  {source:22} {summary['records']:6d} records {summary['messages']:7d} messages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
