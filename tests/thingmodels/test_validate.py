"""The compiled value checks (thingmodels.validate) against the reference algorithm.

``validate_value`` compiles one check per spec with its range bounds converted once; these tests
hold it to the plain algorithm it replaced: every bound compared as ``Decimal(str(bound))``,
the same errors with the same messages, on generated specs and values (floats right at and next
to their bounds included, where a float bound and its decimal text differ).
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thingmodels.errors import PayloadError
from thingmodels.schema import ParamSpec, ParamType
from thingmodels.validate import validate_params, validate_value


def _range_ref(spec: ParamSpec, value: Any, path: str) -> None:
    if spec.min is not None and value < Decimal(str(spec.min)):
        raise PayloadError(path, f"{value} is below the minimum {spec.min}")
    if spec.max is not None and value > Decimal(str(spec.max)):
        raise PayloadError(path, f"{value} is above the maximum {spec.max}")


def reference(spec: ParamSpec, value: Any, path: str) -> Any:
    """The algorithm before the checks were compiled (numbers only)."""
    kind = spec.type
    if kind in (ParamType.INT, ParamType.TIMESTAMP):
        if isinstance(value, bool) or not isinstance(value, int):
            raise PayloadError(path, f"expected an integer, got {type(value).__name__}")
        _range_ref(spec, value, path)
        return value
    if kind is ParamType.FLOAT:
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise PayloadError(path, f"expected a number, got {type(value).__name__}")
        number = float(value)
        if math.isnan(number):
            raise PayloadError(path, "NaN is not a value")
        _range_ref(spec, number, path)
        return number
    assert kind is ParamType.DECIMAL
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
    _range_ref(spec, dec, path)
    return dec


def outcome(fn: Any, spec: ParamSpec, value: Any) -> tuple[str, Any]:
    try:
        result = fn(spec, value, "m.prop.x")
    except PayloadError as exc:
        return "error", str(exc)
    return "ok", (type(result).__name__, result)


#: bounds whose float is above, below or equal to its decimal text, and their neighbours
TRICKY = [0.0, 0.1, 0.3, 0.7, 1.0, 2.5, -0.1, -0.3, 80.0, 1e16, 1e-7, 123.456, -273.15,
          9007199254740993.0, 0.30000000000000004]


def _near(bound: float) -> list[float]:
    return [bound, math.nextafter(bound, math.inf), math.nextafter(bound, -math.inf)]


bounds = st.one_of(st.none(), st.sampled_from(TRICKY),
                   st.floats(allow_nan=False, allow_infinity=True, width=64))
numeric = st.sampled_from([ParamType.INT, ParamType.TIMESTAMP, ParamType.FLOAT,
                           ParamType.DECIMAL])


@st.composite
def spec_and_values(draw: st.DrawFn) -> tuple[ParamSpec, list[Any]]:
    low, high = draw(bounds), draw(bounds)
    if low is not None and high is not None and low > high:
        low, high = high, low
    spec = ParamSpec(type=draw(numeric), min=low, max=high)
    values: list[Any] = []
    for bound in (low, high):
        if bound is not None and math.isfinite(bound):
            values += _near(bound)
            values += [Decimal(str(bound)), str(Decimal(str(bound))), math.floor(bound),
                       math.ceil(bound), math.floor(bound) - 1, math.ceil(bound) + 1]
    values += draw(st.lists(st.one_of(
        st.integers(), st.floats(), st.decimals(allow_nan=False), st.booleans(),
        st.text(max_size=4), st.none()), max_size=6))
    return spec, values


@settings(max_examples=400, deadline=None)
@given(spec_and_values())
def test_compiled_checks_answer_like_the_reference(case: tuple[ParamSpec, list[Any]]) -> None:
    spec, values = case
    for value in values:
        assert outcome(validate_value, spec, value) == outcome(reference, spec, value), value


@pytest.mark.parametrize(("bound", "value", "below"), [
    (0.3, 0.3, True),  # the float 0.3 is below Decimal('0.3'): refused, as before
    (0.7, 0.7, True),  # so is the float 0.7
    (0.1, 0.1, False),  # the float 0.1 is above Decimal("0.1")
    (0.5, 0.5, False),  # exact
    (0.3, math.nextafter(0.3, 1), False),
])
def test_a_float_at_its_bound_is_compared_exactly(bound: float, value: float,
                                                  below: bool) -> None:
    spec = ParamSpec(type=ParamType.FLOAT, min=bound)
    if below:
        with pytest.raises(PayloadError, match="below the minimum"):
            validate_value(spec, value, "x")
    else:
        assert validate_value(spec, value, "x") == value


def test_a_spec_object_equal_to_another_has_its_own_check() -> None:
    small = ParamSpec(type=ParamType.INT, max=5)
    big = ParamSpec(type=ParamType.INT, max=500)
    assert validate_value(big, 100, "x") == 100
    with pytest.raises(PayloadError, match="above the maximum 5.0"):
        validate_value(small, 100, "x")
    specs = {"a": small, "b": ParamSpec(type=ParamType.DECIMAL, min=0)}
    assert validate_params(specs, {"a": 3, "b": "1.50"}, "m") == {"a": 3, "b": Decimal("1.50")}
    with pytest.raises(PayloadError, match=r"m\.b: -1 is below the minimum 0\.0"):
        validate_params(specs, {"b": "-1"}, "m")
