"""The age cues the pair model reads beside the encoder (vigil.detector.cues), on model text."""

from __future__ import annotations

import pytest

from vigil.bots.core.normalise import model_text
from vigil.detector.cues import AGE_CUES, age_cue_matrix, age_cues

MINOR, ADULT, SCHOOL, ADULT_LIFE, YOUTH = range(len(AGE_CUES))


@pytest.mark.parametrize(
    ("text", "cue"),
    [
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
    ],
)
def test_a_cue_is_read(text: str, cue: int) -> None:
    assert age_cues(model_text(text))[cue] == 1.0


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
def test_numbers_that_are_not_ages_are_no_cue(text: str) -> None:
    assert age_cues(model_text(text))[:2] == (0.0, 0.0)


def test_the_matrix_has_a_row_of_zeros_and_ones_per_text() -> None:
    matrix = age_cue_matrix(["im 13", "my wife", "lol"])
    assert matrix.shape == (3, len(AGE_CUES)) and matrix.dtype.name == "float32"
    assert matrix.tolist() == [list(age_cues(t)) for t in ["im 13", "my wife", "lol"]]
