"""Child processes are work in flight until their pipes close, not only until they exit."""

from __future__ import annotations

import asyncio
import time

from _loop_kinds import loop_time, on_both_loops, run_on

# The child exits at once; the grandchild it leaves behind holds the child's stdout open and
# writes to it 0.3 s later (a daemon started by a shell script, a build tool's helper...).
GRANDCHILD_WRITES_LATER = "(sleep 0.3; echo grandchild) &"


@on_both_loops()
def test_pipe_held_open_by_a_grandchild_is_read_to_its_end(event_loop_kind: str) -> None:
    async def main() -> tuple[bytes, float]:
        began = loop_time()
        child = await asyncio.create_subprocess_exec(
            "sh", "-c", GRANDCHILD_WRITES_LATER, stdout=asyncio.subprocess.PIPE
        )
        assert child.stdout is not None
        try:
            # real-time: the grandchild writes 0.3 s later, then closes the pipe
            output = await asyncio.wait_for(child.stdout.read(), 3)
        except TimeoutError:
            # Let the grandchild end for real, so the pipe closes and the child's transport is
            # released before the loop closes (an executor job runs at real speed on any loop).
            await asyncio.to_thread(time.sleep, 1)  # real-time: bounded clean-up on failure
            await child.wait()
            raise
        await child.wait()
        return output, loop_time() - began

    output, elapsed = run_on(event_loop_kind, main())

    assert output == b"grandchild\n"
    assert elapsed < 3
