"""Device ids of an OCPP charge point's parts.

The rule (both directions are deterministic and need no knowledge of the station's layout):

=====================================  ==============================  =======================
OCPP                                   thing model                     device id
=====================================  ==============================  =======================
charge point ``CP1``                   ``charger``                     ``CP1``
1.6 connector ``n`` (n >= 1)           ``connector``                   ``CP1-n``
2.0.1 EVSE ``e``, connector 1 or none  ``connector``                   ``CP1-e``
2.0.1 EVSE ``e``, connector ``c`` > 1  ``connector``                   ``CP1-e-c``
1.6 connector 0 / 2.0.1 EVSE 0         ``meter`` (the station meter)   ``CP1-0``
=====================================  ==============================  =======================

So a station with one connector per EVSE (nearly all of them) gets the same ids under 1.6 and
2.0.1, and a 2.0.1 EVSE with a second connector (CCS + CHAdeMO) keeps ``CP1-e`` for its first.
Transactions in 2.0.1 belong to an EVSE: a TransactionEvent that names no connector goes to
``CP1-e``.

Charge-point ids may contain ``-``: parsing a device id therefore needs the charge-point id
(:func:`parse_device_id`), which the gateway knows from provisioning.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridges.ocpp.errors import DeviceIdError
from bridges.ocpp.versions import OcppVersion
from thingmodels import TopicError, check_id


def check_charge_point_id(charge_point_id: str) -> str:
    """The id itself, or DeviceIdError when it cannot be a topic level."""
    try:
        return check_id(charge_point_id, "chargePointId")
    except TopicError as exc:
        raise DeviceIdError(str(exc)) from None


def connector_device_id(charge_point_id: str, connector_id: int) -> str:
    """1.6: ``{chargePointId}-{connectorId}``."""
    check_charge_point_id(charge_point_id)
    if connector_id < 0:
        raise DeviceIdError(f"connectorId {connector_id} is negative")
    return f"{charge_point_id}-{connector_id}"


def evse_device_id(charge_point_id: str, evse_id: int, connector_id: int | None = None) -> str:
    """2.0.1: ``{chargePointId}-{evseId}``, plus ``-{connectorId}`` when connectorId > 1."""
    check_charge_point_id(charge_point_id)
    if evse_id < 0 or (connector_id is not None and connector_id < 0):
        raise DeviceIdError(f"evse {evse_id} / connector {connector_id} is negative")
    if connector_id is None or connector_id <= 1 or evse_id == 0:
        return f"{charge_point_id}-{evse_id}"
    return f"{charge_point_id}-{evse_id}-{connector_id}"


def device_id(version: OcppVersion, charge_point_id: str, number: int,
              connector_id: int | None = None) -> str:
    """The connector device id for either version (``number`` = 1.6 connectorId / 2.0.1 evseId)."""
    if version is OcppVersion.V16:
        return connector_device_id(charge_point_id, number)
    return evse_device_id(charge_point_id, number, connector_id)


def station_meter_id(charge_point_id: str) -> str:
    """The ``meter`` device of connector 0 / EVSE 0 (the station's main meter)."""
    return connector_device_id(charge_point_id, 0)


@dataclass(frozen=True, slots=True)
class ConnectorRef:
    """Where a connector device sits in OCPP terms.

    ``number`` is the 1.6 connectorId or the 2.0.1 evseId; ``connector_id`` is the 2.0.1
    connector within the EVSE (1 when the id has no third part; same as ``number`` for 1.6).
    """

    charge_point_id: str
    number: int
    connector_id: int


def parse_device_id(device: str, charge_point_id: str, version: OcppVersion) -> ConnectorRef:
    """Reverse of :func:`device_id`; DeviceIdError for another charge point's or a bad id."""
    prefix = f"{charge_point_id}-"
    if not device.startswith(prefix):
        raise DeviceIdError(f"{device!r} is not a device of charge point {charge_point_id!r}")
    parts = device[len(prefix):].split("-")
    if not all(p.isdigit() and p.isascii() for p in parts) or not 1 <= len(parts) <= 2:
        raise DeviceIdError(f"{device!r}: expected {prefix}N or {prefix}N-M")
    number = int(parts[0])
    if version is OcppVersion.V16:
        if len(parts) != 1:
            raise DeviceIdError(f"{device!r}: OCPP 1.6 connector ids have one number")
        return ConnectorRef(charge_point_id, number, number)
    connector = int(parts[1]) if len(parts) == 2 else 1
    if len(parts) == 2 and connector <= 1:
        raise DeviceIdError(f"{device!r}: connector 1 is written {prefix}{number}")
    return ConnectorRef(charge_point_id, number, connector)
