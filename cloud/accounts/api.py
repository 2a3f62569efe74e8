"""HTTP API of customers, wallets, cards and vehicles (``router``, mounted under /api/v1).

Scopes (:mod:`cloud.auth.principal`): users:read/write, wallets:read/write, cards:read/write,
vehicles:read/write. Every query is restricted to the caller's visible tenants; a row of
another tenant answers 404. The service is ``request.app.state.accounts``
(:class:`~cloud.accounts.service.AccountService`). Routes are sync: FastAPI runs them in its
thread pool, where the blocking SQL belongs. Money travels as decimal strings.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from cloud.accounts.http import AccountsRoute, MoneyIn, MoneyOut, idempotency_key
from cloud.accounts.models import Card, LedgerEntry, User, Vehicle, Wallet
from cloud.accounts.service import AccountService
from cloud.auth.principal import Principal, require

router = APIRouter(prefix="/api/v1", route_class=AccountsRoute)


def get_accounts(request: Request) -> AccountService:
    """The AccountService of the app (503 when the app has none)."""
    service: AccountService | None = getattr(request.app.state, "accounts", None)
    if service is None:
        raise HTTPException(status_code=503, detail="accounts are not configured")
    return service


Accounts = Annotated[AccountService, Depends(get_accounts)]
UsersRead = Annotated[Principal, Depends(require("users:read"))]
UsersWrite = Annotated[Principal, Depends(require("users:write"))]
WalletsRead = Annotated[Principal, Depends(require("wallets:read"))]
WalletsWrite = Annotated[Principal, Depends(require("wallets:write"))]
CardsRead = Annotated[Principal, Depends(require("cards:read"))]
CardsWrite = Annotated[Principal, Depends(require("cards:write"))]
VehiclesRead = Annotated[Principal, Depends(require("vehicles:read"))]
VehiclesWrite = Annotated[Principal, Depends(require("vehicles:write"))]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _tenant_for(principal: Principal, tenant_id: str | None) -> str:
    tenant = tenant_id or principal.tenant_id
    if not principal.sees(tenant):
        raise HTTPException(status_code=403, detail=f"tenant {tenant} is not yours")
    return tenant


# -- users -------------------------------------------------------------------------------


class UserIn(_In):
    """A new customer."""

    phone: str = Field(max_length=40)
    name: str = Field(default="", max_length=100)
    tenant_id: str | None = Field(default=None, max_length=64)


class UserPatch(_In):
    """Changes to a customer (omitted: unchanged)."""

    phone: str | None = Field(default=None, max_length=40)
    name: str | None = Field(default=None, max_length=100)
    status: str | None = None


class UserOut(BaseModel):
    """A customer."""

    id: str
    tenant_id: str
    phone: str
    name: str
    status: str
    created_ms: int
    updated_ms: int

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(id=user.id, tenant_id=user.tenant_id, phone=user.phone, name=user.name,
                   status=user.status, created_ms=user.created_ms, updated_ms=user.updated_ms)


class Page(BaseModel):
    """A page of rows."""

    items: list[Any]
    count: int


@router.get("/users", tags=["users"])
def list_users(principal: UsersRead, accounts: Accounts,
               phone: Annotated[str | None, Query(max_length=40)] = None,
               q: Annotated[str | None, Query(max_length=100)] = None,
               status: str | None = None,
               tenant_id: Annotated[str | None, Query(max_length=64)] = None,
               limit: Limit = 50, offset: Offset = 0) -> Page:
    """Customers, newest first; ``phone`` matches a prefix, ``q`` part of name or phone."""
    users = accounts.list_users(visible=principal.tenant_clause, tenant_id=tenant_id,
                                phone=phone, q=q, status=status, limit=limit, offset=offset)
    return Page(items=[UserOut.of(u) for u in users], count=len(users))


@router.post("/users", status_code=201, tags=["users"])
def create_user(body: UserIn, principal: UsersWrite, accounts: Accounts) -> UserOut:
    """Register a customer (with an empty wallet)."""
    return UserOut.of(accounts.create_user(_tenant_for(principal, body.tenant_id), body.phone,
                                           body.name))


@router.get("/users/{user_id}", tags=["users"])
def get_user(user_id: str, principal: UsersRead, accounts: Accounts) -> UserOut:
    """One customer."""
    return UserOut.of(accounts.get_user(user_id, visible=principal.tenant_clause))


@router.patch("/users/{user_id}", tags=["users"])
def update_user(user_id: str, body: UserPatch, principal: UsersWrite,
                accounts: Accounts) -> UserOut:
    """Change phone, name or status (active, disabled, closed)."""
    return UserOut.of(accounts.update_user(user_id, name=body.name, phone=body.phone,
                                           status=body.status,
                                           visible=principal.tenant_clause))


@router.delete("/users/{user_id}", tags=["users"])
def close_user(user_id: str, principal: UsersWrite, accounts: Accounts) -> UserOut:
    """Close a customer (the wallet must be empty; history is kept)."""
    return UserOut.of(accounts.close_user(user_id, visible=principal.tenant_clause))


@router.post("/users/{user_id}/app-token", tags=["users"])
def rotate_app_token(user_id: str, principal: UsersWrite,
                     accounts: Accounts) -> dict[str, str]:
    """Issue a new app token (the id the app presents for starts); the old one stops working."""
    user = accounts.rotate_app_token(user_id, visible=principal.tenant_clause)
    return {"user_id": user.id, "app_token": user.app_token}


# -- wallets -----------------------------------------------------------------------------


class EntryOut(BaseModel):
    """A ledger entry (``amount`` signed: debits negative)."""

    seq: int
    kind: str
    amount: MoneyOut
    balance_after: MoneyOut
    ref: str | None
    note: str | None
    key: str
    ts_ms: int

    @classmethod
    def of(cls, entry: LedgerEntry) -> EntryOut:
        return cls(seq=entry.seq, kind=entry.kind, amount=entry.amount,
                   balance_after=entry.balance_after, ref=entry.ref, note=entry.note,
                   key=entry.idempotency_key, ts_ms=entry.ts_ms)


class WalletOut(BaseModel):
    """A wallet with a page of its ledger (newest first)."""

    id: str
    user_id: str
    tenant_id: str
    currency: str
    balance: MoneyOut
    overdraft_limit: MoneyOut
    version: int
    entries: list[EntryOut]
    next_before_seq: int | None

    @classmethod
    def of(cls, wallet: Wallet, entries: list[LedgerEntry], limit: int) -> WalletOut:
        more = len(entries) == limit and entries[-1].seq > 1
        return cls(id=wallet.id, user_id=wallet.user_id, tenant_id=wallet.tenant_id,
                   currency=wallet.currency, balance=wallet.balance,
                   overdraft_limit=wallet.overdraft_limit, version=wallet.version,
                   entries=[EntryOut.of(e) for e in entries],
                   next_before_seq=entries[-1].seq if more else None)


class AdjustIn(_In):
    """A finance correction: signed amount and why."""

    amount: MoneyIn
    note: str = Field(min_length=1, max_length=256)
    ref: str | None = Field(default=None, max_length=128)


class AdjustOut(BaseModel):
    """The adjustment's ledger entry and the balance after it."""

    entry: EntryOut
    balance: MoneyOut


class OverdraftIn(_In):
    """A wallet's overdraft limit."""

    limit: MoneyIn


@router.get("/users/{user_id}/wallet", tags=["wallets"])
def get_wallet(user_id: str, principal: WalletsRead, accounts: Accounts,
               limit: Annotated[int, Query(ge=1, le=500)] = 50,
               before_seq: Annotated[int | None, Query(ge=1)] = None) -> WalletOut:
    """Balance and a page of the ledger; the next page: ``before_seq=next_before_seq``."""
    wallet = accounts.wallet(user_id, visible=principal.tenant_clause)
    entries = accounts.ledger(wallet.id, limit=limit, before_seq=before_seq)
    return WalletOut.of(wallet, entries, limit)


@router.post("/users/{user_id}/wallet/adjust", tags=["wallets"])
def adjust_wallet(user_id: str, body: AdjustIn, principal: WalletsWrite, accounts: Accounts,
                  key: Annotated[str, Depends(idempotency_key)]) -> AdjustOut:
    """A finance adjustment, idempotent by the ``Idempotency-Key`` header (per user)."""
    wallet = accounts.wallet(user_id, visible=principal.tenant_clause)
    entry = accounts.adjust(wallet.id, body.amount, key=f"adjust:{wallet.user_id}:{key}",
                            ref=body.ref, note=f"{body.note} (by {principal.subject})"[:256])
    return AdjustOut(entry=EntryOut.of(entry), balance=accounts.balance(wallet.id))


@router.put("/users/{user_id}/wallet/overdraft", tags=["wallets"])
def set_overdraft(user_id: str, body: OverdraftIn, principal: WalletsWrite,
                  accounts: Accounts) -> WalletOut:
    """Set how far below zero the wallet may go (0: never)."""
    wallet = accounts.set_overdraft(user_id, body.limit, visible=principal.tenant_clause)
    return WalletOut.of(wallet, [], 1)


# -- cards -------------------------------------------------------------------------------


class CardIn(_In):
    """A new card."""

    physical_no: str = Field(max_length=20)
    logical_no: str | None = Field(default=None, max_length=20)
    user_id: str | None = Field(default=None, max_length=40)
    tenant_id: str | None = Field(default=None, max_length=64)


class BindIn(_In):
    """Whom to bind a card to."""

    user_id: str = Field(max_length=40)


class CardOut(BaseModel):
    """A card."""

    id: str
    tenant_id: str
    physical_no: str
    logical_no: str
    id_tag: str
    user_id: str | None
    status: str
    created_ms: int
    updated_ms: int

    @classmethod
    def of(cls, card: Card) -> CardOut:
        return cls(id=card.id, tenant_id=card.tenant_id, physical_no=card.physical_no,
                   logical_no=card.logical_no, id_tag=card.id_tag, user_id=card.user_id,
                   status=card.status, created_ms=card.created_ms, updated_ms=card.updated_ms)


@router.get("/cards", tags=["cards"])
def list_cards(principal: CardsRead, accounts: Accounts,
               user_id: Annotated[str | None, Query(max_length=40)] = None,
               status: str | None = None,
               number: Annotated[str | None, Query(max_length=20)] = None,
               tenant_id: Annotated[str | None, Query(max_length=64)] = None,
               limit: Limit = 50, offset: Offset = 0) -> Page:
    """Cards, newest first (``number``: physical or logical)."""
    cards = accounts.list_cards(visible=principal.tenant_clause, tenant_id=tenant_id,
                                user_id=user_id, status=status, number=number, limit=limit,
                                offset=offset)
    return Page(items=[CardOut.of(c) for c in cards], count=len(cards))


@router.post("/cards", status_code=201, tags=["cards"])
def issue_card(body: CardIn, principal: CardsWrite, accounts: Accounts) -> CardOut:
    """Register a card, optionally bound to a customer."""
    tenant = _tenant_for(principal, body.tenant_id)
    return CardOut.of(accounts.issue_card(tenant, body.physical_no, body.logical_no,
                                          user_id=body.user_id))


@router.get("/cards/{card_id}", tags=["cards"])
def get_card(card_id: str, principal: CardsRead, accounts: Accounts) -> CardOut:
    """One card."""
    return CardOut.of(accounts.get_card(card_id, visible=principal.tenant_clause))


@router.delete("/cards/{card_id}", status_code=204, tags=["cards"])
def delete_card(card_id: str, principal: CardsWrite, accounts: Accounts) -> None:
    """Delete an unbound card."""
    accounts.delete_card(card_id, visible=principal.tenant_clause)


@router.post("/cards/{card_id}/bind", tags=["cards"])
def bind_card(card_id: str, body: BindIn, principal: CardsWrite,
              accounts: Accounts) -> CardOut:
    """Bind the card to a customer."""
    return CardOut.of(accounts.bind_card(card_id, body.user_id,
                                         visible=principal.tenant_clause))


@router.post("/cards/{card_id}/unbind", tags=["cards"])
def unbind_card(card_id: str, principal: CardsWrite, accounts: Accounts) -> CardOut:
    """Detach the card from its customer."""
    return CardOut.of(accounts.unbind_card(card_id, visible=principal.tenant_clause))


@router.post("/cards/{card_id}/freeze", tags=["cards"])
def freeze_card(card_id: str, principal: CardsWrite, accounts: Accounts) -> CardOut:
    """Freeze the card."""
    return CardOut.of(accounts.freeze_card(card_id, visible=principal.tenant_clause))


@router.post("/cards/{card_id}/unfreeze", tags=["cards"])
def unfreeze_card(card_id: str, principal: CardsWrite, accounts: Accounts) -> CardOut:
    """Make a frozen card active again."""
    return CardOut.of(accounts.unfreeze_card(card_id, visible=principal.tenant_clause))


@router.post("/cards/{card_id}/lost", tags=["cards"])
def report_lost(card_id: str, principal: CardsWrite, accounts: Accounts) -> CardOut:
    """Report the card lost (final)."""
    return CardOut.of(accounts.report_lost(card_id, visible=principal.tenant_clause))


# -- vehicles ----------------------------------------------------------------------------


class VehicleIn(_In):
    """A new vehicle."""

    user_id: str = Field(max_length=40)
    plate: str | None = Field(default=None, max_length=20)
    vin: str | None = Field(default=None, max_length=20)
    emaid: str | None = Field(default=None, max_length=24)
    is_default: bool = False


class VehiclePatch(_In):
    """Changes to a vehicle (omitted: unchanged; null: cleared)."""

    plate: str | None = Field(default=None, max_length=20)
    vin: str | None = Field(default=None, max_length=20)
    emaid: str | None = Field(default=None, max_length=24)
    is_default: bool | None = None


class VerifyIn(_In):
    """Verified or not."""

    verified: bool = True


class VehicleOut(BaseModel):
    """A vehicle."""

    id: str
    tenant_id: str
    user_id: str
    plate: str | None
    vin: str | None
    emaid: str | None
    verified: bool
    verified_ms: int | None
    is_default: bool
    created_ms: int
    updated_ms: int

    @classmethod
    def of(cls, v: Vehicle) -> VehicleOut:
        return cls(id=v.id, tenant_id=v.tenant_id, user_id=v.user_id, plate=v.plate, vin=v.vin,
                   emaid=v.emaid, verified=v.verified, verified_ms=v.verified_ms,
                   is_default=v.is_default, created_ms=v.created_ms, updated_ms=v.updated_ms)


@router.get("/vehicles", tags=["vehicles"])
def list_vehicles(principal: VehiclesRead, accounts: Accounts,
                  user_id: Annotated[str | None, Query(max_length=40)] = None,
                  vin: Annotated[str | None, Query(max_length=20)] = None,
                  plate: Annotated[str | None, Query(max_length=20)] = None,
                  verified: bool | None = None,
                  tenant_id: Annotated[str | None, Query(max_length=64)] = None,
                  limit: Limit = 50, offset: Offset = 0) -> Page:
    """Vehicles, newest first."""
    rows = accounts.list_vehicles(visible=principal.tenant_clause, tenant_id=tenant_id,
                                  user_id=user_id, vin=vin, plate=plate, verified=verified,
                                  limit=limit, offset=offset)
    return Page(items=[VehicleOut.of(v) for v in rows], count=len(rows))


@router.post("/vehicles", status_code=201, tags=["vehicles"])
def add_vehicle(body: VehicleIn, principal: VehiclesWrite, accounts: Accounts) -> VehicleOut:
    """Register a customer's vehicle (unverified)."""
    return VehicleOut.of(accounts.add_vehicle(body.user_id, plate=body.plate, vin=body.vin,
                                              emaid=body.emaid, is_default=body.is_default,
                                              visible=principal.tenant_clause))


@router.get("/vehicles/{vehicle_id}", tags=["vehicles"])
def get_vehicle(vehicle_id: str, principal: VehiclesRead, accounts: Accounts) -> VehicleOut:
    """One vehicle."""
    return VehicleOut.of(accounts.get_vehicle(vehicle_id, visible=principal.tenant_clause))


@router.patch("/vehicles/{vehicle_id}", tags=["vehicles"])
def update_vehicle(vehicle_id: str, body: VehiclePatch, principal: VehiclesWrite,
                   accounts: Accounts) -> VehicleOut:
    """Change plate, VIN, EMAID or the default flag (a new VIN/EMAID is unverified)."""
    given: dict[str, Any] = {k: getattr(body, k) for k in body.model_fields_set
                             if k in ("plate", "vin", "emaid")}
    return VehicleOut.of(accounts.update_vehicle(vehicle_id, is_default=body.is_default,
                                                 visible=principal.tenant_clause, **given))


@router.delete("/vehicles/{vehicle_id}", status_code=204, tags=["vehicles"])
def delete_vehicle(vehicle_id: str, principal: VehiclesWrite, accounts: Accounts) -> None:
    """Remove a vehicle."""
    accounts.delete_vehicle(vehicle_id, visible=principal.tenant_clause)


@router.post("/vehicles/{vehicle_id}/verify", tags=["vehicles"])
def verify_vehicle(vehicle_id: str, body: VerifyIn, principal: VehiclesWrite,
                   accounts: Accounts) -> VehicleOut:
    """Mark the vehicle verified (VIN/EMAID starts then work) or not."""
    return VehicleOut.of(accounts.verify_vehicle(vehicle_id, body.verified,
                                                 visible=principal.tenant_clause))
