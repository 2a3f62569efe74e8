"""Free loopback ports and waiting for them."""

from __future__ import annotations

import asyncio
import time

from bench.procs import free_port, wait_port

__all__ = ["eventually", "free_port", "wait_port"]


async def eventually(check, timeout: float = 10.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    """Await until ``check()`` returns a truthy value; return it (or raise AssertionError)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")
