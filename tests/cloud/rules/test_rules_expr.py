"""Expressions and templates: compiled once, decimals exact, failures classified, never raised."""

from __future__ import annotations

from decimal import Decimal
from types import MappingProxyType
from typing import Any

import pytest

from cloud.rules.expr import MISSING, EvalFailure, Expr, ExprError, Template, new_context

CTX = new_context()


def ctx(**p: Any) -> dict[str, Any]:
    return {"gw": "gw-1", "product": "connector", "device": "c-1", "kind": "prop",
            "name": None, "id": "01X", "ts": 1000, "rts": 2000, "seq": 3, "src": "ykc16",
            "code": None, "topic": "ev/v1/gw-1/connector/c-1/prop", "p": MappingProxyType(p)}


def test_direct_reads_keep_the_python_value() -> None:
    assert Expr("p['power']", CTX).get(ctx(power=60.5)) == 60.5
    assert type(Expr("p['chargingTime']", CTX).get(ctx(chargingTime=5))) is int
    assert Expr("device", CTX).get(ctx()) == "c-1"
    assert Expr("p['power']", CTX).get(ctx()) is MISSING
    assert Expr("p&['power']", CTX).get(ctx()) is None


def test_decimals_compare_exactly_with_literals_and_floats() -> None:
    exact = Expr("p['energy'] == 12.345", CTX, condition=True)
    assert exact.condition(ctx(energy=Decimal("12.345")))
    assert not exact.condition(ctx(energy=Decimal("12.3450001")))
    assert Expr("p['x'] == 0.1", CTX).condition(ctx(x=0.1))  # float 0.1 is Decimal('0.1')
    assert Expr("p['a'] > p['b']", CTX).condition(ctx(a=Decimal("80.0001"), b=80.0))
    total = Expr("p['energy'] * 2", CTX).get(ctx(energy=Decimal("0.1")))
    assert total == Decimal("0.2") and isinstance(total, Decimal)


def test_missing_fields_and_type_errors_are_classified() -> None:
    cond = Expr("p['gunTemperature'] > 80", CTX, condition=True)
    with pytest.raises(EvalFailure) as info:
        cond.condition(ctx(power=1.0))
    assert info.value.reason == "missing"
    with pytest.raises(EvalFailure) as info:
        cond.condition(ctx(gunTemperature="hot"))
    assert info.value.reason == "type"
    with pytest.raises(EvalFailure) as info:
        Expr("p['a'] / p['b']", CTX).get(ctx(a=1, b=0))
    assert info.value.reason == "type"
    assert Expr("p['list'][5]", CTX).get(ctx(list=[1, 2])) is MISSING


def test_a_condition_must_give_a_bool() -> None:
    with pytest.raises(EvalFailure) as info:
        Expr("p['sessionId']", CTX, condition=True).condition(ctx(sessionId="S1"))
    assert info.value.reason == "type"
    assert Expr("p['plugged']", CTX, condition=True).condition(ctx(plugged=True)) is True


def test_referenced_keys_are_collected() -> None:
    expr = Expr("(p&['a'] ?? 0) > 1 and p['b'] == 'x' and {'k': p['c']}['k'] != null", CTX)
    assert expr.keys == {"a", "b", "c"}


def test_compile_errors() -> None:
    for text, message in [("", "non-empty"), ("p[", "invalid expression"),
                          ("nope == 1", "unknown name 'nope'"), ("p.x == 1", "write p['x']")]:
        with pytest.raises(ExprError) as info:
            Expr(text, CTX)
        assert message in str(info.value)


def test_templates() -> None:
    t = Template("{type}:{gw}/{product}/{device}", CTX, {"type": "fault"})
    assert t.literal is None
    assert t.render(ctx()) == "fault:gw-1/connector/c-1"
    assert Template("plain {{braces}}", CTX).render(ctx()) == "plain {braces}"
    # '{{' is always a literal brace: a map literal first in a part needs a space, '{ {...'
    with pytest.raises(ExprError, match="unmatched"):
        Template("code {{'a': 1}}['a']}", CTX)
    nested = Template("s={ {'on': 'ON', 'off': 'OFF'}[p['s']] } '{p['q']}'", CTX)
    assert nested.render(ctx(s="on", q="}")) == "s=ON '}'"
    assert Template("{p['x']}|{p['b']}|{p['n']}", CTX).render(
        ctx(x=Decimal("1.50"), b=True, n=None)) == "1.50|true|null"


def test_template_missing_values_strict_and_lenient() -> None:
    t = Template("temp {p['gunTemperature']} on {device}", CTX)
    assert t.keys == {"gunTemperature"}
    with pytest.raises(EvalFailure) as info:
        t.render(ctx())
    assert info.value.reason == "missing"
    assert t.render(ctx(), strict=False) == "temp ? on c-1"


@pytest.mark.parametrize(("text", "message"), [
    ("a {b", "unclosed"), ("a } b", "unmatched"), ("a {} b", "empty"), ("{nope}", "unknown name"),
])
def test_template_errors(text: str, message: str) -> None:
    with pytest.raises(ExprError, match=message):
        Template(text, CTX)
