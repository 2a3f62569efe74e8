"""Snapshots of a running fleet (mergeable across worker processes) and the run's summary.

A :class:`Snapshot` holds, per kind, the gauges (connected, active sessions) and counters
(messages, sessions, errors, acknowledgement latencies) of one worker at one moment;
:func:`merge` adds those of several workers. The :class:`Summary` compares the run with its
targets:

* connected: at the end of ``--duration`` (before the drain) at least ``--min-connected`` of
  every kind is connected;
* sessions: every session started was acknowledged by the platform by the end of the drain;
* errors: at most ``--max-errors`` in all (protocol errors, refused starts, missed
  heartbeats, disconnects ...);
* every worker process finished.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from sim.fleet.meter import Histogram, KindMeter
from sim.fleet.spec import FleetSpec, Kind

__all__ = ["KindSnapshot", "KindSource", "Snapshot", "Summary", "merge"]

#: acknowledgements shown first, in this order (others follow alphabetically)
_LATENCY_ORDER = ("login", "BootNotification", "heartbeat", "Heartbeat", "record",
                  "StopTransaction", "TransactionEvent.Ended", "puback")


class KindSource(Protocol):
    """What the runner reads from a driver (or a Modbus kind view)."""

    kind: Kind
    meter: KindMeter

    def target(self) -> int: ...
    def connected(self) -> int: ...
    def ever_connected(self) -> int: ...
    def active_sessions(self) -> int: ...
    def unfinished(self) -> int: ...
    def refresh(self) -> None: ...


_COUNTERS = ("target", "connected", "ever_connected", "active_sessions", "unfinished", "sent",
             "received", "acked", "sessions_started", "sessions_completed", "reconnects",
             "connect_failures")


@dataclass
class KindSnapshot:
    """One kind's gauges and counters (summed over workers after :func:`merge`)."""

    target: int = 0
    connected: int = 0
    ever_connected: int = 0
    active_sessions: int = 0
    unfinished: int = 0
    sent: int = 0
    received: int = 0
    acked: int = 0
    sessions_started: int = 0
    sessions_completed: int = 0
    reconnects: int = 0
    connect_failures: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latency: dict[str, Histogram] = field(default_factory=dict)

    @classmethod
    def of(cls, source: KindSource, *, latency: bool = True) -> KindSnapshot:
        """Read a driver now (its :meth:`~KindSource.refresh` is called first)."""
        source.refresh()
        meter = source.meter
        snap = cls(target=source.target(), connected=source.connected(),
                   ever_connected=source.ever_connected(),
                   active_sessions=source.active_sessions(), unfinished=source.unfinished(),
                   sent=meter.sent, received=meter.received, acked=meter.acked,
                   sessions_started=meter.sessions_started,
                   sessions_completed=meter.sessions_completed, reconnects=meter.reconnects,
                   connect_failures=meter.connect_failures, errors=Counter(meter.errors))
        if latency:
            for name, histogram in meter.latency.items():
                copy = Histogram()
                copy.merge(histogram)
                snap.latency[name] = copy
        return snap

    @property
    def failed(self) -> int:
        """Devices not connected (at the moment of the snapshot)."""
        return max(0, self.target - self.connected)

    @property
    def error_total(self) -> int:
        return sum(self.errors.values())

    def merge(self, other: KindSnapshot) -> None:
        """Add another worker's snapshot of the same kind."""
        for name in _COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors.update(other.errors)
        for name, histogram in other.latency.items():
            self.latency.setdefault(name, Histogram()).merge(histogram)

    def to_dict(self) -> dict[str, Any]:
        """Plain form for the pipe between processes."""
        out: dict[str, Any] = {name: getattr(self, name) for name in _COUNTERS}
        out["errors"] = dict(self.errors)
        out["latency"] = {name: h.to_dict() for name, h in self.latency.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KindSnapshot:
        """Inverse of :meth:`to_dict`."""
        snap = cls()
        for name in _COUNTERS:
            setattr(snap, name, int(data[name]))
        snap.errors = Counter({str(k): int(v) for k, v in data["errors"].items()})
        snap.latency = {str(k): Histogram.from_dict(v) for k, v in data["latency"].items()}
        return snap


@dataclass
class Snapshot:
    """A worker's (or, merged, the fleet's) state at one moment."""

    elapsed: float
    kinds: dict[Kind, KindSnapshot]
    cpu_seconds: float = 0.0
    max_rss_bytes: int = 0
    loop_lag: Histogram = field(default_factory=Histogram)
    processes: int = 1

    def total(self, name: str) -> int:
        """A counter summed over kinds (``sent``, ``sessions_completed`` ...)."""
        return sum(int(getattr(k, name)) for k in self.kinds.values())

    def error_total(self) -> int:
        return sum(k.error_total for k in self.kinds.values())

    def to_dict(self) -> dict[str, Any]:
        return {"elapsed": self.elapsed, "kinds": {str(k): v.to_dict()
                                                   for k, v in self.kinds.items()},
                "cpu": self.cpu_seconds, "rss": self.max_rss_bytes,
                "lag": self.loop_lag.to_dict(), "processes": self.processes}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Snapshot:
        return cls(elapsed=float(data["elapsed"]),
                   kinds={Kind(k): KindSnapshot.from_dict(v) for k, v in data["kinds"].items()},
                   cpu_seconds=float(data["cpu"]), max_rss_bytes=int(data["rss"]),
                   loop_lag=Histogram.from_dict(data["lag"]),
                   processes=int(data.get("processes", 1)))


def merge(snapshots: list[Snapshot]) -> Snapshot:
    """The fleet's snapshot from its workers' (elapsed: the longest; RSS: the sum)."""
    out = Snapshot(elapsed=0.0, kinds={}, processes=0)
    for snap in snapshots:
        out.elapsed = max(out.elapsed, snap.elapsed)
        out.cpu_seconds += snap.cpu_seconds
        out.max_rss_bytes += snap.max_rss_bytes
        out.loop_lag.merge(snap.loop_lag)
        out.processes += snap.processes
        for kind, kind_snap in snap.kinds.items():
            out.kinds.setdefault(kind, KindSnapshot()).merge(kind_snap)
    out.kinds = {kind: out.kinds[kind] for kind in Kind if kind in out.kinds}
    return out


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


@dataclass
class Summary:
    """The end of a run: connected counts at the end of ``--duration`` (``at_end``), all the
    rest after the drain (``final``)."""

    spec: FleetSpec
    at_end: Snapshot
    final: Snapshot
    wall_seconds: float
    ledger_path: str | None = None
    ledger_rows: int = 0
    ledger_unconfirmed: int = 0
    worker_failures: list[str] = field(default_factory=list)
    interrupted: bool = False

    def failures(self) -> list[str]:
        """Why the run missed its targets (empty: it met them)."""
        out = list(self.worker_failures)
        for kind, snap in self.at_end.kinds.items():
            need = math.ceil(self.spec.min_connected * snap.target)
            if snap.connected < need:
                out.append(f"{kind}: {snap.connected} of {snap.target} connected at the end "
                           f"(need {need})")
        for kind, snap in self.final.kinds.items():
            if snap.unfinished:
                out.append(f"{kind}: {snap.unfinished} sessions not acknowledged by the "
                           f"platform within the drain ({self.spec.drain_timeout:g} s)")
        errors = self.final.error_total()
        if errors > self.spec.max_errors:
            out.append(f"{errors} errors (at most {self.spec.max_errors} allowed)")
        return out

    @property
    def ok(self) -> bool:
        return not self.failures()

    @property
    def exit_code(self) -> int:
        """0 when the run met its targets, 1 otherwise."""
        return 0 if self.ok else 1

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document."""
        kinds: dict[str, Any] = {}
        for kind, snap in self.final.kinds.items():
            end = self.at_end.kinds.get(kind, snap)
            kinds[str(kind)] = {
                "target": snap.target, "connected": end.connected, "failed": end.failed,
                "everConnected": snap.ever_connected, "reconnects": snap.reconnects,
                "connectFailures": snap.connect_failures,
                "sessionsStarted": snap.sessions_started,
                "sessionsCompleted": snap.sessions_completed,
                "sessionsUnfinished": snap.unfinished, "messagesSent": snap.sent,
                "messagesReceived": snap.received, "acknowledged": snap.acked,
                "ackLatencyMs": {name: snap.latency[name].summary()
                                 for name in _latency_names(snap)},
                "errors": dict(sorted(snap.errors.items())),
            }
        final = self.final
        return {
            "ok": self.ok, "failures": self.failures(), "interrupted": self.interrupted,
            "seed": self.spec.seed, "processes": final.processes,
            "durationSeconds": round(self.at_end.elapsed, 3),
            "wallSeconds": round(self.wall_seconds, 3),
            "kinds": kinds,
            "totals": {"target": final.total("target"),
                       "connected": self.at_end.total("connected"),
                       "sessionsStarted": final.total("sessions_started"),
                       "sessionsCompleted": final.total("sessions_completed"),
                       "messagesSent": final.total("sent"),
                       "messagesReceived": final.total("received"),
                       "acknowledged": final.total("acked"), "errors": final.error_total()},
            "process": {"cpuSeconds": round(final.cpu_seconds, 3),
                        "cpuPercentOfOneCore": round(
                            100 * final.cpu_seconds / max(self.wall_seconds, 1e-9), 1),
                        "maxRssMb": round(final.max_rss_bytes / 2**20, 1),
                        "loopLagMs": final.loop_lag.summary()},
            "ledger": {"path": self.ledger_path, "rows": self.ledger_rows,
                       "unconfirmed": self.ledger_unconfirmed},
        }

    def render(self) -> str:
        """The human-readable summary."""
        verdict = "PASSED" if self.ok else "FAILED"
        final = self.final
        lines = [f"voltmesh sim: {verdict} after {self.wall_seconds:.1f} s "
                 f"({self.at_end.elapsed:.1f} s run + drain), seed {self.spec.seed}, "
                 f"{final.processes} process{'es' if final.processes != 1 else ''}"
                 + (" (interrupted)" if self.interrupted else "")]
        header = (f"{'kind':<13}{'connected':>11}{'failed':>8}{'reconn':>8}{'sessions':>15}"
                  f"{'sent':>11}{'received':>11}{'acked':>11}{'errors':>8}")
        lines += ["", header]
        for kind, snap in final.kinds.items():
            end = self.at_end.kinds.get(kind, snap)
            sessions = f"{snap.sessions_started}/{snap.sessions_completed}" \
                if kind in (Kind.YKC, Kind.OCPP16, Kind.OCPP201) else "-"
            lines.append(f"{kind!s:<13}{f'{end.connected}/{snap.target}':>11}{end.failed:>8}"
                         f"{snap.reconnects:>8}{sessions:>15}{snap.sent:>11}"
                         f"{snap.received:>11}{snap.acked:>11}{snap.error_total:>8}")
        lines.append("(sessions: started/acknowledged by the platform)")
        latency = [(kind, name, snap.latency[name]) for kind, snap in final.kinds.items()
                   for name in _latency_names(snap)]
        if latency:
            lines += ["", f"{'acknowledgement latency (ms)':<38}{'n':>9}{'p50':>9}{'p99':>9}"
                          f"{'max':>9}"]
            for kind, name, hist in latency:
                s = hist.summary()
                lines.append(f"{f'{kind} {name}':<38}{s['n']:>9}{_ms(s['p50']):>9}"
                             f"{_ms(s['p99']):>9}{_ms(s['max']):>9}")
        errors = [(kind, name, n) for kind, snap in final.kinds.items()
                  for name, n in sorted(snap.errors.items()) if n]
        if errors:
            lines += ["", "errors: " + ", ".join(f"{kind} {name} {n}" for kind, name, n in errors)]
        lag = final.loop_lag.summary()
        cpu_pct = 100 * final.cpu_seconds / max(self.wall_seconds, 1e-9)
        lines += ["", f"simulator: {final.cpu_seconds:.1f} s CPU ({cpu_pct:.0f} % of one core), "
                      f"max RSS {final.max_rss_bytes / 2**20:.0f} MB, event-loop lag "
                      f"p50 {_ms(lag['p50'])} / p99 {_ms(lag['p99'])} ms"]
        if self.ledger_path:
            lines.append(f"ledger: {self.ledger_path} ({self.ledger_rows} sessions"
                         + (f", {self.ledger_unconfirmed} unacknowledged" if
                            self.ledger_unconfirmed else "") + ")")
        for failure in self.failures():
            lines.append(f"target missed: {failure}")
        return "\n".join(lines)


def _latency_names(snap: KindSnapshot) -> list[str]:
    first = [name for name in _LATENCY_ORDER if name in snap.latency]
    return first + sorted(name for name in snap.latency if name not in _LATENCY_ORDER)
