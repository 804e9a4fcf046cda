"""The simulation harness: `simulate` runs ``setup(sim)`` on virtual time and returns a `Timeline`.

Design decisions:

- **Public API only.** Loops report through `looptime_tasks.observe`, the same observer API any
  user has; the harness never reaches into `Loop`. The code under simulation is production code.
- **Record cheaply, build lazily.** The observer (`looptime_tasks._recording.Recorder`) appends a
  few references and numbers per event to flat arrays (kind, loop, iteration, monotonic seconds,
  wall nanoseconds, scheduled instant) and ignores ``SCHEDULED`` events; `Run`, `Failure` and
  every statistic are built on the first query. A year of a one-minute loop is about a million
  events.
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

import asyncio
import contextlib
import io
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Final, Literal, TypeAlias

import looptime_tasks
from looptime_tasks import VirtualClock, VirtualEventLoop
from looptime_tasks._model import Entry, Note, OutputLine
from looptime_tasks._recording import (
    NS_PER_MICROSECOND,
    ONE_MICROSECOND,
    ProgressRecorder,
    Recorder,
    short_name,
)
from looptime_tasks._timeline import Timeline
from looptime_tasks.fakebot import FakeBot, SentMessage

__all__ = (
    "DEFAULT_DURATION",
    "DEFAULT_SEED",
    "DEFAULT_START",
    "SetupFunction",
    "Simulation",
    "simulate",
)

DEFAULT_START: Final = datetime(2024, 1, 1, tzinfo=UTC)
"""Where a simulation starts unless told otherwise: 2024-01-01T00:00:00Z (a Monday)."""

DEFAULT_DURATION: Final = timedelta(days=7)
"""How long a simulation runs unless told otherwise: seven virtual days."""

DEFAULT_SEED: Final = 0
"""The seed of the event loop's random generator unless told otherwise."""

SetupFunction: TypeAlias = Callable[["Simulation"], Awaitable[None]]
"""``async def setup(sim) -> None``: what a simulation runs at its start instant."""


# Recording -----------------------------------------------------------------------------------


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
        self._recorder: Recorder = Recorder(event_loop.clock.wall_ns)
        self._bots: list[FakeBot] = []
        self._helpers: list[asyncio.Task[Any]] = []
        self._entries: list[Entry] = []
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
        target_ns += offset.microseconds * NS_PER_MICROSECOND
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
        self._entries.append(Entry(position, item.at, kind, item))

    def _record_message(self, message: SentMessage) -> None:
        self._add_entry("message", message)

    def _record_output(self, text: str) -> None:
        task = asyncio.current_task(self.event_loop)
        source = "setup"  # the simulation's own task runs setup(sim) and the shutdown
        if task is not None and task is not self._main_task:
            name = task.get_name()
            loop = self._recorder.task_names.get(name.split(" [iteration ")[0])
            source = short_name(loop) if loop is not None else name
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
            sim._recorder = ProgressRecorder(
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
                remaining = window - sim.clock.elapsed - ONE_MICROSECOND
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
