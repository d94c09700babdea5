"""``DiscordAdapter``: connects Vigil to Discord with discord.py, in both directions.

In: guild, thread and DM messages the bot can see → ``to_chat_message`` → the ``MessageHandler`` (the monitor,
or a queue before it). Edits are scored as new messages (``<id>:edit:<ms>``); deletions are forgotten from the
pairs' windows (``Store.forget_message``), while evidence already copied into a case stays.
Out: ``sink`` posts and edits alerts; moderators' clicks and commands go to ``Cases``.

discord.py owns the connection: it reconnects and RESUMEs by itself, and redelivered messages are dropped by
the monitor's idempotency (by message id). Two guards sit around it, because discord.py's parsers raise on
payloads they do not expect and its ``connect`` lets that escape: each gateway event's parser is wrapped,
so a malformed event is logged (ERROR) and skipped; anything else that escapes ``connect`` (a frame that
is not JSON) is logged and the client is restarted with backoff (a new session: events sent meanwhile are
lost). Each event handler awaits its own work under a bounded semaphore,
so a flood of events waits instead of piling up unbounded work, and a failure in one handler is logged and
isolated. ``run()`` raises ``DiscordFatalError`` for what reconnecting cannot fix (a bad token, the Message
Content intent not enabled).
"""

from __future__ import annotations

import asyncio
import logging
import math
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import aiohttp
import discord
from discord.ext import commands

from vigil.bots.core.cases import Cases
from vigil.bots.core.clock import Clock, utc_now
from vigil.bots.core.models import ChatMessage
from vigil.bots.core.monitor import HandleResult, Monitor
from vigil.bots.core.ports import AlertSink, MessageHandler, PlatformStore
from vigil.bots.discord.commands import (
    InteractionOptions,
    Interactions,
    SettingsCache,
    build_report_menu,
    build_vigil_group,
)
from vigil.bots.discord.render import ButtonAction, CaseButton
from vigil.bots.discord.sink import DiscordSink, invite_url, missing_permissions
from vigil.bots.discord.translate import DM_SPACE, PLATFORM, edit_message_id, is_ingestible, to_chat_message
from vigil.config.settings import DiscordSettings, Secret

__all__ = ["DiscordAdapter", "DiscordFatalError", "DiscordOptions", "discord_intents"]

logger = logging.getLogger(__name__)


_LOGIN_RETRY_MAX_S = 60.0
# Store record (key "*"): when Vigil first ran against Discord (catch-up reads no history from before).
_WATCHING_SINCE = "discord.watching_since"
# A connection that stayed up this long was healthy: the next unexpected failure waits the first delay again.
_HEALTHY_CONNECTION_S = 300.0
_CLOSE_CODE_HINTS: Mapping[int, str] = MappingProxyType(
    {
        4004: "authentication failed; check the bot token",
        4010: "invalid shard; check [discord] shard_ids and shard_count (or --shards and --shard-count)",
        4011: "this bot is in too many servers for one connection: set [discord] sharded = true",
        4012: "invalid gateway API version; upgrade discord.py",
        4013: "invalid intents",
        4014: "a privileged intent is not enabled in the developer portal (Message Content)",
    }
)


class _NotLive:
    """``_ingest``'s default: a caught-up message, handed over by the catch-up itself."""


_NOT_LIVE = _NotLive()


class DiscordFatalError(Exception):
    """Discord refused to let Vigil run, and retrying will not help: a person must fix the setup."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DiscordOptions:
    """Tuning with production defaults; tests shorten the waits."""

    # Message deletions applied to the store at once; more wait their turn. (Messages go straight to the
    # ingest queue, which admits or sheds each at once: its capacity bounds what is held in memory.)
    max_concurrent_events: int = 64
    # Caught-up messages handed to the ingest queue and not yet stored, at most: a catch-up of thousands of
    # messages must not fill the queue, where live chatter would be shed to make room.
    catch_up_outstanding: int = 256
    sync_commands: bool = True
    # discord.py waits this long after the last GUILD_CREATE before "ready"; ingest does not wait for it.
    guild_ready_timeout_s: float = 2.0
    # A 429 asking for a longer wait than this becomes a DeliveryResult with retry_after (min 30, discord.py).
    max_ratelimit_timeout_s: float = 30.0
    shutdown_grace_s: float = 10.0
    login_retry_initial_s: float = 1.0
    # Between the IDENTIFYs of this process's shards (discord.py's own wait): Discord lets a bot start one
    # session per 5 s (more with large-bot sharding's max_concurrency).
    identify_interval_s: float = 5.0
    # After an unexpected connection failure, the first wait before restarting it (doubling to a minute).
    restart_initial_s: float = 1.0
    # Catch-up after a new session: at most this many missed messages per channel, read from this long before
    # the last message Vigil stored (one in flight at a crash was sent before it, by another clock).
    catch_up_per_channel: int = 1000
    catch_up_overlap_s: float = 300.0
    interactions: InteractionOptions = field(default_factory=InteractionOptions)


def discord_intents() -> discord.Intents:
    """What Vigil asks Discord for: servers, their messages and DMs, and message text (privileged)."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.dm_messages = True
    intents.message_content = True
    return intents


def _where(error: BaseException) -> str:
    """Where an exception was raised, as ``file:line`` (the message itself may quote payload text)."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    return f"{Path(last.filename).name}:{last.lineno}"


class _SkipReporter:
    """Logs what was skipped as malformed: the first of each kind (event, error, place) at ERROR, then every
    1,000th at WARNING with the count, so a payload change on Discord's side cannot flood the log."""

    _MAX_KINDS = 1_000

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, str], int] = {}

    def report(self, *, what: str, event: str, error: BaseException) -> None:
        where = _where(error)
        kind = (event, type(error).__name__, where)
        if kind not in self._counts and len(self._counts) >= self._MAX_KINDS:
            self._counts.clear()  # bounded memory; at worst a kind is reported at ERROR again
        count = self._counts.get(kind, 0) + 1
        self._counts[kind] = count
        context = {
            "platform": PLATFORM,
            "gateway_event": event,
            "error_type": type(error).__name__,
            "error_at": where,
        }
        # The type and place only: an exception's message can quote the payload (message text).
        if count == 1:
            logger.error("skipped %s %s event (%s at %s)", what, event, kind[1], where, extra=context)
        elif count % 1_000 == 0:
            logger.warning(
                "skipped %s %s event (%s at %s) %d times so far",
                what,
                event,
                kind[1],
                where,
                count,
                extra=context,
            )


def _guard_parsers(bot: commands.Bot | commands.AutoShardedBot, *, skips: _SkipReporter) -> None:
    """Wrap discord.py's gateway event parsers so a malformed event is logged and skipped, not fatal.

    discord.py looks parsers up by event name in ``ConnectionState.parsers`` (a dict it builds once and
    hands to every websocket); a parser that raises takes ``Client.connect`` down with it.
    """
    parsers: dict[str, Callable[[Any], None]] = bot._connection.parsers
    for event, parse in list(parsers.items()):
        parsers[event] = _guarded_parser(event, parse, skips=skips)


def _guarded_parser(
    event: str, parse: Callable[[Any], None], *, skips: _SkipReporter
) -> Callable[[Any], None]:
    def guarded(data: Any) -> None:
        try:
            parse(data)
        except Exception as error:
            skips.report(what="a malformed Discord", event=event, error=error)

    return guarded


# What reading a message discord.py built from a malformed payload raises (a missing author, a wrong type,
# an id too large for a date); translating is pure, so any of these means the payload, not Vigil.
_HALF_BUILT = (AttributeError, TypeError, ValueError, KeyError, ArithmeticError)


_HistoryChannel = discord.TextChannel | discord.VoiceChannel | discord.Thread


def _channels_to_catch_up(guild: discord.Guild, *, after_id: int) -> list[_HistoryChannel]:
    """The channels and threads with a message newer than ``after_id`` whose history Vigil may read."""
    me = guild.me
    found: list[_HistoryChannel] = []
    candidates: list[_HistoryChannel] = [*guild.text_channels, *guild.voice_channels, *guild.threads]
    for channel in candidates:
        last = channel.last_message_id
        if last is None or last <= after_id:
            continue
        if me is not None:
            allowed = channel.permissions_for(me)
            if not (allowed.view_channel and allowed.read_message_history):
                continue
        found.append(channel)
    return found


def _quiet_discord_debug_logs() -> None:
    """discord.py logs request bodies and gateway events (message text) at DEBUG: never let them through."""
    library = logging.getLogger("discord")
    if library.getEffectiveLevel() < logging.INFO:
        library.setLevel(logging.INFO)


class _VigilEvents:
    """The events Vigil listens to, as methods of the bot; each hands over to the adapter."""

    _vigil: DiscordAdapter

    async def setup_hook(self) -> None:
        await self._vigil._setup()

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        if not initial:
            await asyncio.sleep(self._vigil._options.identify_interval_s)

    async def on_message(self, message: discord.Message, /) -> None:
        await self._vigil._on_message(message)

    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent, /) -> None:
        await self._vigil._on_edit(payload)

    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent, /) -> None:
        await self._vigil._on_delete(payload.guild_id, [payload.message_id])

    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent, /) -> None:
        await self._vigil._on_delete(payload.guild_id, sorted(payload.message_ids))

    async def on_guild_available(self, guild: discord.Guild, /) -> None:
        self._vigil._start_catch_up(guild)
        await self._vigil._check_guild(guild)

    async def on_guild_unavailable(self, guild: discord.Guild, /) -> None:
        self._vigil._forget_catch_up(guild)

    async def on_guild_join(self, guild: discord.Guild, /) -> None:
        logger.info("Vigil was added to a Discord server (%s); run /vigil setup there", guild.id)

    async def on_connect(self) -> None:
        self._vigil._gateway_up = True

    async def on_resumed(self) -> None:
        self._vigil._gateway_up = True
        logger.info("Discord session resumed")

    async def on_disconnect(self) -> None:
        if self._vigil._gateway_up:
            logger.info("disconnected from the Discord gateway; discord.py reconnects by itself")
        self._vigil._gateway_up = False

    async def handle_case_button(
        self, interaction: discord.Interaction[Any], *, action: ButtonAction, case_number: int
    ) -> None:
        await self._vigil._interactions.on_case_button(interaction, action=action, case_number=case_number)


class _VigilBot(_VigilEvents, commands.Bot):
    def __init__(self, *, vigil: DiscordAdapter, **options: Any) -> None:
        super().__init__(**options)
        self._vigil = vigil


class _ShardedVigilBot(_VigilEvents, commands.AutoShardedBot):
    def __init__(self, *, vigil: DiscordAdapter, **options: Any) -> None:
        super().__init__(**options)
        self._vigil = vigil


class DiscordAdapter:
    """Put ``sink`` into the ``RoutingSink`` under ``"discord"``; run ``run()`` as a task."""

    def __init__(
        self,
        *,
        settings: DiscordSettings,
        token: Secret,
        handler: MessageHandler,
        monitor: Monitor,
        cases: Cases,
        store: PlatformStore,
        clock: Clock = utc_now,
        signal_labels: Mapping[str, str] | None = None,
        options: DiscordOptions | None = None,
    ) -> None:
        self._settings = settings
        self._token = token
        self._handler = handler
        self._monitor = monitor
        self._clock = clock
        self._store = store
        self._options = options or DiscordOptions()
        self._events = asyncio.Semaphore(max(1, self._options.max_concurrent_events))
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._logged_in = False
        self._closing = False
        self._gateway_up = False
        self._warned: set[tuple[str, str]] = set()
        self._watching_since: datetime | None = None
        # Per guild: the Guild object of the session a catch-up ran for, and that catch-up.
        self._catch_ups: dict[int, tuple[discord.Guild, asyncio.Task[None]]] = {}
        # Per server (None: DMs), in arrival order: a live message waits for the catch-up and takes its slot
        # behind every earlier one (asyncio.Lock is first come, first served).
        self._arrivals: dict[int | None, asyncio.Lock] = {}
        self._space_settings = SettingsCache(store=store)
        bot_options: dict[str, Any] = {
            "vigil": self,
            "command_prefix": commands.when_mentioned,
            "help_command": None,
            "intents": discord_intents(),
            # Vigil never pings anyone unless a message says so explicitly (the alert's role ping).
            "allowed_mentions": discord.AllowedMentions.none(),
            "max_ratelimit_timeout": max(30.0, self._options.max_ratelimit_timeout_s),
            "guild_ready_timeout": self._options.guild_ready_timeout_s,
            "chunk_guilds_at_startup": False,
        }
        self._shards = settings.shards_summary()
        self._bot: _VigilBot | _ShardedVigilBot
        if settings.runs_sharded:
            if settings.shard_count > 0:
                bot_options["shard_count"] = settings.shard_count
            subset = settings.shard_subset()
            if subset is not None:
                # Discord sends each shard only its own servers (guild id >> 22 modulo the count), so the
                # catch-up and per-server state below only ever see this process's servers.
                bot_options["shard_ids"] = list(subset)
            self._bot = _ShardedVigilBot(**bot_options)
        else:
            self._bot = _VigilBot(**bot_options)
        self._skips = _SkipReporter()
        _guard_parsers(self._bot, skips=self._skips)
        self._sink = DiscordSink(
            client=self._bot,
            signal_labels=signal_labels or {},
            is_connected=self._rest_ready,
        )
        policy = monitor.config.policy
        self._interactions = Interactions(
            store=store,
            signal_labels=signal_labels or {},
            cases=cases,
            settings=self._space_settings,
            sink=self._sink,
            model_name=monitor.model_name,
            default_threshold=policy.threshold,
            default_shadow_mode=policy.shadow_mode,
            is_connected=lambda: self._gateway_up,
            latency_s=self._latency_s,
            clock=clock,
            options=self._options.interactions,
            policy_for=monitor.policy_for_space,
            shards=self._shards,
        )

    @property
    def sink(self) -> AlertSink:
        return self._sink

    @property
    def client(self) -> commands.Bot | commands.AutoShardedBot:
        """The discord.py client (for diagnostics and tests)."""
        return self._bot

    # ---------------------------------------------------------------------------------------- lifecycle

    async def run(self) -> None:
        """Log in, connect and serve until cancelled or closed; discord.py reconnects and resumes itself."""
        _quiet_discord_debug_logs()
        try:
            await self._login()
            logger.info("logged in to Discord as bot user %s", self._bot.user.id if self._bot.user else "?")
            if self._shards is not None:
                logger.info(
                    "this process runs Discord %s; the other shards need their own processes", self._shards
                )
            if self._bot.application_id is not None:
                logger.info("to add Vigil to a server, open %s", invite_url(self._bot.application_id))
            await self._load_watching_since()
            try:
                await self._connect_supervised()
            except discord.PrivilegedIntentsRequired:
                raise DiscordFatalError(
                    "Discord refused the connection because the Message Content intent is not enabled: "
                    "turn on 'Message Content Intent' under Bot → Privileged Gateway Intents in the "
                    "developer portal"
                ) from None
            except discord.ConnectionClosed as closed:
                # discord.py reconnects by itself except after close codes that retrying cannot fix.
                hint = _CLOSE_CODE_HINTS.get(closed.code, "see Discord's gateway close codes")
                raise DiscordFatalError(
                    f"Discord closed the gateway connection with code {closed.code}: {hint}"
                ) from None
        finally:
            await self.aclose()

    async def _connect_supervised(self) -> None:
        """``connect``, restarted with backoff after what it does not handle (fatal errors still raise)."""
        delay = self._options.restart_initial_s
        while True:
            started = asyncio.get_running_loop().time()
            try:
                await self._bot.connect(reconnect=True)
                return
            except (discord.PrivilegedIntentsRequired, discord.ConnectionClosed, discord.LoginFailure):
                raise
            except Exception as error:
                if self._closing:
                    return
                self._gateway_up = False
                if asyncio.get_running_loop().time() - started > _HEALTHY_CONNECTION_S:
                    delay = self._options.restart_initial_s
                logger.error(
                    "the Discord connection failed unexpectedly (%s at %s); restarting it in %.0fs",
                    type(error).__name__,
                    _where(error),
                    delay,
                    extra={
                        "platform": PLATFORM,
                        "error_type": type(error).__name__,
                        "error_at": _where(error),
                    },
                )
            await self._bot.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, _LOGIN_RETRY_MAX_S)
            await self._reopen()
            await self._login()

    async def _load_watching_since(self) -> None:
        """When Vigil first ran against Discord (kept in the store, written before the first connection, so
        a first run killed before it stored anything is still caught up on its next start)."""
        try:
            recorded = await self._store.get_record(_WATCHING_SINCE, "*")
            if recorded is None:
                # The first run (or the first since catch-up exists): stored messages alone mark the floor.
                await self._store.put_record(_WATCHING_SINCE, "*", self._clock().isoformat())
            else:
                self._watching_since = datetime.fromisoformat(recorded)
        except Exception:
            logger.exception(
                "reading when Vigil first ran against Discord failed; catching up only after stored messages"
            )

    async def _reopen(self) -> None:
        """Make a closed client usable again: ``clear`` (discord.py's documented re-open), then the loop
        binding that ``login`` does only for a client that never ran (``close`` unbinds it)."""
        self._bot.clear()
        # The HTTP session closed with the client, and its connector with it: let login open new ones.
        self._bot.http.connector = discord.utils.MISSING
        await self._bot._async_setup_hook()

    async def _login(self) -> None:
        """Log in, retrying network and Discord server errors with backoff; a bad token is fatal at once."""
        delay = self._options.login_retry_initial_s
        while True:
            try:
                await self._bot.login(self._token.reveal())
                return
            except discord.LoginFailure:
                raise DiscordFatalError(
                    "Discord rejected the bot token (401 Unauthorized): check the environment variable "
                    f"{self._settings.token_env}; reset the token in the developer portal if it leaked"
                ) from None
            except (discord.DiscordServerError, aiohttp.ClientError, OSError, TimeoutError) as error:
                logger.warning(
                    "could not reach Discord to log in (%s); retrying in %.0fs", type(error).__name__, delay
                )
            # Each login opens a new HTTP session on the client's connector: close both, so the next attempt
            # starts clean instead of reusing a closed connector.
            await self._bot.http.close()
            self._bot.http.connector = discord.utils.MISSING
            await asyncio.sleep(delay)
            delay = min(delay * 2, _LOGIN_RETRY_MAX_S)

    async def aclose(self) -> None:
        """Stop taking events, let in-flight ones finish (briefly), and close the connection."""
        self._closing = True
        # A catch-up stops between messages once closing; the next start reads the rest again.
        pending = {task for task in self._in_flight if not task.done() and task is not asyncio.current_task()}
        pending.update(task for _, task in self._catch_ups.values() if not task.done())
        if pending:
            _, late = await asyncio.wait(pending, timeout=self._options.shutdown_grace_s)
            if late:
                logger.warning("%d Discord event(s) were still being handled at shutdown", len(late))
        if not self._bot.is_closed():
            await self._bot.close()
        self._logged_in = False
        self._gateway_up = False

    async def _setup(self) -> None:
        """Runs once per login, before connecting: buttons, commands, and the command sync."""
        self._bot.add_dynamic_items(CaseButton)
        tree = self._bot.tree
        tree.add_command(build_vigil_group(self._interactions), override=True)
        tree.add_command(build_report_menu(self._interactions), override=True)
        tree.error(self._on_command_error)
        if self._bot.user is not None:
            self._monitor.register_bot_user(platform=PLATFORM, user_id=str(self._bot.user.id))
        if self._options.sync_commands:
            try:
                await tree.sync()
            except discord.HTTPException as error:
                logger.warning("could not register Vigil's slash commands with Discord (%s)", error.status)
        self._logged_in = True

    def _rest_ready(self) -> bool:
        return self._logged_in and not self._bot.is_closed()

    def _latency_s(self) -> float | None:
        latency = self._bot.latency
        return latency if math.isfinite(latency) else None

    async def _on_command_error(
        self, interaction: discord.Interaction[Any], error: discord.app_commands.AppCommandError
    ) -> None:
        if isinstance(error, discord.app_commands.TransformerError):
            text = "Discord sent a value Vigil could not use (a channel or member it cannot see?)."
        elif isinstance(error, discord.app_commands.CheckFailure):
            text = "You cannot use that command here."
        else:
            logger.error("a Vigil command failed", exc_info=error)
            text = "Something went wrong on Vigil's side; the details are in its log."
        try:
            if interaction.response.is_done():
                await interaction.followup.send(text, ephemeral=True)
            else:
                await interaction.response.send_message(text, ephemeral=True)
        except discord.HTTPException:
            logger.warning("could not tell the user that a command failed")

    # ---------------------------------------------------------------------------------------- ingest

    def _own_id(self) -> int | None:
        return self._bot.user.id if self._bot.user is not None else None

    async def _on_message(self, message: discord.Message) -> None:
        if self._closing:
            return
        translated = self._translated(message)
        if translated is not None:
            await self._ingest(translated, live_in=message.guild)

    def _translated(self, message: discord.Message) -> ChatMessage | None:
        try:
            if not is_ingestible(message, own_user_id=self._own_id()):
                return None
            return to_chat_message(message)
        except _HALF_BUILT as error:
            self._skips.report(
                what="a Discord message built from a malformed", event="MESSAGE_CREATE", error=error
            )
            return None

    async def _on_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        if self._closing:
            return
        try:
            message = payload.message
            edited_at = message.edited_at
            if edited_at is None or "content" not in payload.data:
                return  # not a text edit (an embed unfurled, a pin, ...)
            before = payload.cached_message
            if before is not None and before.content == message.content:
                return
            if not is_ingestible(message, own_user_id=self._own_id()):
                return
            translated = to_chat_message(
                message, message_id=edit_message_id(message.id, edited_at), timestamp=edited_at
            )
        except _HALF_BUILT as error:
            self._skips.report(
                what="a Discord message built from a malformed", event="MESSAGE_UPDATE", error=error
            )
            return
        await self._ingest(translated, live_in=message.guild)

    async def _ingest(
        self, message: ChatMessage, *, live_in: discord.Guild | _NotLive | None = _NOT_LIVE
    ) -> None:
        """Hand a message to the handler (the ingest queue) and wait for its result, only to log a failure.

        The queue admits each message, or sheds it by its documented policy, the moment its ``handle`` starts,
        so nothing piles up here in a flood: what is held is bounded by the queue's capacity. A live message
        (``live_in``: its server, None for a DM) first waits for that server's catch-up, in arrival order,
        and is admitted behind every earlier one (one that came after the catch-up ended must not overtake one
        that waited for it)."""
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            if isinstance(live_in, _NotLive):
                handled = self._hand_over(message)
            else:
                key = live_in.id if live_in is not None else None
                async with self._arrivals.setdefault(key, asyncio.Lock()):
                    await self._caught_up(live_in)
                    handled = self._hand_over(message)
            await handled
        except Exception:
            # Never the text; the id is enough to find the message on Discord.
            logger.exception("handling Discord message %s failed", message.message_id)
        finally:
            if task is not None:
                self._in_flight.discard(task)

    def _hand_over(self, message: ChatMessage) -> asyncio.Task[HandleResult]:
        # A task per message, created in arrival order: tasks start in the order they are created, so the
        # handler admits messages in the order they came (turn-taking pairs depend on it). Ignored channels
        # and threads are the monitor's to skip.
        return asyncio.create_task(self._handler.handle(message), name=f"vigil-discord-{message.message_id}")

    # ---------------------------------------------------------------------------------------- catch-up

    def _start_catch_up(self, guild: discord.Guild) -> asyncio.Task[None] | None:
        """Once per guild per session: read what its channels got while Vigil was away (Discord resends
        missed events only on RESUME). discord.py builds new Guild objects for a new session and after a
        restart, and keeps them on RESUME, so the object tells the sessions apart."""
        if self._settings.catch_up_hours <= 0 or self._closing:
            return None
        entry = self._catch_ups.get(guild.id)
        if entry is not None and entry[0] is guild:
            return entry[1]
        task = asyncio.create_task(self._catch_up(guild), name=f"vigil-discord-catch-up-{guild.id}")
        self._catch_ups[guild.id] = (guild, task)
        return task

    def _forget_catch_up(self, guild: discord.Guild) -> None:
        # An outage of the guild: Discord sends nothing of it meanwhile, so it is caught up when back.
        self._catch_ups.pop(guild.id, None)

    async def _caught_up(self, guild: discord.Guild | None) -> None:
        """Live messages wait for the catch-up: a pair's messages are scored in the order they were sent."""
        if guild is None:
            return
        task = self._start_catch_up(guild)
        if task is not None and not task.done():
            await asyncio.shield(task)

    async def _catch_up(self, guild: discord.Guild) -> None:
        space_id = str(guild.id)
        try:
            now = self._clock()
            last_seen = await self._store.last_claimed_at(platform=PLATFORM, space_id=space_id)
            watching = self._watching_since
            joined = guild.me.joined_at if guild.me is not None else None
            if last_seen is None and (watching is None or (joined is not None and joined > watching)):
                # Vigil's first run, or a server added since: what was said before it came is not its to read.
                return
            # Less the overlap: a message is sent (Discord's clock) before it reaches Vigil (its own clock).
            overlap = timedelta(seconds=self._options.catch_up_overlap_s)
            floors = [now - timedelta(hours=self._settings.catch_up_hours)]
            if watching is not None:
                floors.append(watching - overlap)
            if last_seen is not None:
                floors.append(last_seen - overlap)
            since = max(floors)
            after = discord.Object(id=discord.utils.time_snowflake(since, high=False))
            missed: list[discord.Message] = []
            for channel in _channels_to_catch_up(guild, after_id=after.id):
                try:
                    async for message in channel.history(
                        limit=self._options.catch_up_per_channel, after=after, oldest_first=True
                    ):
                        missed.append(message)
                except discord.HTTPException as error:
                    logger.warning(
                        "could not read the history of Discord channel %s in server %s (%s); messages sent "
                        "there while Vigil was away are not scored",
                        channel.id,
                        guild.id,
                        error.status,
                    )
            # Oldest first across channels: a pair's messages are scored in the order they were sent. Those
            # already stored are recognised by id and skipped by the monitor.
            missed.sort(key=lambda message: message.id)
            translated = [chat for chat in map(self._translated, missed) if chat is not None]
            if self._closing:
                return
            # Handed over in order, at most ``catch_up_outstanding`` not yet stored at a time: enough for the
            # ingest queue to batch them, never so many that live chatter is shed to make room.
            outstanding = asyncio.Semaphore(max(1, self._options.catch_up_outstanding))

            async def hand_over(chat: ChatMessage) -> None:
                try:
                    await self._ingest(chat)
                finally:
                    outstanding.release()

            handing: list[asyncio.Task[None]] = []
            for chat in translated:
                await outstanding.acquire()
                if self._closing:
                    outstanding.release()
                    break
                handing.append(asyncio.create_task(hand_over(chat)))
            await asyncio.gather(*handing)
            fed = len(translated)
            if fed:
                logger.info(
                    "read %d message(s) of Discord server %s from channel history, sent since %s",
                    fed,
                    guild.id,
                    since.isoformat(timespec="seconds"),
                )
        except Exception:
            logger.exception(
                "catching up with Discord server %s failed; messages sent there while Vigil was away are "
                "not scored",
                guild.id,
            )

    async def _on_delete(self, guild_id: int | None, message_ids: list[int]) -> None:
        if self._closing:
            return
        space_id = str(guild_id) if guild_id is not None else DM_SPACE
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            async with self._events:
                for message_id in message_ids:
                    await self._store.forget_message(
                        platform=PLATFORM, space_id=space_id, message_id=str(message_id), now=self._clock()
                    )
        except Exception:
            logger.exception("forgetting deleted Discord message(s) in server %s failed", space_id)
        finally:
            if task is not None:
                self._in_flight.discard(task)

    # ---------------------------------------------------------------------------------------- health

    async def _check_guild(self, guild: discord.Guild) -> None:
        """Say once, in the log, when a server's alert channel is unusable (also shown by /vigil status)."""
        try:
            settings = await self._space_settings.get(str(guild.id))
        except Exception:
            logger.exception("reading the settings of Discord server %s failed", guild.id)
            return
        if settings is None or settings.alert_channel_id is None:
            self._warn_once(
                str(guild.id), "setup", f"Discord server {guild.id} has no alert channel: run /vigil setup"
            )
            return
        channel_id = settings.alert_channel_id
        channel = guild.get_channel(int(channel_id)) if channel_id.isdigit() else None
        if channel is None:
            self._warn_once(
                str(guild.id),
                f"gone:{channel_id}",
                f"Discord server {guild.id}: the alert channel {channel_id} is gone; run /vigil setup",
            )
            return
        if guild.me is None:
            return
        missing = missing_permissions(channel.permissions_for(guild.me))
        if missing:
            self._warn_once(
                str(guild.id),
                f"perms:{channel_id}:{','.join(missing)}",
                f"Discord server {guild.id}: Vigil lacks {', '.join(missing)} "
                f"in the alert channel {channel_id}",
            )

    def _warn_once(self, scope: str, kind: str, text: str) -> None:
        if (scope, kind) in self._warned:
            return
        self._warned.add((scope, kind))
        logger.warning("%s", text)
