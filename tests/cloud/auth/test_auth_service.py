"""AuthService on SQLite and PostgreSQL: tenants and their hierarchy, staff, logins, API keys."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from cloud.auth.config import AuthConfig, PasswordHashConfig
from cloud.auth.errors import (
    AccountDisabled,
    AuthConfigError,
    Conflict,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
)
from cloud.auth.models import ApiKey, StaffUser, TenantKind, utcnow
from cloud.auth.principal import ROLE_SCOPES, SCOPES, Role
from cloud.auth.service import SYSTEM, AuthService
from tests.support.tenancy import FAST_HASH, READ_SCOPES, Tenancy, build_tenancy


@pytest.fixture
def world(service: AuthService) -> Tenancy:
    return build_tenancy(service, namespace="t")


# -- hierarchy and visibility -----------------------------------------------------------------

def test_operator_sees_its_agent_not_b_and_agent_not_its_operator(world: Tenancy) -> None:
    svc = world.service
    assert svc.visible_tenants(world.a) == {world.a, world.agent_a}
    assert svc.visible_tenants(world.agent_a) == {world.agent_a}
    assert svc.visible_tenants(world.b) == {world.b}
    assert svc.visible_tenants(world.platform) is None  # the platform sees everything

    op_a = world.principal("A")
    assert op_a.visible_tenants == {world.a, world.agent_a}
    assert {t.id for t in svc.list_tenants(op_a)} == {world.a, world.agent_a}
    agent = world.principal("agentA")
    assert {t.id for t in svc.list_tenants(agent)} == {world.agent_a}
    with pytest.raises(NotFound):
        svc.get_tenant(agent, world.a)
    with pytest.raises(NotFound):
        svc.get_tenant(op_a, world.b)
    admin = world.principal("platform", Role.PLATFORM_ADMIN)
    assert {world.platform, world.a, world.b, world.agent_a} <= \
        {t.id for t in svc.list_tenants(admin)}


def test_descendants_are_cached_and_refreshed_on_change(world: Tenancy) -> None:
    svc = world.service
    tree = svc.tree()
    assert svc.tree() is tree  # nothing changed: the same snapshot
    owner, created = svc.create_tenant(world.principal("A"), "Owner", "station_owner",
                                       world.agent_a)
    assert created
    assert svc.tree() is not tree
    assert svc.visible_tenants(world.a) == {world.a, world.agent_a, owner.id}
    assert svc.visible_tenants(world.agent_a) == {world.agent_a, owner.id}


def test_another_worker_sees_changes_at_once(world: Tenancy, engine: Engine,
                                             config: AuthConfig) -> None:
    other = AuthService(engine, config, apply_env=False)  # a second worker, own cache
    key = world.key("A")
    assert other.principal_for_api_key(key.key).tenant_id == world.a
    login = world.user("A", Role.FINANCE)
    assert other.principal_for_token(login.token).role is Role.FINANCE
    assert other.visible_tenants(world.a) == {world.a, world.agent_a}

    world.service.revoke_api_key(SYSTEM, key.id)
    with pytest.raises(NotAuthenticated, match="revoked"):
        other.principal_for_api_key(key.key)
    world.service.update_staff(SYSTEM, login.user_id, disabled=True)
    with pytest.raises(AccountDisabled):
        other.principal_for_token(login.token)
    sub, _ = world.service.create_tenant(SYSTEM, "Sub", "agent", world.agent_a)
    assert other.visible_tenants(world.a) == {world.a, world.agent_a, sub.id}


def test_hierarchy_rules(world: Tenancy) -> None:
    svc = world.service
    with pytest.raises(InvalidInput, match="cannot be placed below"):
        svc.create_tenant(SYSTEM, "x", "operator", world.a)  # operators belong to the platform
    with pytest.raises(InvalidInput, match="needs a parent"):
        svc.create_tenant(SYSTEM, "x", "agent", None)
    with pytest.raises(Conflict, match="already a platform"):
        svc.create_tenant(SYSTEM, "x", "platform", None)
    with pytest.raises(InvalidInput, match="unknown tenant kind"):
        svc.create_tenant(SYSTEM, "x", "reseller", world.a)
    with pytest.raises(InvalidInput, match="1 to 128"):
        svc.create_tenant(SYSTEM, "   ", "agent", world.a)
    with pytest.raises(NotFound):
        svc.create_tenant(SYSTEM, "x", "agent", "no-such-tenant")
    own, _ = svc.create_tenant(SYSTEM, "Coded", "station_owner", world.a, tenant_id="so-0001")
    assert own.id == "so-0001"
    with pytest.raises(Conflict, match="taken"):
        svc.create_tenant(SYSTEM, "Coded", "station_owner", world.a, tenant_id="so-0001")
    with pytest.raises(InvalidInput, match="tenant id"):
        svc.create_tenant(SYSTEM, "bad id", "station_owner", world.a, tenant_id="a b")


def test_operator_admin_creates_agents_below_itself_only(world: Tenancy) -> None:
    svc = world.service
    op_a = world.principal("A")
    owner, _ = svc.create_tenant(op_a, "Owner 1", TenantKind.STATION_OWNER, world.a)
    assert owner.parent_id == world.a
    with pytest.raises(PermissionDenied, match="only agents and station owners"):
        svc.create_tenant(op_a, "Op C", TenantKind.OPERATOR, world.platform)
    with pytest.raises(NotFound):  # B is not visible to A: looks absent
        svc.create_tenant(op_a, "Agent in B", TenantKind.AGENT, world.b)
    with pytest.raises(NotFound):
        svc.update_tenant(op_a, world.b, name="mine now")
    with pytest.raises(NotFound):
        svc.delete_tenant(op_a, world.b)
    with pytest.raises(PermissionDenied, match="own tenant"):
        svc.update_tenant(op_a, world.a, status="suspended")
    # a finance user may not create tenants at all
    with pytest.raises(PermissionDenied, match="tenants:admin"):
        svc.create_tenant(world.principal("A", Role.FINANCE), "x", "agent", world.a)
    # an operator admin manages the tenants below it (a principal is a snapshot: take a new
    # one after the change, as every request does)
    op_a = world.principal("A")
    renamed = svc.update_tenant(op_a, owner.id, name="Owner One")
    assert renamed.name == "Owner One"
    moved = svc.update_tenant(op_a, owner.id, parent_id=world.agent_a)
    assert moved.parent_id == world.agent_a
    with pytest.raises(InvalidInput, match="below itself"):
        svc.update_tenant(op_a, world.agent_a, parent_id=world.agent_a)


def test_suspend_and_delete_tenant_stop_its_principals(world: Tenancy) -> None:
    svc = world.service
    admin = world.principal("platform", Role.PLATFORM_ADMIN)
    agent_user = world.user("agentA", Role.READ_ONLY)
    agent_key = world.key("agentA", "read")
    svc.update_tenant(admin, world.a, status="suspended")
    # the agent sits below the suspended operator: refused too
    with pytest.raises(AccountDisabled, match="suspended"):
        svc.principal_for_token(agent_user.token)
    with pytest.raises(AccountDisabled, match="suspended"):
        svc.principal_for_api_key(agent_key.key)
    with pytest.raises(AccountDisabled, match="suspended"):
        svc.login(world.user("A").username, world.user("A").password)
    svc.update_tenant(admin, world.a, status="active")
    assert svc.principal_for_token(agent_user.token).tenant_id == world.agent_a

    with pytest.raises(Conflict, match="below it"):
        svc.delete_tenant(admin, world.a)  # the agent is still alive
    deleted = svc.delete_tenant(admin, world.agent_a)
    assert deleted.status == "deleted"
    with pytest.raises(AccountDisabled, match="deleted"):
        svc.principal_for_token(agent_user.token)
    with pytest.raises(AccountDisabled, match="deleted"):
        svc.principal_for_api_key(agent_key.key)
    assert world.agent_a not in {t.id for t in svc.list_tenants(admin)}
    assert world.agent_a in {t.id for t in svc.list_tenants(admin, include_deleted=True)}
    # rows of a deleted agent remain visible to its operator
    assert world.agent_a in (svc.visible_tenants(world.a) or set())
    with pytest.raises(Conflict, match="deleted"):
        svc.create_staff(SYSTEM, world.agent_a, "late-user", "password-123", Role.READ_ONLY)
    with pytest.raises(PermissionDenied, match="platform tenant"):
        svc.delete_tenant(SYSTEM, world.platform)


def test_tenant_create_is_idempotent(world: Tenancy) -> None:
    svc = world.service
    op_a = world.principal("A")
    first, created = svc.create_tenant(op_a, "Owner", "station_owner", world.a,
                                       idempotency_key="req-1")
    again, created_again = svc.create_tenant(op_a, "Owner", "station_owner", world.a,
                                             idempotency_key="req-1")
    assert created and not created_again and again == first
    with pytest.raises(Conflict, match="different request"):
        svc.create_tenant(op_a, "Other", "station_owner", world.a, idempotency_key="req-1")
    # keys are per caller: B's admin using the same key is a different request
    owner_b, created_b = svc.create_tenant(world.principal("B"), "Owner", "station_owner",
                                           world.b, idempotency_key="req-1")
    assert created_b and owner_b.id != first.id
    assert len([t for t in svc.list_tenants(world.principal("A")) if t.name == "Owner"]) == 1


# -- staff and logins -----------------------------------------------------------------------

def test_login_ok_bad_password_unknown_user_disabled(world: Tenancy) -> None:
    svc = world.service
    user = world.user("A", Role.MAINTAINER)
    token, view = svc.login(user.username.upper(), user.password)  # usernames ignore case
    assert view.id == user.user_id
    principal = svc.principal_for_token(token.token)
    assert principal.subject == f"user:{user.user_id}"
    assert principal.scopes == ROLE_SCOPES[Role.MAINTAINER]
    assert token.expires_in == svc.config.token_ttl
    with pytest.raises(NotAuthenticated, match="incorrect"):
        svc.login(user.username, user.password + "x")
    with pytest.raises(NotAuthenticated, match="incorrect"):
        svc.login("nobody-here", user.password)
    svc.update_staff(SYSTEM, user.user_id, disabled=True)
    with pytest.raises(AccountDisabled, match="disabled"):
        svc.login(user.username, user.password)
    with pytest.raises(NotAuthenticated, match="incorrect"):  # wrong password: no hint
        svc.login(user.username, "wrong-password")
    with pytest.raises(AccountDisabled):
        svc.principal_for_token(token.token)
    svc.update_staff(SYSTEM, user.user_id, disabled=False)
    # re-enabling raised the token version again: old tokens stay dead, a new login works
    with pytest.raises(NotAuthenticated, match="log in again"):
        svc.principal_for_token(token.token)
    token2, _ = svc.login(user.username, user.password)
    assert svc.principal_for_token(token2.token).role is Role.MAINTAINER


def test_password_and_role_changes_end_sessions(world: Tenancy) -> None:
    svc = world.service
    user = world.user("B", Role.FINANCE)
    principal = svc.principal_for_token(user.token)
    new_token = svc.change_own_password(principal, user.password, "a-new-password")
    with pytest.raises(NotAuthenticated, match="log in again"):
        svc.principal_for_token(user.token)
    assert svc.principal_for_token(new_token.token).role is Role.FINANCE
    with pytest.raises(PermissionDenied, match="current password"):
        svc.change_own_password(principal, "wrong", "another-password")
    with pytest.raises(InvalidInput, match="at least 8"):
        svc.change_own_password(svc.principal_for_token(new_token.token), "a-new-password",
                                "short")
    svc.login(user.username, "a-new-password")
    svc.update_staff(world.principal("B"), user.user_id, role=Role.READ_ONLY)
    with pytest.raises(NotAuthenticated):
        svc.principal_for_token(new_token.token)
    token, _ = svc.login(user.username, "a-new-password")
    assert svc.principal_for_token(token.token).scopes == ROLE_SCOPES[Role.READ_ONLY]


def test_role_ceiling_and_staff_visibility(world: Tenancy) -> None:
    svc = world.service
    op_a = world.principal("A")
    with pytest.raises(PermissionDenied, match="platform_admin"):
        svc.create_staff(op_a, world.a, "sneaky", "password-123", Role.PLATFORM_ADMIN)
    with pytest.raises(NotFound):
        svc.create_staff(op_a, world.b, "intruder", "password-123", Role.READ_ONLY)
    user, _ = svc.create_staff(op_a, world.agent_a, "agent-helper", "password-123",
                               Role.MAINTAINER)
    assert user.tenant_id == world.agent_a
    b_user = world.user("B", Role.READ_ONLY)
    with pytest.raises(NotFound):
        svc.update_staff(op_a, b_user.user_id, disabled=True)
    with pytest.raises(NotFound):
        svc.delete_staff(op_a, b_user.user_id)
    with pytest.raises(NotFound):
        svc.list_staff(op_a, tenant_id=world.b)
    listed = {u.tenant_id for u in svc.list_staff(op_a)}
    assert listed == {world.a, world.agent_a}
    # the agent's admin cannot touch its operator's users
    with pytest.raises(NotFound):
        svc.update_staff(world.principal("agentA"), world.user("A", Role.READ_ONLY).user_id,
                         disabled=True)
    # a finance user has no staff:admin
    with pytest.raises(PermissionDenied, match="staff:admin"):
        svc.create_staff(world.principal("A", Role.FINANCE), world.a, "x-user", "password-123",
                         Role.READ_ONLY)
    # nobody disables or demotes themselves
    me = world.user("A")
    with pytest.raises(PermissionDenied, match="yourself"):
        svc.update_staff(op_a, me.user_id, disabled=True)
    with pytest.raises(PermissionDenied, match="own role"):
        svc.update_staff(op_a, me.user_id, role=Role.READ_ONLY)
    with pytest.raises(PermissionDenied, match="yourself"):
        svc.delete_staff(op_a, me.user_id)
    # platform_admin only in the platform tenant, even for the platform admin
    with pytest.raises(InvalidInput, match="platform tenant only"):
        svc.create_staff(SYSTEM, world.a, "wrong-place", "password-123", Role.PLATFORM_ADMIN)
    # an operator admin cannot touch a platform admin (not visible anyway) ...
    with pytest.raises(NotFound):
        svc.update_staff(op_a, world.user("platform", Role.PLATFORM_ADMIN).user_id,
                         password="password-999")
    # ... and deletes users of its own tenants
    svc.delete_staff(op_a, user.id)
    with pytest.raises(NotFound):
        svc.get_staff(op_a, user.id)


def test_staff_input_checks_and_unique_usernames(world: Tenancy) -> None:
    svc = world.service
    for bad in ("ab", "-dash-first", "has space", "x" * 65):
        with pytest.raises(InvalidInput, match="username"):
            svc.create_staff(SYSTEM, world.a, bad, "password-123", Role.READ_ONLY)
    with pytest.raises(InvalidInput, match="unknown role"):
        svc.create_staff(SYSTEM, world.a, "someone", "password-123", "superuser")
    with pytest.raises(InvalidInput, match="at least 8"):
        svc.create_staff(SYSTEM, world.a, "someone", "short", Role.READ_ONLY)
    taken = world.user("B", Role.READ_ONLY).username
    with pytest.raises(Conflict, match="taken"):
        svc.create_staff(SYSTEM, world.a, taken.upper(), "password-123", Role.READ_ONLY)
    first, created = svc.create_staff(SYSTEM, world.a, "Retry.Me", "password-123",
                                      Role.READ_ONLY, idempotency_key="k1")
    again, created_again = svc.create_staff(SYSTEM, world.a, "retry.me", "password-123",
                                            Role.READ_ONLY, idempotency_key="k1")
    assert first.username == "retry.me" and created and not created_again and first == again
    with pytest.raises(Conflict, match="different request"):
        svc.create_staff(SYSTEM, world.a, "retry.other", "password-123", Role.READ_ONLY,
                         idempotency_key="k1")


def test_password_hash_is_upgraded_at_login(service: AuthService, engine: Engine,
                                            config: AuthConfig) -> None:
    platform, _ = service.create_tenant(SYSTEM, "P", "platform", None)
    service.create_staff(SYSTEM, platform.id, "upgrade-me", "password-123",
                         Role.READ_ONLY)
    with Session(engine) as db:
        old_hash = db.exec(select(StaffUser.password_hash)).one()
    assert old_hash.startswith("$argon2id$") and "password-123" not in old_hash
    stronger = config.model_copy(update={"password_hash": PasswordHashConfig(
        time_cost=FAST_HASH.time_cost + 1, memory_kib=512, parallelism=1)})
    upgraded = AuthService(engine, stronger, apply_env=False)
    upgraded.login("upgrade-me", "password-123")
    with Session(engine) as db:
        new_hash = db.exec(select(StaffUser.password_hash)).one()
    assert new_hash != old_hash and "t=2" in new_hash
    service.login("upgrade-me", "password-123")  # still verifies with the old parameters


def test_bootstrap_admin_once(engine: Engine, config: AuthConfig) -> None:
    boot = config.model_copy(update={"bootstrap": config.bootstrap.model_copy(
        update={"username": "Root", "password": "first-start-pw"})})
    svc = AuthService(engine, boot, apply_env=False)
    admin = svc.bootstrap()
    assert admin is not None and admin.username == "root" and admin.role == "platform_admin"
    assert svc.bootstrap() is None  # a staff user exists: nothing happens
    assert AuthService(engine, boot, apply_env=False).bootstrap() is None  # nor on another worker
    token, _ = svc.login("root", "first-start-pw")
    principal = svc.principal_for_token(token.token)
    assert principal.visible_tenants is None and principal.scopes == SCOPES
    assert [t.kind for t in svc.list_tenants(principal)] == ["platform"]


def test_bootstrap_needs_a_password_outside_dev(engine: Engine, config: AuthConfig) -> None:
    prod = config.model_copy(update={"dev": False})
    svc = AuthService(engine, prod, apply_env=False)
    with pytest.raises(AuthConfigError, match="VOLTMESH_ADMIN_PASSWORD"):
        svc.bootstrap()
    svc_env = AuthService(engine, prod.with_env({"VOLTMESH_ADMIN_PASSWORD": "from-the-env-1"}),
                          apply_env=False)
    assert svc_env.bootstrap() is not None
    svc_env.login("admin", "from-the-env-1")
    # dev mode makes up a password instead of refusing (nothing to do here: admin exists)
    assert AuthService(engine, config, apply_env=False).bootstrap() is None


# -- API keys -------------------------------------------------------------------------------

def test_api_key_scopes_must_be_known_and_held(world: Tenancy) -> None:
    svc = world.service
    op_a = world.principal("A")
    with pytest.raises(InvalidInput, match="unknown scopes: orders:delete"):
        svc.issue_api_key(op_a, "k", ["orders:read", "orders:delete"])
    with pytest.raises(PermissionDenied, match="tenants:admin"):
        svc.issue_api_key(op_a, "k", ["tenants:admin"])
    with pytest.raises(InvalidInput, match="at least one scope"):
        svc.issue_api_key(op_a, "k", [])
    with pytest.raises(NotFound):
        svc.issue_api_key(op_a, "k", ["orders:read"], tenant_id=world.b)
    with pytest.raises(InvalidInput, match="future"):
        svc.issue_api_key(op_a, "k", ["orders:read"], expires=utcnow() - timedelta(seconds=1))
    # a key with apikeys:admin may issue keys, but only with its own scopes
    keys_admin = svc.principal_for_api_key(
        svc.issue_api_key(op_a, "keys", ["apikeys:admin", "orders:read"]).key)
    with pytest.raises(PermissionDenied, match="orders:write"):
        svc.issue_api_key(keys_admin, "k2", ["orders:write"])
    issued = svc.issue_api_key(keys_admin, "k2", ["orders:read"], tenant_id=world.agent_a)
    principal = svc.principal_for_api_key(issued.key)
    assert principal.scopes == {"orders:read"} and principal.role is None
    assert principal.tenant_id == world.agent_a
    assert principal.visible_tenants == {world.agent_a}
    assert principal.subject == f"apikey:{issued.api_key.id}"
    assert issued.api_key.created_by == keys_admin.subject


def test_api_key_secret_is_never_stored_and_shown_once(world: Tenancy, engine: Engine) -> None:
    svc = world.service
    issued = svc.issue_api_key(world.principal("A"), "billing export",
                               sorted(READ_SCOPES), idempotency_key="once")
    token = issued.key
    assert token.startswith(f"vm_{issued.api_key.prefix}_")
    with Session(engine) as db:
        row = db.exec(select(ApiKey).where(ApiKey.id == issued.api_key.id)).one()
    secret = token.rsplit("_", 1)[1]
    assert secret not in row.secret_hash and token not in str(row.model_dump())
    listed = svc.list_api_keys(world.principal("A"))
    assert issued.api_key.id in {k.id for k in listed}
    assert all(secret not in k.model_dump_json() for k in listed)
    with pytest.raises(Conflict, match="shown only once"):
        svc.issue_api_key(world.principal("A"), "billing export", sorted(READ_SCOPES),
                          idempotency_key="once")


def test_api_key_revoked_expired_tampered(world: Tenancy, engine: Engine) -> None:
    svc = world.service
    key = world.key("B", "read")
    principal = svc.principal_for_api_key(key.key)
    assert principal.scopes == READ_SCOPES and principal.visible_tenants == {world.b}
    tampered = key.key[:-1] + ("A" if key.key[-1] != "A" else "B")
    with pytest.raises(NotAuthenticated, match="unknown API key"):
        svc.principal_for_api_key(tampered)
    with pytest.raises(NotAuthenticated, match="malformed"):
        svc.principal_for_api_key("vm_short_key")
    with pytest.raises(NotFound):  # A cannot revoke B's key
        svc.revoke_api_key(world.principal("A"), key.id)
    revoked = svc.revoke_api_key(world.principal("B"), key.id)
    assert revoked.revoked is not None
    assert svc.revoke_api_key(world.principal("B"), key.id).revoked == revoked.revoked
    with pytest.raises(NotAuthenticated, match="revoked"):
        svc.principal_for_api_key(key.key)
    assert key.id not in {k.id for k in svc.list_api_keys(world.principal("B"),
                                                          include_revoked=False)}

    soon = svc.issue_api_key(world.principal("B"), "soon", ["orders:read"],
                             expires=utcnow() + timedelta(hours=1))
    assert svc.principal_for_api_key(soon.key).tenant_id == world.b
    with Session(engine) as db:  # let it expire (through the service's revision, like an edit)
        db.execute(update(ApiKey).where(col(ApiKey.id) == soon.api_key.id)
                   .values(expires=utcnow() - timedelta(seconds=1)))
        db.commit()
    fresh = AuthService(engine, svc.config, apply_env=False)
    with pytest.raises(NotAuthenticated, match="expired"):
        fresh.principal_for_api_key(soon.key)


def test_api_key_last_used_is_recorded(world: Tenancy) -> None:
    svc = world.service
    key = world.key("A", "read")
    assert svc.get_api_key(SYSTEM, key.id).last_used is None
    svc.principal_for_api_key(key.key)
    used = svc.get_api_key(SYSTEM, key.id).last_used
    assert used is not None and abs((utcnow() - used).total_seconds()) < 3600


def test_two_workers_bootstrapping_at_once_make_one_admin(engine: Engine,
                                                          config: AuthConfig) -> None:
    boot = config.model_copy(update={"bootstrap": config.bootstrap.model_copy(
        update={"password": "first-start-pw"})})
    workers = [AuthService(engine, boot, apply_env=False) for _ in range(4)]
    barrier = threading.Barrier(len(workers))

    def start(svc: AuthService) -> object:
        barrier.wait(timeout=30)
        return svc.bootstrap()

    with ThreadPoolExecutor(len(workers)) as pool:
        results = list(pool.map(start, workers))
    assert len([r for r in results if r is not None]) == 1
    assert len(workers[0].list_staff(SYSTEM)) == 1
    assert [t.kind for t in workers[0].list_tenants(SYSTEM)] == ["platform"]
