"""Typed configuration of accounts and wallets (the ``accounts:`` section of the cloud config)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, field_validator

from cloud.accounts.errors import InvalidInput
from cloud.accounts.money import ZERO, to_money
from cloud.strict import Strict


class AccountsConfig(Strict):
    """Wallet and start-authorisation settings.

    Money is written as a string or an integer (``min_balance: "5.00"``): a YAML float is
    refused, so no float ever becomes money.
    """

    currency: Literal["CNY"] = "CNY"
    #: the balance an online-billing start needs at least (besides being positive)
    min_balance: Decimal = ZERO
    #: the overdraft limit of new wallets (0: a balance never goes negative)
    default_overdraft: Decimal = ZERO
    #: optimistic-lock retries of one wallet operation before it fails with ConcurrentUpdate
    max_attempts: int = Field(default=200, ge=1, le=10_000)

    @field_validator("min_balance", "default_overdraft", mode="before")
    @classmethod
    def _money(cls, value: Any) -> Decimal:
        try:
            amount = to_money(value)
        except InvalidInput as exc:
            raise ValueError(str(exc)) from None
        if amount < 0:
            raise ValueError("must not be negative")
        return amount
