"""README command 1: `voltmesh demo` brings the whole site up -- YKC piles, OCPP 1.6J and 2.0.1
chargers, Modbus devices, cameras and sensors are listed online in 30 s; sessions started like
the app starts them, on every kind of charger, become settled orders paid from the wallets; a
scripted flood makes the edge interlock stop the charging, cut the relay and open an alarm."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import httpx
from sqlalchemy import create_engine
from sqlmodel import Session, select

from cloud.accounts.config import AccountsConfig
from cloud.accounts.models import LedgerEntry, Wallet
from cloud.accounts.service import AccountService
from cloud.orders.models import Order
from tests.support.api import admin_headers_sync
from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[2]
OCPP_CHARGERS = {"DEMO-AC16", "DEMO-DC201"}
MODBUS_DEVICES = {("meter", "meter-main"), ("env_sensor", "water-1"),
                  ("relay", "cabinet-relay"), ("parking_lock", "lock-b01")}


def _printed_login(out: Path, proc: subprocess.Popen[bytes]) -> tuple[str, dict[str, str]]:
    """Wait (60 s at most) for the demo to print the operator's login; log in with it:
    the API's base URL and the bearer header."""
    deadline = time.monotonic() + 60
    login = None
    while login is None and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.3)
        login = re.search(r"POST (http://\S+)/api/v1/auth/token +username=(\S+) "
                          r"password=(\S+)", out.read_text())
    assert login and login.group(2) == "operator", out.read_text()[-3000:]
    base = login.group(1)
    token = httpx.post(f"{base}/api/v1/auth/token", timeout=30, data={
        "username": login.group(2), "password": login.group(3)}).json()["access_token"]
    return base, {"Authorization": f"Bearer {token}"}


def test_demo_lists_simulated_devices_online_within_30s(tmp_path: Path) -> None:
    http_port = free_port()
    out = tmp_path / "demo.out"
    with out.open("wb") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "voltmesh", "demo", "--duration", "20", "--http-port",
             str(http_port), "--mqtt-port", "0", "--data-dir", str(tmp_path / "data")],
            cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT)
    try:
        start = time.monotonic()
        online: list[dict[str, object]] = []
        headers: dict[str, str] | None = None
        while time.monotonic() - start < 30:
            try:
                base = f"http://127.0.0.1:{http_port}"
                headers = headers or admin_headers_sync(base)
                items = httpx.get(f"{base}/api/v1/devices", headers=headers,
                                  timeout=2).json()["items"]
                online = [d for d in items if d["online"]]
                seen = {(d["product"], d["device"]) for d in online}
                if len(online) >= 21 and seen >= MODBUS_DEVICES and \
                        {("charger", cp) for cp in OCPP_CHARGERS} <= seen:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        products = {d["product"] for d in online}
        assert products == {"camera", "env_sensor", "charger", "connector", "meter", "relay",
                            "parking_lock"}, out.read_text()[-3000:]
        seen = {(d["product"], d["device"]) for d in online}
        assert seen >= MODBUS_DEVICES, seen
        chargers = {d for p, d in seen if p == "charger"}
        assert chargers >= OCPP_CHARGERS and len(chargers) == 5, chargers
        # the OCPP connectors (1.6: chargePointId-connectorId, 2.0.1: chargePointId-evseId)
        assert {"DEMO-AC16-1", "DEMO-AC16-2", "DEMO-DC201-1"} <= {
            d for p, d in seen if p == "connector"}
        # 2 cameras, 3 env sensors (2 MQTT, 1 Modbus), 5 chargers with 8 connectors, 3 other
        # Modbus devices
        assert len(online) >= 21
        assert time.monotonic() - start < 30
        metrics = httpx.get(f"http://127.0.0.1:{http_port}/metrics", timeout=2).text
        assert "voltmesh_cloud_messages_total" in metrics
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
    text = out.read_text()
    assert proc.returncode == 0, text[-3000:]
    assert f"http://127.0.0.1:{http_port}/api/v1/devices" in text
    assert re.search(r"OCPP endpoint: +ws://127\.0\.0\.1:\d+/ocpp/\{chargePointId\}", text)
    assert re.search(r"Modbus site: +meter-main tcp://127\.0\.0\.1:\d+", text)
    assert "flood:                none" in text
    line = re.search(r"demo finished after 20s: \d+ devices online \(3 YKC piles, "
                     r"2 OCPP chargers, 4 Modbus devices\), .* \d+ alarms? open.*", text)
    assert line and "interlockTriggered" not in line.group(0), text[-3000:]


def test_ctrl_c_stops_the_demo_cleanly(tmp_path: Path) -> None:
    out = tmp_path / "demo.out"
    with out.open("wb") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "voltmesh", "--log-format", "json", "demo", "--http-port",
             "0", "--mqtt-port", "0", "--data-dir", str(tmp_path / "data")],
            cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while "Ctrl-C stops." not in out.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3)  # piles logged in, sessions running
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    text = out.read_text()
    assert '"level": "error"' not in text, text[-3000:]


def test_short_demo_settles_orders_paid_from_reconciled_wallets(tmp_path: Path) -> None:
    out = tmp_path / "demo.out"
    data = tmp_path / "data"
    env = {**os.environ, "VOLTMESH_DEMO_OPERATOR_INTERVAL": "3"}
    with out.open("wb") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "voltmesh", "demo", "--duration", "25", "--http-port", "0",
             "--mqtt-port", "0", "--data-dir", str(data)],
            cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, env=env)
    try:
        # the printed login works: the operator admin sees its station, orders and alarms
        base, auth = _printed_login(out, proc)
        stations = httpx.get(f"{base}/api/v1/stations", headers=auth, timeout=10).json()
        assert [s["name"] for s in stations["items"]] == ["Demo Station (Shanghai)"]
        for path in ("/api/v1/orders", "/api/v1/alarms"):
            assert httpx.get(base + path, headers=auth, timeout=10).status_code == 200
        assert proc.wait(150) == 0, out.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    text = out.read_text()
    summary = re.search(r"demo finished after 25s: (\d+) devices online \(.*\), (\d+) orders "
                        r"settled, revenue (\S+) CNY", text)
    assert summary, text[-3000:]

    engine = create_engine(f"sqlite:///{data / 'cloud.db'}")
    with Session(engine) as db:
        orders = list(db.exec(select(Order).where(Order.gw == "demo-gw")))
        wallets = list(db.exec(select(Wallet)))
        entries = list(db.exec(select(LedgerEntry)))
    settled = [o for o in orders if o.status == "settled"]
    assert settled, [(o.status, o.status_reason) for o in orders]
    # a session stopped before any energy flowed is settled at 0.00; at least one was billed
    assert all(o.total_amount is not None and o.total_amount >= 0 for o in settled)
    assert any(o.total_amount and o.total_amount > 0 for o in settled)
    assert all(o.paid_amount == o.total_amount and o.user_id for o in settled)
    # the operator charged on both OCPP chargers too (1.6J and 2.0.1), paid like the others
    assert {o.device.rsplit("-", 1)[0] for o in settled if "-" in o.device} == OCPP_CHARGERS
    assert int(summary.group(2)) == len(settled)
    assert Decimal(summary.group(3)) == sum((o.paid_amount for o in orders), Decimal("0.00"))
    # the wallets: every paid order is exactly one debit of its amount; ledgers reconcile
    debits = {e.idempotency_key: -e.amount for e in entries if e.kind == "debit"}
    assert {f"order:{o.id}": o.paid_amount for o in orders if o.paid_amount > 0} == debits
    accounts = AccountService(engine, AccountsConfig())
    assert wallets and all(accounts.reconcile(w.id) for w in wallets)
    topups = sum((e.amount for e in entries if e.kind == "topup"), Decimal("0.00"))
    assert sum((w.balance for w in wallets), Decimal("0.00")) == topups - sum(debits.values())


def test_flood_stops_the_charging_cuts_the_relay_and_opens_an_alarm(tmp_path: Path) -> None:
    """Operator steps every 4 s: a YKC session starts at t+4, an OCPP 1.6J one at t+8 (they
    run 8 s); water at t+10 must make the gateway's interlock stop the OCPP session (well
    before the operator would), cut the cabinet relay, and the cloud open alarms."""
    out = tmp_path / "demo.out"
    data = tmp_path / "data"
    with out.open("wb") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "voltmesh", "demo", "--duration", "18", "--http-port", "0",
             "--mqtt-port", "0", "--data-dir", str(data), "--operator-interval", "4",
             "--flood-at", "10"],
            cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60  # for the login and what follows
        base, auth = _printed_login(out, proc)
        alarms: list[dict[str, object]] = []
        relay: dict[str, object] = {}
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            try:
                alarms = httpx.get(f"{base}/api/v1/alarms", headers=auth, timeout=5,
                                   params={"state": "open"}).json()["items"]
                relays = httpx.get(f"{base}/api/v1/devices", headers=auth, timeout=5,
                                   params={"product": "relay"}).json()["items"]
            except httpx.HTTPError:
                continue
            relay = relays[0]["properties"] if relays else {}
            if {a["type"] for a in alarms} >= {"interlockTriggered", "waterDetected"} and \
                    relay.get("closed") is False:
                break
        # the operator admin sees the alarms of its site, open, critical
        found = {a["type"]: a for a in alarms}
        assert {"interlockTriggered", "waterDetected"} <= set(found), (alarms,
                                                                        out.read_text()[-3000:])
        assert found["interlockTriggered"]["level"] == "critical"
        assert "flood-site" in str(found["interlockTriggered"]["message"])
        # the relay was told to open and the contactor opened (as the gateway polled it)
        assert relay.get("commanded") is False and relay.get("closed") is False, relay
        assert proc.wait(90) == 0, out.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    text = out.read_text()
    acted = re.search(r"flood: interlock flood-site acted: (.*)", text)
    assert acted, text[-3000:]
    results = acted.group(1)
    # the OCPP session running at the flood was stopped by the interlock itself (not "not
    # charging": it was charging), the YKC connectors were stopped or idle, the relay cut
    assert re.search(r"stop_charging connector/DEMO-AC16-1 ok(,|$)", results), results
    assert all(f"stop_charging connector/{c} ok" in results for c in (
        "3201020000000101", "3201020000000102", "3201020000000201", "3201020000000202",
        "3201020000000301")), results
    assert "cut_relay relay/cabinet-relay ok" in results, results
    assert "no new sessions: the cabinet relay is cut" in text
    summary = re.search(r"demo finished after 18s: .* (\d+) sessions started, (\d+) alarms? "
                        r"open \((.*)\)", text)
    assert summary, text[-3000:]
    assert {"interlockTriggered", "waterDetected"} <= set(summary.group(3).split(", "))

    engine = create_engine(f"sqlite:///{data / 'cloud.db'}")
    with Session(engine) as db:
        orders = list(db.exec(select(Order).where(Order.gw == "demo-gw")))
    # two sessions before the flood, none after it; both ended and were settled and paid
    assert int(summary.group(1)) == 2 == len(orders), [(o.device, o.status) for o in orders]
    assert {o.device for o in orders} == {"3201020000000101", "DEMO-AC16-1"}
    assert all(o.status == "settled" and o.user_id and o.paid_amount == o.total_amount
               for o in orders), [(o.device, o.status, o.status_reason) for o in orders]
