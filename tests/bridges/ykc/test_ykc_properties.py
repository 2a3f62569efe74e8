"""Property tests (hypothesis): round trip of every frame type, and robustness of
decode_frame / decode_body / StreamDecoder against random and mutated input."""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridges.ykc import (
    MESSAGE_TYPES,
    BadStart,
    Cp56Time2a,
    DecodeResult,
    Frame,
    FrameFailure,
    Message,
    StreamDecoder,
    UnsupportedEncryption,
    YkcError,
    decode_body,
    decode_frame,
    encode_body,
    encode_frame,
    encode_raw_frame,
)
from bridges.ykc.fields import (
    Array,
    Ascii,
    Bcd,
    BcdInt,
    Counted,
    Cp56Codec,
    FieldCodec,
    Raw,
    Remainder,
    Struct,
    UInt,
    struct_size,
    struct_spec,
)

_HEX_UPPER = string.digits + "ABCDEF"


def cp56_times() -> st.SearchStrategy[Cp56Time2a]:
    return st.builds(
        Cp56Time2a,
        year=st.integers(2000, 2127),
        month=st.integers(0, 15),
        day=st.integers(0, 31),
        hour=st.integers(0, 31),
        minute=st.integers(0, 63),
        milliseconds=st.integers(0, 0xFFFF),
        day_of_week=st.integers(0, 7),
        invalid=st.booleans(),
        summer_time=st.booleans(),
    )


def codec_values(codec: FieldCodec[Any]) -> st.SearchStrategy[Any]:
    """Values that ``codec`` encodes and decodes back to an equal value."""
    if isinstance(codec, UInt):
        return st.integers(0, (1 << (8 * (codec.size or 0))) - 1)
    if isinstance(codec, BcdInt):
        return st.integers(0, 10 ** (2 * (codec.size or 0)) - 1)
    if isinstance(codec, Bcd):
        width = 2 * (codec.size or 0)
        digits = st.text(string.digits, min_size=width, max_size=width)
        nibbles = st.text(_HEX_UPPER, min_size=width, max_size=width)
        return st.one_of(digits, nibbles)
    if isinstance(codec, Ascii):
        chars = st.characters(min_codepoint=1, max_codepoint=255)
        return st.text(chars, max_size=codec.size or 0)
    if isinstance(codec, Raw):
        return st.binary(min_size=codec.size or 0, max_size=codec.size or 0)
    if isinstance(codec, Cp56Codec):
        return cp56_times()
    if isinstance(codec, Struct):
        return st.builds(codec.cls, *(codec_values(c) for _, c in struct_spec(codec.cls)))
    if isinstance(codec, Array):
        item = codec_values(codec.item)
        return st.lists(item, min_size=codec.count, max_size=codec.count).map(tuple)
    if isinstance(codec, Counted | Remainder):
        return st.lists(codec_values(codec.item), max_size=codec.max_count).map(tuple)
    raise TypeError(f"no strategy for {codec!r}")


def messages_of(cls: type[Message]) -> st.SearchStrategy[Message]:
    return st.builds(cls, *(codec_values(codec) for _, codec in struct_spec(cls)))


_MESSAGES_BY_CLASS = {cls: messages_of(cls) for cls in MESSAGE_TYPES.values()}
ANY_MESSAGE: st.SearchStrategy[Message] = st.one_of(*_MESSAGES_BY_CLASS.values())


def seqs() -> st.SearchStrategy[bytes]:
    return st.binary(min_size=2, max_size=2)


WIRE_FRAMES: st.SearchStrategy[bytes] = st.builds(encode_frame, ANY_MESSAGE, seqs())
"""Complete, valid encoded frames of any type."""


FRAME_CLASSES = sorted(MESSAGE_TYPES.values(), key=lambda cls: cls.FRAME_TYPE)


# -- round trip ------------------------------------------------------------------------


@pytest.mark.parametrize("cls", FRAME_CLASSES, ids=lambda cls: f"0x{cls.FRAME_TYPE:02X}")
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_round_trip_every_frame_type(cls: type[Message], data: st.DataObject) -> None:
    message = data.draw(_MESSAGES_BY_CLASS[cls])
    seq = data.draw(seqs())
    body = encode_body(message)
    assert decode_body(cls.FRAME_TYPE, body) == message
    wire = encode_frame(message, seq)
    assert wire[1] == len(body) + 4
    frame, consumed = decode_frame(wire + b"\x68trailing")
    assert consumed == len(wire)
    assert frame == Frame(message, seq)
    assert frame.encode() == wire


# -- one-shot decoder robustness ---------------------------------------------------------

_KNOWN_TYPES = sorted(MESSAGE_TYPES)


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    wire = bytearray(draw(WIRE_FRAMES))
    kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "length", "body"]))
    if kind == "flip":
        index = draw(st.integers(0, len(wire) - 1))
        wire[index] ^= 1 << draw(st.integers(0, 7))
    elif kind == "truncate":
        del wire[draw(st.integers(0, len(wire) - 1)) :]
    elif kind == "insert":
        index = draw(st.integers(0, len(wire)))
        wire[index:index] = draw(st.binary(min_size=1, max_size=8))
    elif kind == "delete":
        index = draw(st.integers(0, len(wire) - 1))
        del wire[index : index + draw(st.integers(1, 8))]
    elif kind == "length":
        wire[1] = draw(st.integers(0, 255))
    else:  # corrupt the body, then fix the CRC so the body decoder sees it
        body = bytearray(wire[6:-2])
        if body and draw(st.booleans()):
            body[draw(st.integers(0, len(body) - 1))] = draw(st.integers(0, 255))
        else:
            body[draw(st.integers(0, len(body))) :] = draw(st.binary(max_size=8))
        return encode_raw_frame(wire[5], bytes(body[:251]), seq=bytes(wire[2:4]))
    return bytes(wire)


def _decode_quietly(data: bytes) -> None:
    try:
        frame, consumed = decode_frame(data)
    except YkcError:
        return
    assert 0 < consumed <= len(data)
    assert isinstance(frame.message, Message)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_decode_frame_random_bytes_raise_only_ykc_errors(data: bytes) -> None:
    _decode_quietly(data)
    _decode_quietly(b"\x68" + data)
    _decode_quietly(b"\x68" + bytes([len(data) + 2]) + data)


@settings(max_examples=300, deadline=None)
@given(mutated_frames())
def test_decode_frame_mutated_frames_raise_only_ykc_errors(data: bytes) -> None:
    _decode_quietly(data)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_decode_body_random_bodies(data: st.DataObject) -> None:
    frame_type = data.draw(st.sampled_from([*_KNOWN_TYPES, 0x00, 0x07, 0xF0, 0xFF]))
    cls = MESSAGE_TYPES.get(frame_type)
    size = struct_size(cls) if cls is not None else None
    if size is not None and data.draw(st.booleans()):
        body = data.draw(st.binary(min_size=size, max_size=size))  # right size: deep decode
    else:
        body = data.draw(st.binary(max_size=251))
    try:
        message = decode_body(frame_type, body)
    except YkcError:
        return
    again = encode_body(message)  # anything decoded can be re-encoded ...
    assert len(again) == len(body)
    assert decode_body(frame_type, again) == message  # ... to an equivalent body


def test_encrypted_frame_is_a_distinct_error() -> None:
    wire = encode_raw_frame(0x03, bytes.fromhex("320102000000010100"), seq=7, encryption=1)
    with pytest.raises(UnsupportedEncryption) as info:
        decode_frame(wire)
    assert info.value.flag == 1
    assert info.value.frame_type == 0x03
    assert info.value.seq == b"\x00\x07"


# -- stream decoder robustness ------------------------------------------------------------


def _feed_in_chunks(decoder: StreamDecoder, data: bytes, cuts: list[int]) -> list[DecodeResult]:
    results: list[DecodeResult] = []
    previous = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        results += decoder.feed(data[previous:cut])
        previous = max(previous, cut)
    return results


def _frames(results: list[DecodeResult]) -> list[Frame]:
    return [r for r in results if isinstance(r, Frame)]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=8))
def test_stream_decoder_never_raises_on_random_bytes(data: bytes, cuts: list[int]) -> None:
    decoder = StreamDecoder()
    results = _feed_in_chunks(decoder, data, cuts)
    assert all(isinstance(r, Frame | FrameFailure) for r in results)
    assert all(isinstance(r.error, YkcError) for r in results if isinstance(r, FrameFailure))
    assert decoder.buffered <= len(data)
    assert decoder.buffered < 259 or data.count(0x68) == 0


_garbage_without_start = st.binary(max_size=20).map(lambda b: b.replace(b"\x68", b"\x69"))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(_garbage_without_start, WIRE_FRAMES), min_size=1, max_size=6),
    st.lists(st.integers(0, 2000), max_size=10),
)
def test_stream_decoder_recovers_every_frame_between_garbage(
    parts: list[tuple[bytes, bytes]], cuts: list[int]
) -> None:
    stream = b"".join(garbage + frame for garbage, frame in parts)
    decoder = StreamDecoder()
    results = _feed_in_chunks(decoder, stream, cuts)
    assert [f.encode() for f in _frames(results)] == [frame for _, frame in parts]
    failures = [r for r in results if isinstance(r, FrameFailure)]
    assert all(isinstance(f.error, BadStart) for f in failures)
    assert b"".join(f.data for f in failures) == b"".join(g for g, _ in parts)
    assert decoder.buffered == 0


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.one_of(WIRE_FRAMES, mutated_frames(), st.binary(max_size=30)), max_size=8),
    st.lists(st.integers(0, 3000), max_size=10),
)
def test_stream_decoder_mixed_input_is_chunking_invariant(
    parts: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(parts)
    whole = StreamDecoder()
    at_once = whole.feed(stream)
    chunked = _feed_in_chunks(StreamDecoder(), stream, cuts)
    assert [f.encode() for f in _frames(chunked)] == [f.encode() for f in _frames(at_once)]
    assert whole.stats.frames == len(_frames(at_once))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.binary(max_size=12), WIRE_FRAMES), min_size=1, max_size=5),
)
def test_stream_decoder_finds_frames_after_arbitrary_garbage(
    parts: list[tuple[bytes, bytes]],
) -> None:
    stream = b"".join(garbage + frame for garbage, frame in parts)
    decoded = [f.encode() for f in _frames(StreamDecoder().feed(stream))]
    for _, frame in parts:
        assert frame in decoded
