"""Moderator interactions: the ``/vigil`` slash commands, the alert buttons, the Dismiss form and the
"Report conversation to moderators" message command. Every reply is ephemeral.

Roles come from the server's settings (``/vigil setup``): the configured moderator role → ``MODERATOR``, the
child-safety role → ``CHILD_SAFETY``, the Manage Server permission → ``ADMIN``. Case rules and permissions are
checked by ``Cases``; this module only checks what ``Cases`` does not cover (server settings and pair
history). Every handler isolates its errors: the person gets a short apology, the log gets the traceback, and
nobody's message text.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from types import MappingProxyType
from typing import Any

import discord
from discord import app_commands

from vigil.bots.core.case_service import role_refusal
from vigil.bots.core.cases import Actor, CaseAction, Cases, Role
from vigil.bots.core.charts import risk_chart_png
from vigil.bots.core.clock import Clock
from vigil.bots.core.models import ChatMessage, SpaceSettings
from vigil.bots.core.moderation import THRESHOLD_MAX, THRESHOLD_MIN, Denied, ModeratorService
from vigil.bots.core.policy import PolicyLookup
from vigil.bots.core.ports import ModeratorStore, SpaceSettingsStore
from vigil.bots.discord.render import (
    ButtonAction,
    DismissModal,
    StatusReport,
    alert_embed,
    case_list_text,
    escalation_guidance,
    pair_history_text,
    status_text,
    transcript,
)
from vigil.bots.discord.sink import DiscordSink, missing_permissions
from vigil.bots.discord.translate import PLATFORM, is_ingestible, to_chat_message

__all__ = [
    "REPORT_COMMAND_NAME",
    "InteractionOptions",
    "Interactions",
    "SettingsCache",
    "build_report_menu",
    "build_vigil_group",
]

logger = logging.getLogger(__name__)

PAIR_CHART_FILE = "vigil-pair-risk.png"

# Discord caps context-menu names at 32 characters ("... to moderators" would be 33).
REPORT_COMMAND_NAME = "Report conversation to mods"
_SORRY = "Something went wrong on Vigil's side; the details are in its log. Please try again."
_NOT_IN_SERVER = "Vigil's commands work inside a server."
_BUTTON_ACTIONS: Mapping[ButtonAction, CaseAction] = MappingProxyType(
    {
        ButtonAction.CLAIM: CaseAction.CLAIM,
        ButtonAction.CONFIRM: CaseAction.CONFIRM,
        ButtonAction.ESCALATE: CaseAction.ESCALATE,
        ButtonAction.SNOOZE: CaseAction.SNOOZE,
    }
)
_DONE_WORDS: Mapping[CaseAction, str] = MappingProxyType(
    {
        CaseAction.CLAIM: "claimed; it is yours",
        CaseAction.CONFIRM: "marked as a confirmed concern",
        CaseAction.ESCALATE: "escalated",
        CaseAction.DISMISS: "dismissed",
    }
)
_POSTABLE_CHANNEL_TYPES = (discord.ChannelType.text, discord.ChannelType.news)


@dataclass(frozen=True, slots=True, kw_only=True)
class InteractionOptions:
    # Messages collected before the reported one (the report command reads them from channel history).
    report_history: int = 20
    # None: the case service's default snooze.
    snooze_for: timedelta | None = None
    cases_limit: int = 20
    pair_history_points: int = 12


# How Discord says each refusal ("{what}" is the action refused).
_DENIED: Mapping[Denied, str] = MappingProxyType(
    {
        Denied.ADMINS_ONLY: "{what} needs the Manage Server permission.",
        Denied.ROLES_ONLY: "That is for moderators and server managers.",
        Denied.MODERATORS_ONLY: "That is for moderators.",
        Denied.THRESHOLD_OUT_OF_RANGE: f"The threshold is between {THRESHOLD_MIN} and {THRESHOLD_MAX}.",
        Denied.SAME_PERSON: "Pick two different people.",
    }
)


class SettingsCache:
    """Per-server settings, read through to the store; our own writes refresh it, and entries expire so that
    changes made elsewhere (another process, the HTTP API) are picked up within ``ttl_s``."""

    def __init__(self, *, store: SpaceSettingsStore, ttl_s: float = 30.0) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._entries: dict[str, tuple[float, SpaceSettings | None]] = {}

    async def get(self, space_id: str) -> SpaceSettings | None:
        now = time.monotonic()
        cached = self._entries.get(space_id)
        if cached is not None and now - cached[0] < self._ttl_s:
            return cached[1]
        settings = await self._store.get_space_settings(platform=PLATFORM, space_id=space_id)
        self._entries[space_id] = (now, settings)
        return settings

    async def put(self, settings: SpaceSettings) -> None:
        await self._store.put_space_settings(settings)
        self._entries[settings.space_id] = (time.monotonic(), settings)

    # The core's SpaceSettingsStore port, so that the moderator service reads and writes through the cache.
    async def get_space_settings(self, *, platform: str, space_id: str) -> SpaceSettings | None:
        return await self.get(space_id)

    async def put_space_settings(self, settings: SpaceSettings) -> None:
        await self.put(settings)


def roles_of(interaction: discord.Interaction[Any], settings: SpaceSettings | None) -> frozenset[Role]:
    roles: set[Role] = set()
    user = interaction.user
    if isinstance(user, discord.Member) and settings is not None:
        if _has_role(user, settings.moderator_role_id):
            roles.add(Role.MODERATOR)
        if _has_role(user, settings.child_safety_role_id):
            roles.add(Role.CHILD_SAFETY)
    permissions = interaction.permissions
    if permissions.manage_guild or permissions.administrator:
        roles.add(Role.ADMIN)
    return frozenset(roles)


def _has_role(member: discord.Member, role_id: str | None) -> bool:
    return role_id is not None and role_id.isdigit() and member.get_role(int(role_id)) is not None


async def _reply(
    interaction: discord.Interaction[Any],
    text: str,
    *,
    embed: discord.Embed | None = None,
    file: discord.File | None = None,
) -> None:
    mentions = discord.AllowedMentions.none()
    extras: dict[str, Any] = {}
    if embed is not None:
        extras["embed"] = embed
    if file is not None:
        extras["file"] = file
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True, allowed_mentions=mentions, **extras)
    else:
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=mentions, **extras)


async def _defer(interaction: discord.Interaction[Any]) -> None:
    if not interaction.response.is_done():
        await interaction.response.defer(ephemeral=True, thinking=True)


class Interactions:
    """Everything moderators and members do through Discord interactions."""

    def __init__(
        self,
        *,
        store: ModeratorStore,
        cases: Cases,
        signal_labels: Mapping[str, str],
        settings: SettingsCache,
        sink: DiscordSink,
        model_name: str,
        default_threshold: float,
        default_shadow_mode: bool,
        is_connected: Callable[[], bool],
        latency_s: Callable[[], float | None],
        clock: Clock,
        options: InteractionOptions,
        policy_for: PolicyLookup,
        shards: str | None,
    ) -> None:
        self._store = store
        self._cases = cases
        self._signal_labels = dict(signal_labels)
        self._settings = settings
        self._sink = sink
        self._model_name = model_name
        self._default_threshold = default_threshold
        self._default_shadow_mode = default_shadow_mode
        self._is_connected = is_connected
        self._latency_s = latency_s
        # "shards 0-3 of 16" when this process runs only some shards: /vigil status says which answered.
        self._shards = shards
        self._clock = clock
        self._options = options
        self._moderation = ModeratorService(
            platform=PLATFORM,
            store=store,
            settings=settings,
            default_threshold=default_threshold,
            default_shadow_mode=default_shadow_mode,
            policy_for=policy_for,
            history_points=options.pair_history_points,
            clock=clock,
        )

    # ------------------------------------------------------------------------------------------ plumbing

    async def _actor(self, interaction: discord.Interaction[Any]) -> Actor | None:
        if interaction.guild_id is None:
            return None
        space_id = str(interaction.guild_id)
        settings = await self._settings.get(space_id)
        return Actor(
            platform=PLATFORM,
            space_id=space_id,
            user_id=str(interaction.user.id),
            roles=roles_of(interaction, settings),
            display_name=interaction.user.display_name,
        )

    async def guarded(
        self,
        interaction: discord.Interaction[Any],
        what: str,
        handler: Callable[[Actor], Awaitable[None]],
        *,
        defer: bool = True,
    ) -> None:
        """Run one interaction handler with its errors isolated; the person always gets an answer."""
        try:
            actor = await self._actor(interaction)
            if actor is None:
                await _reply(interaction, _NOT_IN_SERVER)
                return
            if defer:
                await _defer(interaction)
            await handler(actor)
        except Exception:
            logger.exception("Discord %s failed", what)
            try:
                await _reply(interaction, _SORRY)
            except Exception:  # the interaction may have expired; nothing more to do
                logger.warning("could not tell the user that %s failed", what)

    # ------------------------------------------------------------------------------------------ buttons

    async def on_case_button(
        self, interaction: discord.Interaction[Any], *, action: ButtonAction, case_number: int
    ) -> None:
        if action is ButtonAction.DISMISS:
            await self.guarded(
                interaction,
                "dismiss button",
                lambda actor: self._open_dismiss_form(interaction, actor, case_number),
                defer=False,
            )
        elif action is ButtonAction.TRANSCRIPT:
            await self.guarded(
                interaction,
                "transcript button",
                lambda actor: self._transcript(interaction, actor, case_number),
            )
        else:
            await self.guarded(
                interaction,
                f"{action.value} button",
                lambda actor: self._act(interaction, actor, case_number, _BUTTON_ACTIONS[action]),
            )

    async def _open_dismiss_form(
        self, interaction: discord.Interaction[Any], actor: Actor, case_number: int
    ) -> None:
        refused = role_refusal(actor, CaseAction.DISMISS)
        if refused is not None:
            await _reply(interaction, refused)
            return

        async def on_reason(submitted: discord.Interaction[Any], reason: str | None) -> None:
            await self.guarded(
                submitted,
                "dismiss form",
                lambda submitter: self._act(
                    submitted, submitter, case_number, CaseAction.DISMISS, reason=reason
                ),
            )

        await interaction.response.send_modal(DismissModal(case_number=case_number, on_reason=on_reason))

    async def _act(
        self,
        interaction: discord.Interaction[Any],
        actor: Actor,
        case_number: int,
        action: CaseAction,
        *,
        reason: str | None = None,
    ) -> None:
        snooze_for = self._options.snooze_for if action is CaseAction.SNOOZE else None
        result = await self._cases.act(
            actor=actor, case_number=case_number, action=action, reason=reason, snooze_for=snooze_for
        )
        if not result.ok or result.case is None:
            await _reply(interaction, result.message or f"Case #{case_number}: that did not work.")
            return
        if action is CaseAction.ESCALATE:
            await _reply(interaction, escalation_guidance(result.case))
        else:
            done = _DONE_WORDS.get(action, "updated")
            await _reply(interaction, result.message or f"Case #{case_number} {done}.")

    async def _transcript(
        self, interaction: discord.Interaction[Any], actor: Actor, case_number: int
    ) -> None:
        result = await self._cases.transcript(actor=actor, case_number=case_number)
        if not result.ok:
            await _reply(interaction, result.message or "Only the child-safety role can read transcripts.")
            return
        whole = transcript(result, case_number=case_number, space_id=actor.space_id)
        attached = discord.File(io.BytesIO(whole.text.encode("utf-8")), filename=whole.filename)
        await _reply(interaction, whole.summary, file=attached)

    # ------------------------------------------------------------------------------------------ commands

    async def setup(
        self,
        interaction: discord.Interaction[Any],
        actor: Actor,
        *,
        alert_channel: app_commands.AppCommandChannel,
        moderator_role: discord.Role,
        child_safety_role: discord.Role | None,
    ) -> None:
        if Role.ADMIN not in actor.roles:
            await _reply(interaction, _DENIED[Denied.ADMINS_ONLY].format(what="Setting Vigil up"))
            return
        if alert_channel.type not in _POSTABLE_CHANNEL_TYPES:
            await _reply(
                interaction, "Pick a text channel for alerts (not a voice, forum or category channel)."
            )
            return
        change = await self._moderation.setup(
            actor,
            alert_channel_id=str(alert_channel.id),
            moderator_role_id=str(moderator_role.id),
            child_safety_role_id=str(child_safety_role.id) if child_safety_role is not None else None,
            replace_roles=True,
        )
        if change.denied is not None:
            await _reply(interaction, _DENIED[change.denied].format(what="Setting Vigil up"))
            return
        lines = [
            f"Vigil is set up. Alerts go to <#{alert_channel.id}>.",
            f"Moderators: <@&{moderator_role.id}>.",
            f"Child-safety team (can read transcripts): <@&{child_safety_role.id}>."
            if child_safety_role is not None
            else "Child-safety team: none set, so nobody can read transcripts until one is set.",
        ]
        missing, everyone_sees = self._channel_check(interaction, alert_channel.id)
        if missing is None:
            lines.append("I could not check my permissions in that channel (it is not in my cache yet).")
        elif missing:
            lines.append(
                f"**I cannot post alerts there yet. Missing permissions in <#{alert_channel.id}>: "
                f"{', '.join(missing)}.** Alerts wait and are retried until this is fixed."
            )
        else:
            lines.append("I have every permission I need in that channel.")
        if everyone_sees:
            lines.append(
                "**Warning: everyone in the server can see that channel.** Alerts contain excerpts of "
                "people's messages: make the channel private to moderators."
            )
        lines.append(
            "Vigil reads only the channels it can see, and it cannot see direct messages between members."
        )
        await _reply(interaction, "\n".join(lines))

    def _channel_check(
        self, interaction: discord.Interaction[Any], channel_id: int
    ) -> tuple[tuple[str, ...] | None, bool]:
        """(missing permissions, or None when unknown; whether @everyone can see the channel)."""
        guild = interaction.guild
        channel = guild.get_channel(channel_id) if guild is not None else None
        if guild is None or channel is None or guild.me is None:
            return None, False
        missing = missing_permissions(channel.permissions_for(guild.me))
        return missing, channel.permissions_for(guild.default_role).view_channel

    async def threshold(
        self, interaction: discord.Interaction[Any], actor: Actor, *, value: float | None
    ) -> None:
        change = await self._moderation.set_threshold(actor, value=value)
        if change.denied is not None:
            await _reply(interaction, _DENIED[change.denied].format(what="Changing the threshold"))
        elif value is None:
            await _reply(interaction, f"Threshold reset to the default ({self._default_threshold:.2f}).")
        else:
            await _reply(
                interaction,
                f"Threshold set to {value:.2f} (default {self._default_threshold:.2f}). Lower finds more and "
                "flags more innocent conversations; higher flags less and misses more.",
            )

    async def ignore(
        self, interaction: discord.Interaction[Any], actor: Actor, *, channel_id: int, ignored: bool
    ) -> None:
        change = await self._moderation.set_ignored(actor, channel_ids=[str(channel_id)], ignored=ignored)
        if change.denied is not None:
            await _reply(interaction, _DENIED[change.denied].format(what="Changing ignored channels"))
            return
        if ignored:
            text = f"Vigil now ignores <#{channel_id}> (and its threads). Messages already seen stay."
        else:
            text = f"Vigil watches <#{channel_id}> again."
        await _reply(interaction, text)

    async def test_alert(self, interaction: discord.Interaction[Any], actor: Actor) -> None:
        if not self._moderation.may_see_status(actor):
            await _reply(interaction, "Test alerts are for moderators and server managers.")
            return
        result = await self._sink.post_test(await self._moderation.current(actor.space_id))
        if result.ok:
            channel = (result.ref or "").split("/", 1)[0]
            await _reply(interaction, f"Test alert posted in <#{channel}>. Real alerts will look like it.")
        else:
            await _reply(interaction, f"The test alert could not be posted: {result.error}.")

    async def status(self, interaction: discord.Interaction[Any], actor: Actor) -> None:
        answer = await self._moderation.status(actor)
        status = answer.value
        if status is None:
            await _reply(interaction, "Vigil's status is for moderators.")
            return
        settings = status.settings
        alert_channel = settings.alert_channel_id
        missing: tuple[str, ...] = ()
        if alert_channel is not None and alert_channel.isdigit():
            found, _ = self._channel_check(interaction, int(alert_channel))
            missing = found or ()
        latency = self._latency_s()
        report = StatusReport(
            connected=self._is_connected(),
            latency_ms=latency * 1000 if latency is not None else None,
            shards=self._shards,
            model=self._model_name,
            threshold=status.threshold,
            threshold_is_default=status.threshold_is_default,
            shadow_mode=status.shadow_mode,
            alert_channel_id=alert_channel,
            alert_channel_missing=missing,
            alerts_today=status.alerts_today,
            pending_deliveries=status.pending_deliveries,
            delivery_problem=self._sink.problem_for(actor.space_id),
            ignored_channel_ids=tuple(sorted(settings.ignored_channel_ids)),
        )
        await _reply(interaction, status_text(report))

    async def pair(
        self,
        interaction: discord.Interaction[Any],
        actor: Actor,
        *,
        first: discord.abc.User,
        second: discord.abc.User,
    ) -> None:
        answer = await self._moderation.pair_history(actor, first=str(first.id), second=str(second.id))
        history = answer.value
        if history is None:
            await _reply(
                interaction,
                "Pick two different people."
                if answer.denied is Denied.SAME_PERSON
                else "Pair history is for moderators.",
            )
            return
        state = history.state
        text = pair_history_text(
            first=str(first.id),
            second=str(second.id),
            risk=state.risk if state is not None else None,
            suspect_id=state.suspect_id if state is not None else None,
            message_count=state.message_count if state is not None else 0,
            open_case=history.open_case,
            points=list(history.points),
            outlook=history.outlook,
            signals=[self._signal_labels.get(s, s.replace("_", " ")) for s in history.signals],
        )
        chart = None
        if len(history.points) >= 2:
            # The trajectory as a picture; its numbers are in the text.
            png = risk_chart_png(history.points, threshold=history.threshold)
            chart = discord.File(io.BytesIO(png), filename=PAIR_CHART_FILE)
            text += (
                f"\n-# Chart: the pair's risk over its last {len(history.points)} recorded steps, oldest "
                f"left; dashed: the alert threshold ({history.threshold:.2f})."
            )
        await _reply(interaction, text, file=chart)

    async def case(self, interaction: discord.Interaction[Any], actor: Actor, *, number: int) -> None:
        result = await self._cases.get(actor=actor, case_number=number)
        if not result.ok or result.case is None:
            await _reply(interaction, result.message or f"No case #{number} here.")
            return
        points = await self._store.risk_history(result.case.alert.key, limit=5)
        embed = alert_embed(
            result.case, signal_labels=self._signal_labels, risk_points=[p.risk for p in points]
        )
        await _reply(interaction, result.message or f"Case #{number}", embed=embed)

    async def list_cases(
        self, interaction: discord.Interaction[Any], actor: Actor, *, user: discord.abc.User | None
    ) -> None:
        user_id = str(user.id) if user is not None else None
        result, summaries = await self._cases.list_cases(
            actor=actor, user_id=user_id, limit=self._options.cases_limit
        )
        if not result.ok:
            await _reply(interaction, result.message or "You cannot list cases.")
            return
        await _reply(interaction, case_list_text(summaries, user_id=user_id))

    # ------------------------------------------------------------------------------------------ reports

    async def report(
        self, interaction: discord.Interaction[Any], actor: Actor, *, message: discord.Message
    ) -> None:
        if message.author.bot or message.webhook_id is not None:
            await _reply(interaction, "Vigil looks at people's conversations; that message is from a bot.")
            return
        if message.author.id == interaction.user.id:
            await _reply(interaction, "Pick a message from the person you are worried about, not your own.")
            return
        earlier = await self._history_before(message)
        collected: list[ChatMessage] = [
            to_chat_message(m) for m in earlier if is_ingestible(m, own_user_id=None)
        ]
        collected.append(to_chat_message(message))
        result = await self._cases.report(
            reporter=actor, reported_user_id=str(message.author.id), messages=tuple(collected)
        )
        if not result.ok:
            await _reply(interaction, result.message or "Vigil could not take that report.")
            return
        if result.case is not None:
            logger.info("conversation report filed as case %d", result.case.alert.case_number)
        await _reply(
            interaction,
            (result.message or "Thank you. The moderators have been told about this conversation.")
            + " Only they see your report. If someone may be in danger right now, contact your local "
            "emergency number.",
        )

    async def _history_before(self, message: discord.Message) -> Sequence[discord.Message]:
        limit = self._options.report_history
        if limit <= 0:
            return ()
        try:
            newest_first = [m async for m in message.channel.history(limit=limit, before=message)]
        except (discord.Forbidden, discord.NotFound):
            logger.warning("could not read the history before a reported message; reporting it alone")
            return ()
        return sorted(newest_first, key=lambda m: (m.created_at, m.id))


HELP = """**Vigil** flags conversations that look like grooming and explains why; people decide.
**Server managers** · `/vigil setup` · `/vigil threshold` · `/vigil ignore` · `/vigil unignore`
**Moderators** · `/vigil status` · `/vigil test` · `/vigil cases [@member]` · `/vigil case number` · \
`/vigil pair @a @b` · the buttons on each alert (claim, dismiss, confirm, escalate, snooze)
**Child-safety role** · the Transcript button on an alert
Members can report a conversation from a message's menu: Apps → Report conversation to mods."""


class AlertChannelPicker(app_commands.Transformer):
    """The channel option of ``/vigil setup``: Discord offers only channels an alert can be posted in."""

    @property
    def type(self) -> discord.AppCommandOptionType:
        return discord.AppCommandOptionType.channel

    @property
    def channel_types(self) -> list[discord.ChannelType]:
        return list(_POSTABLE_CHANNEL_TYPES)

    async def transform(self, interaction: discord.Interaction[Any], value: Any, /) -> Any:
        return value  # the resolved AppCommandChannel; setup still checks its type and permissions


def build_vigil_group(interactions: Interactions) -> app_commands.Group:
    """The ``/vigil`` command group; every subcommand hands over to ``interactions``."""

    group = app_commands.Group(
        name="vigil",
        description="Vigil: alerts about likely grooming conversations, for moderators",
        guild_only=True,
        # Hidden from members without Manage Messages; a server admin can allow other roles under
        # Server Settings → Integrations → Vigil. Vigil still checks its own moderator role on every use.
        default_permissions=discord.Permissions(manage_messages=True),
    )

    @group.command(name="setup", description="Choose the alert channel and the moderator roles")
    @app_commands.describe(
        alert_channel="A private channel only moderators can see",
        moderator_role="Members with this role see and act on alerts",
        child_safety_role="Members with this role can also read transcripts (optional)",
    )
    async def setup(
        interaction: discord.Interaction[Any],
        alert_channel: app_commands.Transform[app_commands.AppCommandChannel, AlertChannelPicker],
        moderator_role: discord.Role,
        child_safety_role: discord.Role | None = None,
    ) -> None:
        await interactions.guarded(
            interaction,
            "/vigil setup",
            lambda actor: interactions.setup(
                interaction,
                actor,
                alert_channel=alert_channel,
                moderator_role=moderator_role,
                child_safety_role=child_safety_role,
            ),
        )

    @group.command(name="threshold", description="Set the alert threshold, or reset it to the default")
    @app_commands.describe(
        value=f"Between {THRESHOLD_MIN} and {THRESHOLD_MAX}; leave empty to use the default"
    )
    async def threshold(
        interaction: discord.Interaction[Any],
        value: app_commands.Range[float, THRESHOLD_MIN, THRESHOLD_MAX] | None = None,
    ) -> None:
        await interactions.guarded(
            interaction,
            "/vigil threshold",
            lambda actor: interactions.threshold(interaction, actor, value=value),
        )

    @group.command(name="ignore", description="Stop watching a channel (and its threads)")
    async def ignore(
        interaction: discord.Interaction[Any],
        channel: app_commands.AppCommandChannel | app_commands.AppCommandThread,
    ) -> None:
        await interactions.guarded(
            interaction,
            "/vigil ignore",
            lambda actor: interactions.ignore(interaction, actor, channel_id=channel.id, ignored=True),
        )

    @group.command(name="unignore", description="Watch a channel again")
    async def unignore(
        interaction: discord.Interaction[Any],
        channel: app_commands.AppCommandChannel | app_commands.AppCommandThread,
    ) -> None:
        await interactions.guarded(
            interaction,
            "/vigil unignore",
            lambda actor: interactions.ignore(interaction, actor, channel_id=channel.id, ignored=False),
        )

    @group.command(name="help", description="What Vigil does and the commands you can use")
    async def help_(interaction: discord.Interaction[Any]) -> None:
        await interactions.guarded(interaction, "/vigil help", lambda actor: _reply(interaction, HELP))

    @group.command(name="test", description="Post a test alert in the alert channel, to check it works")
    async def test(interaction: discord.Interaction[Any]) -> None:
        await interactions.guarded(
            interaction, "/vigil test", lambda actor: interactions.test_alert(interaction, actor)
        )

    @group.command(name="status", description="Connection, model, threshold, today's alerts, deliveries")
    async def status(interaction: discord.Interaction[Any]) -> None:
        await interactions.guarded(
            interaction, "/vigil status", lambda actor: interactions.status(interaction, actor)
        )

    @group.command(name="pair", description="Risk history of two members' conversation")
    async def pair(interaction: discord.Interaction[Any], first: discord.User, second: discord.User) -> None:
        await interactions.guarded(
            interaction,
            "/vigil pair",
            lambda actor: interactions.pair(interaction, actor, first=first, second=second),
        )

    @group.command(name="case", description="Show one case")
    async def case(interaction: discord.Interaction[Any], number: app_commands.Range[int, 1]) -> None:
        await interactions.guarded(
            interaction, "/vigil case", lambda actor: interactions.case(interaction, actor, number=number)
        )

    @group.command(name="cases", description="Recent cases, optionally only those involving a member")
    async def cases(interaction: discord.Interaction[Any], user: discord.User | None = None) -> None:
        await interactions.guarded(
            interaction, "/vigil cases", lambda actor: interactions.list_cases(interaction, actor, user=user)
        )

    return group


def build_report_menu(interactions: Interactions) -> app_commands.ContextMenu:
    @app_commands.guild_only()
    async def report(interaction: discord.Interaction[Any], message: discord.Message) -> None:
        await interactions.guarded(
            interaction,
            "conversation report",
            lambda actor: interactions.report(interaction, actor, message=message),
        )

    return app_commands.ContextMenu(name=REPORT_COMMAND_NAME, callback=report)
