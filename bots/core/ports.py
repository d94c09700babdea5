"""The ports: every contract the core needs from the outside world, owned here and implemented outside.

Storage (``vigil.storage``), the detector (``vigil.detector``), alert sinks and the platform adapters import
these; the core never imports them back (``tests/core/test_layers.py`` fails on an arrow the wrong way). The
store is split by role, and each consumer takes the narrowest role, or union of roles, it needs; ``Store`` is
all of them, what a backend implements and what ``tests/storage/test_store_contract.py`` checks.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from vigil.bots.core.cases import AuditEvent, CaseSource, CaseState, CaseView
from vigil.bots.core.models import (
    ANY_PLATFORM,
    Alert,
    ChatMessage,
    DeliveryResult,
    DeliveryScope,
    OutboxItem,
    OutboxKind,
    PairKey,
    PairState,
    RiskPoint,
    SpaceSettings,
    WindowMessage,
)
from vigil.bots.core.pairing import TurnMemory

if TYPE_CHECKING:
    from vigil.bots.core.monitor import HandleResult


# ---------------------------------------------------------------------------------------------- adapters
# How many of a pair's latest risk points an alert shows, and how far they must move to count as a trend.
TREND_POINTS = 6
TREND_STEP = 0.03


class Trend(enum.StrEnum):
    NEW = "new"
    RISING = "rising"
    FALLING = "falling"
    STEADY = "steady"


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """One alert as a sink shows it, built once by the outbox: the case, where it goes, whom it pings and
    the pair's risk trend. Sinks render this and talk to their platform; they never read storage."""

    case: CaseView
    # The space's alert channel; None when nobody has set one (a chat sink then fails permanently).
    channel_id: str | None = None
    moderator_role_id: str | None = None
    # The pair's latest risks, oldest first, ending at the alert's risk.
    risk_points: tuple[float, ...] = ()

    @property
    def alert(self) -> Alert:
        return self.case.alert

    @property
    def trend(self) -> Trend:
        return trend_of(self.risk_points)


def trend_of(points: Sequence[float]) -> Trend:
    """Whether a pair's latest risks (oldest first) rise, fall or hold; every platform shows this one."""
    recent = points[-TREND_POINTS:]
    if len(recent) < 2:
        return Trend.NEW
    change = recent[-1] - recent[0]
    if change >= TREND_STEP:
        return Trend.RISING
    if change <= -TREND_STEP:
        return Trend.FALLING
    return Trend.STEADY


class AlertSink(Protocol):
    """Where alerts go: a private moderator channel, the console, a webhook.

    Must not raise for platform failures: report them in the ``DeliveryResult`` so the outbox retries.
    ``update`` receives the ``delivery_ref`` that ``post`` returned.
    """

    async def post(self, delivery: Delivery) -> DeliveryResult: ...

    async def update(self, delivery: Delivery, *, ref: str) -> DeliveryResult: ...


class MessageHandler(Protocol):
    """What adapters feed translated messages into: the ``Monitor``, or a load-shedding queue before it."""

    async def handle(self, message: ChatMessage) -> HandleResult: ...


# ---------------------------------------------------------------------------------------------- detector


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageScore:
    """Scores for one (normalised) message text.

    ``risk`` is the probability that the message is written by an adult grooming a minor.
    ``signals`` are probabilities aligned with ``ModelInfo.signals`` (e.g. ``asks_age``).
    ``features`` is what a learned pair model reads (read-only float32: the message embedding, the signal
    logits, the risk logit); set only when the model directory's pair model needs it, else None.
    """

    risk: float
    signals: tuple[float, ...]
    features: npt.NDArray[np.float32] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelInfo:
    """What a model directory's metadata says about the model."""

    name: str
    version: str
    max_length: int
    default_threshold: float
    signals: tuple[str, ...]
    # Human-readable label per signal name, for alerts ("asks the other person's age").
    signal_labels: tuple[str, ...]
    signal_threshold: float

    def signal_words(self) -> dict[str, str]:
        """Each signal's name mapped to its plain words, as alerts, cases and evidence packs show them."""
        return dict(zip(self.signals, self.signal_labels, strict=True))


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorRisk:
    """The pair model's view of one member of a pair after a message."""

    author_id: str
    risk: float


class PairModel(Protocol):
    """Turns per-message scores into a pair's risk, at O(1) cost per message.

    ``state`` is an opaque JSON string the caller stores with the pair and hands back next time.
    ``speaker_known=False`` marks a chunk of flattened text (a segment without speaker boundaries): it is
    credited to ``author_id``, but may hold the other member's words too.
    """

    def initial_state(self) -> str: ...

    def update(
        self, *, state: str, author_id: str, other_id: str, score: MessageScore, speaker_known: bool = True
    ) -> str: ...

    def author_risks(self, *, state: str) -> tuple[AuthorRisk, ...]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewLine:
    """One message of a pair's window as the alert reviewer reads it: the model's text, and whether the
    member under review wrote it."""

    own: bool
    text: str


class AlertReviewer(Protocol):
    """A second reading of a pair before an alert is raised: the probability that the member under review
    is grooming, from the pair's recent messages read together (``lines``, oldest first, ending at the
    message that would raise the alert). It only ever holds an alert back (``threshold``); it never raises
    one. It reads the window Vigil stores anyway and keeps nothing."""

    @property
    def threshold(self) -> float: ...

    @property
    def window_messages(self) -> int: ...

    async def review(self, lines: Sequence[ReviewLine]) -> float: ...


class Detector(Protocol):
    """Scores message texts. Implementations batch concurrent calls; order of results matches ``texts``."""

    @property
    def info(self) -> ModelInfo: ...

    @property
    def pair_model(self) -> PairModel: ...

    @property
    def reviewer(self) -> AlertReviewer | None:
        """The model directory's alert reviewer, or None where it ships none (every alert the policy
        decides is raised)."""
        ...

    async def score(self, texts: Sequence[str]) -> list[MessageScore]: ...

    async def aclose(self) -> None: ...


# ---------------------------------------------------------------------------------------------- storage


class StoreError(Exception):
    """A store failure with a message meant for the person running Vigil."""


class TransientStoreError(StoreError):
    """A failure that saved nothing and may pass: a dropped connection (a database server restarting), a
    conflict with a concurrent writer. The same work may be tried again."""


# Pauses before trying work again after a TransientStoreError (a database restart takes seconds).
TRANSIENT_RETRY_PAUSES_S = (0.2, 1.0, 3.0)


class SchemaTooNewError(StoreError):
    """The database was written by a newer Vigil; refusing to touch it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseRecord:
    """An alert with its case columns, as stored. ``bots.core.case_service`` owns every rule about them."""

    alert: Alert
    state: CaseState = CaseState.OPEN
    source: CaseSource = CaseSource.ALERT
    claimed_by: str | None = None
    dismiss_reason: str | None = None
    # A preservation hold: retention keeps everything of the case until then.
    hold_until: datetime | None = None
    # When the case was dismissed.
    closed_at: datetime | None = None
    # When retention removed the case's message text (its record and audit trail stay).
    text_purged_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UserErasure:
    """What ``Store.erase_user`` removed, and what it kept because a preservation hold covers it."""

    pairs: int = 0
    window_messages: int = 0
    risk_points: int = 0
    evidence_messages: int = 0
    case_evidence_texts: int = 0
    held_pairs: int = 0
    held_cases: int = 0
    # (space_id, case_number) of each case whose evidence lost messages: their audit trails say so.
    cases_changed: tuple[tuple[str, int], ...] = ()


class StoreLifecycle(Protocol):
    """Opening and closing a backend: the composition root's business, no consumer's."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...


class Transactional(Protocol):
    """The unit of atomic writes.

    Writes made inside ``transaction()`` commit together or not at all; writes outside one commit at once.
    Implementations serialise access themselves; callers may share one instance between tasks.
    """

    def transaction(self) -> AbstractAsyncContextManager[None]: ...


class MessageLedger(Protocol):
    """Which platform messages were seen: idempotency across redeliveries, and where a catch-up starts."""

    # Idempotency: True the first time a platform message id is seen, False for a redelivery.
    async def claim_message(
        self, *, platform: str, space_id: str, message_id: str, seen_at: datetime
    ) -> bool: ...

    # ``claim_message`` for many ids of one space in one call: the ids claimed now (first seen). An id given
    # twice is claimed once.
    async def claim_messages(
        self, *, platform: str, space_id: str, message_ids: Sequence[str], seen_at: datetime
    ) -> frozenset[str]: ...

    # Which of these message ids were claimed already (a read; ``claim_message`` stays the authority).
    async def seen_message_ids(
        self, *, platform: str, space_id: str, message_ids: Sequence[str]
    ) -> frozenset[str]: ...

    # When a message of this space was last claimed (None: never, or purged since): where an adapter that
    # cannot be sent what it missed while stopped (Discord) starts reading channel history again.
    async def last_claimed_at(self, *, platform: str, space_id: str) -> datetime | None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class PairChanges:
    """A batch's writes to pair state, applied together in this order: ``pairs`` saved (the last state of a
    key wins), ``window`` messages appended in order (then each touched window keeps only its newest
    ``keep``), ``risks`` appended in order. A window message or risk point of a pair that is neither stored
    nor in ``pairs`` is a ``StoreError`` and nothing is applied."""

    pairs: tuple[PairState, ...] = ()
    window: tuple[tuple[PairKey, WindowMessage], ...] = ()
    keep: int = 0
    risks: tuple[RiskPoint, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.pairs or self.window or self.risks)


class PairStore(Protocol):
    """Per-pair state: the pair model's state, the rolling window of messages, the risk history, and the
    pair resolver's turn-taking memory.
    """

    async def load_pair(self, key: PairKey) -> PairState | None: ...

    async def save_pair(self, state: PairState) -> None: ...

    # The monitor's hot path, a bounded number of round trips per batch however many pairs it touches:
    # the stored states of ``keys`` (absent keys are left out), and one batch's writes.
    async def load_pairs(self, keys: Collection[PairKey]) -> dict[PairKey, PairState]: ...

    async def apply_pair_changes(self, changes: PairChanges) -> None: ...

    async def pairs_for_user(self, *, platform: str, space_id: str, user_id: str) -> list[PairState]: ...

    async def count_pairs(self) -> int: ...

    def iter_pairs(self, *, batch: int) -> AsyncIterator[Sequence[PairState]]: ...

    # The rolling window: append then keep only the newest ``keep`` messages of the pair.
    async def append_window(self, key: PairKey, message: WindowMessage, *, keep: int) -> None: ...

    async def load_window(self, key: PairKey) -> list[WindowMessage]: ...

    # A message the platform says was deleted leaves every window of its space, with its edits
    # ("<id>:edit:..."), except where a case is open or a hold protects the pair (then it stays as evidence).
    # Returns how many window rows were removed.
    async def forget_message(
        self, *, platform: str, space_id: str, message_id: str, now: datetime
    ) -> int: ...

    async def append_risk(self, point: RiskPoint) -> None: ...

    async def risk_history(self, key: PairKey, *, limit: int) -> list[RiskPoint]: ...

    # The pair resolver's turn-taking memory, one row per location (replaced); read back at start so a
    # restart keeps the pairs that exist only through turn-taking.
    async def save_turn_memory(self, memory: TurnMemory, *, saved_at: datetime) -> None: ...

    # The most recently active locations (by their last message's time), newest first, at most ``limit``.
    async def load_turn_memory(self, *, limit: int) -> list[TurnMemory]: ...


class AlertStore(Protocol):
    """Alerts, one per episode of a pair, numbered per space."""

    # ``create_alert`` assigns ``alert_id`` and the space's next case number (numbers only go up);
    # the alert_id and case_number passed in are ignored.
    async def create_alert(self, alert: Alert) -> Alert: ...

    async def update_alert(self, alert: Alert) -> None: ...

    async def get_alert(self, alert_id: int) -> Alert | None: ...

    async def open_alert_for_pair(self, key: PairKey) -> Alert | None: ...

    # The open alerts of ``keys`` in one call (pairs without one are left out).
    async def open_alerts_for_pairs(self, keys: Collection[PairKey]) -> dict[PairKey, Alert]: ...

    # The pairs with an open alert, in every space (the ingest queue watches them from the start).
    async def open_alert_keys(self) -> list[PairKey]: ...

    async def alerts_for_space(self, *, platform: str, space_id: str, limit: int) -> list[Alert]: ...

    async def count_alerts_since(self, *, platform: str, space_id: str, since: datetime) -> int: ...


class OutboxStore(Protocol):
    """The delivery outbox: what is still to be posted or updated, retried until it is."""

    # At most one pending item per (alert, kind); enqueueing again bumps its revision.
    async def enqueue_delivery(
        self, *, alert_id: int, kind: OutboxKind, revision: int, now: datetime
    ) -> None: ...

    # Items due at ``now`` and not under a live claim, oldest first; an UPDATE waits while its alert's POST is
    # pending. A read: two workers may get the same item. Several workers use ``claim_deliveries``.
    async def due_deliveries(self, *, now: datetime, limit: int) -> list[OutboxItem]: ...

    # Takes up to ``limit`` items due at ``now`` for one worker: each comes back with a fresh ``claim`` token
    # and stays invisible to every other claim (and to ``due_deliveries``) until ``now + lease``. An alert is
    # claimed as a whole: no item of an alert with another item under a live claim is handed out, so one
    # alert's post and updates are never delivered by two workers at once. A worker killed mid-post leaves its
    # items to be claimed again once the lease has run out. ``worker`` names the claimant (diagnostics only).
    # Only items whose alert's platform ``scope`` covers are claimed; the others stay due for other workers.
    async def claim_deliveries(
        self, *, now: datetime, limit: int, lease: timedelta, worker: str, scope: DeliveryScope = ANY_PLATFORM
    ) -> list[OutboxItem]: ...

    # Gives back every item held under any claim ``worker`` made (a previous life of that worker, killed
    # mid-delivery, or one stopping with a batch undelivered): due again at once, attempts unchanged. Returns
    # how many were released.
    async def release_claims(self, *, worker: str) -> int: ...

    # Moves the lease end of every item still held under ``claim`` to ``until`` (a worker whose deliveries are
    # slow keeps its batch). Items another worker claimed since keep that worker's claim and are not touched;
    # a held item whose lease ran out but that nobody claimed since is extended. Returns how many were: 0 once
    # the claim is wholly lost (taken over, released) or its items are all delivered.
    async def extend_claim(self, *, claim: str, until: datetime) -> int: ...

    # Completes the item, and any other pending item of the same alert, only if nothing newer was enqueued
    # meanwhile (revision still <= ``revision``); a newer revision stays pending (and unclaimed). A non-None
    # ``ref`` is stored on the alert either way. With ``claim``: only while the item is still held under that
    # claim (its lease may have run out, but nobody claimed it since); otherwise nothing at all is written
    # and False comes back, so a worker whose lease was taken over cannot clobber the new holder's work.
    async def complete_delivery(
        self, item_id: int, *, alert_id: int, revision: int, ref: str | None, claim: str | None = None
    ) -> bool: ...

    # Counts a failed attempt and reschedules the item, releasing its claim. With ``claim``: only while the
    # item is still held under that claim (as ``complete_delivery``); returns whether it was written.
    async def fail_delivery(
        self, item_id: int, *, error: str, next_attempt_at: datetime, claim: str | None = None
    ) -> bool: ...

    async def pending_delivery_count(self) -> int: ...


class PreservedEvidence(Protocol):
    """A case's messages kept apart from the rolling window: from the window when the case opens, the
    messages a member reports, and the whole conversation again when it is escalated."""

    # Messages already preserved (by message id) are skipped; returns how many were added.
    async def preserve_evidence(self, *, alert_id: int, messages: Sequence[WindowMessage]) -> int: ...

    async def load_evidence(self, alert_id: int) -> list[WindowMessage]: ...


class CaseStore(PreservedEvidence, Protocol):
    """Cases (the case columns of alerts), their append-only audit trail and their preserved evidence."""

    # ``update_case`` writes the alert (as ``update_alert``) and its case
    # columns together.
    async def get_case(self, *, platform: str, space_id: str, case_number: int) -> CaseRecord | None: ...

    async def case_for_alert(self, alert_id: int) -> CaseRecord | None: ...

    async def update_case(self, case: CaseRecord) -> None: ...

    # Newest first. ``user_id`` matches the suspect or either member of the pair; ``before_case_number``
    # keeps only lower case numbers.
    async def list_cases(
        self,
        *,
        platform: str,
        space_id: str,
        limit: int,
        user_id: str | None = None,
        before_case_number: int | None = None,
    ) -> list[CaseRecord]: ...

    # Every case (of one platform, or all), oldest first, ``batch`` at a time.
    def iter_cases(self, *, platform: str | None, batch: int) -> AsyncIterator[Sequence[CaseRecord]]: ...

    # The append-only audit trail. ``case_number`` None: an entry about no case (e.g. an erasure request).
    async def append_audit(
        self,
        *,
        platform: str,
        space_id: str,
        case_number: int | None,
        at: datetime,
        actor_id: str,
        action: str,
        before: str | None = None,
        after: str | None = None,
        detail: str | None = None,
    ) -> AuditEvent: ...

    # Oldest first. ``case_number`` None: the entries about no case.
    async def audit_events(
        self, *, platform: str, space_id: str, case_number: int | None
    ) -> list[AuditEvent]: ...


class SpaceSettingsStore(Protocol):
    """What moderators set up per space (alert channel, roles, threshold, ignores)."""

    async def get_space_settings(self, *, platform: str, space_id: str) -> SpaceSettings | None: ...

    async def put_space_settings(self, settings: SpaceSettings) -> None: ...


class RecordStore(Protocol):
    """Namespaced key-value records (Slack OAuth installations and states)."""

    # ``put_record`` inserts or replaces; ``delete_record`` returns whether a record was there;
    # ``list_records`` is ordered by key.
    async def put_record(self, namespace: str, key: str, value: str) -> None: ...

    async def get_record(self, namespace: str, key: str) -> str | None: ...

    async def delete_record(self, namespace: str, key: str) -> bool: ...

    async def list_records(self, namespace: str) -> dict[str, str]: ...


class RetentionStore(Protocol):
    """Retention and erasure (docs/privacy.md), in short batches of at most ``limit`` rows; with ``dry_run``
    nothing changes and the result counts everything that would go. A case *protects* its pair while it is
    open and not escalated, or while a hold covers it (``hold_until`` after ``now``).
    """

    # Window messages older than ``older_than`` of pairs no case protects.
    async def purge_window_messages(
        self, *, older_than: datetime, now: datetime, limit: int, dry_run: bool = False
    ) -> int: ...

    # Pairs last seen before ``idle_since``, not snoozed at ``now``, that no case protects (with their window
    # and risk history).
    async def purge_idle_pairs(
        self, *, idle_since: datetime, now: datetime, limit: int, dry_run: bool = False
    ) -> int: ...

    # Case text (alert evidence texts blanked, preserved messages deleted) of cases no hold covers at
    # ``now`` that were dismissed before ``dismissed_before``, or escalated with their hold over (expired or
    # released).
    async def purge_case_texts(
        self, *, dismissed_before: datetime, now: datetime, limit: int, dry_run: bool = False
    ) -> int: ...

    async def purge_seen_messages(
        self, *, older_than: datetime, limit: int, dry_run: bool = False
    ) -> int: ...

    # Risk points older than ``older_than``, except those of pairs a case protects at ``now``.
    async def purge_risk_history(
        self, *, older_than: datetime, now: datetime, limit: int, dry_run: bool = False
    ) -> int: ...

    # Rows saved before ``saved_before`` (Vigil's clock, not the messages' times: an export may be years old).
    async def purge_turn_memory(
        self, *, saved_before: datetime, limit: int, dry_run: bool = False
    ) -> int: ...

    # Erasure: every pair of ``user_id`` in every space of ``platform`` (with window and risk history), the
    # user's preserved messages, and the texts of their messages in alert evidence, except what a hold covers;
    # also the turn-taking memory of every location that remembers them.
    async def erase_user(self, *, platform: str, user_id: str, now: datetime) -> UserErasure: ...


@dataclass(frozen=True, slots=True, order=True)
class FenceToken:
    """A lease of a partition, ordered: ``epoch`` (the lease registry's incarnation, e.g. when the broker's
    bucket was created) first, then ``revision`` (grows with every lease within one incarnation)."""

    epoch: int
    revision: int


@runtime_checkable
class PartitionFences(Protocol):
    """Scale-out (docs/scale.md): which lease of a partition last wrote its pairs. A scoring worker advances
    the fence inside each batch's transaction, first; a worker whose lease was taken over (and the new owner
    has written since) is refused, so its batch is rolled back instead of overwriting the new owner's work.
    Implemented by the stores scoring workers can share (Postgres; in memory for tests)."""

    # True when ``token`` is at least the highest recorded for the partition (it becomes the highest); False
    # when a later lease has written since. Inside a transaction, the row stays locked until it ends, so the
    # next owner's batch waits for this one and then reads what it wrote.
    async def advance_fence(self, *, stream: str, partition: int, token: FenceToken) -> bool: ...


class Store(
    StoreLifecycle,
    Transactional,
    MessageLedger,
    PairStore,
    AlertStore,
    OutboxStore,
    CaseStore,
    SpaceSettingsStore,
    RecordStore,
    RetentionStore,
    Protocol,
):
    """Every role: what a storage backend implements (``SqliteStore``), checked by the contract suite."""


# The roles each core consumer needs together (a Protocol may only widen by listing its parts).


class MonitorStore(
    Transactional,
    MessageLedger,
    PairStore,
    AlertStore,
    OutboxStore,
    SpaceSettingsStore,
    PreservedEvidence,
    Protocol,
):
    """What ``Monitor`` reads and writes for each message (and, when a case opens, the messages that led to
    it)."""


class CaseServiceStore(Transactional, PairStore, AlertStore, OutboxStore, CaseStore, Protocol):
    """What ``CaseService`` needs: cases, and the pair, alert and outbox rows a case action touches."""


class EvidenceStore(Transactional, PairStore, CaseStore, Protocol):
    """What evidence packs are built from: a case, its preserved messages, its pair's window and history."""


class LabelStore(Transactional, PairStore, CaseStore, RecordStore, Protocol):
    """What exporting moderators' verdicts as training labels reads (and the pseudonym key it keeps)."""


class DeliveryStore(AlertStore, OutboxStore, SpaceSettingsStore, PairStore, Protocol):
    """What the outbox worker drains, and reads to build each ``Delivery``: the space's alert channel and
    moderator role, and the pair's risk trend."""


class PseudonymStore(Transactional, RecordStore, Protocol):
    """Where the salt of stable pseudonyms is kept (erasure reports, exported labels)."""


class RetentionWorkStore(Transactional, RetentionStore, CaseStore, RecordStore, Protocol):
    """What retention and erasure change, the audit entries they leave, and the pseudonym salt they read."""


class ModeratorStore(SpaceSettingsStore, PairStore, AlertStore, OutboxStore, Protocol):
    """What ``ModeratorService`` reads and writes: settings, and the pair and alert rows it reports on."""


class PlatformStore(ModeratorStore, MessageLedger, RecordStore, Protocol):
    """What a chat platform's adapter needs: the moderator service's rows, where its catch-up starts, deleted
    messages (``PairStore.forget_message``), and its own records (installations, when it first ran)."""


class ServiceGaugeStore(PairStore, OutboxStore, Protocol):
    """What the metrics and the HTTP API's health read: how many pairs, how many deliveries wait."""
