"""The accounts tables (prefix ``acct_``, in the global SQLModel metadata).

Ids are prefixed ULIDs (``usr_…``, ``wal_…``, ``crd_…``, ``veh_…``) so an id says what it
names and a wallet operation can take a user id or a wallet id. Every table carries an indexed
``tenant_id``; the tenant of a wallet, card or vehicle is always its user's tenant.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from sqlalchemy import BigInteger, Column, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

from cloud.accounts.money import ZERO, Money
from thingmodels.ids import new_id


def make_id(prefix: str) -> str:
    """A new prefixed id, e.g. ``usr_01J…``."""
    return f"{prefix}_{new_id()}"


class UserStatus(StrEnum):
    """A customer's status."""

    ACTIVE = "active"
    DISABLED = "disabled"  # blocked by the operator: no start, no top-up
    CLOSED = "closed"  # closed with a zero balance; history kept


class CardStatus(StrEnum):
    """A card's status. ``lost`` is final: a found card is issued again under a new record."""

    ACTIVE = "active"
    FROZEN = "frozen"
    LOST = "lost"


class LedgerKind(StrEnum):
    """What moved money in a wallet."""

    TOPUP = "topup"  # paid in (payment provider)
    DEBIT = "debit"  # paid out (a settled order, a refund to the payment provider)
    REFUND = "refund"  # money of a debit given back (order refund)
    ADJUST = "adjust"  # finance correction, either sign


class User(SQLModel, table=True):
    """A customer (driver)."""

    __tablename__ = "acct_users"
    __table_args__ = (
        UniqueConstraint("tenant_id", "phone", name="uq_acct_users_tenant_phone"),
        UniqueConstraint("app_token", name="uq_acct_users_app_token"),
    )

    id: str = Field(primary_key=True, max_length=40)
    tenant_id: str = Field(index=True, max_length=64)
    phone: str = Field(max_length=21)
    name: str = Field(default="", max_length=100)
    status: str = Field(default=UserStatus.ACTIVE.value, max_length=16)
    #: the id token the app presents for a start (``idType: app``); 16 hex, rotatable
    app_token: str = Field(max_length=32)
    created_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_ms: int = Field(sa_column=Column(BigInteger, nullable=False))


class Wallet(SQLModel, table=True):
    """A user's stored value in one currency.

    ``version`` counts the ledger entries: entry ``seq`` n is the change that took the wallet
    from version n-1 to n, so ``version == number of entries`` always holds.
    """

    __tablename__ = "acct_wallets"
    __table_args__ = (UniqueConstraint("user_id", "currency", name="uq_acct_wallets_user_cur"),)

    id: str = Field(primary_key=True, max_length=40)
    tenant_id: str = Field(index=True, max_length=64)
    user_id: str = Field(foreign_key="acct_users.id", index=True, max_length=40)
    currency: str = Field(default="CNY", max_length=3)
    balance: Decimal = Field(default=ZERO, sa_type=Money, nullable=False)
    #: how far below zero a debit may take the balance (0: never negative)
    overdraft_limit: Decimal = Field(default=ZERO, sa_type=Money, nullable=False)
    version: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    updated_ms: int = Field(sa_column=Column(BigInteger, nullable=False))


class LedgerEntry(SQLModel, table=True):
    """One change of a wallet's balance; entries are never updated or deleted.

    ``amount`` is signed (debits negative), so ``sum(amount) == wallet.balance`` and
    ``balance_after`` of entry n equals ``sum(amount)`` of entries 1..n.
    """

    __tablename__ = "acct_ledger"
    __table_args__ = (
        UniqueConstraint("wallet_id", "seq", name="uq_acct_ledger_wallet_seq"),
        UniqueConstraint("idempotency_key", name="uq_acct_ledger_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(index=True, max_length=64)
    wallet_id: str = Field(foreign_key="acct_wallets.id", index=True, max_length=40)
    seq: int
    kind: str = Field(max_length=8)
    amount: Decimal = Field(sa_type=Money, nullable=False)
    balance_after: Decimal = Field(sa_type=Money, nullable=False)
    idempotency_key: str = Field(max_length=128)
    ref: str | None = Field(default=None, index=True, max_length=128)
    note: str | None = Field(default=None, max_length=256)
    ts_ms: int = Field(sa_column=Column(BigInteger, nullable=False))


class Card(SQLModel, table=True):
    """An IC card. ``physical_no`` is the chip number (16 hex), ``logical_no`` the printed one."""

    __tablename__ = "acct_cards"
    __table_args__ = (
        UniqueConstraint("tenant_id", "physical_no", name="uq_acct_cards_physical"),
        UniqueConstraint("tenant_id", "logical_no", name="uq_acct_cards_logical"),
    )

    id: str = Field(primary_key=True, max_length=40)
    tenant_id: str = Field(index=True, max_length=64)
    physical_no: str = Field(max_length=16)
    logical_no: str = Field(max_length=16)
    #: the token as an OCPP reader reports it (the issued number, upper case, unpadded)
    id_tag: str = Field(max_length=20)
    user_id: str | None = Field(default=None, foreign_key="acct_users.id", index=True,
                                max_length=40)
    status: str = Field(default=CardStatus.ACTIVE.value, max_length=8)
    created_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_ms: int = Field(sa_column=Column(BigInteger, nullable=False))


class Vehicle(SQLModel, table=True):
    """A user's vehicle; VIN and EMAID starts need ``verified``."""

    __tablename__ = "acct_vehicles"
    __table_args__ = (
        UniqueConstraint("tenant_id", "vin", name="uq_acct_vehicles_vin"),
        UniqueConstraint("tenant_id", "plate", name="uq_acct_vehicles_plate"),
        UniqueConstraint("tenant_id", "emaid", name="uq_acct_vehicles_emaid"),
    )

    id: str = Field(primary_key=True, max_length=40)
    tenant_id: str = Field(index=True, max_length=64)
    user_id: str = Field(foreign_key="acct_users.id", index=True, max_length=40)
    plate: str | None = Field(default=None, max_length=10)
    vin: str | None = Field(default=None, max_length=17)
    emaid: str | None = Field(default=None, max_length=18)
    verified: bool = False
    verified_ms: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    is_default: bool = False
    created_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_ms: int = Field(sa_column=Column(BigInteger, nullable=False))


TABLES = [User.__table__, Wallet.__table__, LedgerEntry.__table__,  # type: ignore[attr-defined]
          Card.__table__, Vehicle.__table__]  # type: ignore[attr-defined]
