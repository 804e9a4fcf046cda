"""Rendering a simulation's timeline: the text summary and listing, and the PNG plot.

`looptime_tasks.simulation.Timeline.summary`, ``listing`` and ``plot`` call the ``render_*``
functions here, which read the model (`looptime_tasks._model.TimelineModel`) and never change
it. Listing entries are told apart by their ``kind``, which says which record they carry.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Final, cast

from looptime_tasks._export import incident_text
from looptime_tasks._model import (
    Entry,
    Failure,
    LoopSelector,
    Note,
    OutputLine,
    Run,
    TimelineModel,
)
from looptime_tasks._plan import Plan
from looptime_tasks._zones import DstChange, midnight, zone_name
from looptime_tasks.fakebot import Incident, SentMessage

__all__ = ("PLOT_HINT", "render_listing", "render_plot", "render_summary")

PLOT_HINT: Final = (
    "plotting a timeline needs matplotlib; install it with: pip install 'looptime-tasks[plot]'"
)
"""The message of the ImportError raised by `Timeline.plot` when matplotlib is missing."""


# Text ----------------------------------------------------------------------------------------


# Differences from the plan listed per loop in the summary.
_PLAN_DIFFERENCES: Final = 5


def render_summary(
    timeline: TimelineModel,
    plans: Mapping[str, Plan | None],
    *,
    tz: tzinfo,
    show: int,
    per_day: int,
) -> str:
    """`Timeline.summary`: the window, a table per loop, planned against actual runs, runs per
    day, DST changes, the first and last runs in order, messages and errors."""
    zone = zone_name(tz)
    lines = [
        f"Simulated {_format_length(timeline.duration)} of virtual time in "
        f"{timeline.real_seconds:.2f} s (seed {timeline.seed})",
        f"  from {_format_instant(timeline.start, tz)} {zone}",
        f"  to   {_format_instant(timeline.end, tz)} {zone} (exclusive)",
        "",
    ]
    histories = timeline.loops
    if not histories:
        lines.append("No loop ran.")
    else:
        lines.extend(_loop_table(timeline, tz))
    if any(plans.values()):
        lines.extend(["", "Planned against actual runs"])
        lines.extend(_plan_table(plans, tz))
    days = timeline.days(tz)
    if histories and 2 <= len(days) <= per_day:
        lines.extend(["", f"Runs per day ({zone})"])
        lines.extend(_per_day_table(timeline, tz))
    changes = timeline.dst_changes(tz)
    if changes:
        lines.extend(["", "DST changes"])
        lines.extend(f"  {change}" for change in changes)
    if histories:
        total = len(timeline.runs())
        shown = "all" if total <= 2 * show else f"the first {show} and last {show} of"
        lines.extend(["", f"Timeline ({zone}): {shown} {total:,} runs"])
        lines.append(
            render_listing(
                timeline, tz=tz, first=show, last=show, since=None, until=None, loop=None
            )
        )
    messages = timeline.messages
    if messages:
        lines.extend(["", f"Messages sent by fake bots: {len(messages):,}"])
        picked = list(messages)
        if len(picked) > 2 * show:
            picked = [*picked[:show], *picked[-show:]]
        for index, message in enumerate(picked):
            if index == show and len(messages) > 2 * show:
                lines.append(f"  ... {len(messages) - 2 * show:,} more")
            lines.append(f"  {_format_instant(message.at, tz)}  {_format_message(message)}")
    if timeline.incidents:
        lines.extend(["", "Incidents (faults injected and what they caused)"])
        lines.extend(_incident_table(timeline, tz))
    calls, added = timeline.latency
    if calls:
        lines.extend(["", f"Latency: {calls:,} fake bot calls took {_format_span(added)} in all"])
    errors = [error for history in histories for error in history.errors]
    if errors:
        lines.extend(["", "Unhandled errors (each ended its loop)"])
        for error in errors:
            lines.append(
                f"  {_format_instant(error.at, tz)}  {error.loop} {_where(error)}: "
                f"{error.exception!r}"
            )
    return "\n".join(lines)


def _loop_table(timeline: TimelineModel, tz: tzinfo) -> list[str]:
    full_days = set(timeline.full_days(tz))
    header = (
        "loop", "runs", "first run", "last run", "min gap", "max gap", "runs/day",
        "failures", "errors", "max at once",
    )  # fmt: skip
    rows: list[tuple[str, ...]] = []
    for history in timeline.loops:
        runs = history.runs
        gaps = timeline.gaps(history.loop) if len(runs) > 1 else []
        per_day = timeline.runs_per_day(history.loop, tz=tz)
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
                str(timeline.max_concurrency(history.loop)),
            )
        )
    return _table(header, rows, right={1, 6, 7, 8, 9})


def _plan_table(plans: Mapping[str, Plan | None], tz: tzinfo) -> list[str]:
    """Per loop: planned slots, runs on time, late, caught up, extra, missed slots; then the
    first few differences of each loop."""
    header = ("loop", "planned", "on time", "late", "caught up", "extra", "missed")
    rows = [
        (
            name,
            *(
                f"{count:,}"
                for count in (
                    len(plan.planned),
                    len(plan.on_time),
                    len(plan.late),
                    len(plan.caught_up),
                    len(plan.extra),
                    len(plan.missed),
                )
            ),
        )
        for name, plan in plans.items()
        if plan is not None
    ]
    lines = _table(header, rows, right={1, 2, 3, 4, 5, 6})
    width = max(len(row[0]) for row in rows)
    for name, plan in plans.items():
        differences = plan.differences if plan is not None else []
        for instant, mark, run in differences[:_PLAN_DIFFERENCES]:
            text = mark.replace("_", " ")
            if run is not None and mark != "extra":
                text += (
                    f": ran at {_format_instant(run.started, tz)}"
                    f" ({_format_span(run.lateness.total_seconds())} late)"
                )
            elif run is not None:
                slot = run.scheduled
                text += f" run (for {_format_instant(slot, tz)})" if slot else " run"
            lines.append(f"  {name:<{width}}  {_format_instant(instant, tz)}  {text}")
        if len(differences) > _PLAN_DIFFERENCES:
            more = len(differences) - _PLAN_DIFFERENCES
            lines.append(f"  {name:<{width}}  ... {more:,} more differences")
    return lines


def _incident_table(timeline: TimelineModel, tz: tzinfo) -> list[str]:
    """Incidents by kind and source: how many, the first and the last."""
    groups: dict[tuple[str, str], list[Incident]] = {}
    for incident in timeline.incidents:
        groups.setdefault((incident.kind, incident.source), []).append(incident)
    header = ("kind", "source", "count", "first", "last", "example")
    rows = [
        (
            kind.replace("_", " "),
            source,
            f"{len(found):,}",
            _format_instant(found[0].at, tz),
            _format_instant(found[-1].at, tz),
            found[0].text,
        )
        for (kind, source), found in groups.items()
    ]
    return _table(header, rows, right={2})


def _per_day_table(timeline: TimelineModel, tz: tzinfo) -> list[str]:
    histories = timeline.loops
    counts = [timeline.runs_per_day(history.loop, tz=tz) for history in histories]
    header = ("day", *(history.name for history in histories))
    rows = [
        (f"{day:%a %Y-%m-%d}", *(f"{per_day[day]:,}" for per_day in counts))
        for day in timeline.days(tz)
    ]
    return _table(header, rows, right=set(range(1, len(header))))


def render_listing(
    timeline: TimelineModel,
    *,
    tz: tzinfo,
    first: int,
    last: int,
    since: datetime | None,
    until: datetime | None,
    loop: LoopSelector,
) -> str:
    """`Timeline.listing`: the entries of the window and loops, in order."""
    entries = timeline.entries(since=since, until=until, loop=loop)
    run_indexes = [index for index, entry in enumerate(entries) if entry.kind == "run"]
    hidden: tuple[int, int] | None = None
    if len(run_indexes) > first + last:
        head_end = run_indexes[first] if first else 0
        tail_start = run_indexes[-last] if last else len(entries)
        hidden = (head_end, tail_start)
    width = max((len(history.name) for history in timeline.loops), default=7)
    width = max(width, 7)  # "message"
    highest = max((run.iteration for run in timeline.runs()), default=0)
    number = max(len(f"#{highest}"), len("#0") + 3)
    changes = [
        change
        for change in timeline.dst_changes(tz)
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


def _describe(entry: Entry, width: int, number: int, tz: tzinfo) -> str:
    """One listing line after the time: loop name (*width* wide), ``#iteration`` (*number*)."""
    if entry.kind == "run":
        run = cast(Run, entry.item)
        details = [_outcome_text(run)]
        if run.lateness > timedelta(0) and run.scheduled is not None:
            details.append(
                f"{_format_span(run.lateness.total_seconds())} late for "
                f"{_format_clock(run.scheduled.astimezone(tz))}"
            )
        duration = run.duration
        if duration is not None and duration > timedelta(0) and run.outcome == "ok":
            details.append(f"took {_format_span(duration.total_seconds())}")
        return f"{run.loop:<{width}}  {f'#{run.iteration}':<{number}}  {', '.join(details)}"
    if entry.kind == "failure":
        failure = cast(Failure, entry.item)
        if failure.retry_delay is not None:
            text = f"failed: {failure.exception!r}; retry in {_format_span(failure.retry_delay)}"
        else:
            text = f"unhandled error: {failure.exception!r} (the loop ends)"
        return f"{failure.loop:<{width}}  {_where(failure):<{number}}  {text}"
    if entry.kind == "output":
        line = cast(OutputLine, entry.item)
        return f"{line.source:<{width}}  > {line.text}"
    if entry.kind == "incident":
        incident = cast(Incident, entry.item)
        return f"{incident.source:<{width}}  ! {incident_text(incident)}"
    if entry.kind == "message":
        return f"{'message':<{width}}  {_format_message(cast(SentMessage, entry.item))}"
    return f"{'note':<{width}}  {cast(Note, entry.item).text}"


def _where(failure: Failure) -> str:
    """Where a failure happened: ``#iteration``, or ``before_loop``."""
    return "before_loop" if failure.iteration is None else f"#{failure.iteration}"


def _outcome_text(run: Run) -> str:
    retries = run.retries
    if run.outcome == "ok":
        if retries:
            return f"ok after {retries} {'retry' if retries == 1 else 'retries'}"
        return "ok"
    if run.outcome == "error":
        return "error (the loop ends)"
    return run.outcome


def _elision(hidden: Sequence[Entry], changes: list[DstChange], tz: tzinfo) -> str:
    kinds = Counter(entry.kind for entry in hidden)
    words = {"run": "runs", "failure": "failures", "output": "printed lines"}
    words |= {"message": "messages", "note": "notes", "incident": "incidents"}
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


# Formatting ------------------------------------------------------------------------------------


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


# Plotting --------------------------------------------------------------------------------------


def render_plot(
    timeline: TimelineModel,
    plans: Mapping[str, Plan | None],
    path: Path,
    *,
    tz: tzinfo,
    title: str | None,
) -> Path:
    """`Timeline.plot`: draw *timeline* as a PNG at *path*."""
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
        plan = plans.get(history.name)
        if plan is not None:  # planned slots: faint ticks behind the runs; missed ones marked
            planned = [x(slot) for slot in plan.planned]
            axes.plot(planned, [y] * len(planned), linestyle="", marker="|", markersize=22,
                      color="0.8", zorder=0)  # fmt: skip
            missed = [x(slot) for slot in plan.missed]
            axes.plot(missed, [y - 0.3] * len(missed), linestyle="", marker="^", markersize=6,
                      color="tab:pink")  # fmt: skip
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
        failures = timeline.failures(history.loop)
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
    # Outages and restarts: shaded spans; other incidents: marks on their loop's lane (or on top).
    for began, ended in timeline.outages():
        axes.axvspan(x(began), x(ended or end), color="tab:olive", alpha=0.2, linewidth=0)
    for stopped, resumed in timeline.downtimes():
        axes.axvspan(x(stopped), x(resumed or end), color="black", alpha=0.12, linewidth=0)
    lane_of = {history.name: lanes - 1 - lane for lane, history in enumerate(histories)}
    marked = [
        incident
        for incident in timeline.incidents
        if incident.kind in ("http_error", "connection_error", "event_error", "wall_jump")
    ]
    axes.plot(
        [x(incident.at) for incident in marked],
        [lane_of.get(incident.source, lanes - 0.55) - 0.2 for incident in marked],
        linestyle="",
        marker="v",
        markersize=7,
        color="tab:brown",
    )
    days = timeline.days(tz)
    if len(days) <= 62:
        for day in days[1:]:
            axes.axvline(x(midnight(day, tz)), color="0.85", linewidth=0.8, zorder=0)
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
        Line2D([], [], linestyle="", marker="|", markersize=12, color="0.8", label="planned"),
        Line2D([], [], linestyle="", marker="^", color="tab:pink", label="missed slot"),
        Line2D([], [], color="tab:orange", marker="x", label="handled failure -> retry"),
        Line2D([], [], linestyle="", marker="X", color="tab:red", label="unhandled error"),
        Line2D([], [], linestyle="", marker="|", markersize=12, color="grey", label="cancelled"),
        Line2D([], [], color="tab:purple", linestyle="--", label="DST change"),
        Line2D([], [], linestyle="", marker="v", color="tab:brown", label="fault (HTTP, ...)"),
        Line2D([], [], color="tab:olive", alpha=0.4, linewidth=6, label="gateway outage"),
        Line2D([], [], color="black", alpha=0.25, linewidth=6, label="restart (down)"),
    ]
    axes.legend(handles=legend, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    axes.set_title(
        title
        or (
            f"{len(timeline.runs()):,} runs, {_format_instant(timeline.start, tz)} + "
            f"{_format_span(timeline.duration.total_seconds())} ({zone_name(tz)}, "
            f"seed {timeline.seed})"
        ),
        fontsize=10,
    )
    figure.savefig(path, dpi=100)
    return path
