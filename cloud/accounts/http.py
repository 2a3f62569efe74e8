"""HTTP helpers shared by the accounts and payments routers: the accounts' route class (errors
rendered by :mod:`cloud.api.errors`), money in and out, the ``Idempotency-Key`` header."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import HTTPException, Request
from pydantic import BeforeValidator, PlainSerializer

from cloud.accounts.errors import AccountError, InvalidInput
from cloud.accounts.money import to_money
from cloud.api.errors import OWN, ErrorMap, error_route

#: the accounts' exceptions carry their own HTTP status and error code
ERRORS: ErrorMap = {AccountError: OWN}
#: the route class of the accounts router: every failure is ``{"error", "detail"}``
AccountsRoute = error_route(ERRORS, "AccountsRoute")


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
