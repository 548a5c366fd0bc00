"""The guest's memory in trap-and-emulate mode: its MMU, and the host TLB under it.

Address spaces on the host while the guest runs (seed 000's three TLBs):
the guest TLB (`te.tlb`) is only data here; the host TLB holds shadow
entries built from it, tagged with a host ASID per (guest ASID, guest
kernel/user mode, ERL), so switching guest address spaces or privilege
needs no flush; kseg0/kseg1 entries are global, as large as the memory slot
allows. Guest user mode cannot reach them because, while the guest is in
user mode, segmentation control makes kseg0-kseg3 kernel-only: the access
raises an address error that the hypervisor passes on, exactly what the
guest's hardware would do.

A host TLB miss is resolved from the guest's view of memory (`TeMmu.fill`):
unmapped kseg0/kseg1, the commpage, or the guest TLB. What the guest TLB
cannot satisfy is the guest's own TLB exception; an address with no RAM
behind it is MMIO. Both go back to the vCPU, which delivers or exits.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvmpy.arch.mips.hw.cpu import Cpu
from kvmpy.arch.mips.hw.defs import ExcCode
from kvmpy.arch.mips.hypervisor import CACHEABLE, UNCACHED, reg_sel, slot_tlb_pair
from kvmpy.arch.mips.te.cp0 import COMMPAGE_GVA, Cp0, Ctx, EntryLo, Status, guest_kernel_mode
from kvmpy.arch.mips.te.fastpath import FastTraps
from kvmpy.arch.mips.te.tlb import GuestTlb
from kvmpy.kvm.memory import MemFlags, MemorySlot, SlotTable
from kvmpy.kvm.stats import VcpuStats

KSEG0 = 0x80000000
KSEG2 = 0xC0000000

_R_ENTRYHI = reg_sel(Cp0.ENTRYHI)
_R_HWRENA = reg_sel(Cp0.HWRENA)
_R_SEGCTL = (reg_sel(Cp0.SEGCTL0), reg_sel(Cp0.SEGCTL1), reg_sel(Cp0.SEGCTL2))

# Segmentation control (SegCtl0, SegCtl1, SegCtl2): every segment mapped and
# user-accessible (AM=MUSK) in guest kernel mode; kseg0-kseg3 kernel-only
# (AM=MK) in guest user mode so the guest's user code gets address errors.
SEGCTL_GUEST_KERNEL = (0x00300030, 0x00300030, 0x00300030)
SEGCTL_GUEST_USER = (0x00100010, 0x00100010, 0x00300030)
# rdhwr registers the host may answer directly for guest user code:
# CPUNum, SYNCI_Step, CCRes and UserLocal (mirrored). CC (the cycle counter)
# is the guest's virtual Count and always traps.
HWRENA_PASSTHROUGH = 0x2000000B


class _Refill:
    """The guest TLB has no entry: a TLB refill exception for the guest."""


class _Invalid:
    """The guest TLB entry is not valid: a TLB invalid exception for the guest."""


REFILL = _Refill()
INVALID = _Invalid()


class Mapping:
    """Where a guest virtual address goes, as the guest's MMU decides."""

    __slots__ = ("gpa", "writable", "is_global", "tlb_index", "kseg")

    def __init__(self, gpa: int, writable: bool, is_global: bool, tlb_index: int, kseg: bool) -> None:
        self.gpa = gpa
        self.writable = writable  # guest allows writes (EntryLo.D, or unmapped)
        self.is_global = is_global
        self.tlb_index = tlb_index  # guest TLB entry it came from, -1 for unmapped segments
        self.kseg = kseg  # unmapped kseg0/kseg1


@dataclass(frozen=True, slots=True)
class GuestTlbException:
    """A host miss the guest's TLB does not satisfy: the guest's own exception."""

    code: ExcCode
    refill: bool = False


@dataclass(frozen=True, slots=True)
class NoRam:
    """A host miss on a guest physical address with no (writable) RAM behind it: MMIO."""

    gpa: int


class TeMmu:
    """The guest's MMU (over its TLB and virtual CP0) and the shadow entries in the host TLB."""

    def __init__(
        self,
        cpu: Cpu,
        slots: SlotTable,
        stats: VcpuStats,
        regs: memoryview,
        fast: FastTraps,
        commpage_hpa: int,
        tlb: GuestTlb,
    ) -> None:
        self.cpu = cpu
        self.slots = slots
        self.stats = stats
        self.regs = regs
        self.tlb = tlb
        self.commpage_hpa = commpage_hpa
        self._fast = fast
        self._host_asids: dict[tuple[bool, bool, int], int] = {}
        self._next_host_asid = 1  # host ASID 0 is never used for guests: invalid entries carry it
        self._host_key: tuple[bool, bool, int] | None = None
        self.host_kernel: bool | None = None  # the host is set up for guest kernel mode

    # ---------------------------------------------------------------- host mode
    def sync_host_mode(self) -> None:
        """Make the host's ASID, segments and rdhwr grants follow the guest's mode and ASID."""
        v = self.regs
        status = v[Cp0.STATUS]
        erl = bool(status & Status.ERL)
        kernel = guest_kernel_mode(status)
        key = (kernel, erl, v[Cp0.ENTRYHI] & 0xFF)
        if key == self._host_key:
            return
        cpu = self.cpu
        if self._host_key is not None and self._host_key[1] != erl:
            # Under ERL the guest's useg is unmapped: shadows built then or before are stale.
            self.flush()
        if kernel != self.host_kernel:
            # Each SegCtl write flushes the core's micro-TLB: write only what differs.
            old = SEGCTL_GUEST_KERNEL if self.host_kernel else SEGCTL_GUEST_USER
            new = SEGCTL_GUEST_KERNEL if kernel else SEGCTL_GUEST_USER
            for rs, before, value in zip(_R_SEGCTL, old, new, strict=True):
                if value != before or self.host_kernel is None:
                    cpu.cp0_write(Ctx.ROOT, *rs, value)
            self.host_kernel = kernel
            self._fast.guest_kernel = kernel
        self._host_key = key
        cpu.cp0_write(Ctx.ROOT, *_R_ENTRYHI, self._host_asid(key))
        self.sync_hwrena()

    def sync_hwrena(self) -> None:
        """Grant guest code the rdhwr registers the host can answer without a trap."""
        grant = HWRENA_PASSTHROUGH if self.host_kernel else self.regs[Cp0.HWRENA] & HWRENA_PASSTHROUGH
        self.cpu.cp0_write(Ctx.ROOT, *_R_HWRENA, grant)

    def _host_asid(self, key: tuple[bool, bool, int]) -> int:
        asid = self._host_asids.get(key)
        if asid is None:
            if self._next_host_asid > 0xFF:
                # Host ASIDs exhausted: start a new generation with an empty host TLB.
                self.flush()
                self._host_asids.clear()
                self._next_host_asid = 1
                self.stats.traps["host_asid_rollover"] += 1
            asid = self._next_host_asid
            self._next_host_asid += 1
            self._host_asids[key] = asid
        return asid

    # ---------------------------------------------------------------- the host TLB
    def flush(self) -> None:
        """Forget every shadow and kseg mapping."""
        self.cpu.tlb_invalidate_guestid(0)
        self.tlb.all_shadows()

    def invalidate_shadows(self, shadows: set[int]) -> None:
        """Drop the host entries with these EntryHi values (built from an overwritten guest entry)."""
        cpu = self.cpu
        for entryhi in shadows:
            index = cpu.tlb_probe(Ctx.ROOT, entryhi, 0)
            if index >= 0 and cpu.tlb_read(Ctx.ROOT, index)[0] == entryhi:
                cpu.tlb_write(Ctx.ROOT, index, KSEG0 + index * 0x2000, 0, 0, 0, 0)

    def _host_tlb_write(self, entryhi: int, pagemask: int, lo0: int, lo1: int) -> None:
        cpu = self.cpu
        index = cpu.tlb_probe(Ctx.ROOT, entryhi, 0)
        if index >= 0:
            cpu.tlb_write(Ctx.ROOT, index, entryhi, pagemask, lo0, lo1, 0)
        else:
            cpu.tlb_write_random(Ctx.ROOT, entryhi, pagemask, lo0, lo1, 0)

    # ---------------------------------------------------------------- the guest's view
    def translate(self, gva: int) -> Mapping | _Refill | _Invalid:
        """Where guest virtual `gva` goes in the guest's current mode, as its MMU would decide."""
        v = self.regs
        status = v[Cp0.STATUS]
        kernel = guest_kernel_mode(status)
        if KSEG0 <= gva < KSEG2 and kernel:
            return Mapping(gva & 0x1FFFFFFF, True, True, -1, True)
        if gva < KSEG0 and status & Status.ERL:
            return Mapping(gva, True, False, -1, False)  # useg is unmapped under ERL
        t = self.tlb.lookup(gva, v[Cp0.ENTRYHI] & 0xFF)
        if t is None:
            return REFILL
        if not t.valid:
            return INVALID
        return Mapping(t.gpa, t.dirty, t.is_global and gva >= KSEG0, t.index, False)

    def _shadow_lo(self, m: Mapping, gva: int) -> int:
        """Host EntryLo for one 4 KiB page of a guest mapping (0 if there is no RAM behind it)."""
        slot = self.slots.lookup(m.gpa)
        if slot is None:
            return 0
        flags = EntryLo.V | (UNCACHED if 0xA0000000 <= gva < KSEG2 else CACHEABLE)
        if m.is_global:
            flags |= EntryLo.G
        if m.writable and not slot.flags & MemFlags.READONLY and (
            not slot.flags & MemFlags.LOG_DIRTY_PAGES or slot.is_dirty(m.gpa)
        ):
            flags |= EntryLo.D
        hpa = m.gpa - slot.gpa + slot.hpa
        return ((hpa >> 12) << 6) | flags

    def _install_shadow(self, gva: int, m: Mapping, slot: MemorySlot | None) -> None:
        """Put the host TLB entry for the 8 KiB pair around `gva` in place (`slot` backs `m`)."""
        if m.kseg and slot is not None:
            base_gpa, mask, lo0, lo1 = slot_tlb_pair(
                slot, m.gpa, UNCACHED if gva >= 0xA0000000 else CACHEABLE
            )
            self._host_tlb_write((gva & 0xE0000000) | base_gpa, mask, lo0, lo1)
            self.stats.traps["kseg_fill"] += 1
            return
        base = gva & 0xFFFFE000
        host_asid = self.cpu.cp0_read(Ctx.ROOT, *_R_ENTRYHI) & 0xFF
        los = []
        sources = set()
        is_global = m.is_global
        for half in (base, base + 0x1000):
            if half == COMMPAGE_GVA and self.host_kernel:
                los.append(((self.commpage_hpa >> 12) << 6) | EntryLo.V | EntryLo.D | CACHEABLE)
                is_global = False
                continue
            hm = m if (half ^ gva) < 0x1000 else self.translate(half)
            if isinstance(hm, Mapping):
                los.append(self._shadow_lo(hm, half))
                if hm.tlb_index >= 0:
                    sources.add(hm.tlb_index)
                is_global = is_global and hm.is_global
            else:
                los.append(0)
        # The hardware takes G from both halves: an invalid half must carry it too.
        los = [lo | EntryLo.G for lo in los] if is_global else [lo & ~EntryLo.G for lo in los]
        entryhi = base if is_global else base | host_asid
        for index in sources:
            self.tlb.entries[index].shadows.add(entryhi)
        self._host_tlb_write(entryhi, 0, los[0], los[1])
        self.stats.traps["shadow_fill"] += 1

    def fill(self, gva: int, is_write: bool) -> GuestTlbException | NoRam | None:
        """Resolve a host TLB miss on `gva`: install its shadow, or say why the guest cannot have one."""
        if COMMPAGE_GVA <= gva < COMMPAGE_GVA + 0x1000 and self.host_kernel:
            # The commpage: always there for the guest kernel.
            self._install_shadow(gva, Mapping(0, True, False, -1, False), None)  # gpa unused
            return None
        m = self.translate(gva)
        if not isinstance(m, Mapping):
            exc = ExcCode.TLBS if is_write else ExcCode.TLBL
            return GuestTlbException(exc, refill=m is REFILL and not self.regs[Cp0.STATUS] & Status.EXL)
        if is_write and not m.writable:
            return GuestTlbException(ExcCode.MOD)
        slot = self.slots.lookup(m.gpa)
        if slot is None or (is_write and slot.flags & MemFlags.READONLY):
            return NoRam(m.gpa)
        if is_write and slot.flags & MemFlags.LOG_DIRTY_PAGES:
            slot.mark_dirty(m.gpa)
            self.stats.traps["dirty_log_fault"] += 1
        self._install_shadow(gva, m, slot)
        return None
