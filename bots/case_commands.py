"""``vigil`` subcommands for cases, evidence, retention and erasure, run by the operator at a terminal.

The operator acts as ``cli:<os user>`` with every role: whoever can read the database file and the key can
read everything anyway. Every change is still audited under that name.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import os
import re
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from vigil.bots.app import AppError, configured_store, open_app
from vigil.bots.cli_help import PLATFORM_HELP, add_command
from vigil.bots.core.case_service import CaseService
from vigil.bots.core.cases import Actor, CaseSummary, CaseView, Role
from vigil.bots.core.charts import risk_chart_svg
from vigil.bots.core.clock import utc_now
from vigil.bots.core.evidence import export_case
from vigil.bots.core.files import make_private_dirs
from vigil.bots.core.labels import export_labels
from vigil.bots.core.models import WindowMessage
from vigil.bots.core.moderation import Denied, PairHistory
from vigil.bots.core.ports import CaseRecord, StoreError
from vigil.bots.core.retention import ForgetReport, forget, purge
from vigil.bots.progress import REKEY, Progress
from vigil.config.settings import Settings, load_settings
from vigil.detector import ModelLoadError, read_model_info, resolve_model_dir
from vigil.storage.crypto import TextCipher
from vigil.storage.sqlite import SqliteStore

if TYPE_CHECKING:
    from vigil.storage.postgres import PostgresStore

__all__ = ["CaseCommandError", "discord_message_link", "register_case_commands"]

logger = logging.getLogger(__name__)


class CaseCommandError(ValueError):
    """A problem with a case command's arguments or target, printed for the person at the terminal."""


def register_case_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``cases``, ``case``, ``export-case``, ``purge``, ``forget``, ``rekey``, ``pair`` and
    ``export-labels``."""
    cases = add_command(
        subparsers,
        "cases",
        summary="list cases (newest first)",
        examples=("vigil cases", "vigil cases --platform discord --space 1234 --user 5678"),
    )
    cases.add_argument(
        "--platform", help=f"only this platform: {PLATFORM_HELP} (with --space: one community)"
    )
    cases.add_argument("--space", help="only this community (guild, workspace, tenant); needs --platform")
    cases.add_argument("--user", help="only cases naming this user id")
    cases.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    cases.set_defaults(handler=_cases)

    case = add_command(
        subparsers,
        "case",
        summary="show one case: state, evidence and audit trail",
        examples=("vigil case discord/1234/3", "vigil case 3 --platform discord --space 1234"),
    )
    _add_case_target(case)
    case.set_defaults(handler=_case)

    export = add_command(
        subparsers,
        "export-case",
        summary="write a case's evidence pack (for NCMEC, police)",
        examples=("vigil export-case discord/1234/3 --out ./evidence",),
    )
    _add_case_target(export)
    export.add_argument("--out", required=True, help="folder to write case-<space>-<n>/ into")
    export.set_defaults(handler=_export_case)

    purge_parser = add_command(
        subparsers,
        "purge",
        summary="apply the [retention] schedule now",
        examples=("vigil purge --dry-run", "vigil purge"),
    )
    purge_parser.add_argument("--dry-run", action="store_true", help="only count what would be removed")
    purge_parser.set_defaults(handler=_purge)

    forget_parser = add_command(
        subparsers,
        "forget",
        summary="erase what Vigil keeps about a member (except what a hold preserves)",
        examples=(
            "vigil forget --platform discord --user 5678 --dry-run",
            "vigil forget --platform discord --user 5678        # shows what goes, then asks",
        ),
    )
    forget_parser.add_argument("--platform", required=True, help=PLATFORM_HELP)
    forget_parser.add_argument("--user", required=True, help="the member's platform user id")
    forget_parser.add_argument("--dry-run", action="store_true", help="only show what would be erased")
    forget_parser.add_argument(
        "--yes", action="store_true", help="erase without asking (scripts; at a terminal Vigil asks first)"
    )
    forget_parser.set_defaults(handler=_forget)

    rekey_parser = add_command(
        subparsers,
        "rekey",
        summary="re-encrypt stored text under the current key (after a key rotation)",
        examples=(
            "VIGIL_ENCRYPTION_KEY=<new> VIGIL_ENCRYPTION_OLD_KEYS=<old> vigil rekey",
            "vigil rekey        # again after an interruption: it carries on where it stopped",
        ),
    )
    rekey_parser.set_defaults(handler=_rekey)

    pair = add_command(
        subparsers,
        "pair",
        summary="what Vigil knows about two members' conversation, and why there is no alert yet",
        examples=(
            "vigil pair discord/1234 5678 9012",
            "vigil pair slack/T0123 U0AAA U0BBB --svg pair.svg     # also draws the risk chart",
        ),
    )
    pair.add_argument("space", metavar="PLATFORM/SPACE", help="the community as `vigil cases` prints it")
    pair.add_argument("first", metavar="USER", help="one member's platform user id")
    pair.add_argument("second", metavar="OTHER", help="the other member's platform user id")
    pair.add_argument("--svg", metavar="FILE", help="also write the pair's risk chart to FILE (SVG)")
    pair.set_defaults(handler=_pair)

    labels = add_command(
        subparsers,
        "export-labels",
        summary="write moderators' verdicts as pseudonymised conversations (JSON Lines)",
        examples=("vigil export-labels --out verdicts.jsonl",),
    )
    labels.add_argument("--out", required=True, help="file to write")
    labels.add_argument("--platform", help=f"only this platform: {PLATFORM_HELP}")
    labels.set_defaults(handler=_export_labels)


def _add_case_target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "case",
        nargs="+",
        metavar="CASE",
        help="the case as `vigil cases` prints it (discord/1234/3, 'discord/1234 #3'), or its number with "
        "--platform and --space",
    )
    parser.add_argument("--platform", help=PLATFORM_HELP)
    parser.add_argument("--space", help="the community (guild, workspace, tenant) id")


def parse_case_target(
    words: Sequence[str], *, platform: str | None, space: str | None
) -> tuple[str, str, int]:
    """``platform/space/N``, ``platform/space #N``, ``platform/space N`` or ``N`` with both options, as
    (platform, space, number). The shell drops an unquoted ``#3`` as a comment: that gets its own hint."""
    text = " ".join(words).strip()
    match = re.fullmatch(
        r"(?:(?P<platform>[^/\s]+)/(?P<space>\S+?)(?:\s*#\s*|\s+|/))?#?(?P<number>\d+)", text
    )
    if match is None:
        hint = (
            f" (an unquoted #N after it is a comment to the shell: write {text}/N or quote it)"
            if re.fullmatch(r"[^/\s]+/\S+", text)
            else ""
        )
        raise CaseCommandError(f"not a case: {text!r}; write platform/space/N, as `vigil cases` shows{hint}")
    number = int(match["number"])
    if match["platform"] is None:
        if not (platform and space):
            raise CaseCommandError(
                f"which community's case #{number}? write platform/space/{number}, or add --platform and "
                "--space"
            )
        return platform, space, number
    for given, written, option in (
        (platform, match["platform"], "--platform"),
        (space, match["space"], "--space"),
    ):
        if given is not None and given != written:
            raise CaseCommandError(f"{option} {given} does not match the case {text}")
    return match["platform"], match["space"], number


def _resolve_target(args: argparse.Namespace) -> None:
    args.platform, args.space, args.number = parse_case_target(
        args.case, platform=args.platform, space=args.space
    )


def discord_message_link(message: WindowMessage, *, guild_id: str) -> str:
    """The adapter's own link rule: an edit's id names the message it edited, a DM is under ``@me``."""
    # Imported here: discord.py costs every other command ~0.5 s.
    from vigil.bots.discord.translate import jump_url  # noqa: PLC0415

    return jump_url(
        space_id=guild_id,
        channel_id=message.channel_id,
        thread_id=message.thread_id,
        message_id=message.message_id,
    )


def _operator(*, platform: str, space_id: str) -> Actor:
    try:
        name = getpass.getuser()
    except (OSError, KeyError):
        name = "unknown"
    return Actor(platform=platform, space_id=space_id, user_id=f"cli:{name}", roles=frozenset(Role))


def _settings(args: argparse.Namespace) -> Settings:
    config = getattr(args, "config", None)
    return load_settings(Path(config) if config else None)


@contextlib.asynccontextmanager
async def _open_store(
    args: argparse.Namespace,
) -> AsyncIterator[tuple[Settings, SqliteStore | PostgresStore]]:
    """The configured store ([storage] backend): the SQLite file, which must exist, or the Postgres server."""
    settings = _settings(args)
    database = settings.resolved_database_path(None)
    await _check_database_exists(settings, database, allow_memory=True)
    try:
        store = configured_store(
            settings, database=database, backend=settings.storage.backend, environ=os.environ
        )
    except AppError as error:
        raise CaseCommandError(str(error)) from None
    await store.open()
    try:
        yield settings, store
    finally:
        await store.close()


async def _check_database_exists(settings: Settings, database: str, *, allow_memory: bool) -> None:
    """A SQLite file is never created by a case command (a typo would open an empty database)."""
    if settings.storage.backend != "sqlite":
        return
    if database == ":memory:" and allow_memory:
        return
    if database == ":memory:" or not await asyncio.to_thread(Path(database).exists):
        raise CaseCommandError(f"no database at {database}: check [storage] database in the config")


def _signal_labels(settings: Settings) -> dict[str, str]:
    """The configured model's plain words for its signals; without a readable model, its signal names."""
    try:
        info = read_model_info(resolve_model_dir(settings.detector.model_dir))
    except (ModelLoadError, OSError) as error:
        logger.warning("signals shown by name: the model's metadata could not be read (%s)", error)
        return {}
    return info.signal_words()


def _time(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def _summary_line(summary: CaseSummary) -> str:
    return (
        f"#{summary.case_number:<5} {summary.state.value:<10} risk {summary.risk:.2f}  "
        f"suspect {summary.suspect_id}  with {summary.other_id}  opened {_time(summary.created_at)}"
    )


def _record_line(record: CaseRecord) -> str:
    alert = record.alert
    return (
        f"{alert.key.platform}/{alert.key.space_id}/{alert.case_number:<5} {record.state.value:<10} "
        f"risk {alert.risk:.2f}  suspect {alert.suspect_id}  with {alert.other_id}  "
        f"opened {_time(alert.created_at)}"
    )


async def _cases(args: argparse.Namespace) -> int:
    if args.space and not args.platform:
        raise CaseCommandError("--space needs --platform")
    if not 1 <= args.limit <= 10_000:
        raise CaseCommandError("--limit must be between 1 and 10000")
    async with _open_store(args) as (_, store):
        if args.platform and args.space:
            service = CaseService(store=store)
            result, summaries = await service.list_cases(
                actor=_operator(platform=args.platform, space_id=args.space),
                user_id=args.user,
                limit=min(args.limit, 100),
            )
            if not result.ok:
                raise CaseCommandError(result.message)
            lines = [_summary_line(summary) for summary in summaries]
        else:
            records: list[CaseRecord] = []
            async for batch in store.iter_cases(platform=args.platform, batch=500):
                records.extend(
                    record
                    for record in batch
                    if args.user is None or args.user in (record.alert.suspect_id, *_members(record))
                )
            records.sort(key=lambda record: record.alert.created_at, reverse=True)
            lines = [_record_line(record) for record in records[: args.limit]]
    print("\n".join(lines) if lines else "no cases")
    return 0


def _members(record: CaseRecord) -> tuple[str, str]:
    return record.alert.key.user_a, record.alert.key.user_b


async def _case(args: argparse.Namespace) -> int:
    _resolve_target(args)
    async with _open_store(args) as (settings, store):
        service = CaseService(store=store, hold_period=settings.retention.schedule().hold_period)
        actor = _operator(platform=args.platform, space_id=args.space)
        result = await service.get(actor=actor, case_number=args.number)
        if result.case is None:
            raise CaseCommandError(result.message)
        record = await store.get_case(platform=args.platform, space_id=args.space, case_number=args.number)
        messages = await service.case_messages(record) if record is not None else []
    print(_render_case(result.case, messages=messages, signal_labels=_signal_labels(settings)))
    return 0


async def _pair(args: argparse.Namespace) -> int:
    platform, _, space_id = args.space.partition("/")
    if not platform or not space_id or "/" in space_id:
        raise CaseCommandError(
            f"{args.space!r}: give the community as PLATFORM/SPACE, as `vigil cases` prints it (discord/1234)"
        )
    settings = _settings(args)
    database = settings.resolved_database_path(None)
    await _check_database_exists(settings, database, allow_memory=False)
    # The app, not the bare store: the outlook is judged by the policy `vigil run` uses (the model's).
    async with open_app(settings, database=database, replay=False, backend=settings.storage.backend) as app:
        service = app.moderator_service(platform)
        answer = await service.pair_history(
            _operator(platform=platform, space_id=space_id), first=args.first, second=args.second
        )
        labels = app.signal_labels
    history = answer.value
    if history is None:
        raise CaseCommandError(
            "those are the same member: a pair is two people"
            if answer.denied is Denied.SAME_PERSON
            else f"refused: {answer.denied}"
        )
    print(render_pair(history, signal_labels=labels))
    if args.svg:
        chart = risk_chart_svg(
            history.points,
            threshold=history.threshold,
            title=f"{platform}/{space_id}: {history.key.user_a} and {history.key.user_b}",
        )
        target = Path(args.svg)
        await asyncio.to_thread(target.write_text, chart, encoding="utf-8")
        print(f"chart written to {target}")
    return 0


_SPARKS = "▁▂▃▄▅▆▇█"


def render_pair(history: PairHistory, *, signal_labels: Mapping[str, str]) -> str:
    """A pair for the terminal: who, how risky and why, the signals so far, and the trajectory."""
    key = history.key
    lines = [f"Pair {key.platform}/{key.space_id}: {key.user_a} and {key.user_b}"]
    state = history.state
    if state is None:
        lines.append("Vigil has not seen these two talking (or retention has removed them since).")
        return "\n".join(lines)
    groomer = f" · likely groomer {state.suspect_id}" if state.suspect_id else ""
    lines += [
        f"risk {state.risk:.2f}{groomer} · alert threshold {history.threshold:.2f} · "
        f"{state.message_count} messages · first {_time(state.first_seen)} · last {_time(state.last_seen)}",
        "signals so far: " + ("; ".join(signal_labels.get(n, n) for n in history.signals) or "none"),
        f"open case: #{history.open_case}" if history.open_case is not None else (history.outlook or ""),
    ]
    if history.points:
        risks = [point.risk for point in history.points]
        spark = "".join(_SPARKS[min(len(_SPARKS) - 1, int(max(0.0, r) * len(_SPARKS)))] for r in risks)
        lines.append(
            f"risk over its last {len(risks)} recorded steps: {spark}  "
            f"({risks[0]:.2f} → {risks[-1]:.2f}, peak {max(risks):.2f})"
        )
    return "\n".join(line for line in lines if line)


def _render_case(view: CaseView, *, messages: list[WindowMessage], signal_labels: Mapping[str, str]) -> str:
    alert = view.alert
    lines = [
        f"Case #{alert.case_number} · {alert.key.platform}/{alert.key.space_id} · {view.state.value} "
        f"({view.source.value})",
        f"suspect {alert.suspect_id} · with {alert.other_id} · "
        f"risk {alert.risk:.2f} (peak {alert.peak_risk:.2f})",
        f"signals: {'; '.join(signal_labels.get(n, n) for n in alert.signals) or 'none'} · "
        f"model {alert.model_name}",
        f"opened {_time(alert.created_at)} · updated {_time(alert.updated_at)} · revision {alert.revision}",
    ]
    if view.claimed_by:
        lines.append(f"claimed by {view.claimed_by}")
    if view.dismiss_reason:
        lines.append(f"dismissed: {view.dismiss_reason}")
    if view.hold_until:
        lines.append(f"preservation hold until {_time(view.hold_until)}")
    lines.append(f"\nMessages ({len(messages)}):")
    lines.extend(
        f"  {_time(m.timestamp)}  {m.author_id}{' *' if m.author_id == alert.suspect_id else ''}: {m.text}"
        for m in messages
    )
    lines.append("\nAudit trail:")
    lines.extend(
        f"  {_time(event.at)}  {event.actor_id}  {event.action}"
        + (f"  {event.before} -> {event.after}" if event.before != event.after else "")
        + (f"  ({event.detail})" if event.detail else "")
        for event in view.audit
    )
    if view.earlier_cases:
        lines.append("\nEarlier cases naming the suspect:")
        lines.extend(f"  {_summary_line(summary)}" for summary in view.earlier_cases)
    return "\n".join(lines)


async def _export_case(args: argparse.Namespace) -> int:
    _resolve_target(args)
    guild = args.space

    def link(message: WindowMessage) -> str | None:
        return discord_message_link(message, guild_id=guild) if args.platform == "discord" else None

    async with _open_store(args) as (settings, store):
        folder = await export_case(
            store,
            platform=args.platform,
            space_id=args.space,
            case_number=args.number,
            out_dir=Path(args.out),
            actor=_operator(platform=args.platform, space_id=args.space),
            message_link=link,
            signal_labels=_signal_labels(settings),
        )
    print(f"evidence pack written: {folder}")
    print(f"check it with: (cd {folder} && sha256sum -c manifest.sha256)")
    return 0


async def _purge(args: argparse.Namespace) -> int:
    async with _open_store(args) as (settings, store):
        report = await purge(
            store,
            schedule=settings.retention.schedule(),
            now=utc_now(),
            dry_run=bool(args.dry_run),
        )
    print(("Dry run: nothing was changed.\n" if report.dry_run else "") + "\n".join(report.lines()))
    return 0


async def _forget(args: argparse.Namespace) -> int:
    if not args.user.strip():
        raise CaseCommandError("--user must not be empty")
    async with _open_store(args) as (_, store):
        actor = _operator(platform=args.platform, space_id="*")

        async def erase(*, dry_run: bool) -> ForgetReport:
            return await forget(
                store, platform=args.platform, user_id=args.user, actor=actor, now=utc_now(), dry_run=dry_run
            )

        if args.dry_run:
            print("\n".join((await erase(dry_run=True)).lines()))
            return 0
        # Nothing found is still an erasure request, recorded in the audit trail without asking.
        if not args.yes and (preview := await erase(dry_run=True)).found:
            print("\n".join(preview.lines()))
            if not sys.stdin.isatty():
                raise CaseCommandError("nothing erased: add --yes to erase (this is what would go)")
            answer = await asyncio.to_thread(input, "Erase this for good? Type yes to go on: ")
            if answer.strip().lower() != "yes":
                print("nothing erased")
                return 1
        report = await erase(dry_run=False)
    print("\n".join(report.lines()))
    return 0


async def _rekey(args: argparse.Namespace) -> int:
    async with _open_store(args) as (settings, store):
        if not isinstance(store, SqliteStore):
            raise CaseCommandError("rekey is not built for the Postgres backend yet (docs/scale.md)")
        cipher = TextCipher.from_environment(settings.encryption, os.environ)
        if cipher is None:
            raise CaseCommandError(
                f"no encryption key is set ({settings.encryption.key_env}): there is nothing to re-encrypt"
            )
        try:
            with Progress("rekey", tally=REKEY, total=await store.count_rekey_rows()) as progress:
                count = await store.rekey(
                    on_batch=lambda rewritten: progress.tick(values=rewritten),
                    on_rows=lambda read: progress.tick(done=read, rows=read),
                )
        except StoreError as error:
            raise CaseCommandError(
                f"{error} Values re-encrypted before it stopped stay so; run it again."
            ) from None
        actor = _operator(platform="*", space_id="*")
        await store.append_audit(
            platform="*",
            space_id="*",
            case_number=None,
            at=utc_now(),
            actor_id=actor.user_id,
            action="rekey",
            detail=f"{count} values re-encrypted under key id {cipher.key_id}",
        )
    print(
        f"{count} values re-encrypted under key id {cipher.key_id}; every stored value now uses it. "
        f"You can remove the old keys from {settings.encryption.old_keys_env}."
    )
    return 0


async def _export_labels(args: argparse.Namespace) -> int:
    async with _open_store(args) as (_, store):
        # The file quotes messages (export_labels writes it 0600); folders created for it are owner-only too.
        await asyncio.to_thread(make_private_dirs, Path(args.out).parent)
        count = await export_labels(store, out=Path(args.out), platform=args.platform)
    print(f"{count} labelled conversations written to {args.out}")
    return 0
