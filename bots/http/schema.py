"""The HTTP API's wire format: msgspec Structs that check requests, make answers and the OpenAPI document.

Every body the API reads or writes is a Struct below, and the document's components are generated from them
(``msgspec.json.schema_components``), so a check, an answer and its schema cannot drift apart. A Struct's name
is its component's name and its docstring the component's description; where that name is also a core type's
(``ChatMessage``, ``CaseAction``, ``CaseSummary``...), the core type is reached through its module.

Bodies are parsed by ``json.loads`` and then converted with ``msgspec.convert``: ``json.loads`` keeps an
unpaired surrogate escape (a text cut inside an emoji) as a string that one message's check refuses, where
``msgspec.json`` would refuse the whole batch. A batch is converted envelope first, then message by message,
so one bad message does not refuse the others. What a type cannot say (format characters outside the BMP,
unpaired surrogates, a timestamp's range) is checked in ``__post_init__``.

``docs/openapi.json`` is ``openapi_document()`` written out (a test checks they are identical); regenerate it
with ``python -c "import vigil.bots.http.schema as s; print(s.openapi_json(), end='')" > docs/openapi.json``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
import typing
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from vigil.bots.core import cases, models, moderation
from vigil.bots.core.case_service import MAX_SNOOZE, MIN_SNOOZE
from vigil.bots.core.cases import CaseSource, CaseState
from vigil.bots.core.models import AlertStatus
from vigil.bots.core.sinks import alert_to_dict

DEFAULT_PLATFORM = "http"
# The actor of GET requests that name none.
DEFAULT_VIEWER = "http-api"
MAX_ID_CHARS = 256
MAX_PLATFORM_CHARS = 64
MAX_TEXT_CHARS = 20_000
MAX_NAME_CHARS = 256
MAX_ID_LIST = 100
MAX_REASON_CHARS = 1000
MAX_CASE_LIST = 100
MAX_CASE_NUMBER = 2**31 - 1
# Timestamps outside this range are mistakes (seconds sent as milliseconds, a zero date), not messages.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)
REF_TEMPLATE = "#/components/schemas/{name}"

# An id: some visible character, and none of the characters that can forge or hide text where ids end up
# (log lines, audit trails, evidence packs): C0 and C1 controls (NEL), line and paragraph separators, bidi
# embeddings, overrides, isolates and marks, zero-width characters and other format characters of the BMP.
# `_check_id` also refuses format characters outside the BMP, which an OpenAPI pattern cannot name portably.
_ID_FORBIDDEN = (
    "\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e"
    "\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb"
)
ID_PATTERN = rf"^[^{_ID_FORBIDDEN}]*[^\s{_ID_FORBIDDEN}][^{_ID_FORBIDDEN}]*$"
_UNSAFE_ID_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
_ID_PROBLEM = (
    "must have a visible character and no control, format, line-separator, bidi or zero-width characters"
)
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_SURROGATE_PROBLEM = "contains an unpaired surrogate (\\ud800-\\udfff)"
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")
_EXAMPLE_TIME = "2026-03-01T18:00:00Z"

# The value types of the wire format: each Meta is both the check and the schema.
Id = Annotated[str, Meta(min_length=1, max_length=MAX_ID_CHARS, pattern=ID_PATTERN)]
Platform = Annotated[str, Meta(min_length=1, max_length=MAX_PLATFORM_CHARS, pattern=ID_PATTERN)]
IdList = Annotated[list[Id], Meta(max_length=MAX_ID_LIST)]
Name = Annotated[str, Meta(max_length=MAX_NAME_CHARS)]
# Times are strings: a request's is checked by `_timestamp` (at most 9 digits of fractions, which msgspec's
# datetime does not limit) and an answer's written as Python's isoformat does ("+00:00", not msgspec's "Z").
Time = Annotated[str, Meta(extra_json_schema={"format": "date-time"})]
# Path and query numbers.
_CaseNumber = Annotated[int, Meta(ge=1, le=MAX_CASE_NUMBER)]
_Limit = Annotated[int, Meta(ge=1, le=MAX_CASE_LIST), Meta(extra_json_schema={"default": 20})]
# The actions the API offers; release_hold (child-safety only) is not among them.
ApiAction = Literal["claim", "dismiss", "confirm", "escalate", "snooze", "note"]

T = TypeVar("T")


# --------------------------------------------------------------------------------------------- problems


class RequestError(Exception):
    """A request or a message of it is unusable (HTTP 400): ``field`` names the JSON path that failed.

    Not a ValueError: msgspec would turn one raised in ``__post_init__`` into a ValidationError at the
    Struct's path, losing the field. Inside a Struct ``field`` is relative to it; None: the value itself.
    """

    def __init__(self, problem: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {problem}" if field else problem)
        self.problem = problem
        self.field = field


class BatchTooLargeError(ValueError):
    """More messages than the server accepts in one batch (HTTP 413)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageError:
    """One message of a batch was unusable; the others are still processed."""

    index: int
    message_id: str | None
    field: str
    problem: str

    @property
    def reason(self) -> str:
        return f"{self.field}: {self.problem}"


def _check_text(value: str | None, *, field: str) -> None:
    if value is not None and _SURROGATE.search(value):
        raise RequestError(_SURROGATE_PROBLEM, field=field)


def _shown(key: str) -> str:
    """A name the sender made up, fit to echo: short, and encodable (msgspec refuses unpaired surrogates)."""
    key = key if len(key) <= 40 else key[:37] + "..."
    return key.encode("utf-8", "backslashreplace").decode("utf-8")


def _check_id(value: object, *, field: str) -> None:
    """What ``ID_PATTERN`` cannot say: no format character outside the BMP, no final newline (``$``)."""
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_id(item, field=f"{field}[{index}]")
    elif isinstance(value, str):
        if any(unicodedata.category(character) in _UNSAFE_ID_CATEGORIES for character in value):
            raise RequestError(_ID_PROBLEM, field=field)
        _check_text(value, field=field)


def _timestamp(value: str) -> datetime:
    """An RFC 3339 date-time with a zone, as timezone-aware UTC."""
    if _RFC3339.fullmatch(value) is None:
        raise RequestError(f"must be RFC 3339 with a zone, e.g. {_EXAMPLE_TIME}", field="timestamp")
    try:
        parsed = datetime.fromisoformat(value.upper()).astimezone(UTC)
    except (ValueError, OverflowError):
        raise RequestError("is not a valid date and time", field="timestamp") from None
    if not EARLIEST <= parsed < LATEST:
        raise RequestError("is outside 1970-01-01 to 3000-01-01", field="timestamp")
    return parsed


_TYPE_NAMES = MappingProxyType(
    {"str": "a string", "int": "an integer", "float": "a number", "bool": "a boolean"}
)


def _type_names(names: str, *, got: bool = False) -> str:
    words = [_TYPE_NAMES.get(name, name if name == "null" else f"an {name}") for name in names.split(" | ")]
    # JSON has one kind of number.
    return "a number" if got and words == ["an integer"] else " or ".join(words)


def _in_words(error: msgspec.ValidationError, *, target: object) -> tuple[str | None, str]:
    """msgspec's message as (path relative to the converted value, None for itself; the problem in words).

    msgspec ends a message with " - at `$.path`" unless the problem is at the top. Request Structs are flat,
    so an unknown or missing field is always reported at the top, with its name in the message.
    """
    message = str(error)
    if found := re.fullmatch(r"Object contains unknown field `(.*)`", message, re.DOTALL):
        return _shown(found[1]), "is not a known field"
    if found := re.fullmatch(r"Object missing required field `(.*)`", message, re.DOTALL):
        return found[1], "is required"
    message, at, path = message.rpartition(" - at `$")
    if not at:
        message, path = path, ""
    where = path.removesuffix("`").removeprefix(".") or None
    hint = typing.get_type_hints(target).get(where or "") if isinstance(target, type) else None
    if typing.get_origin(hint) is Literal:
        return where, f"must be one of {', '.join(typing.get_args(hint))}"
    if found := re.fullmatch(r"Expected `(.+)`, got `(.+)`", message):
        expected, got = _type_names(found[1]), _type_names(found[2], got=True)
        return where, f"{'must be' if where is not None else 'expected'} {expected}, got {got}"
    if found := re.fullmatch(r"Expected `str` of length <= (\d+)", message):
        return where, f"is longer than {found[1]} characters"
    if found := re.fullmatch(r"Expected `array` of length <= (\d+)", message):
        return where, f"has more than {found[1]} entries"
    if message == "Expected `str` of length >= 1":
        return where, "must not be empty"
    if message.startswith("Expected `str` matching regex"):
        return where, _ID_PROBLEM
    if found := re.fullmatch(r"Expected `\w+` ([<>])= (.+)", message):
        return where, f"must be {'at least' if found[1] == '>' else 'at most'} {float(found[2]):.15g}"
    return where, message


def _convert(data: object, target: type[T]) -> T:
    """``data`` as ``target``; raises ``RequestError`` naming the failing field."""
    try:
        return msgspec.convert(data, target)
    except msgspec.ValidationError as error:
        where, problem = _in_words(error, target=target)
        raise RequestError(problem, field=where) from None
    except UnicodeEncodeError:
        raise _surrogate_problem(data) from None


def _surrogate_problem(data: object) -> RequestError:
    """msgspec cannot look up a name or a choice holding an unpaired surrogate: which one was it?"""
    for key, value in data.items() if isinstance(data, dict) else ():
        if _SURROGATE.search(key):
            return RequestError("is not a known field", field=_shown(key))
        if isinstance(value, str) and _SURROGATE.search(value):
            return RequestError(_SURROGATE_PROBLEM, field=key)
    return RequestError(_SURROGATE_PROBLEM)


# --------------------------------------------------------------------------------------------- requests


def _doc(description: str, *examples: object) -> Meta:
    """A field's description (and examples) in the document."""
    return Meta(description=description, examples=list(examples) if examples else None)


class ChatMessage(Struct, kw_only=True, forbid_unknown_fields=True):
    """One chat message. Optional fields may be null; unknown fields are an error."""

    platform: Annotated[
        Platform | None, _doc(f'Your platform\'s name; default "{DEFAULT_PLATFORM}". Cases are scoped by it.')
    ] = DEFAULT_PLATFORM
    space_id: Annotated[
        Id, _doc("The community (tenant, server, workspace) the message belongs to.", "tenant-1")
    ]
    channel_id: Annotated[Id, _doc("Channel or DM conversation id.", "dm-42")]
    message_id: Annotated[
        Id, _doc("Unique within the space; a message id seen before is answered 'duplicate'.")
    ]
    author_id: Annotated[Id, _doc("The sender's user id.")]
    text: Annotated[
        str,
        Meta(max_length=MAX_TEXT_CHARS),
        _doc(f"The message text as the user wrote it (at most {MAX_TEXT_CHARS} characters).", "hi!"),
    ]
    timestamp: Annotated[
        Time,
        _doc(
            "When it was sent: RFC 3339 with a zone (UTC, e.g. 2026-03-01T18:00:00Z, preferred).",
            _EXAMPLE_TIME,
        ),
    ]
    is_dm: Annotated[bool | None, _doc("A direct or group-direct message.")] = False
    thread_id: Annotated[Id | None, _doc("The thread, if any.")] = None
    author_is_bot: Annotated[bool | None, _doc("The sender is a bot: the message is skipped.")] = False
    reply_to_message_id: Annotated[Id | None, _doc("The message this one replies to.")] = None
    reply_to_author_id: Annotated[Id | None, _doc("The author of that message.")] = None
    mentioned_user_ids: Annotated[IdList | None, _doc("Users the message mentions.")] = None
    recipient_ids: Annotated[
        IdList | None, _doc("For DMs: the other participants. Empty for channel messages.")
    ] = None
    author_display_name: Annotated[
        Name | None, _doc("Shown to moderators only; never stored beyond the pair's window.")
    ] = None

    def __post_init__(self) -> None:
        # Every other string is an id, so a field added later is checked as one unless named here.
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if name in ("text", "author_display_name", "timestamp"):
                _check_text(value, field=name)
            else:
                _check_id(value, field=name)
        _timestamp(self.timestamp)

    def to_chat_message(self) -> models.ChatMessage:
        return models.ChatMessage(
            **msgspec.structs.asdict(self)
            | {
                "platform": self.platform or DEFAULT_PLATFORM,
                "timestamp": _timestamp(self.timestamp),
                "is_dm": bool(self.is_dm),
                "author_is_bot": bool(self.author_is_bot),
                "mentioned_user_ids": tuple(dict.fromkeys(self.mentioned_user_ids or ())),
                "recipient_ids": tuple(dict.fromkeys(self.recipient_ids or ())),
            }
        )


class MessageBatch(Struct, forbid_unknown_fields=True):
    """Messages to check, in the order they were sent."""

    # Entries are converted one by one (``parse_message``), so one bad message does not refuse the others;
    # the schema names their type all the same.
    messages: Annotated[
        list[Any],
        Meta(extra_json_schema={"items": {"$ref": REF_TEMPLATE.format(name="ChatMessage")}}),
        _doc("At most [http] max_batch_messages entries (default 500; more: 413)."),
    ]


class CaseAction(Struct, kw_only=True, forbid_unknown_fields=True):
    """An action on a case, by a moderator of your platform."""

    action: ApiAction
    actor_id: Annotated[Id, _doc("The moderator acting, as your platform knows them (audited).")]
    actor_display_name: Name | None = None
    reason: Annotated[
        Annotated[str, Meta(max_length=MAX_REASON_CHARS)] | None,
        _doc("Required by dismiss; the text of a note."),
    ] = None
    snooze_for_s: Annotated[
        Annotated[float, Meta(ge=MIN_SNOOZE.total_seconds(), le=MAX_SNOOZE.total_seconds())] | None,
        _doc("For snooze: how long; the service's default when left out."),
    ] = None

    def __post_init__(self) -> None:
        _check_id(self.actor_id, field="actor_id")
        _check_text(self.reason, field="reason")
        _check_text(self.actor_display_name, field="actor_display_name")
        # Blank is as good as left out.
        self.reason = self.reason if self.reason and self.reason.strip() else None
        self.actor_display_name = (
            self.actor_display_name if self.actor_display_name and self.actor_display_name.strip() else None
        )

    @property
    def case_action(self) -> cases.CaseAction:
        return cases.CaseAction(self.action)

    @property
    def snooze_for(self) -> timedelta | None:
        return timedelta(seconds=self.snooze_for_s) if self.snooze_for_s is not None else None


def decode_json(body: bytes) -> object:
    """Parse a request body; raises ``RequestError`` for anything that is not strict JSON in UTF-8."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RequestError(f"body is not valid UTF-8 (byte {error.start})") from None
    if not text.strip():
        raise RequestError("body is empty; expected a JSON object")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise RequestError("body is nested too deeply") from None
    except ValueError as error:
        raise RequestError(f"body is not valid JSON: {error}") from None


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


def parse_batch(data: object, *, max_messages: int) -> list[object]:
    """The raw entries of a ``{"messages": [...]}`` batch; raises for a wrong top-level shape."""
    messages: list[object] = _convert(data, MessageBatch).messages
    if len(messages) > max_messages:
        raise BatchTooLargeError(f"{len(messages)} messages in one batch; at most {max_messages} accepted")
    return messages


def parse_message(raw: object, *, index: int) -> models.ChatMessage | MessageError:
    """One entry of ``messages``: a ``ChatMessage``, or the first problem found (naming its field)."""
    try:
        return _convert(raw, ChatMessage).to_chat_message()
    except RequestError as error:
        where = f"messages[{index}]"
        message_id = raw.get("message_id") if isinstance(raw, dict) else None
        return MessageError(
            index=index,
            # Echoed only when the answer can carry it.
            message_id=message_id
            if isinstance(message_id, str) and message_id.strip() and not _SURROGATE.search(message_id)
            else None,
            field=f"{where}.{error.field}" if error.field is not None else where,
            problem=error.problem,
        )


def parse_action(data: object) -> CaseAction:
    """The body of ``POST /v1/cases/{n}/actions``; raises ``RequestError`` naming the failing field."""
    return _convert(data, CaseAction)


def parse_query_id(query: Mapping[str, str], key: str, *, default: str | None = None) -> str:
    """A required (or defaulted) id from the query string; raises ``RequestError`` naming it."""
    value = query.get(key, default)
    if value is None:
        raise RequestError("query parameter is required", field=key)
    try:
        checked: str = _convert(value, Platform if key == "platform" else Id)
        _check_id(checked, field=key)
    except RequestError as error:
        raise RequestError(error.problem, field=key) from None
    return checked


def parse_query_int(query: Mapping[str, str], key: str, *, default: int, low: int, high: int) -> int:
    raw = query.get(key)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9 or not low <= int(raw) <= high:
        raise RequestError(f"must be an integer from {low} to {high}", field=key)
    return int(raw)


# --------------------------------------------------------------------------------------------- answers


class _Answer(Struct, kw_only=True):
    """An answer's body (not in the document)."""


class MessageStatus(enum.StrEnum):
    ACCEPTED = "accepted"
    # Scale-out (vigil gateway): stored on the broker for a scoring worker; alerts come as for any message.
    QUEUED = "queued"
    DUPLICATE = "duplicate"
    SKIPPED = "skipped"
    ERROR = "error"


class MessageResult(_Answer):
    """What became of one message of a batch."""

    index: Annotated[int, Meta(ge=0), _doc("Position in the request's batch.")]
    message_id: Annotated[str | None, _doc("Null when the entry had no usable message_id.")]
    status: MessageStatus
    reason: Annotated[
        str | UnsetType, _doc("Why a message was skipped or is an error; an error names the field.")
    ] = UNSET
    alerts: Annotated[list[int] | UnsetType, _doc("Case numbers raised or updated by this message.")] = UNSET


class BatchResult(_Answer):
    """One result per message, in the batch's order."""

    results: list[MessageResult]
    counts: Annotated[dict[str, int], _doc("How many messages got each status.")]


class Error(_Answer):
    """Why a request was refused."""

    error: Annotated[str, _doc("A stable code, e.g. bad_request, unauthorized.")]
    detail: str
    field: Annotated[str | UnsetType, _doc("The JSON field or parameter that failed.")] = UNSET


class RetryLater(_Answer):
    """Vigil could not take the whole batch now; resend all of it after Retry-After."""

    error: Literal["overloaded", "unavailable"]
    detail: str
    retry_after: float
    results: Annotated[
        list[MessageResult], _doc("Messages handled before the overload; resend the whole batch.")
    ]


class Health(_Answer):
    status: Literal["ok", "unavailable"]


class Evidence(_Answer):
    message_id: str
    channel_id: str
    author_id: str
    timestamp: Time
    risk: float
    excerpt: str


class Alert(_Answer):
    """An alert with its evidence excerpts."""

    alert_id: int
    case_number: int
    revision: int
    status: AlertStatus
    platform: str
    space_id: str
    suspect_id: Annotated[str, _doc("The member whose own messages look like grooming.")]
    other_id: str
    risk: float
    peak_risk: float
    channel_ids: list[str]
    signals: list[str]
    evidence: list[Evidence]
    created_at: Time
    updated_at: Time
    model: str
    shadow: bool

    @classmethod
    def of(cls, alert: models.Alert, *, signal_labels: Mapping[str, str]) -> Alert:
        # alert_to_dict also writes webhooks and the console; converted, the answer is what the schema says.
        return msgspec.convert(alert_to_dict(alert, signal_labels=signal_labels), cls)


class WebhookCase(_Answer):
    state: CaseState
    claimed_by: str | None


class WebhookPayload(Alert):
    """The body of an alert webhook (signed like a request; see docs/http-api.md)."""

    updated: Annotated[bool, _doc("false for the first delivery of an alert, true for every later one.")]
    case: WebhookCase


class CaseSummary(_Answer):
    case_number: int
    state: CaseState
    risk: float
    suspect_id: str
    other_id: str
    created_at: Time
    updated_at: Time

    @classmethod
    def of(cls, summary: cases.CaseSummary) -> CaseSummary:
        return cls(
            **dataclasses.asdict(summary)
            | {
                "risk": round(summary.risk, 4),
                "created_at": summary.created_at.isoformat(),
                "updated_at": summary.updated_at.isoformat(),
            }
        )


class AuditEvent(_Answer):
    event_id: int
    case_number: int
    at: Time
    actor_id: str
    action: str
    before: str | None
    after: str | None
    detail: str | None


class Case(_Answer):
    """A case: its alert (with evidence excerpts), its state and audit trail, the suspect's earlier cases."""

    case_number: int
    platform: str
    space_id: str
    state: CaseState
    source: CaseSource
    claimed_by: str | None
    dismiss_reason: str | None
    hold_until: Time | None
    alert: Alert
    audit: list[AuditEvent]
    earlier_cases: list[CaseSummary]

    @classmethod
    def of(cls, view: cases.CaseView, *, signal_labels: Mapping[str, str]) -> Case:
        return cls(
            case_number=view.alert.case_number,
            platform=view.alert.key.platform,
            space_id=view.alert.key.space_id,
            state=view.state,
            source=view.source,
            claimed_by=view.claimed_by,
            dismiss_reason=view.dismiss_reason,
            hold_until=view.hold_until.isoformat() if view.hold_until is not None else None,
            alert=Alert.of(view.alert, signal_labels=signal_labels),
            audit=[AuditEvent(**dataclasses.asdict(e) | {"at": e.at.isoformat()}) for e in view.audit],
            earlier_cases=[CaseSummary.of(summary) for summary in view.earlier_cases],
        )


class CaseList(_Answer):
    platform: str
    space_id: str
    cases: list[CaseSummary]


class PairSignal(_Answer):
    name: Annotated[str, _doc("The model's name for the signal.")]
    label: Annotated[str, _doc("The signal in plain words.")]


class RiskPoint(_Answer):
    at: Time
    risk: float
    suspect_id: str | None


class Pair(_Answer):
    """What Vigil knows about two members' conversation, for moderators: risk, likely groomer, signals."""

    platform: str
    space_id: str
    user_ids: Annotated[list[str], _doc("The two members, in Vigil's order (sorted).")]
    known: Annotated[bool, _doc("false: Vigil has no conversation between them on record.")]
    risk: float | None
    suspect_id: Annotated[
        str | None, _doc("The member whose own messages look like grooming (the likely groomer).")
    ]
    message_count: int
    first_seen: Time | None
    last_seen: Time | None
    channel_ids: list[str]
    threshold: Annotated[float, _doc("The space's alert threshold.")]
    open_case: int | None
    signals: Annotated[
        list[PairSignal], _doc("Seen in the suspect's messages in the window, most frequent first.")
    ]
    outlook: Annotated[
        str | None, _doc("Why there is no alert yet; null with an open case or an unknown pair.")
    ]
    history: Annotated[list[RiskPoint], _doc("The latest changes in risk, oldest first.")]

    @classmethod
    def of(cls, history: moderation.PairHistory, *, signal_labels: Mapping[str, str]) -> Pair:
        key, state = history.key, history.state
        return cls(
            platform=key.platform,
            space_id=key.space_id,
            user_ids=[key.user_a, key.user_b],
            known=state is not None,
            risk=round(state.risk, 4) if state is not None else None,
            suspect_id=state.suspect_id if state is not None else None,
            message_count=state.message_count if state is not None else 0,
            first_seen=state.first_seen.isoformat() if state is not None else None,
            last_seen=state.last_seen.isoformat() if state is not None else None,
            channel_ids=list(state.channel_ids) if state is not None else [],
            threshold=round(history.threshold, 4),
            open_case=history.open_case,
            signals=[
                PairSignal(name=n, label=signal_labels.get(n, n.replace("_", " "))) for n in history.signals
            ],
            outlook=history.outlook,
            history=[
                RiskPoint(at=p.timestamp.isoformat(), risk=round(p.risk, 4), suspect_id=p.suspect_id)
                for p in history.points
            ],
        )


# --------------------------------------------------------------------------------------------- OpenAPI

# Every body, the webhook's too; the types they refer to (Evidence, CaseState...) are found from these.
_BODIES = (
    ChatMessage,
    MessageBatch,
    CaseAction,
    BatchResult,
    RetryLater,
    Error,
    CaseList,
    Case,
    Pair,
    Health,
    WebhookPayload,
)
# What each error status means, for the operations that name it.
_ERRORS = MappingProxyType(
    {
        "400": "Malformed request; `field` names what failed.",
        "401": "Missing, stale, future, replayed or wrong signature.",
        "403": "Refused by the case or moderator service.",
        "404": "No such case in this space.",
        "408": "The body did not arrive in time.",
        "409": "The action is not possible in the case's state.",
        "413": "Body over max_body_bytes or batch over max_batch_messages.",
        "503": "Storage is unavailable; retry after Retry-After.",
    }
)
_RETRY = (
    ("429", "Vigil is overloaded; resend the whole batch after Retry-After."),
    (
        "503",
        "A message could not be processed (e.g. the detector failed); nothing of it was recorded. Resend the "
        "whole batch after Retry-After.",
    ),
)


def _json_answer(description: str, name: str) -> dict[str, object]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": _ref(name)}}}}


def _ref(name: str) -> str:
    return REF_TEMPLATE.format(name=name)


def _query(name: str, description: str, *, required: bool = False, kind: object = Id) -> dict[str, object]:
    schema = msgspec.json.schema(kind)
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


def _operation(
    operation_id: str,
    summary: str,
    *,
    ok: dict[str, object],
    errors: str,
    parameters: tuple[dict[str, object], ...] = (),
    body: str | None = None,
    description: str | None = None,
    retry_later: bool = False,
) -> dict[str, object]:
    """A signed operation answering ``ok`` or the statuses of ``_ERRORS`` that ``errors`` lists."""
    responses = {"200": ok} | {code: _json_answer(_ERRORS[code], "Error") for code in errors.split()}
    if retry_later:
        seconds = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}}
        responses |= {code: _json_answer(text, "RetryLater") | {"headers": seconds} for code, text in _RETRY}
    extra: dict[str, object] = {"description": description} if description is not None else {}
    if parameters:
        extra["parameters"] = list(parameters)
    if body is not None:
        extra["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": _ref(body)}}},
        }
    return {
        "operationId": operation_id,
        "summary": summary,
        **extra,
        "security": [{"VigilTimestamp": [], "VigilNonce": [], "VigilSignature": []}],
        "responses": dict(sorted(responses.items())),
    }


def openapi_document() -> dict[str, object]:
    """The OpenAPI 3.1 description of the API; served at ``GET /v1/openapi.json``."""
    schemas = msgspec.json.schema_components(_BODIES, ref_template=REF_TEMPLATE)[1]
    platform = _query("platform", f'The platform; default "{DEFAULT_PLATFORM}".', kind=Platform)
    viewer = _query("actor_id", f'Who is looking (the moderator\'s id); default "{DEFAULT_VIEWER}".')
    space = (_query("space_id", "The space whose cases these are.", required=True), platform)
    pair = (
        _query("space_id", "The space the two members are in.", required=True),
        platform,
        _query("first", "One member of the pair.", required=True),
        _query("second", "The other member (not the same as first).", required=True),
        viewer,
    )
    case = {"name": "case_number", "in": "path", "required": True, "schema": msgspec.json.schema(_CaseNumber)}
    limit = {"name": "limit", "in": "query", "required": False, "schema": msgspec.json.schema(_Limit)}
    user = _query("user_id", "Only cases where this user is a member of the pair.")
    svg: dict[str, object] = {
        "description": "The chart.",
        "content": {"image/svg+xml": {"schema": {"type": "string"}}},
    }
    pair_description = (
        "An unknown pair is not an error: it is answered with known=false. The answer names the likely "
        "groomer and is for moderators only."
    )
    chart_description = (
        "A self-contained image (no scripts, no external references), served with a Content-Security-Policy "
        "that forbids loading anything. An unknown pair gets a chart that says no risk is recorded yet."
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Vigil HTTP API",
            "version": "1",
            "description": (
                "Send chat messages to Vigil and act on the cases it opens. Every /v1 endpoint except "
                "/v1/openapi.json needs an HMAC-SHA256 signature: X-Vigil-Timestamp is Unix time in "
                "seconds, X-Vigil-Nonce is 16-128 characters of A-Z a-z 0-9 _ - (new for every request), "
                "X-Vigil-Signature is 'v2=' + hex(HMAC-SHA256(secret, 'v2\\n' + timestamp + '\\n' + nonce + "
                "'\\n' + METHOD + '\\n' + path-and-query-as-sent + '\\n' + body)), the body being the exact "
                "request bytes (empty for GET). A nonce is accepted once. The older 'v1=' scheme (timestamp "
                "and body only) is accepted until the next release. See docs/http-api.md."
            ),
            "license": {"name": "Apache-2.0"},
        },
        "servers": [{"url": "http://127.0.0.1:8787"}],
        "components": {
            "securitySchemes": {
                name: {"type": "apiKey", "in": "header", "name": f"X-Vigil-{header}"}
                for name, header in (
                    ("VigilTimestamp", "Timestamp"),
                    ("VigilSignature", "Signature"),
                    ("VigilNonce", "Nonce"),
                )
            },
            "schemas": dict(sorted(schemas.items())),
        },
        "paths": {
            "/v1/messages": {
                "post": _operation(
                    "sendMessages",
                    "Send a batch of messages to be checked.",
                    ok=_json_answer("One result per message, in order.", "BatchResult"),
                    errors="400 401 408 413",
                    body="MessageBatch",
                    retry_later=True,
                )
            },
            "/v1/cases": {
                "get": _operation(
                    "listCases",
                    "The space's cases, newest first.",
                    ok=_json_answer("Case summaries.", "CaseList"),
                    errors="400 401 403 404 408 503",
                    parameters=(*space, viewer, user, limit),
                )
            },
            "/v1/cases/{case_number}": {
                "get": _operation(
                    "getCase",
                    "One case with its alert, evidence excerpts and audit trail.",
                    ok=_json_answer("The case.", "Case"),
                    errors="400 401 403 404 408 503",
                    parameters=(case, *space, viewer),
                )
            },
            "/v1/cases/{case_number}/actions": {
                "post": _operation(
                    "actOnCase",
                    "Claim, dismiss, confirm, escalate, snooze or annotate a case.",
                    ok=_json_answer("The case after the action.", "Case"),
                    errors="400 401 403 404 408 409 503",
                    parameters=(case, *space),
                    body="CaseAction",
                )
            },
            "/v1/pairs": {
                "get": _operation(
                    "getPair",
                    "Two members' conversation: its risk, signals, and why there is no alert yet.",
                    ok=_json_answer("The pair.", "Pair"),
                    errors="400 401 403 408 503",
                    parameters=pair,
                    description=pair_description,
                )
            },
            "/v1/pairs/chart.svg": {
                "get": _operation(
                    "getPairChart",
                    "The pair's risk over time as an SVG chart, the alert threshold dashed.",
                    ok=svg,
                    errors="400 401 403 408 503",
                    parameters=pair,
                    description=chart_description,
                )
            },
            "/healthz": {
                "get": {
                    "operationId": "health",
                    "summary": "Liveness and storage check; no authentication.",
                    "security": [],
                    "responses": {
                        "200": _json_answer("Up.", "Health"),
                        "503": _json_answer("Storage is unavailable.", "Health"),
                    },
                }
            },
            "/v1/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document; no authentication.",
                    "security": [],
                    "responses": {
                        "200": {"description": "The OpenAPI document.", "content": {"application/json": {}}}
                    },
                }
            },
        },
    }


def openapi_json() -> str:
    """The document as served and as committed in docs/openapi.json (stable key order, trailing newline)."""
    return json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"
