"""What a protocol version implements for the simulator, and the behaviour both share."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from bridges.ocpp.timestamps import parse_timestamp_ms
from sim.ocpp.errors import Refused
from sim.ocpp.ledger import SessionRecord
from sim.ocpp.physics import Reading
from sim.ocpp.state import ActiveSession, ConnectorState, Reservation

if TYPE_CHECKING:
    from sim.ocpp.station import OcppChargePointSim

FIRMWARE_STEPS = ("Downloading", "Downloaded", "Installing", "Installed")
UPLOAD_STEPS = ("Uploading", "Uploaded")


class Protocol(ABC):
    """One OCPP version's messages and handlers, driving the shared station state."""

    def __init__(self, sim: OcppChargePointSim) -> None:
        self.sim = sim
        self._after: list[tuple[str, Any]] = []

    # -- version specific ----------------------------------------------------------------------

    @abstractmethod
    def make_charge_point(self, connection: Any) -> Any:
        """The ``ocpp`` ChargePoint (charge-point role) on a connection."""

    @abstractmethod
    async def boot(self, reason: str) -> tuple[str, int]:
        """Send BootNotification; (status, interval)."""

    @abstractmethod
    def heartbeat_payload(self) -> Any:
        """A Heartbeat call."""

    @abstractmethod
    async def send_status(self, conn: ConnectorState) -> None:
        """A StatusNotification for a connector."""

    @abstractmethod
    async def authorize(self, id_tag: str) -> None:
        """Authorize; :class:`~sim.ocpp.errors.Refused` when not accepted."""

    @abstractmethod
    async def start_transaction(self, conn: ConnectorState, id_tag: str, *, trigger: str,
                                remote_start_id: int | None = None,
                                id_token_type: str | None = None) -> SessionRecord:
        """Start a session on ``conn`` (the CSMS must accept it)."""

    @abstractmethod
    async def send_meter_update(self, conn: ConnectorState, session: ActiveSession) -> None:
        """One periodic meter value of a running session."""

    @abstractmethod
    async def stop_transaction(self, conn: ConnectorState, reason: str) -> SessionRecord:
        """Stop the session on ``conn``; returns its closed record."""

    @abstractmethod
    def sampled_value(self, measurand: str, value: int | float | Decimal, unit: str,
                      context: str, phase: str | None = None,
                      location: str | None = None) -> dict[str, Any]:
        """One sampledValue in the version's shape."""

    @abstractmethod
    async def send_firmware_status(self, status: str, request_id: int | None) -> None:
        """FirmwareStatusNotification."""

    @abstractmethod
    async def send_upload_status(self, status: str, request_id: int | None,
                                 log: bool) -> None:
        """DiagnosticsStatusNotification (1.6, ``log=False``) or LogStatusNotification."""

    # -- shared --------------------------------------------------------------------------------

    def defer(self, action: str, job: Any) -> None:
        """Run ``job()`` (a coroutine factory) once the answer to ``action`` has been sent.

        The ``ocpp`` library answers a call and then runs its ``@after`` hook; the hooks pick
        the deferred job up by action name.
        """
        self._after.append((action, job))

    def run_deferred(self, action: str) -> None:
        """Called from the ``@after`` hooks."""
        for i, (name, job) in enumerate(self._after):
            if name == action:
                del self._after[i]
                self.sim.spawn(job(), f"after-{action}")
                return

    def meter_value(self, reading: Reading, context: str, *, full: bool = True
                    ) -> dict[str, Any]:
        """A meterValue item: the energy register, plus power, voltage, current, SoC."""
        cfg = self.sim.config
        if cfg.energy_unit == "Wh":
            energy: int | Decimal = reading.register_wh
        else:
            energy = Decimal(reading.register_wh).scaleb(-3)
        values = [self.sampled_value("Energy.Active.Import.Register", energy, cfg.energy_unit,
                                     context, location="Outlet")]
        if full:
            values.append(self.sampled_value("Power.Active.Import", round(reading.power_w, 1),
                                             "W", context))
            if cfg.phase_values and reading.phase_voltages:
                lines = ("L1", "L2", "L3")[:len(reading.phase_voltages)]
                for line, volts in zip(lines, reading.phase_voltages, strict=True):
                    values.append(self.sampled_value("Voltage", round(volts, 1), "V", context,
                                                     phase=f"{line}-N"))
                for line, amps in zip(lines, reading.phase_currents, strict=True):
                    values.append(self.sampled_value("Current.Import", round(amps, 2), "A",
                                                     context, phase=line))
            else:
                values.append(self.sampled_value("Voltage", round(reading.voltage_v, 1), "V",
                                                 context))
                values.append(self.sampled_value("Current.Import", round(reading.current_a, 2),
                                                 "A", context))
            values.append(self.sampled_value("SoC", round(reading.soc, 1), "Percent", context,
                                             location="EV"))
        return {"timestamp": self.sim.now_iso(), "sampledValue": values}

    def begin_session(self, conn: ConnectorState, id_tag: str,
                      remote_start_id: int | None) -> ActiveSession:
        """Ledger record + session state at the start (meter read now)."""
        if conn.session is not None:
            raise Refused(f"connector {conn.number} already has a session")
        self.sim.advance(conn)
        conn.physics.start_vehicle()
        record = SessionRecord(connector=conn.number, id_tag=id_tag,
                               meter_start_wh=conn.physics.register_wh,
                               started_at_ms=self.sim.now_ms(), remote_start_id=remote_start_id)
        self.sim.ledger.add(record)
        session = ActiveSession(record)
        conn.session = session
        conn.reservation = None
        conn.physics.charging = True
        return session

    def abandon_session(self, conn: ConnectorState, session: ActiveSession) -> None:
        """A start the CSMS refused with a CALLERROR: no session after all (its queued meter
        values and stop, if any, are not sent)."""
        session.stopping = True
        session.abandoned = True
        session.record.meter_stop_wh = session.record.meter_start_wh
        session.record.stop_reason = "StartFailed"
        session.started.set()
        if conn.session is session:
            self.sim.stop_meter_loop(conn)
            conn.physics.charging = False
            conn.session = None
            conn.status = "Available"

    def end_session(self, conn: ConnectorState, session: ActiveSession, reason: str
                    ) -> Reading:
        """Close the ledger record at the stop (meter read now)."""
        session.stopping = True
        self.sim.stop_meter_loop(conn)
        self.sim.advance(conn)
        conn.physics.charging = False
        reading = conn.physics.reading()
        record = session.record
        record.meter_stop_wh = reading.register_wh
        record.stopped_at_ms = self.sim.now_ms()
        record.stop_reason = reason
        conn.session = None
        if conn.pending_inoperative:
            conn.pending_inoperative = False
            conn.operative = False
        return reading

    def pick_connector(self, number: int | None, id_tag: str) -> ConnectorState | None:
        """Where a remote start for ``id_tag`` can go (honouring reservations)."""
        candidates = ([self.sim.connectors[number]] if number in self.sim.connectors
                      else [] if number is not None else list(self.sim.connectors.values()))
        now = self.sim.now_ms()
        for conn in candidates:
            if conn.reservation is not None and conn.reservation.expires_ms < now:
                conn.reservation = None
                conn.status = "Available"
            if conn.session is not None or not conn.operative:
                continue
            if conn.reservation is not None and conn.reservation.id_tag != id_tag:
                continue
            if conn.status in ("Available", "Preparing", "Reserved"):
                return conn
        return None

    def reserve(self, number: int | None, reservation_id: int, id_tag: str, expiry: str
                ) -> str:
        """ReserveNow decision: Accepted / Occupied / Unavailable / Faulted / Rejected."""
        if number is None or number not in self.sim.connectors:
            return "Rejected"
        conn = self.sim.connectors[number]
        if conn.status == "Faulted":
            return "Faulted"
        if not conn.operative:
            return "Unavailable"
        if conn.session is not None or (conn.reservation is not None
                                        and conn.reservation.reservation_id != reservation_id):
            return "Occupied"
        conn.reservation = Reservation(reservation_id, id_tag, parse_timestamp_ms(expiry))
        self.defer("ReserveNow", lambda: self._set_status(conn, "Reserved"))
        return "Accepted"

    def cancel_reservation(self, reservation_id: int) -> str:
        """CancelReservation decision."""
        for conn in self.sim.connectors.values():
            if conn.reservation is not None and conn.reservation.reservation_id == reservation_id:
                conn.reservation = None
                self.defer("CancelReservation", lambda c=conn: self._set_status(c, "Available"))
                return "Accepted"
        return "Rejected"

    async def _set_status(self, conn: ConnectorState, status: str) -> None:
        conn.status = status
        await self.send_status(conn)

    def change_availability(self, numbers: list[int], operative: bool) -> str:
        """ChangeAvailability decision for some connectors: Accepted / Scheduled / Rejected."""
        if not numbers or any(n not in self.sim.connectors for n in numbers):
            return "Rejected"
        scheduled = False
        changed: list[ConnectorState] = []
        for n in numbers:
            conn = self.sim.connectors[n]
            if not operative and conn.session is not None:
                conn.pending_inoperative = True
                scheduled = True
                continue
            conn.pending_inoperative = False
            conn.operative = operative
            changed.append(conn)

        async def notify() -> None:
            for conn in changed:
                await self._set_status(conn, "Available" if operative else "Unavailable")

        self.defer("ChangeAvailability", notify)
        return "Scheduled" if scheduled else "Accepted"

    def apply_profile(self, conn: ConnectorState, profile_id: int, profile: dict[str, Any],
                      schedule: dict[str, Any] | None) -> None:
        """Store a charging profile and apply its first period's limit to the physics."""
        conn.profiles[profile_id] = profile
        self._apply_limits(conn, schedule)

    def _apply_limits(self, conn: ConnectorState, schedule: dict[str, Any] | None) -> None:
        if schedule is None:
            conn.physics.limit_w = None
            return
        periods = schedule.get("charging_schedule_period") or []
        if not periods:
            return
        limit = float(periods[0]["limit"])
        if schedule.get("charging_rate_unit") == "A":
            cfg = self.sim.config
            phases = 1 if cfg.charger_type == "dc" else cfg.phases
            limit = limit * cfg.nominal_voltage * phases
        self.sim.advance(conn)
        conn.physics.limit_w = limit

    def clear_profiles(self, conn: ConnectorState, profile_id: int | None) -> bool:
        """Remove one profile (or all); True when something was removed."""
        if profile_id is None:
            removed = bool(conn.profiles)
            conn.profiles.clear()
        else:
            removed = conn.profiles.pop(profile_id, None) is not None
        if removed:
            conn.physics.limit_w = None
        return removed

    def update_local_list(self, version: int, full: bool, entries: list[tuple[str, str | None]]
                          ) -> str:
        """SendLocalList: (idTag, status or None = delete)."""
        if full:
            self.sim.local_list.clear()
        for tag, status in entries:
            if status is None:
                self.sim.local_list.pop(tag, None)
            else:
                self.sim.local_list[tag] = status
        self.sim.local_list_version = version
        return "Accepted"

    async def firmware_flow(self, request_id: int | None) -> None:
        """Downloading -> Downloaded -> Installing -> Installed."""
        for status in FIRMWARE_STEPS:
            await asyncio.sleep(self.sim.config.step_delay_s)
            await self.send_firmware_status(status, request_id)

    async def upload_flow(self, request_id: int | None, log: bool) -> None:
        """Uploading -> Uploaded."""
        for status in UPLOAD_STEPS:
            await asyncio.sleep(self.sim.config.step_delay_s)
            await self.send_upload_status(status, request_id, log)

    async def stop_all(self, reason: str) -> None:
        """Stop every running session (before a reset), waiting for the CSMS's answers."""
        for conn in self.sim.connectors.values():
            if conn.session is not None and not conn.session.stopping:
                await self.stop_transaction(conn, reason)
