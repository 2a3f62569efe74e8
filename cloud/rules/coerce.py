"""Turn wire params into thing-model values before rules see them.

On the wire decimals are strings (``"12.345"``); rules compare and write numbers, so the params
a rule sees have their decimal-typed values as :class:`~decimal.Decimal` (best effort: a value
that does not fit its spec is passed unchanged, and an expression comparing it fails as a type
error). The billing action validates strictly instead (:meth:`Coercer.validate`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from thingmodels.errors import PayloadError, UnknownModelError
from thingmodels.loader import ModelRegistry, ThingModel
from thingmodels.schema import ParamSpec, ParamType
from thingmodels.validate import Check, check_of

_Specs = Mapping[str, ParamSpec]


def _has_decimal(spec: ParamSpec) -> bool:
    if spec.type is ParamType.DECIMAL:
        return True
    if spec.type is ParamType.LIST and spec.items is not None:
        return any(_has_decimal(s) for s in spec.items.values())
    if spec.type is ParamType.OBJECT and spec.fields is not None:
        return any(_has_decimal(s) for s in spec.fields.values())
    return False


class Coercer:
    """Per (product, kind, name): which params need converting, computed once."""

    def __init__(self, models: ModelRegistry) -> None:
        self.models = models
        self._needs: dict[tuple[str, str, str | None], dict[str, Check]] = {}

    def specs(self, product: str, kind: str, name: str | None) -> _Specs | None:
        """The param specs of a message, or None when the model does not declare it."""
        try:
            model: ThingModel = self.models[product]
            if kind == "prop":
                return model.spec.properties
            if kind == "event" and name is not None:
                return model.event(name).params
            if kind == "reply" and name is not None:
                return model.service(name).output
        except UnknownModelError:
            return None
        return None

    def _decimal_specs(self, product: str, kind: str, name: str | None) -> dict[str, Check]:
        """The checks of the params that hold decimals, by name."""
        key = (product, kind, name)
        needs = self._needs.get(key)
        if needs is None:
            specs = self.specs(product, kind, name) or {}
            needs = {k: check_of(s) for k, s in specs.items() if _has_decimal(s)}
            self._needs[key] = needs
        return needs

    def coerce(self, product: str, kind: str, name: str | None,
               params: dict[str, Any]) -> dict[str, Any]:
        """``params`` with decimal-typed values converted (a new dict only when needed)."""
        needs = self._decimal_specs(product, kind, name)
        if not needs:
            return params
        out: dict[str, Any] | None = None
        for key, check in needs.items():
            raw = params.get(key)
            if raw is None:
                continue
            try:
                value = check(raw, key)
            except PayloadError:
                continue
            if out is None:
                out = dict(params)
            out[key] = value
        return params if out is None else out

    def validate(self, product: str, kind: str, name: str | None,
                 params: dict[str, Any]) -> dict[str, Any]:
        """Strict (but lenient on unknown keys) validation; raises PayloadError/UnknownModelError."""
        model = self.models[product]
        if kind == "prop":
            return model.validate_properties(params, lenient=True)
        if kind == "event" and name is not None:
            return model.validate_event(name, params, lenient=True)
        raise PayloadError(f"{product}.{kind}", f"{kind} messages cannot be validated for billing")
