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

* **Outcomes come from pytest's reports**, one line per test (``pytest_runtest_logreport``):
  an error in setup or teardown counts as an error even after a passed call; an ``xfail`` counts
  as passed, as pytest's own summary does not count it a failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import pytest

from looptime_tasks import VirtualEventLoop

_LOOP_VARIABLE: Final = "CHECK_ANYIO_LOOP"
_RESULTS_VARIABLE: Final = "CHECK_ANYIO_RESULTS"
_EAGER_VARIABLE: Final = "CHECK_ANYIO_EAGER"
_BAD: Final = ("failed", "error")


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


_outcomes: dict[str, tuple[str, str]] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call":
        if report.passed or hasattr(report, "wasxfail"):
            outcome = "passed"
        else:
            outcome = "skipped" if report.skipped else "failed"
    elif report.failed:
        outcome = "error"
    elif report.skipped:
        outcome = "skipped"
    else:
        return
    if _outcomes.get(report.nodeid, ("",))[0] in _BAD:
        return  # a teardown after a failed call, or the like: the first problem stays
    detail = _first_line(report.longreprtext) if outcome in _BAD else ""
    _outcomes[report.nodeid] = (outcome, detail)


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = os.environ.get(_RESULTS_VARIABLE)
    if path:
        Path(path).write_text(json.dumps(_outcomes), encoding="utf-8")


_EXCEPTION_LINE: Final = re.compile(
    r"^[\s|]*(?:E\s+)?([\w.]+(?:Error|Exception|Group|Warning|Expired|Exit)\b.*)$"
)


def _first_line(longrepr: str) -> str:
    """The first line of a pytest failure report that names an exception (``ValueError: ...``)."""
    lines = longrepr.splitlines()
    errors = [line[4:] for line in lines if line.startswith("E   ")]
    if not errors:
        errors = [match[1] for line in lines if (match := _EXCEPTION_LINE.match(line))]
    return (errors[0] if errors else (lines[-1] if lines else "")).strip()


# --- the parent: run pytest per loop, compare ---------------------------------------------------


def run_suite(
    source: Path,
    loop: str,
    pytest_args: Sequence[str],
    log: Path | None = None,
    *,
    eager: bool = False,
) -> tuple[dict[str, tuple[str, str]], float]:
    """Run anyio's tests under ``source`` on ``loop``; outcome and detail by node id.

    pytest's own output goes to ``log`` (overwritten), or nowhere.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".json", encoding="utf-8") as results:
        environment = dict(os.environ)
        environment[_LOOP_VARIABLE] = loop
        environment[_RESULTS_VARIABLE] = results.name
        environment[_EAGER_VARIABLE] = "1" if eager else ""
        here = str(Path(__file__).resolve().parent)
        environment["PYTHONPATH"] = os.pathsep.join(
            filter(None, (here, environment.get("PYTHONPATH")))
        )
        command = [sys.executable, "-m", "pytest", "-p", "check_anyio", "-p", "no:cacheprovider"]
        command += ["-q", "--no-header", "-o", "console_output_style=classic", *pytest_args]
        began = time.perf_counter()
        with open(log or os.devnull, "w", encoding="utf-8") as output:
            subprocess.run(
                command, cwd=source, env=environment, stdout=output, stderr=output, check=False
            )
        seconds = time.perf_counter() - began
        text = results.read()
    outcomes: dict[str, tuple[str, str]] = json.loads(text) if text else {}
    return outcomes, seconds


def tally(outcomes: dict[str, tuple[str, str]], loop: str, seconds: float) -> str:
    counts = Counter(outcome for outcome, _ in outcomes.values())
    return (
        f"{loop:>7} loop: {counts['passed']} passed, {counts['failed']} failed, "
        f"{counts['error']} errors, {counts['skipped']} skipped ({seconds:.0f} s)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("source", type=Path, help="root of anyio's source (holds tests/)")
    parser.add_argument("--loop", choices=("both", "stock", "virtual"), default="both")
    parser.add_argument(
        "--rerun",
        type=int,
        default=1,
        metavar="N",
        help="run the tests whose outcome differs N more times on both loops (default 1)",
    )
    parser.add_argument(
        "--eager",
        action="store_true",
        help="anyio's asyncio+eager variant (eager task factory, Python 3.12+) instead",
    )
    parser.add_argument(
        "--logs", type=Path, metavar="DIR", help="write pytest's output to DIR/<loop>.log"
    )
    parser.add_argument("pytest_args", nargs="*", help="after --: passed on to pytest")
    argv = sys.argv[1:] if argv is None else list(argv)
    # Everything after "--" goes to pytest as is (argparse would take options of pytest's).
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    args.pytest_args = argv[split + 1 :]
    if not (args.source / "tests" / "conftest.py").is_file():
        parser.error(f"source={str(args.source)!r} holds no tests/conftest.py of anyio")
    loops = ("stock", "virtual") if args.loop == "both" else (args.loop,)
    if args.logs:
        args.logs.mkdir(parents=True, exist_ok=True)
    runs: dict[str, dict[str, tuple[str, str]]] = {}
    for loop in loops:
        log = args.logs / f"{loop}.log" if args.logs else None
        runs[loop], seconds = run_suite(args.source, loop, args.pytest_args, log, eager=args.eager)
        print(tally(runs[loop], loop, seconds), flush=True)
    if len(runs) < 2:
        for node, (outcome, detail) in sorted(runs[loops[0]].items()):
            if outcome in _BAD:
                print(f"  {outcome.upper()} {node}: {detail}")
        return 1 if any(o in _BAD for o, _ in runs[loops[0]].values()) else 0
    stock, virtual = runs["stock"], runs["virtual"]

    def bad(outcomes: dict[str, tuple[str, str]], node: str) -> bool:
        return outcomes.get(node, ("absent",))[0] in _BAD

    differing = sorted(
        node for node in stock.keys() | virtual.keys() if bad(stock, node) != bad(virtual, node)
    )
    flaky: set[str] = set()
    for _ in range(args.rerun if differing else 0):
        still = [node for node in differing if node not in flaky]
        again = {loop: run_suite(args.source, loop, still, eager=args.eager)[0] for loop in loops}
        flaky.update(
            node
            for node in still
            if bad(again["stock"], node) != bad(stock, node)
            or bad(again["virtual"], node) != bad(virtual, node)
        )
    only_virtual = [node for node in differing if bad(virtual, node)]
    only_stock = [node for node in differing if bad(stock, node)]
    for title, nodes, outcomes in (
        ("Failing only on the virtual loop", only_virtual, virtual),
        ("Failing only on the stock loop", only_stock, stock),
    ):
        if nodes:
            print(f"\n{title}:")
            for node in nodes:
                outcome, detail = outcomes[node]
                mark = " (flaky)" if node in flaky else ""
                print(f"  {outcome.upper()}{mark} {node}: {detail}")
    steady = [node for node in only_virtual if node not in flaky]
    print(f"\n{len(only_virtual)} tests fail only on the virtual loop ({len(steady)} steadily)")
    return 1 if steady else 0


if __name__ == "__main__":
    sys.exit(main())
