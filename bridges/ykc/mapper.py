"""YKC frames <-> thing-model params (pure: no I/O, no clock).

Scaled integers become thing-model units here and nowhere later: V, A, kW, kWh and yuan as
:class:`~decimal.Decimal` (exact), °C, %, minutes; CP56Time2a (China local time) becomes ms since
the epoch with the zone the caller passes.

Device ids: the charger is its 14-digit pile code; a connector (and its parking lock) is the pile
code followed by the 2-digit gun number (``3201020000000101``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import tzinfo
from decimal import Decimal
from typing import Any

from bridges.ykc.constants import ConnectorStatus, HardwareFault, PileType
from bridges.ykc.encoding import Cp56Time2a
from bridges.ykc.errors import EncodeError
from bridges.ykc.messages.billing import BillingModel
from bridges.ykc.messages.realtime import RealTimeData
from bridges.ykc.messages.session import Login
from bridges.ykc.messages.transaction import TransactionRecord
from bridges.ykc.tariff import TierPrice, compile_billing_model, slots_from_periods
from bridges.ykc.units import A1, C_OFF50, KWH4, V1, YUAN4, YUAN5, unit_values

TIERS = ("tip", "peak", "flat", "valley")
_STATUS = {
    ConnectorStatus.OFFLINE: "offline",
    ConnectorStatus.FAULT: "faulted",
    ConnectorStatus.IDLE: "available",
    ConnectorStatus.CHARGING: "charging",
}
_NETWORK = {0: "sim", 1: "lan", 2: "wlan", 3: "other"}
_TRADE_FLAG = {0x01: "app", 0x02: "card", 0x04: "offline_card", 0x05: "vin"}
_ZERO_TRADE = "0" * 32


def connector_id(pile_code: str, gun: int) -> str:
    """The connector device id: pile code + 2-digit gun."""
    return f"{pile_code}{gun:02d}"


def split_connector_id(device: str) -> tuple[str, int]:
    """``connector_id`` reversed; ValueError when it is not 16 digits."""
    if len(device) != 16 or not device.isdigit():
        raise ValueError(f"not a YKC connector id (14-digit pile + 2-digit gun): {device!r}")
    return device[:14], int(device[14:])


def src_tag(protocol_version: int) -> str:
    """Envelope ``src`` for a pile's protocol version byte."""
    return "ykc16" if protocol_version >= 0x10 else "ykc15"


def login_properties(login: Login) -> dict[str, Any]:
    """Charger properties from a 0x01 login."""
    props: dict[str, Any] = {
        "protocol": src_tag(login.protocol_version),
        "chargerType": "dc" if login.pile_type == PileType.DC else "ac",
        "connectorCount": login.gun_count,
        "firmwareVersion": login.firmware_version,
        "networkType": _NETWORK.get(login.network_type, "other"),
        "carrier": str(login.carrier),
    }
    if login.iccid.strip("0"):
        props["iccid"] = login.iccid
    return props


def _kw(voltage: Decimal, current: Decimal) -> float:
    return float((voltage * current / 1000).quantize(Decimal("0.001")))


def realtime_properties(frame: RealTimeData) -> dict[str, Any]:
    """Connector properties from a 0x13 real-time frame."""
    voltage = V1.to_unit(frame.output_voltage_v1)
    current = A1.to_unit(frame.output_current_a1)
    props: dict[str, Any] = {
        "status": _STATUS.get(ConnectorStatus(frame.status), "offline")
        if frame.status in _STATUS else "offline",
        "plugged": frame.gun_plugged == 1,
        "voltage": float(voltage),
        "current": float(current),
        "power": _kw(voltage, current),
        "energy": KWH4.to_unit(frame.energy_kwh4),
        "amount": YUAN4.to_unit(frame.amount_yuan4),
        "chargingTime": frame.charged_min,
        "remainingTime": frame.remaining_min,
        "sessionId": "" if frame.trade_no == _ZERO_TRADE else frame.trade_no,
        "faults": [{"code": flag.name or str(flag.value)}
                   for flag in HardwareFault if frame.hardware_faults & flag.value],
    }
    if frame.gun_holstered in (0, 1):
        props["holstered"] = frame.gun_holstered == 1
    if frame.cable_temp_c_off50:
        props["gunTemperature"] = float(C_OFF50.to_unit(frame.cable_temp_c_off50))
    if frame.soc_pct:
        props["soc"] = float(frame.soc_pct)
    if frame.battery_max_temp_c_off50:
        props["batteryMaxTemperature"] = float(C_OFF50.to_unit(frame.battery_max_temp_c_off50))
    if frame.cable_code:
        props["cableCode"] = f"{frame.cable_code:016X}"
    return props


def cp56_ms(stamp: Cp56Time2a, tz: tzinfo) -> int | None:
    """CP56Time2a (local time in ``tz``) -> ms since the epoch; None when invalid or zero."""
    when = stamp.to_datetime()
    if when is None:
        return None
    return int(when.replace(tzinfo=tz).timestamp() * 1000)


def record_params(record: TransactionRecord, tz: tzinfo) -> dict[str, Any]:
    """``transactionRecord`` event params from a 0x3B record."""
    tiers = []
    for name, usage in zip(TIERS, record.tiers, strict=True):
        tiers.append({
            "tier": name,
            "price": YUAN5.to_unit(usage.price_yuan5),
            "energy": KWH4.to_unit(usage.energy_kwh4),
            "lossEnergy": KWH4.to_unit(usage.loss_energy_kwh4),
            "amount": YUAN4.to_unit(usage.amount_yuan4),
        })
    params: dict[str, Any] = {
        "sessionId": record.trade_no,
        "startedAt": cp56_ms(record.start_time, tz) or 0,
        "endedAt": cp56_ms(record.end_time, tz) or 0,
        "meterStart": KWH4.to_unit(record.meter_start_kwh4),
        "meterStop": KWH4.to_unit(record.meter_end_kwh4),
        "energy": KWH4.to_unit(record.total_energy_kwh4),
        "lossEnergy": KWH4.to_unit(record.total_loss_energy_kwh4),
        "amount": YUAN4.to_unit(record.total_amount_yuan4),
        "tiers": tiers,
        "tradeType": _TRADE_FLAG.get(record.trade_flag, "unknown"),
        "stopReasonCode": record.stop_reason,
    }
    vin = record.vin.strip("\x00 ")
    if vin:
        params["vin"] = vin[:17]
    if record.physical_card.strip("0"):
        params["idTag"] = record.physical_card
    return params


def frame_data(frame: object) -> dict[str, Any]:
    """A BMS / process frame as a plain map in units (for ``bms*`` events)."""
    out: dict[str, Any] = {}
    converted = unit_values(frame)
    for field in dataclasses.fields(frame):  # type: ignore[arg-type]
        if field.name in ("trade_no", "pile_code", "gun"):
            continue
        value = getattr(frame, field.name)
        if isinstance(value, int | str):
            out[field.name] = value
        elif isinstance(value, bytes):
            out[field.name] = value.hex()
    for key, value in converted.items():
        out[key] = str(value)
    return out


class TariffError(ValueError):
    """A desired tariff document cannot be compiled into a YKC billing model."""


def billing_model_from_doc(doc: Mapping[str, Any]) -> BillingModel:
    """Compile a desired ``tariff`` document into a YKC billing model.

    Shape::

        {version: 7, code: "0007"?,                        # code defaults to version % 10000
         tiers: {tip: {energy: "1.2", service: "0.6"}, peak: ..., flat: ..., valley: ...},
         slots: [48 tier names]  |  periods: [{start: "08:00", end: "10:00", tier: flat}, ...]}

    YKC has four tiers; a ``deep_valley`` tier is billed at the valley slot index only when no
    ``valley`` is given (it is refused otherwise: the charger cannot tell them apart).
    """
    tiers = doc.get("tiers")
    if not isinstance(tiers, Mapping):
        raise TariffError("tariff needs 'tiers'")
    names = list(TIERS)
    if "deep_valley" in tiers:
        if "valley" in tiers:
            raise TariffError("YKC billing models have 4 tiers: deep_valley and valley together")
        names[3] = "deep_valley"
    prices = []
    for name in names:
        tier = tiers.get(name, tiers.get("flat"))
        if not isinstance(tier, Mapping):
            raise TariffError(f"tariff has no tier {name!r} and no flat tier to default to")
        try:
            prices.append(TierPrice(Decimal(str(tier["energy"])), Decimal(str(tier["service"]))))
        except (KeyError, ArithmeticError) as exc:
            raise TariffError(f"tier {name}: needs decimal 'energy' and 'service'") from exc
    index = {name: i for i, name in enumerate(names)}
    try:
        if "slots" in doc:
            slots = [index[str(s)] for s in doc["slots"]]
        else:
            periods = [(p["start"], p["end"], index[str(p["tier"])]) for p in doc["periods"]]
            slots = list(slots_from_periods(periods))
        version = doc.get("version", 0)
        code = doc.get("code", int(version) % 10000)
        return compile_billing_model(code, prices, slots)
    except (KeyError, TypeError, EncodeError) as exc:
        raise TariffError(f"cannot compile tariff: {exc}") from exc
