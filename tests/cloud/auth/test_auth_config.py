"""AuthConfig: the example secret is refused outside dev mode, env overrides, unknown keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from cloud.auth.config import EXAMPLE_JWT_SECRET, AuthConfig, PasswordHashConfig
from cloud.auth.errors import AuthConfigError
from cloud.auth.tokens import TokenCodec
from cloud.errors import ConfigError
from thingmodels.errors import ModelFileError
from thingmodels.yamlfile import load_validated

GOOD_SECRET = "k" * 16 + "0123456789abcdefXYZ"


def test_default_secret_refused_unless_dev() -> None:
    with pytest.raises(AuthConfigError, match="example secret"):
        TokenCodec(AuthConfig())
    with pytest.raises(AuthConfigError, match="example secret"):
        AuthConfig(jwt_secret=EXAMPLE_JWT_SECRET).signing_secret()
    assert AuthConfig(dev=True).signing_secret() == EXAMPLE_JWT_SECRET
    assert AuthConfig(jwt_secret=GOOD_SECRET).signing_secret() == GOOD_SECRET
    assert issubclass(AuthConfigError, ConfigError)


def test_missing_secret_refused_unless_dev() -> None:
    with pytest.raises(AuthConfigError, match="not set"):
        AuthConfig(jwt_secret=None).signing_secret()
    dev = AuthConfig(jwt_secret=None, dev=True)
    secret = dev.signing_secret()
    assert len(secret) >= 32 and dev.signing_secret() == secret  # stable per config
    assert AuthConfig(jwt_secret=None, dev=True).signing_secret() != secret


def test_short_secret_and_bad_values_refused() -> None:
    with pytest.raises(ValidationError, match="at least 32"):
        AuthConfig(jwt_secret="short")
    with pytest.raises(ValidationError):
        AuthConfig(token_ttl=5)
    with pytest.raises(ValidationError, match="8 \\* parallelism"):
        PasswordHashConfig(memory_kib=64, parallelism=16)
    with pytest.raises(ValidationError, match="Extra inputs"):
        AuthConfig.model_validate({"jwt_secret": GOOD_SECRET, "jwt_secrte": "typo"})
    with pytest.raises(ValidationError, match="Extra inputs"):
        AuthConfig.model_validate({"bootstrap": {"user": "admin"}})


def test_environment_overrides() -> None:
    base = AuthConfig(jwt_secret=GOOD_SECRET)
    assert base.with_env({}) is base
    env = {"VOLTMESH_JWT_SECRET": "e" * 40, "VOLTMESH_ADMIN_USERNAME": "boss",
           "VOLTMESH_ADMIN_PASSWORD": "boss-password"}
    over = base.with_env(env)
    assert over.jwt_secret == "e" * 40
    assert (over.bootstrap.username, over.bootstrap.password) == ("boss", "boss-password")
    assert base.jwt_secret == GOOD_SECRET  # the original is unchanged
    with pytest.raises(ValidationError):  # overrides are validated like file values
        base.with_env({"VOLTMESH_JWT_SECRET": "too-short"})
    with pytest.raises(ValidationError):
        base.with_env({"VOLTMESH_ADMIN_PASSWORD": "short"})


def test_loads_from_yaml_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "auth.yaml"
    path.write_text(f"jwt_secret: {GOOD_SECRET}\ntoken_ttl: 900\nbootstrap:\n  username: root\n")
    config = load_validated(path, AuthConfig)
    assert config.token_ttl == 900 and config.bootstrap.username == "root"
    path.write_text("token_ttl: 900\nleeway: 9999\n")
    with pytest.raises(ModelFileError, match="leeway"):
        load_validated(path, AuthConfig)
