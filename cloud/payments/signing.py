"""Request signatures of WeChat Pay API v2 (``sign_type=HMAC-SHA256``).

The algorithm (WeChat Pay "安全规范", pay.weixin.qq.com/wiki/doc/api/native.php?chapter=4_3):
take every parameter with a non-empty value except ``sign``, sort by name (ASCII), join as
``k1=v1&k2=v2…``, append ``&key=<API key>``, HMAC-SHA256 with the API key, upper-case hex.
Verification recomputes it over all received parameters (new fields included) and compares in
constant time. The test vector of that page is in the tests.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

SIGN_TYPE = "HMAC-SHA256"


def canonical(params: Mapping[str, str]) -> str:
    """The string that is signed (without the key)."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params)
                    if k != "sign" and params[k] != "")


def sign(params: Mapping[str, str], api_key: str) -> str:
    """The HMAC-SHA256 signature of ``params`` (upper-case hex)."""
    message = f"{canonical(params)}&key={api_key}".encode()
    return hmac.new(api_key.encode(), message, hashlib.sha256).hexdigest().upper()


def verify(params: Mapping[str, str], api_key: str) -> bool:
    """Whether ``params["sign"]`` is the signature of the other parameters. A ``sign_type``
    other than HMAC-SHA256 (MD5) is refused: no downgrade."""
    given = params.get("sign", "")
    if params.get("sign_type", SIGN_TYPE) != SIGN_TYPE or not given:
        return False
    return hmac.compare_digest(sign(params, api_key), given.upper())
