"""The progress line: connected/target per kind, sessions, messages per second out, errors.

On a terminal the line is rewritten in place every second; otherwise (CI, a pipe, a file)
a plain line is printed every ``interval`` seconds, and a last one at the end.
"""

from __future__ import annotations

import sys
from typing import TextIO

from sim.fleet.summary import Snapshot

__all__ = ["Progress", "format_line"]

_SHORT = {"ykc": "ykc", "ocpp16": "ocpp16", "ocpp201": "ocpp201", "modbus_meter": "meter",
          "env_sensor": "env", "camera": "cam", "parking_lock": "lock"}


def format_line(snap: Snapshot, rate: float | None, *, phase: str = "") -> str:
    """One progress line; ``rate`` is messages/s out since the previous line."""
    kinds = " ".join(f"{_SHORT.get(str(kind), str(kind))} {k.connected}/{k.target}"
                     for kind, k in snap.kinds.items())
    active = snap.total("active_sessions")
    done = snap.total("sessions_completed")
    out = "-" if rate is None else f"{rate:,.0f}"
    prefix = f"[{snap.elapsed:6.0f}s{' ' + phase if phase else ''}]"
    return (f"{prefix} {kinds} | sessions {active} active {done} done | {out} msg/s out "
            f"| errors {snap.error_total()}")


class Progress:
    """Writes progress lines to ``stream`` (a TTY: one line in place each second)."""

    def __init__(self, stream: TextIO | None = None, *, interval: float = 10.0,
                 tty: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval = 1.0 if self.tty else interval
        self._last_at: float | None = None
        self._last_sent = 0
        self._last_printed: float | None = None
        self._width = 0

    def update(self, snap: Snapshot, *, phase: str = "", force: bool = False) -> None:
        """Show a snapshot if it is time (``force``: now)."""
        if not force and self._last_printed is not None and \
                snap.elapsed - self._last_printed < self.interval - 0.05:
            return
        sent = snap.total("sent")
        rate = None
        if self._last_at is not None and snap.elapsed > self._last_at:
            rate = (sent - self._last_sent) / (snap.elapsed - self._last_at)
        self._last_at, self._last_sent, self._last_printed = snap.elapsed, sent, snap.elapsed
        line = format_line(snap, rate, phase=phase)
        if self.tty:
            pad = max(0, self._width - len(line))
            self.stream.write("\r" + line + " " * pad)
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self) -> None:
        """End the in-place line (TTY)."""
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0
