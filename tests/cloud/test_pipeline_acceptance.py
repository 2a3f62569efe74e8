"""Issue #6 acceptance, end to end with real parts.

1. A simulated YKC pile charges behind a real EdgeGateway; its telemetry goes through the
   embedded broker, the cloud worker and the shipped rules into VictoriaMetrics (InfluxDB write
   API) and reads back with the values and tags the pile reported.
2. A flapping gun temperature makes ONE over-temperature alarm, which clears once the value has
   stayed low for longer than ``clear_after`` (decided on the messages' own timestamps).
3. A webhook rule (extra rule file next to the shipped ones) is retried until a real HTTP server
   accepts it, with the same Idempotency-Key on every attempt, while a second webhook to a dead
   port keeps being retried without holding back telemetry or alarms.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiomqtt
from aiohttp import web

from cloud.alarms import AlarmFilter, AlarmsConfig, AlarmView, Event, State
from cloud.config import CloudConfig, CloudMqttConfig, HttpConfig
from cloud.rules.config import RulesConfig
from cloud.service import CloudService
from cloud.sinks.config import InfluxConfig, SinksConfig, WebhooksQueueConfig
from edge.config import AdaptersConfig, GatewayConfig, MqttConfig, OutboxConfig, YkcConfig
from edge.runtime import EdgeGateway
from sim.ykc import PileConfig, SimPile
from tests.support.net import eventually, free_port
from tests.support.victoria import Victoria
from thingmodels import Envelope, Topic
from thingmodels.envelope import encode
from thingmodels.ids import now_ms
from thingmodels.topics import Kind

REPO = Path(__file__).resolve().parents[2]
SHIPPED_RULES = REPO / "config" / "rules"

PILE = "32010200000088"
CONNECTOR = PILE + "01"
TARIFF = {"version": 1, "tiers": {"tip": {"energy": "1.2", "service": "0.6"},
                                  "peak": {"energy": "1.0", "service": "0.6"},
                                  "flat": {"energy": "0.7", "service": "0.6"},
                                  "valley": {"energy": "0.3", "service": "0.6"}},
          "periods": [{"start": "00:00", "end": "08:00", "tier": "valley"},
                      {"start": "08:00", "end": "12:00", "tier": "flat"},
                      {"start": "12:00", "end": "18:00", "tier": "peak"},
                      {"start": "18:00", "end": "21:00", "tier": "tip"},
                      {"start": "21:00", "end": "24:00", "tier": "flat"}]}

# config/rules/alarms.yaml, gun-over-temperature: raise > 80, clear < 70, debounce 5s,
# clear_after 30s (test_thresholds_are_the_shipped_ones keeps these in step with the file)
RAISE_ABOVE, CLEAR_BELOW, DEBOUNCE_MS, CLEAR_AFTER_MS = 80, 70, 5_000, 30_000
STATUS_CODES = {"offline": 0, "faulted": 1, "available": 2, "preparing": 3, "charging": 4,
                "suspended": 5, "finishing": 6, "reserved": 7, "unavailable": 8}


def cloud_config(tmp_path: Path, broker: int, *, victoria: Victoria | None = None,
                 extra_rules: list[Path] | None = None,
                 webhooks: WebhooksQueueConfig | None = None) -> CloudConfig:
    """A worker on the shipped rules (plus ``extra_rules``), with small flush settings.

    No periodic alarm sweep during the test (one at start-up, then hourly): the alarms are
    decided by the signals' own timestamps only, which makes them deterministic.
    """
    influx = None if victoria is None else InfluxConfig(url=victoria.url, flush_interval=0.05,
                                                        drain_timeout=1.0)
    return CloudConfig(
        worker_id="acceptance", mqtt=CloudMqttConfig(port=broker, client_id="acceptance-cloud"),
        database_url=f"sqlite:///{tmp_path / 'cloud.db'}", http=HttpConfig(port=0),
        flush_interval=0.1,
        rules=RulesConfig(paths=[str(SHIPPED_RULES), *map(str, extra_rules or [])]),
        sinks=SinksConfig(influx=influx, webhooks=webhooks or WebhooksQueueConfig()),
        alarms=AlarmsConfig(sweep_interval=3600.0))


@contextlib.asynccontextmanager
async def running(*services: Any) -> AsyncIterator[None]:
    """Run the services' ``run()`` until the block ends, then cancel them."""
    tasks = [asyncio.create_task(s.run()) for s in services]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and \
                    not isinstance(result, asyncio.CancelledError):
                raise result


async def publish_props(port: int, gw: str, device: str,
                        samples: list[tuple[int, dict[str, Any]]]) -> None:
    """Publish connector property messages as gateway ``gw`` would (one message per sample,
    QoS 1, each awaited before the next, with the sample's own ``ts``)."""
    topic = Topic(gw, "connector", device, Kind.PROP).render()
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"fake-{gw}") as client:
        for seq, (ts, p) in enumerate(samples, start=1):
            await client.publish(topic, encode(Envelope.new(ts=ts, seq=seq, src=gw, p=p)), qos=1)


def flapping(base: int, device_props: dict[str, Any] | None = None
             ) -> tuple[list[tuple[int, dict[str, Any]]], list[tuple[int, dict[str, Any]]]]:
    """(hot and flapping samples, stable low samples) of a gun temperature, from ``base`` ms.

    Raises hold 6 s (> debounce 5 s), then the value flaps between > 80 and < 70 every 2 s
    (values in the 70..80 band in between signal nothing); then it stays < 70 for 36 s
    (> clear_after 30 s) starting at ``base + 22 s``.
    """
    extra = device_props or {}
    hot = [(base + ms, {"gunTemperature": t, **extra}) for ms, t in [
        (0, 85.0), (3_000, 86.5), (6_000, 87.0), (8_000, 75.0), (10_000, 65.0),
        (12_000, 85.5), (14_000, 64.0), (15_000, 78.0), (16_000, 88.0), (18_000, 66.0),
        (20_000, 90.0)]]
    low = [(base + 22_000 + i * 4_000, {"gunTemperature": 60.0 + i / 2, **extra})
           for i in range(10)]  # 22 s .. 58 s
    return hot, low


async def alarms_of(cloud: CloudService, gw: str, device: str) -> list[AlarmView]:
    page = await asyncio.to_thread(cloud.alarms.manager.list_alarms, AlarmFilter(
        type="gunOverTemperature", gw=gw, product="connector", device=device))
    assert page.total == len(page.items)
    return page.items


async def series(victoria: Victoria, match: str) -> list[dict[str, Any]]:
    await victoria.force_flush()
    return await victoria.export(match, start_ms=0)


def samples_of(found: list[dict[str, Any]]) -> dict[int, float]:
    """ts -> value over all series found."""
    return {ts: v for s in found for ts, v in zip(s["timestamps"], s["values"], strict=True)}


def test_thresholds_are_the_shipped_ones() -> None:
    """The flapping profile above relies on the shipped rule's numbers: fail if they change."""
    text = (SHIPPED_RULES / "alarms.yaml").read_text()
    for line in (f"raise: \"p['gunTemperature'] > {RAISE_ABOVE}\"",
                 f"clear: \"p['gunTemperature'] < {CLEAR_BELOW}\"",
                 f"debounce: {DEBOUNCE_MS // 1000}s", f"clear_after: {CLEAR_AFTER_MS // 1000}s"):
        assert line in text, f"config/rules/alarms.yaml changed: {line!r} not found"


# -- 1. telemetry from a charging YKC pile lands in VictoriaMetrics ---------------------------

async def test_pile_telemetry_lands_in_victoria_with_values_and_tags(
        amqtt_broker: int, victoria: Victoria, tmp_path: Path) -> None:
    cloud = CloudService(cloud_config(tmp_path, amqtt_broker, victoria=victoria), base_dir=REPO)
    seen: list[tuple[int, dict[str, Any]]] = []  # (ts, p) of the connector's samples

    async def track(topic: Topic, env: Envelope) -> None:
        if topic.kind is Kind.PROP and topic.device == CONNECTOR:
            seen.extend((s.ts if s.ts is not None else env.ts or env.rts, dict(s.p))
                        for s in env.samples())

    cloud.consumer.add_handler("track", track)
    gateway = EdgeGateway(GatewayConfig(
        gateway_id="gwA", mqtt=MqttConfig(port=amqtt_broker, backoff_max=0.5),
        outbox=OutboxConfig(path=str(tmp_path / "outbox.db")),
        adapters=AdaptersConfig(ykc=YkcConfig(port=0, heartbeat_interval=2))))
    async with running(cloud, gateway):
        await eventually(cloud.consumer.connected.is_set, timeout=20)
        await eventually(gateway.ctx.cloud_connected.is_set, timeout=20)
        await cloud.consumer.publish_desired("gwA", "gateway", "gwA", {
            "devices": [{"product": "charger", "id": PILE, "protocol": "ykc"}],
            "tariff": TARIFF})
        await eventually(lambda: gateway.ctx.desired("gateway", "gwA"), timeout=20)
        ykc = gateway.adapters[0]
        await eventually(ykc.ready.is_set, timeout=20)  # type: ignore[attr-defined]
        pile = SimPile(PileConfig(pile_code=PILE, guns=1, heartbeat_interval=1.0,
                                  realtime_interval=0.3, plug_delay=None, bms_frames=True,
                                  seed=11), port=ykc.port)  # type: ignore[attr-defined]
        pile.start()
        try:
            await asyncio.wait_for(pile.logged_in.wait(), 20)
            await asyncio.wait_for(pile.model_loaded.wait(), 20)
            reply = await cloud.consumer.call("gwA", "connector", CONNECTOR, "remoteStart",
                                              {"idTag": "00000000D14B0A54", "balance": "100.00"},
                                              timeout=15)
            assert reply.code == 0 and reply.p is not None and reply.p["accepted"] is True, reply
            await eventually(lambda: [p for _, p in seen if p.get("status") == "charging"
                                      and (p.get("power") or 0) > 0
                                      and Decimal(str(p.get("energy", "0"))) > 0], timeout=20)
        finally:
            await pile.stop()  # no more telemetry from here on

        # the cloud registry holds the connector's last values; they match what it received
        def registry_props() -> dict[str, Any] | None:
            for d in cloud.registry.list_devices(gateway="gwA", product="connector"):
                if d["device"] == CONNECTOR:
                    return dict(d["properties"])
            return None

        async def settled() -> dict[str, Any] | None:
            merged: dict[str, Any] = {}
            for _, p in seen:
                merged.update(p)
            props = await asyncio.to_thread(registry_props)
            keys = ("status", "voltage", "power")
            if props is None or any(props.get(k) != merged.get(k) for k in keys):
                return None
            await asyncio.sleep(1.5)  # and nothing more arrives
            merged2: dict[str, Any] = {}
            for _, p in seen:
                merged2.update(p)
            return props if merged2 == merged else None

        props = await eventually(settled, timeout=30, interval=0.3)

        # every power / voltage sample the cloud received is in VictoriaMetrics, at its time,
        # under the measurement `connector` with the labels gw, device and status
        powered = [(ts, p) for ts, p in seen if p.get("power") is not None]
        charging = [(ts, p) for ts, p in powered if p.get("status") == "charging"]
        assert charging, seen
        label = f'gw="gwA",device="{CONNECTOR}"'

        def stored_of(found: list[dict[str, Any]]) -> dict[tuple[str | None, int], float]:
            return {(s["metric"].get("status"), ts): v for s in found
                    for ts, v in zip(s["timestamps"], s["values"], strict=True)}

        def expected(field: str) -> dict[tuple[str | None, int], set[float]]:
            # two samples may share a ms (a status change and the next real-time frame)
            out: dict[tuple[str | None, int], set[float]] = {}
            for ts, p in seen:
                value = STATUS_CODES.get(p.get("status", "")) if field == "statusCode" \
                    else p.get(field)
                if value is not None:
                    out.setdefault((p.get("status"), ts), set()).add(float(value))
            return out

        fields = ("power", "voltage", "statusCode")

        async def all_landed() -> dict[str, list[dict[str, Any]]] | None:
            found = {f: await series(victoria, f"connector_{f}{{{label}}}") for f in fields}
            for f in fields:
                if not expected(f).keys() <= stored_of(found[f]).keys():
                    return None
            return found

        found = await eventually(all_landed, timeout=30, interval=0.5)
        for f in fields:
            stored = stored_of(found[f])
            for key, values in expected(f).items():
                assert any(math.isclose(stored[key], v, rel_tol=1e-9) for v in values), \
                    (f, key, stored[key], values)
            for s in found[f]:  # every series is the connector's, with its status label
                assert s["metric"]["gw"] == "gwA" and s["metric"]["device"] == CONNECTOR
                assert s["metric"].get("status") in STATUS_CODES, s["metric"]
        # the charging samples are in the series labelled status="charging", statusCode 4
        power = stored_of(found["power"])
        assert all(("charging", ts) in power for ts, _ in charging)
        assert max(power[("charging", ts)] for ts, _ in charging) > 0
        assert {stored_of(found["statusCode"])[("charging", ts)] for ts, _ in charging} == {4}
        # the newest stored point agrees with the registry's last values
        # the registry's last values are those of the last samples received, and stored
        props = await asyncio.to_thread(registry_props)
        assert props is not None
        assert props["status"] == [p for _, p in seen if "status" in p][-1]["status"]
        voltage = stored_of(found["voltage"])
        for f, stored in (("power", power), ("voltage", voltage)):
            ts, p = [(ts, p) for ts, p in seen if p.get(f) is not None][-1]
            key = (p.get("status"), ts)
            # the registry keeps the last sample; a point keeps one of the samples of its ms
            assert float(props[f]) in expected(f)[key] and stored[key] in expected(f)[key]


# -- 2. a flapping gun temperature makes one alarm, cleared once stable ------------------------

async def test_flapping_over_temperature_is_one_alarm_cleared_when_stable(
        amqtt_broker: int, tmp_path: Path) -> None:
    cloud = CloudService(cloud_config(tmp_path, amqtt_broker), base_dir=REPO)
    base = now_ms() - 600_000  # signals judged by their own ts: ten minutes ago
    hot, low = flapping(base, {"status": "charging"})
    async with running(cloud):
        await eventually(cloud.consumer.connected.is_set, timeout=20)
        await publish_props(amqtt_broker, "gwT", "T-01", hot)
        # flapping: one alarm, open from raise start + debounce, not cleared in between
        last_hot = hot[-1][0]
        opened = await eventually(lambda: _one_in_state(cloud, "gwT", "T-01", State.OPEN,
                                                        last_hot), timeout=30)
        assert opened.opened_ms == base + DEBOUNCE_MS
        assert opened.raise_count >= 5 and opened.cleared_ms is None
        await publish_props(amqtt_broker, "gwT", "T-01", low)
        cleared = await eventually(lambda: _one_in_state(cloud, "gwT", "T-01", State.CLEARED),
                                   timeout=30)
        assert cleared.id == opened.id
        assert cleared.cleared_ms == low[0][0] + CLEAR_AFTER_MS
        full = await asyncio.to_thread(cloud.alarms.manager.get, cleared.id)
        events = [h.event for h in full.history]
        assert events.count(Event.RAISED) == 1 and events.count(Event.CLEARED) == 1, events
        assert cleared.dedupe == "gunOverTemperature:gwT/connector/T-01"
        assert cleared.level == "major" and cleared.rule == "gun-over-temperature"


async def _one_in_state(cloud: CloudService, gw: str, device: str, state: State,
                        raised_at: int | None = None) -> AlarmView | None:
    """The key's only alarm once it is in ``state`` (and has seen the raise at ``raised_at``)."""
    items = await alarms_of(cloud, gw, device)
    assert len(items) <= 1, items  # never a second alarm for the key
    if not items or items[0].state is not state:
        return None
    return items[0] if raised_at is None or items[0].last_raised_ms == raised_at else None


# -- 3. webhooks retry; a dead one holds back neither telemetry nor alarms ---------------------

class FlakyHook:
    """A real HTTP server: each Idempotency-Key gets 500 twice, then 200."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, int, dict[str, Any]]] = []  # key, status, body
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def _hook(self, request: web.Request) -> web.Response:
        key = request.headers.get("Idempotency-Key", "")
        body = json.loads(await request.read())
        tries = sum(1 for k, _, _ in self.requests if k == key)
        status = 500 if tries < 2 else 200
        self.requests.append((key, status, body))
        return web.Response(status=status, text="nope" if status == 500 else "ok")

    async def __aenter__(self) -> FlakyHook:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def metric(cloud: CloudService, name: str, **labels: str) -> float:
    return cloud.metrics.registry.get_sample_value(name, labels) or 0.0


async def test_webhook_retries_and_a_dead_webhook_delays_nothing(
        amqtt_broker: int, victoria: Victoria, tmp_path: Path) -> None:
    dead = free_port()  # nothing listens here
    async with FlakyHook() as hook:
        rule_file = tmp_path / "hooks.yaml"
        rule_file.write_text(f"""\
rules:
  - id: hook-gun-spike
    description: a gun temperature spike goes to two webhooks
    from: [ev/v1/+/connector/+/prop]
    where: "(p&['gunTemperature'] ?? 0) > 95"
    do:
      - webhook:
          url: http://127.0.0.1:{hook.port}/hook
          timeout: 5s
      - webhook:
          url: http://127.0.0.1:{dead}/hook
          timeout: 2s
""")
        # the dead webhook is retried until the end of the test (no attempt limit)
        webhooks = WebhooksQueueConfig(max_attempts=0, backoff_initial=0.1, backoff_max=1.0,
                                       drain_timeout=0.5)
        cloud = CloudService(cloud_config(tmp_path, amqtt_broker, victoria=victoria,
                                          extra_rules=[rule_file], webhooks=webhooks),
                             base_dir=REPO)
        base = now_ms() - 600_000
        power = {"status": "charging", "voltage": 402.5, "current": 61.25, "power": 24.65}
        spike = (base - 5_000, {**power, "gunTemperature": 97.5})
        hot, low = flapping(base, power)
        async with running(cloud):
            await eventually(cloud.consumer.connected.is_set, timeout=20)
            await publish_props(amqtt_broker, "gwH", "H-01", [spike])

            # the good webhook: 500, 500, 200 with one Idempotency-Key
            await eventually(lambda: [r for r in hook.requests if r[1] == 200], timeout=30)
            keys = {k for k, _, _ in hook.requests}
            assert len(keys) == 1 and next(iter(keys)), hook.requests
            assert [s for _, s, _ in hook.requests] == [500, 500, 200]
            body = hook.requests[-1][2]
            assert body["rule"] == "hook-gun-spike" and body["device"] == "H-01"
            assert body["p"]["gunTemperature"] == 97.5 and body["ts"] == spike[0]
            # the dead one is being retried: the good one accounts for exactly 2 retries
            await eventually(lambda: metric(cloud, "voltmesh_sink_retried_total",
                                            sink="webhooks") >= 4, timeout=30)

            # meanwhile: telemetry lands and the over-temperature alarm opens and clears
            await publish_props(amqtt_broker, "gwH", "H-01", hot)
            opened = await eventually(lambda: _one_in_state(cloud, "gwH", "H-01", State.OPEN,
                                                            hot[-1][0]), timeout=30)
            assert opened.opened_ms == base - 5_000 + DEBOUNCE_MS  # the spike started the run
            await publish_props(amqtt_broker, "gwH", "H-01", low)
            cleared = await eventually(
                lambda: _one_in_state(cloud, "gwH", "H-01", State.CLEARED), timeout=30)
            assert cleared.id == opened.id
            sent = [spike, *hot, *low]

            async def landed() -> dict[int, float] | None:
                stored = samples_of(await series(
                    victoria, 'connector_gunTemperature{gw="gwH",device="H-01"}'))
                return stored if all(ts in stored for ts, _ in sent) else None

            stored = await eventually(landed, timeout=30, interval=0.5)
            assert all(stored[ts] == p["gunTemperature"] for ts, p in sent)
            powers = samples_of(await series(
                victoria, 'connector_power{gw="gwH",device="H-01",status="charging"}'))
            assert all(powers.get(ts) == 24.65 for ts, _ in sent)

            # ... while the dead webhook was still being retried, never given up
            assert metric(cloud, "voltmesh_sink_in_flight", sink="webhooks") >= 1
            dropped = [s for m in cloud.metrics.registry.collect() for s in m.samples
                       if s.name == "voltmesh_sink_dropped_total"
                       and s.labels.get("sink") == "webhooks" and s.value]
            assert dropped == []
            # and the good webhook was delivered exactly once
            assert [s for _, s, _ in hook.requests] == [500, 500, 200]
