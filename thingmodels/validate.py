"""Validate and normalise payload params against thing-model specs.

On the wire (msgpack) decimals travel as strings (``"12.345"``) so that no float ever touches an
amount of money or energy; :func:`validate_params` turns them into :class:`decimal.Decimal`, and
:func:`to_wire` turns them back. Validation returns a new dict and never mutates its input.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from thingmodels.errors import PayloadError
from thingmodels.schema import ParamSpec, ParamType

#: checks one value against its spec and returns it in its canonical type
Check = Callable[[Any, str], Any]

_NUMBER = (int, float, Decimal)
_DECIMAL_IN = (int, str)
_SEQUENCE = (list, tuple)

#: id(spec) -> (spec, its check); the spec is kept so that its id is not reused meanwhile
_CHECKS: dict[int, tuple[ParamSpec, Check]] = {}
CHECK_CACHE = 4096


def _check_range(spec: ParamSpec, value: float | Decimal | int, path: str) -> None:
    """The reference range check (bounds as ``Decimal(str(bound))``); the compiled checks give
    the same answers with their bounds converted once (see :func:`_range`)."""
    if spec.min is not None and value < Decimal(str(spec.min)):
        raise PayloadError(path, f"{value} is below the minimum {spec.min}")
    if spec.max is not None and value > Decimal(str(spec.max)):
        raise PayloadError(path, f"{value} is above the maximum {spec.max}")


def _range(spec: ParamSpec) -> tuple[Callable[[int, str], None], Callable[[float, str], None],
                                     Callable[[Decimal, str], None]]:
    """Range checks of an int, a float and a Decimal value, with exactly the answers of
    :func:`_check_range` (a value compared with ``Decimal(str(bound))``).

    The bounds are converted once. An int is compared with the bound's ceiling (minimum) or
    floor (maximum). A float is compared with the float nearest to the bound: no float lies
    strictly between the two, so only a value equal to that float needs the exact comparison.
    A bound that is not finite always takes the exact comparison.
    """
    low = Decimal(str(spec.min)) if spec.min is not None else None
    high = Decimal(str(spec.max)) if spec.max is not None else None

    def fail_low(value: Any, path: str) -> None:
        raise PayloadError(path, f"{value} is below the minimum {spec.min}")

    def fail_high(value: Any, path: str) -> None:
        raise PayloadError(path, f"{value} is above the maximum {spec.max}")

    if (low is None or low.is_finite()) and (high is None or high.is_finite()):
        ilow = math.ceil(low) if low is not None else None
        ihigh = math.floor(high) if high is not None else None
        flow = float(low) if low is not None else None
        fhigh = float(high) if high is not None else None

        def check_int(value: int, path: str) -> None:
            if ilow is not None and value < ilow:
                fail_low(value, path)
            if ihigh is not None and value > ihigh:
                fail_high(value, path)

        def check_float(value: float, path: str) -> None:
            if flow is not None and low is not None and \
                    (value < flow if value != flow else value < low):
                fail_low(value, path)
            if fhigh is not None and high is not None and \
                    (value > fhigh if value != fhigh else value > high):
                fail_high(value, path)
    else:
        def check_int(value: int, path: str) -> None:
            _check_range(spec, value, path)

        def check_float(value: float, path: str) -> None:
            _check_range(spec, value, path)

    def check_decimal(value: Decimal, path: str) -> None:
        if low is not None and value < low:
            fail_low(value, path)
        if high is not None and value > high:
            fail_high(value, path)

    return check_int, check_float, check_decimal


def _compile(spec: ParamSpec) -> Check:
    """The check of one spec (what :func:`validate_value` does for it)."""
    kind = spec.type
    if kind is ParamType.STRING:
        max_length = spec.max_length

        def check_string(value: Any, path: str) -> Any:
            if not isinstance(value, str):
                raise PayloadError(path, f"expected a string, got {type(value).__name__}")
            if max_length is not None and len(value) > max_length:
                raise PayloadError(path, f"longer than {max_length} characters")
            return value
        return check_string
    if kind is ParamType.BOOL:
        def check_bool(value: Any, path: str) -> Any:
            if not isinstance(value, bool):
                raise PayloadError(path, f"expected a bool, got {type(value).__name__}")
            return value
        return check_bool
    ranged = spec.min is not None or spec.max is not None
    in_int, in_float, in_decimal = _range(spec)
    if kind in (ParamType.INT, ParamType.TIMESTAMP):
        def check_int(value: Any, path: str) -> Any:
            if isinstance(value, bool) or not isinstance(value, int):
                raise PayloadError(path, f"expected an integer, got {type(value).__name__}")
            if ranged:
                in_int(value, path)
            return value
        return check_int
    if kind is ParamType.FLOAT:
        def check_float(value: Any, path: str) -> Any:
            if isinstance(value, bool) or not isinstance(value, _NUMBER):
                raise PayloadError(path, f"expected a number, got {type(value).__name__}")
            number = float(value)
            if math.isnan(number):
                raise PayloadError(path, "NaN is not a value")
            if ranged:
                in_float(number, path)
            return number
        return check_float
    if kind is ParamType.DECIMAL:
        def check_decimal(value: Any, path: str) -> Any:
            if isinstance(value, bool | float):
                raise PayloadError(path, "a decimal must be sent as a string or an integer, "
                                         "not a float")
            if isinstance(value, Decimal):
                dec = value
            elif isinstance(value, _DECIMAL_IN):
                try:
                    dec = Decimal(value)
                except InvalidOperation as exc:
                    raise PayloadError(path, f"not a decimal number: {value!r}") from exc
            else:
                raise PayloadError(path, f"expected a decimal, got {type(value).__name__}")
            if not dec.is_finite():
                raise PayloadError(path, "a decimal must be finite")
            if ranged:
                in_decimal(dec, path)
            return dec
        return check_decimal
    if kind is ParamType.ENUM:
        values = spec.values

        def check_enum(value: Any, path: str) -> Any:
            if not isinstance(value, str) or values is None or value not in values:
                raise PayloadError(path, f"{value!r} is not one of {list(values or ())}")
            return value
        return check_enum
    if kind is ParamType.LIST:
        def check_list(value: Any, path: str) -> Any:
            if not isinstance(value, _SEQUENCE):
                raise PayloadError(path, f"expected a list, got {type(value).__name__}")
            assert spec.items is not None
            return [validate_params(spec.items, item, f"{path}[{i}]")
                    for i, item in enumerate(value)]
        return check_list
    if kind is ParamType.MAP:
        def check_map(value: Any, path: str) -> Any:
            if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
                raise PayloadError(path, f"expected a map with string keys, got "
                                         f"{type(value).__name__}")
            return dict(value)
        return check_map
    # the last type: OBJECT

    def check_object(value: Any, path: str) -> Any:
        assert spec.fields is not None
        return validate_params(spec.fields, value, path)
    return check_object


def check_of(spec: ParamSpec) -> Check:
    """The compiled check of ``spec`` (built on first use and kept)."""
    entry = _CHECKS.get(id(spec))
    if entry is not None and entry[0] is spec:
        return entry[1]
    check = _compile(spec)
    if len(_CHECKS) >= CHECK_CACHE:
        _CHECKS.clear()
    _CHECKS[id(spec)] = (spec, check)
    return check


def validate_value(spec: ParamSpec, value: Any, path: str) -> Any:
    """Check one value against its spec and return it in its canonical Python type."""
    return check_of(spec)(value, path)


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
        out[key] = check_of(spec)(value, sub)
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
