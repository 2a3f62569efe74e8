"""A payment provider simulator with WeChat Pay v2's shape, for the demo and the tests.

It keeps its trades in memory. :meth:`SimulatedProvider.pay` plays the payer scanning the QR
code and returns the notify the provider would POST to the platform: a form-encoded body of
WeChat Pay's notify fields, signed with HMAC-SHA256 over the sorted fields and the merchant
API key (:mod:`cloud.payments.signing`), so the platform verifies it exactly as it would verify
a real one. Every delivery carries a fresh ``nonce_str`` and so a different signature, like a
real provider's redeliveries.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import parse_qsl, urlencode

from cloud.accounts.money import fen, from_fen
from cloud.payments import signing
from cloud.payments.config import SimulatedProviderConfig
from cloud.payments.errors import (
    NotifyRefused,
    ProviderError,
    ProviderRejected,
    SignatureError,
)
from cloud.payments.provider import (
    NotifyAck,
    OrderRequest,
    PaymentNotice,
    ProviderOrder,
    ProviderRefund,
    RefundRequest,
    TradeState,
)
from thingmodels.ids import new_id, now_ms

_CST = timezone(timedelta(hours=8))  # WeChat's time_end is Beijing time
FORM = "application/x-www-form-urlencoded"


@dataclass
class SimTrade:
    """A trade held by the simulator."""

    request: OrderRequest
    prepay_id: str
    state: TradeState = TradeState.NOTPAY
    transaction_id: str | None = None
    paid_ms: int | None = None
    refunds: dict[str, ProviderRefund] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SignedNotify:
    """A notify as the provider would POST it."""

    headers: dict[str, str]
    body: bytes


class SimulatedProvider:
    """In-memory WeChat-Pay-shaped provider (thread-safe)."""

    def __init__(self, name: str, config: SimulatedProviderConfig) -> None:
        self.name = name
        self.config = config
        self.trades: dict[str, SimTrade] = {}
        #: refuse refunds for good (tests of the revert path)
        self.reject_refunds = False
        #: fail the next N calls of any kind as if unreachable
        self.fail_next = 0
        self._lock = threading.Lock()

    @property
    def _key(self) -> str:
        return self.config.api_key.get_secret_value()

    def _maybe_fail(self) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise ProviderError(f"{self.name}: simulated outage")

    # -- the provider contract -------------------------------------------------------------

    def create_order(self, request: OrderRequest) -> ProviderOrder:
        with self._lock:
            self._maybe_fail()
            trade = self.trades.get(request.out_trade_no)
            if trade is not None:
                if trade.request.amount != request.amount:
                    raise ProviderRejected(f"{self.name}: out_trade_no {request.out_trade_no} "
                                           "exists with another amount (INVALID_REQUEST)")
            else:
                trade = self.trades[request.out_trade_no] = SimTrade(
                    request=request, prepay_id=f"wx{new_id().lower()}")
            return ProviderOrder(prepay_id=trade.prepay_id,
                                 code_url=self.config.qr_prefix + trade.prepay_id)

    def parse_notify(self, headers: Mapping[str, str], body: bytes) -> PaymentNotice:
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True,
                              strict_parsing=True, max_num_fields=100)
        except (UnicodeDecodeError, ValueError) as exc:
            raise NotifyRefused(f"{self.name}: notify body is not a form: {exc}") from None
        params = dict(pairs)
        if len(params) != len(pairs):
            raise NotifyRefused(f"{self.name}: a notify field appears twice")
        if not signing.verify(params, self._key):
            raise SignatureError(f"{self.name}: notify signature does not verify")
        if params.get("appid") != self.config.app_id or \
                params.get("mch_id") != self.config.mch_id:
            raise NotifyRefused(f"{self.name}: notify for another merchant")
        if params.get("return_code") != "SUCCESS":
            raise NotifyRefused(f"{self.name}: return_code {params.get('return_code')}")
        try:
            total = int(params["total_fee"])
            out_trade_no = params["out_trade_no"]
        except (KeyError, ValueError) as exc:
            raise NotifyRefused(f"{self.name}: notify field missing or bad: {exc}") from None
        state = TradeState.SUCCESS if params.get("result_code") == "SUCCESS" \
            else TradeState.PAYERROR
        paid_ms = None
        if "time_end" in params:
            try:
                paid_ms = int(datetime.strptime(params["time_end"], "%Y%m%d%H%M%S")
                              .replace(tzinfo=_CST).timestamp() * 1000)
            except ValueError:
                raise NotifyRefused(f"{self.name}: bad time_end") from None
        return PaymentNotice(out_trade_no=out_trade_no, state=state, amount=from_fen(total),
                             currency=params.get("fee_type", "CNY"),
                             transaction_id=params.get("transaction_id"), paid_ms=paid_ms,
                             raw=params)

    def ack(self, ok: bool, message: str = "") -> NotifyAck:
        code = "SUCCESS" if ok else "FAIL"
        text = (message or ("OK" if ok else "refused")).replace("]]>", "")
        body = (f"<xml><return_code><![CDATA[{code}]]></return_code>"
                f"<return_msg><![CDATA[{text}]]></return_msg></xml>").encode()
        return NotifyAck(status=200, body=body, media_type="application/xml")

    def query(self, out_trade_no: str) -> PaymentNotice:
        with self._lock:
            self._maybe_fail()
            trade = self.trades.get(out_trade_no)
            if trade is None:
                raise ProviderRejected(f"{self.name}: ORDERNOTEXIST {out_trade_no}")
            return PaymentNotice(out_trade_no=out_trade_no, state=trade.state,
                                 amount=trade.request.amount, currency=trade.request.currency,
                                 transaction_id=trade.transaction_id, paid_ms=trade.paid_ms)

    def refund(self, request: RefundRequest) -> ProviderRefund:
        with self._lock:
            self._maybe_fail()
            trade = self.trades.get(request.out_trade_no)
            if trade is None or trade.state not in (TradeState.SUCCESS, TradeState.REFUND):
                raise ProviderRejected(f"{self.name}: trade {request.out_trade_no} not paid")
            done = trade.refunds.get(request.out_refund_no)
            if done is not None:
                return done
            if self.reject_refunds:
                raise ProviderRejected(f"{self.name}: refund refused (simulated)")
            refunded = sum((r.amount for r in trade.refunds.values()), Decimal(0))
            if request.total != trade.request.amount or \
                    refunded + request.amount > trade.request.amount:
                raise ProviderRejected(f"{self.name}: refund beyond the paid amount")
            result = ProviderRefund(refund_id=f"50{secrets.randbelow(10**26):026d}",
                                    out_refund_no=request.out_refund_no, amount=request.amount)
            trade.refunds[request.out_refund_no] = result
            trade.state = TradeState.REFUND
            return result

    # -- the payer's side (simulation) -----------------------------------------------------

    def pay(self, out_trade_no: str, *, amount: Decimal | None = None) -> SignedNotify:
        """The payer pays the trade; returns the notify the provider sends. ``amount``
        fakes a notify for another amount (a tampered or buggy notify)."""
        with self._lock:
            trade = self.trades.get(out_trade_no)
            if trade is None:
                raise ProviderRejected(f"{self.name}: ORDERNOTEXIST {out_trade_no}")
            if trade.state is TradeState.NOTPAY:
                trade.state = TradeState.SUCCESS
                trade.transaction_id = f"42{secrets.randbelow(10**26):026d}"
                trade.paid_ms = now_ms()
        return self.notify(out_trade_no, amount=amount)

    def notify(self, out_trade_no: str, *, amount: Decimal | None = None,
               key: str | None = None) -> SignedNotify:
        """The notify for the trade's current state (a redelivery: fresh nonce and
        signature). ``key`` signs with another key (a forged notify)."""
        with self._lock:
            trade = self.trades[out_trade_no]
            paid = trade.state in (TradeState.SUCCESS, TradeState.REFUND)
            params = {
                "appid": self.config.app_id, "mch_id": self.config.mch_id,
                "nonce_str": secrets.token_hex(16), "sign_type": signing.SIGN_TYPE,
                "return_code": "SUCCESS", "result_code": "SUCCESS" if paid else "FAIL",
                "out_trade_no": out_trade_no,
                "total_fee": str(fen(amount if amount is not None else trade.request.amount)),
                "fee_type": trade.request.currency, "trade_type": "NATIVE",
                "transaction_id": trade.transaction_id or "",
                "time_end": datetime.fromtimestamp((trade.paid_ms or now_ms()) / 1000, UTC)
                .astimezone(_CST).strftime("%Y%m%d%H%M%S"),
                "openid": "oSim" + out_trade_no[-12:],
            }
        params["sign"] = signing.sign(params, key if key is not None else self._key)
        return SignedNotify(headers={"content-type": FORM}, body=urlencode(params).encode())
