"""Files only the person who asked may see: uploaded into the direct message between Vigil and them.

Slash-command answers are ephemeral, but Slack has no ephemeral files, and an image block needs a public URL.
So a pair's chart or a case's transcript goes into the app's DM with the requester (``conversations.open``,
then ``files_upload_v2``: ``files.getUploadURLExternal``, the upload, ``files.completeUploadExternal``), never
into the channel where the command was typed, which people other than moderators may read.

Sending never raises: ``FileSent.problem`` says in plain words why the file did not arrive, for the
ephemeral answer that still goes out. Needs the ``im:write`` and ``files:write`` scopes. Commands send through
``bots.slack.shared_files.SharedFiles``, which remembers each file and deletes it after ``shared_file_hours``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from vigil.bots.slack.web import classify_failure

__all__ = ["FileSent", "PrivateFile", "send_to_dm"]

logger = logging.getLogger(__name__)

_RESCOPE = (
    "a workspace admin should update the app from its manifest (`vigil show slack-manifest`) and reinstall it"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class PrivateFile:
    """What to upload. ``comment`` is posted with it in the DM: ids in code spans, never mentions, so nothing
    sent there can reach the people it is about."""

    filename: str
    data: bytes
    title: str
    alt_text: str | None = None
    comment: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FileSent:
    """Where the file went (the DM's id), or why it did not go (``problem``, safe to show and to log)."""

    channel_id: str | None = None
    file_id: str | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def _problem(error: Exception) -> tuple[str, str]:
    """(code for the log, reason in plain words for the person)."""
    if isinstance(error, SlackApiError):
        data = getattr(error.response, "data", None)
        needed = data.get("needed") if isinstance(data, dict) else None
        failure = classify_failure(error)
        if failure.code == "missing_scope":
            named = isinstance(needed, str) and needed
            permission = f"the `{needed}` permission" if named else "a permission"
            return failure.code, f"Vigil's Slack app lacks {permission}: {_RESCOPE}"
        if failure.code == "ratelimited":
            return failure.code, "Slack is limiting how fast Vigil may call it; try again in a minute"
        return failure.code, failure.description
    if isinstance(error, SlackRequestError):
        # The SDK raises this when the upload URL answers anything but 200.
        return "upload_refused", "Slack's file server did not accept the upload; try again later"
    failure = classify_failure(error)
    if failure.code == "network":
        return failure.code, "Vigil could not reach Slack; try again later"
    return failure.code, failure.description


async def send_to_dm(client: AsyncWebClient, *, user_id: str, file: PrivateFile) -> FileSent:
    """Upload ``file`` into the DM between Vigil and ``user_id``."""
    try:
        opened = await client.conversations_open(users=user_id)
        channel = opened.get("channel")
        dm_id = channel.get("id") if isinstance(channel, dict) else None
        # A one-person conversations.open always gives an IM (ids start with D); anything else could be read
        # by others, so nothing is sent there.
        if not isinstance(dm_id, str) or not dm_id.startswith("D"):
            logger.warning("conversations.open did not return a direct message; no file sent")
            return FileSent(problem="Slack did not open a direct message between you and Vigil")
        uploaded = await client.files_upload_v2(
            channel=dm_id,
            filename=file.filename,
            content=file.data,
            title=file.title,
            alt_txt=file.alt_text,
            initial_comment=file.comment,
        )
    except Exception as error:
        # The ephemeral answer must go out whatever the upload did.
        code, reason = _problem(error)
        logger.warning("could not send a file to a Slack member's DM (%s)", code)
        return FileSent(problem=reason)
    sent = uploaded.get("file")
    file_id = sent.get("id") if isinstance(sent, dict) else None
    logger.info("sent %s to a Slack member's DM", file.filename)
    return FileSent(channel_id=dm_id, file_id=file_id if isinstance(file_id, str) else None)
