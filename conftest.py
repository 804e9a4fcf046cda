"""What the project's own tests share. The plugin itself is loaded through its entry point.

Every async test of this project runs on virtual time through our own plugin: see
`virtual_time = true` in pyproject.toml.
"""

from __future__ import annotations

import os

from hypothesis import settings

# Session fixtures of real components, started only when a test asks: `postgres` (a throwaway
# PostgreSQL server), `redis_server` (a throwaway Redis server), `tcp_server`,
# `greeting_server`, `smtp_server`, `udp_server`, `dns_server`, `http_server` and `ws_server`
# (servers in child processes).
pytest_plugins = ["pytester", "_postgres", "_redis", "_servers"]

# CI must not fail by chance: there, Hypothesis replays the same examples on every run and never
# times an example out (a loaded 2-core machine is slow). Developers keep exploring at random.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
