"""Which OCPP actions exist per version, and who may send them.

The action sets come from the ``ocpp`` library's ``Action`` enums (1.6 includes the Security
Whitepaper actions); the direction split is the specification's.
"""

from __future__ import annotations

from enum import StrEnum

from ocpp.v16.enums import Action as Action16
from ocpp.v201.enums import Action as Action201

from bridges.ocpp.versions import OcppVersion


class Role(StrEnum):
    """The two OCPP roles."""

    CHARGE_POINT = "charge_point"
    CSMS = "csms"


ACTIONS: dict[OcppVersion, frozenset[str]] = {
    OcppVersion.V16: frozenset(str(a.value) for a in Action16),
    OcppVersion.V201: frozenset(str(a.value) for a in Action201),
}

_BOTH = frozenset({"DataTransfer"})

CHARGE_POINT_INITIATED: dict[OcppVersion, frozenset[str]] = {
    OcppVersion.V16: frozenset({
        "Authorize", "BootNotification", "DiagnosticsStatusNotification",
        "FirmwareStatusNotification", "Heartbeat", "LogStatusNotification", "MeterValues",
        "SecurityEventNotification", "SignCertificate", "SignedFirmwareStatusNotification",
        "StartTransaction", "StatusNotification", "StopTransaction",
    }) | _BOTH,
    OcppVersion.V201: frozenset({
        "Authorize", "BootNotification", "ClearedChargingLimit", "FirmwareStatusNotification",
        "Get15118EVCertificate", "GetCertificateStatus", "Heartbeat", "LogStatusNotification",
        "MeterValues", "NotifyChargingLimit", "NotifyCustomerInformation",
        "NotifyDisplayMessages", "NotifyEVChargingNeeds", "NotifyEVChargingSchedule",
        "NotifyEvent", "NotifyMonitoringReport", "NotifyReport",
        "PublishFirmwareStatusNotification", "ReportChargingProfiles",
        "ReservationStatusUpdate", "SecurityEventNotification", "SignCertificate",
        "StatusNotification", "TransactionEvent",
    }) | _BOTH,
}

CSMS_INITIATED: dict[OcppVersion, frozenset[str]] = {
    version: (actions - CHARGE_POINT_INITIATED[version]) | _BOTH
    for version, actions in ACTIONS.items()
}


def is_known(version: OcppVersion, action: str) -> bool:
    """Whether ``action`` is an action of ``version`` at all."""
    return action in ACTIONS[version]


def receivable(version: OcppVersion, receiver: Role, action: str) -> bool:
    """Whether a CALL with ``action`` may arrive at ``receiver``."""
    sent_by = CSMS_INITIATED if receiver is Role.CHARGE_POINT else CHARGE_POINT_INITIATED
    return action in sent_by[version]
