"""Log in to a running cloud worker's API as the bootstrap platform admin.

tests/conftest.py provides the admin's password to every worker (and to subprocesses) through
``VOLTMESH_ADMIN_PASSWORD``; the user name is the bootstrap default.
"""

from __future__ import annotations

import os

import httpx

ADMIN = "admin"


def admin_password() -> str:
    return os.environ["VOLTMESH_ADMIN_PASSWORD"]


async def admin_headers(http: httpx.AsyncClient) -> dict[str, str]:
    """``Authorization`` headers of the platform admin (OAuth2 password login)."""
    reply = await http.post("/api/v1/auth/token",
                            data={"username": ADMIN, "password": admin_password()})
    reply.raise_for_status()
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def admin_headers_sync(base_url: str, timeout: float = 5.0) -> dict[str, str]:
    """The same, blocking (for tests that poll a subprocess)."""
    reply = httpx.post(f"{base_url}/api/v1/auth/token", timeout=timeout,
                       data={"username": ADMIN, "password": admin_password()})
    reply.raise_for_status()
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}
