"""An independent strict check of every frame the CSMS sends to a simulated charge point.

The gateway validates what it encodes (:func:`bridges.ocpp.encode_call` /
:func:`~bridges.ocpp.encode_call_result`); this is the second opinion on the wire, in the
charger's role: each text frame received is decoded with the official schema of its OCPP
version (strict: no lenient mode, unknown fields refused) -- a CALL must be one the CSMS may
send, a CALLRESULT is validated against the response schema of the call it answers -- and every
``date-time`` is checked as RFC 3339 (the ``ocpp`` library's validators skip formats). A
violation is logged, kept on the simulator (``sim.wire_violations``) and in
:data:`VIOLATIONS` (process-wide, so a test fixture can assert that no frame of any test broke
the schema); the frame is still handed to the library as received.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from jsonschema import FormatChecker  # type: ignore[import-untyped]
from websockets.exceptions import ConnectionClosed

from bridges.ocpp import Call, CallResult, FrameError, OcppVersion, Role, decode_frame
from bridges.ocpp.errors import TimestampError
from bridges.ocpp.rpc import CALL, CALL_ERROR, CALL_RESULT, _plain, _validator
from bridges.ocpp.timestamps import parse_timestamp_ms

log = logging.getLogger("voltmesh.sim.ocpp.wire")

VIOLATIONS: list[str] = []
"""Every violation seen in this process (tests clear it and assert it stays empty)."""

def _date_time(value: object) -> bool:
    if isinstance(value, str):
        parse_timestamp_ms(value)
    return True


_FORMATS = FormatChecker(formats=())
_FORMATS.checks("date-time", raises=(TimestampError,))(_date_time)


def _formats(version: OcppVersion, type_id: int, action: str, payload: Mapping[str, Any]
             ) -> list[str]:
    validator = _validator(version, type_id, action).evolve(format_checker=_FORMATS)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(_plain(payload)) if e.validator == "format"]


class WireCheck:
    """One connection's check: ``sent(text)`` for what the charger sends (to know which
    action a CALLRESULT answers), ``received(text)`` for what the CSMS sends."""

    def __init__(self, charge_point_id: str, version: OcppVersion, sink: list[str]) -> None:
        self.charge_point_id = charge_point_id
        self.version = version
        self.sink = sink
        self.pending: dict[str, str] = {}
        self.checked = 0

    def sent(self, text: str | bytes) -> None:
        try:
            frame = json.loads(text)
        except ValueError:
            return
        if isinstance(frame, list) and len(frame) == 4 and frame[0] == CALL:
            self.pending[str(frame[1])] = str(frame[2])

    def received(self, text: str | bytes) -> None:
        self.checked += 1
        try:
            frame = decode_frame(text, self.version, receiver=Role.CHARGE_POINT,
                                 pending=self.pending, validate=True, max_bytes=None)
        except FrameError as exc:
            self._violation(f"{exc.code.value}: {exc}", text)
            return
        problems: list[str] = []
        if isinstance(frame, Call):
            problems = _formats(self.version, CALL, frame.action, frame.payload)
        elif isinstance(frame, CallResult):
            action = self.pending.pop(frame.unique_id, None)
            if action is None:
                problems = [f"CALLRESULT {frame.unique_id} answers no call of ours"]
            else:
                problems = _formats(self.version, CALL_RESULT, action, frame.payload)
        else:
            self.pending.pop(frame.unique_id, None)
        for problem in problems:
            self._violation(problem, text)

    def _violation(self, problem: str, text: str | bytes) -> None:
        raw = text if isinstance(text, str) else text.decode("utf-8", "replace")
        entry = f"{self.charge_point_id} (OCPP {self.version}): {problem}: {raw[:300]}"
        log.error("the CSMS sent a frame that breaks the schema: %s", entry)
        self.sink.append(entry)
        VIOLATIONS.append(entry)


@dataclass(frozen=True, slots=True)
class WireFrame:
    """One text frame on a simulator's WebSocket: ``in`` = from the CSMS, ``out`` = to it;
    ``at`` = :func:`time.monotonic` when the charger read it from / wrote it to the socket."""

    direction: Literal["in", "out"]
    text: str
    at: float

    def frame(self) -> list[Any] | None:
        """The decoded OCPP-J array (None when it is not one)."""
        try:
            value = json.loads(self.text)
        except ValueError:
            return None
        return value if isinstance(value, list) and len(value) >= 2 else None


class CheckedConnection:
    """The WebSocket as the ``ocpp`` library's ChargePoint sees it, with a :class:`WireCheck`
    on both directions (everything else is the real connection's).

    Test knobs (off by default): ``log`` records every frame in both directions as
    :class:`WireFrame`; CALLs of an action in ``unanswered`` are received (logged, checked)
    but never handed to the library, so never answered (a hung charger); ``answer_delay_s``
    holds every answer to a CSMS call that long without blocking the receive loop (a slow
    charger: what the CSMS sends meanwhile is still read, and logged, when it arrives).
    """

    def __init__(self, ws: Any, check: WireCheck, *, log: list[WireFrame] | None = None,
                 unanswered: frozenset[str] = frozenset(), answer_delay_s: float = 0.0) -> None:
        self._ws = ws
        self.check = check
        self.log = log
        self.unanswered = unanswered
        self.answer_delay_s = answer_delay_s
        self._held: set[asyncio.Task[None]] = set()

    async def recv(self) -> str | bytes:
        while True:
            message: str | bytes = await self._ws.recv()
            self._record("in", message)
            self.check.received(message)
            if not self.unanswered or _call_action(message) not in self.unanswered:
                return message
            log.info("%s: leaving %s unanswered (test knob)", self.check.charge_point_id,
                     _call_action(message))

    async def send(self, message: str | bytes) -> None:
        self.check.sent(message)
        if self.answer_delay_s > 0 and _type_id(message) in (CALL_RESULT, CALL_ERROR):
            task = asyncio.create_task(self._send_later(message))
            self._held.add(task)
            task.add_done_callback(self._held.discard)
            return
        self._record("out", message)
        await self._ws.send(message)

    async def _send_later(self, message: str | bytes) -> None:
        await asyncio.sleep(self.answer_delay_s)
        with contextlib.suppress(ConnectionClosed):
            self._record("out", message)
            await self._ws.send(message)

    def _record(self, direction: Literal["in", "out"], message: str | bytes) -> None:
        if self.log is not None:
            text = message if isinstance(message, str) else message.decode("utf-8", "replace")
            self.log.append(WireFrame(direction, text, time.monotonic()))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ws, name)


def _type_id(message: str | bytes) -> int | None:
    head = message[:8] if isinstance(message, str) else message[:8].decode("utf-8", "replace")
    digits = head.lstrip("[ ").split(",", 1)[0].strip()
    return int(digits) if digits.isdigit() else None


def _call_action(message: str | bytes) -> str | None:
    if _type_id(message) != CALL:
        return None
    try:
        frame = json.loads(message)
    except ValueError:
        return None
    return str(frame[2]) if isinstance(frame, list) and len(frame) == 4 else None
