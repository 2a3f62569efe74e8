"""Access tokens: HS256 JWTs for staff users.

Claims: ``iss``, ``aud``, ``iat``, ``nbf``, ``exp``, ``jti``, ``sub`` (``user:<id>``), ``tenant``
(the user's tenant id), ``role`` and ``ver`` (the user's token version, see
:class:`cloud.auth.models.StaffUser`). Decoding checks the signature with HS256 only (the
``alg`` header cannot choose another algorithm), issuer, audience, and the times with the
configured leeway.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt

from cloud.auth.config import AuthConfig
from cloud.auth.errors import NotAuthenticated

ALGORITHM = "HS256"
MAX_TOKEN_LENGTH = 4096
_REQUIRED = ["iss", "aud", "iat", "exp", "sub", "tenant", "role", "ver"]


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """The verified content of a token."""

    user_id: int
    tenant_id: str
    role: str
    version: int
    expires: int
    token_id: str


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A signed token and its lifetime in seconds."""

    token: str
    expires_in: int


class TokenCodec:
    """Signs and verifies access tokens; refuses the example secret outside dev mode."""

    def __init__(self, config: AuthConfig) -> None:
        self._secret = config.signing_secret()
        self._ttl = config.token_ttl
        self._issuer = config.issuer
        self._audience = config.audience
        self._leeway = config.leeway

    def issue(self, user_id: int, tenant_id: str, role: str, version: int, *,
              now: float | None = None, ttl: int | None = None) -> IssuedToken:
        """A token for a user (``now``/``ttl`` for tests of expiry)."""
        issued = int(time.time() if now is None else now)
        ttl = self._ttl if ttl is None else ttl
        claims: dict[str, Any] = {
            "iss": self._issuer, "aud": self._audience, "iat": issued, "nbf": issued,
            "exp": issued + ttl, "jti": secrets.token_urlsafe(12), "sub": f"user:{user_id}",
            "tenant": tenant_id, "role": role, "ver": version,
        }
        return IssuedToken(jwt.encode(claims, self._secret, algorithm=ALGORITHM), ttl)

    def decode(self, token: str) -> TokenClaims:
        """The claims of a valid token; :class:`NotAuthenticated` with the reason otherwise."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise NotAuthenticated("invalid token: too long")
        try:
            claims = jwt.decode(token, self._secret, algorithms=[ALGORITHM],
                                audience=self._audience, issuer=self._issuer,
                                leeway=self._leeway, options={"require": _REQUIRED})
        except jwt.ExpiredSignatureError:
            raise NotAuthenticated("token expired") from None
        except jwt.InvalidTokenError as exc:
            raise NotAuthenticated(f"invalid token: {exc}") from None
        sub, tenant, role, ver = claims["sub"], claims["tenant"], claims["role"], claims["ver"]
        if not (isinstance(sub, str) and sub.startswith("user:") and sub[5:].isdigit()
                and isinstance(tenant, str) and isinstance(role, str)
                and isinstance(ver, int) and not isinstance(ver, bool)):
            raise NotAuthenticated("invalid token: malformed claims")
        return TokenClaims(user_id=int(sub[5:]), tenant_id=tenant, role=role, version=ver,
                           expires=int(claims["exp"]), token_id=str(claims.get("jti", "")))
