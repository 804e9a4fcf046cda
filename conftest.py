"""What the project's own tests share. The plugin itself is loaded through its entry point."""

from __future__ import annotations

pytest_plugins = ["pytester"]
