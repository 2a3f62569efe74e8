"""The offline card list, decided by the edge's own code: the list goes into a real
EdgeContext as the gateway's desired document and the YKC and OCPP adapters' ``local_authorize``
(edge/adapters/ykc.py, edge/adapters/ocpp.py) answer from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cloud.accounts import AccountService
from edge.adapters.ocpp import OcppAdapter
from edge.adapters.ykc import YkcAdapter
from edge.batcher import TelemetryBatcher
from edge.config import OcppConfig, YkcConfig
from edge.context import EdgeContext
from edge.outbox import Outbox
from thingmodels import builtin_models


class Edge:
    """One gateway's context with the YKC and OCPP adapters attached."""

    def __init__(self, tmp_path: Path) -> None:
        self.outbox = Outbox(tmp_path / "outbox.db")
        self.ctx = EdgeContext("gw1", builtin_models(), self.outbox,
                               TelemetryBatcher(lambda *a: None))
        self.ykc = YkcAdapter(YkcConfig(port=0))
        self.ocpp = OcppAdapter(OcppConfig(port=0))
        self.ykc.ctx = self.ctx
        self.ocpp.ctx = self.ctx
        self.version = 0

    def push(self, cards: list[dict[str, str]]) -> None:
        self.version += 1
        assert self.ctx.set_desired("gateway", "gw1", self.version, {"cards": cards})

    def ykc_card(self, number: str) -> dict[str, Any]:
        # YKC 0x31 card start: account_or_card is BIN8 decoded as 16 upper-case hex
        return self.ykc.local_authorize(number.upper().rjust(16, "0"))

    def ykc_vin(self, vin: str) -> dict[str, Any]:
        return self.ykc.local_authorize(vin)

    def ocpp_tag(self, tag: str) -> dict[str, Any]:
        return self.ocpp.local_authorize(tag)


@pytest.fixture
def edge(tmp_path: Path) -> Any:
    e = Edge(tmp_path)
    yield e
    e.outbox.close()


def test_edge_decides_from_the_list_like_the_cloud(accounts: AccountService, edge: Edge) -> None:
    rich = accounts.create_user("t1", "13800000050")
    accounts.credit(rich.id, "30", key="c")
    poor = accounts.create_user("t1", "13800000051")
    gone = accounts.create_user("t1", "13800000052")
    good = accounts.issue_card("t1", "d14b0a54", "5001", user_id=rich.id)
    frozen = accounts.issue_card("t1", "04A2B3C4D5E6F7", "5002", user_id=rich.id)
    accounts.freeze_card(frozen.id)
    lost = accounts.issue_card("t1", "BADC0DE", "5003", user_id=poor.id)
    accounts.report_lost(lost.id)
    accounts.issue_card("t1", "E0E0", "5004", user_id=poor.id)
    accounts.issue_card("t1", "B10C", "5005", user_id=gone.id)
    accounts.update_user(gone.id, status="disabled")
    accounts.issue_card("t1", "5700C", "5006")  # unbound stock: not listed
    accounts.issue_card("t2", "D15EA5E", "5007",  # another operator's card
                        user_id=accounts.create_user("t2", "13800000053").id)
    car = accounts.add_vehicle(rich.id, vin="LSVAU2180N2123456")
    accounts.verify_vehicle(car.id)
    accounts.add_vehicle(poor.id, vin="LSVAU2180N2999999")  # unverified: not listed

    # no mode: card states only
    edge.push(accounts.offline_card_list("t1"))
    assert edge.ykc_card("D14B0A54") == {"accepted": True, "logicalCard": good.logical_no}
    assert edge.ykc_card(frozen.physical_no) == {"accepted": False, "reason": "frozen"}
    assert edge.ykc_card("BADC0DE")["reason"] == "lost"
    assert edge.ykc_card("B10C")["reason"] == "blocked"
    assert edge.ykc_card("E0E0")["accepted"] is True  # no balance rule without a mode
    assert edge.ykc_card("5700C")["accepted"] is False
    assert edge.ykc_card("D15EA5E")["accepted"] is False
    assert edge.ykc_vin("LSVAU2180N2123456") == {"accepted": True,
                                                 "logicalCard": good.logical_no}
    assert edge.ykc_vin("LSVAU2180N2999999")["accepted"] is False
    # the vehicle entry has no physical number; YKC's all-zero 'no card' must not match it
    assert edge.ykc_card("0" * 16)["accepted"] is False
    # OCPP readers report the UID as issued (unpadded) or padded: both match
    assert edge.ocpp_tag("04A2B3C4D5E6F7") == {"accepted": False, "status": "Blocked"}
    assert edge.ocpp_tag("D14B0A54")["accepted"] is True
    assert edge.ocpp_tag("00000000D14B0A54")["accepted"] is True
    assert edge.ocpp_tag("")["accepted"] is False
    assert edge.ocpp_tag("E0E0")["accepted"] is True

    # the station's mode: an entry is active exactly when the cloud would accept it now
    edge.push(accounts.offline_card_list("t1", operating_mode="offline_billing",
                                         charger_type="ac_networked", min_balance="5"))
    for number in ("D14B0A54", "04A2B3C4D5E6F7", "BADC0DE", "E0E0", "B10C"):
        online = accounts.authorize("t1", number, "card", operating_mode="offline_billing",
                                    charger_type="ac_networked", min_balance="5")
        offline = edge.ykc_card(number)
        assert offline["accepted"] is online.accepted, number
        if not online.accepted:
            assert offline["reason"] == online.reason.value
    assert edge.ykc_card("E0E0")["reason"] == "insufficient_balance"
    assert edge.ykc_vin("LSVAU2180N2123456")["accepted"] is False  # no VIN on AC

    edge.push(accounts.offline_card_list("t1", operating_mode="offline_free",
                                         charger_type="dc_networked", include_blocked=False))
    assert edge.ykc_card("E0E0")["accepted"] is True  # free: no balance needed
    assert edge.ykc_vin("LSVAU2180N2123456")["accepted"] is True
    assert edge.ykc_card("BADC0DE") == {"accepted": False, "reason": "unknown card (offline)"}


def test_entry_shape(accounts: AccountService) -> None:
    user = accounts.create_user("t1", "13800000054")
    accounts.issue_card("t1", "d14b0a54", "6001", user_id=user.id)
    assert accounts.offline_card_list("t1") == [
        {"physical": "00000000D14B0A54", "logical": "0000000000006001", "idTag": "D14B0A54",
         "status": "active"}]
    car = accounts.add_vehicle(user.id, vin="LSVAU2180N2123456", emaid="DE8ACC123456789")
    accounts.verify_vehicle(car.id)
    entries = accounts.offline_card_list(["t1", "t9"])
    assert entries[0] == {"physical": "0" * 16, "logical": "0" * 16, "idTag": "0" * 16,
                          "status": "blocked"}
    assert entries[2:] == [
        {"vin": "LSVAU2180N2123456", "idTag": "LSVAU2180N2123456",
         "logical": "0000000000006001", "status": "active"},
        {"idTag": "DE8ACC123456789", "logical": "0000000000006001", "status": "active"}]
    assert accounts.offline_card_list("t1", operating_mode="offline_billing",
                                      charger_type="dc_networked") == []
