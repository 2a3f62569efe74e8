"""A virtual null-modem cable: two pseudo-terminals joined by a byte pump (POSIX only).

Each end is a real tty path that pyserial opens like ``/dev/ttyUSB0`` (termios and all): the
simulated RS485 devices (:class:`~sim.modbus.server.ModbusSerialSimServer`) open end ``a``,
the gateway opens end ``b``, and every byte written to one end is read at the other. Nothing
is mocked: both sides go through the kernel's tty layer, pyserial and pymodbus's serial
transport. What a pty cannot show is the line's timing: the baud rate is accepted and
ignored, bytes arrive as fast as the pump moves them.

Faults, for tests and demos:

* :meth:`NullModem.cut` / :meth:`NullModem.mend`: the cable is cut (bytes in both directions
  are dropped, like an RS485 pair pulled out of its terminal) and put back;
* :meth:`NullModem.unplug` / :meth:`NullModem.replug`: end ``b``'s tty disappears (a USB
  adapter pulled out: the program holding it reads EIO) and a new one appears at the same
  path. For that, give ``directory``: the ends are then symlinks ``<directory>/<name>-a`` and
  ``-b`` to the current ptys, as udev's ``/dev/serial/by-id`` links are.

Run it by hand: ``python -m sim.modbus --null-modem DIR MAP@ID ...`` creates one and serves the
devices on end ``a``, printing end ``b``'s path for the gateway config.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from pathlib import Path
from types import TracebackType

from sim.modbus.errors import ServerError

__all__ = ["NullModem"]

_CHUNK = 4096


class _End:
    """One pseudo-terminal: the master (pumped) and the slave, held open by us.

    Holding the slave open keeps the master from reading EIO while the program at this end
    is closed or reconnecting; its termios are set raw so that nothing is echoed or
    translated before pyserial configures the port.
    """

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.tty = os.ttyname(self.slave)
        self.pending = bytearray()  # written to this master, not yet accepted

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class NullModem:
    """Two tty paths wired back to back (``async with NullModem() as cable``).

    :attr:`a` and :attr:`b` are the paths to open (symlinks when ``directory`` is given).
    :attr:`bytes_ab` / :attr:`bytes_ba` count the bytes carried each way.
    """

    def __init__(self, directory: Path | str | None = None, name: str = "tty") -> None:
        self.directory = Path(directory) if directory is not None else None
        self.name = name
        self.bytes_ab = 0
        self.bytes_ba = 0
        self.dropped = 0
        self.is_cut = False
        self._a: _End | None = None
        self._b: _End | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- paths -------------------------------------------------------------------------------

    @property
    def a(self) -> str:
        """End a (the devices' side)."""
        return self._path("a")

    @property
    def b(self) -> str:
        """End b (the gateway's side)."""
        return self._path("b")

    def _path(self, side: str) -> str:
        if self._loop is None:
            raise ServerError("the null-modem cable is not open")
        if self.directory is not None:
            return str(self.directory / f"{self.name}-{side}")  # even while unplugged
        end = self._a if side == "a" else self._b
        if end is None:
            raise ServerError(f"end {side} of the null-modem cable is unplugged")
        return end.tty

    def _link(self, side: str, end: _End) -> None:
        if self.directory is None:
            return
        link = self.directory / f"{self.name}-{side}"
        tmp = link.with_name(link.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(end.tty)
        tmp.replace(link)  # atomic, like udev re-creating a by-id link

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Create both ptys and start pumping (needs a running event loop)."""
        if self._loop is not None:
            raise ServerError("the null-modem cable is already open")
        self._loop = asyncio.get_running_loop()
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
        try:
            self._a, self._b = _End(), _End()
        except OSError as exc:
            self.stop()
            raise ServerError(f"cannot create pseudo-terminals: {exc}") from exc
        self._link("a", self._a)
        self._link("b", self._b)
        self._watch(self._a)
        self._watch(self._b)

    def stop(self) -> None:
        """Stop pumping and close both ptys (the programs at the ends read EIO)."""
        for end in (self._a, self._b):
            if end is not None:
                self._unwatch(end)
                end.close()
        self._a = self._b = None
        if self.directory is not None:
            for side in "ab":
                with contextlib.suppress(FileNotFoundError):
                    (self.directory / f"{self.name}-{side}").unlink()
        self._loop = None

    async def __aenter__(self) -> NullModem:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.stop()

    # -- faults ------------------------------------------------------------------------------

    def cut(self) -> None:
        """Cut the cable: from now on bytes are dropped both ways."""
        self.is_cut = True

    def mend(self) -> None:
        """Put the cable back."""
        self.is_cut = False

    def unplug(self) -> None:
        """End b's tty disappears: its holder reads EIO, opening the path fails."""
        if self._b is None:
            raise ServerError("the null-modem cable is not open")
        self._unwatch(self._b)
        self._b.close()
        self._b = None
        if self.directory is not None:
            with contextlib.suppress(FileNotFoundError):
                (self.directory / f"{self.name}-b").unlink()

    def replug(self) -> None:
        """A new tty for end b (a new pty; the same path only when ``directory`` is given)."""
        if self._a is None or self._loop is None:
            raise ServerError("the null-modem cable is not open")
        if self._b is not None:
            self.unplug()
        self._b = _End()
        self._link("b", self._b)
        self._watch(self._b)

    # -- the pump ----------------------------------------------------------------------------

    def _watch(self, end: _End) -> None:
        assert self._loop is not None
        self._loop.add_reader(end.master, self._readable, end)

    def _unwatch(self, end: _End) -> None:
        if self._loop is not None:
            self._loop.remove_reader(end.master)
            self._loop.remove_writer(end.master)

    def _readable(self, src: _End) -> None:
        try:
            data = os.read(src.master, _CHUNK)
        except BlockingIOError:
            return
        except OSError:  # EIO: nobody holds the slave (cannot happen while we hold it)
            return
        dst = self._b if src is self._a else self._a
        if dst is None or self.is_cut:
            self.dropped += len(data)
            return
        if src is self._a:
            self.bytes_ab += len(data)
        else:
            self.bytes_ba += len(data)
        dst.pending += data
        self._flush(dst)

    def _flush(self, dst: _End) -> None:
        assert self._loop is not None
        while dst.pending:
            try:
                written = os.write(dst.master, dst.pending)
            except BlockingIOError:
                break
            except OSError:
                self.dropped += len(dst.pending)
                dst.pending.clear()
                break
            del dst.pending[:written]
        if dst.pending:
            self._loop.add_writer(dst.master, self._flush, dst)
        else:
            self._loop.remove_writer(dst.master)
