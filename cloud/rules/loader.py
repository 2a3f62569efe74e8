"""Load rule files: YAML with line numbers, pydantic validation, expressions compiled once.

Every problem is a :class:`~cloud.rules.errors.RulesFileError` naming the file, the line and
the rule id: YAML syntax, unknown or missing keys, a filter outside the topic grammar or naming
a product, event or service the thing models do not have, an expression that does not compile,
a ``p['key']`` that no source of the rule can carry, a duplicate rule id (across all files).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud.rules.actions import (
    AlarmBuilder,
    BillingBuilder,
    Builder,
    InfluxBuilder,
    InvokeBuilder,
    RepublishBuilder,
    WebhookBuilder,
    check_republish_topic,
)
from cloud.rules.errors import RulesFileError
from cloud.rules.expr import Expr, ExprError, Template, new_context
from cloud.rules.filters import FilterError, Source, check_filter
from cloud.rules.schema import ActionSpec, AlarmSpec, RulesFileSpec, RuleSpec
from thingmodels.errors import ModelFileError, UnknownModelError
from thingmodels.loader import ModelRegistry
from thingmodels.yamlfile import LocatedYaml, format_loc, read_yaml, validate_located

_Path = tuple[str | int, ...]
_STATE_KEYS = frozenset({"online", "session", "reason"})
_PRESENCE_KEYS = frozenset({"online", "session"})


@dataclass(frozen=True, eq=False)
class CompiledRule:
    """One rule, ready to run."""

    id: str
    description: str
    enabled: bool
    sources: tuple[str, ...]
    where: Expr | None
    actions: tuple[Builder, ...]
    action_kinds: tuple[str, ...]
    file: str
    line: int | None

    @property
    def presence(self) -> bool:
        """Whether ``$presence`` is one of its sources."""
        return "$presence" in self.sources


def rule_files(paths: Sequence[Path | str]) -> list[Path]:
    """The files named by ``paths`` (files, or directories of ``*.yaml``), each once, in order."""
    out: list[Path] = []
    seen: set[Path] = set()
    for entry in map(Path, paths):
        if entry.is_dir():
            found = sorted(entry.glob("*.yaml"))
        elif entry.is_file():
            found = [entry]
        else:
            raise RulesFileError(str(entry), None, None, "", "no such rule file or directory")
        for file in found:
            real = file.resolve()
            if real not in seen:
                seen.add(real)
                out.append(file)
    return out


def load_rules(paths: Sequence[Path | str], models: ModelRegistry) -> list[CompiledRule]:
    """Load and compile every rule of ``paths`` (see the module docstring for the checks)."""
    context = new_context()
    rules: list[CompiledRule] = []
    first: dict[str, CompiledRule] = {}
    for file in rule_files(paths):
        compiler = _FileCompiler(file, models, context)
        for index, rule in compiler.compile():
            earlier = first.get(rule.id)
            if earlier is not None:
                raise compiler.error(index, rule.id, ("id",),
                                     f"duplicate rule id {rule.id!r}, first defined at "
                                     f"{earlier.file}:{earlier.line}")
            first[rule.id] = rule
            rules.append(rule)
    return rules


_RULE_INDEX = re.compile(r"^rules\[(\d+)\]")


class _FileCompiler:
    def __init__(self, file: Path, models: ModelRegistry, context: Any) -> None:
        self.file = str(file)
        self.models = models
        self.context = context
        self.doc: LocatedYaml | None = None

    def error(self, index: int, rule: str | None, path: _Path, message: str) -> RulesFileError:
        full: _Path = ("rules", index, *path)
        line = self.doc.line_of(full) if self.doc is not None else None
        return RulesFileError(self.file, line, rule, format_loc(full), message)

    def _rule_id_at(self, path: str) -> str | None:
        match = _RULE_INDEX.match(path)
        if match is None or self.doc is None:
            return None
        try:
            rule_id = self.doc.data["rules"][int(match.group(1))]["id"]
        except (KeyError, IndexError, TypeError):
            return None
        return rule_id if isinstance(rule_id, str) else None

    def compile(self) -> list[tuple[int, CompiledRule]]:
        try:
            self.doc = read_yaml(self.file)
        except ModelFileError as exc:
            raise RulesFileError(exc.file, exc.line, None, exc.path, exc.message) from exc
        if self.doc.data is None:  # an empty file: no rules
            return []
        try:
            spec = validate_located(self.doc, RulesFileSpec)
        except ModelFileError as exc:
            raise RulesFileError(exc.file, exc.line, self._rule_id_at(exc.path), exc.path,
                                 exc.message) from exc
        return [(i, _RuleCompiler(self, i, rule).compile()) for i, rule in enumerate(spec.rules)]


class _RuleCompiler:
    def __init__(self, owner: _FileCompiler, index: int, spec: RuleSpec) -> None:
        self.owner = owner
        self.index = index
        self.spec = spec
        self.models = owner.models
        self.refs: list[tuple[_Path, frozenset[str]]] = []
        self.sources: list[Source] = []

    def error(self, path: _Path, message: str) -> RulesFileError:
        return self.owner.error(self.index, self.spec.id, path, message)

    def expr(self, text: str, path: _Path, *, condition: bool = False) -> Expr:
        try:
            compiled = Expr(text, self.owner.context, condition=condition)
        except ExprError as exc:
            raise self.error(path, str(exc)) from None
        self.refs.append((path, compiled.keys))
        return compiled

    def condition(self, value: str | bool | None, path: _Path) -> Expr | bool | None:
        if value is None or isinstance(value, bool):
            return value
        return self.expr(value, path, condition=True)

    def exprs(self, values: dict[str, str], path: _Path) -> dict[str, Expr]:
        return {name: self.expr(text, (*path, name)) for name, text in values.items()}

    def template(self, text: str, path: _Path,
                 constants: dict[str, str] | None = None) -> Template:
        try:
            compiled = Template(text, self.owner.context, constants)
        except ExprError as exc:
            raise self.error(path, str(exc)) from None
        self.refs.append((path, compiled.keys))
        return compiled

    def compile(self) -> CompiledRule:
        spec = self.spec
        for j, text in enumerate(spec.sources):
            try:
                self.sources.append(check_filter(text, self.models))
            except FilterError as exc:
                raise self.error(("from", j), str(exc)) from None
        where = self.expr(spec.where, ("where",), condition=True) if spec.where else None
        actions = tuple(self.action(a, action) for a, action in enumerate(spec.do))
        self.check_keys()
        line = self.owner.doc.line_of(("rules", self.index)) if self.owner.doc else None
        return CompiledRule(
            id=spec.id, description=spec.description, enabled=spec.enabled,
            sources=tuple(spec.sources), where=where, actions=actions,
            action_kinds=tuple(a.kind for a in spec.do), file=self.owner.file, line=line,
        )

    def action(self, a: int, action: ActionSpec) -> Builder:
        kind = action.kind
        path: _Path = ("do", a, kind)
        rule = self.spec.id
        if action.influx is not None:
            influx = action.influx
            return InfluxBuilder(
                rule, self.template(influx.measurement, (*path, "measurement")),
                self.exprs(influx.tags, (*path, "tags")),
                self.exprs(influx.fields, (*path, "fields")),
            )
        if action.alarm is not None:
            return self.alarm(action.alarm, path)
        if action.invoke is not None:
            invoke = action.invoke
            self.check_service(invoke.service, invoke.product, (*path, "service"))
            return InvokeBuilder(
                rule, service=invoke.service, params=self.exprs(invoke.params, (*path, "params")),
                gw=self.optional_template(invoke.gw, (*path, "gw")),
                product=self.optional_template(invoke.product, (*path, "product")),
                device=self.optional_template(invoke.device, (*path, "device")),
                timeout_s=invoke.timeout, models=self.models,
            )
        if action.webhook is not None:
            hook = action.webhook
            url = self.template(hook.url, (*path, "url"))
            head = url.parts[0] if url.parts else ""
            if isinstance(head, str) and not head.startswith(("http://", "https://")):
                raise self.error((*path, "url"), f"{hook.url!r} is not an http:// or https:// URL")
            return WebhookBuilder(
                rule, url=url,
                body=None if hook.body is None else self.exprs(hook.body, (*path, "body")),
                headers={k: self.template(v, (*path, "headers", k)) for k, v in hook.headers.items()},
                timeout_s=hook.timeout,
            )
        if action.republish is not None:
            rep = action.republish
            topic = self.template(rep.topic, (*path, "topic"))
            head = topic.parts[0] if topic.parts else ""
            if isinstance(head, str):
                problem = check_republish_topic(head if topic.literal is not None else head + "x")
                if problem is not None:
                    raise self.error((*path, "topic"), problem)
            return RepublishBuilder(
                rule, topic=topic,
                payload=None if rep.payload is None else self.exprs(rep.payload, (*path, "payload")),
                qos=rep.qos, retain=rep.retain,
            )
        assert action.billing is not None
        for j, source in enumerate(self.sources):
            if source.kind in ("presence", "state", "reply"):
                raise self.error(("from", j), "billing takes event and property messages, not "
                                              f"{source.kind}")
        return BillingBuilder(rule, name=action.billing.name)

    def optional_template(self, text: str | None, path: _Path) -> Template | None:
        return None if text is None else self.template(text, path)

    def alarm(self, alarm: AlarmSpec, path: _Path) -> AlarmBuilder:
        constants = {"type": alarm.type, "level": alarm.level}
        return AlarmBuilder(
            self.spec.id, type_=alarm.type, level=alarm.level,
            raise_=self.condition(alarm.raise_, (*path, "raise")),
            clear=self.condition(alarm.clear, (*path, "clear")),
            debounce_ms=round(alarm.debounce * 1000), clear_after_ms=round(alarm.clear_after * 1000),
            message=self.template(alarm.message, (*path, "message"), constants),
            dedupe=self.template(alarm.dedupe, (*path, "dedupe"), constants),
            value=None if alarm.value is None else self.expr(alarm.value, (*path, "value")),
            details=self.exprs(alarm.details, (*path, "details")),
        )

    def check_service(self, service: str, product: str | None, path: _Path) -> None:
        if product is not None and "{" not in product:
            products: Iterable[str | None] = [product]
        else:
            products = [s.product for s in self.sources] if product is None else [None]
        for name in products:
            if name is None:
                continue
            try:
                self.models[name].service(service)
            except UnknownModelError as exc:
                raise self.error(path, str(exc)) from None

    def allowed_keys(self) -> frozenset[str] | None:
        """The params keys some source of the rule can carry; None when a source is open."""
        allowed: set[str] = set()
        for source in self.sources:
            if source.kind == "presence":
                allowed |= _PRESENCE_KEYS
            elif source.kind == "state":
                allowed |= _STATE_KEYS
            elif source.product is None or source.kind is None:
                return None
            elif source.kind == "prop":
                allowed |= set(self.models[source.product].spec.properties)
            elif source.name is None:
                return None
            elif source.kind == "event":
                allowed |= set(self.models[source.product].event(source.name).params)
            else:
                allowed |= set(self.models[source.product].service(source.name).output)
        return frozenset(allowed)

    def check_keys(self) -> None:
        allowed = self.allowed_keys()
        if allowed is None:
            return
        for path, keys in self.refs:
            unknown = sorted(keys - allowed)
            if unknown:
                raise self.error(path, f"p[{unknown[0]!r}] is not in any source of this rule "
                                       f"({', '.join(self.spec.sources)}); it can carry: "
                                       f"{', '.join(sorted(allowed)) or 'nothing'}")
