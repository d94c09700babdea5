"""Platform-neutral domain models shared by the monitor, the store and the adapters."""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

# The platforms Vigil's own adapters read (bots/discord, bots/slack): their messages come only from there.
ADAPTER_PLATFORMS = frozenset({"discord", "slack"})


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatMessage:
    """One message as every adapter translates it (``to_chat_message``).

    Ids are platform strings. ``space_id`` is the guild (Discord), workspace (Slack) or tenant (HTTP).
    ``recipient_ids`` are the other participants the platform itself says a DM is addressed to (empty when
    unknown, and always empty for channel messages). ``timestamp`` is timezone-aware UTC.
    """

    platform: str
    space_id: str
    channel_id: str
    message_id: str
    author_id: str
    text: str
    timestamp: datetime
    is_dm: bool = False
    thread_id: str | None = None
    author_is_bot: bool = False
    reply_to_message_id: str | None = None
    reply_to_author_id: str | None = None
    mentioned_user_ids: tuple[str, ...] = ()
    recipient_ids: tuple[str, ...] = ()
    # Shown to moderators only; never stored beyond the window, never put in titles.
    author_display_name: str | None = None


@dataclass(frozen=True, slots=True, order=True)
class PairKey:
    """Two people in one space. ``user_a < user_b`` always, so a pair has exactly one key."""

    platform: str
    space_id: str
    user_a: str
    user_b: str

    @classmethod
    def of(cls, *, platform: str, space_id: str, first: str, second: str) -> PairKey:
        if first == second:
            raise ValueError("a pair needs two different users")
        low, high = sorted((first, second))
        return cls(platform=platform, space_id=space_id, user_a=low, user_b=high)

    def other(self, user_id: str) -> str:
        if user_id == self.user_a:
            return self.user_b
        if user_id == self.user_b:
            return self.user_a
        raise ValueError("user is not a member of this pair")

    def __contains__(self, user_id: object) -> bool:
        return user_id in (self.user_a, self.user_b)


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowMessage:
    """A message kept in a pair's rolling window: the original text (what moderators see) and its score."""

    message_id: str
    channel_id: str
    thread_id: str | None
    author_id: str
    text: str
    timestamp: datetime
    risk: float
    signals: tuple[str, ...] = ()


def signals_seen(window: Iterable[WindowMessage], *, author_id: str) -> tuple[str, ...]:
    """The signals in ``author_id``'s own messages, most frequent first (ties by name): the order alerts list
    them in and ``/vigil pair`` shows them in."""
    counts = Counter(signal for m in window if m.author_id == author_id for signal in m.signals)
    return tuple(name for name, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


@dataclass(frozen=True, slots=True, kw_only=True)
class PairState:
    """Everything Vigil keeps about a pair between messages (the window itself is stored apart)."""

    key: PairKey
    first_seen: datetime
    last_seen: datetime
    message_count: int
    channel_ids: tuple[str, ...]
    # Opaque running state owned by the detector's pair model (JSON); cost per message is O(1) in it.
    model_state: str
    risk: float
    suspect_id: str | None
    # Consecutive scored messages at or above the threshold: the "sustained evidence" counter.
    above_threshold_streak: int = 0
    snoozed_until: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskPoint:
    """One step of a pair's risk trajectory."""

    key: PairKey
    timestamp: datetime
    message_id: str
    risk: float
    suspect_id: str | None


class AlertStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """A pair whose risk crossed the policy. One open alert per pair; it is updated, never re-raised."""

    alert_id: int
    key: PairKey
    case_number: int
    status: AlertStatus
    risk: float
    peak_risk: float
    suspect_id: str
    other_id: str
    channel_ids: tuple[str, ...]
    signals: tuple[str, ...]
    evidence: tuple[WindowMessage, ...]
    created_at: datetime
    updated_at: datetime
    revision: int
    shadow: bool
    model_name: str
    # The sink's handle for the posted alert (e.g. "channel_id/message_id"); None until delivered.
    delivery_ref: str | None = None


class OutboxKind(enum.StrEnum):
    POST = "post"
    UPDATE = "update"


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxItem:
    """A pending delivery of an alert (or a new revision of it) to the alert sink."""

    item_id: int
    alert_id: int
    kind: OutboxKind
    revision: int
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    # The claim this item was handed out under by ``claim_deliveries`` (None from ``due_deliveries``):
    # only its holder may complete or reschedule it.
    claim: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryScope:
    """Which outbox items a delivery worker claims, by the platform of their alert: those in ``platforms``
    (None: any) and not in ``except_platforms``. A worker claims only alerts its sink can deliver, so it never
    takes over (and fails) alerts that another process holds the sink for."""

    platforms: frozenset[str] | None = None
    except_platforms: frozenset[str] = frozenset()

    def covers(self, platform: str) -> bool:
        return (
            self.platforms is None or platform in self.platforms
        ) and platform not in self.except_platforms

    @property
    def is_everything(self) -> bool:
        return self.platforms is None and not self.except_platforms

    def __str__(self) -> str:
        if self.platforms is not None:
            return ", ".join(sorted(self.platforms - self.except_platforms)) or "no platform"
        if self.except_platforms:
            return f"any platform but {', '.join(sorted(self.except_platforms))}"
        return "any platform"


# The scope of a worker that delivers every alert (one sink for all, or the only worker there is).
ANY_PLATFORM = DeliveryScope()


@dataclass(frozen=True, slots=True, kw_only=True)
class SpaceSettings:
    """Per-space overrides set by moderators (slash commands); ``None`` means "use the config default"."""

    platform: str
    space_id: str
    threshold: float | None = None
    alert_channel_id: str | None = None
    moderator_role_id: str | None = None
    child_safety_role_id: str | None = None
    ignored_channel_ids: frozenset[str] = field(default_factory=frozenset)
    shadow_mode: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryResult:
    """What an alert sink reports back: platform errors are results, never exceptions in the core."""

    ok: bool
    ref: str | None = None
    error: str | None = None
    # Seconds the platform asked us to wait (429 Retry-After), if any.
    retry_after: float | None = None
    # A permanent failure (missing permission, unknown channel) still retries, but slowly and loudly.
    permanent: bool = False
