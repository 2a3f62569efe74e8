"""The alarm part of a worker built from config, fed through the real alarm sink lane."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy.engine import Engine

from cloud.actions import WritePoint
from cloud.alarms.config import AlarmsConfig
from cloud.alarms.service import build_alarms
from cloud.alarms.states import State
from cloud.sinks import SinksConfig, build_router
from tests.support.net import eventually
from thingmodels.ids import now_ms

from .alarm_signals import signal
from .local_servers import WebhookServer


async def test_signals_through_the_sink_lane_reach_a_webhook(engine: Engine) -> None:
    registry = CollectorRegistry()
    points: list[WritePoint] = []
    with WebhookServer() as hook:
        config = AlarmsConfig.model_validate({
            "sweep_interval": 0.05, "sweep_grace": 0,
            "channels": [{"type": "webhook", "url": hook.url, "min_level": "major",
                          "events": ["raised", "cleared"]}],
        })
        alarms = build_alarms(engine, config, registry=registry, emit_point=points.append)
        sinks = build_router(SinksConfig(), registry, alarm_handler=alarms.manager.handle)
        tasks = [asyncio.create_task(alarms.run()), asyncio.create_task(sinks.run())]
        try:
            # one raise with a debounce and no further signal: the sweep opens it on time
            start = now_ms()
            await sinks.dispatch([signal(True, start, device="bay3", type="fuelCar",
                                         level="critical", debounce_ms=300)])
            await eventually(lambda: len(hook.requests) == 1, timeout=30)
            assert hook.requests[0].json["event"] == "raised"
            assert hook.requests[0].json["alarm"]["opened"] == start + 300
            await sinks.dispatch([signal(False, now_ms(), device="bay3", type="fuelCar",
                                         level="critical")])
            await eventually(lambda: len(hook.requests) == 2, timeout=30)
            # the channel counts "sent" once it has the server's answer, after the server
            # recorded the request
            await eventually(lambda: 'voltmesh_alarm_notifications_total{channel="webhook1",'
                             'outcome="sent"} 2.0' in generate_latest(registry).decode(),
                             timeout=30)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    assert hook.requests[1].json["alarm"]["state"] == State.CLEARED
    assert [p.fields["active"] for p in points] == [1, 0]
    exposed = generate_latest(registry).decode()
    assert 'voltmesh_alarm_notifications_total{channel="webhook1",outcome="sent"} 2.0' in exposed
    assert 'voltmesh_alarm_transitions_total{event="raised"} 1.0' in exposed
