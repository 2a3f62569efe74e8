"""Telemetry to InfluxDB through influxdb-client's asynchronous v2 write API.

Each :class:`~cloud.actions.WritePoint` becomes one line of line protocol with millisecond
precision: ``measurement,tag=value field=value <ts_ms>``, escaped exactly like influxdb-client's
``Point`` (property-tested against it) but nearly twice as fast; a batch goes out as one request
body. Field values:

* ``Decimal`` and ``int`` are written as floats: InfluxDB refuses a field whose type changes, and
  a property reported once as ``7`` and then as ``7.5`` would otherwise be rejected;
* ``bool`` stays a boolean; ``str`` is a string field (newlines become spaces);
* NaN, infinities and integers beyond float range are left out (line protocol cannot carry them); a point with no field left
  is invalid.

An invalid point (or an action that is not a WritePoint) is dropped as ``permanent`` without
holding back the rest of its batch. Server answers: 2xx written; 408, 429 (honouring
``Retry-After``) and 5xx retried; 401/403/404 (token, org, bucket) permanent for the batch;
other 4xx (bad data) permanent, each point then tried alone once. Connection errors and timeouts
are retried.

VictoriaMetrics accepts the same writes (used in tests and development): it names the metric
``<measurement>_<field>``, turns tags into labels, ignores org and bucket, and stores a string
field as 0 (see docs/sinks.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import aiohttp
from influxdb_client.client.exceptions import InfluxDBError
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from cloud.actions import Action, FieldValue, WritePoint
from cloud.sinks.config import InfluxConfig
from cloud.sinks.errors import PartialWriteError, PermanentError, RetryableError, WriteError

# the escapes of influxdb-client's Point (line protocol)
_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"})
_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\t": r"\t",
                      "\r": r"\r"})
_STRING = str.maketrans({'"': r'\"', "\\": r"\\", "\n": " ", "\r": " "})


#: escaped names and tag values seen recently (a dict is emptied when it reaches this size)
ESCAPE_CACHE = 16_384
_measurements: dict[str, str] = {}
_keys: dict[str, str] = {}
_tag_values: dict[str, str] = {}


def _escaped(cache: dict[str, str], text: str, table: dict[int, str]) -> str:
    out = cache.get(text)
    if out is None:
        out = text.translate(table)
        if len(cache) >= ESCAPE_CACHE:
            cache.clear()
        cache[text] = out
    return out


_NUMBERS = (float, int, Decimal)


def _field(value: FieldValue) -> str | None:
    number: float
    if type(value) is float:  # the usual case
        number = value
    elif value is True:
        return "true"
    elif value is False:
        return "false"
    elif isinstance(value, _NUMBERS):
        try:
            number = float(value)
        except OverflowError:  # an int beyond float range
            return None
    elif isinstance(value, str):
        return f'"{value.translate(_STRING)}"'
    else:
        raise ValueError(f"field type {type(value).__name__} is not supported")
    if number - number != 0.0:  # NaN or infinite
        return None
    text = repr(number)
    return text[:-2] if text.endswith(".0") else text


def line_of(point: WritePoint) -> str:
    """One point as line protocol (ms precision); ValueError if it cannot be written.

    Same escaping as influxdb-client's ``Point``; tags and fields sorted by name; empty tag
    values left out.
    """
    measurement = point.measurement
    if not measurement or measurement.startswith("#"):
        raise ValueError(f"invalid measurement name {measurement!r}")
    ts = point.ts_ms
    if isinstance(ts, bool) or not isinstance(ts, int) or ts < 0:
        raise ValueError(f"invalid timestamp {ts!r} (ms since the epoch)")
    parts = [_escaped(_measurements, measurement, _MEASUREMENT)]
    tags = point.tags
    for name in sorted(tags):
        if not name:
            raise ValueError("empty tag name")
        raw = tags[name]
        value = _escaped(_tag_values, raw, _KEY) if type(raw) is str \
            else str(raw).translate(_KEY)
        if value:
            if value.endswith("\\"):
                value += " "
            parts.append(f",{_escaped(_keys, name, _KEY)}={value}")
    fields = []
    values = point.fields
    for name in sorted(values):
        if not name:
            raise ValueError("empty field name")
        text = _field(values[name])
        if text is not None:
            fields.append(f"{_escaped(_keys, name, _KEY)}={text}")
    if not fields:
        raise ValueError("no writable field (NaN or infinite values only, or none)")
    parts.append(f" {','.join(fields)} {ts}")
    return "".join(parts)


def _retry_after(exc: Any) -> float | None:
    value = getattr(exc, "retry_after", None)
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


class InfluxSink:
    """The telemetry writer for :class:`~cloud.sinks.queue.SinkQueue` (one client, reused)."""

    def __init__(self, config: InfluxConfig) -> None:
        self.config = config
        self._client: Any = None
        self._api: Any = None

    async def __call__(self, batch: list[Action]) -> None:
        """Write the batch's points in one request."""
        lines: list[str] = []
        valid: list[Action] = []
        invalid: list[Action] = []
        reasons: dict[int, str] = {}
        for action in batch:
            if not isinstance(action, WritePoint):
                invalid.append(action)
                reasons[id(action)] = f"{type(action).__name__} is not a WritePoint"
                continue
            try:
                lines.append(line_of(action))
                valid.append(action)
            except ValueError as exc:
                invalid.append(action)
                reasons[id(action)] = f"invalid point: {exc}"
        if not invalid:
            await self._write(lines)
            return
        try:
            if lines:
                await self._write(lines)
        except RetryableError as exc:
            raise PartialWriteError(str(exc), retry=valid, failed=invalid,
                                    retry_after=exc.retry_after, reasons=reasons) from exc
        except PermanentError as exc:
            raise PermanentError(str(exc), items=batch) from exc
        raise PartialWriteError(f"{len(invalid)} invalid points", failed=invalid,
                                reasons=reasons)

    async def _write(self, lines: Sequence[str]) -> None:
        config = self.config
        if self._client is None:
            self._client = InfluxDBClientAsync(
                url=config.url, token=config.token, org=config.org,
                timeout=int(config.timeout * 1000), enable_gzip=config.gzip,
            )
            self._api = self._client.write_api()
        try:
            # the client's own timeout covers the request; this one covers everything else
            async with asyncio.timeout(config.timeout + 5):
                await self._api.write(bucket=config.bucket, org=config.org,
                                      record="\n".join(lines).encode(),
                                      write_precision=WritePrecision.MS)
        except ApiException as exc:
            raise self._classify(exc.status, exc, _retry_after(exc)) from exc
        except InfluxDBError as exc:
            raise RetryableError(f"InfluxDB: {exc}") from exc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise RetryableError(f"InfluxDB at {config.url} unreachable: "
                                 f"{type(exc).__name__}: {exc}") from exc

    @staticmethod
    def _classify(status: Any, exc: Exception, retry_after: float | None) -> WriteError:
        code = status if isinstance(status, int) else 0
        text = f"InfluxDB answered {code}: {getattr(exc, 'message', None) or exc}"
        if code in (0, 408, 429) or code >= 500:
            return RetryableError(text, retry_after=retry_after)
        if code in (401, 403, 404):
            return PermanentError(text, isolate=False)
        return PermanentError(text)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        client, self._client, self._api = self._client, None, None
        if client is not None:
            await client.close()
