"""A charger replays the transaction messages it queued while its link was down (real
WebSocket -> gateway -> Mosquitto -> cloud).

* ``test_meter_values_made_offline_reach_the_cloud_once_each_in_order``: the simulator
  (``sim/ocpp``) charging, its TCP connection aborted for a few seconds while it keeps
  metering, then back: what it made offline arrives once each, in order, with its own times.
* ``test_a_replayed_backlog_keeps_the_newest_value_and_the_chargers_order``: raw wire frames, for
  what the simulator does not do: the session ends while offline and, back online, the charger
  reports its live state (status, a clock-aligned meter value with 0 W) *before* replaying the
  older backlog, so the newest value by the charger's time must win over the last to arrive.

What the gateway can and cannot do (docs/protocols/ocpp.md, "Offline replay and ordering"): a
charger sends one CALL at a time and waits for its CALLRESULT, so the gateway sees the backlog
in the charger's order, one message at a time, and answers each before the next arrives; it
cannot hold answers back to re-sort. It forwards in arrival order, each event and sample with
the charger's own time as ``ts`` (and the gateway's as ``rts``), session events with their
``seq`` (2.0.1 ``seqNo``; 1.6 counted per transaction). Consumers order by those: the cloud's
device registry keeps the value with the newest ``ts``, not the last to arrive.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.typing import Subprotocol

from bridges.ocpp import OcppVersion
from bridges.ocpp.timestamps import format_timestamp, parse_timestamp_ms
from cloud.service import CloudService
from edge.adapters.ocpp import OcppAdapter, OcppConfig
from edge.runtime import EdgeGateway
from sim.ocpp import OcppChargePointSim, SimConfig
from tests.support.mosquitto import Mosquitto
from tests.support.net import eventually
from tests.support.ocpp import GW, ocpp_site, wire_checked  # noqa: F401 (autouse fixture)
from thingmodels import Envelope, Topic
from thingmodels.ids import now_ms

CHARGERS = {"RP16": OcppVersion.V16, "RP201": OcppVersion.V201}

Site = tuple[CloudService, EdgeGateway, OcppAdapter, list[tuple[Topic, Envelope]]]


@pytest.fixture
async def site(mosquitto: Mosquitto, tmp_path: Path) -> AsyncIterator[Site]:
    async with ocpp_site(mosquitto, tmp_path, "e2e-replay", CHARGERS, OcppConfig(
            port=0, security_profile=0, authorize_timeout=0.5), passwords=False,
            cards=[{"idTag": "CARD-1", "status": "active"}]) as s:
        yield s.cloud, s.gateway, s.adapter, s.seen


class WireCharger:
    """A charger on a raw WebSocket: one CALL at a time, each waiting for its CALLRESULT."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.n = 0

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        self.n += 1
        unique_id = f"{action[:8]}-{self.n}"
        await self.ws.send(json.dumps([2, unique_id, action, payload]))
        answer = json.loads(await asyncio.wait_for(self.ws.recv(), 15))
        assert answer[:2] == [3, unique_id], answer
        result: dict[str, Any] = answer[2]
        return result


def sample(version: OcppVersion, at: int, wh: int, power: int | None, context: str
           ) -> dict[str, Any]:
    """A meterValue item: the energy register (and power)."""
    values: list[dict[str, Any]] = [{"measurand": "Energy.Active.Import.Register",
                                     "context": context}]
    if power is not None:
        values.append({"measurand": "Power.Active.Import", "context": context})
    for item, number in zip(values, (wh, power), strict=False):
        if version is OcppVersion.V16:
            item.update(value=str(number), unit="Wh" if "Energy" in item["measurand"] else "W")
        else:
            item.update(value=number, unitOfMeasure={
                "unit": "Wh" if "Energy" in item["measurand"] else "W"})
    return {"timestamp": format_timestamp(at), "sampledValue": values}


def backlog_16(tx: int, times: list[int]) -> list[tuple[str, dict[str, Any]]]:
    """What a 1.6 charger queued while offline: periodic meter values, then the stop."""
    return [
        ("MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": [
            sample(OcppVersion.V16, times[0], 10_200, 7000, "Sample.Periodic")]}),
        ("MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": [
            sample(OcppVersion.V16, times[1], 10_300, 7000, "Sample.Periodic")]}),
        ("StopTransaction", {"transactionId": tx, "meterStop": 10_400, "reason": "Local",
                             "idTag": "CARD-1", "timestamp": format_timestamp(times[2])}),
    ]


def tx_event(kind: str, seq: int, at: int, wh: int, power: int | None, *,
             offline: bool = False, **extra: Any) -> dict[str, Any]:
    context = {"Started": "Transaction.Begin", "Ended": "Transaction.End"}.get(
        kind, "Sample.Periodic")
    payload: dict[str, Any] = {
        "eventType": kind, "timestamp": format_timestamp(at), "seqNo": seq,
        "triggerReason": {"Started": "Authorized", "Ended": "StopAuthorized"}.get(
            kind, "MeterValuePeriodic"),
        "transactionInfo": {"transactionId": "TX-R1",
                            "chargingState": "EVConnected" if kind == "Ended" else "Charging"},
        "meterValue": [sample(OcppVersion.V201, at, wh, power, context)], **extra}
    if kind == "Ended":
        payload["transactionInfo"]["stoppedReason"] = "Local"
    if offline:
        payload["offline"] = True
    return payload


@pytest.mark.mosquitto
@pytest.mark.parametrize("cp", sorted(CHARGERS))
async def test_a_replayed_backlog_keeps_the_newest_value_and_the_chargers_order(
        site: Site, cp: str) -> None:
    cloud, gateway, adapter, seen = site
    version = CHARGERS[cp]
    v16 = version is OcppVersion.V16
    connector = f"{cp}-1"
    url = f"ws://127.0.0.1:{adapter.port}/ocpp/{cp}"
    sub = [Subprotocol(version.subprotocol)]
    boot = ({"chargePointVendor": "V", "chargePointModel": "M"} if v16 else
            {"reason": "PowerUp", "chargingStation": {"vendorName": "V", "model": "M"}})
    times: list[int] = []  # the charger's time of each session message

    # online: the session starts, one periodic meter value
    async with websockets.connect(url, subprotocols=sub) as ws:
        charger = WireCharger(ws)
        assert (await charger.call("BootNotification", boot))["status"] == "Accepted"
        times.append(now_ms())
        if v16:
            started = await charger.call("StartTransaction", {
                "connectorId": 1, "idTag": "CARD-1", "meterStart": 10_000,
                "timestamp": format_timestamp(times[0])})
            tx = int(started["transactionId"])
            times.append(now_ms())
            await charger.call("MeterValues", {"connectorId": 1, "transactionId": tx,
                                               "meterValue": [sample(
                                                   version, times[1], 10_100, 7000,
                                                   "Sample.Periodic")]})
        else:
            await charger.call("TransactionEvent", tx_event(
                "Started", 0, times[0], 10_000, None, evse={"id": 1, "connectorId": 1},
                idToken={"idToken": "CARD-1", "type": "ISO14443"}))
            times.append(now_ms())
            await charger.call("TransactionEvent", tx_event("Updated", 1, times[1],
                                                            10_100, 7000))
    # the link is down; the charger queues the rest of the session, which ends meanwhile.
    # Back online it reports its state now (live), then replays the backlog in its order.
    offline = now_ms()
    times += [offline + 100, offline + 200, offline + 300]
    await asyncio.sleep(0.6)
    back = now_ms()
    async with websockets.connect(url, subprotocols=sub) as ws:
        charger = WireCharger(ws)
        boot_again = boot if v16 else {**boot, "reason": "Unknown"}
        assert (await charger.call("BootNotification", boot_again))["status"] == "Accepted"
        now = now_ms()
        if v16:
            await charger.call("StatusNotification", {
                "connectorId": 1, "errorCode": "NoError", "status": "Available",
                "timestamp": format_timestamp(now)})
            await charger.call("MeterValues", {"connectorId": 1, "meterValue": [
                sample(version, now, 10_400, 0, "Sample.Clock")]})
            for action, payload in backlog_16(tx, times[2:]):
                await charger.call(action, payload)
        else:
            await charger.call("StatusNotification", {
                "timestamp": format_timestamp(now), "connectorStatus": "Available",
                "evseId": 1, "connectorId": 1})
            await charger.call("MeterValues", {"evseId": 1, "meterValue": [
                sample(version, now, 10_400, 0, "Sample.Clock")]})
            for seq, kind, wh in ((2, "Updated", 10_200), (3, "Updated", 10_300),
                                  (4, "Ended", 10_400)):
                await charger.call("TransactionEvent", tx_event(
                    kind, seq, times[seq], wh, None if kind == "Ended" else 7000,
                    offline=True))

    def session_events() -> list[tuple[Topic, Envelope]]:
        return [(t, e) for t, e in seen
                if t.device == connector and (t.name or "").startswith("session")]

    await eventually(lambda: [t for t, _ in session_events() if t.name == "sessionEnded"],
                     timeout=15)
    await asyncio.sleep(1.5)  # the batched telemetry (1 s) and any duplicate

    # session events: each once, in the charger's order; seq orders them; ts is the
    # charger's time (the backlog's: while offline), rts the gateway's (at the replay)
    events = session_events()
    names = [t.name for t, _ in events]
    assert names == ["sessionStarted"] + ["sessionUpdated"] * 3 + ["sessionEnded"], names
    seqs = [e.p["seq"] for _, e in events if e.p is not None]
    assert seqs == [0, 1, 2, 3, 4] == sorted(seqs)
    assert [e.ts for _, e in events] == times
    assert all(e.rts >= back > (e.ts or 0) for _, e in events[2:])
    gw_seqs = [e.seq or 0 for _, e in events]
    assert gw_seqs == sorted(gw_seqs) and len(set(gw_seqs)) == 5
    ended = events[-1][1].p
    assert ended is not None and Decimal(str(ended["energy"])) == Decimal("0.4")
    # a replay is not a clock problem
    assert not [t for t, _ in seen if t.name == "clockSkew"]
    counters = gateway.ctx.stats.counters
    assert not {k: n for k, n in counters.items() if n and k.startswith("ocpp_anomaly_seq")}

    # the registry holds the newest value of each property by the charger's time, although
    # the backlog's older samples arrived last (power 7 kW, 2.0.1 status "charging")
    await asyncio.to_thread(cloud.registry.flush)
    (row,) = [d for d in cloud.registry.list_devices(gateway=GW) if d["device"] == connector]
    props = row["properties"]
    assert props["status"] == "available", props
    assert Decimal(str(props["power"])) == 0, props
    assert Decimal(str(props["meterEnergy"])) == Decimal("10.4"), props
    assert props["sessionId"] == "" and Decimal(str(props["energy"])) == Decimal("0.4"), props
    # and the backlog did arrive after the live values (what an arrival-order view shows)
    arrived = [s.p.get("power") for t, e in seen if t.device == connector
               and t.kind.value == "prop" for s in e.samples() if "power" in s.p]
    assert [Decimal(str(p)) for p in arrived][-2:] == [7, 7], arrived


def periodic_times(sim: OcppChargePointSim) -> list[int]:
    """The charger's time of every periodic session update it wrote on the wire, in order (1.6
    the sample's timestamp, 2.0.1 the TransactionEvent's: the ``ts`` the gateway gives the
    ``sessionUpdated``)."""
    out = []
    for entry in list(sim.wire_log):
        frame = entry.frame()
        if entry.direction != "out" or frame is None or frame[0] != 2:
            continue
        action, payload = frame[2], frame[3]
        if action == "MeterValues" and "transactionId" in payload:
            out.append(parse_timestamp_ms(payload["meterValue"][0]["timestamp"]))
        elif action == "TransactionEvent" and payload["eventType"] == "Updated":
            out.append(parse_timestamp_ms(payload["timestamp"]))
    return out


@pytest.mark.mosquitto
@pytest.mark.parametrize("cp", sorted(CHARGERS))
async def test_meter_values_made_offline_reach_the_cloud_once_each_in_order(
        site: Site, cp: str) -> None:
    _, gateway, adapter, seen = site
    connector = f"{cp}-1"
    config = SimConfig(charge_point_id=cp, url=f"ws://127.0.0.1:{adapter.port}/ocpp",
                       version=CHARGERS[cp], id_tag="CARD-1", meter_interval_s=0.3,
                       time_scale=10, reconnect_min_s=0.2, reconnect_max_s=0.5, seed=3,
                       wire_log=True)

    def session_events() -> list[tuple[Topic, Envelope]]:
        return [(t, e) for t, e in seen
                if t.device == connector and (t.name or "").startswith("session")]

    def updates() -> int:
        return sum(1 for t, _ in session_events() if t.name == "sessionUpdated")

    async with OcppChargePointSim(config) as sim:
        await sim.wait_booted()
        record = await sim.start_session(1, "CARD-1")
        await eventually(lambda: updates() >= 2 and sim.pending_transaction_messages() == 0,
                         timeout=15, interval=0.01)
        # nothing in flight (each message answered): the cut costs no re-sent message
        cut_at = now_ms()
        sim.cut_link(down_s=3.0)  # TCP aborted, no close handshake; the EV goes on charging
        await eventually(lambda: not sim.online)
        await eventually(lambda: cp not in adapter.connections)  # the gateway saw it go
        made_before = record.updates_sent
        await asyncio.sleep(2.0)
        assert record.updates_sent >= made_before + 4  # metering offline
        assert sim.pending_transaction_messages() >= 4  # queued, not sent
        await sim.wait_booted(timeout=20)
        back_at = now_ms()
        await eventually(lambda: sim.pending_transaction_messages() == 0, timeout=15)
        await sim.stop_session(1)
        assert sim.errors == [] and sim.connect_count == 2 and sim.tx_dropped == 0
    await eventually(lambda: [t for t, _ in session_events() if t.name == "sessionEnded"],
                     timeout=15)
    await asyncio.sleep(1.5)  # any duplicate

    events = session_events()
    names = [t.name for t, _ in events]
    assert names == (["sessionStarted"] + ["sessionUpdated"] * record.updates_sent
                     + ["sessionEnded"]), names
    params = [e.p or {} for _, e in events]
    assert [p["seq"] for p in params] == list(range(len(events)))
    assert {p["sessionId"] for p in params} == {record.session_id}
    # the charger's own times, in order; those made offline arrived after the reconnect
    made = periodic_times(sim)
    assert len(made) == record.updates_sent  # each sent once
    update_ts = [e.ts for t, e in events if t.name == "sessionUpdated"]
    assert update_ts == made and made == sorted(made), (update_ts, made)
    offline = [e for t, e in events if t.name == "sessionUpdated"
               and cut_at < (e.ts or 0) < back_at - 500]
    assert len(offline) >= 4, [(e.ts, e.rts) for _, e in events]
    assert all(e.rts >= back_at - 500 for e in offline), [(e.ts, e.rts) for e in offline]
    # energy in kWh: the end register is at least every sample's, energy the ledger's
    ended = params[-1]
    meter_stop = Decimal(str(ended["meterStop"]))
    assert meter_stop == Decimal(record.meter_stop_wh or 0).scaleb(-3)
    assert Decimal(str(ended["energy"])) == record.energy_kwh
    meters = [Decimal(str(p["meter"])) for p in params[1:-1]]
    assert meters == sorted(meters) and meter_stop >= meters[-1]
    energies = [Decimal(str(p["energy"])) for p in params[1:-1]]
    assert all(0 <= x <= Decimal(str(ended["energy"])) for x in energies)
    counters = gateway.ctx.stats.counters
    assert not {k: n for k, n in counters.items() if n and k.startswith("ocpp_anomaly")}, \
        counters
