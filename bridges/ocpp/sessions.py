"""1.6 Start/StopTransaction (+ MeterValues) and 2.0.1 TransactionEvent -> ONE session model.

Every session, whatever the version, becomes ``connector`` events::

    sessionStarted {sessionId, seq, idTag?, idType?, meterStart?, reason?, reservationId?, offline?}
    sessionUpdated {sessionId, seq, energy?, meter?, power?, soc?, chargingState?}
    sessionEnded   {sessionId, seq, energy?, meterStart?, meterStop?, reason?, idTag?,
                    startedAt?, endedAt?}

plus the connector properties of the meter values they carry (each with its own sample time).
Energies are exact :class:`~decimal.Decimal` kWh.

Session samples: like YKC's real-time frames, every ``connector`` property sample that names
the running session (``sessionId`` not empty) carries its energy -- ``energy`` (kWh so far) and,
when a register was read, ``meterEnergy`` (the register) -- because the cloud's
``billing-session-samples`` rule takes each such sample as a billing sample and refuses one with
neither. At the start that is ``energy: 0`` (+ the start register); per meter update the
register and the energy since the start; at the end ``sessionId: ""`` with the stop register.

============  =====================================  ========================================
              1.6                                    2.0.1
============  =====================================  ========================================
sessionId     ``str(transactionId)`` (the gateway    ``transactionInfo.transactionId``
              assigns the int in its answer)
seq           0 at start, +1 per MeterValues with    ``seqNo`` (the charger's; gaps and
              the transactionId, +1 at stop (the     disorder are flagged, never "fixed")
              gateway persists the state)
meterStart    ``meterStart`` Wh                      the ``Transaction.Begin`` register (else
                                                     the first register seen, flagged)
meterStop     ``meterStop`` Wh                       the ``Transaction.End`` register (else the
                                                     last register seen)
reason        Start: -; Stop: ``reason`` (absent =   Start: ``triggerReason``; End:
              ``Local``, as the spec says)           ``stoppedReason`` (absent = ``Local``)
offline       -                                      ``offline``
============  =====================================  ========================================

Billing integrity (the top pain point of every CSMS we studied):

* ``meterStop < meterStart`` is flagged (``meter_regression``) and the session ends with no
  ``energy`` rather than a negative one (SteVe #1297).
* An energy above ``max_power_kw`` x duration is flagged ``implausible_energy``; when the start
  register was 0 (an offline ``Transaction.Begin`` placeholder, CitrineOS #1060) and a real
  register was seen during the session, that register becomes the baseline
  (``baseline_repaired``).
* A repeated stop (StopTransaction retried, a second ``Ended``) re-emits the identical
  ``sessionEnded`` with the same ``once_key``, so it changes nothing downstream
  (SteVe #955 / #1293, CitrineOS #880).

The mappers are pure: the gateway keeps one :class:`SessionState` per open session (persist it
with :meth:`SessionState.to_dict`) and passes it back in.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bridges.ocpp.devices import connector_device_id, evse_device_id
from bridges.ocpp.errors import MappingError
from bridges.ocpp.idtokens import id_token, session_id_type
from bridges.ocpp.meter import MeterSample, connector_properties, in_range, parse_meter_values
from bridges.ocpp.timestamps import optional_timestamp_ms
from bridges.ocpp.translation import Translation
from bridges.ocpp.versions import OcppVersion

DEFAULT_MAX_POWER_KW = Decimal(400)
_SLACK_KWH = Decimal("0.5")
_MS_PER_HOUR = Decimal(3_600_000)
_TX_BOUNDS = frozenset({"Transaction.Begin", "Transaction.End"})

# 2.0.1 chargingState -> connector.status (Idle says nothing about the connector)
CHARGING_STATE_STATUS: dict[str, str] = {
    "Charging": "charging",
    "EVConnected": "preparing",
    "SuspendedEV": "suspended",
    "SuspendedEVSE": "suspended",
}


@dataclass(frozen=True, slots=True)
class SessionState:
    """What the gateway keeps for one session between messages (immutable; mappers return a
    new one)."""

    session_id: str
    device: str
    version: OcppVersion
    transaction_id: int | None = None
    id_tag: str | None = None
    id_type: str | None = None
    meter_start: Decimal | None = None
    first_register: Decimal | None = None
    last_register: Decimal | None = None
    started_at: int | None = None
    last_ts: int | None = None
    seq: int = 0
    charging_state: str | None = None
    offline: bool = False
    ended: bool = False
    ended_params: dict[str, Any] | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (decimals as strings) for the gateway to persist."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Decimal):
                value = str(value)
            elif f.name == "ended_params" and value is not None:
                value = json.loads(json.dumps(value, default=str))
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SessionState:
        """Inverse of :meth:`to_dict`."""
        kwargs = dict(data)
        kwargs["version"] = OcppVersion(kwargs["version"])
        for name in ("meter_start", "first_register", "last_register"):
            if kwargs.get(name) is not None:
                kwargs[name] = Decimal(kwargs[name])
        ended = kwargs.get("ended_params")
        if ended is not None:
            ended = dict(ended)
            for name in ("energy", "meterStart", "meterStop"):
                if ended.get(name) is not None:
                    ended[name] = Decimal(ended[name])
            kwargs["ended_params"] = ended
        return cls(**kwargs)


def session_once_key(device: str, session_id: str, name: str, seq: int) -> str:
    """The idempotency key of a session event."""
    return f"ocpp:{device}:{session_id}:{name}:{seq}"


def start_transaction_key(charge_point_id: str, payload: Mapping[str, Any]) -> str:
    """A 1.6 StartTransaction's identity: a retry (same connector, idTag, meterStart, time)
    must get the same transactionId back, so that it makes no second session."""
    fields = ("connectorId", "idTag", "meterStart", "timestamp", "reservationId")
    return "|".join([charge_point_id, *(str(payload.get(k)) for k in fields)])


def _wh_to_kwh(value: Any, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise MappingError(f"{what} is not a number of Wh: {value!r}")
    return Decimal(str(value)).scaleb(-3)


def _samples_into(tr: Translation, version: OcppVersion, device: str, raw: Any
                  ) -> list[MeterSample]:
    samples, problems = parse_meter_values(version, raw, device)
    tr.anomalies.extend(problems)
    for sample in samples:
        props, bad = in_range("connector", connector_properties(sample), device)
        tr.anomalies.extend(bad)
        tr.prop("connector", device, props, ts=sample.ts)
    return samples


def _registers(samples: list[MeterSample]) -> tuple[Decimal | None, Decimal | None,
                                                     Decimal | None, MeterSample | None]:
    """(Transaction.Begin register, Transaction.End register, last register, last sample)."""
    begin = end = last = None
    last_sample = None
    for sample in samples:
        register = sample.register_kwh()
        if register is None:
            continue
        contexts = sample.contexts
        if "Transaction.Begin" in contexts and begin is None:
            begin = register
        if "Transaction.End" in contexts:
            end = register
        last = register
        last_sample = sample
    return begin, end, last, last_sample


def _track(state: SessionState, samples: list[MeterSample]) -> SessionState:
    first, last, last_ts = state.first_register, state.last_register, state.last_ts
    for sample in samples:
        register = sample.register_kwh()
        if register is not None:
            if first is None and not sample.contexts & _TX_BOUNDS:
                first = register
            last = register
        if sample.ts is not None and (last_ts is None or sample.ts > last_ts):
            last_ts = sample.ts
    return dataclasses.replace(state, first_register=first, last_register=last, last_ts=last_ts)


def _settle(tr: Translation, state: SessionState, meter_stop: Decimal | None,
            ended_at: int | None, max_power_kw: Decimal) -> tuple[Decimal | None, Decimal | None]:
    """(meterStart to bill from, energy) with the sanity rules of the module docstring."""
    start = state.meter_start
    if start is None:
        start = state.first_register
        if start is not None:
            tr.flag("no_meter_start", f"session {state.session_id}: baseline is the first "
                    f"register seen ({start} kWh)", state.device)
    if start is None or meter_stop is None:
        return start, None
    energy = meter_stop - start
    if energy < 0:
        tr.flag("meter_regression", f"session {state.session_id}: meterStop {meter_stop} < "
                f"meterStart {start} kWh; no energy billed", state.device)
        return start, None
    if state.started_at is not None and ended_at is not None and ended_at >= state.started_at:
        hours = Decimal(ended_at - state.started_at) / _MS_PER_HOUR
        ceiling = max_power_kw * hours * Decimal("1.1") + _SLACK_KWH
        if energy > ceiling:
            tr.flag("implausible_energy", f"session {state.session_id}: {energy} kWh in "
                    f"{hours:.3f} h is above {max_power_kw} kW", state.device)
            repaired = state.first_register
            if start == 0 and repaired is not None and 0 < repaired <= meter_stop:
                tr.flag("baseline_repaired", f"session {state.session_id}: meterStart 0 "
                        f"replaced by the first register seen, {repaired} kWh", state.device)
                return repaired, meter_stop - repaired
    return start, energy


def _ended_params(tr: Translation, state: SessionState, seq: int, meter_stop: Decimal | None,
                  reason: str, ended_at: int | None, max_power_kw: Decimal) -> dict[str, Any]:
    start, energy = _settle(tr, state, meter_stop, ended_at, max_power_kw)
    params: dict[str, Any] = {"sessionId": state.session_id, "seq": seq, "reason": reason}
    optional = {"energy": energy, "meterStart": start, "meterStop": meter_stop,
                "idTag": state.id_tag, "startedAt": state.started_at, "endedAt": ended_at}
    params.update({k: v for k, v in optional.items() if v is not None})
    return params


def _session_sample(tr: Translation, device: str, session_id: str, *,
                    register: Decimal | None, energy: Decimal | None, ts: int | None) -> None:
    """The connector sample of a session: ``sessionId`` with its energy (see the module
    docstring); ``session_id=""`` at the end. A running session's sample with neither a
    register nor an energy is not made (its event says what is known)."""
    props: dict[str, Any] = {"sessionId": session_id}
    if register is not None:
        props["meterEnergy"] = register
    if energy is not None:
        props["energy"] = energy
    if session_id and len(props) == 1:
        return
    tr.prop("connector", device, props, ts=ts)


def _repeat_end(tr: Translation, state: SessionState) -> tuple[SessionState, Translation]:
    assert state.ended_params is not None
    params = dict(state.ended_params)
    tr.flag("duplicate_stop", f"session {state.session_id} ended again; same event re-sent",
            state.device)
    tr.event("connector", state.device, "sessionEnded", params, ts=params.get("endedAt"),
             once_key=session_once_key(state.device, state.session_id, "sessionEnded",
                                       params["seq"]))
    return state, tr


# -- OCPP 1.6 ----------------------------------------------------------------------------------

def start_transaction(charge_point_id: str, payload: Mapping[str, Any], transaction_id: int
                      ) -> tuple[SessionState, Translation]:
    """1.6 StartTransaction (already schema-valid) with the transactionId the gateway assigns."""
    device = connector_device_id(charge_point_id, int(payload["connectorId"]))
    session_id = str(transaction_id)
    meter_start = _wh_to_kwh(payload["meterStart"], "meterStart")
    started_at = optional_timestamp_ms(payload.get("timestamp"))
    tr = Translation()
    if started_at is None:
        tr.flag("bad_timestamp", f"StartTransaction timestamp {payload.get('timestamp')!r}",
                device)
    state = SessionState(session_id=session_id, device=device, version=OcppVersion.V16,
                         transaction_id=transaction_id, id_tag=str(payload["idTag"]),
                         id_type="unknown", meter_start=meter_start, started_at=started_at,
                         last_ts=started_at)
    params: dict[str, Any] = {"sessionId": session_id, "seq": 0, "idTag": state.id_tag,
                              "idType": "unknown", "meterStart": meter_start}
    if payload.get("reservationId") is not None:
        params["reservationId"] = int(payload["reservationId"])
    tr.event("connector", device, "sessionStarted", params, ts=started_at,
             once_key=session_once_key(device, session_id, "sessionStarted", 0))
    _session_sample(tr, device, session_id, register=meter_start, energy=Decimal(0),
                    ts=started_at)
    return state, tr


def session_meter_values(state: SessionState, samples: list[MeterSample], tr: Translation
                         ) -> SessionState:
    """A 1.6 MeterValues that names the session's transactionId: one ``sessionUpdated``."""
    if state.ended or not samples:
        return state
    state = _track(state, samples)
    seq = state.seq + 1
    params: dict[str, Any] = {"sessionId": state.session_id, "seq": seq}
    last = samples[-1]
    register = state.last_register
    if register is not None:
        params["meter"] = register
        if state.meter_start is not None and register >= state.meter_start:
            params["energy"] = register - state.meter_start
    _session_sample(tr, state.device, state.session_id, register=register,
                    energy=params.get("energy"), ts=last.ts)
    props = connector_properties(last)
    for name in ("power", "soc"):
        if name in props:
            params[name] = props[name]
    tr.event("connector", state.device, "sessionUpdated", params, ts=last.ts,
             once_key=session_once_key(state.device, state.session_id, "sessionUpdated", seq))
    return dataclasses.replace(state, seq=seq)


def stop_transaction(charge_point_id: str, payload: Mapping[str, Any],
                     state: SessionState | None, *, device: str | None = None,
                     max_power_kw: Decimal = DEFAULT_MAX_POWER_KW
                     ) -> tuple[SessionState, Translation]:
    """1.6 StopTransaction. ``state``: the open session of ``transactionId`` (None when the
    gateway does not know it; then ``device`` must say which connector it was)."""
    tr = Translation()
    transaction_id = int(payload["transactionId"])
    if state is None:
        if device is None:
            raise MappingError(f"StopTransaction for unknown transaction {transaction_id} and "
                               f"no connector known ({charge_point_id})")
        tr.flag("unknown_transaction", f"StopTransaction for transaction {transaction_id} "
                "without a known start", device)
        state = SessionState(session_id=str(transaction_id), device=device,
                             version=OcppVersion.V16, transaction_id=transaction_id)
    if state.ended:
        return _repeat_end(tr, state)
    samples = _samples_into(tr, OcppVersion.V16, state.device, payload.get("transactionData"))
    state = _track(state, samples)
    meter_stop = _wh_to_kwh(payload["meterStop"], "meterStop")
    ended_at = optional_timestamp_ms(payload.get("timestamp"))
    if payload.get("idTag") and state.id_tag is None:
        state = dataclasses.replace(state, id_tag=str(payload["idTag"]))
    seq = state.seq + 1
    params = _ended_params(tr, state, seq, meter_stop, str(payload.get("reason") or "Local"),
                           ended_at, max_power_kw)
    tr.event("connector", state.device, "sessionEnded", params, ts=ended_at,
             once_key=session_once_key(state.device, state.session_id, "sessionEnded", seq))
    _session_sample(tr, state.device, "", register=meter_stop, energy=params.get("energy"),
                    ts=ended_at)
    state = dataclasses.replace(state, seq=seq, ended=True, ended_params=params,
                                last_register=meter_stop)
    return state, tr


# -- OCPP 2.0.1 --------------------------------------------------------------------------------

def transaction_event(charge_point_id: str, payload: Mapping[str, Any],
                      state: SessionState | None, *, device: str | None = None,
                      max_power_kw: Decimal = DEFAULT_MAX_POWER_KW
                      ) -> tuple[SessionState, Translation]:
    """2.0.1 TransactionEvent (already schema-valid). ``state``: the session of
    ``transactionInfo.transactionId`` when the gateway has one."""
    tr = Translation()
    info = payload["transactionInfo"]
    session_id = str(info["transactionId"])
    event_type = str(payload["eventType"])
    seq = int(payload["seqNo"])
    offline = bool(payload.get("offline", False))
    ts = optional_timestamp_ms(payload.get("timestamp"))
    evse = payload.get("evse")
    if isinstance(evse, Mapping):
        device = evse_device_id(charge_point_id, int(evse["id"]), evse.get("connectorId"))
    elif state is not None:
        device = state.device
    if device is None:
        raise MappingError(f"TransactionEvent {event_type} for unknown transaction "
                           f"{session_id!r} names no EVSE ({charge_point_id})")
    if state is None:
        if event_type != "Started":
            tr.flag("missing_started", f"transaction {session_id}: {event_type} (seqNo {seq}) "
                    "without a Started event", device)
        state = SessionState(session_id=session_id, device=device, version=OcppVersion.V201,
                             started_at=ts if event_type == "Started" else None,
                             seq=seq, offline=offline)
        fresh = True
    else:
        fresh = False
        if state.device != device:
            tr.flag("evse_changed", f"transaction {session_id} moved from {state.device} to "
                    f"{device}", device)
        if seq <= state.seq and not (event_type == "Ended" and state.ended):
            tr.flag("seq_out_of_order", f"transaction {session_id}: seqNo {seq} after "
                    f"{state.seq}", state.device)
        elif seq > state.seq + 1:
            tr.flag("seq_gap", f"transaction {session_id}: seqNo {state.seq + 1}..{seq - 1} "
                    "missing", state.device)
    if state.ended and event_type == "Ended":
        return _repeat_end(tr, state)

    token = payload.get("idToken")
    if token is not None:
        value, kind = id_token(token)
        state = dataclasses.replace(state, id_tag=value, id_type=session_id_type(kind))
    samples = _samples_into(tr, OcppVersion.V201, state.device, payload.get("meterValue"))
    begin, end, last, last_sample = _registers(samples)
    if event_type == "Started" and begin is None:
        begin = last
    if begin is not None and state.meter_start is None:
        state = dataclasses.replace(state, meter_start=begin)
    state = _track(state, samples)
    charging = info.get("chargingState")
    if charging is not None:
        state = dataclasses.replace(state, charging_state=str(charging))
        status = CHARGING_STATE_STATUS.get(str(charging))
        if status is not None and event_type != "Ended":
            tr.prop("connector", state.device, {"status": status}, ts=ts)
    state = dataclasses.replace(state, seq=max(seq, state.seq) if not fresh else seq)

    if event_type == "Started":
        params: dict[str, Any] = {"sessionId": session_id, "seq": seq,
                                  "reason": str(payload["triggerReason"])}
        optional = {"idTag": state.id_tag, "idType": state.id_type,
                    "meterStart": state.meter_start,
                    "reservationId": payload.get("reservationId")}
        params.update({k: v for k, v in optional.items() if v is not None})
        if offline:
            params["offline"] = True
        tr.event("connector", state.device, "sessionStarted", params, ts=ts,
                 once_key=session_once_key(state.device, session_id, "sessionStarted", seq))
        _session_sample(tr, state.device, session_id, register=state.meter_start,
                        energy=Decimal(0), ts=ts)
        if state.started_at is None:
            state = dataclasses.replace(state, started_at=ts)
        return state, tr

    if event_type == "Updated":
        params = {"sessionId": session_id, "seq": seq}
        if last is not None:
            params["meter"] = last
            if state.meter_start is not None and last >= state.meter_start:
                params["energy"] = last - state.meter_start
        _session_sample(tr, state.device, session_id, register=last,
                        energy=params.get("energy"),
                        ts=last_sample.ts if last_sample is not None else ts)
        if last_sample is not None:
            props = connector_properties(last_sample)
            params.update({k: props[k] for k in ("power", "soc") if k in props})
        if charging is not None:
            params["chargingState"] = str(charging)
        tr.event("connector", state.device, "sessionUpdated", params, ts=ts,
                 once_key=session_once_key(state.device, session_id, "sessionUpdated", seq))
        return state, tr

    # Ended
    meter_stop = end if end is not None else state.last_register
    reason = str(info.get("stoppedReason") or "Local")
    params = _ended_params(tr, state, seq, meter_stop, reason, ts, max_power_kw)
    tr.event("connector", state.device, "sessionEnded", params, ts=ts,
             once_key=session_once_key(state.device, session_id, "sessionEnded", seq))
    _session_sample(tr, state.device, "", register=meter_stop, energy=params.get("energy"),
                    ts=ts)
    state = dataclasses.replace(state, ended=True, ended_params=params)
    return state, tr
