"""pytest plugin: run asyncio tests on virtual time (placeholder until the plugin lands)."""

from __future__ import annotations
