"""The age cues the pair model reads beside the encoder (vigil.detector.cues), on model text."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from vigil.bots.core.normalise import model_text
from vigil.detector.cues import (
    CUE_VERSIONS,
    LATEST_CUES,
    UnknownCuesError,
    _compiled,
    _top_level_branches,
    text_cues,
)

MINOR, ADULT, SCHOOL, ADULT_LIFE, YOUTH, ADULTS, SECRECY, PRIVATE, GIFT, MEETING, PHOTO = range(11)
SHARED_FAMILY = 11  # from behaviour_v8
CARER_IN = 12  # from behaviour_v9

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


# Grooming's steps, read from behaviour_v3 on, in chat-speak and standard English alike.
FROM_V3 = [
    ("dont tell ur mom ok", SECRECY),
    ("Yes, and you don't need to mention it to your parents.", SECRECY),
    ("You don\u2019t have to tell your dad about this.", SECRECY),
    ("just between us for now", SECRECY),
    ("this is our little secret", SECRECY),
    ("delete our chat after ok", SECRECY),
    ("nobody needs to know", SECRECY),
    ("do you have snap? its easier to talk there", PRIVATE),
    ("u on snap?", PRIVATE),
    ("add me on telegram", PRIVATE),
    ("Let's discuss it somewhere more private.", PRIVATE),
    ("whats ur number", PRIVATE),
    ("I'll send you my number later", PRIVATE),
    ("want some robux? i can send you a gift card", GIFT),
    ("I have an old laptop I could give you.", GIFT),
    ("ill buy u the battle pass", GIFT),
    ("i can pick u up after school", MEETING),
    ("we should meet up irl", MEETING),
    ("I could drop the laptop off near your school one afternoon.", MEETING),
    ("where do you live", MEETING),
    ("send me a pic", PHOTO),
    ("what r u wearing", PHOTO),
    ("turn on your cam", PHOTO),
]
# Near misses: talk that names an app, a gift or a place without asking for the step.
NOT_A_STEP = [
    "I sent you a DM, by the way.",
    "ill send you the link",
    "my house is a mess lol",
    "gg wp",
    "can you get me the notes from class",
    "i'll get you the file tomorrow",
    "snap peas are gross",
    "the picture on the wall",
    "hey how are you",
]


# Said indirectly, read from behaviour_v4 on: a parent's watch over the writer, checking for that watch, the
# age gap remarked on, and the steps in the slower standard English of a groomer who builds a romance.
FROM_V4 = [
    ("Can't my mom blocked pix messaging on my phone", SCHOOL),
    ("cant my moms home :p", SCHOOL),
    ("Can't, I'm w my mom", SCHOOL),
    ("my stepdad took my phone again", SCHOOL),
    ("its spring break finally", SCHOOL),
    ("is your mom home?", SECRECY),
    ("Are you home alone right now?", SECRECY),
    ("she won't find out, you're sneaky", SECRECY),
    ("can you sneak out tonight", SECRECY),
    ("when are you comin over", MEETING),
    ("I wish you were here.", MEETING),
    ("When would you want me if I could get there?", MEETING),
    ("hope u can get out tomorrow", MEETING),
    ("I want to see you so bad.", MEETING),
    ("wanna hang out this weekend?", MEETING),
    ("send more lol", PHOTO),
    ("just email me one", PHOTO),
    ("send me a couple of pics", PHOTO),
    ("gotta see that booty first", PHOTO),
    ("i wanna see urs", PHOTO),
    ("you like older guys?", YOUTH),
    ("I was worried I was too old for you", YOUTH),
    ("age is just a number", YOUTH),
    ("so why doesnt my age bother u", YOUTH),
    ("all the guys my age are so lame", YOUTH),
]
# What behaviour_v4 still leaves alone: adults' own homes, goodbyes, and words the new rules are near.
NOT_IN_V4 = [
    ("I live with my parents and my sister.", SCHOOL),
    ("No. My father takes the dog for a walk.", SCHOOL),
    ("Okay, I'll see you later.", MEETING),
    ("Today I seem to have come down with it too.", MEETING),
    ("we come up here in the summer", MEETING),
    ("Would you like to hang glide too?", MEETING),
    ("send one more time, it failed", PHOTO),
    ("can you send more details", PHOTO),
    ("when you look in the mirror are you happy?", PHOTO),
    ("my older brother plays it too", YOUTH),
    ("we're the same age", YOUTH),
]
# behaviour_v5: the other's age or school spoken of, by the groomer above all, is no longer the writer's.
ECHOES = [
    ("Seventh grade and already nesting loops. You're more advanced than most", SCHOOL),
    ("dang, 8th grade and already making beats like this", SCHOOL),
    ("12 and already trading better than half this server", MINOR),
    ("Are you in the middle school group or the high school group?", SCHOOL),
    ("Scratch, so you're still in middle school?", SCHOOL),
    ("how old r u, 6th grade?", SCHOOL),
    ("what grade are you in, middle school?", SCHOOL),
    ("i could pick u up after school thurs", SCHOOL),
    ("I could meet you after school on friday", SCHOOL),
    ("You seem much more mature than most 7th graders I tutor.", SCHOOL),
    ("You're very grown up for year 8.", SCHOOL),
    ("hows 9th grade treating u btw", SCHOOL),
    ("6th?? u play like a high schooler", SCHOOL),
]
# ...while the writer's own age and school stay cues, with or without a question back.
OWN_AGE = [
    ("Middle school. I'm in seventh grade.", SCHOOL),
    ("im 13 u?", MINOR),
    ("im 13 wbu", MINOR),
    ("I'm 14, are you in high school too?", MINOR),
    ("I'm 14, are you in high school too?", SCHOOL),
    ("im in 8th grade and already failing", SCHOOL),
    ("after school i have practice", SCHOOL),
    ("i got out of middle school early today", SCHOOL),
    ("my mom says i cant", SCHOOL),
    ("can't my moms home", SCHOOL),
    ("13", MINOR),
]
# behaviour_v6: an age said of a third person is no age of the writer; of the writer's own child, adult life.
THIRD_PERSON = [
    ("so I really have just a thirteen year old at home.", MINOR),
    ("what kind of poker does a 13 yr old play?", MINOR),
    ("lol id chat but i dunno what i have in common w/ a 13 yr old!", MINOR),
    ("how 'bout a 16 year old from somewhere else? ;-)", MINOR),
    ("a 44 year old man hitting on a 13 year old girl", MINOR),
    ("a 44 year old man hitting on a 13 year old girl", ADULT),
    ("u dont act like a 13 year old at all", MINOR),
    ("my fourteen year old son has an extra pillow for the cat", MINOR),
]
OWN_CHILD = [
    "my fourteen year old son has an extra pillow for the cat",
    "and i've got a ten year old,",
    "i have an eleven year old, she's my oldest",
    "my son just turned 12",
    "our 9 year old loves this game",
]
OWN_AGE_V6 = [
    ("im a 13 year old girl", MINOR),
    ("i'm just a 13 yo lol", MINOR),
    ("im 13 my brother is 17", MINOR),
    ("im 32 and my daughter is 13", ADULT),
    ("I'm 24, my sister is a 16 year old", ADULT),
    ("29", ADULT),
]
BEHAVIOUR_VERSIONS = [v for v in CUE_VERSIONS if v.startswith("behaviour_")]


@pytest.mark.parametrize(("text", "cue"), ECHOES)
def test_behaviour_v5_reads_an_echo_of_the_others_age_as_no_age_of_the_writer(text: str, cue: int) -> None:
    assert text_cues("behaviour_v4").of(model_text(text))[cue] == 1.0
    read = text_cues("behaviour_v5").of(model_text(text))
    assert read[cue] == 0.0
    # Only the child's age and school are cancelled; every other cue is v4's.
    v4 = text_cues("behaviour_v4").of(model_text(text))
    assert [r for i, r in enumerate(read) if i not in (MINOR, SCHOOL)] == [
        r for i, r in enumerate(v4) if i not in (MINOR, SCHOOL)
    ]


@pytest.mark.parametrize(("text", "cue"), OWN_AGE)
def test_behaviour_v5_still_reads_the_writers_own_age_and_school(text: str, cue: int) -> None:
    assert text_cues("behaviour_v5").of(model_text(text))[cue] == 1.0


@pytest.mark.parametrize(("text", "cue"), THIRD_PERSON)
def test_behaviour_v6_reads_a_third_persons_age_as_no_age_of_the_writer(text: str, cue: int) -> None:
    assert text_cues("behaviour_v5").of(model_text(text))[cue] == 1.0
    assert text_cues("behaviour_v6").of(model_text(text))[cue] == 0.0


@pytest.mark.parametrize("text", OWN_CHILD)
def test_behaviour_v6_reads_the_writers_own_childs_age_as_adult_life(text: str) -> None:
    assert text_cues("behaviour_v6").of(model_text(text))[ADULT_LIFE] == 1.0


@pytest.mark.parametrize(("text", "cue"), [*OWN_AGE_V6, *OWN_AGE])
def test_behaviour_v6_still_reads_the_writers_own_age(text: str, cue: int) -> None:
    assert text_cues("behaviour_v6").of(model_text(text))[cue] == 1.0


@pytest.mark.parametrize("text", [text for text, _ in ECHOES + THIRD_PERSON] + OWN_CHILD)
def test_behaviour_v6_changes_only_the_ages_school_and_adult_life(text: str) -> None:
    v5 = text_cues("behaviour_v5").of(model_text(text))
    v6 = text_cues("behaviour_v6").of(model_text(text))
    kept = [i for i in range(len(v5)) if i not in (MINOR, ADULT, SCHOOL, ADULT_LIFE)]
    assert [v6[i] for i in kept] == [v5[i] for i in kept]
    assert all(v6[i] <= v5[i] for i in (MINOR, ADULT, SCHOOL))


# behaviour_v7: "let" is secrecy only where someone would know or see.
LET_SECRET = [
    "don't let anybody know what we r talking about",
    "never ever let anyone know about those",
    "dont let ur mom see this",
    "don't let your parents find out",
    "Do not let your dad read these messages.",
]
LET_NOT_SECRET = [
    "dont let anyone take storm's mid next time",
    "just dont let anyone take advantage of u",
    "don't ever let go of the bond u have with ur mom",
    "one more tip: don't let anyone pressure you into playing",
    "you are. don't let anyone tell you otherwise.",
]
# behaviour_v8's shared_family: family the writer shares with the other.
SHARED_FAMILY_TEXTS = [
    "tell our mom it's my new number too",
    "dont tell mom i got a tattoo",
    "i know when ur bday is ive known u ur whole life",
    "r u coming home for thanksgiving",
    "Are you coming home for Christmas?",
    "ask dad",
    "ok ill text mum when im there",
    "our cousins are coming saturday",
    "love u, ur big sis",
]
NOT_SHARED_FAMILY = [
    "is ur mom home",
    "dont tell ur mom ok",
    "my mom said no",
    "ask your dad if you can come",
    "this is our secret",
    "i'm coming home late tonight",
    "our team won",
]

# behaviour_v9's carer_in: a parent, a carer or the open group kept in.
CARER_IN_TEXTS = [
    "I'll let your mum know tonight so she can sort the badge",
    "ill message ur mom and see if she can drive",
    "ask your dad first and if he's ok I'll send it",
    "is that ok with your parents?",
    "Parents are welcome to watch from the side",
    "under 16s need a parent or guardian with them",
    "my mom can pick us up at 9",
    "i'll ask my mum.",
    "keep it in the channel pls",
    "best to ask in #help, everyone's friendly",
    "sorry I can't give anyone a lift on my own, club rule",
    "the trip needs a parent's permission slip",
]
NOT_CARER_IN = [
    "no need to bother your mum with the time change",
    "don't tell your mom",
    "No need to bring your dad in, he'd only want to pay",
    "dont show this to ur mum ok?",
    "tell your mom you're at a friend's",
    "is ur mom home",
    "my mom checks my phone tho",
    "i saw your post in #art, that was yours?",
    "call me later",
]


@pytest.mark.parametrize("text", CARER_IN_TEXTS)
def test_behaviour_v9_reads_carers_kept_in(text: str) -> None:
    assert text_cues("behaviour_v9").of(model_text(text))[CARER_IN] == 1.0


@pytest.mark.parametrize("text", NOT_CARER_IN)
def test_behaviour_v9_reads_carers_kept_out_or_watched_as_no_carer_in(text: str) -> None:
    assert text_cues("behaviour_v9").of(model_text(text))[CARER_IN] == 0.0


@pytest.mark.parametrize(
    "text", [*CARER_IN_TEXTS, *NOT_CARER_IN, *SHARED_FAMILY_TEXTS, *LET_SECRET, *[t for t, _ in FROM_V3]]
)
def test_behaviour_v9_is_v8_and_one_more_cue(text: str) -> None:
    v8 = text_cues("behaviour_v8").of(model_text(text))
    v9 = text_cues("behaviour_v9").of(model_text(text))
    assert v9[: len(v8)] == v8 and len(v9) == len(v8) + 1


@pytest.mark.parametrize("text", LET_SECRET)
def test_behaviour_v7_reads_letting_someone_know_as_secrecy(text: str) -> None:
    assert text_cues("behaviour_v7").of(model_text(text))[SECRECY] == 1.0
    assert text_cues("behaviour_v8").of(model_text(text))[SECRECY] == 1.0


@pytest.mark.parametrize("text", LET_NOT_SECRET)
def test_behaviour_v7_reads_other_lets_as_no_secrecy(text: str) -> None:
    assert text_cues("behaviour_v6").of(model_text(text))[SECRECY] == 1.0
    assert text_cues("behaviour_v7").of(model_text(text))[SECRECY] == 0.0
    assert text_cues("behaviour_v8").of(model_text(text))[SECRECY] == 0.0


@pytest.mark.parametrize("text", SHARED_FAMILY_TEXTS)
def test_behaviour_v8_reads_shared_family(text: str) -> None:
    assert text_cues("behaviour_v8").of(model_text(text))[SHARED_FAMILY] == 1.0


@pytest.mark.parametrize("text", NOT_SHARED_FAMILY)
def test_behaviour_v8_reads_someone_elses_family_as_no_shared_family(text: str) -> None:
    assert text_cues("behaviour_v8").of(model_text(text))[SHARED_FAMILY] == 0.0


@pytest.mark.parametrize(
    "text", [*LET_SECRET, *LET_NOT_SECRET, *SHARED_FAMILY_TEXTS, *NOT_SHARED_FAMILY, *[t for t, _ in FROM_V3]]
)
def test_behaviour_v7_narrows_secrecy_and_v8_adds_shared_family(text: str) -> None:
    v6 = text_cues("behaviour_v6").of(model_text(text))
    v7 = text_cues("behaviour_v7").of(model_text(text))
    v8 = text_cues("behaviour_v8").of(model_text(text))
    assert len(v7) == len(v6) and v8[: len(v7)] == v7 and len(v8) == len(v7) + 1
    kept = [i for i in range(len(v6)) if i != SECRECY]
    assert [v7[i] for i in kept] == [v6[i] for i in kept]
    assert v7[SECRECY] <= v6[SECRECY]


@pytest.mark.parametrize("version", BEHAVIOUR_VERSIONS)
@pytest.mark.parametrize(("text", "cue"), FROM_V3)
def test_the_behaviour_cues_read_the_steps(version: str, text: str, cue: int) -> None:
    cues = text_cues(version)
    read = cues.of(model_text(text))
    assert read[cue] == 1.0, cues.names[cue]
    # The age cues are age_v2's, unchanged (from behaviour_v5 less an echo of the other's age or school).
    v2 = text_cues("age_v2").of(model_text(text))
    if version in ("behaviour_v3", "behaviour_v4"):
        assert read[: ADULTS + 1] == v2
    else:
        assert all(read[i] <= v2[i] for i in range(ADULTS + 1))


@pytest.mark.parametrize(("text", "cue"), FROM_V4)
def test_behaviour_v4_reads_what_is_said_indirectly(text: str, cue: int) -> None:
    read = text_cues("behaviour_v4").of(model_text(text))
    assert read[cue] == 1.0, text_cues("behaviour_v4").names[cue]
    assert text_cues("behaviour_v3").of(model_text(text))[cue] == 0.0
    # Ages, adult life and the adults' remark stay age_v2's.
    v2 = text_cues("age_v2").of(model_text(text))
    assert (read[MINOR], read[ADULT], read[ADULT_LIFE], read[ADULTS]) == (
        v2[MINOR],
        v2[ADULT],
        v2[ADULT_LIFE],
        v2[ADULTS],
    )


@pytest.mark.parametrize(("text", "cue"), NOT_IN_V4)
def test_behaviour_v4_leaves_near_misses_alone(text: str, cue: int) -> None:
    assert text_cues("behaviour_v4").of(model_text(text))[cue] == 0.0


@pytest.mark.parametrize("version", BEHAVIOUR_VERSIONS)
@pytest.mark.parametrize("text", NOT_A_STEP)
def test_near_misses_are_no_step(version: str, text: str) -> None:
    read = text_cues(version).of(model_text(text))
    assert read[SECRECY : PHOTO + 1] == (0.0,) * 5, read
    # one cue and one only where the text asks for one step
    assert sum(text_cues(version).of(model_text("dont tell ur mom ok"))[SECRECY:]) == 1.0


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
    every = ", ".join(CUE_VERSIONS)
    assert every.endswith("behaviour_v7, behaviour_v8, behaviour_v9")
    with pytest.raises(
        UnknownCuesError,
        match=rf"'age_v9'.*{every}",
    ):
        text_cues("age_v9")
    assert CUE_VERSIONS[-1] == LATEST_CUES


# A model names the cue version it was trained on: a version's names and patterns never change once a model
# reads them (a new rule is a new version). These fingerprints catch an edit to an existing version.
FINGERPRINTS = {
    "age_v1": "ef6f12197c6e3187",
    "age_v2": "1c0213989860e9f3",
    "behaviour_v3": "d37392462738d285",
    "behaviour_v4": "c9044c20d21dfe2a",
    "behaviour_v5": "212da41649aa23b0",
    "behaviour_v6": "32f7939458fa12b1",
    "behaviour_v7": "60f5a23ff4393ef8",
    "behaviour_v8": "a66156156d78ee9f",
    "behaviour_v9": "98bd441a929d7e97",
}


@pytest.mark.parametrize("version", CUE_VERSIONS)
def test_a_versions_rules_never_change(version: str) -> None:
    cues = text_cues(version)
    rules = "\n".join((*cues.names, *(pattern.pattern for pattern in cues.patterns)))
    if cues.unless:  # from behaviour_v5; the earlier versions' fingerprints stay as they were
        rules += "\nunless\n" + "\n".join(p.pattern if p is not None else "-" for p in cues.unless)
    assert hashlib.sha256(rules.encode()).hexdigest()[:16] == FINGERPRINTS[version]


REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("version", CUE_VERSIONS)
def test_a_cue_searched_as_two_patterns_finds_what_its_one_alternation_finds(version: str) -> None:
    # Every message of the shipped example conversations, and texts made to start with the anchored branches.
    texts = [
        model_text(message["text"]).lower()
        for name in ("realistic_conversations.jsonl", "realistic_heldout.jsonl", "written/held.jsonl")
        for line in (REPO / "examples" / name).read_text(encoding="utf-8").splitlines()
        for message in json.loads(line)["messages"]
    ]
    texts += [text for text, _ in (*EVERY_VERSION, *FROM_V2)] + ["13 and u?", "8th", "  14 f", "14?"]
    assert len(texts) > 5000
    for alternation in text_cues(version).patterns:
        single = re.compile(alternation.pattern)
        found = [alternation.search(text) for text in texts]
        assert found == [single.search(text) is not None for text in texts], alternation.pattern[:80]
        assert any(found), alternation.pattern[:80]


def test_the_top_level_split_leaves_groups_classes_and_escapes_whole() -> None:
    pattern = r"^a(?:b|c)|[|(]x\||\bd"
    assert _top_level_branches(pattern) == [r"^a(?:b|c)", r"[|(]x\|", r"\bd"]
    alternation = _compiled(pattern)
    assert alternation.at_start is not None and alternation.at_start.pattern == r"^a(?:b|c)"
    assert alternation.anywhere is not None and alternation.anywhere.pattern == r"[|(]x\||\bd"
    assert [alternation.search(text) for text in ("ac", "zac", "z(x|", "z d", "zz")] == [
        True,
        False,
        True,
        True,
        False,
    ]
