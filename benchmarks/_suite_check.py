"""What ``check_anyio.py`` and ``check_pytest_asyncio.py`` share.

Each runs a third-party test suite twice, a reference run and a run on virtual time, each in a
child pytest process that loads the script itself as a plugin. The plugin records one outcome
per test (:func:`record`) and writes them to a JSON file at the end (:func:`save`); the parent
(:func:`run_pytest`) reads them back, and :func:`compare` prints the tests whose outcome differs,
rerunning them to tell flaky from steady.

Outcomes come from pytest's reports, one line per test: an error in setup or teardown counts as
an error even after a passed call; an ``xfail`` counts as passed, as pytest's own summary does
not count it a failure; the first problem of a test stays.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import pytest

BAD: Final = ("failed", "error")

Outcomes = dict[str, list[Any]]
"""By node id: [outcome, first line of the error, anything the script adds]."""

_EXCEPTION_LINE: Final = re.compile(
    r"^[\s|]*(?:E\s+)?([\w.]+(?:Error|Exception|Group|Warning|Expired|Exit)\b.*)$"
)


# --- in pytest's process ---------------------------------------------------------------------


def record(outcomes: Outcomes, report: pytest.TestReport, *extra: Any) -> None:
    """Note the outcome *report* gives its test in *outcomes*, with *extra* after it."""
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
    if outcomes.get(report.nodeid, ("",))[0] in BAD:
        return  # a teardown after a failed call, or the like: the first problem stays
    detail = first_line(report.longreprtext) if outcome in BAD else ""
    outcomes[report.nodeid] = [outcome, detail, *extra]


def save(outcomes: Outcomes, variable: str) -> None:
    """Write *outcomes* to the file the environment variable *variable* names, if set."""
    path = os.environ.get(variable)
    if path:
        Path(path).write_text(json.dumps(outcomes), encoding="utf-8")


def first_line(longrepr: str) -> str:
    """The first line of a pytest failure report that names an exception (``ValueError: ...``)."""
    lines = longrepr.splitlines()
    errors = [line[4:] for line in lines if line.startswith("E   ")]
    if not errors:
        errors = [match[1] for line in lines if (match := _EXCEPTION_LINE.match(line))]
    return (errors[0] if errors else (lines[-1] if lines else "")).strip()


# --- in the parent ---------------------------------------------------------------------------


def parse_arguments(
    description: str | None,
    suite: str,
    option: str,
    runs: tuple[str, str],
    argv: Sequence[str] | None,
    more: Callable[[argparse.ArgumentParser], object] = lambda parser: None,
) -> tuple[argparse.Namespace, argparse.ArgumentParser]:
    """The command line of a check of *suite*: its source, *option* choosing *runs* (or both),
    ``--rerun``, ``--logs``, what *more* adds, and pytest's arguments after ``--``. Sets
    ``runs`` (the runs wanted, in order) and makes the ``--logs`` directory."""
    parser = argparse.ArgumentParser(description=(description or "").splitlines()[0])
    parser.add_argument("source", type=Path, help=f"root of {suite}'s source (holds tests/)")
    parser.add_argument(option, dest="run", choices=("both", *runs), default="both")
    parser.add_argument(
        "--rerun",
        type=int,
        default=1,
        metavar="N",
        help="run the tests whose outcome differs N more times in both runs (default 1)",
    )
    parser.add_argument(
        "--logs", type=Path, metavar="DIR", help="write pytest's output to DIR/<run>.log"
    )
    more(parser)
    parser.add_argument("pytest_args", nargs="*", help="after --: passed on to pytest")
    argv = sys.argv[1:] if argv is None else list(argv)
    # Everything after "--" goes to pytest as is (argparse would take options of pytest's).
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    args.pytest_args = argv[split + 1 :]
    if not (args.source / "tests" / "conftest.py").is_file():
        parser.error(f"source={str(args.source)!r} holds no tests/conftest.py of {suite}")
    args.runs = runs if args.run == "both" else (args.run,)
    if args.logs:
        args.logs.mkdir(parents=True, exist_ok=True)
    return args, parser


def run_pytest(
    plugin: str,
    source: Path,
    arguments: Sequence[str],
    environment: Mapping[str, str],
    results_variable: str,
    log: Path | None = None,
) -> tuple[Outcomes, float]:
    """Run pytest in *source* with the script *plugin* (a module of this directory) loaded,
    *arguments* and *environment* added; the outcomes it recorded and the seconds it took.

    pytest's own output goes to ``log`` (overwritten), or nowhere.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".json", encoding="utf-8") as results:
        env = {**os.environ, **environment, results_variable: results.name}
        here = str(Path(__file__).resolve().parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (here, env.get("PYTHONPATH"))))
        command = [sys.executable, "-m", "pytest", "-p", plugin, "-p", "no:cacheprovider"]
        command += ["-q", "--no-header", "-o", "console_output_style=classic", *arguments]
        began = time.perf_counter()
        with open(log or os.devnull, "w", encoding="utf-8") as output:
            subprocess.run(command, cwd=source, env=env, stdout=output, stderr=output, check=False)
        seconds = time.perf_counter() - began
        text = results.read()
    outcomes: Outcomes = json.loads(text) if text else {}
    return outcomes, seconds


def tally(outcomes: Outcomes, run: str, seconds: float) -> str:
    """One line: the counts of a run."""
    counts = Counter(outcome for outcome, *_ in outcomes.values())
    return (
        f"{run:>7} run: {counts['passed']} passed, {counts['failed']} failed, "
        f"{counts['error']} errors, {counts['skipped']} skipped ({seconds:.0f} s)"
    )


def report_failures(outcomes: Outcomes) -> int:
    """Print the failures of a single run; 1 if there are any."""
    failing = sorted((node, o, d) for node, (o, d, *_) in outcomes.items() if o in BAD)
    for node, outcome, detail in failing:
        print(f"  {outcome.upper()} {node}: {detail}")
    return 1 if failing else 0


def compare(
    reference: Outcomes,
    virtual: Outcomes,
    rerun: Callable[[list[str]], tuple[Outcomes, Outcomes]],
    times: int,
    names: tuple[str, str],
) -> int:
    """Print the tests failing in one run only (rerun *times* on both sides through *rerun* to
    mark the flaky ones) and the ids of one run only; 1 if some test fails steadily on virtual
    time, or exists only there and fails. *names*: how to say "only on the reference" and "only
    on virtual time"."""

    def bad(outcomes: Outcomes, node: str) -> bool:
        return outcomes.get(node, ("absent",))[0] in BAD

    both = reference.keys() & virtual.keys()
    differing = sorted(node for node in both if bad(reference, node) != bad(virtual, node))
    flaky: set[str] = set()
    for _ in range(times if differing else 0):
        still = [node for node in differing if node not in flaky]
        again_reference, again_virtual = rerun(still)
        flaky.update(
            node
            for node in still
            if bad(again_reference, node) != bad(reference, node)
            or bad(again_virtual, node) != bad(virtual, node)
        )
    only_virtual = [node for node in differing if bad(virtual, node)]
    only_reference = [node for node in differing if bad(reference, node)]
    for where, nodes, outcomes in (
        (names[1], only_virtual, virtual),
        (names[0], only_reference, reference),
    ):
        if nodes:
            print(f"\nFailing only {where}:")
            for node in nodes:
                outcome, detail, *_ = outcomes[node]
                mark = " (flaky)" if node in flaky else ""
                print(f"  {outcome.upper()}{mark} {node}: {detail}")
    for where, outcomes, other in ((names[0], reference, virtual), (names[1], virtual, reference)):
        alone = sorted(outcomes.keys() - other.keys())
        if alone:
            print(f"\nIds only {where}:")
            for node in alone:
                outcome, detail, *_ = outcomes[node]
                print(f"  {outcome.upper()} {node}" + (f": {detail}" if outcome in BAD else ""))
    steady = [node for node in only_virtual if node not in flaky]
    print(f"\n{len(only_virtual)} tests fail only {names[1]} ({len(steady)} steadily)")
    failing_alone = [node for node in virtual.keys() - reference.keys() if bad(virtual, node)]
    return 1 if steady or failing_alone else 0
