"""The payments config section: typed, unknown keys and float money refused; providers built."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cloud.payments import PaymentsConfig, build_providers


def test_payments_config_and_providers() -> None:
    config = PaymentsConfig.model_validate({
        "min_topup": "0.01", "max_topup": 1000,
        "providers": {"wechat": {"api_key": "k" * 32}, "alipay": {"api_key": "a" * 32,
                                                                  "mch_id": "2088"}}})
    providers = build_providers(config)
    assert sorted(providers) == ["alipay", "wechat"]
    assert providers["alipay"].name == "alipay"
    assert "k" * 32 not in repr(config)  # the API key is a secret
    for bad in ({"min_topup": 1.5}, {"min_topup": "10", "max_topup": "5"},
                {"providers": {"we/chat": {"api_key": "k" * 32}}},
                {"providers": {"wechat": {"api_key": "short"}}},
                {"providers": {"wechat": {"api_key": "k" * 32, "kind": "paypal"}}},
                {"notify_url": "x"}):
        with pytest.raises(ValidationError):
            PaymentsConfig.model_validate(bad)
