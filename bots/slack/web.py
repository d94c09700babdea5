"""Talking to Slack's Web API: a client per workspace, failures classified, delivery health remembered.

Every Web API failure becomes an ``ApiFailure`` (rate limited with Retry-After, transient, or permanent with
advice an admin can act on); nothing here raises for a platform failure. Tokens are never logged: the SDK's
own debug logging (which prints request headers and bodies) is kept off by giving it a logger whose level is
INFO or above.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.web.async_client import AsyncWebClient

__all__ = [
    "SDK_LOGGER_NAME",
    "TOKEN_ERRORS",
    "WEB_API_ERRORS",
    "ApiFailure",
    "DeliveryHealth",
    "InstallationClients",
    "SlackClients",
    "TokenClients",
    "classify_failure",
    "permanent_failure",
    "quiet_sdk_logger",
]

logger = logging.getLogger(__name__)

SDK_LOGGER_NAME = "vigil.bots.slack.sdk"

# Errors that retrying will not fix until a person changes something, with what they should change.
_TOKEN_ADVICE = (
    "Vigil's Slack token is no longer valid ({code}): reinstall the app in the workspace and update "
    "the bot token in Vigil's environment"
)
_BUG_ADVICE = "Slack rejected the alert as sent ({code}); this is a bug in Vigil, please report it"
_PERMANENT_ADVICE: Mapping[str, str] = {
    "not_in_channel": "Vigil is not a member of the alert channel: invite it there with /invite @Vigil",
    "channel_not_found": (
        "the alert channel does not exist or Vigil cannot see it (a private channel needs Vigil invited): "
        "choose it again with /vigil setup"
    ),
    "is_archived": "the alert channel is archived: choose another with /vigil setup",
    "invalid_auth": _TOKEN_ADVICE,
    "not_authed": _TOKEN_ADVICE,
    "token_revoked": _TOKEN_ADVICE,
    "token_expired": _TOKEN_ADVICE,
    "account_inactive": _TOKEN_ADVICE,
    "no_installation": "Vigil is not installed in this workspace (or was uninstalled): install it again",
    "missing_scope": (
        "the app lacks a permission it needs ({code}): update it from the manifest "
        "(vigil show slack-manifest) and reinstall"
    ),
    "not_allowed_token_type": "the token is of the wrong type: Vigil needs a bot token (xoxb-...)",
    "team_access_not_granted": "the workspace has not granted Vigil access: reinstall the app",
    "ekm_access_denied": "the workspace's Enterprise Key Management denied access to the alert channel",
    "restricted_action": "a workspace policy stops Vigil from posting in the alert channel",
    "no_alert_channel": "no alert channel is set: a workspace admin should run /vigil setup",
    "invalid_blocks": _BUG_ADVICE,
    "invalid_blocks_format": _BUG_ADVICE,
    "msg_too_long": _BUG_ADVICE,
}
TOKEN_ERRORS = frozenset({"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"})


def quiet_sdk_logger() -> logging.Logger:
    """The logger handed to slack_sdk / slack_bolt, with their debug output off.

    At DEBUG the SDK logs request headers (the token) and bodies (message text), so the SDK's loggers and
    this one are raised to INFO whenever they would otherwise let DEBUG through.
    """
    for name in ("slack_sdk", "slack_bolt", SDK_LOGGER_NAME):
        sdk_logger = logging.getLogger(name)
        if sdk_logger.getEffectiveLevel() < logging.INFO:
            sdk_logger.setLevel(logging.INFO)
    quiet = logging.getLogger(SDK_LOGGER_NAME)
    # slack_sdk decides whether to build its debug strings from the logger's own level, not the effective one.
    if quiet.level == logging.NOTSET:
        quiet.setLevel(max(logging.INFO, quiet.getEffectiveLevel()))
    return quiet


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiFailure:
    """A failed Web API call, classified. ``description`` is safe to log and to show to admins."""

    code: str
    description: str
    status: int | None = None
    retry_after: float | None = None
    permanent: bool = False

    @property
    def is_token_problem(self) -> bool:
        return self.code in TOKEN_ERRORS


def permanent_failure(code: str) -> ApiFailure:
    advice = _PERMANENT_ADVICE.get(code, "Slack refused ({code})")
    return ApiFailure(code=code, description=advice.format(code=code), permanent=True)


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


def classify_failure(error: BaseException) -> ApiFailure:
    """What a failed call means for a retry: rate limited, transient (5xx, network) or permanent."""
    if isinstance(error, SlackApiError):
        response = error.response
        status = getattr(response, "status_code", None)
        data = getattr(response, "data", None)
        code = str(data.get("error") or "unknown_error") if isinstance(data, dict) else "unexpected_response"
        if status == 429 or code == "ratelimited":
            retry_after = _retry_after(getattr(response, "headers", None))
            return ApiFailure(
                code="ratelimited",
                description=f"rate limited by Slack; retry after {retry_after or 'a while'}s",
                status=status,
                retry_after=retry_after if retry_after is not None else 30.0,
            )
        if isinstance(status, int) and status >= 500:
            return ApiFailure(
                code=code, description=f"Slack had a server error (HTTP {status})", status=status
            )
        if code in _PERMANENT_ADVICE:
            failure = permanent_failure(code)
            return ApiFailure(code=code, description=failure.description, status=status, permanent=True)
        return ApiFailure(code=code, description=f"Slack refused the call ({code})", status=status)
    if isinstance(error, aiohttp.ClientError | TimeoutError | asyncio.TimeoutError | OSError):
        return ApiFailure(code="network", description=f"could not reach Slack ({type(error).__name__})")
    if isinstance(error, SlackClientError):
        return ApiFailure(code="client_error", description=f"Slack client error ({type(error).__name__})")
    return ApiFailure(code="unexpected", description=f"unexpected error ({type(error).__name__})")


WEB_API_ERRORS: tuple[type[BaseException], ...] = (
    SlackClientError,
    aiohttp.ClientError,
    TimeoutError,
    OSError,
)


class SlackClients(Protocol):
    """A Web API client holding the bot token of one workspace; None when Vigil is not installed there."""

    async def for_team(self, team_id: str) -> AsyncWebClient | None: ...


class TokenClients:
    """One workspace, one bot token."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client

    async def for_team(self, team_id: str) -> AsyncWebClient | None:
        return self._client


class InstallationClients:
    """Many workspaces: each one's bot token comes from the OAuth installation store."""

    def __init__(
        self,
        *,
        installation_store: AsyncInstallationStore,
        base_url: str,
        sdk_logger: logging.Logger,
    ) -> None:
        self._installations = installation_store
        self._base_url = base_url
        self._sdk_logger = sdk_logger

    async def for_team(self, team_id: str) -> AsyncWebClient | None:
        bot = await self._installations.async_find_bot(enterprise_id=None, team_id=team_id)
        if bot is None or not bot.bot_token:
            return None
        return AsyncWebClient(token=bot.bot_token, base_url=self._base_url, logger=self._sdk_logger)


class DeliveryHealth:
    """The last permanent delivery problem per workspace: logged once, shown by ``/vigil status``."""

    def __init__(self) -> None:
        self._problems: dict[str, ApiFailure] = {}

    def failed(self, team_id: str, failure: ApiFailure) -> None:
        if not failure.permanent:
            return
        previous = self._problems.get(team_id)
        self._problems[team_id] = failure
        if previous is None or previous.code != failure.code:
            logger.error("Slack workspace %s: alerts cannot be delivered: %s", team_id, failure.description)

    def succeeded(self, team_id: str) -> None:
        if self._problems.pop(team_id, None) is not None:
            logger.info("Slack workspace %s: alerts are being delivered again", team_id)

    def problem(self, team_id: str) -> ApiFailure | None:
        return self._problems.get(team_id)
