"""Base class of all frame-body dataclasses."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar, Self

from ..fields import decode_struct, encode_struct

__all__ = ["Direction", "Message"]


class Direction(enum.Enum):
    """Who sends a frame. Charger-originated codes are odd, platform-originated even."""

    UP = "charger->platform"
    DOWN = "platform->charger"


@dataclass(frozen=True)
class Message:
    """A decoded frame body. Subclasses set ``FRAME_TYPE`` and ``DIRECTION``.

    Field order is wire order; each field's ``Annotated`` codec gives its encoding
    (see :mod:`bridges.ykc.fields`). Scaled integers keep their raw wire value; the
    field-name suffix names the scale (see :mod:`bridges.ykc.units`).
    """

    FRAME_TYPE: ClassVar[int]
    DIRECTION: ClassVar[Direction]

    def encode_body(self) -> bytes:
        """Encode this body; raises :class:`~bridges.ykc.errors.EncodeError`."""
        return encode_struct(self)

    @classmethod
    def decode_body(cls, body: bytes) -> Self:
        """Decode a body of this frame type; raises :class:`~bridges.ykc.errors.BodyError`."""
        return decode_struct(cls, body)
