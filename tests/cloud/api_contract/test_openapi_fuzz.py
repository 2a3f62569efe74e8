"""schemathesis against the integrated app's OpenAPI document, in-process (ASGI).

Every operation is fuzzed twice: as the platform admin and as operator A's admin. Checks: no
5xx (``not_a_server_error``) and, where a response schema is declared, the response conforms
to it (``response_schema_conformance``). The fuzzer has its own seeded service (it creates,
changes and deletes rows), never the one the isolation tests read.

Bounded by default (derandomized, :data:`MAX_EXAMPLES` per operation); ``VOLTMESH_FUZZ=1``
runs a deeper, randomized search (``VOLTMESH_FUZZ_EXAMPLES``, default 300).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, assume, settings
from schemathesis.checks import CheckContext, CheckFunction, not_a_server_error
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import response_schema_conformance

from cloud.auth.principal import Role
from tests.cloud.api_contract.conftest import build_contract

Case = schemathesis.Case[Any]

DEEP = os.environ.get("VOLTMESH_FUZZ", "") == "1"
MAX_EXAMPLES = int(os.environ.get("VOLTMESH_FUZZ_EXAMPLES", "300")) if DEEP else 10


def _project_error(response: Response) -> bool:
    """``{"error": str, "detail": str}``: how the project renders every error."""
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("error"), str) and \
        isinstance(body.get("detail"), str)


@schemathesis.check
def conforms_to_schema(ctx: CheckContext, response: Response, case: Case
                       ) -> bool | None:
    """``response_schema_conformance``, except for 422 bodies in the project's error shape:
    FastAPI declares its own ``HTTPValidationError`` for 422 on every operation, which the
    project's handlers never send (finding F1, pinned by test_declared_422_schema_is_sent)."""
    if response.status_code == 422 and _project_error(response):
        return None
    return response_schema_conformance(ctx, response, case)


@schemathesis.check
def no_server_error(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """``not_a_server_error``, except the documented 503 ``unavailable`` of the endpoints that
    need the broker: this in-process app is never connected to one (a real answer, not a bug)."""
    if response.status_code == 503 and _project_error(response) and \
            response.json()["error"] == "unavailable":
        return None
    return not_a_server_error(ctx, response, case)


CHECKS: list[CheckFunction] = [no_server_error, conforms_to_schema]

INT64 = 2**63 - 1
BIG = str(INT64 + 1)
#: F2 (docs/api-contract.md): an integer parameter beyond SQL BIGINT reaches the database and
#: the driver raises OverflowError -> 500. Every case found, as (method, url); the fuzz runs
#: skip such inputs (hypothesis.assume) so they can find other bugs, these keep F2 visible.
F2_CASES: list[tuple[str, str]] = [
    ("GET", f"/api/v1/commands?since_ms={BIG}"), ("GET", f"/api/v1/commands?until_ms={BIG}"),
    ("GET", f"/api/v1/commands?offset={BIG}"), ("GET", f"/api/v1/stations?offset={BIG}"),
    ("GET", f"/api/v1/tariffs/{BIG}"), ("GET", f"/api/v1/chargers?offset={BIG}"),
    ("GET", f"/api/v1/connectors?offset={BIG}"), ("GET", f"/api/v1/users?offset={BIG}"),
    ("GET", f"/api/v1/cards?offset={BIG}"), ("GET", f"/api/v1/vehicles?offset={BIG}"),
    ("GET", f"/api/v1/payments?offset={BIG}"), ("GET", f"/api/v1/orders?since_ms={BIG}"),
    ("GET", f"/api/v1/orders?until_ms={BIG}"), ("GET", f"/api/v1/orders?offset={BIG}"),
    ("GET", f"/api/v1/orders/{BIG}"), ("GET", f"/api/v1/orders/{BIG}/events"),
    ("GET", f"/api/v1/alarms?since={BIG}"), ("GET", f"/api/v1/alarms?until={BIG}"),
    ("GET", f"/api/v1/alarms?offset={BIG}"), ("GET", f"/api/v1/tenants?offset={BIG}"),
    ("GET", f"/api/v1/staff?offset={BIG}"), ("GET", f"/api/v1/staff/{BIG}"),
    ("PATCH", f"/api/v1/staff/{BIG}"), ("DELETE", f"/api/v1/staff/{BIG}"),
    ("GET", f"/api/v1/apikeys?offset={BIG}"), ("GET", f"/api/v1/apikeys/{BIG}"),
    ("DELETE", f"/api/v1/apikeys/{BIG}"),
]

_tmp = Path(tempfile.mkdtemp(prefix="voltmesh-fuzz-"))
atexit.register(shutil.rmtree, _tmp, True)
FUZZED = build_contract(_tmp)
ADMIN = FUZZED.world.headers("platform", Role.PLATFORM_ADMIN)
OPERATOR = FUZZED.world.headers("A", Role.OPERATOR_ADMIN)

schema = schemathesis.openapi.from_asgi("/openapi.json", FUZZED.cloud.app)

fuzz_settings = settings(
    max_examples=MAX_EXAMPLES, derandomize=not DEEP, deadline=None, database=None,
    suppress_health_check=list(HealthCheck), print_blob=True)


def _beyond_int64(case: Case) -> bool:
    """Whether a path or query parameter is an integer outside SQL BIGINT (finding F2)."""
    values: list[object] = [*(case.path_parameters or {}).values(),
                            *(case.query or {}).values()]
    for value in values:
        for v in value if isinstance(value, list) else [value]:
            text = str(v).strip()
            if text.lstrip("+-").isdigit() and abs(int(text)) > INT64:
                return True
    return False


@schema.parametrize()
@fuzz_settings
def test_as_platform_admin(case: Case) -> None:
    assume(not _beyond_int64(case))
    case.call_and_validate(headers=ADMIN, checks=CHECKS)


@schema.parametrize()
@fuzz_settings
def test_as_operator(case: Case) -> None:
    assume(not _beyond_int64(case))
    case.call_and_validate(headers=OPERATOR, checks=CHECKS)


@pytest.mark.parametrize(("method", "url"), F2_CASES)
def test_integer_beyond_bigint_is_a_client_error(method: str, url: str) -> None:
    with TestClient(FUZZED.cloud.app, raise_server_exceptions=False) as client:
        r = client.request(method, url, headers=ADMIN,
                           json={} if method in ("PATCH", "POST", "PUT") else None)
    assert r.status_code < 500, (method, url, r.status_code, r.text)


def test_declared_422_schema_is_sent() -> None:
    """F1 (fixed): the document declares for 422 the body the API sends."""
    with TestClient(FUZZED.cloud.app) as client:
        r = client.get("/api/v1/stations", params={"limit": "0"}, headers=OPERATOR)
    assert r.status_code == 422, r.text
    document = FUZZED.cloud.app.openapi()
    declared = document["paths"]["/api/v1/stations"]["get"]["responses"]["422"]
    ref = declared["content"]["application/json"]["schema"]["$ref"]
    body_schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(body_schema["required"]) <= set(r.json()), r.json()
    assert isinstance(r.json()["error"], str)
