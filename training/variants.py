"""Evaluation variants of recorded conversations: early cuts and a standard-English rewrite.

They measure what the corpus figures hide (issue 12): whether a model alerts within a conversation's first
messages, and whether it still alerts when the chat-speak of the Perverted-Justice era is rewritten into
standard English. The outputs are ordinary conversation files for ``vigil eval``: the production path.

Usage::

    python -m training.variants --out .artifacts/variants .artifacts/split/val/pj_chatcoder1.jsonl ...

writes ``first50.jsonl``, ``first100.jsonl``, ``standard.jsonl``, ``standard_first50.jsonl``,
``standard_first100.jsonl`` and ``later100.jsonl`` (the 100 messages after the first 100: Vigil added to a
server where the two already talk, so the age asked and given at the start is not in what it reads) holding
the interleaved grooming conversations of the inputs, and
``segments.jsonl``: flattened windows of consecutive messages (both speakers, no boundaries, as in the VTPAN
segments of the held-out set), label 1 from grooming conversations and 0 from the others.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path

from training.data import Conversation, read_conversations, write_conversations
from training.style import standardise

CUTS = (50, 100)
# ``later100``: messages LATER[0] to LATER[0] + LATER[1] of each interleaved grooming conversation.
LATER = (100, 100)
SEGMENT_MESSAGES = 30
SEGMENTS_PER_CONVERSATION = 3
TRAINING_SEGMENT_LENGTHS = (10, 20, 30, 50, 100)
TRAINING_SEGMENTS_GROOMING = 40
# Restyled copies and template-written conversations: fewer windows each, as there are many of them.
TRAINING_SEGMENTS_RESTYLED = 3
TRAINING_SEGMENTS_HARD = 6
TRAINING_SEGMENTS_OTHER = 2
# Ordinary chats most like the held-out segments' negatives (PAN12: Omegle and IRC, some sexual between
# adults), and the decoys' chats.
SEGMENT_HARD_SOURCES = ("pj_", "pan12_sample", "sexting_adult", "nps_chat", "irc_disentanglement")


def first_messages(conversation: Conversation, count: int) -> Conversation:
    # Replies point backwards, so the cut is a valid record. The suspects stay even if they have not written
    # yet: such a cut counts as a miss, as it would for a moderator.
    return dataclasses.replace(conversation, messages=conversation.messages[:count])


def later_messages(conversation: Conversation, *, start: int, count: int) -> Conversation:
    """Messages ``start`` to ``start + count``, as a log that begins there: replies to a message before the
    window point nowhere, the others are renumbered. The suspects stay even if they do not write in it."""
    messages = []
    for message in conversation.messages[start : start + count]:
        reply_to = None if message.reply_to is None else message.reply_to - start
        kept = reply_to if reply_to is not None and reply_to >= 0 else None
        messages.append(dataclasses.replace(message, reply_to=kept))
    return dataclasses.replace(conversation, messages=tuple(messages))


def standard_english(conversation: Conversation, *, seed: int) -> Conversation:
    rng = random.Random(f"{seed}:{conversation.id}")
    messages = tuple(dataclasses.replace(m, text=standardise(m.text, rng)) for m in conversation.messages)
    return dataclasses.replace(conversation, messages=messages)


def variants(conversations: Sequence[Conversation], *, seed: int = 0) -> dict[str, list[Conversation]]:
    grooming = [c for c in conversations if c.label == 1 and c.interleaved]
    standard = [standard_english(c, seed=seed) for c in grooming]
    out: dict[str, list[Conversation]] = {"standard": standard}
    for count in CUTS:
        out[f"first{count}"] = [first_messages(c, count) for c in grooming]
        out[f"standard_first{count}"] = [first_messages(c, count) for c in standard]
    start, count = LATER
    out[f"later{count}"] = [
        later_messages(c, start=start, count=count) for c in grooming if len(c.messages) > start + count // 2
    ]
    return out


def training_segments(
    conversations: Sequence[Conversation], *, seed: int = 0, per_grooming: int = TRAINING_SEGMENTS_GROOMING
) -> list[dict[str, object]]:
    """Flattened windows to train on: many per grooming chat, of varied length and joined by spaces or by
    line breaks (the held-out segments' length and layout are unknown).

    Grooming chats (interleaved only) give ``per_grooming`` windows each; ordinary chats from
    the sources that look most like the held-out negatives (``SEGMENT_HARD_SOURCES``) give
    ``TRAINING_SEGMENTS_HARD`` and the rest ``TRAINING_SEGMENTS_OTHER``.
    """
    out: list[dict[str, object]] = []
    for conversation in conversations:
        if conversation.label == 1 and not conversation.interleaved:
            continue
        if conversation.label == 1:
            count = per_grooming
        elif conversation.source.startswith(SEGMENT_HARD_SOURCES):
            count = TRAINING_SEGMENTS_HARD
        else:
            count = TRAINING_SEGMENTS_OTHER
        rng = random.Random(f"{seed}:training-segments:{conversation.id}")
        size = len(conversation.messages)
        for k in range(count):
            length = rng.choice(TRAINING_SEGMENT_LENGTHS)
            start = rng.randrange(0, max(1, size - length + 1))
            window = conversation.messages[start : start + length]
            if len(window) < 3:
                continue
            joiner = rng.choice((" ", "\n"))
            out.append(
                {
                    "id": f"{conversation.id}~train{k}",
                    "source": conversation.source,
                    "label": conversation.label,
                    "text": joiner.join(m.text for m in window),
                }
            )
    return out


def segments(conversations: Sequence[Conversation], *, seed: int = 0) -> list[dict[str, object]]:
    """Up to three flattened windows per conversation, at random places (seeded per conversation)."""
    out: list[dict[str, object]] = []
    for conversation in conversations:
        if conversation.label == 1 and not conversation.interleaved:
            continue  # one side's lines after the other's: not a chat window
        rng = random.Random(f"{seed}:segments:{conversation.id}")
        size = len(conversation.messages)
        starts = sorted(
            rng.sample(
                range(0, size, SEGMENT_MESSAGES), min(SEGMENTS_PER_CONVERSATION, -(-size // SEGMENT_MESSAGES))
            )
        )
        for k, start in enumerate(starts):
            window = conversation.messages[start : start + SEGMENT_MESSAGES]
            if len(window) < 3:
                continue
            out.append(
                {
                    "id": f"{conversation.id}~seg{k}",
                    "source": conversation.source,
                    "label": conversation.label,
                    "text": " ".join(m.text for m in window),
                }
            )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.variants", description=__doc__.split("\n")[0])
    parser.add_argument("inputs", type=Path, nargs="+", help="conversation files (.jsonl or .jsonl.xz)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the variant files")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    conversations = [c for path in args.inputs for c in read_conversations(path)]
    args.out.mkdir(parents=True, exist_ok=True)
    for name, items in variants(conversations, seed=args.seed).items():
        count = write_conversations(args.out / f"{name}.jsonl", items)
        print(f"{args.out / f'{name}.jsonl'}: {count} conversations", file=sys.stderr)
    flattened = segments(conversations, seed=args.seed)
    with (args.out / "segments.jsonl").open("w", encoding="utf-8") as handle:
        for record in flattened:
            handle.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
    print(f"{args.out / 'segments.jsonl'}: {len(flattened)} segments", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
