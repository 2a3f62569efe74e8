"""SinksConfig: per-lane defaults survive partial sections, unknown keys refused; build_router."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from cloud.actions import Action, Lane
from cloud.sinks import Overflow, SinksConfig, build_router


def test_lane_defaults_and_partial_sections() -> None:
    config = SinksConfig.model_validate({"billing": {"max_items": 500},
                                         "webhooks": {"in_flight": 2},
                                         "influx": {"url": "http://127.0.0.1:8428"}})
    assert config.billing.max_items == 500
    assert config.billing.overflow is Overflow.BLOCK and config.billing.in_flight == 1
    assert config.alarms.overflow is Overflow.BLOCK and config.alarms.max_attempts == 0
    assert config.commands.overflow is Overflow.BLOCK and config.commands.batch_size == 1
    assert config.webhooks.overflow is Overflow.DROP_OLDEST and config.webhooks.in_flight == 2
    assert config.webhooks.batch_size == 1  # kept from the webhooks defaults
    assert config.republish.overflow is Overflow.DROP_OLDEST
    assert config.influx is not None
    queue = config.influx.queue()
    assert queue.overflow is Overflow.DROP_OLDEST
    assert (queue.max_items, queue.batch_size, queue.max_delay, queue.in_flight) == \
        (100_000, 5_000, 1.0, 2)


@pytest.mark.parametrize("raw", [
    {"billing": {"max_itmes": 5}},
    {"influx": {"url": "http://x", "bukcet": "b"}},
    {"telemetry": {}},
    {"alarms": {"overflow": "drop_newest"}},
    {"commands": {"in_flight": 0}},
])
def test_unknown_keys_and_bad_values_are_refused(raw: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SinksConfig.model_validate(raw)


def test_build_router_makes_a_queue_per_lane_that_has_a_sink() -> None:
    async def handle(batch: list[Action]) -> None:
        return None

    async def publish(topic: str, payload: bytes, qos: int, retain: bool) -> None:
        return None

    bare = build_router(SinksConfig(), CollectorRegistry())
    assert set(bare.queues) == {Lane.WEBHOOKS}
    full = build_router(SinksConfig.model_validate({"influx": {}}), CollectorRegistry(),
                        publish=publish, call=lambda *a: handle([]),
                        billing_handler=handle, alarm_handler=handle)
    assert set(full.queues) == set(Lane)
    assert {lane: q.name for lane, q in full.queues.items()} == {lane: lane.value for lane in Lane}
    assert full.queues[Lane.COMMANDS].ttl_of is not None
