"""How the north-bound API answers a failure, shared by every router (a leaf module).

Every failure is answered as ``{"error": <stable code>, "detail": <text>}`` -- also a request
that fails validation (422 ``invalid_request``, the detail one line naming each field) and the
401/403 of :mod:`cloud.auth.principal`. A router gets this with one route class,
``APIRouter(route_class=error_route({...}))``, whose map names what the package's own exceptions
are answered with; :class:`ApiError` (raised by the route itself) and :class:`StoreError` are
known to every router.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any, ClassVar

from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from cloud.errors import CloudError, StoreError

#: the error code of an HTTP error that brings none (an ``AuthProblem`` brings its ``error``)
STATUS_CODES: dict[int, str] = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 413: "too_large", 422: "invalid_request",
    429: "too_many_attempts", 503: "unavailable", 504: "timeout"}

#: an exception class -> the ``(HTTP status, error code)`` it is answered with; the value
#: :data:`OWN` takes the exception's own ``status`` and ``code`` attributes (the exception trees
#: of accounts, payments and auth carry them). The most specific class of an exception wins.
ErrorMap = Mapping[type[Exception], tuple[int, str] | None]
OWN = None


class ApiError(CloudError):
    """A failure a route raises itself, answered as ``{"error": code, "detail": detail}``."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


#: what every router answers, whatever its package
COMMON_ERRORS: dict[type[Exception], tuple[int, str] | None] = {
    ApiError: OWN, StoreError: (503, "store_unavailable")}


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


def validation_error(exc: RequestValidationError) -> JSONResponse:
    """422 ``invalid_request``: the request failed validation (which field, why)."""
    return error_response(422, "invalid_request", explain_validation(exc))


def http_error(exc: HTTPException) -> JSONResponse:
    """An HTTP error raised by a route or a dependency, with its headers (``WWW-Authenticate``,
    ``Retry-After``); the code is the exception's ``error`` or the status's."""
    code = getattr(exc, "error", None) or STATUS_CODES.get(exc.status_code,
                                                           f"http_{exc.status_code}")
    return error_response(exc.status_code, code, str(exc.detail),
                          dict(exc.headers) if exc.headers else None)


def mapped_error(exc: Exception, errors: ErrorMap) -> JSONResponse | None:
    """``exc`` answered by ``errors`` (None: no class of it is mapped)."""
    classes = [cls for cls in errors if isinstance(exc, cls)]
    if not classes:
        return None
    cls = min(classes, key=type(exc).__mro__.index)
    mapped = errors[cls]
    if mapped is not None:
        return error_response(*mapped, str(exc))
    status, code = getattr(exc, "status", None), getattr(exc, "code", None)
    if not isinstance(status, int) or not isinstance(code, str):
        raise TypeError(f"{cls.__name__} is mapped to its own status and code but has none")
    return error_response(status, code, str(exc))


class ErrorRoute(APIRoute):
    """A route that answers every failure as ``{"error", "detail"}``: validation (422), HTTP
    errors (auth), and the exceptions of :attr:`errors`; any other exception goes on up (a 500).
    """

    errors: ClassVar[ErrorMap] = COMMON_ERRORS

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        errors = self.errors

        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return validation_error(exc)
            except HTTPException as exc:
                return http_error(exc)
            except Exception as exc:
                response = mapped_error(exc, errors)
                if response is None:
                    raise
                return response

        return run


def error_route(errors: ErrorMap, name: str = "ErrorRoute") -> type[ErrorRoute]:
    """The route class of a package: :class:`ErrorRoute` that also answers ``errors``."""
    return type(name, (ErrorRoute,), {"errors": {**COMMON_ERRORS, **errors}})
