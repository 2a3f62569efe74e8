"""The simulator's own record of its sessions (what it sent), for checks against a CSMS."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal


@dataclass
class SessionRecord:
    """One session as the charge point saw it; meter values in integer Wh, as sent."""

    connector: int
    id_tag: str
    meter_start_wh: int
    started_at_ms: int
    session_id: str | None = None
    """1.6: ``str(transactionId)`` once the CSMS answered; 2.0.1: the transactionId."""
    remote_start_id: int | None = None
    authorization: str | None = None
    meter_stop_wh: int | None = None
    stopped_at_ms: int | None = None
    stop_reason: str | None = None
    updates_sent: int = 0
    max_power_w: float = 0.0

    @property
    def ended(self) -> bool:
        """Whether the session has stopped."""
        return self.meter_stop_wh is not None

    @property
    def energy_wh(self) -> int | None:
        """Delivered energy in Wh (None while running)."""
        return None if self.meter_stop_wh is None else self.meter_stop_wh - self.meter_start_wh

    @property
    def energy_kwh(self) -> Decimal | None:
        """Delivered energy in kWh, exact."""
        wh = self.energy_wh
        return None if wh is None else Decimal(wh).scaleb(-3)


@dataclass
class Ledger:
    """All sessions of one charge point, in start order."""

    sessions: list[SessionRecord] = field(default_factory=list)

    def add(self, record: SessionRecord) -> SessionRecord:
        """Append a started session."""
        self.sessions.append(record)
        return record

    def get(self, session_id: str) -> SessionRecord | None:
        """A session by id."""
        for record in self.sessions:
            if record.session_id == session_id:
                return record
        return None

    def completed(self) -> list[SessionRecord]:
        """Ended sessions."""
        return [r for r in self.sessions if r.ended]

    def total_energy_wh(self) -> int:
        """Energy of all ended sessions."""
        return sum(r.energy_wh or 0 for r in self.sessions)
