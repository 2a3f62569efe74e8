"""Start authorisation: the seed's operating-mode matrix, account states, balance rules and the
reply as the edge validates it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cloud.accounts import AccountService, ChargerType, OperatingMode, Reason
from cloud.accounts.errors import InvalidInput
from cloud.accounts.models import User
from thingmodels import builtin_models
from thingmodels.errors import ThingModelError

# The seed brief's table (3.1.4 运营方式), transcribed cell by cell:
# 设备类型 | 在线收费 | 离线计费 | 离线免费 ; 刷卡 / 扫码 / 即插即充 / VIN
SEED_TABLE = """
dc_networked  online_billing   card=Y app=Y plug=N vin=Y
dc_networked  offline_billing  card=N app=N plug=N vin=N
dc_networked  offline_free     card=Y app=N plug=N vin=Y
ac_networked  online_billing   card=Y app=Y plug=N vin=N
ac_networked  offline_billing  card=Y app=N plug=N vin=N
ac_networked  offline_free     card=Y app=N plug=Y vin=N
ac_offline    online_billing   card=N app=N plug=N vin=N
ac_offline    offline_billing  card=Y app=N plug=N vin=N
ac_offline    offline_free     card=Y app=N plug=Y vin=N
"""
CELLS = [(ctype, mode, method, flag == "Y")
         for line in SEED_TABLE.strip().splitlines()
         for ctype, mode, *cells in [line.split()]
         for method, flag in (c.split("=") for c in cells)]


@pytest.fixture
def rich(accounts: AccountService) -> User:
    """A user with money, a card, a verified vehicle: every method can work for them."""
    user = accounts.create_user("t1", "13800000040")
    accounts.credit(user.id, "50.00", key="seed")
    accounts.issue_card("t1", "D14B0A54", "4001", user_id=user.id)
    car = accounts.add_vehicle(user.id, vin="LSVAU2180N2123456", emaid="DE8ACC123456789")
    accounts.verify_vehicle(car.id)
    return user


@pytest.mark.parametrize(("ctype", "mode", "method", "allowed"), CELLS)
def test_the_seed_matrix(accounts: AccountService, rich: User, ctype: str, mode: str,
                         method: str, allowed: bool) -> None:
    tag, id_type = {"card": ("D14B0A54", "card"), "app": (rich.app_token, "app"),
                    "vin": ("LSVAU2180N2123456", "vin"), "plug": ("", "local")}[method]
    decision = accounts.authorize("t1", tag, id_type, operating_mode=mode, charger_type=ctype,
                                  min_balance="10")
    assert decision.accepted is allowed, decision
    if not allowed:
        assert decision.reason is Reason.METHOD_NOT_ALLOWED
    elif method == "plug":
        assert decision.reason is Reason.FREE and decision.user_id is None
    else:
        assert decision.reason is Reason.ACCEPTED and decision.user_id == rich.id
        assert decision.balance == Decimal("50.00")
        assert decision.logical_card == "0000000000004001"  # app/VIN sessions bind the card


def test_unknown_type_and_unknown_id_type(accounts: AccountService, rich: User) -> None:
    # charger type unknown: a method some type offers in the mode
    ok = accounts.authorize("t1", "LSVAU2180N2123456", "vin", operating_mode="offline_free")
    assert ok.accepted
    no = accounts.authorize("t1", rich.app_token, "app", operating_mode="offline_billing")
    assert no.reason is Reason.METHOD_NOT_ALLOWED
    # OCPP's idType unknown: the method is what the tag turns out to be
    vin_on_ac = accounts.authorize("t1", "LSVAU2180N2123456", "unknown",
                                   operating_mode="online_billing", charger_type="ac_networked")
    assert vin_on_ac.reason is Reason.METHOD_NOT_ALLOWED
    card_on_ac = accounts.authorize("t1", "D14B0A54", "unknown",
                                    operating_mode=OperatingMode.ONLINE_BILLING,
                                    charger_type=ChargerType.AC_NETWORKED)
    assert card_on_ac.accepted
    emaid = accounts.authorize("t1", "DE8ACC123456789", "emaid", operating_mode="online_billing",
                               charger_type="dc_networked")
    assert emaid.accepted and emaid.user_id == rich.id
    # the catalogue's charger kinds dc / ac are networked chargers
    assert accounts.authorize("t1", "LSVAU2180N2123456", "vin", operating_mode="online_billing",
                              charger_type="dc").accepted
    assert not accounts.authorize("t1", "LSVAU2180N2123456", "vin",
                                  operating_mode="online_billing", charger_type="ac").accepted
    with pytest.raises(InvalidInput):
        accounts.authorize("t1", "D14B0A54", "card", operating_mode="free_for_all")
    with pytest.raises(InvalidInput):
        accounts.authorize("t1", "D14B0A54", "card", operating_mode="online_billing",
                           charger_type="hyperloop")


def test_states_refuse_with_the_reason(accounts: AccountService, rich: User) -> None:
    def card_decision(mode: str = "online_billing") -> Reason:
        return accounts.authorize("t1", "D14B0A54", "card", operating_mode=mode).reason

    card = accounts.find_card("t1", "D14B0A54")
    assert card is not None
    assert accounts.authorize("t1", "FFFF0001", "card",
                              operating_mode="online_billing").reason is Reason.UNKNOWN_ID
    accounts.freeze_card(card.id)
    assert card_decision() is Reason.CARD_FROZEN
    assert card_decision("offline_free") is Reason.CARD_FROZEN
    accounts.unfreeze_card(card.id)
    assert card_decision() is Reason.ACCEPTED
    accounts.update_user(rich.id, status="disabled")
    assert card_decision("offline_free") is Reason.USER_DISABLED
    assert accounts.authorize("t1", rich.app_token, "app",
                              operating_mode="online_billing").reason is Reason.USER_DISABLED
    accounts.update_user(rich.id, status="active")
    accounts.unbind_card(card.id)
    assert card_decision("offline_free") is Reason.CARD_UNBOUND
    accounts.bind_card(card.id, rich.id)
    accounts.report_lost(card.id)
    assert card_decision() is Reason.CARD_LOST
    [car] = accounts.list_vehicles(user_id=rich.id)
    accounts.verify_vehicle(car.id, verified=False)
    assert accounts.authorize("t1", "LSVAU2180N2123456", "vin", operating_mode="online_billing"
                              ).reason is Reason.VEHICLE_UNVERIFIED


def test_balance_rules_per_mode(accounts: AccountService) -> None:
    user = accounts.create_user("t1", "13800000041")
    accounts.issue_card("t1", "ABCD", user_id=user.id)

    def decide(mode: str, floor: str | None = None) -> Reason:
        return accounts.authorize("t1", "ABCD", "card", operating_mode=mode,
                                  min_balance=floor).reason

    # empty wallet: billing refused, free accepted
    assert decide("online_billing") is Reason.INSUFFICIENT_BALANCE
    assert decide("offline_billing") is Reason.INSUFFICIENT_BALANCE
    assert decide("offline_free") is Reason.ACCEPTED
    accounts.credit(user.id, "9.99", key="c1")
    assert decide("online_billing") is Reason.ACCEPTED  # positive, default floor 0
    assert decide("online_billing", "10.00") is Reason.INSUFFICIENT_BALANCE
    accounts.credit(user.id, "0.01", key="c2")
    assert decide("online_billing", "10.00") is Reason.ACCEPTED
    # an overdraft does not make a negative balance good enough to start
    accounts.set_overdraft(user.id, "50")
    accounts.debit(user.id, "20", key="d1")
    assert decide("online_billing", "0") is Reason.INSUFFICIENT_BALANCE
    assert decide("offline_free") is Reason.ACCEPTED
    decision = accounts.authorize("t1", "ABCD", "card", operating_mode="online_billing")
    assert decision.balance == Decimal("-10.00") and decision.user_id == user.id


def test_authorize_user_for_the_app_backend(accounts: AccountService, rich: User) -> None:
    ok = accounts.authorize_user(rich.id, operating_mode="online_billing",
                                 charger_type="dc_networked")
    assert ok.accepted and ok.logical_card == "0000000000004001"
    assert not accounts.authorize_user(rich.id, operating_mode="offline_free").accepted


def test_replies_pass_the_edge_validation(accounts: AccountService, rich: User) -> None:
    """The edge validates a decision strictly (edge/context.py decide ->
    validate_event_reply); an unknown key would make it fall back to its local list."""
    models = builtin_models()
    for tag, kind, mode in (("D14B0A54", "card", "online_billing"),
                            ("nobody", "card", "online_billing"),
                            (rich.app_token, "app", "offline_free")):
        decision = accounts.authorize("t1", tag, kind, operating_mode=mode)
        connector = models.get("connector").validate_event_reply("authorize", decision.reply())
        charger = models.get("charger").validate_event_reply("authorize",
                                                             decision.reply("charger"))
        assert connector["accepted"] is decision.accepted
        assert charger["status"] in ("Accepted", "Invalid", "Blocked", "NoCredit")
        if decision.balance is not None:
            assert connector["balance"] == decision.balance
        if decision.accepted and decision.logical_card:  # YKC binds the session to it
            assert connector["logicalCard"] == decision.logical_card
    with pytest.raises(ThingModelError):  # still strict: an unknown key is refused
        models.get("connector").validate_event_reply(
            "authorize", {"accepted": True, "logicalCardNo": "0000000000004001"})
