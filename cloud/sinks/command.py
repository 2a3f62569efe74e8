"""Device service calls (:class:`~cloud.actions.InvokeService`) through an async call callable.

``call(gw, product, device, service, params, timeout)`` is the cloud worker's
``Consumer.call`` (adapt its keyword ``timeout``). Outcomes:

* a reply with ``code`` 0 (or a result without ``code``): written;
* a reply with another code (the device or gateway refused: 400, 404, 408, 409, 503 ...):
  permanent, logged with the code;
* :class:`~cloud.errors.CommandTimeout`: permanent. The call may have run on the device, so it
  is never repeated blindly;
* :class:`~cloud.errors.CommandError` without a code (not connected to the broker) and other
  errors while sending: retried, the call was not sent.

Queue the lane with ``ttl_of=command_ttl`` so a call that waited in the queue longer than its
own timeout is dropped (``ttl``) instead of being sent late.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from cloud.actions import Action, InvokeService
from cloud.errors import CommandError, CommandTimeout
from cloud.sinks.each import write_each
from cloud.sinks.errors import PermanentError, RetryableError, SinkError

Call = Callable[[str, str, str, str, dict[str, Any], float], Awaitable[Any]]


def command_ttl(action: Action) -> float | None:
    """An InvokeService waits in the queue at most its own timeout."""
    return action.timeout_s if isinstance(action, InvokeService) else None


class CommandSink:
    """Calls each action's service (the calls of a batch run concurrently)."""

    def __init__(self, call: Call) -> None:
        self.call = call

    async def __call__(self, batch: list[Action]) -> None:
        """Invoke every service of the batch."""
        await write_each(batch, self._one)

    async def _one(self, action: Action) -> None:
        if not isinstance(action, InvokeService):
            raise PermanentError(f"{type(action).__name__} is not an InvokeService")
        where = f"{action.gw}/{action.product}/{action.device} {action.service}"
        try:
            reply = await self.call(action.gw, action.product, action.device, action.service,
                                    action.params, action.timeout_s)
        except SinkError:
            raise
        except CommandTimeout as exc:
            raise PermanentError(f"{where}: no reply in {action.timeout_s}s, not retried "
                                 f"(it may have run): {exc}") from exc
        except CommandError as exc:
            if exc.code is not None:
                raise PermanentError(f"{where}: refused with code {exc.code}: {exc}") from exc
            raise RetryableError(f"{where}: not sent: {exc}") from exc
        except Exception as exc:
            raise RetryableError(f"{where}: not sent: {type(exc).__name__}: {exc}") from exc
        code = getattr(reply, "code", None)
        if code not in (None, 0):
            raise PermanentError(f"{where}: refused with code {code}: "
                                 f"{getattr(reply, 'msg', None) or ''}")
