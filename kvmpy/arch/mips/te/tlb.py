"""The guest TLB: what the guest wrote with tlbwi/tlbwr, kept by the hypervisor.

This is the first of seed 000's three TLB copies. The hardware never sees
it: when the host TLB misses on a guest virtual address, the hypervisor
looks the address up here and either builds a shadow (host) entry from the
guest entry or delivers the TLB exception the guest's own hardware would
have raised.

Each guest entry remembers the shadow entries built from it (their host
EntryHi values), so that overwriting the guest entry can remove exactly
those from the host TLB.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kvmpy.arch.mips.te.cp0 import EntryLo

ASID_MASK = 0xFF


@dataclass(slots=True)
class GuestTlbEntry:
    entryhi: int = 0  # VPN2 | ASID
    pagemask: int = 0
    entrylo0: int = 0
    entrylo1: int = 0
    shadows: set[int] = field(default_factory=set)  # host EntryHi values built from this entry

    @property
    def is_global(self) -> bool:
        return bool(self.entrylo0 & self.entrylo1 & EntryLo.G)

    @property
    def span_mask(self) -> int:
        """Mask of the address bits inside the entry's even/odd page pair."""
        return self.pagemask | 0x1FFF

    def matches(self, va: int, asid: int) -> bool:
        m = ~self.span_mask
        return (va & m) == (self.entryhi & m) and (self.is_global or (self.entryhi & ASID_MASK) == asid)

    def lo_for(self, va: int) -> int:
        """The EntryLo (even or odd page) that translates `va`."""
        return self.entrylo1 if va & self.page_bytes() else self.entrylo0

    def page_bytes(self) -> int:
        return ((self.pagemask | 0x1FFF) + 1) >> 1


@dataclass(frozen=True, slots=True)
class GuestTranslation:
    """A guest TLB hit for one address: which entry, the EntryLo used, and the guest physical address."""

    index: int
    entrylo: int
    gpa: int

    @property
    def valid(self) -> bool:
        return bool(self.entrylo & EntryLo.V)

    @property
    def dirty(self) -> bool:
        return bool(self.entrylo & EntryLo.D)

    @property
    def is_global(self) -> bool:
        return bool(self.entrylo & EntryLo.G)


class GuestTlb:
    """A MIPS32 JTLB of `size` even/odd pairs with variable page sizes and 8-bit ASIDs."""

    def __init__(self, size: int) -> None:
        self.size = size
        # Reset contents: distinct VPN2s in kseg0, which no mapped access can match.
        self.entries = [GuestTlbEntry(entryhi=0x80000000 + i * 0x2000) for i in range(size)]
        # Lookup index: 4 KiB-page entries by VPN2, and the (rare) larger-page entries.
        self._by_vpn2: dict[int, set[int]] = {}
        self._large: set[int] = set()
        for i, e in enumerate(self.entries):
            self._by_vpn2.setdefault(e.entryhi >> 13, set()).add(i)

    def write(self, index: int, entryhi: int, pagemask: int, entrylo0: int, entrylo1: int) -> set[int]:
        """tlbwi/tlbwr: replace entry `index`; returns the shadows of the entry it replaced."""
        old = self.entries[index]
        if old.pagemask:
            self._large.discard(index)
        else:
            self._by_vpn2[old.entryhi >> 13].discard(index)
        span = pagemask | 0x1FFF
        vpn2 = entryhi & ~span & 0xFFFFE000
        new = GuestTlbEntry(vpn2 | (entryhi & ASID_MASK), pagemask, entrylo0, entrylo1)
        self.entries[index] = new
        if pagemask:
            self._large.add(index)
        else:
            self._by_vpn2.setdefault(new.entryhi >> 13, set()).add(index)
        return old.shadows

    def _find(self, va: int, asid: int) -> int:
        entries = self.entries
        for i in self._by_vpn2.get(va >> 13, ()):
            if entries[i].matches(va, asid):
                return i
        for i in self._large:
            if entries[i].matches(va, asid):
                return i
        return -1

    def probe(self, entryhi: int) -> int:
        """tlbp: the index of the entry matching EntryHi's VPN2 and ASID, or -1."""
        return self._find(entryhi & 0xFFFFE000, entryhi & ASID_MASK)

    def lookup(self, va: int, asid: int) -> GuestTranslation | None:
        """Translate `va` for ASID `asid`; None is a TLB refill (no matching entry)."""
        i = self._find(va, asid)
        if i < 0:
            return None
        e = self.entries[i]
        lo = e.lo_for(va)
        gpa = ((lo >> 6) << 12) + (va & (e.page_bytes() - 1))
        return GuestTranslation(i, lo, gpa & 0xFFFFFFFF)

    def all_shadows(self) -> set[int]:
        out: set[int] = set()
        for e in self.entries:
            out |= e.shadows
            e.shadows = set()
        return out
