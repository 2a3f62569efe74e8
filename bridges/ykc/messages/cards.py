"""Offline-card whitelist frames: sync 0x44/0x43, clear 0x46/0x45, query 0x48/0x47.

Counts: 0x44 carries at most 15 cards, 0x46 at most 24, 0x48 at most 26
(enforced on encode only). The replies 0x45/0x47 have no count byte: the
entries run to the end of the body.
"""

from dataclasses import dataclass
from typing import Annotated, ClassVar

from ..fields import U8, Bcd, Card, Counted, LogicalCard, PileCode, Remainder, Struct
from .base import Direction, Message

__all__ = [
    "CardClearResult",
    "CardQueryResult",
    "OfflineCard",
    "OfflineCardClear",
    "OfflineCardClearReply",
    "OfflineCardQuery",
    "OfflineCardQueryReply",
    "OfflineCardSync",
    "OfflineCardSyncReply",
]


@dataclass(frozen=True)
class OfflineCard:
    """One whitelist entry (16 bytes): logical_card(BCD8) physical_card(BIN8)."""

    logical_card: LogicalCard
    physical_card: Card


@dataclass(frozen=True)
class CardClearResult:
    """One 0x45 entry (10 bytes): physical_card(BIN8) cleared(1) reason(1)."""

    physical_card: Card
    cleared: U8
    reason: U8


@dataclass(frozen=True)
class CardQueryResult:
    """One 0x47 entry (9 bytes): physical_card(BIN8) present(1)."""

    physical_card: Card
    present: U8


@dataclass(frozen=True)
class OfflineCardSync(Message):
    """0x44 offline-card sync (upsert), platform → charger, 8 + 16·N bytes::

        pile_code(BCD7) count(1) count × (logical_card(BCD8) physical_card(BIN8))

    At most 15 cards (enforced on encode); the charger upserts them.
    """

    FRAME_TYPE: ClassVar[int] = 0x44
    DIRECTION: ClassVar[Direction] = Direction.DOWN

    pile_code: PileCode
    cards: Annotated[tuple[OfflineCard, ...], Counted(Struct(OfflineCard), 15)]


@dataclass(frozen=True)
class OfflineCardSyncReply(Message):
    """0x43 offline-card sync reply, charger → platform, 9 bytes::

        pile_code(BCD7) result(1) fail_reason(1)

    ``result``: 0 fail, 1 saved; ``fail_reason``: 1 bad card format, 2 storage full.
    """

    FRAME_TYPE: ClassVar[int] = 0x43
    DIRECTION: ClassVar[Direction] = Direction.UP

    pile_code: PileCode
    result: U8
    fail_reason: U8


@dataclass(frozen=True)
class OfflineCardClear(Message):
    """0x46 offline-card clear, platform → charger, 8 + 8·N bytes::

        pile_code(BCD7) count(1) count × physical_card(BIN8)

    At most 24 cards (enforced on encode).
    """

    FRAME_TYPE: ClassVar[int] = 0x46
    DIRECTION: ClassVar[Direction] = Direction.DOWN

    pile_code: PileCode
    cards: Annotated[tuple[str, ...], Counted(Bcd(8), 24)]


@dataclass(frozen=True)
class OfflineCardClearReply(Message):
    """0x45 offline-card clear reply, charger → platform, 7 + 10·N bytes::

        pile_code(BCD7) N × (physical_card(BIN8) cleared(1) reason(1))

    No count byte: entries run to the end of the body.
    """

    FRAME_TYPE: ClassVar[int] = 0x45
    DIRECTION: ClassVar[Direction] = Direction.UP

    pile_code: PileCode
    results: Annotated[tuple[CardClearResult, ...], Remainder(Struct(CardClearResult), 24)]


@dataclass(frozen=True)
class OfflineCardQuery(Message):
    """0x48 offline-card query, platform → charger, 8 + 8·N bytes::

        pile_code(BCD7) count(1) count × physical_card(BIN8)

    At most 26 cards (enforced on encode).
    """

    FRAME_TYPE: ClassVar[int] = 0x48
    DIRECTION: ClassVar[Direction] = Direction.DOWN

    pile_code: PileCode
    cards: Annotated[tuple[str, ...], Counted(Bcd(8), 26)]


@dataclass(frozen=True)
class OfflineCardQueryReply(Message):
    """0x47 offline-card query reply, charger → platform, 7 + 9·N bytes::

        pile_code(BCD7) N × (physical_card(BIN8) present(1))

    No count byte: entries run to the end of the body.
    """

    FRAME_TYPE: ClassVar[int] = 0x47
    DIRECTION: ClassVar[Direction] = Direction.UP

    pile_code: PileCode
    results: Annotated[tuple[CardQueryResult, ...], Remainder(Struct(CardQueryResult), 26)]
