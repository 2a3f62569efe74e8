"""Topic filters of rules: validation against the topic grammar, and a trie that indexes them.

A filter is an MQTT filter (``+`` one level, ``#`` the rest) over the uplink grammar::

    ev/v1/{gw}/{product}/{device}/{prop | state | event/NAME | svc/NAME/reply}

A message only costs the rules whose filter can match its topic: :class:`FilterTrie` walks the
topic's levels once, following the exact level, ``+`` and ``#`` branches, so rules with
filters that cannot match are never looked at (``bench/rules_throughput.py`` shows it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from thingmodels.errors import TopicError, UnknownModelError
from thingmodels.loader import ModelRegistry
from thingmodels.topics import check_id

PRESENCE = "$presence"

_NAME = re.compile(r"^[a-z][A-Za-z0-9]*$")
_PRODUCT = re.compile(r"^[a-z][a-z0-9_]*$")
#: the suffixes of uplink topics (after ev/v1/{gw}/{product}/{device})
_SHAPES: tuple[tuple[str, ...], ...] = (("prop",), ("state",), ("event", "*"), ("svc", "*", "reply"))


class FilterError(ValueError):
    """A filter outside the grammar (turned into RulesFileError by the loader)."""


@dataclass(frozen=True, slots=True)
class Source:
    """What a filter selects, as far as it is concrete (``None`` = any)."""

    product: str | None
    kind: str | None  # prop | state | event | reply; None when + or #
    name: str | None  # event or service name


def _level_matches(pattern: Sequence[str], shape: Sequence[str]) -> bool:
    """Whether filter levels ``pattern`` can match some topic of suffix ``shape``."""
    for i, part in enumerate(pattern):
        if part == "#":
            return True
        if i >= len(shape):
            return False
        if part != "+" and shape[i] != "*" and part != shape[i]:
            return False
    return len(pattern) == len(shape)


def check_filter(text: str, models: ModelRegistry) -> Source:
    """Validate one filter; return what it selects. Raises :class:`FilterError`."""
    if not isinstance(text, str) or not text:
        raise FilterError("a topic filter must be a non-empty string")
    if text == PRESENCE:
        return Source(None, "presence", None)
    if text.startswith("$"):
        raise FilterError(f"unknown special source {text!r} (the only one is {PRESENCE!r})")
    levels = text.split("/")
    for i, part in enumerate(levels):
        if "#" in part and (part != "#" or i != len(levels) - 1):
            raise FilterError(f"{text!r}: '#' must be a whole level and the last one")
        if "+" in part and part != "+":
            raise FilterError(f"{text!r}: '+' must be a whole level")
    if levels[:2] != ["ev", "v1"]:
        raise FilterError(f"{text!r} does not start with 'ev/v1/'")
    head = levels[2:5]
    product: str | None = None
    for index, part in enumerate(head):
        if part in ("+", "#"):
            continue
        what = ("gateway id", "product", "device id")[index]
        try:
            check_id(part, what)
        except TopicError as exc:
            raise FilterError(f"{text!r}: {exc}") from None
        if index == 1:
            if not _PRODUCT.match(part):
                raise FilterError(f"{text!r}: {part!r} is not a product name")
            if part not in set(models):  # ModelRegistry's `in` raises for unknown products
                raise FilterError(
                    f"{text!r}: no thing model for product {part!r} (known: {', '.join(models)})"
                )
            product = part
    if "#" in head:
        return Source(product, None, None)
    suffix = levels[5:]
    if not suffix:
        raise FilterError(f"{text!r} ends after the device level: add /prop, /state, "
                          "/event/NAME, /svc/NAME/reply, /+ or /#")
    if not any(_level_matches(suffix, shape) for shape in _SHAPES):
        raise FilterError(
            f"{text!r} cannot match any uplink topic "
            "(.../prop, .../state, .../event/NAME, .../svc/NAME/reply)"
        )
    kind: str | None = None
    name: str | None = None
    first = suffix[0]
    if first in ("prop", "state"):
        kind = first
    elif first in ("event", "svc"):
        kind = "event" if first == "event" else "reply"
        if len(suffix) > 1 and suffix[1] not in ("+", "#"):
            name = suffix[1]
            if not _NAME.match(name):
                raise FilterError(f"{text!r}: {name!r} is not an event or service name")
            _check_name(text, models, product, kind, name)
    return Source(product, kind, name)


def _check_name(text: str, models: ModelRegistry, product: str | None, kind: str,
                name: str) -> None:
    candidates = [models[product]] if product is not None else list(models.values())
    for model in candidates:
        try:
            if kind == "event":
                model.event(name)
            else:
                model.service(name)
        except UnknownModelError:
            continue
        return
    what = "event" if kind == "event" else "service"
    where = f"product {product!r}" if product is not None else "any thing model"
    raise FilterError(f"{text!r}: {where} has no {what} {name!r}")


T = TypeVar("T")


class _Node(Generic[T]):
    __slots__ = ("children", "here", "plus", "rest")

    def __init__(self) -> None:
        self.children: dict[str, _Node[T]] = {}
        self.plus: _Node[T] | None = None
        self.here: list[tuple[int, T]] = []  # filters ending at this level
        self.rest: list[tuple[int, T]] = []  # filters ending with '#' below this level


class FilterTrie(Generic[T]):
    """Values indexed by MQTT topic filter; :meth:`match` returns them in insertion order."""

    def __init__(self) -> None:
        self._root: _Node[T] = _Node()
        self._count = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, topic_filter: str, value: T) -> None:
        """Index ``value`` under ``topic_filter``."""
        node = self._root
        order = self._count
        self._count += 1
        self._size += 1
        for part in topic_filter.split("/"):
            if part == "#":
                node.rest.append((order, value))
                return
            if part == "+":
                if node.plus is None:
                    node.plus = _Node()
                node = node.plus
            else:
                node = node.children.setdefault(part, _Node())
        node.here.append((order, value))

    def match(self, levels: Sequence[str]) -> list[T]:
        """Values whose filter matches the topic ``levels``, each once, in insertion order."""
        found: list[tuple[int, T]] = []
        stack: list[tuple[_Node[T], int]] = [(self._root, 0)]
        depth = len(levels)
        while stack:
            node, i = stack.pop()
            if node.rest:
                found.extend(node.rest)
            if i == depth:
                found.extend(node.here)
                continue
            child = node.children.get(levels[i])
            if child is not None:
                stack.append((child, i + 1))
            if node.plus is not None:
                stack.append((node.plus, i + 1))
        if len(found) > 1:
            found.sort(key=lambda item: item[0])
        return _unique(value for _, value in found)


def _unique(values: Iterable[T]) -> list[T]:
    out: list[T] = []
    seen: set[int] = set()
    for value in values:
        if id(value) not in seen:
            seen.add(id(value))
            out.append(value)
    return out
