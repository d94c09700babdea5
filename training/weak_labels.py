"""Weak signal labels for training the signal heads: regular expressions over message text, plus stage codes.

The signals explain an alert to a moderator ("asks the other person's age"); they are not the risk score. The
regexes are deliberately plain and high-precision; the learned heads trained on them (and on the ChatCoder-1
line codes and the ``grooming_stage_lines`` stages) generalise past them. ``SIGNALS`` fixes the order of the
model's ``signal_logits`` output.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Signal:
    name: str
    label: str
    patterns: tuple[str, ...]


_U = r"(?:you|u|ya|yu)"
_UR = r"(?:your|ur|yur|you'?re|youre|u r|ur)"
_PARENT = r"(?:mom|mum|mother|dad|father|parents?|folks|step ?dad|step ?mom)"

SIGNALS: tuple[Signal, ...] = (
    Signal(
        name="asks_age",
        label="asks the other person's age",
        patterns=(
            r"\ba/?s/?l\b",
            r"\bhow old\b",
            r"\bhow ol\b",
            rf"\b{_UR} age\b",
            r"\bwhat age\b",
            r"\bage\s*\?",
            r"\bwhat grade\b",
            r"\bwat grade\b",
            rf"\b(?:are|r) {_U} (?:1[0-9]|2[0-9])\s*\?",
            rf"\b{_UR} (?:1[0-9])\s*\?",
            rf"\bwhen(?:'s| is) {_UR} ?birthday\b",
        ),
    ),
    Signal(
        name="personal_info",
        label="asks for personal details (where they live, school, photos)",
        patterns=(
            rf"\bwhere (?:do|d) {_U} live\b",
            rf"\bwhere {_UR} from\b",
            rf"\bwhere (?:are|r) {_U} from\b",
            r"\bwh?at (?:state|city|town|school|area)\b",
            rf"\b{_UR} (?:address|real name|last name|school)\b",
            rf"\bwhat(?:'?s| is) {_UR} (?:name|real name|address)\b",
            r"\bsend (?:me )?(?:a |some |more )?(?:pic|pix|photo|picture)s?\b",
            r"\b(?:got|have|any) (?:a |any )?(?:pic|pix|photo|picture)s?\b",
            rf"\b{_UR} (?:pic|pix|photo|picture)s?\b",
            rf"\bwhat (?:do|d) {_U} look like\b",
            rf"\bdescribe {_UR}(?:self)?\b",
            rf"\bdo {_U} live with\b",
            rf"\bwhat(?:'?s| is) {_UR} (?:email|screen ?name)\b",
        ),
    ),
    Signal(
        name="compliments",
        label="flattery or compliments",
        patterns=(
            rf"\b{_UR} (?:so |very |really |soo+ |rly )?(?:cute|pretty|beautiful|hot|sexy|gorgeous|adorable|"
            r"sweet|mature|smart|special|perfect|amazing|lovely|cutie|hottie|sexi|kewt)\b",
            rf"\b{_U} (?:look|sound)s? (?:so |very |really )?"
            r"(?:cute|pretty|beautiful|hot|sexy|good|great|gorgeous)\b",
            r"\b(?:cutie|hottie|sweetie|gorgeous|beautiful)\b",
            r"\bmature for (?:your|ur|ya) age\b",
            rf"\b(?:love|like) {_UR} (?:smile|eyes|body|hair|voice|pic|style)\b",
            r"\bbet (?:you|u) (?:are|r|look) (?:cute|pretty|hot|beautiful)\b",
        ),
    ),
    Signal(
        name="secrecy",
        label="asks for secrecy or checks who is watching",
        patterns=(
            r"\b(?:don'?t|dont|do not|dnt|never) tell\b",
            r"\b(?:our|a) (?:little )?secret\b",
            r"\bkeep (?:it|this|that) (?:a )?(?:secret|between us|quiet|to (?:yourself|urself))\b",
            r"\bbetween (?:you and me|u and me|us)\b",
            r"\bdelete (?:the |this |these |those |all |ur |your |our |my )*"
            r"(?:messages?|msgs?|chats?|history|logs?|pics?|pictures?|texts?|emails?)\b",
            r"\b(?:clear|erase) (?:the |ur |your )?(?:history|logs?|chats?)\b",
            r"\b(?:nobody|no one|no1) (?:needs? to|has to|can|will|gotta) (?:know|find out)\b",
            rf"\b(?:don'?t|dont|do not) let {_UR} {_PARENT} (?:know|see|find out)\b",
            rf"\bif {_UR} {_PARENT} (?:finds?|found) out\b",
            rf"\b(?:are|r) {_U} (?:home )?alone\b",
            rf"\b(?:is|are|r) {_UR} {_PARENT} (?:home|there|around|awake|asleep|gone)\b",
            rf"\bwhen (?:does|do|will|is|are) {_UR} {_PARENT} "
            r"(?:leave|go|get home|come home|get back|gone)\b",
            rf"\b(?:are|r) {_U} (?:a )?(?:cop|police|undercover|fed)\b",
            r"\bget (?:me )?(?:in )?(?:trouble|arrested|busted|jail)\b",
        ),
    ),
    Signal(
        name="private_channel",
        label="moves to another app, phone or video",
        patterns=(
            r"\b(?:text|txt|call|phone|ring|msg|message|dm|email|e-mail|im) me\b",
            rf"\b(?:give|send|gimme) (?:me )?{_UR} (?:number|#|cell|phone|digits)\b",
            rf"\bwhat(?:'?s| is) {_UR} (?:number|#|cell|phone|digits)\b",
            r"\b(?:my|your|ur) (?:cell|number|phone number|cell number|#)\b",
            r"<phone>",
            r"\b(?:kik|snap ?chat|snap|whatsapp|whats app|skype|telegram|facetime|wickr|instagram|insta)\b",
            r"\b(?:web ?cam|cam2cam|cam to cam|video (?:call|chat)|on cam|ur cam|your cam|a cam)\b",
            r"\b(?:yahoo|msn|aim|ym) (?:id|name|messenger)\b",
            r"\badd me (?:on|to)\b",
            r"\bcall (?:you|u) (?:later|tonight|tomorrow|now)\b",
        ),
    ),
    Signal(
        name="sexual",
        label="sexual content",
        patterns=(
            r"\bsex(?:y|ual|ually)?\b",
            r"\b(?:wanna|want to|gonna|to|let me|can i|would|i'?d|i'?ll) (?:fuck|fuk|fuc|fck|screw|bang)\b",
            r"\b(?:fuck|fuk|fuc|fck)(?:ing|ed|in)? (?:me|her|him)\b",
            r"\bhorny\b",
            r"\b(?:naked|nude|nudes|undress)\b",
            r"\b(?:dick|cock|penis|pussy|vagina|clit|boobs?|tits?|titties|nipples?|nips)\b",
            r"\b(?:cum|cumming|orgasm|masturbat\w*|jerk off|jack off|finger (?:u|you|urself|yourself))\b",
            r"\b(?:blow ?job|bj|oral|69|lick|suck(?:ing)? (?:it|on|my|ur|your))\b",
            r"\b(?:virgin|condom|lingerie|thong|panties|bra|underwear)\b",
            r"\b(?:make out|makeout|french kiss)\b",
            r"\btouch (?:yourself|urself|u there|you there|me there)\b",
            r"\b(?:porn|erection|hard ?on|boner)\b",
        ),
    ),
    Signal(
        name="gifts_money",
        label="offers gifts or money",
        patterns=(
            rf"\b(?:buy|get|bring|send|give) {_U} (?:a |some |an )?(?:new |nice |little )?"
            r"(?:present|gift|phone|money|cash|clothes|shoes|something|anything|beer|candy|ipod|card|dress)\b",
            rf"\bbuy {_U}\b",
            rf"\bsend {_U} (?:money|cash|\$)",
            r"\bgift ?cards?\b",
            r"\b(?:pay|paypal|venmo|cash ?app|western union) (?:for|you|u)\b",
            r"\$\s?\d+",
            r"\b\d+ (?:bucks|dollars)\b",
            r"\b(?:a )?present for (?:you|u)\b",
            r"\bspoil (?:you|u)\b",
        ),
    ),
    Signal(
        name="meeting",
        label="proposes meeting in person",
        patterns=(
            rf"\bmeet (?:up|{_U}|me|irl|in person|somewhere)\b",
            r"\bmeet up\b",
            rf"\bcome (?:over|see {_U}|get {_U}|pick {_U}|to {_UR}|down|up there|visit)\b",
            rf"\bpick {_U} up\b",
            r"\bhang out\b",
            rf"\bsee {_U} (?:in person|irl|tomorrow|tonight|this weekend|on (?:sat|sun|fri)\w*|soon)\b",
            r"\b(?:hotel|motel)\b",
            r"\bwhere (?:can|should|could) (?:we|i) meet\b",
            r"\b(?:drive|come) (?:up|down|over) (?:there|to)\b",
            r"\b(?:ur|your|my) (?:place|house)\b",
            rf"\bwhen can (?:i|we) see {_U}\b",
            r"\b(?:can|could|should) (?:i|we) (?:come|meet)\b",
        ),
    ),
    Signal(
        name="isolation",
        label="builds trust or a special relationship",
        patterns=(
            rf"\b{_U} can tell me anything\b",
            r"\btrust me\b",
            rf"\b(?:do|can) {_U} trust me\b",
            rf"\b{_UR} {_PARENT} (?:don'?t|dont|do not|never|doesn'?t) (?:understand|get|care|listen)\b",
            r"\b(?:only|the only) one who (?:understands|gets|cares|loves)\b",
            r"\bi(?:'?ll| will) always be (?:there|here)\b",
            rf"\bi (?:love|luv|lov|miss) {_U}\b",
            r"\b(?:be|b) my (?:girl|gf|girlfriend|boyfriend|bf|baby)\b",
            r"\bage (?:is|iz) (?:just|only) a number\b",
            rf"\b{_UR} (?:my|mine) (?:girl|baby|princess|angel)\b",
            r"\bsoul ?mate\b",
            rf"\bno ?one (?:understands|loves|cares about) {_U} like\b",
            r"\b(?:special|close) (?:friend|friendship|relationship|bond)\b",
        ),
    ),
)

SIGNAL_NAMES: tuple[str, ...] = tuple(s.name for s in SIGNALS)

# ChatCoder-1 line codes (messages[].stage) -> signals.
CHATCODER_STAGE_SIGNALS: Mapping[str, tuple[str, ...]] = {
    "personal_information": ("personal_info",),
    "grooming": ("sexual",),
    "approach": ("meeting",),
}

# grooming_stage_lines stages -> signals. "friendship_forming" and "other" lines are mostly small talk
# ("what r u doing?"); they only get what the regexes find.
LINE_STAGE_SIGNALS: Mapping[str, tuple[str, ...]] = {
    "sexual": ("sexual",),
    "exclusivity": ("isolation",),
    "relationship_forming": ("isolation",),
    "conclusion": ("meeting",),
    "unnamed_6": ("secrecy",),  # risk assessment: parents, being caught
}


# training.modern_lines stages (messages[].stage on the adult's grooming lines) -> signals. "romance",
# "age_cue" and "reassure" lines get only what the regexes find: no one signal names them.
MODERN_STAGE_SIGNALS: Mapping[str, tuple[str, ...]] = {
    "age": ("asks_age",),
    "flattery": ("compliments",),
    "special": ("isolation",),
    "isolation": ("isolation",),
    "secrecy": ("secrecy",),
    "platform": ("private_channel",),
    "gifts": ("gifts_money",),
    "photos": ("personal_info",),
    "meeting": ("meeting",),
}


@dataclass(frozen=True, slots=True)
class WeakLabeler:
    """Compiled patterns; ``labels(text)`` returns one 0/1 per signal in ``SIGNALS`` order."""

    compiled: tuple[re.Pattern[str], ...]

    @classmethod
    def default(cls) -> WeakLabeler:
        return cls(
            tuple(re.compile("|".join(f"(?:{p})" for p in s.patterns), re.IGNORECASE) for s in SIGNALS)
        )

    def labels(self, text: str) -> tuple[int, ...]:
        return tuple(1 if pattern.search(text) else 0 for pattern in self.compiled)

    def with_stage(
        self, text: str, stage: str | None, mapping: Mapping[str, tuple[str, ...]]
    ) -> tuple[int, ...]:
        """Regex labels, plus the signals a stage code maps to."""
        labels = list(self.labels(text))
        for name in mapping.get(stage or "", ()):
            labels[SIGNAL_NAMES.index(name)] = 1
        return tuple(labels)
