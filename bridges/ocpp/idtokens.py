"""Id tags / id tokens <-> thing-model id types.

OCPP 1.6 ``idTag`` is an untyped string (up to 20 characters): its type is ``unknown``.
OCPP 2.0.1 ``idToken`` is ``{idToken, type}`` with ``IdTokenEnumType``. The charger's
``authorize`` event and the connector's session events have slightly different enums; the
tables below give both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridges.ocpp.errors import MappingError

# IdTokenEnumType -> charger.authorize.idType
CHARGER_ID_TYPES: dict[str, str] = {
    "Central": "central",
    "eMAID": "emaid",
    "ISO14443": "iso14443",
    "ISO15693": "iso15693",
    "KeyCode": "keycode",
    "Local": "local",
    "MacAddress": "mac",
    "NoAuthorization": "unknown",
}

# IdTokenEnumType -> connector.session*.idType
SESSION_ID_TYPES: dict[str, str] = {
    "Central": "central",
    "eMAID": "emaid",
    "ISO14443": "card",
    "ISO15693": "card",
    "KeyCode": "unknown",
    "Local": "local",
    "MacAddress": "unknown",
    "NoAuthorization": "free",
}

# thing-model id type -> IdTokenEnumType (for RequestStartTransaction, ReserveNow, local lists)
OCPP_ID_TYPES: dict[str, str] = {
    "central": "Central",
    "app": "Central",
    "emaid": "eMAID",
    "card": "ISO14443",
    "iso14443": "ISO14443",
    "iso15693": "ISO15693",
    "keycode": "KeyCode",
    "local": "Local",
    "mac": "MacAddress",
    "free": "NoAuthorization",
    "vin": "Central",
    "unknown": "Central",
}

V16_ID_TAG_MAX = 20
V201_ID_TOKEN_MAX = 36


def id_token(token: Any) -> tuple[str, str]:
    """A 2.0.1 ``IdTokenType`` -> ``(idToken, type)``; MappingError when malformed."""
    if not isinstance(token, Mapping):
        raise MappingError(f"idToken is not an object: {token!r}")
    value, kind = token.get("idToken"), token.get("type")
    if not isinstance(value, str) or not isinstance(kind, str):
        raise MappingError(f"idToken needs string idToken and type: {token!r}")
    return value, kind


def charger_id_type(ocpp_type: str | None) -> str:
    """``charger.authorize.idType`` for a 2.0.1 token type (None = 1.6 idTag -> unknown)."""
    return CHARGER_ID_TYPES.get(ocpp_type or "", "unknown")


def session_id_type(ocpp_type: str | None) -> str:
    """``connector.sessionStarted.idType`` for a 2.0.1 token type (None -> unknown)."""
    return SESSION_ID_TYPES.get(ocpp_type or "", "unknown")


def ocpp_id_type(thing_type: str | None, default: str = "Central") -> str:
    """A thing-model id type -> ``IdTokenEnumType`` (``default`` when None)."""
    if thing_type is None:
        return default
    if thing_type in CHARGER_ID_TYPES:  # already an OCPP name
        return thing_type
    try:
        return OCPP_ID_TYPES[thing_type]
    except KeyError:
        raise MappingError(f"no OCPP idToken type for {thing_type!r}") from None


def id_token_obj(value: str, thing_type: str | None = None, default: str = "Central") -> dict[str, str]:
    """A 2.0.1 ``IdTokenType`` object."""
    return {"idToken": value, "type": ocpp_id_type(thing_type, default)}
