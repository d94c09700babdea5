"""The pure parts: error mapping, excerpts, custom ids, transcript pages, links."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import aiohttp
import discord
import pytest

from vigil.bots.core.cases import TranscriptResult
from vigil.bots.core.models import WindowMessage
from vigil.bots.discord.render import (
    CUSTOM_ID_TEMPLATE,
    MAX_MESSAGE_CHARS,
    ButtonAction,
    custom_id,
    spoiler_excerpt,
    transcript,
    trend_text,
)
from vigil.bots.discord.sink import delivery_failure
from vigil.bots.discord.translate import base_message_id, edit_message_id, jump_url

AT = datetime(2026, 3, 1, 18, 0, tzinfo=UTC)


def _http_error(
    cls: type[discord.HTTPException], status: int, code: int = 0, *, headers: dict[str, str] | None = None
) -> discord.HTTPException:
    response = SimpleNamespace(status=status, reason="reason", headers=headers or {})
    return cls(response, {"message": "nope", "code": code})  # type: ignore[arg-type]


def test_platform_errors_map_to_delivery_results() -> None:
    limited = delivery_failure(discord.RateLimited(45.0), channel_id="1")
    assert not limited.ok and limited.retry_after == 45.0 and not limited.permanent

    forbidden = delivery_failure(_http_error(discord.Forbidden, 403, 50013), channel_id="1")
    assert forbidden.permanent and "View Channel, Send Messages, Embed Links, Read Message History" in (
        forbidden.error or ""
    )
    missing = delivery_failure(_http_error(discord.NotFound, 404, 10003), channel_id="1")
    assert missing.permanent and "/vigil setup" in (missing.error or "")

    server = delivery_failure(_http_error(discord.DiscordServerError, 503), channel_id="1")
    assert not server.permanent and server.retry_after is None and "503" in (server.error or "")

    cloudflare = delivery_failure(
        _http_error(discord.HTTPException, 429, headers={"Retry-After": "12"}), channel_id="1"
    )
    assert not cloudflare.permanent and cloudflare.retry_after == 12.0

    bad_request = delivery_failure(_http_error(discord.HTTPException, 400, 50035), channel_id="1")
    assert bad_request.permanent

    network = delivery_failure(aiohttp.ClientConnectionError(), channel_id="1")
    assert not network.permanent and "network" in (network.error or "")
    assert not delivery_failure(TimeoutError(), channel_id="1").permanent


@pytest.mark.parametrize(
    ("text", "inside"),
    [
        ("keep it || between us", r"keep it \|\| between us"),
        ("see https://evil.example/x_y", r"see https://evil.example/x\_y"),
        ("**bold** `code`", r"\*\*bold\*\* \`code\`"),
    ],
)
def test_excerpts_stay_inside_their_spoiler(text: str, inside: str) -> None:
    assert spoiler_excerpt(text) == f"||{inside}||"


def test_excerpts_are_short_and_single_line() -> None:
    out = spoiler_excerpt("word\n" * 200)
    assert "\n" not in out and len(out) < 140


def test_custom_ids_carry_action_and_case_and_match_the_template() -> None:
    for action in ButtonAction:
        value = custom_id(action, 123)
        match = re.fullmatch(CUSTOM_ID_TEMPLATE, value)
        assert match is not None and match["action"] == action.value and match["case"] == "123"
        assert len(value) <= 100
    assert re.fullmatch(CUSTOM_ID_TEMPLATE, "vigil:dismiss-reason:1:abc") is None
    assert re.fullmatch(CUSTOM_ID_TEMPLATE, "vigil:ban:1") is None


def test_a_whole_transcript_is_one_file_however_long_the_case() -> None:
    messages = tuple(
        WindowMessage(
            message_id=str(1000 + i),
            channel_id="55",
            thread_id=None,
            author_id="7",
            text="x" * 700 + "\nsecond line",
            timestamp=AT + timedelta(minutes=i),
            risk=0.5,
        )
        for i in range(60)
    )
    whole = transcript(TranscriptResult(messages=messages), case_number=4, space_id="99")
    assert len(whole.summary) <= MAX_MESSAGE_CHARS
    assert whole.summary.startswith("Transcript of case #4: 60 message(s), attached")
    assert whole.filename == "vigil-case-4-transcript.txt"
    # Every message, whole (no page limit, no excerpt), with its link.
    assert whole.text.count("https://discord.com/channels/99/55/") == 60
    assert whole.text.count("x" * 700) == 60 and whole.text.count("    second line") == 60


def test_links_and_edit_ids() -> None:
    edited = edit_message_id(123, AT)
    assert edited == f"123:edit:{int(AT.timestamp() * 1000)}" and base_message_id(edited) == "123"
    assert jump_url(space_id="9", channel_id="5", thread_id=None, message_id=edited) == (
        "https://discord.com/channels/9/5/123"
    )
    assert (
        jump_url(space_id="9", channel_id="5", thread_id="6", message_id="1")
        == "https://discord.com/channels/9/6/1"
    )
    assert jump_url(space_id="dm", channel_id="5", thread_id=None, message_id="1").startswith(
        "https://discord.com/channels/@me/5/"
    )


def test_trend_text() -> None:
    assert trend_text(0.9, [0.5, 0.7, 0.9]) == "0.50 → 0.70 → 0.90 (↑ rising)"
    assert trend_text(0.8, []) == "0.80"
    assert "steady" in trend_text(0.8, [0.8, 0.8])
    assert "falling" in trend_text(0.6, [0.9, 0.8])


def test_transcripts_score_only_the_likely_groomers_lines_and_say_why() -> None:
    def line(author: str, text: str, minute: int) -> WindowMessage:
        return WindowMessage(
            message_id=str(2000 + minute),
            channel_id="55",
            thread_id=None,
            author_id=author,
            text=text,
            timestamp=AT + timedelta(minutes=minute),
            risk=0.81 if author == "7" else 0.72,
        )

    messages = (line("7", "dont tell ur mum ok", 0), line("8", "ok", 1))
    whole = transcript(TranscriptResult(messages=messages, suspect_id="7"), case_number=4, space_id="99")
    groomer, _, child, _ = whole.text.splitlines()[-4:]
    assert "user 7 [score 0.81]" in groomer
    assert "user 8 ·" in child and "0.72" not in child and "score" not in child
    assert (
        "likely groomer's messages only" in whole.text and "likely groomer's messages only" in whole.summary
    )
