"""Run pytest-asyncio's own test suite plainly and with ``--virtual-time``, and compare.

The question: does ``--virtual-time`` (our pytest plugin, ``looptime_tasks.pytest_plugin``)
leave pytest-asyncio working as documented? Its suite runs every kind of async test and fixture
(loop scopes from function to session, class and module markers, strict and auto mode, loop
factories, hypothesis, doctests); ``--virtual-time`` puts each of its async tests on
:class:`looptime_tasks.VirtualEventLoop`, with no edit to the suite.

pytest-asyncio's tests are not part of its wheel: give the root of its source (the sdist, or a
checkout of the tag of the installed version; the script refuses another version). Run the
script with a Python whose environment has pytest-asyncio, its test requirements (coverage,
hypothesis) and looptime_tasks — not the project's own ``.venv``, whose other plugins
(looptime's, pytest-xdist) are not pytest-asyncio's. For example::

    pip download --no-deps --no-binary :all: pytest-asyncio==1.5.0     # then unpack it
    python3 -m venv /work/pa-venv
    /work/pa-venv/bin/pip install pytest-asyncio==1.5.0 coverage hypothesis -e .
    nice /work/pa-venv/bin/python benchmarks/check_pytest_asyncio.py /work/pytest_asyncio-1.5.0
    nice /work/pa-venv/bin/python benchmarks/check_pytest_asyncio.py /work/pytest_asyncio-1.5.0 \\
        --run virtual -- tests/markers                                  # one run, some tests

It prints the passed/failed/errors/skipped counts of each run, how many tests of the virtual run
ran on a ``VirtualEventLoop``, the tests whose outcome differs, each with the first line of its
error, and the ids that exist in one run only, with their outcomes; with both runs, the
differing tests are run again in both (``--rerun``) and marked ``flaky`` when the second run
disagrees with the first. Exit status 1 if a test fails only with ``--virtual-time`` (or exists
only there and fails). It takes minutes and is not run in CI.

Design decisions:

* **The suite runs as its maintainers run it**: ``python -m pytest`` in the source root, its own
  configuration (auto mode, ``filterwarnings = error``, ``docs`` and ``tests``); the virtual run
  adds ``--virtual-time`` and nothing else. Most of the suite runs pytest inside the test
  (``pytester``); those inner runs read their own configuration, where ``--virtual-time`` is
  absent, so they check that the plugin, loaded there too, leaves tests that did not opt in
  alone. The outer async tests and fixtures are the ones on virtual time, hence the count.

* **This file is also the pytest plugin** (``-p check_pytest_asyncio``, found through
  ``PYTHONPATH``). It only observes: outcomes come from pytest's reports, one line per test, as
  ``_suite_check`` (shared with ``check_anyio.py``) records and compares them. A test ran on
  virtual time if one of its fixture values is an ``asyncio.Runner`` (pytest-asyncio's runner)
  on a ``VirtualEventLoop``.

* **Ids may differ between the runs, as documented.** Under virtual time the loop factories of
  a ``pytest_asyncio_loop_factories`` hook collapse to the virtual one, so a test parametrized
  over them (``test_x[custom]``, ``test_x[default]``) is one test (``test_x``) there
  (docs/testing.md, "With your own loop factories"). Such ids are listed apart, with their
  outcomes, not counted as differences.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Generator, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Final

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

_RESULTS_VARIABLE: Final = "CHECK_PYTEST_ASYNCIO_RESULTS"


# --- the plugin, in pytest's process ----------------------------------------------------------


_outcomes: Outcomes = {}
_on_virtual_time: set[str] = set()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    funcargs = getattr(item, "funcargs", {})
    if any(
        isinstance(value, asyncio.Runner) and isinstance(value.get_loop(), VirtualEventLoop)
        for value in funcargs.values()
    ):
        _on_virtual_time.add(item.nodeid)
    return (yield)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # After the outcome and its detail: whether the test ran on a virtual loop.
    record(_outcomes, report, report.nodeid in _on_virtual_time)


def pytest_sessionfinish(session: pytest.Session) -> None:
    save(_outcomes, _RESULTS_VARIABLE)


# --- the parent: run pytest twice, compare ------------------------------------------------------


def run_suite(
    source: Path, run: str, pytest_args: Sequence[str], log: Path | None = None
) -> tuple[Outcomes, float]:
    """Run pytest-asyncio's tests under ``source``, plainly or with ``--virtual-time``; pytest's
    output goes to ``log``."""
    arguments = ["--virtual-time", *pytest_args] if run == "virtual" else pytest_args
    return run_pytest("check_pytest_asyncio", source, arguments, {}, _RESULTS_VARIABLE, log)


def summary(outcomes: Outcomes, run: str, seconds: float) -> str:
    line = tally(outcomes, run, seconds)
    if run == "virtual":
        virtual = sum(on_virtual for _, _, on_virtual in outcomes.values())
        line += f"; {virtual} tests ran on a VirtualEventLoop"
    return line


def _source_version(source: Path) -> str | None:
    """The version in the sdist's ``PKG-INFO``, or None (a checkout has none)."""
    pkg_info = source / "PKG-INFO"
    if not pkg_info.is_file():
        return None
    for line in pkg_info.read_text(encoding="utf-8").splitlines():
        if line.startswith("Version:"):
            return line.partition(":")[2].strip()
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args, parser = parse_arguments(__doc__, "pytest-asyncio", "--run", ("plain", "virtual"), argv)
    installed, given = version("pytest-asyncio"), _source_version(args.source)
    if given is not None and given != installed:
        parser.error(f"the source is pytest-asyncio {given}, but {installed} is installed")
    runs_wanted = args.runs
    runs: dict[str, Outcomes] = {}
    for run in runs_wanted:
        log = args.logs / f"{run}.log" if args.logs else None
        runs[run], seconds = run_suite(args.source, run, args.pytest_args, log)
        print(summary(runs[run], run, seconds), flush=True)
    if len(runs) < 2:
        return report_failures(runs[runs_wanted[0]])

    def rerun(nodes: list[str]) -> tuple[Outcomes, Outcomes]:
        again = [run_suite(args.source, run, nodes)[0] for run in runs_wanted]
        return again[0], again[1]

    names = ("without --virtual-time", "with --virtual-time")
    return compare(runs["plain"], runs["virtual"], rerun, args.rerun, names)


if __name__ == "__main__":
    sys.exit(main())
