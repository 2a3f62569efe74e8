"""Canonical card numbers, VINs, EMAIDs, plates, phones and id types."""

from __future__ import annotations

import pytest

from cloud.accounts import idtags
from cloud.accounts.errors import InvalidInput
from cloud.accounts.idtags import IdType


def test_physical_card_matches_the_ykc_form() -> None:
    # edge/adapters/ykc.py::_card: upper-case hex, left-padded to 16
    assert idtags.physical_card("d14b0a54") == "00000000D14B0A54"
    assert idtags.physical_card(" 04A2B3C4D5E6F7 ") == "0004A2B3C4D5E6F7"
    for bad in ("", "0", "XYZ", "1" * 17, "00000000"):
        with pytest.raises(InvalidInput):
            idtags.physical_card(bad)
    assert idtags.try_physical_card("nothex") is None


def test_logical_card_is_sixteen_digits() -> None:
    assert idtags.logical_card("1001") == "0000000000001001"
    for bad in ("", "12a4", "1" * 17, "0000", "１２３"):
        with pytest.raises(InvalidInput):
            idtags.logical_card(bad)


def test_vin_emaid_plate_phone() -> None:
    assert idtags.vin(" lsvau2180n2123456 ") == "LSVAU2180N2123456"
    with pytest.raises(InvalidInput):
        idtags.vin("LSVAU2180N212345")  # 16 characters
    with pytest.raises(InvalidInput):
        idtags.vin("LSVAU2180N212345O")  # O is not a VIN character
    assert idtags.emaid("de-8ac-c12345678-9") == "DE8ACC123456789"
    with pytest.raises(InvalidInput):
        idtags.emaid("D1")
    assert idtags.plate("苏A·D 12345") == "苏AD12345"
    with pytest.raises(InvalidInput):
        idtags.plate("A")
    assert idtags.phone("+86 138-0013-8000") == "+8613800138000"
    with pytest.raises(InvalidInput):
        idtags.phone("12")


def test_id_types_of_both_thing_models() -> None:
    assert idtags.id_type("card") is IdType.CARD
    assert idtags.id_type("ISO14443") is IdType.CARD
    assert idtags.id_type("central") is IdType.APP
    assert idtags.id_type("unknown") is IdType.UNKNOWN
    with pytest.raises(InvalidInput, match="idType"):
        idtags.id_type("telepathy")
