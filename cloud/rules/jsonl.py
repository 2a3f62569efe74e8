"""Recorded messages as JSON lines: ``{"topic": "ev/v1/...", "envelope": {...}}``.

The envelope is its short-key map (:meth:`Envelope.to_map`) as JSON: decimals as strings (as
on the wire), bytes as ``{"$b64": "..."}``. Decoding packs the map back into msgpack and runs
the envelope decoder the consumer runs, so a recorded message is checked exactly like a live one.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import msgpack

from cloud.rules.errors import RecordingError
from thingmodels.envelope import Envelope, decode
from thingmodels.errors import EnvelopeError, TopicError
from thingmodels.topics import Topic, parse

_B64 = "$b64"


def _to_json(value: Any) -> Any:
    if isinstance(value, bytes):
        return {_B64: base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_json(v) for v in value]
    return value


def _from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and _B64 in value:
            try:
                return base64.b64decode(value[_B64], validate=True)
            except (binascii.Error, TypeError, ValueError) as exc:
                raise RecordingError(f"invalid base64 in {_B64}: {exc}") from None
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def encode_line(topic: Topic | str, env: Envelope) -> str:
    """One JSON line (no newline) for a message."""
    text = topic.render() if isinstance(topic, Topic) else topic
    return json.dumps({"topic": text, "envelope": _to_json(env.to_map())},
                      ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def decode_line(line: str) -> tuple[Topic, Envelope]:
    """Parse one line; raises :class:`RecordingError` with the reason."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise RecordingError(f"not JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(data, dict) or set(data) != {"topic", "envelope"}:
        raise RecordingError('a line must be {"topic": "...", "envelope": {...}}')
    if not isinstance(data["topic"], str):
        raise RecordingError("'topic' must be a string")
    try:
        topic = parse(data["topic"])
    except TopicError as exc:
        raise RecordingError(str(exc)) from None
    if not isinstance(data["envelope"], dict):
        raise RecordingError("'envelope' must be a map")
    try:
        packed = msgpack.packb(_from_json(data["envelope"]), use_bin_type=True)
        env = decode(packed)
    except (TypeError, ValueError, OverflowError) as exc:
        raise RecordingError(f"envelope cannot be packed: {exc}") from None
    except EnvelopeError as exc:
        raise RecordingError(f"invalid envelope: {exc}") from None
    return topic, env
