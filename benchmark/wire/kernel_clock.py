"""The kernel's receive time of socket data, on the ``time.perf_counter()`` clock the records use.

A clock read in Python when the event loop (or a thread holding the GIL) finally gets to some bytes is late
by however long the process waited for a core: milliseconds at hundreds of streams on a small machine, and
TTFT then reads high. With ``SO_TIMESTAMPNS`` Linux stamps each segment when it reaches the socket and
``recvmsg`` returns that stamp with the bytes, so it does not depend on when we read them.

The stamp is on ``CLOCK_REALTIME``; ``perf_counter`` is ``CLOCK_MONOTONIC`` on Linux. Both are slewed alike by
NTP, so their difference moves only when the wall clock is stepped; a stamp that falls outside what is
possible (after the read, or long before it) triggers a new calibration and the read time is used instead.
Elsewhere (macOS, Windows) ``enable`` returns False and the clock is read when the bytes are read.
"""

from __future__ import annotations

import socket
import struct
import sys
import time

# Linux's value on x86, arm and most other architectures (Python does not export the constant).
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
ANCILLARY_SIZE = socket.CMSG_SPACE(16) if hasattr(socket, "CMSG_SPACE") else 0
_TIMESPEC = struct.Struct("qq")
_PLAUSIBLE_S = 60.0  # a stamp older than this, relative to its read, means the wall clock was stepped


def enable(sock: socket.socket) -> bool:
    """Ask the kernel to stamp what ``sock`` receives; False where it cannot (not Linux)."""
    if sys.platform != "linux" or not ANCILLARY_SIZE:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def _calibrate() -> float:
    """``time.time_ns() / 1e9 - perf_counter()`` from the tightest of many bracketed samples."""
    best_width, best_offset = float("inf"), 0.0
    for _ in range(100):
        before = time.perf_counter()
        wall = time.time_ns()
        after = time.perf_counter()
        if after - before < best_width:
            best_width, best_offset = after - before, wall / 1e9 - (before + after) / 2
    return best_offset


_offset = _calibrate()


def stamp(ancillary: list[tuple[int, int, bytes]], read_at: float) -> float:
    """When the bytes returned with ``ancillary`` reached the socket; ``read_at`` where the kernel gave no stamp."""
    global _offset  # noqa: PLW0603 - one calibration per process, renewed only when the wall clock was stepped
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(payload)
            at: float = seconds - _offset + nanoseconds / 1e9
            if read_at - _PLAUSIBLE_S < at <= read_at + 1e-4:
                return min(at, read_at)
            _offset = _calibrate()
            return read_at
    return read_at
