"""Modbus register maps and a sans-I/O codec between registers and thing-model values.

No sockets, no clock: the edge poller plans reads with this package, performs them with a
Modbus client, hands the answers back to be decoded, and turns service calls into write
requests. Register maps are YAML files (``config/modbus/*.yaml``), one per device model.

Register-map file (see :mod:`bridges.modbus.schema`)::

    product: parking_lock            # thing-model product the points feed
    name: PL-485 parking lock        # device model
    vendor: Example
    reference: where the register list comes from
    default_device_id: 1             # factory unit id
    byte_order: big                  # default for every register point
    word_order: big                  # default for 32-bit points (big = high word first)
    read: {max_registers: 125, max_bits: 2000, max_gap_registers: 8, max_gap_bits: 32}
    write_multiple: false            # true: use FC15/FC16 even for one coil/register
    points:
      position:                      # point name; feeds the property of the same name ...
        function: holding            # holding | input | coil | discrete
        address: 0x0000             # 0-based PDU address (40001 -> 0)
        type: u16                    # u16 s16 u32 s32 float32 | bool (coil/discrete only)
        enum: {0: lowered, 1: raised, 2: moving}
        enum_default: unknown        # for codes not in the mapping
      voltage: {function: input, address: 0x10, type: u32, word_order: little,
                scale: 0.1, offset: 0, unit: V, deadband: 0.5}
      lowBattery: {function: holding, address: 0x05, type: u16, bit: 3}   # a status-word flag
      command: {function: holding, address: 0x0010, type: u16, property: null}  # ... or none
    services:
      raise: {writes: [{point: command, value: 1}]}
      setLimit: {writes: [{point: limit, input: power}, {function: holding, address: 0x20,
                                                        value: 1}]}

Public API
==========

Loading (:mod:`~bridges.modbus.loader`)
    ``load_register_map(path, models=None, *, require_model=False) -> RegisterMap``;
    ``parse_register_map(text, file, models=None, *, require_model=False)``;
    ``load_register_maps(directory=SHIPPED_MAPS_DIR, models=None) -> dict[str, RegisterMap]``;
    ``shipped_map(name_or_path) -> RegisterMap``. ``models`` defaults to the built-in thing
    models; a product without one loads with kinds inferred from the point types.
Maps (:mod:`~bridges.modbus.regmap`)
    :class:`RegisterMap` (``.point(name)``, ``.point_for(property)``, ``.service(name)``,
    ``.properties``, ``.readable(function=None)``), :class:`Point`, :class:`Service`,
    :class:`Write`, :class:`ValueKind`; ``PropertyValue = bool | int | float | Decimal | str``.
Reading
    ``plan_reads(regmap, *, properties=None, max_registers=None, max_bits=None,
    max_gap_registers=None, max_gap_bits=None) -> tuple[ReadRequest, ...]``;
    ``decode_response(regmap, request, data) -> Decoded``;
    ``decode_block(regmap, function, address, data) -> Decoded``
    (``Decoded.values: dict[property, value]``, ``Decoded.problems``);
    ``significant_changes(regmap, previous, current) -> dict`` applies deadbands.
Writing
    ``encode_service(regmap, service, inputs=None) -> tuple[WriteRequest, ...]``
    (``WriteRequest.function_code`` is 5, 6, 15 or 16);
    ``identify_write(regmap, function, address, values) -> ServiceCall | None`` (device side).
One point (:mod:`~bridges.modbus.codec`)
    ``decode_point(point, data) -> PropertyValue``;
    ``encode_point(point, value, current=0) -> list[int] | list[bool]``.

Values: ``decimal`` properties come out as :class:`~decimal.Decimal` computed exactly as
``raw * scale + offset`` (float32 raw values enter as their shortest round-trip decimal);
``float`` as float, ``int`` as int, ``bool`` as bool, ``enum`` as the enum name.

Exceptions
==========

Everything raised derives from :class:`ModbusBridgeError`::

    ModbusBridgeError
    ├── RegisterMapError               invalid map file: .file, .path, .line (it is also a
    │                                  thingmodels.ModelFileError)
    ├── UnknownName (LookupError)      no such point / property / service in the map
    ├── DecodeError                    a block that is not registers/bits or is too short
    │   └── PointValueError            one point's raw value is meaningless; decode_* return
    │                                  these as Decoded.problems instead of raising
    └── EncodeError (ValueError)       value out of range / wrong type / unknown enum name,
                                       or a required service input missing
"""

from bridges.modbus.codec import (
    bytes_to_registers,
    decode_point,
    encode_point,
    float32_to_decimal,
    registers_to_bytes,
)
from bridges.modbus.decode import Decoded, PointProblem, decode_block, decode_response
from bridges.modbus.errors import (
    DecodeError,
    EncodeError,
    ModbusBridgeError,
    PointValueError,
    RegisterMapError,
    UnknownName,
)
from bridges.modbus.loader import (
    SHIPPED_MAPS_DIR,
    load_register_map,
    load_register_maps,
    parse_register_map,
    shipped_map,
)
from bridges.modbus.plan import ReadRequest, plan_reads
from bridges.modbus.regmap import Point, PropertyValue, RegisterMap, Service, ValueKind, Write
from bridges.modbus.report import significant_changes
from bridges.modbus.schema import DataType, Function, Order, ReadLimits
from bridges.modbus.writes import ServiceCall, WriteRequest, encode_service, identify_write

__all__ = [
    "SHIPPED_MAPS_DIR",
    "DataType",
    "DecodeError",
    "Decoded",
    "EncodeError",
    "Function",
    "ModbusBridgeError",
    "Order",
    "Point",
    "PointProblem",
    "PointValueError",
    "PropertyValue",
    "ReadLimits",
    "ReadRequest",
    "RegisterMap",
    "RegisterMapError",
    "Service",
    "ServiceCall",
    "UnknownName",
    "ValueKind",
    "Write",
    "WriteRequest",
    "bytes_to_registers",
    "decode_block",
    "decode_point",
    "decode_response",
    "encode_point",
    "encode_service",
    "float32_to_decimal",
    "identify_write",
    "load_register_map",
    "load_register_maps",
    "parse_register_map",
    "plan_reads",
    "registers_to_bytes",
    "shipped_map",
    "significant_changes",
]
