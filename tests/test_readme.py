"""README.md's Quickstart stays true: CI runs its test command exactly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def quickstart_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", section, re.DOTALL)
    assert block is not None
    return [line for line in block.group(1).splitlines() if line and not line.startswith("#")]


def test_quickstart_has_exactly_two_commands() -> None:
    assert len(quickstart_commands()) == 2


def test_ci_runs_the_readme_test_command_exactly() -> None:
    test_command = quickstart_commands()[1]
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()

    assert test_command in ci_lines


def test_quickstart_main_command_runs_a_simulation() -> None:
    assert "looptime-tasks simulate simulations/" in quickstart_commands()[0]


def section_code(title: str) -> str:
    """The first Python block of the README section *title*."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split(f"## {title}", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert block is not None
    return block.group(1)


def test_virtual_time_example_prints_the_next_day(capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(section_code("Virtual time"), "README.md", "exec"), {})

    assert capsys.readouterr().out == "2024-01-02 00:00:00+00:00\n"
