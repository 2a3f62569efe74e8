"""Edge safety interlocks: local conditions -> local actions, also with the cloud away.

An interlocks file (``interlocks: path`` in the gateway config; example in
``config/interlocks.example.yaml``) lists interlocks. Each has conditions on what the site's
devices report -- property values and events, seen locally through
:meth:`edge.context.EdgeContext.add_observer`, never through MQTT -- and actions carried out
through the devices' own protocols by the adapter that owns them (the dispatcher's
``owner``)::

    interlocks:
      - name: flood-cabinet-1
        when: any                        # any (default) | all of the conditions
        conditions:
          - {product: env_sensor, device: water-1, property: water, equals: true}
          - {product: env_sensor, property: temperature, above: 70, hysteresis: 5}
          - {product: camera, event: fireDetected, where: {confidence: {above: 0.6}},
             hold: 5m}
        actions:
          - {action: stop_charging, targets: ["3201020000004201"], chargers: [cp-7]}
          - {action: cut_relay, targets: [cabinet-main]}
          - {action: lower_lock, targets: [lock-b01]}
          - {action: service, service: storage.setMode, targets: [bess-1],
             params: {mode: idle}}

Conditions
    ``property`` with exactly one of ``equals`` / ``above`` / ``below`` (``hysteresis``: an
    above/below condition clears only once the value is back past the threshold by this
    much); ``event`` with optional ``where`` on its params. An event with an ``active`` param
    (``waterDetected``, ``overTemperature`` ...) sets the condition to that value; other
    events (a camera's ``fireDetected``) hold it true for ``hold`` after the last one.
    Without ``device`` any device of the product counts.
Actions
    ``stop_charging`` (``connector.remoteStop`` on ``targets`` and on every connector seen on
    this gateway of the ``chargers`` listed -- connector id = charger id + 2-digit number
    (YKC) or ``-number`` (OCPP)), ``cut_relay`` (``relay.cut``), ``raise_lock`` /
    ``lower_lock`` (``parking_lock.raise/lower``), ``service`` (any ``product.service`` with
    ``params``). ``order: parallel`` (default) runs every call at once; ``sequential`` runs the
    actions in file order (the calls of one action at once). Every call has a timeout
    (``timeout``, default the service's, at most ``action_timeout``).
Semantics
    The condition is evaluated on every report and event it names. On the rising edge the
    interlock triggers: its state is stored (so a restart neither forgets nor repeats it),
    every action is executed once and logged, then ``gateway.interlockTriggered`` (params
    ``interlock, condition, actions[{action, target, ok, detail}], active: true``) goes into
    the outbox -- it waits there while the cloud is away. Nothing more happens until the
    condition clears; then ``interlockTriggered`` with ``active: false`` is emitted and the
    interlock re-arms. A stop refused because the connector is not charging counts as done.
    After a gateway restart an interlock that was active re-executes its actions once when its
    condition is seen true again (devices may have been reset meanwhile) without a second
    alarm, and emits the clear when it is seen false.

Errors: an invalid file raises :class:`~thingmodels.errors.ModelFileError` naming the file,
the path inside it and the line (the gateway config loader turns it into ``ConfigError``).
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edge.adapter import Adapter
from edge.context import EdgeContext
from edge.errors import DeviceError
from thingmodels.errors import ModelFileError, PayloadError, TopicError, UnknownModelError
from thingmodels.ids import now_ms
from thingmodels.loader import ModelRegistry
from thingmodels.schema import ParamType, parse_duration
from thingmodels.topics import check_id
from thingmodels.yamlfile import LocatedYaml, read_yaml, validate_located

log = logging.getLogger("voltmesh.edge.interlocks")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_NUMERIC = {ParamType.INT, ParamType.FLOAT, ParamType.DECIMAL}
_CHARGING = {"charging", "suspended", "preparing"}
_KV_PREFIX = "interlock/"

#: action name -> (product, service) for the fixed actions
ACTION_SERVICES: dict[str, tuple[str, str]] = {
    "stop_charging": ("connector", "remoteStop"),
    "cut_relay": ("relay", "cut"),
    "raise_lock": ("parking_lock", "raise"),
    "lower_lock": ("parking_lock", "lower"),
}

Scalar = bool | int | float | str


def _seconds(value: Any) -> Any:
    return parse_duration(value) if isinstance(value, str) else value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Compare(_Strict):
    """One comparison: exactly one of ``equals``, ``above``, ``below``."""

    equals: Scalar | None = None
    above: float | None = None
    below: float | None = None

    @model_validator(mode="after")
    def _one(self) -> Compare:
        given = [k for k in ("equals", "above", "below") if k in self.model_fields_set]
        if len(given) != 1:
            raise ValueError("give exactly one of equals, above, below")
        if "equals" in given and self.equals is None:
            raise ValueError("equals needs a value")
        return self

    @property
    def op(self) -> str:
        """``equals``, ``above`` or ``below``."""
        return next(k for k in ("equals", "above", "below") if k in self.model_fields_set)

    def describe(self) -> str:
        """``> 60``, ``== true`` ..."""
        if self.op == "equals":
            text = json.dumps(self.equals) if isinstance(self.equals, bool) else str(self.equals)
            return f"== {text}"
        return f"> {self.above:g}" if self.op == "above" else f"< {self.below:g}"

    def test(self, value: Any, *, hysteresis: float = 0.0, was_true: bool = False) -> bool:
        """Whether ``value`` satisfies the comparison (hysteresis keeps a true one true)."""
        if self.op == "equals":
            left, right = _number(value), _number(self.equals)
            if left is not None and right is not None:
                return left == right
            return bool(value == self.equals) and type(value) is type(self.equals)
        number = _number(value)
        if number is None:
            return False
        slack = Decimal(str(hysteresis)) if was_true else Decimal(0)
        if self.op == "above":
            return number > Decimal(str(self.above)) - slack
        return number < Decimal(str(self.below)) + slack


class Condition(_Strict):
    """A condition on a property value or an event."""

    product: str
    device: str | None = None
    property: str | None = None
    event: str | None = None
    equals: Scalar | None = None
    above: float | None = None
    below: float | None = None
    hysteresis: float = Field(default=0.0, ge=0)
    where: dict[str, Compare] = {}
    hold: float = Field(default=60.0, gt=0)

    _sec = field_validator("hold", mode="before")(_seconds)

    @model_validator(mode="after")
    def _shape(self) -> Condition:
        ops = {"equals", "above", "below"} & self.model_fields_set
        if (self.property is None) == (self.event is None):
            raise ValueError("give exactly one of property, event")
        if self.property is not None:
            if len(ops) != 1:
                raise ValueError("a property condition needs exactly one of equals, above, below")
            if self.where:
                raise ValueError("where is for event conditions")
            if "hysteresis" in self.model_fields_set and "equals" in ops:
                raise ValueError("hysteresis needs above or below")
        elif ops or "hysteresis" in self.model_fields_set:
            raise ValueError("an event condition compares its params with where: {param: ...}")
        if self.device is not None:
            try:
                check_id(self.device, f"{self.product} id")
            except TopicError as exc:
                raise ValueError(str(exc)) from exc
        return self

    @builtins.property
    def compare(self) -> Compare:
        """The comparison of a property condition."""
        fields = {k: getattr(self, k) for k in ("equals", "above", "below")
                  if k in self.model_fields_set}
        return Compare(**fields)

    def describe(self, device: str | None = None) -> str:
        """``env_sensor/water-1 water == true`` (the device that made it true, if known)."""
        who = f"{self.product}/{device or self.device or '*'}"
        if self.property is not None:
            return f"{who} {self.property} {self.compare.describe()}"
        where = "".join(f" {k} {c.describe()}" for k, c in self.where.items())
        return f"{who} event {self.event}{' where' + where if where else ''}"


class Action(_Strict):
    """Something done to devices when an interlock triggers."""

    action: Literal["stop_charging", "cut_relay", "raise_lock", "lower_lock", "service"]
    targets: list[str] = []
    chargers: list[str] = []
    service: str | None = None
    params: dict[str, Any] = {}
    timeout: float | None = Field(default=None, gt=0)

    _sec = field_validator("timeout", mode="before")(_seconds)

    @model_validator(mode="after")
    def _shape(self) -> Action:
        if self.chargers and self.action != "stop_charging":
            raise ValueError("chargers is for stop_charging")
        if (self.service is None) != (self.action != "service"):
            raise ValueError("service (product.service) goes with action: service, only")
        if self.params and self.action != "service":
            raise ValueError("params go with action: service")
        if not self.targets and not self.chargers:
            raise ValueError("an action needs targets")
        for target in [*self.targets, *self.chargers]:
            try:
                check_id(target, "target id")
            except TopicError as exc:
                raise ValueError(str(exc)) from exc
        return self

    def product_service(self) -> tuple[str, str]:
        """The service the action calls."""
        if self.action == "service":
            assert self.service is not None
            product, _, name = self.service.partition(".")
            return product, name
        return ACTION_SERVICES[self.action]


class InterlockSpec(_Strict):
    """One interlock."""

    name: str
    description: str | None = None
    when: Literal["any", "all"] = "any"
    conditions: list[Condition] = Field(min_length=1)
    actions: list[Action] = Field(min_length=1)
    order: Literal["parallel", "sequential"] = "parallel"
    action_timeout: float = Field(default=10.0, gt=0)

    _sec = field_validator("action_timeout", mode="before")(_seconds)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("a name is 1-64 letters, digits and _ . : - (no spaces)")
        return value


class InterlocksFile(_Strict):
    """An interlocks file: ``interlocks:`` and nothing else."""

    interlocks: list[InterlockSpec] = []

    @model_validator(mode="after")
    def _unique(self) -> InterlocksFile:
        seen: set[str] = set()
        for spec in self.interlocks:
            if spec.name in seen:
                raise ValueError(f"interlock name {spec.name!r} is used twice")
            seen.add(spec.name)
        return self


# -- loading ---------------------------------------------------------------------------------


def load_interlocks(path: Path | str, models: ModelRegistry) -> list[InterlockSpec]:
    """Read an interlocks file and check every name against the thing models."""
    doc = read_yaml(path)
    parsed = validate_located(doc, InterlocksFile)
    for i, spec in enumerate(parsed.interlocks):
        for j, cond in enumerate(spec.conditions):
            _check_condition(doc, ("interlocks", i, "conditions", j), cond, models)
        for j, action in enumerate(spec.actions):
            _check_action(doc, ("interlocks", i, "actions", j), action, models)
    return parsed.interlocks


def _fail(doc: LocatedYaml, loc: tuple[str | int, ...], message: str) -> ModelFileError:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    return ModelFileError(doc.file, path, message, doc.line_of(loc))


def _check_condition(doc: LocatedYaml, loc: tuple[str | int, ...], cond: Condition,
                     models: ModelRegistry) -> None:
    try:
        model = models[cond.product]
    except UnknownModelError as exc:
        raise _fail(doc, (*loc, "product"), str(exc)) from None
    if cond.property is not None:
        try:
            spec = model.property(cond.property)
        except UnknownModelError as exc:
            raise _fail(doc, (*loc, "property"), str(exc)) from None
        op = cond.compare.op
        if op in ("above", "below") and spec.type not in _NUMERIC:
            raise _fail(doc, (*loc, op), f"{cond.property} is {spec.type}, not a number")
        if op == "equals":
            value = cond.equals
            if spec.type is ParamType.BOOL and not isinstance(value, bool):
                raise _fail(doc, (*loc, "equals"), f"{cond.property} is a bool")
            if spec.type is ParamType.ENUM and spec.values and value not in spec.values:
                raise _fail(doc, (*loc, "equals"),
                            f"{value!r} is not one of {', '.join(spec.values)}")
        return
    assert cond.event is not None
    try:
        event = model.event(cond.event)
    except UnknownModelError as exc:
        raise _fail(doc, (*loc, "event"), str(exc)) from None
    for param, compare in cond.where.items():
        pspec = event.params.get(param)
        if pspec is None:
            raise _fail(doc, (*loc, "where", param), f"event {cond.event} has no param {param!r}")
        if compare.op != "equals" and pspec.type not in _NUMERIC:
            raise _fail(doc, (*loc, "where", param), f"{param} is {pspec.type}, not a number")


def _check_action(doc: LocatedYaml, loc: tuple[str | int, ...], action: Action,
                  models: ModelRegistry) -> None:
    product, service = action.product_service()
    try:
        model = models[product]
        model.service(service)
    except UnknownModelError as exc:
        raise _fail(doc, (*loc, "service" if action.action == "service" else "action"),
                    str(exc)) from None
    try:
        model.validate_input(service, dict(action.params))
    except PayloadError as exc:
        raise _fail(doc, (*loc, "params"), str(exc)) from None


# -- running ---------------------------------------------------------------------------------


class DeviceOwners(Protocol):
    """What the engine needs of the dispatcher: who owns a device."""

    def owner(self, product: str, device: str) -> Adapter:
        """The adapter that owns a device (raises UnknownDevice)."""


@dataclass
class _CondState:
    truth: dict[str, bool] = field(default_factory=dict)
    expires: dict[str, float] = field(default_factory=dict)

    def value(self, now: float) -> tuple[bool, str | None]:
        for device, true in self.truth.items():
            if true and self.expires.get(device, now + 1) > now:
                return True, device
        return False, None


@dataclass(eq=False)
class InterlockState:
    """Run-time state of one interlock."""

    spec: InterlockSpec
    conds: list[_CondState]
    active: bool = False
    restored: bool = False  # active before a restart; actions not yet re-asserted
    triggers: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_results: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class _Job:
    kind: Literal["trigger", "clear", "reassert"]
    state: InterlockState
    condition: str


class InterlockEngine:
    """Evaluates interlocks on what the gateway's devices report and acts on the rising edge.

    Register it with ``ctx.add_observer(engine)`` and run :meth:`run` under the gateway's
    TaskGroup.
    """

    def __init__(self, specs: Sequence[InterlockSpec], ctx: EdgeContext,
                 owners: DeviceOwners) -> None:
        self.ctx = ctx
        self.owners = owners
        self.states = {s.name: InterlockState(s, [_CondState() for _ in s.conditions])
                       for s in specs}
        self._by_property: dict[tuple[str, str], list[tuple[InterlockState, int]]] = {}
        self._by_event: dict[tuple[str, str], list[tuple[InterlockState, int]]] = {}
        for state in self.states.values():
            for index, cond in enumerate(state.spec.conditions):
                if cond.property is not None:
                    key = (cond.product, cond.property)
                    self._by_property.setdefault(key, []).append((state, index))
                else:
                    assert cond.event is not None
                    self._by_event.setdefault((cond.product, cond.event), []).append(
                        (state, index))
        self.connectors: set[str] = set()
        self.connector_status: dict[str, str] = {}
        self._jobs: asyncio.Queue[_Job] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._restore()

    # -- persistence -----------------------------------------------------------------------

    def _restore(self) -> None:
        for state in self.states.values():
            raw = self.ctx.outbox.kv_get(_KV_PREFIX + state.spec.name)
            if raw is None:
                continue
            try:
                saved = json.loads(raw)
            except ValueError:
                continue
            if isinstance(saved, dict) and saved.get("active") is True:
                state.active = state.restored = True
                log.warning("interlock %s was active before the restart", state.spec.name)

    def _save(self, state: InterlockState) -> None:
        self.ctx.outbox.kv_set(_KV_PREFIX + state.spec.name, json.dumps(
            {"active": state.active, "ts": now_ms()}).encode())

    # -- LocalObserver ---------------------------------------------------------------------

    def on_properties(self, product: str, device: str, params: Mapping[str, Any],
                      src: str) -> None:
        """Evaluate the conditions on these properties."""
        if product == "connector":
            self.connectors.add(device)
            status = params.get("status")
            if isinstance(status, str):
                self.connector_status[device] = status
        touched: list[InterlockState] = []
        for prop, value in params.items():
            for state, index in self._by_property.get((product, prop), ()):
                cond = state.spec.conditions[index]
                if cond.device is not None and cond.device != device:
                    continue
                cs = state.conds[index]
                cs.truth[device] = cond.compare.test(
                    value, hysteresis=cond.hysteresis, was_true=cs.truth.get(device, False))
                touched.append(state)
        for state in dict.fromkeys(touched):
            self._evaluate(state)

    def on_event(self, product: str, device: str, name: str, params: Mapping[str, Any],
                 src: str) -> None:
        """Evaluate the conditions on this event."""
        if product == "connector":
            self.connectors.add(device)
        entries = self._by_event.get((product, name))
        if not entries:
            return
        loop = asyncio.get_running_loop()
        touched: list[InterlockState] = []
        for state, index in entries:
            cond = state.spec.conditions[index]
            if cond.device is not None and cond.device != device:
                continue
            cs = state.conds[index]
            matches = all(c.test(params.get(k)) for k, c in cond.where.items())
            active = params.get("active")
            if isinstance(active, bool):
                cs.truth[device] = active and matches
                cs.expires.pop(device, None)
            elif matches:
                cs.truth[device] = True
                cs.expires[device] = loop.time() + cond.hold
                loop.call_later(cond.hold + 0.01, self._evaluate, state)
            else:
                continue
            touched.append(state)
        for state in dict.fromkeys(touched):
            self._evaluate(state)

    # -- evaluation ------------------------------------------------------------------------

    def condition_now(self, state: InterlockState) -> tuple[bool, str]:
        """Whether the interlock's condition holds now, and what makes it hold."""
        now = asyncio.get_running_loop().time()
        values = [cs.value(now) for cs in state.conds]
        conds = state.spec.conditions
        if state.spec.when == "all":
            ok = all(v for v, _ in values)
            text = " and ".join(c.describe(d) for c, (_, d) in zip(conds, values, strict=True))
        else:
            ok = any(v for v, _ in values)
            text = " or ".join(c.describe(d) for c, (v, d) in zip(conds, values, strict=True)
                               if v) or " or ".join(c.describe() for c in conds)
        return ok, text

    def _evaluate(self, state: InterlockState) -> None:
        holds, text = self.condition_now(state)
        if holds and state.restored:
            state.restored = False
            self._jobs.put_nowait(_Job("reassert", state, text))
        elif holds and not state.active:
            state.active = True
            state.triggers += 1
            self._save(state)  # before acting: a crash now re-asserts after the restart
            log.warning("interlock %s TRIGGERED: %s", state.spec.name, text)
            self._jobs.put_nowait(_Job("trigger", state, text))
        elif not holds and state.active:
            state.active = state.restored = False
            self._save(state)
            log.warning("interlock %s cleared", state.spec.name)
            self._jobs.put_nowait(_Job("clear", state, text))

    # -- acting ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Carry out triggers and clears until cancelled (each interlock in order)."""
        try:
            while True:
                job = await self._jobs.get()
                task = asyncio.create_task(self._do(job), name=f"interlock-{job.state.spec.name}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        finally:
            for task in list(self._tasks):
                task.cancel()

    async def drain(self) -> None:
        """Wait until every queued trigger and clear is done (tests)."""
        await self._jobs.join()

    async def _do(self, job: _Job) -> None:
        try:
            await self._do_job(job)
        finally:
            self._jobs.task_done()

    async def _do_job(self, job: _Job) -> None:
        state = job.state
        async with state.lock:
            gw = self.ctx.gw
            name = state.spec.name
            if job.kind == "clear":
                await self.ctx.event("gateway", gw, "interlockTriggered", {
                    "interlock": name, "condition": job.condition, "actions": [],
                    "active": False}, src="edge")
                return
            results = await self.execute(state.spec)
            state.last_results = results
            if job.kind == "reassert":
                log.warning("interlock %s re-asserted after a restart: %s", name,
                            _summary(results))
                return
            await self.ctx.event("gateway", gw, "interlockTriggered", {
                "interlock": name, "condition": job.condition[:500], "actions": results,
                "active": True}, src="edge")

    async def execute(self, spec: InterlockSpec) -> list[dict[str, Any]]:
        """Run every action of an interlock once; one result per call."""
        groups: list[list[tuple[str, str, str, str, dict[str, Any], float]]] = []
        missing: list[dict[str, Any]] = []
        for action in spec.actions:
            product, service = action.product_service()
            svc_timeout = self.ctx.models[product].service(service).timeout
            timeout = min(action.timeout or svc_timeout, spec.action_timeout)
            calls = [(str(action.action), product, t, service, dict(action.params), timeout)
                     for t in action.targets]
            for charger in action.chargers:
                connectors = self.connectors_of(charger)
                if not connectors:
                    missing.append({"action": action.action, "target": f"charger/{charger}",
                                    "ok": False,
                                    "detail": "no connector of this charger seen here"})
                calls.extend((str(action.action), product, c, service, {}, timeout)
                             for c in connectors if c not in action.targets)
            groups.append(calls)
        results: list[dict[str, Any]] = []
        if spec.order == "parallel":
            flat = [call for group in groups for call in group]
            results.extend(await asyncio.gather(*(self._call(spec.name, *c) for c in flat)))
        else:
            for group in groups:
                results.extend(await asyncio.gather(*(self._call(spec.name, *c)
                                                      for c in group)))
        return results + missing

    def connectors_of(self, charger: str) -> list[str]:
        """Connectors of a charger seen on this gateway (YKC ``id + NN``, OCPP ``id-N``)."""
        out = []
        for connector in sorted(self.connectors):
            rest = connector[len(charger):]
            if connector.startswith(charger) and (
                    (len(rest) == 2 and rest.isdigit())
                    or (rest.startswith("-") and rest[1:].isdigit())):
                out.append(connector)
        return out

    async def _call(self, interlock: str, action: str, product: str, device: str, service: str,
                    params: dict[str, Any], timeout: float) -> dict[str, Any]:
        result: dict[str, Any] = {"action": action, "target": f"{product}/{device}",
                                  "ok": False}
        started = asyncio.get_running_loop().time()
        try:
            adapter = self.owners.owner(product, device)
            async with asyncio.timeout(timeout):
                output = await adapter.invoke(product, device, service, params,
                                              now_ms() + int(timeout * 1000))
            accepted = output.get("accepted", True) is True
            reason = output.get("reason")
            if accepted:
                result["ok"] = True
            elif product == "connector" and service == "remoteStop" and \
                    self._not_charging(device, reason):
                result["ok"] = True
                result["detail"] = f"not charging ({reason})" if reason else "not charging"
            else:
                result["detail"] = f"refused: {reason}" if reason else "refused"
        except DeviceError as exc:
            result["detail"] = f"{exc.code}: {exc.message}"[:300]
        except TimeoutError:
            result["detail"] = f"no answer within {timeout:g}s"
        except Exception as exc:
            log.exception("interlock %s: %s on %s/%s failed", interlock, service, product,
                          device)
            result["detail"] = f"{exc.__class__.__name__}: {exc}"[:300]
        took = asyncio.get_running_loop().time() - started
        level = logging.WARNING if result["ok"] else logging.ERROR
        log.log(level, "interlock %s: %s %s/%s.%s -> %s%s (%.0f ms)", interlock, action,
                product, device, service, "ok" if result["ok"] else "FAILED",
                f" ({result['detail']})" if "detail" in result else "", took * 1000)
        return result

    def _not_charging(self, connector: str, reason: object) -> bool:
        status = self.connector_status.get(connector)
        if status is not None and status not in _CHARGING:
            return True
        text = reason.lower() if isinstance(reason, str) else ""
        return "not charging" in text  # YKC "gun not charging", OCPP "not charging (...)"


def _summary(results: list[dict[str, Any]]) -> str:
    return ", ".join(f"{r['action']} {r['target']}: {'ok' if r['ok'] else 'FAILED'}"
                     for r in results)


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:  # pragma: no cover - str() of a number always parses
        return None
