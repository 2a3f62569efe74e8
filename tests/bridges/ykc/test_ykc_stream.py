"""StreamDecoder: partial feeds, resynchronisation and error reporting."""

from __future__ import annotations

from datetime import datetime

from bridges.ykc import (
    BadBodyLength,
    BadCrc,
    BadLength,
    BadStart,
    Cp56Time2a,
    CrcOrder,
    DecodeResult,
    Frame,
    FrameFailure,
    Heartbeat,
    StreamDecoder,
    TimeSync,
    UnknownFrameType,
    UnsupportedEncryption,
    encode_frame,
    encode_raw_frame,
)

PILE = "32010200000001"
HEARTBEAT = encode_frame(Heartbeat(PILE, 1, 0), 1)
# a frame whose body is full of 0x68 bytes
TIME_SYNC = encode_frame(
    TimeSync("68686868686868", Cp56Time2a.from_datetime(datetime.fromisoformat("2068-06-08"))),
    0x6868,
)


def kinds(results: list[DecodeResult]) -> list[str]:
    return [
        type(r.message).__name__ if isinstance(r, Frame) else type(r.error).__name__
        for r in results
    ]


def test_byte_by_byte_feed_yields_each_frame_once() -> None:
    decoder = StreamDecoder()
    stream = HEARTBEAT + TIME_SYNC + HEARTBEAT
    results: list[DecodeResult] = []
    for index in range(len(stream)):
        results += decoder.feed(stream[index : index + 1])
    assert kinds(results) == ["Heartbeat", "TimeSync", "Heartbeat"]
    assert decoder.buffered == 0
    assert decoder.stats.frames == 3
    assert decoder.stats.failures == 0


def test_partial_frame_is_buffered_until_complete() -> None:
    decoder = StreamDecoder()
    assert decoder.feed(TIME_SYNC[:10]) == []
    assert decoder.buffered == 10
    (frame,) = decoder.feed(TIME_SYNC[10:])
    assert isinstance(frame, Frame)
    assert frame.seq == b"\x68\x68"
    assert decoder.buffered == 0


def test_garbage_before_a_frame_is_reported_once_and_dropped() -> None:
    decoder = StreamDecoder()
    results = decoder.feed(b"\x00\x01garbage" + HEARTBEAT)
    assert kinds(results) == ["BadStart", "Heartbeat"]
    failure = results[0]
    assert isinstance(failure, FrameFailure)
    assert failure.data == b"\x00\x01garbage"
    assert decoder.stats.discarded_bytes == 9


def test_bad_crc_frame_is_reported_and_next_frame_decoded() -> None:
    broken = bytearray(HEARTBEAT)
    broken[-1] ^= 0xFF
    results = StreamDecoder().feed(bytes(broken) + HEARTBEAT)
    assert kinds(results) == ["BadCrc", "Heartbeat"]  # no extra report for the dropped tail
    failure = results[0]
    assert isinstance(failure, FrameFailure)
    assert isinstance(failure.error, BadCrc)
    assert failure.data == bytes(broken)
    assert failure.error.frame_type == 0x03


def test_frame_hidden_inside_a_bad_candidate_is_found() -> None:
    # a corrupted frame whose length byte swallows the next frame
    bogus = bytearray(HEARTBEAT)
    bogus[1] = 0x20  # claims 36 bytes
    results = StreamDecoder().feed(bytes(bogus[:8]) + HEARTBEAT + TIME_SYNC)
    assert kinds(results)[-2:] == ["Heartbeat", "TimeSync"]
    assert isinstance(results[0], FrameFailure)


def test_spurious_start_with_long_length_does_not_stall_the_stream() -> None:
    decoder = StreamDecoder()
    results = decoder.feed(b"\x68\xf0\x00\x00\x00" + HEARTBEAT)
    assert kinds(results) == ["BadLength", "Heartbeat"]
    assert decoder.buffered == 0


def test_spurious_start_with_implausible_header_is_dropped_at_once() -> None:
    decoder = StreamDecoder()
    assert kinds(decoder.feed(b"\x68\x40\x00\x00\x07")) == ["BadStart"]
    assert decoder.buffered == 0
    assert kinds(decoder.feed(HEARTBEAT)) == ["Heartbeat"]


def test_impossible_length_byte() -> None:
    results = StreamDecoder().feed(b"\x68\x02" + HEARTBEAT)
    assert kinds(results) == ["BadLength", "Heartbeat"]


def test_unknown_type_is_consumed_whole_and_reported_with_raw_frame() -> None:
    unknown = encode_raw_frame(0xF0, b"\x68\x68\x68", seq=b"\x01\x02")
    results = StreamDecoder().feed(unknown + HEARTBEAT)
    assert kinds(results) == ["UnknownFrameType", "Heartbeat"]
    failure = results[0]
    assert isinstance(failure, FrameFailure)
    assert isinstance(failure.error, UnknownFrameType)
    assert failure.raw is not None
    assert failure.raw.frame_type == 0xF0
    assert failure.raw.seq == b"\x01\x02"
    assert failure.data == unknown


def test_encrypted_frame_is_reported_as_unsupported_encryption() -> None:
    encrypted = encode_raw_frame(0x03, HEARTBEAT[6:-2], seq=b"\x00\x09", encryption=1)
    results = StreamDecoder().feed(encrypted + HEARTBEAT)
    assert kinds(results) == ["UnsupportedEncryption", "Heartbeat"]
    failure = results[0]
    assert isinstance(failure, FrameFailure)
    assert isinstance(failure.error, UnsupportedEncryption)
    assert failure.error.flag == 1
    assert failure.error.seq == b"\x00\x09"


def test_body_of_wrong_length_is_reported() -> None:
    short = encode_raw_frame(0x03, HEARTBEAT[6:-3])
    results = StreamDecoder().feed(short + HEARTBEAT)
    assert kinds(results) == ["BadBodyLength", "Heartbeat"]
    failure = results[0]
    assert isinstance(failure, FrameFailure)
    assert isinstance(failure.error, BadBodyLength)


def test_high_byte_first_crc_in_stream() -> None:
    swapped = HEARTBEAT[:-2] + HEARTBEAT[-2:][::-1]
    (frame,) = StreamDecoder().feed(swapped)
    assert isinstance(frame, Frame)
    assert frame.crc_order is CrcOrder.HIGH_FIRST
    assert frame.encode() == HEARTBEAT


def test_trailing_garbage_and_reset() -> None:
    decoder = StreamDecoder()
    results = decoder.feed(HEARTBEAT + b"\x01\x02\x68\x30")
    assert kinds(results) == ["Heartbeat", "BadStart"]
    assert decoder.buffered == 2  # "68 30" may be the start of a frame
    decoder.reset()
    assert decoder.buffered == 0
    assert kinds(decoder.feed(HEARTBEAT)) == ["Heartbeat"]
    assert decoder.stats.frames == 2


def test_feed_accepts_bytearray_and_memoryview() -> None:
    decoder = StreamDecoder()
    assert kinds(decoder.feed(bytearray(HEARTBEAT[:5]))) == []
    assert kinds(decoder.feed(memoryview(HEARTBEAT)[5:])) == ["Heartbeat"]


def test_failures_keep_no_traceback() -> None:
    results = StreamDecoder().feed(b"\x68\x02junk")
    assert results
    for result in results:
        assert isinstance(result, FrameFailure)
        assert isinstance(result.error, BadLength | BadStart)
        assert result.error.__traceback__ is None
