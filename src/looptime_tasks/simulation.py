"""Run loops on virtual time for days and see what ran when: the simulation harness.

`simulate` runs an async ``setup(sim)`` on a fresh `looptime_tasks.VirtualEventLoop` from a start
instant for a virtual duration with a seed, records every event of every `Loop` started meanwhile,
and returns a `Timeline`: each iteration's scheduled and actual start, end and outcome, handled
failures with their retry delays, concurrency over time, plus what the simulated code printed and
what fake bots sent. The timeline answers the questions schedule tests ask (`Timeline.runs`,
`Timeline.gaps`, `Timeline.runs_per_day`, `Timeline.max_concurrency`, `Timeline.failures`,
`Timeline.plan` for planned against actual runs) and renders itself as text
(`Timeline.summary`), JSON, CSV and a PNG (`Timeline.plot`, with the ``plot`` extra). `main`
runs a simulation script (the ``looptime-tasks simulate`` command), and `explore` runs one once
per seed in parallel (``looptime-tasks explore``), with faults drawn from each seed, and lists
the failing seeds with the commands that replay them.

A simulation script defines ``async def setup(sim)`` and, optionally, ``START``, ``DURATION``,
``SEED``, ``TZ``, ``check(timeline)`` and ``report(timeline)``, and ends with
``raise SystemExit(looptime_tasks.simulation.main(__file__))``; command-line options override its
constants (``looptime-tasks simulate --help`` prints the whole contract).

Layout: this module only re-exports. The private modules, each importing only those before it:
`_zones` (zone names, DST changes), `_recording` (the observer), `_model` (the records and the
queries), `_plan` (planned against actual runs), `_export` (JSON, CSV), `_report` (text, PNG),
`_timeline` (`Timeline`), `_simulation` (the harness and its faults), `_script` (scripts),
`_explore` (many seeds in parallel), `_cli` (the command line).
"""

from __future__ import annotations

from looptime_tasks._cli import simulate_main as main
from looptime_tasks._explore import Exploration, SeedResult, explore
from looptime_tasks._model import Failure, LoopHistory, Note, OutputLine, Run
from looptime_tasks._model import LoopSelector as LoopSelector
from looptime_tasks._model import Outcome as Outcome
from looptime_tasks._plan import Plan
from looptime_tasks._plan import PlanMark as PlanMark
from looptime_tasks._script import Script, ScriptError, World, load_script, run_script
from looptime_tasks._simulation import Outages, Simulation, simulate
from looptime_tasks._simulation import SetupFunction as SetupFunction
from looptime_tasks._timeline import Timeline
from looptime_tasks._zones import DstChange

# The type aliases Outcome, LoopSelector, PlanMark and SetupFunction are re-exported too
# (imported "as" themselves), but are not in __all__.
__all__ = (
    "DstChange",
    "Exploration",
    "Failure",
    "LoopHistory",
    "Note",
    "Outages",
    "OutputLine",
    "Plan",
    "Run",
    "Script",
    "ScriptError",
    "SeedResult",
    "Simulation",
    "Timeline",
    "World",
    "explore",
    "load_script",
    "main",
    "run_script",
    "simulate",
)
