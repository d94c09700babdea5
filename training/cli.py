"""The end every training command shares: one logging setup, a clear error instead of a traceback for bad
input (exit 2), and the run's report as JSON on standard output."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Mapping
from typing import Any


def run_reported(
    run: Callable[[argparse.Namespace], Mapping[str, Any]], args: argparse.Namespace, *, prog: str
) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        report = run(args)
    except (ValueError, OSError) as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2))
    return 0
