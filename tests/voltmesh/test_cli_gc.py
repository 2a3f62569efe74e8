"""``voltmesh cloud`` freezes the started worker's heap out of the cyclic collector's reach;
``voltmesh edge`` re-freezes it periodically (voltmesh/gcpolicy.py)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Callable

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


class _Node:
    """A reference cycle: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


def _frozen(obj: object) -> bool:
    return gc.is_tracked(obj) and not any(o is obj for o in gc.get_objects())


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not within 5 s")


async def test_voltmesh_edge_refreezes_and_a_dropped_cycle_is_collected_not_leaked() -> None:
    """``voltmesh edge`` (``refreeze_every``: ``gc_refreeze``): what a charger's connection
    builds after the start is frozen by the next re-freeze, and once it is dropped the re-freeze
    after that frees its cycle (a plain freeze would keep it for ever)."""
    started = asyncio.Event()
    ref: list[weakref.ref[_Node]] = []

    async def gateway() -> str:
        started.set()
        await _until(lambda: gc.get_freeze_count() > 0)  # frozen after start
        connections = [_Node()]  # a charger connects
        ref.append(weakref.ref(connections[0]))
        await _until(lambda: _frozen(connections[0]))  # a re-freeze froze it
        connections.clear()  # the charger disconnects: its cycle is garbage, frozen
        gc.collect()
        leaked_until_refreeze = ref[0]() is not None
        await _until(lambda: ref[0]() is None)  # the next re-freeze collects it
        return f"leaked until re-freeze: {leaked_until_refreeze}"

    gc.unfreeze()
    try:
        result = await asyncio.wait_for(
            _frozen_after(started, gateway(), refreeze_every=0.05), 10)
        assert result == "leaked until re-freeze: True"
    finally:
        gc.unfreeze()


async def test_without_refreeze_a_dropped_frozen_cycle_stays() -> None:
    """The service that freezes once (``voltmesh cloud``; ``gc_refreeze: null``): nothing is
    re-frozen, so a cycle frozen at the start survives being dropped."""
    started = asyncio.Event()
    ref: list[weakref.ref[_Node]] = []

    async def service() -> bool:
        built = _Node()
        ref.append(weakref.ref(built))
        started.set()
        await _until(lambda: gc.get_freeze_count() > 0)
        del built
        gc.collect()
        await asyncio.sleep(0.2)
        return ref[0]() is not None

    gc.unfreeze()
    try:
        assert await _frozen_after(started, service()) is True
    finally:
        gc.unfreeze()
