"""A small real fleet run against a real gateway, cloud and broker.

3 YKC piles + 2 OCPP 1.6 + 2 OCPP 2.0.1 chargers connect to the gateway's listeners, one
Modbus meter is served and polled by the gateway, one MQTT camera publishes to the broker;
card and app sessions run for 8 s. Everything connects, every session is acknowledged,
the ledger holds exactly the sessions the platform recorded with the chargers' energy and
amounts, and the summary's counts agree with each other.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from sim.fleet import Kind, build_spec, plan_devices, run_fleet, sessions_until
from tests.sim.fleet.fleet_site import GATEWAY, fleet_site
from tests.support.net import free_port

DURATION = 8.0


def _planned(spec_values: dict[str, object], horizon: float) -> dict[str, list[str]]:
    """Planned start methods per charger kind that start before ``horizon``."""
    spec = build_spec(**spec_values)
    out: dict[str, list[str]] = {}
    for plan in plan_devices(spec):
        for connector in range(1, plan.connectors + 1):
            for planned in sessions_until(spec, plan.device_id, connector, horizon):
                out.setdefault(str(plan.kind), []).append(planned.method)
    return out


async def test_small_fleet_against_a_real_gateway(amqtt_broker: int, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    values: dict[str, object] = dict(
        ykc=3, ocpp16=2, ocpp201=2, modbus_meters=1, cameras=1,
        ykc_port=1, ocpp_url="ws://127.0.0.1:1/ocpp",  # placeholders until the gateway runs
        modbus_port=free_port(), modbus_interval=1.0, mqtt_port=amqtt_broker, mqtt_interval=1.0,
        heartbeat=2.0, meter_interval=1.0, sessions_per_hour=720, session_minutes=0.04,
        app_share=0.5, app_api="http://127.0.0.1:1", gateway_id=GATEWAY, duration=DURATION,
        ramp=50, drain_timeout=20, seed=4, ledger=str(ledger))
    # the schedule of this seed has card and app starts of every charger kind early in the run
    early = _planned(values, DURATION - 3)
    for kind in ("ykc", "ocpp16", "ocpp201"):
        assert "card" in early[kind] and "app" in early[kind], early
    async with fleet_site(tmp_path, amqtt_broker, build_spec(**values)) as site:
        spec = build_spec(**{**values, "ykc_port": site.ykc_port, "ocpp_url": site.ocpp_url,
                             "app_api": site.api, "app_token": site.token})
        summary = await run_fleet(spec)
        records = {e.p["sessionId"]: e.p for e in site.events("transactionRecord") if e.p}
        ended = {e.p["sessionId"]: e.p for e in site.events("sessionEnded") if e.p}

    assert summary.failures() == [], summary.render()
    assert summary.exit_code == 0
    at_end, final = summary.at_end.kinds, summary.final.kinds
    assert {str(k): (v.connected, v.target) for k, v in at_end.items()} == {
        "ykc": (3, 3), "ocpp16": (2, 2), "ocpp201": (2, 2), "modbus_meter": (1, 1),
        "camera": (1, 1)}

    # sessions: all planned early starts happened and every one was acknowledged
    for kind in (Kind.YKC, Kind.OCPP16, Kind.OCPP201):
        snap = final[kind]
        assert snap.sessions_started >= len(early[str(kind)]), (kind, snap)
        assert snap.sessions_completed == snap.sessions_started
        assert snap.unfinished == 0 and snap.active_sessions == 0

    # the ledger: one row per acknowledged session, what the platform recorded
    rows = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert len(rows) == summary.ledger_rows == summary.final.total("sessions_completed")
    assert all(row["confirmed"] for row in rows)
    assert len({(row["charger"], row["sessionId"]) for row in rows}) == len(rows)
    assert {row["start"] for row in rows} == {"card", "app"}
    ykc_rows = [row for row in rows if row["kind"] == "ykc"]
    assert len(ykc_rows) == final[Kind.YKC].sessions_completed
    for row in ykc_rows:
        record = records[row["sessionId"]]
        assert Decimal(record["energy"]) == Decimal(row["energy"])
        assert Decimal(record["amount"]) == Decimal(row["amount"])
        assert Decimal(row["meterStop"]) - Decimal(row["meterStart"]) == Decimal(row["energy"])
        assert row["device"] == f"{row['charger']}{row['connector']:02d}"
        assert row["currency"] == "CNY" and set(row["tiers"]) == {"tip", "peak", "flat",
                                                                   "valley"}
    ocpp_rows = [row for row in rows if row["kind"] in ("ocpp16", "ocpp201")]
    assert len(ocpp_rows) == final[Kind.OCPP16].sessions_completed + \
        final[Kind.OCPP201].sessions_completed
    for row in ocpp_rows:
        platform = ended[row["sessionId"]]
        assert Decimal(platform["energy"]) == Decimal(row["energy"])
        assert row["amount"] is None and row["device"] == f"{row['charger']}-{row['connector']}"
        assert row["meterStopWh"] - row["meterStartWh"] == int(Decimal(row["energy"]) * 1000)

    # the counts agree with each other
    ykc = final[Kind.YKC]
    assert ykc.latency["login"].count == 3 and ykc.reconnects == 0
    assert ykc.latency["heartbeat"].count > 0
    assert ykc.latency["record"].count == ykc.sessions_completed
    for kind, stop in ((Kind.OCPP16, "StopTransaction"), (Kind.OCPP201, "TransactionEvent.Ended")):
        snap = final[kind]
        assert snap.latency["BootNotification"].count == 2
        assert snap.latency["Heartbeat"].count > 0  # --heartbeat overrides the gateway's 60 s
        assert snap.latency[stop].count == snap.sessions_completed
        assert snap.acked == sum(h.count for h in snap.latency.values())
    camera = final[Kind.CAMERA]
    assert camera.sent > 0 and camera.latency["puback"].count == camera.sent
    meter = final[Kind.MODBUS_METER]
    assert meter.sent == meter.received > 0 and meter.acked == 0  # it answers, it waits for none
    for kind, snap in final.items():
        assert snap.acked <= snap.received and (snap.acked > 0 or kind is Kind.MODBUS_METER)
        assert snap.error_total == 0, snap.errors
        for histogram in snap.latency.values():
            p50, p99 = histogram.quantile(0.5), histogram.quantile(0.99)
            assert p50 is not None and p99 is not None and 0 <= p50 <= p99 <= histogram.max_ms
    print(summary.render())
    doc = summary.to_dict()
    assert doc["ok"] is True and doc["totals"]["connected"] == 9
    assert doc["kinds"]["ykc"]["ackLatencyMs"]["record"]["n"] == ykc.sessions_completed
    assert doc["ledger"] == {"path": str(ledger), "rows": len(rows), "unconfirmed": 0}
