"""The wire format's Structs: what they refuse, in which words, and the document generated from them."""

from __future__ import annotations

import json
import typing
from collections.abc import Iterator

import msgspec
import pytest

from tests.http.conftest import wire_message
from tests.http.deliveries import a_delivery
from vigil.bots.core.cases import CaseAction as CoreAction
from vigil.bots.core.models import ChatMessage
from vigil.bots.core.sinks import alert_to_dict
from vigil.bots.http.schema import (
    ID_PATTERN,
    Alert,
    ApiAction,
    Case,
    MessageError,
    RequestError,
    WebhookPayload,
    openapi_json,
    parse_action,
    parse_batch,
    parse_message,
    parse_query_id,
)

SCHEMAS: dict[str, typing.Any] = json.loads(openapi_json())["components"]["schemas"]


def _problem(raw: object) -> tuple[str, str]:
    parsed = parse_message(raw, index=3)
    assert isinstance(parsed, MessageError), parsed
    return parsed.field, parsed.problem


def _id_fields(schema: dict[str, typing.Any]) -> Iterator[tuple[str, bool]]:
    """The properties the document says are ids, and whether each is a list of them."""
    for name, spec in schema["properties"].items():
        for option in spec.get("anyOf", [spec]):
            if option.get("pattern") == ID_PATTERN:
                yield name, False
            elif option.get("items", {}).get("pattern") == ID_PATTERN:
                yield name, True


@pytest.mark.parametrize(("name", "is_list"), list(_id_fields(SCHEMAS["ChatMessage"])))
def test_every_id_refuses_format_characters_the_pattern_cannot_name(name: str, is_list: bool) -> None:
    # A tag character: a format character outside the BMP, which the pattern lets through.
    value = "kid\U000e0041"
    field, problem = _problem(wire_message(1, **{name: [value] if is_list else value}))
    assert field == f"messages[3].{name}" + ("[0]" if is_list else "")
    assert "format" in problem


def test_the_document_knows_ten_ids_of_a_message() -> None:
    assert len(list(_id_fields(SCHEMAS["ChatMessage"]))) == 10


@pytest.mark.parametrize(
    ("overrides", "field", "problem"),
    [
        ({"colour": "red"}, "colour", "is not a known field"),
        ({"x" * 50: 1}, "x" * 37 + "...", "is not a known field"),
        ({"author_id": None}, "author_id", "must be a string, got null"),
        ({"is_dm": "yes"}, "is_dm", "must be a boolean or null, got a string"),
        ({"recipient_ids": "kid"}, "recipient_ids", "must be an array or null, got a string"),
        ({"recipient_ids": ["kid", 7]}, "recipient_ids[1]", "must be a string, got a number"),
        ({"recipient_ids": ["kid"] * 101}, "recipient_ids", "has more than 100 entries"),
        ({"author_id": ""}, "author_id", "must not be empty"),
        ({"author_id": "x" * 257}, "author_id", "is longer than 256 characters"),
        ({"platform": "p" * 65}, "platform", "is longer than 64 characters"),
        ({"author_id": "   "}, "author_id", "must have a visible character"),
        ({"author_id": "kid\u202e"}, "author_id", "must have a visible character"),
        ({"author_id": "kid\n"}, "author_id", "must have a visible character"),
        ({"text": "x" * 20_001}, "text", "is longer than 20000 characters"),
        ({"text": "cut \ud83d"}, "text", "contains an unpaired surrogate"),
        ({"author_display_name": "\udc00"}, "author_display_name", "contains an unpaired surrogate"),
        ({"timestamp": "2026-03-01T18:00:00"}, "timestamp", "must be RFC 3339 with a zone"),
        ({"timestamp": "2026-03-01T18:00:00.1234567891Z"}, "timestamp", "must be RFC 3339 with a zone"),
        ({"timestamp": "2026-02-30T18:00:00Z"}, "timestamp", "is not a valid date and time"),
        ({"timestamp": "1969-12-31T23:59:59Z"}, "timestamp", "is outside 1970-01-01 to 3000-01-01"),
        ({"timestamp": 1772388000}, "timestamp", "must be a string, got a number"),
    ],
)
def test_a_bad_message_is_refused_naming_its_field(
    overrides: dict[str, object], field: str, problem: str
) -> None:
    found_field, found_problem = _problem(wire_message(1, **overrides))
    assert found_field == f"messages[3].{field}"
    assert found_problem.startswith(problem), found_problem


def test_a_missing_field_and_a_non_object_are_named() -> None:
    message = wire_message(1)
    del message["timestamp"]
    assert _problem(message) == ("messages[3].timestamp", "is required")
    assert _problem(["not", "an", "object"]) == ("messages[3]", "expected an object, got an array")


def test_a_name_or_id_with_an_unpaired_surrogate_is_refused_and_never_echoed() -> None:
    parsed = parse_message(wire_message(1, **{"key\ud800": 1}), index=0)
    assert isinstance(parsed, MessageError)
    assert parsed.field == "messages[0].key\\ud800" and parsed.problem == "is not a known field"
    parsed = parse_message(wire_message(1, message_id="m\ud800"), index=0)
    assert isinstance(parsed, MessageError) and parsed.message_id is None
    assert parsed.field == "messages[0].message_id"


def test_optional_fields_may_be_null_and_lists_are_deduplicated() -> None:
    parsed = parse_message(
        wire_message(1, platform=None, is_dm=None, thread_id=None, recipient_ids=["kid", "kid", "mum"]),
        index=0,
    )
    assert isinstance(parsed, ChatMessage)
    assert parsed.platform == "http" and parsed.is_dm is False and parsed.recipient_ids == ("kid", "mum")


@pytest.mark.parametrize(
    ("data", "field", "problem"),
    [
        ([1, 2], None, "expected an object, got an array"),
        ({"messages": {}}, "messages", "must be an array, got an object"),
        ({"message": []}, "message", "is not a known field"),
        ({}, "messages", "is required"),
    ],
)
def test_a_bad_batch_is_refused_as_a_whole(data: object, field: str | None, problem: str) -> None:
    with pytest.raises(RequestError) as raised:
        parse_batch(data, max_messages=10)
    assert (raised.value.field, raised.value.problem) == (field, problem)


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        ({"action": "release_hold", "actor_id": "m"}, "action", "must be one of claim, dismiss, confirm"),
        ({"action": 3, "actor_id": "m"}, "action", "must be one of claim, dismiss, confirm"),
        ({"action": "claim"}, "actor_id", "is required"),
        ({"action": "claim", "actor_id": "m", "why": 1}, "why", "is not a known field"),
        ({"action": "snooze", "actor_id": "m", "snooze_for_s": 60}, "snooze_for_s", "must be at least 3600"),
        (
            {"action": "snooze", "actor_id": "m", "snooze_for_s": 1e9},
            "snooze_for_s",
            "must be at most 7776000",
        ),
        (
            {"action": "snooze", "actor_id": "m", "snooze_for_s": True},
            "snooze_for_s",
            "must be a number or null",
        ),
        (
            {"action": "note", "actor_id": "m", "reason": "x" * 1001},
            "reason",
            "is longer than 1000 characters",
        ),
        ({"action": "note", "actor_id": "m", "reason": "\ud800"}, "reason", "contains an unpaired surrogate"),
        ({"action": "claim\ud800", "actor_id": "m"}, "action", "contains an unpaired surrogate"),
    ],
)
def test_a_bad_action_is_refused_naming_its_field(body: object, field: str, problem: str) -> None:
    with pytest.raises(RequestError) as raised:
        parse_action(body)
    assert raised.value.field == field
    assert raised.value.problem.startswith(problem), raised.value.problem


def test_an_action_reads_as_the_case_service_wants_it() -> None:
    action = parse_action({"action": "snooze", "actor_id": "m", "snooze_for_s": 3600, "reason": "  "})
    assert action.case_action is CoreAction.SNOOZE and action.snooze_for is not None
    assert action.snooze_for.total_seconds() == 3600 and action.reason is None
    # The API offers every action but the child-safety one.
    assert set(typing.get_args(ApiAction)) == {str(a) for a in CoreAction} - {"release_hold"}


def test_query_ids_are_checked_like_body_ids() -> None:
    assert parse_query_id({"space_id": "tenant-1"}, "space_id") == "tenant-1"
    for value, problem in [("", "must not be empty"), ("t\U000e0041", "must have"), ("p" * 65, "is longer")]:
        with pytest.raises(RequestError) as raised:
            parse_query_id({"platform": value}, "platform")
        assert raised.value.field == "platform" and raised.value.problem.startswith(problem)


def test_the_alert_struct_describes_alert_to_dict_exactly() -> None:
    """alert_to_dict writes webhooks and the console too: its Struct must hold every key, none dropped."""
    view = a_delivery().case
    written = json.loads(json.dumps(alert_to_dict(view.alert, signal_labels={"secrecy": "secret"})))
    assert msgspec.to_builtins(Alert.of(view.alert, signal_labels={"secrecy": "secret"})) == written
    webhook = written | {"updated": True, "case": {"state": "claimed", "claimed_by": "mod-7"}}
    assert msgspec.to_builtins(msgspec.convert(webhook, WebhookPayload)) == webhook
    case = msgspec.to_builtins(Case.of(view, signal_labels={}))
    assert case["alert"]["evidence"][0]["timestamp"] == "2026-03-01T18:00:00+00:00"


def test_the_batch_names_its_messages_and_every_component_is_generated() -> None:
    assert SCHEMAS["MessageBatch"]["properties"]["messages"]["items"] == {
        "$ref": "#/components/schemas/ChatMessage"
    }
    assert SCHEMAS["ChatMessage"]["additionalProperties"] is False
    assert SCHEMAS["CaseAction"]["required"] == ["action", "actor_id"]
    # Every component has the title msgspec gives the Struct or enum it came from.
    assert all(schema["title"] == name for name, schema in SCHEMAS.items())
