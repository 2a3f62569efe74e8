"""Typed configuration of payments (the ``payments:`` section of the cloud config)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from cloud.accounts.errors import InvalidInput
from cloud.accounts.money import to_money
from cloud.strict import Strict


class SimulatedProviderConfig(Strict):
    """The simulated provider: WeChat Pay v2 parameters and HMAC-SHA256 notify signatures."""

    kind: Literal["simulated"] = "simulated"
    app_id: str = Field(default="wx0000000000000000", min_length=1, max_length=32)
    mch_id: str = Field(default="1900000001", min_length=1, max_length=32)
    #: the merchant API key the notifies are signed with (WeChat: 32 characters)
    api_key: SecretStr
    #: what the QR code encodes, followed by the prepay id
    qr_prefix: str = "weixin://wxpay/bizpayurl?pr="

    @field_validator("api_key")
    @classmethod
    def _key_length(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("api_key must have at least 16 characters")
        return value


def _money(value: Any) -> Decimal:
    try:
        return to_money(value)
    except InvalidInput as exc:
        raise ValueError(str(exc)) from None


class PaymentsConfig(Strict):
    """Providers by name (the name is the path segment of the notify URL) and top-up limits."""

    providers: dict[str, SimulatedProviderConfig] = Field(default_factory=dict)
    min_topup: Decimal = Decimal("1.00")
    max_topup: Decimal = Decimal("5000.00")
    #: public base URL the providers call back, e.g. https://pay.example.com (the notify URL
    #: is ``{notify_base_url}/api/v1/payments/notify/{provider}``); None: not sent
    notify_base_url: str | None = None

    @field_validator("min_topup", "max_topup", mode="before")
    @classmethod
    def _check_money(cls, value: Any) -> Decimal:
        return _money(value)

    @model_validator(mode="after")
    def _limits(self) -> PaymentsConfig:
        if not Decimal("0") < self.min_topup <= self.max_topup:
            raise ValueError("need 0 < min_topup <= max_topup")
        for name in self.providers:
            if not name.isascii() or not name.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"provider name {name!r}: letters, digits, - and _ only")
        return self
