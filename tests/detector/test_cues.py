"""The age cues the pair model reads beside the encoder (vigil.detector.cues), on model text."""

from __future__ import annotations

import pytest

from vigil.bots.core.normalise import model_text
from vigil.detector.cues import CUE_VERSIONS, LATEST_CUES, UnknownCuesError, text_cues

MINOR, ADULT, SCHOOL, ADULT_LIFE, YOUTH, ADULTS = range(6)

# Read by every version: a later version reads more, never less.
EVERY_VERSION = [
    ("im 13", MINOR),
    ("13", MINOR),
    ("12 lol im not a scammer", MINOR),
    ("13/f/ca", MINOR),
    ("asl? 14 f", MINOR),
    ("11 ill be 12 in june", MINOR),
    ("just turned 12 :)", MINOR),
    ("I'm fifteen. Freshman.", MINOR),
    ("i am 13 yo", MINOR),
    ("I'm 24 lol", ADULT),
    ("25 m here", ADULT),
    ("im 18", ADULT),
    ("7th", SCHOOL),
    ("Eighth grade.", SCHOOL),
    ("Year 7. It's our homework for tomorrow.", SCHOOL),
    ("my mom said no", SCHOOL),
    ("my wife is asleep", ADULT_LIFE),
    ("cant talk im at work", ADULT_LIFE),
    ("you are so mature for your age", YOUTH),
    ("ur what 12?", YOUTH),
    ("Fourteen? Your work looks professional", YOUTH),
]
# Read from age_v2 on.
FROM_V2 = [
    ("lol old enough 57/m/indiana", ADULT),
    ("haha ok 14/f here", MINOR),
    ("13 like u lol", MINOR),
    ("I'm still a minor", MINOR),
    ("I'm in my 30s", ADULT),
    ("just so you know im an adult", ADULT),
    ("sorry my mom keeps bossing me around", SCHOOL),
    ("i have school tomorrow", SCHOOL),
    ("i got grounded again", SCHOOL),
    ("long shift today", ADULT_LIFE),
    ("my manager wants me in early", ADULT_LIFE),
    ("payday finally", ADULT_LIFE),
    ("ur still a kid", YOUTH),
    ("ur too young for this", YOUTH),
    ("we're both adults here", ADULTS),
    ("consenting adults, relax", ADULTS),
]


@pytest.mark.parametrize("version", CUE_VERSIONS)
@pytest.mark.parametrize(("text", "cue"), EVERY_VERSION)
def test_a_cue_is_read(version: str, text: str, cue: int) -> None:
    assert text_cues(version).of(model_text(text))[cue] == 1.0


@pytest.mark.parametrize(("text", "cue"), FROM_V2)
def test_age_v2_reads_more_than_age_v1(text: str, cue: int) -> None:
    assert text_cues("age_v2").of(model_text(text))[cue] == 1.0
    if cue < len(text_cues("age_v1").names):
        assert text_cues("age_v1").of(model_text(text))[cue] == 0.0


@pytest.mark.parametrize("version", CUE_VERSIONS)
@pytest.mark.parametrize(
    "text",
    [
        "im 13 minutes away",
        "i have 13 kills",
        "its 13:30",
        "12 kills this round",
        "im 13.5 miles out",
        "were 13 of us",
        "level 13 now",
        "send me 15 dollars",
        "hello there",
        "",
    ],
)
def test_numbers_that_are_not_ages_are_no_cue(version: str, text: str) -> None:
    assert text_cues(version).of(model_text(text))[:2] == (0.0, 0.0)


@pytest.mark.parametrize("version", CUE_VERSIONS)
def test_the_matrix_has_a_row_of_zeros_and_ones_per_text(version: str) -> None:
    cues = text_cues(version)
    texts = ["im 13", "my wife", "lol"]
    matrix = cues.matrix(texts)
    assert matrix.shape == (3, len(cues.names)) and matrix.dtype.name == "float32"
    assert matrix.tolist() == [list(cues.of(t)) for t in texts]


def test_an_unknown_version_is_refused_by_name() -> None:
    with pytest.raises(UnknownCuesError, match=r"'age_v9'.*age_v1, age_v2"):
        text_cues("age_v9")
    assert CUE_VERSIONS[-1] == LATEST_CUES
