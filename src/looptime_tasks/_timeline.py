"""`Timeline`: the model of a simulation with its renderings and exports.

The queries are `looptime_tasks._model.TimelineModel`'s; this class adds the text
(`Timeline.summary`, `Timeline.listing`), the PNG (`Timeline.plot`) and the exports
(`Timeline.to_dict`, JSON, CSV), each a thin call into `looptime_tasks._report` or
`looptime_tasks._export`.

Design decision: the imports point one way, zones and recording <- model <- exports and
renderings <- this class <- the harness <- scripts <- the command line; the model never calls
into a renderer, and a renderer only reads the model.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, Final

from looptime_tasks import Loop
from looptime_tasks._export import CSV_COLUMNS, timeline_dict, write_csv
from looptime_tasks._model import LoopSelector, TimelineModel
from looptime_tasks._plan import Plan, compare
from looptime_tasks._report import render_listing, render_plot, render_summary
from looptime_tasks._zones import as_zone

__all__ = ("Timeline",)


class Timeline(TimelineModel):
    """What the loops of a simulation did, with queries, renderings and exports.

    Build one with `looptime_tasks.simulation.simulate`. Rich objects (`Run`, `Failure`,
    `LoopHistory`) are made on the first query and then cached.
    """

    CSV_COLUMNS: Final = CSV_COLUMNS
    """The columns of `write_csv`, one row per iteration."""

    def __str__(self) -> str:
        return self.summary()

    # Planned against actual --------------------------------------------------------------------

    def plan(self, loop: str | Loop[Any]) -> Plan:
        """One loop's planned slots against its actual runs (see `Plan`).

        The plan is what the loop's schedule (`Loop.upcoming`) called for from its first start
        to the end of the window, except after it was stopped, cancelled or completed on
        purpose; slots while its process was down (`Simulation.restart`) or after it died of an
        error count as missed.

        Raises:
            ValueError: If no loop or several loops match, or the loop's schedule has no
                instants (an interval of 0).
        """
        history = self.loop(loop)
        found = self.plans().get(history.name)
        if found is None:
            raise ValueError(
                f"loop {history.name!r} has no planned slots: with an interval of 0 its runs"
                " follow one another back to back"
            )
        return found

    def planned(self, loop: str | Loop[Any]) -> tuple[datetime, ...]:
        """The slots one loop's schedule planned over the window (aware, UTC): `Plan.planned`."""
        return self.plan(loop).planned

    def missed(self, loop: str | Loop[Any]) -> tuple[datetime, ...]:
        """The planned slots of one loop that no run ran for (aware, UTC): `Plan.missed`."""
        return self.plan(loop).missed

    def plans(self) -> dict[str, Plan | None]:
        """Every loop's `Plan` by name (None for a loop whose schedule has no instants)."""
        cached: dict[str, Plan | None] | None = getattr(self, "_plans", None)
        if cached is None:
            cached = {history.name: compare(self, history) for history in self.loops}
            self._plans = cached
        return cached

    # Text --------------------------------------------------------------------------------------

    def summary(self, *, tz: tzinfo | str = UTC, show: int = 10, per_day: int = 14) -> str:
        """A readable report: the window, a table per loop, planned against actual runs, runs
        per day, DST changes, the first and last runs in order, messages and errors.

        Args:
            tz: The zone to show times and dates in, or its IANA name.
            show: How many runs to list from the start and from the end of the window.
            per_day: Show the runs-per-day table when the window has at most this many days.
        """
        return render_summary(self, self.plans(), tz=as_zone(tz), show=show, per_day=per_day)

    def listing(
        self,
        *,
        tz: tzinfo | str = UTC,
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
            tz: The zone to show times and dates in, or its IANA name.
            first: How many runs to show from the start.
            last: How many runs to show from the end.
            since: Show only entries at or after this instant (aware).
            until: Show only entries before this instant (aware).
            loop: Show only the runs, failures and printed lines of these loops (a name or a
                `Loop`); None shows everything.
        """
        return render_listing(
            self, tz=as_zone(tz), first=first, last=last, since=since, until=until, loop=loop
        )

    def plot(
        self, path: str | os.PathLike[str], *, tz: tzinfo | str = UTC, title: str | None = None
    ) -> Path:
        """Draw the timeline as a PNG: one lane per loop, a mark per run.

        Runs that take time are bars (stacked when they overlap); handled failures are
        orange crosses with a line to their retry; unhandled errors red crosses; cancelled
        and stopped iterations grey. Day boundaries (for up to 62 days) and DST changes are
        vertical lines. Uses matplotlib's Agg backend, without touching pyplot's global state.

        Args:
            path: Where to write the PNG.
            tz: The zone of the time axis, or its IANA name.
            title: The figure title; a description of the window by default.

        Returns:
            The path written.

        Raises:
            ImportError: If matplotlib is not installed (the message says how to install it).
        """
        return render_plot(self, self.plans(), Path(path), tz=as_zone(tz), title=title)

    # Export ------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-ready data (instants as ISO-8601 strings, durations in seconds)."""
        return timeline_dict(self, self.plans())

    def to_json(self, *, indent: int | None = 2) -> str:
        """The timeline as a JSON document (see `to_dict`)."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def write_json(self, path: str | os.PathLike[str]) -> Path:
        """Write `to_json` to *path* (UTF-8) and return the path."""
        target = Path(path)
        target.write_text(self.to_json() + "\n", encoding="utf-8")
        return target

    def write_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write one CSV row per iteration (see `CSV_COLUMNS`) to *path* and return the path."""
        return write_csv(self, self.plans(), path)
