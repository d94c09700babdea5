"""The pair chart and the case transcript as files, end to end: real bolt and slack_sdk's ``files_upload_v2``
against the fake Web API. Files go only into the DM between Vigil and the person who asked, never into the
channel where the command was typed; when the upload fails, the ephemeral answer still comes, saying why."""

from __future__ import annotations

import json
import re

from tests.slack.fake_slack import Failure, SharedFile
from tests.slack.harness import ADULT, GENERAL, KID, MEMBER, MOD, SAFETY, SlackHarness
from vigil.bots.core.cases import RISK_LEGEND
from vigil.bots.slack.blocks import ACTION_TRANSCRIPT

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
UPLOAD_METHODS = (
    "conversations.open",
    "files.getUploadURLExternal",
    "upload",
    "files.completeUploadExternal",
)


def upload_calls(slack: SlackHarness) -> list[str]:
    return [c.method for c in slack.fake.calls if c.method in UPLOAD_METHODS]


def png_chunks(data: bytes) -> list[bytes]:
    """The chunk types of a PNG, in order."""
    assert data.startswith(PNG_SIGNATURE)
    kinds, at = [], len(PNG_SIGNATURE)
    while at < len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        kinds.append(data[at + 4 : at + 8])
        at += 12 + length
    return kinds


def only_file(slack: SlackHarness) -> SharedFile:
    assert len(slack.fake.shared_files) == 1, slack.fake.shared_files
    return slack.fake.shared_files[0]


async def case_one(slack: SlackHarness) -> None:
    await slack.configure()
    await slack.grooming_conversation()
    await slack.alert_posted()


# ------------------------------------------------------------------------------ /vigil pair


async def test_the_pair_chart_goes_to_the_moderators_dm_as_a_png(slack: SlackHarness) -> None:
    await case_one(slack)
    posted_before = len(slack.fake.calls_to("chat.postMessage"))

    answer = await slack.command(f"pair <@{ADULT}> <@{KID}>", user=MOD, channel=GENERAL)

    assert answer["response_type"] == "ephemeral"
    assert "Open case: #1" in answer["text"]
    assert "• Chart sent to your direct messages with Vigil: the pair's risk over its last" in answer["text"]
    shared = only_file(slack)
    # The DM Slack opened between Vigil and the moderator, not the channel the command was typed in.
    opened = slack.fake.calls_to("conversations.open")
    assert [c.args["users"] for c in opened] == [MOD]
    assert shared.channel_id == slack.fake.dms[MOD] and shared.channel_id.startswith("D")
    assert shared.channel_id != GENERAL
    assert upload_calls(slack) == list(UPLOAD_METHODS)
    # The bytes: a PNG with pixels only (no text chunks, so no names), as on Discord.
    assert shared.filename == "vigil-pair-risk.png"
    assert png_chunks(shared.data) == [b"IHDR", b"IDAT", b"IEND"]
    # The DM's words carry ids, never mentions; the token never goes to the file server.
    assert shared.initial_comment is not None and "<@" not in shared.initial_comment
    assert ADULT in shared.initial_comment and KID in shared.initial_comment
    assert shared.alt_txt is not None and "alert threshold" in shared.alt_txt
    assert all(c.token is None for c in slack.fake.calls_to("upload"))
    assert len(slack.fake.calls_to("chat.postMessage")) == posted_before

    # Asking again reuses the same DM.
    await slack.command(f"pair <@{KID}> <@{ADULT}>", user=MOD)
    assert {f.channel_id for f in slack.fake.shared_files} == {slack.fake.dms[MOD]}


async def test_no_chart_and_no_upload_for_members_or_without_a_trajectory(slack: SlackHarness) -> None:
    await case_one(slack)
    refused = await slack.command(f"pair <@{ADULT}> <@{KID}>", user=MEMBER)
    assert "Only members of the moderator" in refused["text"]
    assert upload_calls(slack) == [] and slack.fake.uploads == {}

    # One message each: no trajectory to draw yet, so nothing is sent.
    await slack.say(user=MEMBER, text=f"<@{KID}> hello")
    answer = await slack.command(f"pair <@{MEMBER}> <@{KID}>", user=MOD)
    assert "Chart" not in answer["text"] and "chart" not in answer["text"]
    assert upload_calls(slack) == []


async def test_a_failed_chart_upload_still_answers_and_says_why(slack: SlackHarness) -> None:
    await case_one(slack)
    slack.fake.fail(
        "files.getUploadURLExternal",
        Failure(error="missing_scope", extra={"needed": "files:write", "provided": "chat:write,commands"}),
    )
    answer = await slack.command(f"pair <@{ADULT}> <@{KID}>", user=MOD)
    assert "Open case: #1" in answer["text"]
    assert (
        "The chart could not be sent: Vigil's Slack app lacks the `files:write` permission" in answer["text"]
    )
    assert "reinstall" in answer["text"]

    # A DM that cannot be opened (no im:write yet).
    slack.fake.fail("conversations.open", Failure(error="missing_scope", extra={"needed": "im:write"}))
    answer = await slack.command(f"pair <@{ADULT}> <@{KID}>", user=MOD)
    assert "lacks the `im:write` permission" in answer["text"]

    # The file server refusing the bytes.
    slack.fake.fail("upload", Failure(status=500, error="boom"))
    answer = await slack.command(f"pair <@{ADULT}> <@{KID}>", user=MOD)
    assert "The chart could not be sent: Slack's file server did not accept the upload" in answer["text"]

    # Slack down for the last step.
    slack.fake.fail("files.completeUploadExternal", Failure(status=503, error="service_unavailable"))
    answer = await slack.command(f"pair <@{ADULT}> <@{KID}>", user=MOD)
    assert "The chart could not be sent: Slack had a server error (HTTP 503)" in answer["text"]
    assert slack.fake.shared_files == []


# ------------------------------------------------------------------------------ /vigil case N transcript


def transcript_of(shared: SharedFile) -> str:
    return shared.data.decode("utf-8")


async def test_the_transcript_goes_to_the_child_safety_members_dm_as_one_text_file(
    slack: SlackHarness,
) -> None:
    await case_one(slack)

    answer = await slack.command("case 1 transcript", user=SAFETY, channel=GENERAL)

    assert answer["response_type"] == "ephemeral" and "blocks" not in answer
    assert (
        "*Transcript of case #1*: 12 messages, sent as a text file to your direct messages" in answer["text"]
    )
    assert f"<@{ADULT}> (`{ADULT}`), the likely groomer" in answer["text"] and f"`{KID}`" in answer["text"]
    assert RISK_LEGEND in answer["text"]
    shared = only_file(slack)
    assert shared.channel_id == slack.fake.dms[SAFETY] and shared.channel_id != GENERAL
    assert shared.filename == "vigil-case-1-transcript.txt"
    assert shared.initial_comment is not None and "<@" not in shared.initial_comment
    text = transcript_of(shared)
    assert text.startswith("Vigil · transcript of case #1 · 12 message(s) · times in UTC\n")
    assert RISK_LEGEND in text
    # Every message whole, its author by id, scores beside the likely groomer's lines only.
    headers = re.findall(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d · user (\w+)( \[score [0-9.]+\])? · channel (\w+)$", text, re.M
    )
    assert len(headers) == 12 and {channel for _, _, channel in headers} == {GENERAL}
    assert {author for author, score, _ in headers if score} == {ADULT}
    assert {author for author, score, _ in headers if not score} == {KID}
    assert f"    @{KID} groom groom\n" in text

    # The alert's Transcript button does the same.
    clicked = await slack.click(ACTION_TRANSCRIPT, case=1, user=SAFETY)
    assert clicked is not None and "sent as a text file" in clicked["text"]
    assert [f.channel_id for f in slack.fake.shared_files] == [slack.fake.dms[SAFETY]] * 2


async def test_moderators_outside_the_child_safety_group_get_no_transcript_file(slack: SlackHarness) -> None:
    await case_one(slack)
    refused = await slack.command("case 1 transcript", user=MOD)
    assert "child-safety" in refused["text"] and "blocks" not in refused
    clicked = await slack.click(ACTION_TRANSCRIPT, case=1, user=MEMBER)
    assert clicked is not None and "blocks" not in clicked
    assert upload_calls(slack) == [] and slack.fake.uploads == {}


async def test_a_failed_transcript_upload_shows_it_here_instead_and_says_why(slack: SlackHarness) -> None:
    await case_one(slack)
    slack.fake.fail(
        "files.completeUploadExternal", Failure(error="missing_scope", extra={"needed": "files:write"})
    )

    answer = await slack.command("case 1 transcript", user=SAFETY)

    assert "the file could not be sent" in answer["text"]
    shown: str = json.dumps(answer["blocks"], ensure_ascii=False)
    assert "The transcript file could not be sent to your direct messages" in shown
    assert "lacks the `files:write` permission" in shown
    # The messages themselves, in the ephemeral answer, with the legend.
    assert "secret groom" in shown and "likely groomer's messages only" in shown
    assert slack.fake.shared_files == []
