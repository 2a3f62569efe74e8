"""Expressions and templates of rule files, compiled once at load with ``rule-engine``.

The expression language is rule-engine's (https://zerosteiner.github.io/rule-engine/): a small,
typed, side-effect free grammar parsed into an AST, never Python ``eval``. Numbers are
:class:`~decimal.Decimal` inside the engine, so ``p['energy'] >= 12.345`` compares a decimal
exactly and a float ``85.5`` is ``Decimal('85.5')``.

Variables (see :data:`VARIABLES`): ``gw product device kind name id ts rts seq src code topic p``.
``p`` is the params / properties map of the message (of one sample for a batch); read it with
``p['name']`` (a missing key is "missing": no match) or ``p&['name']`` (a missing key is
``null``). ``p.name`` is refused at load: attribute access on a map is deprecated in rule-engine
and about 20 times slower.

Templates are text with ``{expression}`` parts (``{{`` and ``}}`` are literal braces):
``"{type}:{gw}/{product}/{device}"``, ``"gun at {p['gunTemperature']} degC"``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final, Literal

import rule_engine  # type: ignore[import-untyped]
import rule_engine.ast as re_ast  # type: ignore[import-untyped]
import rule_engine.errors as re_errors  # type: ignore[import-untyped]

from cloud.rules.fastpath import Fallback, Mismatch, Missing, compile_fast

Reason = Literal["missing", "type", "payload"]

#: the variables every expression can use, with their rule-engine types (UNDEFINED: may be null)
VARIABLES: Final[dict[str, str]] = {
    "gw": "STRING",
    "product": "STRING",
    "device": "STRING",
    "kind": "STRING",  # prop | event | state | reply | presence
    "name": "UNDEFINED",  # event or service name, else null
    "id": "STRING",
    "ts": "FLOAT",  # the sample's device time, else the message's, else rts (ms)
    "rts": "FLOAT",
    "seq": "UNDEFINED",
    "src": "UNDEFINED",
    "code": "UNDEFINED",  # reply code on service replies, else null
    "topic": "STRING",
    "p": "UNDEFINED",
}


class _Missing:
    """The value of an expression whose field is not in the message."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()


class ExprError(Exception):
    """An expression or template that cannot be compiled (turned into RulesFileError by the loader)."""


class EvalFailure(Exception):
    """An expression failed on one message: ``reason`` is ``missing`` or ``type``."""

    def __init__(self, reason: Reason, detail: str) -> None:
        self.reason: Reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


def new_context(extra: Mapping[str, str] | None = None) -> Any:
    """A rule-engine context knowing :data:`VARIABLES` (plus ``extra``); unknown names are refused."""
    names = dict(VARIABLES)
    names.update(extra or {})
    types = {name: getattr(rule_engine.DataType, kind) for name, kind in names.items()}
    return rule_engine.Context(
        type_resolver=rule_engine.type_resolver_from_dict(types),
        mapping_attribute_lookup=False,
        default_timezone="UTC",
    )


def _children(node: Any) -> Iterator[Any]:
    seen: set[str] = set()
    for klass in type(node).__mro__:
        seen.update(getattr(klass, "__slots__", ()))
    seen.update(getattr(node, "__dict__", {}))
    seen.discard("context")
    for name in seen:
        value = getattr(node, name, None)
        yield from _flatten(value)


def _flatten(value: Any) -> Iterator[Any]:
    if isinstance(value, re_ast.ExpressionBase):
        yield value
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _flatten(item)


def _walk(node: Any) -> Iterator[Any]:
    yield node
    for child in _children(node):
        yield from _walk(child)


def _is_p(node: Any) -> bool:
    return isinstance(node, re_ast.SymbolExpression) and node.name == "p"


def _compile_error(text: str, exc: Exception) -> ExprError:
    if isinstance(exc, re_errors.SymbolResolutionError):
        hint = f" (did you mean {exc.suggestion!r}?)" if exc.suggestion else ""
        known = ", ".join(VARIABLES)
        return ExprError(f"unknown name {exc.symbol_name!r}{hint} in {text!r}; known: {known}")
    message = getattr(exc, "message", None) or str(exc)
    return ExprError(f"invalid expression {text!r}: {message}")


class Expr:
    """One compiled expression.

    :meth:`get` returns the value (rule-engine types: numbers as ``Decimal``) or :data:`MISSING`
    when a field it needs is not in the message, and raises :class:`EvalFailure` (``type``) on
    anything else. A bare variable or ``p['name']`` is read directly (its Python value unchanged).
    """

    __slots__ = ("_fast", "_fn", "_key", "_rule", "_safe", "keys", "param_key", "result_type",
                 "symbol", "text")

    def __init__(self, text: str, context: Any, *, condition: bool = False) -> None:
        if not isinstance(text, str) or not text.strip():
            raise ExprError("an expression must be a non-empty string")
        self.text = text
        try:
            self._rule = rule_engine.Rule(text, context=context)
        except re_errors.EngineError as exc:
            raise _compile_error(text, exc) from None
        root = self._rule.statement.expression
        keys: set[str] = set()
        for node in _walk(root):
            if isinstance(node, re_ast.GetAttributeExpression) and _is_p(node.object):
                raise ExprError(
                    f"write p[{node.name!r}] instead of p.{node.name} in {text!r} (p is a map)"
                )
            if isinstance(node, re_ast.GetItemExpression) and _is_p(node.container) and \
                    isinstance(node.item, re_ast.StringExpression):
                keys.add(node.item.value)
        self.keys = frozenset(keys)
        result = root.result_type
        self.result_type: str = result.name
        if condition and result.name not in ("BOOLEAN", "UNDEFINED"):
            raise ExprError(f"{text!r} is a {result.name.lower()}, not a condition (true/false)")
        # direct reads: a bare variable, or p['key'] / p&['key']
        self._fast: Literal["symbol", "p", ""] = ""
        self._key = ""
        self._safe = False
        if isinstance(root, re_ast.SymbolExpression):
            self._fast, self._key = "symbol", root.name
        elif isinstance(root, re_ast.GetItemExpression) and _is_p(root.container) and \
                isinstance(root.item, re_ast.StringExpression):
            self._fast, self._key, self._safe = "p", root.item.value, bool(root.safe)
        #: for a bare ``p['key']`` / ``p&['key']``: the key (its value is the param's, unchanged)
        self.param_key: str | None = self._key if self._fast == "p" else None
        #: for a bare variable: its name (its value is the variable's, unchanged)
        self.symbol: str | None = self._key if self._fast == "symbol" else None
        # closures for the common shapes (comparisons, and/or, ??, lookup tables)
        self._fn = compile_fast(root)

    def __repr__(self) -> str:
        return f"Expr({self.text!r})"

    def get(self, ctx: Mapping[str, Any]) -> Any:
        """The value for one message (see the class docstring)."""
        if self._fast == "p":
            value = ctx["p"].get(self._key, MISSING)
            if value is MISSING and self._safe:
                return None
            return value
        if self._fast == "symbol":
            return ctx[self._key]
        if self._fn is not None:
            try:
                return self._fn(ctx)
            except Missing:
                return MISSING
            except Mismatch:
                raise EvalFailure("type", f"{self.text!r}: data type mismatch") from None
            except ArithmeticError as exc:  # a NaN compared, ...
                raise EvalFailure("type", f"{self.text!r}: {exc!r}") from None
            except Fallback:
                pass  # a value the closures do not handle: rule-engine decides
        try:
            return self._rule.evaluate(ctx)
        except re_errors.LookupError:
            # a key not in a map, an index past the end of a list: the field is missing
            return MISSING
        except re_errors.EngineError as exc:
            raise EvalFailure("type", f"{self.text!r}: {exc.message}") from None
        except (ArithmeticError, TypeError, ValueError) as exc:  # defensive: a library bug
            raise EvalFailure("type", f"{self.text!r}: {exc}") from None

    def condition(self, ctx: Mapping[str, Any]) -> bool:
        """A condition's value; :class:`EvalFailure` when a field is missing or it is not a bool."""
        value = self.get(ctx)
        if value is True or value is False:
            return value
        if value is MISSING:
            raise EvalFailure("missing", f"{self.text!r}: a field it reads is not in the message")
        raise EvalFailure("type", f"{self.text!r} gave {type(value).__name__}, not true/false")


def render_value(value: Any) -> str:
    """How a value is written into a template."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


class Template:
    """Text with ``{expression}`` parts; ``{{``/``}}`` are literal braces."""

    __slots__ = ("keys", "literal", "parts", "text")

    def __init__(self, text: str, context: Any, constants: Mapping[str, str] | None = None) -> None:
        if not isinstance(text, str):
            raise ExprError("a template must be a string")
        self.text = text
        parts: list[str | Expr] = []
        keys: set[str] = set()
        for piece, is_expr in _split(text):
            if not is_expr:
                if parts and isinstance(parts[-1], str):
                    parts[-1] += piece
                else:
                    parts.append(piece)
                continue
            name = piece.strip()
            if constants is not None and name in constants:
                if parts and isinstance(parts[-1], str):
                    parts[-1] += constants[name]
                else:
                    parts.append(constants[name])
                continue
            expr = Expr(piece, context)
            keys |= expr.keys
            parts.append(expr)
        self.parts = tuple(parts)
        self.keys = frozenset(keys)
        self.literal: str | None = None
        if all(isinstance(part, str) for part in self.parts):
            self.literal = "".join(part for part in self.parts if isinstance(part, str))

    def __repr__(self) -> str:
        return f"Template({self.text!r})"

    def render(self, ctx: Mapping[str, Any], *, strict: bool = True) -> str:
        """The text for one message.

        ``strict``: a part whose field is missing raises :class:`EvalFailure` (used where the text
        identifies something: dedupe keys, URLs, topics); otherwise it is written as ``?``.
        """
        if self.literal is not None:
            return self.literal
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            symbol = part.symbol
            if symbol is not None:  # a bare variable: every context has them all
                value = ctx[symbol]
            else:
                try:
                    value = part.get(ctx)
                except EvalFailure:
                    if strict:
                        raise
                    out.append("?")
                    continue
                if value is MISSING:
                    if strict:
                        raise EvalFailure("missing", f"{part.text!r} in template {self.text!r}")
                    out.append("?")
                    continue
            out.append(value if type(value) is str else render_value(value))
        return "".join(out)


def _split(text: str) -> Iterator[tuple[str, bool]]:
    """Literal pieces and ``{expression}`` pieces of a template."""
    i, n = 0, len(text)
    literal: list[str] = []
    while i < n:
        char = text[i]
        if char == "{" and text.startswith("{{", i):
            literal.append("{")
            i += 2
        elif char == "}" and text.startswith("}}", i):
            literal.append("}")
            i += 2
        elif char == "}":
            raise ExprError(f"unmatched '}}' at {i} in template {text!r} (write '}}}}')")
        elif char == "{":
            end = _closing(text, i)
            if literal:
                yield "".join(literal), False
                literal = []
            piece = text[i + 1:end]
            if not piece.strip():
                raise ExprError(f"empty '{{}}' at {i} in template {text!r}")
            yield piece, True
            i = end + 1
        else:
            literal.append(char)
            i += 1
    if literal:
        yield "".join(literal), False


def _closing(text: str, start: int) -> int:
    depth = 0
    quote: str | None = None
    i = start
    while i < len(text):
        char = text[i]
        if quote is not None:
            if char == "\\":
                i += 2
                continue
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ExprError(f"unclosed '{{' at {start} in template {text!r}")
