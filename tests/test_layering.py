"""The import graph keeps the layers apart (see CONTRIBUTING.md, "Layout")."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "looptime_tasks"


def imported_modules(module: str) -> set[str]:
    """Every module name a package module imports, relative imports resolved."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = f"looptime_tasks.{base}" if base else "looptime_tasks"
            names.add(base)
            if node.level and not node.module:
                names.update(f"looptime_tasks.{alias.name}" for alias in node.names)
    return names


PURE_MODULES = ("_units", "_schedule", "_backoff", "_slots", "_cron")
"""Modules with no asyncio and no clock read: they may import each other, and nothing else."""


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_modules_import_no_asyncio(module: str) -> None:
    assert not {name for name in imported_modules(module) if name.split(".")[0] == "asyncio"}


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_modules_import_nothing_of_the_package_but_pure_modules(module: str) -> None:
    ours = {name for name in imported_modules(module) if name.startswith("looptime_tasks")}

    assert ours <= {f"looptime_tasks.{pure}" for pure in PURE_MODULES}


@pytest.mark.parametrize("module", ["_units", "_schedule", "_slots", "_cron"])
def test_pure_arithmetic_reads_no_clock(module: str) -> None:
    source = (PACKAGE / f"{module}.py").read_text(encoding="utf-8")
    clock_reads = r"\.now\(|\.utcnow\(|\.today\(|(?<!date)time\.(time|monotonic|perf_counter)"

    assert re.findall(clock_reads, source) == []


VIRTUAL_LOOP_MODULES = (
    "_virtual_loop",
    "_virtual_options",
    "_in_flight",
    "_threads",
    "_native_threads",
    "_shared_time",
    "_frame_locals",
    "_connections",
    "_watched_sockets",
    "_wall_clock",
    "_diagnostics",
    "_ordering",
    "_clock",
)
"""The virtual-time event loop: they may import each other and the pure modules, nothing else."""


@pytest.mark.parametrize("module", VIRTUAL_LOOP_MODULES)
def test_virtual_loop_knows_nothing_of_loop(module: str) -> None:
    ours = {name for name in imported_modules(module) if name.startswith("looptime_tasks")}

    assert ours <= {f"looptime_tasks.{name}" for name in VIRTUAL_LOOP_MODULES + PURE_MODULES}


def test_loop_does_not_import_the_virtual_loop() -> None:
    ours = imported_modules("_loop")

    assert not ours & {f"looptime_tasks.{name}" for name in VIRTUAL_LOOP_MODULES}


def test_loop_reads_no_clock_but_through_the_event_loop() -> None:
    source = (PACKAGE / "_loop.py").read_text(encoding="utf-8")
    clock_reads = r"\.now\(|\.utcnow\(|\.today\(|time\.(time|monotonic|perf_counter)\w*\("

    # The one exception: a stock event loop has no wall clock but the system's.
    assert re.findall(clock_reads, source) == []
    assert source.count("time_ns as _system_epoch_ns") == 1


SIMULATION_MODULES = (
    "_zones",
    "_recording",
    "_model",
    "_plan",
    "_export",
    "_report",
    "_timeline",
    "_simulation",
    "_script",
    "_explore",
    "_cli",
)
"""The private modules behind `simulation`, in layer order: each imports only those before it."""


@pytest.mark.parametrize("module", ["pytest_plugin", "simulation", *SIMULATION_MODULES])
def test_tools_import_only_the_public_package(module: str) -> None:
    # The pure time-unit conversions are shared by the whole package.
    allowed = set() if module == "pytest_plugin" else {*SIMULATION_MODULES, "_units"}
    private = {
        name
        for name in imported_modules(module)
        if name.startswith("looptime_tasks.")
        and name.split(".")[1].startswith("_")
        and name.split(".")[1] not in allowed
    }

    assert private == set()


@pytest.mark.parametrize(
    "module", [m for m in SIMULATION_MODULES if (PACKAGE / f"{m}.py").exists()]
)
def test_simulation_modules_import_only_earlier_layers(module: str) -> None:
    earlier = set(SIMULATION_MODULES[: SIMULATION_MODULES.index(module)])
    ours = {
        name.split(".")[1]
        for name in imported_modules(module)
        if name.startswith("looptime_tasks.") and name.split(".")[1] in SIMULATION_MODULES
    }

    assert ours <= earlier


def test_the_public_package_does_not_import_the_simulation() -> None:
    ours = imported_modules("__init__")

    assert not {name for name in ours if name.split(".")[-1] in {*SIMULATION_MODULES, "simulation"}}
