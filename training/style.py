"""Deterministic text style transforms for training-time augmentation.

The shipped detector learned the STYLE of its positives (AIM-era chat-speak, "u r so cute", "asl") more than
grooming itself, because every positive is a Perverted-Justice log and the negatives are mostly standard
English. These transforms move a message across styles while keeping what it says:

- :func:`standardise` rewrites chat-speak as standard English (for positives: grooming in plain English);
- :func:`chatify` writes standard English as chat-speak (for negatives: benign chat in chat-speak);
- :func:`modernise` swaps dated platforms (AIM, MSN, Yahoo, MySpace, webcams) for current ones.

Every function is pure given its ``random.Random`` (the caller seeds it), never raises on any string, never
touches the data placeholders (``<user>``, ``<url>``, ``<phone>``, ``<email>``) and returns its input
unchanged rather than an empty or blank text.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

__all__ = ["PLACEHOLDER_RE", "chatify", "modernise", "standardise"]

PLACEHOLDER_RE = re.compile(r"(<(?:user|url|phone|email)>)")

# An ASCII word (letters/digits, one inner apostrophe allowed) not glued to other word characters, so that
# "café" or "日本" are never cut into pieces.
_WORD_RE = re.compile(r"(?<![\w'’])[A-Za-z0-9]+(?:['’][A-Za-z]+)?(?![\w'’])")
_STRETCH_RE = re.compile(r"([A-Za-z])\1{2,}")
_LAUGH_RE = re.compile(r"(?<!\w)(?:(?:ha){3,}h?|(?:he){3,}h?|lo(?:lo)+l?|l(?:ol){2,})(?!\w)", re.IGNORECASE)
_REPEATED_MARK_RE = re.compile(r"([!?])\1+")
_MIXED_MARKS_RE = re.compile(r"[!?]*\?[!?]*!+[!?]*|[!?]*![!?]*\?+[!?]*")
_DOTS_RE = re.compile(r"\.{4,}")
_SENTENCE_START_RE = re.compile(r"([.!?]\s+)([a-z])")

# Chat-speak -> standard English. Keys are lower-case; values are what a careful writer would type.
_STANDARD_WORDS: Mapping[str, str] = MappingProxyType(
    {
        "u": "you",
        "yu": "you",
        "yuo": "you",
        "r": "are",
        "y": "why",
        "c": "see",
        "b": "be",
        "n": "and",
        "nd": "and",
        "o": "oh",
        "ur": "your",
        "urs": "yours",
        "youre": "you're",
        "u're": "you're",
        "ure": "you're",
        "wat": "what",
        "wut": "what",
        "wht": "what",
        "wats": "what's",
        "whats": "what's",
        "wuts": "what's",
        "k": "ok",
        "kk": "ok",
        "kay": "okay",
        "okie": "okay",
        "oki": "okay",
        "luv": "love",
        "luvs": "loves",
        "pic": "picture",
        "pics": "pictures",
        "pix": "pictures",
        "plz": "please",
        "pls": "please",
        "pleez": "please",
        "cuz": "because",
        "coz": "because",
        "cos": "because",
        "bc": "because",
        "becuz": "because",
        "bcuz": "because",
        "gonna": "going to",
        "wanna": "want to",
        "gotta": "got to",
        "kinda": "kind of",
        "sorta": "sort of",
        "lemme": "let me",
        "gimme": "give me",
        "dunno": "don't know",
        "thx": "thanks",
        "thnx": "thanks",
        "thanx": "thanks",
        "tx": "thanks",
        "ty": "thank you",
        "np": "no problem",
        "i": "I",
        "im": "I'm",
        "i'm": "I'm",
        "ive": "I've",
        "i've": "I've",
        "i'll": "I'll",
        "i'd": "I'd",
        "dont": "don't",
        "cant": "can't",
        "wont": "won't",
        "didnt": "didn't",
        "doesnt": "doesn't",
        "isnt": "isn't",
        "wasnt": "wasn't",
        "arent": "aren't",
        "havent": "haven't",
        "hasnt": "hasn't",
        "couldnt": "couldn't",
        "wouldnt": "wouldn't",
        "shouldnt": "shouldn't",
        "thats": "that's",
        "theres": "there's",
        "wheres": "where's",
        "hows": "how's",
        "whos": "who's",
        "lets": "let's",
        "ppl": "people",
        "b4": "before",
        "2nite": "tonight",
        "2night": "tonight",
        "tonite": "tonight",
        "2day": "today",
        "2moro": "tomorrow",
        "2morrow": "tomorrow",
        "tmrw": "tomorrow",
        "tmr": "tomorrow",
        "tomoro": "tomorrow",
        "l8r": "later",
        "l8": "late",
        "gr8": "great",
        "m8": "mate",
        "w8": "wait",
        "h8": "hate",
        "str8": "straight",
        "some1": "someone",
        "any1": "anyone",
        "every1": "everyone",
        "no1": "no one",
        "4ever": "forever",
        "idk": "I don't know",
        "idc": "I don't care",
        "btw": "by the way",
        "omg": "oh my god",
        "nvm": "never mind",
        "tbh": "to be honest",
        "imo": "in my opinion",
        "brb": "be right back",
        "ttyl": "talk to you later",
        "wbu": "what about you",
        "hbu": "how about you",
        "wyd": "what are you doing",
        "hru": "how are you",
        "asl": "age, sex, location",
        "sry": "sorry",
        "srry": "sorry",
        "rn": "right now",
        "irl": "in real life",
        "ily": "I love you",
        "gf": "girlfriend",
        "bf": "boyfriend",
        "msg": "message",
        "txt": "text",
        "bday": "birthday",
        "prolly": "probably",
        "prob": "probably",
        "def": "definitely",
        "obv": "obviously",
        "abt": "about",
        "bout": "about",
        "smth": "something",
        "sth": "something",
        "nm": "not much",
        "sup": "what's up",
        "wassup": "what's up",
        "wazup": "what's up",
        "ya": "you",
        "yea": "yeah",
        "yeh": "yeah",
        "ye": "yeah",
        "da": "the",
        "dat": "that",
        "dis": "this",
        "dem": "them",
        "tho": "though",
        "thru": "through",
        "gud": "good",
        "kool": "cool",
        "wen": "when",
        "wer": "where",
        "wher": "where",
        "hw": "how",
        "shud": "should",
        "wud": "would",
        "cud": "could",
        "hav": "have",
        "mayb": "maybe",
        "ova": "over",
        "sumthin": "something",
        "somethin": "something",
        "nothin": "nothing",
        "doin": "doing",
        "goin": "going",
        "talkin": "talking",
        "lookin": "looking",
        "comin": "coming",
        "gettin": "getting",
        "chillin": "chilling",
        "playin": "playing",
        "thinkin": "thinking",
        "kiddin": "kidding",
        "tryin": "trying",
        "sayin": "saying",
        "waitin": "waiting",
        "feelin": "feeling",
        "workin": "working",
        "cya": "see you",
        "srsly": "seriously",
        "rly": "really",
        "rlly": "really",
        "whatev": "whatever",
        "wateva": "whatever",
        "wit": "with",
    }
)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# After "ur"/"youre" these words mean "you're", otherwise "ur" is "your".
_YOURE_NEXT = _words(
    "so not a an the very really too such gonna going sure right welcome cute hot pretty sweet beautiful "
    "funny smart mature lucky kidding joking still just always never like my mine ok okay only gorgeous "
    "amazing awesome crazy weird special different lying being getting doing coming talking making "
    "probably definitely old young in at on with from here there home online alone busy done good bad "
    "fine safe"
)
_QUESTION_START = _words(
    "what why how where when who which whose do does did are is am can could would will should have has "
    "was were wanna what's where's how's who's whats wheres hows whos"
)
# Real words with a doubled letter: "goooood" -> "good", not "god".
_DOUBLE_LETTER_WORDS = _words(
    "good cool too soon feel see been need all well sorry hello really little happy kiss miss boo zoo food "
    "school book look wee sleep free three tree yummy hmm mmm ahh ohh shh hell tell yell bell call fall "
    "ball tall small still will fill kill pill off stuff buff huff puff cheese keep deep sweet meet feet "
    "fee teen week weekend seen green queen bee agree too boom moon noon room zoom mood wood fool pool "
    "tool poop loop hoop scoop shoot boot root cuss fuss mess less bless dress guess yess add odd egg "
    "inn butt mutt letter better summer dinner funny bunny silly jelly belly worry hurry sorry carry "
    "marry pretty kitty daddy mommy buddy muddy puppy yaaas loool"
)

_CHAT_WORDS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "you": ("u", "u", "ya"),
        "are": ("r",),
        "your": ("ur",),
        "youre": ("ur", "u r"),
        "what": ("wat", "wut"),
        "whats": ("wats", "whats"),
        "because": ("cuz", "bc", "coz", "cause"),
        "please": ("plz", "pls"),
        "love": ("luv",),
        "tonight": ("2nite", "tonite"),
        "tomorrow": ("tmrw", "2moro", "tmr"),
        "today": ("2day",),
        "before": ("b4",),
        "later": ("l8r",),
        "great": ("gr8",),
        "thanks": ("thx", "ty"),
        "thank": ("thx",),
        "people": ("ppl",),
        "okay": ("ok", "k", "kk"),
        "ok": ("k", "kk", "ok"),
        "really": ("rly", "realy"),
        "why": ("y",),
        "picture": ("pic",),
        "pictures": ("pics", "pix"),
        "photo": ("pic",),
        "photos": ("pics",),
        "something": ("smth", "somethin"),
        "sorry": ("sry", "srry"),
        "about": ("abt", "bout"),
        "message": ("msg",),
        "text": ("txt",),
        "birthday": ("bday",),
        "probably": ("prolly", "prob"),
        "boyfriend": ("bf",),
        "girlfriend": ("gf",),
        "seriously": ("srsly",),
        "whatever": ("whatev",),
        "though": ("tho",),
        "through": ("thru",),
        "doing": ("doin",),
        "going": ("goin",),
        "nothing": ("nothin",),
        "good": ("gud", "good"),
        "see": ("c",),
        "be": ("b",),
        "and": ("n", "and"),
        "im": ("im", "i'm"),
        "dont": ("dont",),
        "cool": ("kool", "cool"),
        "yes": ("ya", "yea", "ye"),
        "yeah": ("ya", "yea", "ye"),
        "with": ("w", "wit"),
        "when": ("wen",),
        "should": ("shud",),
        "would": ("wud",),
        "could": ("cud",),
        "have": ("hav",),
        "maybe": ("mayb",),
        "someone": ("some1",),
        "anyone": ("any1",),
        "everyone": ("every1",),
        "forever": ("4ever",),
        "wait": ("w8",),
        "hate": ("h8",),
        "favorite": ("fav", "fave"),
        "favourite": ("fav", "fave"),
        "definitely": ("def",),
        "obviously": ("obv",),
        "minutes": ("mins",),
        "seconds": ("secs",),
        "questions": ("qs",),
        "question": ("q",),
        "instagram": ("insta", "ig"),
        "snapchat": ("snap", "sc"),
        "hello": ("hey", "heyy"),
        "hi": ("hii", "hiya"),
    }
)
_CHAT_PHRASES: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = tuple(
    (re.compile(rf"(?<!\w)(?:{pattern})(?!\w)"), choices)
    for pattern, choices in (
        (r"i do ?n[o']?t know", ("idk", "idk", "dunno")),
        (r"i do ?n[o']?t care", ("idc",)),
        (r"by the way", ("btw",)),
        (r"oh my (?:god|gosh)", ("omg",)),
        (r"to be honest", ("tbh",)),
        (r"right now", ("rn",)),
        (r"what are you doing", ("wyd", "wat r u doin")),
        (r"be right back", ("brb",)),
        (r"talk to you later", ("ttyl",)),
        (r"what about you", ("wbu",)),
        (r"how about you", ("hbu",)),
        (r"how are you", ("hru", "how r u")),
        (r"never mind", ("nvm",)),
        (r"in real life", ("irl",)),
        (r"i love you", ("ily", "i luv u")),
        (r"going to", ("gonna",)),
        (r"want to", ("wanna",)),
        (r"got to", ("gotta",)),
        (r"kind of", ("kinda",)),
        (r"sort of", ("sorta",)),
        (r"let me", ("lemme",)),
        (r"give me", ("gimme",)),
        (r"see you", ("cya", "c u", "see u")),
        (r"no problem", ("np",)),
        (r"not much", ("nm", "nm")),
        (r"what's up|whats up", ("sup", "wassup", "wyd")),
    )
)
_STRETCHABLE = _words("so no hi hey yes yay omg please cute ok lol what why wow ugh aw nice thanks sure")
_LAUGH_TAILS = ("lol", "lol", "lmao", "haha", "hahaha", "lolol", "xd", "lmfao")

_PLATFORMS = ("snap", "snapchat", "discord", "insta", "whatsapp", "telegram", "kik")
_MODERN_RULES: tuple[tuple[re.Pattern[str], tuple[str, ...], float], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), choices, probability)
    for pattern, choices, probability in (
        (
            r"(?<!\w)(?:do|d) (?:you|u|ya) (?:have|got|hav) (?:a |an )?(?:web ?cam|cam)(?!\w)",
            ("can we facetime", "can we video call", "do you have facetime", "can u facetime"),
            1.0,
        ),
        (r"(?<!\w)(?:yahoo|msn|windows live) messenger(?!\w)", _PLATFORMS, 1.0),
        # Not "my aim is to ...".
        (r"(?<!\w)(?:on|my|ur|your) (?:aim|aol|msn|yahoo|ym|y!m|icq)(?!\w)(?! (?:is|was) to\b)", (), 1.0),
        (r"(?<!\w)(?:aim|aol|yahoo|ym) (?:name|sn|screen ?name|account|id)(?!\w)", (), 1.0),
        (r"(?<!\w)(?:msn|icq|y!m)(?!\w)", _PLATFORMS, 1.0),
        (r"(?<!\w)im me(?!\w)", ("dm me", "snap me", "msg me on discord", "text me"), 1.0),
        (r"(?<!\w)send me an im(?!\w)", ("send me a dm", "dm me", "snap me"), 1.0),
        (r"(?<!\w)pm me(?!\w)", ("dm me",), 1.0),
        (r"(?<!\w)buddy ?lists?(?!\w)", ("friends list", "friend list"), 1.0),
        (r"(?<!\w)screen ?names?(?!\w)", ("username", "@", "snap"), 1.0),
        (
            r"(?<!\w)(?:whats|what's|wats|wat is|what is) (?:ur|your) sn(?!\w)",
            ("whats ur snap", "whats ur @"),
            1.0,
        ),
        (r"(?<!\w)myspace(?!\w)", ("insta", "tiktok", "instagram"), 1.0),
        (r"(?<!\w)(?:facebook|fb)(?!\w)", ("insta", "tiktok"), 0.5),
        (r"(?<!\w)cell ?phones?(?!\w)", ("phone",), 1.0),
        (r"(?<!\w)cell (?:number|#|no)(?!\w)", ("phone number", "number"), 1.0),
        (r"(?<!\w)(?:my|ur|your|a|the) cell(?!\w)", (), 1.0),
        (r"(?<!\w)chat ?rooms?(?!\w)", ("server", "group chat", "discord"), 1.0),
        (r"(?<!\w)web ?cams?(?!\w)", ("facetime", "video call", "camera"), 1.0),
        (r"(?<!\w)on cam(?!\w)", ("on facetime", "on video"), 0.6),
        (r"(?<!\w)cam(?!\w)", ("video call", "facetime"), 0.5),
        (r"(?<!\w)(?:ipod|mp3 player)(?!\w)", ("phone", "airpods"), 1.0),
        (r"(?<!\w)(?:digital camera|digicam)(?!\w)", ("phone camera",), 1.0),
    )
)
_EMOJI = ("😊", "😂", "🥺", "❤️", "😘", "👀", "🙈", "😭", "💀", "✨")
_FILLER_HEADS = ("ngl", "tbh", "lowkey", "ngl", "honestly")
_FILLER_TAILS = ("fr", "fr fr", "tbh", "ngl", "lowkey")


# ------------------------------------------------------------------------------------------------ helpers


def _map_chunks(text: str, transform: Callable[[str], str]) -> str:
    """Apply ``transform`` to the text between placeholders; placeholders pass through untouched."""
    parts = PLACEHOLDER_RE.split(text)
    return "".join(part if index % 2 else transform(part) for index, part in enumerate(parts))


def _keep_or(original: str, result: str) -> str:
    return result if result.strip() else original


def _match_case(source: str, target: str) -> str:
    if len(source) > 1 and source.isupper() and " " not in target:
        return target.upper()
    if source[:1].isupper():
        return target[:1].upper() + target[1:]
    return target


def _collapse_stretch(word: str) -> str:
    if not _STRETCH_RE.search(word):
        return word
    doubled = _STRETCH_RE.sub(r"\1\1", word)
    if doubled.lower() in _DOUBLE_LETTER_WORDS or doubled.lower() in _STANDARD_WORDS:
        return doubled
    return _STRETCH_RE.sub(r"\1", word)


def _next_word(words: Sequence[re.Match[str]], index: int, chunk: str) -> str:
    if index + 1 >= len(words):
        return ""
    following = words[index + 1]
    gap = chunk[words[index].end() : following.start()]
    return _collapse_stretch(following.group()).lower() if not gap.strip() else ""


def _standard_word(word: str, following: str, *, first: bool, shouting: bool) -> str:
    plain = _collapse_stretch(word)
    key = plain.lower().replace("’", "'")
    if shouting:
        # "OMG U R HERE": the whole message is in capitals, so is the rewrite.
        return _standard_word(plain.lower(), following, first=first, shouting=False).upper()
    if key in ("ur", "youre", "ure", "u're") and (following in _YOURE_NEXT or following.endswith("ing")):
        return _match_case(plain, "you're")
    if key == "im" and following == "me":
        return _match_case(plain, "message")  # AIM's "im me"
    if key == "ya" and (first or following in ("", "i", "im", "ok", "sure", "thats", "that's", "lol")):
        return _match_case(plain, "yeah")
    target = _STANDARD_WORDS.get(key)
    if target is None:
        return plain
    if key[:1] == "i" and target[:1] == "I":
        return target  # "i", "im", "i've": always a capital I
    return _match_case(plain, target)


def _shorten_laugh(match: re.Match[str]) -> str:
    laugh = match.group().lower()
    return "lol" if laugh.startswith("l") else laugh[:4]


def _standardise_chunk(chunk: str) -> str:
    chunk = _LAUGH_RE.sub(_shorten_laugh, chunk)
    chunk = _MIXED_MARKS_RE.sub("?!", chunk)
    chunk = _REPEATED_MARK_RE.sub(r"\1", chunk)
    chunk = _DOTS_RE.sub("...", chunk)
    words = list(_WORD_RE.finditer(chunk))
    if not words:
        return chunk
    letters = "".join(char for char in chunk if char.isascii() and char.isalpha())
    shouting = len(letters) >= 4 and letters.isupper()
    out: list[str] = []
    last = 0
    for index, match in enumerate(words):
        out.append(chunk[last : match.start()])
        first = not chunk[: match.start()].strip()
        following = _next_word(words, index, chunk)
        out.append(_standard_word(match.group(), following, first=first, shouting=shouting))
        last = match.end()
    out.append(chunk[last:])
    return _SENTENCE_START_RE.sub(lambda m: m.group(1) + m.group(2).upper(), "".join(out))


def _capitalise_first(text: str) -> str:
    parts = PLACEHOLDER_RE.split(text)
    for index, part in enumerate(parts):
        if index % 2:
            continue
        for position, char in enumerate(part):
            if char.isdigit():
                return "".join(parts)
            if char.isalpha():
                upper = char.upper()
                if char.islower() and len(upper) == 1:
                    parts[index] = part[:position] + upper + part[position + 1 :]
                return "".join(parts)
    return text


def _final_punctuation(text: str, rng: random.Random) -> str:
    stripped = text.rstrip()
    if not stripped or not (stripped[-1].isascii() and stripped[-1].isalnum()) or rng.random() >= 0.5:
        return text
    first = _WORD_RE.search(stripped)
    question = (first is not None and first.group().lower() in _QUESTION_START) or stripped.lower().endswith(
        ("about you", " right")
    )
    return stripped + ("?" if question else ".") + text[len(stripped) :]


# ------------------------------------------------------------------------------------------------- public


def standardise(text: str, rng: random.Random) -> str:
    """Rewrite chat-speak as standard English: "u r so cute" -> "You are so cute." (punctuation by rng).

    Maps chat words and abbreviations (u, ur, r, wat, idk, b4, 2nite...) with their case kept, collapses
    stretched letters ("sooooo" -> "so") and repeated "!!!"/"???", capitalises the first letter, "I" and each
    sentence, and adds a final full stop or question mark about half of the time.
    """
    result = _map_chunks(text, _standardise_chunk)
    result = _capitalise_first(result)
    result = _final_punctuation(result, rng)
    return _keep_or(text, result)


def chatify(text: str, rng: random.Random, *, intensity: float = 0.6) -> str:
    """Write ``text`` as chat-speak: lower case, no apostrophes, "you" -> "u" and so on with probability
    ``intensity`` per word, an occasional stretched word ("sooo") and laugh tail ("lol"), final full stop
    dropped."""

    def transform(chunk: str) -> str:
        chunk = chunk.lower().replace("’", "").replace("'", "")
        for pattern, choices in _CHAT_PHRASES:
            chunk = pattern.sub(_phrase_swap(choices, intensity, rng), chunk)
        if rng.random() < 0.5:
            chunk = chunk.replace(", ", " ")

        def word(match: re.Match[str]) -> str:
            token = match.group()
            choices = _CHAT_WORDS.get(token)
            if choices is not None and rng.random() < intensity:
                token = rng.choice(choices)
            if token in _STRETCHABLE and rng.random() < 0.08:
                token = token + token[-1] * rng.randint(2, 4)
            return token

        return _WORD_RE.sub(word, chunk)

    result = _map_chunks(text, transform).rstrip()
    while result.endswith(".") and rng.random() < 0.85:
        result = result[:-1].rstrip()
    if result.endswith("?") and rng.random() < 0.4:
        result = result.rstrip("?").rstrip()
    tail = _WORD_RE.findall(result[-12:])
    ends_plain = result[-1:].isascii() and not (tail and tail[-1].lower() in _LAUGH_TAILS)
    if ends_plain and rng.random() < 0.12:
        result = f"{result} {rng.choice(_LAUGH_TAILS)}"
    return _keep_or(text, result)


def modernise(text: str, rng: random.Random, *, extras: float = 1.0) -> str:
    """Swap dated platforms and devices for current ones ("add me on aim" -> "add me on snap", "do u have a
    webcam" -> "can we facetime", "cell" -> "phone", "myspace" -> "insta"); add an emoji tail or a filler
    ("ngl", "fr", "lowkey", "tbh") with low probability, scaled by ``extras`` (0 turns them off)."""

    def transform(chunk: str) -> str:
        for pattern, choices, probability in _MODERN_RULES:
            chunk = pattern.sub(_modern_swap(choices, probability, rng), chunk)
        return chunk

    result = _map_chunks(text, transform)
    if result.strip() and rng.random() < 0.06 * extras:
        if rng.random() < 0.5:
            result = _with_head(rng.choice(_FILLER_HEADS), result)
        else:
            result = f"{result.rstrip()} {rng.choice(_FILLER_TAILS)}"
    if result.strip() and rng.random() < 0.12 * extras:
        tail = rng.choice(_EMOJI)
        if rng.random() < 0.3:
            tail += rng.choice(_EMOJI)
        result = f"{result.rstrip()} {tail}"
    return _keep_or(text, result)


def _phrase_swap(
    choices: tuple[str, ...], probability: float, rng: random.Random
) -> Callable[[re.Match[str]], str]:
    def swap(match: re.Match[str]) -> str:
        return rng.choice(choices) if rng.random() < probability else match.group()

    return swap


def _with_head(head: str, text: str) -> str:
    """``head`` before ``text``, in sentence case if ``text`` was: "Ngl you're cute", not "ngl You're"."""
    first = _WORD_RE.match(text)
    if first is None or not text[:1].isupper():
        return f"{head} {text}"
    word = first.group()
    keep = word == "I" or word.startswith(("I'", "I’")) or (len(word) > 1 and word.isupper())
    return f"{head.capitalize()} {text if keep else text[:1].lower() + text[1:]}"


def _modern_swap(
    choices: tuple[str, ...], probability: float, rng: random.Random
) -> Callable[[re.Match[str]], str]:
    def swap(match: re.Match[str]) -> str:
        found = match.group()
        if rng.random() >= probability:
            return found
        if not choices:
            # "on aim" / "my cell" / "aim name": keep the other word, swap the platform or device.
            head, _, rest = found.partition(" ")
            if head.lower() in ("aim", "aol", "yahoo", "ym"):
                replacement = rng.choice(_PLATFORMS) + (" name" if rng.random() < 0.5 else " username")
                return _match_case(found, replacement)
            swap_to = "phone" if rest.lower() == "cell" else rng.choice(_PLATFORMS)
            if found.isupper():
                swap_to = swap_to.upper()
            elif rest[:1].isupper():
                swap_to = swap_to.capitalize()
            return f"{head} {swap_to}"
        replacement = rng.choice(choices)
        return _match_case(found, replacement) if found[:1].isupper() else replacement

    return swap
