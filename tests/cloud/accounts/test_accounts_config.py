"""The accounts config section: typed, unknown keys and float money refused."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from cloud.accounts import AccountsConfig


def test_accounts_config() -> None:
    config = AccountsConfig.model_validate({"min_balance": "5.00", "default_overdraft": 0})
    assert config.min_balance == Decimal("5.00") and config.default_overdraft == Decimal("0.00")
    for bad in ({"min_balance": 5.0}, {"min_balance": "-1"}, {"min_balance": "1.001"},
                {"currency": "USD"}, {"colour": "red"}, {"max_attempts": 0}):
        with pytest.raises(ValidationError):
            AccountsConfig.model_validate(bad)
