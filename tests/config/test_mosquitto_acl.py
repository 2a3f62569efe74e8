"""The shipped Mosquitto config + ACL confine each gateway to its own ev/v1/{gw}/ prefix."""

import asyncio

import aiomqtt
import pytest

from tests.support.mosquitto import USERS, Mosquitto

pytestmark = pytest.mark.mosquitto


def client(broker: Mosquitto, user: str, **kw: object) -> aiomqtt.Client:
    return aiomqtt.Client("127.0.0.1", broker.port, username=user, password=USERS[user],
                          identifier=f"acl-{user}", **kw)  # type: ignore[arg-type]


async def _collect(c: aiomqtt.Client, seconds: float) -> list[str]:
    got: list[str] = []
    try:
        async with asyncio.timeout(seconds):
            async for m in c.messages:
                got.append(m.topic.value)
    except TimeoutError:
        pass
    return got


async def test_gateway_is_confined_to_its_own_prefix(mosquitto: Mosquitto) -> None:
    async with client(mosquitto, "cloud") as cloud, client(mosquitto, "gwA") as gw_a:
        await cloud.subscribe("ev/v1/#", qos=1)
        await gw_a.publish("ev/v1/gwA/meter/m1/prop", b"own", qos=1)
        await gw_a.publish("ev/v1/gwB/meter/m1/prop", b"foreign", qos=1)
        await gw_a.publish("ev/v1/gwB/connector/c1/svc/remoteStop", b"forged", qos=1)
        got = await _collect(cloud, 1.5)
    assert got == ["ev/v1/gwA/meter/m1/prop"]


async def test_gateway_cannot_subscribe_to_another_gateway(mosquitto: Mosquitto) -> None:
    async with client(mosquitto, "gwA") as gw_a, client(mosquitto, "cloud") as cloud:
        result = await gw_a.subscribe("ev/v1/gwB/#", qos=1)
        own = await gw_a.subscribe("ev/v1/gwA/#", qos=1)
        await cloud.publish("ev/v1/gwB/connector/c1/svc/remoteStart", b"for B", qos=1)
        await cloud.publish("ev/v1/gwA/connector/c1/svc/remoteStart", b"for A", qos=1)
        got = await _collect(gw_a, 1.5)
    granted = getattr(result[0], "value", result[0])
    assert granted == 128 or "gwB" not in "".join(got)  # refused in SUBACK (0x80)
    assert getattr(own[0], "value", own[0]) == 1
    assert got == ["ev/v1/gwA/connector/c1/svc/remoteStart"]


async def test_wrong_password_is_refused(mosquitto: Mosquitto) -> None:
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, username="gwA",
                                  password="wrong"):
            pass
