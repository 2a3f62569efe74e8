"""Gateway -> charger calls end to end: cloud service call -> real Mosquitto -> gateway ->
WebSocket -> simulated charger, and back.

* One CSMS call in flight per charger: concurrent service calls reach the charger one at a time
  (asserted on the charger's side of the wire: no CALL arrives before the previous one was
  answered), a call whose deadline passes while it waits in the queue is answered with an error
  and never sent, a charger that never answers costs that call a timeout and the next queued
  call goes on, a charger whose connection is cut gets 503 for the call in flight and the queued
  ones at once (not at their deadlines).
* Every service of the coverage table, both versions, with what the charger received.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.typing import Subprotocol

from bridges.ocpp import OcppVersion
from bridges.ocpp.services import SERVICE_ACTIONS
from cloud.service import CloudService
from edge.adapters.ocpp import OcppAdapter, OcppConfig
from edge.runtime import EdgeGateway
from sim.ocpp import OcppChargePointSim, SimConfig
from sim.ocpp.wirecheck import WireFrame
from tests.support.mosquitto import Mosquitto
from tests.support.net import eventually
from tests.support.ocpp import GW, ocpp_site, wire_checked  # noqa: F401 (autouse fixture)
from thingmodels import Envelope, Topic
from thingmodels.ids import now_ms
from thingmodels.topics import Kind

CHARGERS = {"Q16": OcppVersion.V16, "Q201": OcppVersion.V201}


@pytest.fixture
async def site(mosquitto: Mosquitto, tmp_path: Path
               ) -> AsyncIterator[tuple[CloudService, EdgeGateway, OcppAdapter]]:
    async with ocpp_site(mosquitto, tmp_path, "e2e-calls", CHARGERS, OcppConfig(
            port=0, heartbeat_interval=60, call_timeout=10)) as s:
        yield s.cloud, s.gateway, s.adapter


def station(adapter: OcppAdapter, cp: str, **kw: Any) -> OcppChargePointSim:
    return OcppChargePointSim(SimConfig(
        charge_point_id=cp, url=f"ws://127.0.0.1:{adapter.port}/ocpp", version=CHARGERS[cp],
        password=f"{cp}-secret", step_delay_s=0.05, seed=1, wire_log=True, **kw))


def csms_calls(log: list[WireFrame]) -> list[tuple[float, str, str]]:
    """(arrival, message id, action) of every CALL the charger received from the gateway."""
    out = []
    for entry in list(log):
        frame = entry.frame()
        if entry.direction == "in" and frame is not None and frame[0] == 2:
            out.append((entry.at, str(frame[1]), str(frame[2])))
    return out


def assert_one_in_flight(log: list[WireFrame]) -> int:
    """No CALL from the gateway arrives while an earlier one is unanswered; returns how many
    CALLs arrived."""
    outstanding: tuple[str, str] | None = None
    count = 0
    for entry in list(log):
        frame = entry.frame()
        if frame is None:
            continue
        if entry.direction == "in" and frame[0] == 2:
            assert outstanding is None, (
                f"{frame[2]} ({frame[1]}) arrived while {outstanding[1]} ({outstanding[0]}) "
                "was not answered yet")
            outstanding = (str(frame[1]), str(frame[2]))
            count += 1
        elif entry.direction == "out" and frame[0] in (3, 4) and outstanding is not None \
                and frame[1] == outstanding[0]:
            outstanding = None
    return count


def config_keys(cp: str) -> list[dict[str, str]]:
    if CHARGERS[cp] is OcppVersion.V16:
        return [{"key": "HeartbeatInterval"}]
    return [{"key": "OCPPCommCtrlr.HeartbeatInterval"}]


# -- one call in flight, queue, deadlines ----------------------------------------------------


@pytest.mark.mosquitto
@pytest.mark.parametrize("cp", sorted(CHARGERS))
async def test_concurrent_calls_reach_the_charger_one_at_a_time(
        site: tuple[CloudService, EdgeGateway, OcppAdapter], cp: str) -> None:
    cloud, _, adapter = site
    async with station(adapter, cp, answer_delay_s=0.4) as sim:
        await sim.wait_booted()
        consumer = cloud.consumer
        replies: list[Envelope] = list(await asyncio.gather(
            consumer.call(GW, "charger", cp, "getConfiguration", {"keys": config_keys(cp)},
                          timeout=20),
            consumer.call(GW, "charger", cp, "dataTransfer",
                          {"vendorId": "VoltmeshSim", "messageId": "q", "data": "1"}, timeout=20),
            consumer.call(GW, "connector", f"{cp}-1", "changeAvailability", {"available": True},
                          timeout=20),
            consumer.call(GW, "charger", cp, "triggerMessage", {"message": "heartbeat"},
                          timeout=20),
            consumer.call(GW, "charger", cp, "dataTransfer",
                          {"vendorId": "VoltmeshSim", "messageId": "q", "data": "2"}, timeout=20),
        ))
        assert [r.code for r in replies] == [0] * 5, [(r.code, r.msg) for r in replies]
        assert replies[1].p == {"status": "Accepted", "data": "1"}
        assert replies[4].p == {"status": "Accepted", "data": "2"}
        assert replies[2].p is not None and replies[2].p["accepted"] is True
        await eventually(lambda: len(csms_calls(sim.wire_log)) == 5)
        assert assert_one_in_flight(sim.wire_log) == 5


@pytest.mark.mosquitto
@pytest.mark.parametrize("cp", sorted(CHARGERS))
async def test_a_call_whose_deadline_passes_in_the_queue_is_never_sent(
        site: tuple[CloudService, EdgeGateway, OcppAdapter], cp: str) -> None:
    cloud, gateway, adapter = site
    async with station(adapter, cp, answer_delay_s=3.0) as sim:
        await sim.wait_booted()
        consumer = cloud.consumer
        slow = asyncio.create_task(consumer.call(
            GW, "charger", cp, "dataTransfer", {"vendorId": "VoltmeshSim", "data": "slow"},
            timeout=20))
        await eventually(lambda: [c for c in csms_calls(sim.wire_log) if c[2] == "DataTransfer"])
        # queued behind the slow one (answered in 3 s); its own deadline is 1 s away
        expired = await consumer.call(GW, "charger", cp, "getConfiguration",
                                      {"keys": config_keys(cp)}, timeout=20,
                                      deadline_ms=now_ms() + 1000)
        assert not slow.done(), "the expired call was answered only after the one ahead of it"
        assert expired.code == 504, (expired.code, expired.msg)
        assert expired.msg is not None and "deadline" in expired.msg, expired.msg
        first = await slow
        assert first.code == 0 and first.p == {"status": "Accepted", "data": "slow"}, first
        # the charger is free again: a new call goes through, and the expired one never came
        again = await consumer.call(GW, "charger", cp, "getConfiguration",
                                    {"keys": config_keys(cp)}, timeout=20)
        assert again.code == 0 and again.p is not None and len(again.p["values"]) == 1, again
    actions = [action for _, _, action in csms_calls(sim.wire_log)]
    assert actions == ["DataTransfer", "GetConfiguration" if cp == "Q16" else "GetVariables"]
    assert [name for name, _ in sim.calls_received] == actions
    assert gateway.ctx.stats.counters["ocpp_calls_expired_in_queue"] == 1


@pytest.mark.mosquitto
@pytest.mark.parametrize("cp", sorted(CHARGERS))
async def test_a_charger_that_never_answers_times_out_and_the_queue_goes_on(
        site: tuple[CloudService, EdgeGateway, OcppAdapter], cp: str) -> None:
    cloud, gateway, adapter = site
    async with station(adapter, cp, unanswered_actions=frozenset({"TriggerMessage"})) as sim:
        await sim.wait_booted()
        consumer = cloud.consumer
        hung = asyncio.create_task(consumer.call(
            GW, "charger", cp, "triggerMessage", {"message": "heartbeat"}, timeout=20,
            deadline_ms=now_ms() + 3000))
        await eventually(lambda: [c for c in csms_calls(sim.wire_log)
                                  if c[2] == "TriggerMessage"])
        queued = asyncio.create_task(consumer.call(
            GW, "charger", cp, "getConfiguration", {"keys": config_keys(cp)}, timeout=20))
        timed_out = await hung
        assert timed_out.code == 504, (timed_out.code, timed_out.msg)
        assert timed_out.msg is not None and "did not answer" in timed_out.msg, timed_out.msg
        answered = await queued
        assert answered.code == 0 and answered.p is not None, answered
        key = config_keys(cp)[0]["key"]
        assert answered.p["values"] == {key: "60"}, answered.p
    calls = csms_calls(sim.wire_log)
    assert [action for _, _, action in calls] == [
        "TriggerMessage", "GetConfiguration" if cp == "Q16" else "GetVariables"]
    # the queued call waited for the timeout (a lower bound: cannot flake on a slow machine)
    assert calls[1][0] - calls[0][0] >= 2.5, calls
    # the trigger was never answered on the wire; nothing else was sent meanwhile
    answered_ids = {f.frame()[1] for f in sim.wire_log  # type: ignore[index]
                    if f.direction == "out" and f.frame() is not None
                    and f.frame()[0] in (3, 4)}  # type: ignore[index]
    assert calls[0][1] not in answered_ids and calls[1][1] in answered_ids
    assert gateway.ctx.stats.counters["svc_error_504"] == 1


def queued_calls(adapter: OcppAdapter, cp: str) -> int:
    """CSMS calls waiting at the gateway behind the one in flight (the lock's waiters)."""
    conn = adapter.connections.get(cp)
    # asyncio.Lock has no public count of its waiters
    waiters = conn.call_lock._waiters if conn is not None else None
    return len(waiters or ())


@pytest.mark.mosquitto
@pytest.mark.parametrize("cp", sorted(CHARGERS))
async def test_a_charger_that_disconnects_fails_the_call_in_flight_and_the_queued_ones_at_once(
        site: tuple[CloudService, EdgeGateway, OcppAdapter], cp: str) -> None:
    """A charger that never answers a call, two more calls queued behind it, then its TCP
    connection is cut: all three are answered 503 when the gateway sees the link go, not at
    their deadlines (60 s) nor at the call timeout (10 s); the queued ones are never sent."""
    cloud, gateway, adapter = site
    async with station(adapter, cp, unanswered_actions=frozenset({"TriggerMessage"})) as sim:
        await sim.wait_booted()
        consumer = cloud.consumer
        deadline = now_ms() + 60_000
        hung = asyncio.create_task(consumer.call(
            GW, "charger", cp, "triggerMessage", {"message": "heartbeat"}, timeout=70,
            deadline_ms=deadline))
        await eventually(lambda: [c for c in csms_calls(sim.wire_log)
                                  if c[2] == "TriggerMessage"])
        queued = [
            asyncio.create_task(consumer.call(
                GW, "charger", cp, "getConfiguration", {"keys": config_keys(cp)}, timeout=70,
                deadline_ms=deadline)),
            asyncio.create_task(consumer.call(
                GW, "charger", cp, "dataTransfer", {"vendorId": "VoltmeshSim", "data": "q"},
                timeout=70, deadline_ms=deadline)),
        ]
        await eventually(lambda: queued_calls(adapter, cp) == 2)
        assert not hung.done() and not any(q.done() for q in queued)
        cut = asyncio.get_running_loop().time()
        sim.cut_link(down_s=60)  # TCP aborted; the charger stays away
        replies = await asyncio.wait_for(asyncio.gather(hung, *queued), 30)
        elapsed = asyncio.get_running_loop().time() - cut
    assert [r.code for r in replies] == [503] * 3, [(r.code, r.msg) for r in replies]
    # well before the call timeout (10 s) that a charger that stays connected would cost
    assert elapsed < 8, elapsed
    counters = gateway.ctx.stats.counters
    assert counters["ocpp_call_timeouts"] == 0 and counters["ocpp_calls_expired_in_queue"] == 0
    assert counters["svc_error_503"] == 3
    # only the first reached the charger; the queued ones were never sent
    assert [action for _, _, action in csms_calls(sim.wire_log)] == ["TriggerMessage"]


@pytest.mark.mosquitto
async def test_a_broken_answer_fails_the_call_at_once_and_a_late_one_is_ignored(
        site: tuple[CloudService, EdgeGateway, OcppAdapter]) -> None:
    """A raw 1.6 charger on the wire: an answer that breaks the response schema fails the call
    with 409 at once (not at its deadline); an answer that comes after the call timed out is
    dropped and counted; neither gets anything back (a CALLERROR never answers a CALLRESULT)."""
    cloud, gateway, adapter = site
    auth = {"Authorization": "Basic " + base64.b64encode(b"Q16:Q16-secret").decode()}
    async with websockets.connect(f"ws://127.0.0.1:{adapter.port}/ocpp/Q16",
                                  subprotocols=[Subprotocol("ocpp1.6")],
                                  additional_headers=auth) as ws:
        await eventually(lambda: "Q16" in adapter.connections)
        keys = {"keys": [{"key": "HeartbeatInterval"}]}
        call = asyncio.create_task(cloud.consumer.call(GW, "charger", "Q16", "getConfiguration",
                                                       keys, timeout=20))
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert frame[:3] == [2, frame[1], "GetConfiguration"], frame
        await ws.send(json.dumps([3, frame[1], {"configurationKey": "not a list"}]))
        broken = await call
        assert broken.code == 409 and broken.msg is not None, broken
        assert "TypeConstraintViolation" in broken.msg, broken.msg
        late = asyncio.create_task(cloud.consumer.call(
            GW, "charger", "Q16", "getConfiguration", keys, timeout=20,
            deadline_ms=now_ms() + 1500))
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        timed_out = await late
        assert timed_out.code == 504, timed_out
        await ws.send(json.dumps([3, frame[1], {"configurationKey": []}]))  # too late
        await eventually(lambda: gateway.ctx.stats.counters["ocpp_unsolicited_results"] == 1)
        with pytest.raises(TimeoutError):  # nothing comes back for either answer
            await asyncio.wait_for(ws.recv(), 1.0)
        # and the charger is still usable
        again = asyncio.create_task(cloud.consumer.call(GW, "charger", "Q16", "getConfiguration",
                                                        keys, timeout=20))
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        await ws.send(json.dumps([3, frame[1], {"configurationKey": [
            {"key": "HeartbeatInterval", "readonly": False, "value": "60"}]}]))
        ok = await again
        assert ok.code == 0 and ok.p == {"values": {"HeartbeatInterval": "60"}}, ok


# -- every service of the coverage table ---------------------------------------------------


def _profile(version: OcppVersion) -> dict[str, Any]:
    period = [{"startPeriod": 0, "limit": 11000}]
    if version is OcppVersion.V16:
        return {"chargingProfileId": 7, "stackLevel": 0,
                "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Relative",
                "chargingSchedule": {"chargingRateUnit": "W", "chargingSchedulePeriod": period}}
    return {"id": 7, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": [{"id": 1, "chargingRateUnit": "W",
                                  "chargingSchedulePeriod": period}]}


@pytest.mark.mosquitto
@pytest.mark.parametrize("cp", sorted(CHARGERS))
async def test_every_service_through_the_gateway(
        site: tuple[CloudService, EdgeGateway, OcppAdapter], cp: str) -> None:
    """Each service of the coverage table (docs/protocols/ocpp.md) as a cloud service call
    through Mosquitto and the gateway: the reply, the OCPP call the charger received, and
    what it did with it."""
    cloud, gateway, adapter = site
    v16 = CHARGERS[cp] is OcppVersion.V16
    connector = f"{cp}-1"
    seen: list[tuple[str, str]] = []
    uplink: list[tuple[Topic, Envelope]] = []

    async def track(topic: Topic, env: Envelope) -> None:
        uplink.append((topic, env))

    cloud.consumer.add_handler("track-services", track)

    def events(name: str) -> list[dict[str, Any]]:
        return [dict(e.p or {}) for t, e in uplink if t.device == cp and t.name == name]

    def connector_samples() -> list[dict[str, Any]]:
        return [s.p for t, e in uplink if t.device == connector and t.kind is Kind.PROP
                for s in e.samples()]

    async def svc(product: str, service: str, params: dict[str, Any], action16: str,
                  action201: str) -> dict[str, Any]:
        """Call a service, check the reply is a success and exactly one CALL of the version's
        action reached the charger for it; returns the reply's output and the call's kwargs
        as the charger's library handed them over."""
        device = cp if product == "charger" else connector
        before = len(sim.calls_received)
        reply = await cloud.consumer.call(GW, product, device, service, params, timeout=20)
        assert reply.code == 0, (service, reply.code, reply.msg)
        got = sim.calls_received[before:]
        action = action16 if v16 else action201
        assert [name for name, _ in got] == [action], (service, got)
        seen.append((f"{product}.{service}", action))
        out = dict(reply.p or {})
        out["_received"] = got[0][1]
        return out

    async with station(adapter, cp, meter_interval_s=0.3) as sim:
        await sim.wait_booted()
        conn = sim.connectors[1]

        # remote start / stop
        out = await svc("connector", "remoteStart", {"idTag": "APPUSER1"},
                        "RemoteStartTransaction", "RequestStartTransaction")
        assert out["accepted"] is True
        if v16:
            assert out["_received"] == {"id_tag": "APPUSER1", "connector_id": 1}
        else:
            assert out["_received"]["id_token"]["id_token"] == "APPUSER1"
            assert out["_received"]["evse_id"] == 1 and out["sessionId"]
        record = await eventually(lambda: conn.session is not None and
                                  conn.session.record.session_id and conn.session.record)
        await eventually(lambda: adapter.connections[cp].translator.open_session(connector))
        out = await svc("connector", "remoteStop", {}, "RemoteStopTransaction",
                        "RequestStopTransaction")
        assert out["accepted"] is True
        expected_tx: Any = int(record.session_id) if v16 else record.session_id
        assert out["_received"] == {"transaction_id": expected_tx}
        await sim.wait_session_ended(record)
        await eventually(lambda: conn.status == "Available")
        # a stop of an idle connector: YKC's answer ("not charging"), no call to the charger
        await eventually(lambda: adapter.connections[cp].translator.open_session(connector)
                         is None)
        before = len(sim.calls_received)
        idle = await cloud.consumer.call(GW, "connector", connector, "remoteStop", {},
                                         timeout=20)
        assert idle.code == 0 and idle.p is not None and idle.p["accepted"] is False
        assert "not charging" in idle.p["reason"] and sim.calls_received[before:] == []

        # configuration
        key = "MeterValueSampleInterval" if v16 else "SampledDataCtrlr.TxUpdatedInterval"
        out = await svc("charger", "setConfiguration", {"key": key, "value": "15"},
                        "ChangeConfiguration", "SetVariables")
        assert out["accepted"] is True and out["status"] == "Accepted"
        if v16:
            assert out["_received"] == {"key": key, "value": "15"}
        else:
            assert out["_received"]["set_variable_data"][0]["attribute_value"] == "15"
        assert sim.meter_interval == 15.0
        unknown = "NoSuchKey" if v16 else "NoSuch.Variable"
        out = await svc("charger", "getConfiguration",
                        {"keys": [{"key": key}, {"key": unknown}]},
                        "GetConfiguration", "GetVariables")
        assert out["values"] == {key: "15", unknown: None}, out

        # trigger message, realtime read
        out = await svc("charger", "triggerMessage", {"message": "status", "connector": 1},
                        "TriggerMessage", "TriggerMessage")
        assert out["accepted"] is True and out["status"] == "Accepted"
        assert out["_received"]["requested_message"] == "StatusNotification"
        await eventually(lambda: [p for p in connector_samples() if "status" in p])
        before = len(connector_samples())
        out = await svc("connector", "readRealtime", {}, "TriggerMessage", "TriggerMessage")
        assert out == {"accepted": True, "_received": out["_received"]}
        assert out["_received"]["requested_message"] == "MeterValues"
        # the triggered MeterValues reach the cloud as connector properties
        await eventually(lambda: [p for p in connector_samples()[before:] if "meterEnergy" in p])

        # availability
        out = await svc("connector", "changeAvailability", {"available": False},
                        "ChangeAvailability", "ChangeAvailability")
        assert out["accepted"] is True and out["scheduled"] is False
        assert not conn.operative
        await svc("connector", "changeAvailability", {"available": True},
                  "ChangeAvailability", "ChangeAvailability")
        assert sim.connectors[1].operative

        # reservations
        expires = now_ms() + 3_600_000
        out = await svc("connector", "reserveNow",
                        {"reservationId": 42, "idTag": "RESERVER", "expiresAt": expires},
                        "ReserveNow", "ReserveNow")
        assert out["accepted"] is True, out
        assert conn.reservation is not None and conn.reservation.reservation_id == 42
        assert conn.reservation.id_tag == "RESERVER"
        assert abs(conn.reservation.expires_ms - expires) < 1000
        out = await svc("connector", "cancelReservation", {"reservationId": 42},
                        "CancelReservation", "CancelReservation")
        assert out["accepted"] is True and sim.connectors[1].reservation is None

        # charging profiles
        out = await svc("connector", "setChargingProfile",
                        {"profile": _profile(CHARGERS[cp])},
                        "SetChargingProfile", "SetChargingProfile")
        assert out["accepted"] is True, out
        assert list(conn.profiles) == [7] and conn.physics.limit_w == 11000
        out = await svc("connector", "clearChargingProfile", {"profileId": 7},
                        "ClearChargingProfile", "ClearChargingProfile")
        assert out["accepted"] is True and conn.profiles == {}
        assert sim.connectors[1].physics.limit_w is None
        await svc("connector", "setChargingProfile", {"profile": _profile(CHARGERS[cp])},
                  "SetChargingProfile", "SetChargingProfile")
        out = await svc("connector", "clearChargingProfile", {},  # all of the connector's
                        "ClearChargingProfile", "ClearChargingProfile")
        assert out["accepted"] is True and sim.connectors[1].profiles == {}

        # unlock
        out = await svc("connector", "unlock", {}, "UnlockConnector", "UnlockConnector")
        assert out["accepted"] is True
        assert out["_received"] == ({"connector_id": 1} if v16
                                    else {"evse_id": 1, "connector_id": 1})

        # local list
        out = await svc("charger", "sendLocalList", {
            "version": 3, "full": True, "entries": [
                {"idTag": "CARD-A", "status": "accepted"},
                {"idTag": "CARD-B", "status": "blocked"}]},
            "SendLocalList", "SendLocalList")
        assert out["accepted"] is True
        assert sim.local_list == {"CARD-A": "Accepted", "CARD-B": "Blocked"}
        assert sim.local_list_version == 3
        await svc("charger", "sendLocalList", {
            "version": 4, "full": False, "entries": [
                {"idTag": "CARD-B", "status": "deleted"},
                {"idTag": "CARD-C", "status": "accepted", "expiresAt": now_ms() + 86_400_000}]},
            "SendLocalList", "SendLocalList")
        assert sim.local_list == {"CARD-A": "Accepted", "CARD-C": "Accepted"}
        assert sim.local_list_version == 4

        # data transfer
        out = await svc("charger", "dataTransfer",
                        {"vendorId": "VoltmeshSim", "messageId": "ping", "data": "hello"},
                        "DataTransfer", "DataTransfer")
        assert out["status"] == "Accepted" and out["data"] == "hello"
        assert out["_received"] == {"vendor_id": "VoltmeshSim", "message_id": "ping"}
        out = await svc("charger", "dataTransfer", {"vendorId": "Other"},
                        "DataTransfer", "DataTransfer")
        assert out["status"] == "UnknownVendorId"

        # firmware, diagnostics / log upload
        out = await svc("charger", "updateFirmware",
                        {"location": "https://fw.example/sim-2.0.bin", "retrieveAt": now_ms()},
                        "UpdateFirmware", "UpdateFirmware")
        assert out["accepted"] is True
        assert out["_received"]["location"] == "https://fw.example/sim-2.0.bin"
        steps = ["Downloading", "Downloaded", "Installing", "Installed"]
        await eventually(lambda: [e["status"] for e in events("firmwareStatus")] == steps)
        if not v16:  # the charger reports against the request id the gateway gave it
            assert {e["requestId"] for e in events("firmwareStatus")} == {
                out["_received"]["request_id"]}
        out = await svc("charger", "getDiagnostics", {"location": "ftp://logs.example/up",
                                                      "start": now_ms() - 86_400_000,
                                                      "stop": now_ms()},
                        "GetDiagnostics", "GetLog")
        assert out["accepted"] is True
        assert out["fileName"] == (f"diagnostics-{cp}.log" if v16 else f"log-{cp}.tar.gz")
        await eventually(lambda: [e["status"] for e in events("diagnosticsStatus")] == [
            "Uploading", "Uploaded"])
        if not v16:
            assert {e["requestId"] for e in events("diagnosticsStatus")} == {
                out["_received"]["request_id"]}

        # reset: the charger boots again
        boots = sim.boot_count
        out = await svc("charger", "reset", {"type": "soft"}, "Reset", "Reset")
        assert out["accepted"] is True and out["status"] == "Accepted"
        assert out["_received"]["type"] == ("Soft" if v16 else "OnIdle")
        await eventually(lambda: sim.boot_count == boots + 1, timeout=20)
        # a thing-model service OCPP has no equivalent for: 501, nothing sent
        before = len(sim.calls_received)
        reply = await cloud.consumer.call(GW, "charger", cp, "setWorkParams",
                                          {"enabled": True, "maxPowerPercent": 50}, timeout=20)
        assert reply.code == 501, (reply.code, reply.msg)
        assert len(sim.calls_received) == before

    # the coverage table's services, all of them, each as the version's action
    version = CHARGERS[cp]
    assert dict(seen) == {name: actions[version] for name, actions in SERVICE_ACTIONS.items()}
    counters = gateway.ctx.stats.counters
    assert {k: n for k, n in counters.items() if n and (
        k in ("ocpp_handler_errors", "ocpp_unmappable", "malformed_frames")
        or k.startswith(("ocpp_frame_error", "ocpp_anomaly", "svc_error")))
    } == {"svc_error_501": 1}, counters
