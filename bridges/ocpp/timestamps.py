"""OCPP date-times <-> ms since the epoch, and clock-skew checks (no clock: callers pass times).

OCPP writes RFC 3339 date-times (``2024-03-01T10:00:00.123Z``). Real chargers also send offsets
(``+08:00``), nanoseconds, and no zone at all (SteVe #136: local time sent as if UTC). A
missing zone is read as UTC and reported through :attr:`DeviceTime.zoned`, so the caller can
count it. Years before :data:`PLAUSIBLE_AFTER_MS` (a charger that has not set its clock yet
sends 1970 dates, MicroOcpp #311) parse but are not :attr:`DeviceTime.plausible`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bridges.ocpp.errors import TimestampError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
PLAUSIBLE_AFTER_MS = 1_262_304_000_000  # 2010-01-01T00:00:00Z
DEFAULT_SKEW_THRESHOLD_S = 30.0
_FRACTION = re.compile(r"(\.\d{6})\d+")


@dataclass(frozen=True, slots=True)
class DeviceTime:
    """A parsed device date-time."""

    ms: int
    zoned: bool
    """False when the text had no zone (read as UTC)."""

    @property
    def plausible(self) -> bool:
        """False for a clock that was evidently never set (before 2010)."""
        return self.ms >= PLAUSIBLE_AFTER_MS


def parse_device_time(text: Any) -> DeviceTime:
    """Parse an OCPP date-time; :class:`TimestampError` when it is not one."""
    if not isinstance(text, str) or len(text) < 10 or len(text) > 40:
        raise TimestampError(f"not an OCPP date-time: {text!r}")
    clean = _FRACTION.sub(r"\1", text.strip())
    if clean[-1:] in ("z", "Z"):
        clean = clean[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(clean)
    except ValueError:
        raise TimestampError(f"not an OCPP date-time: {text!r}") from None
    zoned = when.tzinfo is not None
    if not zoned:
        when = when.replace(tzinfo=UTC)
    return DeviceTime((when - _EPOCH) // _MS, zoned)


def parse_timestamp_ms(text: Any) -> int:
    """An OCPP date-time as ms since the epoch (UTC when the text has no zone)."""
    return parse_device_time(text).ms


def optional_timestamp_ms(text: Any) -> int | None:
    """Like :func:`parse_timestamp_ms` but None for a missing, broken or implausible time."""
    if text is None:
        return None
    try:
        parsed = parse_device_time(text)
    except TimestampError:
        return None
    return parsed.ms if parsed.plausible else None


def format_timestamp(ms: int) -> str:
    """ms since the epoch -> ``2024-03-01T10:00:00.123Z`` (what both versions accept)."""
    when = _EPOCH + timedelta(milliseconds=ms)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def clock_skew_s(device_ms: int, receive_ms: int) -> float:
    """Device clock minus receiver clock, in seconds (positive: the device runs ahead)."""
    return (device_ms - receive_ms) / 1000


def clock_skew_event(device_ms: int | None, receive_ms: int,
                     threshold_s: float = DEFAULT_SKEW_THRESHOLD_S) -> dict[str, Any] | None:
    """``charger.clockSkew`` event params when the skew is beyond ``threshold_s``, else None.

    Use it on messages whose time means "now" at the charger (BootNotification reply round
    trip, Heartbeat-era StatusNotification), not on replayed offline data, whose time is
    legitimately old.
    """
    if device_ms is None:
        return None
    skew = clock_skew_s(device_ms, receive_ms)
    if abs(skew) <= threshold_s:
        return None
    return {"skew": skew, "deviceTime": device_ms}
