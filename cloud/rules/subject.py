"""What one rule evaluation looks at: one message, or one sample of a property batch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from cloud.rules.expr import EvalFailure

#: topic kinds rules run on (uplink only), and the ``kind`` variable they get
KINDS = {"prop": "prop", "event": "event", "state": "state", "svc_reply": "reply"}


@dataclass(slots=True)
class Subject:
    """One message (or batch sample) as the actions see it.

    ``ctx`` is the variables map expressions evaluate against; ``raw`` the params as they came
    (decimals as strings), ``key_base`` the first part of every idempotency key.
    """

    gw: str
    product: str
    device: str
    kind: str
    name: str | None
    msg_id: str
    ts_ms: int
    rts: int
    seq: int | None
    src: str | None
    topic: str
    raw: dict[str, Any]
    ctx: dict[str, Any]
    key_base: str
    validator: Callable[[Subject], dict[str, Any]] | None = None
    _validated: dict[str, Any] | EvalFailure | None = field(default=None, repr=False)

    @classmethod
    def make(cls, *, gw: str, product: str, device: str, kind: str, name: str | None,
             msg_id: str, ts_ms: int, rts: int, seq: int | None, src: str | None, topic: str,
             raw: dict[str, Any], params: dict[str, Any], key_base: str, code: int | None = None,
             validator: Callable[[Subject], dict[str, Any]] | None = None) -> Subject:
        """Build the subject and its expression variables."""
        ctx = {
            "gw": gw, "product": product, "device": device, "kind": kind, "name": name,
            "id": msg_id, "ts": ts_ms, "rts": rts, "seq": seq, "src": src, "code": code,
            "topic": topic, "p": MappingProxyType(params),
        }
        return cls(gw, product, device, kind, name, msg_id, ts_ms, rts, seq, src, topic, raw,
                   ctx, key_base, validator)

    def validated(self) -> dict[str, Any]:
        """The params validated against the thing model (once); raises EvalFailure(payload)."""
        if self._validated is None:
            if self.validator is None:
                self._validated = EvalFailure("payload", "no thing-model validation available")
            else:
                try:
                    self._validated = self.validator(self)
                except EvalFailure as failure:
                    self._validated = failure
        if isinstance(self._validated, EvalFailure):
            raise EvalFailure(self._validated.reason, self._validated.detail)
        return self._validated
