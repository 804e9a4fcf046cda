"""Run loops on virtual time for days and see what ran when: the simulation harness.

`simulate` runs an async ``setup(sim)`` on a fresh `looptime_tasks.VirtualEventLoop` from a start
instant for a virtual duration with a seed, records every event of every `Loop` started meanwhile,
and returns a `Timeline`: each iteration's scheduled and actual start, end and outcome, handled
failures with their retry delays, concurrency over time, plus what the simulated code printed and
what fake bots sent. The timeline answers the questions schedule tests ask (`Timeline.runs`,
`Timeline.gaps`, `Timeline.runs_per_day`, `Timeline.max_concurrency`, `Timeline.failures`) and
renders itself as text (`Timeline.summary`), JSON, CSV and a PNG (`Timeline.plot`, with the
``plot`` extra). `main` runs a simulation script (the ``looptime-tasks simulate`` command).

Design decisions:

- **Public API only.** Loops report through `looptime_tasks.observe`, the same observer API any
  user has; the harness never reaches into `Loop`. The code under simulation is production code.
- **Record cheaply, build lazily.** The observer appends a few references and numbers per event
  to flat arrays (kind, loop, iteration, monotonic seconds, wall nanoseconds, scheduled instant)
  and ignores ``SCHEDULED`` events; `Run`, `Failure` and every statistic are built on the first
  query. A year of a one-minute loop is about a million events.
- **A half-open window.** The simulation covers ``[start, start + duration)``: the harness moves
  virtual time to one microsecond before the end, then shuts down cleanly. It closes the fake
  bots it made (unloading their cogs through ``cog_unload``, the discord.py way), cancels every
  loop still running, cancels its helper tasks and any other task left, and waits for all of
  them, so nothing is left pending and no warning is raised.
- **Output has a time too.** While the simulation runs, ``print()`` output of the simulated
  code and the ``looptime_tasks`` log are captured with their virtual time instead of going to
  the terminal, so the timeline can show them in order among the runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import dataclasses
import importlib.util
import inspect
import io
import itertools
import json
import logging
import math
import os
import random
import re
import sys
import time
import traceback
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from datetime import time as dt_time
from pathlib import Path
from types import ModuleType
from typing import IO, Any, Final, Literal, TypeAlias, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import looptime_tasks
from looptime_tasks import EventKind, Loop, LoopEvent, VirtualClock, VirtualEventLoop
from looptime_tasks.fakebot import FakeBot, SentMessage

__all__ = (
    "DEFAULT_DURATION",
    "DEFAULT_SEED",
    "DEFAULT_START",
    "PLOT_HINT",
    "SCRIPT_CONTRACT",
    "DstChange",
    "Failure",
    "LoopHistory",
    "Note",
    "OutputLine",
    "Run",
    "Script",
    "ScriptError",
    "Simulation",
    "Timeline",
    "load_script",
    "main",
    "parse_duration",
    "parse_start",
    "parse_zone",
    "run_script",
    "simulate",
)

DEFAULT_START: Final = datetime(2024, 1, 1, tzinfo=UTC)
"""Where a simulation starts unless told otherwise: 2024-01-01T00:00:00Z (a Monday)."""

DEFAULT_DURATION: Final = timedelta(days=7)
"""How long a simulation runs unless told otherwise: seven virtual days."""

DEFAULT_SEED: Final = 0
"""The seed of the event loop's random generator unless told otherwise."""

PLOT_HINT: Final = (
    "plotting a timeline needs matplotlib; install it with: pip install 'looptime-tasks[plot]'"
)
"""The message of the ImportError raised by `Timeline.plot` when matplotlib is missing."""

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

Outcome: TypeAlias = Literal["ok", "error", "cancelled", "stopped"]
"""How one iteration ended: its body returned, raised an unhandled exception, was cancelled
(``cancel()``, or the end of the simulation), or was abandoned by ``stop()`` during a retry."""

LoopSelector: TypeAlias = "str | Loop[..., Any] | Sequence[str | Loop[..., Any]] | None"
"""Which loops a query is about: a name, a `Loop` (a class attribute selects every per-instance
copy), a list of those, or None for all of them."""

SetupFunction: TypeAlias = Callable[["Simulation"], Awaitable[None]]
"""``async def setup(sim) -> None``: what a simulation runs at its start instant."""

_ONE_MICROSECOND: Final = timedelta(microseconds=1)
_NS_PER_MICROSECOND: Final = 1_000
_DEFAULT_TASK_PREFIX: Final = "looptime-tasks: "

_SCHEDULED: Final = EventKind.SCHEDULED
_STARTED: Final = EventKind.STARTED
_ITERATION_STARTED: Final = EventKind.ITERATION_STARTED
_ITERATION_FINISHED: Final = EventKind.ITERATION_FINISHED
_HANDLED_FAILURE: Final = EventKind.HANDLED_FAILURE
_ERROR: Final = EventKind.ERROR
_STOP_REQUESTED: Final = EventKind.STOP_REQUESTED
_CANCEL_REQUESTED: Final = EventKind.CANCEL_REQUESTED
_ENDED: Final = EventKind.ENDED


# Records -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Failure:
    """An exception raised by a loop: a handled one (retried) or an unhandled one (fatal).

    Attributes:
        loop: The name of the loop (see `LoopHistory.name`).
        iteration: The iteration it happened in (0-based), or None when it happened outside
            any iteration (in ``before_loop``).
        at: When it was raised: virtual wall time (aware, UTC).
        exception: The exception.
        retry_delay: For a handled exception, the backoff before the retry, in seconds; None
            for an unhandled one, which ended the loop.
        attempt: 1 for the first failure of the iteration, 2 for the second, and so on.
        monotonic: When it was raised, on the event loop's clock, in seconds.
    """

    loop: str
    iteration: int | None
    at: datetime
    exception: BaseException
    retry_delay: float | None
    attempt: int
    monotonic: float

    @property
    def handled(self) -> bool:
        """Whether the loop retried after it (reconnect), rather than ending."""
        return self.retry_delay is not None

    @property
    def retry_at(self) -> datetime | None:
        """When the retry was due (`at` plus the retry delay), or None for an unhandled one."""
        if self.retry_delay is None:
            return None
        return self.at + timedelta(seconds=self.retry_delay)


@dataclasses.dataclass(frozen=True, slots=True)
class Run:
    """One iteration of one loop: when it was due, when it ran, how it ended.

    Attributes:
        loop: The name of the loop (see `LoopHistory.name`).
        iteration: Its index within the loop's run (0-based; ``restart()`` starts again at 0).
        scheduled: The slot it ran for (aware, UTC), or None if unknown.
        started: When its body started: virtual wall time (aware, UTC).
        ended: When it ended (returned, raised, was cancelled or stopped), or None if it was
            still running when the recording ended.
        outcome: ``"ok"``, ``"error"``, ``"cancelled"`` or ``"stopped"`` (see `Outcome`).
        failures: Its failures in order: handled ones, then possibly the unhandled one.
        session: Which ``start()`` of the loop it belongs to (0 for the first).
        start_monotonic: When it started, on the event loop's clock, in seconds.
        end_monotonic: When it ended, on the event loop's clock, in seconds, or None.
    """

    loop: str
    iteration: int
    scheduled: datetime | None
    started: datetime
    ended: datetime | None
    outcome: Outcome
    failures: tuple[Failure, ...] = ()
    session: int = 0
    start_monotonic: float = 0.0
    end_monotonic: float | None = None

    @property
    def ok(self) -> bool:
        """Whether the body returned normally (perhaps after retries)."""
        return self.outcome == "ok"

    @property
    def retries(self) -> int:
        """How many handled failures it had, so how many times it was retried."""
        return sum(1 for failure in self.failures if failure.retry_delay is not None)

    @property
    def lateness(self) -> timedelta:
        """How long after its slot it started (zero when on time or unknown)."""
        if self.scheduled is None:
            return timedelta(0)
        return self.started - self.scheduled

    @property
    def duration(self) -> timedelta | None:
        """How long it took from start to end (virtual time), or None if it had not ended."""
        if self.end_monotonic is None:
            return None
        return timedelta(seconds=self.end_monotonic - self.start_monotonic)


@dataclasses.dataclass(frozen=True, slots=True)
class OutputLine:
    """A line the simulated code printed to standard output.

    Attributes:
        at: When it was printed: virtual wall time (aware, UTC).
        source: The loop that printed it, or the name of the task that did.
        text: The line, without its newline.
    """

    at: datetime
    source: str
    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class Note:
    """A remark the simulation made with `Simulation.note`.

    Attributes:
        at: When: virtual wall time (aware, UTC).
        text: The remark.
    """

    at: datetime
    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class DstChange:
    """A change of a time zone's UTC offset (a daylight saving time transition).

    Attributes:
        zone: The zone's name (its IANA key).
        at: The instant of the change (aware, UTC).
        before: The UTC offset before the change.
        after: The UTC offset after the change.
        tz: The zone itself.
    """

    zone: str
    at: datetime
    before: timedelta
    after: timedelta
    tz: tzinfo

    def __str__(self) -> str:
        direction = "forward" if self.after > self.before else "back"
        old = (self.at + self.before).replace(tzinfo=None)
        new = (self.at + self.after).replace(tzinfo=None)
        before = (self.at - timedelta(seconds=1)).astimezone(self.tz)
        old_name = before.tzname() or _format_offset(self.before)
        new_name = self.at.astimezone(self.tz).tzname() or _format_offset(self.after)
        return (
            f"{self.zone} clocks go {direction}: {old:%H:%M} {old_name} -> {new:%H:%M} "
            f"{new_name} at {self.at:%Y-%m-%d %H:%M} UTC"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class _Entry:
    """One line of the chronological listing, sorted by when it was recorded."""

    position: tuple[int, int]
    at: datetime
    kind: Literal["run", "failure", "output", "message", "note"]
    item: Run | Failure | OutputLine | SentMessage | Note


# Recording -----------------------------------------------------------------------------------


class _Recorder:
    """The observer: appends a few numbers and references per event; builds nothing.

    ``SCHEDULED`` events are ignored: ``ITERATION_STARTED`` carries the slot too. The fields of
    the rare kinds (retry delay, exception, outcome) go to a side dictionary keyed by position.
    """

    __slots__ = (
        "_clock_wall_ns",
        "extras",
        "iterations",
        "kinds",
        "loops",
        "monotonic",
        "scheduled",
        "started_loops",
        "task_names",
        "wall_ns",
    )

    def __init__(self, clock_wall_ns: Callable[[], int]) -> None:
        self._clock_wall_ns = clock_wall_ns
        self.kinds: list[EventKind] = []
        self.loops: list[Loop[..., Any]] = []
        self.iterations = array("q")
        self.monotonic = array("d")
        self.wall_ns = array("q")  # virtual wall clock, nanoseconds since the start instant
        self.scheduled: list[datetime | None] = []
        self.extras: dict[int, tuple[float | None, BaseException | None, str | None]] = {}
        self.started_loops: dict[Loop[..., Any], None] = {}  # an ordered set
        self.task_names: dict[str, Loop[..., Any]] = {}

    def __call__(self, event: LoopEvent) -> None:
        kind = event.kind
        if kind is _SCHEDULED:
            return
        self.kinds.append(kind)
        self.loops.append(event.loop)
        iteration = event.iteration
        self.iterations.append(-1 if iteration is None else iteration)
        self.monotonic.append(event.monotonic)
        self.wall_ns.append(self._clock_wall_ns())
        self.scheduled.append(event.scheduled)
        if kind is not _ITERATION_STARTED and kind is not _ITERATION_FINISHED:
            self.extras[len(self.kinds) - 1] = (event.retry_delay, event.exception, event.outcome)
            if kind is _STARTED:
                self._started(event.loop)

    def _started(self, loop: Loop[..., Any]) -> None:
        self.started_loops[loop] = None
        task = loop.get_task()
        if task is not None:
            self.task_names[task.get_name()] = loop

    def position(self) -> int:
        """How many events are recorded: orders captured output among the events."""
        return len(self.kinds)


class _ProgressRecorder(_Recorder):
    """A recorder that also reports progress (a fraction of the window) every 1024 events."""

    __slots__ = ("_countdown", "_progress", "_span")

    def __init__(
        self, clock_wall_ns: Callable[[], int], span: float, progress: Callable[[float], None]
    ) -> None:
        super().__init__(clock_wall_ns)
        self._countdown = 1024
        self._progress = progress
        self._span = span

    def __call__(self, event: LoopEvent) -> None:
        super().__call__(event)
        self._countdown -= 1
        if not self._countdown:
            self._countdown = 1024
            self._progress(min(event.monotonic / self._span, 1.0))


class _LineCapture(io.TextIOBase):
    """A text stream that hands every complete line to a callback."""

    def __init__(self, sink: Callable[[str], None]) -> None:
        super().__init__()
        self._sink = sink
        self._partial = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self._sink(line)
        return len(text)

    def flush_partial(self) -> None:
        """Hand over a last line that has no newline yet."""
        if self._partial:
            line, self._partial = self._partial, ""
            self._sink(line)


class _LogCapture(logging.Handler):
    """Keeps the ``looptime_tasks`` log records of a simulation (failures are on the timeline)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def _captured_log(handler: _LogCapture) -> Iterator[None]:
    logger = logging.getLogger("looptime_tasks")
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


# The simulation ------------------------------------------------------------------------------


class Simulation:
    """What ``setup(sim)`` gets: the clock, the window, fake bots, helpers for planned actions.

    Create it with `simulate`, never directly.

    Attributes:
        event_loop: The `looptime_tasks.VirtualEventLoop` the simulation runs on.
        duration: The virtual length of the window.
        seed: The seed of `random`.
    """

    def __init__(self, event_loop: VirtualEventLoop, duration: timedelta, seed: int | None) -> None:
        self.event_loop = event_loop
        self.duration = duration
        self.seed = seed
        self._recorder: _Recorder = _Recorder(event_loop.clock.wall_ns)
        self._bots: list[FakeBot] = []
        self._helpers: list[asyncio.Task[Any]] = []
        self._entries: list[_Entry] = []
        self._output: list[OutputLine] = []
        self._notes: list[Note] = []
        self._sequence = 0
        self._main_task = asyncio.current_task(event_loop)

    def __repr__(self) -> str:
        return f"<Simulation {self.start.isoformat()} + {self.duration} seed={self.seed}>"

    @property
    def clock(self) -> VirtualClock:
        """The virtual clock: ``now()``, ``advance()``, ``elapsed``."""
        return self.event_loop.clock

    @property
    def random(self) -> random.Random:
        """The event loop's seeded `random.Random`: draw simulated randomness from it."""
        return self.event_loop.random

    @property
    def start(self) -> datetime:
        """The first instant of the window (aware, as given)."""
        return self.event_loop.clock.start

    @property
    def end(self) -> datetime:
        """The end of the window (exclusive), aware, UTC."""
        return self.start.astimezone(UTC) + self.duration

    def now(self, tz: tzinfo = UTC) -> datetime:
        """The virtual wall clock, in *tz* (default UTC)."""
        return self.event_loop.clock.now(tz)

    def fake_bot(self, **options: Any) -> FakeBot:
        """Make a `looptime_tasks.fakebot.FakeBot` whose messages go on the timeline.

        The bot counts its ``ready_after`` from now, gets its ``on_ready`` handler called once
        ready (`FakeBot.start` runs as a helper task), and is closed (its cogs unloaded) at the
        end of the simulation.

        Args:
            **options: Passed to `FakeBot` (``ready_after``, ``guilds``, ``channels``, …).
        """
        bot = FakeBot(on_send=self._record_message, **options)
        self._bots.append(bot)
        self.spawn(bot.start(), name=f"start of {bot.user.name}")
        return bot

    def spawn(
        self, coro: Coroutine[Any, Any, Any], *, name: str | None = None
    ) -> asyncio.Task[Any]:
        """Run *coro* as a helper task (a simulated outage, a user's command…).

        Helper tasks still running at the end of the window are cancelled. If one raises,
        `simulate` raises that exception once the simulation has shut down.
        """
        task = self.event_loop.create_task(coro, name=name)
        self._helpers.append(task)
        return task

    def at(
        self,
        when: datetime | timedelta | float,
        action: Callable[[], object],
        *,
        name: str | None = None,
    ) -> asyncio.Task[Any]:
        """Call *action* at a virtual instant (and await what it returns, if awaitable).

        A helper task sleeps until then. When a loop is due at the very same instant, the event
        loop decides which wakes first: plan actions between slots to be sure of the order.

        Args:
            when: An aware datetime, or an offset from the start of the window (a timedelta or
                seconds).
            action: A callable taking no argument, e.g. ``lambda: my_loop.change_interval(…)``.
            name: The helper task's name.

        Returns:
            The helper task.

        Raises:
            TypeError: If *when* is a naive datetime.
            ValueError: If *when* is before the current virtual time.
        """
        start = self.start.astimezone(UTC)
        if isinstance(when, datetime):
            if when.tzinfo is None or when.utcoffset() is None:
                raise TypeError(f"when must be an aware datetime (got {when!r})")
            target = when.astimezone(UTC)
        elif isinstance(when, timedelta):
            target = start + when
        else:
            target = start + timedelta(seconds=when)
        # Integer nanoseconds of wall time since the start: exact, unlike float seconds.
        offset = target - start
        target_ns = (offset.days * 86_400 + offset.seconds) * 1_000_000_000
        target_ns += offset.microseconds * _NS_PER_MICROSECOND
        if target_ns < self.clock.wall_ns():
            raise ValueError(
                f"when must not be in the past: {target.isoformat()} is before "
                f"{self.now().isoformat()}"
            )

        async def fire() -> None:
            # Not clock.advance(): two tasks advancing to one instant at once would spin.
            await asyncio.sleep((target_ns - self.clock.wall_ns()) / 1e9)
            result = action()
            if isinstance(result, Awaitable):
                await result

        return self.spawn(fire(), name=name or f"sim.at({target.isoformat()})")

    def note(self, text: str) -> None:
        """Put a remark on the timeline at the current virtual time."""
        note = Note(self.now(), text)
        self._notes.append(note)
        self._add_entry("note", note)

    # Internals used by simulate() --------------------------------------------------------------

    def _add_entry(
        self,
        kind: Literal["output", "message", "note"],
        item: OutputLine | SentMessage | Note,
    ) -> None:
        self._sequence += 1
        position = (self._recorder.position(), -1_000_000_000 + self._sequence)
        self._entries.append(_Entry(position, item.at, kind, item))

    def _record_message(self, message: SentMessage) -> None:
        self._add_entry("message", message)

    def _record_output(self, text: str) -> None:
        task = asyncio.current_task(self.event_loop)
        source = "setup"  # the simulation's own task runs setup(sim) and the shutdown
        if task is not None and task is not self._main_task:
            name = task.get_name()
            loop = self._recorder.task_names.get(name.split(" [iteration ")[0])
            source = _short_name(loop) if loop is not None else name
        line = OutputLine(self.now(), source, text)
        self._output.append(line)
        self._add_entry("output", line)

    async def _shutdown(self) -> None:
        """Close bots, cancel loops, helpers and leftover tasks; wait for all of them."""
        for bot in self._bots:
            await bot.close()
        loops = list(self._recorder.started_loops)
        for loop in loops:
            loop.cancel()
        loop_tasks = [task for loop in loops if (task := loop.get_task()) is not None]
        await asyncio.gather(*loop_tasks, return_exceptions=True)
        for helper in self._helpers:
            helper.cancel()
        results = await asyncio.gather(*self._helpers, return_exceptions=True)
        current = asyncio.current_task()
        leftovers = [task for task in asyncio.all_tasks() if task is not current]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                raise result


def simulate(
    setup: SetupFunction,
    *,
    start: datetime | str = DEFAULT_START,
    duration: timedelta | float = DEFAULT_DURATION,
    seed: int | None = DEFAULT_SEED,
    capture_output: bool = True,
    progress: Callable[[float], None] | None = None,
    **options: Any,
) -> Timeline:
    """Run ``setup(sim)`` on virtual time for *duration* and return what the loops did.

    Every `Loop` started during the simulation (by setup, a cog, a planned action…) is
    recorded. At the end of the window the fake bots are closed, every loop still running is
    cancelled and every other task too; ``after_loop`` hooks run then.

    Args:
        setup: ``async def setup(sim: Simulation) -> None``; starts loops, adds cogs…
        start: The first instant: an aware datetime or an ISO-8601 string with an offset.
        duration: The virtual length of the window: a timedelta or seconds; > 0.
        seed: The seed of the event loop's random generator (``sim.random``).
        capture_output: Record what the simulated code prints (`Timeline.output`) instead of
            letting it through.
        progress: Called now and then with the fraction of the window done (0.0 to 1.0).
        **options: Other `looptime_tasks.VirtualEventLoop` options (``wakeup_latency``…).

    Returns:
        The `Timeline` of the simulation.

    Raises:
        TypeError, ValueError: For a bad argument.
        Exception: Whatever ``setup`` or a helper task raised, after a clean shutdown.
    """
    window = _check_duration(duration)
    if options.get("autojump", True) is not True:
        raise ValueError("a simulation needs autojump=True: time must move by itself")
    began = time.perf_counter()

    async def main() -> Timeline:
        event_loop = asyncio.get_running_loop()
        if not isinstance(event_loop, VirtualEventLoop):  # pragma: no cover - run() makes one
            raise RuntimeError("simulate() must run on a VirtualEventLoop")
        sim = Simulation(event_loop, window, seed)
        if progress is not None:
            sim._recorder = _ProgressRecorder(
                event_loop.clock.wall_ns, window.total_seconds(), progress
            )
        logs = _LogCapture()
        capture = _LineCapture(sim._record_output)
        with contextlib.ExitStack() as stack:
            stack.enter_context(looptime_tasks.observe(sim._recorder))
            stack.enter_context(_captured_log(logs))
            if capture_output:
                stack.enter_context(contextlib.redirect_stdout(capture))
            try:
                await setup(sim)
                remaining = window - sim.clock.elapsed - _ONE_MICROSECOND
                if remaining > timedelta(0):
                    # A sleep, not clock.advance(): setup's own tasks may advance the clock,
                    # and two advance() calls to one instant would spin.
                    await asyncio.sleep(remaining.total_seconds())
            finally:
                await sim._shutdown()
                capture.flush_partial()
        if progress is not None:
            progress(1.0)
        return Timeline(
            start=sim.start,
            duration=window,
            seed=seed,
            recorder=sim._recorder,
            entries=sim._entries,
            output=sim._output,
            notes=sim._notes,
            messages=[message for bot in sim._bots for message in bot.messages],
            logs=logs.records,
            real_seconds=time.perf_counter() - began,
        )

    return looptime_tasks.run(main(), start=start, seed=seed, **options)


def _check_duration(duration: object) -> timedelta:
    if isinstance(duration, bool) or not isinstance(duration, timedelta | int | float):
        raise TypeError(f"duration must be a timedelta or seconds > 0 (got {duration!r})")
    if not isinstance(duration, timedelta):
        if not math.isfinite(duration):
            raise ValueError(f"duration must be a timedelta or seconds > 0 (got {duration!r})")
        duration = timedelta(seconds=duration)
    if duration <= timedelta(0):
        raise ValueError(f"duration must be a timedelta or seconds > 0 (got {duration!r})")
    return duration


# The timeline --------------------------------------------------------------------------------


def _short_name(loop: Loop[..., Any]) -> str:
    """A loop's display name: its task name, or its function's name for the default one."""
    task = loop.get_task()
    name = task.get_name() if task is not None else ""
    if not name or name.startswith(_DEFAULT_TASK_PREFIX):
        return loop.coro.__name__
    return name


@dataclasses.dataclass(frozen=True, slots=True)
class LoopHistory:
    """Everything one loop did during a simulation.

    For a loop in a class (a cog), this is one instance's copy.

    Attributes:
        name: Its display name: the ``name=`` given to ``@loop``, else the function's name,
            with `` #2``, `` #3``… appended when several loops share one.
        loop: The `Loop` object.
        runs: Its iterations, in the order they started.
        errors: The unhandled exceptions that ended it (in a body or in ``before_loop``).
        endings: How each of its runs (``start()`` to end) ended: ``(when, outcome)`` with
            outcome ``"completed"``, ``"stopped"``, ``"cancelled"`` or ``"failed"``.
    """

    name: str
    loop: Loop[..., Any]
    runs: tuple[Run, ...]
    errors: tuple[Failure, ...]
    endings: tuple[tuple[datetime, str], ...]

    @property
    def failures(self) -> tuple[Failure, ...]:
        """Every handled failure (retried) of every iteration, in order."""
        return tuple(failure for run in self.runs for failure in run.failures if failure.handled)


class _OpenRun:
    __slots__ = ("failures", "iteration", "scheduled", "session", "start_monotonic", "started")

    def __init__(
        self,
        iteration: int,
        session: int,
        scheduled: datetime | None,
        started: datetime,
        start_monotonic: float,
    ) -> None:
        self.iteration = iteration
        self.session = session
        self.scheduled = scheduled
        self.started = started
        self.start_monotonic = start_monotonic
        self.failures: list[Failure] = []

    def close(
        self, name: str, outcome: Outcome, ended: datetime | None, end_monotonic: float | None
    ) -> Run:
        return Run(
            name,
            self.iteration,
            self.scheduled,
            self.started,
            ended,
            outcome,
            tuple(self.failures),
            self.session,
            self.start_monotonic,
            end_monotonic,
        )


class _LoopBuilder:
    """Turns one loop's events into runs (used once, when the timeline is first queried)."""

    def __init__(self, name: str, loop: Loop[..., Any]) -> None:
        self.name = name
        self.loop = loop
        self.runs: list[tuple[int, Run]] = []  # (position of ITERATION_STARTED, run)
        self.errors: list[Failure] = []
        self.endings: list[tuple[datetime, str]] = []
        self.open: dict[int, tuple[int, _OpenRun]] = {}
        self.session = -1
        self.request: tuple[float, datetime, int] | None = None  # stop/cancel: when, where

    def history(self) -> LoopHistory:
        self.runs.sort(key=lambda pair: pair[0])
        return LoopHistory(
            self.name,
            self.loop,
            tuple(run for _, run in self.runs),
            tuple(self.errors),
            tuple(self.endings),
        )


class Timeline:
    """What the loops of a simulation did, with queries and renderings.

    Build one with `simulate`. Rich objects (`Run`, `Failure`, `LoopHistory`) are made on the
    first query and then cached.

    Attributes:
        start: The first instant of the window (aware, as given).
        end: The end of the window, exclusive (aware, UTC).
        duration: The virtual length of the window.
        seed: The seed of the event loop's random generator.
        real_seconds: How long the simulation took in real time, in seconds.
        output: What the simulated code printed, line by line, in order.
        notes: The remarks made with `Simulation.note`, in order.
        messages: What the simulation's fake bots sent, in order.
        logs: The ``looptime_tasks`` log records emitted during the simulation.
    """

    def __init__(
        self,
        *,
        start: datetime,
        duration: timedelta,
        seed: int | None,
        recorder: _Recorder,
        entries: Sequence[_Entry] = (),
        output: Sequence[OutputLine] = (),
        notes: Sequence[Note] = (),
        messages: Sequence[SentMessage] = (),
        logs: Sequence[logging.LogRecord] = (),
        real_seconds: float = 0.0,
    ) -> None:
        self.start = start
        self.duration = duration
        self.end = start.astimezone(UTC) + duration
        self.seed = seed
        self.real_seconds = real_seconds
        self.output = tuple(output)
        self.notes = tuple(notes)
        self.messages = tuple(sorted(messages, key=lambda message: message.at))
        self.logs = tuple(logs)
        self._recorder = recorder
        self._extra_entries = tuple(entries)
        self._histories: tuple[LoopHistory, ...] | None = None
        # id(run or failure) -> position of its (start) event; id(run) -> that of its end event.
        # Events are recorded in the order they happen, so positions order same-instant events.
        self._positions: dict[int, int] = {}
        self._end_positions: dict[int, int] = {}

    def __repr__(self) -> str:
        # Cheap on purpose (asyncio may repr a task's result): nothing is built here.
        return (
            f"<Timeline {self.start.isoformat()} + {self.duration}: "
            f"{len(self._recorder.started_loops)} loops, {len(self._recorder.kinds):,} events>"
        )

    def __str__(self) -> str:
        return self.summary()

    # Building ------------------------------------------------------------------------------

    @property
    def loops(self) -> tuple[LoopHistory, ...]:
        """The history of every loop that started, in the order they started."""
        if self._histories is None:
            self._histories = self._build()
        return self._histories

    def _build(self) -> tuple[LoopHistory, ...]:
        recorder = self._recorder
        start_utc = self.start.astimezone(UTC)
        builders: dict[Loop[..., Any], _LoopBuilder] = {}
        taken: Counter[str] = Counter()
        for loop in recorder.started_loops:
            base = _short_name(loop)
            taken[base] += 1
            name = base if taken[base] == 1 else f"{base} #{taken[base]}"
            builders[loop] = _LoopBuilder(name, loop)
        kinds, loops, iterations = recorder.kinds, recorder.loops, recorder.iterations
        monotonic, wall_ns, scheduled = recorder.monotonic, recorder.wall_ns, recorder.scheduled
        extras = recorder.extras
        positions, end_positions = self._positions, self._end_positions

        def wall(index: int) -> datetime:
            return start_utc + timedelta(microseconds=wall_ns[index] // _NS_PER_MICROSECOND)

        for index, kind in enumerate(kinds):
            builder = builders[loops[index]]
            if kind is _ITERATION_STARTED:
                iteration = iterations[index]
                builder.open[iteration] = (
                    index,
                    _OpenRun(
                        iteration, builder.session, scheduled[index], wall(index), monotonic[index]
                    ),
                )
            elif kind is _ITERATION_FINISHED:
                entry = builder.open.pop(iterations[index], None)
                if entry is not None:
                    run = entry[1].close(builder.name, "ok", wall(index), monotonic[index])
                    builder.runs.append((entry[0], run))
                    positions[id(run)] = entry[0]
                    end_positions[id(run)] = index
            elif kind is _HANDLED_FAILURE:
                entry = builder.open.get(iterations[index])
                retry_delay, exception, _ = extras[index]
                assert exception is not None
                attempt = len(entry[1].failures) + 1 if entry is not None else 1
                failure = Failure(
                    builder.name,
                    iterations[index],
                    wall(index),
                    exception,
                    retry_delay,
                    attempt,
                    monotonic[index],
                )
                positions[id(failure)] = index
                if entry is not None:
                    entry[1].failures.append(failure)
            elif kind is _STARTED:
                builder.session += 1
                builder.open = {}
                builder.request = None
            elif kind is _STOP_REQUESTED or kind is _CANCEL_REQUESTED:
                builder.request = (monotonic[index], wall(index), index)
            elif kind is _ERROR:
                self._close_with_error(builder, index, wall(index), monotonic[index], extras)
            elif kind is _ENDED:
                outcome = extras[index][2] or "failed"
                builder.endings.append((wall(index), outcome))
                end_monotonic, ended, end_index = builder.request or (
                    monotonic[index],
                    wall(index),
                    index,
                )
                closing: Outcome = "stopped" if outcome == "stopped" else "cancelled"
                for position, open_run in builder.open.values():
                    run = open_run.close(builder.name, closing, ended, end_monotonic)
                    builder.runs.append((position, run))
                    positions[id(run)] = position
                    end_positions[id(run)] = end_index
                builder.open = {}
        # Iterations still open (the simulation raised before shutting down) have no end.
        for builder in builders.values():
            for position, open_run in builder.open.values():
                run = open_run.close(builder.name, "cancelled", None, None)
                builder.runs.append((position, run))
                positions[id(run)] = position
        return tuple(builder.history() for builder in builders.values())

    def _close_with_error(
        self,
        builder: _LoopBuilder,
        index: int,
        at: datetime,
        monotonic: float,
        extras: dict[int, tuple[float | None, BaseException | None, str | None]],
    ) -> None:
        exception = extras[index][1]
        assert exception is not None
        # ERROR carries no iteration. A sequential loop has at most one open iteration; with
        # overlap, the earliest open one is taken as the failed one (the others are cancelled).
        opened = sorted(builder.open.values(), key=lambda pair: pair[0])
        if not opened:
            failure = Failure(builder.name, None, at, exception, None, 1, monotonic)
            self._positions[id(failure)] = index
            builder.errors.append(failure)
            return
        position, open_run = opened[0]
        failure = Failure(
            builder.name,
            open_run.iteration,
            at,
            exception,
            None,
            len(open_run.failures) + 1,
            monotonic,
        )
        self._positions[id(failure)] = index
        builder.errors.append(failure)
        open_run.failures.append(failure)
        run = open_run.close(builder.name, "error", at, monotonic)
        builder.runs.append((position, run))
        self._positions[id(run)] = position
        self._end_positions[id(run)] = index
        del builder.open[open_run.iteration]

    # Selecting loops -----------------------------------------------------------------------------

    def _select(self, selector: LoopSelector) -> tuple[LoopHistory, ...]:
        histories = self.loops
        if selector is None:
            return histories
        if isinstance(selector, list | tuple):
            chosen = {id(history) for part in selector for history in self._select(part)}
            return tuple(history for history in histories if id(history) in chosen)
        if isinstance(selector, Loop):
            found = tuple(history for history in histories if history.loop is selector)
            if not found:  # a class attribute: every per-instance copy made from it
                found = tuple(h for h in histories if h.loop.coro is selector.coro)
        elif isinstance(selector, str):
            found = tuple(history for history in histories if history.name == selector)
            if not found:
                found = tuple(
                    history
                    for history in histories
                    if selector
                    in (
                        history.loop.coro.__name__,
                        history.loop.coro.__qualname__,
                        _task_name(history.loop),
                    )
                )
        else:
            raise TypeError(
                f"loop must be a loop name, a Loop, a list of those or None (got {selector!r})"
            )
        if not found:
            names = ", ".join(repr(history.name) for history in histories) or "none"
            raise ValueError(
                f"no loop {selector!r} ran in this simulation; the loops that ran: {names}"
            )
        return found

    def _one(self, selector: LoopSelector) -> LoopHistory:
        found = self._select(selector)
        if len(found) != 1:
            names = ", ".join(repr(history.name) for history in found)
            raise ValueError(
                f"loop {selector!r} matches {len(found)} loops ({names}); pick one by name"
            )
        return found[0]

    def loop(self, selector: str | Loop[..., Any]) -> LoopHistory:
        """The history of one loop, by name or `Loop` object.

        Raises:
            ValueError: If no loop or several loops match.
        """
        return self._one(selector)

    # Queries -------------------------------------------------------------------------------------

    def runs(self, loop: LoopSelector = None) -> tuple[Run, ...]:
        """The iterations of the selected loops (all by default), in the order they started.

        Args:
            loop: A loop name, a `Loop`, or None for every loop.

        Raises:
            ValueError: If no loop matches.
        """
        histories = self._select(loop)
        if len(histories) == 1:
            return histories[0].runs
        positions = self._positions
        merged = [run for history in histories for run in history.runs]
        merged.sort(key=lambda run: positions[id(run)])
        return tuple(merged)

    def starts(self, loop: LoopSelector = None) -> list[datetime]:
        """When each selected iteration started (aware, UTC), in order."""
        return [run.started for run in self.runs(loop)]

    def gaps(self, loop: str | Loop[..., Any], *, scheduled: bool = False) -> list[timedelta]:
        """The time between consecutive starts of one loop (virtual, monotonic).

        Args:
            loop: A loop name or `Loop`; it must select exactly one loop.
            scheduled: Measure between the scheduled slots instead of the actual starts.

        Raises:
            ValueError: If no loop or several loops match.
        """
        runs = self._one(loop).runs
        if scheduled:
            slots = [run.scheduled for run in runs if run.scheduled is not None]
            return [later - earlier for earlier, later in itertools.pairwise(slots)]
        return [
            timedelta(seconds=later.start_monotonic - earlier.start_monotonic)
            for earlier, later in itertools.pairwise(runs)
        ]

    def days(self, tz: tzinfo = UTC) -> list[date]:
        """Every local date (in *tz*) the window touches, in order."""
        first = self.start.astimezone(tz).date()
        last = (self.end - _ONE_MICROSECOND).astimezone(tz).date()
        return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]

    def full_days(self, tz: tzinfo = UTC) -> list[date]:
        """The local dates (in *tz*) whose whole day lies inside the window."""
        start_utc = self.start.astimezone(UTC)
        return [
            day
            for day in self.days(tz)
            if _midnight(day, tz) >= start_utc
            and _midnight(day + timedelta(days=1), tz) <= self.end
        ]

    def runs_per_day(self, loop: LoopSelector = None, *, tz: tzinfo = UTC) -> dict[date, int]:
        """How many iterations started on each local date of the window (zero included).

        Args:
            loop: A loop name, a `Loop`, or None for every loop.
            tz: The zone whose dates count (default UTC).
        """
        counts = dict.fromkeys(self.days(tz), 0)
        for run in self.runs(loop):
            day = run.started.astimezone(tz).date()
            counts[day] = counts.get(day, 0) + 1
        return counts

    def concurrency(self, loop: LoopSelector = None) -> list[tuple[datetime, int]]:
        """How many iterations of the selected loops were running, after each start and end.

        Returns:
            ``(instant, count)`` pairs in the order the starts and ends happened: after that
            start or end, *count* bodies were running. Ends and starts at the same instant keep
            their real order, so an iteration that ends as the next one starts does not overlap
            it, and an iteration that is over at once rises and falls at the same instant.
        """
        changes: list[tuple[int, int, datetime]] = []
        positions, end_positions = self._positions, self._end_positions
        for run in self.runs(loop):
            changes.append((positions[id(run)], 1, run.started))
            if run.ended is not None:
                changes.append((end_positions[id(run)], -1, run.ended))
        changes.sort(key=lambda change: change[0])  # the order the events happened in
        steps: list[tuple[datetime, int]] = []
        count = 0
        for _, delta, at in changes:
            count += delta
            steps.append((at, count))
        return steps

    def max_concurrency(self, loop: LoopSelector = None) -> int:
        """The most iterations of the selected loops that ever ran at once (0 if none ran)."""
        return max((count for _, count in self.concurrency(loop)), default=0)

    def failures(
        self, loop: LoopSelector = None, *, handled: bool | None = None
    ) -> tuple[Failure, ...]:
        """The exceptions the selected loops raised, in order.

        Args:
            loop: A loop name, a `Loop`, or None for every loop.
            handled: True for the retried ones only, False for the fatal ones only, None for
                both.
        """
        found: list[Failure] = []
        for history in self._select(loop):
            for run in history.runs:
                found.extend(run.failures)
            found.extend(error for error in history.errors if error.iteration is None)
        if handled is not None:
            found = [failure for failure in found if failure.handled is handled]
        positions = self._positions
        found.sort(key=lambda failure: positions[id(failure)])
        return tuple(found)

    def retry_delays(self, loop: LoopSelector = None) -> list[float]:
        """The retry delays of the selected loops' handled failures, in seconds, in order."""
        return [
            failure.retry_delay
            for failure in self.failures(loop, handled=True)
            if failure.retry_delay is not None
        ]

    def dst_changes(self, tz: tzinfo | None = None) -> tuple[DstChange, ...]:
        """The UTC-offset changes inside the window of every zone the loops' times use.

        Args:
            tz: A further zone to include (the display zone, say).
        """
        zones: dict[str, tzinfo] = {}
        candidates: list[tzinfo | None] = [tz]
        for history in self.loops:
            candidates.extend(t.tzinfo for t in history.loop.time or ())
        for zone in candidates:
            if zone is not None and not isinstance(zone, timezone):
                zones.setdefault(_zone_name(zone), zone)
        changes = [
            change
            for name, zone in zones.items()
            for change in _offset_changes(name, zone, self.start.astimezone(UTC), self.end)
        ]
        changes.sort(key=lambda change: (change.at, change.zone))
        return tuple(changes)

    # Text --------------------------------------------------------------------------------------

    def summary(self, *, tz: tzinfo = UTC, show: int = 10, per_day: int = 14) -> str:
        """A readable report: the window, a table per loop, runs per day, DST changes, the
        first and last runs in order, messages and errors.

        Args:
            tz: The zone to show times and dates in.
            show: How many runs to list from the start and from the end of the window.
            per_day: Show the runs-per-day table when the window has at most this many days.
        """
        zone = _zone_label(tz)
        lines = [
            f"Simulated {_format_length(self.duration)} of virtual time in "
            f"{self.real_seconds:.2f} s (seed {self.seed})",
            f"  from {_format_instant(self.start, tz)} {zone}",
            f"  to   {_format_instant(self.end, tz)} {zone} (exclusive)",
            "",
        ]
        histories = self.loops
        if not histories:
            lines.append("No loop ran.")
        else:
            lines.extend(self._loop_table(tz))
        days = self.days(tz)
        if histories and 2 <= len(days) <= per_day:
            lines.extend(["", f"Runs per day ({zone})"])
            lines.extend(self._per_day_table(tz))
        changes = self.dst_changes(tz)
        if changes:
            lines.extend(["", "DST changes"])
            lines.extend(f"  {change}" for change in changes)
        if histories:
            total = len(self.runs())
            shown = "all" if total <= 2 * show else f"the first {show} and last {show} of"
            lines.extend(["", f"Timeline ({zone}): {shown} {total:,} runs"])
            lines.append(self.listing(tz=tz, first=show, last=show))
        if self.messages:
            lines.extend(["", f"Messages sent by fake bots: {len(self.messages):,}"])
            picked = list(self.messages)
            if len(picked) > 2 * show:
                picked = [*picked[:show], *picked[-show:]]
            for index, message in enumerate(picked):
                if index == show and len(self.messages) > 2 * show:
                    lines.append(f"  ... {len(self.messages) - 2 * show:,} more")
                lines.append(f"  {_format_instant(message.at, tz)}  {_format_message(message)}")
        errors = [error for history in histories for error in history.errors]
        if errors:
            lines.extend(["", "Unhandled errors (each ended its loop)"])
            for error in errors:
                where = "before_loop" if error.iteration is None else f"#{error.iteration}"
                lines.append(
                    f"  {_format_instant(error.at, tz)}  {error.loop} {where}: {error.exception!r}"
                )
        return "\n".join(lines)

    def _loop_table(self, tz: tzinfo) -> list[str]:
        full_days = set(self.full_days(tz))
        header = (
            "loop", "runs", "first run", "last run", "min gap", "max gap", "runs/day",
            "failures", "errors", "max at once",
        )  # fmt: skip
        rows: list[tuple[str, ...]] = []
        for history in self.loops:
            runs = history.runs
            gaps = self.gaps(history.loop) if len(runs) > 1 else []
            per_day = self.runs_per_day(history.loop, tz=tz)
            counted = [count for day, count in per_day.items() if day in full_days]
            rows.append(
                (
                    history.name,
                    f"{len(runs):,}",
                    _format_instant(runs[0].started, tz) if runs else "-",
                    _format_instant(runs[-1].started, tz) if runs else "-",
                    _format_span(min(gaps).total_seconds()) if gaps else "-",
                    _format_span(max(gaps).total_seconds()) if gaps else "-",
                    _format_range(min(counted), max(counted)) if counted else "-",
                    f"{len(history.failures):,}",
                    f"{len(history.errors):,}",
                    str(self.max_concurrency(history.loop)),
                )
            )
        return _table(header, rows, right={1, 6, 7, 8, 9})

    def _per_day_table(self, tz: tzinfo) -> list[str]:
        histories = self.loops
        counts = [self.runs_per_day(history.loop, tz=tz) for history in histories]
        header = ("day", *(history.name for history in histories))
        rows = [
            (f"{day:%a %Y-%m-%d}", *(f"{per_day[day]:,}" for per_day in counts))
            for day in self.days(tz)
        ]
        return _table(header, rows, right=set(range(1, len(header))))

    def _entries(self) -> list[_Entry]:
        positions = self._positions
        entries = list(self._extra_entries)
        for history in self.loops:
            for run in history.runs:
                entries.append(_Entry((positions[id(run)], 0), run.started, "run", run))
                for failure in run.failures:
                    entries.append(
                        _Entry((positions[id(failure)], 0), failure.at, "failure", failure)
                    )
            for error in history.errors:
                if error.iteration is None:
                    entries.append(_Entry((positions[id(error)], 0), error.at, "failure", error))
        entries.sort(key=lambda entry: entry.position)
        return entries

    def listing(
        self,
        *,
        tz: tzinfo = UTC,
        first: int = 10,
        last: int = 10,
        since: datetime | None = None,
        until: datetime | None = None,
        loop: LoopSelector = None,
    ) -> str:
        """The chronological listing: runs, failures, printed lines, messages and notes.

        Day boundaries (in *tz*) and DST changes are labelled. When there are more than
        ``first + last`` runs, only the entries up to the ``first``-th run and from the
        ``last``-th last run are shown, with a line saying what was left out.

        Args:
            tz: The zone to show times and dates in.
            first: How many runs to show from the start.
            last: How many runs to show from the end.
            since: Show only entries at or after this instant (aware).
            until: Show only entries before this instant (aware).
            loop: Show only the runs, failures and printed lines of these loops (a name or a
                `Loop`); None shows everything.
        """
        names = None if loop is None else {history.name for history in self._select(loop)}
        entries = [
            entry
            for entry in self._entries()
            if (since is None or entry.at >= since)
            and (until is None or entry.at < until)
            and (names is None or _source(entry) in names)
        ]
        run_indexes = [index for index, entry in enumerate(entries) if entry.kind == "run"]
        hidden: tuple[int, int] | None = None
        if len(run_indexes) > first + last:
            head_end = run_indexes[first] if first else 0
            tail_start = run_indexes[-last] if last else len(entries)
            hidden = (head_end, tail_start)
        width = max((len(history.name) for history in self.loops), default=7)
        width = max(width, 7)  # "message"
        highest = max((run.iteration for run in self.runs()), default=0)
        number = max(len(f"#{highest}"), len("#0") + 3)
        changes = [
            change
            for change in self.dst_changes(tz)
            if (since is None or change.at >= since) and (until is None or change.at < until)
        ]
        lines: list[str] = []
        current_day: date | None = None
        precise = any(entry.at.microsecond for entry in entries)  # keep the columns aligned
        for index, entry in enumerate(entries):
            if hidden is not None and hidden[0] <= index < hidden[1]:
                if index == hidden[0]:
                    lines.append(_elision(entries[hidden[0] : hidden[1]], changes, tz))
                    current_day = None
                continue
            while changes and changes[0].at <= entry.at:
                lines.append(f"  ── DST: {changes.pop(0)} ──")
            local = entry.at.astimezone(tz)
            if local.date() != current_day:
                current_day = local.date()
                lines.append(f"── {current_day:%a %Y-%m-%d} ──")
            clock = _format_clock(local, milliseconds=precise)
            if tz is not UTC:
                clock += f" {local.tzname()}"
            lines.append(f"  {clock}  {_describe(entry, width, number, tz)}")
        if not entries:
            lines.append("  (nothing happened)")
        return "\n".join(lines)

    # Export --------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-ready data (instants as ISO-8601 strings, durations in seconds)."""
        loops = []
        for history in self.loops:
            gaps = [gap.total_seconds() for gap in self.gaps(history.loop)]
            loops.append(
                {
                    "name": history.name,
                    "task": _task_name(history.loop),
                    "runs": len(history.runs),
                    "first_run": _iso(history.runs[0].started) if history.runs else None,
                    "last_run": _iso(history.runs[-1].started) if history.runs else None,
                    "min_gap_seconds": min(gaps) if gaps else None,
                    "max_gap_seconds": max(gaps) if gaps else None,
                    "failures": len(history.failures),
                    "errors": len(history.errors),
                    "max_concurrency": self.max_concurrency(history.loop),
                    "endings": [
                        {"at": _iso(at), "outcome": outcome} for at, outcome in history.endings
                    ],
                }
            )
        return {
            "format": "looptime-tasks timeline",
            "version": 1,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "duration_seconds": self.duration.total_seconds(),
            "seed": self.seed,
            "loops": loops,
            "runs": [_run_dict(run) for run in self.runs()],
            "errors": [_failure_dict(error) for history in self.loops for error in history.errors],
            "messages": [
                {
                    "at": _iso(message.at),
                    "channel_id": message.channel_id,
                    "channel": message.channel,
                    "guild": message.guild,
                    "content": message.content,
                }
                for message in self.messages
            ],
            "output": [
                {"at": _iso(line.at), "source": line.source, "text": line.text}
                for line in self.output
            ],
            "notes": [{"at": _iso(note.at), "text": note.text} for note in self.notes],
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        """The timeline as a JSON document (see `to_dict`)."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def write_json(self, path: str | os.PathLike[str]) -> Path:
        """Write `to_json` to *path* (UTF-8) and return the path."""
        target = Path(path)
        target.write_text(self.to_json() + "\n", encoding="utf-8")
        return target

    CSV_COLUMNS: Final = (
        "loop",
        "session",
        "iteration",
        "scheduled",
        "started",
        "ended",
        "outcome",
        "lateness_seconds",
        "duration_seconds",
        "retries",
        "last_exception",
    )
    """The columns of `write_csv`, one row per iteration."""

    def write_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write one CSV row per iteration (see `CSV_COLUMNS`) to *path* and return the path."""
        target = Path(path)
        with target.open("w", encoding="utf-8", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(self.CSV_COLUMNS)
            for run in self.runs():
                duration = run.duration
                writer.writerow(
                    (
                        run.loop,
                        run.session,
                        run.iteration,
                        _iso(run.scheduled) if run.scheduled is not None else "",
                        _iso(run.started),
                        _iso(run.ended) if run.ended is not None else "",
                        run.outcome,
                        _seconds(run.lateness.total_seconds()),
                        _seconds(duration.total_seconds()) if duration is not None else "",
                        run.retries,
                        repr(run.failures[-1].exception) if run.failures else "",
                    )
                )
        return target

    def plot(
        self, path: str | os.PathLike[str], *, tz: tzinfo = UTC, title: str | None = None
    ) -> Path:
        """Draw the timeline as a PNG: one lane per loop, a mark per run.

        Runs that take time are bars (stacked when they overlap); handled failures are
        orange crosses with a line to their retry; unhandled errors red crosses; cancelled
        and stopped iterations grey. Day boundaries (for up to 62 days) and DST changes are
        vertical lines. Uses matplotlib's Agg backend, without touching pyplot's global state.

        Args:
            path: Where to write the PNG.
            tz: The zone of the time axis.
            title: The figure title; a description of the window by default.

        Returns:
            The path written.

        Raises:
            ImportError: If matplotlib is not installed (the message says how to install it).
        """
        return _plot(self, Path(path), tz, title)


# Formatting helpers --------------------------------------------------------------------------


def _task_name(loop: Loop[..., Any]) -> str:
    task = loop.get_task()
    return task.get_name() if task is not None else ""


def _zone_name(zone: tzinfo) -> str:
    key = getattr(zone, "key", None)
    return key if isinstance(key, str) else str(zone)


def _zone_label(tz: tzinfo) -> str:
    if tz is UTC:
        return "UTC"
    return _zone_name(tz)


def _midnight(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, dt_time(0), tz).astimezone(UTC)


def _offset_changes(name: str, zone: tzinfo, start: datetime, end: datetime) -> list[DstChange]:
    """The instants in [start, end) where *zone*'s UTC offset changes, to the second."""
    step = timedelta(hours=6)
    changes: list[DstChange] = []

    def offset(at: datetime) -> timedelta:
        return at.astimezone(zone).utcoffset() or timedelta(0)

    previous, previous_offset = start, offset(start)
    while previous < end:
        following = min(previous + step, end)
        following_offset = offset(following)
        if following_offset != previous_offset:
            low, high = previous, following  # offset(low) is old, offset(high) is new
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                middle = middle.replace(microsecond=0)
                if middle <= low:
                    middle = low + timedelta(seconds=1)
                if offset(middle) == previous_offset:
                    low = middle
                else:
                    high = middle
            if start <= high < end:
                changes.append(DstChange(name, high, previous_offset, offset(high), zone))
        previous, previous_offset = following, following_offset
    return changes


def _format_offset(offset: timedelta) -> str:
    total = int(offset.total_seconds())
    sign = "+" if total >= 0 else "-"
    hours, minutes = divmod(abs(total) // 60, 60)
    return f"UTC{sign}{hours:02d}:{minutes:02d}"


def _format_clock(moment: datetime, *, milliseconds: bool | None = None) -> str:
    """``HH:MM:SS``, with ``.fff`` when *milliseconds* (None: only if there is a fraction)."""
    text = f"{moment:%H:%M:%S}"
    if milliseconds or (milliseconds is None and moment.microsecond):
        text += f".{moment.microsecond // 1000:03d}"
    return text


def _format_instant(moment: datetime, tz: tzinfo) -> str:
    local = moment.astimezone(tz)
    return f"{local:%Y-%m-%d} {_format_clock(local)}"


def _format_span(seconds: float) -> str:
    """A duration for people, to the millisecond: ``60`` -> ``1 min``, ``86398.5`` ->
    ``23 h 59 min 58.5 s`` (to the microsecond when shorter than a millisecond)."""
    if seconds < 0:
        return "-" + _format_span(-seconds)
    scale = 1_000 if seconds >= 0.001 or seconds == 0 else 1_000_000
    whole, fraction = divmod(round(seconds * scale), scale)
    parts = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count} {unit}")
    if whole or fraction or not parts:
        digits = len(str(scale)) - 1
        number = f"{whole}.{fraction:0{digits}d}".rstrip("0") if fraction else str(whole)
        parts.append(f"{number} s")
    return " ".join(parts)


def _format_length(length: timedelta) -> str:
    """A window's length in words: ``7 days``, ``1 day``, ``36 hours``, else `_format_span`."""
    seconds = length.total_seconds()
    if length.days and not length.seconds and not length.microseconds:
        return f"{length.days:,} day{'s' if length.days != 1 else ''}"
    if seconds % 3600 == 0:
        hours = int(seconds // 3600)
        return f"{hours:,} hour{'s' if hours != 1 else ''}"
    return _format_span(seconds)


def _format_range(low: int, high: int) -> str:
    return f"{low:,}" if low == high else f"{low:,}-{high:,}"


def _format_message(message: SentMessage) -> str:
    where = f"#{message.channel}" + (f" ({message.guild})" if message.guild else "")
    content = message.content if message.content is not None else "(no text)"
    return f"{where}: {content}"


def _describe(entry: _Entry, width: int, number: int, tz: tzinfo) -> str:
    """One listing line after the time: loop name (*width* wide), ``#iteration`` (*number*)."""
    item = entry.item
    if isinstance(item, Run):
        details = [_outcome_text(item)]
        if item.lateness >= _ONE_MICROSECOND and item.scheduled is not None:
            details.append(
                f"{_format_span(item.lateness.total_seconds())} late for "
                f"{_format_clock(item.scheduled.astimezone(tz))}"
            )
        duration = item.duration
        if duration is not None and duration >= _ONE_MICROSECOND and item.outcome == "ok":
            details.append(f"took {_format_span(duration.total_seconds())}")
        return f"{item.loop:<{width}}  {f'#{item.iteration}':<{number}}  {', '.join(details)}"
    if isinstance(item, Failure):
        where = "before_loop" if item.iteration is None else f"#{item.iteration}"
        if item.retry_delay is not None:
            text = f"failed: {item.exception!r}; retry in {_format_span(item.retry_delay)}"
        else:
            text = f"unhandled error: {item.exception!r} (the loop ends)"
        return f"{item.loop:<{width}}  {where:<{number}}  {text}"
    if isinstance(item, OutputLine):
        return f"{item.source:<{width}}  > {item.text}"
    if isinstance(item, SentMessage):
        return f"{'message':<{width}}  {_format_message(item)}"
    return f"{'note':<{width}}  {item.text}"


def _source(entry: _Entry) -> str | None:
    """The loop a listing entry belongs to (None for messages and notes)."""
    item = entry.item
    if isinstance(item, Run | Failure):
        return item.loop
    if isinstance(item, OutputLine):
        return item.source
    return None


def _outcome_text(run: Run) -> str:
    retries = run.retries
    if run.outcome == "ok":
        if retries:
            return f"ok after {retries} {'retry' if retries == 1 else 'retries'}"
        return "ok"
    if run.outcome == "error":
        return "error (the loop ends)"
    return run.outcome


def _elision(hidden: Sequence[_Entry], changes: list[DstChange], tz: tzinfo) -> str:
    kinds = Counter(entry.kind for entry in hidden)
    words = {"run": "runs", "failure": "failures", "output": "printed lines"}
    words |= {"message": "messages", "note": "notes"}
    parts = [f"{count:,} {words[kind]}" for kind, count in kinds.items()]
    first, last = hidden[0].at, hidden[-1].at
    passed = [change for change in changes if change.at <= last]
    del changes[: len(passed)]
    text = (
        f"  ... {', '.join(parts)} not shown, from {_format_instant(first, tz)} "
        f"to {_format_instant(last, tz)}"
    )
    if passed:
        text += f" ({len(passed)} DST change{'s' if len(passed) != 1 else ''})"
    return text


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], *, right: set[int]) -> list[str]:
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]

    def line(row: Sequence[str]) -> str:
        cells = [
            cell.rjust(widths[column]) if column in right else cell.ljust(widths[column])
            for column, cell in enumerate(row)
        ]
        return "  " + "  ".join(cells).rstrip()

    return [line(header), *(line(row) for row in rows)]


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _seconds(value: float) -> float | int:
    return int(value) if value == int(value) else round(value, 6)


def _failure_dict(failure: Failure) -> dict[str, Any]:
    return {
        "loop": failure.loop,
        "iteration": failure.iteration,
        "at": _iso(failure.at),
        "exception": repr(failure.exception),
        "retry_delay": failure.retry_delay,
        "attempt": failure.attempt,
    }


def _run_dict(run: Run) -> dict[str, Any]:
    duration = run.duration
    return {
        "loop": run.loop,
        "session": run.session,
        "iteration": run.iteration,
        "scheduled": _iso(run.scheduled) if run.scheduled is not None else None,
        "started": _iso(run.started),
        "ended": _iso(run.ended) if run.ended is not None else None,
        "outcome": run.outcome,
        "lateness_seconds": _seconds(run.lateness.total_seconds()),
        "duration_seconds": _seconds(duration.total_seconds()) if duration is not None else None,
        "failures": [_failure_dict(failure) for failure in run.failures],
    }


# Plotting ------------------------------------------------------------------------------------


def _plot(timeline: Timeline, path: Path, tz: tzinfo, title: str | None) -> Path:
    try:
        from matplotlib import dates as mdates
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
    except ImportError as exc:
        raise ImportError(PLOT_HINT) from exc

    histories = timeline.loops
    lanes = max(len(histories), 1)
    figure = Figure(figsize=(13, 1.6 + 0.8 * lanes), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    start, end = timeline.start.astimezone(UTC), timeline.end

    def x(moment: datetime) -> float:
        return float(mdates.date2num(moment))  # type: ignore[no-untyped-call]

    for lane, history in enumerate(histories):
        y = lanes - 1 - lane
        ok = [x(run.started) for run in history.runs if run.outcome == "ok"]
        cut = [x(run.started) for run in history.runs if run.outcome in ("cancelled", "stopped")]
        axes.plot(ok, [y] * len(ok), linestyle="", marker="|", markersize=14, color="tab:blue")
        axes.plot(cut, [y] * len(cut), linestyle="", marker="|", markersize=14, color="grey")
        # Bodies that take time: bars, stacked in sub-lanes when they overlap.
        rows_free: list[float] = []
        bars: dict[int, list[tuple[float, float]]] = {}
        for run in history.runs:
            duration = run.duration
            if duration is None or duration <= timedelta(0):
                continue
            begin, finish = x(run.started), x(run.started + duration)
            row = next((i for i, free in enumerate(rows_free) if free <= begin), None)
            if row is None:
                row = len(rows_free)
                rows_free.append(finish)
            rows_free[row] = finish
            bars.setdefault(row, []).append((begin, finish - begin))
        if bars:
            height = 0.5 / len(rows_free)
            for row, spans in bars.items():
                axes.broken_barh(
                    spans, (y - 0.25 + row * height, height * 0.85), color="tab:blue", alpha=0.35
                )
        failures = [failure for run in history.runs for failure in run.failures]
        failures += [error for error in history.errors if error.iteration is None]
        handled = [failure for failure in failures if failure.retry_at is not None]
        if handled:
            axes.hlines(
                [y + 0.2] * len(handled),
                [x(failure.at) for failure in handled],
                [x(cast(datetime, failure.retry_at)) for failure in handled],
                color="tab:orange",
                linewidth=1.5,
            )
            axes.plot(
                [x(failure.at) for failure in handled],
                [y + 0.2] * len(handled),
                linestyle="",
                marker="x",
                color="tab:orange",
            )
        fatal = [failure for failure in failures if failure.retry_at is None]
        axes.plot(
            [x(failure.at) for failure in fatal],
            [y] * len(fatal),
            linestyle="",
            marker="X",
            markersize=12,
            color="tab:red",
        )
    days = timeline.days(tz)
    if len(days) <= 62:
        for day in days[1:]:
            axes.axvline(x(_midnight(day, tz)), color="0.85", linewidth=0.8, zorder=0)
    for change in timeline.dst_changes(tz):
        axes.axvline(x(change.at), color="tab:purple", linestyle="--", linewidth=1)
        step = _format_span((change.after - change.before).total_seconds())
        axes.annotate(
            f"DST {change.zone} {'' if step.startswith('-') else '+'}{step}",
            (x(change.at), lanes - 0.45),
            rotation=90,
            fontsize=7,
            color="tab:purple",
            va="top",
            ha="right",
        )
    axes.set_yticks(range(lanes), [history.name for history in reversed(histories)] or [""])
    axes.set_ylim(-0.6, lanes - 0.4)
    axes.set_xlim(x(start), x(end))
    locator = mdates.AutoDateLocator(tz=tz)  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    formatter = mdates.ConciseDateFormatter(locator, tz=tz)  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_formatter(formatter)
    axes.grid(axis="x", color="0.92")
    legend = [
        Line2D([], [], linestyle="", marker="|", markersize=12, color="tab:blue", label="run"),
        Line2D([], [], color="tab:orange", marker="x", label="handled failure -> retry"),
        Line2D([], [], linestyle="", marker="X", color="tab:red", label="unhandled error"),
        Line2D([], [], linestyle="", marker="|", markersize=12, color="grey", label="cancelled"),
        Line2D([], [], color="tab:purple", linestyle="--", label="DST change"),
    ]
    axes.legend(handles=legend, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    axes.set_title(
        title
        or (
            f"{len(timeline.runs()):,} runs, {_format_instant(timeline.start, tz)} + "
            f"{_format_span(timeline.duration.total_seconds())} ({_zone_label(tz)}, "
            f"seed {timeline.seed})"
        ),
        fontsize=10,
    )
    figure.savefig(path, dpi=100)
    return path


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
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[name]
        raise ScriptError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from exc
    except Exception as exc:
        del sys.modules[name]
        frames = traceback.extract_tb(exc.__traceback__)
        line = next((f.lineno for f in reversed(frames) if _same_file(path, f.filename)), None)
        where = f"{path}:{line}" if line is not None else str(path)
        raise ScriptError(
            f"{where}: the script raised while loading: {type(exc).__name__}: {exc}"
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
) -> Timeline:
    """Run a simulation script's ``setup`` and return the timeline (``check`` is not called).

    Args:
        script: A loaded `Script` or the path of one.
        start: Overrides the script's ``START``.
        duration: Overrides the script's ``DURATION``.
        seed: Overrides the script's ``SEED`` (``"script"`` keeps it).
        progress: Called with the fraction of the window done (see `simulate`).
    """
    loaded = script if isinstance(script, Script) else load_script(script)
    return simulate(
        loaded.setup,
        start=loaded.start if start is None else start,
        duration=loaded.duration if duration is None else duration,
        seed=loaded.seed if seed == "script" else seed,
        progress=progress,
    )


def parse_duration(text: str) -> timedelta:
    """Parse an ISO-8601 duration in weeks, days, hours, minutes and seconds.

    ``P7D``, ``PT36H``, ``P1DT2H30M``, ``P2W``, ``PT0.5S``. Years and months are refused: they
    have no fixed length.

    Raises:
        ValueError: If *text* is not such a duration, or it is zero.
    """
    match = _DURATION.fullmatch(text.strip().upper())
    if match is None or not any(match.groups()) or text.strip().upper().endswith("T"):
        if re.fullmatch(r"P(\d+Y)?(\d+M)?.*", text.strip().upper()) and re.search(
            r"^P[^T]*[YM]", text.strip().upper()
        ):
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


def parse_zone(name: str) -> tzinfo:
    """The zone of that IANA name (``UTC``, ``Europe/London``…).

    Raises:
        ValueError: If no such zone exists.
    """
    if name.upper() in ("UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name such as Europe/London"
        ) from None


# Command line --------------------------------------------------------------------------------


def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0 (got {text!r})") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0 (got {text!r})")
    return value


def _argument_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def _add_arguments(parser: argparse.ArgumentParser, *, with_path: bool) -> None:
    """The options of ``looptime-tasks simulate`` (and of ``python SCRIPT.py``)."""
    if with_path:
        parser.add_argument("path", metavar="PATH", help="the simulation script to run")
    parser.add_argument(
        "--start",
        metavar="ISO",
        type=_argument_type(parse_start),
        help="start instant, e.g. 2024-03-09 or 2024-03-09T12:00+01:00 (no offset: UTC); "
        "overrides START",
    )
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--days", metavar="N", type=_positive_number, help="simulate N days")
    length.add_argument("--hours", metavar="N", type=_positive_number, help="simulate N hours")
    length.add_argument(
        "--duration",
        metavar="ISO8601",
        type=_argument_type(parse_duration),
        help="simulate this long, e.g. P7D, PT36H, P1DT12H; overrides DURATION",
    )
    parser.add_argument(
        "--seed", metavar="N", type=int, help="seed of the event loop's random generator"
    )
    parser.add_argument(
        "--tz",
        metavar="ZONE",
        type=_argument_type(parse_zone),
        help="show times in this zone, e.g. Europe/London (default: the script's TZ, or UTC)",
    )
    parser.add_argument(
        "--show",
        metavar="N",
        type=int,
        default=10,
        help="list the first N and last N runs (default: 10)",
    )
    parser.add_argument("--json", metavar="FILE", help="write the timeline as JSON")
    parser.add_argument("--csv", metavar="FILE", help="write one CSV row per run")
    parser.add_argument(
        "--plot",
        metavar="FILE",
        help="draw the timeline as a PNG (needs: pip install 'looptime-tasks[plot]')",
    )


def _make_parser(prog: str | None, *, with_path: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run a simulation script on virtual time and print its timeline.",
        epilog=SCRIPT_CONTRACT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_arguments(parser, with_path=with_path)
    return parser


_PROGRESS_DELAY = 0.5
"""Real seconds a command-line simulation runs before its progress bar appears (on a TTY)."""


class _ProgressBar:
    """A one-line progress bar on a terminal, drawn only once a run has taken a while."""

    def __init__(self, stream: IO[str], *, width: int = 30) -> None:
        self._stream = stream
        self._began = time.perf_counter()
        self._delay = _PROGRESS_DELAY
        self._width = width
        self._last = 0.0
        self._drawn = False

    def __call__(self, fraction: float) -> None:
        now = time.perf_counter()
        if now - self._began < self._delay or now - self._last < 0.1:
            return
        self._last = now
        filled = round(fraction * self._width)
        bar = "#" * filled + "-" * (self._width - filled)
        self._stream.write(f"\rsimulating [{bar}] {fraction:4.0%}")
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self._stream.write("\r" + " " * (self._width + 20) + "\r")
            self._stream.flush()
            self._drawn = False


def _failing_line(exc: BaseException, path: Path) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        if _same_file(path, frame.filename):
            return f"{path}:{frame.lineno}"
    return str(path)


def _run_command(
    parser: argparse.ArgumentParser, args: argparse.Namespace, path: str | os.PathLike[str]
) -> int:
    try:
        script = load_script(path)
    except ScriptError as exc:
        parser.error(str(exc))
    duration: timedelta | None = args.duration
    if args.days is not None:
        duration = timedelta(days=args.days)
    elif args.hours is not None:
        duration = timedelta(hours=args.hours)
    tz: tzinfo = args.tz if args.tz is not None else script.tz
    bar = _ProgressBar(sys.stderr) if sys.stderr.isatty() else None
    try:
        timeline = run_script(
            script,
            start=args.start,
            duration=duration,
            seed=script.seed if args.seed is None else args.seed,
            progress=bar,
        )
    except Exception as exc:
        if bar is not None:
            bar.close()
        traceback.print_exc()
        print(
            f"error: the simulation raised ({_failing_line(exc, script.path)}): "
            f"{type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
        return 1
    if bar is not None:
        bar.close()
    if script.description:
        print(script.description, end="\n\n")
    print(timeline.summary(tz=tz, show=max(args.show, 0)))
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
        print(f"check failed ({_failing_line(exc, script.path)}): {message}", file=sys.stderr)
        return 1
    except (ImportError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        traceback.print_exc()
        print(
            f"error: the script's check or report raised ({_failing_line(exc, script.path)}): "
            f"{type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
        return 1
    if script.check is not None:
        print("check passed")
    return 0


def main(
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
