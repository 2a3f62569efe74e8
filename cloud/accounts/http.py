"""HTTP helpers shared by the accounts and payments routers: error bodies, money input."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Annotated, Any

from fastapi import HTTPException, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BeforeValidator, PlainSerializer

from cloud.accounts.errors import InvalidInput
from cloud.accounts.money import to_money
from cloud.errors import CloudError, StoreError

_SLUGS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 409: "conflict", 413: "too_large", 422: "invalid",
          503: "unavailable"}


def error_response(status: int, error: str, detail: Any,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """The API's error body: ``{"error": <code>, "detail": <text or list>}``."""
    return JSONResponse(status_code=status, content={"error": error, "detail": detail},
                        headers=headers)


class ErrorRoute(APIRoute):
    """A route that answers every error with ``{"error", "detail"}``: the package errors
    (``status``/``code`` attributes), HTTP errors raised by dependencies (401/403 of
    :mod:`cloud.auth.principal`), and request validation errors (422)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except StoreError as exc:
                return error_response(503, "store_unavailable", str(exc))
            except CloudError as exc:
                status = getattr(exc, "status", 500)
                return error_response(status, getattr(exc, "code", "internal"), str(exc))
            except HTTPException as exc:
                return error_response(exc.status_code,
                                      _SLUGS.get(exc.status_code, f"http_{exc.status_code}"),
                                      exc.detail, dict(exc.headers or {}))
            except RequestValidationError as exc:
                return error_response(422, "invalid", jsonable_encoder(exc.errors()))

        return run


def _money_in(value: Any) -> Decimal:
    try:
        return to_money(value)
    except InvalidInput as exc:
        raise ValueError(str(exc)) from None


#: money in a request body: a decimal string (or an integer); a JSON float is refused
MoneyIn = Annotated[Decimal, BeforeValidator(_money_in)]
#: money in a response body: a decimal string with two places
MoneyOut = Annotated[Decimal, PlainSerializer(lambda d: f"{d:.2f}", return_type=str)]


def idempotency_key(request: Request) -> str:
    """The ``Idempotency-Key`` header (400 when missing or unusable)."""
    key = request.headers.get("idempotency-key", "").strip()
    if not key or len(key) > 128 or any(ord(c) < 32 for c in key):
        raise HTTPException(status_code=400,
                            detail="an Idempotency-Key header (1-128 characters) is required")
    return key
