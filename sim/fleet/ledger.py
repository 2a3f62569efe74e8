"""The run's ledger: one JSON line per session a simulated charger completed, as the CHARGER
measured and billed it, for comparison with the platform's orders (the chaos drill).

Row fields (strings for every decimal, never floats)::

    kind        ykc | ocpp16 | ocpp201
    charger     pile code / chargePointId
    connector   gun / connectorId / evseId (1-based)
    device      the thing-model connector id the platform knows (``{pile}{gun:02d}``,
                ``{cp}-{n}``)
    sessionId   YKC trade number / OCPP transactionId
    start       card | app | other (started by someone else, e.g. the platform)
    idTag       the card / idTag the session was started with
    startedAt   ISO 8601 UTC;  endedAt likewise
    meterStart, meterStop, energy    kWh ("1234.5678"; OCPP: Wh / 1000, exact)
    amount      yuan as the pile computed it (YKC); null for OCPP (chargers do not price)
    currency    CNY | null
    tiers       YKC: {tip|peak|flat|valley: {price, energy, amount}}
    stopReason  YKC: the stop reason byte ("0x45"); OCPP: the reason sent
    confirmed   true when the platform acknowledged the record (YKC 0x40, OCPP
                StopTransaction / TransactionEvent Ended answered); false for sessions still
                unacknowledged when the run ended (written last)
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from zoneinfo import ZoneInfo

from sim.ocpp.ledger import SessionRecord
from sim.ykc.ledger import LedgerEntry

__all__ = ["LedgerWriter", "ocpp_row", "ykc_row"]


def _iso_local(value: datetime | None, zone: str) -> str | None:
    if value is None:
        return None
    return value.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC).isoformat(timespec="seconds")


def _iso_ms(value: int | None) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value / 1000, UTC).isoformat(timespec="milliseconds")


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def ykc_row(pile_code: str, entry: LedgerEntry, *, method: str, timezone: str) -> dict[str, Any]:
    """A ledger row from a YKC pile's own ledger entry."""
    summary = entry.summary()
    return {
        "kind": "ykc", "charger": pile_code, "connector": entry.gun,
        "device": f"{pile_code}{entry.gun:02d}", "sessionId": entry.trade_no,
        "start": method, "idTag": entry.physical_card,
        "startedAt": _iso_local(entry.started_at, timezone),
        "endedAt": _iso_local(entry.ended_at, timezone),
        "meterStart": _dec(summary["meterStart"]), "meterStop": _dec(summary["meterStop"]),
        "energy": _dec(summary["energy"]), "amount": _dec(summary["amount"]), "currency": "CNY",
        "tiers": {name: {key: str(value) for key, value in tier.items()}
                  for name, tier in summary["tiers"].items()},
        "modelCode": entry.model_code,
        "stopReason": None if entry.stop_reason is None else f"0x{entry.stop_reason:02X}",
        "tradeFlag": summary["tradeFlag"], "recordSends": entry.record_sends,
        "confirmed": entry.confirmed,
    }


def ocpp_row(kind: str, charge_point_id: str, device: str, record: SessionRecord, *,
             method: str, confirmed: bool) -> dict[str, Any]:
    """A ledger row from an OCPP simulator's session record."""
    def kwh(wh: int | None) -> str | None:
        return None if wh is None else str(Decimal(wh).scaleb(-3))

    return {
        "kind": kind, "charger": charge_point_id, "connector": record.connector,
        "device": device, "sessionId": record.session_id, "start": method,
        "idTag": record.id_tag, "startedAt": _iso_ms(record.started_at_ms),
        "endedAt": _iso_ms(record.stopped_at_ms),
        "meterStart": kwh(record.meter_start_wh), "meterStop": kwh(record.meter_stop_wh),
        "energy": kwh(record.energy_wh), "amount": None, "currency": None,
        "meterStartWh": record.meter_start_wh, "meterStopWh": record.meter_stop_wh,
        "stopReason": record.stop_reason, "confirmed": confirmed,
    }


class LedgerWriter:
    """Appends rows to a JSONL file, one flushed line each (thread-safe); counts them."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.rows = 0
        self.unconfirmed = 0
        self._lock = threading.Lock()
        self._file: IO[str] | None = self.path.open("w", encoding="utf-8")

    def write(self, row: dict[str, Any]) -> None:
        """Write one row."""
        line = json.dumps(row, ensure_ascii=False, separators=(",", ":"))
        with self._lock:
            if self._file is None:
                raise ValueError(f"ledger {self.path} is closed")
            self._file.write(line + "\n")
            self._file.flush()
            self.rows += 1
            if not row.get("confirmed", True):
                self.unconfirmed += 1

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self) -> LedgerWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
