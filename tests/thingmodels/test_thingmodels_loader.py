from decimal import Decimal
from pathlib import Path

import pytest

from thingmodels import ModelFileError, PayloadError, UnknownModelError, builtin_models, load_model

PRODUCTS = {"gateway", "charger", "connector", "meter", "parking_lock", "camera", "env_sensor", "relay",
            "storage"}


def test_every_shipped_product_loads() -> None:
    models = builtin_models()
    assert set(models) >= PRODUCTS
    connector = models["connector"]
    assert connector.property("voltage").unit == "V"
    assert connector.service("remoteStart").timeout == 10.0
    tiers = connector.event("transactionRecord").params["tiers"]
    assert tiers.items is not None
    assert set(tiers.items["tier"].values or ()) == {"tip", "peak", "flat", "valley", "deep_valley"}


def test_unknown_key_is_refused_with_file_path_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "meter.yaml"
    bad.write_text("product: meter\nversion: 1\nproperties:\n  power:\n    type: float\n"
                   "    unti: kW\n")
    with pytest.raises(ModelFileError) as info:
        load_model(bad)
    err = info.value
    assert err.file == str(bad)
    assert err.path == "properties.power.unti"
    assert err.line == 6
    assert "unknown key 'unti'" in str(err)


def test_bad_type_and_product_mismatch(tmp_path: Path) -> None:
    bad = tmp_path / "meter.yaml"
    bad.write_text("product: meter\nversion: 1\nproperties:\n  power: {type: complex}\n")
    with pytest.raises(ModelFileError, match=r"meter.yaml:4: properties.power.type"):
        load_model(bad)
    other = tmp_path / "camera.yaml"
    other.write_text("product: meter\nversion: 1\n")
    with pytest.raises(ModelFileError, match="must match the file name"):
        load_model(other)
    enum = tmp_path / "storage.yaml"
    enum.write_text("product: storage\nversion: 1\nproperties:\n  state: {type: enum}\n")
    with pytest.raises(ModelFileError, match="enum needs 'values'"):
        load_model(enum)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "camera.yaml"
    bad.write_text("product: camera\nversion: 1\nproperties: [\n")
    with pytest.raises(ModelFileError) as info:
        load_model(bad)
    assert info.value.line is not None


def test_payload_validation_converts_decimals_and_refuses_bad_values() -> None:
    connector = builtin_models()["connector"]
    params = connector.validate_event("transactionRecord", {
        "sessionId": "T1", "startedAt": 1, "endedAt": 2, "meterStart": "10.5",
        "meterStop": "20.75", "energy": "10.25", "amount": "12.30",
        "tiers": [{"tier": "peak", "energy": "10.25", "amount": "12.30"}],
    })
    assert params["energy"] == Decimal("10.25")
    assert params["tiers"][0]["amount"] == Decimal("12.30")
    with pytest.raises(PayloadError, match=r"energy: a decimal must be sent as a string"):
        connector.validate_event("sessionUpdated", {"sessionId": "a", "seq": 1, "energy": 1.5})
    with pytest.raises(PayloadError, match="required but missing"):
        connector.validate_event("sessionEnded", {"sessionId": "a"})
    with pytest.raises(PayloadError, match="not one of"):
        connector.validate_properties({"status": "exploded"})
    with pytest.raises(PayloadError, match="above the maximum"):
        connector.validate_properties({"voltage": 2000.0})
    with pytest.raises(PayloadError, match="not declared"):
        connector.validate_properties({"colour": "red"})
    assert connector.validate_properties({"colour": "red"}, lenient=True) == {"colour": "red"}
    with pytest.raises(UnknownModelError):
        connector.validate_event("noSuchEvent", {})
    with pytest.raises(PayloadError, match="tiers\\[0\\].tier"):
        connector.validate_event("transactionRecord", {
            "sessionId": "T1", "startedAt": 1, "endedAt": 2, "meterStart": "1", "meterStop": "2",
            "energy": "1", "amount": "1", "tiers": [{"tier": "noon", "energy": "1", "amount": "1"}],
        })
