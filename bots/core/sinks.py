"""Alert sinks that need no platform: the console (text for people, JSON lines for programs)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Literal, TextIO

from vigil.bots.core.models import Alert, DeliveryResult
from vigil.bots.core.ports import AlertSink, Delivery

logger = logging.getLogger(__name__)

EXCERPT_CHARS = 160


def excerpt(text: str, *, limit: int = EXCERPT_CHARS) -> str:
    """A short single-line excerpt: alerts show the least text needed."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def alert_to_dict(alert: Alert, *, signal_labels: Mapping[str, str]) -> dict[str, object]:
    return {
        "alert_id": alert.alert_id,
        "case_number": alert.case_number,
        "revision": alert.revision,
        "status": str(alert.status),
        "platform": alert.key.platform,
        "space_id": alert.key.space_id,
        "suspect_id": alert.suspect_id,
        "other_id": alert.other_id,
        "risk": round(alert.risk, 4),
        "peak_risk": round(alert.peak_risk, 4),
        "channel_ids": list(alert.channel_ids),
        "signals": [signal_labels.get(s, s) for s in alert.signals],
        "evidence": [
            {
                "message_id": m.message_id,
                "channel_id": m.channel_id,
                "author_id": m.author_id,
                "timestamp": m.timestamp.isoformat(),
                "risk": round(m.risk, 4),
                "excerpt": excerpt(m.text),
            }
            for m in alert.evidence
        ],
        "created_at": alert.created_at.isoformat(),
        "updated_at": alert.updated_at.isoformat(),
        "model": alert.model_name,
        "shadow": alert.shadow,
    }


def render_alert_text(alert: Alert, *, signal_labels: Mapping[str, str], updated: bool) -> str:
    heading = "UPDATED" if updated else "NEW"
    where = ", ".join(alert.channel_ids)
    lines = [
        f"── Vigil alert · case #{alert.case_number} · {heading} (revision {alert.revision}) ──",
        f"Risk {alert.risk:.2f} (peak {alert.peak_risk:.2f}) · "
        f"space {alert.key.space_id} on {alert.key.platform}",
        f"Likely groomer: {alert.suspect_id}    Other party: {alert.other_id}",
        f"Where they talk: {where}",
    ]
    if alert.signals:
        lines.append("Signals: " + "; ".join(signal_labels.get(s, s) for s in alert.signals))
    lines.append("Messages that contributed most:")
    for m in alert.evidence:
        lines.append(f"  [{m.risk:.2f}] {m.timestamp:%Y-%m-%d %H:%M} {m.author_id}: “{excerpt(m.text)}”")
    lines.append("Vigil flags and explains; a person decides. Review the conversation before acting.")
    return "\n".join(lines)


class ConsoleSink:
    """Prints alerts to a stream. Used by ``vigil demo``, ``vigil scan`` and ``[console] enabled``."""

    def __init__(
        self, stream: TextIO, *, signal_labels: Mapping[str, str], style: Literal["text", "json"] = "text"
    ) -> None:
        self._stream = stream
        self._signal_labels = dict(signal_labels)
        self._style = style

    async def post(self, delivery: Delivery) -> DeliveryResult:
        return self._write(delivery.alert, updated=False)

    async def update(self, delivery: Delivery, *, ref: str) -> DeliveryResult:
        return self._write(delivery.alert, updated=True)

    def _write(self, alert: Alert, *, updated: bool) -> DeliveryResult:
        try:
            if self._style == "json":
                payload = alert_to_dict(alert, signal_labels=self._signal_labels) | {"updated": updated}
                self._stream.write(json.dumps(payload, ensure_ascii=False) + "\n")
            else:
                self._stream.write(
                    render_alert_text(alert, signal_labels=self._signal_labels, updated=updated)
                )
                self._stream.write("\n\n")
            self._stream.flush()
        except (OSError, ValueError) as exc:
            return DeliveryResult(ok=False, error=f"console write failed: {exc}")
        return DeliveryResult(ok=True, ref=f"console:{alert.alert_id}")


class RoutingSink:
    """One outbox, several platforms: hands each alert to the sink of the platform it came from."""

    def __init__(self, sinks: Mapping[str, AlertSink], *, fallback: AlertSink | None = None) -> None:
        self._sinks = dict(sinks)
        self._fallback = fallback

    def _sink_for(self, alert: Alert) -> AlertSink | None:
        return self._sinks.get(alert.key.platform, self._fallback)

    async def post(self, delivery: Delivery) -> DeliveryResult:
        sink = self._sink_for(delivery.alert)
        if sink is None:
            return _no_sink(delivery.alert)
        return await sink.post(delivery)

    async def update(self, delivery: Delivery, *, ref: str) -> DeliveryResult:
        sink = self._sink_for(delivery.alert)
        if sink is None:
            return _no_sink(delivery.alert)
        return await sink.update(delivery, ref=ref)


def _no_sink(alert: Alert) -> DeliveryResult:
    return DeliveryResult(
        ok=False, error=f"no alert sink for platform {alert.key.platform!r}", permanent=True
    )


class MirroredSink:
    """Delivers through ``primary`` and, once that delivery is done, shows the alert on ``mirror`` too:
    ``[console] enabled`` beside a chat channel or a webhook. Shown after success only, so retries print
    once; the mirror never decides a delivery, so a console that cannot write does not make the outbox post
    again."""

    def __init__(self, primary: AlertSink, *, mirror: AlertSink) -> None:
        self._primary = primary
        self._mirror = mirror

    async def post(self, delivery: Delivery) -> DeliveryResult:
        result = await self._primary.post(delivery)
        await self._show(delivery, result, updated=False)
        return result

    async def update(self, delivery: Delivery, *, ref: str) -> DeliveryResult:
        result = await self._primary.update(delivery, ref=ref)
        await self._show(delivery, result, updated=True)
        return result

    async def _show(self, delivery: Delivery, result: DeliveryResult, *, updated: bool) -> None:
        if not result.ok:
            return
        shown = await (self._mirror.update(delivery, ref="") if updated else self._mirror.post(delivery))
        if not shown.ok:
            logger.warning("alert %s: mirror failed: %s", delivery.alert.alert_id, shown.error)
