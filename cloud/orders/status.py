"""Order status, start methods and the operating-mode rules (values stored as strings)."""

from __future__ import annotations

from enum import StrEnum


class OrderStatus(StrEnum):
    """Where an order is in its life.

    Normal path: ``authorised -> charging -> finished -> settled -> refunded``. Abnormal states
    carry a reason in ``Order.status_reason``.
    """

    AUTHORISED = "authorised"  # the session is open (started / remote start accepted), no energy yet
    CHARGING = "charging"  # energy or updates seen
    FINISHED = "finished"  # ended; not billed yet, or billed and the debit is in progress
    SETTLED = "settled"  # billed and paid (or nothing to pay)
    REFUNDED = "refunded"  # some or all of the paid amount went back to the wallet
    START_FAILED = "start_failed"  # the charger refused the start
    METER_ANOMALY = "meter_anomaly"  # no believable energy: not billed until repaired
    UNPAID = "unpaid"  # billed, the wallet could not pay (``owed_amount``)
    DISPUTED = "disputed"  # billed and paid, but the charger's own record disagrees on totals
    TIMEOUT = "timeout"  # no news from the charger for too long


#: states a session may still move out of when the charger sends more news
OPEN = frozenset({OrderStatus.AUTHORISED, OrderStatus.CHARGING, OrderStatus.START_FAILED,
                  OrderStatus.TIMEOUT})
#: states whose amounts are final (billed)
BILLED = frozenset({OrderStatus.SETTLED, OrderStatus.REFUNDED, OrderStatus.UNPAID,
                    OrderStatus.DISPUTED})


class StartMethod(StrEnum):
    """How the session was started."""

    APP = "app"
    CARD = "card"
    VIN = "vin"
    PLUG_AND_CHARGE = "plug_and_charge"
    OFFLINE = "offline"
    FREE = "free"


class OperatingMode(StrEnum):
    """A charger's billing mode (the seed's matrix)."""

    ONLINE_BILLING = "online_billing"
    OFFLINE_BILLING = "offline_billing"
    OFFLINE_FREE = "offline_free"


#: connector.yaml idType / transactionRecord tradeType -> start method. As in
#: :mod:`cloud.accounts.authorize`: an EMAID identifies a vehicle like a VIN does, and ``local``
#: (started at the charger without identification) is plug-and-charge (即插即充).
_ID_TYPE_METHOD: dict[str, StartMethod] = {
    "card": StartMethod.CARD,
    "vin": StartMethod.VIN,
    "emaid": StartMethod.VIN,
    "app": StartMethod.APP,
    "central": StartMethod.APP,
    "local": StartMethod.PLUG_AND_CHARGE,
    "free": StartMethod.FREE,
    "offline_card": StartMethod.OFFLINE,
}


def start_method(id_type: str | None, *, offline: bool = False) -> StartMethod | None:
    """The start method for an ``idType``/``tradeType`` (None when it says nothing)."""
    if offline:
        return StartMethod.OFFLINE
    if id_type is None:
        return None
    return _ID_TYPE_METHOD.get(id_type)
