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

from bridges.modbus import encode_service, plan_reads, shipped_map
from edge.adapters.modbus import ModbusAdapter, ModbusDevice
from edge.adapters.modbus_link import LinkDown, ModbusLink, NoAnswer, PriorityLock
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
from sim.modbus import (
    ModbusSerialSimServer,
    ModbusSimServer,
    ModbusSimulator,
    NullModem,
    ParkingLockBehaviour,
    SimulatedDevice,
)
from tests.support.mosquitto import USERS, Mosquitto
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
        self.pdus: list[tuple[int, bytes]] = []  # (unit, request PDU) as received
        self.connections = 0
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
        self.connections += 1
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        tid = 0
        try:
            while True:
                unit, pdu, client_tid = await (self._read_rtu(reader) if self.rtu
                                               else self._read_mbap(reader))
                self.requests[unit] = self.requests.get(unit, 0) + 1
                self.pdus.append((unit, pdu))
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
        mosquitto: Mosquitto, tmp_path: Path) -> None:
    meter = ModbusSimulator("eastron_sdm630", values={"power": 7.25})
    climate = ModbusSimulator("xymd02_temperature_humidity",
                              values={"temperature": -20.5, "humidity": 54.6})
    storage = ModbusSimulator("victron_gx_battery", values={"power": -3.5, "soc": 81})
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "meter.yaml").write_text((MAPS / "eastron_sdm630.yaml").read_text())
    async with meter, climate, storage, ModbusProxy(climate.port, rtu=True) as rtu:
        (tmp_path / "gw.yaml").write_text(f"""
gateway_id: gwA
mqtt: {{port: {mosquitto.port}, password: {USERS['gwA']}, backoff_max: 300ms}}
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
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, username="cloud",
                                  password=USERS["cloud"]) as cloud:
            await cloud.subscribe("ev/v1/gwA/#", qos=1)
            seen: dict[str, list[Envelope]] = {}

            async def collect() -> None:
                async for message in cloud.messages:
                    env = decode(bytes(message.payload))
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


# -- serial RTU: a real tty line ---------------------------------------------------------------


async def test_serial_rtu_line_through_a_null_modem_cable(tmp_path: Path) -> None:
    """Devices on an RS485 line served by pymodbus's serial server on one pty; the gateway
    opens the other pty with pyserial (RTU framing). Values, a service write, a unit that is
    not on the bus, a cut cable and a USB adapter pulled out and plugged back in."""
    climate = SimulatedDevice(shipped_map("xymd02_temperature_humidity"), 5,
                              values={"temperature": -20.5, "humidity": 54.6})
    relay_dev = SimulatedDevice(shipped_map("cabinet_relay"), 4)
    water = SimulatedDevice(shipped_map("water_immersion"), 6)
    async with NullModem(tmp_path / "dev", "ttyUSB") as cable, \
            ModbusSerialSimServer([climate, relay_dev, water], cable.a, baudrate=19200):
        # 8N1: Linux ptys have no parity (the driver drops PARENB, and pyserial's re-apply
        # of the settings then fails with EINVAL), so 8E1 needs a real UART
        line = f"serial: {{port: {cable.b}, baudrate: 19200}}"
        (tmp_path / "gw.yaml").write_text(f"""
gateway_id: gwA
mqtt: {{port: {free_port()}, backoff_max: 300ms}}
outbox: {{path: outbox.db}}
telemetry: {{flush_interval: 50ms, stats_interval: 1h}}
adapters:
  modbus:
    backoff_max: 500ms
    devices:
      - {{id: climate-1, map: {MAPS / 'xymd02_temperature_humidity.yaml'}, device_id: 5,
         interval: 100ms, timeout: 300ms, {line}}}
      - {{id: relay-1, map: {MAPS / 'cabinet_relay.yaml'}, device_id: 4, interval: 100ms,
         timeout: 300ms, {line}}}
      - {{id: water-1, map: {MAPS / 'water_immersion.yaml'}, device_id: 6, interval: 100ms,
         timeout: 300ms, {line}}}
      - {{id: absent-1, map: {MAPS / 'water_immersion.yaml'}, device_id: 9, interval: 100ms,
         timeout: 100ms, {line}}}
""")
        gw = EdgeGateway(load_gateway_config(tmp_path / "gw.yaml"))
        rec = Recorder()
        gw.ctx.add_observer(rec)
        async with running(gw) as adapter:
            [link] = adapter.links.values()  # one line, one connection for all four units
            assert link.transport == "serial" and link.rtu_framing
            await eventually(lambda: rec.values("climate-1", "temperature"), timeout=5)
            assert rec.props[[d for _, d, _ in rec.props].index("climate-1")][2] == {
                "temperature": -20.5, "humidity": 54.6}
            await eventually(lambda: rec.values("relay-1", "closed") == [True])
            climate.set("temperature", 31.5)
            water.set("water", True)
            await eventually(lambda: rec.values("climate-1", "temperature")[-1] == 31.5)
            await eventually(lambda: rec.values("water-1", "water")[-1:] == [True])
            # the values went out as properties (MQTT envelopes in the outbox)
            await eventually(lambda: {"temperature": 31.5} in [
                s.p for env in rows(gw, "env_sensor/climate-1/prop") for s in env.samples()])
            # a service through the serial line: FC05 coil 0 off
            cut = await call(gw, "relay", "relay-1", "cut")
            assert (cut.code, cut.p) == (0, {"accepted": True})
            assert [c.service for c in relay_dev.calls] == ["cut"]
            await eventually(lambda: rec.values("relay-1", "closed")[-1:] == [False])
            # the unit that is not on the bus: lost, and it did not stop the others
            await eventually(lambda: ("env_sensor", "absent-1", "commLost") in
                             [e[:3] for e in rec.events])
            assert not adapter.devices["absent-1"].stats.polls
            for name in ("climate-1", "relay-1", "water-1"):
                assert adapter.devices[name].stats.failed_polls == 0, name

            def events(name: str) -> list[str]:
                return [e[2] for e in rec.events if e[1] == name]

            # the cable is cut: every unit goes silent, then comes back when it is mended
            cable.cut()
            await eventually(lambda: all("commLost" in events(n) for n in
                                         ("climate-1", "relay-1", "water-1")), timeout=10)
            cable.mend()
            await eventually(lambda: all("commRestored" in events(n) for n in
                                         ("climate-1", "relay-1", "water-1")), timeout=10)
            # the USB adapter is pulled out (its tty disappears: EIO) and plugged back in
            connects = link.connects
            cable.unplug()
            await eventually(lambda: all(events(n).count("commLost") == 2 for n in
                                         ("climate-1", "relay-1", "water-1")), timeout=10)
            lost = [e[3]["reason"] for e in rec.events if e[2] == "commLost"]
            # (the reason is capped in length; under xdist the tmp path is long)
            assert "no serial port" in lost[-1], lost
            cable.replug()
            await eventually(lambda: all(events(n).count("commRestored") == 2 for n in
                                         ("climate-1", "relay-1", "water-1")), timeout=10)
            assert link.connects > connects
            climate.set("temperature", 12.0)
            await eventually(lambda: rec.values("climate-1", "temperature")[-1] == 12.0)
            assert events("absent-1") == ["commLost"]


# -- merged reads, per-device interval, reconnect with backoff ----------------------------------


async def test_neighbouring_points_are_read_in_one_request_each_device_at_its_interval(
        tmp_path: Path) -> None:
    meter = SimulatedDevice(shipped_map("eastron_sdm630"), 1)
    lock_dev = SimulatedDevice(shipped_map("parking_lock"), 2)
    async with ModbusSimServer([meter, lock_dev]) as bus, ModbusProxy(bus.port) as wire:
        gw = gateway(tmp_path, [
            device("meter-1", "eastron_sdm630", wire.port, device_id=1, interval=0.1),
            device("lock-1", "parking_lock", wire.port, device_id=2, interval=0.4)])
        async with running(gw) as adapter:
            await eventually(lambda: adapter.devices["lock-1"].stats.polls >= 3, timeout=10)
            meter_polls = adapter.devices["meter-1"].stats.polls
            lock_polls = adapter.devices["lock-1"].stats.polls
        # the meter's 12 float32 points: 2 requests on the wire (FC04 0x0000+12, 0x0034+24)
        meter_pdus = [pdu for unit, pdu in wire.pdus if unit == 1]
        assert set(meter_pdus) == {bytes.fromhex("04" "0000" "000C"),
                                   bytes.fromhex("04" "0034" "0018")}
        assert len(meter_pdus) in (2 * meter_polls, 2 * meter_polls + 1)  # + one in flight
        # the lock's position, occupancy, battery, alarm: one FC03 of 4 registers
        assert {pdu for unit, pdu in wire.pdus if unit == 2} == {bytes.fromhex("03" "0000" "0004")}
        # each device at its own interval (0.1 s vs 0.4 s): about 4 meter polls per lock poll
        assert meter_polls >= 2.5 * lock_polls, (meter_polls, lock_polls)


async def test_link_reconnects_with_a_capped_backoff() -> None:
    """Nothing listening: the connect fails, reads fail fast until the backoff has passed
    (service writes try anyway); then a device appears and the link connects. A peer that
    accepts but never answers is dropped after ``reconnect_after`` silent requests."""
    [read] = plan_reads(shipped_map("water_immersion"))
    [cut] = encode_service(shipped_map("cabinet_relay"), "cut")
    port = free_port()
    link = ModbusLink(f"tcp:127.0.0.1:{port}", "tcp", host="127.0.0.1", port=port,
                      backoff_initial=0.2, backoff_max=0.8, reconnect_after=3)
    try:
        with pytest.raises(LinkDown, match="connection refused"):
            await link.read(1, read, 0.5)
        with pytest.raises(LinkDown, match=r"next attempt in 0\.[0-2]s"):
            await link.read(1, read, 0.5)  # fast, without a connect attempt
        with pytest.raises(LinkDown, match="connection refused"):
            await link.write(1, cut, 0.5)  # a write is tried at once (a safety action)
        waits = []
        for _ in range(6):  # the wait doubles (with jitter) and stops at backoff_max
            with contextlib.suppress(LinkDown):
                await link.read(1, read, 0.5)
            waits.append(link._retry_at - asyncio.get_running_loop().time())
            await asyncio.sleep(max(0.0, waits[-1]) + 0.01)
        assert max(waits) <= 0.8 and max(waits[3:]) >= 0.4 - 0.05, waits
        async with ModbusSimulator("water_immersion", port=port, values={"water": True}):
            await asyncio.sleep(max(0.0, link._retry_at - asyncio.get_running_loop().time()))
            assert await link.read(1, read, 0.5) == [1]
            assert link.connects == 1
    finally:
        link.close()

    async with ModbusProxy(blackhole=True) as blackhole:
        link = ModbusLink("blackhole", "tcp", host="127.0.0.1", port=blackhole.port,
                          reconnect_after=3)
        try:
            for _ in range(3):
                with pytest.raises(NoAnswer):
                    await link.read(1, read, 0.1)
            assert (link.reconnects_forced, link.connected) == (1, False)
            with pytest.raises(NoAnswer):
                await link.read(1, read, 0.1)  # on a new connection
            assert (link.connects, blackhole.connections) == (2, 2)
        finally:
            link.close()
