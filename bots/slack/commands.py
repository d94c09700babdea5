"""The ``/vigil`` slash command: parsing and answering, always privately (ephemeral) to whoever asked.

Subcommands::

    /vigil setup [#alert-channel] [@moderators] [@child-safety]   workspace admins; no arguments: show setup
    /vigil setup child-safety @group                             one part by name (alerts, moderators too)
    /vigil setup moderators #private-channel                      free plans (no user groups): its members
    /vigil threshold [0.xx | default]                            workspace admins
    /vigil ignore #channel... | /vigil unignore #channel...        workspace admins; no arguments: list
    /vigil status                                                admins and moderators
    /vigil pair @a @b                                            moderators
    /vigil case N [note TEXT | transcript | release-hold]        moderators (transcript: child-safety group)
    /vigil cases [@user]                                         moderators

The pair's risk chart (a PNG) and a case's transcript (a text file) cannot be ephemeral: they go into the
requester's DM with Vigil (``bots.slack.private_files``), never into the channel the command was typed in,
and Vigil deletes them there after ``shared_file_hours`` (``bots.slack.shared_files``).

Channel, user and user-group arguments arrive escaped (the manifest sets ``should_escape``):
``<#C123|name>``, ``<@U123|name>``, ``<!subteam^S123|@group>``; bare ids are accepted too.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from slack_sdk.web.async_client import AsyncWebClient

from vigil.bots.core.cases import Actor, CaseAction, Cases, Role, TranscriptResult
from vigil.bots.core.charts import risk_chart_png
from vigil.bots.core.clock import Clock, utc_now
from vigil.bots.core.models import SpaceSettings
from vigil.bots.core.moderation import (
    THRESHOLD_MAX,
    THRESHOLD_MIN,
    Denied,
    ModeratorService,
    PairHistory,
    SpaceStatus,
)
from vigil.bots.core.policy import PolicyLookup
from vigil.bots.core.ports import ModeratorStore
from vigil.bots.core.transcript_text import transcript_text
from vigil.bots.slack.access import Access, RoleResolver
from vigil.bots.slack.blocks import (
    Block,
    case_detail_blocks,
    case_list_text,
    mrkdwn_escape,
    transcript_blocks,
    transcript_place,
    transcript_sent_text,
)
from vigil.bots.slack.private_files import PrivateFile
from vigil.bots.slack.shared_files import SharedFiles
from vigil.bots.slack.translate import PLATFORM
from vigil.bots.slack.web import WEB_API_ERRORS, DeliveryHealth, classify_failure

__all__ = [
    "COMMAND",
    "PAIR_CHART_FILE",
    "Reply",
    "VigilCommands",
    "parse_channel",
    "parse_user",
    "parse_usergroup",
    "transcript_reply",
]

logger = logging.getLogger(__name__)

COMMAND = "/vigil"
# The same name as on Discord.
PAIR_CHART_FILE = "vigil-pair-risk.png"

_CHANNEL = re.compile(r"^<#([CGD][A-Z0-9]+)(?:\|[^>]*)?>$|^([CG][A-Z0-9]{5,})$")
_USER = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$|^([UW][A-Z0-9]{5,})$")
_USERGROUP = re.compile(r"^<!subteam\^([A-Z0-9]+)(?:\|[^>]*)?>$|^(S[A-Z0-9]{5,})$")
_SETUP_KEYWORDS: Mapping[str, Literal["alerts", "moderators", "child_safety"]] = {
    "alerts": "alerts",
    "alert": "alerts",
    "channel": "alerts",
    "moderators": "moderators",
    "mods": "moderators",
    "child-safety": "child_safety",
    "child_safety": "child_safety",
    "childsafety": "child_safety",
    "safety": "child_safety",
}
_FORBIDDEN_MOD = (
    "Only members of the moderator user group can do that. A workspace admin chooses the group with "
    "`/vigil setup`."
)
# How Slack says each refusal of the moderator service.
_DENIED: Mapping[Denied, str] = MappingProxyType(
    {
        Denied.ADMINS_ONLY: "Only workspace admins and owners can change Vigil's settings.",
        Denied.ROLES_ONLY: _FORBIDDEN_MOD,
        Denied.MODERATORS_ONLY: _FORBIDDEN_MOD,
        Denied.THRESHOLD_OUT_OF_RANGE: (
            f"The threshold is a number between {THRESHOLD_MIN} and {THRESHOLD_MAX}, like `0.8` "
            "(or `default`)."
        ),
        Denied.SAME_PERSON: "Usage: `/vigil pair @someone @someone-else`.",
    }
)

HELP = """*Vigil* flags conversations that look like grooming and explains why; people decide.
*Admins* · `/vigil setup #alert-channel @moderators @child-safety` · `/vigil threshold 0.8` \
· `/vigil ignore #channel` · `/vigil unignore #channel`
*Moderators* · `/vigil status` · `/vigil test` · `/vigil cases [@user]` · `/vigil case 12` \
· `/vigil case 12 note text` · `/vigil pair @a @b`
*Child-safety group* · `/vigil case 12 transcript` · `/vigil case 12 release-hold`
Members can report a conversation with the message shortcut *Report conversation to moderators*."""


def _first_group(pattern: re.Pattern[str], token: str) -> str | None:
    match = pattern.match(token)
    if match is None:
        return None
    return match.group(1) or match.group(2)


def parse_channel(token: str) -> str | None:
    return _first_group(_CHANNEL, token)


def parse_user(token: str) -> str | None:
    return _first_group(_USER, token)


def parse_usergroup(token: str) -> str | None:
    return _first_group(_USERGROUP, token)


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """An ephemeral answer: mrkdwn ``text`` (also the fallback) and optional blocks."""

    text: str
    blocks: tuple[Block, ...] = ()


async def post_test_alert(client: AsyncWebClient, *, channel_id: str, moderator_group: str | None) -> None:
    """A test alert where real ones go, pinging the moderator group as they do; no case, no buttons. Used by
    `/vigil test` and `vigil init`. Raises what the Web API raises (``WEB_API_ERRORS``)."""
    ping = f"<!subteam^{moderator_group}> " if moderator_group and moderator_group.startswith("S") else ""
    await client.chat_postMessage(
        channel=channel_id,
        text=f"{ping}Vigil test alert: alerts about likely grooming conversations will appear here, with "
        "buttons to claim, dismiss, confirm or escalate them. This one is only a test: nothing to do.",
        unfurl_links=False,
        unfurl_media=False,
    )


async def transcript_reply(
    client: AsyncWebClient,
    *,
    files: SharedFiles,
    team_id: str,
    enterprise_id: str | None,
    user_id: str,
    case_number: int,
    transcript: TranscriptResult,
) -> Reply:
    """A case's whole transcript for a child-safety member (``transcript`` already allowed by ``Cases``): one
    text file in their DM with Vigil (deleted there after ``shared_file_hours``), and a short ephemeral
    answer saying where it went. If the file cannot be sent, the messages come in the ephemeral answer
    instead, with the reason."""
    if not transcript.messages:
        return Reply(text=f"Case #{case_number} has no messages kept: there is no transcript to send.")
    whole = transcript_text(transcript, case_number=case_number, where=transcript_place)
    sent = await files.send(
        client,
        team_id=team_id,
        enterprise_id=enterprise_id,
        user_id=user_id,
        kind="transcript",
        file=PrivateFile(
            filename=whole.filename,
            data=whole.text.encode("utf-8"),
            title=f"Vigil case #{case_number} transcript",
            comment=(
                f"Transcript of case #{case_number} ({whole.message_count} messages). For the child-safety "
                f"group only: do not copy it elsewhere. {files.expiry_note}; delete it sooner if you no "
                "longer need it."
            ),
        ),
    )
    if sent.ok:
        return Reply(
            text=transcript_sent_text(
                case_number=case_number, transcript=transcript, expiry_note=files.expiry_note
            )
        )
    reason = mrkdwn_escape(sent.problem or "unknown")
    note = f":warning: The transcript file could not be sent to your direct messages: {reason}."
    return Reply(
        text=f"Transcript of case #{case_number} (the file could not be sent: {reason})",
        blocks=tuple(transcript_blocks(case_number=case_number, transcript=transcript, note=note)),
    )


class VigilCommands:
    """Answers ``/vigil``. Settings live in the store's ``SpaceSettings``; cases go through ``Cases``."""

    def __init__(
        self,
        *,
        store: ModeratorStore,
        cases: Cases,
        roles: RoleResolver,
        health: DeliveryHealth,
        default_threshold: float,
        default_shadow_mode: bool,
        model_name: str,
        signal_labels: Mapping[str, str],
        connection: str,
        policy_for: PolicyLookup,
        files: SharedFiles,
        show_pending: bool = True,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._cases = cases
        self._roles = roles
        self._health = health
        self._default_threshold = default_threshold
        self._default_shadow_mode = default_shadow_mode
        self._model_name = model_name
        self._signal_labels = dict(signal_labels)
        self._connection = connection
        self._clock = clock
        self._files = files
        self._moderation = ModeratorService(
            platform=PLATFORM,
            store=store,
            default_threshold=default_threshold,
            default_shadow_mode=default_shadow_mode,
            policy_for=policy_for,
            # A new moderator group takes effect at once, not when the role cache expires.
            on_settings_changed=lambda _: roles.forget(),
            clock=clock,
        )
        # One outbox serves all workspaces: with OAuth distribution its size is no tenant's business.
        self._show_pending = show_pending

    async def handle(
        self,
        *,
        client: AsyncWebClient,
        team_id: str,
        user_id: str,
        text: str,
        enterprise_id: str | None = None,
    ) -> Reply:
        words = text.strip().split()
        name = words[0].lower() if words else "help"
        args = words[1:]
        settings = await self._store.get_space_settings(platform=PLATFORM, space_id=team_id)
        access = await self._roles.access(client, team_id=team_id, user_id=user_id, settings=settings)
        logger.info("/vigil %s in workspace %s", name if name.isalnum() else "?", team_id)
        actor = access.actor
        if name in ("setup", "threshold", "ignore", "unignore"):
            # The service decides; refusing before parsing keeps what a non-admin typed out of the answer.
            if Role.ADMIN not in actor.roles:
                return self._refused(team_id, access, _DENIED[Denied.ADMINS_ONLY])
            current = settings or SpaceSettings(platform=PLATFORM, space_id=team_id)
            if name == "setup":
                return await self._setup(client, actor, current, args)
            if name == "threshold":
                return await self._threshold(actor, current, args)
            return await self._ignore(actor, current, args, ignore=name == "ignore")
        if name == "status":
            status = await self._moderation.status(actor)
            if status.value is None:
                return self._refused(team_id, access, _DENIED[status.denied or Denied.ROLES_ONLY])
            return self._status(team_id, status.value)
        if name == "test":
            if not self._moderation.may_see_status(actor):
                return self._refused(team_id, access, _DENIED[Denied.ROLES_ONLY])
            return await self._test_alert(client, settings)
        if name == "pair":
            return await self._pair(client, team_id, enterprise_id, access, args)
        if name == "case":
            return await self._case(client, enterprise_id, access, args, raw=text)
        if name == "cases":
            return await self._case_list(access, args)
        return Reply(text=HELP)

    def _refused(self, team_id: str, access: Access, message: str) -> Reply:
        # If Slack itself failed (a revoked token), say so: it is the one thing anyone can act on.
        if access.failure is not None and access.failure.permanent:
            return Reply(text=f"Vigil cannot check your permissions: {access.failure.description}.")
        problem = self._health.problem(team_id)
        if problem is not None and problem.is_token_problem:
            return Reply(text=f"Vigil cannot work in this workspace: {problem.description}.")
        return Reply(text=message)

    # ------------------------------------------------------------------ admin commands

    async def _setup(
        self, client: AsyncWebClient, actor: Actor, current: SpaceSettings, args: Sequence[str]
    ) -> Reply:
        if not args:
            return Reply(text=self._describe_setup(current))
        target: Literal["alerts", "moderators", "child_safety"] | None = None
        groups_seen = 0
        updated = current
        unknown: list[str] = []
        for token in args:
            keyword = _SETUP_KEYWORDS.get(token.lower())
            if keyword is not None:
                target = keyword
                continue
            channel = parse_channel(token)
            group = parse_usergroup(token)
            if channel is not None and target in (None, "alerts"):
                updated = dataclasses.replace(updated, alert_channel_id=channel)
            elif group is not None or (channel is not None and target is not None):
                # A channel named after "moderators" / "child-safety" stands for its members (free plans
                # have no user groups).
                chosen = group or channel
                if target in ("moderators", "child_safety"):
                    slot = target
                else:
                    slot = "moderators" if groups_seen == 0 else "child_safety"
                    groups_seen += 1
                if slot == "moderators":
                    updated = dataclasses.replace(updated, moderator_role_id=chosen)
                else:
                    updated = dataclasses.replace(updated, child_safety_role_id=chosen)
            else:
                unknown.append(token)
            target = None
        if unknown:
            return Reply(
                text="I did not understand "
                + ", ".join(f"`{mrkdwn_escape(t)}`" for t in unknown[:5])
                + ". Use `/vigil setup #alert-channel @moderators @child-safety` (pick the channel and user "
                "groups from Slack's suggestions so they become links)."
            )
        change = await self._moderation.setup(
            actor,
            alert_channel_id=updated.alert_channel_id,
            moderator_role_id=updated.moderator_role_id,
            child_safety_role_id=updated.child_safety_role_id,
        )
        if change.denied is not None:
            return Reply(text=_DENIED[change.denied])
        notes: list[str] = []
        if updated.alert_channel_id and updated.alert_channel_id != current.alert_channel_id:
            notes.extend(await self._check_alert_channel(client, updated.alert_channel_id))
        return Reply(text="\n".join(["Saved.", self._describe_setup(updated), *notes]))

    async def _check_alert_channel(self, client: AsyncWebClient, channel_id: str) -> list[str]:
        try:
            response = await client.conversations_info(channel=channel_id)
        except WEB_API_ERRORS as error:
            failure = classify_failure(error)
            if failure.code == "channel_not_found":
                return [
                    ":warning: Vigil cannot see that channel. If it is private, invite Vigil: "
                    "`/invite @Vigil` in the channel."
                ]
            return [f":warning: Could not check the channel ({failure.code})."]
        channel = response.get("channel")
        if not isinstance(channel, dict):
            return []
        notes: list[str] = []
        if not channel.get("is_private"):
            notes.append(
                ":warning: This channel is *public*. Alerts name people and quote their messages: "
                "use a private channel that only moderators can join."
            )
        if not channel.get("is_member"):
            notes.append(":warning: Vigil is not in that channel yet: `/invite @Vigil` there.")
        return notes

    def _describe_setup(self, settings: SpaceSettings) -> str:
        def channel(value: str | None) -> str:
            return f"<#{value}>" if value else "_not set_"

        def group(value: str | None) -> str:
            if not value:
                return "_not set_"
            return f"members of <#{value}>" if value.startswith(("C", "G")) else f"<!subteam^{value}>"

        return (
            f"• Alert channel: {channel(settings.alert_channel_id)}\n"
            f"• Moderators: {group(settings.moderator_role_id)}\n"
            f"• Child-safety group (transcripts, evidence): {group(settings.child_safety_role_id)}"
        )

    async def _threshold(self, actor: Actor, current: SpaceSettings, args: Sequence[str]) -> Reply:
        if not args:
            shown = current.threshold if current.threshold is not None else self._default_threshold
            origin = "set for this workspace" if current.threshold is not None else "the default"
            return Reply(text=f"The alert threshold is {shown:.2f} ({origin}).")
        value: float | None
        if args[0].lower() in ("default", "reset"):
            value = None
        else:
            try:
                value = float(args[0])
            except ValueError:
                return Reply(text=_DENIED[Denied.THRESHOLD_OUT_OF_RANGE])
        change = await self._moderation.set_threshold(actor, value=value)
        if change.denied is not None:
            return Reply(text=_DENIED[change.denied])
        if value is None:
            return Reply(text=f"The alert threshold is back to the default ({self._default_threshold:.2f}).")
        hint = (
            " Lower values mean more alerts and more false alarms." if value < self._default_threshold else ""
        )
        return Reply(text=f"The alert threshold is now {value:.2f}.{hint}")

    async def _ignore(
        self, actor: Actor, current: SpaceSettings, args: Sequence[str], *, ignore: bool
    ) -> Reply:
        if not args:
            listed = ", ".join(f"<#{c}>" for c in sorted(current.ignored_channel_ids)) or "none"
            return Reply(text=f"Ignored channels: {listed}.")
        channels = [parse_channel(token) for token in args]
        if any(c is None for c in channels):
            return Reply(
                text="Name channels as links: `/vigil ignore #channel` (pick it from the suggestions)."
            )
        chosen = sorted(c for c in channels if c is not None)
        change = await self._moderation.set_ignored(actor, channel_ids=chosen, ignored=ignore)
        if change.denied is not None:
            return Reply(text=_DENIED[change.denied])
        listed = ", ".join(f"<#{c}>" for c in chosen)
        if ignore:
            return Reply(text=f"Vigil now ignores {listed}: messages there are not read or kept.")
        return Reply(text=f"Vigil watches {listed} again.")

    # ------------------------------------------------------------------ moderator commands

    async def _test_alert(self, client: AsyncWebClient, settings: SpaceSettings | None) -> Reply:
        """A test alert where real ones go, pinging the moderator group as they do; no case, no buttons."""
        channel_id = settings.alert_channel_id if settings is not None else None
        if settings is None or channel_id is None:
            return Reply(text="No alert channel yet: run `/vigil setup #alert-channel @moderators` first.")
        try:
            await post_test_alert(client, channel_id=channel_id, moderator_group=settings.moderator_role_id)
        except WEB_API_ERRORS as error:
            return Reply(text=f"The test alert could not be posted: {classify_failure(error).description}.")
        return Reply(
            text=f"Test alert posted in <#{channel_id}>. Real alerts will arrive there the same way."
        )

    def _status(self, team_id: str, status: SpaceStatus) -> Reply:
        current = status.settings
        problem = self._health.problem(team_id)
        lines = [
            f"*Vigil status* · {mrkdwn_escape(self._model_name)} · connected by {self._connection}",
            self._describe_setup(current),
            f"• Threshold: {status.threshold:.2f}"
            + (" · *shadow mode* (alerts recorded, not posted)" if status.shadow_mode else ""),
            "• Ignored channels: "
            + (", ".join(f"<#{c}>" for c in sorted(current.ignored_channel_ids)) or "none"),
            *(
                [f"• Alerts waiting to be delivered: {status.pending_deliveries}"]
                if self._show_pending
                else []
            ),
            (
                f"• :warning: *Alerts are not being delivered:* {mrkdwn_escape(problem.description)}"
                if problem is not None
                else "• Alert delivery: OK"
            ),
        ]
        return Reply(text="\n".join(lines))

    async def _pair(
        self,
        client: AsyncWebClient,
        team_id: str,
        enterprise_id: str | None,
        access: Access,
        args: Sequence[str],
    ) -> Reply:
        users = [parse_user(token) for token in args]
        if len(users) != 2 or users[0] is None or users[1] is None:
            if not access.actor.roles & {Role.MODERATOR, Role.CHILD_SAFETY}:
                return self._refused(team_id, access, _DENIED[Denied.MODERATORS_ONLY])
            return Reply(text="Usage: `/vigil pair @someone @someone-else`.")
        answer = await self._moderation.pair_history(access.actor, first=users[0], second=users[1])
        history = answer.value
        if history is None:
            if answer.denied is Denied.SAME_PERSON:
                return Reply(text="Usage: `/vigil pair @someone @someone-else`.")
            return self._refused(team_id, access, _DENIED[answer.denied or Denied.MODERATORS_ONLY])
        key, state = history.key, history.state
        if state is None:
            return Reply(text=f"Vigil has not seen <@{users[0]}> and <@{users[1]}> talking to each other.")
        lines = [
            f"*<@{key.user_a}> and <@{key.user_b}>*",
            f"• Risk {state.risk:.2f}"
            + (f", mostly from <@{state.suspect_id}>'s messages" if state.suspect_id else ""),
            f"• {state.message_count} messages seen, first {state.first_seen:%Y-%m-%d %H:%M}, "
            f"last {state.last_seen:%Y-%m-%d %H:%M} UTC",
            "• Where: "
            + ", ".join(
                f"<#{c}>" if not c.startswith("D") else "a direct message" for c in state.channel_ids
            ),
        ]
        words = [mrkdwn_escape(self._signal_labels.get(s, s.replace("_", " "))) for s in history.signals]
        lines.append("• Signals so far: " + ("; ".join(words) if words else "none"))
        if history.open_case is not None:
            lines.append(f"• Open case: #{history.open_case}")
        elif history.outlook is not None:
            lines.append(f"• No open case: {history.outlook}")
        if len(history.points) >= 2:
            # As on Discord: a trajectory needs two points; one is the risk line above.
            lines.append(
                await self._pair_chart(
                    client,
                    team_id=team_id,
                    enterprise_id=enterprise_id,
                    user_id=access.actor.user_id,
                    history=history,
                )
            )
        return Reply(text="\n".join(lines))

    async def _pair_chart(
        self,
        client: AsyncWebClient,
        *,
        team_id: str,
        enterprise_id: str | None,
        user_id: str,
        history: PairHistory,
    ) -> str:
        """The risk trajectory as a PNG in the moderator's DM with Vigil (deleted there after
        ``shared_file_hours``); the line saying where it went or why it did not. The PNG has lines only, no
        words (``risk_chart_png``): no names, as on Discord."""
        points, key = history.points, history.key
        what = (
            f"the pair's risk over its last {len(points)} recorded steps, oldest left; dashed line: the "
            f"alert threshold ({history.threshold:.2f})"
        )
        expiry = self._files.expiry_note
        sent = await self._files.send(
            client,
            team_id=team_id,
            enterprise_id=enterprise_id,
            user_id=user_id,
            kind="chart",
            file=PrivateFile(
                filename=PAIR_CHART_FILE,
                data=risk_chart_png(points, threshold=history.threshold),
                title=f"Vigil pair risk {key.user_a} {key.user_b}",
                alt_text=f"Line chart of {what}; latest risk {points[-1].risk:.2f}.",
                comment=(
                    f"Risk chart for the pair `{key.user_a}` and `{key.user_b}` (`/vigil pair`): {what}. "
                    f"{expiry}."
                ),
            ),
        )
        if sent.ok:
            return f"• Chart sent to your direct messages with Vigil: {what}. {expiry}."
        return f"• :warning: The chart could not be sent: {mrkdwn_escape(sent.problem or 'unknown')}."

    async def send_transcript(
        self, client: AsyncWebClient, *, actor: Actor, case_number: int, enterprise_id: str | None
    ) -> Reply:
        """A case's whole transcript for the child-safety group (``/vigil case N transcript`` and the
        alert's Transcript button): a file in the asker's DM, or why not."""
        transcript = await self._cases.transcript(actor=actor, case_number=case_number)
        if not transcript.ok:
            return Reply(text=transcript.message or "Only the child-safety group can see transcripts.")
        return await transcript_reply(
            client,
            files=self._files,
            team_id=actor.space_id,
            enterprise_id=enterprise_id,
            user_id=actor.user_id,
            case_number=case_number,
            transcript=transcript,
        )

    async def _case(
        self,
        client: AsyncWebClient,
        enterprise_id: str | None,
        access: Access,
        args: Sequence[str],
        *,
        raw: str,
    ) -> Reply:
        if not args or not args[0].lstrip("#").isdigit():
            return Reply(
                text="Usage: `/vigil case 12`, `/vigil case 12 note TEXT`, `/vigil case 12 transcript`."
            )
        number = int(args[0].lstrip("#"))
        verb = args[1].lower() if len(args) > 1 else ""
        actor = access.actor
        if verb == "transcript":
            return await self.send_transcript(
                client, actor=actor, case_number=number, enterprise_id=enterprise_id
            )
        if verb == "note":
            note = raw.strip().split(None, 3)[3] if len(raw.strip().split(None, 3)) > 3 else ""
            if not note.strip():
                return Reply(text="Usage: `/vigil case 12 note what you found`.")
            result = await self._cases.act(
                actor=actor, case_number=number, action=CaseAction.NOTE, reason=note
            )
            return Reply(text=result.message or ("Note added." if result.ok else "Could not add the note."))
        if verb in ("release-hold", "release_hold"):
            result = await self._cases.act(actor=actor, case_number=number, action=CaseAction.RELEASE_HOLD)
            return Reply(text=result.message or ("Hold released." if result.ok else "Could not release it."))
        if verb:
            return Reply(
                text=f"Unknown case command `{mrkdwn_escape(verb)}`: use note, transcript or release-hold."
            )
        result = await self._cases.get(actor=actor, case_number=number)
        if not result.ok or result.case is None:
            return Reply(text=result.message or f"Case #{number} was not found.")
        blocks = case_detail_blocks(result.case, signal_labels=self._signal_labels)
        return Reply(text=f"Case #{number}", blocks=tuple(blocks))

    async def _case_list(self, access: Access, args: Sequence[str]) -> Reply:
        about = parse_user(args[0]) if args else None
        if args and about is None:
            return Reply(text="Usage: `/vigil cases` or `/vigil cases @someone`.")
        result, summaries = await self._cases.list_cases(actor=access.actor, user_id=about, limit=20)
        if not result.ok:
            return Reply(text=result.message or _FORBIDDEN_MOD)
        return Reply(text=case_list_text(summaries, about=about))
