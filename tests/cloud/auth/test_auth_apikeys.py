"""The API key format: generation, parsing, hashing."""

from __future__ import annotations

import re

from cloud.auth import apikeys


def test_generate_parse_match() -> None:
    keys = [apikeys.generate() for _ in range(50)]
    assert len({k.token for k in keys}) == 50 and len({k.prefix for k in keys}) == 50
    for key in keys:
        assert re.fullmatch(r"vm_[a-z0-9]{10}_[A-Za-z0-9]{40}", key.token)
        assert apikeys.parse(key.token) == key.prefix
        assert apikeys.matches(key.token, key.secret_hash)
        assert key.token not in key.secret_hash and len(key.secret_hash) == 64
    one, two = keys[0], keys[1]
    assert not apikeys.matches(two.token, one.secret_hash)
    forged = f"vm_{one.prefix}_{two.token.rsplit('_', 1)[1]}"  # right prefix, wrong secret
    assert apikeys.parse(forged) == one.prefix and not apikeys.matches(forged, one.secret_hash)


def test_malformed_keys() -> None:
    good = apikeys.generate().token
    for bad in ("", "vm_", "vm_abc_def", good + "x", good[:-1], " " + good, good.upper(),
                good.replace("vm_", "xx_"), good[:13] + "-" + good[14:]):
        assert apikeys.parse(bad) is None, bad
    assert apikeys.looks_like_key("vm_whatever") and not apikeys.looks_like_key("eyJhbGc")
