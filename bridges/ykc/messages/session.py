"""Session and maintenance frames: login, heartbeat, time sync, work parameters,
reboot and remote update (0x01-0x04, 0x51/0x52, 0x55/0x56, 0x91-0x94)."""

from dataclasses import dataclass
from typing import Annotated, ClassVar

from ..fields import U8, U16, Ascii, Bcd, Cp56, Gun, PileCode
from .base import Direction, Message

__all__ = [
    "Heartbeat",
    "HeartbeatReply",
    "Login",
    "LoginReply",
    "RemoteReboot",
    "RemoteRebootReply",
    "RemoteUpdate",
    "RemoteUpdateReply",
    "TimeSync",
    "TimeSyncReply",
    "WorkParamsSet",
    "WorkParamsSetReply",
]


@dataclass(frozen=True)
class Login(Message):
    """0x01 充电桩登录认证, charger → platform, 30 bytes::

        pile_code(BCD7) pile_type(1) gun_count(1) protocol_version(1)
        firmware_version(ASCII8) network_type(1) iccid(BCD10) carrier(1)

    ``pile_type``: :class:`~bridges.ykc.constants.PileType` (0 DC, 1 AC);
    ``protocol_version``: version × 10 (0x0F = v1.5, 0x10 = v1.6);
    ``network_type``: :class:`~bridges.ykc.constants.NetworkType`;
    ``iccid``: 20 characters, all zeros when unknown (may contain A–F);
    ``carrier``: :class:`~bridges.ykc.constants.Carrier`.
    """

    FRAME_TYPE: ClassVar[int] = 0x01
    DIRECTION: ClassVar[Direction] = Direction.UP

    pile_code: PileCode
    pile_type: U8
    gun_count: U8
    protocol_version: U8
    firmware_version: Annotated[str, Ascii(8)]
    network_type: U8
    iccid: Annotated[str, Bcd(10)]
    carrier: U8


@dataclass(frozen=True)
class LoginReply(Message):
    """0x02 login reply, platform → charger, 8 bytes::

        pile_code(BCD7) result(1)

    ``result``: 0x00 success, 0x01 failure.
    """

    FRAME_TYPE: ClassVar[int] = 0x02
    DIRECTION: ClassVar[Direction] = Direction.DOWN

    pile_code: PileCode
    result: U8


@dataclass(frozen=True)
class Heartbeat(Message):
    """0x03 heartbeat (every 10 s), charger → platform, 9 bytes::

        pile_code(BCD7) gun(BCD1) gun_status(1)

    ``gun_status``: 0 normal, 1 fault.
    """

    FRAME_TYPE: ClassVar[int] = 0x03
    DIRECTION: ClassVar[Direction] = Direction.UP

    pile_code: PileCode
    gun: Gun
    gun_status: U8


@dataclass(frozen=True)
class HeartbeatReply(Message):
    """0x04 heartbeat reply, platform → charger, 9 bytes::

        pile_code(BCD7) gun(BCD1) response(1)

    ``response``: always 0.
    """

    FRAME_TYPE: ClassVar[int] = 0x04
    DIRECTION: ClassVar[Direction] = Direction.DOWN

    pile_code: PileCode
    gun: Gun
    response: U8 = 0


@dataclass(frozen=True)
class WorkParamsSet(Message):
    """0x52 work-parameter set, platform → charger, 9 bytes::

        pile_code(BCD7) disabled(1) max_power_pct(1)

    ``disabled``: 0x00 allowed to work, 0x01 locked / out of service;
    ``max_power_pct``: output power limit in % of rated power (30..100).
    """

    FRAME_TYPE: ClassVar[int] = 0x52
    DIRECTION: ClassVar[Direction] = Direction.DOWN

    pile_code: PileCode
    disabled: U8
    max_power_pct: U8


@dataclass(frozen=True)
class WorkParamsSetReply(Message):
    """0x51 work-parameter set reply, charger → platform, 8 bytes::

        pile_code(BCD7) result(1)

    ``result``: 0 failure, 1 success.
    """

    FRAME_TYPE: ClassVar[int] = 0x51
    DIRECTION: ClassVar[Direction] = Direction.UP

    pile_code: PileCode
    result: U8


@dataclass(frozen=True)
class TimeSync(Message):
    """0x56 对时设置, platform → charger, 14 bytes::

        pile_code(BCD7) time(CP56Time2a)

    Time is local (China) time.
    """

    FRAME_TYPE: ClassVar[int] = 0x56
    DIRECTION: ClassVar[Direction] = Direction.DOWN

    pile_code: PileCode
    time: Cp56


@dataclass(frozen=True)
class TimeSyncReply(Message):
    """0x55 time-sync reply (charger's new time), charger → platform, 14 bytes::

        pile_code(BCD7) time(CP56Time2a)

    Time is local (China) time.
    """

    FRAME_TYPE: ClassVar[int] = 0x55
    DIRECTION: ClassVar[Direction] = Direction.UP

    pile_code: PileCode
    time: Cp56


@dataclass(frozen=True)
class RemoteReboot(Message):
    """0x92 remote reboot, platform → charger, 8 bytes::

        pile_code(BCD7) when(1)

    ``when``: 0x01 now, 0x02 when idle.
    """

    FRAME_TYPE: ClassVar[int] = 0x92
    DIRECTION: ClassVar[Direction] = Direction.DOWN

    pile_code: PileCode
    when: U8


@dataclass(frozen=True)
class RemoteRebootReply(Message):
    """0x91 remote-reboot reply, charger → platform, 8 bytes::

        pile_code(BCD7) result(1)

    ``result``: 0 failure, 1 success.
    """

    FRAME_TYPE: ClassVar[int] = 0x91
    DIRECTION: ClassVar[Direction] = Direction.UP

    pile_code: PileCode
    result: U8


@dataclass(frozen=True)
class RemoteUpdate(Message):
    """0x94 remote update (OTA via FTP), platform → charger, 94 bytes::

        pile_code(BCD7) pile_model(1) power_kw(2) server_address(ASCII16) port(2)
        username(ASCII16) password(ASCII16) file_path(ASCII32) when(1) timeout_min(1)

    ``pile_model``: :class:`~bridges.ykc.constants.OtaPileModel` (0x01 DC, 0x02 AC);
    ``power_kw``: rated power (unit unstated by the spec, kW in samples);
    ``when``: 0x01 now, 0x02 when idle; ``timeout_min``: download timeout in minutes.
    """

    FRAME_TYPE: ClassVar[int] = 0x94
    DIRECTION: ClassVar[Direction] = Direction.DOWN

    pile_code: PileCode
    pile_model: U8
    power_kw: U16
    server_address: Annotated[str, Ascii(16)]
    port: U16
    username: Annotated[str, Ascii(16)]
    password: Annotated[str, Ascii(16)]
    file_path: Annotated[str, Ascii(32)]
    when: U8
    timeout_min: U8


@dataclass(frozen=True)
class RemoteUpdateReply(Message):
    """0x93 remote-update reply, charger → platform, 8 bytes::

        pile_code(BCD7) status(1)

    ``status``: :class:`~bridges.ykc.constants.OtaStatus` (0 ok, 1 wrong pile code,
    2 firmware does not match model, 3 download timeout).
    """

    FRAME_TYPE: ClassVar[int] = 0x93
    DIRECTION: ClassVar[Direction] = Direction.UP

    pile_code: PileCode
    status: U8
