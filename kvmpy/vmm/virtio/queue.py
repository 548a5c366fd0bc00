"""Guest memory as devices see it, and split virtqueues (virtio 1.x, section 2.7).

Everything a virtqueue reads from the guest is guest-controlled: ring
indexes, descriptor indexes, flags, addresses and lengths. Every such value
is validated here, and any violation raises `VirtqueueError` (the only
exception `Virtqueue` lets out for guest mistakes). The transport catches it
and marks the device broken (DEVICE_NEEDS_RESET); the VM keeps running.

Layout of a split virtqueue of `size` entries (all little-endian):

- descriptor table, 16-byte aligned: `size` x {addr u64, len u32, flags u16, next u16}
- available ring (driver area), 2-byte aligned:
  {flags u16, idx u16, ring[size] u16, used_event u16 (with EVENT_IDX)}
- used ring (device area), 4-byte aligned:
  {flags u16, idx u16, ring[size] {id u32, len u32}, avail_event u16 (with EVENT_IDX)}

Ring indexes are free-running 16-bit counters; an entry lives at
`idx % size`, so `size` must be a power of two (at most 32768).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Protocol

from kvmpy.vmm.errors import VmmError

VIRTQ_DESC_F_NEXT = 0x1
VIRTQ_DESC_F_WRITE = 0x2
VIRTQ_DESC_F_INDIRECT = 0x4

VRING_AVAIL_F_NO_INTERRUPT = 0x1
VRING_USED_F_NO_NOTIFY = 0x1

MAX_QUEUE_SIZE = 32768
DESC_BYTES = 16
USED_ELEM_BYTES = 8
MAX_INDIRECT_ENTRIES = MAX_QUEUE_SIZE
MAX_CHAIN_BYTES = 1 << 30
"""Upper bound on the sum of a chain's buffer lengths (readable plus writable)."""

_DESC = struct.Struct("<QIHH")
_U16 = struct.Struct("<H")
_USED_ELEM = struct.Struct("<II")


class GuestMemoryError(VmmError):
    """A guest-physical range is not entirely inside guest RAM."""


class VirtqueueError(VmmError):
    """The driver put something invalid in a virtqueue (or its configuration)."""


class GuestMemory(Protocol):
    """Guest RAM as a device sees it: byte access at guest-physical addresses.

    `read` returns exactly `size` bytes at `gpa`; `write` stores `data` at
    `gpa`; `contains` says whether [gpa, gpa + size) is entirely RAM;
    `view` is a writable memoryview of [gpa, gpa + size) itself, for
    zero-copy I/O (preadv/pwritev straight between a file and guest RAM).
    `read`, `write` and `view` raise `GuestMemoryError` for a range that is
    not entirely RAM (including negative addresses and sizes) and then touch
    nothing.
    """

    def read(self, gpa: int, size: int) -> bytes: ...

    def write(self, gpa: int, data: bytes) -> None: ...

    def view(self, gpa: int, size: int) -> memoryview: ...

    def contains(self, gpa: int, size: int) -> bool: ...


class RamView:
    """`GuestMemory` over one contiguous RAM buffer that starts at `base_gpa`.

    `buffer` is typically a memoryview of the board's RAM mmap; reads copy
    only the requested bytes, writes go straight into the buffer.
    """

    def __init__(self, buffer: memoryview | bytearray, base_gpa: int = 0) -> None:
        view = buffer if isinstance(buffer, memoryview) else memoryview(buffer)
        self._buf = view.cast("B") if view.format != "B" or view.ndim != 1 else view
        self.base_gpa = base_gpa
        self.size_bytes = len(self._buf)

    def contains(self, gpa: int, size: int) -> bool:
        off = gpa - self.base_gpa
        return size >= 0 and off >= 0 and off + size <= self.size_bytes

    def _offset(self, gpa: int, size: int) -> int:
        if not self.contains(gpa, size):
            raise GuestMemoryError(f"guest range [{gpa:#x}, +{size:#x}) is outside RAM")
        return gpa - self.base_gpa

    def read(self, gpa: int, size: int) -> bytes:
        off = self._offset(gpa, size)
        return bytes(self._buf[off : off + size])

    def write(self, gpa: int, data: bytes) -> None:
        off = self._offset(gpa, len(data))
        self._buf[off : off + len(data)] = data

    def view(self, gpa: int, size: int) -> memoryview:
        # The range check inlined: a 1 MiB block request asks for 256 of these.
        off = gpa - self.base_gpa
        if size < 0 or off < 0 or off + size > self.size_bytes:
            raise GuestMemoryError(f"guest range [{gpa:#x}, +{size:#x}) is outside RAM")
        return self._buf[off : off + size]


@dataclass
class DescriptorChain:
    """One request: the buffers of a descriptor chain taken from the available ring.

    `readable` (driver-to-device) and `writable` (device-to-driver) hold
    (gpa, length) pairs in chain order; every pair was checked to lie inside
    guest memory when the chain was popped. `head` is the index that goes
    back in the used ring.
    """

    head: int
    mem: GuestMemory
    readable: list[tuple[int, int]] = field(default_factory=list)
    writable: list[tuple[int, int]] = field(default_factory=list)

    @property
    def readable_len(self) -> int:
        return sum(length for _, length in self.readable)

    @property
    def writable_len(self) -> int:
        return sum(length for _, length in self.writable)

    def read_all(self) -> bytes:
        """The concatenation of every readable buffer."""
        return b"".join(self.mem.read(gpa, length) for gpa, length in self.readable)

    def readable_views(self, start: int, length: int) -> list[memoryview]:
        """Views of guest RAM covering readable bytes [start, start + length) of the chain, in order.

        The range is clipped to the readable part. No bytes are copied: the
        views alias guest memory (and see later guest writes).
        """
        return _views(self.mem, self.readable, start, length)

    def writable_views(self, start: int, length: int) -> list[memoryview]:
        """Views of guest RAM over writable bytes [start, start + length), clipped like `readable_views`."""
        return _views(self.mem, self.writable, start, length)

    def write_into(self, data: bytes) -> int:
        """Scatter `data` over the writable buffers in order; returns the bytes written.

        Writes at most `writable_len` bytes (the rest of `data` is dropped).
        """
        done = 0
        for gpa, length in self.writable:
            if done >= len(data):
                break
            chunk = data[done : done + length]
            self.mem.write(gpa, chunk)
            done += len(chunk)
        return done


def _views(mem: GuestMemory, buffers: list[tuple[int, int]], start: int, length: int) -> list[memoryview]:
    """Memoryviews over bytes [start, start + length) of the concatenation of `buffers`."""
    views: list[memoryview] = []
    if length <= 0:
        return views
    end = start + length
    pos = 0  # offset of the current buffer within the concatenation
    # One pass with no per-buffer helper calls: a 1 MiB block request has 256 buffers.
    for gpa, size in buffers:
        nxt = pos + size
        if nxt <= start:
            pos = nxt
            continue
        if pos >= end:
            break
        lo = start - pos if start > pos else 0
        hi = end - pos if end < nxt else size
        views.append(mem.view(gpa + lo, hi - lo))
        pos = nxt
    return views


def vring_need_event(event_idx: int, new_idx: int, old_idx: int) -> bool:
    """Whether moving an index from `old_idx` to `new_idx` crossed `event_idx` (16-bit arithmetic)."""
    return ((new_idx - event_idx - 1) & 0xFFFF) < ((new_idx - old_idx) & 0xFFFF)


class Virtqueue:
    """The device side of one split virtqueue.

    Construction validates the configuration (size a power of two at most
    32768; rings aligned and inside guest memory) and raises
    `VirtqueueError` otherwise. `pop` takes the next available chain,
    `push` returns one to the used ring, `needs_notification` says whether
    the driver wants a used-buffer notification now. `event_idx` is whether
    VIRTIO_F_EVENT_IDX was negotiated; `indirect` whether
    VIRTIO_F_INDIRECT_DESC was (an indirect descriptor without it is an
    error).

    Not thread-safe: one thread (or a caller-held lock) per queue.
    """

    def __init__(
        self,
        size: int,
        desc_gpa: int,
        avail_gpa: int,
        used_gpa: int,
        mem: GuestMemory,
        event_idx: bool,
        *,
        indirect: bool = True,
    ) -> None:
        if not 0 < size <= MAX_QUEUE_SIZE or size & (size - 1):
            raise VirtqueueError(f"queue size {size} is not a power of two in 1..{MAX_QUEUE_SIZE}")
        if desc_gpa % 16 or avail_gpa % 2 or used_gpa % 4:
            raise VirtqueueError(
                f"misaligned rings: desc {desc_gpa:#x}, avail {avail_gpa:#x}, used {used_gpa:#x}"
            )
        for name, gpa, length in (
            ("descriptor table", desc_gpa, DESC_BYTES * size),
            ("available ring", avail_gpa, 6 + 2 * size),
            ("used ring", used_gpa, 6 + USED_ELEM_BYTES * size),
        ):
            if not mem.contains(gpa, length):
                raise VirtqueueError(f"{name} [{gpa:#x}, +{length:#x}) is outside guest memory")
        self.size = size
        self.desc_gpa = desc_gpa
        self.avail_gpa = avail_gpa
        self.used_gpa = used_gpa
        self.mem = mem
        self.event_idx = event_idx
        self.indirect = indirect
        self.last_avail_idx = 0
        self.used_idx = 0
        self._signalled_used = 0  # used idx at the last notification decision

    # ------------------------------------------------------------------ raw ring access
    def _read_u16(self, gpa: int) -> int:
        try:
            return _U16.unpack(self.mem.read(gpa, 2))[0]
        except GuestMemoryError as exc:
            raise VirtqueueError(str(exc)) from exc

    def _write(self, gpa: int, data: bytes) -> None:
        try:
            self.mem.write(gpa, data)
        except GuestMemoryError as exc:
            raise VirtqueueError(str(exc)) from exc

    def _read_desc(self, table_gpa: int, index: int) -> tuple[int, int, int, int]:
        try:
            return _DESC.unpack(self.mem.read(table_gpa + DESC_BYTES * index, DESC_BYTES))
        except GuestMemoryError as exc:
            raise VirtqueueError(str(exc)) from exc

    @property
    def avail_flags(self) -> int:
        return self._read_u16(self.avail_gpa)

    @property
    def avail_idx(self) -> int:
        return self._read_u16(self.avail_gpa + 2)

    @property
    def used_event(self) -> int:
        return self._read_u16(self.avail_gpa + 4 + 2 * self.size)

    def _set_avail_event(self, value: int) -> None:
        self._write(self.used_gpa + 4 + USED_ELEM_BYTES * self.size, _U16.pack(value & 0xFFFF))

    # ------------------------------------------------------------------ device operations
    def pending(self) -> int:
        """How many chains the driver has made available and `pop` has not taken yet."""
        pending = (self.avail_idx - self.last_avail_idx) & 0xFFFF
        if pending > self.size:
            raise VirtqueueError(
                f"available index moved {pending} entries past {self.last_avail_idx} (queue size {self.size})"
            )
        return pending

    def pop(self) -> DescriptorChain | None:
        """Take the next available descriptor chain, or None if there is none.

        With EVENT_IDX, also publishes avail_event (the next available index
        this queue wants to be notified about). Raises `VirtqueueError` for
        any malformed chain; the queue's position is then unspecified (the
        device is to be reset).
        """
        if self.pending() == 0:
            if self.event_idx:
                self._set_avail_event(self.last_avail_idx)
            return None
        head = self._read_u16(self.avail_gpa + 4 + 2 * (self.last_avail_idx % self.size))
        chain = self._walk(head)
        self.last_avail_idx = (self.last_avail_idx + 1) & 0xFFFF
        if self.event_idx:
            self._set_avail_event(self.last_avail_idx)
        return chain

    def _walk(self, head: int) -> DescriptorChain:
        if head >= self.size:
            raise VirtqueueError(f"head descriptor {head} out of range (queue size {self.size})")
        chain = DescriptorChain(head, self.mem)
        total = 0
        table_gpa, table_len, index, in_indirect = self.desc_gpa, self.size, head, False
        seen = 0
        while True:
            seen += 1
            if seen > table_len:
                raise VirtqueueError(f"descriptor chain from {head} is longer than its table ({table_len})")
            addr, length, flags, nxt = self._read_desc(table_gpa, index)
            if flags & VIRTQ_DESC_F_INDIRECT:
                if in_indirect:
                    raise VirtqueueError(f"nested indirect descriptor in chain {head}")
                if not self.indirect:
                    raise VirtqueueError(f"indirect descriptor in chain {head} without INDIRECT_DESC")
                if flags & VIRTQ_DESC_F_NEXT:
                    raise VirtqueueError(f"indirect descriptor in chain {head} has NEXT set")
                if length == 0 or length % DESC_BYTES or length // DESC_BYTES > MAX_INDIRECT_ENTRIES:
                    raise VirtqueueError(f"indirect table length {length} invalid in chain {head}")
                if not self.mem.contains(addr, length):
                    raise VirtqueueError(f"indirect table [{addr:#x}, +{length:#x}) outside guest memory")
                table_gpa, table_len, index, in_indirect = addr, length // DESC_BYTES, 0, True
                seen = 0
                continue
            if length == 0:
                raise VirtqueueError(f"zero-length buffer in chain {head}")
            total += length
            if total > MAX_CHAIN_BYTES:
                raise VirtqueueError(f"chain {head} buffers exceed {MAX_CHAIN_BYTES} bytes")
            if not self.mem.contains(addr, length):
                raise VirtqueueError(f"buffer [{addr:#x}, +{length:#x}) in chain {head} outside guest memory")
            if flags & VIRTQ_DESC_F_WRITE:
                chain.writable.append((addr, length))
            elif chain.writable:
                raise VirtqueueError(f"readable buffer after a writable one in chain {head}")
            else:
                chain.readable.append((addr, length))
            if not flags & VIRTQ_DESC_F_NEXT:
                return chain
            if nxt >= table_len:
                raise VirtqueueError(f"next descriptor {nxt} out of range ({table_len}) in chain {head}")
            index = nxt

    def push(self, chain: DescriptorChain, written_len: int) -> None:
        """Put `chain` in the used ring with `written_len` bytes written (clamped to its capacity)."""
        written = max(0, min(written_len, chain.writable_len))
        slot = self.used_gpa + 4 + USED_ELEM_BYTES * (self.used_idx % self.size)
        self._write(slot, _USED_ELEM.pack(chain.head, written))
        self.used_idx = (self.used_idx + 1) & 0xFFFF
        self._write(self.used_gpa + 2, _U16.pack(self.used_idx))

    def needs_notification(self) -> bool:
        """Whether to send a used-buffer notification for the entries pushed since the last call.

        With EVENT_IDX: only when the used index crossed the driver's
        used_event. Without it: unless the driver set
        VRING_AVAIL_F_NO_INTERRUPT. Never when nothing was pushed since the
        previous notification decision.
        """
        old, new = self._signalled_used, self.used_idx
        self._signalled_used = new
        if old == new:
            return False
        if self.event_idx:
            return vring_need_event(self.used_event, new, old)
        return not self.avail_flags & VRING_AVAIL_F_NO_INTERRUPT
