"""MQTT republish (:class:`~cloud.actions.Republish`) through an async publish callable.

A ``dict`` payload is msgpack-encoded with the envelope's conventions (decimals as strings,
tuples as lists: :func:`thingmodels.validate.to_wire`, binary-safe ``use_bin_type``); ``bytes``
go out unchanged. The payload is not wrapped in an envelope: a rule that republishes onto
``ev/v1`` topics builds the envelope map itself.

``publish(topic, payload, qos, retain)`` is what the cloud worker's MQTT client offers. A
``ValueError``/``TypeError`` from it (an invalid topic) is permanent; anything else (not
connected, connection lost) is retried.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgpack

from cloud.actions import Action, Republish
from cloud.sinks.each import write_each
from cloud.sinks.errors import PermanentError, RetryableError, SinkError
from thingmodels.validate import to_wire

Publish = Callable[[str, bytes, int, bool], Awaitable[None]]


def encode_payload(payload: dict[str, object] | bytes) -> bytes:
    """The bytes published for a Republish payload (ValueError if it cannot be encoded)."""
    if isinstance(payload, bytes):
        return payload
    try:
        return msgpack.packb(to_wire(payload), use_bin_type=True)  # type: ignore[no-any-return]
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"payload cannot be msgpack-encoded: {exc}") from exc


class RepublishSink:
    """Publishes each action of a batch (concurrently)."""

    def __init__(self, publish: Publish) -> None:
        self.publish = publish

    async def __call__(self, batch: list[Action]) -> None:
        """Publish every Republish of the batch."""
        await write_each(batch, self._one)

    async def _one(self, action: Action) -> None:
        if not isinstance(action, Republish):
            raise PermanentError(f"{type(action).__name__} is not a Republish")
        if action.qos not in (0, 1, 2):
            raise PermanentError(f"invalid qos {action.qos}")
        try:
            payload = encode_payload(action.payload)
        except ValueError as exc:
            raise PermanentError(str(exc)) from exc
        try:
            await self.publish(action.topic, payload, action.qos, action.retain)
        except SinkError:
            raise
        except (ValueError, TypeError) as exc:
            raise PermanentError(f"publish to {action.topic!r} refused: {exc}") from exc
        except Exception as exc:
            raise RetryableError(f"publish to {action.topic!r} failed: "
                                 f"{type(exc).__name__}: {exc}") from exc
