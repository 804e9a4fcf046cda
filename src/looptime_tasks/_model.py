"""The timeline model: the records of a simulation and the queries about them.

`TimelineModel` turns the flat arrays of a `looptime_tasks._recording.Recorder` into `Run`,
`Failure` and `LoopHistory` records on its first query and answers the questions schedule tests
ask (runs, gaps, runs per day, concurrency, failures, DST changes). It renders nothing: the
public `looptime_tasks.simulation.Timeline` adds the text, JSON, CSV and PNG outputs on top.

Design decisions:

- Same-instant events keep the order they happened in: every record has a position in the
  event stream, and listings and concurrency sort by it.
- A timeline spans process restarts (`Simulation.restart`). A loop started after a restart
  continues the history of the loop of the same display name before it (a new session), so a
  cog rebuilt by the restarted process keeps one history per loop.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from typing import Any, Final, Literal, TypeAlias, cast

from looptime_tasks import EventKind, Loop
from looptime_tasks._recording import (
    ONE_MICROSECOND,
    Recorder,
    task_name,
)
from looptime_tasks._units import NS_PER_MICROSECOND, from_epoch_ns
from looptime_tasks._zones import DstChange, as_zone, midnight, offset_changes, zone_name
from looptime_tasks.fakebot import Incident, SentMessage

__all__ = (
    "Entry",
    "EntryKind",
    "Failure",
    "LoopHistory",
    "LoopSelector",
    "Note",
    "Outcome",
    "OutputLine",
    "Run",
    "TimelineModel",
    "entry_source",
)

Outcome: TypeAlias = Literal["ok", "error", "cancelled", "stopped"]
"""How one iteration ended: its body returned, raised an unhandled exception, was cancelled
(``cancel()``, or the end of the simulation), or was abandoned by ``stop()`` during a retry."""

EntryKind: TypeAlias = Literal["run", "failure", "output", "message", "note", "incident"]
"""What a listing entry carries."""

LoopSelector: TypeAlias = "str | Loop[Any] | Sequence[str | Loop[Any]] | None"
"""Which loops a query is about: a name, a `Loop` (a class attribute selects every per-instance
copy), a list of those, or None for all of them."""


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
class Entry:
    """One line of the chronological listing, sorted by when it was recorded."""

    position: tuple[int, int]
    at: datetime
    kind: EntryKind
    item: Run | Failure | OutputLine | SentMessage | Note | Incident


# Building ------------------------------------------------------------------------------------


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
        starts: When each of its runs (``start()`` to end) began, with the `Loop` that ran it
            (after a process restart, a new one): ``(when, loop)``.
        starts_monotonic: The same instants on the event loop's clock, in seconds (unmoved by
            wall-clock jumps).
        endings_monotonic: The instants of ``endings`` on the event loop's clock, in seconds.
    """

    name: str
    loop: Loop[Any]
    runs: tuple[Run, ...]
    errors: tuple[Failure, ...]
    endings: tuple[tuple[datetime, str], ...]
    starts: tuple[tuple[datetime, Loop[Any]], ...] = ()
    starts_monotonic: tuple[float, ...] = ()
    endings_monotonic: tuple[float, ...] = ()

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

    def __init__(self, name: str, loop: Loop[Any]) -> None:
        self.name = name
        self.loop = loop
        self.runs: list[tuple[int, Run]] = []  # (position of ITERATION_STARTED, run)
        self.errors: list[Failure] = []
        self.endings: list[tuple[datetime, str]] = []
        self.starts: list[tuple[datetime, Loop[Any]]] = []
        self.starts_monotonic: list[float] = []
        self.endings_monotonic: list[float] = []
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
            tuple(self.starts),
            tuple(self.starts_monotonic),
            tuple(self.endings_monotonic),
        )


class TimelineModel:
    """What the loops of a simulation did, and the queries about it (no rendering).

    `looptime_tasks.simulation.Timeline` adds the renderings and exports; build one with
    `simulate`. Rich objects (`Run`, `Failure`, `LoopHistory`) are made on the
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
        incidents: The faults injected into the simulation and what they caused (HTTP errors,
            disconnects and reconnects, errors of event handlers, restarts, wall-clock jumps),
            in order (`looptime_tasks.fakebot.Incident`).
        latency: The fake bots' calls slowed by `looptime_tasks.fakebot.HttpFaults.latency`:
            (how many, virtual seconds added in all).
    """

    def __init__(
        self,
        *,
        start: datetime,
        duration: timedelta,
        seed: int | None,
        recorder: Recorder,
        entries: Sequence[Entry] = (),
        output: Sequence[OutputLine] = (),
        notes: Sequence[Note] = (),
        messages: Sequence[SentMessage] = (),
        logs: Sequence[logging.LogRecord] = (),
        incidents: Sequence[Incident] = (),
        latency: tuple[int, float] = (0, 0.0),
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
        self.incidents = tuple(incidents)
        self.latency = latency
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
        builders: dict[Loop[Any], _LoopBuilder] = {}
        by_name: dict[str, _LoopBuilder] = {}
        for loop in recorder.started_loops:
            name = recorder.display_name(loop)
            # After a restart, the loop of the same name continues the earlier one's history.
            if name not in by_name:
                by_name[name] = _LoopBuilder(name, loop)
            builders[loop] = by_name[name]
        kinds, loops, iterations = recorder.kinds, recorder.loops, recorder.iterations
        monotonic, wall_ns, scheduled = recorder.monotonic, recorder.wall_ns, recorder.scheduled
        extras = recorder.extras
        positions, end_positions = self._positions, self._end_positions

        def wall(index: int) -> datetime:
            return start_utc + timedelta(microseconds=wall_ns[index] // NS_PER_MICROSECOND)

        def slot(index: int) -> datetime | None:
            ns = scheduled[index]
            return None if ns is None else from_epoch_ns(ns)

        for index, kind in enumerate(kinds):
            builder = builders[loops[index]]
            if kind is _ITERATION_STARTED:
                iteration = iterations[index]
                builder.open[iteration] = (
                    index,
                    _OpenRun(
                        iteration, builder.session, slot(index), wall(index), monotonic[index]
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
                builder.starts.append((wall(index), loops[index]))
                builder.starts_monotonic.append(monotonic[index])
                builder.open = {}
                builder.request = None
            elif kind is _STOP_REQUESTED or kind is _CANCEL_REQUESTED:
                builder.request = (monotonic[index], wall(index), index)
            elif kind is _ERROR:
                self._close_with_error(builder, index, wall(index), monotonic[index], extras)
            elif kind is _ENDED:
                outcome = extras[index][2] or "failed"
                builder.endings.append((wall(index), outcome))
                builder.endings_monotonic.append(monotonic[index])
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
        for builder in by_name.values():
            for position, open_run in builder.open.values():
                run = open_run.close(builder.name, "cancelled", None, None)
                builder.runs.append((position, run))
                positions[id(run)] = position
        return tuple(builder.history() for builder in by_name.values())

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
                        task_name(history.loop),
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

    def loop(self, selector: str | Loop[Any]) -> LoopHistory:
        """The history of one loop, by name or `Loop` object.

        Raises:
            ValueError: If no loop or several loops match.
        """
        found = self._select(selector)
        if len(found) != 1:
            names = ", ".join(repr(history.name) for history in found)
            raise ValueError(
                f"loop {selector!r} matches {len(found)} loops ({names}); pick one by name"
            )
        return found[0]

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

    def gaps(self, loop: str | Loop[Any], *, scheduled: bool = False) -> list[timedelta]:
        """The time between consecutive starts of one loop (virtual, monotonic).

        Args:
            loop: A loop name or `Loop`; it must select exactly one loop.
            scheduled: Measure between the scheduled slots instead of the actual starts.

        Raises:
            ValueError: If no loop or several loops match.
        """
        runs = self.loop(loop).runs
        if scheduled:
            slots = [run.scheduled for run in runs if run.scheduled is not None]
            return [later - earlier for earlier, later in itertools.pairwise(slots)]
        return [
            timedelta(seconds=later.start_monotonic - earlier.start_monotonic)
            for earlier, later in itertools.pairwise(runs)
        ]

    def days(self, tz: tzinfo | str = UTC) -> list[date]:
        """Every local date (in *tz*, a zone or its IANA name) the window touches, in order."""
        tz = as_zone(tz)
        first = self.start.astimezone(tz).date()
        last = (self.end - ONE_MICROSECOND).astimezone(tz).date()
        return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]

    def full_days(self, tz: tzinfo | str = UTC) -> list[date]:
        """The local dates (in *tz*, a zone or its IANA name) whose whole day lies inside the
        window."""
        tz = as_zone(tz)
        start_utc = self.start.astimezone(UTC)
        return [
            day
            for day in self.days(tz)
            if midnight(day, tz) >= start_utc and midnight(day + timedelta(days=1), tz) <= self.end
        ]

    def runs_per_day(self, loop: LoopSelector = None, *, tz: tzinfo | str = UTC) -> dict[date, int]:
        """How many iterations started on each local date of the window (zero included).

        Args:
            loop: A loop name, a `Loop`, or None for every loop.
            tz: The zone whose dates count, or its IANA name (default UTC).
        """
        tz = as_zone(tz)
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

    @property
    def restarts(self) -> tuple[Incident, ...]:
        """The process restarts (`Simulation.restart`), in order: when each stopped it."""
        return tuple(incident for incident in self.incidents if incident.kind == "restart")

    def downtimes(self) -> list[tuple[datetime, datetime | None]]:
        """When the process was down (`Simulation.restart`), as (stopped, started again)
        instants; None when it was still down at the end."""
        starts = [incident.at for incident in self.incidents if incident.kind == "start"]
        return [
            (incident.at, starts[index] if index < len(starts) else None)
            for index, incident in enumerate(self.restarts)
        ]

    def outages(self) -> list[tuple[datetime, datetime | None]]:
        """The gateway outages, as (disconnected, reconnected) instants; None when the
        connection was still down at the end (several bots down at once count once)."""
        spans: list[tuple[datetime, datetime | None]] = []
        down = 0
        for incident in self.incidents:
            if incident.kind == "disconnect":
                down += 1
                if down == 1:
                    spans.append((incident.at, None))
            elif incident.kind == "reconnect" and down:
                down -= 1
                if not down:
                    spans[-1] = (spans[-1][0], incident.at)
        return spans

    def run_incidents(self) -> dict[int, list[Incident]]:
        """The incidents that hit each iteration (made by its task while it ran), by ``id(run)``."""
        by_loop: dict[str, list[tuple[int, Incident]]] = {}
        for entry in self._extra_entries:
            if entry.kind == "incident":
                incident = cast(Incident, entry.item)
                by_loop.setdefault(incident.source, []).append((entry.position[0], incident))
        found: dict[int, list[Incident]] = {}
        if not by_loop:
            return found
        positions, end_positions = self._positions, self._end_positions
        for history in self.loops:
            hits = by_loop.get(history.name)
            if not hits:
                continue
            for run in history.runs:
                begin = positions[id(run)]
                end = end_positions.get(id(run))
                inside = [
                    incident
                    for position, incident in hits
                    if begin < position and (end is None or position <= end)
                ]
                if inside:
                    found[id(run)] = inside
        return found

    def dst_changes(self, tz: tzinfo | str | None = None) -> tuple[DstChange, ...]:
        """The UTC-offset changes inside the window of every zone the loops' times use.

        Args:
            tz: A further zone to include (the display zone, say), or its IANA name.
        """
        zones: dict[str, tzinfo] = {}
        candidates: list[tzinfo | None] = [None if tz is None else as_zone(tz)]
        for history in self.loops:
            candidates.extend(t.tzinfo for t in history.loop.time or ())
        for zone in candidates:
            if zone is not None and not isinstance(zone, timezone):
                zones.setdefault(zone_name(zone), zone)
        changes = [
            change
            for name, zone in zones.items()
            for change in offset_changes(name, zone, self.start.astimezone(UTC), self.end)
        ]
        changes.sort(key=lambda change: (change.at, change.zone))
        return tuple(changes)

    def entries(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        loop: LoopSelector = None,
    ) -> list[Entry]:
        """What `Timeline.listing` shows, in the order it was recorded: the entries at or after
        *since* and before *until*; with a *loop* selector, only those loops' runs, failures and
        printed lines."""
        names = None if loop is None else {history.name for history in self._select(loop)}
        positions = self._positions
        entries = list(self._extra_entries)
        for history in self.loops:
            for run in history.runs:
                entries.append(Entry((positions[id(run)], 0), run.started, "run", run))
                for failure in run.failures:
                    entries.append(
                        Entry((positions[id(failure)], 0), failure.at, "failure", failure)
                    )
            for error in history.errors:
                if error.iteration is None:
                    entries.append(Entry((positions[id(error)], 0), error.at, "failure", error))
        entries.sort(key=lambda entry: entry.position)
        return [
            entry
            for entry in entries
            if (since is None or entry.at >= since)
            and (until is None or entry.at < until)
            and (names is None or entry_source(entry) in names)
        ]


def entry_source(entry: Entry) -> str | None:
    """The loop a listing entry belongs to (None for messages and notes)."""
    item = entry.item
    if isinstance(item, Incident):
        return item.source
    if isinstance(item, Run | Failure):
        return item.loop
    if isinstance(item, OutputLine):
        return item.source
    return None
