"""looptime_tasks: periodic background tasks, a virtual-time event loop, and tools to test them."""

from __future__ import annotations

import importlib.metadata

__version__ = importlib.metadata.version("looptime-tasks")

__all__ = ("__version__",)
