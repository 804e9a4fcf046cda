"""``python -m looptime_tasks``: the ``looptime-tasks`` command (see `looptime_tasks._cli`)."""

from __future__ import annotations

from looptime_tasks._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
