"""Access tokens: claims, expiry, leeway, tampering, foreign algorithms, issuer and audience."""

from __future__ import annotations

import base64
import json
import time
import warnings

import jwt
import pytest

from cloud.auth.config import AuthConfig
from cloud.auth.errors import NotAuthenticated
from cloud.auth.tokens import TokenCodec

SECRET = "s" * 20 + "-unit-test-secret-0123"


def codec(**kw: object) -> TokenCodec:
    return TokenCodec(AuthConfig.model_validate({"jwt_secret": SECRET, **kw}))


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_round_trip_and_claims() -> None:
    c = codec(token_ttl=600, issuer="vm-test", audience="vm-api")
    issued = c.issue(7, "tenant-a", "finance", 3)
    assert issued.expires_in == 600
    claims = c.decode(issued.token)
    assert (claims.user_id, claims.tenant_id, claims.role, claims.version) == \
        (7, "tenant-a", "finance", 3)
    raw = jwt.decode(issued.token, SECRET, algorithms=["HS256"], audience="vm-api")
    assert raw["iss"] == "vm-test" and raw["sub"] == "user:7" and raw["exp"] - raw["iat"] == 600
    assert jwt.get_unverified_header(issued.token)["alg"] == "HS256"
    assert c.issue(7, "tenant-a", "finance", 3).token != issued.token  # jti differs


def test_expiry_with_small_leeway() -> None:
    c = codec(leeway=5)
    expired = c.issue(1, "t", "read_only", 0, now=time.time() - 120, ttl=60)
    with pytest.raises(NotAuthenticated, match="expired"):
        c.decode(expired.token)
    just_expired = c.issue(1, "t", "read_only", 0, now=time.time() - 62, ttl=60)
    assert c.decode(just_expired.token).user_id == 1  # within the 5 s leeway
    future = c.issue(1, "t", "read_only", 0, now=time.time() + 3600)
    with pytest.raises(NotAuthenticated, match="invalid token"):
        c.decode(future.token)  # not yet valid (iat/nbf in the future)


def test_tampered_and_foreign_tokens_refused() -> None:
    c = codec()
    token = c.issue(1, "tenant-a", "read_only", 0).token
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "platform_admin"
    with pytest.raises(NotAuthenticated, match="invalid token"):
        c.decode(f"{header}.{_b64(claims)}.{signature}")
    with pytest.raises(NotAuthenticated, match="invalid token"):
        c.decode(token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    # alg "none" (no signature) and other algorithms are refused
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    with pytest.raises(NotAuthenticated):
        c.decode(unsigned)
    with warnings.catch_warnings():  # the short key for HS512 is the point here
        warnings.simplefilter("ignore")
        hs512 = jwt.encode(claims, SECRET, algorithm="HS512")
    with pytest.raises(NotAuthenticated, match="invalid token"):
        c.decode(hs512)
    # another secret, issuer or audience
    for other in (codec(jwt_secret="x" * 40), codec(issuer="someone-else"),
                  codec(audience="another-api")):
        with pytest.raises(NotAuthenticated, match="invalid token"):
            c.decode(other.issue(1, "t", "read_only", 0).token)
    with pytest.raises(NotAuthenticated, match="too long"):
        c.decode("a" * 5000)
    with pytest.raises(NotAuthenticated):
        c.decode("not-a-jwt")


def test_required_claims_and_their_types() -> None:
    c = codec()
    now = int(time.time())
    base = {"iss": "voltmesh", "aud": "voltmesh-api", "iat": now, "exp": now + 60,
            "sub": "user:1", "tenant": "t", "role": "read_only", "ver": 0}
    assert c.decode(jwt.encode(base, SECRET, algorithm="HS256")).user_id == 1
    for missing in ("exp", "tenant", "ver", "sub"):
        claims = {k: v for k, v in base.items() if k != missing}
        with pytest.raises(NotAuthenticated, match="invalid token"):
            c.decode(jwt.encode(claims, SECRET, algorithm="HS256"))
    for bad in ({"sub": "apikey:1"}, {"sub": "user:x"}, {"ver": "0"}, {"ver": True},
                {"tenant": 5}):
        with pytest.raises(NotAuthenticated, match="malformed claims"):
            c.decode(jwt.encode({**base, **bad}, SECRET, algorithm="HS256"))
