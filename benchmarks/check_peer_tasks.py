"""Run discord.py's and disnake's own task-loop tests against ``looptime_tasks``, unedited.

The question: is ``looptime_tasks`` a drop-in for ``discord.ext.tasks``, by the peers' own
measure? Their tests (discord.py's ``tests/test_ext_tasks.py``, disnake's
``tests/ext/tasks/test_loops.py``) are not part of their wheels, and this project does not copy
them: give the roots of checkouts (or sdists) of the two projects. The script copies the two files
into a temporary folder and runs them there with pytest, with the peers' packages replaced by
small stand-ins: ``discord.ext.tasks`` and ``disnake.ext.tasks`` are ``looptime_tasks``,
``discord.utils.utcnow()`` is ``datetime.now(UTC)`` and ``disnake.ext.commands.Cog`` a plain class
(our loops bind to any class). Nothing else of the peers is needed, so neither is installed.

Two runs: on the stock event loop (as the peers run their tests; a few tests wait a real second),
and with ``--virtual-time`` (our pytest plugin: every async test on a ``VirtualEventLoop``). Run it
with the project's environment::

    git clone --depth 1 https://github.com/Rapptz/discord.py /tmp/discord.py
    git clone --depth 1 https://github.com/DisnakeDev/disnake /tmp/disnake
    .venv/bin/python benchmarks/check_peer_tasks.py /tmp/discord.py /tmp/disnake

It prints pytest's summary of each run; exit status 1 if a test fails in either. It takes a few
seconds and is not run in CI (it needs the peers' sources).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

#: The test files, by the project whose source root holds them.
TEST_FILES: Final = {
    "discord.py": "tests/test_ext_tasks.py",
    "disnake": "tests/ext/tasks/test_loops.py",
}

#: The stand-in modules: path in the temporary folder, then its text.
STAND_INS: Final = {
    "discord/__init__.py": "",
    "discord/utils.py": (
        "import datetime\n\n\n"
        "def utcnow() -> datetime.datetime:\n"
        "    return datetime.datetime.now(datetime.UTC)\n"
    ),
    "discord/ext/__init__.py": "",
    "discord/ext/tasks.py": "from looptime_tasks import *  # noqa: F403\n",
    "disnake/__init__.py": "",
    "disnake/ext/__init__.py": "",
    "disnake/ext/tasks.py": "from looptime_tasks import *  # noqa: F403\n",
    "disnake/ext/commands.py": "class Cog:\n    pass\n",
}

RUNS: Final = {"stock event loop": [], "--virtual-time": ["--virtual-time"]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("discord_py", type=Path, help="the root of a discord.py source tree")
    parser.add_argument("disnake", type=Path, help="the root of a disnake source tree")
    options = parser.parse_args(argv)
    roots = {"discord.py": options.discord_py, "disnake": options.disnake}
    failed = False
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        for relative, text in STAND_INS.items():
            path = work / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        tests = work / "tests"
        tests.mkdir()
        for project, relative in TEST_FILES.items():
            source = roots[project] / relative
            if not source.is_file():
                parser.error(f"{project}: no {relative} under {roots[project]}")
            shutil.copy(source, tests / f"test_{project.replace('.', '_')}_{source.name}")
        for label, extra in RUNS.items():
            command = [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-p",
                "no:looptime_plugin",  # looptime's plugin, if installed, would re-class the loops
                "-o",
                "asyncio_mode=strict",  # the peers mark their async tests
                "-o",
                "asyncio_default_fixture_loop_scope=function",
                *extra,
                str(tests),
            ]
            result = subprocess.run(
                command, cwd=work, env=_environment(work), capture_output=True, text=True
            )
            summary = result.stdout.strip().splitlines()[-1:] or ["(no output)"]
            print(f"{label}: {summary[0]}")
            if result.returncode != 0:
                failed = True
                print(result.stdout, result.stderr, sep="\n")
    return 1 if failed else 0


def _environment(work: Path) -> dict[str, str]:
    """This process's environment, with the stand-ins first on the import path."""
    environment = dict(os.environ)
    paths = [str(work), *filter(None, environment.get("PYTHONPATH", "").split(os.pathsep))]
    environment["PYTHONPATH"] = os.pathsep.join(paths)
    return environment


if __name__ == "__main__":
    sys.exit(main())
