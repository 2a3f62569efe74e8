"""The register maps shipped in config/modbus: they load, fit the thing models, decode."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bridges.modbus import (
    SHIPPED_MAPS_DIR,
    Function,
    decode_response,
    load_register_map,
    load_register_maps,
    plan_reads,
    shipped_map,
)
from thingmodels import ModelRegistry, ThingModel, builtin_models
from thingmodels.schema import ThingModelFile

# What the lead is asked to add as thingmodels/models/relay.yaml (see the report); used
# here until the built-in models have a relay.
PROPOSED_RELAY = {
    "product": "relay",
    "version": 1,
    "description": "A remotely switched power relay or contactor (e.g. a cabinet's main "
                   "supply), usually on a Modbus relay module.",
    "properties": {
        "closed": {"type": "bool", "report": {"mode": "change"},
                   "description": "contactor closed (power on) as read back from its "
                                  "auxiliary contact"},
        "commanded": {"type": "bool", "report": {"mode": "change"},
                      "description": "relay output energised (the state last commanded)"},
    },
    "events": {
        "mismatch": {"level": "alert",
                     "params": {"commanded": {"type": "bool"}, "closed": {"type": "bool"}}},
        "commLost": {"level": "warning",
                     "params": {"reason": {"type": "string", "optional": True}}},
        "commRestored": {"level": "info", "params": {}},
    },
    "services": {
        name: {"timeout": "5s", "output": {
            "accepted": {"type": "bool"},
            "closed": {"type": "bool", "optional": True},
            "reason": {"type": "string", "optional": True}}}
        for name in ("cut", "restore")
    },
}

SHIPPED = sorted(p.stem for p in SHIPPED_MAPS_DIR.glob("*.yaml"))


def models_with_relay() -> ModelRegistry:
    models = dict(builtin_models())
    if "relay" not in models:
        models["relay"] = ThingModel(ThingModelFile.model_validate(PROPOSED_RELAY), "proposed")
    return ModelRegistry(models)


def test_the_expected_maps_are_shipped() -> None:
    products = {name: m.product for name, m in load_register_maps().items()}
    assert products == {
        "cabinet_relay": "relay",
        "eastron_sdm630": "meter",
        "parking_lock": "parking_lock",
        "victron_gx_battery": "storage",
        "water_immersion": "env_sensor",
        "xymd02_temperature_humidity": "env_sensor",
    }


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_map_fits_its_thing_model(name: str) -> None:
    regmap = shipped_map(name)
    models = builtin_models()
    if regmap.product == "relay" and "relay" not in list(models):
        models = models_with_relay()  # relay excepted until thingmodels has relay.yaml
    model = models[regmap.product]
    checked = load_register_map(SHIPPED_MAPS_DIR / f"{name}.yaml", models, require_model=True)
    for point in checked.readable():
        assert point.property in model.spec.properties, point.name
        assert point.unit in (None, model.spec.properties[point.property].unit), point.name
    for service in checked.services:
        assert service in model.spec.services
    assert plan_reads(checked)  # every map has something to read
    assert checked.reference and checked.vendor


def test_sdm630_block_decodes_to_meter_properties() -> None:
    meter = shipped_map("eastron_sdm630")
    low, high = plan_reads(meter)
    assert (low.function, low.address, low.count) == (Function.INPUT, 0x0000, 12)
    assert (high.function, high.address, high.count) == (Function.INPUT, 0x0034, 24)
    volts_amps = [0x4366, 0x8000, 0x4366, 0x199A, 0x4365, 0xCCCD,    # 230.5 230.1 229.8 V
                  0x4145, 0x70A4, 0x40A0, 0x0000, 0xBF00, 0x0000]    # 12.34 5.0 -0.5 A
    values = decode_response(meter, low, volts_amps).values
    assert values == {"voltageL1": 230.5, "voltageL2": 230.1, "voltageL3": 229.8,
                      "currentL1": 12.34, "currentL2": 5.0, "currentL3": -0.5}
    block = [0] * 24
    block[0:2] = [0x4587, 0x0C00]     # 0x34 total power 4321.5 W
    block[8:10] = [0x3E80, 0x0000]    # 0x3C total VAr 0.25 var
    block[10:12] = [0x3F7C, 0xAC08]   # 0x3E power factor 0.987
    block[18:20] = [0x4247, 0xEB85]   # 0x46 frequency 49.98 Hz
    block[20:22] = [0x4640, 0xE6AE]   # 0x48 import 12345.67 kWh
    block[22:24] = [0x449A, 0x5000]   # 0x4A export 1234.5 kWh
    values = decode_response(meter, high, block).values
    assert values == {"power": 4.3215, "reactivePower": 0.00025, "powerFactor": 0.987,
                      "frequency": 49.98, "energyImport": Decimal("12345.67"),
                      "energyExport": Decimal("1234.5")}
    assert isinstance(values["energyImport"], Decimal)
    assert builtin_models()["meter"].validate_properties(values)


def test_xymd02_answer_from_its_manual() -> None:
    # "01 04 00 01 00 02" answered "01 04 04 01 31 02 22": 30.5 degC, 54.6 %
    sensor = shipped_map("xymd02_temperature_humidity")
    (request,) = plan_reads(sensor)
    assert (request.function_code, request.address, request.count) == (4, 1, 2)
    answer = bytes.fromhex("01310222")
    registers = [int.from_bytes(answer[i:i + 2], "big") for i in (0, 2)]
    assert decode_response(sensor, request, registers).values == {
        "temperature": 30.5, "humidity": 54.6}
    assert decode_response(sensor, request, [0xFF33, 0x0222]).values["temperature"] == -20.5


def test_water_parking_lock_relay_and_storage_blocks() -> None:
    water = shipped_map("water_immersion")
    (request,) = plan_reads(water)
    assert decode_response(water, request, [1]).values == {"water": True}
    assert decode_response(water, request, [0]).values == {"water": False}
    lock = shipped_map("parking_lock")
    (request,) = plan_reads(lock)
    assert decode_response(lock, request, [1, 0, 87, 0]).values == {
        "position": "raised", "occupied": False, "battery": 87.0, "alarm": "none"}
    relay = shipped_map("cabinet_relay")
    coil, discrete = plan_reads(relay)
    assert (coil.function_code, discrete.function_code) == (1, 2)
    assert decode_response(relay, coil, [True] + [False] * 7).values == {"commanded": True}
    assert decode_response(relay, discrete, [False] * 8).values == {"closed": False}
    battery = shipped_map("victron_gx_battery")
    assert battery.default_device_id == 100
    (request,) = plan_reads(battery)
    assert (request.address, request.count) == (840, 5)
    # 52.3 V, +12.5 A charging, +650 W charging, 81 %, state 1 (charging)
    values = decode_response(battery, request, [523, 125, 650, 81, 1]).values
    assert values == {"voltage": 52.3, "current": -12.5, "power": -0.65, "soc": 81.0,
                      "state": "charging"}
    # discharging at 1.2 kW: Victron sends -1200 W (0xFB50)
    assert decode_response(battery, request, [523, 0xFFE8, 0xFB50, 80, 2]).values["power"] \
        == 1.2
    assert builtin_models()["storage"].validate_properties(values)
