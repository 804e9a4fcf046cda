"""Run loops on virtual time for days and see what ran when: the simulation harness.

`simulate` runs an async ``setup(sim)`` on a fresh `looptime_tasks.VirtualEventLoop` from a start
instant for a virtual duration with a seed, records every event of every `Loop` started meanwhile,
and returns a `Timeline`: each iteration's scheduled and actual start, end and outcome, handled
failures with their retry delays, concurrency over time, plus what the simulated code printed and
what fake bots sent. The timeline answers the questions schedule tests ask (`Timeline.runs`,
`Timeline.gaps`, `Timeline.runs_per_day`, `Timeline.max_concurrency`, `Timeline.failures`) and
renders itself as text (`Timeline.summary`), JSON, CSV and a PNG (`Timeline.plot`, with the
``plot`` extra). `main` runs a simulation script (the ``looptime-tasks simulate`` command).

A simulation script defines ``async def setup(sim)`` and, optionally, ``START``, ``DURATION``,
``SEED``, ``TZ``, ``check(timeline)`` and ``report(timeline)``, and ends with
``raise SystemExit(looptime_tasks.simulation.main(__file__))``; command-line options override its
constants (`SCRIPT_CONTRACT` has the whole contract, as ``looptime-tasks simulate --help`` prints
it).

Layout: this module only re-exports. `_simulation` is the harness (`Simulation`, `simulate`),
`_timeline` the record and the model with its queries and JSON/CSV exports, `_report` the text
and PNG renderings, `_script` the scripts and the command line.
"""

from __future__ import annotations

from looptime_tasks._report import PLOT_HINT
from looptime_tasks._script import (
    SCRIPT_CONTRACT,
    Script,
    ScriptError,
    load_script,
    main,
    parse_duration,
    parse_start,
    parse_zone,
    run_script,
)
from looptime_tasks._simulation import (
    DEFAULT_DURATION,
    DEFAULT_SEED,
    DEFAULT_START,
    Simulation,
    simulate,
)
from looptime_tasks._simulation import SetupFunction as SetupFunction
from looptime_tasks._timeline import (
    DstChange,
    Failure,
    LoopHistory,
    Note,
    OutputLine,
    Run,
    Timeline,
)
from looptime_tasks._timeline import LoopSelector as LoopSelector
from looptime_tasks._timeline import Outcome as Outcome

# The type aliases Outcome, LoopSelector and SetupFunction are re-exported too (imported "as"
# themselves), but are not in __all__.
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
