"""Typed frame codec: bytes ⇄ :class:`Frame` (outer frame + body dataclass).

::

    decode_frame(b"\\x68\\x0d...")  ->  (Frame(message=Heartbeat(...), seq=b"\\x00\\x01"), 17)
    encode_frame(HeartbeatReply(...), seq=frame.seq)  ->  b"\\x68\\x0d..."

:func:`decode_frame` and :func:`decode_body` raise only :class:`~bridges.ykc.errors.YkcError`
subclasses, whatever the input bytes. Encoding raises
:class:`~bridges.ykc.errors.EncodeError` for values that do not fit the layout.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import BodyError, EncodeError, UnknownFrameType, UnsupportedEncryption, YkcError
from .frame import (
    ZERO_SEQ,
    CrcOrder,
    RawFrame,
    decode_raw_frame,
    encode_raw_frame,
)
from .messages import MESSAGE_TYPES, Message

__all__ = [
    "Frame",
    "decode_body",
    "decode_frame",
    "decode_message",
    "encode_body",
    "encode_frame",
]


@dataclass(frozen=True)
class Frame:
    """A decoded frame: the typed body plus the header fields worth keeping.

    ``seq`` is the raw 2-byte sequence number; pass it to :func:`encode_frame`
    to answer with the same bytes. ``crc_order`` tells how the peer wrote the CRC.
    """

    message: Message
    seq: bytes = ZERO_SEQ
    crc_order: CrcOrder = CrcOrder.LOW_FIRST

    @property
    def frame_type(self) -> int:
        return self.message.FRAME_TYPE

    def encode(self, *, crc_order: CrcOrder | None = None) -> bytes:
        """Encode again (CRC low byte first unless ``crc_order`` is given)."""
        return encode_raw_frame(
            self.frame_type,
            encode_body(self.message),
            seq=self.seq,
            crc_order=crc_order or CrcOrder.LOW_FIRST,
        )


def decode_body(frame_type: int, body: bytes) -> Message:
    """Decode the body of a frame of type ``frame_type``.

    Raises :class:`UnknownFrameType` or :class:`BodyError` (incl. ``BadBodyLength``).
    """
    cls = MESSAGE_TYPES.get(frame_type)
    if cls is None:
        raise UnknownFrameType(f"unknown frame type 0x{frame_type:02X}", frame_type=frame_type)
    try:
        return cls.decode_body(bytes(body))
    except YkcError as exc:
        exc.frame_type = frame_type
        raise
    except (ValueError, TypeError, IndexError, OverflowError) as exc:  # defensive net
        raise BodyError(f"0x{frame_type:02X} {cls.__name__}: {exc}", frame_type=frame_type) from exc


def encode_body(message: Message) -> bytes:
    """Encode a body dataclass; raises :class:`EncodeError`."""
    if not isinstance(message, Message) or type(message) not in MESSAGE_TYPES.values():
        raise EncodeError(f"not a YKC frame body: {type(message).__name__}")
    return message.encode_body()


def decode_message(raw: RawFrame) -> Frame:
    """Interpret a checksum-verified :class:`RawFrame`.

    Raises :class:`UnsupportedEncryption`, :class:`UnknownFrameType` or :class:`BodyError`,
    each carrying ``frame_type`` and ``seq``.
    """
    if raw.encryption != 0:
        raise UnsupportedEncryption(
            f"encryption flag 0x{raw.encryption:02X} is not supported",
            flag=raw.encryption,
            frame_type=raw.frame_type,
            seq=raw.seq,
        )
    try:
        message = decode_body(raw.frame_type, raw.body)
    except YkcError as exc:
        exc.frame_type = raw.frame_type
        exc.seq = raw.seq
        raise
    return Frame(message=message, seq=raw.seq, crc_order=raw.crc_order)


def decode_frame(data: bytes | bytearray | memoryview) -> tuple[Frame, int]:
    """Decode the frame at the start of ``data``; return it and the number of bytes consumed.

    ``data`` must start with 0x68 (use :class:`~bridges.ykc.stream.StreamDecoder` to scan
    a byte stream). Raises :class:`~bridges.ykc.errors.IncompleteFrame` when more bytes
    are needed, and other :class:`~bridges.ykc.errors.YkcError` subclasses for bad frames.
    """
    raw, consumed = decode_raw_frame(data)
    return decode_message(raw), consumed


def encode_frame(
    message: Message,
    seq: bytes | bytearray | int = ZERO_SEQ,
) -> bytes:
    """Encode ``message`` into a complete frame (plain, CRC low byte first).

    ``seq`` is either the raw 2 bytes (echo ``frame.seq`` in replies) or an int
    written big-endian.
    """
    return encode_raw_frame(message.FRAME_TYPE, encode_body(message), seq=seq)
