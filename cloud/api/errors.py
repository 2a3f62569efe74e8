"""The error body of the north-bound API, shared by the routers (a leaf module).

Every failure is answered as ``{"error": <stable code>, "detail": <text>}``.
"""

from __future__ import annotations

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


def error_response(status: int, code: str, detail: str,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """The error body every route answers with."""
    return JSONResponse(status_code=status, content={"error": code, "detail": detail},
                        headers=headers)


def explain_validation(exc: RequestValidationError) -> str:
    """A request validation error as one line for people: ``where: what; ...``."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(x) for x in error.get("loc", ()) if x != "body")
        parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else
                     str(error.get("msg", "invalid")))
    return "; ".join(parts) or "invalid request"
