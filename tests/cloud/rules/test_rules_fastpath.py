"""The fast-path closures agree with rule-engine on generated expressions and values."""

from __future__ import annotations

import math
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import rule_engine.errors as re_errors  # type: ignore[import-untyped]
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cloud.rules.expr import MISSING, EvalFailure, Expr, ExprError, new_context

CTX = new_context()
KEYS = ["a", "b", "c"]

literals = st.sampled_from(["80", "0.1", "-3", "1e3", "'on'", "''", "'80'", "true", "false",
                            "null"])
reads = st.sampled_from(["p['a']", "p['b']", "p&['a']", "p&['c']", "gw", "seq", "ts", "name"])


@st.composite
def operands(draw: st.DrawFn) -> str:
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return draw(literals)
    if choice == 1:
        return draw(reads)
    if choice == 2:
        return f"({draw(reads)} ?? {draw(literals)})"
    return "{'on': 1, 'off': 0, 'x': 'y'}[" + draw(reads) + "]"


@st.composite
def conditions(draw: st.DrawFn, depth: int = 0) -> str:
    if depth < 2 and draw(st.booleans()):
        op = draw(st.sampled_from(["and", "or"]))
        return f"({draw(conditions(depth + 1))} {op} {draw(conditions(depth + 1))})"
    op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]))
    return f"{draw(operands())} {op} {draw(operands())}"


values = st.one_of(
    st.none(), st.booleans(), st.integers(-100, 100), st.sampled_from([0.1, 80.0, 79.99, 1e16]),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.decimals(allow_nan=False, places=3, min_value=-100, max_value=100),
    st.sampled_from(["on", "off", "x", "", "80"]), st.lists(st.integers(0, 2), max_size=2),
)
params = st.dictionaries(st.sampled_from(KEYS), values, max_size=3)


def outcome(run: Any) -> tuple[Any, ...]:
    try:
        value = run()
    except EvalFailure as failure:
        return ("fail", failure.reason)
    if value is MISSING:
        return ("missing",)
    if isinstance(value, Decimal) and value.is_nan():
        return ("value", "NaN")
    return ("value", type(value).__name__, value)


def slow(expr: Expr, ctx: dict[str, Any]) -> Any:
    try:
        return expr._rule.evaluate(ctx)
    except re_errors.LookupError:
        return MISSING
    except (re_errors.EngineError, ArithmeticError, TypeError, ValueError) as exc:
        raise EvalFailure("type", str(exc)) from None


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(conditions(), operands()), params, st.sampled_from([None, 0, 7]))
def test_fast_path_agrees_with_rule_engine(text: str, p: dict[str, Any], seq: int | None) -> None:
    try:
        expr = Expr(text, CTX)
    except ExprError:
        assume(False)  # raises: hypothesis drops the example
    ctx = context(p, seq)
    assume(expr._fn is not None or expr._fast)
    fast = outcome(lambda: expr.get(ctx))
    if expr._fast:  # direct reads return the raw value: compare as rule-engine would see it
        reference = outcome(lambda: slow(expr, ctx))
        if fast[0] == "value" and reference[0] == "value":
            return
        assert fast == reference, (text, p)
        return
    assert fast == outcome(lambda: slow(expr, ctx)), (text, p)


GRID_VALUES: list[Any] = [None, True, False, 0, 80, -3, 0.1, 80.0, 79.99, 1e16, float("nan"),
                          Decimal("0.100"), Decimal("80"), "on", "", "80", [1], MISSING,
                          # floats next to the literals' floats, and the infinities
                          math.nextafter(0.1, 1), math.nextafter(0.1, 0), 0.3,
                          math.nextafter(0.3, 1), math.nextafter(0.3, 0), 0.30000000000000004,
                          math.nextafter(80.0, 81), math.nextafter(80.0, 79), -3.0,
                          math.inf, -math.inf, Decimal("NaN"), 10**400]


def context(p: dict[str, Any], seq: int | None = 7) -> dict[str, Any]:
    return {"gw": "on", "product": "connector", "device": "d", "kind": "prop", "name": None,
            "id": "X", "ts": 1000, "rts": 2000, "seq": seq, "src": None, "code": None,
            "topic": "t", "p": MappingProxyType(p)}


def test_every_single_comparison_agrees_with_rule_engine() -> None:
    """Exhaustive over one comparison: reads x operators x literals x values."""
    checked = 0
    for read in ["p['a']", "p&['a']", "(p&['a'] ?? 80)", "{'on': 1, 'x': 'y'}[p['a']]"]:
        for op in ["==", "!=", "<", "<=", ">", ">="]:
            for literal in ["80", "0.1", "0.3", "-3", "1e400", "-1e400", "'on'", "''", "true",
                            "null"]:
                for text in (f"{read} {op} {literal}", f"{literal} {op} {read}"):
                    try:
                        expr = Expr(text, CTX)
                    except ExprError:
                        continue
                    assert expr._fn is not None
                    for value in GRID_VALUES:
                        ctx = context({} if value is MISSING else {"a": value})
                        assert outcome(lambda e=expr, c=ctx: e.get(c)) == \
                            outcome(lambda e=expr, c=ctx: slow(e, c)), (expr.text, value)
                        checked += 1
    assert checked > 5000


def test_shapes_that_get_closures() -> None:
    for text in ["p['a'] > 80", "p&['a'] != null", "(p&['a'] ?? '') != ''",
                 "kind == 'prop' and (p['a'] > 1 or p['b'] < 2)",
                 "{'x': 0, 'y': 1}[p['a']]", "product != 'gateway'"]:
        assert Expr(text, CTX)._fn is not None, text
    for text in ["p['a'] * 2", "p['a'] =~ 'x.*'", "not p['a']", "p['a'][0] == 1"]:
        assert Expr(text, CTX)._fn is None, text
