"""HTTP POSTs to third parties (:class:`~cloud.actions.PostWebhook`).

The body is JSON (decimals as strings, like on the wire); every request carries
``Idempotency-Key: <action.key>``, the same on every retry, so the receiver can drop repeats.
Connection errors, timeouts, 408, 429 (honouring ``Retry-After`` in seconds) and 5xx are
retried; any other status outside 2xx (4xx, and 3xx: redirects are not followed) is permanent:
counted, logged and dropped.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from cloud.actions import Action, PostWebhook
from cloud.sinks.each import write_each
from cloud.sinks.errors import PermanentError, RetryableError
from thingmodels.validate import to_wire

USER_AGENT = "voltmesh-webhook/1"


def _json_default(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


class WebhookSink:
    """POSTs each action of a batch (concurrently); pass your own client or get one."""

    def __init__(self, client: httpx.AsyncClient | None = None) -> None:
        self._own = client is None
        self._client = client

    async def __call__(self, batch: list[Action]) -> None:
        """POST every webhook of the batch."""
        await write_each(batch, self._post)

    async def _post(self, action: Action) -> None:
        if not isinstance(action, PostWebhook):
            raise PermanentError(f"{type(action).__name__} is not a PostWebhook")
        try:
            body = json.dumps(to_wire(action.body), default=_json_default,
                              separators=(",", ":")).encode()
        except (TypeError, ValueError) as exc:
            raise PermanentError(f"webhook body is not JSON: {exc}") from exc
        headers = {"User-Agent": USER_AGENT, **action.headers,
                   "Content-Type": "application/json", "Idempotency-Key": action.key}
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False)
        try:
            response = await self._client.post(action.url, content=body, headers=headers,
                                               timeout=action.timeout_s)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise PermanentError(f"webhook URL {action.url!r}: {exc}") from exc
        except httpx.TransportError as exc:  # connect, read, write, pool, timeouts, protocol
            raise RetryableError(f"POST {action.url}: {type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if 200 <= status < 300:
            return
        text = f"POST {action.url} answered {status}"
        if status in (408, 429) or status >= 500:
            raise RetryableError(text, retry_after=_retry_after(response))
        raise PermanentError(text)

    async def aclose(self) -> None:
        """Close the HTTP client if this sink made it."""
        client, self._client = self._client, None
        if client is not None and self._own:
            await client.aclose()
