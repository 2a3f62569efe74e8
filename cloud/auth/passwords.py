"""Password hashing: Argon2id through argon2-cffi (see docs/auth.md for why).

:meth:`Passwords.verify` takes the same time whether or not the user exists (an unknown user is
checked against a dummy hash), and the comparison inside argon2 is constant-time.
"""

from __future__ import annotations

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from cloud.auth.config import MIN_PASSWORD_LENGTH, PasswordHashConfig
from cloud.auth.errors import InvalidInput

MAX_PASSWORD_LENGTH = 256


def check_password_policy(password: str) -> None:
    """Refuse passwords that are too short or too long (the only rules; see NIST SP 800-63B)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"the password must have at most {MAX_PASSWORD_LENGTH} characters")


class Passwords:
    """Hash and verify passwords with the configured Argon2id cost."""

    def __init__(self, config: PasswordHashConfig) -> None:
        self._hasher = PasswordHasher(time_cost=config.time_cost, memory_cost=config.memory_kib,
                                      parallelism=config.parallelism, type=Type.ID)
        self._dummy = self._hasher.hash("voltmesh-dummy-password-for-unknown-users")

    def hash(self, password: str) -> str:
        """A new salted hash (policy-checked)."""
        check_password_policy(password)
        return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored_hash`` (None: unknown user, always False)."""
        if len(password) > MAX_PASSWORD_LENGTH:
            return False
        try:
            self._hasher.verify(stored_hash or self._dummy, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return stored_hash is not None

    def needs_rehash(self, stored_hash: str) -> bool:
        """Whether the hash was made with other parameters than the configured ones."""
        try:
            return self._hasher.check_needs_rehash(stored_hash)
        except InvalidHashError:  # pragma: no cover - only hashes we made are stored
            return True
