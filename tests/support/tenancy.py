"""A ready-made tenancy for tests: a platform, two operators A and B, an agent below A.

Each tenant gets one staff user per role (platform: platform_admin and read_only) with a token,
and API keys ("full": every scope the tenant's admin holds; "read": the ``:read`` scopes).
Use it to check that every list endpoint filters by tenant::

    from tests.support.tenancy import install_tenancy

    app = FastAPI(); app.include_router(my_router)
    world = install_tenancy(app, engine)          # AuthService + JwtAuthenticator + /api/v1/auth
    # rows for world.a, world.agent_a and world.b ...
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as client:
        r = await client.get("/api/v1/orders", headers=world.headers("A", Role.READ_ONLY))
        # A sees A's and its agent's rows, never B's
        r = await client.get("/api/v1/orders", headers=world.key_headers("B", "read"))

Tokens are issued directly (no password hashing per request); the passwords are known too, so
``POST /api/v1/auth/token`` works for every user.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from fastapi import FastAPI
from sqlalchemy.engine import Engine

from cloud.auth.config import AuthConfig, PasswordHashConfig
from cloud.auth.models import TenantKind
from cloud.auth.principal import ROLE_SCOPES, SCOPES, Principal, Role
from cloud.auth.service import SYSTEM, AuthService
from cloud.auth.setup import install_auth

#: Argon2 parameters cheap enough for tests (never in production)
FAST_HASH = PasswordHashConfig(time_cost=1, memory_kib=256, parallelism=1)
READ_SCOPES = frozenset(s for s in SCOPES if s.endswith(":read"))
TENANT_LABELS = ("platform", "A", "B", "agentA")
_TENANT_ROLES = (Role.OPERATOR_ADMIN, Role.FINANCE, Role.MAINTAINER, Role.READ_ONLY)


def fast_auth_config(**overrides: object) -> AuthConfig:
    """A dev-mode config with a random secret and cheap password hashing."""
    values: dict[str, object] = {
        "dev": True, "jwt_secret": secrets.token_urlsafe(48),
        "password_hash": FAST_HASH.model_dump(), "cache_max_age": 30.0,
    }
    values.update(overrides)
    return AuthConfig.model_validate(values)


@dataclass(frozen=True)
class Login:
    """A staff user with a valid token."""

    user_id: int
    username: str
    password: str
    tenant_id: str
    role: Role
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass(frozen=True)
class Key:
    """An API key and its secret."""

    id: int
    key: str
    tenant_id: str
    scopes: frozenset[str]

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.key}


@dataclass
class Tenancy:
    """The tenants, users and keys built by :func:`build_tenancy`."""

    service: AuthService
    platform: str
    a: str
    b: str
    agent_a: str
    users: dict[tuple[str, Role], Login] = field(default_factory=dict)
    keys: dict[tuple[str, str], Key] = field(default_factory=dict)

    def tenant(self, label: str) -> str:
        """The id of "platform", "A", "B" or "agentA"."""
        return {"platform": self.platform, "A": self.a, "B": self.b,
                "agentA": self.agent_a}[label]

    def user(self, label: str, role: Role = Role.OPERATOR_ADMIN) -> Login:
        """A staff user of a tenant by role."""
        return self.users[(label, role)]

    def headers(self, label: str, role: Role = Role.OPERATOR_ADMIN) -> dict[str, str]:
        """Bearer headers of a tenant's user of ``role``."""
        return self.user(label, role).headers

    def key(self, label: str, kind: str = "full") -> Key:
        """A tenant's API key: "full" or "read"."""
        return self.keys[(label, kind)]

    def key_headers(self, label: str, kind: str = "full") -> dict[str, str]:
        """``X-API-Key`` headers of a tenant's key."""
        return self.key(label, kind).headers

    def principal(self, label: str, role: Role = Role.OPERATOR_ADMIN) -> Principal:
        """The principal of a user (for router tests with ``FixedAuthenticator``)."""
        return self.service.principal_for_token(self.user(label, role).token)


def build_tenancy(service: AuthService, *, namespace: str | None = None) -> Tenancy:
    """Create the tenants, users and keys (usernames ``<namespace>-<tenant>-<role>``).

    The platform tenant is reused when the database has one already; a random namespace keeps
    usernames unique when a database is shared.
    """
    ns = namespace if namespace is not None else secrets.token_hex(3)
    platform = next(iter(service.list_tenants(SYSTEM, kind=TenantKind.PLATFORM.value)), None)
    if platform is None:
        platform, _ = service.create_tenant(SYSTEM, "Platform", TenantKind.PLATFORM, None)
    a, _ = service.create_tenant(SYSTEM, f"Operator A {ns}", TenantKind.OPERATOR, platform.id)
    b, _ = service.create_tenant(SYSTEM, f"Operator B {ns}", TenantKind.OPERATOR, platform.id)
    agent, _ = service.create_tenant(SYSTEM, f"Agent of A {ns}", TenantKind.AGENT, a.id)
    world = Tenancy(service=service, platform=platform.id, a=a.id, b=b.id, agent_a=agent.id)
    plan: list[tuple[str, str, tuple[Role, ...]]] = [
        ("platform", platform.id, (Role.PLATFORM_ADMIN, Role.READ_ONLY)),
        ("A", a.id, _TENANT_ROLES), ("B", b.id, _TENANT_ROLES),
        ("agentA", agent.id, _TENANT_ROLES),
    ]
    for label, tenant_id, roles in plan:
        for role in roles:
            username = f"{ns}-{label.lower()}-{role.value.replace('_', '-')}"
            password = f"pw-{secrets.token_urlsafe(9)}"
            user, _ = service.create_staff(SYSTEM, tenant_id, username, password, role)
            token = service.tokens.issue(user.id, tenant_id, role.value, 0).token
            world.users[(label, role)] = Login(user.id, user.username, password, tenant_id,
                                               role, token)
        admin_scopes = ROLE_SCOPES[roles[0]]
        for kind, scopes in (("full", admin_scopes), ("read", READ_SCOPES)):
            issued = service.issue_api_key(SYSTEM, f"{label} {kind}", scopes,
                                           tenant_id=tenant_id)
            world.keys[(label, kind)] = Key(issued.api_key.id, issued.key, tenant_id,
                                            frozenset(scopes))
    return world


def install_tenancy(app: FastAPI, engine: Engine, config: AuthConfig | None = None, *,
                    namespace: str | None = None) -> Tenancy:
    """An :class:`AuthService` on ``engine`` installed into ``app`` (authenticator, router,
    error bodies) and the tenancy built in it."""
    service = AuthService(engine, config or fast_auth_config(), apply_env=False)
    install_auth(app, service)
    return build_tenancy(service, namespace=namespace)
