"""The ``looptime-tasks`` console script (also ``python -m looptime_tasks``).

Design decision: this module only dispatches sub-commands. ``simulate`` is
`looptime_tasks.simulation.main` with the script path taken from the arguments, so that a script
run as ``python SCRIPT.py`` and the same script run through the command accept the same options
and behave the same. Exit statuses follow argparse: 2 for usage errors.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import looptime_tasks
from looptime_tasks import simulation

__all__ = ("main",)

PROG = "looptime-tasks"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Tools for looptime_tasks: background loops on a virtual-time event loop. "
            "Run `looptime-tasks simulate --help` for the simulation script contract."
        ),
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {looptime_tasks.__version__}"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "simulate",
        help="run a simulation script on virtual time and print its timeline",
        add_help=False,  # `simulate --help` is answered by simulation.main
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``looptime-tasks`` command; return its exit status.

    Args:
        argv: The arguments (default ``sys.argv[1:]``).
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] == "simulate":
        return simulation.main(None, arguments[1:], prog=f"{PROG} simulate")
    parser = _parser()
    parser.parse_args(arguments)
    parser.print_help()
    return 2
