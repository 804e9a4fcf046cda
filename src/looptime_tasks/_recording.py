"""Recording a simulation: the observer that keeps every loop event in flat arrays.

`Recorder` is registered with `looptime_tasks.observe` by the harness; it appends a few numbers
and references per event and builds nothing. `looptime_tasks._model` turns the arrays into runs
on the first query.

Design decision: the record format (which event kinds are kept, ``-1`` for "no iteration", wall
time in nanoseconds since the start, the side dictionary of rare fields) is written here and read
only by `looptime_tasks._model`.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Final

from looptime_tasks import EventKind, Loop, LoopEvent

__all__ = (
    "ONE_MICROSECOND",
    "ProgressRecorder",
    "Recorder",
    "short_name",
    "task_name",
)

ONE_MICROSECOND: Final = timedelta(microseconds=1)
_DEFAULT_TASK_PREFIX: Final = "looptime-tasks: "

_SCHEDULED: Final = EventKind.SCHEDULED
_STARTED: Final = EventKind.STARTED
_ITERATION_STARTED: Final = EventKind.ITERATION_STARTED
_ITERATION_FINISHED: Final = EventKind.ITERATION_FINISHED


class Recorder:
    """The observer: appends a few numbers and references per event; builds nothing.

    ``SCHEDULED`` events are ignored: ``ITERATION_STARTED`` carries the slot too. The fields of
    the rare kinds (retry delay, exception, outcome) go to a side dictionary keyed by position.

    Attributes:
        generation: How many process restarts the simulation has had; a loop started for the
            first time is remembered with the generation it started in.
    """

    __slots__ = (
        "_clock_wall_ns",
        "_name_counts",
        "_names",
        "extras",
        "generation",
        "iterations",
        "kinds",
        "loops",
        "monotonic",
        "scheduled",
        "started_loops",
        "task_names",
        "tasks",
        "wall_ns",
    )

    def __init__(self, clock_wall_ns: Callable[[], int]) -> None:
        self._clock_wall_ns = clock_wall_ns
        self.generation = 0
        self.kinds: list[EventKind] = []
        self.loops: list[Loop[Any]] = []
        self.iterations = array("q")
        self.monotonic = array("d")
        self.wall_ns = array("q")  # virtual wall clock, nanoseconds since the start instant
        self.scheduled: list[int | None] = []  # slots, nanoseconds since the Unix epoch
        self.extras: dict[int, tuple[float | None, BaseException | None, str | None]] = {}
        self.started_loops: dict[Loop[Any], int] = {}  # loop -> generation, in order
        self.task_names: dict[str, Loop[Any]] = {}
        self.tasks: dict[object, Loop[Any]] = {}  # each run's task -> its loop
        self._names: dict[Loop[Any], str] = {}
        self._name_counts: dict[tuple[int, str], int] = {}

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
        self.scheduled.append(event.scheduled_ns)
        if kind is not _ITERATION_STARTED and kind is not _ITERATION_FINISHED:
            self.extras[len(self.kinds) - 1] = (event.retry_delay, event.exception, event.outcome)
            if kind is _STARTED:
                self._started(event.loop)

    def _started(self, loop: Loop[Any]) -> None:
        if loop not in self.started_loops:
            self.started_loops[loop] = self.generation
            base = short_name(loop)
            key = (self.generation, base)
            self._name_counts[key] = count = self._name_counts.get(key, 0) + 1
            self._names[loop] = base if count == 1 else f"{base} #{count}"
        task = loop.get_task()
        if task is not None:
            self.task_names[task.get_name()] = loop
            self.tasks[task] = loop

    def display_name(self, loop: Loop[Any]) -> str:
        """The name the timeline gives a started loop: its `short_name` when it first started,
        with `` #2``, `` #3``… when earlier loops of the same process generation had it."""
        return self._names[loop]

    def position(self) -> int:
        """How many events are recorded: orders other records among the events."""
        return len(self.kinds)


class ProgressRecorder(Recorder):
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


def task_name(loop: Loop[Any]) -> str:
    """The name of a loop's current task, or ``""`` when it has none."""
    task = loop.get_task()
    return task.get_name() if task is not None else ""


def short_name(loop: Loop[Any]) -> str:
    """A loop's display name: its task name, or its function's name for the default one."""
    name = task_name(loop)
    if not name or name.startswith(_DEFAULT_TASK_PREFIX):
        return str(loop.coro.__name__)
    return name
