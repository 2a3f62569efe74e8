"""Customers: create, search, update, close; tenant visibility."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cloud.accounts import AccountService
from cloud.accounts.errors import Conflict, InvalidInput, NotFound, StateError
from cloud.auth.principal import Principal, Role


def test_create_search_update(accounts: AccountService) -> None:
    li = accounts.create_user("t1", "138 0013 8000", "Li Lei")
    han = accounts.create_user("t1", "13900139000", "Han Meimei")
    accounts.create_user("t2", "13800138000", "Li Lei (other operator)")  # same phone, other tenant
    assert li.phone == "13800138000" and li.status == "active"
    assert len(li.app_token) == 16 and li.app_token != han.app_token
    assert accounts.wallet(li.id).balance == Decimal("0.00")
    assert [u.id for u in accounts.list_users(tenant_id="t1", phone="138")] == [li.id]
    assert {u.id for u in accounts.list_users(tenant_id="t1", q="Mei")} == {han.id}
    assert len(accounts.list_users(phone="13800138000")) == 2
    with pytest.raises(Conflict):
        accounts.create_user("t1", "13800138000")
    with pytest.raises(Conflict):
        accounts.update_user(han.id, phone="13800138000")
    changed = accounts.update_user(han.id, name="Han M.", status="disabled")
    assert changed.name == "Han M." and changed.status == "disabled"
    assert accounts.get_user(han.id).status == "disabled"
    token = li.app_token
    assert accounts.rotate_app_token(li.id).app_token != token
    with pytest.raises(InvalidInput):
        accounts.create_user("t1", "12")
    with pytest.raises(InvalidInput):
        accounts.update_user(li.id, status="sleeping")
    with pytest.raises(NotFound):
        accounts.get_user("usr_missing")


def test_close_needs_a_zero_balance(accounts: AccountService) -> None:
    user = accounts.create_user("t1", "13800000020")
    accounts.credit(user.id, "5", key="c")
    with pytest.raises(StateError, match="balance"):
        accounts.close_user(user.id)
    accounts.adjust(user.id, "-5", key="a", note="cash refund at the counter")
    assert accounts.close_user(user.id).status == "closed"
    assert accounts.reconcile(user.id)


def test_visibility_filters_every_lookup(accounts: AccountService) -> None:
    mine = accounts.create_user("op1", "13800000021")
    theirs = accounts.create_user("op2", "13800000022")
    principal = Principal(subject="user:1", tenant_id="op1", role=Role.OPERATOR_ADMIN,
                          scopes=frozenset({"users:read"}), visible_tenants=frozenset({"op1"}))
    see = principal.tenant_clause
    assert [u.id for u in accounts.list_users(visible=see)] == [mine.id]
    assert accounts.get_user(mine.id, visible=see).id == mine.id
    with pytest.raises(NotFound):
        accounts.get_user(theirs.id, visible=see)
    with pytest.raises(NotFound):
        accounts.update_user(theirs.id, name="x", visible=see)
    with pytest.raises(NotFound):
        accounts.wallet(theirs.id, visible=see)
    with pytest.raises(NotFound):
        accounts.ledger(theirs.id, visible=see)
