"""App starts: the driver's phone app asks the platform to start a session.

The simulator plays the app back end and calls the cloud's north-bound API,
``POST {api}/api/v1/devices/{gateway}/connector/{device}/services/remoteStart``, exactly as an
app would: the cloud sends the service call over MQTT, the gateway turns it into the charger's
protocol (YKC 0x34, OCPP RemoteStartTransaction / RequestStartTransaction) and the answer
travels back. Nothing here talks to the gateway directly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx

__all__ = ["AppClient", "AppResult"]

log = logging.getLogger("voltmesh.sim.fleet.app")


@dataclass(frozen=True, slots=True)
class AppResult:
    """The service output (``accepted``, ``sessionId``, ``reason``) or the error's name."""

    output: dict[str, Any] | None = None
    error: str | None = None


class AppClient:
    """Calls ``remoteStart`` through the cloud API (one pooled HTTP client per worker)."""

    def __init__(self, api: str, gateway_id: str, *, token: str | None = None,
                 balance: Decimal = Decimal("200.00"), timeout: float = 15.0,
                 max_connections: int = 64) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.gateway_id = gateway_id
        self.balance = balance
        self.timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=api.rstrip("/"), headers=headers, timeout=timeout + 5.0,
            limits=httpx.Limits(max_connections=max_connections))

    async def remote_start(self, device: str, id_tag: str) -> AppResult:
        """Ask for a session on a connector device; never raises for network trouble."""
        path = (f"/api/v1/devices/{quote(self.gateway_id, safe='')}/connector/"
                f"{quote(device, safe='')}/services/remoteStart")
        body = {"params": {"idTag": id_tag, "balance": str(self.balance)},
                "timeout": self.timeout}
        try:
            response = await self._http.post(path, json=body)
        except httpx.HTTPError as exc:
            log.info("app start on %s: %r", device, exc)
            return AppResult(error="app_api_unreachable")
        if response.status_code != 200:
            log.info("app start on %s: HTTP %d %s", device, response.status_code,
                     response.text[:200])
            return AppResult(error=f"app_api_http_{response.status_code}")
        try:
            reply = response.json()
            code = int(reply.get("code", 0))
            output = reply.get("output") or {}
        except (ValueError, TypeError, AttributeError):
            return AppResult(error="app_api_bad_reply")
        if code != 0:
            log.info("app start on %s: reply code %d %s", device, code, reply.get("msg"))
            return AppResult(error=f"app_start_code_{code}")
        return AppResult(output=output if isinstance(output, dict) else {})

    async def close(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()
