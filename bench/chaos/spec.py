"""What one chaos drill is: fleet size, duration, how often what is broken, the seed."""

from __future__ import annotations

from dataclasses import dataclass, replace

from bench.chaos.errors import ChaosError


@dataclass(frozen=True, slots=True)
class DrillSpec:
    """One drill. Times in seconds; the chaos happens during the first ``duration`` seconds."""

    duration: float = 120.0
    ykc: int = 4
    ocpp: int = 4
    broker_restarts: int = 3
    cloud_kills: int = 1
    gateway_kills: int = 1
    seed: int = 1
    #: cloud worker processes; more than one share the load through MQTT 5 shared
    #: subscriptions (the gateway's receipts cover what Mosquitto loses of them on a restart)
    workers: int = 1
    #: seconds a killed process / stopped broker stays down before it is started again
    down_for: float = 3.0
    #: per connector: mean sessions per hour and mean session length (minutes)
    sessions_per_hour: float = 240.0
    session_minutes: float = 0.12
    app_share: float = 0.3
    cards: int = 4
    #: the simulator's own drain (records re-sent until acknowledged)
    drain_timeout: float = 90.0
    #: then: how long the drill waits for every acknowledged session to be a billed order
    settle_timeout: float = 90.0

    def __post_init__(self) -> None:
        if self.duration <= 10:
            raise ChaosError(f"--duration {self.duration}: at least 10 s")
        if self.ykc < 0 or self.ocpp < 0 or self.ykc + self.ocpp == 0:
            raise ChaosError("give at least one charger (--ykc / --ocpp)")
        for name in ("broker_restarts", "cloud_kills", "gateway_kills"):
            if getattr(self, name) < 0:
                raise ChaosError(f"{name} must be >= 0")
        if self.sessions_per_hour * self.session_minutes >= 60:
            raise ChaosError("sessions per hour x session length must leave idle time")
        if self.workers < 1:
            raise ChaosError(f"--workers {self.workers}: at least 1")
        if self.down_for < 0:
            raise ChaosError("down_for must be >= 0")

    def chaos_events(self) -> list[tuple[float, str]]:
        """(offset, action) sorted by offset: broker restarts spread over the run, the cloud
        killed at about a third, the gateway at about two thirds (never at the same time)."""
        events: list[tuple[float, str]] = []
        span = self.duration * 0.85
        for i in range(self.broker_restarts):
            events.append((span * (i + 0.5) / self.broker_restarts, "broker"))
        for i in range(self.cloud_kills):
            events.append((span * (0.3 + 0.6 * i / max(1, self.cloud_kills)) + 2.0, "cloud"))
        for i in range(self.gateway_kills):
            events.append((span * (0.6 + 0.35 * i / max(1, self.gateway_kills)) + 4.0,
                           "gateway"))
        return sorted(events)


def small_spec(**overrides: object) -> DrillSpec:
    """The ``--small`` drill: 2 YKC piles, 2 OCPP chargers, ~60 s, 1 broker restart, both
    kills."""
    base = DrillSpec(duration=60.0, ykc=2, ocpp=2, broker_restarts=1, cloud_kills=1,
                     gateway_kills=1, sessions_per_hour=300.0, session_minutes=0.1,
                     drain_timeout=40.0, settle_timeout=40.0)
    return replace(base, **overrides)  # type: ignore[arg-type]
