"""``SlackSink``: posts alerts to a workspace's alert channel in Block Kit and edits them as cases change.

The delivery reference is ``"<channel_id>/<ts>"`` of the posted message; updates go through ``chat.update``,
so an alert is one message that changes, never a stream of new ones. A deleted alert message is posted again
on its next update. Platform failures are ``DeliveryResult`` values: rate limits carry Slack's Retry-After,
server errors and network trouble are transient, and missing access is permanent with advice for the admin.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from types import MappingProxyType

from slack_sdk.web.async_client import AsyncWebClient

from vigil.bots.core.models import Alert, DeliveryResult
from vigil.bots.core.ports import Delivery, Trend
from vigil.bots.slack.blocks import Block, alert_blocks, alert_text
from vigil.bots.slack.translate import message_ref
from vigil.bots.slack.web import (
    WEB_API_ERRORS,
    ApiFailure,
    DeliveryHealth,
    SlackClients,
    classify_failure,
    permanent_failure,
)

__all__ = ["SlackSink", "parse_ref"]

logger = logging.getLogger(__name__)

_PERMALINK_CACHE = 4096
_TREND_WORDS = MappingProxyType(
    {Trend.NEW: "new", Trend.RISING: "rising ↑", Trend.FALLING: "falling ↓", Trend.STEADY: "steady"}
)
_REPOST_ERRORS = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})


def parse_ref(ref: str) -> tuple[str, str] | None:
    channel_id, _, ts = ref.partition("/")
    return (channel_id, ts) if channel_id and ts else None


def _result(failure: ApiFailure) -> DeliveryResult:
    return DeliveryResult(
        ok=False, error=failure.description, retry_after=failure.retry_after, permanent=failure.permanent
    )


class SlackSink:
    """The ``AlertSink`` for platform ``"slack"``."""

    def __init__(
        self,
        *,
        clients: SlackClients,
        signal_labels: Mapping[str, str],
        health: DeliveryHealth,
    ) -> None:
        self._clients = clients
        self._signal_labels = dict(signal_labels)
        self._health = health
        self._permalinks: OrderedDict[str, str] = OrderedDict()

    async def post(self, delivery: Delivery) -> DeliveryResult:
        view = delivery.case
        team_id = view.alert.key.space_id
        client = await self._clients.for_team(team_id)
        if client is None:
            return self._failed(team_id, permanent_failure("no_installation"))
        channel_id = delivery.channel_id
        if channel_id is None:
            return self._failed(team_id, permanent_failure("no_alert_channel"))
        blocks = await self._blocks(client, delivery)
        try:
            response = await client.chat_postMessage(
                channel=channel_id,
                text=alert_text(view),
                blocks=blocks,
                unfurl_links=False,
                unfurl_media=False,
            )
        except WEB_API_ERRORS as error:
            return self._failed(team_id, classify_failure(error))
        self._health.succeeded(team_id)
        posted_channel = str(response.get("channel") or channel_id)
        return DeliveryResult(ok=True, ref=f"{posted_channel}/{response['ts']}")

    async def update(self, delivery: Delivery, *, ref: str) -> DeliveryResult:
        view = delivery.case
        alert = view.alert
        target = parse_ref(ref)
        if target is None:
            logger.warning("case %d has an unusable Slack reference; posting it again", alert.case_number)
            return await self.post(delivery)
        team_id = alert.key.space_id
        client = await self._clients.for_team(team_id)
        if client is None:
            return self._failed(team_id, permanent_failure("no_installation"))
        blocks = await self._blocks(client, delivery)
        channel_id, ts = target
        try:
            await client.chat_update(channel=channel_id, ts=ts, text=alert_text(view), blocks=blocks)
        except WEB_API_ERRORS as error:
            failure = classify_failure(error)
            if failure.code in _REPOST_ERRORS:
                logger.info(
                    "the message of case %d is gone (%s); posting it again", alert.case_number, failure.code
                )
                return await self.post(delivery)
            return self._failed(team_id, failure)
        self._health.succeeded(team_id)
        return DeliveryResult(ok=True, ref=ref)

    def _failed(self, team_id: str, failure: ApiFailure) -> DeliveryResult:
        self._health.failed(team_id, failure)
        return _result(failure)

    async def _blocks(self, client: AsyncWebClient, delivery: Delivery) -> list[Block]:
        permalinks = await self._permalinks_for(client, delivery.alert)
        return alert_blocks(
            delivery.case,
            signal_labels=self._signal_labels,
            permalinks=permalinks,
            trend=_TREND_WORDS[delivery.trend],
        )

    async def _permalinks_for(self, client: AsyncWebClient, alert: Alert) -> dict[str, str]:
        links: dict[str, str] = {}
        for message in alert.evidence:
            cached = self._permalinks.get(message.message_id)
            if cached is not None:
                self._permalinks.move_to_end(message.message_id)
                links[message.message_id] = cached
                continue
            ref = message_ref(message.message_id)
            if ref is None:
                continue
            try:
                response = await client.chat_getPermalink(channel=ref[0], message_ts=ref[1])
            except WEB_API_ERRORS as error:
                failure = classify_failure(error)
                logger.debug("no permalink for a message of case %d (%s)", alert.case_number, failure.code)
                if failure.permanent and failure.is_token_problem:
                    break
                continue
            link = response.get("permalink")
            if isinstance(link, str) and link.startswith("https://"):
                links[message.message_id] = link
                self._permalinks[message.message_id] = link
                if len(self._permalinks) > _PERMALINK_CACHE:
                    self._permalinks.popitem(last=False)
        return links
