"""OCPP-J 1.6 and 2.0.1 charge points over WebSocket.

``ws://HOST:PORT{path}/{chargePointId}`` (default ``/ocpp``), subprotocol ``ocpp1.6`` or
``ocpp2.0.1`` negotiated per connection. Security profile 1 (HTTP Basic, a password per charger
whose SHA-256 the cloud provisions) and profile 2 (the same over TLS). Translation is
:mod:`bridges.ocpp`'s; this module owns the connections:

* the receive loop never waits on a handler: CALLRESULTs and CALLERRORs resolve the waiting
  CSMS call at once; the charger's CALLs are handled in order by a per-connection worker, so a
  slow decision (Authorize) never blocks the answers to our own calls. The worker runs only
  while CALLs wait (an idle connection holds no worker task and no queue);
* one CSMS call in flight per charger, queued, each with its deadline;
* a duplicate message id (of the charger's last ``answers_kept`` CALLs) is answered with the
  same answer, never handled twice;
* what a connection costs in memory (docs/protocols/ocpp.md "Memory per connection"):
  permessage-deflate only when configured (``compression``: its zlib state is ~50 KB per
  connection), the handshake's headers are dropped once the connection is accepted;
* malformed JSON, wrong frame shapes, unknown actions and schema violations get the right
  CALLERROR and the connection survives; frames over ``max_frame_bytes`` are refused; a charger
  in ``lenient`` mode skips schema validation and its deviations are counted;
* a charger that reconnects with the same id replaces its old connection; the old one's close
  does not mark the new one offline (no ghost sessions);
* session events are emitted with the translator's idempotency keys, so a replayed offline
  StopTransaction / TransactionEvent makes no second event;
* a failed opening handshake (garbage, no upgrade, unknown path or charger, bad credentials)
  is one WARNING line with the peer and the reason, counted in ``ocpp_handshake_failures``:
  websockets would log the ones it detects itself at ERROR with a traceback.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import ssl
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from bridges.ocpp import (
    Call,
    CallError,
    CallResult,
    DeviceIdError,
    FrameError,
    MappingError,
    OcppBridgeError,
    ServiceError,
    UnsupportedService,
    call_error_for,
    decode_frame,
    encode_call,
    encode_call_error,
    encode_call_result,
    parse_device_id,
)
from bridges.ocpp.actions import Role
from bridges.ocpp.devices import check_charge_point_id
from bridges.ocpp.responses import (
    authorize_response,
    boot_response,
    data_transfer_response,
    empty_response,
    heartbeat_response,
    start_transaction_response,
    stop_transaction_response,
    transaction_event_response,
)
from bridges.ocpp.rpc import CALL_RESULT
from bridges.ocpp.services import service_output, service_request
from bridges.ocpp.sessions import SessionState, start_transaction_key
from bridges.ocpp.translation import MessageKind, ThingMessage
from bridges.ocpp.translator import ChargePointTranslator
from bridges.ocpp.versions import SUBPROTOCOLS, OcppVersion
from edge.adapter import Adapter
from edge.config import OcppConfig
from edge.context import EdgeContext
from edge.errors import (
    DeviceOffline,
    DeviceRejected,
    DeviceTimeout,
    OutboxError,
    ServiceNotSupported,
)
from thingmodels.errors import PayloadError
from thingmodels.ids import new_id, now_ms

log = logging.getLogger("voltmesh.edge.ocpp")

#: frame errors that are schema violations (what lenient mode tolerates)
_SCHEMA_CODES = frozenset({"PropertyConstraintViolation", "OccurrenceConstraintViolation",
                           "TypeConstraintViolation"})


def password_hash(password: str) -> str:
    """How charger passwords are provisioned: hex SHA-256."""
    return hashlib.sha256(password.encode()).hexdigest()


class _HandshakeLog(logging.LoggerAdapter[logging.Logger]):
    """The logger handed to the websockets server: its "opening handshake failed" (logged at
    ERROR with a traceback for every bad client) becomes the adapter's one WARNING line and
    counter; everything else passes through to ``websockets.server``."""

    def __init__(self, adapter: OcppAdapter) -> None:
        super().__init__(logging.getLogger("websockets.server"), {})
        self.adapter = adapter

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - logging's name
        # failures are counted even where the websockets logger is silenced
        return level >= logging.ERROR or super().isEnabledFor(level)

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if msg == "opening handshake failed" and kwargs.get("exc_info"):
            ws = (kwargs.get("extra") or {}).get("websocket")
            self.adapter.handshake_failed(ws, _reason(sys.exc_info()[1]))
            return
        if self.logger.isEnabledFor(level):
            super().log(level, msg, *args, **kwargs)


def _reason(exc: BaseException | None) -> str:
    """An exception and its causes on one line."""
    parts: list[str] = []
    while exc is not None and len(parts) < 4:
        parts.append(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        exc = exc.__cause__ or exc.__context__
    return "; ".join(parts)[:300] or "unknown"


def _printable(text: str) -> str:
    """Client bytes in a log line: control characters replaced."""
    return "".join(c if c.isprintable() else "?" for c in text)


def _peer(ws: ServerConnection | None) -> str:
    try:
        address = ws.remote_address if ws is not None else None
    except (AttributeError, OSError):
        address = None
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address) if address else "?"


@dataclass(slots=True, eq=False)
class ChargePointConnection:
    """One connected charge point (thousands per gateway: every field costs RSS per charger)."""

    adapter: OcppAdapter
    ws: ServerConnection
    cp_id: str
    version: OcppVersion
    lenient: bool
    translator: ChargePointTranslator = field(init=False)
    #: the charger's CALLs waiting for the worker, in order (a list: almost always 0 or 1)
    backlog: list[Call] = field(default_factory=list)
    pending: dict[str, tuple[str, asyncio.Future[CallResult | CallError]]] = field(
        default_factory=dict)
    #: message id -> answer sent, the last ``answers_kept`` (dict order = age)
    answered: dict[str, str] = field(default_factory=dict)
    call_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    closed: bool = False
    devices: set[tuple[str, str]] = field(default_factory=set)
    _tasks: asyncio.TaskGroup | None = field(default=None, init=False, repr=False)
    _worker_task: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        # the translator holds the open sessions: it outlives a connection, so a charger that
        # reconnects mid-session goes on with the same transactions
        self.translator = self.adapter.translator(self.cp_id, self.version)

    @property
    def ctx(self) -> EdgeContext:
        assert self.adapter.ctx is not None
        return self.adapter.ctx

    @property
    def src(self) -> str:
        return self.version.src

    # -- receiving -------------------------------------------------------------------------

    async def serve(self) -> None:
        """Receive until the socket closes; CALLs go to the worker."""
        async with asyncio.TaskGroup() as tg:
            self._tasks = tg
            try:
                while True:  # recv() rather than ``async for``: no async generator per charger
                    await self._receive(await self.ws.recv())
            except ConnectionClosed:
                pass
            finally:
                self.closed = True
                self._tasks = None
                if self._worker_task is not None:
                    self._worker_task.cancel()
                for _, future in self.pending.values():
                    if not future.done():
                        future.set_exception(DeviceOffline("connection closed"))

    async def _receive(self, message: str | bytes) -> None:
        pending = {uid: action for uid, (action, _) in self.pending.items()}
        try:
            try:
                frame = decode_frame(message, self.version, receiver=Role.CSMS, pending=pending,
                                     max_bytes=self.adapter.config.max_frame_bytes)
            except FrameError as exc:
                if not self.lenient or exc.code not in _SCHEMA_CODES:
                    raise
                # a known real-world deviation from a charger in lenient mode: accept, count
                self.adapter.count("ocpp_lenient_deviations")
                self.ctx.report("charger", self.cp_id, {
                    "lenientCount": self.ctx.stats.counters["ocpp_lenient_deviations"]},
                    src=self.src)
                frame = decode_frame(message, self.version, receiver=Role.CSMS,
                                     pending=pending, validate=False,
                                     max_bytes=self.adapter.config.max_frame_bytes)
        except FrameError as exc:
            self.adapter.count(f"ocpp_frame_error_{exc.code}")
            self.ctx.stats.inc("malformed_frames")
            log.warning("charger %s sent a bad frame: %s", self.cp_id, exc)
            if exc.answerable:
                await self._send(call_error_for(exc, self.version))
            elif exc.message_type_id == CALL_RESULT and exc.unique_id in self.pending:
                # the answer to our call broke its schema: the call fails now (409), not at
                # its deadline; nothing is sent back (a CALLERROR never answers a CALLRESULT)
                future = self.pending[exc.unique_id][1]
                if not future.done():
                    future.set_result(CallError(exc.unique_id, exc.wire_code(self.version),
                                                f"answer breaks the schema: {exc.description}"
                                                [:200]))
            return
        if isinstance(frame, Call):
            if frame.unique_id in self.answered:
                self.adapter.count("ocpp_duplicate_ids")
                await self._send(self.answered[frame.unique_id])
                return
            self.backlog.append(frame)
            if self._worker_task is None and self._tasks is not None:
                self._worker_task = self._tasks.create_task(
                    self._worker(), name=f"ocpp-worker-{self.cp_id}")
            return
        entry = self.pending.get(frame.unique_id)
        if entry is None:
            self.adapter.count("ocpp_unsolicited_results")
            return
        if not entry[1].done():
            entry[1].set_result(frame)

    async def _send(self, text: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(text)

    async def _worker(self) -> None:
        """Handle the backlog in order; ends when it is empty (the next CALL starts another)."""
        try:
            while self.backlog:
                await self._answer(self.backlog.pop(0))
        finally:
            self._worker_task = None

    async def _answer(self, call: Call) -> None:
        """Handle one CALL and send its answer (kept for a duplicate of its id)."""
        try:
            answer = await self.handle(call)
        except (MappingError, PayloadError) as exc:
            self.adapter.count("ocpp_unmappable")
            log.warning("charger %s %s does not map: %s", self.cp_id, call.action, exc)
            answer = encode_call_error(call.unique_id, "FormationViolation"
                                       if self.version is OcppVersion.V16
                                       else "FormatViolation", str(exc)[:200])
        except OutboxError:
            raise
        except Exception as exc:  # a bug costs one answer, never the connection
            self.adapter.count("ocpp_handler_errors")
            log.exception("charger %s %s failed", self.cp_id, call.action)
            answer = encode_call_error(call.unique_id, "InternalError",
                                       f"{exc.__class__.__name__}")
        self.answered[call.unique_id] = answer
        while len(self.answered) > self.adapter.config.answers_kept:
            del self.answered[next(iter(self.answered))]
        await self._send(answer)

    # -- the charger's calls -----------------------------------------------------------------

    async def handle(self, call: Call) -> str:
        """Translate one CALL into thing-model messages and build the answer."""
        ctx, cp, now = self.ctx, self.cp_id, now_ms()
        tx_id: int | None = None
        if call.action == "StartTransaction":
            tx_id = self.adapter.transaction_id(start_transaction_key(cp, call.payload))
        translation = self.translator.translate(call, receive_ms=now, transaction_id=tx_id)
        # before anything is answered: a gateway restarted after this still knows the session
        self.adapter.persist_sessions(self.translator)
        decision: dict[str, Any] | None = None
        for message in translation.messages:
            reply = await self._emit(message)
            if reply is not None:
                decision = reply
        for anomaly in translation.anomalies:
            self.adapter.count(f"ocpp_anomaly_{anomaly.code}")
        action, v = call.action, self.version
        payload: dict[str, Any] | None
        if action == "BootNotification":
            status = "Accepted" if self.adapter.provisioned(cp) else "Pending"
            payload = boot_response(status, now, self.adapter.config.heartbeat_interval)
            ctx.report("charger", cp, {"registration": status.lower(),
                                       "heartbeatInterval":
                                       self.adapter.config.heartbeat_interval}, src=self.src)
        elif action == "Heartbeat":
            payload = heartbeat_response(now)
        elif action == "Authorize":
            payload = authorize_response(v, decision)
        elif action == "StartTransaction":
            assert tx_id is not None
            payload = start_transaction_response(
                tx_id, decision or await self._authorize_tag(str(call.payload.get("idTag"))))
        elif action == "StopTransaction":
            tag = call.payload.get("idTag")
            stop_ok = tag and self.adapter.cached(str(tag))
            payload = stop_transaction_response(
                ({"accepted": True} if stop_ok else self.adapter.local_authorize(str(tag)))
                if tag else None)
        elif action == "TransactionEvent":
            token = call.payload.get("idToken")
            payload = transaction_event_response(
                await self._authorize_tag(str(token.get("idToken"))) if token else None)
        elif action == "DataTransfer":
            payload = data_transfer_response()
        else:
            payload = empty_response(action)
            if payload is None:
                payload = {}
        return encode_call_result(call.unique_id, payload, version=v, action=action)

    async def _authorize_tag(self, id_tag: str) -> dict[str, Any]:
        """A tag presented with a transaction: the auth cache (tags the cloud started or
        accepted recently), else the cloud within the deadline, else the local list."""
        if self.adapter.cached(id_tag):
            return {"accepted": True, "status": "Accepted"}
        decision = await self.ctx.decide(
            "charger", self.cp_id, "authorize", {"idTag": id_tag, "idType": "unknown"},
            src=self.src, timeout=self.adapter.config.authorize_timeout)
        if decision is None:
            decision = self.adapter.local_authorize(id_tag)
            await self.ctx.fallback("charger", self.cp_id, "authorize",
                                    "cloud_timeout" if self.ctx.cloud_connected.is_set()
                                    else "cloud_offline",
                                    "accepted" if decision["accepted"] else "rejected",
                                    src=self.src)
        elif decision.get("accepted"):
            self.adapter.remember(id_tag)
        return decision

    async def _emit(self, message: ThingMessage) -> dict[str, Any] | None:
        ctx = self.ctx
        key = (message.product, message.device)
        if key not in self.devices and message.product in ("connector", "meter"):
            self.devices.add(key)
            await ctx.presence(message.product, message.device, True, src=self.src)
        if message.kind is MessageKind.PROP:
            ctx.report(message.product, message.device, message.params, src=self.src,
                       ts=message.ts)
            return None
        assert message.name is not None
        if message.needs_reply:
            decision = await ctx.decide(message.product, message.device, message.name,
                                        message.params, src=self.src, ts=message.ts,
                                        timeout=self.adapter.config.authorize_timeout)
            tag = str(message.params.get("idTag", ""))
            if decision is None:
                decision = self.adapter.local_authorize(tag)
                await ctx.fallback(message.product, message.device, "authorize",
                                   "cloud_timeout" if ctx.cloud_connected.is_set()
                                   else "cloud_offline",
                                   "accepted" if decision["accepted"] else "rejected",
                                   src=self.src)
            elif decision.get("accepted"):
                self.adapter.remember(tag)
            return decision
        if message.once_key is not None:
            await ctx.event_once(message.once_key, message.product, message.device,
                                 message.name, message.params, src=self.src, ts=message.ts)
        else:
            await ctx.event(message.product, message.device, message.name, message.params,
                            src=self.src, ts=message.ts)
        return None

    # -- our calls to the charger -----------------------------------------------------------

    async def call(self, action: str, payload: Mapping[str, Any], deadline_ms: int
                   ) -> CallResult:
        """One CSMS call (queued behind any other in flight), answered before the deadline.

        Calls wait in FIFO order for the one in flight to be answered, time out or fail; a
        call still queued when its deadline passes is never sent (``DeviceTimeout``, counted
        ``ocpp_calls_expired_in_queue``; the dispatcher's own deadline may cancel it at the
        same moment, with the same code). One that is sent waits until its deadline or
        ``call_timeout``, whichever is first (``DeviceTimeout``, ``ocpp_call_timeouts``).
        """
        try:
            async with asyncio.timeout((deadline_ms - now_ms()) / 1000):
                await self.call_lock.acquire()
        except TimeoutError:
            raise self._expired_in_queue(action) from None
        except asyncio.CancelledError:  # the dispatcher's deadline (same moment) or shutdown
            self.adapter.count("ocpp_calls_expired_in_queue")
            raise
        try:
            if self.closed:
                raise DeviceOffline(f"charger {self.cp_id} is not connected")
            remaining = deadline_ms / 1000 - now_ms() / 1000
            if remaining <= 0:
                raise self._expired_in_queue(action)
            result = await self._send_call(action, payload, remaining)
        finally:
            self.call_lock.release()
        if isinstance(result, CallError):
            raise DeviceRejected(f"{action}: {result.error_code} {result.description}".strip())
        return result

    def _expired_in_queue(self, action: str) -> DeviceTimeout:
        self.adapter.count("ocpp_calls_expired_in_queue")
        return DeviceTimeout(f"deadline passed while queued behind another call to "
                             f"{self.cp_id}; {action} not sent")

    async def _send_call(self, action: str, payload: Mapping[str, Any], remaining: float
                         ) -> CallResult | CallError:
        unique_id = new_id()
        future: asyncio.Future[CallResult | CallError] = \
            asyncio.get_running_loop().create_future()
        self.pending[unique_id] = (action, future)
        try:
            await self.ws.send(encode_call(unique_id, action, payload, version=self.version))
            async with asyncio.timeout(min(remaining, self.adapter.config.call_timeout)):
                return await future
        except TimeoutError:
            self.adapter.count("ocpp_call_timeouts")
            raise DeviceTimeout(f"charger {self.cp_id} did not answer {action}") from None
        except ConnectionClosed:
            raise DeviceOffline(f"charger {self.cp_id} disconnected") from None
        finally:
            self.pending.pop(unique_id, None)


class OcppAdapter(Adapter):
    """The OCPP listener and its connections."""

    name = "ocpp"
    src = "ocpp16"

    def __init__(self, config: OcppConfig) -> None:
        self.config = config
        self.ctx: EdgeContext | None = None
        self.connections: dict[str, ChargePointConnection] = {}
        self.port: int | None = None
        self.ready = asyncio.Event()
        self._auth_cache: dict[str, int] = {}
        self._translators: dict[str, ChargePointTranslator] = {}
        self._persisted: dict[str, tuple[tuple[str, bool], ...]] = {}

    def count(self, name: str) -> None:
        """Count in the gateway's stats."""
        if self.ctx is not None:
            self.ctx.stats.inc(name)

    # -- provisioning ------------------------------------------------------------------------

    def _entry(self, cp_id: str) -> Mapping[str, Any] | None:
        assert self.ctx is not None
        entry = self.ctx.provisioned_devices().get(cp_id)
        if entry is not None and entry.get("product", "charger") == "charger" and \
                str(entry.get("protocol", "ocpp")).startswith("ocpp"):
            return entry
        return None

    def password_sha256(self, cp_id: str, entry: Mapping[str, Any]) -> str | None:
        """The charger's provisioned password hash: its own desired document's
        ``password_sha256`` (how the cloud provisions it, so that the one gateway document
        stays small), else its entry in the gateway document (older provisioning)."""
        assert self.ctx is not None
        own = self.ctx.desired("charger", cp_id)
        value = own.doc.get("password_sha256") if own is not None else None
        if not value:
            value = entry.get("password_sha256")
        return str(value) if value else None

    def provisioned(self, cp_id: str) -> bool:
        """Whether the cloud provisioned this charger to the gateway."""
        return self._entry(cp_id) is not None

    def local_authorize(self, id_tag: str) -> dict[str, Any]:
        """The local auth list (gateway desired state ``cards``)."""
        assert self.ctx is not None
        for entry in self.ctx.local_cards():
            if id_tag in (entry.get("idTag"), entry.get("physical")):
                accepted = entry.get("status", "active") == "active"
                return {"accepted": accepted, "status": "Accepted" if accepted else "Blocked"}
        return {"accepted": False, "status": "Invalid"}

    def translator(self, cp_id: str, version: OcppVersion) -> ChargePointTranslator:
        """The charge point's translator, kept across its connections (same version)."""
        held = self._translators.get(cp_id)
        if held is None or held.version is not version:
            held = self._translators[cp_id] = ChargePointTranslator(
                cp_id, version, sessions=self._stored_sessions(cp_id, version))
        return held

    def _stored_sessions(self, cp_id: str, version: OcppVersion) -> list[SessionState]:
        """The sessions persisted for a charge point (a restarted gateway still knows them)."""
        assert self.ctx is not None
        raw = self.ctx.outbox.kv_get(f"ocpp/sessions/{cp_id}")
        if raw is None:
            return []
        try:
            states = [SessionState.from_dict(d) for d in json.loads(raw)]
        except (ValueError, TypeError, KeyError) as exc:
            self.count("ocpp_bad_stored_sessions")
            log.warning("stored sessions of %s unreadable: %s", cp_id, exc)
            return []
        return [s for s in states if s.version is version]

    def persist_sessions(self, translator: ChargePointTranslator) -> None:
        """Persist a charge point's sessions when one started or ended (not on every sample)."""
        assert self.ctx is not None
        cp_id = translator.charge_point_id
        marks = tuple((s.session_id, s.ended) for s in translator.sessions.values())
        if self._persisted.get(cp_id) == marks:
            return
        self.ctx.outbox.kv_set(f"ocpp/sessions/{cp_id}", json.dumps(
            [s.to_dict() for s in translator.export_sessions()]).encode())
        self._persisted[cp_id] = marks

    def remember(self, id_tag: str, seconds: float = 3600.0) -> None:
        """Put a tag the cloud accepted (or started a session for) into the auth cache."""
        self._auth_cache[id_tag] = now_ms() + int(seconds * 1000)
        if len(self._auth_cache) > 100_000:
            self._auth_cache.pop(next(iter(self._auth_cache)))

    def cached(self, id_tag: str) -> bool:
        """Whether a tag is in the auth cache and not expired."""
        expiry = self._auth_cache.get(id_tag)
        return expiry is not None and expiry > now_ms()

    def transaction_id(self, key: str) -> int:
        """The 1.6 transactionId for a StartTransaction (the same again for its retry)."""
        assert self.ctx is not None
        stored = self.ctx.outbox.kv_get(f"ocpp/tx/{key}")
        if stored is not None:
            return int(stored)
        tx = self.ctx.outbox.next_seq("ocpp/transaction-id") % 2_000_000_000 or 1
        self.ctx.outbox.kv_set(f"ocpp/tx/{key}", str(tx).encode())
        return tx

    # -- the WebSocket server ------------------------------------------------------------------

    def _cp_id(self, path: str) -> str | None:
        prefix = self.config.path.rstrip("/") + "/"
        if not path.startswith(prefix):
            return None
        return path[len(prefix):].split("?", 1)[0]

    def handshake_failed(self, ws: ServerConnection | None, reason: str) -> None:
        """One failed opening handshake: one WARNING line (peer, reason) and the counter."""
        self.count("ocpp_handshake_failures")
        path = ws.request.path if ws is not None and ws.request is not None else "-"
        log.warning("OCPP handshake from %s refused (%s): %s", _peer(ws),
                    _printable(path[:100]), _printable(reason))

    def _refuse(self, connection: ServerConnection, status: HTTPStatus, reason: str,
                counter: str | None = None) -> Response:
        if counter is not None:
            self.count(counter)
        self.handshake_failed(connection, f"{status.value} {reason}")
        return connection.respond(status, f"{reason}\n")

    def _process_request(self, connection: ServerConnection, request: Request
                         ) -> Response | None:
        cp_raw = self._cp_id(request.path)
        if cp_raw is None:
            return self._refuse(connection, HTTPStatus.NOT_FOUND, "unknown path")
        try:
            cp_id = check_charge_point_id(cp_raw)
        except DeviceIdError as exc:
            return self._refuse(connection, HTTPStatus.BAD_REQUEST, str(exc), "ocpp_bad_ids")
        if len(self.connections) >= self.config.max_connections and cp_id not in self.connections:
            return self._refuse(connection, HTTPStatus.SERVICE_UNAVAILABLE, "gateway full")
        entry = self._entry(cp_id)
        if entry is None and self.config.unknown_chargers == "reject":
            return self._refuse(connection, HTTPStatus.FORBIDDEN, "charger not provisioned",
                                "ocpp_unknown_rejected")
        if self.config.security_profile >= 1 and entry is not None:
            expected = self.password_sha256(cp_id, entry)  # none provisioned: nobody gets in
            if not expected or not _basic_ok(request.headers, cp_id, expected):
                return self._refuse(connection, HTTPStatus.UNAUTHORIZED, "bad credentials",
                                    "ocpp_auth_failures")
        return None

    async def run(self, ctx: EdgeContext) -> None:
        """Serve until cancelled."""
        self.ctx = ctx
        tls: ssl.SSLContext | None = None
        if self.config.security_profile == 2:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(str(self.config.tls_cert), str(self.config.tls_key))
        async with serve(
            self._handler, self.config.host, self.config.port, subprotocols=[
                p for p in self.config.versions if p in SUBPROTOCOLS],  # type: ignore[misc]
            process_request=self._process_request, ssl=tls,
            max_size=self.config.max_frame_bytes, ping_interval=self.config.ping_interval,
            compression="deflate" if self.config.compression else None,
            logger=_HandshakeLog(self),
        ) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            self.ready.set()
            log.info("OCPP listener on %s:%d%s", self.config.host, self.port, self.config.path)
            try:
                await asyncio.Event().wait()
            finally:
                for conn in list(self.connections.values()):
                    await conn.ws.close(1001, "gateway stopping")

    async def _handler(self, ws: ServerConnection) -> None:
        assert self.ctx is not None
        cp_id = self._cp_id(ws.request.path if ws.request else "") or ""
        if ws.subprotocol is None:
            self.count("ocpp_no_subprotocol")
            await ws.close(1002, "an OCPP subprotocol is required")
            return
        version = OcppVersion.from_subprotocol(ws.subprotocol)
        # the handshake's headers are not read again: ~3.5 KB per connection if kept
        for message in (ws.request, ws.response):
            if message is not None:
                message.headers.clear()
        conn = ChargePointConnection(self, ws, cp_id, version, cp_id in self.config.lenient)
        old = self.connections.get(cp_id)
        self.connections[cp_id] = conn
        if old is not None:
            self.count("ocpp_replaced_connections")
            log.info("charger %s reconnected: replacing its old connection", cp_id)
            await old.ws.close(1000, "replaced by a new connection")
        await self.ctx.presence("charger", cp_id, True, src=version.src)
        try:
            await conn.serve()
        finally:
            if self.connections.get(cp_id) is conn:
                del self.connections[cp_id]
                with contextlib.suppress(OutboxError):
                    await self.ctx.presence("charger", cp_id, False, src=version.src,
                                            reason="disconnected")
                    for product, device in conn.devices:
                        await self.ctx.presence(product, device, False, src=version.src,
                                                reason="charger disconnected")

    # -- services ---------------------------------------------------------------------------

    def owns(self, product: str, device: str) -> bool:
        """Chargers (and their connectors and meters) connected or provisioned here."""
        if product not in ("charger", "connector", "meter"):
            return False
        cp = device if product == "charger" else self._cp_of(device)
        return cp is not None and (cp in self.connections or self.provisioned(cp))

    def _cp_of(self, device: str) -> str | None:
        """The charge point a connector / meter device belongs to (longest matching id)."""
        assert self.ctx is not None
        provisioned = self.ctx.provisioned_devices()
        # candidates are the prefixes of the device id ending before a '-' (ids may contain '-')
        cuts = [i for i, char in enumerate(device) if char == "-"]
        for cut in reversed(cuts):
            cp = device[:cut]
            if cp in self.connections or cp in provisioned:
                conn = self.connections.get(cp)
                version = conn.version if conn is not None else OcppVersion.V201
                try:
                    parse_device_id(device, cp, version)
                except DeviceIdError:
                    continue
                return cp
        return None

    async def wait_ready(self) -> None:
        await self.ready.wait()

    async def invoke(self, product: str, device: str, service: str, params: Mapping[str, Any],
                     deadline_ms: int) -> dict[str, Any]:
        """Map a thing-model service to an OCPP call and its result back."""
        cp = device if product == "charger" else self._cp_of(device)
        conn = self.connections.get(cp or "")
        if conn is None or conn.closed:
            raise DeviceOffline(f"charger {cp} is not connected")
        session_id = None
        if product == "connector":
            running = conn.translator.open_session(device)
            session_id = running.session_id if running is not None else None
            if service == "remoteStop" and session_id is None and not params.get("sessionId"):
                # nothing to stop: the thing model's answer, as YKC's "gun not charging" (an
                # interlock's stop of an idle connector is done, not a failed action)
                return {"accepted": False, "reason": "not charging (no session known)"}
        if service in ("remoteStart", "parallelStart") and params.get("idTag"):
            self.remember(str(params["idTag"]))
        try:
            request = service_request(conn.version, product, service, params,
                                      charge_point_id=conn.cp_id, device=device,
                                      now_ms=now_ms(), session_id=session_id,
                                      request_id=self.ctx.outbox.next_seq("ocpp/request-id")
                                      % 2_000_000_000 if self.ctx else None)
        except UnsupportedService as exc:
            raise ServiceNotSupported(str(exc)) from exc
        except (ServiceError, DeviceIdError) as exc:
            raise DeviceRejected(str(exc)) from exc
        result = await conn.call(request.action, request.payload, deadline_ms)
        try:
            return service_output(conn.version, product, service, result.payload)
        except OcppBridgeError as exc:
            raise DeviceRejected(str(exc)) from exc


def _basic_ok(headers: Headers, cp_id: str, expected_sha256: str) -> bool:
    value = headers.get("Authorization", "")
    if not value.startswith("Basic "):
        return False
    try:
        user, _, password = base64.b64decode(value[6:]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    return user == cp_id and hmac.compare_digest(password_hash(password), expected_sha256)


__all__ = ["ChargePointConnection", "OcppAdapter", "OcppConfig", "password_hash"]
