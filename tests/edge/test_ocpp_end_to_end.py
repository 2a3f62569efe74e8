"""OCPP 1.6 and 2.0.1 end to end: simulated charge points -> gateway -> broker -> cloud.

The broker is a real Mosquitto from the shipped config (the embedded amqtt broker dropped a
persistent-session client intermittently and failed a CI run).

Each boots, is remote-started by a cloud service call, sends meter values, is remote-stopped;
the session events reach the cloud exactly once each with energy in kWh, and what the gateway
sends is validated against the official schemas (the bridge validates every frame it encodes).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import ssl
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import websockets
from sqlmodel import Session as SqlSession

from bridges.ocpp import OcppVersion
from cloud.catalog import Catalog
from cloud.catalog.models import ChargerRow
from cloud.catalog.provisioning import Provisioning
from cloud.registry import make_engine
from edge.adapters.ocpp import OcppAdapter, OcppConfig, password_hash
from edge.config import GatewayConfig, MqttConfig, OutboxConfig
from edge.runtime import EdgeGateway
from sim.ocpp import OcppChargePointSim, SimConfig
from tests.support.mosquitto import Mosquitto
from tests.support.net import eventually, free_port
from tests.support.ocpp import GW, ocpp_site, wire_checked  # noqa: F401 (autouse fixture)
from thingmodels import Envelope, decode, encode
from thingmodels.envelope import MAX_ENVELOPE_BYTES

CHARGERS = {"CP16": ("1.6", "CP16-1"), "CP201": ("2.0.1", "CP201-1")}


@pytest.fixture
async def site(mosquitto: Mosquitto, tmp_path: Path) -> Any:
    async with ocpp_site(mosquitto, tmp_path, "e2e-ocpp", CHARGERS, OcppConfig(
            port=0, heartbeat_interval=30, call_timeout=10)) as s:
        yield s.cloud, s.gateway, s.adapter, s.seen


def sim(adapter: OcppAdapter, cp: str, **kw: Any) -> OcppChargePointSim:
    version, _ = CHARGERS.get(cp, ("1.6", ""))
    return OcppChargePointSim(SimConfig(
        charge_point_id=cp, url=f"ws://127.0.0.1:{adapter.port}/ocpp", version=OcppVersion(version),
        password=f"{cp}-secret", meter_interval_s=0.3, step_delay_s=0.05, seed=1, **kw))


@pytest.mark.mosquitto
@pytest.mark.parametrize("cp", sorted(CHARGERS))
async def test_remote_session_end_to_end(site: Any, cp: str) -> None:
    cloud, _, adapter, seen = site
    connector = CHARGERS[cp][1]
    async with sim(adapter, cp) as station:
        await station.wait_booted()
        start = await cloud.consumer.call(GW, "connector", connector, "remoteStart",
                                          {"idTag": "APPUSER1"}, timeout=10)
        assert start.code == 0 and start.p["accepted"] is True, start
        await eventually(lambda: [e for t, e in seen if t.device == connector
                                  and t.name == "sessionStarted"], timeout=10)
        await eventually(lambda: [s for t, e in seen if t.device == connector
                                  and t.kind.value == "prop" for s in e.samples()
                                  if "meterEnergy" in s.p], timeout=10)
        await asyncio.sleep(1.0)
        stop = await cloud.consumer.call(GW, "connector", connector, "remoteStop", {},
                                         timeout=10)
        assert stop.code == 0 and stop.p["accepted"] is True, stop
        ended = await eventually(lambda: [e for t, e in seen if t.device == connector
                                          and t.name == "sessionEnded"], timeout=10)
        await asyncio.sleep(0.5)
        record = station.ledger.sessions[-1]
    names = [t.name for t, _ in seen if t.device == connector and t.name and
             t.name.startswith("session")]
    assert names.count("sessionStarted") == 1 and names.count("sessionEnded") == 1
    assert len({e.id for _, e in seen}) == len(seen)
    assert Decimal(ended[0].p["energy"]) == record.energy_kwh
    assert ended[0].src == ("ocpp16" if cp == "CP16" else "ocpp201")


@pytest.mark.mosquitto
async def test_refused_ids_bad_passwords_garbage_and_reconnect(site: Any) -> None:
    _, gateway, adapter, _ = site
    base = f"ws://127.0.0.1:{adapter.port}/ocpp"
    for path, code in (("UNKNOWN", 403), ("bad+id", 400)):
        with pytest.raises(websockets.InvalidStatus) as info:
            async with websockets.connect(f"{base}/{path}", subprotocols=["ocpp1.6"]):  # type: ignore[list-item]
                pass
        assert info.value.response.status_code == code
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(f"{base}/CP16", subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                                      additional_headers={"Authorization": "Basic Q1AxNjp4"}):
            pass
    assert info.value.response.status_code == 401
    auth = {"Authorization": "Basic " + base64.b64encode(b"CP16:CP16-secret").decode()}
    async with websockets.connect(f"{base}/CP16", subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                                  additional_headers=auth, max_size=None) as ws:
        await ws.send("this is not json")
        garbage_reply = str(await ws.recv())
        assert garbage_reply.startswith("[4") and "-1" in garbage_reply, garbage_reply
        await ws.send('[2, "m1", "NoSuchAction", {}]')
        assert '"NotImplemented"' in str(await ws.recv())
        await ws.send('[2, "m2", "Heartbeat", {"unexpected": 1}]')
        reply = str(await ws.recv())
        assert '"m2"' in reply and reply.startswith("[4")
        await ws.send('[2, "m3", "Heartbeat", {}]')
        first = str(await ws.recv())
        await ws.send('[2, "m3", "Heartbeat", {}]')  # a duplicate id is answered once, the same
        assert str(await ws.recv()) == first
        await ws.send('[2, "big", "DataTransfer", {"vendorId": "x", "data": "' + "a" * 70000 + '"}]')
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()  # over max_frame_bytes: the gateway closes with 1009
    assert gateway.ctx.stats.counters["malformed_frames"] >= 2
    # a reconnect storm of the same id leaves exactly one live connection
    stations = [sim(adapter, "CP201") for _ in range(5)]
    runs = [asyncio.create_task(s.run()) for s in stations]
    await eventually(lambda: "CP201" in adapter.connections, timeout=10)
    await asyncio.sleep(2.0)
    for s in stations:
        await s.close()
    await asyncio.gather(*runs, return_exceptions=True)
    await eventually(lambda: "CP201" not in adapter.connections, timeout=10)
    assert gateway.ctx.stats.counters["ocpp_replaced_connections"] >= 1


async def _gateway(tmp_path: Path, config: OcppConfig, doc: dict[str, Any]) -> tuple[
        EdgeGateway, OcppAdapter, asyncio.Task[None]]:
    adapter = OcppAdapter(config)
    gateway = EdgeGateway(GatewayConfig(gateway_id="gw-x", mqtt=MqttConfig(port=free_port(),
                                                                           backoff_max=0.5),
                                        outbox=OutboxConfig(path=str(tmp_path / "x.db"))),
                          adapters=[adapter])
    gateway.ctx.set_desired("gateway", "gw-x", 1, {"version": 1, **doc})
    task = asyncio.create_task(gateway.run())
    await eventually(adapter.ready.is_set)
    return gateway, adapter, task


async def test_pending_mode_lenient_mode_and_offline_authorize(tmp_path: Path) -> None:
    gateway, adapter, task = await _gateway(
        tmp_path, OcppConfig(port=0, unknown_chargers="pending", lenient=["LAX"],
                             authorize_timeout=0.2),
        {"devices": [], "cards": [{"idTag": "CARD-OK", "status": "active"}]})
    url = f"ws://127.0.0.1:{adapter.port}/ocpp"
    try:
        async with websockets.connect(f"{url}/NEWBIE", subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
            await ws.send('[2, "b1", "BootNotification", {"chargePointVendor": "V", '
                          '"chargePointModel": "M"}]')
            assert '"Pending"' in str(await ws.recv())
            # broker unreachable: Authorize is decided by the local list, and reported
            await ws.send('[2, "a1", "Authorize", {"idTag": "CARD-OK"}]')
            assert '"Accepted"' in str(await ws.recv())
            await ws.send('[2, "a2", "Authorize", {"idTag": "STRANGER"}]')
            assert '"Invalid"' in str(await ws.recv())
        assert gateway.ctx.stats.counters["fallback_authorize"] == 2
        over_long = "S" * 30  # serialNumber max 25: a deviation real chargers make
        boot = ('[2, "b2", "BootNotification", {"chargePointVendor": "V", '
                f'"chargePointModel": "M", "chargePointSerialNumber": "{over_long}"}}]')
        async with websockets.connect(f"{url}/STRICT", subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
            await ws.send(boot)
            assert str(await ws.recv()).startswith("[4")  # strict: CALLERROR
        async with websockets.connect(f"{url}/LAX", subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
            await ws.send(boot)
            assert str(await ws.recv()).startswith("[3")  # lenient: accepted, counted
        assert gateway.ctx.stats.counters["ocpp_lenient_deviations"] == 1
        assert gateway.ctx.stats.counters["ocpp_handler_errors"] == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_security_profile_2_tls(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    gateway, adapter, task = await _gateway(
        tmp_path, OcppConfig(port=0, security_profile=2, tls_cert=str(cert), tls_key=str(key)),
        {"devices": [{"product": "charger", "id": "TLS1", "protocol": "ocpp",
                      "password_sha256": password_hash("pw")}]})
    trust = ssl.create_default_context(cafile=str(cert))
    auth = {"Authorization": "Basic " + base64.b64encode(b"TLS1:pw").decode()}
    try:
        async with websockets.connect(f"wss://127.0.0.1:{adapter.port}/ocpp/TLS1",
                                      subprotocols=["ocpp2.0.1"], ssl=trust,  # type: ignore[list-item]
                                      additional_headers=auth) as ws:
            await ws.send('[2, "h1", "Heartbeat", {}]')
            assert str(await ws.recv()).startswith('[3,"h1"')
        with pytest.raises((OSError, websockets.InvalidMessage)):  # plain ws:// to TLS: no
            async with websockets.connect(f"ws://127.0.0.1:{adapter.port}/ocpp/TLS1",
                                          subprotocols=["ocpp2.0.1"], open_timeout=3):  # type: ignore[list-item]
                pass
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert gateway.ctx.stats.counters["ocpp_auth_failures"] == 0


async def test_storm_of_many_chargers_leaves_no_ghosts(tmp_path: Path) -> None:
    ids = [f"ST{i:03d}" for i in range(30)]
    gateway, adapter, task = await _gateway(
        tmp_path, OcppConfig(port=0, security_profile=0),
        {"devices": [{"product": "charger", "id": cp, "protocol": "ocpp"} for cp in ids]})
    url = f"ws://127.0.0.1:{adapter.port}/ocpp"
    try:
        stations = [OcppChargePointSim(SimConfig(charge_point_id=cp, url=url, step_delay_s=0.01,
                                                 reconnect_min_s=0.05, reconnect_max_s=0.2,
                                                 version=OcppVersion.V201 if i % 2 else OcppVersion.V16))
                    for i, cp in enumerate(ids)]
        runs = [asyncio.create_task(s.run()) for s in stations]
        await eventually(lambda: len(adapter.connections) == len(ids), timeout=20)
        for conn in list(adapter.connections.values()):  # drop everyone at once
            await conn.ws.close(1012, "storm")
        await asyncio.sleep(0.5)
        await eventually(lambda: len(adapter.connections) == len(ids) and all(
            not c.closed for c in adapter.connections.values()), timeout=20)
        for s in stations:
            await s.close()
        await asyncio.gather(*runs, return_exceptions=True)
        await eventually(lambda: not adapter.connections, timeout=10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert gateway.ctx.stats.counters["ocpp_handler_errors"] == 0


async def test_open_transaction_survives_a_reconnect(tmp_path: Path) -> None:
    gateway, adapter, task = await _gateway(
        tmp_path, OcppConfig(port=0, security_profile=0),
        {"devices": [{"product": "charger", "id": "RC1", "protocol": "ocpp"}]})
    url = f"ws://127.0.0.1:{adapter.port}/ocpp/RC1"

    def event(kind: str, seq: int, wh: int) -> str:
        stamp = f"2026-11-23T10:00:{seq:02d}.000Z"
        payload: dict[str, Any] = {
            "eventType": kind, "timestamp": stamp, "triggerReason": "MeterValuePeriodic",
            "seqNo": seq, "transactionInfo": {"transactionId": "TX-1"},
            "meterValue": [{"timestamp": stamp, "sampledValue": [
                {"value": wh, "measurand": "Energy.Active.Import.Register"}]}]}
        if kind == "Started":  # later events name no EVSE: the gateway must remember it
            payload["evse"] = {"id": 1, "connectorId": 1}
        return json.dumps([2, f"t{seq}", "TransactionEvent", payload])

    try:
        async with websockets.connect(url, subprotocols=["ocpp2.0.1"]) as ws:  # type: ignore[list-item]
            await ws.send(event("Started", 0, 1000))
            assert str(await ws.recv()).startswith("[3")
        async with websockets.connect(url, subprotocols=["ocpp2.0.1"]) as ws:  # type: ignore[list-item]
            await ws.send(event("Updated", 1, 1500))
            assert str(await ws.recv()).startswith("[3"), "the transaction was forgotten"
            await ws.send(event("Ended", 2, 2000))
            assert str(await ws.recv()).startswith("[3")
        names = [r.topic.rsplit("/", 1)[1] for r in gateway.outbox.peek(1000)
                 if "/event/session" in r.topic]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert names == ["sessionStarted", "sessionUpdated", "sessionEnded"]


async def test_open_transaction_survives_a_gateway_restart(tmp_path: Path) -> None:
    """OCPP 1.6: the gateway process dies with a transaction open (chaos drill finding); after
    the restart the charger's StopTransaction still ends that session."""
    doc = {"devices": [{"product": "charger", "id": "RS1", "protocol": "ocpp"}]}
    config = OcppConfig(port=0, security_profile=0)
    gateway, adapter, task = await _gateway(tmp_path, config, doc)
    try:
        url = f"ws://127.0.0.1:{adapter.port}/ocpp/RS1"
        async with websockets.connect(url, subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
            await ws.send(json.dumps([2, "s1", "StartTransaction", {
                "connectorId": 1, "idTag": "CARD-1", "meterStart": 1000,
                "timestamp": "2026-11-23T10:00:00.000Z"}]))
            started = json.loads(await ws.recv())
        assert started[0] == 3, started
        tx = started[2]["transactionId"]
    finally:
        task.cancel()  # the process goes away; only the outbox file remains
        await asyncio.gather(task, return_exceptions=True)
    gateway, adapter, task = await _gateway(tmp_path, config, doc)
    try:
        url = f"ws://127.0.0.1:{adapter.port}/ocpp/RS1"
        async with websockets.connect(url, subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
            await ws.send(json.dumps([2, "s2", "StopTransaction", {
                "transactionId": tx, "meterStop": 6000, "reason": "Local",
                "timestamp": "2026-11-23T10:30:00.000Z"}]))
            stopped = json.loads(await ws.recv())
        assert stopped[0] == 3, f"the restarted gateway forgot the transaction: {stopped}"
        ended = [decode(r.payload) for r in gateway.outbox.peek(1000)
                 if r.topic.endswith("/event/sessionEnded")]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert len(ended) == 1 and ended[0].p is not None
    assert Decimal(ended[0].p["energy"]) == Decimal("5") and ended[0].p["idTag"] == "CARD-1"


async def test_failed_handshakes_are_one_warning_line_each(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Garbage, a plain HTTP request, a bad path and a bad password: one WARNING line each
    with the peer and the reason, counted; no traceback (websockets' own DEBUG lines aside),
    nothing at ERROR."""
    gateway, adapter, task = await _gateway(
        tmp_path, OcppConfig(port=0, security_profile=1),
        {"devices": [{"product": "charger", "id": "HS1", "protocol": "ocpp",
                      "password_sha256": password_hash("pw")}]})
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    try:
        for raw in (b"\x16\x03\x01 this is not HTTP\r\n\r\n",
                    b"GET /ocpp/HS1 HTTP/1.1\r\nHost: x\r\nAuthorization: Basic "
                    + base64.b64encode(b"HS1:pw") + b"\r\n\r\n"):  # no Upgrade header
            reader, writer = await asyncio.open_connection("127.0.0.1", adapter.port)
            writer.write(raw)
            await writer.drain()
            await asyncio.wait_for(reader.read(), 10)  # until the gateway closes it
            writer.close()
        for path, headers in (("elsewhere/HS1", {}),
                              ("ocpp/HS1", {"Authorization": "Basic " + base64.b64encode(
                                  b"HS1:wrong").decode()})):
            with pytest.raises(websockets.InvalidStatus):
                async with websockets.connect(
                        f"ws://127.0.0.1:{adapter.port}/{path}", additional_headers=headers,
                        subprotocols=["ocpp1.6"]):  # type: ignore[list-item]
                    pass
        await eventually(lambda: gateway.ctx.stats.counters["ocpp_handshake_failures"] == 4)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert not [r for r in caplog.records if r.levelno >= logging.INFO and
                (r.exc_info or r.exc_text)], "a traceback was logged"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    lines = [r.getMessage() for r in caplog.records
             if r.levelno == logging.WARNING and "handshake" in r.getMessage()]
    assert len(lines) == 4, lines
    assert all("127.0.0.1:" in line and line.isprintable() for line in lines), lines
    assert "InvalidMessage" in lines[0] and "InvalidUpgrade" in lines[1], lines
    assert "404" in lines[2] and "401 bad credentials" in lines[3], lines
    assert gateway.ctx.stats.counters["ocpp_auth_failures"] == 1


def test_provisioning_of_20000_chargers_with_passwords_fits_one_packet(tmp_path: Path) -> None:
    """The cloud's gateway document for 20,000 OCPP chargers with passwords fits the 1 MiB
    packet / envelope limit: the hashes (and the descriptive fields) are in each charger's own
    document. In one document (as before) it would be about 3 MiB."""
    n = 20_000
    catalog = Catalog(make_engine(f"sqlite:///{tmp_path / 'catalog.db'}"))
    station = catalog.create_station(tenant_id="A", name="big", lat=31.2, lon=121.4)
    with SqlSession(catalog.engine) as db:
        db.add_all(ChargerRow(
            id=f"c{i:08d}", tenant_id="A", station_id=station.id, gateway_id="gw-big",
            device_id=f"CP-SITE01-{i:05d}", protocol="ocpp16" if i % 2 else "ocpp201",
            kind="ac", rated_w=22_000, operating_mode="online_billing", connector_count=2,
            code=f"{i:010d}", password_sha256=password_hash(f"pw-{i}"), created_ms=0)
            for i in range(n))
        db.commit()
    provisioning = Provisioning(catalog)
    gateway_doc = provisioning.gateway_desired("gw-big")
    charger_docs = provisioning.charger_docs("gw-big")
    assert len(gateway_doc["devices"]) == n and len(charger_docs) == n

    def size(doc: dict[str, Any]) -> int:
        """As Consumer.publish_desired sends it."""
        return len(encode(Envelope.new(src="cloud", p={**doc, "version": 1_800_000_000_000})))

    gateway_bytes = size(gateway_doc)
    assert gateway_bytes <= MAX_ENVELOPE_BYTES, gateway_bytes
    assert max(size(d) for d in charger_docs.values()) < 1024
    assert all(d["password_sha256"] == password_hash(f"pw-{int(cp[-5:])}")
               for cp, d in charger_docs.items())
    merged = {"devices": [entry | charger_docs[entry["id"]] for entry in gateway_doc["devices"]]}
    assert size(merged) > 2 * MAX_ENVELOPE_BYTES  # the old single-document form


@pytest.mark.mosquitto
async def test_per_charger_password_from_the_cloud(site: Any, tmp_path: Path) -> None:
    """Provisioned by the cloud through the broker: the gateway document admits the charger,
    its own document carries the password hash; the right password boots, a wrong one gets
    401."""
    cloud, gateway, adapter, _ = site
    catalog = Catalog(make_engine(f"sqlite:///{tmp_path / 'catalog.db'}"))
    station = catalog.create_station(tenant_id="A", name="S", lat=31.2, lon=121.4)
    catalog.register_charger(station_id=station.id, gateway_id=GW, device_id="PW1",
                             protocol="ocpp201", kind="ac", rated_kw="22",
                             password="right-password")
    pushed = await Provisioning(catalog).push(GW, cloud.consumer.publish_desired)
    assert pushed.status == "published" and pushed.documents == [f"gateway/{GW}", "charger/PW1"]
    await eventually(lambda: adapter.provisioned("PW1") and
                     gateway.ctx.desired("charger", "PW1") is not None, timeout=30)
    held = gateway.ctx.desired("gateway", GW)
    assert held is not None and "password_sha256" not in held.doc["devices"][0]
    url = f"ws://127.0.0.1:{adapter.port}/ocpp"
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(f"{url}/PW1", subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
                                      additional_headers={"Authorization": "Basic " + base64.
                                                          b64encode(b"PW1:wrong-password").
                                                          decode()}):
            pass
    assert info.value.response.status_code == 401
    async with OcppChargePointSim(SimConfig(
            charge_point_id="PW1", url=url, version=OcppVersion.V201,
            password="right-password", seed=1)) as station_sim:
        await station_sim.wait_booted()
    assert gateway.ctx.stats.counters["ocpp_auth_failures"] == 1
