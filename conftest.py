"""What the project's own tests share. The plugin itself is loaded through its entry point."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

import looptime_tasks

pytest_plugins = ["pytester"]


@pytest.hookimpl(optionalhook=True)
def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], Any]]:
    """Every async test of this project runs on the virtual-time event loop."""
    return {"virtual": looptime_tasks.VirtualEventLoop}
