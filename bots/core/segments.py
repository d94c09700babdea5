"""Flattened segments (chat text without speaker boundaries) scored as a conversation of one member.

A segment can be far longer than one model input (``max_length`` tokens), and scoring it whole would judge
it on its start. So it is cut into message-sized chunks, each chunk is scored like a message (the production
``model_text``), and the chunks go through the pair model in order as one member's messages. The segment's
score is the highest risk that member reaches, so grooming anywhere in the text counts.

``split_segment`` is the one rule for the cut and ``segment_texts`` for what the model reads of it; ``vigil
eval`` and training both use them. The pair model is told that the chunks' speaker is unknown
(``speaker_known=False``): a GRU pair model is trained on flattened chunks marked so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vigil.bots.core.normalise import is_meaningful, model_text

if TYPE_CHECKING:
    from vigil.bots.core.ports import Detector

__all__ = [
    "SEGMENT_AUTHOR",
    "SEGMENT_OTHER",
    "SegmentScore",
    "chunk_limits",
    "score_segment",
    "segment_texts",
    "split_segment",
]

SEGMENT_AUTHOR = "segment"
SEGMENT_OTHER = "segment-other"
# WordPiece splits chat-speak, numbers, names and emoji into several pieces: budgeting two tokens per word
# (after the two special tokens) keeps nearly every chunk inside one model input.
_TOKENS_PER_WORD = 2
_SPECIAL_TOKENS = 2
# A word is at most this many characters per token of budget: longer runs without spaces (links, keyboard
# mashing) are cut so that one of them cannot fill a chunk on its own.
_CHARS_PER_TOKEN = 4
# A line break, or the end of a sentence followed by space: where one chat message likely ended.
_BOUNDARY_RE = re.compile(r"[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+|(?<=[.!?…])\s+")


@dataclass(frozen=True, slots=True, kw_only=True)
class SegmentScore:
    """A segment's score: the highest risk of its member over its chunks, and how many chunks were scored."""

    risk: float
    chunks: int


def chunk_limits(max_length: int) -> tuple[int, int]:
    """(words, characters) at most in one chunk for a model that reads ``max_length`` tokens."""
    words = max(1, (max_length - _SPECIAL_TOKENS) // _TOKENS_PER_WORD)
    return words, max(1, max_length * _CHARS_PER_TOKEN)


def split_segment(text: str, *, max_length: int) -> tuple[str, ...]:
    """Cut ``text`` into message-sized chunks, in order, together holding every word of it.

    First at line breaks and sentence ends (".", "!", "?", "…" followed by space), then each piece that is
    still too long into runs of whole words of at most ``chunk_limits(max_length)`` words and characters; a
    single word longer than the character limit is cut into pieces of that length. Whitespace between
    words becomes one space; pieces with no words are dropped.
    """
    max_words, max_chars = chunk_limits(max_length)
    chunks: list[str] = []
    for piece in _BOUNDARY_RE.split(text):
        words: list[str] = []
        for word in piece.split():
            words.extend(word[start : start + max_chars] for start in range(0, len(word), max_chars))
        current: list[str] = []
        length = 0
        for word in words:
            if current and (len(current) >= max_words or length + 1 + len(word) > max_chars):
                chunks.append(" ".join(current))
                current, length = [], 0
            length += len(word) + (1 if current else 0)
            current.append(word)
        if current:
            chunks.append(" ".join(current))
    return tuple(chunks)


def segment_texts(text: str, *, max_length: int) -> tuple[str, ...]:
    """What the model reads of a segment: its chunks as ``model_text``, without chunks with nothing to score.

    Chunks with nothing left after normalisation (punctuation, emoji) are skipped, as the Monitor skips such
    messages. Training builds its segment sequences with this function too.
    """
    return tuple(
        normalised
        for chunk in split_segment(text, max_length=max_length)
        if is_meaningful(normalised := model_text(chunk))
    )


async def score_segment(detector: Detector, text: str) -> SegmentScore:
    """Score a segment as one member's messages: all chunks in one detector call, then the pair model.

    The chunks go to the pair model with ``speaker_known=False``: each may hold both members' words. A
    segment with nothing to score scores 0.
    """
    texts = segment_texts(text, max_length=detector.info.max_length)
    if not texts:
        return SegmentScore(risk=0.0, chunks=0)
    scores = await detector.score(texts)
    pair_model = detector.pair_model
    state = pair_model.initial_state()
    best = 0.0
    for score in scores:
        state = pair_model.update(
            state=state, author_id=SEGMENT_AUTHOR, other_id=SEGMENT_OTHER, score=score, speaker_known=False
        )
        risk = next(r.risk for r in pair_model.author_risks(state=state) if r.author_id == SEGMENT_AUTHOR)
        best = max(best, risk)
    return SegmentScore(risk=best, chunks=len(texts))
