"""``voltmesh sim`` as a command, with the fleet split over two worker processes, against a
real gateway: exit code 0 and a merged JSON summary and ledger when the run meets its
targets; exit code 1 naming the pile the gateway refused when it does not."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge.adapters.ykc import YkcAdapter
from edge.config import AdaptersConfig, GatewayConfig, MqttConfig, OutboxConfig, YkcConfig
from edge.runtime import EdgeGateway
from sim.fleet import (
    build_spec,
    plan_devices,
    provisioning,
    run_fleet,
    sessions_until,
    shard_devices,
)
from tests.support.net import eventually

ROOT = Path(__file__).resolve().parents[3]
GW = "gw-procs"


@pytest.fixture
async def ykc_gateway(amqtt_broker: int, tmp_path: Path) -> AsyncIterator[int]:
    """A gateway with a YKC listener; 4 piles and the card pool provisioned (no cloud: card
    starts fall back to the provisioned card list after 0.2 s)."""
    gateway = EdgeGateway(GatewayConfig(
        gateway_id=GW, mqtt=MqttConfig(port=amqtt_broker, backoff_max=1.0),
        outbox=OutboxConfig(path=str(tmp_path / "outbox.db")),
        adapters=AdaptersConfig(ykc=YkcConfig(port=0, authorize_timeout=0.2))))
    gateway.ctx.set_desired("gateway", GW, 1, {
        "version": 1, **provisioning(build_spec(ykc=4, ykc_port=1))})
    task = asyncio.create_task(gateway.run())
    ykc = next(a for a in gateway.adapters if isinstance(a, YkcAdapter))
    await eventually(ykc.ready.is_set, timeout=20)
    assert ykc.port is not None
    yield ykc.port
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def sim_command(*args: str, timeout: float = 90.0) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voltmesh.sim_cli", *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)  # our own child, by PID
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_two_worker_processes_merge_into_one_summary_and_ledger(
        ykc_gateway: int, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    spec = build_spec(ykc=4, ykc_port=1, processes=2, sessions_per_hour=1800,
                      session_minutes=0.02, seed=4)
    worker_of = {plan.device_id: shard for shard in (0, 1)
                 for plan in shard_devices(spec, plan_devices(spec), shard, 2)}
    early = [worker_of[plan.device_id] for plan in plan_devices(spec)
             for _ in sessions_until(spec, plan.device_id, 1, 1.5)]
    assert sorted(set(early)) == [0, 1]  # this seed has sessions in both workers at once
    code, out, err = await sim_command(
        "--ykc", "4", "--ykc-port", str(ykc_gateway), "--processes", "2", "--duration", "3",
        "--heartbeat", "1", "--meter-interval", "1", "--sessions-per-hour", "1800",
        "--session-minutes", "0.02", "--seed", "4", "--ramp", "20", "--drain-timeout", "20",
        "--ledger", str(ledger), "--json")
    assert code == 0, err
    doc = json.loads(out)
    ykc = doc["kinds"]["ykc"]
    assert doc["ok"] is True and doc["processes"] == 2 and doc["failures"] == []
    assert (ykc["target"], ykc["connected"], ykc["failed"]) == (4, 4, 0)
    assert ykc["sessionsStarted"] == ykc["sessionsCompleted"] > 0
    assert ykc["ackLatencyMs"]["login"]["n"] == 4
    assert ykc["ackLatencyMs"]["record"]["n"] == ykc["sessionsCompleted"]
    assert ykc["acknowledged"] <= ykc["messagesReceived"] and ykc["messagesSent"] > 0
    rows = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert len(rows) == ykc["sessionsCompleted"] == doc["ledger"]["rows"]
    assert {row["start"] for row in rows} == {"card"}
    # both workers' piles charged: the ledger is the merge of both processes' sessions
    assert {worker_of[row["charger"]] for row in rows} == {0, 1}
    assert "voltmesh sim: PASSED" in err  # the text summary goes to stderr with --json


async def test_a_refused_pile_fails_the_run_with_exit_code_1(ykc_gateway: int,
                                                            capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    # 5 piles, 4 provisioned: the gateway refuses the fifth login
    spec = build_spec(ykc=5, ykc_port=ykc_gateway, duration=3, heartbeat=1,
                      sessions_per_hour=0, drain_timeout=1)
    summary = await run_fleet(spec)
    assert summary.exit_code == 1
    failures = summary.failures()
    assert failures[0] == "ykc: 4 of 5 connected at the end (need 5)"
    assert "errors (at most 0 allowed)" in failures[1]
    assert summary.final.kinds[next(iter(summary.final.kinds))].errors["login_refused"] >= 1
