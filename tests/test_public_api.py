"""The public surface of `looptime_tasks`: `__all__` lists exactly the public names."""

from __future__ import annotations

import inspect

import looptime_tasks


def test_all_is_a_tuple() -> None:
    assert isinstance(looptime_tasks.__all__, tuple)


def test_all_lists_every_public_name_of_the_package() -> None:
    public = {
        name
        for name, value in vars(looptime_tasks).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
    }

    assert public | {"__version__"} == set(looptime_tasks.__all__)


def test_every_name_in_all_is_importable() -> None:
    missing = [name for name in looptime_tasks.__all__ if not hasattr(looptime_tasks, name)]

    assert missing == []


def test_every_public_name_is_documented() -> None:
    undocumented = [
        name
        for name in looptime_tasks.__all__
        if name != "__version__"
        and not (inspect.getdoc(getattr(looptime_tasks, name)) or "").strip()
    ]

    assert undocumented == []


def test_public_classes_and_functions_report_the_public_module() -> None:
    # Reprs and docs should show where users import from... or at least a looptime_tasks module.
    wrong = [
        name
        for name in looptime_tasks.__all__
        if hasattr(getattr(looptime_tasks, name), "__module__")
        and not getattr(looptime_tasks, name).__module__.startswith("looptime_tasks")
    ]

    assert wrong == []
