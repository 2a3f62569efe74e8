"""The auth service: tenants with their hierarchy, staff users, API keys, logins, principals.

Synchronous over a SQLAlchemy engine (SQLite or PostgreSQL, same code); call it from a worker
thread in async code (the router's endpoints are plain ``def``; :class:`JwtAuthenticator` uses
:func:`asyncio.to_thread`).

Every mutating method takes the acting :class:`Principal` and enforces the rules itself
(visibility, scopes, the role ceiling), so the HTTP layer cannot forget one; :data:`SYSTEM` acts
without limits (bootstrap, seeding, tests).

Caching: authenticating a request costs one primary-key read of the ``auth_revision`` row. Every
change made here increments that row in the same transaction; a worker that sees a new value
reloads the tenant tree and forgets its cached users and keys, so a disabled user, a revoked key
or a suspended tenant is refused at once by every worker.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col, select

from cloud.auth import apikeys
from cloud.auth.config import AuthConfig
from cloud.auth.errors import (
    AccountDisabled,
    AuthConfigError,
    Conflict,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
)
from cloud.auth.models import (
    ALLOWED_PARENTS,
    AUTH_TABLES,
    ApiKey,
    AuthRevision,
    StaffUser,
    Tenant,
    TenantKind,
    TenantStatus,
    utc,
    utcnow,
)
from cloud.auth.passwords import Passwords
from cloud.auth.principal import ROLE_SCOPES, SCOPES, Principal, Role
from cloud.auth.throttle import LoginThrottle
from cloud.auth.tokens import IssuedToken, TokenCodec
from cloud.auth.tree import TenantNode, TenantTree
from cloud.auth.views import ApiKeyView, IssuedApiKey, Me, StaffView, TenantView
from thingmodels.ids import new_id

log = logging.getLogger("voltmesh.cloud.auth")

#: acts without limits: bootstrap, seeding, tests; never handed to a request
SYSTEM = Principal(subject="system", tenant_id="", role=Role.PLATFORM_ADMIN, scopes=SCOPES,
                   visible_tenants=None)

_USERNAME = re.compile(r"[a-z0-9][a-z0-9._@+-]{2,63}")
_TENANT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,200}")
#: tenant kinds an operator admin (without tenants:admin) may create and manage below its tenant
_DELEGATED_KINDS = frozenset({TenantKind.AGENT, TenantKind.STATION_OWNER})
MAX_PAGE = 1000


@dataclass(frozen=True, slots=True)
class _UserState:
    id: int
    tenant_id: str
    username: str
    role: Role
    disabled: bool
    version: int


@dataclass(frozen=True, slots=True)
class _KeyState:
    id: int
    tenant_id: str
    secret_hash: str
    scopes: frozenset[str]
    expires: datetime | None
    revoked: datetime | None


@dataclass
class _Cache:
    """What one revision of the auth tables looks like to this worker."""

    revision: int
    loaded: float
    tree: TenantTree
    users: dict[int, _UserState | None] = field(default_factory=dict)
    keys: dict[str, _KeyState] = field(default_factory=dict)


def _tenant_view(row: Tenant) -> TenantView:
    return TenantView(id=row.id, name=row.name, kind=row.kind, parent_id=row.parent_id,
                      status=row.status, created=utc(row.created) or row.created)


def _staff_view(row: StaffUser) -> StaffView:
    assert row.id is not None
    return StaffView(id=row.id, tenant_id=row.tenant_id, username=row.username, role=row.role,
                     disabled=row.disabled, created=utc(row.created) or row.created)


def _key_view(row: ApiKey) -> ApiKeyView:
    assert row.id is not None
    return ApiKeyView(id=row.id, tenant_id=row.tenant_id, name=row.name, prefix=row.prefix,
                      scopes=sorted(row.scopes), created_by=row.created_by,
                      created=utc(row.created) or row.created, last_used=utc(row.last_used),
                      expires=utc(row.expires), revoked=utc(row.revoked))


def _parse_role(role: str | Role) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidInput(f"unknown role {role!r}; roles: "
                           f"{', '.join(r.value for r in Role)}") from None


def _parse_kind(kind: str | TenantKind) -> TenantKind:
    try:
        return TenantKind(kind)
    except ValueError:
        raise InvalidInput(f"unknown tenant kind {kind!r}; kinds: "
                           f"{', '.join(k.value for k in TenantKind)}") from None


def _name(value: str, what: str = "name") -> str:
    value = value.strip()
    if not value or len(value) > 128:
        raise InvalidInput(f"the {what} must have 1 to 128 characters")
    if any(ord(c) < 32 for c in value):
        raise InvalidInput(f"the {what} must not contain control characters")
    return value


def normalize_username(username: str) -> str:
    """Usernames are compared and stored lower-case, without surrounding white space."""
    return username.strip().lower()


def _page(limit: int, offset: int) -> tuple[int, int]:
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise InvalidInput(f"limit must be 1..{MAX_PAGE} and offset >= 0")
    return limit, offset


class AuthService:
    """Tenants, staff, API keys and the principals they authenticate as."""

    def __init__(self, engine: Engine, config: AuthConfig | None = None, *,
                 apply_env: bool = True) -> None:
        config = config or AuthConfig()
        self.config = config.with_env() if apply_env else config
        self.engine = engine
        self.tokens = TokenCodec(self.config)  # refuses the example secret outside dev mode
        self.passwords = Passwords(self.config.password_hash)
        self.throttle = LoginThrottle(self.config.login_max_failures,
                                      self.config.login_failure_window)
        SQLModel.metadata.create_all(engine, tables=AUTH_TABLES)
        self._ensure_revision_row()
        self._lock = threading.Lock()
        self._cache: _Cache | None = None
        self._touched: dict[int, float] = {}

    # -- plumbing --------------------------------------------------------------------------

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def _ensure_revision_row(self) -> None:
        with self._session() as db:
            if db.get(AuthRevision, 1) is not None:
                return
            db.add(AuthRevision(id=1, value=0))
            try:
                db.commit()
            except IntegrityError:  # another worker created it at the same moment
                db.rollback()

    @staticmethod
    def _bump(db: Session) -> None:
        """Mark the auth tables changed (in the caller's transaction)."""
        db.execute(update(AuthRevision).where(col(AuthRevision.id) == 1)
                   .values(value=col(AuthRevision.value) + 1))

    def _commit(self, db: Session, conflict: str | None = None) -> None:
        """Bump the revision, commit, drop this worker's cache; IntegrityError -> Conflict."""
        try:
            db.flush()
            self._bump(db)
            db.commit()
        except IntegrityError as exc:
            db.rollback()
            raise Conflict(conflict or f"conflicting change: {exc.orig}") from None
        finally:
            with self._lock:
                self._cache = None

    def _current(self) -> _Cache:
        """The cache for the current revision (one primary-key read when nothing changed)."""
        with self._session() as db:
            revision = db.exec(select(AuthRevision.value).where(AuthRevision.id == 1)).one()
            now = time.monotonic()
            with self._lock:
                cache = self._cache
            if cache is not None and cache.revision == revision \
                    and now - cache.loaded <= self.config.cache_max_age:
                return cache
            rows = db.exec(select(Tenant)).all()
        tree = TenantTree(TenantNode(id=r.id, name=r.name, kind=TenantKind(r.kind),
                                     parent_id=r.parent_id, status=TenantStatus(r.status))
                          for r in rows)
        cache = _Cache(revision=revision, loaded=now, tree=tree)
        with self._lock:
            self._cache = cache
        return cache

    def tree(self) -> TenantTree:
        """The tenant hierarchy as of now."""
        return self._current().tree

    # -- tenants ---------------------------------------------------------------------------

    def visible_tenants(self, tenant_id: str) -> frozenset[str] | None:
        """What principals of ``tenant_id`` see: the tenant and all below it; None for platform."""
        return self._current().tree.visible_from(tenant_id)

    def _visible_node(self, actor: Principal, tree: TenantTree, tenant_id: str) -> TenantNode:
        node = tree.get(tenant_id)
        if node is None or not actor.sees(tenant_id):
            raise NotFound(f"no tenant {tenant_id!r}")
        return node

    def _live_node(self, actor: Principal, tree: TenantTree, tenant_id: str) -> TenantNode:
        node = self._visible_node(actor, tree, tenant_id)
        if node.status is TenantStatus.DELETED:
            raise Conflict(f"tenant {tenant_id!r} is deleted")
        return node

    @staticmethod
    def _may_create_tenant(actor: Principal, kind: TenantKind) -> None:
        if actor.can("tenants:admin"):
            return
        if actor.role is Role.OPERATOR_ADMIN and kind in _DELEGATED_KINDS:
            return
        if actor.role is Role.OPERATOR_ADMIN:
            raise PermissionDenied(f"an operator admin may create only agents and station "
                                   f"owners, not {kind.value} tenants")
        raise PermissionDenied("missing scope tenants:admin")

    @staticmethod
    def _may_manage_tenant(actor: Principal, tree: TenantTree, node: TenantNode) -> None:
        if node.id == actor.tenant_id:
            raise PermissionDenied("a principal cannot change or delete its own tenant")
        if actor.can("tenants:admin"):
            return
        if actor.role is Role.OPERATOR_ADMIN and node.kind in _DELEGATED_KINDS \
                and tree.is_below(node.id, actor.tenant_id):
            return
        raise PermissionDenied("missing scope tenants:admin")

    def _check_parent(self, actor: Principal, tree: TenantTree, kind: TenantKind,
                      parent_id: str | None) -> None:
        allowed = ALLOWED_PARENTS[kind]
        if parent_id is None:
            if None not in allowed:
                raise InvalidInput(f"a {kind.value} tenant needs a parent "
                                   f"({', '.join(sorted(str(k) for k in allowed))})")
            if actor.visible_tenants is not None:
                raise PermissionDenied("only the platform may create root tenants")
            if any(n.kind is TenantKind.PLATFORM and n.status is not TenantStatus.DELETED
                   for n in tree.nodes.values()):
                raise Conflict("there is already a platform tenant")
            return
        parent = self._live_node(actor, tree, parent_id)
        if parent.kind not in allowed:
            raise InvalidInput(f"a {kind.value} tenant cannot be placed below a "
                               f"{parent.kind.value} tenant")

    @staticmethod
    def _idem(actor: Principal, key: str | None) -> str | None:
        if key is None:
            return None
        if not _IDEMPOTENCY_KEY.fullmatch(key):
            raise InvalidInput("an idempotency key has 1 to 200 printable ASCII characters")
        return f"{actor.subject}:{key}"

    def create_tenant(self, actor: Principal, name: str, kind: str | TenantKind,
                      parent_id: str | None, *, tenant_id: str | None = None,
                      idempotency_key: str | None = None) -> tuple[TenantView, bool]:
        """Create a tenant; returns it and whether it was created (False: idempotent replay)."""
        kind = _parse_kind(kind)
        name = _name(name)
        if tenant_id is not None and not _TENANT_ID.fullmatch(tenant_id):
            raise InvalidInput("a tenant id has 1 to 64 characters [A-Za-z0-9._-]")
        idem = self._idem(actor, idempotency_key)
        with self._session() as db:
            if idem is not None:
                old = db.exec(select(Tenant).where(Tenant.idempotency_key == idem)).first()
                if old is not None:
                    if (old.name, old.kind, old.parent_id) != (name, kind.value, parent_id) or \
                            (tenant_id is not None and tenant_id != old.id):
                        raise Conflict("idempotency key reused for a different request")
                    return _tenant_view(old), False
            self._may_create_tenant(actor, kind)
            tree = self._current().tree
            self._check_parent(actor, tree, kind, parent_id)
            if tenant_id is not None and tree.get(tenant_id) is not None:
                raise Conflict(f"tenant id {tenant_id!r} is taken")
            row = Tenant(id=tenant_id or new_id(), name=name, kind=kind.value,
                         parent_id=parent_id, idempotency_key=idem)
            db.add(row)
            self._commit(db, "tenant id taken or idempotency key reused")
            return _tenant_view(row), True

    def get_tenant(self, actor: Principal, tenant_id: str) -> TenantView:
        """One visible tenant."""
        with self._session() as db:
            row = db.get(Tenant, tenant_id)
            if row is None or not actor.sees(tenant_id):
                raise NotFound(f"no tenant {tenant_id!r}")
            return _tenant_view(row)

    def list_tenants(self, actor: Principal, *, kind: str | None = None,
                     parent_id: str | None = None, include_deleted: bool = False,
                     limit: int = 100, offset: int = 0) -> list[TenantView]:
        """Visible tenants, oldest first."""
        limit, offset = _page(limit, offset)
        query = select(Tenant).where(actor.tenant_clause(Tenant.id))
        if kind is not None:
            query = query.where(Tenant.kind == _parse_kind(kind).value)
        if parent_id is not None:
            query = query.where(Tenant.parent_id == parent_id)
        if not include_deleted:
            query = query.where(Tenant.status != TenantStatus.DELETED.value)
        query = query.order_by(col(Tenant.created), col(Tenant.id)).limit(limit).offset(offset)
        with self._session() as db:
            return [_tenant_view(r) for r in db.exec(query)]

    def update_tenant(self, actor: Principal, tenant_id: str, *, name: str | None = None,
                      status: str | TenantStatus | None = None,
                      parent_id: str | None = None) -> TenantView:
        """Rename, suspend/reactivate (or restore a deleted tenant), or move a tenant."""
        tree = self._current().tree
        node = self._visible_node(actor, tree, tenant_id)
        new_status: TenantStatus | None = None
        if status is not None:
            try:
                new_status = TenantStatus(status)
            except ValueError:
                raise InvalidInput(f"unknown status {status!r}") from None
            if new_status is TenantStatus.DELETED:
                raise InvalidInput("delete a tenant with DELETE, not by setting its status")
        if node.id == actor.tenant_id and new_status is None and parent_id is None \
                and actor.can("tenants:admin"):
            pass  # renaming one's own tenant is fine for a tenant admin
        else:
            self._may_manage_tenant(actor, tree, node)
        if node.status is TenantStatus.DELETED and new_status is not None \
                and not actor.can("tenants:admin"):
            raise PermissionDenied("restoring a deleted tenant needs tenants:admin")
        if parent_id is not None and parent_id != node.parent_id:
            self._check_parent(actor, tree, node.kind, parent_id)
            if parent_id in tree.subtree(node.id):
                raise InvalidInput("a tenant cannot be moved below itself")
        with self._session() as db:
            row = db.get(Tenant, tenant_id)
            if row is None:  # pragma: no cover - deleted rows stay
                raise NotFound(f"no tenant {tenant_id!r}")
            if name is not None:
                row.name = _name(name)
            if new_status is not None:
                row.status = new_status.value
            if parent_id is not None:
                row.parent_id = parent_id
            db.add(row)
            self._commit(db)
            return _tenant_view(row)

    def delete_tenant(self, actor: Principal, tenant_id: str) -> TenantView:
        """Soft-delete a tenant without live children; its users and keys stop working."""
        tree = self._current().tree
        node = self._visible_node(actor, tree, tenant_id)
        self._may_manage_tenant(actor, tree, node)
        if node.kind is TenantKind.PLATFORM:
            raise PermissionDenied("the platform tenant cannot be deleted")
        live = [c for c in tree.children(tenant_id)
                if tree.nodes[c].status is not TenantStatus.DELETED]
        if live:
            raise Conflict(f"tenant {tenant_id!r} still has {len(live)} tenant(s) below it; "
                           "delete or move them first")
        with self._session() as db:
            row = db.get(Tenant, tenant_id)
            assert row is not None
            if row.status == TenantStatus.DELETED.value:
                return _tenant_view(row)
            row.status = TenantStatus.DELETED.value
            db.add(row)
            self._commit(db)
            return _tenant_view(row)

    # -- staff -----------------------------------------------------------------------------

    @staticmethod
    def _may_grant(actor: Principal, role: Role) -> None:
        missing = ROLE_SCOPES[role] - actor.scopes
        if missing:
            raise PermissionDenied(f"cannot grant role {role.value}: it holds scopes you do not "
                                   f"have ({', '.join(sorted(missing))})")

    @staticmethod
    def _role_fits(node: TenantNode, role: Role) -> None:
        if role is Role.PLATFORM_ADMIN and node.kind is not TenantKind.PLATFORM:
            raise InvalidInput("platform_admin is a role of the platform tenant only")

    def _staff_row(self, db: Session, actor: Principal, user_id: int) -> StaffUser:
        row = db.get(StaffUser, user_id)
        if row is None or not actor.sees(row.tenant_id):
            raise NotFound(f"no staff user {user_id}")
        return row

    def create_staff(self, actor: Principal, tenant_id: str, username: str, password: str,
                     role: str | Role, *,
                     idempotency_key: str | None = None) -> tuple[StaffView, bool]:
        """Create a staff user; returns it and whether it was created (False: replay)."""
        if not actor.can("staff:admin"):
            raise PermissionDenied("missing scope staff:admin")
        role = _parse_role(role)
        username = normalize_username(username)
        if not _USERNAME.fullmatch(username):
            raise InvalidInput("a username has 3 to 64 characters [a-z0-9._@+-] and starts "
                               "with a letter or digit")
        idem = self._idem(actor, idempotency_key)
        with self._session() as db:
            if idem is not None:
                old = db.exec(select(StaffUser).where(StaffUser.idempotency_key == idem)).first()
                if old is not None:
                    if (old.tenant_id, old.username, old.role) != (tenant_id, username,
                                                                   role.value):
                        raise Conflict("idempotency key reused for a different request")
                    return _staff_view(old), False
        tree = self._current().tree
        node = self._live_node(actor, tree, tenant_id)
        self._may_grant(actor, role)
        self._role_fits(node, role)
        password_hash = self.passwords.hash(password)  # slow: outside any transaction
        with self._session() as db:
            row = StaffUser(tenant_id=tenant_id, username=username, password_hash=password_hash,
                            role=role.value, idempotency_key=idem)
            db.add(row)
            self._commit(db, f"username {username!r} is taken")
            return _staff_view(row), True

    def get_staff(self, actor: Principal, user_id: int) -> StaffView:
        """One visible staff user."""
        with self._session() as db:
            return _staff_view(self._staff_row(db, actor, user_id))

    def list_staff(self, actor: Principal, *, tenant_id: str | None = None,
                   limit: int = 100, offset: int = 0) -> list[StaffView]:
        """Visible staff users, by id."""
        limit, offset = _page(limit, offset)
        query = select(StaffUser).where(actor.tenant_clause(StaffUser.tenant_id))
        if tenant_id is not None:
            if not actor.sees(tenant_id):
                raise NotFound(f"no tenant {tenant_id!r}")
            query = query.where(StaffUser.tenant_id == tenant_id)
        query = query.order_by(col(StaffUser.id)).limit(limit).offset(offset)
        with self._session() as db:
            return [_staff_view(r) for r in db.exec(query)]

    def _may_manage_staff(self, actor: Principal, row: StaffUser) -> None:
        if not actor.can("staff:admin"):
            raise PermissionDenied("missing scope staff:admin")
        missing = ROLE_SCOPES[Role(row.role)] - actor.scopes
        if missing:
            raise PermissionDenied(f"user {row.id} holds a role above yours")

    def update_staff(self, actor: Principal, user_id: int, *, password: str | None = None,
                     role: str | Role | None = None, disabled: bool | None = None) -> StaffView:
        """Change a user's password, role or disabled flag; their tokens stop working."""
        new_role = _parse_role(role) if role is not None else None
        password_hash = self.passwords.hash(password) if password is not None else None
        tree = self._current().tree
        with self._session() as db:
            row = self._staff_row(db, actor, user_id)
            self._may_manage_staff(actor, row)
            is_self = actor.subject == f"user:{user_id}"
            if is_self and ((new_role is not None and new_role.value != row.role)
                            or disabled is True):
                raise PermissionDenied("you cannot change your own role or disable yourself")
            if new_role is not None:
                self._may_grant(actor, new_role)
                node = tree.get(row.tenant_id)
                assert node is not None
                self._role_fits(node, new_role)
                row.role = new_role.value
            if disabled is not None:
                row.disabled = disabled
            if password_hash is not None:
                row.password_hash = password_hash
            row.token_version += 1
            db.add(row)
            self._commit(db)
            return _staff_view(row)

    def delete_staff(self, actor: Principal, user_id: int) -> None:
        """Delete a staff user."""
        with self._session() as db:
            row = self._staff_row(db, actor, user_id)
            self._may_manage_staff(actor, row)
            if actor.subject == f"user:{user_id}":
                raise PermissionDenied("you cannot delete yourself")
            db.delete(row)
            self._commit(db)

    # -- logins ----------------------------------------------------------------------------

    def login(self, username: str, password: str) -> tuple[IssuedToken, StaffView]:
        """Check a password and issue an access token.

        Unknown users cost the same time as known ones; a disabled user or a user of an
        inactive tenant is told so only after the right password. Too many wrong passwords for
        a username raise :class:`TooManyAttempts` (see :mod:`cloud.auth.throttle`).
        """
        username = normalize_username(username)
        self.throttle.check(username)
        with self._session() as db:
            row = db.exec(select(StaffUser).where(StaffUser.username == username)).first()
        ok = self.passwords.verify(row.password_hash if row else None, password)
        if row is None or not ok:
            self.throttle.failed(username)
            raise NotAuthenticated("incorrect username or password")
        self.throttle.succeeded(username)
        if row.disabled:
            raise AccountDisabled("this user is disabled")
        blocked = self._current().tree.active(row.tenant_id)
        if blocked is not None:
            raise AccountDisabled(f"the user's tenant is {blocked.value}")
        if self.passwords.needs_rehash(row.password_hash):
            self._rehash(row.id, password)
        assert row.id is not None
        token = self.tokens.issue(row.id, row.tenant_id, row.role, row.token_version)
        return token, _staff_view(row)

    def _rehash(self, user_id: int | None, password: str) -> None:
        new_hash = self.passwords.hash(password)
        with self._session() as db:  # no revision bump: the hash is not cached
            db.execute(update(StaffUser).where(col(StaffUser.id) == user_id)
                       .values(password_hash=new_hash))
            db.commit()

    def change_own_password(self, actor: Principal, current: str,
                            new: str) -> IssuedToken:
        """A user changes their password; all their tokens end, a new one is returned."""
        if actor.role is None or not actor.subject.startswith("user:"):
            raise PermissionDenied("only staff users have a password")
        user_id = int(actor.subject[5:])
        with self._session() as db:
            row = db.get(StaffUser, user_id)
        if row is None or not self.passwords.verify(row.password_hash, current):
            raise PermissionDenied("the current password is wrong")
        new_hash = self.passwords.hash(new)
        with self._session() as db:
            row = db.get(StaffUser, user_id)
            if row is None:  # pragma: no cover - deleted in between
                raise NotFound(f"no staff user {user_id}")
            row.password_hash = new_hash
            row.token_version += 1
            db.add(row)
            self._commit(db)
        return self.tokens.issue(user_id, row.tenant_id, row.role, row.token_version)

    def bootstrap(self) -> StaffView | None:
        """Create the platform tenant and admin when no staff user exists (first start).

        Returns the admin created, or None when there was a staff user already (or another
        worker created the admin at the same moment).
        """
        with self._session() as db:
            if db.exec(select(func.count()).select_from(StaffUser)).one():
                return None
        boot = self.config.bootstrap
        password = boot.password
        if password is None:
            if not self.config.dev:
                raise AuthConfigError(
                    "no staff user exists yet and no admin password is configured: set "
                    "auth.bootstrap.password or VOLTMESH_ADMIN_PASSWORD for the first start")
            password = secrets.token_urlsafe(15)
            log.warning("dev mode: created admin %r with the generated password %s",
                        boot.username, password)
        username = normalize_username(boot.username)
        if not _USERNAME.fullmatch(username):
            raise AuthConfigError(f"auth.bootstrap.username {boot.username!r} is not a valid "
                                  "username ([a-z0-9._@+-], 3 to 64 characters)")
        password_hash = self.passwords.hash(password)
        with self._session() as db:
            platform = db.exec(select(Tenant).where(
                Tenant.kind == TenantKind.PLATFORM.value,
                Tenant.status != TenantStatus.DELETED.value)).first()
            if platform is None:
                platform = Tenant(id=new_id(), name=boot.tenant_name,
                                  kind=TenantKind.PLATFORM.value, parent_id=None)
                db.add(platform)
                db.flush()
            row = StaffUser(tenant_id=platform.id, username=username,
                            password_hash=password_hash, role=Role.PLATFORM_ADMIN.value)
            db.add(row)
            try:
                self._commit(db)
            except Conflict:
                return None  # another worker bootstrapped at the same moment
        log.info("created the platform tenant %s and admin user %r", platform.id, username)
        return _staff_view(row)

    # -- API keys --------------------------------------------------------------------------

    def issue_api_key(self, actor: Principal, name: str, scopes: Iterable[str], *,
                      tenant_id: str | None = None, expires: datetime | None = None,
                      idempotency_key: str | None = None) -> IssuedApiKey:
        """Issue a key; its secret is in the result and nowhere else, ever."""
        if not actor.can("apikeys:admin"):
            raise PermissionDenied("missing scope apikeys:admin")
        name = _name(name)
        wanted = frozenset(scopes)
        if not wanted:
            raise InvalidInput("an API key needs at least one scope")
        unknown = wanted - SCOPES
        if unknown:
            raise InvalidInput(f"unknown scopes: {', '.join(sorted(unknown))}")
        beyond = wanted - actor.scopes
        if beyond:
            raise PermissionDenied(f"cannot grant scopes you do not hold: "
                                   f"{', '.join(sorted(beyond))}")
        if expires is not None:
            expires = expires.replace(tzinfo=UTC) if expires.tzinfo is None else expires
            if expires <= utcnow():
                raise InvalidInput("expires must be in the future")
        tenant_id = tenant_id or actor.tenant_id
        idem = self._idem(actor, idempotency_key)
        with self._session() as db:
            if idem is not None:
                old = db.exec(select(ApiKey).where(ApiKey.idempotency_key == idem)).first()
                if old is not None:
                    raise Conflict(f"this request was served already: API key {old.id} "
                                   f"(vm_{old.prefix}_...) was issued; its secret is shown "
                                   "only once, so revoke it and issue a new key if it was lost")
        self._live_node(actor, self._current().tree, tenant_id)
        for _attempt in range(3):  # a prefix collision is astronomically rare; retry anyway
            new = apikeys.generate()
            with self._session() as db:
                if db.exec(select(ApiKey.id).where(ApiKey.prefix == new.prefix)).first():
                    continue
                row = ApiKey(tenant_id=tenant_id, name=name, prefix=new.prefix,
                             secret_hash=new.secret_hash, scopes=sorted(wanted),
                             created_by=actor.subject, expires=expires, idempotency_key=idem)
                db.add(row)
                self._commit(db, "idempotency key reused (or a prefix collision): retry")
                return IssuedApiKey(key=new.token, api_key=_key_view(row))
        raise Conflict("could not find a free key prefix; retry")  # pragma: no cover

    def list_api_keys(self, actor: Principal, *, tenant_id: str | None = None,
                      include_revoked: bool = True, limit: int = 100,
                      offset: int = 0) -> list[ApiKeyView]:
        """Visible keys (never their secrets), by id."""
        if not actor.can("apikeys:admin"):
            raise PermissionDenied("missing scope apikeys:admin")
        limit, offset = _page(limit, offset)
        query = select(ApiKey).where(actor.tenant_clause(ApiKey.tenant_id))
        if tenant_id is not None:
            if not actor.sees(tenant_id):
                raise NotFound(f"no tenant {tenant_id!r}")
            query = query.where(ApiKey.tenant_id == tenant_id)
        if not include_revoked:
            query = query.where(col(ApiKey.revoked).is_(None))
        query = query.order_by(col(ApiKey.id)).limit(limit).offset(offset)
        with self._session() as db:
            return [_key_view(r) for r in db.exec(query)]

    def get_api_key(self, actor: Principal, key_id: int) -> ApiKeyView:
        """One visible key."""
        if not actor.can("apikeys:admin"):
            raise PermissionDenied("missing scope apikeys:admin")
        with self._session() as db:
            row = db.get(ApiKey, key_id)
            if row is None or not actor.sees(row.tenant_id):
                raise NotFound(f"no API key {key_id}")
            return _key_view(row)

    def revoke_api_key(self, actor: Principal, key_id: int) -> ApiKeyView:
        """Revoke a key (idempotent: revoking twice keeps the first time)."""
        if not actor.can("apikeys:admin"):
            raise PermissionDenied("missing scope apikeys:admin")
        with self._session() as db:
            row = db.get(ApiKey, key_id)
            if row is None or not actor.sees(row.tenant_id):
                raise NotFound(f"no API key {key_id}")
            if row.revoked is None:
                row.revoked = utcnow()
                db.add(row)
                self._commit(db)
            return _key_view(row)

    # -- principals ------------------------------------------------------------------------

    def _user(self, cache: _Cache, user_id: int) -> _UserState | None:
        if user_id in cache.users:
            return cache.users[user_id]
        with self._session() as db:
            row = db.get(StaffUser, user_id)
        state = None if row is None else _UserState(
            id=user_id, tenant_id=row.tenant_id, username=row.username, role=Role(row.role),
            disabled=row.disabled, version=row.token_version)
        cache.users[user_id] = state
        return state

    def principal_for_token(self, token: str) -> Principal:
        """The principal of a staff user's access token."""
        claims = self.tokens.decode(token)
        cache = self._current()
        user = self._user(cache, claims.user_id)
        if user is None:
            raise NotAuthenticated("the token's user no longer exists")
        if user.disabled:
            raise AccountDisabled("this user is disabled")
        if (user.version, user.tenant_id, user.role.value) != (claims.version, claims.tenant_id,
                                                               claims.role):
            raise NotAuthenticated("the token was revoked (password, role or status changed); "
                                   "log in again")
        blocked = cache.tree.active(user.tenant_id)
        if blocked is not None:
            raise AccountDisabled(f"the user's tenant is {blocked.value}")
        return Principal(subject=f"user:{user.id}", tenant_id=user.tenant_id, role=user.role,
                         scopes=ROLE_SCOPES[user.role],
                         visible_tenants=cache.tree.visible_from(user.tenant_id))

    def principal_for_api_key(self, token: str) -> Principal:
        """The principal of an API key (``vm_<prefix>_<secret>``)."""
        prefix = apikeys.parse(token)
        if prefix is None:
            raise NotAuthenticated("malformed API key")
        cache = self._current()
        key = cache.keys.get(prefix)
        if key is None:
            with self._session() as db:
                row = db.exec(select(ApiKey).where(ApiKey.prefix == prefix)).first()
            if row is None or row.id is None:
                raise NotAuthenticated("unknown API key")
            key = _KeyState(id=row.id, tenant_id=row.tenant_id, secret_hash=row.secret_hash,
                            scopes=frozenset(row.scopes) & SCOPES, expires=utc(row.expires),
                            revoked=utc(row.revoked))
            cache.keys[prefix] = key
        if not apikeys.matches(token, key.secret_hash):
            raise NotAuthenticated("unknown API key")
        if key.revoked is not None:
            raise NotAuthenticated("this API key is revoked")
        if key.expires is not None and key.expires <= utcnow():
            raise NotAuthenticated("this API key has expired")
        blocked = cache.tree.active(key.tenant_id)
        if blocked is not None:
            raise AccountDisabled(f"the key's tenant is {blocked.value}")
        self._touch(key.id)
        return Principal(subject=f"apikey:{key.id}", tenant_id=key.tenant_id, role=None,
                         scopes=key.scopes, visible_tenants=cache.tree.visible_from(key.tenant_id))

    def _touch(self, key_id: int) -> None:
        """Record last_used, at most every ``last_used_interval`` seconds per key and worker."""
        now = time.monotonic()
        with self._lock:
            last = self._touched.get(key_id)
            if last is not None and now - last < self.config.last_used_interval:
                return
            self._touched[key_id] = now
        with self._session() as db:  # no revision bump: last_used is not cached
            db.execute(update(ApiKey).where(col(ApiKey.id) == key_id).values(last_used=utcnow()))
            db.commit()

    def me(self, principal: Principal) -> Me:
        """What ``GET /auth/me`` shows."""
        node = self._current().tree.get(principal.tenant_id)
        username = None
        if principal.subject.startswith("user:"):
            user = self._user(self._current(), int(principal.subject[5:]))
            username = user.username if user else None
        visible = principal.visible_tenants
        return Me(subject=principal.subject, tenant_id=principal.tenant_id,
                  tenant_name=node.name if node else None,
                  tenant_kind=node.kind.value if node else None,
                  role=principal.role.value if principal.role else None, username=username,
                  scopes=sorted(principal.scopes),
                  visible_tenants=None if visible is None else sorted(visible))
