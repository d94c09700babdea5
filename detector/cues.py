"""Cues read from a message's text, for the pair model: who says they are a child, who an adult, and (from
``behaviour_v3``) which of grooming's steps a message asks for.

Grooming is an adult-minor pattern, and the sentence encoder hardly tells "im 13" from "im 23": to it both
are a person giving an age. These cues say it outright, as 0/1 features per message that the GRU pair model
reads beside the encoder's. A model names the version it was trained on (metadata
``pair_model.text_cues``); each version's rules stay here unchanged, so an older model keeps its features.

``age_v1`` (2026.12.6), five cues:

- ``minor_age``: the writer gives an age of 8 to 17 ("im 13", "13 yo", "14/f", "just turned 12", or a reply
  that is only the number, as in an answer to "how old r u");
- ``adult_age``: the same with 18 to 79;
- ``school``: school life (a grade, middle school, homework, recess, "my teacher");
- ``adult_life``: adult life (a wife or husband, one's own children, a boss, a job, a mortgage);
- ``youth_remark``: the other's youth remarked on ("mature for your age", "ur what 12?", "Fourteen? ...").

``age_v2`` reads the same five more widely (an a/s/l answer inside a sentence, "in my 30s", "I'm an adult",
a parent's rules at home, shifts and clients, "you're so young") and adds a sixth:

- ``adults_remark``: both said to be adults ("we're both adults", "consenting adults", "you're an adult").

``behaviour_v3`` reads age_v2's six and five of grooming's steps, in chat-speak and standard English alike:

- ``secrecy``: keeping the talk from others ("don't tell your mom", "you don't need to mention it to your
  parents", "just between us", "delete our chat");
- ``private_channel``: moving somewhere private ("do you have snap?", "add me on telegram", "somewhere more
  private", "send me your number");
- ``gift``: an offer of gifts or money ("want some robux?", "I could give you my old laptop", "a gift card");
- ``meeting``: meeting in person ("I can pick you up", "meet up irl", "near your school", "where do you
  live");
- ``photo``: asking for pictures or a camera ("send me a pic", "what are you wearing", "turn on your cam").

``behaviour_v4`` reads the same eleven, five of them more widely, where a child or a groomer says them
indirectly (what v3 read, v4 still reads):

- ``school`` also reads a parent's watch over the writer ("can't my mom's home", "my mom blocked pix", "I'm w
  my mom", spring break, a curfew);
- ``youth_remark`` also reads the age gap remarked on ("you like older guys?", "I'm too old for you", "age
  is just a number", "guys my age");
- ``secrecy`` also reads checking for that watch ("is your mom home?", "are you home alone?", "you're
  sneaky", "sneak out");
- ``meeting`` and ``photo`` read slow romance and pressure in plain words ("I wish you were here", "if I
  could get there", "I want to see you", "send more", "email me one").

``behaviour_v5`` reads v4's eleven but says whose age a child's age or school is: ``minor_age`` and
``school`` no longer fire on a message that speaks of the *other's* age or school ("Seventh grade and already
nesting loops", "12 and already trading", "are you in the middle school group?", "what grade are you in",
"I could pick you up after school", "mature for 13"), unless the writer also gives their own ("im 13 u?").
Groomers echo the child's age and grade all the time, and a cue that read that echo as the adult's own age
made them look like children.

``behaviour_v6`` reads v5's eleven but also says whose age an age said of a third person is: ``minor_age``,
``adult_age`` and ``school`` no longer fire on "I have a thirteen year old at home", "what kind of poker
does a 13 yr old play?" or "my fourteen year old son" (unless the writer gives their own age: "im a 13 year
old girl"), and ``adult_life`` reads a parent's own child by age ("my 13 year old", "I've got a ten year
old", "my son just turned 12"). Parents speak of their children by age, and groomers of the child they
talk to; both read as children to a cue that took every age for the writer's.

``behaviour_v7`` reads "let" as secrecy only where someone would know, see or find out ("dont let ur mom
see"; no longer "dont let anyone take storm's mid"). ``behaviour_v8`` is v7 and a twelfth cue,
``shared_family``: family the writer shares with the other ("our mom", a bare "dont tell mom", "ive known u ur
whole life", "coming home for thanksgiving"). ``behaviour_v9`` is v8 and a thirteenth, ``carer_in``: the
writer keeps a parent, a carer or the open group in ("I'll let your mum know", "ask your dad first", "is
that ok with your parents?", "parents are welcome", "keep it in the channel", "I can't drive anyone on my
own"), unless they keep them out in the same breath ("no need to bother your mum").

Each is as common between friends, family and adults as in grooming ("don't tell mom about the party", "dm me
your number"): the cue only says the step was asked for; the model learns from both kinds of chat when it
matters (between an adult and a child, beside the other steps).

They are cues, not facts: the model weighs them with everything else, for both sides of a pair. The text is
the model text (``vigil.bots.core.normalise.model_text``) in serving and in training alike, so one set of
rules computes them everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["CUE_VERSIONS", "LATEST_CUES", "Alternation", "TextCues", "UnknownCuesError", "text_cues"]

_MINOR = r"(?:1[0-7]|[89]|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen)"
_ADULT = r"(?:1[89]|[2-7][0-9])"
# "im 13 minutes away", "i'm 20 mins late", "13 dollars": a number that is not an age.
_NOT_AGE = (
    r"(?!\s*(?:min|mins|minute|minutes|hr|hrs|hour|hours|sec|secs|seconds|days?|weeks?|months?|dollars?|"
    r"bucks|usd|%|k\b|am\b|pm\b|o'?clock|:\d|\.\d|,\d|\d))"
)
_SELF = r"(?:i'?m|im|i am|am|turned|turning|just turned|gonna be|going to be|will be|i'?ll be|ill be)"
_GENDER = r"(?:f|m|female|male|girl|boy)"


def _age_alternatives(age: str) -> tuple[str, ...]:
    return (
        rf"\b{_SELF}\s+(?:only\s+|just\s+|almost\s+|nearly\s+)?{age}\b{_NOT_AGE}",
        rf"\b{age}\s*(?:yo|y/o|y\.o\.?|yrs?(?: old)?|years?(?: old)?|year old)\b",
        # a/s/l answers: "13/f", "14 f ca", "13, m"
        rf"^\s*(?:asl\W*)?{age}\s*(?:/|,|\s)\s*{_GENDER}\b",
        # the number first (an answer to "how old are you"), alone or with a short tail
        rf"^\s*(?:i'?m\s+|im\s+)?{age}\s*(?:$|\.(?!\d)|[!,]|\?\s*$|\s+(?:lol|lmao|haha|hbu|wbu|u\b|you\b|and\b|but\b|"
        rf"turning|ill\b|i'?ll\b|im\b|i'?m\b|just\b|almost\b|rn\b|now\b|y\b|yrs\b|why\b))",
    )


_GRADE = r"(?:(?:[5-9]|1[0-2])(?:st|nd|rd|th)|fifth|sixth|seventh|eighth|ninth|tenth)"
_SCHOOL_V1 = (
    rf"^\s*{_GRADE}\b(?:\s*grade)?\s*(?:$|[.!?,]|\s)|\bi'?m\s+in\s+{_GRADE}\b|\byear\s+(?:[5-9]|1[01])\b|\bfreshman\b|"
    rf"\b(?:{_GRADE}\s+grade|grade\s+(?:[5-9]|1[0-2])\b|[5-9]th\s+grader|middle\s+school|"
    r"junior\s+high|jr\.?\s+high|homework|hw\b|recess|my\s+teacher|our\s+teacher|homeroom|school\s+bus|"
    r"after\s+school|before\s+school|at\s+school|my\s+class\b|in\s+class\b|report\s+card|"
    r"my\s+(?:mom|mum|dad|parents)\s+(?:says?|said|won'?t|wont|would|will|is|are|took|takes|made|makes|checks?|"
    r"let|lets|grounded))"
)
_YOUTH_REMARK_V1 = (
    rf"\b(?:for|at|kids|people|others|girls|boys|most)\s+(?:of\s+)?(?:ur|your|youre|you're)\s+age\b|\bmature\s+for\b|"
    rf"\b(?:ur|your|you'?re|youre|u r)\s+(?:what|only|just)\s+{_MINOR}\b|"
    rf"^\s*{_MINOR}\s*(?:\?|!|\s+and\s+(?:already|u|you))|"
    rf"\bso\s+young\b|\bolder\s+than\s+(?:ur|your)\s+age\b"
)
_ADULT_LIFE_V1 = (
    r"\b(?:my\s+(?:wife|husband|ex-?wife|ex-?husband|kids|children|son|daughter|boss|coworkers?|co-workers?|"
    r"employees?|mortgage|landlord|rent|salary|pension|divorce)|at\s+(?:work|the\s+office)|my\s+job|"
    r"from\s+work|after\s+work|off\s+work|divorced|married\s+for|paying\s+rent|my\s+(?:apartment|flat)\b)"
)

# age_v2 widens each cue; what v1 read, v2 still reads.
_DECADE = r"(?:early\s+|mid\s+|late\s+)?(?:[2-7]0'?s|twenties|thirties|forties|fifties|sixties|seventies)"
_MINOR_V2_MORE = (
    # an a/s/l answer inside a sentence ("lol 14/f/mi"), the slash keeps "13 m away" out
    rf"\b{_MINOR}\s*/\s*{_GENDER}\b",
    rf"\b{_MINOR}\s+like\s+(?:u|you)\b",
    r"\b(?:i'?m|im|i am)\s+(?:a\s+|still\s+a\s+)?(?:minor|underage)\b",
)
_ADULT_V2_MORE = (
    rf"\b{_ADULT}\s*/\s*{_GENDER}\b",
    rf"\bin\s+my\s+{_DECADE}\b",
    r"\b(?:i'?m|im|i am)\s+(?:an\s+|a\s+)?(?:adult|grown\s+(?:man|woman|adult|up)|grown-up|grownup)\b",
)
_SCHOOL_V2_MORE = (
    r"\bmy\s+(?:mom|mum|dad|parents|mother|father|stepdad|stepmom)\s+(?:keeps|doesn'?t\s+let|dont\s+let|"
    r"don'?t\s+let|never\s+lets|found|caught|saw|reads|read|would\s+kill)|"
    r"\b(?:grounded|bedtime|sleepover|sixth\s+form|gcses?|in\s+high\s+school|my\s+school|our\s+school|"
    r"school\s+tomorrow|school\s+today|lunch\s+break|my\s+locker|pe\s+class|detention)\b"
)
_ADULT_LIFE_V2_MORE = (
    r"\bmy\s+(?:shift|manager|clients?|customers?|colleagues?|office|commute|taxes|lease|grandkids|"
    r"grandchildren|stepson|stepdaughter|mortgage|paycheck|payslip)|\b(?:got\s+paid|payday|"
    r"work\s+tomorrow|work\s+today|(?:long|night|early|late|double)\s+shift|my\s+work\b|at\s+my\s+work|business\s+trip|my\s+(?:truck|car)\b)"
)
_YOUTH_REMARK_V2_MORE = (
    r"\b(?:you'?re|youre|ur|u\s+r|you\s+are)\s+(?:so\s+|too\s+|very\s+|still\s+|just\s+|only\s+)?(?:young|a\s+kid|"
    r"a\s+child|underage|a\s+minor|a\s+baby)\b|\btoo\s+young\b|\bjailbait\b"
)
_ADULTS_REMARK = (
    r"\b(?:we'?re|we\s+are|both)\s+(?:both\s+)?(?:adults|grown(?:\s+|-)?ups)\b|\bconsenting\s+adults\b|"
    r"\b(?:you'?re|youre|ur|you\s+are)\s+(?:an\s+)?adult\b|\bboth\s+over\s+(?:18|21)\b"
)


# behaviour_v3: grooming's steps. "'?" also takes the typographic apostrophe, which model text keeps.
_Q = r"['\u2019]?"
_YOU = r"(?:you|u|ya|yu)"
_YOUR = rf"(?:your|ur|yr|you{_Q}re)"
_KIN = (
    r"(?:mom|mum|mommy|mother|dad|daddy|father|parents|folks|family|sister|brother|teacher|coach|anyone|anybody|"
    r"any\s*one|no\s*one|nobody|friends|bff|grandma|grandpa|aunt|uncle|guardian|step\s*(?:mom|dad))"
)
_APPS = (
    r"(?:snap(?:chat)?|sc|telegram|tg|kik|whats\s*app|whatsapp|signal|insta(?:gram)?|ig|wickr|session|wechat|"
    r"line|skype|facetime|ome\s*tv|discord|tiktok|messenger|text(?:ing)?)"
)
_SECRECY = (
    rf"\b(?:don{_Q}t|dont|do\s+not|never|no\s+need\s+to|(?:you|u)\s+don{_Q}t\s+(?:need|have)\s+to|don{_Q}t\s+need\s+to|"
    rf"dont\s+need\s+to|shouldn{_Q}t|better\s+not|not\s+supposed\s+to|won{_Q}t|wont|can{_Q}t|cant)\s+(?:ever\s+)?"
    rf"(?:tell|mention|show|say\s+anything|talk\s+about\s+(?:this|it|us|me)|let)\b[^.?!]{{0,40}}?\b{_YOUR}?\s*{_KIN}\b|"
    rf"\bbetween\s+(?:us|{_YOU}\s+(?:and|n|&)\s+me|the\s+two\s+of\s+us)\b|\bour\s+(?:little\s+)?secret\b|"
    rf"\b(?:keep|keeping)\s+(?:it|this|that|us|these|our\s+\w+)\s+(?:a\s+)?(?:secret|private|quiet|on\s+the\s+down\s*low|"
    rf"between)|\bon\s+the\s+(?:dl|down\s*low)\b|\b(?:can|could)\s+{_YOU}\s+keep\s+a\s+secret\b|"
    rf"\b(?:no\s*one|nobody)\s+(?:needs|has|have|gotta|will|would|ever)\s+(?:to\s+)?(?:know|find\s+out)\b|"
    rf"\b(?:delete|clear|wipe|erase|unsend)\s+(?:the|our|this|these|those|{_YOUR}|all|it|them|every)?\s*"
    rf"(?:chats?|messages?|msgs?|texts?|convos?|conversations?|dms?|history|pics?|photos?)\b"
)
_PRIVATE_CHANNEL = (
    rf"\b(?:do|d|did)\s+{_YOU}\s+(?:have|got|use)\s+(?:an?\s+)?{_APPS}\b|\b(?:got|have|u\s+on|you\s+on|on)\s+{_APPS}\s*\?|"
    rf"\b(?:add|hmu|text|message|msg|dm|find|follow|call)\s+me\s+(?:on|at|over)\s+{_APPS}\b|"
    rf"\b(?:move|switch|go|talk|chat|continue)\s+(?:this\s+|it\s+)?(?:to|on|over\s+to)\s+{_APPS}\b|"
    rf"\b(?:download|install|get|make)\s+(?:an?\s+)?{_APPS}\b|"
    rf"\b(?:somewhere|some\s*place|someplace)\s+(?:more\s+)?private\b|\bprivate(?:ly)?\s+(?:chat|talk|dm|message)|"
    rf"\b(?:{_YOUR}|my)\s+(?:phone\s+)?(?:number|#|digits|cell)\b|\b(?:{_YOUR}|my)\s+(?:snap|sc|insta|ig|kik|telegram)\s*"
    rf"(?:name|username|user|handle|@)?\b"
)
# What "I'll send you the ..." hands over when it is no gift.
_NOT_A_GIFT = (
    r"(?:number|address|link|invite|location|message|text|dm|email|code|file|screenshot|list|details)"
)
_GIFT = (
    r"\b(?:gift\s*cards?|robux|v-?bucks|vbucks|nitro|steam\s+(?:card|credit|gift)|battle\s*pass|apple\s+pay|"
    r"cash\s*app|venmo|paypal)\b|"
    rf"\bi{_Q}?(?:ll|l|m\s+gonna|m\s+going\s+to|\s+will|\s+can|\s+could|\s+would)\s+(?:buy|get|send|give|pay\s+for|"
    rf"gift|order)\s+{_YOU}\b(?!\s+(?:my|the|a|an)\s+{_NOT_A_GIFT}\b)|"
    rf"\b(?:buy|get|give)\s+{_YOU}\s+(?:a|an|some|one|my|the|new|free)\b(?!\s+{_NOT_A_GIFT}\b)|"
    rf"\b(?:want|wanna|would\s+{_YOU}\s+like)\s+(?:some|a|an|my|free)\s+\w+\s*\?|\bfree\s+\w+\s*\?"
)
_MEETING = (
    rf"\bpick\s+{_YOU}\s+up\b|\b(?:meet|hang\s*out|chill)\s+(?:up\s+)?(?:irl|in\s+person|in\s+real\s+life|for\s+real)\b|"
    rf"\b(?:meet|see)\s+{_YOU}\s+(?:at|after|before|near|outside|tomorrow|this|on|sometime|somewhere|in\s+person|irl)\b|"
    rf"\bmeet\s+up\b|\bcome\s+(?:over|to\s+my|see\s+me|pick|get\s+{_YOU})\b|\bdrop\s+(?:\w+\s+){{0,2}}off\b|"
    rf"\b(?:near|outside|by|behind|at)\s+{_YOUR}\s+(?:school|house|home|place|bus\s+stop)\b|"
    rf"\b{_YOUR}\s+(?:home\s+)?address\b|\bwhere\s+(?:do|d)\s+{_YOU}\s+live\b|\bwhat\s+school\b|"
    rf"\b(?:give|drive|take)\s+{_YOU}\s+(?:a\s+ride|home)\b|\bsleep\s*over\s+at\s+my\b|"
    r"\b(?:to|at|over\s+to)\s+my\s+(?:place|house|apartment|apt|hotel|room|car)\b"
)
_PHOTO = (
    rf"\b(?:send|show|snap|post)\s+(?:me\s+)?(?:a\s+|some\s+|more\s+|another\s+|{_YOUR}\s+)?(?:pics?|pix|picture|photos?|"
    rf"selfies?|nudes?|vids?|videos?)\b|\b(?:pics?|pix|photos?|pictures?)\s+of\s+{_YOU}\b|"
    rf"\bwhat\s+(?:are|r)\s+{_YOU}\s+wearing\b|\bwyw\b|\b(?:turn\s+on|open|on)\s+{_YOUR}?\s*(?:cam|camera|webcam)\b|"
    rf"\bon\s+cam\b|\bvideo\s*call\b|\bfacetime\s+me\b|\bsee\s+(?:what\s+)?{_YOU}\s+look\s+like\b"
)


# behaviour_v4 widens five of v3's cues where a child and a groomer say them indirectly; what v3 read, v4
# still reads. A parent's watch over the writer ("can't my mom's home", "my mom blocked pix") says a child as
# plainly as a grade does; so does checking for that watch ("is your mom home?", "you're sneaky").
_PARENT = r"(?:mom|mum|mommy|mother|dad|daddy|father|parents|stepdad|stepmom|step\s*mom|step\s*dad|mama)"
_SCHOOL_V4_MORE = (
    rf"\bmy\s+{_PARENT}{_Q}?s?\s+(?:is\s+|r\s+|are\s+|just\s+|still\s+)?(?:home|here|around|in\s+(?:the|my)\s+room|"
    rf"next\s+to\s+me|watching|on\s+my\s+back|blocked|takes?\s+(?:away|my)|took\s+(?:away|my)|got\s+(?:pissed|mad)|"
    rf"(?:is|was)\s+(?:pissed|mad)|checks?|check(?:ing|ed)|(?:isn{_Q}t|isnt|is\s+not|not)\s+(?:home|here|around)|"
    rf"(?:gets|will\s+get|would\s+get)\s+(?:home|mad)|wakes?\s+up|bossing|yell(?:s|ing|ed)?|needs\s+me|calling\s+me|"
    rf"says?\s+i\s+(?:have|gotta|got|need)\s+to)|"
    rf"\b(?:can{_Q}?t|cant|cannot)\W{{0,3}}(?:cuz\s+|because\s+|bc\s+)?my\s+{_PARENT}|"
    rf"\b(?:i{_Q}?m|im|i\s+am|out|stuck)\s+(?:with|w/?|wit)\s+my\s+{_PARENT}\b|\bwhen\s+my\s+{_PARENT}\s+(?:leaves|goes|is\s+gone|isn{_Q}t|isnt|falls)|"
    r"\b(?:spring|summer|winter|christmas)\s+break\b|\bcurfew\b|\b(?:took|take|takes)\s+my\s+phone\b|"
    r"\bphone\s+(?:got\s+)?taken\b"
)
# The age gap remarked on, by either side: "you like older guys?", "I'm too old for you", "age is just a
# number".
_YOUTH_REMARK_V4_MORE = (
    rf"\b(?:like|into|date|dating|with|prefer|want)\s+(?:an?\s+)?older\s+(?:guys?|men|man|boys?|girls?|women|woman|"
    rf"people|dudes?|ones?|ppl)\b|\b(?:like|into|prefer)\s+(?:them\s+)?(?:older|younger)\s*(?:\?|$|[.!]|lol|ones?)|"
    rf"\bi\s+like\s+(?:them\s+|em\s+|it\s+)?younger\b|\b(?:too|so\s+much)\s+old(?:er)?\s+for\s+(?:you|u|ya)\b|"
    rf"\bage\s+(?:is\s+(?:just\s+|only\s+)?a\s+number|(?:doesn{_Q}?t|dont|does\s+not|don{_Q}?t)\s+(?:matter|bother))|"
    rf"\b(?:my|our|the)\s+age\s+(?:bother|difference|gap|scare|freak|a\s+problem|an\s+issue)|"
    rf"\bage\s+(?:difference|gap)\b|\b(?:guys|boys|girls|kids|people)\s+my\s+age\b|"
    rf"\b(?:years?|yrs?)\s+(?:on|older\s+than)\s+(?:you|u|ya)\b|\bolder\s+(?:guys?|men|man)\s*(?:\?|$)"
)
_SECRECY_V4_MORE = (
    rf"\b(?:is|are|r)\s+{_YOUR}\s+(?:{_PARENT}|parents|folks|family|sister|brother)\s+(?:home|there|around|awake|up|"
    rf"gone|asleep|out|in\s+the\s+room|watching)\b|\b(?:are|r)\s+{_YOU}\s+(?:home\s+)?alone\b|"
    rf"\b(?:is\s+)?any\s*(?:one|body)\s+(?:else\s+)?(?:home|there|around|with\s+{_YOU}|watching)\s*\?|"
    rf"\b(?:you{_Q}re|youre|ur|u\s+r|you\s+are)\s+(?:so\s+)?sneaky\b|\bsneak\s+out\b|"
    rf"\b(?:she|he|they)\s+(?:won{_Q}t|wont|will\s+never|never\s+will)\s+(?:find\s+out|know|see|notice)\b"
)
_MEETING_V4_MORE = (
    rf"\bcome\s+(?:visit|see\s+{_YOU}|over\s+here)\b|\bcome\s+here\s*(?:$|[.!?]|lol|now|babe|baby|please|pl[sz]|then)|\b(?:coming|comin|come)\s+over\b|"
    rf"\b(?:wanna|want\s+to|want\s+2|would\s+{_YOU}\s+like\s+to)\s+(?:hang(?:\s*out)?|chill|meet)\b(?!\s*glid)|"
    rf"\bi\s+(?:wanna|want\s+to|want\s+2|would\s+love\s+to|can{_Q}?t\s+wait\s+to|need\s+to)\s+(?:see|meet|hold|hug|kiss)\s+{_YOU}\b|"
    rf"\b(?:(?:can|could)\s+{_YOU}|{_YOU}\s+(?:can|could))\s+(?:get|sneak|come)\s+out\b|\bwish\s+{_YOU}\s+(?:were|was)\s+here\b|"
    rf"\bif\s+i\s+could\s+(?:get|come|drive)\s+(?:there|to\s+{_YOU}|over)\b|\bi\s+(?:can|could|will|{_Q}ll|ll)\s+"
    rf"(?:come|drive|get)\s+(?:there|to\s+{_YOU}|to\s+{_YOUR}|down\s+to|up\s+to|over)\b|"
    rf"\bhow\s+far\s+(?:are|r|is)\s+(?:{_YOU}|{_YOUR}\s+(?:house|place|town|school))\b|"
    rf"\b(?:meet|see)\s+{_YOU}\s+(?:tonight|this\s+weekend|when)\b"
)
_PHOTO_V4_MORE = (
    rf"\b(?:send|show)\s+(?:me\s+)?(?:a\s+couple|a\s+few|another|more|some\s+more|a\s+new\s+one)\s*"
    rf"(?:$|[.!?]|lol|pl[sz]|please|sexy|babe|baby|of\s+{_YOU}|then|now|ok)|"
    rf"\b(?:send|show)\s+(?:me\s+)?(?:a\s+couple(?:\s+of)?|a\s+few|some\s+more)\s+(?:pics?|pix|pictures?|photos?|"
    rf"selfies?)\b|"
    rf"\b(?:email|text|snap)\s+me\s+(?:one|another|a\s+|some\s+|{_YOUR}\s+)?(?:pics?|pix|picture|photos?|selfies?|$)|"
    rf"\b(?:see|show\s+me)\s+(?:that|{_YOUR}|some|more\s+of\s+that)\s+(?:booty|butt|ass|body|boobs|tits|chest|legs)\b|"
    rf"\b(?:wanna|want\s+to|want\s+2|let\s+me|lemme|gotta|got\s+to)\s+see\s+(?:urs|yours|ur\s+body|your\s+body|more)\b|"
    rf"\b(?:pics?|pix|photos?|pictures?|selfies?)\s*(?:in|with(?:out)?|\.\.+)\s*(?:ur|your|a|the|just|only|no|bent)\b"
)


# behaviour_v5: the other's age or school spoken of ("Seventh grade and already...", "are you in middle
# school?", "pick you up after school", "mature for 13"): an echo, not the writer's own age.
_AGE_WORD = (
    rf"(?:\b{_MINOR}\b|{_GRADE}(?:\s+grade)?|\bgrade\s+(?:[5-9]|1[0-2])\b|\byear\s+(?:[5-9]|1[01])\b|"
    r"\b[5-9]th\s+graders?\b|\bmiddle\s+school|\bhigh\s+school|\bjunior\s+high|\bfreshman)"
)
_ECHO = (
    # "are you in middle school?", "you're what, 12?", "your 7th grade teacher"
    rf"\b(?:are\s+{_YOU}|r\s+{_YOU}|{_YOU}{_Q}re|youre|u\s+r|{_YOU}\s+are|{_YOUR})\b[^.!?]{{0,30}}?{_AGE_WORD}|"
    # "Seventh grade and already...", "12 and already trading", "6th?? u play like a high schooler"
    rf"^\W*{_AGE_WORD}\s*(?:\?|and\s+(?:{_YOU}|{_YOUR})\b)|{_AGE_WORD}\s*,?\s*(?:and\s+)?already\b|"
    rf"\b(?:what|which)\s+(?:grade|year|school|class)\b|"
    rf"\b(?:for|than)\s+(?:a\s+|an\s+|most\s+|other\s+|the\s+other\s+)?{_AGE_WORD}|"
    rf"\b(?:{_YOU}|{_YOUR})\s+(?:seem|look|sound|type|play|write|act)\b[^.!?]{{0,30}}?{_AGE_WORD}|"
    rf"\bpick\s+{_YOU}\s+up\b[^.!?]{{0,20}}?\bschool\b|\b{_YOU}\s+(?:after|before)\s+school\b|\b(?:after|before|from|near|outside|at)\s+{_YOUR}\s+school\b|"
    rf"\b(?:how{_Q}?s|hows|how\s+is|how{_Q}?re|how\s+are)\s+(?:{_YOUR}\s+)?(?:school|{_AGE_WORD})"
)
# ...unless the writer also gives their own ("im 13 u?", "I'm in 7th grade, are you?").
_OWN_AGE = rf"\b(?:i{_Q}?m|im|i\s+am)\s+(?:in\s+|only\s+|just\s+|almost\s+|still\s+in\s+)?(?:{_AGE_WORD})"
_ECHO_UNLESS_OWN = rf"^(?!.*{_OWN_AGE})(?:.*?)(?:{_ECHO})"

# behaviour_v6: an age said of a third person ("I have a thirteen year old at home", "what does a 13 yr old
# like", "my fourteen year old son") is no age of the writer either; said of the writer's own child ("my 13
# year old", "my son just turned 12") it is adult life.
_ANY_AGE = rf"(?:{_MINOR}|{_ADULT}|thirty|forty|fifty|sixty)"
_YEARS_OLD = r"(?:\s*-\s*|\s+)(?:years?|yrs?)(?:\s*-\s*|\s+)old"
_KID_WORD = (
    r"(?:son|daughter|kids?|child|children|boy|girl|brother|sister|nephew|niece|cousin|stepson|stepdaughter)"
)
_THIRD_AGE = (
    rf"\b(?:a|an|my|his|her|our|their|the|your|ur|yr|this|that|one|two|three|four|five|some|any|little)\s+"
    rf"(?:little\s+|young\s+|old\s+)?{_ANY_AGE}{_YEARS_OLD}|"
    rf"\b{_ANY_AGE}\s*(?:yo|y/o|{_YEARS_OLD})\s+{_KID_WORD}s?\b|"
    rf"\b(?:my|his|her|their|our)\s+{_KID_WORD}\s+(?:is|just\s+turned|turned|turns|will\s+be)\s+{_ANY_AGE}\b"
)
# ...unless the writer gives their own: "I'm a 13 year old girl", "im just a 13 yo", "I'm 14".
_OWN_THIRD = (
    rf"\b(?:i{_Q}?m|im|i\s+am)\s+(?:just\s+|only\s+|still\s+|like\s+|really\s+|actually\s+)?"
    rf"(?:a|an)\s+{_ANY_AGE}\b"
)
_ECHO_OR_THIRD_UNLESS_OWN = rf"^(?!.*(?:{_OWN_AGE}|{_OWN_THIRD}))(?:.*?)(?:{_ECHO}|{_THIRD_AGE})"
_THIRD_UNLESS_OWN = (
    rf"^(?!.*(?:{_OWN_THIRD}|\b(?:i{_Q}?m|im|i\s+am)\s+(?:only\s+|just\s+|almost\s+)?{_ADULT}\b))"
    rf"(?:.*?)(?:{_THIRD_AGE})"
)
_ADULT_LIFE_V6_MORE = (
    rf"\b(?:my|our)\s+(?:little\s+|oldest\s+|youngest\s+)?{_ANY_AGE}{_YEARS_OLD}|"
    rf"\b(?:i\s+have|i\s+got|i\s+have\s+got|i{_Q}ve\s+got|i{_Q}ve)\s+(?:just\s+)?(?:a|an|one|two|three)\s+(?:little\s+)?{_MINOR}{_YEARS_OLD}|"
    rf"\bmy\s+(?:son|daughter|kids?|oldest|youngest|stepson|stepdaughter)\s+(?:is|just\s+turned|turned|turns|will\s+be)\s+{_ANY_AGE}\b"
)

# "Don't let anyone take your mid" is no secret: from behaviour_v7 "let" is secrecy only where someone would
# know, see or find out ("dont let ur mom see", "never let anybody know").
_SECRECY_V7 = _SECRECY.replace(r"(?:this|it|us|me)|let)\b", r"(?:this|it|us|me))\b") + (
    rf"|\b(?:don{_Q}t|dont|do\s+not|never|won{_Q}t|wont|can{_Q}t|cant|shouldn{_Q}t|better\s+not)\s+(?:ever\s+)?"
    rf"let\s+(?:{_YOUR}\s+)?{_KIN}\s+(?:\w+\s+)?(?:know|see|sees|find\s+out|read|hear|catch|notice|look|check)\b"
)
# From behaviour_v8, family the writer shares with the other (a sibling, a cousin, a parent): "our mom",
# a bare "ask dad".
_SHARED_FAMILY_V8 = (
    r"\bour\s+(?:mom|mum|mommy|mama|dad|daddy|papa|parents|grandma|grandpa|granny|gran|nana|nan|aunt|auntie|"
    r"uncle|cousins?|brother|sister|family|folks)\b|"
    rf"\b(?:i{_Q}ve|ive|i\s+have)\s+known\s+(?:you|u)\s+(?:ur|your)\s+(?:whole|entire)\s+life\b|"
    r"\b(?:coming|come|be|get)\s+home\s+for\s+(?:thanksgiving|christmas|xmas|the\s+holidays|spring\s+break|break|"
    r"reading\s+week|easter|diwali|eid|the\s+summer)\b|"
    r"\b(?:tell|ask|text|call)\s+(?:mom|mum|mommy|mama|dad|daddy)\b|\b(?:ur|your)\s+(?:big|older|little|lil)\s+(?:sis|bro)\b"
)

# From behaviour_v9, carers and the group kept in: the writer brings a parent, a carer or the open group into
# what the two arrange ("I'll let your mum know", "ask your dad first", "parents are welcome", "a parent or
# guardian travels with you", "keep it in the channel", "can't drive kids on my own, club rule"). Grooming
# keeps them out; a trusted adult, a relative or a classmate keeps them in.
_CARER = r"(?:mom|mum|mam|mommy|mummy|mama|dad|daddy|parents?|carers?|guardians?|family|folks|grown-?ups?)"
_CARER_IN_V9 = (
    rf"\blet\s+{_YOUR}\s+{_CARER}\s+know\b|"
    rf"\b(?:message|text|email|e-mail|call|ring|phone|ask|check\s+with|run\s+it\s+by|talk\s+to|speak\s+to|"
    rf"sort\s+it\s+(?:out\s+)?with|cc|copy\s+in)\s+{_YOUR}\s+{_CARER}\b|"
    rf"\bask\s+(?:my|{_YOUR})\s+{_CARER}\s+(?:first|if|whether|before)\b|\bask\s+my\s+{_CARER}\s*(?:$|[.!,])|"
    rf"\b(?:ok|okay|fine|alright)\s+(?:with|by)\s+(?:{_YOUR}\s+|my\s+)?{_CARER}\b|"
    rf"\b{_CARER}['\u2019]s?\s+(?:permission|consent|ok|okay|email|number|details)\b|\bparent(?:al)?\s+(?:permission|consent)\b|"
    rf"\b(?:parents?|carers?|families|family|guardians?)\s+(?:are|is)\s+(?:welcome|invited)\b|"
    rf"\b(?:parents?|carers?|families|family|guardians?)\s+(?:can|could|will|may)\s+(?:come|watch|join|stay|sit)\b|"
    rf"\b(?:a|one)\s+parent\s+or\s+(?:guardian|carer)\b|"
    rf"\bbring\s+(?:{_YOUR}|my)\s+{_CARER}\b|"
    rf"\b(?:{_YOUR}|my)\s+{_CARER}\s+(?:can|could|will|{_Q}ll|is\s+gonna|is\s+going\s+to)\s+(?:drive|drop|pick|take|come)\b|"
    rf"\b(?:keep|keeping|post\s+(?:it|this|that|them)|ask|asking)\s+(?:it\s+|this\s+|that\s+|things\s+)?in\s+"
    rf"(?:the\s+)?(?:channel|server|group\s+chat|group|public|main\s+chat|#[\w-]+)|"
    rf"\bcan{_Q}?t\s+(?:drive|take|give)\b[^.?!]{{0,30}}\bon\s+my\s+own\b|\bsafeguarding\b"
)
# ...unless the writer keeps them out in the same breath: "no need to bother your mum", "don't ask your dad".
_CARER_OUT_V9 = (
    rf"\b(?:don{_Q}t|dont|do\s+not|never|no\s+need\s+to|(?:you|u)\s+don{_Q}t\s+(?:need|have)\s+to|without|"
    rf"shouldn{_Q}t|better\s+not|won{_Q}t|wont)\s+(?:ever\s+)?(?:\w+\s+){{0,2}}?"
    rf"(?:tell|let|ask|message|text|bother|bring|mention|involve|call|show)\b"
)


@dataclass(frozen=True, slots=True)
class Alternation:
    """One cue's alternatives, searched as two patterns: those anchored at the start of the text (``^``) and
    the rest. A single alternation that mixes ``^`` with ``\\b`` branches loses ``re``'s fast scan for the
    branches' first characters: the two find exactly the texts the one finds, 3-5 times faster (the cues
    run on every message the detector scores). ``pattern`` is the single alternation's source."""

    pattern: str
    anywhere: re.Pattern[str] | None
    at_start: re.Pattern[str] | None

    def search(self, text: str) -> bool:
        return bool(
            (self.anywhere is not None and self.anywhere.search(text))
            or (self.at_start is not None and self.at_start.search(text))
        )


@dataclass(frozen=True, slots=True)
class TextCues:
    """One version of the cues: their names, one lower-case pattern per cue and, from ``behaviour_v5``, per
    cue an optional pattern that cancels it (``unless``; empty: none cancels any)."""

    version: str
    names: tuple[str, ...]
    patterns: tuple[Alternation, ...]
    unless: tuple[re.Pattern[str] | None, ...] = ()

    def of(self, text: str) -> tuple[float, ...]:
        """The cues of one model text, each 0.0 or 1.0, in ``names`` order."""
        # The patterns are lower case: one lower() is cheaper than case-insensitive searches.
        lowered = text.lower()
        if not self.unless:
            return tuple(float(pattern.search(lowered)) for pattern in self.patterns)
        return tuple(
            float(pattern.search(lowered) and (cancel is None or cancel.search(lowered) is None))
            for pattern, cancel in zip(self.patterns, self.unless, strict=True)
        )

    def matrix(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """``of`` every text as rows of a float32 [N, len(names)] array."""
        matrix = np.zeros((len(texts), len(self.names)), dtype=np.float32)
        for row, text in enumerate(texts):
            matrix[row] = self.of(text)
        return matrix


class UnknownCuesError(ValueError):
    """A model names a cue version this Vigil does not compute."""


def _top_level_branches(pattern: str) -> list[str]:
    """``pattern`` split at its top-level ``|`` (outside groups, character classes and escapes)."""
    branches: list[str] = []
    current: list[str] = []
    depth = 0
    in_class = escaped = False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            branches.append("".join(current))
            current = []
            continue
        current.append(char)
    branches.append("".join(current))
    return branches


def _compiled(*alternatives: str) -> Alternation:
    pattern = "|".join(alternatives)
    branches = _top_level_branches(pattern)
    at_start = [branch for branch in branches if branch.startswith("^")]
    anywhere = [branch for branch in branches if not branch.startswith("^")]
    return Alternation(
        pattern,
        re.compile("|".join(anywhere)) if anywhere else None,
        re.compile("|".join(at_start)) if at_start else None,
    )


def _age_v1() -> TextCues:
    return TextCues(
        "age_v1",
        ("minor_age", "adult_age", "school", "adult_life", "youth_remark"),
        (
            _compiled(*_age_alternatives(_MINOR)),
            _compiled(*_age_alternatives(_ADULT)),
            _compiled(_SCHOOL_V1),
            _compiled(_ADULT_LIFE_V1),
            _compiled(_YOUTH_REMARK_V1),
        ),
    )


def _age_v2() -> TextCues:
    return TextCues(
        "age_v2",
        ("minor_age", "adult_age", "school", "adult_life", "youth_remark", "adults_remark"),
        (
            _compiled(*_age_alternatives(_MINOR), *_MINOR_V2_MORE),
            _compiled(*_age_alternatives(_ADULT), *_ADULT_V2_MORE),
            _compiled(_SCHOOL_V1, _SCHOOL_V2_MORE),
            _compiled(_ADULT_LIFE_V1, _ADULT_LIFE_V2_MORE),
            _compiled(_YOUTH_REMARK_V1, _YOUTH_REMARK_V2_MORE),
            _compiled(_ADULTS_REMARK),
        ),
    )


def _behaviour_v3() -> TextCues:
    age = _age_v2()
    return TextCues(
        "behaviour_v3",
        (*age.names, "secrecy", "private_channel", "gift", "meeting", "photo"),
        (
            *age.patterns,
            _compiled(_SECRECY),
            _compiled(_PRIVATE_CHANNEL),
            _compiled(_GIFT),
            _compiled(_MEETING),
            _compiled(_PHOTO),
        ),
    )


def _behaviour_v4() -> TextCues:
    v3 = _behaviour_v3()
    return TextCues(
        "behaviour_v4",
        v3.names,
        (
            *v3.patterns[:2],
            _compiled(_SCHOOL_V1, _SCHOOL_V2_MORE, _SCHOOL_V4_MORE),
            v3.patterns[3],
            _compiled(_YOUTH_REMARK_V1, _YOUTH_REMARK_V2_MORE, _YOUTH_REMARK_V4_MORE),
            v3.patterns[5],
            _compiled(_SECRECY, _SECRECY_V4_MORE),
            v3.patterns[7],
            v3.patterns[8],
            _compiled(_MEETING, _MEETING_V4_MORE),
            _compiled(_PHOTO, _PHOTO_V4_MORE),
        ),
    )


def _behaviour_v5() -> TextCues:
    v4 = _behaviour_v4()
    echo = re.compile(_ECHO_UNLESS_OWN, re.DOTALL)
    cancelled = {"minor_age", "school"}
    return TextCues(
        "behaviour_v5",
        v4.names,
        v4.patterns,
        tuple(echo if name in cancelled else None for name in v4.names),
    )


def _behaviour_v6() -> TextCues:
    v5 = _behaviour_v5()
    child = re.compile(_ECHO_OR_THIRD_UNLESS_OWN, re.DOTALL)
    adult = re.compile(_THIRD_UNLESS_OWN, re.DOTALL)
    cancels = {"minor_age": child, "school": child, "adult_age": adult}
    patterns = list(v5.patterns)
    adult_life = _compiled(_ADULT_LIFE_V1, _ADULT_LIFE_V2_MORE, _ADULT_LIFE_V6_MORE)
    patterns[v5.names.index("adult_life")] = adult_life
    return TextCues("behaviour_v6", v5.names, tuple(patterns), tuple(cancels.get(name) for name in v5.names))


def _behaviour_v7() -> TextCues:
    v6 = _behaviour_v6()
    patterns = list(v6.patterns)
    patterns[v6.names.index("secrecy")] = _compiled(_SECRECY_V7, _SECRECY_V4_MORE)
    return TextCues("behaviour_v7", v6.names, tuple(patterns), v6.unless)


def _behaviour_v8() -> TextCues:
    v7 = _behaviour_v7()
    return TextCues(
        "behaviour_v8",
        (*v7.names, "shared_family"),
        (*v7.patterns, _compiled(_SHARED_FAMILY_V8)),
        (*v7.unless, None),
    )


def _behaviour_v9() -> TextCues:
    v8 = _behaviour_v8()
    return TextCues(
        "behaviour_v9",
        (*v8.names, "carer_in"),
        (*v8.patterns, _compiled(_CARER_IN_V9)),
        (*v8.unless, re.compile(_CARER_OUT_V9)),
    )


CUE_VERSIONS = (
    "age_v1",
    "age_v2",
    "behaviour_v3",
    "behaviour_v4",
    "behaviour_v5",
    "behaviour_v6",
    "behaviour_v7",
    "behaviour_v8",
    "behaviour_v9",
)
LATEST_CUES = "behaviour_v9"


def text_cues(version: str) -> TextCues:
    """The cues of ``version``, compiled anew: callers keep the object they get."""
    match version:
        case "age_v1":
            return _age_v1()
        case "age_v2":
            return _age_v2()
        case "behaviour_v3":
            return _behaviour_v3()
        case "behaviour_v4":
            return _behaviour_v4()
        case "behaviour_v5":
            return _behaviour_v5()
        case "behaviour_v6":
            return _behaviour_v6()
        case "behaviour_v7":
            return _behaviour_v7()
        case "behaviour_v8":
            return _behaviour_v8()
        case "behaviour_v9":
            return _behaviour_v9()
    raise UnknownCuesError(
        f"text cues {version!r} are not known to this Vigil (it computes {', '.join(CUE_VERSIONS)})"
    )
