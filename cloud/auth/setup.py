"""Wiring :mod:`cloud.auth` into a FastAPI app."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine

from cloud.api.errors import http_error
from cloud.auth.api import router
from cloud.auth.authenticator import JwtAuthenticator
from cloud.auth.config import AuthConfig
from cloud.auth.principal import AuthProblem
from cloud.auth.service import AuthService


async def _auth_problem(request: Request, exc: Exception) -> JSONResponse:
    # for routes outside an ErrorRoute, which answers an AuthProblem the same way itself
    assert isinstance(exc, AuthProblem)
    return http_error(exc)


def install_auth(app: FastAPI, service: AuthService) -> JwtAuthenticator:
    """Put the service and a :class:`JwtAuthenticator` on ``app.state``, mount the router and
    render auth failures as ``{"error", "detail"}``; returns the authenticator."""
    authenticator = JwtAuthenticator(service)
    app.state.auth = service
    app.state.authenticator = authenticator
    app.add_exception_handler(AuthProblem, _auth_problem)
    app.include_router(router)
    return authenticator


def setup_auth(app: FastAPI, engine: Engine, config: AuthConfig) -> AuthService:
    """The whole start-up: service (tables, secret check), first admin, app wiring.

    Raises :class:`cloud.auth.errors.AuthConfigError` when the configuration cannot be used
    (example JWT secret outside dev mode, no admin password on the first start).
    """
    service = AuthService(engine, config)
    service.bootstrap()
    install_auth(app, service)
    return service
