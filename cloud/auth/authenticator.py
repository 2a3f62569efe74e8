"""The production :class:`~cloud.auth.principal.Authenticator`: JWTs for people, API keys for
third parties.

Accepted credentials (exactly one per request):

* ``Authorization: Bearer <jwt>``: a staff user's access token from ``POST /api/v1/auth/token``;
* ``X-API-Key: vm_<prefix>_<secret>``, ``Authorization: ApiKey vm_...`` (or ``Bearer vm_...``):
  an API key.

Failures are 401 with a ``WWW-Authenticate`` challenge and the body ``{"error", "detail"}``
(via the handler :func:`cloud.auth.setup.install_auth` registers).
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import Request
from sqlalchemy.exc import SQLAlchemyError

from cloud.auth import apikeys
from cloud.auth.errors import NotAuthenticated
from cloud.auth.principal import API_KEY_HEADER, AuthProblem, Principal, unauthorized
from cloud.auth.service import AuthService

log = logging.getLogger("voltmesh.cloud.auth")


class JwtAuthenticator:
    """Authenticates requests against an :class:`AuthService` (database work in a thread)."""

    def __init__(self, service: AuthService) -> None:
        self.service = service

    @staticmethod
    def credential(request: Request) -> tuple[str, str]:
        """``("jwt" | "apikey", value)`` from the headers; 401 when missing or ambiguous."""
        api_key = request.headers.get(API_KEY_HEADER)
        authorization = request.headers.get("Authorization")
        if api_key is not None and authorization is not None:
            raise unauthorized(f"send either Authorization or {API_KEY_HEADER}, not both")
        if api_key is not None:
            return "apikey", api_key.strip()
        if authorization is None:
            raise unauthorized("missing credentials: send Authorization: Bearer <token> or "
                               f"{API_KEY_HEADER}: <key>")
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        if not value:
            raise unauthorized("malformed Authorization header", invalid=True)
        if scheme.lower() == "apikey" or (scheme.lower() == "bearer"
                                          and apikeys.looks_like_key(value)):
            return "apikey", value
        if scheme.lower() == "bearer":
            return "jwt", value
        raise unauthorized(f"unsupported authorization scheme {scheme!r}: use Bearer or ApiKey")

    async def authenticate(self, request: Request) -> Principal:
        kind, value = self.credential(request)
        try:
            if kind == "apikey":
                principal = await asyncio.to_thread(self.service.principal_for_api_key, value)
            else:
                principal = await asyncio.to_thread(self.service.principal_for_token, value)
        except NotAuthenticated as exc:
            raise unauthorized(str(exc), scheme="ApiKey" if kind == "apikey" else "Bearer",
                               error=exc.code, invalid=True) from None
        except SQLAlchemyError as exc:
            log.warning("authentication failed on the database: %s", exc)
            raise AuthProblem(503, "store_unavailable",
                              "credentials cannot be checked now (database unavailable)",
                              headers={"Retry-After": "5"}) from None
        request.state.principal = principal
        return principal


__all__ = ["AuthProblem", "JwtAuthenticator"]
