"""Operating modes (运营模式) and how a session may be started in each.

The seed's matrix for networked chargers (网络版): a charger is run in one of three modes:

=================  ==========================  ===========================
mode               DC                          AC
=================  ==========================  ===========================
online_billing     card, app/QR, VIN           card, app/QR
(在线收费)
offline_billing    (nothing)                   card
(离线计费)
offline_free       card, VIN                   card, plug-and-charge
(离线免费)
=================  ==========================  ===========================

``online_billing``: the cloud authorizes and bills every session (app, card, VIN), orders are
settled from the platform tariff. ``offline_billing``: the charger bills stored-value cards
itself; the platform records what the charger reports. ``offline_free``: charging is free;
sessions are recorded, nothing is billed.
"""

from __future__ import annotations

from enum import StrEnum


class OperatingMode(StrEnum):
    """How a charger is operated (the seed's 在线收费 / 离线计费 / 离线免费)."""

    ONLINE_BILLING = "online_billing"
    OFFLINE_BILLING = "offline_billing"
    OFFLINE_FREE = "offline_free"


class StartMethod(StrEnum):
    """Ways a session can be started."""

    CARD = "card"  # 刷卡充电
    APP = "app"  # 扫码充电 (QR code / typed code in the app)
    PLUG_AND_CHARGE = "plug_and_charge"  # 即插即充
    VIN = "vin"  # VIN 码启动


_MATRIX: dict[tuple[str, OperatingMode], frozenset[StartMethod]] = {
    ("dc", OperatingMode.ONLINE_BILLING): frozenset({StartMethod.CARD, StartMethod.APP,
                                                     StartMethod.VIN}),
    ("dc", OperatingMode.OFFLINE_BILLING): frozenset(),
    ("dc", OperatingMode.OFFLINE_FREE): frozenset({StartMethod.CARD, StartMethod.VIN}),
    ("ac", OperatingMode.ONLINE_BILLING): frozenset({StartMethod.CARD, StartMethod.APP}),
    ("ac", OperatingMode.OFFLINE_BILLING): frozenset({StartMethod.CARD}),
    ("ac", OperatingMode.OFFLINE_FREE): frozenset({StartMethod.CARD,
                                                   StartMethod.PLUG_AND_CHARGE}),
}


def start_methods(kind: str, mode: str) -> frozenset[StartMethod]:
    """Start methods allowed for a charger of ``kind`` (dc | ac) in ``mode``."""
    return _MATRIX[(kind, OperatingMode(mode))]


def billing_source(mode: str) -> str:
    """Who prices a session: ``platform`` (settle with the tariff), ``charger`` (take the
    charger's own record, stored-value cards) or ``free`` (record, bill nothing)."""
    return {OperatingMode.ONLINE_BILLING: "platform", OperatingMode.OFFLINE_BILLING: "charger",
            OperatingMode.OFFLINE_FREE: "free"}[OperatingMode(mode)]
