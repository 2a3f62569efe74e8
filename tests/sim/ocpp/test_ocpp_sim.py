"""The OCPP charge-point simulator against a small CSMS built on the ``ocpp`` library.

The CSMS validates every call it receives against the official schemas (the ``ocpp``
library's default; checked below). Every frame the simulator sent is then decoded again,
strictly, with :func:`bridges.ocpp.decode_frame` (calls and the results of the CSMS's calls),
and replayed through :class:`bridges.ocpp.ChargePointTranslator`: the energy the bridge bills
must be the energy in the simulator's own ledger. Services are invoked through
:func:`bridges.ocpp.service_request` / :func:`service_output`, so the bridge's downlink
mapping is exercised against a charge point that validates too.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from http import HTTPStatus
from typing import Any

import pytest
from ocpp.charge_point import camel_to_snake_case, remove_nones, snake_to_camel_case
from ocpp.v16 import ChargePoint as Cp16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import ChargePoint as Cp201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201
from websockets.asyncio.server import ServerConnection, basic_auth, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from bridges.ocpp import (
    Call,
    CallError,
    CallResult,
    ChargePointTranslator,
    MessageKind,
    OcppVersion,
    Role,
    ThingMessage,
    decode_frame,
    service_output,
    service_request,
)
from bridges.ocpp.timestamps import parse_timestamp_ms
from sim.ocpp import (
    NotConnected,
    OcppChargePointSim,
    OcppFleet,
    Refused,
    SimConfig,
    fleet_configs,
)
from sim.ocpp.routing import on
from tests.support.net import eventually
from tests.support.ocpp import wire_checked  # noqa: F401 (autouse fixture)
from thingmodels import builtin_models
from thingmodels.ids import now_ms

V16 = OcppVersion.V16
V201 = OcppVersion.V201
PASSWORD = "s3cret-pw"
TIME_SCALE = 3600

pytestmark = pytest.mark.timeout(60)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Recorder:
    """The connection as the ``ocpp`` ChargePoint sees it, logging every frame both ways."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.log: list[tuple[str, str]] = []  # ("in" | "out", text)

    async def recv(self) -> str:
        text = await self.ws.recv()
        assert isinstance(text, str)
        self.log.append(("in", text))
        return text

    async def send(self, text: str) -> None:
        self.log.append(("out", text))
        await self.ws.send(text)


class Received:
    """What a CSMS handler was called with."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def add(self, action: str, kwargs: dict[str, Any]) -> None:
        self.calls.append((action, kwargs))

    def of(self, action: str) -> list[dict[str, Any]]:
        return [kw for name, kw in self.calls if name == action]


_tx_ids = itertools.count(1001)


class Csms16(Cp16):  # type: ignore[misc]
    """A 1.6 central system: accepts everything except the idTag BLOCKED."""

    def __init__(self, cp_id: str, connection: Recorder) -> None:
        super().__init__(cp_id, connection, response_timeout=10)
        self.got = Received()
        self.start_delay = 0.0

    @on(Action16.boot_notification)
    def on_boot(self, **kw: Any) -> Any:
        self.got.add("BootNotification", kw)
        return result16.BootNotification(current_time=_now(), interval=1, status="Accepted")

    @on(Action16.heartbeat)
    def on_heartbeat(self, **kw: Any) -> Any:
        self.got.add("Heartbeat", kw)
        return result16.Heartbeat(current_time=_now())

    @on(Action16.status_notification)
    def on_status(self, **kw: Any) -> Any:
        self.got.add("StatusNotification", kw)
        return result16.StatusNotification()

    @on(Action16.authorize)
    def on_authorize(self, id_tag: str, **kw: Any) -> Any:
        self.got.add("Authorize", {"id_tag": id_tag})
        status = "Blocked" if id_tag == "BLOCKED" else "Accepted"
        return result16.Authorize(id_tag_info={"status": status})

    @on(Action16.start_transaction)
    async def on_start(self, **kw: Any) -> Any:
        self.got.add("StartTransaction", kw)
        await asyncio.sleep(self.start_delay)
        return result16.StartTransaction(transaction_id=next(_tx_ids),
                                         id_tag_info={"status": "Accepted"})

    @on(Action16.meter_values)
    def on_meter_values(self, **kw: Any) -> Any:
        self.got.add("MeterValues", kw)
        return result16.MeterValues()

    @on(Action16.stop_transaction)
    def on_stop(self, **kw: Any) -> Any:
        self.got.add("StopTransaction", kw)
        return result16.StopTransaction(id_tag_info={"status": "Accepted"})

    @on(Action16.firmware_status_notification)
    def on_firmware(self, **kw: Any) -> Any:
        self.got.add("FirmwareStatusNotification", kw)
        return result16.FirmwareStatusNotification()

    @on(Action16.diagnostics_status_notification)
    def on_diagnostics(self, **kw: Any) -> Any:
        self.got.add("DiagnosticsStatusNotification", kw)
        return result16.DiagnosticsStatusNotification()


class Csms201(Cp201):  # type: ignore[misc]
    """A 2.0.1 CSMS: accepts everything except the idToken BLOCKED."""

    def __init__(self, cp_id: str, connection: Recorder) -> None:
        super().__init__(cp_id, connection, response_timeout=10)
        self.got = Received()
        self.start_delay = 0.0

    @on(Action201.boot_notification)
    def on_boot(self, **kw: Any) -> Any:
        self.got.add("BootNotification", kw)
        return result201.BootNotification(current_time=_now(), interval=1, status="Accepted")

    @on(Action201.heartbeat)
    def on_heartbeat(self, **kw: Any) -> Any:
        self.got.add("Heartbeat", kw)
        return result201.Heartbeat(current_time=_now())

    @on(Action201.status_notification)
    def on_status(self, **kw: Any) -> Any:
        self.got.add("StatusNotification", kw)
        return result201.StatusNotification()

    @on(Action201.authorize)
    def on_authorize(self, id_token: dict[str, Any], **kw: Any) -> Any:
        self.got.add("Authorize", {"id_token": id_token})
        status = "Blocked" if id_token["id_token"] == "BLOCKED" else "Accepted"
        return result201.Authorize(id_token_info={"status": status})

    @on(Action201.transaction_event)
    async def on_transaction_event(self, **kw: Any) -> Any:
        self.got.add("TransactionEvent", kw)
        if kw["event_type"] == "Started":
            await asyncio.sleep(self.start_delay)
        if kw.get("id_token") is not None:
            return result201.TransactionEvent(id_token_info={"status": "Accepted"})
        return result201.TransactionEvent()

    @on(Action201.meter_values)
    def on_meter_values(self, **kw: Any) -> Any:
        self.got.add("MeterValues", kw)
        return result201.MeterValues()

    @on(Action201.firmware_status_notification)
    def on_firmware(self, **kw: Any) -> Any:
        self.got.add("FirmwareStatusNotification", kw)
        return result201.FirmwareStatusNotification()

    @on(Action201.log_status_notification)
    def on_log_status(self, **kw: Any) -> Any:
        self.got.add("LogStatusNotification", kw)
        return result201.LogStatusNotification()


class CsmsServer:
    """Both versions on a free loopback port; one ``ocpp`` central system per connection."""

    def __init__(self, version: OcppVersion, *, auth: dict[str, str] | None = None) -> None:
        self.version = version
        self.auth = auth
        self.stations: dict[str, Any] = {}
        self.recorders: dict[str, list[Recorder]] = {}
        self.port = 0
        self.refuse = False
        self.start_delay = 0.0
        """How long the start of a transaction waits for its answer (a CSMS asking its
        cloud)."""
        self._auth: Callable[[ServerConnection, Request], Awaitable[Response | None]] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    async def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        cp_id = ws.request.path.rsplit("/", 1)[-1]
        assert ws.subprotocol == self.version.subprotocol
        if self.auth is not None:
            assert ws.username == cp_id
        recorder = Recorder(ws)
        cls = Csms16 if self.version is V16 else Csms201
        csms = cls(cp_id, recorder)
        csms.start_delay = self.start_delay
        # schema validation is on for every handler (the library default)
        assert all(not route["_skip_schema_validation"] for route in csms.route_map.values())
        previous = self.stations.get(cp_id)
        if previous is not None:
            csms.got = previous.got
        self.stations[cp_id] = csms
        self.recorders.setdefault(cp_id, []).append(recorder)
        try:
            await csms.start()
        except ConnectionClosed:
            pass

    async def process_request(self, connection: ServerConnection,
                              request: Request) -> Response | None:
        if self.refuse:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "maintenance\n")
        if self._auth is not None:
            return await self._auth(connection, request)
        return None

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[CsmsServer]:
        self._auth = basic_auth(credentials=list(self.auth.items())) if self.auth else None
        async with serve(self.handler, "127.0.0.1", 0,
                         subprotocols=[Subprotocol(self.version.subprotocol)],
                         process_request=self.process_request) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            yield self


@pytest.fixture(params=[V16, V201], ids=["ocpp16", "ocpp201"])
def version(request: pytest.FixtureRequest) -> OcppVersion:
    return OcppVersion(request.param)


def sim_config(server: CsmsServer, cp_id: str, **kw: Any) -> SimConfig:
    fields: dict[str, Any] = {
        "url": server.url, "version": server.version, "meter_interval_s": 0.05,
        "time_scale": TIME_SCALE, "seed": 7, "reconnect_min_s": 0.05, "reconnect_max_s": 0.2,
        "step_delay_s": 0.01, "response_timeout_s": 5, **kw}
    return SimConfig(charge_point_id=cp_id, **fields)


async def invoke(server: CsmsServer, cp_id: str, product: str, service: str,
                 params: dict[str, Any], device: str | None = None,
                 **kw: Any) -> dict[str, Any]:
    """A thing-model service call, through the bridge, answered by the simulator."""
    version = server.version
    request = service_request(version, product, service, params, charge_point_id=cp_id,
                              device=device or (cp_id if product == "charger" else f"{cp_id}-1"),
                              **kw)
    module = call16 if version is V16 else call201
    payload = getattr(module, request.action)(**camel_to_snake_case(request.payload))
    answer = await server.stations[cp_id].call(payload, suppress=False)
    camel = snake_to_camel_case(remove_nones(dataclasses.asdict(answer)))
    out = service_output(version, product, service, camel)
    return builtin_models()[product].validate_output(service, out)


def check_frames(server: CsmsServer, cp_id: str) -> dict[str, int]:
    """Decode every frame the simulator sent, strictly; count them by action."""
    counts: dict[str, int] = {}
    for recorder in server.recorders[cp_id]:
        pending: dict[str, str] = {}
        for direction, text in recorder.log:
            if direction == "out":
                out = json.loads(text)
                if out[0] == 2:
                    pending[out[1]] = out[2]
                continue
            frame = decode_frame(text, server.version, receiver=Role.CSMS, pending=pending)
            assert not isinstance(frame, CallError), frame
            if isinstance(frame, CallResult):
                assert frame.action is not None
                key = f"{frame.action}.conf"
            else:
                key = frame.action
            counts[key] = counts.get(key, 0) + 1
    return counts


def translate(server: CsmsServer, cp_id: str,
              allowed: frozenset[str] = frozenset()) -> list[ThingMessage]:
    """Replay the simulator's calls through the bridge (strict thing-model validation).

    The simulator runs energy 3600x faster than its clock, so the plausibility ceiling of the
    bridge is raised by as much (at real speed, 22 kW would be the ceiling).
    """
    translator = ChargePointTranslator(cp_id, server.version,
                                       max_power_kw=Decimal(22 * TIME_SCALE))
    models = builtin_models()
    out: list[ThingMessage] = []
    for recorder in server.recorders[cp_id]:
        answers = {json.loads(t)[1]: json.loads(t) for d, t in recorder.log if d == "out"}
        for direction, text in recorder.log:
            if direction != "in":
                continue
            frame = decode_frame(text, server.version, receiver=Role.CSMS)
            if not isinstance(frame, Call):
                continue
            tx = None
            if frame.action == "StartTransaction":
                tx = answers[frame.unique_id][2]["transactionId"]
            tr = translator.translate(frame, receive_ms=int(datetime.now(UTC).timestamp() * 1000),
                                      transaction_id=tx)
            assert not [a for a in tr.anomalies if a.code not in allowed], tr.anomalies
            for msg in tr.messages:
                if msg.kind is MessageKind.PROP:
                    models[msg.product].validate_properties(msg.params)
                else:
                    assert msg.name is not None
                    models[msg.product].validate_event(msg.name, msg.params)
            out.extend(tr.messages)
    return out


def _events(messages: list[ThingMessage], name: str) -> list[ThingMessage]:
    return [m for m in messages if m.kind is MessageKind.EVENT and m.name == name]


def _limit(sim: OcppChargePointSim) -> float | None:
    return sim.connectors[1].physics.limit_w


def _updates(server: CsmsServer, cp_id: str) -> int:
    got = server.stations[cp_id].got
    if server.version is V16:
        return len(got.of("MeterValues"))
    return sum(1 for kw in got.of("TransactionEvent") if kw["event_type"] == "Updated")


async def test_remote_start_meter_values_remote_stop(version: OcppVersion) -> None:
    cp_id = f"SIM-{version.src}"
    async with CsmsServer(version, auth={cp_id: PASSWORD}).serving() as srv:
        config = sim_config(srv, cp_id, password=PASSWORD, energy_unit="kWh")
        async with OcppChargePointSim(config) as sim:
            await sim.wait_booted()
            started = await invoke(srv, cp_id, "connector", "remoteStart", {"idTag": "TAG-1"},
                                   request_id=41)
            assert started["accepted"] is True
            record = await eventually(lambda: sim.active_session(1))
            await eventually(lambda: _updates(srv, cp_id) >= 3)
            assert record.session_id
            if version is V201:
                assert started["sessionId"] == record.session_id
                assert record.remote_start_id == 41
            stopped = await invoke(srv, cp_id, "connector", "remoteStop",
                                   {"sessionId": record.session_id})
            assert stopped == {"accepted": True}
            await sim.wait_session_ended(record)
            got = srv.stations[cp_id].got
            await eventually(lambda: any(kw["status" if version is V16 else "connector_status"]
                                         == "Available" for kw in got.of("StatusNotification")[2:]))
            await eventually(lambda: got.of("Heartbeat"), timeout=5)
            assert sim.errors == []

        assert record.stop_reason == "Remote"
        assert record.energy_wh is not None and record.energy_wh > 500
        assert 0 < record.max_power_w <= 22_000
        counts = check_frames(srv, cp_id)
        assert counts["BootNotification"] == 1 and counts["Heartbeat"] >= 1
        assert counts["RemoteStartTransaction.conf" if version is V16
                      else "RequestStartTransaction.conf"] == 1
        messages = translate(srv, cp_id)
        started_ev = _events(messages, "sessionStarted")
        updates = _events(messages, "sessionUpdated")
        ended = _events(messages, "sessionEnded")
        assert len(started_ev) == 1 and len(ended) == 1 and len(updates) >= 3
        assert started_ev[0].device == f"{cp_id}-1"
        assert started_ev[0].params["meterStart"] == Decimal(record.meter_start_wh).scaleb(-3)
        seqs = [m.params["seq"] for m in updates]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        energies = [m.params["energy"] for m in updates]
        assert energies == sorted(energies) and energies[-1] > 0
        assert ended[0].params["sessionId"] == record.session_id
        assert ended[0].params["energy"] == record.energy_kwh  # bridge bills the ledger exactly
        assert ended[0].params["reason"] == "Remote"


async def test_operations(version: OcppVersion) -> None:
    cp_id = f"OPS-{version.src}"
    async with CsmsServer(version).serving() as srv:
        async with OcppChargePointSim(sim_config(srv, cp_id, connectors=2)) as sim:
            await sim.wait_booted()
            got = srv.stations[cp_id].got
            heartbeat_key = ("HeartbeatInterval" if version is V16
                             else "OCPPCommCtrlr.HeartbeatInterval")
            values = await invoke(srv, cp_id, "charger", "getConfiguration",
                                  {"keys": [{"key": heartbeat_key}, {"key": "Nope.Nope"}]})
            assert values == {"values": {heartbeat_key: "1", "Nope.Nope": None}}
            assert (await invoke(srv, cp_id, "charger", "setConfiguration",
                                 {"key": heartbeat_key, "value": "30"}))["accepted"]
            assert sim.heartbeat_interval == 30
            assert not (await invoke(srv, cp_id, "charger", "setConfiguration",
                                     {"key": "Foo.Bar", "value": "1"}))["accepted"]

            statuses = len(got.of("StatusNotification"))
            assert (await invoke(srv, cp_id, "charger", "triggerMessage",
                                 {"message": "status", "connector": 2}))["accepted"]
            await eventually(lambda: len(got.of("StatusNotification")) > statuses)

            expires = int(datetime.now(UTC).timestamp() * 1000) + 600_000
            assert (await invoke(srv, cp_id, "connector", "reserveNow",
                                 {"reservationId": 5, "idTag": "RES", "expiresAt": expires},
                                 device=f"{cp_id}-2"))["accepted"]
            await eventually(lambda: sim.connectors[2].status == "Reserved")
            assert await invoke(srv, cp_id, "connector", "cancelReservation",
                                {"reservationId": 5}, device=f"{cp_id}-2") == {"accepted": True}
            assert await invoke(srv, cp_id, "connector", "cancelReservation",
                                {"reservationId": 5}, device=f"{cp_id}-2") == {"accepted": False}

            assert (await invoke(srv, cp_id, "connector", "changeAvailability",
                                 {"available": False}, device=f"{cp_id}-2"))["accepted"]
            await eventually(lambda: sim.connectors[2].status == "Unavailable")
            assert (await invoke(srv, cp_id, "connector", "changeAvailability",
                                 {"available": True}, device=f"{cp_id}-2"))["accepted"]

            profile: dict[str, Any]
            if version is V16:
                profile = {"chargingProfileId": 9, "stackLevel": 0,
                           "chargingProfilePurpose": "TxDefaultProfile",
                           "chargingProfileKind": "Absolute",
                           "chargingSchedule": {"chargingRateUnit": "W",
                                                "chargingSchedulePeriod": [
                                                    {"startPeriod": 0, "limit": 7400.0}]}}
            else:
                profile = {"id": 9, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
                           "chargingProfileKind": "Absolute",
                           "chargingSchedule": [{"id": 1, "chargingRateUnit": "W",
                                                 "chargingSchedulePeriod": [
                                                     {"startPeriod": 0, "limit": 7400.0}]}]}
            assert (await invoke(srv, cp_id, "connector", "setChargingProfile",
                                 {"profile": profile}))["accepted"]
            assert _limit(sim) == 7400.0
            assert await invoke(srv, cp_id, "connector", "clearChargingProfile",
                                {"profileId": 9}) == {"accepted": True}
            assert _limit(sim) is None

            assert (await invoke(srv, cp_id, "charger", "sendLocalList", {
                "version": 3, "full": True,
                "entries": [{"idTag": "A1", "status": "accepted"}]}))["accepted"]
            assert sim.local_list == {"A1": "Accepted"} and sim.local_list_version == 3

            assert await invoke(srv, cp_id, "charger", "dataTransfer",
                                {"vendorId": "VoltmeshSim", "data": "ping"}) == {
                "status": "Accepted", "data": "ping"}
            assert (await invoke(srv, cp_id, "charger", "dataTransfer",
                                 {"vendorId": "other"}))["status"] == "UnknownVendorId"

            assert (await invoke(srv, cp_id, "charger", "updateFirmware",
                                 {"location": "https://fw.example/2.bin"},
                                 now_ms=expires, request_id=11))["accepted"]
            await eventually(lambda: [kw["status"] for kw in
                                      got.of("FirmwareStatusNotification")][-1:] == ["Installed"])
            assert (await invoke(srv, cp_id, "charger", "getDiagnostics",
                                 {"location": "ftp://logs.example/"}, request_id=12))["accepted"]
            upload = "DiagnosticsStatusNotification" if version is V16 else "LogStatusNotification"
            await eventually(lambda: [kw["status"] for kw in got.of(upload)][-1:] == ["Uploaded"])

            assert (await invoke(srv, cp_id, "connector", "unlock", {}))["accepted"]
            meter_calls = len(got.of("MeterValues"))
            assert (await invoke(srv, cp_id, "connector", "readRealtime", {}))["accepted"]
            await eventually(lambda: len(got.of("MeterValues")) > meter_calls)

            assert (await invoke(srv, cp_id, "charger", "reset", {"type": "hard"}))["accepted"]
            await eventually(lambda: sim.boot_count == 2 and sim.online)
            if version is V201:
                assert got.of("BootNotification")[-1]["reason"] == "RemoteReset"
            assert sim.errors == []
        check_frames(srv, cp_id)
        translate(srv, cp_id)


async def test_local_start_and_stop_while_offline(version: OcppVersion) -> None:
    cp_id = f"OFF-{version.src}"
    async with CsmsServer(version).serving() as srv:
        async with OcppChargePointSim(sim_config(srv, cp_id)) as sim:
            await sim.wait_booted()
            record = await sim.start_session(1, "LOCAL-1")
            await eventually(lambda: _updates(srv, cp_id) >= 2)
            srv.refuse = True  # the CSMS drops the link and refuses reconnects for a while
            await srv.recorders[cp_id][-1].ws.close()
            await eventually(lambda: not sim.online)
            stop = asyncio.create_task(sim.stop_session(1, "Local"))
            await eventually(lambda: record.ended)
            # a new driver arrives while offline: the local authorization list lets them in
            with pytest.raises(NotConnected):
                await sim.start_session(1, "LIST-1")
            sim.local_list["LIST-1"] = "Accepted"
            start = asyncio.create_task(sim.start_session(1, "LIST-1"))
            await eventually(lambda: sim.active_session(1))
            await asyncio.sleep(0.3)  # a few refused reconnects
            assert not sim.online and sim.pending_transaction_messages() >= 2
            srv.refuse = False
            await sim.wait_booted()  # reconnected and booted again
            await asyncio.wait_for(stop, 5)
            second = await asyncio.wait_for(start, 5)
            await eventually(lambda: _updates(srv, cp_id) >= 4)
            await sim.stop_session(1)
            assert sim.pending_transaction_messages() == 0
            assert sim.connect_count == 2 and sim.errors == []
        got = srv.stations[cp_id].got
        if version is V201:
            events = got.of("TransactionEvent")
            ended = [kw for kw in events if kw["event_type"] == "Ended"]
            started = [kw for kw in events if kw["event_type"] == "Started"]
            assert [kw.get("offline") for kw in ended] == [True, None]
            assert [kw.get("offline") for kw in started] == [None, True]
        else:
            assert len(got.of("StopTransaction")) == 2
        check_frames(srv, cp_id)
        # an update in flight when the link dropped is sent again: flagged, deduplicated by key
        messages = translate(srv, cp_id, allowed=frozenset({"seq_out_of_order"}))
        ended_ev = _events(messages, "sessionEnded")
        assert [e.params["energy"] for e in ended_ev] == [record.energy_kwh, second.energy_kwh]
        assert [e.params["idTag"] for e in ended_ev] == ["LOCAL-1", "LIST-1"]


Sample = tuple[int, int, int, bool]
"""(connection index, the sample's timestamp ms, register Wh, ``offline`` flag)."""


def _periodic(server: CsmsServer, cp_id: str) -> list[Sample]:
    """Every periodic transaction meter value the CSMS received, in arrival order, from the
    frames on the wire (1.6 MeterValues with a transactionId, 2.0.1 TransactionEvent
    Updated)."""
    out: list[Sample] = []
    for index, recorder in enumerate(server.recorders[cp_id]):
        for direction, text in recorder.log:
            frame = json.loads(text)
            if direction != "in" or frame[0] != 2:
                continue
            action, payload = frame[2], frame[3]
            if (action == "MeterValues" and "transactionId" in payload) or (
                    action == "TransactionEvent" and payload["eventType"] == "Updated"):
                (value,) = payload["meterValue"]
                register = value["sampledValue"][0]
                assert register["measurand"] == "Energy.Active.Import.Register"
                out.append((index, parse_timestamp_ms(value["timestamp"]),
                            int(Decimal(str(register["value"]))),
                            bool(payload.get("offline", False))))
    return out


async def test_meter_values_made_offline_are_delivered_in_order(version: OcppVersion) -> None:
    """The link is cut mid-session: the station goes on metering, the meter values queue
    (1.6 transaction MeterValues too) and are delivered after the reconnect, in order, each
    once, with the time they were taken (2.0.1: ``offline: true``)."""
    cp_id = f"MTR-{version.src}"
    server = CsmsServer(version)
    server.start_delay = 0.35  # meter values are made before the start is answered
    async with server.serving() as srv:
        async with OcppChargePointSim(sim_config(srv, cp_id, meter_interval_s=0.1)) as sim:
            await sim.wait_booted()
            record = await sim.start_session(1)
            await eventually(lambda: _updates(srv, cp_id) >= 2
                             and sim.pending_transaction_messages() == 0, interval=0.01)
            cut_at = now_ms()  # nothing in flight: no message is sent twice
            sim.cut_link(down_s=1.5)
            await eventually(lambda: not sim.online)
            sent_before = _updates(srv, cp_id)
            await eventually(lambda: sim.pending_transaction_messages() >= 5)
            assert _updates(srv, cp_id) == sent_before and record.ended is False
            await sim.wait_booted()
            await eventually(lambda: sim.pending_transaction_messages() == 0)
            await sim.stop_session(1)
            assert sim.errors == [] and sim.tx_dropped == 0 and sim.connect_count == 2
        samples = _periodic(srv, cp_id)
        assert len(samples) == record.updates_sent  # each once
        times = [at for _, at, _, _ in samples]
        assert times == sorted(times) and len(set(times)) == len(times), times
        registers = [wh for _, _, wh, _ in samples]
        assert registers == sorted(registers)
        assert record.meter_stop_wh is not None and record.meter_stop_wh >= registers[-1]
        # made while the link was down, delivered on the second connection
        offline = [(conn, at) for conn, at, _, flag in samples if at > cut_at and conn == 1
                   and (flag or version is V16)]
        assert len(offline) >= 5, samples
        if version is V201:  # the flag is set exactly on those made offline
            assert [s for s in samples if s[3]] == [s for s in samples if s[1] > cut_at
                                                    and s[0] == 1][:len(offline)]
            seqs = [kw["seq_no"] for kw in srv.stations[cp_id].got.of("TransactionEvent")]
            assert seqs == list(range(len(seqs)))
        check_frames(srv, cp_id)
        ended = _events(translate(srv, cp_id), "sessionEnded")
        assert [e.params["energy"] for e in ended] == [record.energy_kwh]


async def test_a_full_transaction_queue_drops_meter_values_not_the_stop(
        version: OcppVersion) -> None:
    cp_id = f"BND-{version.src}"
    async with CsmsServer(version).serving() as srv:
        async with OcppChargePointSim(sim_config(srv, cp_id, tx_queue_max=4,
                                                 meter_interval_s=0.1)) as sim:
            await sim.wait_booted()
            record = await sim.start_session(1)
            await eventually(lambda: _updates(srv, cp_id) >= 1
                             and sim.pending_transaction_messages() == 0, interval=0.01)
            sim.cut_link(down_s=2.0)
            await eventually(lambda: not sim.online)
            online_updates = record.updates_sent
            await eventually(lambda: record.updates_sent >= online_updates + 10)
            assert sim.pending_transaction_messages() == 4  # bounded
            stop = asyncio.create_task(sim.stop_session(1, "Local"))
            await eventually(lambda: record.ended)
            await sim.wait_booted()
            await asyncio.wait_for(stop, 10)
            assert sim.pending_transaction_messages() == 0 and sim.errors == []
        samples = _periodic(srv, cp_id)
        replayed = [s for s in samples if s[0] == 1]
        made_offline = record.updates_sent - (len(samples) - len(replayed))
        assert len(replayed) == 3  # the newest, behind which the stop took the 4th place
        assert sim.tx_dropped == made_offline - len(replayed) >= 7
        times = [at for _, at, _, _ in samples]
        assert times == sorted(times)
        got = srv.stations[cp_id].got
        if version is V16:
            (stop_kw,) = got.of("StopTransaction")
            assert stop_kw["meter_stop"] == record.meter_stop_wh
        else:
            (end_kw,) = [kw for kw in got.of("TransactionEvent") if kw["event_type"] == "Ended"]
            assert end_kw["offline"] is True
        allowed = frozenset({"seq_gap"}) if version is V201 else frozenset()
        ended = _events(translate(srv, cp_id, allowed=allowed), "sessionEnded")
        assert [e.params["energy"] for e in ended] == [record.energy_kwh]


async def test_refused_authorization(version: OcppVersion) -> None:
    async with CsmsServer(version).serving() as srv:
        async with OcppChargePointSim(sim_config(srv, "REF-1")) as sim:
            await sim.wait_booted()
            with pytest.raises(Refused, match="Blocked"):
                await sim.start_session(1, "BLOCKED")
            assert sim.ledger.sessions == [] and sim.active_session(1) is None
        check_frames(srv, "REF-1")


async def test_fleet_boots_in_one_process() -> None:
    async with CsmsServer(V16).serving() as srv:
        configs = fleet_configs(5, prefix="FLT", url=srv.url, version=V16,
                                reconnect_min_s=0.05)
        async with OcppFleet(configs) as fleet:
            await fleet.wait_booted(timeout=10)
            assert fleet.online() == 5 and len(fleet) == 5
            assert fleet["FLT0003"].registration == "Accepted"
        assert sorted(srv.stations) == [f"FLT{n:04d}" for n in range(1, 6)]
        for cp_id in srv.stations:
            check_frames(srv, cp_id)


def test_config_is_strict() -> None:
    with pytest.raises(ValueError, match="extra"):
        SimConfig(charge_point_id="X", colour="red")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="chargePointId"):
        SimConfig(charge_point_id="bad/id")
    assert SimConfig(charge_point_id="CP 1", url="ws://h:1/ocpp/").endpoint == \
        "ws://h:1/ocpp/CP%201"
