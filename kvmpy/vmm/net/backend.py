"""What a network backend is (`NetBackend`) and the stream framing the socket and passt links share."""


from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from typing import Protocol

from kvmpy.vmm.errors import VmmError

log = logging.getLogger(__name__)

FrameReceiver = Callable[[bytes], None]

# The largest Ethernet frame carried (64 KiB of payload plus a VLAN-tagged
# header's worth): a virtio-net frame with its 12-byte header stays within
# 65550 bytes.
MAX_FRAME_LEN = 65550 - 12
LENGTH_PREFIX = struct.Struct(">I")
# Frames the guest transmitted that wait for the writer thread.
MAX_QUEUED_TX_FRAMES = 256
READ_CHUNK_BYTES = 64 * 1024



class NetBackend(Protocol):
    """The host end of a network link.

    - `send(frame)`: an Ethernet frame from the guest (no virtio-net
      header); must not block for long and must not raise (undeliverable
      frames are dropped).
    - `start(receiver)`: begin delivering frames; `receiver(frame)` is
      called from a thread the backend owns with one whole Ethernet frame
      (at most `MAX_FRAME_LEN` bytes) per call. Called at most once.
    - `close()`: stop delivering frames and release host resources.
      Idempotent.
    """

    def send(self, frame: bytes) -> None: ...

    def start(self, receiver: FrameReceiver) -> None: ...

    def close(self) -> None: ...


class NetBackendError(VmmError):
    """A network backend could not be opened (address in use, no listener to connect to...)."""


class FrameParser:
    """Reassembles length-prefixed frames from a byte stream split anywhere.

    Each frame is a 4-byte big-endian length then that many bytes. Frames
    longer than `max_frame_len` are skipped without being buffered (counted
    in `oversized`); zero-length frames are skipped (counted in `empty`).
    Every byte stream is acceptable: `feed` never raises, and buffers at
    most `max_frame_len` bytes plus a partial length prefix.
    """

    def __init__(self, max_frame_len: int = MAX_FRAME_LEN) -> None:
        self.max_frame_len = max_frame_len
        self.oversized = 0
        self.empty = 0
        self._prefix = bytearray()
        self._want = -1  # bytes still expected for the current frame; -1 = reading a prefix
        self._skip = False
        self._frame = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Consume `data`; return the frames it completed, in order."""
        frames: list[bytes] = []
        view = memoryview(data)
        while view:
            if self._want < 0:
                take = LENGTH_PREFIX.size - len(self._prefix)
                self._prefix += view[:take]
                view = view[take:]
                if len(self._prefix) < LENGTH_PREFIX.size:
                    break
                (length,) = LENGTH_PREFIX.unpack(self._prefix)
                self._prefix.clear()
                if length == 0:
                    self.empty += 1
                    continue
                self._want = length
                self._skip = length > self.max_frame_len
                if self._skip:
                    self.oversized += 1
                continue
            chunk = view[: self._want]
            view = view[self._want :]
            self._want -= len(chunk)
            if not self._skip:
                self._frame += chunk
            if self._want == 0:
                self._want = -1
                if not self._skip:
                    frames.append(bytes(self._frame))
                self._frame.clear()
                self._skip = False
        return frames


def encode_frame(frame: bytes) -> bytes:
    """One frame in the stream format: its 4-byte big-endian length, then the frame."""
    return LENGTH_PREFIX.pack(len(frame)) + frame
