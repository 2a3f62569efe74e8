"""CRC-16/MODBUS as used by YKC frames.

Reflected polynomial 0xA001 (0x8005 normal), initial value 0xFFFF, no final
XOR. The spec's appendix routine returns the same value with its two bytes
swapped, which is why field firmware sends the trailer in either byte order::

    68 | L | seq seq | enc | type | body ... | crc_lo crc_hi
              └───────── CRC input ────────┘   (spec order; high byte first also seen)
"""

from __future__ import annotations

__all__ = ["crc16_modbus"]


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _make_table()


def crc16_modbus(data: bytes | bytearray | memoryview) -> int:
    """Return the CRC-16/MODBUS of ``data`` as an int (0..0xFFFF)."""
    crc = 0xFFFF
    table = _TABLE
    for byte in bytes(data):
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc
