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
  when it started more than the loop's ``jitter`` plus 0.1 s after its slot, else *on time*.
  The grace: real work a run waits for (a store's claim, a real database) takes real
  milliseconds, which virtual time follows; a bot's run is not late for that.
- **After a wall-clock jump** (`Simulation.jump_wall`) a loop counted from its start keeps its
  grid on the event loop's clock, so its later slots move with the jump; wall schedules do not
  move, and the window ends at the wall clock's last instant.
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
_GRACE: Final = timedelta(milliseconds=100)
_CHUNK: Final = 1024
_ONE_MICROSECOND: Final = timedelta(microseconds=1)


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """One loop's planned slots against its actual runs over the simulated window.

    Attributes:
        loop: The name of the loop (see `LoopHistory.name`).
        planned: The slots its schedule planned while it was meant to run (aware, UTC), in
            order.
        on_time: The runs that started on their planned slot (within ``tolerance``).
        late: The runs that started later than that, in the same start of the loop.
        caught_up: The runs of a slot due before the start that ran them (``catch_up``).
        extra: The runs of no planned slot, or of a slot that had run already.
        missed: The planned slots no run ran for.
        tolerance: How late a run may start and still be on time: the loop's ``jitter`` plus
            0.1 s (real work a run waits for, such as a store's claim, takes real time).
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
    steps = _wall_steps(timeline)
    planned: list[datetime] = []
    for session, (started, loop) in enumerate(starts):
        if session + 1 < len(starts):
            until, until_monotonic = starts[session + 1][0], history.starts_monotonic[session + 1]
        else:  # the wall clock at the end of the window, moved by its jumps
            until = timeline.end + timedelta(seconds=steps[-1][1] if steps else 0)
            until_monotonic = timeline.duration.total_seconds()
        if session < len(history.endings):
            ended, outcome = history.endings[session]
            on_purpose = outcome in ("completed", "stopped") or (
                outcome == "cancelled" and not any(down <= ended <= up for down, up in downtimes)
            )
            if on_purpose:
                until = min(until, ended)
                until_monotonic = min(until_monotonic, history.endings_monotonic[session])
        if not _anchored(loop):
            planned.extend(_slots(loop, started, until))
            continue
        first = first_runs.get(session)
        anchor, anchor_monotonic = started, history.starts_monotonic[session]
        if first is not None:
            anchor = first.scheduled or first.started
            anchor_monotonic = first.start_monotonic - (first.started - anchor).total_seconds()
        if steps:
            planned.extend(_moved_slots(loop, anchor, anchor_monotonic, until_monotonic, steps))
        else:
            planned.extend(_slots(loop, anchor, until))
    planned.sort()  # a wall-clock jump back plans later slots at earlier instants
    jitter = history.loop.jitter
    tolerance = timedelta(seconds=jitter or 0) + _GRACE
    matched = [False] * len(planned)
    groups: dict[PlanMark, list[Run]] = {"on_time": [], "late": [], "caught_up": [], "extra": []}
    for run in history.runs:
        index = _nearest(planned, matched, run.scheduled)
        if index is None:
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


def _moved_slots(
    loop: Loop[Any],
    anchor: datetime,
    anchor_monotonic: float,
    until_monotonic: float,
    steps: list[tuple[float, float]],
) -> list[datetime]:
    """The slots of a loop counted from its start, where the wall clock jumped: its grid is on
    the event loop's clock (anchored at *anchor*, *anchor_monotonic* seconds), so each slot
    moves by the jumps between the anchor and itself."""
    instants = [instant for instant, _ in steps]

    def moved(monotonic: float) -> float:
        index = bisect.bisect_left(instants, monotonic)
        return steps[index - 1][1] if index else 0.0

    before = moved(anchor_monotonic)
    until = anchor + timedelta(seconds=until_monotonic - anchor_monotonic)
    found = []
    for slot in _slots(loop, anchor, until):
        monotonic = anchor_monotonic + (slot - anchor).total_seconds()
        found.append(slot + timedelta(seconds=moved(monotonic) - before))
    return found


def _wall_steps(timeline: TimelineModel) -> list[tuple[float, float]]:
    """The simulation's wall-clock jumps (`Simulation.jump_wall`), in order: when each happened
    on the event loop's clock and the sum of the steps up to it, both in seconds."""
    steps: list[tuple[float, float]] = []
    total = 0.0
    for incident in timeline.incidents:
        if incident.kind == "wall_jump" and incident.seconds:
            # Its wall instant is start + monotonic + the earlier steps.
            instant = (incident.at - timeline.start).total_seconds() - total
            total += incident.seconds
            steps.append((instant, total))
    return steps


def _anchored(loop: Loop[Any]) -> bool:
    """Whether the loop's slots count from its start: a relative loop without a store."""
    return loop.time is None and loop.cron is None and loop.store is None


def _interval(loop: Loop[Any]) -> float:
    """The interval of a relative loop, in seconds."""
    return (loop.hours or 0) * 3600 + (loop.minutes or 0) * 60 + (loop.seconds or 0)


def _nearest(planned: list[datetime], matched: list[bool], slot: datetime | None) -> int | None:
    """The index of the nearest planned slot not yet matched within a millisecond of *slot*, if
    any (after a wall-clock jump back, two planned slots can share an instant)."""
    if slot is None:
        return None
    low = bisect.bisect_left(planned, slot - _MATCH)
    high = bisect.bisect_right(planned, slot + _MATCH)
    free = [index for index in range(low, high) if not matched[index]]
    return min(free, key=lambda index: abs(planned[index] - slot), default=None)
