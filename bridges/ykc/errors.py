"""Exception tree of :mod:`bridges.ykc`.

Every error raised by the package derives from :class:`YkcError`; the public
decode functions raise nothing else for any byte input::

    YkcError
    ├── FrameError                 outer frame unusable (resynchronise)
    │   ├── IncompleteFrame        not enough bytes yet (one-shot API only)
    │   ├── BadStart               first byte is not 0x68 / implausible header
    │   ├── BadLength              length byte < 4, or contradicted by the stream
    │   └── BadCrc                 checksum matches in neither byte order
    ├── UnsupportedEncryption      intact frame, encryption flag != 0x00
    ├── UnknownFrameType           intact frame, type code not in YKC v1.5/v1.6
    ├── BodyError                  intact frame, body does not fit its layout
    │   └── BadBodyLength          body shorter/longer than the layout
    └── EncodeError (ValueError)   a value cannot be represented on the wire
"""

from __future__ import annotations

__all__ = [
    "BadBodyLength",
    "BadCrc",
    "BadLength",
    "BadStart",
    "BodyError",
    "EncodeError",
    "FrameError",
    "IncompleteFrame",
    "UnknownFrameType",
    "UnsupportedEncryption",
    "YkcError",
]


class YkcError(Exception):
    """Base class of every error raised by :mod:`bridges.ykc`.

    ``frame_type`` and ``seq`` (raw 2 bytes) are filled in when they are known,
    so a connection handler can log them or still answer the frame.
    """

    def __init__(
        self,
        message: str,
        *,
        frame_type: int | None = None,
        seq: bytes | None = None,
    ) -> None:
        super().__init__(message)
        self.frame_type = frame_type
        self.seq = seq


class FrameError(YkcError):
    """The outer frame (start byte, length, checksum) is unusable."""


class IncompleteFrame(FrameError):
    """More bytes are needed; ``needed`` is the minimum total size known so far."""

    def __init__(self, message: str, *, needed: int) -> None:
        super().__init__(message)
        self.needed = needed


class BadStart(FrameError):
    """The data does not start with 0x68, or 0x68 is not followed by a plausible header."""


class BadLength(FrameError):
    """The length byte is impossible (< 4) or contradicted by the stream."""


class BadCrc(FrameError):
    """The CRC-16/MODBUS trailer matches in neither byte order."""

    def __init__(
        self,
        message: str,
        *,
        expected: int,
        received: bytes,
        frame_type: int | None = None,
        seq: bytes | None = None,
    ) -> None:
        super().__init__(message, frame_type=frame_type, seq=seq)
        self.expected = expected
        self.received = received


class UnsupportedEncryption(YkcError):
    """The frame is intact but its encryption flag is not 0x00 (3DES is not supported)."""

    def __init__(
        self,
        message: str,
        *,
        flag: int,
        frame_type: int | None = None,
        seq: bytes | None = None,
    ) -> None:
        super().__init__(message, frame_type=frame_type, seq=seq)
        self.flag = flag


class UnknownFrameType(YkcError):
    """The frame is intact but its type code is not a YKC v1.5/v1.6 frame."""


class BodyError(YkcError):
    """The frame is intact but its body does not decode with the frame's layout."""


class BadBodyLength(BodyError):
    """The body is shorter or longer than the frame's layout."""


class EncodeError(YkcError, ValueError):
    """A value cannot be represented on the wire (wrong type, range or length)."""
