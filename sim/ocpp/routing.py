"""Typed wrappers of the (untyped) ``ocpp.routing`` decorators."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ocpp import routing as _routing

F = TypeVar("F", bound=Callable[..., Any])


def on(action: str) -> Callable[[F], F]:
    """``@on(action)``: the handler answering a call (schema validation stays on)."""
    decorator: Callable[[F], F] = _routing.on(action)
    return decorator


def after(action: str) -> Callable[[F], F]:
    """``@after(action)``: runs once the answer to the call has been sent."""
    decorator: Callable[[F], F] = _routing.after(action)
    return decorator
