"""Run anyio's own test suite, asyncio backend, on the stock loop and on the virtual loop.

The question: does code written for anyio on asyncio (task groups, cancel scopes, threads,
portals, sockets, TLS, subprocesses, signals) run unchanged on
:class:`looptime_tasks.VirtualEventLoop` (default options)? anyio's suite exercises all of it,
and its asyncio backend takes the event loop from a ``loop_factory`` backend option, so the
suite runs on the virtual loop without any edit.

anyio's tests are not part of its wheel: give the root of anyio's source (the sdist, or a
checkout of the tag of the installed version). Run the script with a Python whose environment
has anyio, anyio's test requirements (its ``test`` dependency group: blockbuster, hypothesis,
psutil, pytest-mock, pytest-timeout, trustme, truststore, uvloop, trio) and looptime_tasks —
not the project's own ``.venv``, whose plugins (looptime's) change every loop. For example::

    pip download --no-deps --no-binary :all: anyio==4.16.0     # then unpack it
    python3 -m venv /work/anyio-venv
    /work/anyio-venv/bin/pip install anyio==4.16.0 trio blockbuster hypothesis psutil \\
        pytest pytest-mock pytest-timeout trustme truststore uvloop -e .
    nice /work/anyio-venv/bin/python benchmarks/check_anyio.py /work/anyio-src
    nice /work/anyio-venv/bin/python benchmarks/check_anyio.py /work/anyio-src \\
        --loop virtual -- tests/test_from_thread.py               # one loop, some tests

It prints the passed/failed/errors/skipped counts on each loop and the tests whose outcome
differs, each with the first line of its error; with both loops, the differing tests are run
again on both (``--rerun``) and marked ``flaky`` when the second run disagrees with the first.
Exit status 1 if a test fails only on the virtual loop. It takes minutes and is not run in CI.

Design decisions:

* **This file is also the pytest plugin** (``-p check_anyio``, found through ``PYTHONPATH``). It
  keeps the tests of anyio's plain ``asyncio`` backend parameter (not ``trio``, and not uvloop,
  which is not a selector loop) and the tests that take no backend at all, and for the virtual
  run adds ``loop_factory=VirtualEventLoop`` to that parameter's options (anyio's ``debug=True``
  stays). So both runs run the same tests, and every loop anyio's asyncio backend makes
  (``anyio.run``, the pytest plugin's runner, ``start_blocking_portal``) is virtual, as it would
  be for a user passing the same option. ``--eager`` takes anyio's ``asyncio+eager`` parameter
  instead (asyncio's eager task factory), with a virtual loop that has the same task factory.

* **Outcomes come from pytest's reports**, one line per test, as ``_suite_check`` (shared with
  ``check_pytest_asyncio.py``) records and compares them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import pytest

from _suite_check import (
    Outcomes,
    compare,
    parse_arguments,
    record,
    report_failures,
    run_pytest,
    save,
    tally,
)
from looptime_tasks import VirtualEventLoop

_LOOP_VARIABLE: Final = "CHECK_ANYIO_LOOP"
_RESULTS_VARIABLE: Final = "CHECK_ANYIO_RESULTS"
_EAGER_VARIABLE: Final = "CHECK_ANYIO_EAGER"


# --- the plugin, in pytest's process ----------------------------------------------------------


def _backend(item: pytest.Item) -> str | None:
    """anyio's backend parameter of ``item``: "asyncio", "asyncio+eager", "other", or None."""
    callspec = getattr(item, "callspec", None)
    if callspec is None or "anyio_backend" not in callspec.params:
        return None
    backend = callspec.params["anyio_backend"]
    if not isinstance(backend, tuple) or backend[0] != "asyncio":
        return "other"
    factory = backend[1].get("loop_factory")
    if factory is None:
        return "asyncio"
    return "asyncio+eager" if factory.__name__ == "eager_task_loop_factory" else "other"


def eager_virtual_loop() -> VirtualEventLoop:
    """A ``VirtualEventLoop`` with asyncio's eager task factory (anyio's ``asyncio+eager``)."""
    event_loop = VirtualEventLoop()
    event_loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined,unused-ignore]
    return event_loop


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    eager = bool(os.environ.get(_EAGER_VARIABLE))
    wanted = "asyncio+eager" if eager else "asyncio"
    backends = {item: _backend(item) for item in items}
    kept = [item for item in items if backends[item] in (None, wanted)]
    config.hook.pytest_deselected(
        items=[item for item in items if backends[item] not in (None, wanted)]
    )
    items[:] = kept
    if os.environ.get(_LOOP_VARIABLE) == "virtual":
        for item in kept:
            if backends[item] is not None:
                options: dict[str, Any] = item.callspec.params["anyio_backend"][1]  # type: ignore[attr-defined]
                options["loop_factory"] = eager_virtual_loop if eager else VirtualEventLoop


_outcomes: Outcomes = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    record(_outcomes, report)


def pytest_sessionfinish(session: pytest.Session) -> None:
    save(_outcomes, _RESULTS_VARIABLE)


# --- the parent: run pytest per loop, compare ---------------------------------------------------


def run_suite(
    source: Path,
    loop: str,
    pytest_args: Sequence[str],
    log: Path | None = None,
    *,
    eager: bool = False,
) -> tuple[Outcomes, float]:
    """Run anyio's tests under ``source`` on ``loop``; pytest's output goes to ``log``."""
    environment = {_LOOP_VARIABLE: loop, _EAGER_VARIABLE: "1" if eager else ""}
    return run_pytest("check_anyio", source, pytest_args, environment, _RESULTS_VARIABLE, log)


def main(argv: Sequence[str] | None = None) -> int:
    def eager_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--eager",
            action="store_true",
            help="anyio's asyncio+eager variant (eager task factory, Python 3.12+) instead",
        )

    args, _ = parse_arguments(
        __doc__, "anyio", "--loop", ("stock", "virtual"), argv, more=eager_option
    )
    loops = args.runs
    runs: dict[str, Outcomes] = {}
    for loop in loops:
        log = args.logs / f"{loop}.log" if args.logs else None
        runs[loop], seconds = run_suite(args.source, loop, args.pytest_args, log, eager=args.eager)
        print(tally(runs[loop], loop, seconds), flush=True)
    if len(runs) < 2:
        return report_failures(runs[loops[0]])

    def rerun(nodes: list[str]) -> tuple[Outcomes, Outcomes]:
        again = [run_suite(args.source, loop, nodes, eager=args.eager)[0] for loop in loops]
        return again[0], again[1]

    names = ("on the stock loop", "on the virtual loop")
    return compare(runs["stock"], runs["virtual"], rerun, args.rerun, names)


if __name__ == "__main__":
    sys.exit(main())
