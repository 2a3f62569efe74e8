"""Outer YKC frame: header, length, checksum (body kept opaque).

::

    offset  size  field
    0       1     start flag, always 0x68
    1       1     L = len(seq + enc + type + body) = len(body) + 4
    2       2     sequence number (opaque: byte order differs between firmwares)
    4       1     encryption flag: 0x00 plain, 0x01 3DES (unsupported)
    5       1     frame type
    6       L-4   body
    L+2     2     CRC-16/MODBUS over bytes [2, 2+L), low byte first per spec
                  (high byte first accepted on receive)

    total frame size = L + 4 (at most 259 bytes)

The sequence number is carried as the raw 2 bytes so that a reply can echo the
request's bytes exactly. Integers given for platform-initiated frames are
written big-endian (``1`` → ``00 01``), which is what real chargers do.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .crc import crc16_modbus
from .errors import BadCrc, BadLength, BadStart, EncodeError, IncompleteFrame

__all__ = [
    "CRC_SIZE",
    "HEADER_SIZE",
    "MAX_BODY_SIZE",
    "MAX_FRAME_SIZE",
    "START",
    "CrcOrder",
    "RawFrame",
    "decode_raw_frame",
    "encode_raw_frame",
    "seq_bytes",
]

START = 0x68
HEADER_SIZE = 6
CRC_SIZE = 2
MIN_LENGTH = 4
MAX_BODY_SIZE = 0xFF - MIN_LENGTH
MAX_FRAME_SIZE = 0xFF + 4
ZERO_SEQ = b"\x00\x00"


class CrcOrder(enum.Enum):
    """Byte order of the CRC trailer."""

    LOW_FIRST = "low-first"  # spec order, always used when encoding
    HIGH_FIRST = "high-first"  # seen in the field, accepted when decoding


@dataclass(frozen=True)
class RawFrame:
    """A checksum-verified frame whose body has not been interpreted."""

    frame_type: int
    body: bytes
    seq: bytes = ZERO_SEQ
    encryption: int = 0
    crc_order: CrcOrder = CrcOrder.LOW_FIRST

    def encode(self, *, crc_order: CrcOrder | None = None) -> bytes:
        """Re-encode; CRC order defaults to low byte first (pass ``crc_order`` to override)."""
        return encode_raw_frame(
            self.frame_type,
            self.body,
            seq=self.seq,
            encryption=self.encryption,
            crc_order=crc_order or CrcOrder.LOW_FIRST,
        )


def seq_bytes(seq: bytes | bytearray | int) -> bytes:
    """Normalise a sequence number: 2 raw bytes pass through, an int is written big-endian."""
    if isinstance(seq, bytes | bytearray):
        if len(seq) != 2:
            raise EncodeError(f"sequence number must be 2 bytes, got {len(seq)}")
        return bytes(seq)
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= 0xFFFF:
        raise EncodeError(f"sequence number must be 2 bytes or an int 0..65535, got {seq!r}")
    return seq.to_bytes(2, "big")


def encode_raw_frame(
    frame_type: int,
    body: bytes,
    *,
    seq: bytes | bytearray | int = ZERO_SEQ,
    encryption: int = 0,
    crc_order: CrcOrder = CrcOrder.LOW_FIRST,
) -> bytes:
    """Wrap an already-encoded body into a complete frame."""
    for name, value in (("frame type", frame_type), ("encryption flag", encryption)):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFF:
            raise EncodeError(f"{name} {value!r} is not a byte")
    if not isinstance(body, bytes | bytearray):
        raise EncodeError(f"body must be bytes, got {type(body).__name__}")
    if len(body) > MAX_BODY_SIZE:
        raise EncodeError(f"body of {len(body)} bytes exceeds {MAX_BODY_SIZE}")
    covered = seq_bytes(seq) + bytes((encryption, frame_type)) + bytes(body)
    crc = crc16_modbus(covered)
    trailer = crc.to_bytes(2, "little" if crc_order is CrcOrder.LOW_FIRST else "big")
    return bytes((START, len(covered))) + covered + trailer


def decode_raw_frame(data: bytes | bytearray | memoryview) -> tuple[RawFrame, int]:
    """Parse one frame at the start of ``data``; return it and the bytes consumed.

    Raises :class:`IncompleteFrame` (with ``needed``) when ``data`` is a prefix of a
    frame, :class:`BadStart`, :class:`BadLength` or :class:`BadCrc` otherwise.
    Trailing bytes after the frame are ignored (see the returned count).
    """
    buf = bytes(data[:MAX_FRAME_SIZE])
    if not buf:
        raise IncompleteFrame("no data", needed=2)
    if buf[0] != START:
        raise BadStart(f"expected start byte 0x68, got 0x{buf[0]:02X}")
    if len(buf) < 2:
        raise IncompleteFrame("length byte missing", needed=2)
    length = buf[1]
    if length < MIN_LENGTH:
        raise BadLength(f"length byte {length} is below the minimum of {MIN_LENGTH}")
    total = length + 4
    if len(buf) < total:
        raise IncompleteFrame(f"frame needs {total} bytes, have {len(buf)}", needed=total)
    covered = buf[2 : 2 + length]
    seq = covered[:2]
    frame_type = covered[3]
    trailer = buf[2 + length : total]
    crc = crc16_modbus(covered)
    if trailer == crc.to_bytes(2, "little"):
        order = CrcOrder.LOW_FIRST
    elif trailer == crc.to_bytes(2, "big"):
        order = CrcOrder.HIGH_FIRST
    else:
        raise BadCrc(
            f"CRC mismatch: computed 0x{crc:04X}, frame carries {trailer.hex(' ').upper()}",
            expected=crc,
            received=trailer,
            frame_type=frame_type,
            seq=seq,
        )
    frame = RawFrame(
        frame_type=frame_type,
        body=covered[4:],
        seq=seq,
        encryption=covered[2],
        crc_order=order,
    )
    return frame, total
