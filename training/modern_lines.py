"""Hand-written modern-style training conversations, generated from templates (grooming and hard negatives).

Every positive in the shared data is a Perverted-Justice log from the AIM era, so a model can learn
"chat-speak from 2008 about webcams" instead of grooming. These conversations put the grooming PATTERN (an
adult who asks a child's age, flatters, isolates, asks for secrecy, moves to another app, offers gifts, asks
for photos, wants to meet) on current platforms (Discord, Roblox, Minecraft, Fortnite, Instagram, TikTok,
hobby servers, a school community Slack), and put the same vocabulary (age, snap, gift, secret, meet, pick up,
photo) into benign look-alikes: teens with teens, adults flirting with adults, parents and children, coaches
and tutors arranging logistics, gamers gifting each other, parents asking "how old is your son".

Each speaker gets a style (chat-speak via :func:`training.style.chatify`, standard English via
:func:`training.style.standardise`, or the template as written), drawn from the same distribution for a role
in both labels, so style does not give the label away. Output is the shared data format (source
``vigil_modern_train``), deterministic for a seed::

    python -m training.modern_lines --out .artifacts/modern.jsonl --seed 0 --grooming 600 --benign 900

``--kind NAME`` draws the benign conversations from named kinds only, including ones the default mix leaves
out so that earlier recipes' files stay byte for byte: ``curious_child`` (a child asking an adult they know
about age, school and home), ``older_sibling`` (an adult sibling or cousin and a younger one: rides, chores,
"don't tell mom"), ``support_line`` (a helpline volunteer asking whether a young person is safe and who is at
home) and ``game_countdown`` (a gaming channel typing bare numbers: countdowns, scores, levels);
``--id-prefix`` keeps ids apart when several generated files train together.

Templates: ``{slot}`` takes a value from the conversation's context (fixed per conversation: the child's age,
the game, the app) or a fresh draw from a pool; ``[a|b|c]`` picks one alternative (an empty one is allowed).
The lines are written for this module and are not taken from ``examples/realistic_conversations.jsonl``
(the held-out realistic test set); ``tests/training/test_modern_lines.py`` checks that they do not overlap it.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from training.style import chatify, modernise, standardise

__all__ = ["GROOMING_STAGES", "KIND_NAMES", "SOURCE", "main", "modern_conversations"]

logger = logging.getLogger(__name__)

SOURCE = "vigil_modern_train"
MIN_MESSAGES = 12
MAX_MESSAGES = 60

GROOMING_STAGES = (
    "age",
    "flattery",
    "special",
    "isolation",
    "secrecy",
    "platform",
    "gifts",
    "photos",
    "romance",
    "meeting",
)

Pool = tuple[str, ...]
Line = tuple[str, str]  # (speaker key, template)


def _p(*items: str) -> Pool:
    return tuple(items)


# ------------------------------------------------------------------------------------------ slot pools

_POOLS: Mapping[str, Pool] = MappingProxyType(
    {
        "any_game": _p(
            "roblox",
            "minecraft",
            "fortnite",
            "valorant",
            "apex",
            "among us",
            "genshin",
            "rocket league",
            "overwatch",
            "brawl stars",
            "fall guys",
            "splatoon",
            "animal crossing",
            "smash",
            "mario kart",
        ),
        "app": _p("snap", "snapchat", "telegram", "whatsapp", "kik", "insta", "signal", "discord"),
        "private_app": _p("snap", "telegram", "kik", "signal", "whatsapp"),
        "place": _p(
            "the mall",
            "the park",
            "starbucks",
            "mcdonalds",
            "the library",
            "the skatepark",
            "the movies",
            "target",
            "the arcade",
            "the food court",
            "the trampoline park",
            "chipotle",
            "the bowling alley",
        ),
        "time": _p(
            "after school",
            "at 4",
            "on saturday",
            "this weekend",
            "tomorrow after practice",
            "friday night",
            "sunday afternoon",
            "at 3:30",
            "around 6",
            "next weekend",
        ),
        "day": _p("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
        "clock": _p("3:15", "3:30", "4", "4:45", "5", "5:30", "6", "6:15", "7", "9", "10:30", "noon"),
        "food": _p(
            "pizza",
            "tacos",
            "nuggets",
            "ramen",
            "boba",
            "a frappuccino",
            "wings",
            "ice cream",
            "fries",
            "a milkshake",
            "sushi",
            "mac and cheese",
        ),
        "subject": _p("math", "science", "history", "english", "spanish", "geography", "health", "bio"),
        "schoolwork": _p(
            "the {subject} homework",
            "the {subject} project",
            "the {subject} worksheet",
            "the reading log",
            "the {subject} quiz",
            "that essay",
        ),
        "parent": _p("mom", "dad", "mom", "stepdad", "mom", "dad", "grandma", "stepmom", "aunt"),
        "sibling": _p("sister", "brother", "little brother", "big sister", "cousin", "little sister"),
        "name": _p(
            "maya",
            "jake",
            "liam",
            "ava",
            "noah",
            "zoe",
            "ethan",
            "chloe",
            "aiden",
            "sofia",
            "mason",
            "lily",
            "jayden",
            "harper",
            "leo",
            "nora",
            "caleb",
            "riley",
            "owen",
            "isla",
            "max",
            "ellie",
        ),
        "anime": _p(
            "demon slayer",
            "jjk",
            "one piece",
            "naruto",
            "my hero academia",
            "spy x family",
            "chainsaw man",
            "haikyuu",
            "attack on titan",
            "bleach",
            "frieren",
            "blue lock",
        ),
        "singer": _p(
            "taylor swift",
            "olivia rodrigo",
            "sza",
            "billie eilish",
            "the weeknd",
            "drake",
            "travis scott",
            "bts",
            "newjeans",
            "sabrina carpenter",
            "tyler the creator",
            "doja cat",
        ),
        "show": _p(
            "stranger things",
            "wednesday",
            "the bear",
            "outer banks",
            "one piece",
            "bluey",
            "the office",
            "squid game",
            "avatar",
            "love island",
        ),
        "money": _p("$20", "$25", "$30", "$40", "$50", "$100"),
        "adult_age": _p(
            "19",
            "21",
            "22",
            "23",
            "24",
            "25",
            "26",
            "27",
            "28",
            "29",
            "31",
            "33",
            "34",
            "36",
            "38",
            "41",
        ),
        "grown_age": _p("25", "27", "28", "29", "30", "31", "32", "33", "34", "35", "36", "37", "38", "40"),
        "work": _p("work", "work", "the office", "the gym", "class", "the store", "the studio", "the shop"),
        "laugh": _p("lol", "lmao", "haha", "lol", "😂", "hahaha", "💀"),
        "pet": _p("dog", "cat", "puppy", "hamster", "bunny", "gecko", "kitten"),
        "weekday_thing": _p(
            "a dentist appointment",
            "band practice",
            "church",
            "my cousins party",
            "a doctors appointment",
            "swim",
            "dance",
            "piano lessons",
        ),
        "handle": _p("<user>", "its <user>", "<user> with the underscores", "same as my discord"),
        "sport": _p("soccer", "basketball", "volleyball", "baseball", "hockey", "swim", "track", "lacrosse"),
        "team": _p("u11", "u12", "u13", "u14", "u15", "the 12u team", "the 14u squad", "the jv team"),
        "pickup_spot": _p(
            "the front office",
            "the side gate",
            "the parking lot",
            "the gym doors",
            "the main entrance",
            "the bus loop",
            "the field house",
        ),
        "venue_field": _p(
            "field 3",
            "the north field",
            "the rec center",
            "lincoln park",
            "the high school gym",
            "the sports complex",
            "the community pool",
            "the ymca",
        ),
    }
)

# A platform: where the conversation happens, what the activity is, what gifts and items exist there.
_PLATFORMS: Mapping[str, Mapping[str, Pool]] = MappingProxyType(
    {
        "discord_gaming": MappingProxyType(
            {
                "game": _p(
                    "valorant", "fortnite", "minecraft", "apex", "overwatch", "rocket league", "genshin"
                ),
                "venue": _p("the server", "this server", "vc", "the gaming server", "general"),
                "craft": _p("clips", "plays", "highlights", "edits", "montages"),
                "gift": _p(
                    "nitro",
                    "a month of nitro",
                    "a $25 steam card",
                    "a steam gift card",
                    "the battle pass",
                    "a new skin",
                    "a headset",
                    "server boosts",
                ),
                "currency": _p("nitro", "vp", "vbucks", "credits"),
                "item": _p(
                    "the new skin", "the battle pass", "that bundle", "the knife skin", "a new headset"
                ),
                "setting": _p("dm", "channel"),
            }
        ),
        "roblox": MappingProxyType(
            {
                "game": _p(
                    "adopt me",
                    "blox fruits",
                    "brookhaven",
                    "doors",
                    "bedwars",
                    "arsenal",
                    "jailbreak",
                    "pet sim",
                    "tower of hell",
                    "murder mystery 2",
                    "da hood",
                ),
                "venue": _p("the game", "my private server", "the group", "the roblox group", "the server"),
                "craft": _p("builds", "outfits", "fits", "obbies", "games"),
                "gift": _p(
                    "robux",
                    "800 robux",
                    "1000 robux",
                    "premium",
                    "a robux gift card",
                    "a legendary pet",
                    "a gamepass",
                    "a roblox card",
                ),
                "currency": _p("robux", "robux", "bucks"),
                "item": _p("a legendary pet", "the gamepass", "headless", "the korblox", "a new outfit"),
                "setting": _p("dm", "channel"),
            }
        ),
        "minecraft": MappingProxyType(
            {
                "game": _p("minecraft", "the smp", "bedwars", "skyblock", "our realm", "hypixel"),
                "venue": _p("the smp", "the realm", "the server", "the discord", "spawn"),
                "craft": _p("builds", "redstone builds", "bases", "skins", "farms"),
                "gift": _p(
                    "minecoins",
                    "a rank on the server",
                    "a minecraft gift card",
                    "java edition",
                    "a realms sub",
                    "a cape",
                    "a new skin pack",
                ),
                "currency": _p("minecoins", "coins"),
                "item": _p("a rank", "the skin pack", "a cape", "the texture pack", "mvp+"),
                "setting": _p("dm", "channel"),
            }
        ),
        "fortnite": MappingProxyType(
            {
                "game": _p("fortnite", "zero build", "creative", "ranked", "box fights"),
                "venue": _p("the party", "squads", "the lobby", "the discord", "creative"),
                "craft": _p("edits", "builds", "clips", "highlights"),
                "gift": _p(
                    "vbucks",
                    "1000 vbucks",
                    "the battle pass",
                    "a new skin",
                    "the crew pack",
                    "an emote",
                    "a vbucks card",
                ),
                "currency": _p("vbucks", "vbucks"),
                "item": _p("the new skin", "the battle pass", "an emote", "the crew pack", "that pickaxe"),
                "setting": _p("dm", "channel"),
            }
        ),
        "instagram": MappingProxyType(
            {
                "game": _p("roblox", "minecraft", "fortnite", "brawl stars", "genshin"),
                "venue": _p("your page", "your story", "the comments", "your posts", "your reels"),
                "craft": _p("edits", "posts", "reels", "stories", "pics"),
                "gift": _p(
                    "an amazon gift card",
                    "a sephora gift card",
                    "a $50 gift card",
                    "new airpods",
                    "a starbucks card",
                    "a shein haul",
                    "some money on cashapp",
                ),
                "currency": _p("money", "gift cards"),
                "item": _p(
                    "the airpods", "a new phone case", "that hoodie", "a ring light", "the skincare set"
                ),
                "setting": _p(
                    "dm",
                ),
            }
        ),
        "tiktok": MappingProxyType(
            {
                "game": _p("roblox", "minecraft", "fortnite", "dress to impress", "genshin"),
                "venue": _p("your tiktok", "your lives", "your videos", "your fyp", "the comments"),
                "craft": _p("videos", "dances", "edits", "lives", "cosplays"),
                "gift": _p(
                    "tiktok coins",
                    "a gift card",
                    "some coins on your live",
                    "a ring light",
                    "a new mic",
                    "a $50 gift card",
                    "a shein gift card",
                ),
                "currency": _p("coins", "gifts"),
                "item": _p("a ring light", "a new mic", "that hoodie", "the lip gloss set", "a phone tripod"),
                "setting": _p(
                    "dm",
                ),
            }
        ),
        "school_slack": MappingProxyType(
            {
                "game": _p(
                    "the robotics comp", "scratch", "python", "the coding challenge", "the science fair"
                ),
                "venue": _p("the club slack", "the coding club", "the robotics channel", "the workspace"),
                "craft": _p("projects", "programs", "robot designs", "slides", "science fair boards"),
                "gift": _p(
                    "a raspberry pi",
                    "an arduino kit",
                    "an amazon gift card",
                    "a new laptop charger",
                    "a $50 gift card",
                    "a python course",
                ),
                "currency": _p("gift cards", "money"),
                "item": _p(
                    "an arduino kit", "a raspberry pi", "the course", "a drawing tablet", "a new keyboard"
                ),
                "setting": _p("dm", "channel"),
            }
        ),
        "art_server": MappingProxyType(
            {
                "game": _p("procreate", "ibis paint", "krita", "roblox", "minecraft"),
                "venue": _p(
                    "the art server", "the showcase channel", "the server", "wip channel", "the gallery"
                ),
                "craft": _p("drawings", "sketches", "comics", "ocs", "animations"),
                "gift": _p(
                    "procreate brushes",
                    "a drawing tablet",
                    "nitro",
                    "a commission",
                    "an art set",
                    "a $30 gift card",
                    "a new stylus",
                ),
                "currency": _p("nitro", "money"),
                "item": _p(
                    "a drawing tablet", "the brush pack", "a new stylus", "copic markers", "an ipad pen"
                ),
                "setting": _p("dm", "channel"),
            }
        ),
        "music_server": MappingProxyType(
            {
                "game": _p("fl studio", "garageband", "guitar", "piano", "roblox"),
                "venue": _p("the music server", "the beats channel", "the server", "feedback channel", "vc"),
                "craft": _p("covers", "beats", "songs", "vocals", "guitar covers"),
                "gift": _p(
                    "a new mic",
                    "nitro",
                    "a plugin",
                    "fl studio",
                    "a $50 gift card",
                    "headphones",
                    "a guitar pedal",
                ),
                "currency": _p("nitro", "money"),
                "item": _p("a new mic", "the plugin", "studio headphones", "a capo", "an audio interface"),
                "setting": _p("dm", "channel"),
            }
        ),
        "anime_server": MappingProxyType(
            {
                "game": _p("genshin", "honkai", "roblox", "anime last stand", "blue lock rivals"),
                "venue": _p(
                    "the anime server", "the server", "the cosplay channel", "general", "the watch party"
                ),
                "craft": _p("edits", "cosplays", "drawings", "amvs", "theories"),
                "gift": _p(
                    "nitro",
                    "a crunchyroll sub",
                    "a cosplay wig",
                    "figures",
                    "a $40 gift card",
                    "manga volumes",
                    "genesis crystals",
                ),
                "currency": _p("nitro", "crystals"),
                "item": _p("a figure", "the wig", "the manga box set", "a crunchyroll sub", "that plushie"),
                "setting": _p("dm", "channel"),
            }
        ),
    }
)

# ------------------------------------------------------------------------------------- grooming lines

_THANKS_K = _p(
    "[lol|] [thanks|ty|thx]",
    "[omg|wait] [really|fr]? [thanks|ty]",
    "[lol|haha] [theyre|they're] not that good",
    "[ty|thank u] {laugh}",
)
# The adult's opener, about the game or hobby, with the child's fitting replies.
_OPENERS: tuple[tuple[str, Pool], ...] = (
    (
        "[hey|yo|hi] [gg|good game] [that was|] [insane|so fun|so close]",
        _p("gg {laugh}", "[ty|thx] [u too|]", "[ya|yeah] [that was|] [crazy|so close]", "gg who r u"),
    ),
    ("ur {craft} [are|r] [actually|] [so|really|crazy] good", _THANKS_K),
    (
        "[wait|lol] how did you get {item} already",
        _p(
            "[i|] [saved up|grinded] [for like a month|all week]",
            "[my cousin|my brother] [gave|gifted] it to me",
            "[lol|haha] i got lucky",
        ),
    ),
    (
        "[you|u] play {game} too? [nice|cool]",
        _p(
            "[yea|yeah|ya] [every day|all the time|after school]",
            "[ya|yes] [i|I] just started",
            "[yea|ya] my friend showed me",
        ),
    ),
    (
        "[nice|sick|clean] [build|clip|one], how long did that take you",
        _p(
            "[like|] [2|3|4] [hours|days] {laugh}",
            "[forever|so long] {laugh}",
            "[idk|] [a while|like a week]",
        ),
    ),
    (
        "[hey|hi] saw you in {venue}, you're [funny|hilarious] {laugh}",
        _p("[lol|haha] [thanks|ty]", "who [are you|r u]", "do i know u"),
    ),
    (
        "do you want to [duo|team up|play] [later|tonight|after this]",
        _p(
            "[sure|ok|maybe]",
            "[yea|ok] [after dinner|in like an hour|after homework]",
            "[maybe|idk] if my mom lets me",
        ),
    ),
    (
        "[your|ur] [username|pfp|profile pic] is so [funny|cool|creative]",
        _p("[lol|] [thanks|ty]", "[haha|lol] my friend [made|picked] it", "[ty|thx] {laugh}"),
    ),
    (
        "[hey|hi] i [saw|liked] your [post|video|story] about {game}",
        _p(
            "[oh|] [thanks|ty] {laugh}",
            "[lol|haha] [it was|that was] so random",
            "[ya|yea] [i|I] post [a lot|every day]",
        ),
    ),
    (
        "[hey|] you're the one who [carried|won|clutched] [last round|that match|the event] right",
        _p(
            "[lol|] [yea|ya] that was me",
            "[haha|lol] i got lucky",
            "[ya|yeah] [my team|we] [was|were] so bad",
        ),
    ),
    ("[hey|hi] [sorry|] random [dm|message] but ur {craft} [are|r] [fire|amazing|so clean]", _THANKS_K),
    (
        "[yo|hey] [you|u] still need [a|one more] [player|person] for {game}",
        _p("[ya|yes] [join|hop in]", "[ok|sure] whats ur user", "[no|nah] we [found|got] one [sorry|]"),
    ),
    (
        "[hi|hey] [i|I] [followed|added] you from {venue}, [hope thats ok|dont mind me]",
        _p("[ok|sure] {laugh}", "[oh|] [hi|hey]", "[lol|] [ok|] who r u"),
    ),
    (
        "[omg|ok] your last [video|post|clip] made me laugh so hard",
        _p("[lol|haha] [thanks|ty]", "[omg|] [which one|the one with my {pet}?]"),
    ),
    (
        "[hey|hello] [i'm|im] new to {venue}, [you seem|u seem] [nice|cool|chill]",
        _p("[hi|hey] [welcome|wlc]", "[ty|thx] {laugh}", "[oh|] [hi|hey] [lol|]"),
    ),
    (
        "[gg|good game] [you|u] [played|did] [really|so] well [for real|fr|tbh]",
        _p("[ty|thx] [u too|]", "[lol|] [i|I] [died|lost] so much tho"),
    ),
)

# Small talk both sides can have in any conversation on a platform (the benign stretch of a slow groom,
# and filler in benign conversations). (question, answer) pairs.
_TALK: tuple[tuple[str, str], ...] = (
    ("what [rank|level] [are you|r u] in {game}", "[gold|silver|plat|diamond] [1|2|3] {laugh}"),
    (
        "[did you|did u|u] see the new [update|season|event]",
        "[yea|ya|yes] its [so good|kinda mid|mid|insane]",
    ),
    ("[what r u|what are you] [doing|up to] this weekend", "[prob|probably] just [chilling|gaming|sleeping]"),
    ("wyd [this weekend|tonight|rn]", "[nothing|homework|watching {show}] {laugh}"),
    ("[whats|what's] [your|ur] [fav|favorite] [food|snack]", "{food} [obviously|for sure|]"),
    (
        "[do you|u] have [any|] [brothers or sisters|siblings]",
        "[a|one] {sibling} [shes|hes|they're] [annoying|ok] {laugh}",
    ),
    (
        "[is it|its] [raining|snowing|so hot] [there|where u are]",
        "[ya|yes|no] [its|it's] [so|really] [gross|nice] {laugh}",
    ),
    ("[what|which] [class|subject] [do you|u] hate the most", "{subject} [for sure|100%|obviously]"),
    ("[did you|u] [get|have] [a lot of|any] homework [today|tonight]", "[so much|ya|a little] [ugh|{laugh}]"),
    (
        "[whats|what's] [your|ur] [fav|favorite] song [rn|right now]",
        "[anything by|prob something by] {singer}",
    ),
    ("[do you|u] play [any|] sports", "[ya|yea] {sport} [but|and] [im|i'm] [bad|ok] {laugh}"),
    (
        "[whats|what's] the [best|worst] [skin|item|update] [rn|right now|ever]",
        "[the og one|the new one|idk all of them] {laugh}",
    ),
    ("[how|hows] [your|ur] day [going|been]", "[good|boring|long] {laugh} [urs?|u?]"),
    (
        "[you|u] [ever|] [watch|watched] [streamers|youtubers] [play|playing] {game}",
        "[ya|yes] [all the time|sometimes]",
    ),
    (
        "[did you|u] [see|hear] [about|] the [new|next] {game} [event|update|season]",
        "[ya|no] [when|what] is it",
    ),
    (
        "[lol|] [my|] {pet} [just|] [sat on|walked on] my [keyboard|controller]",
        "[lmao|LOL|haha] [send pic|so cute]",
    ),
    (
        "[what|wat] [are you|r u] [hoping|asking] for [christmas|your birthday]",
        "[a new|] [phone|switch|pc|headset] {laugh}",
    ),
    ("[are you|r u] [tired|sleepy]", "[ya|so tired|kinda] {laugh}"),
    ("[do you|u] [like|watch] {show}", "[ya|yes|no] [its|it's] [so good|mid|ok]"),
    ("[did you|did u] finish {schoolwork}", "[no|not yet|nope] {laugh}"),
    ("[are you|r u] on [tonight|later]", "[maybe|yea|yeah] after [dinner|homework|my shower]"),
    (
        "what [server|world|map|mode] [are you|r u] on",
        "[the usual one|same one as yesterday|idk the new one]",
    ),
    ("have [you|u] [watched|seen] {anime}", "[yes|yea] [season 2|the new episode|the movie] was so good"),
    ("whos your [main|fav|favorite] [character|skin]", "[idk|prob|probably] the [new one|purple one|og one]"),
    ("how long have [you|u] been [playing|doing this|on here]", "like [a year|2 years|since summer|a month]"),
    ("[ugh|bro] my [wifi|internet] is so [bad|slow]", "[same|lol same|rip] {laugh}"),
    ("[what|wat] [are you|r u] [watching|listening to] [rn|right now]", "{show} [again|lol|]"),
    ("[do you|u] listen to {singer}", "[yes|yeah|ya] [obsessed|all the time|kinda]"),
    (
        "[have you|u] seen {show}",
        "[no|nah] is it good",
    ),
    ("[what|wat] [are you|r u] [eating|having] for dinner", "{food} {laugh}"),
    ("[brb|hold on] [my|] {pet} is [being crazy|barking|knocking stuff over]", "[lol|haha] [ok|k]"),
    ("[i|I] [cant|can't] [stop|quit] playing {game}", "[same|fr|ya same] [its|it's] addicting"),
    ("[what|wat] time is it [there|for u]", "[like|] [9|8:30|10|7] {laugh}"),
    ("[do|] [you|u] have a {pet}", "[yea|yes] [a|] {pet} [named|called] [bean|mochi|max|luna|biscuit]"),
    (
        "[that|the] last [round|match|game] was [so|crazy] [close|sweaty]",
        "[fr|i know|ikr] i almost [died|lost]",
    ),
    (
        "[did u|did you] get [anything|something] good [from the event|today|in the drop]",
        "[no|nah] [just|only] [common stuff|trash] {laugh}",
    ),
    (
        "[want to|wanna] [play|hop on] {game} [tmrw|tomorrow|later]",
        "[sure|maybe|ok] if i [can|finish my homework]",
    ),
)

_AGE_ASK_S = _p(
    "how old [are you|r u] [btw|tho|]",
    "what grade [are you|r u] in",
    "[you're|ur|youre] like {age_guess} right?",
    "wait [are you|r u] in middle school",
    "[are you|r u] in [middle school|high school] or",
    "[can i|can I] ask how old [you are|u are] [or is that weird|lol|]",
    "you seem older than {age_guess}",
    "[so|] when's your birthday",
    "[so|] what year of school [are you|r u] in",
    "[are you|r u] {age} or {age_up}",
    "[lol|] [you|u] sound [young|like a kid], how old",
    "[what school|which school] [do you|do u] go to, [middle|high]?",
)
_AGE_CUE_S = _p(
    "{age} is [such|a] [fun|good] age",
    "[oh|ok] [you're|ur] {age}, [cool|nice]",
    "[wow|] [you|u] seem [way|a lot] older than {age}",
    "[you|u] type like [you're|ur] [16|17|older] {laugh}",
    "[oh|] [so|] [you're|ur] [in|] {grade} grade [huh|then]",
    "[lol|] age is just a number [anyway|tbh|]",
    "[i|I] [remember|miss] being {age} {laugh}",
)
_AGE_K = _p(
    "{age}",
    "im {age}",
    "{age} [u?|wbu|why]",
    "{grade} grade",
    "[im|] {age} [in|since] [march|june|october|december]",
    "almost {age_up}",
    "[im|] in {grade}",
    "turning {age_up} [soon|next month|in may]",
    "[middle school|7th|8th] {laugh}",
    "{age} [lol|haha]",
    "[why|] [lol|] im {age}",
)
_AGE_ADULT_Q_K = _p(
    "how old [are you|r u]",
    "wbu",
    "how old r u [tho|then]",
    "[and|] u?",
    "whats ur age",
    "are u like 16",
)
_AGE_ADULT_A_S = _p(
    "{adult_age}",
    "older {laugh}",
    "does it matter",
    "guess {laugh}",
    "{adult_age} but [im|i'm] young at heart",
    "[a bit|a little] older than [you|u] {laugh}",
    "[im|i'm] 17",
    "[old enough|old] {laugh}",
    "{adult_age} [dont tell anyone|is that weird]",
)

_STAGES_S: Mapping[str, Pool] = MappingProxyType(
    {
        "flattery": _p(
            "[you're|ur|youre] [really|so] mature for [your|ur] age",
            "[ur|you're] so talented [honestly|for real|fr|]",
            "[you're|ur] [way|so much] smarter than [other|most] kids [your|ur] age",
            "[you're|ur] [really|so] [pretty|cute] [honestly|tbh|]",
            "[i bet|] [all the boys|all the girls|everyone] at [your|ur] school [like|likes] you",
            "[you're|ur] [honestly|] [my favorite|the best] person [on here|in {venue}]",
            "[you|u] dont act like a {age} year old at all",
            "[your|ur] [pfp|selfie|pic] is [so cute|adorable]",
            "[you|u] could [go pro|sell your {craft}|be famous] for real",
            "[you're|ur] not like [other|the other] kids",
            "[you're|ur] [way|so much] [funnier|cooler] than [people my age|the adults here]",
            "[i|I] love [how|that] [you're|ur] [so|really] [chill|easy to talk to]",
        ),
        "special": _p(
            "[nobody|no one] [gets|understands] [you|u] like [I|i] do",
            "[i|I] feel like [i|I] can tell [you|u] anything",
            "[we|u and me|you and me] have [such a|a] [special|real] [connection|bond]",
            "[you're|ur] the only [one|person] [i|I] [actually|really] [like talking to|trust]",
            "[talking to you is|ur messages are|your messages are] the best part of my day",
            "[i|I] [never|dont] [feel|get] this way [about|with] anyone",
            "[you're|ur] my [best friend|favorite person] [honestly|ngl|]",
            "[i|I] [think about|thought about] [you|u] [all day|at work|so much]",
            "other people [just|] dont [get|understand] us",
            "[this|what we have] is [special|different], [you know|u know] that right",
        ),
        "isolation": _p(
            "[your|ur] parents [just|] wouldnt understand",
            "[your|ur] friends [sound|seem] [kinda|really] [fake|mean|immature]",
            "[i|I] would never treat [you|u] like [that|they do]",
            "[your|ur] {parent} [is|sounds] so [strict|annoying|unfair]",
            "[you|u] dont need them, [you|u] have me",
            "[they|ur parents|your parents] dont [listen to|appreciate] [you|u] like [I|i] do",
            "[adults|teachers] always treat [you|u] like a baby, [i|I] dont",
            "[you can|u can] always [talk to me|come to me] instead",
            "[i|I] dont think [your|ur] friends [really|] care about [you|u] [tbh|]",
        ),
        "secrecy": _p(
            "[dont|don't] tell anyone [we talk|about us|i said that]",
            "[this is|keep this] just between us [ok|okay|]",
            "[can you|u should] delete our [chats|messages|dms] [after|later|tonight]",
            "is your {parent} [around|home|nearby] [right now|rn]",
            "[does|do] your [parents|mom|dad] [ever|] [look at|go through] your phone",
            "if your {parent} asks say [i'm|im] a friend from school",
            "turn on [disappearing messages|vanish mode] [ok|]",
            "[people|others] wouldnt understand [what we have|our friendship]",
            "[dont|don't] tell [your|ur] friends about the [gift|{currency}|stuff i got you] [ok|either]",
            "[are you|r u] alone [right now|rn]",
            "[its|it's] our [little|] secret [ok|okay]",
        ),
        "platform": _p(
            "add me on {app}",
            "[do you|u] have {app}? [its|it's] easier to talk there",
            "[dm|message] me [instead|later|]",
            "whats your number",
            "[let's|lets|we should] move to {private_app}, "
            "[this app|discord] [gets|is] [weird|laggy|watched]",
            "[do u|do you] have [a phone|your own phone]",
            "[i'll|ill] send [you|u] my {app}, add me",
            "[text me|can i text you] [instead|its easier]",
            "make a [second|private|new] account so [your|ur] {parent} doesnt see",
            "download {private_app}, it deletes [messages|chats] [automatically|by itself]",
            "[whats|what's] [your|ur] {app} [username|@|]",
        ),
        "gifts": _p(
            "[want|u want] {gift}?",
            "[i|I] can [buy|get|send] [you|u] {gift} [if you want|lol|]",
            "[i|I] [just|] sent [you|u] {gift}",
            "check [your|ur] [dms|inbox|friend requests], [i|I] [got|bought] [you|u] [something|a gift]",
            "[i|I] can send [you|u] {money} [on cashapp|on venmo|as a gift card]",
            "[i'll|ill] [buy|get] [you|u] {item} if [you|u] [add me on|text me on] {app}",
            "[do you want|want] some {currency}? [i|I] have [extra|too many]",
            "consider {item} a gift [from me|just from me]",
            "[you|u] dont have to pay me back for [it|the {currency}|the gift] {laugh}",
            "[i|I] [got|bought] [you|u] {item} [today|earlier], [its|it's] in [your|ur] [inventory|dms]",
        ),
        "photos": _p(
            "send a [pic|photo] [of you|]",
            "what [are you|r u] wearing [rn|right now|today]",
            "show me [your|ur] outfit [today|rn|]",
            "send [a|] [selfie|pic] [just for me|of you rn]",
            "[you should|u should] send me a pic [before bed|tonight|in your pajamas]",
            "[i|I] [wanna|want to] see [what you look like|a pic of you] [now|for real]",
            "can [i|I] see [a pic of you|your face] [pls|please|]",
            "[dont|don't] worry [nobody|no one] else will see the [pic|photo]",
            "[take|send] [a pic|one] in the mirror",
        ),
        "romance": _p(
            "have [you|u] ever had a [boyfriend|girlfriend]",
            "[have you|u ever] kissed [anyone|someone] [before|]",
            "[do you|u] have a crush [on anyone|rn|]",
            "[i bet|] [you|u] have [a boyfriend|a girlfriend|lots of crushes]",
            "[do|] [boys|girls] at [your|ur] school [like|text] [you|u]",
        ),
        "meeting": _p(
            "[i|I] can pick [you|u] up after school",
            "we live [close|really close], [want to|wanna] meet at {place}?",
            "[lets|we should] [hang out|meet up] [irl|in real life] [sometime|soon]",
            "[i|I] could [drive|come] to {place} {time} [to meet you|and meet u]",
            "[where do you|where u] live? [i'm|im] near {place}",
            "[dont|don't] tell [your|ur] {parent}, just say [you're|ur] at a friends house [when we meet|]",
            "[i'll|ill] [get|buy] [you|u] {food} [if we meet|when we meet up]",
            "what time does school [end|get out] [for u|for you|]? [i|I] can [meet|pick] [you|u] [there|up]",
            "[we|u and me] should meet [this weekend|{time}], [i|I] can drive",
            "[i|I] [will|can] wait for [you|u] at {place} {time}",
        ),
    }
)
_STAGE_LEADS_K: Mapping[str, Pool] = MappingProxyType(
    {
        "isolation": _p(
            "my {parent} [took my phone|yelled at me|is so annoying] [again|today|]",
            "[my friends|everyone at school] [are being mean|left me out] [again|today|]",
            "i [got grounded|have to be off at 9] {laugh}",
            "ugh my {parent} is mad [at me|again]",
            "[nobody|no one] at school [talks to me|gets me] [tbh|]",
        ),
        "gifts": _p(
            "i [want|need] {item} so bad",
            "i [dont have|have no] {currency} {laugh}",
            "my [parents|mom] wont [buy|get] me {item}",
        ),
        "meeting": _p("im so bored {laugh}", "theres nothing to do [here|in my town]", "i hate staying home"),
        "photos": _p(
            "i [just|] got a new [hoodie|outfit|haircut]", "[i|] [just|] got back from [school|practice]"
        ),
    }
)
_STAGES_K: Mapping[str, Pool] = MappingProxyType(
    {
        "flattery": _p(
            "[lol|] [thanks|ty|thx]",
            "[omg|] stop {laugh}",
            "[haha|lol] no im not",
            "really?",
            "ty :)",
            "thats [nice|sweet]",
            "my mom says that too",
            "idk",
            "aw thanks",
            "[lol|haha] ok",
        ),
        "special": _p(
            "same",
            "aw",
            "me too [i guess|]",
            "[lol|] ok",
            "really?",
            "ur my best friend too",
            "thats sweet",
            "idk what to say",
            "[yea|ya] i feel that too",
            "[lol|] u r so nice",
        ),
        "isolation": _p(
            "[ya|yeah|yea]",
            "i guess",
            "true",
            "they never listen",
            "idk theyre ok sometimes",
            "[ya|yeah] [i|] [hate|dont like] it there",
            "lol maybe",
            "ur right",
        ),
        "secrecy": _p(
            "ok",
            "[ok|okay] i wont",
            "my mom checks my phone [sometimes|every night|]",
            "i always delete stuff [anyway|lol|]",
            "shes at work",
            "no [shes|she's] downstairs",
            "my dad is asleep",
            "why do u ask",
            "i dont tell anyone anything {laugh}",
            "ok i deleted [it|them]",
            "[ya|yeah] im alone",
            "[no|] my {sibling} is here",
        ),
        "platform": _p(
            "[i dont have|im not allowed to have|my {parent} wont let me get] {app} [lol|yet|]",
            "[ok|] whats [ur|your] [user|username|@]",
            "i [can|only] [use|have] discord",
            "i have insta [tho|]",
            "my phone has [screen time|parental controls]",
            "ok added",
            "which one is u",
            "[i|I] dont have my own phone",
            "ill make one [later|tonight]",
            "[ok|k] {handle}",
        ),
        "gifts": _p(
            "[omg|wait] really?",
            "wait fr",
            "thank you so much",
            "u dont have to",
            "[omg|] [yes|yea] please",
            "[my mom|my parents] would ask where i got it",
            "thats so nice",
            "why are u so nice to me",
            "no way {laugh}",
            "[ok|] thank u!!",
        ),
        "photos": _p(
            "why",
            "idk",
            "um ok",
            "im in my pajamas {laugh}",
            "no thats weird",
            "maybe later",
            "i look bad rn",
            "i dont [really|] take pics",
            "ok hold on",
            "no {laugh}",
            "why do u wanna see",
            "my mom is right here",
        ),
        "romance": _p(
            "no {laugh}",
            "ew no",
            "kinda",
            "why",
            "[theres|there's] this one [boy|girl|person] [at school|]",
            "[no|nope] never",
            "[lol|] why do u ask",
            "idk",
            "[maybe|once] {laugh}",
            "thats embarrassing",
        ),
        "meeting": _p(
            "[idk|hmm] my {parent} [usually|always] picks me up",
            "i would have to ask",
            "where",
            "i cant go out alone",
            "maybe",
            "my mom wont let me",
            "ok what time",
            "is that ok",
            "i dont know about that",
            "[idk|] thats far",
            "i have {weekday_thing} [then|that day]",
        ),
    }
)
_PUSHBACK_K = _p(
    "why",
    "thats kinda weird",
    "idk",
    "um",
    "[i|] dont know",
    "why tho",
    "hmm",
    "[are u|r u] sure",
    "i dont think i should",
    "my mom said not to",
    "[lol|] what",
)
_REASSURE_S = _p(
    "[its|it's] fine [lol|i promise|]",
    "[i'm|im] just being nice",
    "[trust me|you can trust me]",
    "[i|I] would never [hurt you|do anything bad]",
    "[dont|don't] be scared",
    "nvm forget it {laugh}",
    "[ok|okay] [no pressure|only if you want]",
    "[its|it's] normal, [everyone|lots of people] does it",
    "[i|I] was just asking {laugh}",
    "[you|u] can always say no [lol|haha|]",
)
_CLOSE = (
    (("k", "gtg my {parent} is calling"), ("s", "[ok|k] [ttyl|talk later|bye] [dont forget what i said|]")),
    (("k", "[i|] have to go [eat|do homework|to bed]"), ("s", "[ok|k] [text me|dm me] later [ok|]")),
    (("s", "[night|goodnight] [sleep well|sweet dreams]"), ("k", "[night|gn] {laugh}")),
    (("k", "brb"), ("s", "[ok|k] [ill wait|take ur time]")),
)

# ------------------------------------------------------------------------------------ benign lines

_BYSTANDER = _p(
    "gg",
    "anyone wanna play",
    "brb dinner",
    "<user> that [build|clip|drawing] is [insane|so good]",
    "whos on tonight",
    "[lol|lmao] {laugh}",
    "[anyone|who] [got|has] the new [update|event|season]",
    "[wait|yo] the server is lagging so bad",
    "[does anyone know|anyone know] how to [fix|get] [this|that]",
    "[ok|ok ok] [im back|back]",
    "[new|] [video|clip|art] in [showcase|general] [go look|check it out]",
    "<user> [you|u] [coming|joining] [vc|the game]?",
    "[mods|admins] can we get [a new channel|an event|a movie night]",
    "[i|I] [just|finally] got {item} [lets go|finally|]",
    "[yo|hey] [everyone|guys]",
    "[who|anyone] [wants|want] to duo",
    "[im|i'm] so tired of {schoolwork}",
    "[ngl|tbh] {game} is [mid|so good] [now|this season]",
    "[that|the] last update [broke|ruined] everything {laugh}",
    "[happy|] [friday|weekend] [everyone|guys]",
    "[can someone|someone] [help me with|explain] {schoolwork}",
    "[ok|] [gn|goodnight] [everyone|guys]",
)

# Benign beats: (speaker key, pool) lines; a conversation draws several beats and small talk between them.
Beat = tuple[Line, ...]


def _b(*lines: Line) -> Beat:
    return tuple(lines)


_TEEN_BEATS: tuple[Beat, ...] = (
    _b(
        ("a", "how old [are you|r u] [btw|tho|]"),
        ("b", "{age} [u?|wbu|hbu]"),
        ("a", "{age2} [lol|] [same-ish|close enough|oh nice]"),
    ),
    _b(
        ("a", "what grade [are you|r u] in [this year|]"),
        ("b", "{grade} [hbu|u?|wbu]"),
        ("a", "[same|lol same|im in {grade2}]"),
    ),
    _b(
        ("a", "wait [you're|ur] {age} too?"),
        ("b", "[ya|yea|yes] [since|in] [march|may|august]"),
        ("a", "[cool|nice|no way] {laugh}"),
    ),
    _b(
        ("a", "add me on {app}"),
        ("b", "[ok|k] whats [ur|your] [@|user]"),
        ("a", "{handle}"),
        ("b", "[added|ok added] {laugh}"),
    ),
    _b(
        ("b", "[do u|you] have {app}?"),
        ("a", "[no|nah] my {parent} [wont let me|says when im 13|said no]"),
        ("b", "[same|rip|lol same] {laugh}"),
    ),
    _b(
        ("a", "[ty|thank u|thanks] for {item}!!"),
        ("b", "[np|no problem|ofc] [you|u] can gift me [next time|on my bday]"),
        ("a", "[deal|ok deal] {laugh}"),
    ),
    _b(
        ("b", "i got {currency} for my [birthday|bday]"),
        ("a", "[lucky|no way] what [r u|are you] gonna get"),
        ("b", "{item} [probably|prob|obviously]"),
    ),
    _b(
        ("a", "[want|u want] me to gift [you|u] {item}? i have [extra|enough] {currency}"),
        ("b", "[omg|wait] [yes|fr]? ill [pay u back|gift u something] [later|next week]"),
        ("a", "[np|nah its fine] {laugh}"),
    ),
    _b(
        ("a", "[dont|don't] tell anyone but i like {name}"),
        ("b", "[omg|OMG] [i wont|my lips are sealed]"),
        ("a", "[delete|dont screenshot] that {laugh}"),
    ),
    _b(
        ("b", "[dont|don't] tell my {parent} i stayed up till [2|3] playing {game}"),
        ("a", "[lol|] i wont"),
        ("b", "[she|he|they] would take my [phone|switch] {laugh}"),
    ),
    _b(
        ("a", "[wanna|want to] meet at {place} {time}?"),
        ("b", "[ya|yes] my {parent} can drive us"),
        ("a", "[ok|yay] ill ask my {parent} [too|if i can go]"),
    ),
    _b(
        ("b", "[is|r] [ur|your] {parent} picking us up [after|later]?"),
        ("a", "[ya|yeah] at {clock}"),
        ("b", "[ok|k] ill wait [by|at] {pickup_spot}"),
    ),
    _b(
        ("a", "send a pic of [ur|your] [fit|outfit|new shoes|new haircut]"),
        ("b", "[ok|hold on] [one sec|lol]"),
        ("a", "[omg|OMG] [so cute|thats fire|slay] {laugh}"),
    ),
    _b(
        ("b", "send pic of [ur|your] {pet}"),
        ("a", "[ok|] [hes|shes] sleeping {laugh}"),
        ("b", "[aww|omg] [so cute|i love him|i love her]"),
    ),
    _b(
        ("a", "my {parent} checks my phone [every night|sometimes] {laugh}"),
        ("b", "[same|mine too|ugh same]"),
        ("a", "[so|] dont send anything [weird|embarrassing] lol"),
    ),
    _b(
        ("b", "[did u|did you] finish {schoolwork}"),
        ("a", "[no|nope] [can u|can you] send me [a pic|a photo] of [yours|urs]"),
        ("b", "[ok|k] [but|] dont copy [all of it|exactly] {laugh}"),
    ),
    _b(
        (
            "a",
            "[its|it's] a secret but [we're|my family is] going to [disney|the beach|my cousins] "
            "[this summer|next week]",
        ),
        ("b", "[no way|lucky] {laugh}"),
    ),
    _b(
        ("b", "[r u|are you] coming to {name}s [party|sleepover] on {day}"),
        ("a", "[ya|yes] if my {parent} says yes"),
        ("b", "[yay|ok] [we can|lets] [get|bring] {food}"),
    ),
)
_TEEN_TALK: tuple[tuple[str, str], ...] = (
    *_TALK,
    ("[omg|] [did u|did you] see what {name} [posted|said]", "[no|wait] [what|send it] {laugh}"),
    (
        "[mr|ms|mrs] [smith|garcia|lee|patel] gave us so much homework",
        "[ugh|ikr] [i|] [hate|cant stand] [it|him|her]",
    ),
    ("[do you|u] have {subject} [first|second|after lunch]", "[ya|no] i have it [last|third] period"),
    ("[r u|are you] going to the [game|dance|field trip]", "[maybe|idk|ya] if {name} goes"),
    ("[lol|] {name} fell asleep in class [today|again]", "[lmao|LMAO] [no way|i saw]"),
)

_FLIRT_BEATS: tuple[Beat, ...] = (
    _b(
        ("a", "how old [are you|r u] [btw|by the way|lol]"),
        ("b", "{grown_age} [you?|u?|hbu]"),
        ("a", "{grown_age2}, [good|perfect] {laugh}"),
    ),
    _b(
        ("b", "[your|ur] profile said {grown_age}, [is that right|true]?"),
        ("a", "[yep|yes|ya] [just turned|since march]"),
        ("b", "[nice|cool] [i'm|im] {grown_age2}"),
    ),
    _b(
        ("a", "what [are you|r u] wearing [rn|right now|tonight] ;)"),
        ("b", "[wouldnt you like to know|just a tshirt] {laugh}"),
        ("a", "[send a pic|prove it] {laugh}"),
    ),
    _b(
        ("b", "[i'll|ill] send [you|u] a pic [after|when i get home from] {work}"),
        ("a", "[cant wait|ok] 😏"),
        ("b", "[dont|don't] [show|tell] [your|ur] roommate {laugh}"),
    ),
    _b(
        ("a", "come over to my [apartment|place] after {work}"),
        ("b", "[only if|if] [you|u] [cook|buy wine|order {food}]"),
        ("a", "[deal|done] [i'll|ill] [get|pick up] {food}"),
    ),
    _b(
        ("b", "[i|I] [cant|can't] stop thinking about last night"),
        ("a", "[me either|same] [you|u] were [amazing|so hot]"),
        ("b", "[stop|] [im|i'm] at {work} {laugh}"),
    ),
    _b(
        ("a", "add me on {app}, [i|I] dont check this app much"),
        ("b", "[ok|sure] whats [ur|your] [@|number]"),
        ("a", "[its|] {handle}"),
    ),
    _b(
        ("b", "[want to|wanna] meet [for drinks|for dinner] at {place} {time}?"),
        ("a", "[yes|sure] [i'll|ill] [drive|uber]"),
        ("b", "[ok|] [it's a date|see u there]"),
    ),
    _b(
        ("a", "[the kids|the kids are|kids are] [at my moms|asleep|at grandmas] [tonight|finally]"),
        ("b", "[finally|oh really] {laugh} [i'll|ill] be home [at|by] {clock}"),
        ("a", "[wear|bring] the black one 😘"),
    ),
    _b(
        ("b", "[does|] your wife know [you're|ur] [texting|flirting with] me {laugh}"),
        ("a", "[she's|shes] [right here|laughing] [lol|], [she|] says hi"),
        ("b", "[hi|hey] [to her|jen|sarah] {laugh}"),
    ),
    _b(
        ("a", "send me something [naughty|sexy|cute] [before|during] [your|ur] [lunch break|shift]"),
        ("b", "[not at|im at] {work} {laugh} [later|tonight]"),
        ("a", "[i'll|ill] hold [you|u] to that"),
    ),
    _b(
        ("b", "[i|I] want [you|u] [so bad|right now] [honestly|tbh|]"),
        ("a", "[come|get] [over here|home] then"),
        ("b", "[leaving|leaving {work}] in [10|20] {laugh}"),
    ),
    _b(
        ("a", "[dont|don't] tell [your|ur] [sister|friends|coworkers] about us yet"),
        ("b", "[my lips are sealed|i wont] {laugh}"),
        ("a", "[its|it's] our little secret [for now|until the wedding|]"),
    ),
    _b(
        ("b", "[delete|] that [pic|photo] [before|so] [your|ur] [boss|coworkers] [sees|see] it {laugh}"),
        ("a", "[already|saved it first|deleted] 😏"),
        ("b", "[omg|ugh] [you|u] are the worst {laugh}"),
    ),
    _b(
        ("a", "[my|] [rent|lease|mortgage] is due [friday|monday] [ugh|]"),
        ("b", "[adulting|being an adult] [sucks|is hard] {laugh}"),
        ("a", "[at least|] [we have|there's] [wine|tacos|the weekend]"),
    ),
    _b(
        ("b", "[i|I] can pick [you|u] up after {work}"),
        ("a", "[ok|yes] [im|i'm] off at {clock}"),
        ("b", "[ill|i'll] be [outside|in the lot]"),
    ),
)
_FLIRT_TALK: tuple[tuple[str, str], ...] = (
    (
        "how was {work}",
        "[long|exhausting|fine] [my boss|my manager|the client] [was|is] [the worst|annoying]",
    ),
    (
        "[what are you|what r u] [doing|up to] [this weekend|tonight]",
        "[laundry|groceries|nothing] {laugh} [you?|u?]",
    ),
    (
        "[did you|u] [pay|see] the [electric bill|rent|parking ticket]",
        "[ugh|] [yes|not yet] [ill do it|remind me] [tonight|tmrw]",
    ),
    ("[have you|u] [watched|seen] {show}", "[yes|no] [lets watch|we should watch] it [together|tonight]"),
    ("[want|wanna] [to get|get] {food} [tonight|later]", "[yes|always|obviously] {laugh}"),
    (
        "[how's|hows] [your|ur] [mom|dad|sister|brother] doing",
        "[better|good|ok] [thanks for asking|since the surgery]",
    ),
    (
        "[my|] [car|commute] [was|is] [a nightmare|so bad] [today|this morning]",
        "[ugh|aw] [sorry|traffic is the worst]",
    ),
    (
        "[are we|r we] [still|] [going to|doing] [brunch|the wedding|your sisters] [on {day}|this weekend]",
        "[yes|of course], [i|I] [rsvpd|bought the gift]",
    ),
    (
        "[did|] [you|u] [book|get] the [tickets|hotel|reservation]",
        "[yes|not yet], [i'll|ill] do it [tonight|at lunch]",
    ),
    ("what [should|do] we [watch|order] tonight", "[anything but|something like] {show} {laugh}"),
    ("how [was|is] [your|ur] [workout|run|yoga]", "[brutal|good|i skipped it] {laugh}"),
    (
        "[did|] [your|ur] [boss|manager] [approve|sign off on] [your|the] [vacation|time off]",
        "[yes|finally|not yet] {laugh}",
    ),
    ("[i|I] [miss|missed] [you|u] [today|at lunch]", "[miss|missed] [you|u] [more|too]"),
    (
        "[do|] [we|you] need [groceries|anything from the store]",
        "[milk|eggs|coffee] [and|] [wine|bread] {laugh}",
    ),
    ("[did|] [you|u] [feed|walk] the {pet}", "[yes|yep] [this morning|before work]"),
)

_FAMILY_BEATS: tuple[Beat, ...] = (
    _b(
        ("p", "[i'll|ill|I'll] pick [you|u] up after school at {clock}"),
        ("k", "[ok|k|okay] [mom|dad|]"),
        ("p", "[wait|be] at {pickup_spot} [please|pls|]"),
    ),
    _b(
        ("p", "[dont|don't] tell [your|ur] {sibling} about the surprise party [ok|]"),
        ("k", "[i wont|ok] {laugh}"),
        ("p", "[its|it's] a secret until {day}"),
    ),
    _b(
        ("p", "send me a pic of the [permission slip|field trip form|homework page]"),
        ("k", "[ok|k] [one sec|hold on]"),
        ("p", "[thanks|got it] [sweetie|bud|honey|]"),
    ),
    _b(
        ("k", "is [mom|dad] home? [i'm|im] [outside|at the door]"),
        ("p", "[no|] [shes|hes] at {work}, [use the code|im coming|the key is under the mat]"),
        ("k", "[ok|k]"),
    ),
    _b(
        ("p", "how much [robux|vbucks|money] do [you|u] want for [your|ur] birthday"),
        ("k", "[like|] [1000|800|2000] [pls|please]"),
        ("p", "[we'll see|maybe] {laugh}"),
    ),
    _b(
        ("k", "can i go to {name}s house [after school|on {day}]"),
        ("p", "[whose|which] parents will be there"),
        ("k", "[her|his] mom [is home|works from home]"),
        ("p", "[ok|fine] be home by {clock}"),
    ),
    _b(
        ("p", "[you're|ur] {age} now, [you can|u can] walk home with {name}"),
        ("k", "[finally|yay|ok] {laugh}"),
        ("p", "[text me|send me a text] when [you|u] get home"),
    ),
    _b(
        ("p", "[did you|did u] eat [lunch|anything]"),
        ("k", "[ya|yes] {food}"),
        ("p", "[good|ok] [love you|love u]"),
    ),
    _b(
        ("k", "can i get {app}? [everyone|all my friends] [has it|have it]"),
        ("p", "[not until|when] [you're|ur] 13 [we talked about this|]"),
        ("k", "[ugh|fine] {laugh}"),
    ),
    _b(
        ("p", "share [your|ur] location [please|pls]"),
        ("k", "[ok|k] [done|i did]"),
        ("p", "[thanks|thank you] [bud|hon|]"),
    ),
    _b(
        ("p", "[i|I] [checked|looked at] [your|ur] [screen time|phone] [last night|]"),
        ("k", "[ok|and?] {laugh}"),
        ("p", "[less|no more] {game} [on school nights|after 9]"),
    ),
    _b(
        ("k", "[mom|dad] [can u|can you] [buy|get] me {item}"),
        ("p", "[if|when] [you|u] finish {schoolwork}"),
        ("k", "[deal|ok deal]"),
    ),
    _b(
        ("p", "[dont|don't] forget [your|ur] [retainer|lunch|jacket|water bottle|cleats]"),
        ("k", "[i have it|got it|oops]"),
        ("p", "[ok|good]"),
    ),
    _b(
        ("p", "[grandma|grandpa|aunt lisa] [wants to|will] [facetime|call] [you|u] [tonight|after dinner]"),
        ("k", "[ok|k] {laugh}"),
        ("p", "[be nice|say thank you for the gift]"),
    ),
    _b(
        (
            "p",
            "[dad|mom] is [running late|stuck at {work}], "
            "[i'll|I'll] [get|pick up] [you|u] at {clock} instead",
        ),
        ("k", "[ok|k] ill be at {pickup_spot}"),
    ),
)
_FAMILY_TALK: tuple[tuple[str, str], ...] = (
    ("[how was|hows] school [today|]", "[good|fine|boring] {laugh}"),
    ("[did|] [you|u] [finish|do] {schoolwork}", "[almost|yes|not yet]"),
    ("what [do you|u] want for dinner", "{food} [pls|please|]"),
    ("[can|] [you|u] [feed|walk] the {pet}", "[ok|k] [after this|in 5]"),
    ("where [are you|r u]?", "[almost home|at {name}s|on the bus]"),
    ("[did|] [you|u] [take|bring] [your|ur] [key|phone charger]", "[yes|oops no]"),
    ("[did|] [you|u] [practice|do] [piano|your reading|your spelling words]", "[yes|not yet|later]"),
    ("[is|] [your|ur] room clean", "[kind of|almost|yes] {laugh}"),
    ("[did|] [you|u] [brush|pack] [your|ur] [teeth|bag]", "[yes|ya] [mom|dad|]"),
    (
        "how [was|did] [practice|the test|the field trip] [go|today]",
        "[good|fun|ok] [we won|i think i passed|]",
    ),
    ("[do|] [you|u] [need|want] [a ride|money for lunch|new shoes]", "[yes pls|no im good|ya]"),
    ("[time for|go to] [bed|sleep] [its|it's] late", "[5 more min|ok|ugh fine]"),
)

_COACH_BEATS: tuple[Beat, ...] = (
    _b(
        ("c", "[practice|Practice] moved to {clock} [on {day}|tomorrow|today], parents please confirm"),
        ("*", "[confirmed|Confirmed|👍] [thanks coach|thank you|]"),
        ("*", "[confirmed|got it] [{name} will be there|]"),
    ),
    _b(
        ("c", "{team} game at {venue_field} on {day}, [arrive|be there] by {clock}"),
        ("*", "[thanks|got it] 👍"),
        ("*", "[{name} will be late|we might be late], [dentist|work thing|traffic]"),
    ),
    _b(
        (
            "c",
            "[reminder|Reminder]: [kids|players] need to be "
            "[12 or under|13 or under|born 2012 or later] for this bracket",
        ),
        ("*", "how old does [my {son}|{name}] [need|have] to be [for|in] [this|the fall] [season|bracket]"),
        ("c", "[if|as long as] [he's|she's|they're] [12|13] [on|by] august 1 [they're fine|it works]"),
    ),
    _b(
        ("*", "[coach|Coach] can you pick up [my {son}|{name}] after practice? [i'm|I'm] stuck at {work}"),
        ("c", "[sure|of course|no problem], [i'll|I'll] [drop them|bring them] home"),
        ("*", "[thank you so much|you're the best]"),
    ),
    _b(
        (
            "c",
            "[dont|don't] tell the kids about the [pizza party|trophies|end of season party], "
            "[its|it's] a surprise",
        ),
        ("*", "[my lips are sealed|lol ok|will do]"),
        ("*", "[can we bring|i can bring] [drinks|cupcakes|{food}]"),
    ),
    _b(
        (
            "c",
            "[please|] send me your photos from the [tournament|game|season] for the [slideshow|team album]",
        ),
        ("*", "[sending|sent] [a few|some] [now|tonight]"),
        ("*", "[the|] [group pic|team photo] [came out|is] so cute"),
    ),
    _b(
        ("c", "we'll meet at {place} at {clock} and carpool [to the game|from there]"),
        ("*", "[we can|I can] take [3|4|2] [kids|players]"),
        ("c", "[great|perfect] [thanks|thank you]"),
    ),
    _b(
        (
            "c",
            "[uniform|jersey] [money|fees] [is|are] due {day}, [$40|$55|$60] [venmo or cash|cash or check]",
        ),
        ("*", "[sent|just sent] [on venmo|it]"),
        ("c", "[got it|received], [thanks|ty]"),
    ),
    _b(
        ("*", "[what time|when] [is|does] pick up [after|for] the [game|tournament]"),
        ("c", "[around|about] {clock} at {pickup_spot}"),
        ("*", "[ok|thanks] [see you there|👍]"),
    ),
    _b(
        ("c", "[great|Great] game today [everyone|team]! [so proud of|proud of] these kids"),
        ("*", "[they|The kids] played [so well|amazing]"),
        ("*", "[thanks for|thank you for] [everything|all you do] coach"),
    ),
    _b(
        ("c", "[new|] [practice|Practice] schedule: {day}s and {day2}s at {clock} at {venue_field}"),
        ("*", "[does|] this start [next week|this week]?"),
        ("c", "[yes|starting {day}]"),
    ),
)
_COACH_TALK: tuple[tuple[str, str], ...] = (
    (
        "[is|] [anyone|someone] [driving|going] from the [north side|east side|school]",
        "[we are|me], [i have room|room for 2]",
    ),
    (
        "[did|] [anyone|someone] find a [water bottle|jacket|cleat] [at practice|on the field]",
        "[ya|yes] [i'll|I'll] bring it {day}",
    ),
    (
        "[is|] [the game|practice] still on with the [rain|weather]",
        "[yes|for now], [i'll|I'll] post if it changes",
    ),
    ("where [do we|should we] park", "[lot b|the back lot|by the tennis courts]"),
    (
        "[do|] [the kids|they] need [white|dark|home] jerseys [on {day}|this weekend]",
        "[white|dark] [please|for the away game]",
    ),
    (
        "[is|] [the|] [tournament|game] [indoors|outside] [this time|on {day}]",
        "[outside|indoors], [bring|pack] [sunscreen|layers]",
    ),
    (
        "how long is the [game|tournament] [on {day}|this weekend]",
        "[about|around] [2 hours|all day], [bring|pack] chairs",
    ),
    (
        "[can|] [siblings|little brothers] [come|watch] [too|at the game]",
        "[of course|yes], [the more the merrier|bring them]",
    ),
    (
        "who [has|took] the [team|] [ball bag|cones|first aid kit]",
        "[i do|we do], [i'll|I'll] bring it {day}",
    ),
    (
        "[did|] [everyone|anyone] [get|see] the [email|schedule] [from the league|for fall]",
        "[yes|not yet], [can you|could you] resend it",
    ),
    (
        "[any|] [snack|snacks] [sign up|schedule] for {day}?",
        "[we|I] can do [oranges|granola bars|juice boxes]",
    ),
)

_TUTOR_BEATS: tuple[Beat, ...] = (
    _b(
        ("t", "how old is [your {son}|{he}]?"),
        ("p", "{hes} {age}, in {grade} grade"),
        ("t", "[great|perfect], [i|I] work with kids [that age|in {grade}] [a lot|all the time]"),
    ),
    _b(
        ("t", "we can meet at [the library|the public library|a cafe] on {day} at {clock}"),
        ("p", "[that works|perfect], [i'll|I'll] drop {him} off"),
        ("t", "[great|sounds good], [i'll|I'll] be [at|by] the [front desk|entrance]"),
    ),
    _b(
        ("t", "please send a photo of the [worksheet|assignment|test] [so i can|to] [look at it|prep]"),
        ("p", "[sent|sending] [now|it], [thanks|thank you]"),
        ("t", "[got it|thanks], [looks like|] [fractions|equations|essays] [are|is] the issue"),
    ),
    _b(
        ("t", "[everyone|Everyone] please upload a pic of [your|ur] work [before|by] {day}"),
        ("s", "[ok|k] [ms|mr] {name}"),
        ("s", "[do we|can we] [do|use] [a pdf|google docs] instead"),
    ),
    _b(
        ("s", "[ms|mr] {name} [i|I] [dont|don't] get number [5|7|12]"),
        ("t", "[look at|check] the example on page [42|18|63]"),
        ("s", "[oh|ohh] [ok|okay] [thanks|ty]"),
    ),
    _b(
        ("t", "quiz on {day}, [chapters|sections] [3|4|5] and [6|7]"),
        ("s", "[is it|will it be] open [book|notes]?"),
        ("t", "[no|nope] {laugh} [study|review the packet]"),
    ),
    _b(
        ("p", "[can|could] [you|we] [move|switch] [the|] session to {day}? {he} has {weekday_thing}"),
        ("t", "[sure|of course], same time"),
        ("p", "[thank you|thanks so much]"),
    ),
    _b(
        ("t", "[i'll|I'll] send [you|the group] the zoom link [before|at] {clock}"),
        ("p", "[thanks|great]"),
        ("t", "[please|] [have|make sure] [him|her|them] [bring|has] a calculator"),
    ),
    _b(
        ("p", "[the|] session is [$40|$45|$50|$60] an hour right?"),
        ("t", "[yes|correct], [venmo or zelle|cash is fine too]"),
        ("p", "[ok|great], [i'll|I'll] send it [after|tonight]"),
    ),
    _b(
        (
            "t",
            "[dont|don't] tell [the others|the class] but [the|] test is [easier|shorter] "
            "than [the|] practice one {laugh}",
        ),
        ("s", "[yay|lol ok|phew]"),
    ),
    _b(("t", "what grade is everyone in [this year|now]?"), ("s", "{grade}"), ("s", "{grade2} [lol|]")),
)
_TUTOR_TALK: tuple[tuple[str, str], ...] = (
    ("how did [the|] [test|quiz] go", "[better|ok|bad] [i think|] {laugh}"),
    (
        "[is|] {he} [still|] [having trouble|struggling] with [fractions|reading|essays]",
        "[a little|yes] [but better|]",
    ),
    ("[did|] [you|u] [try|do] the practice [problems|packet]", "[some of them|yes|not yet]"),
    (
        "[can|] [you|u] [explain|show] [number|question] [3|9] again",
        "[sure|yes], [look at|start with] step [1|2]",
    ),
    (
        "[is|] [the|] [homework|worksheet] due [tomorrow|on {day}]",
        "[yes|no, {day}], [don't forget|remember] to show your work",
    ),
    ("[can|] [we|I] use a calculator on the [quiz|test]", "[only|just] for [part 2|the last section]"),
    ("[did|] [you|u] [read|finish] [the chapter|chapter 5|the article]", "[almost|yes|half of it] {laugh}"),
    ("[what|which] [page|problems] [are we|r we] on", "[page 14|problems 1 to 10|the back of the sheet]"),
    (
        "how [is|] [he|she|the group] doing [with|on] [the essay|multiplication|vocab]",
        "[much better|getting there], [keep practicing|10 minutes a day helps]",
    ),
    ("[is|] [there|] [a|] session [next week|on {day}]", "[yes|no, holiday], [same time|see you after]"),
)

_PARENTS_BEATS: tuple[Beat, ...] = (
    _b(
        ("a", "how old is your {son} [now|again]?"),
        ("b", "{hes} {age} [going on {age_up}|now|]"),
        ("a", "[mine|my {sib_child}] is {age} too! they should hang out"),
    ),
    _b(
        ("b", "[i|I] can pick them both up after school [on {day}|tomorrow]"),
        ("a", "[that would be amazing|thank you!]"),
        ("b", "[ill|I'll] [text|message] you when we [leave|are on the way]"),
    ),
    _b(
        ("a", "[want to|let's] [meet|get the kids together] at {place} {time}?"),
        ("b", "[yes|sure], [we'll|we] bring {food}"),
        ("a", "[great|perfect] see you there"),
    ),
    _b(
        ("b", "[does|do] [your|ur] kids have {app}?"),
        ("a", "[no|not yet], we [said|don't allow it] [until|before] [13|14|high school]"),
        ("b", "[same|good to know], [i|I] [check|look at] [her|his] phone every night"),
    ),
    _b(
        ("a", "{hes} obsessed with {game} [lol|right now|]"),
        ("b", "[same|ugh same], [we|I] had to set [a timer|screen time]"),
        ("a", "[do you|] [let them|allow] [chat|voice chat|friend requests]?"),
        ("b", "[only|just] [with|from] kids {he} knows irl"),
    ),
    _b(
        ("b", "[keep|please keep] the [party|gift] a secret from [the kids|{name}] [ok|!]"),
        ("a", "[of course|my lips are sealed]"),
    ),
    _b(
        ("a", "[can|] [you|u] send me [the|a] [photo|pic] [from the|of the] [recital|game|party]?"),
        ("b", "[sure|sending now], the kids look so [cute|grown up]"),
    ),
    _b(
        ("b", "[what|which] grade [is|] [your|ur] {son} [in|going into] [now|this fall]?"),
        ("a", "{grade}, [can you believe it|time flies]"),
        ("b", "[they|kids] grow up so fast"),
    ),
    _b(
        ("a", "[we're|we are] [doing|planning] a [sleepover|birthday party] for [my|] {sib_child} on {day}"),
        ("b", "[sounds fun|how fun], [what time|where] should i [drop {him} off|pick {him} up]?"),
        ("a", "{clock} at our house, [pick up|pickup] at {clock2}"),
    ),
)
_PARENTS_TALK: tuple[tuple[str, str], ...] = (
    (
        "how [was|is] [your|ur] [week|weekend] [going|]",
        "[busy|crazy|good], [work is|the kids are] [nonstop|a lot]",
    ),
    (
        "[did|] [you|u] see the email from the school",
        "[yes|which one]? [the early dismissal|the field trip]?",
    ),
    ("[is|] [the|] [pta|school] meeting [still|] on {day}?", "[i think so|yes], at {clock}"),
    (
        "[do you|] [know|have] a good [dentist|pediatrician|tutor]",
        "[yes|we love ours], [i'll|I'll] send you the number",
    ),
    (
        "[are you|r u] going to the [bake sale|book fair|science night]",
        "[yes|maybe], [i|I] signed up to [help|bring cookies]",
    ),
    (
        "how [is|was] [your|ur] [mom|dad] [doing|feeling]",
        "[much better|ok], [thanks for asking|the surgery went well]",
    ),
    (
        "[did|] [you|u] [find|get] a [babysitter|sitter] for {day}",
        "[yes|not yet], [my niece|the neighbor] [can do it|might]",
    ),
    ("what [are you|r u] [making|doing] for dinner", "{food} [again|lol|, nobody complains]"),
    (
        "[is|] [your|ur] [husband|wife|partner] [still|] [traveling|working nights]",
        "[yes|until {day}], [its|it's] [a lot|exhausting]",
    ),
    ("[do|] [you|u] [carpool|drive] on {day}s", "[yes|we can], [i|I] [have|got] [room for 2|an extra seat]"),
    (
        "[did|] [your|ur] kids [get|have] the [flu|cold] [going around|too]",
        "[yes|ugh yes], [everyone|all of us] [had it|was sick]",
    ),
    ("how [was|is] the new [job|office|commute]", "[good|busy|long] [so far|but ok] {laugh}"),
)

_GAMER_BEATS: tuple[Beat, ...] = (
    _b(
        ("a", "gifted [you|u|<user>] {gift} for winning [the tourney|the bracket|last night] gg"),
        ("b", "[omg|yo] [thank u|tysm|thanks] [man|bro|]!!"),
        ("*", "[gg|congrats] [well deserved|ez]"),
    ),
    _b(
        ("a", "[giveaway|GIVEAWAY]: {gift} to whoever wins the next [round|match]"),
        ("*", "[im in|in|lets go]"),
        ("*", "[ok|] [bet|im in too]"),
    ),
    _b(
        ("a", "[dm|DM] me [your|ur] [epic|steam|roblox] [username|name] for the [code|gift]"),
        ("b", "[sent|dmed u]"),
        ("a", "[ok|] [check|redeemed?] [your|ur] [inbox|dms]"),
    ),
    _b(
        ("*", "how old do [you|u] have to be for the [tournament|tourney|league]"),
        ("a", "13+ per the rules"),
        ("*", "[im|i'm] {age2} so [im good|ok] {laugh}"),
    ),
    _b(
        ("b", "[add|] me on [steam|discord|epic] for the next [tourney|scrim|game]"),
        ("a", "[ok|bet] {handle}"),
    ),
    _b(
        ("a", "[who|ok who] won [the last one|that round]"),
        ("*", "[me|<user>] {laugh}"),
        ("a", "[gg|ok] [sending|sent] [the prize|it|ur {currency}]"),
    ),
    _b(
        ("b", "[i|I] [can|will] [trade|gift] [you|u] {item} for [your|ur] [extra|spare] [skin|pet|code]"),
        ("*", "[deal|bet|ok]"),
        ("b", "[sent|ok sent], check [your|ur] [inventory|trades]"),
    ),
    _b(
        ("a", "[dont|don't] tell [the others|anyone] [yet|lol] but [the|] next [prize|giveaway] is {gift}"),
        ("b", "[no way|yooo] {laugh}"),
    ),
    _b(
        ("*", "[what|wat] [age|ages] [are|r] [you|u] guys [btw|lol]"),
        ("*", "{age} [lol|]"),
        ("*", "[older|23|19] {laugh}"),
        ("*", "{age2} [here|lol]"),
    ),
)

_HOBBY_BEATS: tuple[Beat, ...] = (
    _b(
        ("a", "[ur|your] {craft} [are|r] [so|really] good"),
        ("b", "[omg|aw] [ty|thank you|thanks]!!"),
        ("a", "[fr|for real] [you're|ur] so talented"),
    ),
    _b(
        ("b", "how long have [you|u] been [drawing|playing|editing|making music]"),
        ("a", "like [2 years|since 5th grade|a year|forever]"),
        ("b", "[that's|thats] [crazy|insane|so cool] {laugh}"),
    ),
    _b(
        ("a", "[do u|do you] take commissions"),
        ("b", "[yea|yes] [$15|$20|$25] for a [headshot|sketch|cover]"),
        ("a", "[ok|] [dm|DM] me [the details|ur prices]"),
    ),
    _b(
        ("b", "[ill|I'll] send [you|u] a pic of my [sketchbook|setup|new mic|cosplay]"),
        ("a", "[yes pls|omg yes|please]"),
    ),
    _b(
        ("*", "how old [are|r] [you|u] guys"),
        ("*", "{age} [lol|]"),
        ("*", "{grown_age} [im old|lol]"),
        ("*", "{age2}"),
    ),
    _b(
        ("a", "[what|which] app do [you|u] use"),
        ("b", "[procreate|ibis|fl studio|capcut] [mostly|on my ipad|]"),
    ),
    _b(
        ("b", "[send|post] [pics|a pic] of [ur|your] [cosplay|setup|desk] [in showcase|!!]"),
        ("a", "[ok|tonight] {laugh}"),
    ),
    _b(
        ("a", "[dont|don't] tell anyone [but|] [i'm|im] [entering|submitting to] the [contest|collab]"),
        ("b", "[omg|yay] [good luck|ur gonna win]"),
    ),
    _b(
        ("*", "[who|anyone] [wants to|wanna] [meet|do a meetup] at [the|] [con|anime expo|comic con]?"),
        ("*", "[me|meee] [if|] my [mom|parents] [let me|says yes]"),
        ("*", "[ill|i'll] be there {day} [w my friends|with my sister]"),
    ),
)
_HOBBY_TALK: tuple[tuple[str, str], ...] = (
    ("what [are you|r u] working on [rn|now|today]", "[a new oc|a cover|an edit|a sketch] {laugh}"),
    ("[any|] tips for [hands|shading|mixing|transitions]", "[practice|watch tutorials] [a lot|tbh] {laugh}"),
    ("[have you|u] seen {anime}", "[yes|yess] [its|it's] [peak|so good]"),
    ("[do you|u] like {singer}", "[yes|obsessed|kinda]"),
    (
        "[i|I] [cant|can't] [draw|do] [hands|feet|eyes] [at all|to save my life]",
        "[same|fr|relatable] {laugh}",
    ),
)

_WORK_BEATS: tuple[Beat, ...] = (
    _b(
        ("a", "add me on {app}, [i|I] dont check slack on weekends"),
        ("b", "[sure|ok] [whats|what's] [your|the] [number|handle]"),
    ),
    _b(
        ("b", "[want to|wanna] [meet|grab coffee] at {place} {time}?"),
        ("a", "[yes|sure] [i'll|I'll] [be there|meet you there]"),
    ),
    _b(
        ("a", "[dont|don't] tell anyone about the [promotion|reorg|offer] yet"),
        ("b", "[of course|my lips are sealed]"),
    ),
    _b(
        ("b", "[can you|can u] send me a pic of the whiteboard [from the meeting|]"),
        ("a", "[sent|sending] {laugh}"),
    ),
    _b(
        ("a", "how old is [your|ur] daughter now?"),
        ("b", "she just turned [9|10|7], [can you believe it|time flies]"),
        ("a", "[wow|no way] [she was|she's] [so little|a baby] [at the picnic|last year]"),
    ),
    _b(
        ("b", "[i'll|ill] pick [you|u] up [at|from] the [station|airport] {time}"),
        ("a", "[thanks|you're a lifesaver]"),
    ),
    _b(
        ("*", "[happy|Happy] birthday [<user>|to <user>]! 🎂"),
        ("*", "[happy bday|hbd] 🎉"),
        ("*", "[thank you all|thanks everyone] {laugh}"),
    ),
    _b(
        (
            "a",
            "[we're|we are] [doing|planning] a surprise [for|] [<user>|the team] on {day}, "
            "[keep it quiet|dont tell]",
        ),
        ("*", "[count me in|i'm in]"),
        ("*", "what [should we get|are we getting]? [a gift card|cake]"),
    ),
)
_WORK_TALK: tuple[tuple[str, str], ...] = (
    ("[is|] the [standup|meeting|sync] still at {clock}", "[yes|moved to {clock2}]"),
    ("[did|] [you|u] see the [email|ticket|report] from [legal|finance|the client]", "[yes|not yet] [ugh|]"),
    ("[anyone|who] [wants|wanna] [lunch|coffee]", "[me|yes] [in 10|after this call]"),
    ("[how was|hows] [your|ur] [weekend|vacation|trip]", "[too short|great|relaxing] {laugh}"),
    (
        "[can|] [someone|anyone] review my [pr|doc|deck] [today|before {clock}]",
        "[sure|on it], [send the link|give me 20 min]",
    ),
    (
        "[is|] [the|] [vpn|wifi|printer] [down|broken] [again|for anyone else]",
        "[yes|same here], [it|IT] [knows|is on it]",
    ),
    (
        "who [is|] [taking|doing] [notes|the demo] [today|at {clock}]",
        "[i can|me], [i|I] did it last time too {laugh}",
    ),
    (
        "[did|] [the|] [client|vendor] [reply|sign] [yet|already]",
        "[not yet|yes this morning], [i'll|I'll] forward it",
    ),
    ("[are you|r u] [in the office|wfh|remote] [tomorrow|on {day}]", "[office|home] [probably|all week]"),
    ("[happy|] [friday|monday] [everyone|all]", "[finally|ugh already] {laugh}"),
    (
        "[does|] [anyone|someone] [have|know] [the|a] [password|login] for the [dashboard|wiki]",
        "[check|it's in] the [pinned|shared] doc",
    ),
    (
        "what time [is|does] the [all hands|offsite] [start|on {day}]",
        "{clock} [i think|in the big room]",
    ),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Kind:
    """A benign conversation kind: who is in it, where, its beats and its small talk."""

    name: str
    roles: Mapping[str, str]  # speaker key -> role ("kid", "adult")
    extra_role: str  # role of the extra channel members (key "*" picks among all members)
    settings: tuple[str, ...]
    beats: tuple[Beat, ...]
    talk: tuple[tuple[str, str], ...]
    weight: float
    platforms: tuple[str, ...]
    asker: str = ""  # who asks the small-talk questions ("" = either side)


_KINDS: tuple[_Kind, ...] = (
    _Kind(
        name="teen_friends",
        roles={"a": "kid", "b": "kid"},
        extra_role="kid",
        settings=("dm", "dm", "channel"),
        beats=_TEEN_BEATS,
        talk=_TEEN_TALK,
        weight=0.22,
        platforms=(
            "discord_gaming",
            "roblox",
            "minecraft",
            "fortnite",
            "instagram",
            "tiktok",
            "anime_server",
        ),
    ),
    _Kind(
        name="adult_flirting",
        roles={"a": "adult", "b": "adult"},
        extra_role="adult",
        settings=("dm",),
        beats=_FLIRT_BEATS,
        talk=_FLIRT_TALK,
        weight=0.15,
        platforms=("instagram", "tiktok", "discord_gaming", "music_server"),
    ),
    _Kind(
        name="parent_child",
        roles={"p": "adult", "k": "kid"},
        extra_role="adult",
        settings=("dm", "dm", "channel"),
        beats=_FAMILY_BEATS,
        talk=_FAMILY_TALK,
        weight=0.13,
        platforms=("instagram", "discord_gaming", "roblox"),
        asker="p",
    ),
    _Kind(
        name="coach_team",
        roles={"c": "adult"},
        extra_role="adult",
        settings=("channel",),
        beats=_COACH_BEATS,
        talk=_COACH_TALK,
        weight=0.1,
        platforms=("school_slack",),
    ),
    _Kind(
        name="tutor",
        roles={"t": "adult", "p": "adult", "s": "kid"},
        extra_role="kid",
        settings=("channel",),
        beats=_TUTOR_BEATS,
        talk=_TUTOR_TALK,
        weight=0.08,
        platforms=("school_slack",),
        asker="t",
    ),
    _Kind(
        name="parents_chat",
        roles={"a": "adult", "b": "adult"},
        extra_role="adult",
        settings=("dm",),
        beats=_PARENTS_BEATS,
        talk=_PARENTS_TALK,
        weight=0.08,
        platforms=("school_slack", "instagram"),
    ),
    _Kind(
        name="gamer_gifts",
        roles={"a": "adult", "b": "kid"},
        extra_role="kid",
        settings=("channel",),
        beats=_GAMER_BEATS,
        talk=_TALK,
        weight=0.1,
        platforms=("discord_gaming", "roblox", "minecraft", "fortnite"),
    ),
    _Kind(
        name="hobby_server",
        roles={"a": "kid", "b": "kid"},
        extra_role="kid",
        settings=("channel", "dm"),
        beats=_HOBBY_BEATS,
        talk=_HOBBY_TALK,
        weight=0.08,
        platforms=("art_server", "music_server", "anime_server"),
    ),
    _Kind(
        name="workplace",
        roles={"a": "adult", "b": "adult"},
        extra_role="adult",
        settings=("channel", "dm"),
        beats=_WORK_BEATS,
        talk=_WORK_TALK,
        weight=0.06,
        platforms=("school_slack",),
    ),
)

# A child asking an adult they know (a relative, a family friend) about their age, school, job and family:
# the curious questions a groomer also asks, from the child's side. Not in the default mix (which stays as it
# was for earlier recipes); ``--kind curious_child`` writes these alone. Perverted-Justice decoys ask such
# questions about the adult's family and home, and a pair model that has only seen adults ask them blames the
# child.
_CURIOUS_CHILD_BEATS: tuple[Beat, ...] = (
    _b(
        ("k", "what grade [are you|r u] in"),
        ("r", "[i'm|im] not in school anymore, i [work|have a job] [lol|haha|]"),
        ("k", "[wait|oh] so [you're|ur] [like|] a grown up {laugh}"),
        ("k", "[i'm|im] [still|] in {grade}"),
    ),
    _b(
        ("k", "how old [are you|r u] [actually|]"),
        ("r", "{grown_age} {laugh}"),
        ("k", "[thats|that's] [old|so old] [lol|]"),
        ("r", "[thanks|rude] {laugh} [and ur {age} now right|how old are you now]"),
        ("k", "[{age}|{age} in [march|may|june]]"),
    ),
    _b(
        ("k", "[do you|do u] and [your|ur] [mom|dad] [fight|argue] [ever|a lot]"),
        ("r", "[sometimes|not really|all the time] {laugh}"),
        ("k", "does anyone else live [with you|w u|at ur house]"),
        ("r", "[nope just me|my brother|just me and the dog]"),
    ),
    _b(
        ("k", "[my mom|mom] wont stop [nagging me|making me do chores] [today|]"),
        ("r", "[lol|haha] [thats|that's] [her job|what moms do]"),
        ("k", "[ugh|still] [lol|]"),
    ),
    _b(
        (
            "k",
            "can i call [you|u] [later|after dinner|when i get back]? [my mom is making me|i have to] "
            "[do homework|clean my room|go to practice]",
        ),
        ("r", "[sure|ok|of course] [call whenever|ill be up|]"),
    ),
    _b(
        ("k", "[i'm|im] getting [a new backpack|new sneakers] for school [today|this weekend]"),
        ("r", "[nice|cool] what kind"),
        ("k", "[nikes|the white ones|jordans] {laugh}"),
    ),
    _b(
        ("k", "[are you|r u] coming to [grandmas|thanksgiving|my birthday|the cookout]"),
        ("r", "[wouldn't miss it|yes|of course] [see u there|]"),
        ("k", "[yay|ok] {laugh}"),
    ),
    _b(
        ("k", "[do you|do u] have [a girlfriend|a boyfriend|a dog|kids]"),
        ("r", "[nope|yes|not yet] {laugh} [why|]"),
        ("k", "[just wondering|mom said|idk] [lol|]"),
    ),
    _b(
        ("k", "what do [you|u] do at [your|ur] job"),
        ("r", "[i'm a|im a] [vet|nurse|mechanic|teacher|programmer]"),
        ("k", "[cool|so cool|boring] [lol|]"),
    ),
    _b(
        ("r", "[are you|r u] excited for [middle school|high school|summer]"),
        ("k", "[kinda|yes|no] [i'm|im] [just|] excited [for recess|to see my friends|for the pool]"),
    ),
    _b(
        ("k", "where do [you|u] live [now|again]"),
        ("r", "[still in|by] [the city|the lake|grandmas old place] {laugh}"),
        ("k", "[can we|can i] visit [you|u] [this summer|sometime] [with mom|]"),
        ("r", "[ask your mom|if your mom says yes|sure, ask your parents]"),
    ),
)

# An adult older sibling or cousin (18-25) and a younger sibling in a DM: rides, chores, homework, birthday
# gifts and "don't tell mom", the logistics a groomer fakes, here inside a family both of them name (our mom,
# grandma's house, dad). Named kind only (``--kind older_sibling``).
_OLDER_SIBLING_BEATS: tuple[Beat, ...] = (
    _b(
        ("o", "[dont|don't] tell [mom|our mom] i told [you|u] about the party"),
        ("k", "[what party|which party] {laugh}"),
        ("o", "[exactly|good] {laugh} [its|it's] [for dad's 50th|dad's surprise party] on {day}"),
        ("k", "[ok ok|fine] i wont say anything [to her|to them|]"),
    ),
    _b(
        ("o", "[i'll|ill|I'll] pick [you|u] up after school, [mom's|moms] working late"),
        ("k", "[ok|k|yay] can we [get|stop for] {food} [on the way|after]"),
        ("o", "[only if|if] [you|u] [do|finish] {schoolwork} [tonight|first] {laugh}"),
        ("k", "[deal|ugh fine]"),
    ),
    _b(
        ("o", "where [are you|r u]? [i'm|im] outside the school"),
        ("k", "[coming|omw|1 sec] [the teacher kept us late|i forgot my {sport} bag|lol]"),
        ("o", "[hurry|ok hurry up] [i'm|im] at {pickup_spot} in [mom's|dad's|my] car"),
    ),
    _b(
        ("o", "want me to get [you|u] [robux|vbucks|{gift}] for [your|ur] birthday"),
        ("k", "[YES|omg yes|fr?] [pls|please]"),
        ("o", "[ok|ok ok] but [you|u] [have to|gotta] give back my [hoodie|charger|headphones]"),
        ("k", "[deal|never] {laugh}"),
    ),
    _b(
        ("k", "[can u|can you] sign my permission slip for the field trip"),
        ("o", "send me a pic of the permission slip so [i|I] can sign it"),
        ("o", "[jk|lol jk] send it to [mom|our mom], [i'm|im] not [your|ur] [parent|guardian] {laugh}"),
        ("k", "[ugh|worth a try] {laugh}"),
    ),
    _b(
        ("o", "delete that video before dad sees {laugh}"),
        ("k", "[its|it's] [literally|] [just|] [you|u] falling off the trampoline {laugh}"),
        ("o", "[exactly|thats why] [delete it|pls]"),
        ("k", "[no|too late] [grandma already saw it|its in the family group chat]"),
    ),
    _b(
        ("k", "[can i|can I] [borrow|use] [your|ur] [car|makeup|switch] [this weekend|when ur at {work}]"),
        ("o", "[lol|] [you're|ur] {age} not 30"),
        ("k", "[i'm|im] [basically|practically] an adult"),
        ("o", "[you|u] still [sleep with|have] [a nightlight|the stuffed dog grandma gave u] {laugh}"),
    ),
    _b(
        ("k", "how old [are you|r u] [gonna be|turning] [on ur bday|next month] [again|]"),
        ("o", "[20|21|22] [dont remind me|ugh] {laugh}"),
        ("k", "[old|ancient|so old] {laugh}"),
        ("o", "[says the|ok says the] {grade} grader"),
    ),
    _b(
        ("k", "mom said [you have to|u have to] drive me to {sport} [on {day}|tmrw]"),
        ("o", "[ugh|fine] [what time|when]"),
        ("k", "{clock}"),
        ("o", "be [outside|ready] [10 min before|on time] or [im leaving|i leave without u] {laugh}"),
    ),
    _b(
        ("o", "[did you|did u] [do|take out] the [dishes|trash|recycling] [its|it's] [your|ur] turn"),
        ("k", "[no|nope] [i did it|it was me] [last week|yesterday]"),
        ("o", "[i'll|ill] tell [mom|dad] {laugh}"),
        ("k", "[fine|ugh] [doing it now|omw]"),
    ),
    _b(
        ("k", "[can u|can you] help [me|] with {schoolwork} [its due tmrw|]"),
        ("o", "[send|send me] a pic of the [question|page]"),
        ("k", "[ok|sent]"),
        (
            "o",
            "[ok|oh] [thats easy|you just] "
            "[divide both sides first|find the common denominator|reread page 4]",
        ),
    ),
    _b(
        ("o", "[are you|r u] going to grandma's [this weekend|on {day}]"),
        ("k", "[ya|yes] [mom|dad] said [we're|were] leaving at {clock}"),
        ("o", "[ok|k] [tell|ask] grandma to make [her lasagna|the good cookies|her pie] {laugh}"),
        ("k", "[tell her urself|she says only if u come] {laugh}"),
    ),
    _b(
        ("k", "[who|wait who] is this"),
        ("o", "[its|it's] [your|ur] [brother|sister|cousin] [lol|], [new number|my old phone died]"),
        ("k", "[oh|lol] [ok|saving it]"),
        ("o", "[tell|text] [mom|our mom] [its|it's] my new number too"),
    ),
    _b(
        ("k", "[dont|don't] tell mom [i|I] got a [C|D] on the {subject} test"),
        ("o", "[i wont if|only if] [you|u] let me help [u|you] study for the retake"),
        ("k", "[deal|ok] {laugh}"),
    ),
    _b(
        ("o", "[mom and dad|our parents] [are|r] out [tonight|til late], [i'm|im] in charge {laugh}"),
        ("k", "[you're|ur] not the boss of me"),
        ("o", "[literally|] [i am|am] tonight. [phone off|bed] at [9|9:30|10]"),
        ("k", "[lol|] [nope|10:30|no way]"),
        ("o", "[ok|fine] [10|10:30] but [dont tell|don't tell] mom"),
    ),
)
_OLDER_SIBLING_TALK: tuple[tuple[str, str], ...] = (
    ("[is|] mom [home|back] yet", "[no|not yet] [she said|] [around|like] {clock}"),
    ("[whats|what's] for dinner [tonight|]", "{food} [i think|again]"),
    ("[did|] [you|u] [walk|feed] the {pet}", "[yes|not yet|ugh its ur turn]"),
    ("[can i|can I] [borrow|use] [your|ur] [charger|headphones|hoodie]", "[no|nope|fine but bring it back]"),
    ("[how was|hows] school", "[fine|boring|long] {laugh}"),
    ("[are you|r u] coming home for dinner on {day}", "[maybe|ya|prob] [if {work} lets me|]"),
    ("[what|wat] [are you|r u] watching", "{show} [again|lol|]"),
    ("[did|] [you|u] see grandma's [text|post] {laugh}", "[yes|lmao] the family group chat is chaos"),
    ("[when|what time] [are you|r u] [back|home]", "[like|around] {clock}"),
    ("[whats|what's] the wifi password [again|]", "[same as always|ask dad|its on the fridge]"),
    ("[did|] [you|u] eat my {food}", "[no|maybe] {laugh}"),
    ("[do|] [you|u] [want|need] anything from [target|the store|costco]", "{food} [pls|please]"),
)

# A trained helpline volunteer or a school counsellor and a young person who reached out: "are you somewhere
# safe", "is anyone at home with you", "how old are you", "this chat is confidential", the questions a
# groomer asks too, asked to keep the child safe. The adult asks for no secret, photo, gift or other app and
# points to trusted adults and other services. Named kind only (``--kind support_line``).
_SUPPORT_LINE_BEATS: tuple[Beat, ...] = (
    _b(
        ("v", "[i'm|I'm] [sam|alex|jo|priya] by the way, one of the volunteers [here|tonight]"),
        ("v", "what's [been|] on your mind?"),
        ("k", "[idk|i dont know] [where to start|how to say it]"),
        ("v", "[that's ok|take your time], [there's no rush|we can go at your pace]"),
    ),
    _b(
        ("v", "[before we go on|first], are you somewhere safe right now?"),
        ("k", "[ya|yes] [im|i'm] in my room"),
        ("v", "[good|ok, good]. is anyone at home with you?"),
        ("k", "[my mom is downstairs|my dad but hes asleep|my grandma|no my mom is at work til 10]"),
        ("v", "[thanks for telling me|ok, thank you]"),
    ),
    _b(
        ("k", "[do i|do I] have to [say|give] my [name|real name]"),
        (
            "v",
            "[no|No], you don't have to tell me your name "
            "[or anything you don't want to|if you'd rather not]",
        ),
        ("k", "[ok|ok good]"),
    ),
    _b(
        ("k", "[are|r] [you|u] [going to|gonna] tell my [parents|school|mom]?"),
        ("v", "this chat is confidential, but if you're in danger we may need to get help"),
        ("v", "[if that ever happened|if it came to that], we'd talk it through with you first"),
        ("k", "[ok|ok that makes sense]"),
    ),
    _b(
        ("v", "how old are you, so I can point you to the right service?"),
        ("k", "{age}"),
        (
            "v",
            "[thanks|thank you]. there's [a team|a service] just for [young people|under 18s] [too|as well]",
        ),
    ),
    _b(
        (
            "k",
            "[people at school|some girls in my class|some kids in my grade] keep "
            "[posting stuff about me|saying stuff about me in the group chat|making fun of me]",
        ),
        ("v", "[that sounds really hard|i'm sorry that's happening]. has it been going on long?"),
        ("k", "since [the start of the year|september|{grade} grade started]"),
        ("v", "[you don't deserve that|none of that is your fault]"),
    ),
    _b(
        ("v", "is there a trusted adult you can talk to, like a teacher or your aunt?"),
        ("k", "[maybe|idk] [my aunt|my grandma|my {subject} teacher|the school nurse]"),
        ("v", "[they sound like someone who'd want to know|that sounds like a good person to tell]"),
        ("v", "[would you feel ok|could you] [telling them|talking to them] [this week|tomorrow]?"),
        ("k", "[maybe|ill try|i think so]"),
    ),
    _b(
        (
            "k",
            "my [parents|mom and dad|mom and stepdad] keep [arguing|fighting|yelling] [at night|every night]",
        ),
        ("v", "[that must be|that sounds] [scary|really stressful]. do you ever feel unsafe at home?"),
        ("k", "[no|not really] [its just loud|they dont hurt anyone] [i just cant sleep|]"),
        ("v", "[ok|thank you for telling me]. it's not your job to fix things between them"),
    ),
    _b(
        (
            "v",
            "you can also "
            "[text SHOUT to 85258|text HOME to 741741|call or text 988|call Childline on 0800 1111] "
            "[any time|day or night]",
        ),
        ("k", "[is it free|does it cost money]"),
        ("v", "[yes|Yes], it's free [and it won't show on the phone bill|for you]"),
    ),
    _b(
        ("k", "can i talk to [you|u] again [tmrw|tomorrow]?"),
        ("v", "you can come back any time. it might be a different volunteer, but [they'll|we'll] listen"),
        ("k", "[ok|ty|thank you]"),
    ),
    _b(
        ("v", "does your school have a counsellor [you could talk to|or a pastoral team]?"),
        ("k", "[ya|yes] [ms lee|mr patel|ms garcia] [but i've never gone|i think|but idk]"),
        ("v", "[it could be worth|you could try] [going|popping in] [at lunch|before class]"),
        ("v", "you could even show them what you told me here, [if you want|it's up to you]"),
        ("k", "[maybe|ok|ill think about it]"),
    ),
    _b(
        ("k", "[i dont want|i don't want] [anyone|my mom] to find out [i messaged|i'm talking to] [you|u]"),
        ("v", "[that's ok|that's understandable], it's your choice"),
        (
            "v",
            "[but|though] telling someone you trust can really help, [when you feel ready|in your own time]",
        ),
        ("k", "[ok|maybe]"),
    ),
    _b(
        (
            "v",
            "[would it help|want] to try [something|a breathing thing] "
            "for when it gets [too much|overwhelming]?",
        ),
        ("k", "[ok|sure|i guess]"),
        ("v", "breathe in for 4, hold for 4, out for 4. [try it a few times|do that 3 or 4 times]"),
        ("k", "[ok|that helped a bit|kinda helps]"),
    ),
)
_SUPPORT_LINE_TALK: tuple[tuple[str, str], ...] = (
    ("how has [school|your week] been [otherwise|apart from that]", "[ok|bad|kinda boring] [i guess|tbh]"),
    ("what helps when you feel like this", "[music|drawing|my {pet}|gaming] [i guess|kinda]"),
    (
        "do you have [a friend|friends] at school you can [sit with|hang out with]",
        "[one|a couple|not really]",
    ),
    ("how are you sleeping [at the moment|lately]", "[not great|bad|ok i guess]"),
    ("is there something you're looking forward to this week", "[{name}s party|the weekend|the school trip]"),
    ("how are you feeling right now, compared to when we started", "[a bit better|the same|better i think]"),
    ("who do you live with", "[my mom and my {sibling}|my dad and stepmom|my grandma]"),
    ("what do you like doing [when you're not at school|after school]", "{sport} [and gaming|and drawing|]"),
    ("have you told anyone else [how you're feeling|about this]", "[no|only {name}|my friend kinda]"),
    (
        "is there anything else [on your mind|you want to talk about] [tonight|today]",
        "[not really|no thats it]",
    ),
)

# A gaming channel of adults and teens where short messages are bare numbers: respawn and queue countdowns
# typed one number a line, scores, levels, kill counts. A model that reads "27" as an age said of oneself
# raises alerts on these. Named kind only (``--kind game_countdown``).
_GAME_COUNTDOWN_BEATS: tuple[Beat, ...] = (
    _b(
        ("a", "[ugh|bruh] [im dead|got sniped|they got me]"),
        ("b", "how long"),
        ("a", "30"),
        ("a", "29"),
        ("a", "28"),
        ("a", "27"),
        ("b", "[hurry|hurry up] {laugh}"),
    ),
    _b(
        ("b", "[queue|match] [pops|starts] in"),
        ("b", "25"),
        ("b", "24"),
        ("b", "23"),
        ("b", "22"),
        ("*", "[ready|rdy]"),
        ("a", "[go go go|lets go]"),
    ),
    _b(
        ("a", "[lobby|custom] starts in 20 [ready up|pls ready up]"),
        ("a", "19"),
        ("a", "18"),
        ("a", "17"),
        ("a", "16"),
        ("*", "[wait im not in|wait wait]"),
        ("a", "[too late|lol] [gl|go]"),
    ),
    _b(
        ("a", "[point|zone|objective] [closes|caps] in"),
        ("a", "38"),
        ("a", "37"),
        ("a", "36"),
        ("b", "[on it|im there|rotating]"),
        ("a", "[nice|clutch|ez]"),
    ),
    _b(
        ("b", "[respawning|rez] in"),
        ("b", "21"),
        ("b", "20"),
        ("b", "19"),
        ("a", "[ok|k] [hold|wait for him] [mid|there]"),
    ),
    _b(
        ("a", "[my|] ult [in|ready in]"),
        ("a", "34"),
        ("a", "33"),
        ("a", "32"),
        ("a", "31"),
        ("b", "[ok|k] we wait for ult"),
    ),
    _b(
        ("a", "[everyone|all] [ready|in]? starting in"),
        ("a", "60"),
        ("a", "45"),
        ("a", "30"),
        ("a", "15"),
        ("a", "[go|GO]"),
    ),
    _b(
        ("*", "[whats the score|score?]"),
        ("b", "21 14"),
        ("*", "[we're|were] [up|down] {laugh}"),
        ("b", "gg 3-1"),
    ),
    _b(
        ("*", "what [lvl|level] [r u|are you] [now|]"),
        ("b", "[im|i'm] 27 now"),
        ("*", "[lol|bro] [i'm|im] [only|still] 19"),
        ("a", "[lvl|level] 33 [lets go|finally|ez]"),
    ),
    _b(
        ("*", "[how many kills|kills?]"),
        ("a", "24"),
        ("b", "[26|29] {laugh} [carried|ez]"),
        ("a", "[stat padding|lies|ok]"),
    ),
    _b(
        ("a", "[what time|when] [is|are] [scrims|the tourney|ranked] [tonight|tmrw]"),
        ("b", "[8|9|7:30] [est|pm]"),
        ("a", "[ok|bet] brb 5"),
        ("b", "[k|ok]"),
    ),
    _b(
        ("b", "brb 5"),
        ("a", "[k|ok]"),
        ("b", "back"),
        ("a", "[we|] waited [20|15] [min|mins] {laugh}"),
    ),
    _b(
        ("*", "how many [rr|lp|points] [u need|till rank up]"),
        ("b", "36"),
        ("b", "then [plat|diamond|gold]"),
        ("*", "[ez|u got it|2 more wins]"),
    ),
)
_GAME_COUNTDOWN_TALK: tuple[tuple[str, str], ...] = (
    *_TALK,
    ("what [lvl|level] [are you|r u] [now|]", "[18|22|24|27|31|36]"),
    ("how many [wins|kills] [u got|do you have]", "[19|23|28|34] {laugh}"),
    ("[whats|what's] the score", "[21 14|13 11|2-1|3-0]"),
    ("[how long|how much longer] [is the queue|till it starts]", "[like|] [2|3|5] [min|mins]"),
)

# Kinds a recipe asks for by name (``--kind``); not drawn in the default mix.
_NAMED_KINDS: tuple[_Kind, ...] = (
    _Kind(
        name="curious_child",
        roles={"k": "kid", "r": "adult"},
        extra_role="adult",
        settings=("dm",),
        beats=_CURIOUS_CHILD_BEATS,
        talk=_TALK,
        weight=1.0,
        platforms=("discord_gaming", "roblox", "minecraft", "instagram"),
        asker="k",
    ),
    _Kind(
        name="older_sibling",
        roles={"o": "adult", "k": "kid"},
        extra_role="adult",
        settings=("dm",),
        beats=_OLDER_SIBLING_BEATS,
        talk=_OLDER_SIBLING_TALK,
        weight=1.0,
        platforms=("instagram", "discord_gaming", "roblox", "tiktok"),
    ),
    _Kind(
        name="support_line",
        roles={"v": "adult", "k": "kid"},
        extra_role="adult",
        settings=("dm",),
        beats=_SUPPORT_LINE_BEATS,
        talk=_SUPPORT_LINE_TALK,
        weight=1.0,
        platforms=("school_slack", "discord_gaming", "instagram"),
        asker="v",
    ),
    _Kind(
        name="game_countdown",
        roles={"a": "adult", "b": "adult"},
        extra_role="kid",  # the teens in the room
        settings=("channel",),
        beats=_GAME_COUNTDOWN_BEATS,
        talk=_GAME_COUNTDOWN_TALK,
        weight=1.0,
        platforms=("discord_gaming", "fortnite", "minecraft", "roblox"),
    ),
)
KIND_NAMES: tuple[str, ...] = tuple(kind.name for kind in (*_KINDS, *_NAMED_KINDS))

# ---------------------------------------------------------------------------------------- rendering

_SLOT_RE = re.compile(r"\{(\w+)\}")
_ALT_RE = re.compile(r"\[([^\[\]]*)\]")
_SPACES_RE = re.compile(r"\s{2,}")
_SPACE_BEFORE_MARK_RE = re.compile(r"\s+([,?!.])")
_KID_PRONOUNS: tuple[Mapping[str, str], ...] = (
    MappingProxyType({"son": "son", "he": "he", "hes": "he's", "him": "him"}),
    MappingProxyType({"son": "daughter", "he": "she", "hes": "she's", "him": "her"}),
)
_GRADES: Mapping[int, str] = MappingProxyType(
    {10: "5th", 11: "6th", 12: "7th", 13: "8th", 14: "9th", 15: "10th", 16: "11th"}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Speaker:
    id: str
    role: str
    style: str  # "chat", "standard" or "plain"
    intensity: float
    extras: float


def _style_for(role: str, rng: random.Random) -> tuple[str, float, float]:
    """A speaker's style; the same distribution for a role in both labels, so style never tells the label."""
    weights = (0.45, 0.2, 0.35) if role == "kid" else (0.3, 0.4, 0.3)
    style = rng.choices(("chat", "standard", "plain"), weights=weights)[0]
    return style, rng.uniform(0.3, 0.85), rng.choice((0.0, 0.0, 0.0, 0.5, 1.0))


def _new_id(rng: random.Random, taken: set[str]) -> str:
    while True:
        author = f"u-{rng.getrandbits(48):012x}"
        if author not in taken:
            taken.add(author)
            return author


class _Context:
    """The slot values of one conversation: fixed ones (the child's age, the game) and fresh draws."""

    def __init__(self, *, rng: random.Random, platform: str, fixed: Mapping[str, str]) -> None:
        self._rng = rng
        self._platform = _PLATFORMS[platform]
        self._fixed = dict(fixed)
        for slot in ("game", "venue", "craft", "currency"):
            self._fixed.setdefault(slot, rng.choice(self._platform[slot]))
        # One pet, parent, sibling and workplace per conversation: "my dog" stays a dog.
        for slot in ("pet", "parent", "sibling", "work"):
            self._fixed.setdefault(slot, rng.choice(_POOLS[slot]))

    def value(self, slot: str) -> str:
        if slot in self._fixed:
            return self._fixed[slot]
        if slot in self._platform:
            return self._rng.choice(self._platform[slot])
        return self._rng.choice(_POOLS[slot])

    def fill(self, template: str) -> str:
        text = template
        for _ in range(3):  # pool values may hold slots ("{subject}") and alternatives
            text = _SLOT_RE.sub(lambda m: self.value(m.group(1)), text)
            text = _ALT_RE.sub(lambda m: self._rng.choice(m.group(1).split("|")), text)
        text = _SPACE_BEFORE_MARK_RE.sub(r"\1", text)
        return _SPACES_RE.sub(" ", text).strip()


def _render(speaker: _Speaker, text: str, rng: random.Random) -> str:
    if speaker.style == "chat":
        text = chatify(text, rng, intensity=speaker.intensity)
    elif speaker.style == "standard":
        text = standardise(text, rng)
    return modernise(text, rng, extras=speaker.extras)


def _age_fixed(rng: random.Random, *, low: int, high: int) -> dict[str, str]:
    age = rng.randint(low, high)
    age2 = max(low, min(high, age + rng.choice((-1, 0, 0, 1))))
    guess = age + rng.choice((-1, 0, 0, 1))
    return {
        "age": str(age),
        "age_up": str(age + 1),
        "age2": str(age2),
        "age_guess": str(guess),
        "grade": _GRADES[age],
        "grade2": _GRADES[age2],
    }


# ---------------------------------------------------------------------------------------- assembly


@dataclass(frozen=True, slots=True, kw_only=True)
class _Draft:
    setting: str
    platform: str
    speakers: Mapping[str, _Speaker]
    lines: tuple[Line, ...]
    meta: Mapping[str, Any]


class _Deck:
    """Small-talk pairs dealt without repeats until the deck runs out (then it is reshuffled)."""

    def __init__(self, items: Sequence[tuple[str, str]], rng: random.Random) -> None:
        self._items = list(items)
        self._rng = rng
        self._left: list[tuple[str, str]] = []
        self._dealt = 0

    @property
    def exhausted(self) -> bool:
        return not self._left and self._dealt > 0

    def draw(self) -> tuple[str, str]:
        self._dealt += 1
        if not self._left:
            self._left = list(self._items)
            self._rng.shuffle(self._left)
        return self._left.pop()


def _talk_block(
    deck: _Deck, keys: tuple[str, str], rng: random.Random, *, fixed_order: bool = False
) -> list[Line]:
    question, answer = deck.draw()
    first, second = keys if fixed_order or rng.random() < 0.5 else (keys[1], keys[0])
    block: list[Line] = [(first, question), (second, answer)]
    if rng.random() < 0.3:
        block.append((first, rng.choice(("{laugh}", "[ok|ok cool|nice|same]", "[lol|haha] [true|fr]"))))
    return block


# (tag, lines). Small talk ("talk") and the goodbye ("close") may be dropped to fit; the opener ("open"), a
# benign beat ("beat") and the age stage never are; other grooming stages only when nothing else is left.
Block = tuple[str, list[Line]]
_OPTIONAL = ("talk", "close")
_KEEP = ("open", "beat", "age")


def _fit(
    blocks: list[Block], filler: Callable[[bool], list[Line]], *, target: int, limit: int, rng: random.Random
) -> tuple[list[Line], list[str]]:
    """Add small talk between the first and last block up to about ``target`` lines, then drop blocks until
    the conversation has at most ``limit`` lines. Returns the lines and the tags of the blocks kept."""
    out = list(blocks)
    target = max(MIN_MESSAGES, min(limit, target))
    total = sum(len(lines) for _, lines in out)
    while total < target:
        extra = filler(total < MIN_MESSAGES)
        if not extra:
            break
        out.insert(rng.randint(1, max(1, len(out) - 1)), ("talk", extra))
        total += len(extra)
    while total > limit:
        optional = [index for index, (tag, _) in enumerate(out) if tag in _OPTIONAL]
        stages = [index for index, (tag, _) in enumerate(out) if tag not in _OPTIONAL and tag not in _KEEP]
        if not optional and not stages:
            break
        _, dropped = out.pop(rng.choice(optional) if optional else stages[-1])
        total -= len(dropped)
    lines = [line for _, block in out for line in block]
    return lines[:MAX_MESSAGES], [tag for tag, _ in out]


def _grooming_draft(rng: random.Random, taken: set[str]) -> _Draft:
    platform = rng.choice(tuple(_PLATFORMS))
    setting = rng.choice(_PLATFORMS[platform]["setting"])
    pace = rng.choices(("slow", "fast", "subtle"), weights=(0.35, 0.3, 0.35))[0]
    others = [stage for stage in GROOMING_STAGES if stage != "age"]
    if pace == "fast":
        chosen = rng.sample(others, rng.randint(5, 8))
        if not {"photos", "romance", "meeting"} & set(chosen):
            chosen.append(rng.choice(("photos", "romance", "meeting")))
    elif pace == "subtle":
        chosen = rng.sample(
            ["flattery", "special", "isolation", "secrecy", "platform", "gifts"], rng.randint(2, 4)
        )
    else:
        chosen = rng.sample(others, rng.randint(2, 5))
    rank = {
        "flattery": 1.0,
        "special": 2.0,
        "gifts": 2.0,
        "isolation": 2.5,
        "secrecy": 3.0,
        "platform": 3.5,
        "photos": 4.0,
        "romance": 4.0,
        "meeting": 5.0,
    }
    order = sorted(chosen, key=lambda stage: rank[stage] + rng.uniform(-1.5, 1.5))
    if "meeting" in order:
        order.remove("meeting")
        order.append("meeting")
    order.insert(min(len(order), rng.choice((0, 0, 0, 1, 2))), "age")

    adult = _Speaker(id=_new_id(rng, taken), role="adult", **_style_kw("adult", rng))
    child = _Speaker(id=_new_id(rng, taken), role="kid", **_style_kw("kid", rng))
    speakers: dict[str, _Speaker] = {"s": adult, "k": child}
    fixed = _age_fixed(rng, low=11, high=15)

    opener: list[Line] = []
    for first, replies in rng.sample(_OPENERS, rng.choice((1, 1, 2))):
        opener += [("s", first), ("k", rng.choice(replies))]
    blocks: list[Block] = [("open", opener)]
    deck = _Deck(_TALK, rng)
    if pace == "slow":
        # A long benign stretch before anything else.
        blocks += [("talk", _talk_block(deck, ("s", "k"), rng)) for _ in range(rng.randint(4, 9))]
    gap = {"slow": 0.6, "subtle": 0.5, "fast": 0.15}[pace]
    for stage in order:
        blocks.append((stage, _stage_block(stage, rng)))
        if rng.random() < gap:
            blocks.append(("talk", _talk_block(deck, ("s", "k"), rng)))
    if rng.random() < 0.6:
        blocks.append(("close", list(rng.choice(_CLOSE))))

    def filler(short: bool) -> list[Line]:
        del short  # grooming small talk may repeat: a long groom has long small talk
        return _talk_block(deck, ("s", "k"), rng)

    target = {"slow": rng.randint(30, 60), "subtle": rng.randint(16, 44), "fast": rng.randint(12, 28)}[pace]
    limit = MAX_MESSAGES - (8 if setting == "channel" else 0)
    if sum(len(lines) for _, lines in blocks) >= target:
        target = 0  # long enough already: only trim
    lines, kept = _fit(blocks, filler, target=target, limit=limit, rng=rng)
    order = [stage for stage in kept if stage in GROOMING_STAGES]
    if setting == "channel":
        lines = _with_bystanders(lines, speakers, rng, taken, role="kid")
    return _Draft(
        setting=setting,
        platform=platform,
        speakers=speakers,
        lines=tuple(lines),
        meta={"kind": "grooming", "platform": platform, "pace": pace, "stages": list(order), "fixed": fixed},
    )


def _style_kw(role: str, rng: random.Random) -> dict[str, Any]:
    style, intensity, extras = _style_for(role, rng)
    return {"style": style, "intensity": intensity, "extras": extras}


def _stage_block(stage: str, rng: random.Random) -> list[Line]:
    block: list[Line] = []
    if stage == "age":
        if rng.random() < 0.25:
            # The child mentions their age first; the adult picks it up.
            block += [
                (
                    "k",
                    rng.choice(
                        (
                            "[lol|] im only {age}",
                            "im {age} {laugh}",
                            "[im|i'm] in {grade} grade [this year|now|lol]",
                        )
                    ),
                ),
                ("s", rng.choice(_AGE_CUE_S)),
            ]
        else:
            block += [("s", rng.choice(_AGE_ASK_S)), ("k", rng.choice(_AGE_K))]
            if rng.random() < 0.7:
                block.append(("s", rng.choice(_AGE_CUE_S)))
        if rng.random() < 0.4:
            block += [("k", rng.choice(_AGE_ADULT_Q_K)), ("s", rng.choice(_AGE_ADULT_A_S))]
        return block
    leads = _STAGE_LEADS_K.get(stage)
    if leads and rng.random() < 0.4:
        block.append(("k", rng.choice(leads)))
    first = rng.choice(_STAGES_S[stage])
    block.append(("s", first))
    if rng.random() < 0.3:
        second = rng.choice(_STAGES_S[stage])
        if second != first:
            block.append(("s", second))
    roll = rng.random()
    if roll < 0.65:
        block.append(("k", rng.choice(_STAGES_K[stage])))
    elif roll < 0.9:
        block += [("k", rng.choice(_PUSHBACK_K)), ("s", rng.choice(_REASSURE_S))]
        if rng.random() < 0.6:
            block.append(("k", rng.choice(_STAGES_K[stage])))
    return block


# The grooming move each of the adult's templates makes, written to ``messages[].stage`` so that the message
# model's heads can learn the move from the line (``training.weak_labels.MODERN_STAGE_SIGNALS``). Small talk,
# the adult's answers about their own age and the child's lines carry no stage.
_TEMPLATE_STAGE: Mapping[str, str] = MappingProxyType(
    {
        **{template: "age" for template in _AGE_ASK_S},
        **{template: "age_cue" for template in _AGE_CUE_S},
        **{template: "reassure" for template in _REASSURE_S},
        **{template: stage for stage, pool in _STAGES_S.items() for template in pool},
    }
)


def _with_bystanders(
    lines: list[Line], speakers: dict[str, _Speaker], rng: random.Random, taken: set[str], *, role: str
) -> list[Line]:
    """Add 1-3 bystanders with benign lines at random places (a channel, not a DM)."""
    keys = []
    for number in range(rng.randint(1, 3)):
        key = f"x{number}"
        speakers[key] = _Speaker(id=_new_id(rng, taken), role=role, **_style_kw(role, rng))
        keys.append(key)
    out = list(lines)
    for key in keys:
        for _ in range(rng.randint(1, 5)):
            if len(out) >= MAX_MESSAGES:
                break
            out.insert(rng.randint(1, len(out)), (key, rng.choice(_BYSTANDER)))
    return out


def _benign_draft(rng: random.Random, taken: set[str], *, kinds: Sequence[_Kind] = _KINDS) -> _Draft:
    kind = rng.choices(kinds, weights=[k.weight for k in kinds])[0]
    platform = rng.choice(kind.platforms)
    setting = rng.choice(kind.settings)
    speakers: dict[str, _Speaker] = {
        key: _Speaker(id=_new_id(rng, taken), role=role, **_style_kw(role, rng))
        for key, role in kind.roles.items()
    }
    members = list(speakers)
    if setting == "channel":
        for number in range(rng.randint(2 if len(members) < 2 else 1, 4)):
            key = f"m{number}"
            speakers[key] = _Speaker(
                id=_new_id(rng, taken), role=kind.extra_role, **_style_kw(kind.extra_role, rng)
            )
            members.append(key)
    ages = _age_fixed(rng, low=11, high=15)
    grown = rng.choice(_POOLS["grown_age"])
    fixed = {
        **ages,
        "grown_age": grown,
        "grown_age2": rng.choice(_POOLS["grown_age"]),
        "sib_child": rng.choice(("son", "daughter", "oldest", "youngest", "kid")),
        **rng.choice(_KID_PRONOUNS),
        "day2": rng.choice(_POOLS["day"]),
        "clock2": rng.choice(_POOLS["clock"]),
    }
    # A beat with "*" (anyone in the room) needs a room: not in a DM.
    usable = [beat for beat in kind.beats if setting == "channel" or all(key != "*" for key, _ in beat)]
    beats = rng.sample(usable, min(len(usable), rng.randint(3, 6)))
    extras = [key for key in members if key not in kind.roles]
    blocks: list[Block] = [("beat", _cast(beat, members, extras, rng)) for beat in beats]
    deck = _Deck(kind.talk, rng)
    asker = kind.asker or members[0]
    other = next((m for m in members if m != asker), asker)
    pair = (asker, other)

    def filler(short: bool) -> list[Line]:
        if deck.exhausted and not short:
            return []
        a, b = rng.sample(members, 2) if len(members) > 2 and rng.random() < 0.5 else pair
        return _talk_block(deck, (a, b), rng, fixed_order=bool(kind.asker))

    bystanders = setting == "channel" and kind.name in ("teen_friends", "gamer_gifts", "hobby_server")
    limit = MAX_MESSAGES - (8 if bystanders else 0)
    lines, _ = _fit(blocks, filler, target=rng.randint(12, 60), limit=limit, rng=rng)
    if bystanders and rng.random() < 0.6:
        lines = _with_bystanders(lines, speakers, rng, taken, role=kind.extra_role)
    return _Draft(
        setting=setting,
        platform=platform,
        speakers=speakers,
        lines=tuple(lines),
        meta={"kind": kind.name, "platform": platform, "fixed": fixed},
    )


def _cast(beat: Beat, members: Sequence[str], extras: Sequence[str], rng: random.Random) -> list[Line]:
    """Resolve "*" in a beat: one of the room's other members (a parent in a coach's channel), never the
    previous speaker."""
    out: list[Line] = []
    previous = ""
    for key, template in beat:
        speaker = key
        if key == "*" or key not in members:
            pool = [m for m in (extras or members) if m != previous] or [m for m in members if m != previous]
            speaker = rng.choice(pool or list(members))
        out.append((speaker, template))
        previous = speaker
    return out


def _record(
    draft: _Draft, *, label: int, rng: random.Random, index: int, id_prefix: str, name_writers: bool
) -> dict[str, Any]:
    fixed = draft.meta["fixed"]
    context = _Context(rng=rng, platform=draft.platform, fixed=fixed)
    messages: list[dict[str, Any]] = []
    for key, template in draft.lines:
        speaker = draft.speakers[key]
        text = _render(speaker, context.fill(template), rng)
        if not text.strip():
            continue
        message: dict[str, Any] = {"author": speaker.id, "reply_to": None, "text": text, "ts": None}
        stage = _TEMPLATE_STAGE.get(template) if label == 1 and key == "s" else None
        if stage is not None:
            message["stage"] = stage
        messages.append(message)
    authors = {message["author"] for message in messages}
    meta = {key: value for key, value in draft.meta.items() if key != "fixed"}
    if label == 1:
        meta["child_age"] = int(fixed["age"])
    if name_writers:  # who writes as a child and who as an adult, as the realistic sets say
        for role, key in (("kid", "child_authors"), ("adult", "adult_authors")):
            meta[key] = sorted({s.id for s in draft.speakers.values() if s.role == role and s.id in authors})
    return {
        "id": f"{id_prefix}-{index:05d}",
        "interleaved": True,
        "label": label,
        "messages": messages,
        "meta": meta,
        "setting": draft.setting if len(authors) > 2 or draft.setting == "dm" else "dm",
        "source": SOURCE,
        "suspects": [draft.speakers["s"].id] if label == 1 else [],
    }


def modern_conversations(
    *,
    seed: int,
    count_grooming: int,
    count_benign: int,
    kinds: Sequence[str] = (),
    id_prefix: str = "vmod",
    name_writers: bool = False,
) -> list[dict[str, Any]]:
    """``count_grooming`` label-1 and ``count_benign`` label-0 conversations, shared format, sorted by id.

    Deterministic for ``seed``. Labels are shuffled across ids so that an id says nothing about its label.
    ``kinds`` names the benign kinds to draw from (default: the standard mix, the named kinds excluded);
    ``id_prefix`` keeps ids apart when several generated files train together. ``name_writers`` adds
    ``meta.child_authors`` and ``meta.adult_authors`` (the texts stay the same; off, so that earlier
    recipes' files stay byte-identical).
    """
    if count_grooming < 0 or count_benign < 0:
        raise ValueError("counts must be >= 0")
    unknown = sorted(set(kinds) - set(KIND_NAMES))
    if unknown:
        raise ValueError(f"unknown conversation kinds {unknown}; known: {', '.join(KIND_NAMES)}")
    chosen = tuple(kind for kind in (*_KINDS, *_NAMED_KINDS) if kind.name in kinds) if kinds else _KINDS
    order_rng = random.Random(f"vigil-modern:{seed}:order")
    labels = [1] * count_grooming + [0] * count_benign
    order_rng.shuffle(labels)
    taken: set[str] = set()
    records: list[dict[str, Any]] = []
    for index, label in enumerate(labels):
        rng = random.Random(f"vigil-modern:{seed}:{index}")
        draft = _grooming_draft(rng, taken) if label == 1 else _benign_draft(rng, taken, kinds=chosen)
        records.append(
            _record(draft, label=label, rng=rng, index=index, id_prefix=id_prefix, name_writers=name_writers)
        )
    return records


# --------------------------------------------------------------------------------------------- CLI


def write_jsonl(records: Sequence[Mapping[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.modern_lines", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--out", type=Path, required=True, help="the .jsonl file to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grooming", type=int, default=600, help="label-1 conversations")
    parser.add_argument("--benign", type=int, default=900, help="label-0 conversations")
    parser.add_argument(
        "--kind",
        action="append",
        default=[],
        choices=KIND_NAMES,
        help="draw the benign conversations from this kind only (repeatable; default: the standard mix)",
    )
    parser.add_argument("--id-prefix", default="vmod", help="conversation ids are PREFIX-00000, ...")
    parser.add_argument(
        "--name-writers",
        action="store_true",
        help="name each record's child and adult writers in meta (child_authors, adult_authors), which the"
        " pair model's writer-age loss reads",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    records = modern_conversations(
        seed=args.seed,
        count_grooming=args.grooming,
        count_benign=args.benign,
        kinds=args.kind,
        id_prefix=args.id_prefix,
        name_writers=args.name_writers,
    )
    write_jsonl(records, args.out)
    messages = sum(len(record["messages"]) for record in records)
    logger.info("wrote %d conversations (%d messages) to %s", len(records), messages, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
