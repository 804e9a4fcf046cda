"""What the project's own tests share. The plugin itself is loaded through its entry point.

Every async test of this project runs on virtual time through our own plugin: see
`virtual_time = true` in pyproject.toml.
"""

from __future__ import annotations

pytest_plugins = ["pytester"]
