"""Every shipped example configuration loads and validates."""

from pathlib import Path

from cloud.config import load_cloud_config
from edge.config import load_gateway_config
from edge.runtime import EdgeGateway

ROOT = Path(__file__).resolve().parents[2]


def test_gateway_example_builds_a_gateway(tmp_path: Path) -> None:
    config = load_gateway_config(ROOT / "config/gateway.example.yaml")
    assert config.gateway_id == "site1"
    assert config.outbox.event_max_age == 30 * 86400
    config.outbox.path = str(tmp_path / "o.db")
    gateway = EdgeGateway(config)
    assert [a.name for a in gateway.adapters] == ["mqtt_devices", "ykc", "ocpp"]
    gateway.outbox.close()


def test_cloud_example_resolves_sqlite_next_to_the_file() -> None:
    config = load_cloud_config(ROOT / "config/cloud.example.yaml")
    assert config.database_url == f"sqlite:///{(ROOT / 'var/voltmesh-cloud.db').resolve()}"
    assert config.mqtt.protocol == "auto"
