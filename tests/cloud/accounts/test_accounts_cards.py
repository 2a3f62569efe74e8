"""Cards and vehicles: numbers, states, binding, resolving id tags, app/card interoperation."""

from __future__ import annotations

import pytest

from cloud.accounts import AccountService, IdType
from cloud.accounts.errors import Conflict, InvalidInput, NotFound, StateError


def test_card_numbers_are_unique_per_tenant(accounts: AccountService) -> None:
    card = accounts.issue_card("t1", "d14b0a54", "1001")
    assert (card.physical_no, card.logical_no, card.id_tag) == \
        ("00000000D14B0A54", "0000000000001001", "D14B0A54")
    with pytest.raises(Conflict, match="physical"):
        accounts.issue_card("t1", "00000000D14B0A54", "1002")
    with pytest.raises(Conflict, match="logical"):
        accounts.issue_card("t1", "AA", "0000000000001001")
    other = accounts.issue_card("t2", "D14B0A54", "1001")  # another operator's stock
    assert other.tenant_id == "t2"
    generated = accounts.issue_card("t1", "BEEF")
    assert len(generated.logical_no) == 16 and generated.logical_no.isdigit()
    with pytest.raises(InvalidInput):
        accounts.issue_card("t1", "0000")  # the 'no card' number
    assert accounts.find_card("t1", "1001").id == card.id
    assert accounts.find_card("t1", "d14b0a54").id == card.id
    assert accounts.find_card("t1", "FFFF") is None
    assert [c.id for c in accounts.list_cards(tenant_id="t1", number="1001")] == [card.id]


def test_card_states(accounts: AccountService) -> None:
    user = accounts.create_user("t1", "13800000030")
    other = accounts.create_user("t1", "13800000031")
    card = accounts.issue_card("t1", "C0FFEE01", "2001")
    assert accounts.bind_card(card.id, user.id).user_id == user.id
    assert accounts.bind_card(card.id, user.id).user_id == user.id  # idempotent
    with pytest.raises(StateError, match="unbind"):
        accounts.bind_card(card.id, other.id)
    with pytest.raises(StateError):
        accounts.delete_card(card.id)
    assert accounts.freeze_card(card.id).status == "frozen"
    assert accounts.freeze_card(card.id).status == "frozen"
    assert accounts.unfreeze_card(card.id).status == "active"
    assert accounts.report_lost(card.id).status == "lost"
    with pytest.raises(StateError, match="lost"):
        accounts.unfreeze_card(card.id)
    with pytest.raises(StateError):
        accounts.freeze_card(card.id)
    assert accounts.unbind_card(card.id).user_id is None
    with pytest.raises(StateError, match="lost"):
        accounts.bind_card(card.id, other.id)
    accounts.delete_card(card.id)
    with pytest.raises(NotFound):
        accounts.get_card(card.id)
    # a card binds only to an active user of its own tenant
    foreign = accounts.create_user("t2", "13800000032")
    spare = accounts.issue_card("t1", "C0FFEE02")
    with pytest.raises(NotFound):
        accounts.bind_card(spare.id, foreign.id)
    accounts.update_user(other.id, status="disabled")
    with pytest.raises(StateError):
        accounts.bind_card(spare.id, other.id)
    assert [c.id for c in accounts.list_cards(tenant_id="t1", status="active")] == [spare.id]


def test_vehicles(accounts: AccountService) -> None:
    user = accounts.create_user("t1", "13800000033")
    car = accounts.add_vehicle(user.id, plate="苏A D12345", vin="lsvau2180n2123456",
                               is_default=True)
    assert (car.plate, car.vin, car.verified) == ("苏AD12345", "LSVAU2180N2123456", False)
    with pytest.raises(InvalidInput):
        accounts.add_vehicle(user.id)
    with pytest.raises(Conflict):
        accounts.add_vehicle(user.id, vin="LSVAU2180N2123456")
    second = accounts.add_vehicle(user.id, plate="苏B00001", is_default=True)
    assert not accounts.get_vehicle(car.id).is_default and second.is_default
    assert accounts.verify_vehicle(car.id).verified
    with pytest.raises(StateError):
        accounts.verify_vehicle(second.id)  # no VIN, no EMAID
    moved = accounts.update_vehicle(car.id, vin="LSVAU2180N2123457")
    assert not moved.verified  # a new VIN must be verified again
    assert accounts.update_vehicle(car.id, plate=None).plate is None
    with pytest.raises(InvalidInput):
        accounts.update_vehicle(second.id, plate=None)  # nothing left to identify it
    assert [v.id for v in accounts.list_vehicles(user_id=user.id, verified=False)] == \
        [second.id, car.id]
    accounts.delete_vehicle(second.id)
    with pytest.raises(NotFound):
        accounts.get_vehicle(second.id)


def test_resolve_by_card_vin_app_and_emaid(accounts: AccountService) -> None:
    user = accounts.create_user("t1", "13800000034")
    accounts.credit(user.id, "12.34", key="c")
    card = accounts.issue_card("t1", "D14B0A54", "3001", user_id=user.id)
    car = accounts.add_vehicle(user.id, vin="LSVAU2180N2123456", emaid="DE8ACC123456789")

    by_physical = accounts.resolve_id_tag("t1", "00000000D14B0A54", "card")
    by_logical = accounts.resolve_id_tag("t1", "3001", IdType.CARD)
    assert by_physical is not None and by_logical is not None
    assert by_physical.card_id == by_logical.card_id == card.id
    assert by_physical.user_id == user.id and str(by_physical.balance) == "12.34"

    by_vin = accounts.resolve_id_tag("t1", "LSVAU2180N2123456", "vin")
    assert by_vin is not None and by_vin.vehicle_id == car.id and by_vin.vehicle_verified is False
    assert by_vin.logical_card == card.logical_no  # the card an app/VIN session binds to
    assert accounts.resolve_id_tag("t1", "DE8ACC123456789", "emaid") is None  # not verified
    accounts.verify_vehicle(car.id)
    by_emaid = accounts.resolve_id_tag("t1", "DE-8AC-C12345678-9", "emaid")
    assert by_emaid is not None and by_emaid.user_id == user.id

    by_app = accounts.resolve_id_tag("t1", user.app_token, "app")
    assert by_app is not None and by_app.user_id == user.id and by_app.via is IdType.APP
    assert accounts.resolve_id_tag("t2", user.app_token, "app") is None  # other tenant

    # OCPP sends idType unknown: whichever matches
    assert accounts.resolve_id_tag("t1", "D14B0A54", "unknown").via is IdType.CARD  # type: ignore[union-attr]
    assert accounts.resolve_id_tag("t1", user.app_token, "unknown").via is IdType.APP  # type: ignore[union-attr]
    assert accounts.resolve_id_tag("t1", "LSVAU2180N2123456", "unknown").via is IdType.VIN  # type: ignore[union-attr]
    for tag, kind in (("FFFF", "card"), ("nope", "app"), ("", "card"), ("x" * 65, "unknown"),
                      ("D14B0A54", "local"), ("D14B0A54", "vin")):
        assert accounts.resolve_id_tag("t1", tag, kind) is None
    with pytest.raises(InvalidInput):
        accounts.resolve_id_tag("t1", "D14B0A54", "telepathy")


def test_app_and_card_of_one_user_interoperate(accounts: AccountService) -> None:
    """An app start may be stopped with the same user's card and the reverse (seed 3.1.2.6)."""
    alice = accounts.create_user("t1", "13800000035")
    bob = accounts.create_user("t1", "13800000036")
    alice_card = accounts.issue_card("t1", "A11CE", user_id=alice.id)
    bob_card = accounts.issue_card("t1", "B0B", user_id=bob.id)
    loose = accounts.issue_card("t1", "F00D")
    assert accounts.same_owner("t1", alice.app_token, "app", alice_card.physical_no, "card")
    assert accounts.same_owner("t1", alice_card.logical_no, "card", alice.app_token, "app")
    assert not accounts.same_owner("t1", alice.app_token, "app", bob_card.physical_no, "card")
    assert not accounts.same_owner("t1", "F00D", "card", "F00D", "card")  # unbound: nobody's
    assert not accounts.same_owner("t1", "nope", "card", "nope", "card")
    assert loose.user_id is None


def test_changes_that_alter_offline_lists_are_announced(accounts: AccountService) -> None:
    seen: list[tuple[str, str]] = []
    accounts.add_listener(lambda tenant, what: seen.append((tenant, what)))

    def broken(tenant: str, what: str) -> None:
        raise RuntimeError("listener bug")

    accounts.add_listener(broken)  # logged, never undoes the change
    user = accounts.create_user("t1", "13800000037")
    assert seen == []  # a new user has nothing in any list yet
    card = accounts.issue_card("t1", "CAFE", user_id=user.id)
    accounts.freeze_card(card.id)
    with pytest.raises(StateError):
        accounts.bind_card(card.id, accounts.create_user("t1", "13800000038").id)
    car = accounts.add_vehicle(user.id, vin="LSVAU2180N2123456")
    accounts.verify_vehicle(car.id)
    accounts.update_user(user.id, name="renamed")  # not a state change
    accounts.update_user(user.id, status="disabled")
    assert seen == [("t1", "card"), ("t1", "card"), ("t1", "vehicle"), ("t1", "vehicle"),
                    ("t1", "user")]
    assert accounts.get_card(card.id).status == "frozen"
