"""The session schedule: when each connector starts a session, for how long, and how.

Deterministic: the schedule of a connector depends only on the seed, the session options and
the connector's identity (device id and number), never on the process it runs in or on the
other devices, so the same ``--seed`` gives the same schedule with 1 or 16 worker processes.

Per connector the sessions form an alternating renewal process: an idle gap drawn from an
exponential distribution, a session of 0.5x to 1.5x ``session_minutes`` (uniform), again.
The mean gap is chosen so that sessions arrive ``sessions_per_hour`` times an hour on
average; the first session starts uniformly within the first cycle.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from sim.fleet.spec import FleetSpec

__all__ = ["PlannedSession", "card_pool", "device_seed", "plan_sessions", "sessions_until"]

StartMethod = Literal["card", "app"]

_CARD_BASE = 0xD1000000


@dataclass(frozen=True, slots=True)
class PlannedSession:
    """One planned session of one connector."""

    start: float
    """Seconds after the run started."""
    duration: float
    """Seconds of charging."""
    method: StartMethod
    card: str
    """Physical card (YKC, 8 hex digits) and idTag (OCPP) of the driver."""
    plug_delay: float
    """YKC app starts: seconds from the remote start to the car being plugged in."""


def device_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed for one device (or connector) derived from the run's seed."""
    text = "/".join(str(part) for part in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def card_pool(spec: FleetSpec) -> list[str]:
    """The cards drivers use (8 hex digits each); the provisioning document lists them."""
    return [f"{_CARD_BASE + number:08X}" for number in range(1, spec.cards + 1)]


def plan_sessions(spec: FleetSpec, device_id: str, connector: int) -> Iterator[PlannedSession]:
    """The (endless) schedule of one connector; empty when ``sessions_per_hour`` is 0."""
    if spec.sessions_per_hour <= 0:
        return
    rng = random.Random(device_seed(spec.seed, "sessions", device_id, connector))
    cycle = 3600.0 / spec.sessions_per_hour
    mean_length = spec.session_minutes * 60.0
    mean_gap = cycle - mean_length  # > 0: the spec refuses sessions that fill the hour
    cards = spec.cards
    at = rng.uniform(0.0, cycle)
    while True:
        duration = mean_length * rng.uniform(0.5, 1.5)
        method: StartMethod = "app" if rng.random() < spec.app_share else "card"
        card = f"{_CARD_BASE + rng.randrange(cards) + 1:08X}"
        plug = spec.plug_delay if method == "app" else 0.0
        yield PlannedSession(start=at, duration=duration, method=method, card=card,
                             plug_delay=plug)
        at += duration + rng.expovariate(1.0 / mean_gap)


def sessions_until(spec: FleetSpec, device_id: str, connector: int,
                   horizon: float) -> list[PlannedSession]:
    """The planned sessions of a connector that start before ``horizon`` seconds."""
    out = []
    for planned in plan_sessions(spec, device_id, connector):
        if planned.start >= horizon:
            break
        out.append(planned)
    return out
