"""Canonical forms of the numbers a charger reports: card numbers, VINs, EMAIDs, plates, phones.

The forms match what the edge sends and matches:

* physical card: 16 upper-case hex characters, left-padded with zeros, exactly like
  ``edge/adapters/ykc.py::_card`` (YKC 0x31 ``account_or_card`` is BCD/BIN8, i.e. 16 hex);
  all zeros is YKC's "no card" and is never a card number;
* logical card: 16 decimal digits, left-padded (``edge/adapters/ykc.py::_logical``);
* VIN: 17 characters of ``0-9 A-Z`` without I, O, Q (ISO 3779 / GB 16735);
* EMAID: ISO 15118 e-mobility account id without separators (``DE8ACC12345678``, 14-15
  characters, optionally the check character), upper case.
"""

from __future__ import annotations

import re
from enum import StrEnum

from cloud.accounts.errors import InvalidInput

ZERO_CARD = "0" * 16
_HEX = frozenset("0123456789ABCDEF")
_VIN = re.compile(r"[0-9A-HJ-NPR-Z]{17}")
_EMAID = re.compile(r"[A-Z]{2}[0-9A-Z]{3}[0-9A-Z]{9,10}")
_PHONE = re.compile(r"\+?[0-9]{5,20}")


class IdType(StrEnum):
    """How a charger identified the driver (the thing model's ``authorize.idType``)."""

    CARD = "card"
    VIN = "vin"
    APP = "app"
    EMAID = "emaid"
    LOCAL = "local"  # started at the charger without identification (plug and charge, free)
    UNKNOWN = "unknown"  # OCPP idTags: a card, an app token or a vehicle, whichever matches


#: OCPP 2.0.1 IdTokenType values (the ``charger.authorize`` enum) mapped to what they identify
_ALIASES = {"iso14443": IdType.CARD, "iso15693": IdType.CARD, "keycode": IdType.CARD,
            "mac": IdType.UNKNOWN, "central": IdType.APP}


def id_type(value: str | IdType) -> IdType:
    """An ``idType`` from the thing model (or an OCPP 2.0.1 token type) as :class:`IdType`."""
    if isinstance(value, IdType):
        return value
    text = str(value).strip().lower()
    if text in _ALIASES:
        return _ALIASES[text]
    try:
        return IdType(text)
    except ValueError:
        raise InvalidInput(f"idType {value!r} is not one of {[t.value for t in IdType]}") from None


def physical_card(value: str) -> str:
    """A physical card number in canonical form (raises :class:`InvalidInput`)."""
    text = value.strip().upper()
    if not text or len(text) > 16 or any(c not in _HEX for c in text):
        raise InvalidInput(f"physical card number {value!r}: 1 to 16 hex characters expected")
    text = text.rjust(16, "0")
    if text == ZERO_CARD:
        raise InvalidInput("physical card number 0000000000000000 means 'no card'")
    return text


def logical_card(value: str) -> str:
    """A logical (printed) card number in canonical form: 16 digits."""
    text = value.strip()
    if not text or len(text) > 16 or not text.isdigit() or not text.isascii():
        raise InvalidInput(f"logical card number {value!r}: 1 to 16 digits expected")
    text = text.rjust(16, "0")
    if text == ZERO_CARD:
        raise InvalidInput("logical card number 0000000000000000 means 'no card'")
    return text


def vin(value: str) -> str:
    """A VIN in canonical form."""
    text = value.strip().upper()
    if not _VIN.fullmatch(text):
        raise InvalidInput(f"VIN {value!r}: 17 characters 0-9 A-Z without I, O, Q expected")
    return text


def emaid(value: str) -> str:
    """An EMAID without separators, upper case."""
    text = value.strip().upper().replace("-", "").replace("*", "")
    if not _EMAID.fullmatch(text):
        raise InvalidInput(f"EMAID {value!r}: ISO 15118 form like DE8ACC12345678 expected")
    return text


def plate(value: str) -> str:
    """A licence plate: upper case, without spaces, dots or dashes (苏AD12345)."""
    text = "".join(c for c in value.strip().upper() if c not in " ·.-")
    if not 2 <= len(text) <= 10 or not all(c.isalnum() for c in text):
        raise InvalidInput(f"plate {value!r}: 2 to 10 letters and digits expected")
    return text


def phone(value: str) -> str:
    """A phone number: digits with an optional leading ``+``; spaces and dashes dropped."""
    text = "".join(c for c in value.strip() if c not in " -()")
    if not _PHONE.fullmatch(text):
        raise InvalidInput(f"phone {value!r}: 5 to 20 digits expected")
    return text


def try_physical_card(value: str) -> str | None:
    """:func:`physical_card`, or None when ``value`` is not one."""
    try:
        return physical_card(value)
    except InvalidInput:
        return None


def try_logical_card(value: str) -> str | None:
    """:func:`logical_card`, or None when ``value`` is not one."""
    try:
        return logical_card(value)
    except InvalidInput:
        return None


def try_vin(value: str) -> str | None:
    """:func:`vin`, or None."""
    try:
        return vin(value)
    except InvalidInput:
        return None


def try_emaid(value: str) -> str | None:
    """:func:`emaid`, or None."""
    try:
        return emaid(value)
    except InvalidInput:
        return None
