"""Billing-model frames (0x05/0x06 verify, 0x09/0x0A request, 0x58/0x57 set).

Rates are kept as raw uint32 in 0.00001 yuan/kWh (suffix ``_yuan5``); use
:mod:`bridges.ykc.tariff` to build a :class:`BillingModel` from Decimal prices
and :data:`bridges.ykc.units.YUAN5` to convert back.
"""

from dataclasses import dataclass
from typing import Annotated, ClassVar

from ..fields import U8, U32, Array, ModelCode, PileCode, Struct, UInt
from .base import Direction, Message

__all__ = [
    "BillingModel",
    "BillingModelReply",
    "BillingModelRequest",
    "BillingModelSet",
    "BillingModelSetReply",
    "BillingModelVerify",
    "BillingModelVerifyReply",
    "TierRate",
]


@dataclass(frozen=True)
class BillingModelVerify(Message):
    """0x05 计费模型验证请求, charger → platform, 9 bytes::

        pile_code(BCD7) model_code(BCD2)

    Model_code "0000" before any model was received.
    """

    FRAME_TYPE: ClassVar[int] = 0x05
    DIRECTION: ClassVar[Direction] = Direction.UP

    pile_code: PileCode
    model_code: ModelCode


@dataclass(frozen=True)
class BillingModelVerifyReply(Message):
    """0x06 verify reply, platform → charger, 10 bytes::

        pile_code(BCD7) model_code(BCD2) result(1)

    ``result``: 0x00 charger's model matches, 0x01 differs (charger then sends 0x09).
    """

    FRAME_TYPE: ClassVar[int] = 0x06
    DIRECTION: ClassVar[Direction] = Direction.DOWN

    pile_code: PileCode
    model_code: ModelCode
    result: U8


@dataclass(frozen=True)
class BillingModelRequest(Message):
    """0x09 计费模型请求, charger → platform, 7 bytes::

        pile_code(BCD7)

    The charger retries until answered and refuses to charge without a model.
    """

    FRAME_TYPE: ClassVar[int] = 0x09
    DIRECTION: ClassVar[Direction] = Direction.UP

    pile_code: PileCode


@dataclass(frozen=True)
class TierRate:
    """One tier of a billing model (8 bytes)::

        electricity_yuan5(BIN4) service_yuan5(BIN4)

    Both rates in 0.00001 yuan/kWh (``40000`` = 0.40000 yuan/kWh).
    """

    electricity_yuan5: U32
    service_yuan5: U32


@dataclass(frozen=True)
class BillingModel:
    """The 83-byte billing model shared by 0x0A and 0x58 (after the pile code)::

        model_code(BCD2)
        tiers[0] tip    : electricity_yuan5(4) service_yuan5(4)
        tiers[1] peak   : electricity_yuan5(4) service_yuan5(4)
        tiers[2] flat   : electricity_yuan5(4) service_yuan5(4)
        tiers[3] valley : electricity_yuan5(4) service_yuan5(4)
        loss_ratio(1)
        slots[48](1 each)

    ``loss_ratio`` (计损比例): the platform keeps it 0. ``slots[i]``: tier index
    0..3 (:class:`~bridges.ykc.constants.Tier`) for local time [i×30 min, (i+1)×30 min).
    """

    model_code: ModelCode
    tiers: Annotated[tuple[TierRate, ...], Array(Struct(TierRate), 4)]
    loss_ratio: U8
    slots: Annotated[tuple[int, ...], Array(UInt(1), 48)]


@dataclass(frozen=True)
class _BillingModelBody(Message):
    pile_code: PileCode
    model: Annotated[BillingModel, Struct(BillingModel)]


@dataclass(frozen=True)
class BillingModelReply(_BillingModelBody):
    """0x0A billing-model reply (answer to 0x09), platform → charger, 90 bytes::

        pile_code(BCD7) model(BillingModel, 83 bytes)

    See :class:`BillingModel` for the 83-byte model layout.
    """

    FRAME_TYPE: ClassVar[int] = 0x0A
    DIRECTION: ClassVar[Direction] = Direction.DOWN


@dataclass(frozen=True)
class BillingModelSet(_BillingModelBody):
    """0x58 计费模型设置 (push, only while idle), platform → charger, 90 bytes::

        pile_code(BCD7) model(BillingModel, 83 bytes)

    See :class:`BillingModel` for the 83-byte model layout.
    """

    FRAME_TYPE: ClassVar[int] = 0x58
    DIRECTION: ClassVar[Direction] = Direction.DOWN


@dataclass(frozen=True)
class BillingModelSetReply(Message):
    """0x57 billing-model set reply, charger → platform, 8 bytes::

        pile_code(BCD7) result(1)

    ``result``: 0x00 failure, 0x01 success.
    """

    FRAME_TYPE: ClassVar[int] = 0x57
    DIRECTION: ClassVar[Direction] = Direction.UP

    pile_code: PileCode
    result: U8
