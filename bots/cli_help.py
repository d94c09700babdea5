"""How each ``vigil`` subcommand introduces itself in ``--help``: its summary, then worked examples."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

__all__ = ["PLATFORM_HELP", "add_command"]

PLATFORM_HELP = "discord, slack, or the name a platform sends to the HTTP API (e.g. chatapp)"


def add_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    *,
    summary: str,
    examples: Sequence[str] = (),
) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` opens with ``summary`` and ends with worked ``examples``."""
    epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples) if examples else None
    return subparsers.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + ".",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
