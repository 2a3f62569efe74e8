"""The Modbus poller against simulated devices (pymodbus servers), through a real broker."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from pymodbus.framer.rtu import FramerRTU

from bridges.modbus import shipped_map
from edge.adapters.modbus import ModbusAdapter, ModbusDevice
from edge.adapters.modbus_link import PriorityLock
from edge.config import (
    AdaptersConfig,
    GatewayConfig,
    ModbusConfig,
    ModbusDeviceConfig,
    MqttConfig,
    OutboxConfig,
    TelemetryConfig,
    load_gateway_config,
)
from edge.errors import ConfigError
from edge.runtime import EdgeGateway
from sim.modbus import ModbusSimServer, ModbusSimulator, ParkingLockBehaviour, SimulatedDevice
from tests.support.net import eventually, free_port
from thingmodels import Envelope, Kind, Topic, decode, now_ms
from thingmodels.envelope import Sample

ROOT = Path(__file__).resolve().parents[2]
MAPS = ROOT / "config" / "modbus"


# -- a Modbus gateway / serial device server in front of the simulators ----------------------


class ModbusProxy:
    """Relays a client to a simulator like a Modbus gateway would.

    ``rtu=True``: the client side speaks RTU over TCP (a serial device server in
    transparent mode) and is translated to Modbus TCP upstream. Requests for a unit in
    ``silent`` are swallowed: that unit never answers (a dead RS485 slave behind a gateway
    that does not answer 0x0B). ``blackhole=True``: nothing is ever answered.
    """

    def __init__(self, upstream_port: int = 0, *, rtu: bool = False,
                 silent: set[int] | None = None, blackhole: bool = False) -> None:
        self.upstream_port = upstream_port
        self.rtu = rtu
        self.silent = silent or set()
        self.blackhole = blackhole
        self.port = 0
        self.requests: dict[int, int] = {}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> ModbusProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        tid = 0
        try:
            while True:
                unit, pdu, client_tid = await (self._read_rtu(reader) if self.rtu
                                               else self._read_mbap(reader))
                self.requests[unit] = self.requests.get(unit, 0) + 1
                if self.blackhole or unit in self.silent:
                    continue
                if upstream is None:
                    upstream = await asyncio.open_connection("127.0.0.1", self.upstream_port)
                tid = (tid + 1) % 65536
                up_reader, up_writer = upstream
                up_writer.write(tid.to_bytes(2, "big") + b"\0\0"
                                + (len(pdu) + 1).to_bytes(2, "big") + bytes([unit]) + pdu)
                _, answer, _ = await self._read_mbap(up_reader)
                if self.rtu:
                    frame = bytes([unit]) + answer
                    writer.write(frame + FramerRTU.compute_CRC(frame).to_bytes(2, "big"))
                else:
                    writer.write(client_tid.to_bytes(2, "big") + b"\0\0"
                                 + (len(answer) + 1).to_bytes(2, "big") + bytes([unit]) + answer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            if upstream is not None:
                upstream[1].close()

    @staticmethod
    async def _read_mbap(reader: asyncio.StreamReader) -> tuple[int, bytes, int]:
        head = await reader.readexactly(7)
        body = await reader.readexactly(int.from_bytes(head[4:6], "big") - 1)
        return head[6], body, int.from_bytes(head[0:2], "big")

    @staticmethod
    async def _read_rtu(reader: asyncio.StreamReader) -> tuple[int, bytes, int]:
        head = await reader.readexactly(2)
        if head[1] in (15, 16):
            fixed = await reader.readexactly(5)
            rest = await reader.readexactly(fixed[4] + 2)
            frame = head + fixed + rest
        else:
            frame = head + await reader.readexactly(6)
        crc = int.from_bytes(frame[-2:], "big")
        assert FramerRTU.check_CRC(frame[:-2], crc), "bad CRC from the poller"
        return frame[0], frame[1:-2], 0


# -- helpers ------------------------------------------------------------------------------------


class Recorder:
    """A local observer: every validated property report and event."""

    def __init__(self) -> None:
        self.props: list[tuple[str, str, dict[str, Any]]] = []
        self.events: list[tuple[str, str, str, dict[str, Any]]] = []

    def on_properties(self, product: str, device: str, params: Mapping[str, Any],
                      src: str) -> None:
        if product != "gateway":
            self.props.append((product, device, dict(params)))

    def on_event(self, product: str, device: str, name: str, params: Mapping[str, Any],
                 src: str) -> None:
        if product != "gateway":
            self.events.append((product, device, name, dict(params)))

    def values(self, device: str, prop: str) -> list[Any]:
        return [p[prop] for _, d, p in self.props if d == device and prop in p]


def device(id: str, map_name: str, port: int, **kw: Any) -> ModbusDeviceConfig:
    kw.setdefault("interval", 0.05)
    kw.setdefault("timeout", 0.3)
    return ModbusDeviceConfig(id=id, map=str(MAPS / f"{map_name}.yaml"), host="127.0.0.1",
                              port=port, **kw)


def gateway(tmp_path: Path, devices: list[ModbusDeviceConfig], *, mqtt_port: int | None = None,
            backoff_max: float = 1.0) -> EdgeGateway:
    return EdgeGateway(GatewayConfig(
        gateway_id="gwA", mqtt=MqttConfig(port=mqtt_port or free_port(), backoff_max=0.3),
        outbox=OutboxConfig(path=str(tmp_path / "outbox.db")),
        telemetry=TelemetryConfig(flush_interval=0.05, stats_interval=3600),
        adapters=AdaptersConfig(modbus=ModbusConfig(devices=devices, backoff_max=backoff_max))))


@contextlib.asynccontextmanager
async def running(gw: EdgeGateway) -> AsyncIterator[ModbusAdapter]:
    task = asyncio.create_task(gw.run())
    try:
        [adapter] = [a for a in gw.adapters if isinstance(a, ModbusAdapter)]
        yield adapter
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def rows(gw: EdgeGateway, suffix: str) -> list[Envelope]:
    return [decode(r.payload) for r in gw.outbox.peek(100_000) if r.topic.endswith(suffix)]


# -- values reach the cloud in thing-model units -----------------------------------------------


async def test_values_reach_a_subscriber_in_thing_model_units(
        amqtt_broker: int, tmp_path: Path) -> None:
    meter = ModbusSimulator("eastron_sdm630", values={"power": 7.25})
    climate = ModbusSimulator("xymd02_temperature_humidity",
                              values={"temperature": -20.5, "humidity": 54.6})
    storage = ModbusSimulator("victron_gx_battery", values={"power": -3.5, "soc": 81})
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "meter.yaml").write_text((MAPS / "eastron_sdm630.yaml").read_text())
    async with meter, climate, storage, ModbusProxy(climate.port, rtu=True) as rtu:
        (tmp_path / "gw.yaml").write_text(f"""
gateway_id: gwA
mqtt: {{port: {amqtt_broker}, backoff_max: 300ms}}
outbox: {{path: outbox.db}}
telemetry: {{flush_interval: 50ms, stats_interval: 1h}}
adapters:
  modbus:
    devices:
      - {{id: meter-1, map: maps/meter.yaml, host: 127.0.0.1, port: {meter.port},
         interval: 100ms, timeout: 500ms}}
      - {{id: climate-1, map: {MAPS / 'xymd02_temperature_humidity.yaml'},
         transport: rtu_over_tcp, host: 127.0.0.1, port: {rtu.port}, interval: 100ms}}
      - {{id: bess-1, map: {MAPS / 'victron_gx_battery.yaml'}, host: 127.0.0.1,
         port: {storage.port}, device_id: 100, interval: 100ms, report_period: 200ms}}
""")
        gw = EdgeGateway(load_gateway_config(tmp_path / "gw.yaml"))
        async with aiomqtt.Client("127.0.0.1", amqtt_broker) as cloud:
            await cloud.subscribe("ev/v1/gwA/#", qos=1)
            seen: dict[str, list[Envelope]] = {}

            async def collect() -> None:
                async for message in cloud.messages:
                    env = decode(bytes(message.payload))  # type: ignore[arg-type]
                    seen.setdefault(message.topic.value, []).append(env)

            collector = asyncio.create_task(collect())
            async with running(gw):
                def samples(device_topic: str) -> list[Sample]:
                    return [s for env in seen.get(f"ev/v1/gwA/{device_topic}/prop", [])
                            for s in env.samples()]

                def merged(device_topic: str) -> dict[str, Any]:
                    out: dict[str, Any] = {}
                    for sample in samples(device_topic):
                        out.update(sample.p)
                    return out

                meter_values = await eventually(lambda: merged("meter/meter-1"), timeout=5)
                # W on the wire, kW in the model; float32 energy as an exact decimal string
                assert meter_values["power"] == 7.25
                assert meter_values["energyImport"] == "12345.6"
                assert meter_values["voltageL1"] == pytest.approx(230.1, abs=1e-4)
                assert len(meter_values) == 12
                climate_values = await eventually(lambda: merged("env_sensor/climate-1"))
                assert climate_values == {"temperature": -20.5, "humidity": 54.6}
                assert rtu.requests  # really went through the RTU-over-TCP side
                bess = await eventually(lambda: merged("storage/bess-1"))
                assert bess["power"] == -3.5 and bess["soc"] == 81  # sign flipped by the map
                state = await eventually(lambda: seen.get("ev/v1/gwA/meter/meter-1/state"))
                assert state[-1].p is not None and state[-1].p["online"] is True

                climate.set("temperature", 31.5)
                await eventually(lambda: 31.5 in [s.p.get("temperature")
                                                  for s in samples("env_sensor/climate-1")])
                # periodic full report even without changes
                count = len(samples("storage/bess-1"))
                await eventually(lambda: len(samples("storage/bess-1")) >= count + 2)
            collector.cancel()
            await asyncio.gather(collector, return_exceptions=True)


async def test_deadband_and_periodic_full_report(tmp_path: Path) -> None:
    async with ModbusSimulator("xymd02_temperature_humidity",
                               values={"temperature": 20.0, "humidity": 40}) as sim:
        gw = gateway(tmp_path, [device("t1", "xymd02_temperature_humidity", sim.port,
                                       report_period=0.6)])
        rec = Recorder()
        gw.ctx.add_observer(rec)
        async with running(gw) as adapter:
            await eventually(lambda: rec.props)
            assert rec.props[0] == ("env_sensor", "t1", {"temperature": 20.0, "humidity": 40.0})
            sim.set("temperature", 20.1)  # inside the 0.2 degC deadband of the map
            polls = adapter.devices["t1"].stats.polls
            await eventually(lambda: adapter.devices["t1"].stats.polls >= polls + 3)
            assert rec.values("t1", "temperature") == [20.0]
            sim.set("temperature", 20.3)  # 0.3 from the last REPORTED value
            await eventually(lambda: rec.values("t1", "temperature") == [20.0, 20.3])
            assert rec.props[-1][2] == {"temperature": 20.3}  # only what changed
            await eventually(lambda: len(rec.props) >= 3, timeout=3)
            assert rec.props[2][2] == {"temperature": 20.3, "humidity": 40.0}  # full report


# -- services ------------------------------------------------------------------------------


async def call(gw: EdgeGateway, product: str, device_id: str, service: str,
               params: dict[str, Any] | None = None) -> Envelope:
    env = Envelope.new(p=params or {}, dl=now_ms() + 5000)
    await gw.dispatcher.handle(Topic("gwA", product, device_id, Kind.SVC, service), env)
    await gw.dispatcher.drain()
    [reply] = [r for r in rows(gw, f"/svc/{service}/reply") if r.cid == env.id]
    return reply


async def test_services_become_writes(tmp_path: Path) -> None:
    lock_dev = SimulatedDevice(shipped_map("parking_lock"), 3,
                               behaviour=ParkingLockBehaviour(travel_time=0.2))
    relay_dev = SimulatedDevice(shipped_map("cabinet_relay"), 4)
    meter = ModbusSimulator("eastron_sdm630")
    async with ModbusSimServer([lock_dev, relay_dev]) as bus, meter:
        gw = gateway(tmp_path, [device("lock-1", "parking_lock", bus.port, device_id=3,
                                       interval=1.0),
                                device("relay-1", "cabinet_relay", bus.port, device_id=4,
                                       interval=1.0),
                                device("meter-1", "eastron_sdm630", meter.port, interval=30)])
        rec = Recorder()
        gw.ctx.add_observer(rec)
        async with running(gw) as adapter:
            await eventually(lambda: adapter.devices["lock-1"].online
                             and adapter.devices["relay-1"].online)
            raised = await call(gw, "parking_lock", "lock-1", "raise")
            assert (raised.code, raised.p) == (0, {"accepted": True})
            assert [c.service for c in lock_dev.calls] == ["raise"]
            # polled at once after the write (interval is 1 s): the arm reports moving, then up
            await eventually(lambda: "moving" in rec.values("lock-1", "position"), timeout=0.8)
            await eventually(lambda: rec.values("lock-1", "position")[-1] == "raised")
            cut = await call(gw, "relay", "relay-1", "cut")
            assert (cut.code, cut.p) == (0, {"accepted": True})
            assert relay_dev.get("commanded") is False
            await eventually(lambda: rec.values("relay-1", "closed")[-1:] == [False])
            # readNow: in the meter's thing model, not in its register map -> a poll now
            polls = adapter.devices["meter-1"].stats.polls
            now = await call(gw, "meter", "meter-1", "readNow")
            assert (now.code, now.p) == (0, {"accepted": True})
            await eventually(lambda: adapter.devices["meter-1"].stats.polls > polls, timeout=1)
            assert (await call(gw, "relay", "nope", "cut")).code == 404
            assert (await call(gw, "env_sensor", "relay-1", "setThresholds", {})).code == 404
            assert (await call(gw, "meter", "meter-1", "reset")).code == 404  # not in model
        # a device that stopped answering: the call is answered 503/504, never hangs
        (tmp_path / "b").mkdir()
        gw2 = gateway(tmp_path / "b", [device("relay-2", "cabinet_relay", free_port())])
        async with running(gw2):
            reply = await call(gw2, "relay", "relay-2", "cut")
            assert reply.code == 503 and "refused" in (reply.msg or "")


# -- configuration errors --------------------------------------------------------------------


@pytest.mark.parametrize(("text", "line", "match"), [
    ("product: relay\nname: r\nvendor: v\npoints:\n  closed: {function: coil, address: 0,"
     " type: bool, colour: red}\n", 5, "unknown key 'colour'"),
    ("product: relay\nname: r\nvendor: v\npoints:\n  closed:\n    function: coil\n"
     "    address: zero\n    type: bool\n", 7, "address"),
    ("product: relay\nname: r\nvendor: v\npoints:\n  closed: {function: coil, address: 0,"
     " type: bool}\n  weather: {function: coil, address: 1, type: bool}\n", 6, "weather"),
])
def test_bad_register_map_is_refused_with_file_and_line(
        tmp_path: Path, text: str, line: int, match: str) -> None:
    (tmp_path / "bad.yaml").write_text(text)
    (tmp_path / "gw.yaml").write_text("""
gateway_id: gwA
adapters:
  modbus:
    devices:
      - {id: r1, map: bad.yaml, host: 127.0.0.1}
""")
    with pytest.raises(ConfigError, match=match) as info:
        load_gateway_config(tmp_path / "gw.yaml")
    assert f"{tmp_path / 'bad.yaml'}:{line}:" in str(info.value)
    assert "'r1'" in str(info.value)


@pytest.mark.parametrize(("device_yaml", "line", "match"), [
    ("{id: r1, map: m.yaml, host: 127.0.0.1, colour: red}", 6, "unknown key 'colour'"),
    ("{id: r1, map: m.yaml, transport: serial}", 6, "serial section"),
    ("{id: r1, map: m.yaml, host: 127.0.0.1, interval: soon}", 6, "duration"),
    ("{id: r/1, map: m.yaml, host: 127.0.0.1}", 6, "id"),
    ("{id: r1, map: m.yaml, host: 127.0.0.1}\n      - {id: r1, map: m.yaml, host: h2}", 4,
     "used twice"),
])
def test_bad_modbus_section_is_refused_with_line(tmp_path: Path, device_yaml: str, line: int,
                                                  match: str) -> None:
    (tmp_path / "gw.yaml").write_text(f"""
gateway_id: gwA
adapters:
  modbus:
    devices:
      - {device_yaml}
""")
    with pytest.raises(ConfigError, match=match) as info:
        load_gateway_config(tmp_path / "gw.yaml")
    assert f"gw.yaml:{line}:" in str(info.value)


def test_two_devices_on_one_unit_id_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="both unit 1 on one connection"):
        gateway(tmp_path, [device("a", "cabinet_relay", 1502), device("b", "parking_lock", 1502)])


# -- one dead device never delays the others --------------------------------------------------


async def polls_in_window(tmp_path: Path, devices: list[ModbusDeviceConfig],
                          healthy: list[str], window: float) -> tuple[dict[str, int], ModbusAdapter]:
    gw = gateway(tmp_path, devices, backoff_max=5.0)
    async with running(gw) as adapter:
        await eventually(lambda: all(adapter.devices[h].stats.polls for h in healthy))
        start = {h: adapter.devices[h].stats.polls for h in healthy}
        await asyncio.sleep(window)
        counts = {h: adapter.devices[h].stats.polls - start[h] for h in healthy}
    gw.outbox.close()
    return counts, adapter


async def test_a_dead_device_does_not_slow_the_others(tmp_path: Path) -> None:
    water = SimulatedDevice(shipped_map("water_immersion"), 1)
    relay = SimulatedDevice(shipped_map("cabinet_relay"), 2)
    meter = ModbusSimulator("eastron_sdm630")
    window = 1.5
    async with ModbusSimServer([water, relay]) as bus, meter, \
            ModbusProxy(bus.port, silent={7}) as gateway_box, \
            ModbusProxy(blackhole=True) as blackhole:
        healthy = [
            device("meter", "eastron_sdm630", meter.port),           # own connection
            device("water", "water_immersion", gateway_box.port, device_id=1),  # shared
            device("relay", "cabinet_relay", gateway_box.port, device_id=2),     # shared
        ]
        names = [d.id for d in healthy]
        baseline, _ = await polls_in_window(tmp_path / "a", healthy, names, window)
        dead = [
            # a unit behind the shared gateway that never answers
            device("dead-unit", "water_immersion", gateway_box.port, device_id=7, timeout=0.1),
            # a device that accepts the connection and never answers
            device("blackhole", "eastron_sdm630", blackhole.port, timeout=0.3),
            # nothing listening at all
            device("refused", "parking_lock", free_port()),
        ]
        loaded, adapter = await polls_in_window(tmp_path / "b", healthy + dead, names, window)
    print(f"polls in {window}s without / with dead devices: {baseline} / {loaded}")
    for name in names:
        assert baseline[name] >= 10, baseline
    # separate connection: untouched
    assert loaded["meter"] >= 0.7 * baseline["meter"], (baseline, loaded)
    # same connection as the silent unit: it costs at most its 0.1 s per backoff step
    for name in ("water", "relay"):
        assert loaded[name] >= 0.5 * baseline[name], (baseline, loaded)
    for name in names:
        stats = adapter.devices[name].stats
        assert stats.failed_polls == 0
    for name in ("dead-unit", "blackhole", "refused"):
        dev: ModbusDevice = adapter.devices[name]
        assert dev.stats.polls == 0 and dev.stats.failed_polls >= 1
        # capped, jittered backoff: a dead device is not hammered
        assert dev.stats.failed_polls <= 5, (name, dev.stats)
    assert blackhole.requests  # it did get requests, and never answered


async def test_comm_lost_and_restored(tmp_path: Path) -> None:
    port = free_port()
    sim = ModbusSimulator("water_immersion", port=port)
    await sim.start()
    gw = gateway(tmp_path, [device("w1", "water_immersion", port, interval=0.05, timeout=0.1)],
                 backoff_max=0.4)
    gw.config.adapters.modbus.lost_after = 2  # type: ignore[union-attr]
    rec = Recorder()
    gw.ctx.add_observer(rec)
    try:
        async with running(gw) as adapter:
            await eventually(lambda: adapter.devices["w1"].online)
            await sim.stop()
            await eventually(lambda: ("env_sensor", "w1", "commLost") in
                             [e[:3] for e in rec.events], timeout=5)
            assert not gw.ctx.is_online("env_sensor", "w1")
            sim = ModbusSimulator("water_immersion", port=port, values={"water": True})
            await sim.start()
            await eventually(lambda: ("env_sensor", "w1", "commRestored") in
                             [e[:3] for e in rec.events], timeout=5)
            await eventually(lambda: rec.values("w1", "water")[-1:] == [True])
            assert gw.ctx.is_online("env_sensor", "w1")
            assert [e[2] for e in rec.events] == ["commLost", "commRestored"]
            lost = rows(gw, "env_sensor/w1/event/commLost")
            assert len(lost) == 1 and lost[0].p is not None and lost[0].p["reason"]
            states = [e.p["online"] for e in rows(gw, "env_sensor/w1/state") if e.p]
            assert states == [True, False, True]
    finally:
        await sim.stop()


# -- the link's queue ------------------------------------------------------------------------


async def test_priority_lock_serves_writes_first_then_fifo() -> None:
    lock = PriorityLock()
    order: list[str] = []
    await lock.acquire(1)

    async def take(name: str, priority: int) -> None:
        async with lock.hold(priority):
            order.append(name)

    tasks = [asyncio.create_task(take(n, p)) for n, p in
             [("read-a", 1), ("read-b", 1), ("write", 0), ("read-c", 1)]]
    cancelled = asyncio.create_task(take("cancelled", 0))
    await asyncio.sleep(0.01)
    cancelled.cancel()
    await asyncio.sleep(0.01)
    lock.release()
    await asyncio.gather(*tasks)
    assert order == ["write", "read-a", "read-b", "read-c"]
    started = time.monotonic()
    async with lock.hold(1):  # free again
        pass
    assert time.monotonic() - started < 0.1
