"""Vigil on Discord: the adapter (ingest, moderator interactions), its alert sink and the translator.

Import as ``bots.discord``; never run a file in this folder directly: it would shadow the ``discord``
library.
"""

from __future__ import annotations

from vigil.bots.discord.adapter import DiscordAdapter, DiscordFatalError, DiscordOptions
from vigil.bots.discord.commands import InteractionOptions
from vigil.bots.discord.sink import DiscordSink
from vigil.bots.discord.translate import to_chat_message

__all__ = [
    "DiscordAdapter",
    "DiscordFatalError",
    "DiscordOptions",
    "DiscordSink",
    "InteractionOptions",
    "to_chat_message",
]
