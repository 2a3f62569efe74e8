"""Parking-lock frames 0x61 status, 0x62 command, 0x63 command result.

Here the gun number is typed BIN (same byte as BCD for guns 1-9).
"""

from dataclasses import dataclass
from typing import Annotated, ClassVar

from ..fields import U8, PileCode, Raw
from .base import Direction, Message

__all__ = ["ParkingLockControl", "ParkingLockControlReply", "ParkingLockStatus"]

_Reserved = Annotated[bytes, Raw(4)]
_NO_RESERVED = bytes(4)


@dataclass(frozen=True)
class ParkingLockStatus(Message):
    """0x61 地锁数据上送 (on change, else every 5 min), charger → platform, 16 bytes::

        pile_code(BCD7) gun(1) position(1) space(1) battery_pct(1) alarm(1) reserved(4)

    ``position``: :class:`~bridges.ykc.constants.LockPosition`; ``space``:
    :class:`~bridges.ykc.constants.SpaceState`; ``alarm``:
    :class:`~bridges.ykc.constants.LockAlarm`.
    """

    FRAME_TYPE: ClassVar[int] = 0x61
    DIRECTION: ClassVar[Direction] = Direction.UP

    pile_code: PileCode
    gun: U8
    position: U8
    space: U8
    battery_pct: U8
    alarm: U8
    reserved: _Reserved = _NO_RESERVED


@dataclass(frozen=True)
class ParkingLockControl(Message):
    """0x62 parking-lock raise/lower, platform → charger, 13 bytes::

        pile_code(BCD7) gun(1) action(1) reserved(4)

    ``action``: 0x55 raise, 0xFF lower.
    """

    FRAME_TYPE: ClassVar[int] = 0x62
    DIRECTION: ClassVar[Direction] = Direction.DOWN

    pile_code: PileCode
    gun: U8
    action: U8
    reserved: _Reserved = _NO_RESERVED


@dataclass(frozen=True)
class ParkingLockControlReply(Message):
    """0x63 parking-lock command result, charger → platform, 13 bytes::

        pile_code(BCD7) gun(1) result(1) reserved(4)

    ``result``: 1 success, 0 failure.
    """

    FRAME_TYPE: ClassVar[int] = 0x63
    DIRECTION: ClassVar[Direction] = Direction.UP

    pile_code: PileCode
    gun: U8
    result: U8
    reserved: _Reserved = _NO_RESERVED
