"""Age cues read from a message's text, for the pair model: who says they are a child, who an adult.

Grooming is an adult-minor pattern, and the sentence encoder hardly tells "im 13" from "im 23": to it both
are a person giving an age. These cues say it outright, as five 0/1 features per message that the GRU pair
model reads beside the encoder's (metadata ``pair_model.text_cues = "age_v1"``):

- ``minor_age``: the writer gives an age of 8 to 17 ("im 13", "13 yo", "14/f", "just turned 12", or a reply
  that is only the number, as in an answer to "how old r u");
- ``adult_age``: the same with 18 to 79;
- ``school``: school life (a grade, middle school, homework, recess, "my teacher");
- ``adult_life``: adult life (a wife or husband, one's own children, a boss, a job, a mortgage);
- ``youth_remark``: the other's youth remarked on ("mature for your age", "ur what 12?", "Fourteen?").

They are cues, not facts: the model weighs them with everything else, for both sides of a pair. The text is
the model text (``vigil.bots.core.normalise.model_text``) in serving and in training alike, so one set of
rules computes them everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["AGE_CUES", "AGE_CUES_VERSION", "age_cue_matrix", "age_cues"]

AGE_CUES_VERSION = "age_v1"
AGE_CUES = ("minor_age", "adult_age", "school", "adult_life", "youth_remark")

_MINOR = r"(?:1[0-7]|[89]|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen)"
_ADULT = r"(?:1[89]|[2-7][0-9])"
# "im 13 minutes away", "i'm 20 mins late", "13 dollars": a number that is not an age.
_NOT_AGE = (
    r"(?!\s*(?:min|mins|minute|minutes|hr|hrs|hour|hours|sec|secs|seconds|days?|weeks?|months?|dollars?|"
    r"bucks|usd|%|k\b|am\b|pm\b|o'?clock|:\d|\.\d|,\d|\d))"
)
_SELF = r"(?:i'?m|im|i am|am|turned|turning|just turned|gonna be|going to be|will be|i'?ll be|ill be)"


def _age_patterns(age: str) -> re.Pattern[str]:
    return re.compile(
        "|".join(
            (
                rf"\b{_SELF}\s+(?:only\s+|just\s+|almost\s+|nearly\s+)?{age}\b{_NOT_AGE}",
                rf"\b{age}\s*(?:yo|y/o|y\.o\.?|yrs?(?: old)?|years?(?: old)?|year old)\b",
                # a/s/l answers: "13/f", "14 f ca", "13, m"
                rf"^\s*(?:asl\W*)?{age}\s*(?:/|,|\s)\s*(?:f|m|female|male|girl|boy)\b",
                # the number first (an answer to "how old are you"), alone or with a short tail
                rf"^\s*(?:i'?m\s+|im\s+)?{age}\s*(?:$|\.(?!\d)|[!,]|\?\s*$|\s+(?:lol|lmao|haha|hbu|wbu|u\b|you\b|and\b|but\b|"
                rf"turning|ill\b|i'?ll\b|im\b|i'?m\b|just\b|almost\b|rn\b|now\b|y\b|yrs\b|why\b))",
            )
        )
    )


_MINOR_AGE = _age_patterns(_MINOR)
_ADULT_AGE = _age_patterns(_ADULT)
_GRADE = r"(?:(?:[5-9]|1[0-2])(?:st|nd|rd|th)|fifth|sixth|seventh|eighth|ninth|tenth)"
_SCHOOL = re.compile(
    rf"^\s*{_GRADE}\b(?:\s*grade)?\s*(?:$|[.!?,]|\s)|\bi'?m\s+in\s+{_GRADE}\b|\byear\s+(?:[5-9]|1[01])\b|\bfreshman\b|"
    rf"\b(?:{_GRADE}\s+grade|grade\s+(?:[5-9]|1[0-2])\b|[5-9]th\s+grader|middle\s+school|"
    r"junior\s+high|jr\.?\s+high|homework|hw\b|recess|my\s+teacher|our\s+teacher|homeroom|school\s+bus|"
    r"after\s+school|before\s+school|at\s+school|my\s+class\b|in\s+class\b|report\s+card|"
    r"my\s+(?:mom|mum|dad|parents)\s+(?:says?|said|won'?t|wont|would|will|is|are|took|takes|made|makes|checks?|"
    r"let|lets|grounded))"
)
# The other side's youth remarked on: "mature for your age", "kids ur age", "ur what 12?", "Fourteen? ..."
_YOUTH_REMARK = re.compile(
    rf"\b(?:for|at|kids|people|others|girls|boys|most)\s+(?:of\s+)?(?:ur|your|youre|you're)\s+age\b|\bmature\s+for\b|"
    rf"\b(?:ur|your|you'?re|youre|u r)\s+(?:what|only|just)\s+{_MINOR}\b|"
    rf"^\s*{_MINOR}\s*(?:\?|!|\s+and\s+(?:already|u|you))|"
    rf"\bso\s+young\b|\bolder\s+than\s+(?:ur|your)\s+age\b"
)
_ADULT_LIFE = re.compile(
    r"\b(?:my\s+(?:wife|husband|ex-?wife|ex-?husband|kids|children|son|daughter|boss|coworkers?|co-workers?|"
    r"employees?|mortgage|landlord|rent|salary|pension|divorce)|at\s+(?:work|the\s+office)|my\s+job|"
    r"from\s+work|after\s+work|off\s+work|divorced|married\s+for|paying\s+rent|my\s+(?:apartment|flat)\b)"
)


def age_cues(text: str) -> tuple[float, ...]:
    """The cues of one model text, each 0.0 or 1.0, in ``AGE_CUES`` order."""
    # The patterns are lower case: one lower() is cheaper than five case-insensitive searches.
    lowered = text.lower()
    return (
        float(_MINOR_AGE.search(lowered) is not None),
        float(_ADULT_AGE.search(lowered) is not None),
        float(_SCHOOL.search(lowered) is not None),
        float(_ADULT_LIFE.search(lowered) is not None),
        float(_YOUTH_REMARK.search(lowered) is not None),
    )


def age_cue_matrix(texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """``age_cues`` of every text as rows of a float32 [N, len(AGE_CUES)] array."""
    matrix = np.zeros((len(texts), len(AGE_CUES)), dtype=np.float32)
    for row, text in enumerate(texts):
        matrix[row] = age_cues(text)
    return matrix
