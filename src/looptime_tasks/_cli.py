"""The command line: ``looptime-tasks`` (also ``python -m looptime_tasks``) and its sub-commands.

Design decisions:

- ``simulate`` is `simulate_main` (``looptime_tasks.simulation.main``) with the script path taken
  from the arguments, so that a script run as ``python SCRIPT.py`` and the same script run
  through the command accept the same options and behave the same.
- Exit statuses follow argparse: 2 for usage errors.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import timedelta, tzinfo
from pathlib import Path
from typing import IO, Any, Final

import looptime_tasks
from looptime_tasks._explore import explore, parse_seeds
from looptime_tasks._script import (
    SCRIPT_CONTRACT,
    ScriptError,
    World,
    failing_line,
    load_script,
    parse_duration,
    parse_latency,
    parse_start,
    run_script,
)
from looptime_tasks._units import HORIZON_SECONDS
from looptime_tasks._zones import parse_zone

__all__ = ("PROG", "explore_main", "main", "simulate_main")

PROG: Final = "looptime-tasks"


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
        add_help=False,  # `simulate --help` is answered by simulate_main
    )
    commands.add_parser(
        "explore",
        help="run a simulation script's check once per seed, in parallel; list the failures",
        add_help=False,  # answered by explore_main
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``looptime-tasks`` command; return its exit status.

    Args:
        argv: The arguments (default ``sys.argv[1:]``).
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] == "simulate":
        return simulate_main(None, arguments[1:], prog=f"{PROG} simulate")
    if arguments and arguments[0] == "explore":
        return explore_main(arguments[1:], prog=f"{PROG} explore")
    parser = _parser()
    parser.parse_args(arguments)
    parser.print_help()
    return 2


# simulate ------------------------------------------------------------------------------------


def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0 (got {text!r})") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0 (got {text!r})")
    return value


def _length(unit: str) -> Callable[[str], timedelta]:
    """``--days`` and ``--hours``: a number > 0 of *unit*, as a timedelta."""

    def convert(text: str) -> timedelta:
        try:
            return _within_horizon(timedelta(**{unit: _positive_number(text)}), text)
        except OverflowError:  # beyond timedelta's own range
            raise argparse.ArgumentTypeError(_TOO_LONG.format(text)) from None

    return convert


def _duration(text: str) -> timedelta:
    """``--duration``: an ISO-8601 duration (`parse_duration`)."""
    try:
        length = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    except OverflowError:
        raise argparse.ArgumentTypeError(_TOO_LONG.format(text)) from None
    return _within_horizon(length, text)


_TOO_LONG: Final = (
    "must be under 2**33 seconds (about 272 years), the virtual clock's horizon (got {!r})"
)


def _within_horizon(length: timedelta, text: str) -> timedelta:
    if length.total_seconds() >= HORIZON_SECONDS:
        raise argparse.ArgumentTypeError(_TOO_LONG.format(text))
    return length


def _count(text: str) -> int:
    """``--show``: a whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0 (got {text!r})")
    return value


def _output_file(text: str) -> Path:
    """An output file's path, checked before the simulation runs rather than after it."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"is a folder, not a file (got {text!r})")
    folder = path.absolute().parent
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"no such folder: {str(folder)!r} (got {text!r})")
    return path


def _argument_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def _make_parser(prog: str | None, *, with_path: bool) -> argparse.ArgumentParser:
    """The parser of ``looptime-tasks simulate`` (and of ``python SCRIPT.py``)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run a simulation script on virtual time and print its timeline.",
        epilog=SCRIPT_CONTRACT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if with_path:
        parser.add_argument("path", metavar="PATH", help="the simulation script to run")
    _add_window_arguments(parser)
    parser.add_argument(
        "--seed", metavar="N", type=int, help="seed of the event loop's random generator"
    )
    _add_world_arguments(parser)
    parser.add_argument(
        "--tz",
        metavar="ZONE",
        type=_argument_type(parse_zone),
        help="show times in this zone, e.g. Europe/London (default: the script's TZ, or UTC)",
    )
    parser.add_argument(
        "--show",
        metavar="N",
        type=_count,
        default=10,
        help="list the first N and last N runs (default: 10)",
    )
    parser.add_argument(
        "--json", metavar="FILE", type=_output_file, help="write the timeline as JSON"
    )
    parser.add_argument(
        "--csv", metavar="FILE", type=_output_file, help="write one CSV row per run"
    )
    parser.add_argument(
        "--plot",
        metavar="FILE",
        type=_output_file,
        help="draw the timeline as a PNG (needs: pip install 'looptime-tasks[plot]')",
    )
    return parser


def _add_window_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--start",
        metavar="ISO",
        type=_argument_type(parse_start),
        help="start instant, e.g. 2024-03-09 or 2024-03-09T12:00+01:00 (no offset: UTC); "
        "overrides START",
    )
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--days", metavar="N", type=_length("days"), help="simulate N days")
    length.add_argument("--hours", metavar="N", type=_length("hours"), help="simulate N hours")
    length.add_argument(
        "--duration",
        metavar="ISO8601",
        type=_duration,
        help="simulate this long, e.g. P7D, PT36H, P1DT12H; overrides DURATION",
    )


def _window_duration(args: argparse.Namespace) -> timedelta | None:
    """The duration ``--days``, ``--hours`` or ``--duration`` asks for, or None."""
    duration: timedelta | None = args.days or args.hours or args.duration
    return duration


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a probability from 0 to 1 (got {text!r})")
    return value


def _add_world_arguments(parser: argparse.ArgumentParser) -> None:
    """The fault and interleaving options (`World`), shared by simulate and explore."""
    faults = parser.add_argument_group("faults and interleavings (drawn from the seed)")
    faults.add_argument(
        "--http-errors",
        metavar="P",
        type=_probability,
        default=0.0,
        help="each HTTP call of a fake bot fails with probability P (5xx or 429)",
    )
    faults.add_argument(
        "--latency",
        metavar="SECONDS",
        type=_argument_type(parse_latency),
        default=0.0,
        help="each HTTP call of a fake bot takes SECONDS, or LOW..HIGH drawn uniformly",
    )
    faults.add_argument(
        "--outages",
        metavar="HOURS",
        type=_positive_number,
        help="random gateway outages of the fake bots, HOURS apart on average",
    )
    faults.add_argument(
        "--shuffle",
        action="store_true",
        help="run callbacks ready at the same time in a seeded order",
    )


def _world(parser: argparse.ArgumentParser, args: argparse.Namespace) -> World:
    """The `World` the arguments ask for (usage error if the event loop cannot build it)."""
    world = World(args.http_errors, args.latency, args.outages, args.shuffle)
    try:
        world.simulate_options()
    except ValueError as exc:
        parser.error(str(exc))
    return world


_PROGRESS_DELAY = 0.5
"""Real seconds a command-line simulation runs before its progress bar appears (on a TTY)."""


_BAR_WIDTH: Final = 30


def _bar(fraction: float) -> str:
    """A progress bar: ``[###---…]``, *fraction* (0.0 to 1.0) of it filled."""
    filled = round(fraction * _BAR_WIDTH)
    return f"[{'#' * filled}{'-' * (_BAR_WIDTH - filled)}]"


class _ProgressBar:
    """A one-line progress bar on a terminal, drawn only once a run has taken a while."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._began = time.perf_counter()
        self._delay = _PROGRESS_DELAY
        self._last = 0.0
        self._drawn = False

    def __call__(self, fraction: float) -> None:
        now = time.perf_counter()
        if now - self._began < self._delay or now - self._last < 0.1:
            return
        self._last = now
        self._stream.write(f"\rsimulating {_bar(fraction)} {fraction:4.0%}")
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self._stream.write("\r" + " " * (_BAR_WIDTH + 20) + "\r")
            self._stream.flush()
            self._drawn = False


def _run_command(
    parser: argparse.ArgumentParser, args: argparse.Namespace, path: str | os.PathLike[str]
) -> int:
    try:
        script = load_script(path)
    except ScriptError as exc:
        parser.error(str(exc))
    duration = _window_duration(args)
    tz: tzinfo = args.tz if args.tz is not None else script.tz
    world = _world(parser, args)
    bar = _ProgressBar(sys.stderr) if sys.stderr.isatty() else None
    try:
        timeline = run_script(
            script,
            start=args.start,
            duration=duration,
            seed=script.seed if args.seed is None else args.seed,
            progress=bar,
            world=world,
        )
    except Exception as exc:
        if bar is not None:
            bar.close()
        traceback.print_exc()
        print(
            f"error: the simulation raised ({failing_line(exc, script.path)}): "
            f"{type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
        return 1
    if bar is not None:
        bar.close()
    if script.description:
        print(script.description, end="\n\n")
    print(timeline.summary(tz=tz, show=args.show))
    try:
        if script.report is not None:
            extra = script.report(timeline)
            if extra:
                print()
                print(extra)
        for option, write in (
            (args.json, timeline.write_json),
            (args.csv, timeline.write_csv),
            (args.plot, lambda target: timeline.plot(target, tz=tz)),
        ):
            if option is not None:
                print(f"wrote {write(option)}")
        if script.check is not None:
            script.check(timeline)
    except AssertionError as exc:
        message = str(exc) or "assertion failed"
        print(f"check failed ({failing_line(exc, script.path)}): {message}", file=sys.stderr)
        return 1
    except (ImportError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        traceback.print_exc()
        print(
            f"error: the script's check or report raised ({failing_line(exc, script.path)}): "
            f"{type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
        return 1
    if script.check is not None:
        print("check passed")
    return 0


def simulate_main(
    script: str | os.PathLike[str] | None = None,
    argv: Sequence[str] | None = None,
    *,
    prog: str | None = None,
) -> int:
    """Run a simulation script from the command line; return the exit status.

    A script ends with ``raise SystemExit(looptime_tasks.simulation.main(__file__))``; the
    ``looptime-tasks simulate`` command calls it with no *script* (the path is then the first
    argument).

    Args:
        script: The script's path, or None to take it from the arguments.
        argv: The arguments (default ``sys.argv[1:]``).
        prog: The program name shown in usage and errors.

    Returns:
        0 if the simulation ran and the script's check passed; 1 if the check failed or the
        simulation raised. Bad arguments and unloadable scripts exit with status 2 (SystemExit).
    """
    if prog is None and script is not None:
        prog = f"python {script}"
    parser = _make_parser(prog, with_path=script is None)
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        return _run_command(parser, args, script if script is not None else args.path)
    except BrokenPipeError:
        # `... | head`: the reader left. Say nothing more (Python would report it at exit).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


# explore -------------------------------------------------------------------------------------


def _explore_parser(prog: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Run a simulation script's check() once per seed, in parallel worker processes, "
            "each seed drawing its own faults and interleavings. Prints how many seeds passed "
            "and, for each failing seed, its error and the command that replays it (same "
            "failure, same timeline). Exit status 1 if any seed failed."
        ),
    )
    parser.add_argument("path", metavar="PATH", help="the simulation script to explore")
    parser.add_argument(
        "--seeds",
        metavar="N|A..B",
        type=_argument_type(parse_seeds),
        default=range(100),
        help="seeds 0 to N-1, or A to B-1 (default: 100)",
    )
    parser.add_argument(
        "--jobs",
        metavar="J",
        type=_positive_int,
        help="worker processes (default: the number of CPUs)",
    )
    parser.add_argument("--stop-first", action="store_true", help="stop at the first failing seed")
    parser.add_argument(
        "--json", metavar="FILE", type=_output_file, help="write every seed's result as JSON"
    )
    _add_window_arguments(parser)
    _add_world_arguments(parser)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1 (got {text!r})")
    return value


class _SweepProgress:
    """Progress of a sweep on stderr: a bar on a terminal, else a plain line every 10 %."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._step = 0

    def __call__(self, done: int, total: int, failed: int) -> None:
        if self._tty:
            self._stream.write(
                f"\rexploring {_bar(done / total)} {done}/{total} seeds, {failed} failed"
            )
        elif done * 10 // total > self._step or done == total:
            self._step = done * 10 // total
            self._stream.write(f"explored {done}/{total} seeds, {failed} failed\n")
        self._stream.flush()

    def close(self) -> None:
        if self._tty:
            self._stream.write("\n")
            self._stream.flush()


def explore_main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Run ``looptime-tasks explore``; return the exit status (1 if any seed failed).

    Args:
        argv: The arguments (default ``sys.argv[1:]``).
        prog: The program name shown in usage and errors.
    """
    parser = _explore_parser(prog)
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    world = _world(parser, args)
    progress = _SweepProgress(sys.stderr)
    try:
        exploration = explore(
            args.path,
            args.seeds,
            jobs=args.jobs,
            stop_first=args.stop_first,
            world=world,
            start=args.start,
            duration=_window_duration(args),
            progress=progress,
        )
    except ScriptError as exc:
        parser.error(str(exc))
    finally:
        progress.close()
    print(exploration.summary())
    if args.json is not None:
        target = Path(args.json)
        target.write_text(json.dumps(exploration.to_dict(), indent=2) + "\n", encoding="utf-8")
        print(f"wrote {target}")
    return 0 if exploration.ok else 1
