"""The HTTP API's wire format: request parsing and the OpenAPI document, from one field table.

``MESSAGE_FIELDS`` is the single source for what a message may carry: ``parse_message`` validates against it
and ``openapi_document()`` describes it. ``docs/openapi.json`` is ``openapi_document()`` written out (a test
checks they are identical); regenerate it with
``python -c "import bots.http.schema as s; print(s.openapi_json(), end='')" > docs/openapi.json``.
"""

from __future__ import annotations

import enum
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Literal

from vigil.bots.core.case_service import MAX_SNOOZE, MIN_SNOOZE
from vigil.bots.core.cases import CaseAction, CaseSummary, CaseView
from vigil.bots.core.models import ChatMessage
from vigil.bots.core.moderation import PairHistory
from vigil.bots.core.replay import json_type
from vigil.bots.core.sinks import alert_to_dict

DEFAULT_PLATFORM = "http"
# The actor of GET requests that name none.
DEFAULT_VIEWER = "http-api"
MAX_ID_CHARS = 256
MAX_TEXT_CHARS = 20_000
MAX_NAME_CHARS = 256
MAX_ID_LIST = 100
MAX_REASON_CHARS = 1000
MAX_CASE_LIST = 100
MAX_CASE_NUMBER = 2**31 - 1
# Timestamps outside this range are mistakes (seconds sent as milliseconds, a zero date), not messages.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)
# Actions the API exposes; release_hold (child-safety only) is not among them.
API_ACTIONS: tuple[CaseAction, ...] = (
    CaseAction.CLAIM,
    CaseAction.DISMISS,
    CaseAction.CONFIRM,
    CaseAction.ESCALATE,
    CaseAction.SNOOZE,
    CaseAction.NOTE,
)

# An id: some visible character, and none of the characters that can forge or hide text where ids end up
# (log lines, audit trails, evidence packs): C0 and C1 controls (NEL), line and paragraph separators, bidi
# embeddings, overrides, isolates and marks, zero-width characters and other format characters of the BMP.
# `_as_id` also refuses format characters outside the BMP, which an OpenAPI pattern cannot name portably.
_ID_FORBIDDEN = (
    "\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e"
    "\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb"
)
ID_PATTERN = rf"^[^{_ID_FORBIDDEN}]*[^\s{_ID_FORBIDDEN}][^{_ID_FORBIDDEN}]*$"
_UNSAFE_ID_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
_ID = re.compile(ID_PATTERN)
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")

FieldKind = Literal["id", "platform", "text", "name", "timestamp", "bool", "id_list"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageField:
    name: str
    kind: FieldKind
    required: bool
    description: str


MESSAGE_FIELDS: tuple[MessageField, ...] = (
    MessageField(
        name="platform",
        kind="platform",
        required=False,
        description=f'Your platform\'s name; default "{DEFAULT_PLATFORM}". Cases are scoped by it.',
    ),
    MessageField(
        name="space_id",
        kind="id",
        required=True,
        description="The community (tenant, server, workspace) the message belongs to.",
    ),
    MessageField(name="channel_id", kind="id", required=True, description="Channel or DM conversation id."),
    MessageField(
        name="message_id",
        kind="id",
        required=True,
        description="Unique within the space; a message id seen before is answered 'duplicate'.",
    ),
    MessageField(name="author_id", kind="id", required=True, description="The sender's user id."),
    MessageField(
        name="text",
        kind="text",
        required=True,
        description=f"The message text as the user wrote it (at most {MAX_TEXT_CHARS} characters).",
    ),
    MessageField(
        name="timestamp",
        kind="timestamp",
        required=True,
        description="When it was sent: RFC 3339 with a zone (UTC, e.g. 2026-03-01T18:00:00Z, preferred).",
    ),
    MessageField(name="is_dm", kind="bool", required=False, description="A direct or group-direct message."),
    MessageField(name="thread_id", kind="id", required=False, description="The thread, if any."),
    MessageField(
        name="author_is_bot",
        kind="bool",
        required=False,
        description="The sender is a bot: the message is skipped.",
    ),
    MessageField(
        name="reply_to_message_id", kind="id", required=False, description="The message this one replies to."
    ),
    MessageField(
        name="reply_to_author_id", kind="id", required=False, description="The author of that message."
    ),
    MessageField(
        name="mentioned_user_ids", kind="id_list", required=False, description="Users the message mentions."
    ),
    MessageField(
        name="recipient_ids",
        kind="id_list",
        required=False,
        description="For DMs: the other participants. Empty for channel messages.",
    ),
    MessageField(
        name="author_display_name",
        kind="name",
        required=False,
        description="Shown to moderators only; never stored beyond the pair's window.",
    ),
)
_FIELDS_BY_NAME: Mapping[str, MessageField] = MappingProxyType({f.name: f for f in MESSAGE_FIELDS})


# --------------------------------------------------------------------------------------------- parsing


class RequestError(ValueError):
    """The request as a whole is unusable (HTTP 400); ``field`` names the JSON path that failed."""

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


class _FieldProblem(ValueError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field
        self.problem = problem


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


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


def _check_unicode(value: str, field: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _FieldProblem(field, "contains an unpaired surrogate (\\ud800-\\udfff)") from None
    return value


def _as_id(value: object, field: str, *, limit: int = MAX_ID_CHARS) -> str:
    if not isinstance(value, str):
        raise _FieldProblem(field, f"must be a string, got {json_type(value)}")
    if not value.strip():
        raise _FieldProblem(field, "must not be empty")
    if len(value) > limit:
        raise _FieldProblem(field, f"is longer than {limit} characters")
    if _ID.fullmatch(value) is None or any(
        unicodedata.category(character) in _UNSAFE_ID_CATEGORIES for character in value
    ):
        raise _FieldProblem(
            field, "must not contain control, format, line-separator, bidi or zero-width characters"
        )
    return _check_unicode(value, field)


def _as_text(value: object, field: str, *, limit: int) -> str:
    if not isinstance(value, str):
        raise _FieldProblem(field, f"must be a string, got {json_type(value)}")
    if len(value) > limit:
        raise _FieldProblem(field, f"is longer than {limit} characters")
    return _check_unicode(value, field)


def _as_bool(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise _FieldProblem(field, f"must be true or false, got {json_type(value)}")
    return value


def _as_id_list(value: object, field: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _FieldProblem(field, f"must be an array of strings, got {json_type(value)}")
    if len(value) > MAX_ID_LIST:
        raise _FieldProblem(field, f"has more than {MAX_ID_LIST} entries")
    return tuple(dict.fromkeys(_as_id(item, f"{field}[{i}]") for i, item in enumerate(value)))


def parse_timestamp(value: object, field: str = "timestamp") -> datetime:
    """An RFC 3339 date-time with a zone, as timezone-aware UTC."""
    if not isinstance(value, str):
        raise _FieldProblem(field, f"must be an RFC 3339 string, got {json_type(value)}")
    if _RFC3339.fullmatch(value) is None:
        raise _FieldProblem(field, "must be RFC 3339 with a zone, e.g. 2026-03-01T18:00:00Z")
    try:
        parsed = datetime.fromisoformat(value.upper()).astimezone(UTC)
    except (ValueError, OverflowError):
        raise _FieldProblem(field, "is not a valid date and time") from None
    if not EARLIEST <= parsed < LATEST:
        raise _FieldProblem(field, "is outside 1970-01-01 to 3000-01-01")
    return parsed


def _field_value(spec: MessageField, value: object, field: str) -> object:
    if spec.kind in ("id", "platform"):
        return _as_id(value, field, limit=64 if spec.kind == "platform" else MAX_ID_CHARS)
    if spec.kind == "text":
        return _as_text(value, field, limit=MAX_TEXT_CHARS)
    if spec.kind == "name":
        return _as_text(value, field, limit=MAX_NAME_CHARS)
    if spec.kind == "timestamp":
        return parse_timestamp(value, field)
    if spec.kind == "bool":
        return _as_bool(value, field)
    return _as_id_list(value, field)


def parse_message(raw: object, *, index: int) -> ChatMessage | MessageError:
    """One entry of ``messages``: a ``ChatMessage``, or the first problem found (naming its field)."""
    where = f"messages[{index}]"
    if not isinstance(raw, dict):
        return MessageError(
            index=index, message_id=None, field=where, problem=f"must be an object, got {json_type(raw)}"
        )
    message_id = raw.get("message_id")
    known_id = message_id if isinstance(message_id, str) and message_id.strip() else None
    try:
        values: dict[str, object] = {}
        for key in raw:
            if key not in _FIELDS_BY_NAME:
                shown = key if len(key) <= 40 else key[:37] + "..."
                raise _FieldProblem(f"{where}.{shown}", "is not a known field")
        for spec in MESSAGE_FIELDS:
            field = f"{where}.{spec.name}"
            if spec.name not in raw:
                if spec.required:
                    raise _FieldProblem(field, "is required")
                continue
            value = raw[spec.name]
            if value is None and not spec.required:
                continue
            values[spec.name] = _field_value(spec, value, field)
    except _FieldProblem as problem:
        return MessageError(index=index, message_id=known_id, field=problem.field, problem=problem.problem)
    values.setdefault("platform", DEFAULT_PLATFORM)
    return ChatMessage(**values)  # type: ignore[arg-type]


def parse_batch(data: object, *, max_messages: int) -> list[object]:
    """The raw entries of a ``{"messages": [...]}`` batch; raises for a wrong top-level shape."""
    if not isinstance(data, dict):
        raise RequestError(f"expected a JSON object with a 'messages' array, got {json_type(data)}")
    for key in data:
        if key != "messages":
            raise RequestError("is not a known field", field=key if len(key) <= 40 else key[:37] + "...")
    if "messages" not in data:
        raise RequestError("is required", field="messages")
    messages = data["messages"]
    if not isinstance(messages, list):
        raise RequestError(f"must be an array, got {json_type(messages)}", field="messages")
    if len(messages) > max_messages:
        raise BatchTooLargeError(f"{len(messages)} messages in one batch; at most {max_messages} accepted")
    return list(messages)


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionRequest:
    action: CaseAction
    actor_id: str
    reason: str | None = None
    snooze_for: timedelta | None = None
    actor_display_name: str | None = None


_ACTION_KEYS = ("action", "actor_id", "reason", "snooze_for_s", "actor_display_name")


def parse_action(data: object) -> ActionRequest:
    """The body of ``POST /v1/cases/{n}/actions``; raises ``RequestError`` naming the failing field."""
    if not isinstance(data, dict):
        raise RequestError(f"expected a JSON object, got {json_type(data)}")
    for key in data:
        if key not in _ACTION_KEYS:
            raise RequestError("is not a known field", field=key if len(key) <= 40 else key[:37] + "...")
    action = data.get("action")
    names = [str(a) for a in API_ACTIONS]
    if action not in names:
        raise RequestError(f"must be one of {', '.join(names)}", field="action")
    try:
        actor_id = _as_id(data.get("actor_id"), "actor_id")
        reason = data.get("reason")
        if reason is not None:
            reason = _as_text(reason, "reason", limit=MAX_REASON_CHARS)
        name = data.get("actor_display_name")
        if name is not None:
            name = _as_text(name, "actor_display_name", limit=MAX_NAME_CHARS)
    except _FieldProblem as problem:
        raise RequestError(problem.problem, field=problem.field) from None
    snooze_for: timedelta | None = None
    seconds = data.get("snooze_for_s")
    if seconds is not None:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise RequestError(f"must be a number of seconds, got {json_type(seconds)}", field="snooze_for_s")
        if not MIN_SNOOZE.total_seconds() <= seconds <= MAX_SNOOZE.total_seconds():
            raise RequestError(
                f"must be between {int(MIN_SNOOZE.total_seconds())} and {int(MAX_SNOOZE.total_seconds())}",
                field="snooze_for_s",
            )
        snooze_for = timedelta(seconds=seconds)
    return ActionRequest(
        action=CaseAction(str(action)),
        actor_id=actor_id,
        reason=reason if isinstance(reason, str) and reason.strip() else None,
        snooze_for=snooze_for,
        actor_display_name=name if isinstance(name, str) and name.strip() else None,
    )


def parse_query_id(query: Mapping[str, str], key: str, *, default: str | None = None) -> str:
    """A required (or defaulted) id from the query string; raises ``RequestError`` naming it."""
    value = query.get(key, default)
    if value is None:
        raise RequestError("query parameter is required", field=key)
    try:
        return _as_id(value, key, limit=64 if key == "platform" else MAX_ID_CHARS)
    except _FieldProblem as problem:
        raise RequestError(problem.problem, field=key) from None


def parse_query_int(query: Mapping[str, str], key: str, *, default: int, low: int, high: int) -> int:
    raw = query.get(key)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9 or not low <= int(raw) <= high:
        raise RequestError(f"must be an integer from {low} to {high}", field=key)
    return int(raw)


# --------------------------------------------------------------------------------------------- responses


def summary_to_dict(summary: CaseSummary) -> dict[str, object]:
    return {
        "case_number": summary.case_number,
        "state": str(summary.state),
        "risk": round(summary.risk, 4),
        "suspect_id": summary.suspect_id,
        "other_id": summary.other_id,
        "created_at": summary.created_at.isoformat(),
        "updated_at": summary.updated_at.isoformat(),
    }


def case_to_dict(view: CaseView, *, signal_labels: Mapping[str, str]) -> dict[str, object]:
    """A case as the API returns it: the alert (with evidence excerpts), its state and audit trail."""
    return {
        "case_number": view.alert.case_number,
        "platform": view.alert.key.platform,
        "space_id": view.alert.key.space_id,
        "state": str(view.state),
        "source": str(view.source),
        "claimed_by": view.claimed_by,
        "dismiss_reason": view.dismiss_reason,
        "hold_until": view.hold_until.isoformat() if view.hold_until is not None else None,
        "alert": alert_to_dict(view.alert, signal_labels=signal_labels),
        "audit": [
            {
                "event_id": event.event_id,
                "case_number": event.case_number,
                "at": event.at.isoformat(),
                "actor_id": event.actor_id,
                "action": event.action,
                "before": event.before,
                "after": event.after,
                "detail": event.detail,
            }
            for event in view.audit
        ],
        "earlier_cases": [summary_to_dict(s) for s in view.earlier_cases],
    }


def pair_to_dict(history: PairHistory, *, signal_labels: Mapping[str, str]) -> dict[str, object]:
    """What Vigil knows about a pair, for moderators: risk, likely groomer, signals, why no alert yet."""
    key, state = history.key, history.state
    return {
        "platform": key.platform,
        "space_id": key.space_id,
        "user_ids": [key.user_a, key.user_b],
        "known": state is not None,
        "risk": round(state.risk, 4) if state is not None else None,
        "suspect_id": state.suspect_id if state is not None else None,
        "message_count": state.message_count if state is not None else 0,
        "first_seen": state.first_seen.isoformat() if state is not None else None,
        "last_seen": state.last_seen.isoformat() if state is not None else None,
        "channel_ids": list(state.channel_ids) if state is not None else [],
        "threshold": round(history.threshold, 4),
        "open_case": history.open_case,
        "signals": [
            {"name": name, "label": signal_labels.get(name, name.replace("_", " "))}
            for name in history.signals
        ],
        "outlook": history.outlook,
        "history": [
            {"at": p.timestamp.isoformat(), "risk": round(p.risk, 4), "suspect_id": p.suspect_id}
            for p in history.points
        ],
    }


# --------------------------------------------------------------------------------------------- OpenAPI


class MessageStatus(enum.StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    SKIPPED = "skipped"
    ERROR = "error"


def _ref(name: str) -> dict[str, object]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, object]) -> dict[str, object]:
    return schema | {"nullable": True}


def _id_schema(limit: int = MAX_ID_CHARS) -> dict[str, object]:
    return {"type": "string", "minLength": 1, "maxLength": limit, "pattern": ID_PATTERN}


def _field_schema(spec: MessageField) -> dict[str, object]:
    schema: dict[str, object]
    if spec.kind == "id":
        schema = _id_schema()
    elif spec.kind == "platform":
        schema = _id_schema(64) | {"default": DEFAULT_PLATFORM}
    elif spec.kind == "text":
        schema = {"type": "string", "maxLength": MAX_TEXT_CHARS}
    elif spec.kind == "name":
        schema = {"type": "string", "maxLength": MAX_NAME_CHARS}
    elif spec.kind == "timestamp":
        schema = {"type": "string", "format": "date-time"}
    elif spec.kind == "bool":
        schema = {"type": "boolean", "default": False}
    else:
        schema = {
            "type": "array",
            "maxItems": MAX_ID_LIST,
            "items": _id_schema(),
        }
    schema["description"] = spec.description
    return schema if spec.required else _nullable(schema)


# The document is built afresh on every call, so no schema object is ever shared or mutated.
def _string(**extra: object) -> dict[str, object]:
    return {"type": "string", **extra}


def _time() -> dict[str, object]:
    return {"type": "string", "format": "date-time"}


def _number(**extra: object) -> dict[str, object]:
    return {"type": "number", **extra}


def _int() -> dict[str, object]:
    return {"type": "integer"}


def _object(properties: dict[str, object], *, required: tuple[str, ...] | None = None) -> dict[str, object]:
    return {
        "type": "object",
        "required": list(properties if required is None else required),
        "properties": properties,
    }


def _schemas() -> dict[str, object]:
    message_result = _object(
        {
            "index": {"type": "integer", "minimum": 0, "description": "Position in the request's batch."},
            "message_id": _nullable(_string(description="Null when the entry had no usable message_id.")),
            "status": {"type": "string", "enum": [str(s) for s in MessageStatus]},
            "reason": {
                "type": "string",
                "description": "Why a message was skipped or is an error; an error names the field.",
            },
            "alerts": {
                "type": "array",
                "items": {"type": "integer"},
                "description": "Case numbers raised or updated by this message.",
            },
        },
        required=("index", "message_id", "status"),
    )
    evidence = _object(
        {
            "message_id": _string(),
            "channel_id": _string(),
            "author_id": _string(),
            "timestamp": _time(),
            "risk": _number(),
            "excerpt": _string(),
        }
    )
    alert = _object(
        {
            "alert_id": _int(),
            "case_number": _int(),
            "revision": _int(),
            "status": {"type": "string", "enum": ["open", "closed"]},
            "platform": _string(),
            "space_id": _string(),
            "suspect_id": _string(description="The member whose own messages look like grooming."),
            "other_id": _string(),
            "risk": _number(),
            "peak_risk": _number(),
            "channel_ids": {"type": "array", "items": _string()},
            "signals": {"type": "array", "items": _string()},
            "evidence": {"type": "array", "items": _ref("Evidence")},
            "created_at": _time(),
            "updated_at": _time(),
            "model": _string(),
            "shadow": {"type": "boolean"},
        }
    )
    case_summary = _object(
        {
            "case_number": _int(),
            "state": {"type": "string", "enum": ["open", "claimed", "dismissed", "confirmed", "escalated"]},
            "risk": _number(),
            "suspect_id": _string(),
            "other_id": _string(),
            "created_at": _time(),
            "updated_at": _time(),
        }
    )
    audit_event = _object(
        {
            "event_id": _int(),
            "case_number": _int(),
            "at": _time(),
            "actor_id": _string(),
            "action": _string(),
            "before": _nullable(_string()),
            "after": _nullable(_string()),
            "detail": _nullable(_string()),
        }
    )
    case = _object(
        {
            "case_number": _int(),
            "platform": _string(),
            "space_id": _string(),
            "state": case_summary["properties"]["state"],  # type: ignore[index]
            "source": {"type": "string", "enum": ["alert", "member_report"]},
            "claimed_by": _nullable(_string()),
            "dismiss_reason": _nullable(_string()),
            "hold_until": _nullable(_time()),
            "alert": _ref("Alert"),
            "audit": {"type": "array", "items": _ref("AuditEvent")},
            "earlier_cases": {"type": "array", "items": _ref("CaseSummary")},
        }
    )
    webhook = {
        "allOf": [
            _ref("Alert"),
            _object(
                {
                    "updated": {
                        "type": "boolean",
                        "description": "false for the first delivery of an alert, true for every later one.",
                    },
                    "case": _object(
                        {
                            "state": case_summary["properties"]["state"],  # type: ignore[index]
                            "claimed_by": _nullable(_string()),
                        }
                    ),
                },
                required=("updated",),
            ),
        ],
        "description": "The body of an alert webhook (signed like a request; see docs/http-api.md).",
    }
    return {
        "ChatMessage": {
            "type": "object",
            "additionalProperties": False,
            "required": [f.name for f in MESSAGE_FIELDS if f.required],
            "properties": {f.name: _field_schema(f) for f in MESSAGE_FIELDS},
        },
        "MessageBatch": {
            "type": "object",
            "additionalProperties": False,
            "required": ["messages"],
            "properties": {
                "messages": {
                    "type": "array",
                    "items": _ref("ChatMessage"),
                    "description": "At most [http] max_batch_messages entries (default 500; more: 413).",
                }
            },
        },
        "MessageResult": message_result,
        "BatchResult": _object(
            {
                "results": {"type": "array", "items": _ref("MessageResult")},
                "counts": {
                    "type": "object",
                    "additionalProperties": {"type": "integer"},
                    "description": "How many messages got each status.",
                },
            }
        ),
        "Error": _object(
            {
                "error": {"type": "string", "description": "A stable code, e.g. bad_request, unauthorized."},
                "detail": _string(),
                "field": {"type": "string", "description": "The JSON field or parameter that failed."},
            },
            required=("error", "detail"),
        ),
        "RetryLater": _object(
            {
                "error": {"type": "string", "enum": ["overloaded", "unavailable"]},
                "detail": _string(),
                "retry_after": _number(),
                "results": {
                    "type": "array",
                    "items": _ref("MessageResult"),
                    "description": "Messages handled before the overload; resend the whole batch.",
                },
            }
        ),
        "CaseAction": {
            "type": "object",
            "additionalProperties": False,
            "required": ["action", "actor_id"],
            "properties": {
                "action": {"type": "string", "enum": [str(a) for a in API_ACTIONS]},
                "actor_id": _id_schema()
                | {"description": "The moderator acting, as your platform knows them (audited)."},
                "actor_display_name": _nullable({"type": "string", "maxLength": MAX_NAME_CHARS}),
                "reason": _nullable(
                    {
                        "type": "string",
                        "maxLength": MAX_REASON_CHARS,
                        "description": "Required by dismiss; the text of a note.",
                    }
                ),
                "snooze_for_s": _nullable(
                    {
                        "type": "number",
                        "minimum": MIN_SNOOZE.total_seconds(),
                        "maximum": MAX_SNOOZE.total_seconds(),
                        "description": "For snooze: how long; the service's default when left out.",
                    }
                ),
            },
        },
        "Evidence": evidence,
        "Alert": alert,
        "CaseSummary": case_summary,
        "AuditEvent": audit_event,
        "Case": case,
        "CaseList": _object(
            {
                "platform": _string(),
                "space_id": _string(),
                "cases": {"type": "array", "items": _ref("CaseSummary")},
            }
        ),
        "PairSignal": _object(
            {
                "name": _string(description="The model's name for the signal."),
                "label": _string(description="The signal in plain words."),
            }
        ),
        "RiskPoint": _object(
            {
                "at": _time(),
                "risk": _number(),
                "suspect_id": _nullable(_string()),
            }
        ),
        "Pair": _object(
            {
                "platform": _string(),
                "space_id": _string(),
                "user_ids": {
                    "type": "array",
                    "items": _string(),
                    "description": "The two members, in Vigil's order (sorted).",
                },
                "known": {
                    "type": "boolean",
                    "description": "false: Vigil has no conversation between them on record.",
                },
                "risk": _nullable(_number()),
                "suspect_id": _nullable(
                    _string(
                        description="The member whose own messages look like grooming (the likely groomer)."
                    )
                ),
                "message_count": _int(),
                "first_seen": _nullable(_time()),
                "last_seen": _nullable(_time()),
                "channel_ids": {"type": "array", "items": _string()},
                "threshold": _number(description="The space's alert threshold."),
                "open_case": _nullable(_int()),
                "signals": {
                    "type": "array",
                    "items": _ref("PairSignal"),
                    "description": "Seen in the suspect's messages in the window, most frequent first.",
                },
                "outlook": _nullable(
                    _string(
                        description="Why there is no alert yet; null with an open case or an unknown pair."
                    )
                ),
                "history": {
                    "type": "array",
                    "items": _ref("RiskPoint"),
                    "description": "The latest changes in risk, oldest first.",
                },
            }
        ),
        "Health": _object({"status": {"type": "string", "enum": ["ok", "unavailable"]}}),
        "WebhookPayload": webhook,
    }


def _error(description: str, name: str = "Error") -> dict[str, object]:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


def _ok(description: str, name: str) -> dict[str, object]:
    return _error(description, name)


def _retry_later(description: str) -> dict[str, object]:
    return {
        "description": description,
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
        "content": {"application/json": {"schema": _ref("RetryLater")}},
    }


def _query(name: str, description: str, *, required: bool = False, **schema: object) -> dict[str, object]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": _id_schema() | schema,
    }


def _space_params() -> list[dict[str, object]]:
    return [
        _query("space_id", "The space whose cases these are.", required=True),
        _query("platform", f'The platform; default "{DEFAULT_PLATFORM}".', maxLength=64),
    ]


def _viewer_param() -> dict[str, object]:
    return _query("actor_id", f'Who is looking (the moderator\'s id); default "{DEFAULT_VIEWER}".')


def _pair_params() -> list[dict[str, object]]:
    return [
        _query("space_id", "The space the two members are in.", required=True),
        _query("platform", f'The platform; default "{DEFAULT_PLATFORM}".', maxLength=64),
        _query("first", "One member of the pair.", required=True),
        _query("second", "The other member (not the same as first).", required=True),
        _viewer_param(),
    ]


def _pair_errors() -> dict[str, dict[str, object]]:
    return {
        "403": _error("Refused by the moderator service."),
        "503": _error("Storage is unavailable; retry after Retry-After."),
    }


def _case_number_param() -> dict[str, object]:
    return {
        "name": "case_number",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_CASE_NUMBER},
    }


def _responses(*parts: dict[str, dict[str, object]]) -> dict[str, dict[str, object]]:
    merged: dict[str, dict[str, object]] = {}
    for part in parts:
        merged.update(part)
    return dict(sorted(merged.items()))


def _auth_errors() -> dict[str, dict[str, object]]:
    return {
        "400": _error("Malformed request; `field` names what failed."),
        "401": _error("Missing, stale, future, replayed or wrong signature."),
        "408": _error("The body did not arrive in time."),
    }


def _case_errors() -> dict[str, dict[str, object]]:
    return {
        "403": _error("The case service refused the action."),
        "404": _error("No such case in this space."),
        "503": _error("Storage is unavailable; retry after Retry-After."),
    }


def openapi_document() -> dict[str, object]:
    """The OpenAPI 3.0 description of the API; served at ``GET /v1/openapi.json``."""
    security: list[dict[str, list[str]]] = [{"VigilTimestamp": [], "VigilNonce": [], "VigilSignature": []}]
    return {
        "openapi": "3.0.3",
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
                "VigilTimestamp": {"type": "apiKey", "in": "header", "name": "X-Vigil-Timestamp"},
                "VigilSignature": {"type": "apiKey", "in": "header", "name": "X-Vigil-Signature"},
                "VigilNonce": {"type": "apiKey", "in": "header", "name": "X-Vigil-Nonce"},
            },
            "schemas": _schemas(),
        },
        "paths": {
            "/v1/messages": {
                "post": {
                    "operationId": "sendMessages",
                    "summary": "Send a batch of messages to be checked.",
                    "security": security,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("MessageBatch")}},
                    },
                    "responses": _responses(
                        {"200": _ok("One result per message, in order.", "BatchResult")},
                        _auth_errors(),
                        {
                            "413": _error("Body over max_body_bytes or batch over max_batch_messages."),
                            "429": _retry_later(
                                "Vigil is overloaded; resend the whole batch after Retry-After."
                            ),
                            "503": _retry_later(
                                "A message could not be processed (e.g. the detector failed); nothing of it "
                                "was recorded. Resend the whole batch after Retry-After."
                            ),
                        },
                    ),
                }
            },
            "/v1/cases": {
                "get": {
                    "operationId": "listCases",
                    "summary": "The space's cases, newest first.",
                    "security": security,
                    "parameters": [
                        *_space_params(),
                        _viewer_param(),
                        _query("user_id", "Only cases where this user is a member of the pair."),
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": MAX_CASE_LIST,
                                "default": 20,
                            },
                        },
                    ],
                    "responses": _responses(
                        {"200": _ok("Case summaries.", "CaseList")}, _auth_errors(), _case_errors()
                    ),
                }
            },
            "/v1/cases/{case_number}": {
                "get": {
                    "operationId": "getCase",
                    "summary": "One case with its alert, evidence excerpts and audit trail.",
                    "security": security,
                    "parameters": [_case_number_param(), *_space_params(), _viewer_param()],
                    "responses": _responses(
                        {"200": _ok("The case.", "Case")}, _auth_errors(), _case_errors()
                    ),
                }
            },
            "/v1/cases/{case_number}/actions": {
                "post": {
                    "operationId": "actOnCase",
                    "summary": "Claim, dismiss, confirm, escalate, snooze or annotate a case.",
                    "security": security,
                    "parameters": [_case_number_param(), *_space_params()],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("CaseAction")}},
                    },
                    "responses": _responses(
                        {"200": _ok("The case after the action.", "Case")},
                        _auth_errors(),
                        _case_errors(),
                        {"409": _error("The action is not possible in the case's state.")},
                    ),
                }
            },
            "/v1/pairs": {
                "get": {
                    "operationId": "getPair",
                    "summary": "Two members' conversation: its risk, signals, and why there is no alert yet.",
                    "description": (
                        "An unknown pair is not an error: it is answered with known=false. The answer names "
                        "the likely groomer and is for moderators only."
                    ),
                    "security": security,
                    "parameters": _pair_params(),
                    "responses": _responses(
                        {"200": _ok("The pair.", "Pair")}, _auth_errors(), _pair_errors()
                    ),
                }
            },
            "/v1/pairs/chart.svg": {
                "get": {
                    "operationId": "getPairChart",
                    "summary": "The pair's risk over time as an SVG chart, the alert threshold dashed.",
                    "description": (
                        "A self-contained image (no scripts, no external references), served with a "
                        "Content-Security-Policy that forbids loading anything. An unknown pair gets a chart "
                        "that says no risk is recorded yet."
                    ),
                    "security": security,
                    "parameters": _pair_params(),
                    "responses": _responses(
                        {
                            "200": {
                                "description": "The chart.",
                                "content": {"image/svg+xml": {"schema": {"type": "string"}}},
                            }
                        },
                        _auth_errors(),
                        _pair_errors(),
                    ),
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "health",
                    "summary": "Liveness and storage check; no authentication.",
                    "security": [],
                    "responses": {
                        "200": _ok("Up.", "Health"),
                        "503": _ok("Storage is unavailable.", "Health"),
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
