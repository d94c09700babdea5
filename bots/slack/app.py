"""``SlackAdapter``: Vigil on Slack with slack-bolt's ``AsyncApp``, over Socket Mode or HTTP.

What it wires:

* ``message`` events (channels, private channels, DMs, group DMs the app is in) → ``to_chat_message`` → the
  ``MessageHandler`` (the monitor, or the ingest queue in front of it); edits are re-scored, deletions
  forgotten (see ``_forget``);
* ``/vigil`` → ``VigilCommands``; alert buttons, the dismiss modal and the "Report conversation to
  moderators" message shortcut → ``Cases``; every answer is ephemeral;
* ``sink``: the ``AlertSink`` for platform ``"slack"`` (``SlackSink``);
* catch-up at start: what each workspace's conversations got while Vigil was away is read back from their
  history (``bots.slack.catch_up``) and handed over oldest first before any new message of that workspace;
* files sent to moderators' DMs (charts, transcripts) are deleted ``shared_file_hours`` later, by a sweep at
  start and every 15 minutes (``bots.slack.shared_files``).

Connection modes: Socket Mode (the default: an outbound WebSocket, no public URL; the SDK reconnects) or HTTP
(bolt's request handling on an aiohttp server at ``http_host:http_port``, path ``/slack/events``; bolt rejects
bad signatures and timestamps older than five minutes). With ``oauth`` the app can be installed in many
workspaces: the install pages (``/slack/install``, ``/slack/oauth_redirect``) are served on the same aiohttp
server, and installations are kept in Vigil's store.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.async_authorize import AsyncAuthorize, AsyncInstallationStoreAuthorize
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.kwargs_injection.async_args import AsyncArgs
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.response import BoltResponse
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from vigil.bots.core.case_service import role_refusal
from vigil.bots.core.cases import Actor, CaseAction, Cases
from vigil.bots.core.clock import Clock, utc_now
from vigil.bots.core.ingest import ShedReason, ShedResult
from vigil.bots.core.models import ChatMessage
from vigil.bots.core.monitor import Monitor
from vigil.bots.core.ports import AlertSink, MessageHandler, PlatformStore
from vigil.bots.http.guard import (
    HEADER_TIMEOUT_S,
    KEEPALIVE_TIMEOUT_S,
    ConnectionGuard,
    payload_free_logger,
)
from vigil.bots.slack.access import Access, RoleResolver
from vigil.bots.slack.blocks import (
    ACTION_CLAIM,
    ACTION_CONFIRM,
    ACTION_DISMISS,
    ACTION_ESCALATE,
    ACTION_SNOOZE,
    ACTION_TRANSCRIPT,
    DISMISS_CALLBACK,
    DISMISS_REASON_ACTION,
    DISMISS_REASON_BLOCK,
    REPORT_CALLBACK,
    Block,
    DismissMetadata,
    dismiss_modal,
    escalation_guidance,
    parse_dismiss_metadata,
    refusal_modal,
)
from vigil.bots.slack.catch_up import CatchUpOptions, catch_up_window, read_missed
from vigil.bots.slack.commands import COMMAND, Reply, VigilCommands
from vigil.bots.slack.installation_store import VigilInstallationStore, VigilOAuthStateStore
from vigil.bots.slack.shared_files import SWEEP_INTERVAL, SharedFiles
from vigil.bots.slack.sink import SlackSink
from vigil.bots.slack.translate import (
    PLATFORM,
    DeletedMessage,
    to_chat_message,
    to_deleted_message,
    to_edited_message,
)
from vigil.bots.slack.web import (
    WEB_API_ERRORS,
    DeliveryHealth,
    InstallationClients,
    SlackClients,
    TokenClients,
    classify_failure,
    permanent_failure,
    quiet_sdk_logger,
)
from vigil.config.settings import Secret, Secrets, SlackSettings

__all__ = [
    "BOT_SCOPES",
    "EVENTS_PATH",
    "INSTALL_PATH",
    "REDIRECT_PATH",
    "SlackAdapter",
    "SlackAdapterError",
    "SlackOAuthCredentials",
    "read_oauth_credentials",
]

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://slack.com/api/"
EVENTS_PATH = "/slack/events"
INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
# Bolt configures a logger named after the app (level and handlers copied from ours): name it below ours,
# never the package root `vigil`, whose level it would otherwise overwrite.
BOLT_APP_NAME = "vigil.bots.slack.bolt"

# Keep in step with manifest.yaml (a test checks).
BOT_SCOPES: tuple[str, ...] = (
    "channels:history",
    "groups:history",
    "im:history",
    "mpim:history",
    "channels:read",
    "groups:read",
    # Catch-up lists the DMs and group DMs Vigil is in (users.conversations).
    "im:read",
    "mpim:read",
    "chat:write",
    # The pair chart and the transcript file go to the requester's DM with Vigil (bots.slack.private_files);
    # files:write also lets Vigil delete them there later (bots.slack.shared_files).
    "im:write",
    "files:write",
    "commands",
    "users:read",
    "usergroups:read",
)
# Messages fetched around a reported message.
_REPORT_BEFORE = 25
_REPORT_AFTER = 10
_SOCKET_RETRY_MAX_S = 60.0
# The HTTP endpoint's limits on slow and many clients. Slack sends a request whole and gives up after three
# seconds, so a body still arriving after ten is not Slack.
_HTTP_BODY_TIMEOUT_S = 10.0
_HTTP_MAX_CONNECTIONS = 64
# After an early answer aiohttp reads and drops the rest of the body for this long (its default: ten seconds).
_HTTP_LINGERING_S = 1.0
_HTTP_SERVER_LOGGER = "vigil.bots.slack.aiohttp"
# Store records, keyed by team id: when Vigil began watching the workspace (catch-up reads nothing from
# before), and the floor of a catch-up not finished yet (the next start reads from there again).
_WATCHING_SINCE = "slack.watching_since"
_CATCH_UP_FROM = "slack.catch_up_from"
# Caught-up messages handed to the handler at once.
_HAND_OVER_CHUNK = 512


class SlackAdapterError(Exception):
    """Slack cannot start: a missing secret or a token Slack refuses. The message says what to fix."""


class _NotStored(Exception):
    """A message event was not stored: raised out of the listener so that bolt answers it with an error (HTTP
    500; over Socket Mode, no ack) and Slack sends it again. Slack never redelivers an acknowledged event, so
    acknowledging it would lose the message."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SlackOAuthCredentials:
    """The app's OAuth client credentials, for multi-workspace distribution."""

    client_id: str
    client_secret: Secret
    # Only needed when the app has several redirect URLs; otherwise Slack uses the one configured.
    redirect_uri: str | None = None


def read_oauth_credentials(
    settings: SlackSettings, environ: Mapping[str, str]
) -> SlackOAuthCredentials | None:
    """The OAuth client id and secret from the environment variables the settings name (None if unset)."""
    client_id = environ.get(settings.client_id_env, "").strip()
    client_secret = environ.get(settings.client_secret_env, "").strip()
    if not client_id or not client_secret:
        return None
    return SlackOAuthCredentials(client_id=client_id, client_secret=Secret(client_secret))


# What building a bolt request raises for a body that is not a Slack payload (json.JSONDecodeError is a
# ValueError).
_UNREADABLE_BODY = (ValueError, TypeError, AttributeError, KeyError)


# The fields bolt's middleware reads before any listener runs, with the JSON types Slack sends; a value of
# another type fails inside bolt (its error handler then answers 500).
_STRING = (str,)
_TOP_LEVEL_TYPES: Mapping[str, tuple[type, ...]] = MappingProxyType(
    {
        "type": _STRING,
        "token": _STRING,
        "team_id": _STRING,
        "api_app_id": _STRING,
        "enterprise_id": _STRING,
        "event_id": _STRING,
        "is_enterprise_install": (bool,),
        "event": (dict,),
        "authorizations": (list,),
        "team": (dict,),
        "user": (dict,),
        "enterprise": (dict,),
        "channel": (dict,),
        "view": (dict,),
        "actions": (list,),
    }
)
_EVENT_TYPES: Mapping[str, tuple[type, ...]] = MappingProxyType(
    {
        "type": _STRING,
        "subtype": _STRING,
        "user": _STRING,
        "bot_id": _STRING,
        "team": _STRING,
        "channel": _STRING,
        "ts": _STRING,
        "thread_ts": _STRING,
        "text": _STRING,
        "message": (dict,),
        "previous_message": (dict,),
        "tokens": (dict,),
    }
)


def _shape_problem(body: object) -> str | None:
    """Why a parsed body cannot be a Slack payload, or None (its fields have Slack's types)."""
    if not isinstance(body, dict):
        return "not an object"
    for fields, where in ((_TOP_LEVEL_TYPES, body), (_EVENT_TYPES, body.get("event") or {})):
        if not isinstance(where, dict):
            return "event is not an object"
        for name, types in fields.items():
            value = where.get(name)
            if value is not None and not isinstance(value, types):
                return f"{name} is a {type(value).__name__}"
    authorizations = body.get("authorizations") or []
    if not all(isinstance(entry, dict) for entry in authorizations):
        return "authorizations holds a non-object"
    return None


async def _acknowledge(ack: AsyncAck) -> None:
    await ack()


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _moment(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


class _BotTokenAuthorize(AsyncAuthorize):
    """bolt's authorization with the one bot token, from one auth.test call shared by every request.

    bolt's built-in single-token authorization calls auth.test on the first request and keeps the answer only
    once it is back, so each request arriving meanwhile (a Socket Mode backlog at start) makes its own call,
    and Slack rate-limits auth.test. Here the adapter's check at start is the call, and requests that come
    before any answer share the one in flight. A failed call is not kept (the next request asks again), and
    its error reaches bolt's middleware as bolt's own did: the request is refused with bolt's message."""

    def __init__(self, *, client: AsyncWebClient) -> None:
        # AsyncAuthorize's own __init__ does nothing (and is untyped).
        self._client = client
        self._identity: AsyncSlackResponse | None = None
        self._in_flight: asyncio.Task[AsyncSlackResponse] | None = None

    async def check(self) -> AsyncSlackResponse:
        """auth.test now, or the call already in flight; a success is what requests are authorized with."""
        if self._in_flight is None:
            self._in_flight = asyncio.create_task(self._auth_test(), name="vigil-slack-auth-test")
        # Shielded: a request given up (cancelled) does not cancel the call the others wait for.
        return await asyncio.shield(self._in_flight)

    async def _auth_test(self) -> AsyncSlackResponse:
        try:
            identity = await self._client.auth_test()
        finally:
            self._in_flight = None
        self._identity = identity
        return identity

    async def __call__(
        self,
        *,
        context: AsyncBoltContext,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None,
        actor_enterprise_id: str | None = None,
        actor_team_id: str | None = None,
        actor_user_id: str | None = None,
    ) -> AuthorizeResult:
        identity = self._identity if self._identity is not None else await self.check()
        # As bolt's single-token authorization builds it: the token's identity, whatever the request's team
        # (never compared), and the request's user.
        return AuthorizeResult(
            enterprise_id=identity.get("enterprise_id"),
            team_id=identity.get("team_id"),
            bot_id=identity.get("bot_id"),
            bot_user_id=identity.get("user_id"),
            bot_token=self._client.token,
            user_id=user_id,
            bot_scopes=identity.headers.get("x-oauth-scopes"),
        )


# An installation's workspace as bolt looks it up: (enterprise id, team id), the team None for an
# organisation-wide install (one installation, one token, for every workspace of the organisation).
_InstallationKey = tuple[str | None, str | None]


@dataclass(frozen=True, slots=True)
class _AuthTest:
    """An installation's auth.test call for one token: in flight, or answered (only successes are kept)."""

    token: str
    call: asyncio.Task[AsyncSlackResponse]


class _SharedAuthTestClient:
    """A request's client as bolt's OAuth authorization sees it: ``auth_test`` is the installation's call for
    that token (see _InstallationAuthorize); anything else is the request's own client."""

    def __init__(
        self,
        *,
        client: AsyncWebClient,
        auth_test: Callable[[AsyncWebClient, str], Coroutine[Any, Any, AsyncSlackResponse]],
    ) -> None:
        self._client = client
        self._auth_test = auth_test

    async def auth_test(self, *, token: str) -> AsyncSlackResponse:
        return await self._auth_test(self._client, token)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class _InstallationAuthorize(AsyncInstallationStoreAuthorize):
    """bolt's OAuth authorization, with one auth.test call per installation's token instead of one per event.

    bolt's looks up each event's installation (kept: an uninstalled workspace's events are refused at once,
    and token rotation is bolt's) and then calls auth.test with its token, every time; its optional cache
    keeps every token it ever saw (rotated and uninstalled ones too) and lets concurrent first events each
    call. Here the answer for an installation's token is kept while its lookup finds that token, and events
    that find it while the call is in flight share the call. A failed call is not kept: the events that
    shared it are refused as bolt refused them, and the next event asks again. An installation's entry goes
    when its lookup finds nothing or Slack refuses its token, so at most one is kept per installed workspace.
    """

    def __init__(
        self,
        *,
        installation_store: VigilInstallationStore,
        client_id: str,
        client_secret: str,
        client: AsyncWebClient,
        logger: logging.Logger,
    ) -> None:
        # As AsyncApp builds its own from the installation store and OAuth settings (bolt's cache off).
        super().__init__(
            logger=logger,
            installation_store=installation_store,
            client_id=client_id,
            client_secret=client_secret,
            bot_only=True,
            client=client,
        )
        self._auth_tests: dict[_InstallationKey, _AuthTest] = {}

    async def __call__(
        self,
        *,
        context: AsyncBoltContext,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None,
        actor_enterprise_id: str | None = None,
        actor_team_id: str | None = None,
        actor_user_id: str | None = None,
    ) -> AuthorizeResult | None:
        key: _InstallationKey = (enterprise_id, None if context.is_enterprise_install else team_id)
        client = context.client

        async def auth_test(request_client: AsyncWebClient, token: str) -> AsyncSlackResponse:
            return await self._auth_test(key=key, client=request_client, token=token)

        # bolt calls auth.test through the request's client, after the lookup: for this call only, through
        # one that shares the installation's call. The request goes on with its own client.
        context["client"] = _SharedAuthTestClient(client=client, auth_test=auth_test)
        try:
            result = await super().__call__(
                context=context,
                enterprise_id=enterprise_id,
                team_id=team_id,
                user_id=user_id,
                actor_enterprise_id=actor_enterprise_id,
                actor_team_id=actor_team_id,
                actor_user_id=actor_user_id,
            )
        finally:
            context["client"] = client
        if result is None:
            # Uninstalled, revoked, or a token Slack refused: nothing to keep (a reinstall asks again).
            self._auth_tests.pop(key, None)
        return result

    async def _auth_test(
        self, *, key: _InstallationKey, client: AsyncWebClient, token: str
    ) -> AsyncSlackResponse:
        known = self._auth_tests.get(key)
        if known is None or known.token != token:
            # The first event with this token (a new install, a rotated or reinstalled token) makes the call.
            call = asyncio.create_task(client.auth_test(token=token), name="vigil-slack-auth-test")
            started = _AuthTest(token=token, call=call)
            self._auth_tests[key] = known = started
            call.add_done_callback(lambda _: self._settled(key=key, auth_test=started))
        # Shielded: an event given up (cancelled) does not cancel the call the others wait for.
        return await asyncio.shield(known.call)

    def _settled(self, *, key: _InstallationKey, auth_test: _AuthTest) -> None:
        call = auth_test.call
        # exception() also marks a failure seen, should every event that shared the call have been cancelled.
        if (call.cancelled() or call.exception() is not None) and self._auth_tests.get(key) is auth_test:
            del self._auth_tests[key]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Workspace:
    """A workspace to catch up: its id, a client with its bot token, and (OAuth) when it was installed."""

    team_id: str
    client: AsyncWebClient
    installed_at: datetime | None = None


class SlackAdapter:
    """Vigil on Slack. ``await run()`` until cancelled (or ``aclose()``); ``sink`` goes to the outbox."""

    def __init__(
        self,
        *,
        settings: SlackSettings,
        secrets: Secrets,
        handler: MessageHandler,
        monitor: Monitor,
        cases: Cases,
        store: PlatformStore,
        clock: Clock = utc_now,
        client_base_url: str | None = None,
        oauth: SlackOAuthCredentials | None = None,
        signal_labels: Mapping[str, str] | None = None,
        role_cache_s: float = 30.0,
        max_concurrent_events: int = 64,
        http_header_timeout_s: float = HEADER_TIMEOUT_S,
        http_body_timeout_s: float = _HTTP_BODY_TIMEOUT_S,
        http_max_connections: int = _HTTP_MAX_CONNECTIONS,
        catch_up: CatchUpOptions | None = None,
        shared_file_sweep: timedelta = SWEEP_INTERVAL,
    ) -> None:
        self._settings = settings
        self._handler = handler
        self._monitor = monitor
        self._cases = cases
        self._store = store
        self._clock = clock
        self._base_url = client_base_url or DEFAULT_BASE_URL
        self._sdk_logger = quiet_sdk_logger()
        self._app_token = secrets.slack_app_token
        # Caught-up messages and deletions handled at once; more wait their turn. (Live messages go straight
        # to the ingest queue, which admits or sheds each at once: its capacity bounds what is held.)
        self._event_slots = asyncio.Semaphore(max_concurrent_events)
        # Per workspace, in arrival order: a live event waits for the catch-up and takes its slot behind every
        # earlier one (asyncio.Lock is first come, first served), so one that came just after the catch-up
        # ended cannot overtake those woken by its end.
        self._arrivals: dict[str, asyncio.Lock] = {}
        # The catch-up a workspace's "still catching up" warning was logged for (once each).
        self._late_warned: dict[str, asyncio.Task[None]] = {}
        self._bot_users: set[str] = set()
        self._stop = asyncio.Event()
        self._stopped = asyncio.Event()
        self._running = False
        self._http_port: int | None = None
        self._http_header_timeout_s = http_header_timeout_s
        self._http_body_timeout_s = http_body_timeout_s
        self._http_max_connections = http_max_connections
        self._started = asyncio.Event()
        self._catch_up_options = catch_up or CatchUpOptions()
        # This run's catch-ups by team id; each waits for the connections before reading.
        self._catch_ups: dict[str, asyncio.Task[None]] = {}
        self._listening = asyncio.Event()
        self._token_team: str | None = None
        self._token_authorize: _BotTokenAuthorize | None = None
        self._installations: VigilInstallationStore | None = None
        self._problems(settings, secrets, oauth)

        self._health = DeliveryHealth()
        self._roles = RoleResolver(cache_s=role_cache_s)
        signing_secret = secrets.slack_signing_secret.reveal() if secrets.slack_signing_secret else None
        self._verifier = SignatureVerifier(signing_secret) if signing_secret else None
        clients: SlackClients
        if settings.oauth:
            assert oauth is not None
            installations = VigilInstallationStore(records=store)
            self._installations = installations
            self._client = AsyncWebClient(base_url=self._base_url, logger=self._sdk_logger)
            oauth_settings = AsyncOAuthSettings(
                client_id=oauth.client_id,
                client_secret=oauth.client_secret.reveal(),
                scopes=list(BOT_SCOPES),
                user_scopes=[],
                redirect_uri=oauth.redirect_uri,
                install_path=INSTALL_PATH,
                redirect_uri_path=REDIRECT_PATH,
                installation_store=installations,
                installation_store_bot_only=True,
                state_store=VigilOAuthStateStore(records=store, clock=clock),
                logger=self._sdk_logger,
            )
            # In place of bolt's, which calls auth.test for every event (see _InstallationAuthorize). The
            # OAuth flow does not authorize requests; its settings name the same one all the same.
            authorize = _InstallationAuthorize(
                installation_store=installations,
                client_id=oauth.client_id,
                client_secret=oauth.client_secret.reveal(),
                client=self._client,
                logger=self._sdk_logger,
            )
            oauth_settings.authorize = authorize
            self._app = AsyncApp(
                name=BOLT_APP_NAME,
                client=self._client,
                signing_secret=signing_secret or "",
                installation_store=installations,
                installation_store_bot_only=True,
                oauth_settings=oauth_settings,
                # bolt takes an AsyncAuthorize as it is (its annotation names only functions that never
                # refuse: bolt's and this one answer None for an event to refuse).
                authorize=authorize,  # type: ignore[arg-type]
                logger=self._sdk_logger,
                request_verification_enabled=settings.mode == "http",
                process_before_response=True,
            )
            self._app.enable_token_revocation_listeners()
            clients = InstallationClients(
                installation_store=installations, base_url=self._base_url, sdk_logger=self._sdk_logger
            )
        else:
            assert secrets.slack_bot_token is not None
            self._client = AsyncWebClient(
                token=secrets.slack_bot_token.reveal(), base_url=self._base_url, logger=self._sdk_logger
            )
            self._token_authorize = _BotTokenAuthorize(client=self._client)
            self._app = AsyncApp(
                name=BOLT_APP_NAME,
                # Without the token: bolt warns that a token beside `authorize` goes unused. Each request's
                # client gets it from the authorization.
                client=AsyncWebClient(base_url=self._base_url, logger=self._sdk_logger),
                # In place of bolt's single-token authorization, which calls auth.test once per request
                # until the first call answers (see _BotTokenAuthorize).
                authorize=self._token_authorize,
                signing_secret=signing_secret or "",
                logger=self._sdk_logger,
                request_verification_enabled=settings.mode == "http",
                process_before_response=True,
            )
            clients = TokenClients(self._client)
        labels = dict(signal_labels or {})
        self._files = SharedFiles(
            records=store,
            client_for=self._files_client,
            keep_for=timedelta(hours=settings.shared_file_hours),
            clock=clock,
        )
        self._file_sweep = shared_file_sweep
        self._sink = SlackSink(clients=clients, signal_labels=labels, health=self._health)
        self._commands = VigilCommands(
            store=store,
            cases=cases,
            roles=self._roles,
            health=self._health,
            default_threshold=monitor.config.policy.threshold,
            default_shadow_mode=monitor.config.policy.shadow_mode,
            model_name=monitor.model_name,
            signal_labels=labels,
            connection="Socket Mode" if settings.mode == "socket" else "HTTP",
            policy_for=monitor.policy_for_space,
            files=self._files,
            show_pending=not settings.oauth,
        )
        self._register()

    @staticmethod
    def _problems(settings: SlackSettings, secrets: Secrets, oauth: SlackOAuthCredentials | None) -> None:
        problems: list[str] = []
        if settings.oauth:
            if oauth is None:
                problems.append(
                    f"slack.oauth is on but {settings.client_id_env} / {settings.client_secret_env} "
                    "are not set"
                )
        elif secrets.slack_bot_token is None:
            problems.append(f"the bot token is missing (environment variable {settings.bot_token_env})")
        if settings.mode == "socket" and secrets.slack_app_token is None:
            problems.append(
                f"Socket Mode needs the app-level token (environment variable {settings.app_token_env})"
            )
        if settings.mode == "http" and secrets.slack_signing_secret is None:
            problems.append(
                f"HTTP mode needs the signing secret (environment variable {settings.signing_secret_env})"
            )
        if problems:
            raise SlackAdapterError("Slack cannot start: " + "; ".join(problems))

    # ------------------------------------------------------------------ public surface

    @property
    def sink(self) -> AlertSink:
        return self._sink

    @property
    def app(self) -> AsyncApp:
        return self._app

    @property
    def health(self) -> DeliveryHealth:
        """Delivery problems per workspace (what ``/vigil status`` reports)."""
        return self._health

    @property
    def shared_files(self) -> SharedFiles:
        """Files sent to moderators' DMs and their deletion (``sweep()`` runs one now, for diagnostics)."""
        return self._files

    @property
    def http_port(self) -> int | None:
        """The port the HTTP server listens on once started (useful with ``http_port = 0`` in tests)."""
        return self._http_port

    async def wait_started(self) -> None:
        await self._started.wait()

    async def wait_caught_up(self) -> None:
        """Until this run's catch-ups are over (tests and diagnostics)."""
        await self._started.wait()
        tasks = list(self._catch_ups.values())
        if tasks:
            await asyncio.wait(tasks)

    async def run(self) -> None:
        """Connect (Socket Mode) and/or serve HTTP until cancelled or ``aclose()``."""
        if self._running:
            raise RuntimeError("SlackAdapter.run() is already running")
        self._running = True
        self._stopped.clear()
        self._listening.clear()
        try:
            async with contextlib.AsyncExitStack() as stack:
                if self._token_authorize is not None:
                    await self._check_bot_token(self._token_authorize)
                stack.push_async_callback(self._stop_catch_ups)
                # Before connecting: the first run is on record even if it stops before storing anything,
                # and a message event arriving as soon as Vigil listens already knows to wait.
                await self._plan_catch_ups()
                if self._settings.mode == "http" or self._settings.oauth:
                    await self._serve_http(stack)
                if self._settings.mode == "socket":
                    await self._connect_socket(stack)
                # Stopping ends the catch-ups first (again: the callback above covers a failed start), so
                # that no request handler is left waiting for one while the server shuts down.
                stack.push_async_callback(self._stop_catch_ups)
                # Files sent to DMs before a stop are deleted on time after a restart: they are on record.
                sweeper = asyncio.create_task(
                    self._files.run(every=self._file_sweep), name="vigil-slack-shared-files"
                )
                stack.push_async_callback(_cancelled, sweeper)
                # History is read once connected: what is said from now on arrives as events too, and the
                # overlap is recognised by message id.
                self._listening.set()
                self._started.set()
                await self._stop.wait()
        finally:
            self._running = False
            self._started.clear()
            self._stopped.set()

    async def aclose(self) -> None:
        """Stop ``run()`` (if running) and release its connections."""
        self._stop.set()
        if self._running:
            await self._stopped.wait()

    # ------------------------------------------------------------------ connections

    async def _check_bot_token(self, authorize: _BotTokenAuthorize) -> None:
        try:
            # The one auth.test call bolt's requests are then authorized with.
            response = await authorize.check()
        except WEB_API_ERRORS as error:
            failure = classify_failure(error)
            if failure.permanent:
                raise SlackAdapterError(f"Slack refused the bot token: {failure.description}") from None
            logger.warning("could not check the Slack bot token yet (%s); going on", failure.description)
            return
        self._note_bot_user(_str(response.get("user_id")))
        self._token_team = _str(response.get("team_id"))
        logger.info(
            "Slack: connected as bot user %s in workspace %s",
            response.get("user_id"),
            response.get("team_id"),
        )

    async def _serve_http(self, stack: contextlib.AsyncExitStack) -> None:
        # A deadline on each request's headers and a cap on open connections (bots.http.guard).
        guard = ConnectionGuard(
            name="Slack HTTP endpoint",
            header_timeout_s=self._http_header_timeout_s,
            max_connections=self._http_max_connections,
        )
        web_app = web.Application(middlewares=[guard.middleware])
        if self._settings.mode == "http":
            web_app.router.add_post(EVENTS_PATH, self._on_http_post)
        flow = self._app.oauth_flow
        if flow is not None:
            web_app.router.add_get(flow.install_path, self._on_http_install)
            web_app.router.add_get(flow.redirect_uri_path, self._on_http_redirect)
        runner = web.AppRunner(
            web_app,
            access_log=None,
            lingering_time=_HTTP_LINGERING_S,
            keepalive_timeout=KEEPALIVE_TIMEOUT_S,
            # A request aiohttp cannot parse is logged by the error's type: its text quotes the raw bytes.
            logger=payload_free_logger(_HTTP_SERVER_LOGGER),
        )
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        # Stop listening before the runner closes the open connections (the stack unwinds last-in first).
        stack.callback(guard.close)
        # With port 0 the system picks one: the real one is returned.
        self._http_port = await guard.listen(
            runner, host=self._settings.http_host, port=self._settings.http_port
        )
        logger.info("Slack: HTTP endpoint on %s:%d", self._settings.http_host, self._http_port)

    async def _on_http_post(self, request: web.Request) -> web.Response:
        # Verified here, before bolt parses the body: bolt parses first (a body that is not JSON became a
        # 500 with a traceback) and logs the body of a request it refuses.
        try:
            # A body trickled in slowly would hold the connection and its memory.
            async with asyncio.timeout(self._http_body_timeout_s):
                body = await request.text()
        except TimeoutError:
            response = web.Response(status=408, text="the body did not arrive in time")
            # The rest of the body is not waited for: no keep-alive on this connection.
            response.force_close()
            return response
        if self._verifier is None or not self._verifier.is_valid(
            body=body,
            timestamp=request.headers.get("X-Slack-Request-Timestamp"),
            signature=request.headers.get("X-Slack-Signature"),
        ):
            logger.warning("Slack: refused a request with a missing, wrong or stale signature")
            return web.Response(status=401, text="invalid signature")
        try:
            # bolt reads ids out of the body as it builds the request: JSON that is not a Slack payload
            # (an id that is a list, a team that is true) fails there, before any listener.
            bolt_request = await to_bolt_request(request)
        except _UNREADABLE_BODY as error:
            logger.warning("Slack: a signed request's body could not be read (%s)", type(error).__name__)
            return web.Response(status=400, text="the body could not be read")
        if (problem := _shape_problem(bolt_request.body)) is not None:
            logger.warning("Slack: a signed request is not a Slack payload (%s)", problem)
            return web.Response(status=400, text="not a Slack payload")
        try:
            bolt_response: BoltResponse = await self._app.async_dispatch(bolt_request)
        except _UNREADABLE_BODY as error:
            # Raised by bolt's own middleware reading a payload of the wrong shape (an event that is not an
            # object); errors in Vigil's listeners never get here, bolt hands them to _on_error.
            logger.warning("Slack: a signed request is not a Slack payload (%s)", type(error).__name__)
            return web.Response(status=400, text="not a Slack payload")
        return await to_aiohttp_response(bolt_response)

    async def _on_http_install(self, request: web.Request) -> web.Response:
        flow = self._app.oauth_flow
        if flow is None:
            raise web.HTTPNotFound()
        return await to_aiohttp_response(await flow.handle_installation(await to_bolt_request(request)))

    async def _on_http_redirect(self, request: web.Request) -> web.Response:
        flow = self._app.oauth_flow
        if flow is None:
            raise web.HTTPNotFound()
        return await to_aiohttp_response(await flow.handle_callback(await to_bolt_request(request)))

    async def _connect_socket(self, stack: contextlib.AsyncExitStack) -> None:
        assert self._app_token is not None
        app_token = self._app_token.reveal()
        delay = 1.0
        while True:
            try:
                opened = await self._client.apps_connections_open(app_token=app_token)
                break
            except WEB_API_ERRORS as error:
                failure = classify_failure(error)
                if failure.permanent:
                    raise SlackAdapterError(
                        f"Socket Mode: Slack refused the app-level token: {failure.description} "
                        "(it must be an xapp-... token with the connections:write scope)"
                    ) from None
                logger.warning(
                    "Socket Mode: cannot connect yet (%s); retrying in %.0fs", failure.description, delay
                )
                await asyncio.sleep(failure.retry_after or delay)
                delay = min(_SOCKET_RETRY_MAX_S, delay * 2)
        handler = AsyncSocketModeHandler(
            self._app, app_token=app_token, logger=self._sdk_logger, web_client=self._client
        )
        # Use the URL just issued; the SDK issues fresh ones itself when it reconnects.
        handler.client.wss_uri = opened["url"]
        stack.push_async_callback(handler.close_async)
        await handler.connect_async()  # type: ignore[no-untyped-call]
        logger.info("Slack: connected by Socket Mode")

    async def _files_client(self, team_id: str, enterprise_id: str | None) -> AsyncWebClient | None:
        """The client whose token may delete the files Vigil shared in a workspace; None once the workspace's
        installation is gone (OAuth). With one bot token, that token (every file Vigil shared is its own)."""
        if self._installations is None:
            return self._client
        bot = await self._installations.async_find_bot(enterprise_id=enterprise_id, team_id=team_id)
        if bot is None and enterprise_id is not None:
            # An organisation-wide install: one installation for the enterprise's every workspace.
            bot = await self._installations.async_find_bot(
                enterprise_id=enterprise_id, team_id=None, is_enterprise_install=True
            )
        if bot is None or not bot.bot_token:
            return None
        return AsyncWebClient(token=bot.bot_token, base_url=self._base_url, logger=self._sdk_logger)

    # ------------------------------------------------------------------ catch-up

    async def _workspaces(self) -> list[_Workspace]:
        """The workspaces Vigil serves: the bot token's, or (OAuth) each installed one."""
        if self._installations is None:
            if self._token_team is None:
                logger.warning(
                    "Slack: the bot token could not be checked, so its workspace is unknown; messages sent "
                    "while Vigil was away are not caught up this time"
                )
                return []
            return [_Workspace(team_id=self._token_team, client=self._client)]
        workspaces: list[_Workspace] = []
        for bot in await self._installations.bots():
            # An organisation-wide (Enterprise Grid) install spans many workspaces: not caught up.
            if bot.is_enterprise_install or not bot.team_id or not bot.bot_token:
                continue
            client = AsyncWebClient(token=bot.bot_token, base_url=self._base_url, logger=self._sdk_logger)
            installed_at = datetime.fromtimestamp(bot.installed_at, UTC) if bot.installed_at else None
            workspaces.append(_Workspace(team_id=bot.team_id, client=client, installed_at=installed_at))
        return workspaces

    async def _watching_since(self, workspace: _Workspace) -> datetime | None:
        """When Vigil began watching the workspace; None the first time (recorded now, nothing read back).

        An OAuth workspace was installed through this Vigil: it has been watched since then."""
        recorded = _moment(await self._store.get_record(_WATCHING_SINCE, workspace.team_id))
        if recorded is not None:
            return recorded
        since = workspace.installed_at
        await self._store.put_record(_WATCHING_SINCE, workspace.team_id, (since or self._clock()).isoformat())
        return since

    async def _plan_catch_ups(self) -> None:
        self._catch_ups = {}
        if self._settings.catch_up_hours <= 0:
            return
        try:
            workspaces = await self._workspaces()
        except Exception as error:
            logger.error("Slack: listing the workspaces to catch up failed (%s)", type(error).__name__)
            logger.debug("catch-up planning failure", exc_info=error)
            return
        for workspace in workspaces:
            try:
                watching = await self._watching_since(workspace)
            except Exception as error:
                logger.error(
                    "Slack workspace %s: reading when Vigil began watching it failed (%s); not caught up",
                    workspace.team_id,
                    type(error).__name__,
                )
                logger.debug("watching-since failure", exc_info=error)
                continue
            self._catch_ups[workspace.team_id] = asyncio.create_task(
                self._catch_up(workspace, watching), name=f"vigil-slack-catch-up-{workspace.team_id}"
            )

    async def _stop_catch_ups(self) -> None:
        # A catch-up stopped half way leaves its floor on record: the next start reads from there again.
        tasks = [task for task in self._catch_ups.values() if not task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _caught_up(self, team_id: str, *, arrived: float) -> None:
        """A live message waits for its workspace's catch-up, so that a pair's messages are handled in the
        order they were sent. It stays unacknowledged meanwhile (acknowledged means stored): when the wait
        outlasts Slack's three seconds, Slack sends the event again, and the copy is dropped by message id.
        ``live_wait_s`` after it arrived (``arrived``: the loop's clock) it is handled anyway: out of order
        rather than lost; those queued behind it in arrival order do not wait again."""
        task = self._catch_ups.get(team_id)
        if task is None or task.done():
            return
        left = self._catch_up_options.live_wait_s - (asyncio.get_running_loop().time() - arrived)
        done, _ = await asyncio.wait({task}, timeout=max(0.0, left))
        if not done and self._late_warned.get(team_id) is not task:
            self._late_warned[team_id] = task
            logger.warning(
                "Slack workspace %s: still catching up after %.0fs; new messages are handled without waiting",
                team_id,
                self._catch_up_options.live_wait_s,
            )

    async def _catch_up(self, workspace: _Workspace, watching_since: datetime | None) -> None:
        team_id = workspace.team_id
        options = self._catch_up_options
        try:
            await self._listening.wait()
            now = self._clock()
            window = catch_up_window(
                now=now,
                hours=self._settings.catch_up_hours,
                overlap=timedelta(seconds=options.overlap_s),
                watching_since=watching_since,
                last_seen=await self._store.last_claimed_at(platform=PLATFORM, space_id=team_id),
                resume_from=_moment(await self._store.get_record(_CATCH_UP_FROM, team_id)),
            )
            if window is None:
                return
            # On record until everything read is stored: a crash or stop half way is read again next time.
            await self._store.put_record(_CATCH_UP_FROM, team_id, window.since.isoformat())
            settings = await self._store.get_space_settings(platform=PLATFORM, space_id=team_id)
            missed = await read_missed(
                workspace.client,
                team_id=team_id,
                window=window,
                ignored_channel_ids=settings.ignored_channel_ids if settings is not None else frozenset(),
                options=options,
            )
            # Handed over many at a time, in order (tasks start in creation order, slots are taken first come
            # first served), so the ingest queue batches them; in chunks, so a large catch-up does not make a
            # task per message at once. Those already stored are skipped by id.
            lost = 0
            for start in range(0, len(missed.messages), _HAND_OVER_CHUNK):
                chunk = missed.messages[start : start + _HAND_OVER_CHUNK]
                stored = await asyncio.gather(*(self._hand_over(message) for message in chunk))
                lost += stored.count(False)
            if missed.complete and not lost:
                await self._store.delete_record(_CATCH_UP_FROM, team_id)
            logger.info(
                "Slack workspace %s: caught up %d message(s) from %d of %d conversation(s), sent since %s",
                team_id,
                len(missed.messages),
                missed.with_messages,
                missed.conversations,
                window.since.isoformat(timespec="seconds"),
            )
            if lost:
                logger.error(
                    "Slack workspace %s: %d caught-up message(s) could not be stored; the next start reads "
                    "them again",
                    team_id,
                    lost,
                )
        except Exception as error:
            # By type only: an exception's text could quote a message.
            logger.error(
                "Slack workspace %s: catching up failed (%s); messages sent while Vigil was away are not "
                "scored",
                team_id,
                type(error).__name__,
            )
            logger.debug("catch-up failure", exc_info=error)

    async def _hand_over(self, message: ChatMessage) -> bool:
        """A caught-up message to the handler, as a live one; False when it was not stored."""
        try:
            async with self._event_slots:
                result = await self._handler.handle(message)
        except Exception as error:
            logger.debug("caught-up message %s not stored", message.message_id, exc_info=error)
            return False
        return not (isinstance(result, ShedResult) and result.reason is ShedReason.STOPPED)

    # ------------------------------------------------------------------ listeners

    def _register(self) -> None:
        app = self._app
        # The app processes before it responds (process_before_response), so a message event is stored
        # before Slack gets its acknowledgement: Slack never redelivers an acknowledged event. Interactions
        # are acknowledged at once and handled after (bolt's lazy listeners), inside Slack's 3 seconds.
        app.event("message")(self._on_message)
        app.command(COMMAND)(ack=_acknowledge, lazy=[self._on_command])
        for action_id in (ACTION_CLAIM, ACTION_CONFIRM, ACTION_ESCALATE, ACTION_SNOOZE, ACTION_TRANSCRIPT):
            app.action(action_id)(ack=_acknowledge, lazy=[self._on_case_action])
        app.action(ACTION_DISMISS)(ack=_acknowledge, lazy=[self._on_dismiss_button])
        # Inline: its acknowledgement carries the form's validation errors.
        app.view(DISMISS_CALLBACK)(self._on_dismiss_submit)
        app.shortcut(REPORT_CALLBACK)(ack=_acknowledge, lazy=[self._on_report])
        if not self._settings.oauth:
            # With OAuth, bolt's token revocation listeners delete the installation; with one bot token
            # there is nothing to delete, but the manifest subscribes to both and Slack disables an app
            # whose events go unacknowledged.
            app.event("app_uninstalled")(self._on_token_install_removed)
            app.event("tokens_revoked")(self._on_token_install_removed)
        app.error(self._on_error)

    async def _on_token_install_removed(self, args: AsyncArgs) -> None:
        team_id = self._team_id(args)
        if team_id is None:
            return
        # Either way the one bot token is dead. DeliveryHealth logs the ERROR once, and /vigil status shows
        # it until a delivery succeeds again (after a reinstall and the new token).
        self._health.failed(team_id, permanent_failure("token_revoked"))
        logger.info("Slack workspace %s: received %s", team_id, _str((args.event or {}).get("type")))

    async def _on_error(self, error: Exception, body: dict[str, Any]) -> None:
        if isinstance(error, _NotStored):
            return  # logged where it happened; bolt answers 500 (over Socket Mode: no ack) and Slack retries
        # Never the body: it holds message text.
        logger.error(
            "a Slack %s listener failed: %s",
            _str(body.get("type")) or "request",
            type(error).__name__,
            exc_info=error,
        )

    def _team_id(self, args: AsyncArgs) -> str | None:
        body = args.body
        return (
            _str(args.context.team_id)
            or _str(body.get("team_id"))
            or _str(_dict(body.get("team")).get("id"))
            or _str(_dict(body.get("user")).get("team_id"))
        )

    def _note_bot_user(self, user_id: str | None) -> None:
        if user_id and user_id not in self._bot_users:
            self._bot_users.add(user_id)
            self._monitor.register_bot_user(platform=PLATFORM, user_id=user_id)

    async def _access(self, client: AsyncWebClient, *, team_id: str, user_id: str) -> Access:
        settings = await self._store.get_space_settings(platform=PLATFORM, space_id=team_id)
        return await self._roles.access(client, team_id=team_id, user_id=user_id, settings=settings)

    async def _on_message(self, args: AsyncArgs) -> None:
        self._note_bot_user(_str(args.context.bot_user_id))
        event = args.event or {}
        team_id = self._team_id(args)
        if team_id is None:
            return
        subtype = event.get("subtype")
        if subtype == "message_changed":
            message = to_edited_message(event, team_id=team_id)
        elif subtype == "message_deleted":
            deleted = to_deleted_message(event, team_id=team_id)
            if deleted is not None:
                await (await self._in_arrival_order(team_id, lambda: self._forget(deleted)))
            return
        else:
            message = to_chat_message(event, team_id=team_id)
        if message is not None:
            chat = message
            await (await self._in_arrival_order(team_id, lambda: self._ingest(chat)))

    async def _in_arrival_order(
        self, team_id: str, start: Callable[[], Coroutine[Any, Any, None]]
    ) -> asyncio.Task[None]:
        """Start handling a live event once its workspace's catch-up is over, behind every earlier event.

        Handling starts as a task created under the workspace's arrival lock: tasks start in the order they
        are created, so the ingest queue admits messages in the order they came (turn-taking pairs depend on
        it). The queue admits or sheds each one at once, so a flood never piles up here: what is held is
        bounded by its capacity. The caller awaits the task (acknowledged means stored)."""
        arrived = asyncio.get_running_loop().time()
        async with self._arrivals.setdefault(team_id, asyncio.Lock()):
            await self._caught_up(team_id, arrived=arrived)
            return asyncio.create_task(start())

    async def _ingest(self, message: ChatMessage) -> None:
        """Hand the message on; raise ``_NotStored`` when it was not stored, so Slack sends it again."""
        try:
            result = await self._handler.handle(message)
        except Exception as error:
            # Logged by type only: an exception's text could quote the message.
            logger.error(
                "a Slack message (%s) could not be stored (%s); left unacknowledged for Slack to send again",
                message.message_id,
                type(error).__name__,
            )
            logger.debug("handling failure", exc_info=error)
            raise _NotStored from None
        if isinstance(result, ShedResult) and result.reason is ShedReason.STOPPED:
            # Vigil is stopping: the next start gets it from Slack. (Chatter shed in a flood is acknowledged:
            # shedding is the documented answer to overload, and retries would only add to the flood.)
            raise _NotStored

    async def _forget(self, deleted: DeletedMessage) -> None:
        """A member deleted a message: it leaves the pairs' windows, unless a case is open on the pair.

        The rule (as on Discord, applied by the store's ``forget_message``): while a pair has an open case
        (open, claimed, confirmed or escalated) its conversation is evidence and a deleted message stays for
        moderators; otherwise the message and its edited versions leave the window. Excerpts already in an
        alert stay there.
        """
        try:
            async with self._event_slots:
                removed = await self._store.forget_message(
                    platform=PLATFORM,
                    space_id=deleted.team_id,
                    message_id=deleted.message_id,
                    now=self._clock(),
                )
        except Exception as error:
            logger.error("forgetting a deleted Slack message failed: %s", type(error).__name__)
            logger.debug("forgetting failure", exc_info=error)
            return
        logger.debug("deleted Slack message %s: %d window rows removed", deleted.message_id, removed)

    async def _respond(self, args: AsyncArgs, reply: Reply) -> None:
        """An ephemeral answer through the interaction's response_url."""
        try:
            await args.respond(
                text=reply.text,
                blocks=list(reply.blocks) or None,
                response_type="ephemeral",
                replace_original=False,
            )
        except WEB_API_ERRORS as error:
            logger.warning("could not answer a Slack interaction (%s)", classify_failure(error).code)

    async def _on_command(self, args: AsyncArgs) -> None:
        await args.ack()
        command = args.command or {}
        team_id = _str(command.get("team_id")) or self._team_id(args)
        user_id = _str(command.get("user_id"))
        if team_id is None or user_id is None:
            return
        reply = await self._commands.handle(
            client=args.client,
            team_id=team_id,
            user_id=user_id,
            text=str(command.get("text") or ""),
            enterprise_id=_str(args.context.enterprise_id) or _str(command.get("enterprise_id")),
        )
        await self._respond(args, reply)

    async def _on_dismiss_button(self, args: AsyncArgs) -> None:
        await args.ack()
        body = args.body
        action = args.action or {}
        team_id = self._team_id(args)
        case_number = _case_number(action.get("value"))
        trigger_id = _str(body.get("trigger_id"))
        if team_id is None or case_number is None or trigger_id is None:
            return
        channel_id = _str(_dict(body.get("channel")).get("id"))
        meta = DismissMetadata(team_id=team_id, case_number=case_number, channel_id=channel_id)
        try:
            # The trigger expires three seconds after the click: open the modal before anything else (looking
            # up the clicker's roles can take longer than that).
            opened = await args.client.views_open(trigger_id=trigger_id, view=dismiss_modal(meta))
        except WEB_API_ERRORS as error:
            failure = classify_failure(error)
            logger.warning("could not open the dismiss dialog (%s)", failure.code)
            await self._respond(
                args, Reply(text=f"Could not open the dismiss dialog ({failure.code}); try again.")
            )
            return
        user_id = _str(_dict(body.get("user")).get("id"))
        view_id = _str(_dict(opened.get("view")).get("id"))
        if user_id is None or view_id is None:
            return
        access = await self._access(args.client, team_id=team_id, user_id=user_id)
        refused = role_refusal(access.actor, CaseAction.DISMISS)
        if refused is None:
            return
        # Someone who may not dismiss sees why at once, instead of a form that is refused once filled in.
        try:
            await args.client.views_update(
                view_id=view_id, view=refusal_modal(case_number=case_number, message=refused)
            )
        except WEB_API_ERRORS as error:
            # The submission is still refused by the case service.
            logger.warning("could not replace the dismiss dialog (%s)", classify_failure(error).code)

    async def _on_dismiss_submit(self, args: AsyncArgs) -> None:
        view = args.view or {}
        meta = parse_dismiss_metadata(str(view.get("private_metadata") or ""))
        user_id = _str(_dict(args.body.get("user")).get("id"))
        values = _dict(_dict(view.get("state")).get("values"))
        reason = str(
            _dict(_dict(values.get(DISMISS_REASON_BLOCK)).get(DISMISS_REASON_ACTION)).get("value") or ""
        )
        if meta is None or user_id is None:
            await args.ack()
            return
        if not reason.strip():
            await args.ack(response_action="errors", errors={DISMISS_REASON_BLOCK: "Please say why."})
            return
        access = await self._access(args.client, team_id=meta.team_id, user_id=user_id)
        result = await self._cases.act(
            actor=access.actor, case_number=meta.case_number, action=CaseAction.DISMISS, reason=reason.strip()
        )
        if not result.ok:
            await args.ack(
                response_action="errors",
                errors={DISMISS_REASON_BLOCK: (result.message or "This case cannot be dismissed.")[:150]},
            )
            return
        await args.ack()
        if meta.channel_id is not None:
            with contextlib.suppress(*WEB_API_ERRORS):
                await args.client.chat_postEphemeral(
                    channel=meta.channel_id,
                    user=user_id,
                    text=result.message or f"Case #{meta.case_number} dismissed.",
                )

    async def _on_case_action(self, args: AsyncArgs) -> None:
        await args.ack()
        action = args.action or {}
        action_id = _str(action.get("action_id"))
        team_id = self._team_id(args)
        user_id = _str(_dict(args.body.get("user")).get("id"))
        if action_id == ACTION_SNOOZE:
            raw = str(_dict(action.get("selected_option")).get("value") or "")
            case_text, _, hours_text = raw.partition(":")
            case_number = _case_number(case_text)
            hours = int(hours_text) if hours_text.isdigit() else None
        else:
            case_number = _case_number(action.get("value"))
            hours = None
        if team_id is None or user_id is None or case_number is None or action_id is None:
            return
        access = await self._access(args.client, team_id=team_id, user_id=user_id)
        enterprise_id = _str(args.context.enterprise_id)
        reply = await self._case_action(
            args.client, access.actor, action_id, case_number, hours, enterprise_id=enterprise_id
        )
        await self._respond(args, reply)

    async def _case_action(
        self,
        client: AsyncWebClient,
        actor: Actor,
        action_id: str,
        case_number: int,
        hours: int | None,
        *,
        enterprise_id: str | None,
    ) -> Reply:
        if action_id == ACTION_TRANSCRIPT:
            return await self._commands.send_transcript(
                client, actor=actor, case_number=case_number, enterprise_id=enterprise_id
            )
        if action_id == ACTION_SNOOZE:
            if hours is None:
                return Reply(text="Choose how long to snooze the pair.")
            result = await self._cases.act(
                actor=actor,
                case_number=case_number,
                action=CaseAction.SNOOZE,
                snooze_for=timedelta(hours=hours),
            )
            return Reply(
                text=result.message or (f"Pair snoozed for {hours} hours." if result.ok else "Not snoozed.")
            )
        action = {
            ACTION_CLAIM: CaseAction.CLAIM,
            ACTION_CONFIRM: CaseAction.CONFIRM,
            ACTION_ESCALATE: CaseAction.ESCALATE,
        }[action_id]
        result = await self._cases.act(actor=actor, case_number=case_number, action=action)
        text = result.message or (
            f"Case #{case_number}: {action.value} done." if result.ok else "That did not work."
        )
        if result.ok and action is CaseAction.ESCALATE:
            hold = result.case.hold_until if result.case is not None else None
            blocks: tuple[Block, ...] = (
                {
                    "type": "section",
                    "text": {
                        "type": "mrkdwn",
                        "text": escalation_guidance(case_number=case_number, hold_until=hold),
                    },
                },
            )
            return Reply(text=text, blocks=blocks)
        return Reply(text=text)

    async def _on_report(self, args: AsyncArgs) -> None:
        await args.ack()
        body = args.body
        team_id = self._team_id(args)
        reporter_id = _str(_dict(body.get("user")).get("id"))
        channel_id = _str(_dict(body.get("channel")).get("id"))
        reported = _dict(body.get("message"))
        if team_id is None or reporter_id is None or channel_id is None:
            return
        author_id = _str(reported.get("user"))
        if author_id is None or reported.get("bot_id") or author_id in self._bot_users:
            await self._respond(args, Reply(text="Only messages written by members can be reported."))
            return
        if author_id == reporter_id:
            await self._respond(
                args, Reply(text="Use this on a message written by the person you are worried about.")
            )
            return
        messages = await self._conversation_around(
            args.client, team_id=team_id, channel_id=channel_id, reported=reported, reporter_id=reporter_id
        )
        # Any member may report: no role is needed, so none is looked up.
        reporter = Actor(platform=PLATFORM, space_id=team_id, user_id=reporter_id, roles=frozenset())
        result = await self._cases.report(reporter=reporter, reported_user_id=author_id, messages=messages)
        if result.ok:
            text = (
                "Thank you. Your report went to the moderators, who will look at the conversation. "
                "Only they can see it; the person you reported is not told.\n"
                "If a child is in danger right now, call the local emergency number (999, 911, 112)."
            )
        else:
            text = result.message or "Your report could not be sent. Please tell a moderator directly."
        await self._respond(args, Reply(text=text))

    async def _conversation_around(
        self,
        client: AsyncWebClient,
        *,
        team_id: str,
        channel_id: str,
        reported: Mapping[str, Any],
        reporter_id: str,
    ) -> list[ChatMessage]:
        """The reported message and the conversation around it that Vigil may read (DMs: the message)."""
        ts = _str(reported.get("ts")) or ""
        thread_ts = _str(reported.get("thread_ts"))
        raw: list[Mapping[str, Any]] = []
        try:
            if thread_ts is not None:
                replies = await client.conversations_replies(channel=channel_id, ts=thread_ts, limit=200)
                raw = [m for m in replies.get("messages") or [] if isinstance(m, Mapping)]
                position = next((i for i, m in enumerate(raw) if m.get("ts") == ts), len(raw) - 1)
                raw = raw[max(0, position - _REPORT_BEFORE) : position + _REPORT_AFTER + 1]
            else:
                before = await client.conversations_history(
                    channel=channel_id, latest=ts, inclusive=True, limit=_REPORT_BEFORE
                )
                after = await client.conversations_history(channel=channel_id, oldest=ts, limit=_REPORT_AFTER)
                newest_first = [m for m in (before.get("messages") or []) if isinstance(m, Mapping)]
                later = [m for m in (after.get("messages") or []) if isinstance(m, Mapping)]
                raw = [*reversed(newest_first), *sorted(later, key=lambda m: str(m.get("ts")))]
        except WEB_API_ERRORS as error:
            # DMs and private channels Vigil is not in: the reported message itself is all there is.
            logger.info(
                "reported conversation not readable (%s); reporting the message alone",
                classify_failure(error).code,
            )
            raw = []
        by_ts: dict[str, Mapping[str, Any]] = {str(m.get("ts")): m for m in raw}
        by_ts.setdefault(ts, reported)
        messages = [
            translated
            for m in sorted(by_ts.values(), key=lambda m: float(str(m.get("ts") or 0)))
            if (translated := to_chat_message({**m, "channel": channel_id}, team_id=team_id)) is not None
        ]
        if channel_id.startswith("D"):
            # A one-to-one DM: its two people are the reporter and the author.
            author_id = _str(reported.get("user"))
            messages = [_with_dm_partner(m, reporter_id=reporter_id, author_id=author_id) for m in messages]
        return messages


async def _cancelled(task: asyncio.Task[None]) -> None:
    """Cancel a background task and wait until it has stopped."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _with_dm_partner(message: ChatMessage, *, reporter_id: str, author_id: str | None) -> ChatMessage:
    if author_id is None:
        return message
    partner = reporter_id if message.author_id == author_id else author_id
    if partner == message.author_id:
        return message
    return dataclasses.replace(message, is_dm=True, recipient_ids=(partner,))


def _case_number(value: object) -> int | None:
    text = str(value or "").strip().lstrip("#")
    return int(text) if text.isdigit() else None
