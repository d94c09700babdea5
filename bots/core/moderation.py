"""``ModeratorService``: what moderators and admins do to a space, with one set of permission and validation
rules for every platform. Discord and Slack (and the HTTP API, for pair histories) parse the request and
render the answer; nothing here knows them.

Who may do what (also in docs/cases.md):

- set-up (alert channel, moderator and child-safety roles), the threshold, ignored channels: admins
  (Discord: Manage Server; Slack: workspace admins and owners);
- status and a test alert: anyone with a Vigil role (admins, moderators, the child-safety role);
- a pair's history: moderators and the child-safety role (it says who talks with whom).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from vigil.bots.core.cases import Actor, Role
from vigil.bots.core.clock import Clock, utc_now
from vigil.bots.core.models import PairKey, PairState, RiskPoint, SpaceSettings, signals_seen
from vigil.bots.core.policy import PolicyLookup, alert_outlook
from vigil.bots.core.ports import ModeratorStore, SpaceSettingsStore

# A space's own alert threshold: outside this range every pair alerts (0.00) or none ever does (1.00).
THRESHOLD_MIN = 0.05
THRESHOLD_MAX = 0.99

_ANY_ROLE = frozenset({Role.ADMIN, Role.MODERATOR, Role.CHILD_SAFETY})
_READS_PAIRS = frozenset({Role.MODERATOR, Role.CHILD_SAFETY})


class Denied(enum.Enum):
    """Why a request was refused; each platform says it in its own words (its own role names)."""

    ADMINS_ONLY = "admins_only"
    ROLES_ONLY = "roles_only"
    MODERATORS_ONLY = "moderators_only"
    THRESHOLD_OUT_OF_RANGE = "threshold_out_of_range"
    SAME_PERSON = "same_person"


@dataclass(frozen=True, slots=True, kw_only=True)
class SettingsChange:
    """The space's settings after a change, or why there was none."""

    denied: Denied | None = None
    settings: SpaceSettings | None = None
    # The threshold in force afterwards (the space's own, or the default) and whether it is the default.
    threshold: float = 0.0
    threshold_is_default: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class SpaceStatus:
    settings: SpaceSettings
    threshold: float
    threshold_is_default: bool
    shadow_mode: bool
    alerts_today: int
    pending_deliveries: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PairHistory:
    key: PairKey
    # None: Vigil has not seen these two talking (or retention removed them since).
    state: PairState | None
    points: tuple[RiskPoint, ...]
    open_case: int | None
    # Why there is no alert yet, in words (None when a case is open or the pair is unknown).
    outlook: str | None
    # The signals in the likely groomer's messages still in the pair's window, most frequent first (the
    # order an alert lists them in); names, which each platform puts in words.
    signals: tuple[str, ...]
    # The alert threshold the space's pairs are judged by (its own or the default), for charts.
    threshold: float


T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer(Generic[T]):
    denied: Denied | None = None
    value: T | None = None


class ModeratorService:
    """Setup, threshold, ignored channels, status and pair history for one platform's spaces."""

    def __init__(
        self,
        *,
        platform: str,
        store: ModeratorStore,
        settings: SpaceSettingsStore | None = None,
        default_threshold: float,
        default_shadow_mode: bool,
        policy_for: PolicyLookup,
        history_points: int = 12,
        on_settings_changed: Callable[[SpaceSettings], None] | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._platform = platform
        self._store = store
        # Reads and writes of settings may go through an adapter's cache (which refreshes on our writes).
        self._settings = settings or store
        self._default_threshold = default_threshold
        self._default_shadow_mode = default_shadow_mode
        self._policy_for = policy_for
        self._history_points = history_points
        self._on_settings_changed = on_settings_changed
        self._clock = clock

    # ------------------------------------------------------------------------------------------ settings

    async def current(self, space_id: str) -> SpaceSettings:
        found = await self._settings.get_space_settings(platform=self._platform, space_id=space_id)
        return found or SpaceSettings(platform=self._platform, space_id=space_id)

    async def setup(
        self,
        actor: Actor,
        *,
        alert_channel_id: str | None = None,
        moderator_role_id: str | None = None,
        child_safety_role_id: str | None = None,
        replace_roles: bool = False,
    ) -> SettingsChange:
        """Set what is given; with ``replace_roles`` an omitted child-safety role is cleared (Discord's form
        asks for all of them at once)."""
        if Role.ADMIN not in actor.roles:
            return SettingsChange(denied=Denied.ADMINS_ONLY)
        current = await self.current(actor.space_id)
        updated = dataclasses.replace(
            current,
            alert_channel_id=alert_channel_id or current.alert_channel_id,
            moderator_role_id=moderator_role_id or current.moderator_role_id,
            child_safety_role_id=child_safety_role_id
            if child_safety_role_id is not None or replace_roles
            else current.child_safety_role_id,
        )
        return await self._save(updated)

    async def set_threshold(self, actor: Actor, *, value: float | None) -> SettingsChange:
        """``None``: back to the default."""
        if Role.ADMIN not in actor.roles:
            return SettingsChange(denied=Denied.ADMINS_ONLY)
        if value is not None and not THRESHOLD_MIN <= value <= THRESHOLD_MAX:
            return SettingsChange(denied=Denied.THRESHOLD_OUT_OF_RANGE)
        current = await self.current(actor.space_id)
        return await self._save(dataclasses.replace(current, threshold=value))

    async def set_ignored(self, actor: Actor, *, channel_ids: Sequence[str], ignored: bool) -> SettingsChange:
        """Ignore (or watch again) channels; a thread's messages follow their channel."""
        if Role.ADMIN not in actor.roles:
            return SettingsChange(denied=Denied.ADMINS_ONLY)
        current = await self.current(actor.space_id)
        chosen = frozenset(channel_ids)
        channels = current.ignored_channel_ids | chosen if ignored else current.ignored_channel_ids - chosen
        return await self._save(dataclasses.replace(current, ignored_channel_ids=channels))

    async def _save(self, settings: SpaceSettings) -> SettingsChange:
        await self._settings.put_space_settings(settings)
        if self._on_settings_changed is not None:
            self._on_settings_changed(settings)
        threshold, is_default = self._threshold_of(settings)
        return SettingsChange(settings=settings, threshold=threshold, threshold_is_default=is_default)

    def _threshold_of(self, settings: SpaceSettings) -> tuple[float, bool]:
        if settings.threshold is None:
            return self._default_threshold, True
        return settings.threshold, False

    # ------------------------------------------------------------------------------------------ reading

    def may_see_status(self, actor: Actor) -> bool:
        """Status and test alerts: anyone with a Vigil role."""
        return bool(actor.roles & _ANY_ROLE)

    async def status(self, actor: Actor) -> Answer[SpaceStatus]:
        if not self.may_see_status(actor):
            return Answer(denied=Denied.ROLES_ONLY)
        settings = await self.current(actor.space_id)
        threshold, is_default = self._threshold_of(settings)
        now = self._clock()
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return Answer(
            value=SpaceStatus(
                settings=settings,
                threshold=threshold,
                threshold_is_default=is_default,
                shadow_mode=settings.shadow_mode
                if settings.shadow_mode is not None
                else self._default_shadow_mode,
                alerts_today=await self._store.count_alerts_since(
                    platform=self._platform, space_id=actor.space_id, since=midnight
                ),
                pending_deliveries=await self._store.pending_delivery_count(),
            )
        )

    async def pair_history(self, actor: Actor, *, first: str, second: str) -> Answer[PairHistory]:
        if not actor.roles & _READS_PAIRS:
            return Answer(denied=Denied.MODERATORS_ONLY)
        if first == second:
            return Answer(denied=Denied.SAME_PERSON)
        key = PairKey.of(platform=self._platform, space_id=actor.space_id, first=first, second=second)
        state = await self._store.load_pair(key)
        points = await self._store.risk_history(key, limit=self._history_points) if state is not None else []
        signals: tuple[str, ...] = ()
        if state is not None and state.suspect_id is not None:
            signals = signals_seen(await self._store.load_window(key), author_id=state.suspect_id)
        alert = await self._store.open_alert_for_pair(key)
        policy = await self._policy_for(platform=self._platform, space_id=actor.space_id)
        outlook = None
        if state is not None and alert is None:
            outlook = alert_outlook(
                policy,
                risk=state.risk,
                streak=state.above_threshold_streak,
                snoozed_until=state.snoozed_until,
                now=self._clock(),
            )
        return Answer(
            value=PairHistory(
                key=key,
                state=state,
                points=tuple(points),
                open_case=alert.case_number if alert is not None else None,
                outlook=outlook,
                signals=signals,
                threshold=policy.threshold,
            )
        )
