"""WeChat Pay v2 HMAC-SHA256 signatures and the simulator's notify format."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import parse_qsl

import pytest

from cloud.payments import SimulatedProvider, SimulatedProviderConfig, signing
from cloud.payments.errors import NotifyRefused, SignatureError
from cloud.payments.provider import OrderRequest, TradeState

# WeChat Pay API v2 "安全规范" (pay.weixin.qq.com/wiki/doc/api/native.php?chapter=4_3): the
# documented example parameters, key and HMAC-SHA256 signature.
DOC_PARAMS = {"appid": "wxd930ea5d5a258f4f", "mch_id": "10000100", "device_info": "1000",
              "body": "test", "nonce_str": "ibuaiVcKdpRxkhJA"}
DOC_KEY = "192006250b4c09247ec02edce69f6a2d"
DOC_SIGN = "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"


def test_the_documented_vector() -> None:
    assert signing.canonical(DOC_PARAMS) == \
        "appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100" \
        "&nonce_str=ibuaiVcKdpRxkhJA"
    assert signing.sign(DOC_PARAMS, DOC_KEY) == DOC_SIGN
    signed = {**DOC_PARAMS, "sign": DOC_SIGN}
    assert signing.verify(signed, DOC_KEY)


def test_verification_rules() -> None:
    signed = {**DOC_PARAMS, "sign": DOC_SIGN}
    assert signing.verify({**signed, "sign": DOC_SIGN.lower()}, DOC_KEY)
    assert signing.verify({**signed, "empty": ""}, DOC_KEY)  # empty values are not signed
    assert not signing.verify({**signed, "extra": "x"}, DOC_KEY)  # new fields are signed
    assert not signing.verify({**signed, "body": "test2"}, DOC_KEY)
    assert not signing.verify(signed, "another-key-0000000000000000000")
    assert not signing.verify({**signed, "sign_type": "MD5"}, DOC_KEY)  # no downgrade
    assert not signing.verify(DOC_PARAMS, DOC_KEY)  # no sign at all


def _provider() -> SimulatedProvider:
    return SimulatedProvider("wechat", SimulatedProviderConfig(api_key=DOC_KEY))


def test_simulated_notify_verifies_like_a_real_one() -> None:
    sim = _provider()
    sim.create_order(OrderRequest("T1", Decimal("12.34"), "CNY", "top-up"))
    sent = sim.pay("T1")
    fields = dict(parse_qsl(sent.body.decode()))
    assert fields["total_fee"] == "1234" and fields["sign_type"] == "HMAC-SHA256"
    assert signing.verify(fields, DOC_KEY)  # verifiable by anyone holding the key
    notice = sim.parse_notify(sent.headers, sent.body)
    assert notice.state is TradeState.SUCCESS and notice.amount == Decimal("12.34")
    assert notice.transaction_id == fields["transaction_id"]
    again = sim.notify("T1")
    assert again.body != sent.body  # a redelivery: fresh nonce, fresh signature
    assert sim.parse_notify(again.headers, again.body).transaction_id == notice.transaction_id


def test_simulated_notify_refusals() -> None:
    sim = _provider()
    sim.create_order(OrderRequest("T1", Decimal("1.00"), "CNY", "top-up"))
    sim.pay("T1")
    forged = sim.notify("T1", key="attacker-key-000000000000000000")
    with pytest.raises(SignatureError):
        sim.parse_notify(forged.headers, forged.body)
    good = sim.notify("T1").body
    with pytest.raises(SignatureError):
        sim.parse_notify({}, good.replace(b"total_fee=100", b"total_fee=900"))
    for body in (b"\xff\xfe", b"not a form", good + b"&appid=twice"):
        with pytest.raises(NotifyRefused):
            sim.parse_notify({}, body)
    other = SimulatedProvider("wechat", SimulatedProviderConfig(api_key=DOC_KEY, mch_id="42"))
    with pytest.raises(NotifyRefused, match="another merchant"):
        other.parse_notify({}, good)
