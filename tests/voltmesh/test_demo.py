"""README command 1: `voltmesh demo` brings the system up; devices are listed online in 30 s,
sessions started like the app starts them become settled orders paid from the wallets."""

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


def test_demo_lists_simulated_devices_online_within_30s(tmp_path: Path) -> None:
    http_port = free_port()
    out = tmp_path / "demo.out"
    with out.open("wb") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "voltmesh", "demo", "--duration", "45", "--http-port",
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
                if len(online) >= 12:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        products = {d["product"] for d in online}
        assert products == {"camera", "env_sensor", "charger", "connector"}, out.read_text()[-3000:]
        assert len(online) >= 12  # 2 cameras, 2 sensors, 3 YKC piles with 5 connectors
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
    assert re.search(r"demo finished after 45s: \d+ devices online", text)


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
        deadline = time.monotonic() + 60
        login = None
        while login is None and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.3)
            login = re.search(r"POST (http://\S+)/api/v1/auth/token +username=(\S+) "
                              r"password=(\S+)", out.read_text())
        assert login and login.group(2) == "operator", out.read_text()[-3000:]
        # the printed login works: the operator admin sees its station, orders and alarms
        base = login.group(1)
        token = httpx.post(f"{base}/api/v1/auth/token", timeout=30, data={
            "username": login.group(2), "password": login.group(3)}).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        stations = httpx.get(f"{base}/api/v1/stations", headers=auth, timeout=10).json()
        assert [s["name"] for s in stations["items"]] == ["Demo Station (Shanghai)"]
        for path in ("/api/v1/orders", "/api/v1/alarms"):
            assert httpx.get(base + path, headers=auth, timeout=10).status_code == 200
        assert proc.wait(150) == 0, out.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    text = out.read_text()
    summary = re.search(r"demo finished after 25s: (\d+) devices online, (\d+) orders "
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
    assert int(summary.group(2)) == len(settled)
    assert Decimal(summary.group(3)) == sum((o.paid_amount for o in orders), Decimal("0.00"))
    # the wallets: every paid order is exactly one debit of its amount; ledgers reconcile
    debits = {e.idempotency_key: -e.amount for e in entries if e.kind == "debit"}
    assert {f"order:{o.id}": o.paid_amount for o in orders if o.paid_amount > 0} == debits
    accounts = AccountService(engine, AccountsConfig())
    assert wallets and all(accounts.reconcile(w.id) for w in wallets)
    topups = sum((e.amount for e in entries if e.kind == "topup"), Decimal("0.00"))
    assert sum((w.balance for w in wallets), Decimal("0.00")) == topups - sum(debits.values())
