"""Telemetry to InfluxDB through influxdb-client's asynchronous v2 write API.

Each :class:`~cloud.actions.WritePoint` becomes one line of line protocol with millisecond
precision: ``measurement,tag=value field=value <ts_ms>``. Field values:

* ``Decimal`` and ``int`` are written as floats: InfluxDB refuses a field whose type changes, and
  a property reported once as ``7`` and then as ``7.5`` would otherwise be rejected;
* ``bool`` stays a boolean; ``str`` is a string field (newlines become spaces);
* NaN and infinities are left out (line protocol cannot carry them); a point with no field left
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
import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import aiohttp
from influxdb_client.client.exceptions import InfluxDBError
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.client.write.point import Point as _Point
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from cloud.actions import Action, FieldValue, WritePoint
from cloud.sinks.config import InfluxConfig
from cloud.sinks.errors import PartialWriteError, PermanentError, RetryableError, WriteError

# influxdb-client is only partly annotated: use it through Any
Point: Any = _Point


def field_value(value: FieldValue) -> float | bool | str | None:
    """The value written for a field; None when it cannot be written (NaN, infinity)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | Decimal | float):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, str):
        return value.replace("\r", " ").replace("\n", " ")
    raise ValueError(f"field type {type(value).__name__} is not supported")


def line_of(point: WritePoint) -> str:
    """One point as line protocol (ms precision); ValueError if it cannot be written."""
    if not point.measurement or point.measurement.startswith("#"):
        raise ValueError(f"invalid measurement name {point.measurement!r}")
    if isinstance(point.ts_ms, bool) or not isinstance(point.ts_ms, int) or point.ts_ms < 0:
        raise ValueError(f"invalid timestamp {point.ts_ms!r} (ms since the epoch)")
    record = Point(point.measurement)
    for name, tag in point.tags.items():
        if not name:
            raise ValueError("empty tag name")
        record.tag(name, str(tag))
    fields = 0
    for name, raw in point.fields.items():
        if not name:
            raise ValueError("empty field name")
        value = field_value(raw)
        if value is not None:
            record.field(name, value)
            fields += 1
    if not fields:
        raise ValueError("no writable field (NaN or infinite values only, or none)")
    record.time(point.ts_ms, WritePrecision.MS)
    line: str = record.to_line_protocol()
    if not line:
        raise ValueError("point renders to no line protocol")
    return line


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
                await self._api.write(bucket=config.bucket, org=config.org, record=list(lines),
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
