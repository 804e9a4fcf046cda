"""Simulation scripts: the script contract, loading and running one, and parsing its values.

A script is a Python file with ``async def setup(sim)`` and optional constants and hooks (see
`SCRIPT_CONTRACT`). `load_script` executes and checks it and `run_script` simulates it; the
command line (`looptime_tasks._cli`) and `explore` build on these.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import math
import os
import re
import sys
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from types import ModuleType
from typing import Any, Final, Literal

from looptime_tasks._simulation import (
    DEFAULT_DURATION,
    DEFAULT_SEED,
    DEFAULT_START,
    Outages,
    SetupFunction,
    simulate,
)
from looptime_tasks._timeline import Timeline
from looptime_tasks._zones import parse_zone
from looptime_tasks.fakebot import HttpFaults

__all__ = (
    "SCRIPT_CONTRACT",
    "Script",
    "ScriptError",
    "World",
    "failing_line",
    "load_script",
    "parse_duration",
    "parse_latency",
    "parse_start",
    "run_script",
)

SCRIPT_CONTRACT: Final = """\
A simulation script is a Python file that defines:

  async def setup(sim) -> None   required. Runs on the virtual event loop at the start instant:
                                 start loops, add cogs to a fake bot (sim.fake_bot(...)), plan
                                 actions (sim.at(when, action)). The simulation then goes on
                                 until the end of the window, where every loop is cancelled.
  START = datetime(...)          optional start instant (aware datetime or ISO-8601 string);
                                 default 2024-01-01T00:00:00+00:00
  DURATION = timedelta(...)      optional virtual duration; default 7 days
  SEED = 0                       optional seed of the event loop's random generator; default 0
  TZ = "Europe/London"           optional time zone of the printed timeline; default UTC
  def check(timeline) -> None    optional: raise AssertionError when the schedule is wrong
  def report(timeline) -> str    optional: extra text printed after the summary

and ends with

  if __name__ == "__main__":
      raise SystemExit(looptime_tasks.simulation.main(__file__))

so that `python SCRIPT.py [options]` runs it too. Command-line options override the constants.
The window is half-open: [start, start + duration).

Exit status: 0 when the simulation ran and check() passed; 1 when check() failed or the
simulation raised; 2 for bad arguments or a script that cannot be loaded."""
"""The simulation script contract, as ``looptime-tasks simulate --help`` prints it."""


# Scripts -------------------------------------------------------------------------------------


class ScriptError(Exception):
    """A simulation script cannot be loaded: missing, not Python, or breaking the contract."""


@dataclasses.dataclass(frozen=True, slots=True)
class Script:
    """A loaded simulation script (see `SCRIPT_CONTRACT`).

    Attributes:
        path: The file.
        module: The executed module.
        setup: Its ``setup(sim)`` coroutine function.
        check: Its ``check(timeline)``, or None.
        report: Its ``report(timeline)``, or None.
        start: Its ``START``, or `DEFAULT_START`.
        duration: Its ``DURATION``, or `DEFAULT_DURATION`.
        seed: Its ``SEED``, or `DEFAULT_SEED`.
        tz: Its ``TZ`` (the zone the timeline is shown in), or UTC.
    """

    path: Path
    module: ModuleType
    setup: SetupFunction
    check: Callable[[Timeline], object] | None
    report: Callable[[Timeline], object] | None
    start: datetime
    duration: timedelta
    seed: int | None
    tz: tzinfo

    @property
    def description(self) -> str:
        """The first paragraph of the script's docstring (empty if it has none)."""
        return (self.module.__doc__ or "").strip().split("\n\n")[0].strip()


def _same_file(left: Path, right: object) -> bool:
    if not isinstance(right, str):
        return False
    try:
        return left.resolve() == Path(right).resolve()
    except OSError:
        return False


def failing_line(exc: BaseException, path: Path) -> str:
    """``PATH:LINE`` of the innermost frame of *exc*'s traceback in the script, else ``PATH``."""
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        if _same_file(path, frame.filename):
            return f"{path}:{frame.lineno}"
    return str(path)


def _execute(path: Path) -> ModuleType:
    main_module = sys.modules.get("__main__")
    if main_module is not None and _same_file(path, getattr(main_module, "__file__", None)):
        return main_module  # `python script.py`: it is already running; don't run it twice
    if not path.exists():
        raise ScriptError(f"no such simulation script: {str(path)!r}")
    if not path.is_file():
        raise ScriptError(f"not a file: {str(path)!r}")
    name = "looptime_tasks_script_" + re.sub(r"\W", "_", path.stem)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ScriptError(f"cannot load {str(path)!r} as a Python module (is it a .py file?)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and typing look modules up while they execute
    # As `python script.py` does: the script imports the bot's modules that sit beside it.
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[name]
        raise ScriptError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from exc
    except Exception as exc:
        del sys.modules[name]
        raise ScriptError(
            f"{failing_line(exc, path)}: the script raised while loading: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return module


def load_script(path: str | os.PathLike[str]) -> Script:
    """Load (execute) a simulation script and check it follows `SCRIPT_CONTRACT`.

    When *path* is the script Python is running as ``__main__``, that module is used as is.

    Raises:
        ScriptError: If the file is missing, has a syntax error, raises while loading, has no
            ``setup`` coroutine function, or a constant or function has the wrong type.
    """
    file = Path(path)
    module = _execute(file)
    setup = getattr(module, "setup", None)
    if setup is None:
        raise ScriptError(
            f"{file} defines no setup function; a simulation script needs "
            "`async def setup(sim) -> None` (see `looptime-tasks simulate --help`)"
        )
    if not inspect.iscoroutinefunction(setup):
        raise ScriptError(
            f"{file}: setup must be a coroutine function, `async def setup(sim) -> None` "
            f"(got {setup!r})"
        )
    check = getattr(module, "check", None)
    report = getattr(module, "report", None)
    for label, function in (("check", check), ("report", report)):
        if function is not None and not callable(function):
            raise ScriptError(
                f"{file}: {label} must be a function of the timeline (got {function!r})"
            )
    start = getattr(module, "START", DEFAULT_START)
    if isinstance(start, str):
        try:
            start = parse_start(start)
        except ValueError as exc:
            raise ScriptError(f"{file}: START: {exc}") from None
    if not isinstance(start, datetime) or start.utcoffset() is None:
        raise ScriptError(
            f"{file}: START must be an aware datetime or ISO-8601 string (got {start!r})"
        )
    duration = getattr(module, "DURATION", DEFAULT_DURATION)
    if not isinstance(duration, timedelta) or duration <= timedelta(0):
        raise ScriptError(f"{file}: DURATION must be a positive timedelta (got {duration!r})")
    seed = getattr(module, "SEED", DEFAULT_SEED)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ScriptError(f"{file}: SEED must be an int or None (got {seed!r})")
    tz = getattr(module, "TZ", UTC)
    if isinstance(tz, str):
        try:
            tz = parse_zone(tz)
        except ValueError as exc:
            raise ScriptError(f"{file}: TZ: {exc}") from None
    if not isinstance(tz, tzinfo):
        raise ScriptError(f"{file}: TZ must be a zone name or a tzinfo (got {tz!r})")
    return Script(file, module, setup, check, report, start, duration, seed, tz)


def run_script(
    script: Script | str | os.PathLike[str],
    *,
    start: datetime | None = None,
    duration: timedelta | None = None,
    seed: int | Literal["script"] | None = "script",
    progress: Callable[[float], None] | None = None,
    world: World | None = None,
) -> Timeline:
    """Run a simulation script's ``setup`` and return the timeline (``check`` is not called).

    Args:
        script: A loaded `Script` or the path of one.
        start: Overrides the script's ``START``.
        duration: Overrides the script's ``DURATION``.
        seed: Overrides the script's ``SEED`` (``"script"`` keeps it).
        progress: Called with the fraction of the window done (see `simulate`).
        world: Faults and interleavings to add (`World`); None for none.
    """
    loaded = script if isinstance(script, Script) else load_script(script)
    return simulate(
        loaded.setup,
        start=loaded.start if start is None else start,
        duration=loaded.duration if duration is None else duration,
        seed=loaded.seed if seed == "script" else seed,
        progress=progress,
        **(world or World()).simulate_options(),
    )


@dataclasses.dataclass(frozen=True, slots=True)
class World:
    """What a script's run adds to its world from the outside: the command line's fault and
    interleaving options, as `simulate` options and as the arguments that ask for them.

    One place maps each option both ways, so that ``explore`` prints replay commands that
    rebuild exactly the world a seed failed in.

    Attributes:
        http_errors: The probability that a fake bot's HTTP call fails (``--http-errors``).
        latency: Virtual seconds per fake bot call, or a (low, high) range (``--latency``).
        outages: The mean hours between random gateway outages, or None (``--outages``).
        shuffle: Run ready callbacks in a seeded order (``--shuffle``).
    """

    http_errors: float = 0.0
    latency: float | tuple[float, float] = 0.0
    outages: float | None = None
    shuffle: bool = False

    def simulate_options(self) -> dict[str, Any]:
        """The `simulate` keyword arguments of this world."""
        options: dict[str, Any] = {}
        if self.http_errors or self.latency:
            options["faults"] = HttpFaults(error_rate=self.http_errors, latency=self.latency)
        if self.outages is not None:
            options["outages"] = Outages(every=self.outages * 3600)
        if self.shuffle:
            options["shuffle"] = True
        return options

    def arguments(self) -> list[str]:
        """The command-line options that ask for this world."""
        arguments: list[str] = []
        if self.http_errors:
            arguments += ["--http-errors", f"{self.http_errors:g}"]
        if self.latency:
            low, high = self.latency if isinstance(self.latency, tuple) else (self.latency,) * 2
            arguments += ["--latency", f"{low:g}" if low == high else f"{low:g}..{high:g}"]
        if self.outages is not None:
            arguments += ["--outages", f"{self.outages:g}"]
        if self.shuffle:
            arguments.append("--shuffle")
        return arguments


def parse_duration(text: str) -> timedelta:
    """Parse an ISO-8601 duration in weeks, days, hours, minutes and seconds.

    ``P7D``, ``PT36H``, ``P1DT2H30M``, ``P2W``, ``PT0.5S``. Years and months are refused: they
    have no fixed length.

    Raises:
        ValueError: If *text* is not such a duration, or it is zero.
    """
    normal = text.strip().upper()
    match = _DURATION.fullmatch(normal)
    if match is None or not any(match.groups()) or normal.endswith("T"):
        if re.fullmatch(r"P[^T\n]*[YM].*", normal):  # years or months before any T
            raise ValueError(
                f"durations in years or months have no fixed length; use days, e.g. P30D "
                f"(got {text!r})"
            )
        raise ValueError(f"not an ISO-8601 duration such as P7D, PT36H or P1DT12H (got {text!r})")
    weeks, days, hours, minutes, seconds = (
        float(part.replace(",", ".")) if part else 0.0 for part in match.groups()
    )
    value = timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
    if value <= timedelta(0):
        raise ValueError(f"the duration must be longer than zero (got {text!r})")
    return value


_NUMBER = r"(\d+(?:[.,]\d+)?)"
_DURATION: Final = re.compile(
    rf"P(?:{_NUMBER}W)?(?:{_NUMBER}D)?(?:T(?:{_NUMBER}H)?(?:{_NUMBER}M)?(?:{_NUMBER}S)?)?"
)


def parse_latency(text: str) -> float | tuple[float, float]:
    """Parse virtual seconds per call: ``0.2``, or a range ``0.05..0.4``.

    Raises:
        ValueError: If *text* is neither, or a value is negative.
    """
    low, separator, high = text.partition("..")
    try:
        values = (float(low), float(high if separator else low))
    except ValueError:
        raise ValueError(
            f"not seconds such as 0.2 or a range such as 0.05..0.4 (got {text!r})"
        ) from None
    if not all(math.isfinite(value) and value >= 0 for value in values) or values[0] > values[1]:
        raise ValueError(f"latency must be seconds >= 0, low..high with low <= high (got {text!r})")
    return values if separator else values[0]


def parse_start(text: str) -> datetime:
    """Parse an ISO-8601 instant; without an offset it means UTC (``2024-03-09`` is midnight).

    Raises:
        ValueError: If *text* is not ISO-8601.
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"not an ISO-8601 date or instant such as 2024-03-09 or 2024-03-09T12:00+01:00 "
            f"(got {text!r})"
        ) from None
    return moment if moment.utcoffset() is not None else moment.replace(tzinfo=UTC)
