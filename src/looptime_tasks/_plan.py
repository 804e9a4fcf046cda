"""Planned against actual runs: the nominal slots of each loop, matched to its runs.

`compare` lays out, for one loop's history, the slots its schedule planned while the loop was
meant to run (`looptime_tasks.Loop.upcoming`, pure schedule arithmetic) and sorts its runs and
those slots into on time, late, caught up, extra and missed (`Plan`).

Design decisions:

- **A loop is meant to run from its first start to the end of the window**, except after it
  was stopped, cancelled or completed its ``count`` on purpose (until it is started again). A
  loop that died of an unhandled error, or whose process was down (`Simulation.restart`: the
  loops cancelled while the process stops), keeps its plan: those slots are missed.
- **Each start plans with that start's `Loop`** (a restarted process builds new ones). A
  relative loop without a store runs on a grid from its first run, so each start plans a grid
  anchored on its first run (on the start itself when it made none); until the next start the
  previous grid stands. Wall schedules (``time=``, cron, relative loops with a store) do not
  depend on the start.
- **The plan is the loop's schedule as it is when the timeline is queried**: a loop whose
  schedule was changed with ``change_interval`` is compared with its last schedule.
- **A run matches the planned slot it ran for** (its ``scheduled`` instant, to the
  millisecond), once: a second run of one slot, or a run of an unplanned slot, is extra. It is
  *caught up* when its slot is older than the start that ran it (the store's catch-up), *late*
  when it started more than the loop's ``jitter`` after its slot, else *on time*.
"""

from __future__ import annotations

import bisect
import dataclasses
from datetime import datetime, timedelta
from typing import Any, Final, Literal, TypeAlias

from looptime_tasks import Loop
from looptime_tasks._model import LoopHistory, Run, TimelineModel

__all__ = ("Plan", "PlanMark", "compare")

PlanMark: TypeAlias = Literal["on_time", "late", "caught_up", "extra"]
"""How a run compares with the plan."""

_MATCH: Final = timedelta(milliseconds=1)
_CHUNK: Final = 1024
_ONE_MICROSECOND: Final = timedelta(microseconds=1)


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """One loop's planned slots against its actual runs over the simulated window.

    Attributes:
        loop: The name of the loop (see `LoopHistory.name`).
        planned: The slots its schedule planned while it was meant to run (aware, UTC), in
            order.
        on_time: The runs that started on their planned slot (within the loop's ``jitter``).
        late: The runs that started later than that, in the same start of the loop.
        caught_up: The runs of a slot due before the start that ran them (``catch_up``).
        extra: The runs of no planned slot, or of a slot that had run already.
        missed: The planned slots no run ran for.
        tolerance: How late a run may start and still be on time: the loop's ``jitter``.
    """

    loop: str
    planned: tuple[datetime, ...]
    on_time: tuple[Run, ...]
    late: tuple[Run, ...]
    caught_up: tuple[Run, ...]
    extra: tuple[Run, ...]
    missed: tuple[datetime, ...]
    tolerance: timedelta

    @property
    def differences(self) -> list[tuple[datetime, str, Run | None]]:
        """Every departure from the plan in order of its slot (or start, for an extra run):
        ``(instant, "missed" | "late" | "caught_up" | "extra", run or None)``."""
        found: list[tuple[datetime, str, Run | None]] = [
            (slot, "missed", None) for slot in self.missed
        ]
        for mark, runs in (("late", self.late), ("caught_up", self.caught_up)):
            found.extend((run.scheduled or run.started, mark, run) for run in runs)
        found.extend((run.started, "extra", run) for run in self.extra)
        found.sort(key=lambda item: item[0])
        return found

    def mark(self, run: Run) -> PlanMark:
        """How *run* (one of this loop's) compares with the plan.

        Raises:
            ValueError: If *run* is not one of this loop's runs.
        """
        for mark, runs in self._groups():
            if any(candidate is run for candidate in runs):
                return mark
        raise ValueError(f"{run!r} is not a run of loop {self.loop!r}")

    def marks(self) -> dict[int, PlanMark]:
        """The mark of every run, by ``id(run)``."""
        return {id(run): mark for mark, runs in self._groups() for run in runs}

    def _groups(self) -> tuple[tuple[PlanMark, tuple[Run, ...]], ...]:
        return (
            ("on_time", self.on_time),
            ("late", self.late),
            ("caught_up", self.caught_up),
            ("extra", self.extra),
        )


def compare(timeline: TimelineModel, history: LoopHistory) -> Plan | None:
    """The plan of one loop against its runs, or None when its schedule has no instants (a
    relative loop with an interval of 0 runs back to back)."""
    downtimes = [(down, up or timeline.end) for down, up in timeline.downtimes()]
    starts = history.starts
    first_runs: dict[int, Run] = {}
    for run in history.runs:
        first_runs.setdefault(run.session, run)
    if any(_anchored(loop) and _interval(loop) <= 0 for _, loop in starts):
        return None
    planned: list[datetime] = []
    for session, (started, loop) in enumerate(starts):
        until = starts[session + 1][0] if session + 1 < len(starts) else timeline.end
        if session < len(history.endings):
            ended, outcome = history.endings[session]
            on_purpose = outcome in ("completed", "stopped") or (
                outcome == "cancelled" and not any(down <= ended <= up for down, up in downtimes)
            )
            if on_purpose:
                until = min(until, ended)
        first = first_runs.get(session)
        anchor = started
        if first is not None and _anchored(loop):
            anchor = first.scheduled or first.started
        planned.extend(_slots(loop, anchor, until))
    jitter = history.loop.jitter
    tolerance = timedelta(seconds=jitter or 0)
    matched = [False] * len(planned)
    groups: dict[PlanMark, list[Run]] = {"on_time": [], "late": [], "caught_up": [], "extra": []}
    for run in history.runs:
        index = _nearest(planned, run.scheduled)
        if index is None or matched[index]:
            groups["extra"].append(run)
            continue
        matched[index] = True
        if planned[index] < starts[run.session][0]:
            groups["caught_up"].append(run)
        elif run.lateness > tolerance:
            groups["late"].append(run)
        else:
            groups["on_time"].append(run)
    return Plan(
        history.name,
        tuple(planned),
        tuple(groups["on_time"]),
        tuple(groups["late"]),
        tuple(groups["caught_up"]),
        tuple(groups["extra"]),
        tuple(slot for slot, hit in zip(planned, matched, strict=True) if not hit),
        tolerance,
    )


def _slots(loop: Loop[Any], after: datetime, until: datetime) -> list[datetime]:
    """The loop's slots at or after *after* and before *until*, by `Loop.upcoming`."""
    found: list[datetime] = []
    if after >= until:
        return found
    if _anchored(loop):
        # Counted from `after` (as if started then): ask for them all at once.
        count = int((until - after).total_seconds() / _interval(loop)) + 2
        return [slot for slot in loop.upcoming(count, after=after) if slot < until]
    while True:
        for slot in loop.upcoming(_CHUNK, after=after):
            if slot >= until:
                return found
            found.append(slot)
        after = found[-1] + _ONE_MICROSECOND


def _anchored(loop: Loop[Any]) -> bool:
    """Whether the loop's slots count from its start: a relative loop without a store."""
    return loop.time is None and loop.cron is None and loop.store is None


def _interval(loop: Loop[Any]) -> float:
    """The interval of a relative loop, in seconds."""
    return (loop.hours or 0) * 3600 + (loop.minutes or 0) * 60 + (loop.seconds or 0)


def _nearest(planned: list[datetime], slot: datetime | None) -> int | None:
    """The index of the planned slot within a millisecond of *slot*, if any."""
    if slot is None or not planned:
        return None
    index = bisect.bisect_left(planned, slot)
    candidates = [i for i in (index - 1, index) if 0 <= i < len(planned)]
    best = min(candidates, key=lambda i: abs(planned[i] - slot))
    return best if abs(planned[best] - slot) <= _MATCH else None
