"""Load YAML data files keeping line numbers, and validate them with pydantic.

Every data file of the project (thing models, gateway and cloud config, register maps, rules)
goes through :func:`load_validated`, so an invalid file is always refused with an error that names
the file, the path inside the document and the line.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from thingmodels.errors import ModelFileError

M = TypeVar("M", bound=BaseModel)

_Key = str | int
_KEY_ERRORS = frozenset({"extra_forbidden", "missing"})


class LocatedYaml:
    """A parsed YAML document plus a map from path to line number."""

    def __init__(self, file: str, data: Any, lines: dict[tuple[_Key, ...], int]) -> None:
        self.file = file
        self.data = data
        self._lines = lines

    def has_path(self, path: Sequence[_Key]) -> bool:
        """Whether ``path`` names a node of the document."""
        return tuple(path) in self._lines

    def line_of(self, path: Sequence[_Key]) -> int | None:
        """The 1-based line of the deepest node of ``path`` that exists."""
        key = tuple(path)
        while key:
            if key in self._lines:
                return self._lines[key]
            key = key[:-1]
        return self._lines.get((), None)


def _walk(node: yaml.Node, path: tuple[_Key, ...], lines: dict[tuple[_Key, ...], int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[(*path, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*path, key), lines)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), lines)


def parse_yaml(text: str, file: str) -> LocatedYaml:
    """Parse ``text``; a syntax error becomes :class:`ModelFileError` with its line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise ModelFileError(file, "", f"YAML syntax error: {exc.problem}", line) from exc
    except yaml.YAMLError as exc:
        raise ModelFileError(file, "", f"YAML error: {exc}") from exc
    lines: dict[tuple[_Key, ...], int] = {}
    if node is not None:
        _walk(node, (), lines)
    return LocatedYaml(file, data, lines)


def read_yaml(path: Path | str) -> LocatedYaml:
    """Read and parse a YAML file."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelFileError(file, "", f"cannot read file: {exc.strerror or exc}") from exc
    return parse_yaml(text, file)


def format_loc(loc: Sequence[_Key]) -> str:
    """``("properties", "voltage", "min")`` -> ``properties.voltage.min``; ints as ``[i]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def validate_located(doc: LocatedYaml, model: type[M], context: dict[str, Any] | None = None) -> M:
    """Validate a parsed document against a pydantic model, errors naming file, path and line."""
    try:
        return model.model_validate(doc.data, context=context)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [p for p in first["loc"] if isinstance(p, str | int)]
        # pydantic adds union member names to ``loc``; keep only what is in the document
        # (and the offending key itself for unknown or missing keys)
        real: list[_Key] = []
        for index, part in enumerate(loc):
            candidate = (*real, part)
            last = index == len(loc) - 1
            if doc.has_path(candidate) or (last and first["type"] in _KEY_ERRORS):
                real.append(part)
        message = first["msg"]
        if first["type"] == "extra_forbidden":
            message = f"unknown key {real[-1]!r}" if real else "unknown key"
        extra = f" (and {exc.error_count() - 1} more errors)" if exc.error_count() > 1 else ""
        raise ModelFileError(
            doc.file, format_loc(real), message + extra, doc.line_of(real)
        ) from exc


def load_validated(path: Path | str, model: type[M], context: dict[str, Any] | None = None) -> M:
    """Read a YAML file and validate it against ``model``."""
    return validate_located(read_yaml(path), model, context)
