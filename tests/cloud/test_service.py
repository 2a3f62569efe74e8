"""CloudService's own logic: the gateway -> tenant cache (alarms carry the tenant that owns the
device), presence transitions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import cloud.service as service_module
from tests.cloud.api_contract.conftest import make_cloud
from thingmodels import Envelope, Kind, Topic, now_ms


def test_a_gateway_without_tenant_gets_its_tenant_once_registered(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cloud = make_cloud(tmp_path)
    owners: dict[str, list[str]] = {}
    asked: list[str] = []

    def gateway_tenants(gw: str) -> list[str]:
        asked.append(gw)
        return owners.get(gw, [])

    monkeypatch.setattr(cloud.catalog, "gateway_tenants", gateway_tenants)
    clock = [1000.0]
    monkeypatch.setattr(service_module.time, "monotonic", lambda: clock[0])

    # an alarm before the gateway's chargers are registered: no tenant, asked once
    assert cloud._tenant_of("gw1", "connector", "c1") is None
    assert cloud._tenant_of("gw1", "connector", "c2") is None
    assert asked == ["gw1"]
    # its chargers are registered: within NO_TENANT_TTL the alarm finds the tenant
    owners["gw1"] = ["T-b", "T-a"]
    clock[0] += service_module.NO_TENANT_TTL + 0.1
    assert cloud._tenant_of("gw1", "connector", "c1") == "T-a"
    # found: cached for TENANT_TTL
    clock[0] += service_module.TENANT_TTL - 1
    assert cloud._tenant_of("gw1", "connector", "c1") == "T-a"
    assert asked == ["gw1", "gw1"]
    clock[0] += 2
    assert cloud._tenant_of("gw1", "connector", "c1") == "T-a"
    assert asked == ["gw1", "gw1", "gw1"]
    cloud.engine.dispose()


async def test_presence_rules_run_on_transitions_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cloud = make_cloud(tmp_path)
    dispatched: list[list[Any]] = []

    async def dispatch(actions: list[Any]) -> None:
        dispatched.append(actions)

    monkeypatch.setattr(cloud, "_dispatch", dispatch)
    topic = Topic("gw1", "charger", "P1", Kind.STATE)

    async def state(online: bool, session: int) -> None:
        await cloud._track(topic, Envelope.new(p={"online": online, "session": session},
                                               ts=now_ms()))

    await state(True, 1)  # offline (unknown) -> online: the device-offline alarm's clear
    await state(True, 2)  # a reconnect without going offline: nothing to evaluate
    await state(False, 1)  # an old session's late Will: stale, counted, nothing evaluated
    await state(False, 2)  # the Will of the current session: the raise
    kinds = [[a.rule for a in actions] for actions in dispatched]
    assert kinds == [["device-offline"], ["device-offline"]]
    assert cloud.metrics.stale_states._value.get() == 1
    cloud.engine.dispose()
