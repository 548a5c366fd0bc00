"""Guest memory slots: guest-physical ranges backed by host (VMM) memory.

This is the generic half of KVM_SET_USER_MEMORY_REGION: the slot table, the
checks Linux applies, the dirty log and read-only slots. A slot maps
`[gpa, gpa + size)` onto a host buffer the VMM owns (an mmap). The
architecture backend "pins" it (`ArchVm.prepare_memory_region`): a backend on
a simulated host attaches the buffer to that host's physical memory and
records where in `MemorySlot.hpa`, so its second-stage translations can point
guest-physical pages at it. The buffer is never copied; the VMM's devices and
the guest see the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntFlag

from kvmpy.kvm.errors import (
    DirtyLogError,
    MemoryRegionError,
    MemoryRegionOverlapError,
)

PAGE_SIZE = 4096
MAX_SLOTS = 32


class MemFlags(IntFlag):
    """Flags of a memory slot (Linux: KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY)."""

    NONE = 0
    LOG_DIRTY_PAGES = 1
    READONLY = 2


@dataclass(eq=False)
class MemorySlot:
    """One memory slot. `hpa` is where the backend's host placed `buffer` (0 until it did)."""

    slot: int
    flags: MemFlags
    gpa: int
    size: int
    buffer: memoryview
    hpa: int = 0
    dirty: bytearray = field(default_factory=bytearray)

    @property
    def gpa_end(self) -> int:
        return self.gpa + self.size

    @property
    def npages(self) -> int:
        return self.size // PAGE_SIZE

    def contains(self, gpa: int) -> bool:
        return self.gpa <= gpa < self.gpa + self.size

    def mark_dirty(self, gpa: int) -> None:
        page = (gpa - self.gpa) // PAGE_SIZE
        self.dirty[page >> 3] |= 1 << (page & 7)

    def is_dirty(self, gpa: int) -> bool:
        page = (gpa - self.gpa) // PAGE_SIZE
        return bool(self.dirty[page >> 3] & (1 << (page & 7)))


def dirty_pages(bitmap: bytes) -> list[int]:
    """Page indexes set in a dirty bitmap returned by `Vm.get_dirty_log`."""
    return [i * 8 + b for i, byte in enumerate(bitmap) if byte for b in range(8) if byte & (1 << b)]


class SlotTable:
    """The set of memory slots of one VM, with the checks Linux applies.

    `gpa_space_bytes` is the size of the VM's guest physical address space
    (the architecture's, e.g. 4 GiB for MIPS32): no slot may reach beyond it.
    """

    def __init__(self, gpa_space_bytes: int = 1 << 32) -> None:
        self.gpa_space_bytes = gpa_space_bytes
        self._slots: dict[int, MemorySlot] = {}
        # sorted by gpa for lookup; rebuilt on every change (changes are rare)
        self._ordered: list[MemorySlot] = []

    def __iter__(self):
        return iter(self._ordered)

    def get(self, slot: int) -> MemorySlot | None:
        return self._slots.get(slot)

    def lookup(self, gpa: int) -> MemorySlot | None:
        for s in self._ordered:
            if s.gpa <= gpa < s.gpa + s.size:
                return s
        return None

    def validate(
        self, slot: int, flags: int, gpa: int, size: int, buffer: object | None
    ) -> memoryview | None:
        """Check KVM_SET_USER_MEMORY_REGION's arguments; the slot's bytes, or None to delete."""
        if not 0 <= slot < MAX_SLOTS:
            raise MemoryRegionError(f"slot {slot} out of range 0..{MAX_SLOTS - 1}")
        if flags & ~int(MemFlags.LOG_DIRTY_PAGES | MemFlags.READONLY):
            raise MemoryRegionError(f"unknown memory slot flags {flags:#x}")
        if gpa % PAGE_SIZE or size % PAGE_SIZE:
            raise MemoryRegionError(
                f"guest_phys_addr {gpa:#x} and memory_size {size:#x} must be multiples of {PAGE_SIZE}"
            )
        if gpa < 0 or size < 0:
            raise MemoryRegionError("negative address or size")
        if gpa + size > self.gpa_space_bytes:
            raise MemoryRegionError(
                f"slot {gpa:#x}+{size:#x} goes beyond the guest physical space "
                f"({self.gpa_space_bytes:#x} bytes)"
            )
        if size == 0:
            return None
        if buffer is None:
            raise MemoryRegionError("a non-empty slot needs a host buffer")
        try:
            view = memoryview(buffer).cast("B")
        except TypeError as exc:
            raise MemoryRegionError(f"host buffer does not support the buffer protocol: {exc}") from exc
        if view.readonly:
            raise MemoryRegionError(
                "host buffer must be writable (use the READONLY flag for guest read-only)"
            )
        if len(view) < size:
            raise MemoryRegionError(f"host buffer holds {len(view)} bytes, slot needs {size}")
        return view[:size]

    def check_overlap(self, slot: int, gpa: int, size: int) -> None:
        for s in self._ordered:
            if s.slot != slot and gpa < s.gpa + s.size and s.gpa < gpa + size:
                raise MemoryRegionOverlapError(
                    f"slot {slot} [{gpa:#x}, {gpa + size:#x}) overlaps slot {s.slot} "
                    f"[{s.gpa:#x}, {s.gpa_end:#x})"
                )

    def insert(self, s: MemorySlot) -> None:
        self._slots[s.slot] = s
        self._ordered = sorted(self._slots.values(), key=lambda x: x.gpa)

    def remove(self, slot: int) -> MemorySlot | None:
        s = self._slots.pop(slot, None)
        self._ordered = sorted(self._slots.values(), key=lambda x: x.gpa)
        return s

    def take_dirty_log(self, slot: int) -> bytes:
        s = self._slots.get(slot)
        if s is None:
            raise DirtyLogError(f"slot {slot} does not exist")
        if not s.flags & MemFlags.LOG_DIRTY_PAGES:
            raise DirtyLogError(f"slot {slot} does not log dirty pages")
        out = bytes(s.dirty)
        s.dirty[:] = bytes(len(s.dirty))
        return out
