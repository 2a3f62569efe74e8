"""AccountService: customers, wallets and their ledger, cards, vehicles, start authorisation.

Synchronous (a SQLAlchemy engine; call it from a worker thread or a sync FastAPI route).

Wallet operations (:meth:`AccountService.credit`, :meth:`~AccountService.debit`,
:meth:`~AccountService.refund`, :meth:`~AccountService.adjust`) are idempotent by ``key``: the
first call writes one ledger entry, every later call with the same key returns that entry, and
a call with the same key but another wallet, kind or amount raises
:class:`~cloud.accounts.errors.IdempotencyConflict`. No update is ever lost:

* the wallet row is locked (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite serialises writers);
* the balance is written with ``UPDATE … WHERE version = <read version>`` and the entry carries
  ``seq = version + 1`` under a unique ``(wallet_id, seq)`` constraint, so a writer that read
  a stale balance changes nothing and retries (optimistic locking, also on SQLite);
* the idempotency key is unique in the ledger, so two concurrent calls with one key write at
  most one entry; the loser retries and returns the winner's entry.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import func, or_, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, SQLModel, col, select

from cloud.accounts import idtags
from cloud.accounts.authorize import (
    METHOD_OF,
    ChargerType,
    Decision,
    OperatingMode,
    Reason,
    StartMethod,
    allowed_methods,
    charger_type,
    operating_mode,
)
from cloud.accounts.config import AccountsConfig
from cloud.accounts.errors import (
    ConcurrentUpdate,
    Conflict,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidInput,
    NotFound,
    StateError,
)
from cloud.accounts.idtags import ZERO_CARD, IdType
from cloud.accounts.models import (
    TABLES,
    Card,
    CardStatus,
    LedgerEntry,
    LedgerKind,
    User,
    UserStatus,
    Vehicle,
    Wallet,
    make_id,
)
from cloud.accounts.money import ZERO, to_money, to_positive_money
from cloud.errors import StoreError
from thingmodels.ids import now_ms

log = logging.getLogger("voltmesh.accounts")

#: a wallet by object, wallet id (``wal_…``) or user id (``usr_…``: the user's wallet)
WalletRef = str | User | Wallet
#: ``Principal.tenant_clause``: column -> WHERE clause restricting rows to visible tenants
TenantFilter = Callable[[Any], Any]
#: ``(tenant_id, what)`` after a change of cards, vehicles or user states
ChangeListener = Callable[[str, str], None]

_T = TypeVar("_T", bound=SQLModel)
_UNSET: Any = object()
_BILLING = (OperatingMode.ONLINE_BILLING, OperatingMode.OFFLINE_BILLING)


class _Stale(Exception):
    """The wallet changed between read and write (optimistic check failed)."""


@dataclass(frozen=True, slots=True)
class Account:
    """Who an id tag belongs to, and through what (``via``: card, app, vin or emaid)."""

    tenant_id: str
    via: IdType
    user_id: str | None = None
    user_status: str | None = None
    wallet_id: str | None = None
    balance: Decimal | None = None
    card_id: str | None = None
    card_status: str | None = None
    logical_card: str | None = None
    physical_card: str | None = None
    vehicle_id: str | None = None
    vehicle_verified: bool | None = None


def _text(value: str, what: str, max_length: int, *, empty: bool = False) -> str:
    text = value.strip() if isinstance(value, str) else None
    if text is None or (not text and not empty) or len(text) > max_length:
        raise InvalidInput(f"{what}: {'' if empty else '1 to '}{max_length} characters expected")
    if any(ord(c) < 32 for c in text):
        raise InvalidInput(f"{what}: control characters are not allowed")
    return text


def _key(key: str) -> str:
    return _text(key, "idempotency key", 128)


def _opt(value: str | None, what: str, max_length: int) -> str | None:
    return None if value is None else _text(value, what, max_length)


def _page(limit: int, offset: int) -> tuple[int, int]:
    if not 1 <= limit <= 1000 or offset < 0:
        raise InvalidInput("limit must be 1..1000 and offset >= 0")
    return limit, offset


def retryable(exc: OperationalError) -> bool:
    """A lock conflict worth retrying (SQLite busy/locked, PostgreSQL deadlock/serialization)."""
    state = getattr(exc.orig, "sqlstate", None)
    if state in ("40001", "40P01", "55P03"):
        return True
    text = str(exc.orig).lower()
    return "locked" in text or "busy" in text


class AccountService:
    """Customers, wallets, cards and vehicles on one SQL engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, config: AccountsConfig | None = None, *,
                 clock: Callable[[], int] = now_ms) -> None:
        self.engine = engine
        self.config = config or AccountsConfig()
        self.clock = clock
        self._listeners: list[ChangeListener] = []
        SQLModel.metadata.create_all(engine, tables=TABLES)

    def add_listener(self, listener: ChangeListener) -> None:
        """Call ``listener(tenant_id, what)`` after a committed change that alters the tenant's
        offline card lists (``what``: card, vehicle, user), e.g. to push the gateways' desired
        documents again. A failing listener is logged; the change stays committed."""
        self._listeners.append(listener)

    def _changed(self, tenant_id: str, what: str) -> None:
        for listener in self._listeners:
            try:
                listener(tenant_id, what)
            except Exception:
                log.exception("accounts change listener %r failed", listener)

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    @staticmethod
    def _one(db: Session, model: type[_T], row_id: str, what: str,
             visible: TenantFilter | None) -> _T:
        stmt = select(model).where(model.id == row_id)  # type: ignore[attr-defined]
        if visible is not None:
            stmt = stmt.where(visible(model.tenant_id))  # type: ignore[attr-defined]
        row = db.exec(stmt).first()
        if row is None:
            raise NotFound(f"{what} {row_id} not found")
        return row

    # -- users ---------------------------------------------------------------------------

    def create_user(self, tenant_id: str, phone: str, name: str = "", *,
                    status: UserStatus | str = UserStatus.ACTIVE) -> User:
        """A new customer with an empty wallet (:class:`Conflict` when the phone is taken)."""
        tenant = _text(tenant_id, "tenant_id", 64)
        number = idtags.phone(phone)
        state = self._user_status(status)
        now = self.clock()
        user = User(id=make_id("usr"), tenant_id=tenant, phone=number,
                    name=_text(name, "name", 100, empty=True), status=state.value,
                    app_token=secrets.token_hex(8).upper(), created_ms=now, updated_ms=now)
        wallet = Wallet(id=make_id("wal"), tenant_id=tenant, user_id=user.id,
                        currency=self.config.currency, balance=ZERO,
                        overdraft_limit=self.config.default_overdraft, version=0,
                        updated_ms=now)
        with self._session() as db:
            self._phone_free(db, tenant, number, None)
            db.add(user)
            db.flush()
            db.add(wallet)
            try:
                db.commit()
            except IntegrityError:
                raise Conflict(f"phone {number} is taken in tenant {tenant}") from None
        return user

    @staticmethod
    def _phone_free(db: Session, tenant: str, number: str, user_id: str | None) -> None:
        other = db.exec(select(User).where(User.tenant_id == tenant,
                                           User.phone == number)).first()
        if other is not None and other.id != user_id:
            raise Conflict(f"phone {number} belongs to user {other.id} ({other.status})")

    @staticmethod
    def _user_status(value: UserStatus | str) -> UserStatus:
        try:
            return UserStatus(value)
        except ValueError:
            raise InvalidInput(f"status {value!r} is not one of "
                               f"{[s.value for s in UserStatus]}") from None

    def get_user(self, user_id: str, *, visible: TenantFilter | None = None) -> User:
        """A user by id (:class:`NotFound` when missing or not visible)."""
        with self._session() as db:
            return self._one(db, User, user_id, "user", visible)

    def list_users(self, *, visible: TenantFilter | None = None, tenant_id: str | None = None,
                   phone: str | None = None, q: str | None = None,
                   status: UserStatus | str | None = None, limit: int = 50,
                   offset: int = 0) -> list[User]:
        """Users, newest first. ``phone`` matches a prefix of the number (digits and ``+``);
        ``q`` a part of the name or the number."""
        limit, offset = _page(limit, offset)
        stmt = select(User)
        if visible is not None:
            stmt = stmt.where(visible(User.tenant_id))
        if tenant_id is not None:
            stmt = stmt.where(User.tenant_id == tenant_id)
        if phone is not None:
            digits = "".join(c for c in phone if c.isdigit() or c == "+")
            if not digits:
                raise InvalidInput(f"phone {phone!r}: digits expected")
            stmt = stmt.where(col(User.phone).startswith(digits, autoescape=True))
        if q is not None:
            text = _text(q, "q", 100)
            stmt = stmt.where(or_(col(User.name).contains(text, autoescape=True),
                                  col(User.phone).contains(text, autoescape=True)))
        if status is not None:
            stmt = stmt.where(User.status == self._user_status(status).value)
        stmt = stmt.order_by(User.id.desc()).limit(limit).offset(offset)  # type: ignore[attr-defined]
        with self._session() as db:
            return list(db.exec(stmt))

    def update_user(self, user_id: str, *, name: str | None = None, phone: str | None = None,
                    status: UserStatus | str | None = None,
                    visible: TenantFilter | None = None) -> User:
        """Change name, phone or status. Closing needs a zero balance."""
        with self._session() as db:
            user = self._one(db, User, user_id, "user", visible)
            if name is not None:
                user.name = _text(name, "name", 100, empty=True)
            if phone is not None:
                number = idtags.phone(phone)
                self._phone_free(db, user.tenant_id, number, user.id)
                user.phone = number
            if status is not None:
                state = self._user_status(status)
                if state is UserStatus.CLOSED and user.status != UserStatus.CLOSED:
                    wallet = db.exec(select(Wallet).where(Wallet.user_id == user.id)
                                     .with_for_update()).first()
                    if wallet is not None and wallet.balance != ZERO:
                        raise StateError(f"user {user.id} has a balance of {wallet.balance}: "
                                         "refund or adjust it to zero before closing")
                user.status = state.value
            user.updated_ms = self.clock()
            db.add(user)
            try:
                db.commit()
            except IntegrityError:
                raise Conflict(f"phone {user.phone} is taken") from None
        if status is not None:
            self._changed(user.tenant_id, "user")
        return user

    def close_user(self, user_id: str, *, visible: TenantFilter | None = None) -> User:
        """Close a customer (balance must be zero; the history stays)."""
        return self.update_user(user_id, status=UserStatus.CLOSED, visible=visible)

    def rotate_app_token(self, user_id: str, *, visible: TenantFilter | None = None) -> User:
        """Give the user a new app token (the old one stops resolving)."""
        with self._session() as db:
            user = self._one(db, User, user_id, "user", visible)
            user.app_token = secrets.token_hex(8).upper()
            user.updated_ms = self.clock()
            db.add(user)
            db.commit()
            return user

    # -- wallets ---------------------------------------------------------------------------

    def _locate_wallet(self, db: Session, target: WalletRef, *, lock: bool,
                       visible: TenantFilter | None = None) -> Wallet:
        stmt = select(Wallet)
        if isinstance(target, Wallet):
            stmt = stmt.where(Wallet.id == target.id)
        elif isinstance(target, User):
            stmt = stmt.where(Wallet.user_id == target.id, Wallet.currency == self.config.currency)
        elif isinstance(target, str) and target.startswith("wal_"):
            stmt = stmt.where(Wallet.id == target)
        elif isinstance(target, str) and target.startswith("usr_"):
            stmt = stmt.where(Wallet.user_id == target, Wallet.currency == self.config.currency)
        else:
            raise InvalidInput(f"{target!r} is neither a wallet id (wal_…) nor a user id (usr_…)")
        if visible is not None:
            stmt = stmt.where(visible(Wallet.tenant_id))
        if lock:
            stmt = stmt.with_for_update()
        wallet = db.exec(stmt).first()
        if wallet is None:
            name = target if isinstance(target, str) else target.id
            raise NotFound(f"no wallet for {name}")
        return wallet

    def wallet(self, target: WalletRef, *, visible: TenantFilter | None = None) -> Wallet:
        """The wallet (by wallet id, user id or object)."""
        with self._session() as db:
            return self._locate_wallet(db, target, lock=False, visible=visible)

    def balance(self, target: WalletRef) -> Decimal:
        """The current balance."""
        return self.wallet(target).balance

    def ledger(self, target: WalletRef, *, limit: int = 50, before_seq: int | None = None,
               visible: TenantFilter | None = None) -> list[LedgerEntry]:
        """Ledger entries, newest first; page with ``before_seq`` = the last ``seq`` seen."""
        limit, _ = _page(limit, 0)
        with self._session() as db:
            wallet = self._locate_wallet(db, target, lock=False, visible=visible)
            stmt = select(LedgerEntry).where(LedgerEntry.wallet_id == wallet.id)
            if before_seq is not None:
                stmt = stmt.where(LedgerEntry.seq < before_seq)
            return list(db.exec(stmt.order_by(LedgerEntry.seq.desc())  # type: ignore[attr-defined]
                                .limit(limit)))

    def entry_for_key(self, key: str) -> LedgerEntry | None:
        """The ledger entry written under an idempotency key, if any."""
        with self._session() as db:
            return self._entry_by_key(db, _key(key))

    @staticmethod
    def _entry_by_key(db: Session, key: str) -> LedgerEntry | None:
        return db.exec(select(LedgerEntry).where(LedgerEntry.idempotency_key == key)).first()

    def set_overdraft(self, target: WalletRef, limit: Decimal | int | str, *,
                      visible: TenantFilter | None = None) -> Wallet:
        """Allow the balance to go down to ``-limit`` (0: never negative)."""
        amount = to_money(limit, what="overdraft limit")
        if amount < 0:
            raise InvalidInput("overdraft limit must not be negative")
        with self._session() as db:
            wallet = self._locate_wallet(db, target, lock=True, visible=visible)
            if wallet.balance < -amount:
                raise StateError(f"balance {wallet.balance} is below -{amount}")
            wallet.overdraft_limit = amount
            wallet.updated_ms = self.clock()
            db.add(wallet)
            db.commit()
            return wallet

    def credit(self, target: WalletRef, amount: Decimal | int | str, *, key: str,
               ref: str | None = None, note: str | None = None) -> LedgerEntry:
        """Pay money in (a top-up). Idempotent by ``key``."""
        return self._post(target, LedgerKind.TOPUP, to_positive_money(amount), key, ref, note)

    def debit(self, target: WalletRef, amount: Decimal | int | str, *, key: str,
              ref: str | None = None, note: str | None = None) -> LedgerEntry:
        """Take money out (a settled order). Idempotent by ``key``; raises
        :class:`InsufficientFunds` when the balance would go below ``-overdraft_limit``.
        The entry's ``amount`` is negative."""
        return self._post(target, LedgerKind.DEBIT, -to_positive_money(amount), key, ref, note)

    def refund(self, target: WalletRef, amount: Decimal | int | str, *, key: str,
               ref: str | None = None, note: str | None = None) -> LedgerEntry:
        """Give back money of a debit. With ``ref``, the refunds of that ref never exceed its
        debits (:class:`StateError`). Idempotent by ``key``."""
        return self._post(target, LedgerKind.REFUND, to_positive_money(amount), key, ref, note)

    def adjust(self, target: WalletRef, amount: Decimal | int | str, *, key: str,
               ref: str | None = None, note: str | None = None) -> LedgerEntry:
        """A finance correction of either sign (not zero); the overdraft floor applies."""
        value = to_money(amount)
        if value == ZERO:
            raise InvalidInput("an adjustment of zero changes nothing")
        return self._post(target, LedgerKind.ADJUST, value, key, ref, note)

    def _post(self, target: WalletRef, kind: LedgerKind, amount: Decimal, key: str,
              ref: str | None, note: str | None) -> LedgerEntry:
        key = _key(key)
        ref = _opt(ref, "ref", 128)
        note = _opt(note, "note", 256)
        delay = 0.002
        for _attempt in range(self.config.max_attempts):
            try:
                return self._post_once(target, kind, amount, key, ref, note)
            except (_Stale, IntegrityError):
                pass  # someone wrote first: read again and decide again
            except OperationalError as exc:
                if not retryable(exc):
                    raise StoreError(f"wallet store failed: {exc.orig}") from exc
            time.sleep(random.uniform(0, delay))  # noqa: S311 - jitter, not security
            delay = min(delay * 2, 0.05)
        raise ConcurrentUpdate(f"wallet {target if isinstance(target, str) else target.id} "
                               f"stayed contended for {self.config.max_attempts} attempts")

    def _post_once(self, target: WalletRef, kind: LedgerKind, amount: Decimal, key: str,
                   ref: str | None, note: str | None) -> LedgerEntry:
        with self._session() as db:
            prior = self._entry_by_key(db, key)
            wallet = self._locate_wallet(db, target, lock=prior is None)
            if prior is None:  # again under the lock: a twin may have committed meanwhile
                prior = self._entry_by_key(db, key)
            if prior is not None:
                if prior.wallet_id != wallet.id or prior.kind != kind.value or \
                        prior.amount != amount or (ref is not None and prior.ref != ref):
                    raise IdempotencyConflict(
                        f"key {key!r} was used for {prior.kind} {prior.amount} (ref "
                        f"{prior.ref}) on wallet {prior.wallet_id}, not {kind.value} {amount} "
                        f"(ref {ref}) on {wallet.id}")
                return prior
            balance = wallet.balance + amount
            if amount < 0 and balance < -wallet.overdraft_limit:
                raise InsufficientFunds(
                    f"wallet {wallet.id}: balance {wallet.balance} cannot pay {-amount}"
                    + (f" (overdraft limit {wallet.overdraft_limit})"
                       if wallet.overdraft_limit else ""))
            if kind is LedgerKind.REFUND and ref is not None:
                self._check_refund_cap(db, wallet, ref, amount)
            now = self.clock()
            result = db.exec(
                update(Wallet)
                .where(Wallet.id == wallet.id, Wallet.version == wallet.version)  # type: ignore[arg-type]
                .values(balance=balance, version=wallet.version + 1, updated_ms=now)
                .execution_options(synchronize_session=False))
            if result.rowcount != 1:
                raise _Stale
            entry = LedgerEntry(tenant_id=wallet.tenant_id, wallet_id=wallet.id,
                                seq=wallet.version + 1, kind=kind.value, amount=amount,
                                balance_after=balance, idempotency_key=key, ref=ref, note=note,
                                ts_ms=now)
            db.add(entry)
            db.commit()
            return entry

    @staticmethod
    def _check_refund_cap(db: Session, wallet: Wallet, ref: str, amount: Decimal) -> None:
        def total(kind: LedgerKind) -> Decimal:
            value = db.exec(select(func.sum(LedgerEntry.amount)).where(
                LedgerEntry.wallet_id == wallet.id, LedgerEntry.ref == ref,
                LedgerEntry.kind == kind.value)).one()
            return value if value is not None else ZERO

        debited = -total(LedgerKind.DEBIT)
        refunded = total(LedgerKind.REFUND)
        if refunded + amount > debited:
            raise StateError(f"refund {amount} for {ref!r} exceeds what is left of its debits: "
                             f"debited {debited}, refunded {refunded}")

    def ledger_problems(self, target: WalletRef) -> list[str]:
        """Everything wrong with a wallet's ledger (empty when it reconciles)."""
        problems: list[str] = []
        with self._session() as db:
            wallet = self._locate_wallet(db, target, lock=False)
            entries = list(db.exec(select(LedgerEntry).where(LedgerEntry.wallet_id == wallet.id)
                                   .order_by(LedgerEntry.seq)))  # type: ignore[arg-type]
            total = db.exec(select(func.sum(LedgerEntry.amount))
                            .where(LedgerEntry.wallet_id == wallet.id)).one()
        running = ZERO
        for expected, entry in enumerate(entries, 1):
            if entry.seq != expected:
                problems.append(f"entry {entry.id}: seq {entry.seq}, expected {expected}")
            running += entry.amount
            if entry.balance_after != running:
                problems.append(f"entry {entry.id} (seq {entry.seq}): balance_after "
                                f"{entry.balance_after}, running balance {running}")
            sign_ok = {LedgerKind.DEBIT.value: entry.amount < 0,
                       LedgerKind.ADJUST.value: entry.amount != 0}.get(entry.kind,
                                                                        entry.amount > 0)
            if not sign_ok:
                problems.append(f"entry {entry.id}: {entry.kind} of {entry.amount}")
        if len(entries) != wallet.version:
            problems.append(f"{len(entries)} entries, wallet version {wallet.version}")
        if running != wallet.balance:
            problems.append(f"entries sum to {running}, wallet balance is {wallet.balance}")
        if (total if total is not None else ZERO) != wallet.balance:
            problems.append(f"SQL sum of entries {total} != wallet balance {wallet.balance}")
        if wallet.balance < -wallet.overdraft_limit:
            problems.append(f"balance {wallet.balance} below -{wallet.overdraft_limit}")
        return problems

    def reconcile(self, target: WalletRef) -> bool:
        """Whether the ledger and the wallet agree: entries numbered 1..version, each
        ``balance_after`` the running sum, the sum equal to the balance, the floor kept."""
        problems = self.ledger_problems(target)
        for problem in problems:
            log.error("wallet %s does not reconcile: %s",
                      target if isinstance(target, str) else target.id, problem)
        return not problems

    # -- cards -----------------------------------------------------------------------------

    def issue_card(self, tenant_id: str, physical_no: str, logical_no: str | None = None, *,
                   user_id: str | None = None) -> Card:
        """Register a card (bound to ``user_id`` when given). Without a logical number one is
        generated. :class:`Conflict` when either number is taken in the tenant."""
        tenant = _text(tenant_id, "tenant_id", 64)
        physical = idtags.physical_card(physical_no)
        tag = physical_no.strip().upper()
        logical = idtags.logical_card(logical_no) if logical_no is not None else None
        with self._session() as db:
            if user_id is not None:
                self._bindable_user(db, tenant, user_id)
            taken = db.exec(select(Card).where(Card.tenant_id == tenant, or_(
                col(Card.physical_no) == physical, col(Card.logical_no) == logical))).first()
            if taken is not None:
                same = "physical" if taken.physical_no == physical else "logical"
                raise Conflict(f"{same} card number is taken by card {taken.id}")
            while logical is None:
                candidate = f"{secrets.randbelow(10**16):016d}"
                if candidate != ZERO_CARD and db.exec(select(Card).where(
                        Card.tenant_id == tenant, Card.logical_no == candidate)).first() is None:
                    logical = candidate
            now = self.clock()
            card = Card(id=make_id("crd"), tenant_id=tenant, physical_no=physical,
                        logical_no=logical, id_tag=tag, user_id=user_id,
                        status=CardStatus.ACTIVE.value, created_ms=now, updated_ms=now)
            db.add(card)
            try:
                db.commit()
            except IntegrityError:
                raise Conflict(f"card {physical} / {logical} is taken in {tenant}") from None
        if card.user_id is not None:
            self._changed(card.tenant_id, "card")
        return card

    def _bindable_user(self, db: Session, tenant: str, user_id: str) -> User:
        user = db.get(User, user_id)
        if user is None or user.tenant_id != tenant:
            raise NotFound(f"user {user_id} not found in tenant {tenant}")
        if user.status != UserStatus.ACTIVE:
            raise StateError(f"user {user_id} is {user.status}")
        return user

    def get_card(self, card_id: str, *, visible: TenantFilter | None = None) -> Card:
        """A card by id."""
        with self._session() as db:
            return self._one(db, Card, card_id, "card", visible)

    def find_card(self, tenant_id: str, number: str) -> Card | None:
        """A card of the tenant by physical or logical number (either form)."""
        with self._session() as db:
            return self._find_card(db, tenant_id, number)

    @staticmethod
    def _find_card(db: Session, tenant_id: str, number: str) -> Card | None:
        physical = idtags.try_physical_card(number)
        if physical is not None:
            card = db.exec(select(Card).where(Card.tenant_id == tenant_id,
                                              Card.physical_no == physical)).first()
            if card is not None:
                return card
        logical = idtags.try_logical_card(number)
        if logical is not None:
            return db.exec(select(Card).where(Card.tenant_id == tenant_id,
                                              Card.logical_no == logical)).first()
        return None

    def list_cards(self, *, visible: TenantFilter | None = None, tenant_id: str | None = None,
                   user_id: str | None = None, status: CardStatus | str | None = None,
                   number: str | None = None, limit: int = 50, offset: int = 0) -> list[Card]:
        """Cards, newest first (``number``: physical or logical, either form)."""
        limit, offset = _page(limit, offset)
        stmt = select(Card)
        if visible is not None:
            stmt = stmt.where(visible(Card.tenant_id))
        if tenant_id is not None:
            stmt = stmt.where(Card.tenant_id == tenant_id)
        if user_id is not None:
            stmt = stmt.where(Card.user_id == user_id)
        if status is not None:
            stmt = stmt.where(Card.status == self._card_status(status).value)
        if number is not None:
            physical = idtags.try_physical_card(number)
            logical = idtags.try_logical_card(number)
            if physical is None and logical is None:
                raise InvalidInput(f"{number!r} is no card number")
            stmt = stmt.where(or_(col(Card.physical_no) == physical,
                                  col(Card.logical_no) == logical))
        stmt = stmt.order_by(Card.id.desc()).limit(limit).offset(offset)  # type: ignore[attr-defined]
        with self._session() as db:
            return list(db.exec(stmt))

    @staticmethod
    def _card_status(value: CardStatus | str) -> CardStatus:
        try:
            return CardStatus(value)
        except ValueError:
            raise InvalidInput(f"card status {value!r} is not one of "
                               f"{[s.value for s in CardStatus]}") from None

    def _change_card(self, card_id: str, visible: TenantFilter | None,
                     change: Callable[[Session, Card], None]) -> Card:
        with self._session() as db:
            stmt = select(Card).where(Card.id == card_id).with_for_update()
            if visible is not None:
                stmt = stmt.where(visible(Card.tenant_id))
            card = db.exec(stmt).first()
            if card is None:
                raise NotFound(f"card {card_id} not found")
            change(db, card)
            card.updated_ms = self.clock()
            db.add(card)
            db.commit()
        self._changed(card.tenant_id, "card")
        return card

    def bind_card(self, card_id: str, user_id: str, *,
                  visible: TenantFilter | None = None) -> Card:
        """Bind a card to an active user of its tenant (a lost card cannot be bound; a card
        bound to someone else must be unbound first). Binding to its own user is a no-op."""
        def change(db: Session, card: Card) -> None:
            if card.user_id == user_id:
                return
            if card.status == CardStatus.LOST:
                raise StateError(f"card {card.id} is lost")
            if card.user_id is not None:
                raise StateError(f"card {card.id} is bound to {card.user_id}: unbind it first")
            self._bindable_user(db, card.tenant_id, user_id)
            card.user_id = user_id
        return self._change_card(card_id, visible, change)

    def unbind_card(self, card_id: str, *, visible: TenantFilter | None = None) -> Card:
        """Detach a card from its user (idempotent)."""
        def change(db: Session, card: Card) -> None:
            card.user_id = None
        return self._change_card(card_id, visible, change)

    def freeze_card(self, card_id: str, *, visible: TenantFilter | None = None) -> Card:
        """Freeze an active card (idempotent; a lost card stays lost)."""
        def change(db: Session, card: Card) -> None:
            if card.status == CardStatus.LOST:
                raise StateError(f"card {card.id} is lost")
            card.status = CardStatus.FROZEN.value
        return self._change_card(card_id, visible, change)

    def unfreeze_card(self, card_id: str, *, visible: TenantFilter | None = None) -> Card:
        """Make a frozen card active again (a lost card cannot be: issue a new one)."""
        def change(db: Session, card: Card) -> None:
            if card.status == CardStatus.LOST:
                raise StateError(f"card {card.id} is lost; issue a new card")
            card.status = CardStatus.ACTIVE.value
        return self._change_card(card_id, visible, change)

    def report_lost(self, card_id: str, *, visible: TenantFilter | None = None) -> Card:
        """Mark a card lost (final)."""
        def change(db: Session, card: Card) -> None:
            card.status = CardStatus.LOST.value
        return self._change_card(card_id, visible, change)

    def delete_card(self, card_id: str, *, visible: TenantFilter | None = None) -> None:
        """Delete an unbound card record."""
        with self._session() as db:
            card = self._one(db, Card, card_id, "card", visible)
            if card.user_id is not None:
                raise StateError(f"card {card.id} is bound to {card.user_id}: unbind it first")
            db.delete(card)
            db.commit()
        self._changed(card.tenant_id, "card")

    # -- vehicles --------------------------------------------------------------------------

    def add_vehicle(self, user_id: str, *, plate: str | None = None, vin: str | None = None,
                    emaid: str | None = None, is_default: bool = False,
                    visible: TenantFilter | None = None) -> Vehicle:
        """Register a user's vehicle (plate, VIN or EMAID at least; unverified)."""
        values = self._vehicle_values(plate, vin, emaid)
        if not any(values.values()):
            raise InvalidInput("a vehicle needs a plate, a VIN or an EMAID")
        with self._session() as db:
            user = self._one(db, User, user_id, "user", visible)
            if user.status == UserStatus.CLOSED:
                raise StateError(f"user {user.id} is closed")
            self._vehicle_free(db, user.tenant_id, values, None)
            now = self.clock()
            vehicle = Vehicle(id=make_id("veh"), tenant_id=user.tenant_id, user_id=user.id,
                              plate=values["plate"], vin=values["vin"],
                              emaid=values["emaid"], verified=False, is_default=is_default,
                              created_ms=now, updated_ms=now)
            if is_default:
                self._clear_default(db, user.id)
            db.add(vehicle)
            try:
                db.commit()
            except IntegrityError:
                raise Conflict("plate, VIN or EMAID is taken") from None
        self._changed(vehicle.tenant_id, "vehicle")
        return vehicle

    @staticmethod
    def _vehicle_values(plate: str | None, vin: str | None,
                        emaid: str | None) -> dict[str, str | None]:
        return {"plate": idtags.plate(plate) if plate else None,
                "vin": idtags.vin(vin) if vin else None,
                "emaid": idtags.emaid(emaid) if emaid else None}

    @staticmethod
    def _vehicle_free(db: Session, tenant: str, values: dict[str, str | None],
                      vehicle_id: str | None) -> None:
        for name, value in values.items():
            if value is None:
                continue
            column = getattr(Vehicle, name)
            other = db.exec(select(Vehicle).where(Vehicle.tenant_id == tenant,
                                                  column == value)).first()
            if other is not None and other.id != vehicle_id:
                raise Conflict(f"{name} {value} is registered to vehicle {other.id}")

    @staticmethod
    def _clear_default(db: Session, user_id: str) -> None:
        db.exec(update(Vehicle).where(Vehicle.user_id == user_id)  # type: ignore[arg-type]
                .values(is_default=False).execution_options(synchronize_session=False))

    def update_vehicle(self, vehicle_id: str, *, plate: str | None = _UNSET,
                       vin: str | None = _UNSET, emaid: str | None = _UNSET,
                       is_default: bool | None = None,
                       visible: TenantFilter | None = None) -> Vehicle:
        """Change plate/VIN/EMAID (None clears one) or the default flag. A changed VIN or
        EMAID makes the vehicle unverified again."""
        with self._session() as db:
            vehicle = self._one(db, Vehicle, vehicle_id, "vehicle", visible)
            current = {"plate": vehicle.plate, "vin": vehicle.vin, "emaid": vehicle.emaid}
            given = {name: value for name, value in
                     (("plate", plate), ("vin", vin), ("emaid", emaid)) if value is not _UNSET}
            merged = {**current, **given}
            values = self._vehicle_values(merged["plate"], merged["vin"], merged["emaid"])
            if not any(values.values()):
                raise InvalidInput("a vehicle needs a plate, a VIN or an EMAID")
            self._vehicle_free(db, vehicle.tenant_id, values, vehicle.id)
            if values["vin"] != vehicle.vin or values["emaid"] != vehicle.emaid:
                vehicle.verified = False
                vehicle.verified_ms = None
            vehicle.plate, vehicle.vin, vehicle.emaid = (values["plate"], values["vin"],
                                                         values["emaid"])
            if is_default is not None:
                if is_default:
                    self._clear_default(db, vehicle.user_id)
                vehicle.is_default = is_default
            vehicle.updated_ms = self.clock()
            db.add(vehicle)
            try:
                db.commit()
            except IntegrityError:
                raise Conflict("plate, VIN or EMAID is taken") from None
        self._changed(vehicle.tenant_id, "vehicle")
        return vehicle

    def verify_vehicle(self, vehicle_id: str, verified: bool = True, *,
                       visible: TenantFilter | None = None) -> Vehicle:
        """Mark a vehicle verified (its VIN/EMAID then starts charging) or unverified."""
        with self._session() as db:
            vehicle = self._one(db, Vehicle, vehicle_id, "vehicle", visible)
            if verified and not (vehicle.vin or vehicle.emaid):
                raise StateError(f"vehicle {vehicle.id} has neither VIN nor EMAID to verify")
            vehicle.verified = verified
            vehicle.verified_ms = self.clock() if verified else None
            vehicle.updated_ms = self.clock()
            db.add(vehicle)
            db.commit()
        self._changed(vehicle.tenant_id, "vehicle")
        return vehicle

    def get_vehicle(self, vehicle_id: str, *, visible: TenantFilter | None = None) -> Vehicle:
        """A vehicle by id."""
        with self._session() as db:
            return self._one(db, Vehicle, vehicle_id, "vehicle", visible)

    def list_vehicles(self, *, visible: TenantFilter | None = None,
                      tenant_id: str | None = None, user_id: str | None = None,
                      vin: str | None = None, plate: str | None = None,
                      verified: bool | None = None, limit: int = 50,
                      offset: int = 0) -> list[Vehicle]:
        """Vehicles, newest first."""
        limit, offset = _page(limit, offset)
        stmt = select(Vehicle)
        if visible is not None:
            stmt = stmt.where(visible(Vehicle.tenant_id))
        if tenant_id is not None:
            stmt = stmt.where(Vehicle.tenant_id == tenant_id)
        if user_id is not None:
            stmt = stmt.where(Vehicle.user_id == user_id)
        if vin is not None:
            stmt = stmt.where(Vehicle.vin == idtags.vin(vin))
        if plate is not None:
            stmt = stmt.where(Vehicle.plate == idtags.plate(plate))
        if verified is not None:
            stmt = stmt.where(Vehicle.verified == verified)
        stmt = stmt.order_by(Vehicle.id.desc()).limit(limit).offset(offset)  # type: ignore[attr-defined]
        with self._session() as db:
            return list(db.exec(stmt))

    def delete_vehicle(self, vehicle_id: str, *, visible: TenantFilter | None = None) -> None:
        """Remove a vehicle."""
        with self._session() as db:
            vehicle = self._one(db, Vehicle, vehicle_id, "vehicle", visible)
            db.delete(vehicle)
            db.commit()
        self._changed(vehicle.tenant_id, "vehicle")

    # -- resolving id tags -----------------------------------------------------------------

    def resolve_id_tag(self, tenant_id: str, id_tag: str,
                       id_type: IdType | str) -> Account | None:
        """Whose is ``id_tag``? ``card``: physical or logical number, any status, bound or
        not; ``app``: a user's app token; ``vin``: a vehicle's VIN (verified or not: see
        ``vehicle_verified``); ``emaid``: a *verified* vehicle's EMAID; ``unknown``: the first
        of card, app token, VIN, EMAID that matches; ``local``: nobody (None)."""
        kind = idtags.id_type(id_type)
        if not isinstance(id_tag, str) or not id_tag.strip() or len(id_tag) > 64:
            return None
        with self._session() as db:
            order = {IdType.CARD: (self._by_card,), IdType.APP: (self._by_app,),
                     IdType.VIN: (self._by_vin,), IdType.EMAID: (self._by_emaid,),
                     IdType.LOCAL: (),
                     IdType.UNKNOWN: (self._by_card, self._by_app, self._by_vin,
                                      self._by_emaid)}[kind]
            for lookup in order:
                account = lookup(db, tenant_id, id_tag)
                if account is not None:
                    return account
        return None

    def _account(self, db: Session, tenant_id: str, via: IdType, user_id: str | None, *,
                 card: Card | None = None, vehicle: Vehicle | None = None) -> Account:
        user = db.get(User, user_id) if user_id is not None else None
        wallet = db.exec(select(Wallet).where(Wallet.user_id == user.id, Wallet.currency
                                              == self.config.currency)).first() \
            if user is not None else None
        if card is None and user is not None:  # the card an app/VIN session binds to
            card = db.exec(select(Card).where(Card.user_id == user.id,
                                              Card.status == CardStatus.ACTIVE.value)
                           .order_by(Card.created_ms, Card.id)).first()  # type: ignore[arg-type]
        return Account(
            tenant_id=tenant_id, via=via, user_id=user.id if user else None,
            user_status=user.status if user else None,
            wallet_id=wallet.id if wallet else None,
            balance=wallet.balance if wallet else None,
            card_id=card.id if card else None, card_status=card.status if card else None,
            logical_card=card.logical_no if card else None,
            physical_card=card.physical_no if card else None,
            vehicle_id=vehicle.id if vehicle else None,
            vehicle_verified=vehicle.verified if vehicle else None)

    def _by_card(self, db: Session, tenant_id: str, tag: str) -> Account | None:
        card = self._find_card(db, tenant_id, tag)
        if card is None:
            return None
        return self._account(db, tenant_id, IdType.CARD, card.user_id, card=card)

    def _by_app(self, db: Session, tenant_id: str, tag: str) -> Account | None:
        user = db.exec(select(User).where(User.app_token == tag.strip().upper(),
                                          User.tenant_id == tenant_id)).first()
        if user is None:
            return None
        return self._account(db, tenant_id, IdType.APP, user.id)

    def _by_vin(self, db: Session, tenant_id: str, tag: str) -> Account | None:
        number = idtags.try_vin(tag)
        if number is None:
            return None
        vehicle = db.exec(select(Vehicle).where(Vehicle.tenant_id == tenant_id,
                                                Vehicle.vin == number)).first()
        if vehicle is None:
            return None
        return self._account(db, tenant_id, IdType.VIN, vehicle.user_id, vehicle=vehicle)

    def _by_emaid(self, db: Session, tenant_id: str, tag: str) -> Account | None:
        number = idtags.try_emaid(tag)
        if number is None:
            return None
        vehicle = db.exec(select(Vehicle).where(Vehicle.tenant_id == tenant_id,
                                                Vehicle.emaid == number,
                                                Vehicle.verified == True)).first()  # noqa: E712
        if vehicle is None:
            return None
        return self._account(db, tenant_id, IdType.EMAID, vehicle.user_id, vehicle=vehicle)

    def account_for_user(self, user_id: str) -> Account:
        """The account of a user the caller already knows (the app backend's start)."""
        with self._session() as db:
            user = db.get(User, user_id)
            if user is None:
                raise NotFound(f"user {user_id} not found")
            return self._account(db, user.tenant_id, IdType.APP, user.id)

    def same_owner(self, tenant_id: str, id_tag_a: str, type_a: IdType | str,
                   id_tag_b: str, type_b: IdType | str) -> bool:
        """Whether two id tags belong to the same user (a session started by app may be
        stopped by that user's card and the reverse). Unbound or unknown tags own nothing."""
        a = self.resolve_id_tag(tenant_id, id_tag_a, type_a)
        b = self.resolve_id_tag(tenant_id, id_tag_b, type_b)
        return a is not None and b is not None and a.user_id is not None and \
            a.user_id == b.user_id

    # -- start authorisation ---------------------------------------------------------------

    def authorize(self, tenant_id: str, id_tag: str, id_type: IdType | str, *,
                  operating_mode: OperatingMode | str,
                  min_balance: Decimal | int | str | None = None,
                  charger_type: ChargerType | str | None = None) -> Decision:
        """Decide a start request by the seed's operating-mode matrix.

        The method (card/app/VIN/plug-and-charge) must be offered by ``charger_type`` in
        ``operating_mode`` (an unknown charger type: offered by some type). Then: the tag must
        resolve; a card must be bound, not frozen, not lost; a vehicle verified; the user
        active; and in both billing modes the balance positive and at least ``min_balance``
        (default: ``config.min_balance``). ``offline_free`` needs no balance; plug-and-charge
        (``idType: local``) needs no identification where the matrix offers it.
        """
        mode = _mode(operating_mode)
        ctype = _ctype(charger_type)
        kind = idtags.id_type(id_type)
        floor = self.config.min_balance if min_balance is None else \
            to_money(min_balance, what="min_balance")
        allowed = allowed_methods(ctype, mode)
        method = METHOD_OF.get(kind)
        if kind is IdType.LOCAL:
            return Decision(method is not None and method in allowed,
                            Reason.FREE if method in allowed else Reason.METHOD_NOT_ALLOWED,
                            method=method)
        if method is not None and method not in allowed:
            return Decision(False, Reason.METHOD_NOT_ALLOWED, method=method)
        account = self.resolve_id_tag(tenant_id, id_tag, kind)
        if account is None:
            return Decision(False, Reason.UNKNOWN_ID, method=method)
        if method is None:
            method = METHOD_OF[account.via]
            if method not in allowed:
                return Decision(False, Reason.METHOD_NOT_ALLOWED, method=method)
        return self.judge(account, mode, floor, method)

    def authorize_user(self, user_id: str, *, operating_mode: OperatingMode | str,
                       min_balance: Decimal | int | str | None = None,
                       charger_type: ChargerType | str | None = None) -> Decision:
        """:meth:`authorize` for an app start by a user the caller already identified."""
        mode = _mode(operating_mode)
        ctype = _ctype(charger_type)
        floor = self.config.min_balance if min_balance is None else \
            to_money(min_balance, what="min_balance")
        if StartMethod.APP not in allowed_methods(ctype, mode):
            return Decision(False, Reason.METHOD_NOT_ALLOWED, method=StartMethod.APP)
        return self.judge(self.account_for_user(user_id), mode, floor, StartMethod.APP)

    @staticmethod
    def judge(account: Account, mode: OperatingMode, min_balance: Decimal,
              method: StartMethod | None = None) -> Decision:
        """The decision for a resolved account (states, then the balance rule of ``mode``)."""
        def refuse(reason: Reason) -> Decision:
            return Decision(False, reason, balance=account.balance, user_id=account.user_id,
                            method=method)

        if account.via is IdType.CARD:
            if account.card_status == CardStatus.LOST:
                return refuse(Reason.CARD_LOST)
            if account.card_status == CardStatus.FROZEN:
                return refuse(Reason.CARD_FROZEN)
            if account.user_id is None:
                return refuse(Reason.CARD_UNBOUND)
        if account.via in (IdType.VIN, IdType.EMAID) and not account.vehicle_verified:
            return refuse(Reason.VEHICLE_UNVERIFIED)
        if account.user_status == UserStatus.DISABLED:
            return refuse(Reason.USER_DISABLED)
        if account.user_status != UserStatus.ACTIVE:
            return refuse(Reason.USER_CLOSED)
        if mode in _BILLING and (account.balance is None or account.balance <= 0
                                 or account.balance < min_balance):
            return refuse(Reason.INSUFFICIENT_BALANCE)
        return Decision(True, Reason.ACCEPTED, balance=account.balance, user_id=account.user_id,
                        logical_card=account.logical_card, physical_card=account.physical_card,
                        method=method)

    # -- offline card list -----------------------------------------------------------------

    def offline_card_list(self, tenant_id: str | Collection[str], *,
                          operating_mode: OperatingMode | str | None = None,
                          charger_type: ChargerType | str | None = None,
                          min_balance: Decimal | int | str | None = None,
                          include_blocked: bool = True) -> list[dict[str, str]]:
        """The ``cards`` entries of a gateway's desired document, in the shape the edge reads.

        Card entries: ``{physical, logical, idTag, status}`` (``physical`` 16 hex as YKC 0x31
        reports it, ``idTag`` the number as issued, which an OCPP reader reports). Vehicle
        entries (verified VIN / EMAID): ``{vin, idTag, logical, status}`` with the owner's card
        as ``logical`` and *no* ``physical`` key. Because the YKC adapter compares
        ``_card(entry.get("physical", ""))``, an entry without a physical number matches the
        all-zero "no card" number; so when vehicle entries are present the list starts with a
        blocking entry for ``0000000000000000``.

        Without ``operating_mode`` an entry's status is the card's (``active``, ``frozen``,
        ``lost``) or ``blocked`` for a user who is not active. With it (the station's mode and
        charger type), an entry is ``active`` exactly when :meth:`authorize` would accept it
        now, else its status is the refusal reason; entries of methods the matrix does not
        offer there are left out. ``include_blocked=False`` leaves out all but ``active``.
        """
        tenants = [tenant_id] if isinstance(tenant_id, str) else sorted(tenant_id)
        mode = _mode(operating_mode) if operating_mode is not None else None
        ctype = _ctype(charger_type)
        floor = self.config.min_balance if min_balance is None else \
            to_money(min_balance, what="min_balance")
        allowed = allowed_methods(ctype, mode) if mode is not None else frozenset(StartMethod)
        with self._session() as db:
            rows = db.exec(
                select(Card, User, Wallet)
                .join(User, Card.user_id == User.id)  # type: ignore[arg-type]
                .join(Wallet, Wallet.user_id == User.id)  # type: ignore[arg-type]
                .where(Card.tenant_id.in_(tenants))  # type: ignore[attr-defined]
                .order_by(Card.created_ms, Card.id)).all()  # type: ignore[arg-type]
            vehicles = db.exec(
                select(Vehicle, User, Wallet)
                .join(User, Vehicle.user_id == User.id)  # type: ignore[arg-type]
                .join(Wallet, Wallet.user_id == User.id)  # type: ignore[arg-type]
                .where(Vehicle.tenant_id.in_(tenants),  # type: ignore[attr-defined]
                       Vehicle.verified == True)  # noqa: E712
                .order_by(Vehicle.created_ms, Vehicle.id)).all()  # type: ignore[arg-type]
        first_card: dict[str, Card] = {}
        for card, user, _ in rows:
            if card.status == CardStatus.ACTIVE and user.id not in first_card:
                first_card[user.id] = card

        def status(account: Account, method: StartMethod, fallback: str) -> str:
            if mode is None:
                return fallback if account.user_status == UserStatus.ACTIVE else "blocked"
            decision = self.judge(account, mode, floor, method)
            return "active" if decision.accepted else decision.reason.value

        out: list[dict[str, str]] = []
        if StartMethod.CARD in allowed:
            for card, user, wallet in rows:
                account = Account(card.tenant_id, IdType.CARD, user.id, user.status, wallet.id,
                                  wallet.balance, card.id, card.status, card.logical_no,
                                  card.physical_no)
                out.append({"physical": card.physical_no, "logical": card.logical_no,
                            "idTag": card.id_tag,
                            "status": status(account, StartMethod.CARD, card.status)})
        vehicle_entries: list[dict[str, str]] = []
        if StartMethod.VIN in allowed:
            for vehicle, user, wallet in vehicles:
                owner_card = first_card.get(user.id)
                logical = owner_card.logical_no if owner_card is not None else ""
                for via, number in ((IdType.VIN, vehicle.vin), (IdType.EMAID, vehicle.emaid)):
                    if number is None:
                        continue
                    account = Account(vehicle.tenant_id, via, user.id, user.status, wallet.id,
                                      wallet.balance, vehicle_id=vehicle.id,
                                      vehicle_verified=True)
                    entry = {"idTag": number, "logical": logical,
                             "status": status(account, StartMethod.VIN, "active")}
                    if via is IdType.VIN:
                        entry["vin"] = number
                    vehicle_entries.append(entry)
        if vehicle_entries:
            out.insert(0, {"physical": ZERO_CARD, "logical": ZERO_CARD, "idTag": ZERO_CARD,
                           "status": "blocked"})
            out.extend(vehicle_entries)
        if not include_blocked:
            out = [e for e in out if e["status"] == "active"]
        return out


def _mode(value: OperatingMode | str) -> OperatingMode:
    return operating_mode(value)


def _ctype(value: ChargerType | str | None) -> ChargerType | None:
    return charger_type(value)
