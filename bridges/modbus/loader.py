"""Load register-map files, check them against the thing models, resolve every default.

Every problem is a :class:`~bridges.modbus.errors.RegisterMapError` naming the file, the path
inside it and the line: schema errors (unknown keys, bad types) through
:mod:`thingmodels.yamlfile`, and the checks that need the whole file here: duplicate YAML keys,
ambiguous leading-zero numbers (YAML 1.1 reads ``010`` as octal 8), overlapping points, two
points feeding one property, services writing unknown or read-only points, and -- when the
product has a thing model -- unknown properties, services and inputs, incompatible types and
mismatched units.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from bridges.modbus.codec import encode_point
from bridges.modbus.errors import EncodeError, RegisterMapError
from bridges.modbus.regmap import Point, RegisterMap, Service, ValueKind, Write
from bridges.modbus.schema import DataType, PointSpec, RegisterMapFile, WriteSpec
from thingmodels import ModelRegistry, ThingModel, builtin_models
from thingmodels.errors import ModelFileError
from thingmodels.schema import ParamType, PropertySpec
from thingmodels.yamlfile import format_loc, parse_yaml, validate_located

__all__ = [
    "SHIPPED_MAPS_DIR",
    "load_register_map",
    "load_register_maps",
    "parse_register_map",
    "shipped_map",
]

SHIPPED_MAPS_DIR = Path(__file__).resolve().parents[2] / "config" / "modbus"
"""Where the register maps shipped with voltmesh live (``config/modbus``)."""

_Loc = tuple[str | int, ...]
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built with it
_OCTAL_LOOKING = re.compile(r"[-+]?0[0-9_]+")
_KINDS = {
    ParamType.BOOL: ValueKind.BOOL, ParamType.INT: ValueKind.INT,
    ParamType.FLOAT: ValueKind.FLOAT, ParamType.DECIMAL: ValueKind.DECIMAL,
    ParamType.ENUM: ValueKind.ENUM,
}


class _Fail(Exception):
    def __init__(self, loc: _Loc, message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


def load_register_map(path: Path | str, models: ModelRegistry | None = None, *,
                      require_model: bool = False) -> RegisterMap:
    """Load and check one register-map file.

    ``models`` defaults to the built-in thing models. A product without a thing model is
    accepted (its points' kinds follow from their types) unless ``require_model``.
    """
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RegisterMapError(file, "", f"cannot read file: {exc.strerror or exc}") from exc
    return parse_register_map(text, file, models, require_model=require_model)


def load_register_maps(directory: Path | str = SHIPPED_MAPS_DIR,
                       models: ModelRegistry | None = None) -> dict[str, RegisterMap]:
    """Every ``*.yaml`` map in a directory, keyed by file stem."""
    return {path.stem: load_register_map(path, models)
            for path in sorted(Path(directory).glob("*.yaml"))}


def shipped_map(name: str, models: ModelRegistry | None = None) -> RegisterMap:
    """A shipped map by file stem (``"eastron_sdm630"``) or a path to any map file."""
    path = Path(name)
    if path.suffix not in (".yaml", ".yml"):
        path = SHIPPED_MAPS_DIR / f"{name}.yaml"
    return load_register_map(path, models)


def parse_register_map(text: str, file: str = "<string>", models: ModelRegistry | None = None,
                       *, require_model: bool = False) -> RegisterMap:
    """Check and resolve a register map given as YAML text."""
    _precheck(text, file)
    try:
        doc = parse_yaml(text, file)
        spec = validate_located(doc, RegisterMapFile)
    except ModelFileError as exc:
        raise RegisterMapError(exc.file, exc.path, exc.message, exc.line) from exc
    registry = builtin_models() if models is None else models
    model = registry[spec.product] if spec.product in list(registry) else None
    try:
        if model is None and require_model:
            raise _Fail(("product",), f"no thing model for product {spec.product!r}")
        return _resolve(spec, model, file)
    except _Fail as fail:
        raise RegisterMapError(file, format_loc(fail.loc), fail.message,
                               doc.line_of(fail.loc)) from None


def _precheck(text: str, file: str) -> None:
    """Duplicate keys (PyYAML keeps the last silently) and octal-looking integers."""
    try:
        root = yaml.compose(text, Loader=_FAST_LOADER)
    except yaml.YAMLError:
        return  # parse_yaml reports it with its line
    stack: list[tuple[yaml.Node, _Loc]] = [(root, ())] if root is not None else []
    while stack:
        node, loc = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen: set[object] = set()
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else id(key_node)
                if key in seen:
                    raise RegisterMapError(file, format_loc((*loc, key)),
                                           f"duplicate key {key!r}",
                                           key_node.start_mark.line + 1)
                seen.add(key)
                stack.append((key_node, (*loc, key)))
                stack.append((value_node, (*loc, key)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*loc, i)) for i, item in enumerate(node.value))
        elif (isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:int"
              and _OCTAL_LOOKING.fullmatch(node.value)):
            raise RegisterMapError(
                file, format_loc(loc),
                f"{node.value!r} has a leading zero, which YAML 1.1 reads as octal; "
                f"write it in decimal or as 0x.. hex", node.start_mark.line + 1)


def _resolve(spec: RegisterMapFile, model: ThingModel | None, file: str) -> RegisterMap:
    written = {w.point for s in spec.services.values() for w in s.writes if w.point}
    points: dict[str, Point] = {}
    fed: dict[str, str] = {}
    for name, point_spec in spec.points.items():
        point = _resolve_point(spec, name, point_spec, model, name in written)
        if point.property is not None:
            if point.property in fed:
                raise _Fail(("points", name, "property"),
                            f"property {point.property!r} is already fed by point "
                            f"{fed[point.property]!r}")
            fed[point.property] = name
        points[name] = point
    _check_overlaps(points)
    services = {
        name: Service(name, tuple(
            _resolve_write(points, service_spec.writes[i], model, name, ("services", name,
                                                                          "writes", i))
            for i in range(len(service_spec.writes))))
        for name, service_spec in spec.services.items()
    }
    if model is not None:
        for name in services:
            if name not in model.spec.services:
                raise _Fail(("services", name),
                            f"thing model {model.product!r} has no service {name!r}")
    return RegisterMap(
        product=spec.product, name=spec.name, vendor=spec.vendor, points=points,
        services=services, limits=spec.read, write_multiple=spec.write_multiple,
        default_device_id=spec.default_device_id, description=spec.description,
        reference=spec.reference, file=file, has_thing_model=model is not None,
    )


def _resolve_point(spec: RegisterMapFile, name: str, point: PointSpec,
                   model: ThingModel | None, writable: bool) -> Point:
    prop = point.property if "property" in point.model_fields_set else name
    kind = _fallback_kind(point)
    if prop is not None and model is not None:
        declared = model.spec.properties.get(prop)
        if declared is None:
            raise _Fail(("points", name, "property") if "property" in point.model_fields_set
                        else ("points", name),
                        f"thing model {model.product!r} has no property {prop!r}")
        kind = _model_kind(name, point, declared)
    return Point(
        name=name, function=point.function, address=point.address, type=point.type,
        kind=kind, property=prop, word_order=point.word_order or spec.word_order,
        byte_order=point.byte_order or spec.byte_order, scale=point.scale,
        offset=point.offset, unit=point.unit, bit=point.bit,
        enum=dict(point.enum) if point.enum is not None else None,
        enum_default=point.enum_default, deadband=point.deadband, writable=writable,
    )


def _fallback_kind(point: PointSpec) -> ValueKind:
    """The kind of a point that feeds no thing-model property (or whose product has none)."""
    if point.enum is not None:
        return ValueKind.ENUM
    if point.type is DataType.BOOL or point.bit is not None:
        return ValueKind.BOOL
    if point.type is DataType.FLOAT32:
        return ValueKind.FLOAT
    if point.scale == 1 and point.offset == 0:
        return ValueKind.INT
    return ValueKind.DECIMAL


def _model_kind(name: str, point: PointSpec, declared: PropertySpec) -> ValueKind:
    loc: _Loc = ("points", name)
    kind = _KINDS.get(declared.type)
    if kind is None:
        raise _Fail(loc, f"a Modbus point cannot feed a {declared.type} property")
    if kind is ValueKind.ENUM:
        if point.enum is None:
            raise _Fail(loc, "the property is an enum: give an 'enum' mapping")
        allowed = set(declared.values or ())
        for code, value in point.enum.items():
            if value not in allowed:
                raise _Fail((*loc, "enum", str(code)),
                            f"{value!r} is not a value of the property "
                            f"(allowed: {', '.join(declared.values or ())})")
        if point.enum_default is not None and point.enum_default not in allowed:
            raise _Fail((*loc, "enum_default"),
                        f"{point.enum_default!r} is not a value of the property")
        return kind
    if point.enum is not None:
        raise _Fail((*loc, "enum"), f"the property is {declared.type}, not an enum")
    flag = point.type is DataType.BOOL or point.bit is not None
    if kind is ValueKind.BOOL and point.type is DataType.FLOAT32:
        raise _Fail((*loc, "type"), "a float32 cannot feed a bool property")
    if kind is not ValueKind.BOOL and flag:
        raise _Fail((*loc, "type"), f"a bit cannot feed a {declared.type} property")
    if point.unit is not None and declared.unit is not None and point.unit != declared.unit:
        raise _Fail((*loc, "unit"),
                    f"unit {point.unit!r} is not the thing model's {declared.unit!r} "
                    f"(convert with 'scale')")
    return kind


def _check_overlaps(points: dict[str, Point]) -> None:
    ordered = sorted(points.values(), key=lambda p: (p.function, p.address))
    for i, first in enumerate(ordered):
        for second in ordered[i + 1:]:
            if second.function is not first.function or second.address >= first.end:
                break
            if (first.bit is not None and second.bit is not None
                    and first.address == second.address and first.bit != second.bit):
                continue
            raise _Fail(("points", second.name, "address"),
                        f"{second.describe()} overlaps point {first.name!r} "
                        f"({first.describe()})")


def _resolve_write(points: dict[str, Point], write: WriteSpec, model: ThingModel | None,
                   service: str, loc: _Loc) -> Write:
    if write.point is None:
        assert write.function is not None
        assert write.address is not None
        return Write(function=write.function, address=write.address, value=write.value)
    point = points.get(write.point)
    if point is None:
        raise _Fail((*loc, "point"), f"no point {write.point!r}")
    if not point.function.is_writable:
        raise _Fail((*loc, "point"),
                    f"point {point.name!r} is {point.describe()}; only holding registers "
                    f"and coils can be written")
    if point.bit is not None:
        raise _Fail((*loc, "point"),
                    f"point {point.name!r} is one bit of a register; a service cannot write "
                    f"it without a read-modify-write")
    if write.value is not None:
        try:
            encode_point(point, write.value)
        except EncodeError as exc:
            raise _Fail((*loc, "value"), str(exc)) from None
    if write.input is not None and model is not None:
        declared = model.spec.services.get(service)
        if declared is not None and write.input not in declared.input:
            raise _Fail((*loc, "input"),
                        f"service {service!r} of {model.product!r} has no input "
                        f"{write.input!r}")
    return Write(function=point.function, address=point.address, point=point,
                 value=write.value, input=write.input, optional=write.optional)

