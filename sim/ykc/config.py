"""Configuration of one simulated YKC pile."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from bridges.ykc.constants import Carrier, NetworkType, PileType, ProtocolVersion

__all__ = ["DEFAULT_PORT", "PileConfig"]

DEFAULT_PORT = 8768
"""The edge gateway's default YKC listener port (``edge.config.YkcConfig.port``)."""


@dataclass(frozen=True)
class PileConfig:
    """Everything that makes one simulated pile; durations in seconds.

    Only ``pile_code`` is required. Defaults follow the YKC spec (heartbeat 10 s, real-time data
    every 15 s while charging and every 5 min while idle); tests shorten them.
    """

    pile_code: str
    """14 decimal digits (the platform-assigned 桩编码)."""
    guns: int = 1
    """Number of guns (connectors), 1..99; numbered 1..guns."""
    protocol_version: int = ProtocolVersion.V1_6
    """Login byte: 15 (0x0F, v1.5) or 16 (0x10, v1.6; adds the 0xA1-0xA4 parallel frames)."""
    pile_type: int = PileType.DC
    """0 DC (sends the BMS frames 0x15/0x17/0x23/0x25/0x19) or 1 AC."""
    firmware: str = "VM1.0.0"
    """Firmware version, at most 8 ASCII characters."""
    network_type: int = NetworkType.LAN
    iccid: str = "0" * 20
    carrier: int = Carrier.OTHER

    heartbeat_interval: float = 10.0
    """0x03 per gun every interval."""
    missed_heartbeats_limit: int = 3
    """This many heartbeat rounds in a row without 0x04 drop the link (pile reconnects)."""
    realtime_interval: float = 15.0
    """0x13 (and 0x23/0x25 on DC) per charging gun."""
    realtime_idle_interval: float = 300.0
    """0x13 per idle gun."""
    record_retry_interval: float = 30.0
    """An unconfirmed 0x3B is re-sent (same bytes) this often until 0x40 arrives."""
    model_retry_interval: float = 10.0
    """0x05 / 0x09 are repeated this often until answered."""
    login_timeout: float = 10.0
    """No 0x02 within this time: close and reconnect."""
    connect_timeout: float = 10.0
    auth_timeout: float = 10.0
    """How long :meth:`SimPile.swipe` waits for the 0x32 answer to a 0x31."""

    power_kw: float = 60.0
    """Constant charging power of each gun (scaled by the 0x52 power limit)."""
    battery_kwh: float = 60.0
    """DC only: battery size used for the SOC model."""
    start_soc: tuple[int, int] = (20, 60)
    """DC only: the SOC at plug-in is drawn uniformly from this range (%)."""
    stop_at_full_soc: bool = True
    """DC only: stop with reason 0x41 (SOC 100 %) when the battery is full."""
    bms_frames: bool = True
    """DC only: send 0x15/0x17 at start and 0x23/0x25 with every 0x13 (off for benchmarks)."""

    start_not_plugged: bool = False
    """Guns start unplugged: a 0x34 is answered 0x33 "not plugged" (reason 5) first."""
    plug_delay: float | None = 2.0
    """With ``start_not_plugged``: the driver plugs in this long after such a 0x34 and the pile
    sends the second 0x33 (success); None waits for :meth:`SimPile.plug`. Only a plug within
    60 s of the 0x34 starts the session (spec §4.8)."""

    reconnect_min: float = 1.0
    """First reconnect delay; doubles per failed attempt up to ``reconnect_max``, times a random
    factor in [0.5, 1.0) (jitter). Reset by a successful login."""
    reconnect_max: float = 30.0
    reboot_duration: float = 2.0
    """Offline time after a 0x92 remote reboot before the pile reconnects."""

    parking_lock: bool = False
    """Report a parking lock per gun (0x61) after login and every ``lock_report_interval``.
    Lock commands (0x62) are answered either way."""
    lock_report_interval: float = 300.0
    offline_card_capacity: int = 1000
    """Local card list size (0x44 beyond it fails with reason 2 "storage full")."""

    meter_start_kwh4: int | None = None
    """Initial meter reading of every gun in 0.0001 kWh; None draws one from the seed."""
    ledger_max: int | None = None
    """Keep at most this many confirmed sessions in the ledger (oldest dropped); None keeps all."""
    timezone: str = "Asia/Shanghai"
    """Zone of the pile's local clock (YKC times are China local time) until a 0x56 sets it."""
    seed: int = 0
    """Seeds the pile's random generator (meter start, SOC, VIN, jitter of V/I and backoff)."""

    def __post_init__(self) -> None:
        code = self.pile_code
        if not (isinstance(code, str) and len(code) == 14 and code.isascii() and code.isdigit()):
            raise ValueError(f"pile_code must be 14 decimal digits, got {code!r}")
        if not 1 <= self.guns <= 99:
            raise ValueError(f"guns must be 1..99, got {self.guns}")
        if self.protocol_version not in (ProtocolVersion.V1_5, ProtocolVersion.V1_6):
            raise ValueError(f"protocol_version must be 15 or 16, got {self.protocol_version}")
        if self.pile_type not in (PileType.DC, PileType.AC):
            raise ValueError(f"pile_type must be 0 (DC) or 1 (AC), got {self.pile_type}")
        if len(self.firmware) > 8 or not self.firmware.isascii():
            raise ValueError(f"firmware must be at most 8 ASCII characters, got {self.firmware!r}")
        iccid = self.iccid
        if len(iccid) > 20 or not iccid.isascii() or any(c not in "0123456789ABCDEFabcdef" for c in iccid):
            raise ValueError(f"iccid must be at most 20 BCD/hex digits, got {iccid!r}")
        if not (0 <= self.network_type <= 0xFF and 0 <= self.carrier <= 0xFF):
            raise ValueError("network_type and carrier must be byte values")
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name.endswith(("_interval", "_timeout")) and not (
                isinstance(value, int | float) and math.isfinite(value) and value > 0
            ):
                raise ValueError(f"{item.name} must be a positive number of seconds, got {value!r}")
        if self.power_kw < 0 or self.battery_kwh <= 0:
            raise ValueError("power_kw must be >= 0 and battery_kwh > 0")
        low, high = self.start_soc
        if not 0 <= low <= high <= 100:
            raise ValueError(f"start_soc must be a (low, high) range within 0..100, got {self.start_soc}")
        if self.missed_heartbeats_limit < 1:
            raise ValueError("missed_heartbeats_limit must be >= 1")
        if not 0 < self.reconnect_min <= self.reconnect_max:
            raise ValueError("need 0 < reconnect_min <= reconnect_max")
        if self.reboot_duration < 0 or (self.plug_delay is not None and self.plug_delay < 0):
            raise ValueError("reboot_duration and plug_delay must be >= 0")

    @property
    def is_dc(self) -> bool:
        return self.pile_type == PileType.DC

    @property
    def is_v16(self) -> bool:
        return self.protocol_version == ProtocolVersion.V1_6
