"""The message envelope: a msgpack map with short keys.

===== ===============================================================================
key   meaning
===== ===============================================================================
id    message id, unique per gateway, sortable (ULID)                     required
rts   gateway (or cloud) time the message was made, ms since epoch        required
ts    device time, ms since epoch, when the device gave one
seq   per-device sequence, monotonic, survives gateway restarts
src   wire protocol tag: ocpp16, ocpp201, ykc15, ykc16, modbus, mqtt, cloud, edge
p     params, in thing-model units (decimals as strings)
b     instead of ``p``: a batch ``[{ts, p}, ...]``
cid   on replies: the id answered
code  on replies: 0 for success
msg   on replies: an error text
dl    on service calls: deadline, ms since epoch; later than that it is never executed
===== ===============================================================================

Keys this version does not know are kept in :attr:`Envelope.extra` (forward compatibility), but
every known key is type-checked: anything else raises :class:`~thingmodels.errors.EnvelopeError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgpack

from thingmodels.errors import EnvelopeError
from thingmodels.ids import new_id, now_ms
from thingmodels.validate import to_wire

MAX_ID = 64
MAX_ENVELOPE_BYTES = 1 << 20
SOURCES = frozenset({"ocpp16", "ocpp201", "ocpp21", "ykc15", "ykc16", "modbus", "mqtt", "cloud",
                     "edge"})


@dataclass(frozen=True, slots=True)
class Sample:
    """One entry of a batch."""

    ts: int | None
    p: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message."""

    id: str
    rts: int
    ts: int | None = None
    seq: int | None = None
    src: str | None = None
    p: dict[str, Any] | None = None
    b: tuple[Sample, ...] | None = None
    cid: str | None = None
    code: int | None = None
    msg: str | None = None
    dl: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def new(cls, **kwargs: Any) -> Envelope:
        """An envelope with a fresh id and ``rts`` = now."""
        kwargs.setdefault("id", new_id())
        kwargs.setdefault("rts", now_ms())
        return cls(**kwargs)

    def samples(self) -> list[Sample]:
        """``p`` as one sample, or the batch."""
        if self.b is not None:
            return list(self.b)
        if self.p is not None:
            return [Sample(self.ts, self.p)]
        return []

    def to_map(self) -> dict[str, Any]:
        """The short-key map (decimals as strings)."""
        out: dict[str, Any] = {"id": self.id, "rts": self.rts}
        for key in ("ts", "seq", "src", "cid", "code", "msg", "dl"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.p is not None:
            out["p"] = to_wire(self.p)
        if self.b is not None:
            out["b"] = [
                {"p": to_wire(s.p)} if s.ts is None else {"ts": s.ts, "p": to_wire(s.p)}
                for s in self.b
            ]
        for key, value in self.extra.items():
            out.setdefault(key, to_wire(value))
        return out


def encode(envelope: Envelope) -> bytes:
    """Envelope -> msgpack bytes."""
    try:
        return msgpack.packb(envelope.to_map(), use_bin_type=True)  # type: ignore[no-any-return]
    except (TypeError, ValueError, OverflowError) as exc:
        raise EnvelopeError(f"cannot encode envelope {envelope.id}: {exc}") from exc


def _opt_int(data: Mapping[str, Any], key: str, *, minimum: int | None = None) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise EnvelopeError(f"'{key}' must be an integer, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise EnvelopeError(f"'{key}' must be >= {minimum}")
    return value


def _opt_str(data: Mapping[str, Any], key: str, limit: int = 4096) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise EnvelopeError(f"'{key}' must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise EnvelopeError(f"'{key}' is longer than {limit} characters")
    return value


def _params(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise EnvelopeError(f"'{where}' must be a map, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise EnvelopeError(f"'{where}' has a key that is not a string: {key!r}")
    return value


_KNOWN = frozenset({"id", "rts", "ts", "seq", "src", "p", "b", "cid", "code", "msg", "dl"})


def decode(data: bytes) -> Envelope:
    """msgpack bytes -> Envelope; malformed input raises :class:`EnvelopeError`."""
    if len(data) > MAX_ENVELOPE_BYTES:
        raise EnvelopeError(f"envelope of {len(data)} bytes exceeds {MAX_ENVELOPE_BYTES}")
    try:
        raw = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises many types (ExtraData, FormatError, ValueError...)
        raise EnvelopeError(f"not msgpack: {exc.__class__.__name__}: {exc}") from exc
    if not isinstance(raw, dict):
        raise EnvelopeError(f"envelope must be a map, got {type(raw).__name__}")
    msg_id = _opt_str(raw, "id", MAX_ID)
    if not msg_id:
        raise EnvelopeError("'id' is required")
    rts = _opt_int(raw, "rts", minimum=0)
    if rts is None:
        raise EnvelopeError("'rts' is required")
    p = _params(raw["p"], "p") if raw.get("p") is not None else None
    batch: tuple[Sample, ...] | None = None
    if raw.get("b") is not None:
        if p is not None:
            raise EnvelopeError("'p' and 'b' are exclusive")
        items = raw["b"]
        if not isinstance(items, list):
            raise EnvelopeError("'b' must be a list")
        samples = []
        for i, item in enumerate(items):
            entry = _params(item, f"b[{i}]")
            ts = _opt_int(entry, "ts", minimum=0)
            samples.append(Sample(ts, _params(entry.get("p"), f"b[{i}].p")))
        batch = tuple(samples)
    return Envelope(
        id=msg_id,
        rts=rts,
        ts=_opt_int(raw, "ts", minimum=0),
        seq=_opt_int(raw, "seq", minimum=0),
        src=_opt_str(raw, "src", 16),
        p=p,
        b=batch,
        cid=_opt_str(raw, "cid", MAX_ID),
        code=_opt_int(raw, "code"),
        msg=_opt_str(raw, "msg"),
        dl=_opt_int(raw, "dl", minimum=0),
        extra={k: v for k, v in raw.items() if k not in _KNOWN},
    )


def reply_to(call: Envelope, *, code: int = 0, msg: str | None = None,
             p: dict[str, Any] | None = None, src: str | None = None) -> Envelope:
    """A reply envelope answering ``call``."""
    return Envelope.new(cid=call.id, code=code, msg=msg, p=p, src=src)
