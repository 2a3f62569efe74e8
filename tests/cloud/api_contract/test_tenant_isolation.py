"""Tenant isolation on every list endpoint of the integrated app, discovered from its OpenAPI.

Every ``GET /api/v1/...`` without path parameters is checked for tenants A, agent-of-A and B
(seeded in ``conftest.py``): a tenant's staff see their own rows and those of the tenants below
them, never another operator's or the operator above them; a "read" API key sees what a
read-only user sees; a key without the endpoint's scope gets 403; no credentials get 401. GET
by id of another tenant's row answers 404. An endpoint added later is covered automatically;
one that shows nothing for some tenant fails unless it is in :data:`NOT_PER_TENANT` with a
reason, so no check passes vacuously.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloud.auth.principal import ROLE_SCOPES, SCOPES, Role
from cloud.auth.service import SYSTEM
from tests.cloud.api_contract.conftest import SEEDED, Contract, Seeded, make_cloud

Client = Callable[..., httpx.AsyncClient]
API = "/api/v1/"
TENANT_ROLES = (Role.OPERATOR_ADMIN, Role.FINANCE, Role.MAINTAINER, Role.READ_ONLY)

#: endpoints that legitimately show none of a tenant's seeded rows, with the reason
NOT_PER_TENANT: dict[str, str] = {
    "/api/v1/auth/me": "describes the caller, not a list of the tenant's rows",
}

#: known isolation bugs (kept visible: strict xfail turns a fix into a failure to update this)
#: (until 7b6ae60 /api/v1/devices and /api/v1/gateways were listed here: no authentication)
KNOWN_LEAKS: dict[str, str] = {}

#: values of required query parameters (a new endpoint with another required parameter fails
#: in test_required_query_parameters_are_known until it is added here); the seeded days
QUERY: dict[str, str] = {"from": "2025-12-28", "to": "2025-12-31"}

#: endpoints any authenticated caller may read, with the reason
NO_SCOPE: dict[str, str] = {
    "/api/v1/auth/me": "the caller's own identity",
    "/api/v1/tenants": "the caller's own tenant and those below it (docs/auth.md)",
}

#: who sees whose rows: label -> (own and below, never)
VISIBILITY: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "A": (("A", "agentA"), ("B",)),
    "agentA": (("agentA",), ("A", "B")),
    "B": (("B",), ("A", "agentA")),
}

#: detail endpoints: kind of seeded row -> path template
DETAILS: dict[str, str] = {
    "station": "/api/v1/stations/{}", "charger": "/api/v1/chargers/{}",
    "connector": "/api/v1/connectors/{}", "tariff": "/api/v1/tariffs/{}",
    "order": "/api/v1/orders/{}", "user": "/api/v1/users/{}", "card": "/api/v1/cards/{}",
    "vehicle": "/api/v1/vehicles/{}", "alarm": "/api/v1/alarms/{}",
    "payment": "/api/v1/payments/{}", "staff": "/api/v1/staff/{}",
    "apikey": "/api/v1/apikeys/{}", "tenant": "/api/v1/tenants/{}",
}


def _list_endpoints() -> dict[str, list[str]]:
    """Every GET under /api/v1 without path parameters that the OpenAPI document of a
    throw-away service declares (parametrization happens before fixtures exist), with the
    names of its required query parameters."""
    with tempfile.TemporaryDirectory() as tmp:
        cloud = make_cloud(Path(tmp))
        try:
            paths = cloud.app.openapi()["paths"]
        finally:
            cloud.engine.dispose()
    return {p: [q["name"] for q in ops["get"].get("parameters", [])
                if q.get("in") == "query" and q.get("required")]
            for p, ops in sorted(paths.items())
            if p.startswith(API) and "{" not in p and "get" in ops}


async def required_scopes(contract: Contract, client_for: Client, path: str) -> frozenset[str]:
    """The scopes ``path`` requires, learnt from its 403 answers ("missing scope X") to keys of
    A holding fewer scopes (a key needs one scope at least: two different fillers)."""
    world = contract.world
    found: set[str] = set()
    for filler in ("stats:read", "devices:read"):
        for _ in range(len(SCOPES)):
            scopes = found | {filler}
            key = world.service.issue_api_key(SYSTEM, "probe", sorted(scopes),
                                              tenant_id=world.a)
            r = await _get(client_for({"X-API-Key": key.key}), path)
            if r.status_code != 403:
                assert r.status_code == 200, (path, scopes, r.status_code, r.text)
                break
            detail = r.json()["detail"]
            assert detail.startswith("missing scope "), detail
            found.add(detail.removeprefix("missing scope "))
    return frozenset(found)


REQUIRED_QUERY = _list_endpoints()
PATHS = list(REQUIRED_QUERY)


def _param(path: str) -> Any:
    if path in KNOWN_LEAKS:
        return pytest.param(path, marks=pytest.mark.xfail(strict=True,
                                                          reason=KNOWN_LEAKS[path]))
    return path


def _tenant_fields(body: Any) -> Iterator[str]:
    """Every value of a ``tenant_id`` / ``tenantId`` key anywhere in a JSON document."""
    if isinstance(body, dict):
        for key, value in body.items():
            if key in ("tenant_id", "tenantId") and isinstance(value, str):
                yield value
            else:
                yield from _tenant_fields(value)
    elif isinstance(body, list):
        for item in body:
            yield from _tenant_fields(item)


def _seen(text: str, rows: Seeded) -> set[str]:
    return {m for m in rows.markers if m in text}


async def _get(client: httpx.AsyncClient, path: str) -> httpx.Response:
    params = {name: QUERY[name] for name in REQUIRED_QUERY.get(path, []) if name in QUERY}
    return await client.get(path, params=params)


def test_required_query_parameters_are_known() -> None:
    for path, names in REQUIRED_QUERY.items():
        assert set(names) <= set(QUERY), f"{path} requires {names}: add values to QUERY"


def _body(response: httpx.Response) -> tuple[str, Any]:
    if response.headers.get("content-type", "").startswith("application/json"):
        return response.text, response.json()
    return response.text, None  # CSV and other text: markers still apply


def test_discovery_finds_the_list_endpoints() -> None:
    """The discovery itself can fail: the core list endpoints must be among the found ones."""
    for path in ("/api/v1/stations", "/api/v1/chargers", "/api/v1/users", "/api/v1/cards",
                 "/api/v1/vehicles", "/api/v1/orders", "/api/v1/payments", "/api/v1/alarms"):
        assert path in PATHS


def test_seeded_markers_are_unambiguous(contract: Contract) -> None:
    """No marker of one tenant is a substring of another tenant's marker."""
    for label, rows in contract.seeded.items():
        for other, other_rows in contract.seeded.items():
            if other == label:
                continue
            for m in rows.markers:
                assert not any(m in o for o in other_rows.markers), (label, m, other)


@pytest.mark.parametrize("path", [_param(p) for p in PATHS])
@pytest.mark.parametrize("label", SEEDED)
async def test_staff_see_own_and_below_never_others(contract: Contract, client_for: Client,
                                                    label: str, path: str) -> None:
    own, never = VISIBILITY[label]
    visible = {contract.world.tenant(x) for x in own}
    for role in TENANT_ROLES:
        r = await _get(client_for(contract.world.headers(label, role)), path)
        if r.status_code == 403:  # this role lacks the scope: checked by the scope tests
            assert role is not Role.OPERATOR_ADMIN, (path, r.text)
            continue
        assert r.status_code == 200, (path, role, r.status_code, r.text)
        text, body = _body(r)
        for x in never:
            leaked = _seen(text, contract.seeded[x])
            assert not leaked, f"{label}/{role} sees {x}'s rows on {path}: {sorted(leaked)}"
        foreign = set(_tenant_fields(body)) - visible
        assert not foreign, f"{label}/{role} sees tenants {foreign} on {path}"
        if path in NOT_PER_TENANT:
            continue
        for x in own:
            assert _seen(text, contract.seeded[x]), \
                f"{label}/{role}: none of {x}'s rows on {path} (empty list? body {text[:300]})"


@pytest.mark.parametrize("path", PATHS)
async def test_platform_admin_sees_every_tenant(contract: Contract, client_for: Client,
                                                path: str) -> None:
    r = await _get(client_for(contract.world.headers("platform", Role.PLATFORM_ADMIN)), path)
    assert r.status_code == 200, (path, r.text)
    if path in NOT_PER_TENANT:
        return
    for label in SEEDED:
        assert _seen(r.text, contract.seeded[label]), f"platform misses {label}'s rows on {path}"


@pytest.mark.parametrize("path", [_param(p) for p in PATHS])
@pytest.mark.parametrize("label", SEEDED)
async def test_read_key_behaves_like_read_only_user(contract: Contract, client_for: Client,
                                                    label: str, path: str) -> None:
    user = await _get(client_for(contract.world.headers(label, Role.READ_ONLY)), path)
    key = await _get(client_for(contract.world.key_headers(label, "read")), path)
    assert key.status_code == user.status_code, (path, key.text, user.text)
    if path in NOT_PER_TENANT:
        return
    _, never = VISIBILITY[label]
    for x in (*VISIBILITY[label][0], *never):
        assert _seen(key.text, contract.seeded[x]) == _seen(user.text, contract.seeded[x]), \
            (path, x)
    for x in never:
        assert not _seen(key.text, contract.seeded[x]), (path, x)


async def test_scope_probe_finds_the_scope(contract: Contract, client_for: Client) -> None:
    assert await required_scopes(contract, client_for, "/api/v1/orders") == {"orders:read"}
    assert await required_scopes(contract, client_for, "/api/v1/staff") == {"staff:admin"}


@pytest.mark.parametrize("path", [_param(p) for p in PATHS])
async def test_missing_scope_is_403(contract: Contract, client_for: Client, path: str) -> None:
    world = contract.world
    scopes = await required_scopes(contract, client_for, path)
    if not scopes:
        assert path in NO_SCOPE, f"{path} requires no scope"
        return
    # a key of A with every scope but the endpoint's
    issued = world.service.issue_api_key(
        SYSTEM, f"all but {sorted(scopes)}", sorted(ROLE_SCOPES[Role.OPERATOR_ADMIN] - scopes),
        tenant_id=world.a)
    r = await _get(client_for({"X-API-Key": issued.key}), path)
    assert r.status_code == 403, (path, r.status_code, r.text)
    assert r.json()["error"] == "forbidden"
    # and every role lacking one of them, by token
    for role in TENANT_ROLES:
        if not scopes <= ROLE_SCOPES[role]:
            r = await _get(client_for(world.headers("A", role)), path)
            assert r.status_code == 403, (path, role, r.text)
    # the key with the scopes is admitted (so the 403 above is about the scope)
    ok = world.service.issue_api_key(SYSTEM, f"only {sorted(scopes)}", sorted(scopes),
                                     tenant_id=world.a)
    r = await _get(client_for({"X-API-Key": ok.key}), path)
    assert r.status_code == 200, (path, r.text)
    for x in ("B",):
        assert not _seen(r.text, contract.seeded[x])


@pytest.mark.parametrize("path", [_param(p) for p in PATHS])
async def test_no_credentials_is_401(contract: Contract, client_for: Client,
                                     path: str) -> None:
    r = await _get(client_for(), path)
    assert r.status_code == 401, (path, r.status_code, r.text[:300])


@pytest.mark.parametrize("kind", sorted(DETAILS))
async def test_detail_of_another_tenant_is_404(contract: Contract, client_for: Client,
                                               kind: str) -> None:
    world = contract.world
    seeded = contract.seeded
    template = DETAILS[kind]
    for label, (own, never) in VISIBILITY.items():
        client = client_for(world.headers(label, Role.OPERATOR_ADMIN))
        for x in own:
            r = await client.get(template.format(seeded[x].ids[kind]))
            assert r.status_code == 200, (label, kind, x, r.status_code, r.text)
        for x in never:
            wanted = seeded[x].ids[kind]
            r = await client.get(template.format(wanted))
            assert r.status_code == 404, (label, kind, x, r.status_code, r.text)
            body = r.json()
            assert _seen(json.dumps(body), seeded[x]) <= {wanted}, body
