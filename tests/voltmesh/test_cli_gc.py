"""``voltmesh cloud`` freezes the started worker's heap out of the cyclic collector's reach."""

from __future__ import annotations

import asyncio
import gc

import pytest

from voltmesh.cli import _frozen_after


async def test_the_heap_is_frozen_once_the_service_has_started() -> None:
    started = asyncio.Event()
    frozen_while_running: list[int] = []

    async def service() -> str:
        built = [{"rule": i} for i in range(1000)]  # what a worker builds at start
        started.set()
        await asyncio.sleep(0.05)
        frozen_while_running.append(gc.get_freeze_count())
        return f"served {len(built)}"

    gc.unfreeze()
    try:
        assert await _frozen_after(started, service()) == "served 1000"
        assert frozen_while_running[0] > 1000
    finally:
        gc.unfreeze()


async def test_a_service_that_fails_before_it_starts_freezes_nothing() -> None:
    async def service() -> None:
        raise RuntimeError("no database")

    gc.unfreeze()
    with pytest.raises(RuntimeError, match="no database"):
        await _frozen_after(asyncio.Event(), service())
    assert gc.get_freeze_count() == 0


async def test_cancelling_lets_the_service_clean_up() -> None:
    started, cleaned = asyncio.Event(), asyncio.Event()

    async def service() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        finally:
            cleaned.set()

    gc.unfreeze()
    try:
        task = asyncio.create_task(_frozen_after(started, service()))
        await started.wait()
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert cleaned.is_set()
    finally:
        gc.unfreeze()
