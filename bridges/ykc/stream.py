"""Incremental decoder for a YKC TCP byte stream (sans-I/O).

::

    decoder = StreamDecoder()
    for result in decoder.feed(chunk):          # never raises
        if isinstance(result, Frame):
            handle(result.message, result.seq)
        else:                                   # FrameFailure
            log(result.error, result.data)

Resynchronisation rules:

* bytes before a 0x68 are garbage and are dropped (one ``BadStart`` failure per run);
* a 0x68 followed by an impossible header (length < 4, encryption flag not 0x00/0x01)
  is dropped at once;
* a candidate frame is held until its ``L + 4`` bytes have arrived, unless a
  complete, checksum-valid frame starts inside it, which proves the candidate's
  length byte wrong (``BadLength``);
* a candidate whose CRC matches in neither byte order is reported (``BadCrc``) and
  scanning resumes one byte after its 0x68, so a real frame hidden inside it is
  still found; the rest of its bytes are dropped without further reports;
* an intact frame that cannot be used (encryption, unknown type, bad body) is
  consumed whole and reported with its :class:`~bridges.ykc.frame.RawFrame`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .codec import Frame, decode_message
from .errors import BadCrc, BadLength, BadStart, FrameError, IncompleteFrame, YkcError
from .frame import MAX_FRAME_SIZE, START, RawFrame, decode_raw_frame

__all__ = ["DecodeResult", "DecoderStats", "FrameFailure", "StreamDecoder"]


@dataclass(frozen=True)
class FrameFailure:
    """A reported decoding failure.

    ``data`` holds the bytes the failure is about (dropped garbage, a bad candidate,
    or an intact but unusable frame). ``raw`` is set when the outer frame was intact
    (:class:`~bridges.ykc.errors.UnsupportedEncryption`,
    :class:`~bridges.ykc.errors.UnknownFrameType`, :class:`~bridges.ykc.errors.BodyError`).
    """

    error: YkcError
    data: bytes
    raw: RawFrame | None = None


DecodeResult = Frame | FrameFailure


@dataclass
class DecoderStats:
    """Running counters of a :class:`StreamDecoder`."""

    frames: int = 0
    failures: int = 0
    discarded_bytes: int = 0


class StreamDecoder:
    """Feed arbitrary chunks of a YKC byte stream, get decoded frames and failures back."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._quiet = 0  # buffer index up to which garbage belongs to a reported failure
        self.stats = DecoderStats()

    @property
    def buffered(self) -> int:
        """Number of bytes held while waiting for the rest of a frame."""
        return len(self._buf)

    def reset(self) -> None:
        """Drop buffered bytes (e.g. after a reconnect). Statistics are kept."""
        self._buf.clear()
        self._quiet = 0

    def feed(self, data: bytes | bytearray | memoryview) -> list[DecodeResult]:
        """Append ``data`` and return every result that is now complete. Never raises."""
        self._buf += data
        results: list[DecodeResult] = []
        buf = self._buf
        pos = 0
        while pos < len(buf):
            start = buf.find(START, pos)
            if start < 0:
                pos = self._drop(pos, len(buf), results)
                break
            if start > pos:
                pos = self._drop(pos, start, results)
            step = self._step(pos, results)
            if step == 0:
                break
            pos += step
        self._consume(pos)
        return results

    # -- internals -------------------------------------------------------------------

    def _step(self, pos: int, results: list[DecodeResult]) -> int:
        """Handle the candidate frame at ``pos``; return bytes consumed (0 = wait)."""
        buf = self._buf
        try:
            raw, size = decode_raw_frame(self._window(pos))
        except IncompleteFrame as exc:
            if self._implausible_header(pos):
                return self._fail(pos, BadStart(self._header_text(pos)), results, shadow=5)
            if self._valid_frame_inside(pos + 1, pos + exc.needed):
                error: YkcError = BadLength(
                    f"length byte {buf[pos + 1]} contradicted by a valid frame inside it"
                )
                return self._fail(pos, error, results, shadow=exc.needed)
            return 0
        except BadCrc as exc:
            return self._fail(pos, exc, results, shadow=buf[pos + 1] + 4)
        except FrameError as exc:  # BadLength (BadStart impossible: buf[pos] == 0x68)
            return self._fail(pos, exc, results, shadow=2)
        try:
            frame = decode_message(raw)
        except YkcError as exc:
            self.stats.failures += 1
            self.stats.discarded_bytes += size
            error = exc.with_traceback(None)
            results.append(FrameFailure(error, bytes(buf[pos : pos + size]), raw))
        else:
            self.stats.frames += 1
            results.append(frame)
        return size

    def _window(self, pos: int) -> bytes:
        return bytes(self._buf[pos : pos + MAX_FRAME_SIZE])

    def _implausible_header(self, pos: int) -> bool:
        buf = self._buf
        return len(buf) > pos + 4 and buf[pos + 4] > 0x01

    def _header_text(self, pos: int) -> str:
        return f"0x68 followed by encryption flag 0x{self._buf[pos + 4]:02X}: not a frame start"

    def _valid_frame_inside(self, begin: int, end: int) -> bool:
        buf = self._buf
        index = buf.find(START, begin, end)
        while index >= 0:
            try:
                decode_raw_frame(self._window(index))
            except FrameError:
                index = buf.find(START, index + 1, end)
            else:
                return True
        return False

    def _fail(
        self,
        pos: int,
        error: YkcError,
        results: list[DecodeResult],
        *,
        shadow: int,
    ) -> int:
        """Report the bad candidate at ``pos`` and skip its 0x68.

        The following ``shadow - 1`` bytes belong to the reported candidate: garbage
        among them is dropped silently.
        """
        if pos >= self._quiet:
            self.stats.failures += 1
            reported = bytes(self._buf[pos : pos + shadow])
            results.append(FrameFailure(error.with_traceback(None), reported))
        self.stats.discarded_bytes += 1
        self._quiet = max(self._quiet, pos + shadow)
        return 1

    def _drop(self, begin: int, end: int, results: list[DecodeResult]) -> int:
        """Drop garbage ``[begin, end)``; report the part not covered by a reported failure."""
        self.stats.discarded_bytes += end - begin
        loud = max(begin, self._quiet)
        if loud < end:
            self.stats.failures += 1
            garbage = bytes(self._buf[loud:end])
            error = BadStart(f"{len(garbage)} byte(s) before a frame start dropped")
            results.append(FrameFailure(error, garbage))
        return end

    def _consume(self, pos: int) -> None:
        del self._buf[:pos]
        self._quiet = max(0, self._quiet - pos)
