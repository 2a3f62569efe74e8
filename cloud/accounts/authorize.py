"""Start authorisation: the operating-mode matrix and the decision sent back to the charger.

The matrix is the seed brief's table (运营方式, "3.1.4"): which start method a charger type
offers in which operating mode.

===================  =====================  ==================  =====================
charger type          online billing         offline billing      offline free
===================  =====================  ==================  =====================
networked DC          card, app, VIN         —                   card, VIN
networked AC          card, app              card                card, plug-and-charge
offline AC            —                      card                card, plug-and-charge
===================  =====================  ==================  =====================

How the thing model's ``idType`` maps to a method: ``card`` -> card (刷卡), ``app`` -> app
(扫码: QR or typed code), ``vin`` and ``emaid`` -> VIN (VIN 码启动: the vehicle identifies
its owner; an ISO 15118 EMAID is the same idea, carried in a contract certificate),
``local`` -> plug-and-charge (即插即充: the charger starts on plug-in without any
identification, which the seed only allows when charging is free), ``unknown`` -> whatever the
tag turns out to be (card, app token, VIN or EMAID).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from cloud.accounts.errors import InvalidInput
from cloud.accounts.idtags import IdType


class OperatingMode(StrEnum):
    """How a charger is operated (the catalog's ``operating_mode``)."""

    ONLINE_BILLING = "online_billing"  # 在线收费
    OFFLINE_BILLING = "offline_billing"  # 离线计费
    OFFLINE_FREE = "offline_free"  # 离线免费


class ChargerType(StrEnum):
    """The seed's device types."""

    DC_NETWORKED = "dc_networked"  # 网络版 直流
    AC_NETWORKED = "ac_networked"  # 网络版 交流
    AC_OFFLINE = "ac_offline"  # 离线版 交流


class StartMethod(StrEnum):
    """The seed's start methods."""

    CARD = "card"  # 刷卡充电
    APP = "app"  # 扫码充电
    PLUG = "plug_and_charge"  # 即插即充
    VIN = "vin"  # VIN 码启动


_C, _A, _P, _V = StartMethod.CARD, StartMethod.APP, StartMethod.PLUG, StartMethod.VIN

#: the seed's table, cell by cell
MATRIX: dict[ChargerType, dict[OperatingMode, frozenset[StartMethod]]] = {
    ChargerType.DC_NETWORKED: {
        OperatingMode.ONLINE_BILLING: frozenset({_C, _A, _V}),
        OperatingMode.OFFLINE_BILLING: frozenset(),
        OperatingMode.OFFLINE_FREE: frozenset({_C, _V}),
    },
    ChargerType.AC_NETWORKED: {
        OperatingMode.ONLINE_BILLING: frozenset({_C, _A}),
        OperatingMode.OFFLINE_BILLING: frozenset({_C}),
        OperatingMode.OFFLINE_FREE: frozenset({_C, _P}),
    },
    ChargerType.AC_OFFLINE: {
        OperatingMode.ONLINE_BILLING: frozenset(),
        OperatingMode.OFFLINE_BILLING: frozenset({_C}),
        OperatingMode.OFFLINE_FREE: frozenset({_C, _P}),
    },
}

#: a method per known idType (``unknown`` is decided by what the tag resolves to)
METHOD_OF: dict[IdType, StartMethod] = {
    IdType.CARD: _C, IdType.APP: _A, IdType.VIN: _V, IdType.EMAID: _V, IdType.LOCAL: _P,
}


def operating_mode(value: str | OperatingMode) -> OperatingMode:
    """Parse an operating mode (raises :class:`InvalidInput`)."""
    try:
        return OperatingMode(value)
    except ValueError:
        raise InvalidInput(f"operating_mode {value!r} is not one of "
                           f"{[m.value for m in OperatingMode]}") from None


#: the catalogue's charger ``kind`` (networked chargers): ``dc`` / ``ac``
_KIND_ALIASES = {"dc": ChargerType.DC_NETWORKED, "ac": ChargerType.AC_NETWORKED}


def charger_type(value: str | ChargerType | None) -> ChargerType | None:
    """Parse a charger type (None stays None; the catalogue's ``dc``/``ac`` mean networked)."""
    if value is None:
        return None
    if isinstance(value, str) and value in _KIND_ALIASES:
        return _KIND_ALIASES[value]
    try:
        return ChargerType(value)
    except ValueError:
        raise InvalidInput(f"charger_type {value!r} is not one of "
                           f"{[t.value for t in ChargerType]}") from None


def allowed_methods(ctype: ChargerType | None, mode: OperatingMode) -> frozenset[StartMethod]:
    """The methods a charger of ``ctype`` offers in ``mode``; for an unknown type, the methods
    some type offers in that mode."""
    if ctype is not None:
        return MATRIX[ctype][mode]
    return frozenset().union(*(cells[mode] for cells in MATRIX.values()))


class Reason(StrEnum):
    """Why a start was accepted or refused (``Decision.reason``)."""

    ACCEPTED = "accepted"
    FREE = "free"  # plug-and-charge while free: accepted without identification
    UNKNOWN_ID = "unknown_id"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CARD_FROZEN = "card_frozen"
    CARD_LOST = "card_lost"
    CARD_UNBOUND = "card_unbound"
    USER_DISABLED = "user_disabled"
    USER_CLOSED = "user_closed"
    VEHICLE_UNVERIFIED = "vehicle_unverified"
    INSUFFICIENT_BALANCE = "insufficient_balance"


#: OCPP AuthorizationStatus for the ``charger.authorize`` reply (``status``)
_OCPP_STATUS = {
    Reason.ACCEPTED: "Accepted", Reason.FREE: "Accepted", Reason.UNKNOWN_ID: "Invalid",
    Reason.METHOD_NOT_ALLOWED: "Invalid", Reason.CARD_FROZEN: "Blocked",
    Reason.CARD_LOST: "Blocked", Reason.CARD_UNBOUND: "Invalid",
    Reason.USER_DISABLED: "Blocked", Reason.USER_CLOSED: "Blocked",
    Reason.VEHICLE_UNVERIFIED: "Invalid", Reason.INSUFFICIENT_BALANCE: "NoCredit",
}


@dataclass(frozen=True, slots=True)
class Decision:
    """The cloud's answer to a start request.

    ``logical_card``/``physical_card`` are the card the charger should bind the session to:
    the presented card, or for app and VIN starts the user's first active card, so that the
    seed's app/card interoperation works (an app start can be stopped with the user's card).
    """

    accepted: bool
    reason: Reason
    balance: Decimal | None = None
    user_id: str | None = None
    logical_card: str | None = None
    physical_card: str | None = None
    method: StartMethod | None = None

    def reply(self, product: str = "connector") -> dict[str, Any]:
        """The ``authorize`` event reply params for ``product`` (``connector`` or ``charger``).

        Only keys of the thing model's reply are set (the edge validates replies strictly and
        treats an unknown key as no decision); the balance travels as a decimal string.
        """
        out: dict[str, Any] = {"accepted": self.accepted, "reason": self.reason.value}
        if self.balance is not None:
            out["balance"] = str(self.balance)
        if product == "charger":
            out["status"] = _OCPP_STATUS[self.reason]
        elif self.accepted and self.logical_card:
            # YKC binds the session to this card, so the user's card can stop an app start
            out["logicalCard"] = self.logical_card
        return out
