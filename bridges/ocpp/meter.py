"""Sampled meter values -> thing-model properties, with exact unit conversion.

Both versions carry a list of ``meterValue`` items, each a timestamp with ``sampledValue``\\ s
(measurand, value, unit, phase, location, context). 1.6 writes the value as a string and the
unit as ``unit``; 2.0.1 writes a JSON number and ``unitOfMeasure {unit, multiplier}``. Values
become :class:`~decimal.Decimal` without ever passing through float arithmetic
(``Decimal(str(value))`` for a float, ``scaleb`` for multipliers and Wh -> kWh).

Defaults (both versions): measurand ``Energy.Active.Import.Register``, context
``Sample.Periodic``, location ``Outlet``, unit ``Wh`` for energy, ``W`` for power, ``V``,
``A``, ``Percent``, ``Celsius`` by measurand.

Connector properties from one sample:

=================================  ==================  =======================================
measurand                          property            phases (when no phase-less value)
=================================  ==================  =======================================
Energy.Active.Import.Register      meterEnergy (kWh)   sum of L1, L2, L3
Power.Active.Import                power (kW)          sum of the phases
Voltage                            voltage (V)         mean of L1-N, L2-N, L3-N (else L-L)
Current.Import                     current (A)         the highest phase current (not N)
Current.Offered                    maxCurrentOffered   the highest phase
SoC                                soc (%)             (any location; the EV's)
Temperature at location Cable      gunTemperature      -
=================================  ==================  =======================================

Values at location ``Outlet`` win over other locations. Values outside the thing model's range
are dropped and reported (an anomaly), so one bad reading does not sink the whole report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from bridges.ocpp.timestamps import optional_timestamp_ms
from bridges.ocpp.translation import Anomaly
from bridges.ocpp.versions import OcppVersion
from thingmodels import builtin_models

ENERGY_REGISTER = "Energy.Active.Import.Register"
_DEFAULT_UNIT = {
    "Energy": "Wh", "Power": "W", "Voltage": "V", "Current": "A", "SoC": "Percent",
    "Temperature": "Celsius", "Frequency": "Hertz",
}
_LN = ("L1-N", "L2-N", "L3-N")
_LINES = ("L1", "L2", "L3")
_LL = ("L1-L2", "L2-L3", "L3-L1")
_KELVIN = Decimal("273.15")


@dataclass(frozen=True, slots=True)
class SampledValue:
    """One value in a canonical unit: kWh / kvarh for energy, kW / kvar for power, V, A, %,
    °C, Hz (``unit`` names the canonical unit)."""

    measurand: str
    value: Decimal
    unit: str
    phase: str | None = None
    context: str = "Sample.Periodic"
    location: str = "Outlet"


@dataclass(frozen=True, slots=True)
class MeterSample:
    """One ``meterValue`` item."""

    ts: int | None
    values: tuple[SampledValue, ...]

    @property
    def contexts(self) -> frozenset[str]:
        """The reading contexts present."""
        return frozenset(v.context for v in self.values)

    def pick(self, measurand: str, *, aggregate: str = "sum",
             phases: Sequence[str] = _LINES) -> Decimal | None:
        """The value of a measurand, phase-less preferred, else aggregated over ``phases``."""
        candidates = [v for v in self.values if v.measurand == measurand]
        outlet = [v for v in candidates if v.location == "Outlet"]
        candidates = outlet or candidates
        if not candidates:
            return None
        for value in candidates:
            if value.phase is None:
                return value.value
        by_phase = {v.phase: v.value for v in candidates}
        for group in ((phases, _LN, _LL) if aggregate == "mean" else (phases, _LN)):
            found = [by_phase[p] for p in group if p in by_phase]
            if found:
                if aggregate == "sum":
                    return sum(found, Decimal(0))
                if aggregate == "max":
                    return max(found)
                return sum(found, Decimal(0)) / len(found)
        return None

    def register_kwh(self) -> Decimal | None:
        """The active import energy register in kWh (exact)."""
        return self.pick(ENERGY_REGISTER)


def _decimal(raw: Any) -> Decimal | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, Decimal):
        number = raw
    elif isinstance(raw, int | str):
        try:
            number = Decimal(raw.strip() if isinstance(raw, str) else raw)
        except InvalidOperation:
            return None
    elif isinstance(raw, float):
        number = Decimal(str(raw))
    else:
        return None
    return number if number.is_finite() else None


def _canonical(measurand: str, value: Decimal, unit: str) -> tuple[Decimal, str] | None:
    if unit in ("Wh", "varh", "W", "var", "VA"):
        return value.scaleb(-3), "k" + unit
    if unit in ("kWh", "kvarh", "kW", "kvar", "kVA", "V", "A", "Percent", "Hertz"):
        return value, unit
    if unit in ("Celsius", "Celcius"):
        return value, "Celsius"
    if unit == "K":
        return value - _KELVIN, "Celsius"
    if unit == "Fahrenheit":
        return (value - 32) * 5 / 9, "Celsius"
    if measurand == "Power.Factor":
        return value, unit
    return None


def parse_sampled_value(version: OcppVersion, raw: Any) -> SampledValue | Anomaly | None:
    """One ``sampledValue`` -> :class:`SampledValue`; an Anomaly when unreadable; None when it
    is signed data (1.6 ``format: SignedData``), which carries no plain number."""
    if not isinstance(raw, Mapping):
        return Anomaly("bad_sampled_value", f"not an object: {raw!r}")
    if raw.get("format") == "SignedData":
        return None
    measurand = str(raw.get("measurand") or ENERGY_REGISTER)
    value = _decimal(raw.get("value"))
    if value is None:
        return Anomaly("bad_sampled_value", f"{measurand}: value {raw.get('value')!r}")
    default_unit = _DEFAULT_UNIT.get(measurand.split(".", maxsplit=1)[0], "")
    if version is OcppVersion.V16:
        unit = str(raw.get("unit") or default_unit)
    else:
        uom = raw.get("unitOfMeasure")
        unit = default_unit
        if isinstance(uom, Mapping):
            unit = str(uom.get("unit") or default_unit)
            multiplier = uom.get("multiplier", 0)
            if isinstance(multiplier, int) and not isinstance(multiplier, bool) and multiplier:
                value = value.scaleb(multiplier)
    converted = _canonical(measurand, value, unit)
    if converted is None:
        return Anomaly("bad_sampled_value", f"{measurand}: unit {unit!r} not understood")
    phase = raw.get("phase")
    return SampledValue(
        measurand=measurand, value=converted[0], unit=converted[1],
        phase=str(phase) if phase else None,
        context=str(raw.get("context") or "Sample.Periodic"),
        location=str(raw.get("location") or "Outlet"),
    )


def parse_meter_values(version: OcppVersion, meter_values: Any,
                       device: str | None = None) -> tuple[list[MeterSample], list[Anomaly]]:
    """A ``meterValue`` list (MeterValues, StopTransaction.transactionData, TransactionEvent)."""
    samples: list[MeterSample] = []
    problems: list[Anomaly] = []
    if not isinstance(meter_values, Sequence) or isinstance(meter_values, str):
        return samples, problems
    for item in meter_values:
        if not isinstance(item, Mapping):
            problems.append(Anomaly("bad_meter_value", f"not an object: {item!r}", device))
            continue
        values: list[SampledValue] = []
        raw_values = item.get("sampledValue")
        for raw in raw_values if isinstance(raw_values, Sequence) else ():
            parsed = parse_sampled_value(version, raw)
            if isinstance(parsed, Anomaly):
                problems.append(Anomaly(parsed.code, parsed.detail, device))
            elif parsed is not None:
                values.append(parsed)
        ts = optional_timestamp_ms(item.get("timestamp"))
        if ts is None:
            problems.append(Anomaly("bad_timestamp", f"meterValue timestamp "
                                    f"{item.get('timestamp')!r}", device))
        samples.append(MeterSample(ts, tuple(values)))
    return samples, problems


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def connector_properties(sample: MeterSample) -> dict[str, Any]:
    """Connector properties from one sample (see the module table); unchecked ranges."""
    props: dict[str, Any] = {}
    energy = sample.register_kwh()
    if energy is not None:
        props["meterEnergy"] = energy
    simple: list[tuple[str, float | None]] = [
        ("power", _float(sample.pick("Power.Active.Import"))),
        ("voltage", _float(sample.pick("Voltage", aggregate="mean"))),
        ("current", _float(sample.pick("Current.Import", aggregate="max"))),
        ("maxCurrentOffered", _float(sample.pick("Current.Offered", aggregate="max"))),
        ("soc", _float(_any_location(sample, "SoC"))),
        ("gunTemperature", _float(_at(sample, "Temperature", "Cable"))),
    ]
    props.update({name: value for name, value in simple if value is not None})
    return props


def station_meter_properties(sample: MeterSample) -> dict[str, Any]:
    """``meter`` properties (per phase) from a connector-0 / EVSE-0 sample."""
    props: dict[str, Any] = {}
    energy_in = sample.pick(ENERGY_REGISTER)
    energy_out = sample.pick("Energy.Active.Export.Register")
    if energy_in is not None:
        props["energyImport"] = energy_in
    if energy_out is not None:
        props["energyExport"] = energy_out
    power = sample.pick("Power.Active.Import")
    if power is not None:
        props["power"] = float(power)
    for n, (line, ln) in enumerate(zip(_LINES, _LN, strict=True), start=1):
        for value in sample.values:
            if value.measurand == "Voltage" and value.phase in (line, ln):
                props[f"voltageL{n}"] = float(value.value)
            elif value.measurand == "Current.Import" and value.phase == line:
                props[f"currentL{n}"] = float(value.value)
    frequency = sample.pick("Frequency")
    if frequency is not None:
        props["frequency"] = float(frequency)
    factor = sample.pick("Power.Factor")
    if factor is not None:
        props["powerFactor"] = float(factor)
    return props


def _any_location(sample: MeterSample, measurand: str) -> Decimal | None:
    for value in sample.values:
        if value.measurand == measurand:
            return value.value
    return None


def _at(sample: MeterSample, measurand: str, location: str) -> Decimal | None:
    for value in sample.values:
        if value.measurand == measurand and value.location == location:
            return value.value
    return None


def in_range(product: str, props: dict[str, Any], device: str | None = None
             ) -> tuple[dict[str, Any], list[Anomaly]]:
    """Drop the properties outside the thing model's min/max (each one an anomaly)."""
    model = builtin_models()[product]
    kept: dict[str, Any] = {}
    problems: list[Anomaly] = []
    for name, value in props.items():
        spec = model.property(name)
        low = Decimal(str(spec.min)) if spec.min is not None else None
        high = Decimal(str(spec.max)) if spec.max is not None else None
        number = value if isinstance(value, Decimal) else Decimal(str(value))
        if (low is not None and number < low) or (high is not None and number > high):
            problems.append(Anomaly("out_of_range", f"{product}.{name} = {value}", device))
            continue
        kept[name] = value
    return kept, problems
