"""Shared fixtures: real brokers (Mosquitto from the shipped config, embedded amqtt)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.mosquitto import Mosquitto, mosquitto_binary
from tests.support.net import free_port
from tests.support.victoria import Victoria, victoria_binary
from voltmesh.broker import embedded_broker

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Cloud workers refuse the example JWT secret and need a first admin's password: the test
# session provides both the way an operator would, through the environment.
os.environ.setdefault("VOLTMESH_JWT_SECRET", "test-secret-" + "x" * 40)
os.environ.setdefault("VOLTMESH_ADMIN_PASSWORD", "test-admin-password-123")


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A Mosquitto with the project's config, ACL and test users, on a free port."""
    if mosquitto_binary() is None:
        if IN_CI:
            pytest.fail("mosquitto missing under CI=true: scripts/install-system-deps.sh failed")
        pytest.skip("mosquitto is not installed (run scripts/install-system-deps.sh)")
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[Victoria]:
    """A private VictoriaMetrics (InfluxDB v2 write API, Prometheus reads) on a free port."""
    if victoria_binary() is None:
        if IN_CI:
            pytest.fail("victoria-metrics missing under CI=true: scripts/install-system-deps.sh failed")
        pytest.skip("victoria-metrics is not installed (run scripts/install-system-deps.sh)")
    server = Victoria(tmp_path / "victoria")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def amqtt_broker() -> AsyncIterator[int]:
    """The embedded amqtt broker on a free port; yields the port."""
    port = free_port()
    async with embedded_broker("127.0.0.1", port):
        yield port
