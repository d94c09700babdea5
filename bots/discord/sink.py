"""``DiscordSink``: posts alerts to a server's private alert channel and edits them as the case changes.

Every Discord or network failure becomes a ``DeliveryResult`` for the outbox: 429 → ``retry_after``; 403, 404
and other client errors → permanent (a person must fix a permission or the channel); 5xx and network errors →
transient. The sink's reference for a posted alert is ``"<channel_id>/<message_id>"``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiohttp
import discord

from vigil.bots.core.models import DeliveryResult, SpaceSettings
from vigil.bots.core.ports import Delivery
from vigil.bots.discord.render import alert_embed, case_buttons

__all__ = [
    "ALERT_CHANNEL_PERMISSIONS",
    "DiscordSink",
    "delivery_failure",
    "invite_url",
    "missing_permissions",
]

logger = logging.getLogger(__name__)

# What Vigil needs in the alert channel, with the names Discord's settings show.
ALERT_CHANNEL_PERMISSIONS: tuple[tuple[str, str], ...] = (
    ("view_channel", "View Channel"),
    ("send_messages", "Send Messages"),
    ("embed_links", "Embed Links"),
    ("read_message_history", "Read Message History"),
)
_UNKNOWN_MESSAGE = 10008
_NOT_CONNECTED_RETRY_S = 5.0
_TEXT_CHARS = 200
_PLATFORM_ERRORS = (discord.DiscordException, aiohttp.ClientError, OSError, TimeoutError)


def missing_permissions(permissions: discord.Permissions) -> tuple[str, ...]:
    return tuple(label for name, label in ALERT_CHANNEL_PERMISSIONS if not getattr(permissions, name))


def invite_url(application_id: int) -> str:
    """The link that adds Vigil to a server with exactly the permissions it needs (docs/discord.md, 2)."""
    permissions = discord.Permissions(**{name: True for name, _ in ALERT_CHANNEL_PERMISSIONS})
    return discord.utils.oauth_url(
        application_id, permissions=permissions, scopes=("bot", "applications.commands")
    )


def _needs() -> str:
    return ", ".join(label for _, label in ALERT_CHANNEL_PERMISSIONS)


def delivery_failure(error: BaseException, *, channel_id: str) -> DeliveryResult:
    """Map a Discord or network failure to a result the outbox understands. Never includes message text."""
    where = f"alert channel {channel_id}"
    if isinstance(error, discord.RateLimited):
        return DeliveryResult(
            ok=False, error=f"rate limited by Discord in {where}", retry_after=error.retry_after
        )
    if isinstance(error, discord.Forbidden):
        return DeliveryResult(
            ok=False,
            permanent=True,
            error=(
                f"Discord refused to let Vigil post in {where} (403, code {error.code}): give Vigil "
                f"{_needs()} there, or run /vigil setup with another channel"
            ),
        )
    if isinstance(error, discord.NotFound):
        return DeliveryResult(
            ok=False,
            permanent=True,
            error=f"{where} not found (404, code {error.code}): it was deleted or hidden; run /vigil setup",
        )
    if isinstance(error, discord.DiscordServerError):
        return DeliveryResult(ok=False, error=f"Discord server error {error.status} in {where}")
    if isinstance(error, discord.HTTPException):
        if error.status == 429:  # a 429 without rate-limit details (e.g. from Cloudflare)
            retry_after = _retry_after_header(error)
            return DeliveryResult(ok=False, error=f"rate limited (429) in {where}", retry_after=retry_after)
        return DeliveryResult(
            ok=False,
            permanent=True,
            error=f"Discord rejected the alert for {where} ({error.status}, code {error.code}): "
            f"{error.text[:_TEXT_CHARS]}",
        )
    if isinstance(error, aiohttp.ClientError | OSError | TimeoutError):
        return DeliveryResult(ok=False, error=f"network error talking to Discord: {type(error).__name__}")
    return DeliveryResult(ok=False, error=f"unexpected error posting to {where}: {type(error).__name__}")


def _retry_after_header(error: discord.HTTPException) -> float:
    value = error.response.headers.get("Retry-After") if error.response is not None else None
    try:
        return max(1.0, float(value)) if value is not None else 60.0
    except ValueError:
        return 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class _Target:
    channel_id: str
    message_id: int | None


def _parse_ref(ref: str) -> _Target | None:
    channel_id, _, message_id = ref.partition("/")
    if not channel_id.isdigit() or not message_id.isdigit():
        return None
    return _Target(channel_id=channel_id, message_id=int(message_id))


@dataclass(frozen=True, slots=True, kw_only=True)
class _Destination:
    channel_id: str
    channel: discord.PartialMessageable
    ping: str
    mentions: discord.AllowedMentions


class DiscordSink:
    """The ``AlertSink`` for platform ``"discord"`` (put it in the ``RoutingSink`` under that name)."""

    def __init__(
        self,
        *,
        client: discord.Client,
        signal_labels: Mapping[str, str],
        is_connected: Callable[[], bool],
    ) -> None:
        self._client = client
        self._signal_labels = dict(signal_labels)
        self._is_connected = is_connected
        self._problems: dict[str, str] = {}

    def problem_for(self, space_id: str) -> str | None:
        """The last delivery failure in a server, until a delivery there succeeds (for /vigil status)."""
        return self._problems.get(space_id)

    async def post(self, delivery: Delivery) -> DeliveryResult:
        alert = delivery.alert
        space_id = alert.key.space_id
        destination = self._destination(
            space_id, channel_id=delivery.channel_id, role_id=delivery.moderator_role_id
        )
        if isinstance(destination, DeliveryResult):
            return destination
        embed, buttons = self._render(delivery)
        return await self._send(
            space_id,
            destination,
            content=f"New Vigil alert: case #{alert.case_number}",
            embed=embed,
            view=buttons,
        )

    async def post_test(self, settings: SpaceSettings) -> DeliveryResult:
        """A test alert, exactly where and as real ones go (role ping, embed), with nothing to act on."""
        destination = self._destination(
            settings.space_id, channel_id=settings.alert_channel_id, role_id=settings.moderator_role_id
        )
        if isinstance(destination, DeliveryResult):
            return destination
        embed = discord.Embed(
            title="Vigil · test alert",
            description="Alerts about likely grooming conversations will appear here, like this one, with "
            "buttons to claim, dismiss, confirm or escalate them. This one is only a test: nothing to do.",
        )
        # No buttons: there is no case to act on.
        return await self._send(
            settings.space_id, destination, content="Vigil test alert", embed=embed, view=discord.ui.View()
        )

    async def _send(
        self,
        space_id: str,
        destination: _Destination,
        *,
        content: str,
        embed: discord.Embed,
        view: discord.ui.View,
    ) -> DeliveryResult:
        try:
            message = await destination.channel.send(
                content=f"{destination.ping}{content}",
                embed=embed,
                view=view,
                allowed_mentions=destination.mentions,
            )
        except _PLATFORM_ERRORS as error:
            return self._failed(space_id, delivery_failure(error, channel_id=destination.channel_id))
        self._succeeded(space_id)
        return DeliveryResult(ok=True, ref=f"{destination.channel_id}/{message.id}")

    def _destination(
        self, space_id: str, *, channel_id: str | None, role_id: str | None
    ) -> _Destination | DeliveryResult:
        """Where a server's alerts go and whom they ping, or why they cannot go."""
        if not self._is_connected():
            return DeliveryResult(
                ok=False, error="not connected to Discord yet", retry_after=_NOT_CONNECTED_RETRY_S
            )
        if channel_id is None:
            return self._failed(
                space_id,
                DeliveryResult(
                    ok=False,
                    permanent=True,
                    error=f"no alert channel is set for Discord server {space_id}: run /vigil setup there",
                ),
            )
        ping = ""
        mentions = discord.AllowedMentions.none()
        if role_id is not None and role_id.isdigit():
            ping = f"<@&{role_id}> "
            mentions = discord.AllowedMentions(
                everyone=False, users=False, roles=[discord.Object(id=int(role_id))]
            )
        channel = self._client.get_partial_messageable(int(channel_id), guild_id=_guild_id(space_id))
        return _Destination(channel_id=channel_id, channel=channel, ping=ping, mentions=mentions)

    async def update(self, delivery: Delivery, *, ref: str) -> DeliveryResult:
        alert = delivery.alert
        space_id = alert.key.space_id
        target = _parse_ref(ref)
        if target is None or target.message_id is None:
            logger.warning("case %d has an unusable Discord reference; posting it again", alert.case_number)
            return await self.post(delivery)
        if not self._is_connected():
            return DeliveryResult(
                ok=False, error="not connected to Discord yet", retry_after=_NOT_CONNECTED_RETRY_S
            )
        embed, buttons = self._render(delivery)
        channel = self._client.get_partial_messageable(int(target.channel_id), guild_id=_guild_id(space_id))
        try:
            await channel.get_partial_message(target.message_id).edit(embed=embed, view=buttons)
        except discord.NotFound as error:
            if error.code == _UNKNOWN_MESSAGE:
                # Someone deleted the alert message: moderators must still see the case, so post it anew.
                logger.warning("the message of case %d was deleted; posting it again", alert.case_number)
                return await self.post(delivery)
            return self._failed(space_id, delivery_failure(error, channel_id=target.channel_id))
        except _PLATFORM_ERRORS as error:
            return self._failed(space_id, delivery_failure(error, channel_id=target.channel_id))
        self._succeeded(space_id)
        return DeliveryResult(ok=True, ref=ref)

    def _render(self, delivery: Delivery) -> tuple[discord.Embed, discord.ui.View]:
        view = delivery.case
        embed = alert_embed(view, signal_labels=self._signal_labels, risk_points=delivery.risk_points)
        return embed, case_buttons(case_number=view.alert.case_number, state=view.state)

    def _failed(self, space_id: str, result: DeliveryResult) -> DeliveryResult:
        error = result.error or "unknown error"
        if result.permanent and self._problems.get(space_id) != error:
            # Said once per distinct problem; the outbox keeps retrying slowly until a person fixes it.
            logger.warning("Discord server %s: %s", space_id, error)
        self._problems[space_id] = error
        return result

    def _succeeded(self, space_id: str) -> None:
        if self._problems.pop(space_id, None) is not None:
            logger.info("Discord server %s: alerts are being delivered again", space_id)


def _guild_id(space_id: str) -> int | None:
    return int(space_id) if space_id.isdigit() else None
