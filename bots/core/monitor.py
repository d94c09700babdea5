"""The Monitor: one path for every message, from ``ChatMessage`` to pair state, risk and alerts.

Scoring runs outside the lock, so concurrent callers' texts are batched together by the detector; applying the
results (idempotency, pair state, window, risk history, alert policy, outbox) runs under one lock and inside
one store transaction per call, in arrival order. A crash therefore loses at most the batch in flight, and a
redelivered message id is never counted twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from vigil.bots.core.clock import Clock, utc_now
from vigil.bots.core.models import (
    Alert,
    AlertStatus,
    ChatMessage,
    OutboxKind,
    PairKey,
    PairState,
    RiskPoint,
    SpaceSettings,
    WindowMessage,
    signals_seen,
)
from vigil.bots.core.normalise import is_meaningful, model_text
from vigil.bots.core.pairing import PairResolver, location_of
from vigil.bots.core.policy import (
    Decision,
    PolicyConfig,
    PolicyInput,
    decide,
    deferred_post_time,
    named_suspect,
)
from vigil.bots.core.ports import TRANSIENT_RETRY_PAUSES_S, PairChanges, ReviewLine, TransientStoreError

if TYPE_CHECKING:
    from vigil.bots.core.ports import Detector, MessageScore, MonitorStore

logger = logging.getLogger(__name__)

# A stored risk point is skipped when the risk moved less than this: the trajectory keeps its shape without a
# row per message.
_RISK_HISTORY_STEP = 0.01


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitorConfig:
    policy: PolicyConfig
    window_messages: int = 50
    evidence_messages: int = 5
    # What is kept of a message for moderators: the least text needed.
    stored_text_chars: int = 1000
    scored_text_chars: int = 2000


class SkipReason(enum.StrEnum):
    MALFORMED = "malformed"
    BOT = "bot"
    IGNORED_CHANNEL = "ignored_channel"
    NO_TEXT = "no_text"
    DUPLICATE = "duplicate"
    NO_PAIR = "no_pair"
    # Dropped under load by the ingest queue's documented shedding policy (bots/core/ingest.py).
    SHED = "shed"


@dataclass(frozen=True, slots=True, kw_only=True)
class PairUpdate:
    key: PairKey
    risk: float
    suspect_id: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertEvent:
    decision: Decision
    alert: Alert


@dataclass(frozen=True, slots=True, kw_only=True)
class HandleResult:
    message_id: str
    skipped: SkipReason | None = None
    risk: float | None = None
    pairs: tuple[PairUpdate, ...] = ()
    alerts: tuple[AlertEvent, ...] = ()
    # Handed to a message broker, to be scored by a worker (docs/scale.md): nothing is known of it yet.
    queued: bool = False


def _storable(text: str) -> str:
    # Lone surrogates (possible in text decoded from JSON) cannot be stored as UTF-8.
    return text.encode("utf-8", "replace").decode("utf-8")


def _well_formed(message: ChatMessage) -> bool:
    ids = (message.platform, message.space_id, message.channel_id, message.message_id, message.author_id)
    if not all(ids) or message.timestamp.tzinfo is None:
        return False
    try:
        for value in ids:
            value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True, slots=True, kw_only=True)
class _Scored:
    message: ChatMessage
    score: MessageScore


class _PairBatch:
    """One batch's pair state: read once before it, changed in memory message by message, written back
    once (and before anything that reads the stored window, such as an alert's evidence)."""

    def __init__(
        self, *, pairs: dict[PairKey, PairState], open_alerts: dict[PairKey, Alert], keep: int
    ) -> None:
        self.pairs = pairs
        self.open_alerts = open_alerts
        self.risks: list[RiskPoint] = []
        self._keep = keep
        self._saved: dict[PairKey, PairState] = {}
        self._window: list[tuple[PairKey, WindowMessage]] = []

    def save(self, state: PairState, message: WindowMessage) -> None:
        self.pairs[state.key] = state
        self._saved[state.key] = state
        self._window.append((state.key, message))

    def take_changes(self) -> PairChanges:
        changes = PairChanges(
            pairs=tuple(self._saved.values()),
            window=tuple(self._window),
            keep=self._keep,
            risks=tuple(self.risks),
        )
        self._saved.clear()
        self._window.clear()
        self.risks.clear()
        return changes


class Monitor:
    """Feeds messages through normalisation, pair resolution, scoring and the alert policy."""

    def __init__(
        self,
        *,
        store: MonitorStore,
        detector: Detector,
        config: MonitorConfig,
        resolver: PairResolver | None = None,
        clock: Clock = utc_now,
        on_delivery_enqueued: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._detector = detector
        self._config = config
        self._resolver = resolver or PairResolver()
        self._clock = clock
        self._on_delivery_enqueued = on_delivery_enqueued
        self._apply_lock = asyncio.Lock()
        self._bot_user_ids: dict[str, frozenset[str]] = {}
        self._model_name = f"{detector.info.name} {detector.info.version}"
        self._turns_restored = False

    @property
    def config(self) -> MonitorConfig:
        return self._config

    @property
    def model_name(self) -> str:
        return self._model_name

    def register_bot_user(self, *, platform: str, user_id: str) -> None:
        """Record the adapter's own user id: its messages never form pairs, even without a bot flag."""
        self._bot_user_ids[platform] = self._bot_user_ids.get(platform, frozenset()) | {user_id}

    def is_bot_user(self, *, platform: str, user_id: str) -> bool:
        """Whether ``user_id`` is an adapter's own user (registered with ``register_bot_user``)."""
        return user_id in self._bot_user_ids.get(platform, frozenset())

    async def handle(self, message: ChatMessage) -> HandleResult:
        return (await self.handle_batch([message]))[0]

    async def handle_batch(
        self, messages: Sequence[ChatMessage], *, fence: Callable[[], Awaitable[None]] | None = None
    ) -> list[HandleResult]:
        """Score and apply ``messages`` in order, in one store transaction. ``fence`` (a scoring worker's
        lease check, docs/scale.md) runs first inside that transaction; what it raises rolls it back."""
        # A store that failed transiently (a dropped connection, a server restarting) saved nothing of the
        # batch, so it is tried again rather than lost. Safe even when a commit's answer was what got lost:
        # the retry finds its messages claimed and skips them as duplicates.
        for attempt, pause_s in enumerate((*TRANSIENT_RETRY_PAUSES_S, None), start=1):
            try:
                return await self._handle_batch_once(messages, fence=fence)
            except TransientStoreError as error:
                if pause_s is None:
                    raise
                logger.warning(
                    "the store failed transiently (%s); trying the batch of %d again in %.1f s (attempt %d)",
                    error,
                    len(messages),
                    pause_s,
                    attempt + 1,
                )
                await asyncio.sleep(pause_s)
        raise AssertionError("unreachable")  # the last attempt returned or raised

    async def _handle_batch_once(
        self, messages: Sequence[ChatMessage], *, fence: Callable[[], Awaitable[None]] | None
    ) -> list[HandleResult]:
        if not self._turns_restored:
            await self._restore_turn_memory()
        results: list[HandleResult | None] = [None] * len(messages)
        settings = await self._settings_for(messages)
        candidates: list[tuple[int, ChatMessage]] = []
        for index, message in enumerate(messages):
            skip = self._edge_skip(message, settings.get((message.platform, message.space_id)))
            if skip is not None:
                results[index] = HandleResult(message_id=message.message_id, skipped=skip)
                continue
            candidates.append((index, message))
        # Stored already (a replay after a restart, a redelivery): not scored again. Still applied in order
        # below, where the claim decides and the turn-taking memory is rebuilt.
        seen = await self._seen_before([message for _, message in candidates])
        to_score: list[tuple[int, ChatMessage, str]] = []
        replayed: list[tuple[int, ChatMessage]] = []
        for index, message in candidates:
            if (message.platform, message.space_id, message.message_id) in seen:
                replayed.append((index, message))
                continue
            # The model's text: training's rule (mentions of people removed); the window keeps message.text.
            text = model_text(
                message.text,
                mentioned_user_ids=message.mentioned_user_ids,
                max_chars=self._config.scored_text_chars,
            )
            if not is_meaningful(text):
                results[index] = HandleResult(message_id=message.message_id, skipped=SkipReason.NO_TEXT)
                continue
            to_score.append((index, message, text))

        scores = await self._detector.score([text for _, _, text in to_score]) if to_score else []
        scored = [
            (index, _Scored(message=m, score=s)) for (index, m, _), s in zip(to_score, scores, strict=True)
        ]

        enqueued = False
        pending: list[tuple[int, _Scored | ChatMessage]] = sorted(
            [*scored, *replayed], key=lambda entry: entry[0]
        )
        async with self._apply_lock, self._store.transaction():
            if fence is not None:
                await fence()
            fresh = await self._claim([entry.message for _, entry in pending if isinstance(entry, _Scored)])
            # Pairs are resolved in arrival order (replays included: they rebuild turn-taking memory), then
            # the batch's pairs are read in two calls, decided in memory and written back in one.
            work: list[tuple[int, _Scored, tuple[PairKey, ...]]] = []
            for index, entry in pending:
                if isinstance(entry, ChatMessage):
                    results[index] = self._replayed(entry)
                    continue
                message = entry.message
                identity = (message.platform, message.space_id, message.message_id)
                if identity not in fresh:
                    # Claimed by a concurrent batch since the check before scoring, or twice in this one.
                    results[index] = self._replayed(message)
                    continue
                fresh.discard(identity)
                keys = self._resolver.resolve(
                    message, bot_user_ids=self._bot_user_ids.get(message.platform, frozenset())
                )
                if not keys:
                    results[index] = HandleResult(
                        message_id=message.message_id, skipped=SkipReason.NO_PAIR, risk=entry.score.risk
                    )
                    continue
                work.append((index, entry, tuple(keys)))
            if work:
                touched = {key for _, _, keys in work for key in keys}
                batch = _PairBatch(
                    pairs=await self._store.load_pairs(touched),
                    open_alerts=await self._store.open_alerts_for_pairs(touched),
                    keep=self._config.window_messages,
                )
                for index, entry, keys in work:
                    message = entry.message
                    result = await self._apply(
                        entry, keys, settings.get((message.platform, message.space_id)), batch
                    )
                    enqueued = enqueued or any(not event.alert.shadow for event in result.alerts)
                    results[index] = result
                await self._write(batch)
            # In the same transaction as the claims: after a crash, the memory matches what was stored.
            for location in {
                location_of(entry if isinstance(entry, ChatMessage) else entry.message)
                for _, entry in pending
            }:
                memory = self._resolver.memory_of(location)
                if memory is not None:
                    await self._store.save_turn_memory(memory, saved_at=self._clock())
        if enqueued and self._on_delivery_enqueued is not None:
            self._on_delivery_enqueued()
        return [r for r in results if r is not None]

    async def reload_turn_memory(self) -> None:
        """Forget the turn-taking memory and read it from the store again before the next message: for a
        scoring worker taking over a partition whose locations another worker was writing (docs/scale.md).
        The store holds each location's memory as of its last batch (saved in the batch's transaction)."""
        async with self._apply_lock:
            self._resolver.forget_all()
            self._turns_restored = False

    async def _restore_turn_memory(self) -> None:
        """Once, before the first message: the turn-taking memory of the most recently active locations, as
        the last run left it (a pair formed by turn-taking would otherwise be lost to a restart). Old turns do
        no harm: the resolver compares message times with its turn gap."""
        async with self._apply_lock:
            if self._turns_restored:
                return
            memories = await self._store.load_turn_memory(limit=self._resolver.max_locations)
            for memory in reversed(memories):  # oldest first: the most recent stay the last forgotten
                self._resolver.restore(memory)
            self._turns_restored = True
            if memories:
                logger.info("restored the turn-taking memory of %d location(s)", len(memories))

    async def _seen_before(self, messages: Sequence[ChatMessage]) -> frozenset[tuple[str, str, str]]:
        by_space: dict[tuple[str, str], list[str]] = {}
        for message in messages:
            by_space.setdefault((message.platform, message.space_id), []).append(message.message_id)
        seen: set[tuple[str, str, str]] = set()
        for (platform, space_id), message_ids in by_space.items():
            found = await self._store.seen_message_ids(
                platform=platform, space_id=space_id, message_ids=message_ids
            )
            seen.update((platform, space_id, message_id) for message_id in found)
        return frozenset(seen)

    def _replayed(self, message: ChatMessage) -> HandleResult:
        # Nothing to apply, but turn-taking memory that was not kept (a store from before schema 4) is
        # rebuilt, so the next new message pairs as it would have (issue 14).
        self._resolver.replay(message, bot_user_ids=self._bot_user_ids.get(message.platform, frozenset()))
        return HandleResult(message_id=message.message_id, skipped=SkipReason.DUPLICATE)

    async def _settings_for(
        self, messages: Sequence[ChatMessage]
    ) -> dict[tuple[str, str], SpaceSettings | None]:
        spaces = {(m.platform, m.space_id) for m in messages}
        return {
            (platform, space): await self._store.get_space_settings(platform=platform, space_id=space)
            for platform, space in spaces
        }

    def _edge_skip(self, message: ChatMessage, settings: SpaceSettings | None) -> SkipReason | None:
        if not _well_formed(message):
            logger.warning(
                "skipped a malformed message event (empty or unencodable ids or timestamp without zone)"
            )
            return SkipReason.MALFORMED
        if message.author_is_bot or message.author_id in self._bot_user_ids.get(
            message.platform, frozenset()
        ):
            return SkipReason.BOT
        if settings is not None and (
            message.channel_id in settings.ignored_channel_ids
            or (message.thread_id is not None and message.thread_id in settings.ignored_channel_ids)
        ):
            return SkipReason.IGNORED_CHANNEL
        return None

    async def policy_for_space(self, *, platform: str, space_id: str) -> PolicyConfig:
        """The policy this space's pairs are judged by (its own threshold and shadow mode, if set)."""
        return self._policy_for(await self._store.get_space_settings(platform=platform, space_id=space_id))

    def _policy_for(self, settings: SpaceSettings | None) -> PolicyConfig:
        policy = self._config.policy
        if settings is None:
            return policy
        if settings.threshold is not None:
            policy = dataclasses.replace(
                policy,
                threshold=settings.threshold,
                hysteresis=min(policy.hysteresis, settings.threshold / 2),
            )
        if settings.shadow_mode is not None:
            policy = dataclasses.replace(policy, shadow_mode=settings.shadow_mode)
        return policy

    async def _claim(self, messages: Sequence[ChatMessage]) -> set[tuple[str, str, str]]:
        """Claim a batch's messages, one store call per space: the (platform, space, id) claimed now."""
        by_space: dict[tuple[str, str], list[str]] = {}
        for message in messages:
            by_space.setdefault((message.platform, message.space_id), []).append(message.message_id)
        fresh: set[tuple[str, str, str]] = set()
        now = self._clock()
        for (platform, space_id), ids in by_space.items():
            claimed = await self._store.claim_messages(
                platform=platform, space_id=space_id, message_ids=ids, seen_at=now
            )
            fresh.update((platform, space_id, message_id) for message_id in claimed)
        return fresh

    async def _write(self, batch: _PairBatch) -> None:
        changes = batch.take_changes()
        if changes:
            await self._store.apply_pair_changes(changes)

    async def _apply(
        self,
        item: _Scored,
        keys: tuple[PairKey, ...],
        settings: SpaceSettings | None,
        batch: _PairBatch,
    ) -> HandleResult:
        message = item.message
        info = self._detector.info
        signals = tuple(
            name
            for name, p in zip(info.signals, item.score.signals, strict=True)
            if p >= info.signal_threshold
        )
        window_message = WindowMessage(
            message_id=message.message_id,
            channel_id=message.channel_id,
            thread_id=message.thread_id,
            author_id=message.author_id,
            text=_storable(message.text[: self._config.stored_text_chars]),
            timestamp=message.timestamp,
            risk=item.score.risk,
            signals=signals,
        )
        policy = self._policy_for(settings)
        updates: list[PairUpdate] = []
        events: list[AlertEvent] = []
        for key in keys:
            update, event = await self._update_pair(key, item, window_message, policy, batch)
            updates.append(update)
            if event is not None:
                events.append(event)
        return HandleResult(
            message_id=message.message_id, risk=item.score.risk, pairs=tuple(updates), alerts=tuple(events)
        )

    async def _update_pair(
        self,
        key: PairKey,
        item: _Scored,
        window_message: WindowMessage,
        policy: PolicyConfig,
        batch: _PairBatch,
    ) -> tuple[PairUpdate, AlertEvent | None]:
        message = item.message
        pair_model = self._detector.pair_model
        previous = batch.pairs.get(key) or PairState(
            key=key,
            first_seen=message.timestamp,
            last_seen=message.timestamp,
            message_count=0,
            channel_ids=(),
            model_state=pair_model.initial_state(),
            risk=0.0,
            suspect_id=None,
        )
        # Synchronous CPU work inside the store transaction, on purpose: the EMA is arithmetic, the GRU
        # pair model one small single-threaded session.run (0.15-0.45 ms with the state JSON), cheaper than a
        # hop to a worker thread and short enough not to hold the event loop.
        model_state = pair_model.update(
            state=previous.model_state,
            author_id=message.author_id,
            other_id=key.other(message.author_id),
            score=item.score,
        )
        risks = pair_model.author_risks(state=model_state)
        top = risks[0]
        now = self._clock()
        open_alert = batch.open_alerts.get(key)
        outcome = decide(
            policy,
            PolicyInput(
                risk=top.risk,
                previous_streak=previous.above_threshold_streak,
                has_open_alert=open_alert is not None,
                open_alert_risk=open_alert.risk if open_alert is not None else 0.0,
                snoozed_until=previous.snoozed_until,
                now=now,
                new_evidence=open_alert is not None
                and message.author_id == open_alert.suspect_id
                and not set(window_message.signals) <= set(open_alert.signals),
            ),
        )
        channels = previous.channel_ids
        if message.channel_id not in channels:
            channels = (*channels, message.channel_id)
        state = dataclasses.replace(
            previous,
            last_seen=max(previous.last_seen, message.timestamp),
            message_count=previous.message_count + 1,
            channel_ids=channels,
            model_state=model_state,
            risk=top.risk,
            suspect_id=top.author_id if top.risk > 0.0 else None,
            above_threshold_streak=outcome.streak,
        )
        batch.save(state, window_message)

        event: AlertEvent | None = None
        raising = outcome.decision is Decision.RAISE
        if raising and self._detector.reviewer is not None:
            await self._write(batch)  # the reviewer reads the stored window, this message included
            raising = await self._passes_review(
                state,
                author_id=message.author_id,
                first_attempt=previous.above_threshold_streak < policy.sustain_messages,
            )
        if raising or (outcome.decision is Decision.UPDATE and open_alert is not None):
            # The alert's evidence is read from the stored window, so what the batch wrote so far goes first
            # (alerts are rare: most batches write once, at their end).
            await self._write(batch)
            if raising:
                alert = await self._raise_alert(state, policy, now)
            else:
                assert open_alert is not None
                suspect = named_suspect(
                    named=open_alert.suspect_id, risks={risk.author_id: risk.risk for risk in risks}
                )
                alert = await self._update_alert(open_alert, state, now, suspect=suspect)
            event = AlertEvent(decision=outcome.decision, alert=alert)
            batch.open_alerts[key] = alert
        if event is not None or abs(state.risk - previous.risk) >= _RISK_HISTORY_STEP:
            batch.risks.append(
                RiskPoint(
                    key=key,
                    timestamp=message.timestamp,
                    message_id=message.message_id,
                    risk=state.risk,
                    suspect_id=state.suspect_id,
                )
            )
        return PairUpdate(key=key, risk=state.risk, suspect_id=state.suspect_id), event

    async def _passes_review(self, state: PairState, *, author_id: str, first_attempt: bool) -> bool:
        """Whether the detector's alert reviewer lets the alert the policy decided be raised.

        The first time a run of risk reaches the policy's sustain, one reading of the window decides. An
        alert held back stays held while the run goes on, and is read again at each of the suspect's own
        messages (nothing new was said by them otherwise); then it needs two readings in a row to pass: the
        window ending here and the one ending at the suspect's message before, so that one odd window
        does not undo the reading that held it. A reviewer that fails raises the alert unreviewed: people
        decide, and an error must not hide a pair from them."""
        reviewer = self._detector.reviewer
        suspect = state.suspect_id
        if reviewer is None or suspect is None:
            return True
        if not first_attempt and author_id != suspect:
            return False
        window = await self._store.load_window(state.key)
        lines = [
            ReviewLine(
                own=m.author_id == suspect,
                text=model_text(m.text, max_chars=self._config.scored_text_chars),
            )
            for m in window
        ]
        try:
            if await reviewer.review(lines[-reviewer.window_messages :]) < reviewer.threshold:
                logger.debug("an alert was held back by the reviewer")
                return False
            if first_attempt:
                return True
            before = [index for index, line in enumerate(lines[:-1]) if line.own]
            if not before:
                return True
            earlier = lines[: before[-1] + 1]
            return await reviewer.review(earlier[-reviewer.window_messages :]) >= reviewer.threshold
        except Exception as error:
            # Any failure (a broken file, a runtime error): the alert goes to people unreviewed.
            logger.warning("the alert reviewer failed (%s); the alert is raised", type(error).__name__)
            return True

    def _evidence(
        self, window: Sequence[WindowMessage], suspect_id: str
    ) -> tuple[tuple[WindowMessage, ...], tuple[str, ...]]:
        own = [m for m in window if m.author_id == suspect_id]
        strongest = sorted(own, key=lambda m: m.risk, reverse=True)[: self._config.evidence_messages]
        evidence = tuple(sorted(strongest, key=lambda m: (m.timestamp, m.message_id)))
        return evidence, signals_seen(own, author_id=suspect_id)

    async def _raise_alert(self, state: PairState, policy: PolicyConfig, now: datetime) -> Alert:
        assert state.suspect_id is not None  # a raise needs risk > 0, which names a suspect
        window = await self._store.load_window(state.key)
        evidence, signals = self._evidence(window, state.suspect_id)
        alert = await self._store.create_alert(
            Alert(
                alert_id=0,
                key=state.key,
                case_number=0,
                status=AlertStatus.OPEN,
                risk=state.risk,
                peak_risk=state.risk,
                suspect_id=state.suspect_id,
                other_id=state.key.other(state.suspect_id),
                channel_ids=state.channel_ids,
                signals=signals,
                evidence=evidence,
                created_at=now,
                updated_at=now,
                revision=1,
                shadow=policy.shadow_mode,
                model_name=self._model_name,
            )
        )
        if alert.shadow:
            logger.info(
                "shadow alert recorded: case %d (alert %d), not posted", alert.case_number, alert.alert_id
            )
            return alert
        # The case keeps the messages that led to it (the conversation's opening: an age, a school) even as
        # the window rolls on; the copy follows the case's retention (docs/privacy.md).
        await self._store.preserve_evidence(alert_id=alert.alert_id, messages=window)
        recent = await self._store.count_alerts_since(
            platform=state.key.platform, space_id=state.key.space_id, since=now - timedelta(hours=1)
        )
        # The new alert itself is counted in ``recent``.
        post_at = deferred_post_time(now=now, alerts_last_hour=recent - 1, policy=policy)
        if post_at > now:
            logger.warning(
                "hourly alert cap (%d) reached in a space: case %d will be posted at %s",
                policy.max_alerts_per_hour,
                alert.case_number,
                post_at.isoformat(),
            )
        await self._store.enqueue_delivery(
            alert_id=alert.alert_id, kind=OutboxKind.POST, revision=1, now=post_at
        )
        logger.info(
            "alert raised: case %d (alert %d), risk %.2f", alert.case_number, alert.alert_id, alert.risk
        )
        return alert

    async def _update_alert(self, alert: Alert, state: PairState, now: datetime, *, suspect: str) -> Alert:
        evidence, signals = self._evidence(await self._store.load_window(state.key), suspect)
        updated = dataclasses.replace(
            alert,
            risk=state.risk,
            peak_risk=max(alert.peak_risk, state.risk),
            suspect_id=suspect,
            other_id=state.key.other(suspect),
            channel_ids=state.channel_ids,
            signals=signals,
            evidence=evidence,
            updated_at=now,
            revision=alert.revision + 1,
        )
        await self._store.update_alert(updated)
        if not updated.shadow:
            await self._store.enqueue_delivery(
                alert_id=updated.alert_id, kind=OutboxKind.UPDATE, revision=updated.revision, now=now
            )
        logger.info(
            "alert updated: case %d revision %d, risk %.2f",
            updated.case_number,
            updated.revision,
            updated.risk,
        )
        return updated
