"""The OCPP <-> thing-model mapping as data (for docs and coverage checks).

:data:`UPLINK` maps each charger-initiated action, per version, to the thing-model messages it
becomes (``"product.kind:name"``); :data:`~bridges.ocpp.services.SERVICE_ACTIONS` maps each
service to its action per version. :func:`render_markdown` prints both as tables.
"""

from __future__ import annotations

from bridges.ocpp.services import SERVICE_ACTIONS
from bridges.ocpp.versions import OcppVersion

V16 = OcppVersion.V16
V201 = OcppVersion.V201

_STATUS = ("connector.prop:status,plugged,errorCode", "connector.event:fault",
           "charger.event:fault")
_METER = ("connector.prop:meterEnergy,power,voltage,current,soc,maxCurrentOffered,"
          "gunTemperature", "meter.prop:energyImport,power,voltageL1-3,currentL1-3")

UPLINK: dict[OcppVersion, dict[str, tuple[str, ...]]] = {
    V16: {
        "BootNotification": ("charger.prop:vendor,model,serialNumber,firmwareVersion,protocol,"
                             "iccid", "charger.event:boot"),
        "Heartbeat": ("charger.prop:lastHeartbeat",),
        "StatusNotification": (*_STATUS, "charger.prop:clockSkew", "charger.event:clockSkew"),
        "MeterValues": (*_METER, "connector.event:sessionUpdated (with transactionId)"),
        "Authorize": ("charger.event:authorize (reply)",),
        "StartTransaction": ("connector.event:sessionStarted",
                             "connector.prop:sessionId,meterEnergy,energy"),
        "StopTransaction": ("connector.event:sessionEnded", "connector.prop:sessionId,energy"),
        "FirmwareStatusNotification": ("charger.event:firmwareStatus",
                                       "charger.prop:firmwareStatus"),
        "SignedFirmwareStatusNotification": ("charger.event:firmwareStatus",
                                             "charger.prop:firmwareStatus"),
        "DiagnosticsStatusNotification": ("charger.event:diagnosticsStatus",
                                          "charger.prop:diagnosticsStatus"),
        "LogStatusNotification": ("charger.event:diagnosticsStatus",
                                  "charger.prop:diagnosticsStatus"),
        "SecurityEventNotification": ("charger.event:securityEvent",),
        "DataTransfer": ("charger.event:dataTransfer",),
    },
    V201: {
        "BootNotification": ("charger.prop:vendor,model,serialNumber,firmwareVersion,protocol,"
                             "iccid", "charger.event:boot"),
        "Heartbeat": ("charger.prop:lastHeartbeat",),
        "StatusNotification": ("connector.prop:status,plugged", "charger.prop:clockSkew",
                               "charger.event:clockSkew"),
        "MeterValues": _METER,
        "Authorize": ("charger.event:authorize (reply)",),
        "TransactionEvent": ("connector.event:sessionStarted (Started)",
                             "connector.event:sessionUpdated (Updated)",
                             "connector.event:sessionEnded (Ended)",
                             "connector.prop:status (chargingState),sessionId,energy,"
                             "meterEnergy,power,voltage,current,soc"),
        "FirmwareStatusNotification": ("charger.event:firmwareStatus",
                                       "charger.prop:firmwareStatus"),
        "LogStatusNotification": ("charger.event:diagnosticsStatus",
                                  "charger.prop:diagnosticsStatus"),
        "SecurityEventNotification": ("charger.event:securityEvent",),
        "NotifyEvent": ("charger.event:notifyEvent",),
        "DataTransfer": ("charger.event:dataTransfer",),
    },
}


def render_markdown() -> str:
    """Both tables as Markdown."""
    lines = ["| OCPP 1.6 | OCPP 2.0.1 | thing model |", "|---|---|---|"]
    actions = sorted(set(UPLINK[V16]) | set(UPLINK[V201]))
    for action in actions:
        targets = UPLINK[V16].get(action) or UPLINK[V201].get(action) or ()
        both16 = action if action in UPLINK[V16] else "-"
        both201 = action if action in UPLINK[V201] else "-"
        if action in UPLINK[V16] and action in UPLINK[V201] and (
                UPLINK[V16][action] != UPLINK[V201][action]):
            lines.append(f"| {both16} | - | {'<br>'.join(UPLINK[V16][action])} |")
            lines.append(f"| - | {both201} | {'<br>'.join(UPLINK[V201][action])} |")
            continue
        lines.append(f"| {both16} | {both201} | {'<br>'.join(targets)} |")
    lines += ["", "| service | OCPP 1.6 | OCPP 2.0.1 |", "|---|---|---|"]
    for name, per_version in SERVICE_ACTIONS.items():
        lines.append(f"| {name} | {per_version[V16]} | {per_version[V201]} |")
    return "\n".join(lines) + "\n"
