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
- **Faults belong to the world, loops to the process.** HTTP faults and outages hit the fake
  bots; ``sim.restart`` stops the process (bots closed, loops cancelled, its tasks cancelled),
  lets the downtime pass, and runs ``setup(sim)`` again, on one timeline. What was planned with
  ``disconnect``, ``random_outages``, ``restart`` and ``jump_wall`` survives restarts; what
  ``setup`` planned with ``at`` or ``spawn`` is part of the process and does not. Every random
  draw is the event loop's, so a seed replays the same world.
- **Output has a time too.** While the simulation runs, ``print()`` output of the simulated
  code and the ``looptime_tasks`` log are captured with their virtual time instead of going to
  the terminal, so the timeline can show them in order among the runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import io
import logging
import math
import random
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Final, TypeAlias

import looptime_tasks
from looptime_tasks import VirtualClock, VirtualEventLoop
from looptime_tasks._model import Entry, EntryKind, Note, OutputLine
from looptime_tasks._recording import (
    ONE_MICROSECOND,
    ProgressRecorder,
    Recorder,
)
from looptime_tasks._timeline import Timeline
from looptime_tasks._units import HORIZON_SECONDS, timedelta_to_ns
from looptime_tasks.fakebot import FakeBot, HttpFaults, Incident, IncidentKind, SentMessage

__all__ = (
    "DEFAULT_DURATION",
    "DEFAULT_SEED",
    "DEFAULT_START",
    "Outages",
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

When: TypeAlias = "datetime | timedelta | float"
"""An instant of a simulation: an aware datetime, or an offset from the start (a timedelta or
seconds)."""

_UNNAMED_TASK: Final = re.compile(r"Task-\d+")


@dataclasses.dataclass(frozen=True, slots=True)
class Outages:
    """A random model of gateway outages (see `Simulation.random_outages`).

    Attributes:
        every: The mean time between outages (exponentially distributed), in seconds.
        duration: The (low, high) range an outage's length is drawn from, in seconds.
        resume: The probability that the bot resumes its session after an outage (then
            ``on_resumed`` fires), rather than starting a new one (``on_ready`` fires again).
    """

    every: float = 6 * 3600.0
    duration: tuple[float, float] = (5.0, 300.0)
    resume: float = 0.5

    def __post_init__(self) -> None:
        every = self.every
        if isinstance(every, bool) or not isinstance(every, int | float):
            raise TypeError(f"every must be seconds > 0 (got {every!r})")
        if not math.isfinite(every) or every <= 0:
            raise ValueError(f"every must be seconds > 0 (got {every!r})")
        low, high = self.duration
        if not 0 < low <= high or not math.isfinite(high):
            raise ValueError(
                f"duration must be a (low, high) range of seconds with 0 < low <= high "
                f"(got {self.duration!r})"
            )
        if not 0 <= self.resume <= 1:
            raise ValueError(f"resume must be a probability from 0 to 1 (got {self.resume!r})")


# Capturing output ----------------------------------------------------------------------------


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
        faults: The `looptime_tasks.fakebot.HttpFaults` of the bots `fake_bot` makes, unless
            told otherwise; None for none.
        restarts: How many process restarts (`restart`) have happened so far.
    """

    def __init__(
        self,
        event_loop: VirtualEventLoop,
        duration: timedelta,
        seed: int | None,
        setup: SetupFunction,
        faults: HttpFaults | None = None,
    ) -> None:
        self.event_loop = event_loop
        self.duration = duration
        self.seed = seed
        self.faults = faults
        self.restarts = 0
        self._setup = setup
        self._recorder: Recorder = Recorder(event_loop.clock.wall_ns)
        self._bots: list[FakeBot] = []
        self._helpers: list[asyncio.Task[Any]] = []
        self._world: set[asyncio.Task[Any]] = set()  # helpers that survive restarts
        self._entries: list[Entry] = []
        self._output: list[OutputLine] = []
        self._notes: list[Note] = []
        self._incidents: list[Incident] = []
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

    def fake_bot(self, bot_class: type[FakeBot] = FakeBot, **options: Any) -> FakeBot:
        """Make a `looptime_tasks.fakebot.FakeBot` whose messages and incidents go on the
        timeline.

        The bot counts its ``ready_after`` from now, gets its ``on_ready`` handler called once
        ready (`FakeBot.start` runs as a helper task), and is closed (its cogs unloaded) at the
        end of the simulation or at a `restart`.

        Args:
            bot_class: `FakeBot` or a subclass of it (one with a ``setup_hook``, say).
            **options: Passed to the class (``ready_after``, ``guilds``, ``channels``,
                ``faults``…); ``faults`` defaults to the simulation's `faults`.
        """
        candidate: object = bot_class  # checked: callers may pass anything
        if not (isinstance(candidate, type) and issubclass(candidate, FakeBot)):
            raise TypeError(f"bot_class must be FakeBot or a subclass (got {bot_class!r})")
        options.setdefault("faults", self.faults)
        bot = bot_class(on_send=self._record_message, on_incident=self._record_incident, **options)
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
        when: When,
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
        target, target_ns = self._instant("when", when)

        async def fire() -> None:
            await self._sleep_until(target_ns)
            result = action()
            if isinstance(result, Awaitable):
                await result

        return self.spawn(fire(), name=name or f"sim.at({target.isoformat()})")

    def _instant(self, label: str, when: object) -> tuple[datetime, int]:
        """*when* as an aware UTC datetime and as wall nanoseconds since the start; checked."""
        start = self.start.astimezone(UTC)
        if isinstance(when, datetime):
            if when.tzinfo is None or when.utcoffset() is None:
                raise TypeError(f"{label} must be an aware datetime (got {when!r})")
            target = when.astimezone(UTC)
        elif isinstance(when, timedelta):
            target = start + when
        elif isinstance(when, int | float) and not isinstance(when, bool) and math.isfinite(when):
            target = start + timedelta(seconds=when)
        else:
            raise TypeError(
                f"{label} must be an aware datetime, or a timedelta or seconds from the start "
                f"(got {when!r})"
            )
        # Integer nanoseconds of wall time since the start: exact, unlike float seconds.
        offset = target - start
        target_ns = timedelta_to_ns(offset)
        if target_ns < self.clock.wall_ns():
            raise ValueError(
                f"{label} must not be in the past: {target.isoformat()} is before "
                f"{self.now().isoformat()}"
            )
        return target, target_ns

    async def _sleep_until(self, target_ns: int) -> None:
        # Not clock.advance(): two tasks advancing to one instant at once would spin. Wall
        # nanoseconds since the start: a jump_wall moves them, so measure from them each time.
        delay = (target_ns - self.clock.wall_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)

    def _plan(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """A helper task of the world: it survives restarts."""
        task = self.spawn(coro, name=name)
        self._world.add(task)
        return task

    def _plan_at(
        self,
        target: datetime,
        target_ns: int,
        method: str,
        action: Callable[[], Awaitable[None]],
    ) -> asyncio.Task[Any]:
        """A helper task of the world, named after the `Simulation` *method* that planned it,
        that awaits *action()* at *target* (*target_ns*: wall nanoseconds since the start)."""

        async def planned() -> None:
            await self._sleep_until(target_ns)
            await action()

        return self._plan(planned(), f"sim.{method}({target.isoformat()})")

    # Faults ------------------------------------------------------------------------------------

    def disconnect(
        self,
        bot: FakeBot | None = None,
        *,
        at: When,
        duration: timedelta | float,
        resume: bool = False,
    ) -> asyncio.Task[Any]:
        """Cut a bot's gateway connection at *at* for *duration*.

        During the outage the bot is not ready, ``wait_until_ready()`` blocks and its calls raise
        `looptime_tasks.fakebot.FakeConnectionError`; then it reconnects and dispatches
        ``on_resumed`` (*resume*) or ``on_ready`` again (a new session), as discord.py does.

        Args:
            bot: The bot; None for every fake bot of the simulation open at that instant (after
                a `restart`, the new process's bots).
            at: When the outage begins (see `at`).
            duration: How long it lasts: a timedelta or seconds > 0.
            resume: Whether the bot resumes its session rather than starting a new one.

        Returns:
            The helper task (it survives restarts).
        """
        target, target_ns = self._instant("at", at)
        length = _check_duration(duration)

        async def outage() -> None:
            await self._outage(bot, length.total_seconds(), resume)

        return self._plan_at(target, target_ns, "disconnect", outage)

    def random_outages(self, bot: FakeBot | None = None, model: Outages | None = None) -> None:
        """Cut the gateway connection at random for the whole simulation (see `Outages`).

        Gaps, lengths and resume-or-new-session are drawn from `random`, so a seed replays them.

        Args:
            bot: The bot; None for every fake bot open at the time of each outage.
            model: The outage model; `Outages()` by default.
        """
        chosen = Outages() if model is None else model
        if not isinstance(chosen, Outages):
            raise TypeError(f"model must be an Outages or None (got {chosen!r})")

        async def outages() -> None:
            draw = self.random
            while True:
                await asyncio.sleep(draw.expovariate(1 / chosen.every))
                length = draw.uniform(*chosen.duration)
                await self._outage(bot, length, draw.random() < chosen.resume)

        self._plan(outages(), "sim.random_outages()")

    async def _outage(self, bot: FakeBot | None, seconds: float, resume: bool) -> None:
        bots = [bot] if bot is not None else [b for b in self._bots if not b.is_closed()]
        for each in bots:
            each.drop_connection()
        await asyncio.sleep(seconds)
        for each in bots:
            each.restore_connection(resume=resume)

    def restart(self, *, at: When, downtime: timedelta | float) -> asyncio.Task[Any]:
        """Restart the process at *at*: stop it, wait *downtime*, run ``setup(sim)`` again.

        Stopping closes the fake bots (their cogs unloaded), cancels every loop still running
        (``after_loop`` hooks run) and cancels the process's tasks: those ``setup`` and the
        loops started, and the actions planned with `at` and `spawn`. What was planned with
        `disconnect`, `random_outages`, `restart` and `jump_wall` goes on. After the downtime
        `restarts` grows by one and ``setup(sim)`` runs again: it builds a fresh bot and starts
        again, on the same timeline, where the restart is marked.

        Args:
            at: When the process stops (see `at`).
            downtime: How long it stays down: a timedelta or seconds > 0.

        Returns:
            The helper task (it survives restarts).
        """
        target, target_ns = self._instant("at", at)
        length = _check_duration(downtime, "downtime")

        async def restart() -> None:
            self._incident(
                "restart",
                f"the process stops for {length.total_seconds():g} s",
                seconds=length.total_seconds(),
            )
            await self._stop_process()
            await asyncio.sleep(length.total_seconds())
            self.restarts += 1
            self._recorder.generation += 1
            self._incident("start", f"the process starts again (restart {self.restarts})")
            await self._setup(self)

        return self._plan_at(target, target_ns, "restart", restart)

    def jump_wall(self, *, at: When, delta: timedelta | float) -> asyncio.Task[Any]:
        """Step the wall clock by *delta* at *at* (an NTP correction, a suspend), leaving
        monotonic time alone: `looptime_tasks.VirtualClock.jump_wall` at a planned instant.

        Args:
            at: When (see `at`).
            delta: The step: a timedelta or seconds, negative to go back.

        Returns:
            The helper task (it survives restarts).
        """
        target, target_ns = self._instant("at", at)
        if isinstance(delta, bool) or not isinstance(delta, timedelta | int | float):
            raise TypeError(f"delta must be a timedelta or seconds (got {delta!r})")
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)

        async def jump() -> None:
            self._incident(
                "wall_jump",
                f"the wall clock jumps by {step.total_seconds():+g} s",
                seconds=step.total_seconds(),
            )
            self.clock.jump_wall(step)

        return self._plan_at(target, target_ns, "jump_wall", jump)

    def note(self, text: str) -> None:
        """Put a remark on the timeline at the current virtual time."""
        note = Note(self.now(), text)
        self._notes.append(note)
        self._add_entry("note", note)

    # Internals used by simulate() --------------------------------------------------------------

    def _add_entry(self, kind: EntryKind, item: OutputLine | SentMessage | Note | Incident) -> None:
        self._sequence += 1
        position = (self._recorder.position(), -1_000_000_000 + self._sequence)
        self._entries.append(Entry(position, item.at, kind, item))

    def _record_message(self, message: SentMessage) -> None:
        self._add_entry("message", message)

    def _source(self) -> str:
        """Who is running: a loop's name, a task's name, or ``setup``."""
        task = asyncio.current_task(self.event_loop)
        if task is None or task is self._main_task:
            return "setup"  # the simulation's own task runs setup(sim) and the shutdown
        if task in self._world:
            return "simulation"
        name = task.get_name()
        loop = self._recorder.tasks.get(task)
        if loop is None:  # a body of an overlapping loop runs in a task of its own
            loop = self._recorder.task_names.get(name.split(" [iteration ")[0])
        if loop is not None:
            return self._recorder.display_name(loop)
        # asyncio numbers unnamed tasks process-wide: the same run would print other numbers.
        return "task" if _UNNAMED_TASK.fullmatch(name) else name

    def _record_output(self, text: str) -> None:
        line = OutputLine(self.now(), self._source(), text)
        self._output.append(line)
        self._add_entry("output", line)

    def _record_incident(self, incident: Incident) -> None:
        task = asyncio.current_task(self.event_loop)
        if task is not None and incident.source == task.get_name():
            incident = dataclasses.replace(incident, source=self._source())
        self._incidents.append(incident)
        self._add_entry("incident", incident)

    def _incident(self, kind: IncidentKind, text: str, *, seconds: float | None = None) -> None:
        self._record_incident(Incident(self.now(), kind, "simulation", text, None, seconds))

    async def _stop(self, spared: set[asyncio.Task[Any] | None]) -> None:
        """Close the bots, cancel the loops, then every task but *spared*; wait for all of them.

        Raises:
            Exception: The first exception a helper task (not spared) raised.
        """
        for bot in self._bots:
            if not bot.is_closed():
                await bot.close()
        loops = list(self._recorder.started_loops)
        for loop in loops:
            loop.cancel()
        loop_tasks = [task for loop in loops if (task := loop.get_task()) is not None]
        await asyncio.gather(*loop_tasks, return_exceptions=True)
        doomed = [task for task in asyncio.all_tasks() if task not in spared]
        for task in doomed:
            task.cancel()
        await asyncio.gather(*doomed, return_exceptions=True)
        for helper in self._helpers:
            if helper not in spared and not helper.cancelled():
                error = helper.exception()
                if isinstance(error, Exception):
                    raise error

    async def _stop_process(self) -> None:
        """A restart: stop everything but the world's helpers (and the simulation's task)."""
        await self._stop({asyncio.current_task(), self._main_task, *self._world})

    async def _shutdown(self) -> None:
        """The end: stop everything."""
        await self._stop({asyncio.current_task()})


def simulate(
    setup: SetupFunction,
    *,
    start: datetime | str = DEFAULT_START,
    duration: timedelta | float = DEFAULT_DURATION,
    seed: int | None = DEFAULT_SEED,
    capture_output: bool = True,
    progress: Callable[[float], None] | None = None,
    faults: HttpFaults | None = None,
    outages: Outages | None = None,
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
        faults: The HTTP faults of the fake bots `Simulation.fake_bot` makes (unless given
            there); None for none.
        outages: A random model of gateway outages of every fake bot
            (`Simulation.random_outages`); None for none.
        **options: Other `looptime_tasks.VirtualEventLoop` options (``wakeup_latency``…).

    Returns:
        The `Timeline` of the simulation.

    Raises:
        TypeError, ValueError: For a bad argument.
        Exception: Whatever ``setup`` or a helper task raised, after a clean shutdown.
    """
    if not callable(setup):
        raise TypeError(f"setup must be an async function taking the Simulation (got {setup!r})")
    window = _check_duration(duration)
    if faults is not None and not isinstance(faults, HttpFaults):
        raise TypeError(f"faults must be an HttpFaults or None (got {faults!r})")
    if outages is not None and not isinstance(outages, Outages):
        raise TypeError(f"outages must be an Outages or None (got {outages!r})")
    if options.get("autojump", True) is not True:
        raise ValueError("a simulation needs autojump=True: time must move by itself")
    began = time.perf_counter()

    async def main() -> Timeline:
        event_loop = asyncio.get_running_loop()
        if not isinstance(event_loop, VirtualEventLoop):  # pragma: no cover - run() makes one
            raise RuntimeError("simulate() must run on a VirtualEventLoop")
        sim = Simulation(event_loop, window, seed, setup, faults)
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
                if outages is not None:
                    sim.random_outages(model=outages)
                started = setup(sim)
                if not inspect.isawaitable(started):
                    raise TypeError(
                        "setup must be an async function taking the Simulation: it returned"
                        f" {started!r}, not an awaitable (write async def setup(sim): ...)"
                    )
                await started
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
            incidents=sim._incidents,
            latency=(
                sum(bot.latency_calls for bot in sim._bots),
                sum(bot.latency_seconds for bot in sim._bots),
            ),
            real_seconds=time.perf_counter() - began,
        )

    return looptime_tasks.run(main(), start=start, seed=seed, **options)


def _check_duration(duration: object, label: str = "duration") -> timedelta:
    if isinstance(duration, bool) or not isinstance(duration, timedelta | int | float):
        raise TypeError(f"{label} must be a timedelta or seconds > 0 (got {duration!r})")
    value = duration
    if not isinstance(value, timedelta):
        if not math.isfinite(value):
            raise ValueError(f"{label} must be a timedelta or seconds > 0 (got {duration!r})")
        value = timedelta(seconds=value)
    if value <= timedelta(0):
        raise ValueError(f"{label} must be a timedelta or seconds > 0 (got {duration!r})")
    if value.total_seconds() >= HORIZON_SECONDS:
        raise ValueError(
            f"{label} must be under 2**33 seconds (about 272 years), the virtual clock's horizon"
            f" (got {duration!r})"
        )
    return value
