"""Importers for ``vigil scan``: DiscordChatExporter JSON, Slack workspace exports and JSON Lines files."""

from __future__ import annotations

from vigil.bots.importers.detect import iter_conversations
from vigil.bots.importers.discord_export import iter_discord_export
from vigil.bots.importers.records import (
    ImportedConversation,
    ImportedMessage,
    conversation_to_messages,
    display_names_of,
    place_names_of,
)
from vigil.bots.importers.slack_export import iter_slack_export

__all__ = [
    "ImportedConversation",
    "ImportedMessage",
    "conversation_to_messages",
    "display_names_of",
    "iter_conversations",
    "iter_discord_export",
    "iter_slack_export",
    "place_names_of",
]
