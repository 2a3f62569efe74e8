from decimal import Decimal

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thingmodels import Envelope, EnvelopeError, Sample, decode, encode
from thingmodels.ids import id_time_ms, new_id, now_ms


def test_single_roundtrip_keeps_decimals_exact_as_strings() -> None:
    env = Envelope.new(ts=1700000000000, seq=7, src="ykc16",
                       p={"energy": Decimal("12.3450"), "status": "charging"})
    out = decode(encode(env))
    assert out.id == env.id and out.seq == 7 and out.src == "ykc16" and out.ts == env.ts
    assert out.p == {"energy": "12.3450", "status": "charging"}
    raw = msgpack.unpackb(encode(env))
    assert set(raw) == {"id", "rts", "ts", "seq", "src", "p"}


def test_batch_roundtrip_and_samples() -> None:
    env = Envelope.new(seq=1, src="modbus", b=(Sample(1, {"power": 1.5}), Sample(None, {"x": 1})))
    out = decode(encode(env))
    assert out.p is None
    assert out.samples() == [Sample(1, {"power": 1.5}), Sample(None, {"x": 1})]


def test_reply_fields_and_unknown_keys_kept() -> None:
    raw = msgpack.packb({"id": "A", "rts": 5, "cid": "B", "code": 408, "msg": "late", "zz": 1})
    env = decode(raw)
    assert (env.cid, env.code, env.msg, env.extra) == ("B", 408, "late", {"zz": 1})
    assert decode(encode(env)).extra == {"zz": 1}


@pytest.mark.parametrize("payload", [
    b"", b"\xc1", b"not msgpack at all", msgpack.packb([1, 2]), msgpack.packb({"rts": 1}),
    msgpack.packb({"id": "a"}), msgpack.packb({"id": 5, "rts": 1}),
    msgpack.packb({"id": "a", "rts": "now"}), msgpack.packb({"id": "a", "rts": True}),
    msgpack.packb({"id": "a", "rts": 1, "p": [1]}),
    msgpack.packb({"id": "a", "rts": 1, "p": {"x": 1}, "b": []}),
    msgpack.packb({"id": "a", "rts": 1, "b": [{"ts": 1}]}),
    msgpack.packb({"id": "a", "rts": 1, "seq": -1}),
    msgpack.packb({"id": "a", "rts": 1, "p": {1: 2}}, strict_types=False),
    msgpack.packb({"id": "a" * 65, "rts": 1}),
    msgpack.packb({"id": "a", "rts": 1}) + b"\x00",
])
def test_malformed_input_raises_envelope_error(payload: bytes) -> None:
    with pytest.raises(EnvelopeError):
        decode(payload)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_escape_other_errors(data: bytes) -> None:
    try:
        decode(data)
    except EnvelopeError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["id", "rts", "ts", "seq", "p", "b", "cid", "code"]),
                       st.one_of(st.integers(-(2**63), 2**63 - 1), st.text(max_size=5), st.none(),
                                 st.lists(st.integers(0, 9), max_size=3),
                                 st.dictionaries(st.text(max_size=3), st.integers(0, 9), max_size=3))))
def test_random_maps_decode_or_raise_envelope_error(raw: dict[str, object]) -> None:
    try:
        env = decode(msgpack.packb(raw))
    except EnvelopeError:
        return
    assert decode(encode(env)) == env


def test_ids_are_sortable_and_monotonic() -> None:
    ids = [new_id() for _ in range(2000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert abs(id_time_ms(new_id()) - now_ms()) < 1000
    # an earlier clock never makes an id sort before one already issued
    assert new_id(1_700_000_000_000) > ids[-1]
