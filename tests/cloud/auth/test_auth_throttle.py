"""Failed-login throttling: unit, through the service, and over HTTP."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import Engine

from cloud.auth.errors import NotAuthenticated, TooManyAttempts
from cloud.auth.principal import Role
from cloud.auth.throttle import LoginThrottle
from tests.support.tenancy import fast_auth_config, install_tenancy


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_window_and_reset() -> None:
    clock = Clock()
    throttle = LoginThrottle(3, 60, clock=clock)
    for _ in range(3):
        throttle.check("alice")
        throttle.failed("alice")
        clock.now += 10
    with pytest.raises(TooManyAttempts) as info:
        throttle.check("alice")
    assert info.value.retry_after == 30  # the first failure (t=1000) leaves the window at 1060
    throttle.check("bob")  # others are not affected
    clock.now = 1060.5
    throttle.check("alice")  # one failure left the window
    throttle.failed("alice")
    with pytest.raises(TooManyAttempts):
        throttle.check("alice")
    throttle.succeeded("alice")
    throttle.check("alice")


def test_disabled_and_bounded() -> None:
    off = LoginThrottle(0, 60)
    for _ in range(100):
        off.failed("x")
        off.check("x")
    small = LoginThrottle(1, 60, max_users=5)
    for i in range(50):
        small.failed(f"user{i}")
    assert len(small._failures) == 5
    with pytest.raises(TooManyAttempts):
        small.check("user49")
    small.check("user0")  # evicted: the oldest entries go first


async def test_login_is_throttled_per_username(engine: Engine) -> None:
    app = FastAPI()
    world = install_tenancy(app, engine, fast_auth_config(login_max_failures=3,
                                                          login_failure_window=600))
    clock = Clock()
    world.service.throttle.clock = clock
    user = world.user("A", Role.READ_ONLY)
    other = world.user("B", Role.READ_ONLY)
    for _ in range(3):
        with pytest.raises(NotAuthenticated):
            world.service.login(user.username, "wrong-password")
    with pytest.raises(TooManyAttempts):  # even the right password waits now
        world.service.login(user.username, user.password)
    world.service.login(other.username, other.password)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as client:
        r = await client.post("/api/v1/auth/token",
                              data={"username": user.username.upper(),
                                    "password": user.password})
        assert r.status_code == 429 and r.json()["error"] == "too_many_attempts"
        assert r.headers["Retry-After"] == "600"
        clock.now += 601
        r = await client.post("/api/v1/auth/token",
                              data={"username": user.username, "password": user.password})
        assert r.status_code == 200, r.text
