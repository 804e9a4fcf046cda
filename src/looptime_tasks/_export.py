"""Exporting a timeline: a JSON-ready dictionary and CSV rows.

`looptime_tasks.simulation.Timeline.to_dict`, ``to_json``, ``write_json`` and ``write_csv`` call
the functions here. Instants are ISO-8601 strings and durations seconds; nothing here depends on
the real time a simulation took, so the same seed exports the same bytes.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from looptime_tasks._model import Failure, Run, TimelineModel
from looptime_tasks._plan import Plan
from looptime_tasks._recording import task_name
from looptime_tasks.fakebot import Incident

__all__ = ("CSV_COLUMNS", "FORMAT_VERSION", "incident_text", "timeline_dict", "write_csv")

FORMAT_VERSION: Final = 3
"""The version of the JSON document (2 added ``incidents``, ``restarts`` and ``latency``; 3 the
``plan`` of each loop)."""

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
    "incidents",
    "plan",
)
"""The columns of `write_csv`, one row per iteration."""


def timeline_dict(timeline: TimelineModel, plans: Mapping[str, Plan | None]) -> dict[str, Any]:
    """Everything as JSON-ready data (instants as ISO-8601 strings, durations in seconds)."""
    loops = []
    for history in timeline.loops:
        gaps = [gap.total_seconds() for gap in timeline.gaps(history.loop)]
        loops.append(
            {
                "name": history.name,
                "task": task_name(history.loop),
                "runs": len(history.runs),
                "first_run": history.runs[0].started.isoformat() if history.runs else None,
                "last_run": history.runs[-1].started.isoformat() if history.runs else None,
                "min_gap_seconds": min(gaps) if gaps else None,
                "max_gap_seconds": max(gaps) if gaps else None,
                "failures": len(history.failures),
                "errors": len(history.errors),
                "max_concurrency": timeline.max_concurrency(history.loop),
                "endings": [
                    {"at": at.isoformat(), "outcome": outcome} for at, outcome in history.endings
                ],
                "plan": _plan_dict(plans.get(history.name)),
            }
        )
    return {
        "format": "looptime-tasks timeline",
        "version": FORMAT_VERSION,
        "start": timeline.start.isoformat(),
        "end": timeline.end.isoformat(),
        "duration_seconds": timeline.duration.total_seconds(),
        "seed": timeline.seed,
        "loops": loops,
        "runs": [_run_dict(run) for run in timeline.runs()],
        "errors": [_failure_dict(error) for history in timeline.loops for error in history.errors],
        "messages": [
            {
                "at": message.at.isoformat(),
                "channel_id": message.channel_id,
                "channel": message.channel,
                "guild": message.guild,
                "content": message.content,
            }
            for message in timeline.messages
        ],
        "output": [
            {"at": line.at.isoformat(), "source": line.source, "text": line.text}
            for line in timeline.output
        ],
        "notes": [{"at": note.at.isoformat(), "text": note.text} for note in timeline.notes],
        "incidents": [_incident_dict(incident) for incident in timeline.incidents],
        "restarts": [incident.at.isoformat() for incident in timeline.restarts],
        "latency": {"calls": timeline.latency[0], "seconds": seconds(timeline.latency[1])},
    }


def write_csv(
    timeline: TimelineModel, plans: Mapping[str, Plan | None], path: str | os.PathLike[str]
) -> Path:
    """Write one CSV row per iteration (see `CSV_COLUMNS`) to *path* and return the path."""
    target = Path(path)
    hits = timeline.run_incidents()
    marks = {key: mark for plan in plans.values() if plan for key, mark in plan.marks().items()}
    with target.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(CSV_COLUMNS)
        for run in timeline.runs():
            duration = run.duration
            writer.writerow(
                (
                    run.loop,
                    run.session,
                    run.iteration,
                    run.scheduled.isoformat() if run.scheduled is not None else "",
                    run.started.isoformat(),
                    run.ended.isoformat() if run.ended is not None else "",
                    run.outcome,
                    seconds(run.lateness.total_seconds()),
                    seconds(duration.total_seconds()) if duration is not None else "",
                    run.retries,
                    repr(run.failures[-1].exception) if run.failures else "",
                    _joined(hits.get(id(run), ())),
                    marks.get(id(run), ""),
                )
            )
    return target


def incident_text(incident: Incident) -> str:
    """An incident in one line: ``http error on send(): HTTP 503 …``."""
    return f"{incident.kind.replace('_', ' ')}: {incident.text}"


def _joined(incidents: Iterable[Incident]) -> str:
    return "; ".join(incident_text(incident) for incident in incidents)


def seconds(value: float) -> float | int:
    """Seconds for export: an int when whole, else rounded to the microsecond."""
    return int(value) if value == int(value) else round(value, 6)


def _plan_dict(plan: Plan | None) -> dict[str, Any] | None:
    if plan is None:
        return None
    return {
        "planned": len(plan.planned),
        "on_time": len(plan.on_time),
        "late": len(plan.late),
        "caught_up": len(plan.caught_up),
        "extra": len(plan.extra),
        "missed": len(plan.missed),
        "missed_slots": [slot.isoformat() for slot in plan.missed],
        "tolerance_seconds": seconds(plan.tolerance.total_seconds()),
    }


def _incident_dict(incident: Incident) -> dict[str, Any]:
    return {
        "at": incident.at.isoformat(),
        "kind": incident.kind,
        "source": incident.source,
        "text": incident.text,
        "exception": repr(incident.exception) if incident.exception is not None else None,
        "seconds": seconds(incident.seconds) if incident.seconds is not None else None,
    }


def _failure_dict(failure: Failure) -> dict[str, Any]:
    return {
        "loop": failure.loop,
        "iteration": failure.iteration,
        "at": failure.at.isoformat(),
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
        "scheduled": run.scheduled.isoformat() if run.scheduled is not None else None,
        "started": run.started.isoformat(),
        "ended": run.ended.isoformat() if run.ended is not None else None,
        "outcome": run.outcome,
        "lateness_seconds": seconds(run.lateness.total_seconds()),
        "duration_seconds": seconds(duration.total_seconds()) if duration is not None else None,
        "failures": [_failure_dict(failure) for failure in run.failures],
    }
