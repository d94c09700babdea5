"""Text normalisation: turn what people typed into the text the detector scores.

Moderators always see the original message; only the detector sees the normalised text. The goal is to undo
the cheap tricks people use to slip past keyword lists and classifiers (lookalike letters, invisible
characters, "zalgo" accents, leetspeak, s p a c e d letters) without damaging real text in other scripts.

``model_text`` is the one rule for what the model sees, in production (the Monitor) and in training
(``training.data.model_text`` calls it): ``normalise_text``, with every mention of a person replaced
by the placeholder ``<user>`` and placeholders then removed. The training data has every participant mention
replaced by ``<user>``, so a mention written the platform's way (``<@123>``, ``@U0123ABCD``) would otherwise
be a token the model never saw in training ("@U0123ABCD" in front of a grooming line moved its score from
0.79 to 0.42). The stored window and the transcripts keep the message as the platform rendered it; only the
model's input changes.
"""

from __future__ import annotations

import itertools
import logging
import re
import unicodedata
from collections.abc import Callable, Sequence
from types import MappingProxyType

__all__ = ["USER_PLACEHOLDER", "is_meaningful", "model_text", "normalise_text"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_CHARS = 2000

# Invisible padding must not push the visible text out of the window, so invisibles are removed (a cheap
# regex pass) from this many times ``max_chars`` (128,000 by default: more than Slack's 40,000-character
# message limit) before the window is cut to ``_WORK_WINDOW_FACTOR`` times ``max_chars``.
_SCAN_WINDOW_FACTOR = 64
_WORK_WINDOW_FACTOR = 4

# Marks kept per letter in scripts that stack them legitimately (Thai vowel + tone, Devanagari nukta +
# virama, Hebrew points). Zalgo stacks dozens.
_MAX_MARKS_PER_NON_LATIN_LETTER = 3

_NONCHARACTERS = "\ufdd0-\ufdef" + "".join(
    f"{chr(plane * 0x10000 + 0xFFFE)}{chr(plane * 0x10000 + 0xFFFF)}" for plane in range(17)
)

# Control characters that are not whitespace (whitespace controls become spaces in the split/join step),
# every format character (Cf) up to Unicode 15, the other default-ignorable code points (fillers, variation
# selectors, tags) and noncharacters.
_INVISIBLE_RE = re.compile(
    "["
    "\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f"
    "\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2"
    "\u115f\u1160\u17b4\u17b5\u180b-\u180f"
    "\u200b-\u200f\u202a-\u202e\u2060-\u206f"
    "\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0000-\U000e0fff"
    f"{_NONCHARACTERS}"
    "]+"
)
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
# Text after RIGHT-TO-LEFT OVERRIDE is shown reversed, up to the next bidi control or paragraph end:
# "\u202euoy era dlo woh" is read as "how old are you".
_RIGHT_TO_LEFT_OVERRIDE_RE = re.compile("\u202e([^\u202a-\u202e\u2066-\u2069\n\r\u2029]*)")
# Braille blank renders as an empty cell and is a favourite invisible filler.
_BLANK_LIKE = "\u2800"

# Cyrillic, Greek and Armenian letters that are drawn like a Latin letter in common fonts.
_LOOKALIKE_TO_LATIN: MappingProxyType[str, str] = MappingProxyType(
    {
        # Cyrillic lower case
        "а": "a", "в": "b", "е": "e", "һ": "h", "і": "i", "ј": "j", "к": "k", "м": "m", "н": "h",
        "о": "o", "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "ԁ": "d", "ԛ": "q",
        "ԝ": "w", "ӏ": "l", "ү": "y", "ѡ": "w",
        # Cyrillic upper case
        "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C",
        "Т": "T", "Х": "X", "У": "Y", "І": "I", "Ј": "J", "Ѕ": "S", "Ԛ": "Q", "Ԝ": "W", "Ү": "Y",
        "Ӏ": "I",
        # Greek lower case
        "α": "a", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u",
        "χ": "x", "γ": "y",
        # Greek upper case
        "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N",
        "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
        # Armenian
        "օ": "o", "ս": "u",
    }
)  # fmt: skip

_LEET_TO_LETTER: MappingProxyType[str, str] = MappingProxyType(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
)
# At the start of a word "4" usually means "for" (4ever, 4u) and "@" starts a handle.
_LEADING_LEET = frozenset("01357$")
_LEET_CHAR_RE = re.compile(r"[013457@$]")
_LEET_TOKEN_RE = re.compile(r"(?:[^\W_]|[@$])+")
# "10pm", "1st", "5yo", "3d": a digit followed by one of these is a number with a unit, not leetspeak.
_NUMBER_SUFFIXES = frozenset(
    {
        "st", "nd", "rd", "th", "am", "pm", "s", "k", "m", "h", "d", "x", "g", "p", "f", "y", "v",
        "yo", "yr", "yrs", "hr", "hrs", "min", "mins", "sec", "secs", "mo", "wk", "wks", "km", "kg",
        "lb", "lbs", "ft", "cm", "mm", "mb", "gb", "tb", "ms", "mph", "ish",
    }
)  # fmt: skip
# Links, e-mail addresses, handles and platform mentions (<@123>) are left exactly as typed.
_LEET_EXEMPT_CHUNK_RE = re.compile(r"://|^www\.|^[<@]|@.*\.[^\W\d_]")

# Single letters that are whole words in chat ("r u a", "i c u"): a run made only of these is not joined.
_CHAT_WORD_LETTERS = frozenset("aiuryncAIURYNC")
_MIN_SPACED_RUN = 3

_MAX_REPEAT = 3
_REPEATED_LETTER_RE = re.compile(r"([^\W\d_])\1{3,}", re.IGNORECASE)

# What the training data writes for a participant (an addressee, a screen name, a mention).
USER_PLACEHOLDER = "<user>"
# Mentions in the platforms' own markup: Discord <@123> <@!123> <@&123> <#123> </command:123>, Slack
# <@U0123ABCD> <@U0123ABCD|name> <#C0123ABCD|name> <!here> <!channel> <!everyone> <!subteam^S0123|@team>.
# Nobody types "<@...>" as words, so any id-like text between the brackets counts.
_MARKUP_MENTION_RE = re.compile(
    r"<(?:@[!&]?|#)[\w.-]+(?:\|[^<>]*)?>"
    r"|</[\w -]+:\d+>"
    r"|<!(?:here|channel|everyone|subteam\^[\w-]+)(?:\|[^<>]*)?>"
)
# Mentions as the Slack adapter renders them for people (``plain_text``): @everyone/@here/@channel, and
# the ids of users (U, W), user groups (S) and channels (C, G, D) when Slack sent no name: upper-case
# letters and digits, nine or more, at least one digit. "@home", "@ the park" and "@Anna" stay: content.
_RENDERED_MENTIONS = (
    r"@(?:everyone|here|channel)|@(?=[UWS][A-Z]*\d)[UWS][A-Z0-9]{8,}|#(?=[CGD][A-Z]*\d)[CGD][A-Z0-9]{8,}"
)
# Written back to back ("@U0123ABCD@U0456EFGH") mentions are read as one run.
_RENDERED_MENTION_RE = re.compile(rf"(?<![\w@#])(?:{_RENDERED_MENTIONS})+(?!\w)")
# Ids the message itself lists in ``mentioned_user_ids`` also count as mentions written "@<id>" (any
# platform, the HTTP API included); they join the rendered forms above in one pattern, so that a run mixing
# both is one mention. Bounded like the HTTP API's own lists.
_MAX_LISTED_MENTIONS = 100
_MAX_MENTION_ID_CHARS = 256
_PLACEHOLDER_RE = re.compile(re.escape(USER_PLACEHOLDER))
# Training's clean-up after removing a placeholder: "<user>, how are you" reads "how are you".
_LEADING_PUNCTUATION_RE = re.compile(r"^[\s,:;>]+")
_SPACES_RE = re.compile(r"\s{2,}")


def normalise_text(text: str, *, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """Return the text with evasion tricks undone. Never raises; the result is at most ``max_chars`` long.

    The detector scores ``model_text``: this, with mentions removed as training removes them.

    Steps, in order:

    1. Lone surrogates (a ``str`` decoded from JSON can hold ``"\\ud800"``) are dropped; a surrogate pair
       left as two code points is joined into its character.
    2. Text under a right-to-left override (U+202E) is put in the order it is displayed in
       ("\\u202euoy era dlo woh" reads "how old are you"). Then invisible characters are removed:
       zero-width spaces and joiners, word joiner, BOM, soft hyphen, bidi embeddings, overrides and
       isolates (U+202A-202E, U+2066-2069), variation selectors, tag characters, Hangul fillers,
       noncharacters and control characters. Line breaks, tabs and other whitespace become spaces; so
       does the blank braille cell (U+2800).
    3. Unicode NFKC: fullwidth letters, ligatures and mathematical letters (𝐡𝐨𝐰) become plain letters.
    4. Zalgo: combining marks on Latin letters are all dropped (NFKC already composed the real accents into
       single characters such as "é"; a Latin letter still followed by marks is zalgo, so it loses the
       accent NFKC gave it too: "ẗ̷" -> "t"), marks on anything that is not a letter are dropped, and
       letters of other scripts keep their first three marks (enough for Thai, Devanagari, Hebrew, Arabic)
       while spacing vowel signs are always kept.
    5. Spaced-out words: a run of at least three single letters separated by single spaces is joined
       ("s e c r e t" -> "secret"), unless every letter in the run is one that is a word of its own in chat
       (a, i, u, r, y, n, c: "r u a boy" stays as typed).
    6. Lookalike letters: inside a word that mixes Latin letters with Cyrillic, Greek or Armenian letters
       drawn like Latin ones (with or without an accent), and has no other letters, the lookalikes become
       Latin ("hоw" with a Cyrillic "о" -> "how"). Words written wholly in Cyrillic or Greek are never
       touched.
    7. Leetspeak, only in words whose letters are all Latin and that are not links, e-mail addresses,
       handles or mentions. Mapping: 0->o, 1->i, 3->e, 4->a, 5->s, 7->t, @->a, $->s.

       * digits or symbols *between* letters are mapped when every one of them can be: "h3llo" -> "hello",
         "n00dz" -> "noodz", "s3x" -> "sex";
       * a trailing run of "$" is mapped ("a$$" -> "ass"), so is a single trailing 0 ("s0" -> "so"); any
         other single trailing digit only when the word already had leetspeak inside it ("n00b5" ->
         "noobs", but "mp3", "b4", "ps4", and so also "ar3", stay);
       * a single leading 0, 1, 3, 5, 7 or $ followed only by letters is mapped unless the letters are a
         unit or ordinal ("0ld" -> "old", "5ex" -> "sex", but "1st", "5yo", "3pm", "7am" stay);
       * anything else stays: plain numbers ("age 13"), "13yo", "10pm", "2pm", "gr8", "covid19".
    8. Letters repeated more than three times are cut to three ("sooooo" -> "sooo").
    9. Whitespace is collapsed to single spaces and trimmed, and the text is cut to ``max_chars``, at the
       last word boundary when there is one.

    Only the first ``64 * max_chars`` characters of input are looked at, and only ``4 * max_chars`` once
    invisible characters and extra whitespace are gone, so a huge message costs no more than a long one.
    The result is idempotent: normalising it again returns it unchanged. ``max_chars`` below 1 gives an
    empty string.
    """
    if max_chars < 1:
        return ""
    return _normalise(text, max_chars=max_chars, clean=None)


def model_text(
    text: str, *, mentioned_user_ids: Sequence[str] = (), max_chars: int = DEFAULT_MAX_CHARS
) -> str:
    """Return the text the model sees, in production and in training: one rule for both.

    ``normalise_text``, and right after its character-level step 2-3 (before any word is folded, so that
    leetspeak never turns a mention's id into letters), mentions of people become ``<user>``, the placeholder
    the training data uses for every participant mention, and then placeholders are removed as training
    always did: each ``<user>`` becomes a space, leading spaces and ``, : ; >`` are stripped, spaces
    collapsed ("<@123>, how old are you" -> "how old are you"). The same clean-up runs again after folding
    (lookalike letters can spell an id) and after cutting to ``max_chars``.

    Mentions, on every platform:

    * platform markup: Discord ``<@123>``, ``<@!123>``, role ``<@&123>``, channel ``<#123>`` and command
      ``</name:123>`` mentions; Slack ``<@U0123ABCD>``, ``<@U0123ABCD|name>``, ``<#C0123ABCD|name>``,
      ``<!here>``, ``<!channel>``, ``<!everyone>``, ``<!subteam^S0123|@team>``;
    * as the Slack adapter renders them for people: ``@everyone``, ``@here``, ``@channel``, and Slack ids
      ``@U0123ABCD``, ``@W0123ABCD``, ``@S0123ABCD``, ``#C0123ABCD`` (an upper-case letter, then eight or
      more upper-case letters and digits, at least one a digit);
    * ``@<id>`` and ``<@<id>>`` for each id in ``mentioned_user_ids`` (the first 100), whatever the id
      looks like: this is how an HTTP API client's mentions are recognised.

    Any other ``@word`` stays: it may be content ("@ the park", "see you @home"), and a display name
    ("@Anna") cannot be told from one. An HTTP client that writes mentions as display names should list
    what follows the ``@`` in ``mentioned_user_ids`` only if that is the user's id (pairing uses those ids);
    otherwise it should write ``@<id>`` in the text.

    The result is at most ``max_chars`` long, never raises, and may be empty (a message that is only a
    mention): ``is_meaningful`` says whether there is anything to score.
    """
    if max_chars < 1:
        return ""
    mentions = _mention_re(mentioned_user_ids)

    def neutral(chunk: str) -> str:
        return _drop_placeholders(_neutralise_mentions(chunk, mentions=mentions))

    return _normalise(text, max_chars=max_chars, clean=neutral)


def is_meaningful(normalised: str) -> bool:
    """Whether normalised text has anything to score: a letter or a digit in any script.

    False for empty text and text made only of whitespace, punctuation, symbols or emoji.
    """
    return any(character.isalnum() for character in normalised)


def _normalise(text: str, *, max_chars: int, clean: Callable[[str], str] | None) -> str:
    prepared = _prepare(text, max_chars=max_chars)
    if clean is not None:
        prepared = clean(prepared)
    folded = _fold_words(prepared)
    if clean is not None:
        folded = clean(folded)
    if len(folded) <= max_chars:
        return folded
    logger.debug("normalised text cut from %d to %d characters", len(folded), max_chars)
    # Folding again makes a word cut in half look exactly as it would if it had been typed that way.
    refolded = _fold_words(_cut_at_word_boundary(folded, max_chars=max_chars))
    return refolded if clean is None else clean(refolded)


def _mention_re(mentioned_user_ids: Sequence[str]) -> re.Pattern[str]:
    """The rendered mentions, and ``@<id>``, ``<@<id>>``, ``<@!<id>>``, ``<@<id>|name>`` for listed ids."""
    ids = {
        unicodedata.normalize("NFKC", user_id)  # as _prepare leaves the text
        for user_id in mentioned_user_ids[:_MAX_LISTED_MENTIONS]
        if 0 < len(user_id) <= _MAX_MENTION_ID_CHARS
    }
    if not ids:
        return _RENDERED_MENTION_RE
    # Longest first, so that "@U12" is not read as "@U1" followed by "2".
    listed = "|".join(re.escape(user_id) for user_id in sorted(ids, key=lambda i: (-len(i), i)))
    return re.compile(
        rf"<@!?(?:{listed})(?:\|[^<>]*)?>|(?<![\w@#])(?:@(?:{listed})|{_RENDERED_MENTIONS})+(?!\w)"
    )


def _neutralise_mentions(text: str, *, mentions: re.Pattern[str]) -> str:
    if "@" not in text and "<" not in text and "#" not in text:
        return text
    return mentions.sub(USER_PLACEHOLDER, _MARKUP_MENTION_RE.sub(USER_PLACEHOLDER, text))


def _drop_placeholders(text: str) -> str:
    """Training's placeholder rule: "<user>, hi <user> there" -> "hi there"."""
    cleaned = _PLACEHOLDER_RE.sub(" ", text)
    cleaned = _LEADING_PUNCTUATION_RE.sub("", cleaned)
    return _SPACES_RE.sub(" ", cleaned).strip()


def _prepare(text: str, *, max_chars: int) -> str:
    """Character-level clean-up: surrogates, invisibles, NFKC, zalgo, whitespace."""
    scanned = text[: _SCAN_WINDOW_FACTOR * max_chars]
    if _SURROGATE_RE.search(scanned):
        scanned = scanned.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "ignore")
    if "\u202e" in scanned:
        scanned = _RIGHT_TO_LEFT_OVERRIDE_RE.sub(lambda match: _reverse_clusters(match.group(1)), scanned)
    visible = _INVISIBLE_RE.sub("", scanned).replace(_BLANK_LIKE, " ")
    work_window = _WORK_WINDOW_FACTOR * max_chars
    collapsed = " ".join(visible.split())[:work_window]
    if collapsed.isascii():
        return collapsed
    # NFKC can expand a character up to 18-fold ("ﷺ"), hence the second cut.
    composed = unicodedata.normalize("NFKC", collapsed)[:work_window]
    return " ".join(_strip_excess_marks(composed).split())


def _reverse_clusters(text: str) -> str:
    """Reverse text as a right-to-left override displays it, keeping marks after their letter."""
    clusters: list[str] = []
    for character in text:
        if clusters and _is_mark(character):
            clusters[-1] += character
        else:
            clusters.append(character)
    return "".join(reversed(clusters))


def _fold_words(text: str) -> str:
    """Word-level folding; input has single spaces only and no invisible characters."""
    joined = _join_spaced_letters(text)
    latin = _fold_lookalikes(joined)
    deleeted = _fold_leetspeak(latin)
    return _REPEATED_LETTER_RE.sub(lambda match: match.group(0)[:_MAX_REPEAT], deleeted)


def _cut_at_word_boundary(text: str, *, max_chars: int) -> str:
    space = text.rfind(" ", 0, max_chars + 1)
    if space > 0:
        return text[:space]
    return text[:max_chars]


def _is_mark(character: str) -> bool:
    return not character.isascii() and unicodedata.category(character).startswith("M")


def _is_latin_letter(character: str) -> bool:
    if character.isascii():
        return character.isalpha()
    return character.isalpha() and unicodedata.name(character, "").startswith("LATIN ")


def _strip_excess_marks(text: str) -> str:
    """Remove zalgo: see step 4 of ``normalise_text``."""
    kept: list[str] = []
    base_index = -1
    base_is_letter = False
    base_is_latin = False
    marks_on_base = 0
    for character in text:
        if character.isascii():
            kept.append(character)
            base_is_letter = base_is_latin = character.isalpha()
            base_index = len(kept) - 1
            marks_on_base = 0
            continue
        category = unicodedata.category(character)
        if category in ("Mn", "Me"):
            if base_is_letter and not base_is_latin and marks_on_base < _MAX_MARKS_PER_NON_LATIN_LETTER:
                kept.append(character)
                marks_on_base += 1
            elif base_is_latin and not kept[base_index].isascii():
                # A loose mark after NFKC means zalgo, and NFKC may have composed part of it ("ẗ").
                kept[base_index] = unicodedata.normalize("NFD", kept[base_index])[0]
            continue
        if category == "Mc":
            # Spacing vowel signs (Devanagari "ि") belong to the letter before them.
            if base_is_letter:
                kept.append(character)
            continue
        kept.append(character)
        base_is_letter = character.isalpha()
        base_is_latin = base_is_letter and _is_latin_letter(character)
        base_index = len(kept) - 1
        marks_on_base = 0
    return "".join(kept)


def _is_single_letter_chunk(chunk: str) -> bool:
    if not chunk:
        return False
    first = chunk[0]
    is_letter = (first.isascii() and first.isalpha()) or first in _LOOKALIKE_TO_LATIN
    return is_letter and all(_is_mark(character) for character in chunk[1:])


def _should_join(run: list[str]) -> bool:
    if len(run) < _MIN_SPACED_RUN:
        return False
    letters = [chunk[0] for chunk in run]
    if not any(letter.isascii() for letter in letters):
        return False  # single Cyrillic/Greek words ("в", "с", "к") are real words
    return not all(_LOOKALIKE_TO_LATIN.get(letter, letter) in _CHAT_WORD_LETTERS for letter in letters)


def _join_spaced_letters(text: str) -> str:
    chunks = text.split(" ")
    if len(chunks) < _MIN_SPACED_RUN:
        return text
    result: list[str] = []
    run: list[str] = []
    for chunk in [*chunks, ""]:
        if _is_single_letter_chunk(chunk):
            run.append(chunk)
            continue
        if _should_join(run):
            result.append("".join(run))
        else:
            result.extend(run)
        run = []
        result.append(chunk)
    result.pop()  # the "" sentinel
    return " ".join(result)


def _is_word_character(character: str) -> bool:
    return character.isalnum() or character in "@$" or _is_mark(character)


def _latin_for_lookalike(character: str) -> str | None:
    """The Latin letter a lookalike is read as ("ӧ", a Cyrillic о with diaeresis, reads "ö"), or None."""
    latin = _LOOKALIKE_TO_LATIN.get(character)
    if latin is not None or character.isascii():
        return latin
    decomposed = unicodedata.normalize("NFD", character)
    base_latin = _LOOKALIKE_TO_LATIN.get(decomposed[0])
    if base_latin is None or len(decomposed) == 1:
        return None
    # Keep the accent only where Latin has the accented letter; a loose mark would be zalgo.
    return unicodedata.normalize("NFC", base_latin + decomposed[1:])[0]


def _fold_lookalikes(text: str) -> str:
    if text.isascii():
        return text
    pieces: list[str] = []
    start = 0
    length = len(text)
    while start < length:
        end = start
        while end < length and _is_word_character(text[end]):
            end += 1
        if end == start:
            pieces.append(text[start])
            start += 1
            continue
        pieces.append(_fold_lookalike_word(text[start:end]))
        start = end
    return "".join(pieces)


def _fold_lookalike_word(word: str) -> str:
    has_latin = has_lookalike = False
    for character in word:
        if not character.isalpha():
            continue
        if _latin_for_lookalike(character) is not None:
            has_lookalike = True
        elif _is_latin_letter(character):
            has_latin = True
        else:
            return word  # a real word of another script (or a mix we cannot read): leave it
    if not (has_latin and has_lookalike):
        return word
    folded: list[str] = []
    after_folded_letter = False
    for character in word:
        latin = _latin_for_lookalike(character)
        if latin is not None:
            folded.append(latin)
            after_folded_letter = True
        elif after_folded_letter and _is_mark(character):
            continue  # a Latin letter carries no loose marks (see zalgo)
        else:
            folded.append(character)
            after_folded_letter = False
    return "".join(folded)


def _fold_leetspeak(text: str) -> str:
    if not _LEET_CHAR_RE.search(text):
        return text
    chunks = text.split(" ")
    for index, chunk in enumerate(chunks):
        if _LEET_CHAR_RE.search(chunk) and not _LEET_EXEMPT_CHUNK_RE.search(chunk):
            chunks[index] = _LEET_TOKEN_RE.sub(lambda match: _fold_leet_token(match.group(0)), chunk)
    return " ".join(chunks)


def _fold_leet_token(token: str) -> str:
    """Apply the leetspeak rules of step 7 to one run of letters, digits, @ and $."""
    letter_positions = [index for index, character in enumerate(token) if character.isalpha()]
    if not letter_positions or not all(token[index].isascii() for index in letter_positions):
        return token
    upper = all(token[index].isupper() for index in letter_positions)
    characters = list(token)

    def as_letter(character: str) -> str:
        letter = _LEET_TO_LETTER[character]
        return letter.upper() if upper else letter

    # Inside the word: every gap between letters whose characters can all be mapped.
    mapped_inside = False
    for left, right in itertools.pairwise(letter_positions):
        gap = token[left + 1 : right]
        if gap and all(character in _LEET_TO_LETTER for character in gap):
            characters[left + 1 : right] = [as_letter(character) for character in gap]
            mapped_inside = True
    # The end before the start: mapping the end can make the rest after a leading digit all letters.
    last = letter_positions[-1]
    suffix = token[last + 1 :]
    if suffix and (
        set(suffix) == {"$"} or suffix == "0" or (mapped_inside and len(suffix) == 1 and suffix in "13457")
    ):
        characters[last + 1 :] = [as_letter(character) for character in suffix]
    first = letter_positions[0]
    rest = "".join(characters[1:])
    if first == 1 and token[0] in _LEADING_LEET and rest.isalpha() and rest.lower() not in _NUMBER_SUFFIXES:
        characters[0] = as_letter(token[0])
    return "".join(characters)
