"""The gateway's GC policy: freeze, then re-freeze by age and by growth, and free dropped cycles."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.config import load_gateway_config
from voltmesh.gcpolicy import GcPolicy, young_objects


class Node:
    """A reference cycle: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def frozen(obj: object) -> bool:
    """Whether ``obj`` (tracked) is in the permanent generation, out of every pass's reach."""
    return gc.is_tracked(obj) and not any(o is obj for o in gc.get_objects())


def test_a_dropped_cycle_among_frozen_objects_is_freed_by_the_refreeze_not_before() -> None:
    clock = Clock()
    policy = GcPolicy(600, clock=clock)
    node = Node()
    ref = weakref.ref(node)
    policy.start()
    assert frozen(node)
    del node
    gc.collect()  # a full pass does not walk frozen objects: without a re-freeze, a leak
    assert ref() is not None
    clock.now += 599
    assert policy.step() is None and ref() is not None  # not due yet
    clock.now += 1
    done = policy.step()
    assert done is not None and ref() is None  # re-frozen: the cycle was collected
    assert done.collected >= 1 and policy.refreezes == [done]
    assert gc.get_freeze_count() == done.frozen > 0


def test_objects_built_after_a_refreeze_are_frozen_by_the_next() -> None:
    clock = Clock()
    policy = GcPolicy(60, clock=clock)
    policy.start()
    node = Node()  # a charger connected after the start
    assert not frozen(node)
    clock.now += 60
    assert policy.step() is not None
    assert frozen(node)


def test_growth_refreezes_early_but_not_more_often_than_min_interval() -> None:
    clock = Clock()
    young = [0]
    policy = GcPolicy(600, growth=0.25, min_interval=60, clock=clock, young=lambda: young[0])
    policy.start()
    frozen_at_start = policy.frozen
    young[0] = int(frozen_at_start * 0.25) + 1  # a fleet connected: a quarter more objects
    clock.now += 59
    assert policy.due() is None  # too soon after the last freeze
    clock.now += 1
    assert policy.due() == "growth"
    assert policy.step() is not None
    young[0] = 0
    clock.now += 300
    assert policy.due() is None  # no growth, not old
    young[0] = int(policy.frozen * 0.25)  # not more than a quarter: not yet
    assert policy.due() is None
    clock.now += 300
    assert policy.due() == "age"


def test_young_objects_counts_what_is_not_frozen() -> None:
    policy = GcPolicy(600)
    policy.start()
    nodes = [Node() for _ in range(1000)]
    gc.collect()  # survivors of a full pass land in generation 2
    assert young_objects() >= 1000
    assert len(nodes) == 1000


@pytest.mark.parametrize(("every", "check"), [(0, None), (10, 0), (10, -1)])
def test_bad_settings_are_refused(every: float, check: float | None) -> None:
    with pytest.raises(ValueError):
        GcPolicy(every, check=check)


def test_the_check_interval_follows_a_short_refreeze_interval() -> None:
    assert GcPolicy(600).check == 10.0
    assert GcPolicy(0.5).check == 0.5


@pytest.mark.parametrize(("text", "expected"), [
    ("", 3600.0), ("gc_refreeze: 15m\n", 900.0), ("gc_refreeze: 120\n", 120.0),
    ("gc_refreeze: null\n", None)])
def test_gateway_config_gc_refreeze(tmp_path: Path, text: str, expected: float | None) -> None:
    path = tmp_path / "gw.yaml"
    path.write_text(f"gateway_id: gw-1\n{text}")
    assert load_gateway_config(path).gc_refreeze == expected
