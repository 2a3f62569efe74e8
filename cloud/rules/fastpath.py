"""Closures for the common shapes of rule expressions, with rule-engine's exact semantics.

rule-engine evaluates an AST node by node with type checks and value coercion on every step
(about 10 µs for ``p['gunTemperature'] > 80``, 30 µs for a lookup table). Most rule
expressions are a few shapes: a field compared with a literal, ``and``/``or`` of those,
``p&['x'] ?? default``, a lookup ``{'a': 0, ...}[p['x']]``. For an AST made only of those
nodes, :func:`compile_fast` builds Python closures that do what rule-engine does:

* values read from the message are coerced like rule-engine's ``coerce_value`` (int and
  float become ``Decimal``, a float through its ``repr``: ``0.1`` is ``Decimal('0.1')``);
* ``==``/``!=`` are false/true across types; ``<``, ``<=``, ``>``, ``>=`` across types are a
  type error, ``null`` against ``null`` is true for ``<=``/``>=``;
* ``and``/``or`` short-circuit and give a bool; ``??`` replaces ``null``;
* a missing key (or a lookup key not in the table) aborts with "missing".

Any other node means no closure (the expression always runs through rule-engine), and a
value the closures do not handle (a list, a map, bytes) raises :class:`Fallback` at run time so
that message runs through rule-engine. ``tests/cloud/rules/test_rules_fastpath.py`` checks the
two agree on generated expressions and values.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import rule_engine.ast as re_ast  # type: ignore[import-untyped]

Fn = Callable[[Mapping[str, Any]], Any]


class Fallback(Exception):
    """This message has a value the closures do not handle: evaluate it with rule-engine."""


class Missing(Exception):
    """A field the expression reads is not in the message."""


class Mismatch(Exception):
    """An ordered comparison of two different types (rule-engine: 'data type mismatch')."""


_ORDERED: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt, "ge": operator.ge, "lt": operator.lt, "le": operator.le,
}


def coerce(value: Any) -> Any:
    """A message value as rule-engine sees it (scalars only; others raise Fallback)."""
    kind = type(value)
    if kind is str or kind is bool or kind is Decimal or value is None:
        return value
    if kind is float:
        return Decimal(repr(value))
    if kind is int:
        return Decimal(value)
    raise Fallback


def _symbol(name: str) -> Fn:
    def read(ctx: Mapping[str, Any]) -> Any:
        return coerce(ctx[name])
    return read


def _item(key: str, safe: bool) -> Fn:
    if safe:
        def read_safe(ctx: Mapping[str, Any]) -> Any:
            return coerce(ctx["p"].get(key))
        return read_safe

    def read(ctx: Mapping[str, Any]) -> Any:
        p = ctx["p"]
        if key not in p:
            raise Missing
        return coerce(p[key])
    return read


def _raw_item(key: str, safe: bool) -> Fn:
    """``p[key]`` (``p&[key]`` when ``safe``) as sent, not coerced."""
    if safe:
        def read_raw_safe(ctx: Mapping[str, Any]) -> Any:
            return ctx["p"].get(key)
        return read_raw_safe

    def read_raw(ctx: Mapping[str, Any]) -> Any:
        p = ctx["p"]
        if key not in p:
            raise Missing
        return p[key]
    return read_raw


def _ordered_number(op: Callable[[Any, Any], bool], read: Fn, literal: Decimal) -> Fn:
    """``field OP number``: what :func:`_ordered` gives, without a Decimal per float or int.

    A float ``v`` becomes ``Decimal(repr(v))``, which converts back to ``v``; float conversion
    never decreases, so when ``v`` differs from ``float(literal)`` the two compare as
    ``Decimal(repr(v))`` and ``literal`` do (NaN and ``v == float(literal)`` take the exact
    path). An int compares with a Decimal exactly as its Decimal does.
    """
    near = float(literal)

    def compare_number(ctx: Mapping[str, Any]) -> bool:
        raw = read(ctx)
        kind = type(raw)
        if kind is float:
            if raw != near and raw == raw:  # noqa: PLR0124 - false for NaN only
                return op(raw, near)
        elif kind is int:
            return op(raw, literal)
        a = coerce(raw)
        if type(a) is not Decimal:  # the literal is a number: any other type is a mismatch
            raise Mismatch
        return op(a, literal)
    return compare_number


_SCALARS = (str, bool, int, float, Decimal)


def _null_test(read: Fn, negate: bool) -> Fn:
    """``field == null`` / ``field != null``: what :func:`_equal` gives, without coercing."""
    def null_test(ctx: Mapping[str, Any]) -> bool:
        raw = read(ctx)
        if raw is None:
            return not negate
        if type(raw) not in _SCALARS:
            coerce(raw)  # raises Fallback: rule-engine decides
        return negate
    return null_test


def _literal(value: Any) -> Fn:
    def constant(ctx: Mapping[str, Any]) -> Any:
        return value
    return constant


def _coalesce(left: Fn, right: Fn) -> Fn:
    def coalesce(ctx: Mapping[str, Any]) -> Any:
        value = left(ctx)
        return right(ctx) if value is None else value
    return coalesce


def _equal(left: Fn, right: Fn, negate: bool) -> Fn:
    def equal(ctx: Mapping[str, Any]) -> bool:
        a, b = left(ctx), right(ctx)
        if type(a) is not type(b):
            return negate
        return bool(a != b) if negate else bool(a == b)
    return equal


def _ordered(op: Callable[[Any, Any], bool], left: Fn, right: Fn) -> Fn:
    both_null = op in (operator.ge, operator.le)

    def compare(ctx: Mapping[str, Any]) -> bool:
        a, b = left(ctx), right(ctx)
        if a is None and b is None:
            return both_null
        if type(a) is not type(b):
            raise Mismatch
        return op(a, b)
    return compare


def _logic(is_and: bool, left: Fn, right: Fn) -> Fn:
    if is_and:
        def conj(ctx: Mapping[str, Any]) -> bool:
            return bool(left(ctx) and right(ctx))
        return conj

    def disj(ctx: Mapping[str, Any]) -> bool:
        return bool(left(ctx) or right(ctx))
    return disj


def _lookup(table: Mapping[Any, Any], key: Fn) -> Fn:
    def lookup(ctx: Mapping[str, Any]) -> Any:
        k = key(ctx)
        try:
            return table[k]
        except KeyError:
            raise Missing from None
    return lookup


def _is_p(node: Any) -> bool:
    return isinstance(node, re_ast.SymbolExpression) and node.name == "p"


def _p_key(node: Any) -> tuple[str, bool] | None:
    """(key, safe) for ``p['key']`` / ``p&['key']``, else None."""
    if type(node) is re_ast.GetItemExpression and _is_p(node.container) and \
            type(node.item) is re_ast.StringExpression:
        return node.item.value, bool(node.safe)
    return None


_LITERALS = (re_ast.FloatExpression, re_ast.StringExpression, re_ast.BooleanExpression,
             re_ast.NullExpression)


def compile_fast(node: Any) -> Fn | None:
    """Closures for ``node`` (a rule-engine AST node), or None when a node is not covered."""
    kind = type(node)
    if kind is re_ast.SymbolExpression:
        return None if node.name == "p" else _symbol(node.name)
    if kind in _LITERALS:
        return _literal(node.value)
    if kind is re_ast.GetItemExpression:
        if _is_p(node.container) and type(node.item) is re_ast.StringExpression:
            return _item(node.item.value, bool(node.safe))
        if type(node.container) is re_ast.MappingExpression and node.container.is_reduced \
                and not node.safe:
            key = compile_fast(node.item)
            if key is None:
                return None
            table = node.container.evaluate(None)
            if not all(type(k) in (str, bool, Decimal) for k in table):
                return None
            return _lookup(dict(table), key)
        return None
    if kind is re_ast.CoalesceExpression:
        left, right = compile_fast(node.left), compile_fast(node.right)
        return None if left is None or right is None else _coalesce(left, right)
    if kind is re_ast.ComparisonExpression and node.type in ("eq", "ne"):
        negate = node.type == "ne"
        for field, other in ((node.left, node.right), (node.right, node.left)):
            found = _p_key(field)
            if found is not None and type(other) is re_ast.NullExpression:
                return _null_test(_raw_item(*found), negate)
        left, right = compile_fast(node.left), compile_fast(node.right)
        if left is None or right is None:
            return None
        return _equal(left, right, negate=node.type == "ne")
    if kind is re_ast.ArithmeticComparisonExpression and node.type in _ORDERED:
        field_key = _p_key(node.left)
        if field_key is not None and type(node.right) is re_ast.FloatExpression and \
                isinstance(node.right.value, Decimal) and not node.right.value.is_nan():
            return _ordered_number(_ORDERED[node.type], _raw_item(*field_key), node.right.value)
        left, right = compile_fast(node.left), compile_fast(node.right)
        if left is None or right is None:
            return None
        return _ordered(_ORDERED[node.type], left, right)
    if kind is re_ast.LogicExpression and node.type in ("and", "or"):
        left, right = compile_fast(node.left), compile_fast(node.right)
        if left is None or right is None:
            return None
        return _logic(node.type == "and", left, right)
    return None
