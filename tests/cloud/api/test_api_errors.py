"""The one route class of the north-bound API (cloud.api.errors): what it answers, and that
every router of the integrated app uses it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, ClassVar

import pytest
from fastapi import APIRouter, FastAPI, HTTPException, Query
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import BaseRoute

from cloud.api.errors import OWN, ApiError, ErrorRoute, error_route
from cloud.auth.principal import AuthProblem
from cloud.errors import StoreError
from tests.cloud.api_contract.conftest import make_cloud


class Refused(Exception):
    """Carries its own status and code, like the accounts, payments and auth trees."""

    status: ClassVar[int] = 402
    code: ClassVar[str] = "insufficient_funds"


class Missing(LookupError):
    pass


def _client() -> TestClient:
    route = error_route({LookupError: (400, "bad_request"), Missing: (404, "not_found"),
                         Refused: OWN, KeyError: OWN}, "TestRoute")
    router = APIRouter(route_class=route)
    failures: dict[str, Exception] = {
        "api": ApiError(409, "no_session", "no open session"),
        "lookup": LookupError("no such thing"), "missing": Missing("no row 7"),
        "own": Refused("balance 1.00"), "store": StoreError("database is down"),
        "auth": AuthProblem(401, "invalid_grant", "wrong password",
                            headers={"WWW-Authenticate": 'Bearer realm="voltmesh"'}),
        "http": HTTPException(503, "not configured"), "unmapped": RuntimeError("a bug"),
        "no_attrs": KeyError("k")}

    @router.get("/fail/{what}")
    def fail(what: str, limit: Annotated[int, Query(ge=1)] = 1) -> None:
        raise failures[what]

    app = FastAPI()
    app.include_router(router)
    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(("what", "status", "body"), [
    ("api", 409, {"error": "no_session", "detail": "no open session"}),
    ("lookup", 400, {"error": "bad_request", "detail": "no such thing"}),
    ("missing", 404, {"error": "not_found", "detail": "no row 7"}),  # the nearer class wins
    ("own", 402, {"error": "insufficient_funds", "detail": "balance 1.00"}),
    ("store", 503, {"error": "store_unavailable", "detail": "database is down"}),
    ("auth", 401, {"error": "invalid_grant", "detail": "wrong password"}),
    ("http", 503, {"error": "unavailable", "detail": "not configured"}),
])
def test_failures_are_error_and_detail(what: str, status: int, body: dict[str, str]) -> None:
    with _client() as client:
        r = client.get(f"/fail/{what}")
    assert (r.status_code, r.json()) == (status, body)
    if what == "auth":
        assert r.headers["WWW-Authenticate"] == 'Bearer realm="voltmesh"'


def test_invalid_request_is_one_line_naming_the_field() -> None:
    with _client() as client:
        r = client.get("/fail/api", params={"limit": "0"})
    assert r.status_code == 422
    assert r.json() == {"error": "invalid_request",
                        "detail": "query.limit: Input should be greater than or equal to 1"}


def test_an_unmapped_exception_is_a_server_error() -> None:
    with _client() as client:
        assert client.get("/fail/unmapped").status_code == 500
        # mapped to its own status and code, but it has none: a bug of the map, not a 4xx
        assert client.get("/fail/no_attrs").status_code == 500


def _api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)  # FastAPI >= 0.165 includes lazily
        if included is not None:
            yield from _api_routes(included.routes)


def test_every_api_route_of_the_app_renders_errors_alike(tmp_path: Path) -> None:
    app = make_cloud(tmp_path).app
    api = [r for r in _api_routes(app.routes) if r.path.startswith("/api/v1")]
    prefixes = {r.path.split("/")[3] for r in api}
    assert {"auth", "tenants", "stations", "users", "payments", "orders", "alarms", "devices",
            "commands", "stats"} <= prefixes, prefixes
    assert [r.path for r in api if not isinstance(r, ErrorRoute)] == []


def test_a_bug_in_the_integrated_app_is_still_the_error_body(tmp_path: Path) -> None:
    app = make_cloud(tmp_path).app

    @app.get("/api/v1/_bug")
    def bug() -> None:
        raise RuntimeError("a bug")

    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/api/v1/_bug")
    assert (r.status_code, r.json()) == (500, {"error": "internal", "detail": "internal error"})
