"""Vigil on Slack: the ``SlackAdapter`` (slack-bolt ``AsyncApp``), its alert sink and its translators.

Import this package, never run a file inside it. See ``docs/slack.md`` for installing the app.
"""

from __future__ import annotations

from vigil.bots.slack.app import (
    BOT_SCOPES,
    EVENTS_PATH,
    SlackAdapter,
    SlackAdapterError,
    SlackOAuthCredentials,
    read_oauth_credentials,
)
from vigil.bots.slack.installation_store import VigilInstallationStore, VigilOAuthStateStore
from vigil.bots.slack.sink import SlackSink
from vigil.bots.slack.translate import to_chat_message, to_deleted_message, to_edited_message

__all__ = [
    "BOT_SCOPES",
    "EVENTS_PATH",
    "SlackAdapter",
    "SlackAdapterError",
    "SlackOAuthCredentials",
    "SlackSink",
    "VigilInstallationStore",
    "VigilOAuthStateStore",
    "read_oauth_credentials",
    "to_chat_message",
    "to_deleted_message",
    "to_edited_message",
]
