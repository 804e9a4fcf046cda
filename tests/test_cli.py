"""The ``looptime-tasks`` command: ``simulate``, its options, its errors and exit statuses."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from looptime_tasks import _cli
from looptime_tasks._report import PLOT_HINT

SCRIPT = '''\
"""Every ten minutes for an hour."""
from __future__ import annotations
from datetime import datetime, timedelta, timezone
import looptime_tasks as tasks
from looptime_tasks.simulation import main

DURATION = timedelta(hours=1)

@tasks.loop(minutes=10)
async def ten() -> None:
    pass

async def setup(sim) -> None:
    ten.start()

def check(timeline) -> None:
    assert all(run.ok for run in timeline.runs())

if __name__ == "__main__":
    raise SystemExit(main(__file__))
'''


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "ten.py"
    path.write_text(SCRIPT, encoding="utf-8")
    return path


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "other.py"
    path.write_text(text, encoding="utf-8")
    return path


def run(*argv: str | Path) -> int:
    return _cli.main([str(arg) for arg in argv])


def exported(tmp_path: Path, *argv: str | Path) -> dict[str, object]:
    """Run simulate with --json and return the document."""
    target = tmp_path / "out.json"
    assert run("simulate", *argv, "--json", target) == 0
    data: dict[str, object] = json.loads(target.read_text(encoding="utf-8"))
    return data


# Help and usage --------------------------------------------------------------------------------


def test_simulate_help_documents_the_script_contract(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run("simulate", "--help")

    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert "async def setup(sim) -> None" in out
    assert "def check(timeline) -> None" in out
    assert "raise SystemExit(looptime_tasks.simulation.main(__file__))" in out


def test_top_level_help_lists_the_simulate_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run("--help")

    assert "simulate  run a simulation script on virtual time" in capsys.readouterr().out


def test_no_command_prints_the_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run() == 2
    assert "usage: looptime-tasks" in capsys.readouterr().out


def test_an_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run("simulat")

    assert exit_info.value.code == 2
    assert "invalid choice: 'simulat'" in capsys.readouterr().err


def test_simulate_without_a_path_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run("simulate")

    assert exit_info.value.code == 2
    assert "the following arguments are required: PATH" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--days", "0"], "argument --days: must be a number > 0 (got '0')"),
        (["--hours", "x"], "argument --hours: must be a number > 0 (got 'x')"),
        (["--duration", "P1M"], "argument --duration: durations in years or months"),
        (["--start", "soon"], "argument --start: not an ISO-8601 date or instant"),
        (["--seed", "1.5"], "argument --seed: invalid int value: '1.5'"),
        (["--tz", "Mars/Base"], "argument --tz: unknown time zone 'Mars/Base'"),
        (["--days", "1", "--hours", "2"], "argument --hours: not allowed with argument --days"),
        (["--days", "1e9"], "argument --days: must be under 2**33 seconds (about 272 years)"),
        (["--days", "150000"], "argument --days: must be under 2**33 seconds (about 272 years)"),
        (["--duration", "P200000D"], "argument --duration: must be under 2**33 seconds"),
        (["--show", "-1"], "argument --show: must be a whole number >= 0 (got '-1')"),
        (["--csv", "."], "argument --csv: is a folder, not a file (got '.')"),
        (
            ["--json", "/no-such-folder/t.json"],
            "argument --json: no such folder: '/no-such-folder'",
        ),
    ],
)
def test_bad_options_exit_2_with_a_message(
    script: Path, options: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run("simulate", script, *options)

    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


# Bad scripts -----------------------------------------------------------------------------------


def test_a_missing_script_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run("simulate", tmp_path / "nope.py")

    assert exit_info.value.code == 2
    assert "error: no such simulation script: " in capsys.readouterr().err


def test_a_script_without_setup_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run("simulate", write(tmp_path, "X = 1\n"))

    assert exit_info.value.code == 2
    assert "defines no setup function" in capsys.readouterr().err


def test_a_script_with_a_syntax_error_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run("simulate", write(tmp_path, "async def setup(sim):\n    pass\n)\n"))

    assert exit_info.value.code == 2
    assert "other.py:3: syntax error: unmatched ')'" in capsys.readouterr().err


# Running ---------------------------------------------------------------------------------------


def test_simulate_prints_the_description_summary_and_check_result(
    script: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("simulate", script) == 0

    out = capsys.readouterr().out
    assert out.startswith("Every ten minutes for an hour.\n\nSimulated 1 hour of virtual time")
    assert "  ten      6  2024-01-01 00:00:00  2024-01-01 00:50:00" in out
    assert out.endswith("check passed\n")


def test_a_script_imports_the_modules_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))  # the CLI adds the script's folder
    (tmp_path / "beside_cog.py").write_text(
        "import looptime_tasks as tasks\n\n"
        "@tasks.loop(minutes=10)\nasync def ten() -> None:\n    pass\n",
        encoding="utf-8",
    )
    body = SCRIPT.split("@tasks.loop")[0] + "from beside_cog import ten\n\n"
    body += "async def setup" + SCRIPT.split("async def setup")[1]

    try:
        assert run("simulate", write(tmp_path, body)) == 0
    finally:
        sys.modules.pop("beside_cog", None)
    assert "  ten      6  " in capsys.readouterr().out


def test_a_failing_check_exits_1_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, SCRIPT.replace("all(run.ok", "not all(run.ok") + "\n")

    assert run("simulate", path) == 1
    err = capsys.readouterr().err
    assert err == f"check failed ({path}:17): assertion failed\n"


def test_a_failing_check_shows_its_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = SCRIPT.replace("assert all(run.ok for run in timeline.runs())", "assert 0, 'no'")

    assert run("simulate", write(tmp_path, broken)) == 1
    assert capsys.readouterr().err.endswith("): no\n")


def test_a_setup_that_raises_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = SCRIPT.replace("    ten.start()", "    raise RuntimeError('cannot start')")

    assert run("simulate", write(tmp_path, broken)) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert err.endswith("other.py:14): RuntimeError: cannot start\n")


def test_json_csv_and_plot_files_are_written(
    script: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    paths = [tmp_path / name for name in ("t.json", "t.csv", "t.png")]

    code = run("simulate", script, "--json", paths[0], "--csv", paths[1], "--plot", paths[2])

    assert code == 0
    assert json.loads(paths[0].read_text(encoding="utf-8"))["loops"][0]["runs"] == 6
    assert len(paths[1].read_text(encoding="utf-8").splitlines()) == 7
    assert paths[2].read_bytes().startswith(b"\x89PNG")
    assert f"wrote {paths[2]}" in capsys.readouterr().out


def test_a_plot_without_matplotlib_exits_1_saying_how_to_install_it(
    script: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in [name for name in sys.modules if name.startswith("matplotlib")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)

    assert run("simulate", script, "--plot", tmp_path / "t.png") == 1
    assert capsys.readouterr().err == f"error: {PLOT_HINT}\n"


@pytest.mark.parametrize(
    ("options", "end"),
    [
        ([], "2024-01-01T01:00:00+00:00"),
        (["--days", "2"], "2024-01-03T00:00:00+00:00"),
        (["--hours", "3"], "2024-01-01T03:00:00+00:00"),
        (["--duration", "PT90M"], "2024-01-01T01:30:00+00:00"),
    ],
)
def test_length_options_override_duration(
    script: Path, tmp_path: Path, options: list[str], end: str
) -> None:
    assert exported(tmp_path, script, *options)["end"] == end


def test_start_option_overrides_start(script: Path, tmp_path: Path) -> None:
    data = exported(tmp_path, script, "--start", "2024-03-09T12:00+01:00")

    assert (data["start"], data["end"]) == (
        "2024-03-09T12:00:00+01:00",
        "2024-03-09T12:00:00+00:00",
    )


def test_seed_option_overrides_seed(script: Path, tmp_path: Path) -> None:
    assert exported(tmp_path, script, "--seed", "42")["seed"] == 42


def test_show_and_tz_options_shape_the_listing(
    script: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("simulate", script, "--show", "1", "--tz", "Asia/Tokyo") == 0

    out = capsys.readouterr().out
    assert "the first 1 and last 1 of 6 runs" in out
    assert "  09:00:00 JST  ten      #0     ok" in out


def test_a_progress_bar_is_drawn_only_on_a_terminal(
    script: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(_cli, "_PROGRESS_DELAY", 0.0)

    assert run("simulate", script, "--hours", "500") == 0
    assert "simulating [" in terminal.getvalue()
    assert terminal.getvalue().endswith("\r")


def test_no_progress_bar_when_stderr_is_not_a_terminal(
    script: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_cli, "_PROGRESS_DELAY", 0.0)

    assert run("simulate", script, "--hours", "500") == 0
    assert capsys.readouterr().err == ""


# Entry points ----------------------------------------------------------------------------------


def test_a_script_runs_as_a_python_program_with_the_same_options(script: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(script), "--hours", "2"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert (done.returncode, done.stderr) == (0, "")
    assert "Simulated 2 hours of virtual time" in done.stdout


def test_python_dash_m_runs_the_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "looptime_tasks", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0
    assert done.stdout.startswith("looptime-tasks ")


# Faults from the command line ------------------------------------------------------------------

BOT_SCRIPT = '''\
"""A bot posting every ten minutes for a day."""
from __future__ import annotations
from datetime import timedelta
import looptime_tasks as tasks
from looptime_tasks import fakebot
from looptime_tasks.simulation import main

DURATION = timedelta(days=1)

async def setup(sim) -> None:
    channel = fakebot.FakeChannel(1, "general")
    sim.fake_bot(guilds=[fakebot.FakeGuild("A", system_channel=channel)])

    @tasks.loop(minutes=10)
    async def post() -> None:
        await channel.send("hi")

    post.start()

if __name__ == "__main__":
    raise SystemExit(main(__file__))
'''


def test_fault_options_reach_the_fake_bots(tmp_path: Path) -> None:
    path = write(tmp_path, BOT_SCRIPT)

    data = exported(
        tmp_path, path, "--http-errors", "0.5", "--latency", "0.1..0.2", "--outages", "4"
    )

    kinds = {incident["kind"] for incident in data["incidents"]}  # type: ignore[attr-defined]
    assert {"http_error", "disconnect"} <= kinds
    assert data["latency"]["calls"] > 0  # type: ignore[index]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--http-errors", "2"], "argument --http-errors: must be a probability from 0 to 1"),
        (["--latency", "fast"], "argument --latency: not seconds such as 0.2 or a range"),
        (["--outages", "0"], "argument --outages: must be a number > 0 (got '0')"),
    ],
)
def test_bad_fault_options_exit_2(
    script: Path, option: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run("simulate", script, *option)

    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
