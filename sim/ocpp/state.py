"""State of the simulated charge point's connectors and sessions."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from sim.ocpp.ledger import SessionRecord
from sim.ocpp.physics import ConnectorPhysics


@dataclass
class Reservation:
    """A reservation held by a connector."""

    reservation_id: int
    id_tag: str
    expires_ms: int


@dataclass
class ActiveSession:
    """A running session on a connector."""

    record: SessionRecord
    transaction_id: int | str | None = None
    seq_no: int = 0
    stopping: bool = False
    abandoned: bool = False
    """The CSMS refused the start with a CALLERROR: its queued messages are not sent."""
    started: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class ConnectorState:
    """One connector (1.6) / EVSE with one connector (2.0.1)."""

    number: int
    physics: ConnectorPhysics
    status: str = "Available"
    """1.6 vocabulary; 2.0.1 maps it to connectorStatus."""
    operative: bool = True
    pending_inoperative: bool = False
    reservation: Reservation | None = None
    profiles: dict[int, dict[str, Any]] = field(default_factory=dict)
    session: ActiveSession | None = None
    meter_task: asyncio.Task[None] | None = None
    """The session's periodic meter values: run online and offline (they queue)."""
    last_advance: float = field(default_factory=time.monotonic)
