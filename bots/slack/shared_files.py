"""Files Vigil put into a moderator's DM (``bots.slack.private_files``), deleted after ``shared_file_hours``.

A file in a Slack DM stays until someone deletes it, out of reach of Vigil's retention schedule, and a case
transcript quotes a grooming conversation. So each file sent is remembered in the store's records (namespace
``slack.shared_file``, key = Slack's file id, value = JSON: the workspace, the kind of file and when it was
shared; never text or names), and a sweep at start and then every 15 minutes deletes those older than
``shared_file_hours`` with ``files.delete`` (a bot may delete the files it uploaded) and forgets them.

What a failed deletion means for the record:

* the file is already gone (``file_not_found``, ``file_deleted``: a moderator deleted it): forgotten;
* Slack cannot be reached, rate limits, a server error, a token Slack refuses for now (``invalid_auth``,
  ``account_inactive``...): kept, tried again at the next sweep;
* the installation is gone for good (uninstalled, no token left for the workspace, ``token_revoked``) or the
  file can never be deleted by Vigil: forgotten, with one WARNING naming the error code. A record still not
  deleted ``GIVE_UP_AFTER`` past its time is forgotten the same way, so records never pile up.

Logs carry counts and error codes only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from slack_sdk.web.async_client import AsyncWebClient

from vigil.bots.core.clock import Clock, utc_now
from vigil.bots.core.ports import RecordStore
from vigil.bots.slack.private_files import FileSent, PrivateFile, send_to_dm
from vigil.bots.slack.web import WEB_API_ERRORS, classify_failure

__all__ = [
    "GIVE_UP_AFTER",
    "NAMESPACE",
    "SWEEP_INTERVAL",
    "FileKind",
    "SharedFile",
    "SharedFiles",
    "SweepReport",
    "period_words",
]

logger = logging.getLogger(__name__)

NAMESPACE = "slack.shared_file"
SWEEP_INTERVAL = timedelta(minutes=15)
# Past its deletion time by this much, a file Vigil still could not delete is no longer tried.
GIVE_UP_AFTER = timedelta(days=30)

FileKind = Literal["chart", "transcript"]
_KINDS: frozenset[str] = frozenset({"chart", "transcript"})
# Slack's answers for a file that is no longer there: nothing left to delete.
_ALREADY_GONE = frozenset({"file_not_found", "file_deleted"})
# No installation left for the file's workspace (uninstalled), or the store could not say.
_NO_INSTALLATION = "no_installation"
_LOOKUP_FAILED = "store_error"
# Answers that no later sweep will change: the workspace's installation is gone, or the file is not Vigil's
# to delete.
_NEVER = frozenset(
    {
        _NO_INSTALLATION,
        "token_revoked",
        "team_access_not_granted",
        "cant_delete_file",
        "not_allowed_token_type",
    }
)
# After these the workspace's other files wait for the next sweep too: the same answer would come back.
_STOP_WORKSPACE = frozenset({"network", "ratelimited", _LOOKUP_FAILED})

# The bot token that may delete a workspace's files: (team id, enterprise id) -> a client, or None when Vigil
# is no longer installed there.
ClientFor = Callable[[str, str | None], Awaitable[AsyncWebClient | None]]


def period_words(hours: int) -> str:
    """``24`` -> "24 hours", ``1`` -> "1 hour", ``72`` -> "3 days"."""
    if hours >= 48 and hours % 24 == 0:
        return f"{hours // 24} days"
    return f"{hours} hour" if hours == 1 else f"{hours} hours"


@dataclass(frozen=True, slots=True, kw_only=True)
class SharedFile:
    """One remembered file: where it lives and when it was shared; nothing of what it holds."""

    file_id: str
    team_id: str
    enterprise_id: str | None
    kind: FileKind
    shared_at: datetime

    def to_json(self) -> str:
        return json.dumps(
            {
                "team_id": self.team_id,
                "enterprise_id": self.enterprise_id,
                "kind": self.kind,
                "shared_at": self.shared_at.isoformat(),
            }
        )

    @classmethod
    def from_record(cls, file_id: str, raw: str) -> SharedFile | None:
        """None for a record this version cannot read."""
        try:
            data = json.loads(raw)
            team_id, enterprise_id, kind = data["team_id"], data.get("enterprise_id"), data["kind"]
            shared_at = datetime.fromisoformat(data["shared_at"])
        except (ValueError, TypeError, KeyError):
            return None
        if not isinstance(team_id, str) or not team_id or kind not in _KINDS or shared_at.tzinfo is None:
            return None
        if enterprise_id is not None and not isinstance(enterprise_id, str):
            return None
        return cls(
            file_id=file_id, team_id=team_id, enterprise_id=enterprise_id, kind=kind, shared_at=shared_at
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SweepReport:
    """What one sweep did with the files past their time (counts only)."""

    deleted: int = 0
    already_gone: int = 0
    # Not deleted this time (Slack unreachable, rate limits, a token refused for now): tried again later.
    kept: int = 0
    # Given up: the installation is gone for good, the file is not Vigil's to delete, or it is long overdue.
    dropped: int = 0
    unreadable: int = 0
    # Records not due yet.
    waiting: int = 0


class SharedFiles:
    """Sends files to DMs (``send``), remembers them, deletes them ``keep_for`` later (``sweep``, ``run``)."""

    def __init__(
        self,
        *,
        records: RecordStore,
        client_for: ClientFor,
        keep_for: timedelta,
        clock: Clock = utc_now,
    ) -> None:
        if keep_for <= timedelta(0):
            raise ValueError("keep_for must be positive")
        self._records = records
        self._client_for = client_for
        self._keep_for = keep_for
        self._clock = clock

    @property
    def expiry_note(self) -> str:
        """For the answer and the file's comment: "Vigil deletes this file after 24 hours"."""
        hours = max(1, round(self._keep_for.total_seconds() / 3600))
        return f"Vigil deletes this file after {period_words(hours)}"

    async def send(
        self,
        client: AsyncWebClient,
        *,
        team_id: str,
        enterprise_id: str | None,
        user_id: str,
        file: PrivateFile,
        kind: FileKind,
    ) -> FileSent:
        """``send_to_dm``, then the file is remembered for deletion. A file that cannot be remembered is
        deleted at once (a file nobody would delete must not stay); the answer then says it was not sent."""
        sent = await send_to_dm(client, user_id=user_id, file=file)
        if not sent.ok:
            return sent
        if sent.file_id is None:
            logger.warning("Slack did not say which file it shared; it cannot be deleted on schedule")
            return sent
        record = SharedFile(
            file_id=sent.file_id,
            team_id=team_id,
            enterprise_id=enterprise_id,
            kind=kind,
            shared_at=self._clock(),
        )
        try:
            await self._records.put_record(NAMESPACE, record.file_id, record.to_json())
        except Exception as error:
            logger.error(
                "could not remember a file sent to a Slack DM (%s); deleting it now", type(error).__name__
            )
            logger.debug("remembering failure", exc_info=error)
            with contextlib.suppress(*WEB_API_ERRORS):
                await client.files_delete(file=record.file_id)
            return FileSent(
                problem="Vigil could not schedule the file's deletion, so it removed it; try again"
            )
        return sent

    async def sweep(self) -> SweepReport:
        """Delete every remembered file past ``keep_for``; forget those deleted or gone for good."""
        now = self._clock()
        due: list[SharedFile] = []
        unreadable = waiting = 0
        for file_id, raw in (await self._records.list_records(NAMESPACE)).items():
            record = SharedFile.from_record(file_id, raw)
            if record is None:
                # Nothing to act on; keeping it would only keep an id.
                unreadable += 1
                await self._records.delete_record(NAMESPACE, file_id)
            elif now - record.shared_at >= self._keep_for:
                due.append(record)
            else:
                waiting += 1
        outcomes: Counter[str] = Counter()
        kept_codes: Counter[str] = Counter()
        dropped_codes: Counter[str] = Counter()
        clients: dict[tuple[str, str | None], AsyncWebClient | str | None] = {}
        stopped: dict[tuple[str, str | None], str] = {}
        for record in due:
            workspace = (record.team_id, record.enterprise_id)
            code = stopped.get(workspace)
            if code is None:
                if workspace not in clients:
                    clients[workspace] = await self._lookup(record)
                client = clients[workspace]
                code = await self._delete(client, record.file_id)
                if code in _STOP_WORKSPACE:
                    stopped[workspace] = code
            if code == "deleted" or code in _ALREADY_GONE:
                outcome = "deleted" if code == "deleted" else "already_gone"
            elif code in _NEVER or now - record.shared_at >= self._keep_for + GIVE_UP_AFTER:
                outcome = "dropped"
                dropped_codes[code] += 1
            else:
                outcomes["kept"] += 1
                kept_codes[code] += 1
                continue
            outcomes[outcome] += 1
            await self._records.delete_record(NAMESPACE, record.file_id)
        report = SweepReport(
            deleted=outcomes["deleted"],
            already_gone=outcomes["already_gone"],
            kept=outcomes["kept"],
            dropped=outcomes["dropped"],
            unreadable=unreadable,
            waiting=waiting,
        )
        self._log(report, kept_codes=kept_codes, dropped_codes=dropped_codes)
        return report

    async def _lookup(self, record: SharedFile) -> AsyncWebClient | str | None:
        """The workspace's client, None when Vigil is no longer installed there, ``_LOOKUP_FAILED`` when the
        store could not say (tried again at the next sweep)."""
        try:
            return await self._client_for(record.team_id, record.enterprise_id)
        except Exception as error:
            logger.debug("installation lookup failure", exc_info=error)
            return _LOOKUP_FAILED

    async def _delete(self, client: AsyncWebClient | str | None, file_id: str) -> str:
        """The outcome: ``"deleted"``, or the failure's error code."""
        if client is None:
            return _NO_INSTALLATION
        if isinstance(client, str):
            return client
        try:
            await client.files_delete(file=file_id)
        except WEB_API_ERRORS as error:
            return classify_failure(error).code
        return "deleted"

    @staticmethod
    def _log(report: SweepReport, *, kept_codes: Counter[str], dropped_codes: Counter[str]) -> None:
        if report.deleted or report.already_gone:
            logger.info(
                "Slack: %d expired file(s) deleted from moderators' DMs, %d already deleted by them",
                report.deleted,
                report.already_gone,
            )
        if report.kept:
            logger.info(
                "Slack: %d expired file(s) not deleted yet (%s); trying again at the next sweep",
                report.kept,
                ", ".join(sorted(kept_codes)),
            )
        for code, count in sorted(dropped_codes.items()):
            logger.warning(
                "Slack: %d expired file(s) in moderators' DMs cannot be deleted by Vigil (%s) and are no "
                "longer tried; delete them in Slack",
                count,
                code,
            )
        if report.unreadable:
            logger.error("Slack: %d unreadable shared-file record(s) removed", report.unreadable)

    async def run(self, *, every: timedelta = SWEEP_INTERVAL) -> None:
        """Sweep now, then every ``every``, until cancelled. A failed sweep is logged, never raised."""
        if every <= timedelta(0):
            raise ValueError("every must be positive")
        while True:
            try:
                await self.sweep()
            except Exception as error:
                # Deleting old files must not stop moderation; the next sweep tries again.
                logger.error(
                    "Slack: deleting expired files failed (%s); trying again later", type(error).__name__
                )
                logger.debug("shared-file sweep failure", exc_info=error)
            await asyncio.sleep(every.total_seconds())
