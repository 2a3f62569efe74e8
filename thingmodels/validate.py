"""Validate and normalise payload params against thing-model specs.

On the wire (msgpack) decimals travel as strings (``"12.345"``) so that no float ever touches an
amount of money or energy; :func:`validate_params` turns them into :class:`decimal.Decimal`, and
:func:`to_wire` turns them back. Validation returns a new dict and never mutates its input.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from thingmodels.errors import PayloadError
from thingmodels.schema import ParamSpec, ParamType


def _check_range(spec: ParamSpec, value: float | Decimal | int, path: str) -> None:
    if spec.min is not None and value < Decimal(str(spec.min)):
        raise PayloadError(path, f"{value} is below the minimum {spec.min}")
    if spec.max is not None and value > Decimal(str(spec.max)):
        raise PayloadError(path, f"{value} is above the maximum {spec.max}")


def validate_value(spec: ParamSpec, value: Any, path: str) -> Any:
    """Check one value against its spec and return it in its canonical Python type."""
    kind = spec.type
    if kind is ParamType.STRING:
        if not isinstance(value, str):
            raise PayloadError(path, f"expected a string, got {type(value).__name__}")
        if spec.max_length is not None and len(value) > spec.max_length:
            raise PayloadError(path, f"longer than {spec.max_length} characters")
        return value
    if kind is ParamType.BOOL:
        if not isinstance(value, bool):
            raise PayloadError(path, f"expected a bool, got {type(value).__name__}")
        return value
    if kind in (ParamType.INT, ParamType.TIMESTAMP):
        if isinstance(value, bool) or not isinstance(value, int):
            raise PayloadError(path, f"expected an integer, got {type(value).__name__}")
        _check_range(spec, value, path)
        return value
    if kind is ParamType.FLOAT:
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise PayloadError(path, f"expected a number, got {type(value).__name__}")
        number = float(value)
        if math.isnan(number):
            raise PayloadError(path, "NaN is not a value")
        _check_range(spec, number, path)
        return number
    if kind is ParamType.DECIMAL:
        if isinstance(value, bool | float):
            raise PayloadError(path, "a decimal must be sent as a string or an integer, not a float")
        if isinstance(value, Decimal):
            dec = value
        elif isinstance(value, int | str):
            try:
                dec = Decimal(value)
            except InvalidOperation as exc:
                raise PayloadError(path, f"not a decimal number: {value!r}") from exc
        else:
            raise PayloadError(path, f"expected a decimal, got {type(value).__name__}")
        if not dec.is_finite():
            raise PayloadError(path, "a decimal must be finite")
        _check_range(spec, dec, path)
        return dec
    if kind is ParamType.ENUM:
        if not isinstance(value, str) or spec.values is None or value not in spec.values:
            raise PayloadError(path, f"{value!r} is not one of {list(spec.values or ())}")
        return value
    if kind is ParamType.LIST:
        if not isinstance(value, list | tuple):
            raise PayloadError(path, f"expected a list, got {type(value).__name__}")
        assert spec.items is not None
        return [validate_params(spec.items, item, f"{path}[{i}]") for i, item in enumerate(value)]
    if kind is ParamType.MAP:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise PayloadError(path, f"expected a map with string keys, got {type(value).__name__}")
        return dict(value)
    if kind is ParamType.OBJECT:
        assert spec.fields is not None
        return validate_params(spec.fields, value, path)
    raise PayloadError(path, f"unsupported type {kind}")  # pragma: no cover


def validate_params(
    specs: Mapping[str, ParamSpec],
    params: Any,
    path: str,
    *,
    partial: bool = False,
    allow_unknown: bool = False,
) -> dict[str, Any]:
    """Validate a params map.

    ``partial``: missing keys are fine (property reports carry only what changed).
    ``allow_unknown``: keys not in ``specs`` are passed through (lenient mode) instead of refused.
    """
    if not isinstance(params, Mapping):
        raise PayloadError(path, f"expected a map, got {type(params).__name__}")
    out: dict[str, Any] = {}
    for key, value in params.items():
        if not isinstance(key, str):
            raise PayloadError(path, f"key {key!r} is not a string")
        spec = specs.get(key)
        sub = f"{path}.{key}"
        if spec is None:
            if allow_unknown:
                out[key] = value
                continue
            raise PayloadError(sub, "not declared in the thing model")
        if value is None:
            if spec.optional or partial:
                continue
            raise PayloadError(sub, "null is not a value")
        out[key] = validate_value(spec, value, sub)
    if not partial:
        for key, spec in specs.items():
            if key not in out and not spec.optional:
                raise PayloadError(f"{path}.{key}", "required but missing")
    return out


def to_wire(value: Any) -> Any:
    """Convert canonical values for msgpack: Decimal -> str, tuples -> lists (recursively)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {k: to_wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_wire(v) for v in value]
    return value
