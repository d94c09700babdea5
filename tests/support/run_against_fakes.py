"""``vigil`` as a separate process, with Discord and Slack pointed at the tests' local fakes.

    python -m tests.support.run_against_fakes [--discord-api URL --discord-gateway URL] [--slack-api URL] \\
        -- --config vigil.toml run

Everything after ``--`` goes to the real CLI (``vigil.bots.cli.main``), so the process is ``vigil run`` as
users start it; only the two platforms' base URLs differ, set the same way the in-process tests set them
(``discord.http.Route.BASE``, ``DiscordWebSocket.DEFAULT_GATEWAY``, the Slack adapter's default Web API URL).
The crash suites kill this process with SIGKILL and start it again.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import discord.gateway
import discord.http
import yarl

import vigil.bots.slack.app
from vigil.bots.cli import main as vigil_main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run_against_fakes")
    parser.add_argument(
        "--discord-api", help="the fake Discord's REST base, e.g. http://127.0.0.1:PORT/api/v10"
    )
    parser.add_argument(
        "--discord-gateway", help="the fake Discord's gateway, e.g. ws://127.0.0.1:PORT/gateway"
    )
    parser.add_argument("--slack-api", help="the fake Slack Web API's base, e.g. http://127.0.0.1:PORT/api/")
    parser.add_argument("vigil_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.discord_api:
        discord.http.Route.BASE = args.discord_api  # type: ignore[misc]
    if args.discord_gateway:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(args.discord_gateway)
    if args.slack_api:
        vigil.bots.slack.app.DEFAULT_BASE_URL = args.slack_api  # type: ignore[misc]
    rest = list(args.vigil_args)
    if rest[:1] == ["--"]:
        rest = rest[1:]
    return vigil_main(rest)


if __name__ == "__main__":
    sys.exit(main())
