"""The three TLBs of a trap-and-emulate 440 guest, and the decoding of MMIO loads and stores.

- The *guest TLB*: 64 entries exactly as the guest wrote them with `tlbwe`
  (what `tlbre`/`tlbsx` read back), in the guest's TS 0/1 and TIDs.
- The *shadow TLB*: what the host core's UTLB holds for the guest. Every
  shadow entry lives in the host's TS = 1 (the guest runs with MSR[IS] =
  MSR[DS] = 1), maps at most 4 KiB (a large guest page is backed by as
  many 4 KiB shadow entries as the guest touches) onto the host physical
  page of the memory slot behind the guest physical page, and carries TID
  1 when it was made for guest supervisor mode and TID 2 for guest user
  mode; the host PID follows guest MSR[PR]. Since the guest always runs
  at host user privilege, a shadow entry's UR/UW/UX are the guest entry's
  SR/SW/SX (TID 1) or UR/UW/UX (TID 2): guest user code can never match a
  supervisor-only page, because no TID 2 entry is ever made for it.
- The *host TLB* entries: the host kernel here is the Python hypervisor,
  which runs no code on the core, so it needs no entries of its own; the
  TS = 0 space is left to it (empty) and never touched by shadow fills.

Shadow entries are dropped when the guest rewrites an entry covering them,
changes PID or its address space (MSR[IS]/[DS]), when memory slots change
and when the dirty log is re-armed (a page of a dirty-logged slot is mapped
writable only once the guest wrote it and that write was logged).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from kvmpy.arch.ppc.hw.defs import (
    NTLB,
    TLB0_STORED,
    TLB0_TS,
    TLB0_V,
    TLB1_STORED,
    TLB2_G,
    TLB2_I,
    TLB2_M,
    TLB2_SR,
    TLB2_STORED,
    TLB2_SW,
    TLB2_SX,
    TLB2_UR,
    TLB2_UW,
    TLB2_UX,
    TLB2_W,
)

PAGE = 4096
SHADOW_TS_WORD0 = TLB0_V | TLB0_TS  # shadow entries: valid, TS = 1
TID_GUEST_KERNEL = 1
TID_GUEST_USER = 2


class Access(IntEnum):
    LOAD = 0
    STORE = 1
    FETCH = 2


@dataclass(frozen=True)
class GuestTlbEntry:
    w0: int = 0
    w1: int = 0
    w2: int = 0
    tid: int = 0

    @property
    def valid(self) -> bool:
        return bool(self.w0 & TLB0_V)

    @property
    def ts(self) -> int:
        return (self.w0 >> 8) & 1

    @property
    def size_bytes(self) -> int:
        size = (self.w0 >> 4) & 0xF
        return 1 << 32 if size > 11 else 1024 << (2 * size)  # reserved sizes match everything, as the core

    @property
    def epn(self) -> int:
        return self.w0 & 0xFFFFFC00 & ~(self.size_bytes - 1)

    def covers(self, ea: int) -> bool:
        return self.epn <= ea < self.epn + self.size_bytes

    def gpa(self, ea: int) -> int:
        mask = self.size_bytes - 1
        return ((self.w1 & 0xF) << 32) | (self.w1 & 0xFFFFFC00 & ~mask) | (ea & mask)

    def permits(self, access: Access, user: bool) -> bool:
        bits = {
            Access.LOAD: TLB2_UR if user else TLB2_SR,
            Access.STORE: TLB2_UW if user else TLB2_SW,
            Access.FETCH: TLB2_UX if user else TLB2_SX,
        }[access]
        return bool(self.w2 & bits)

    def host_perms(self, user: bool) -> int:
        """The guest's permissions for its current privilege, as host user-mode bits (UX UW UR)."""
        if user:
            return self.w2 & (TLB2_UX | TLB2_UW | TLB2_UR)
        return (self.w2 & (TLB2_SX | TLB2_SW | TLB2_SR)) << 3


class GuestTlb:
    """The guest's 64-entry UTLB, as written."""

    def __init__(self) -> None:
        self.entries = [GuestTlbEntry() for _ in range(NTLB)]

    def write_word(self, index: int, word: int, value: int, stid: int) -> tuple[GuestTlbEntry, GuestTlbEntry]:
        """tlbwe: (old entry, new entry). Word 0 also takes the TID from MMUCR[STID]."""
        old = self.entries[index]
        if word == 0:
            new = GuestTlbEntry(value & TLB0_STORED, old.w1, old.w2, stid)
        elif word == 1:
            new = GuestTlbEntry(old.w0, value & TLB1_STORED, old.w2, old.tid)
        else:
            new = GuestTlbEntry(old.w0, old.w1, value & TLB2_STORED, old.tid)
        self.entries[index] = new
        return old, new

    def find(self, ea: int, ts: int, pid: int) -> int:
        """The index tlbsx and the MMU use (the lowest match), or -1."""
        for i, e in enumerate(self.entries):
            if e.valid and e.ts == ts and (e.tid == 0 or e.tid == pid) and e.covers(ea):
                return i
        return -1


class ShadowTlb:
    """Which host UTLB entries hold which shadow mapping; filled round robin over all 64."""

    def __init__(self, core: object) -> None:
        self.core = core
        self._by_key: dict[tuple[int, int], int] = {}  # (gva page, tid) -> host index
        self._key_of: list[tuple[int, int] | None] = [None] * NTLB
        self._next = 0
        self.fills = 0

    def map(self, gva: int, tid: int, hpa: int, size_code: int, perms: int, attrs: int) -> None:
        page_mask = (1024 << (2 * size_code)) - 1
        key = (gva & ~page_mask, tid)
        index = self._by_key.get(key)
        if index is None:
            index = self._next
            self._next = (self._next + 1) % NTLB
            self._drop(index)
        w0 = (gva & ~page_mask) | SHADOW_TS_WORD0 | (size_code << 4)
        w1 = hpa & ~page_mask & 0xFFFFFC00
        w2 = (attrs & (TLB2_W | TLB2_I | TLB2_M | TLB2_G)) | perms
        self.core.tlb_write(index, w0, w1, w2, tid)  # type: ignore[attr-defined]
        self._by_key[key] = index
        self._key_of[index] = key
        self.fills += 1

    def _drop(self, index: int) -> None:
        key = self._key_of[index]
        if key is not None:
            del self._by_key[key]
            self._key_of[index] = None
            self.core.tlb_write(index, 0, 0, 0, 0)  # type: ignore[attr-defined]

    def invalidate_range(self, start: int, size: int) -> None:
        for index, key in enumerate(self._key_of):
            if key is not None and start <= key[0] < start + size:
                self._drop(index)

    def invalidate_all(self) -> None:
        for index in range(NTLB):
            self._drop(index)


# ------------------------------------------------------------ MMIO decoding
@dataclass(frozen=True)
class MemInsn:
    """A load or store as the MMIO path needs it."""

    is_store: bool
    size: int
    rt: int  # RT of a load, RS of a store
    ra: int
    update: bool  # RA receives the effective address
    algebraic: bool  # lha: sign-extended
    reversed: bool  # lwbrx/lhbrx/stwbrx/sthbrx: little-endian in memory


# primary opcode -> (store, size, update, algebraic)
_D_FORM = {
    32: (False, 4, False, False), 33: (False, 4, True, False),
    34: (False, 1, False, False), 35: (False, 1, True, False),
    36: (True, 4, False, False), 37: (True, 4, True, False),
    38: (True, 1, False, False), 39: (True, 1, True, False),
    40: (False, 2, False, False), 41: (False, 2, True, False),
    42: (False, 2, False, True), 43: (False, 2, True, True),
    44: (True, 2, False, False), 45: (True, 2, True, False),
}
# opcode 31 extended opcode -> (store, size, update, algebraic, byte-reversed)
_X_FORM = {
    23: (False, 4, False, False, False), 55: (False, 4, True, False, False),
    87: (False, 1, False, False, False), 119: (False, 1, True, False, False),
    151: (True, 4, False, False, False), 183: (True, 4, True, False, False),
    215: (True, 1, False, False, False), 247: (True, 1, True, False, False),
    279: (False, 2, False, False, False), 311: (False, 2, True, False, False),
    343: (False, 2, False, True, False), 375: (False, 2, True, True, False),
    407: (True, 2, False, False, False), 439: (True, 2, True, False, False),
    534: (False, 4, False, False, True), 662: (True, 4, False, False, True),
    790: (False, 2, False, False, True), 918: (True, 2, False, False, True),
}


def decode_mem_insn(insn: int) -> MemInsn | None:
    """The integer load/store `insn` is, or None for anything the MMIO path cannot emulate."""
    op = insn >> 26
    rt, ra = (insn >> 21) & 31, (insn >> 16) & 31
    if op in _D_FORM:
        store, size, update, alg = _D_FORM[op]
        return MemInsn(store, size, rt, ra, update, alg, False)
    if op == 31:
        xo = (insn >> 1) & 0x3FF
        if xo in _X_FORM:
            store, size, update, alg, rev = _X_FORM[xo]
            return MemInsn(store, size, rt, ra, update, alg, rev)
    return None
