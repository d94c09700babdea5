from __future__ import annotations

import sys
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.bots.core.normalise import is_meaningful, normalise_text

# (typed, what the detector should see)
EVASIONS: tuple[tuple[str, str], ...] = (
    # Cyrillic о, а, е inside Latin words
    ("hоw оld аrе yоu", "how old are you"),
    # Greek ο, α, ρ, ι inside Latin words
    ("sεnd mε ρics", "send me pics"),
    ("hӧw ѕtаrt", "höw start"),
    ("ΗΕLLO", "HELLO"),
    # zero-width space, joiner, non-joiner, word joiner, BOM and soft hyphen inside words
    ("se\u200bcr\u200det \u200cpi\u2060c\ufeffs ple\u00adase", "secret pics please"),
    # zalgo
    ("h̸̛̗̺̓e̵͓͝l̷̰̕l̶̫͆o̸͈͑ ẗ̷́h̶̟̒e̴̗̊ṛ̷̾e̵͖͐", "hello there"),
    # leetspeak
    ("h0w 0ld r u", "how old r u"),
    ("s3nd n00dz", "send noodz"),
    ("u r s0 s3xy", "u r so sexy"),
    ("n00b5 l33t", "noobs leet"),
    ("h3ll0 k1ds", "hello kids"),
    ("c@n u k33p a s3cr3t", "can u keep a secret"),
    ("5ex is c00l", "sex is cool"),
    ("a$$", "ass"),
    ("c@t.", "cat."),
    ("H3LLO", "HELLO"),
    # spaced-out letters
    ("s e c r e t", "secret"),
    ("send n u d e s now", "send nudes now"),
    # right-to-left override shows the text reversed
    ("\u202euoy era dlo woh", "how old are you"),
    ("hi \u202etes\u202c there", "hi set there"),
    # bidi isolates and embeddings are just removed
    ("\u2066how\u2069 \u202aold\u202c", "how old"),
    # fullwidth, mathematical bold, circled letters, ligatures
    ("ｈｏｗ ｏｌｄ ａｒｅ ｙｏｕ", "how old are you"),
    ("𝐡𝐨𝐰 𝐨𝐥𝐝 𝐚𝐫𝐞 𝐲𝐨𝐮", "how old are you"),
    ("𝓈𝑒𝒸𝓇𝑒𝓉", "secret"),
    ("ⓢⓔⓒⓡⓔⓣ", "secret"),
    ("ﬁnd me", "find me"),
    # repeated letters
    ("sooooooo cuuuuute", "sooo cuuute"),
    ("heyyyyyyy", "heyyy"),
    # invisible fillers, tags, variation selectors, controls and odd whitespace
    ("hi\u3164there", "hithere"),
    ("hi\U000e0041\U000e0042 you\ufe0f", "hi you"),
    ("how\x00\x07 old\n\tare\r\nyou\u2028?", "how old are you ?"),
    ("how\u2800old", "how old"),
    ("  lots   of\u00a0\u2003space  ", "lots of space"),
    # several tricks at once
    ("ｈ\u200b0ѡ о\u0336l\u0337d 𝐚\u200drе y\u0335о\u0334u", "how old are you"),
)


@pytest.mark.parametrize(("typed", "expected"), EVASIONS)
def test_evasions_normalise_to_plain_text(typed: str, expected: str) -> None:
    assert normalise_text(typed) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Привет, как дела? Сколько тебе лет?",
        "Я в школе, а ты?",
        "Καλημέρα, τι κάνεις; Πόσο χρονών είσαι;",
        "Ура! Это ССР",
        "ที่นี่ไม่มีใคร",
        "क्षत्रिय नमस्ते",
        "שָׁלוֹם",
        "مرحبا كيف حالك",
        "こんにちは、元気？",
        "안녕하세요",
        "café naïve façade",
        "Tiếng Việt có dấu",
    ],
)
def test_real_text_in_other_scripts_is_untouched(text: str) -> None:
    assert normalise_text(text) == unicodedata.normalize("NFKC", text)


@pytest.mark.parametrize(
    "text",
    [
        "age 13",
        "im 13",
        "13yo",
        "5yo",
        "i'm 12, you?",
        "meet at 10pm",
        "meet at 2pm",
        "7am works",
        "the 1st time",
        "3rd grade",
        "mp3 player",
        "ps4 or gr8 or b4",
        "covid19",
        "call 555 0134",
        "$50 gift card",
        "1080p 4k",
        "1v1 me",
        # a known loss: a single trailing 3 is only read as "e" when the word has leetspeak inside it
        "ar3 u there",
    ],
)
def test_plain_numbers_and_number_words_are_kept(text: str) -> None:
    assert normalise_text(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "mail me at b0b@example.com",
        "https://exa4mple.com/s3cr3t",
        "www.h4x0r.net",
        "<@U0A7B3C> <#C0123> <@!1234>",
        "@h4x0r",
    ],
)
def test_links_addresses_and_mentions_are_left_as_typed(text: str) -> None:
    assert normalise_text(text) == text


@pytest.mark.parametrize("text", ["r u a boy", "u r a cutie", "i c u"])
def test_single_letter_chat_words_are_not_joined(text: str) -> None:
    assert normalise_text(text) == text


def test_single_cyrillic_words_are_not_joined() -> None:
    assert normalise_text("а в с к о") == "а в с к о"


def test_lone_surrogates_are_dropped_and_pairs_joined() -> None:
    assert normalise_text("a\ud800b\udfffc") == "abc"
    assert normalise_text("hi \ud83d\ude00") == "hi 😀"
    assert normalise_text("\ud800") == ""


def test_every_format_character_is_removed() -> None:
    format_characters = [
        chr(code_point)
        for code_point in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code_point)) == "Cf" and code_point != 0x202E
    ]
    assert format_characters
    for character in format_characters:
        assert normalise_text(f"ab{character}cd") == "abcd", hex(ord(character))


def test_output_is_capped_at_a_word_boundary() -> None:
    assert normalise_text("hello there world", max_chars=13) == "hello there"
    assert normalise_text("abcdefghij", max_chars=4) == "abcd"
    assert normalise_text("anything", max_chars=0) == ""


def test_one_megabyte_input_is_bounded() -> None:
    huge = ("h̸̛̗e̵͓͝ll0 s e c r e t ｈｏｗ \u200b" * 40_000)[:1_000_000]
    normalised = normalise_text(huge)
    assert 0 < len(normalised) <= 2000
    assert normalise_text("x" * 1_000_000, max_chars=50) == "xxx"
    assert len(normalise_text("ﷺ" * 1_000_000)) <= 2000


def test_invisible_padding_does_not_hide_the_text() -> None:
    assert normalise_text("\u200b" * 50_000 + "how old are you") == "how old are you"


@pytest.mark.parametrize(
    ("text", "meaningful"),
    [
        ("", False),
        ("   ", False),
        ("?!...", False),
        ("😀😀👍🏽", False),
        ("🇬🇧 ❤️", False),
        ("hi", True),
        ("13", True),
        ("да", True),
        ("好", True),
    ],
)
def test_is_meaningful(text: str, meaningful: bool) -> None:
    assert is_meaningful(normalise_text(text)) is meaningful


TRICKY_CHARACTERS = st.sampled_from(
    [
        *"abeiorsuxyzAEIOSX0123457@$.:/<_- \n\t",
        *"аеорсхуіѕАВЕКМНОРСТХοαιρΟΑжиЖ",
        *"\u0301\u0308\u0316\u0335\u200b\u200d\u202e\u202c\u2066\u3164\ufe0f\u2800",
        *"éﬁｈ𝐡각ก่ีक्िⒶ¹½㍻ﷺ😀",
        "\ud800",
        "\ude00",
        "\ud83d",
    ]
)
ANY_CHARACTER = st.characters(exclude_categories=())


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.one_of(
        st.text(alphabet=TRICKY_CHARACTERS, max_size=80), st.text(alphabet=ANY_CHARACTER, max_size=200)
    ),
    max_chars=st.integers(min_value=1, max_value=120),
)
def test_never_raises_is_capped_and_idempotent(text: str, max_chars: int) -> None:
    normalised = normalise_text(text, max_chars=max_chars)
    assert len(normalised) <= max_chars
    assert normalised == normalised.strip()
    assert "  " not in normalised
    assert normalise_text(normalised, max_chars=max_chars) == normalised


@settings(max_examples=200)
@given(text=st.text(alphabet=ANY_CHARACTER, max_size=300))
def test_is_meaningful_never_raises(text: str) -> None:
    assert isinstance(is_meaningful(normalise_text(text)), bool)
