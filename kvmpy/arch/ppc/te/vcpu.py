"""One trap-and-emulate 440 vCPU: the virtual Book E CPU, the run loop and interrupt delivery.

The guest (kernel and user alike) runs on the host core with MSR[PR] = 1
and MSR[IS] = MSR[DS] = 1, and with every interrupt class in the core's
`host_vectors`: whatever the guest does that a user program cannot
(privileged instructions, TLB misses, system calls, faults) stops the core
and comes here, as the notes' "IVPR hijack" has every vector point at the
host. The guest's own MSR, SRR0/1, CSRR0/1, ESR, DEAR, IVPR, IVORs, PID,
MMUCR and timers are virtual (`TeVcpu` fields); a guest interrupt is
delivered by setting them as a 440 would and jumping to guest IVPR|IVOR.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from kvmpy.arch.ppc.hw.core440 import Core440
from kvmpy.arch.ppc.hw.defs import (
    ESR_PIL,
    ESR_PPR,
    ESR_ST,
    MSR_CE,
    MSR_DE,
    MSR_DS,
    MSR_EE,
    MSR_FE0,
    MSR_FE1,
    MSR_FP,
    MSR_IMPLEMENTED,
    MSR_IS,
    MSR_ME,
    MSR_PR,
    MSR_WE,
    TCR_WIE,
    TLB0_V,
    TLB2_SR,
    TLB2_SW,
    TLB2_SX,
    Ivor,
    Spr,
    Stop,
)
from kvmpy.arch.ppc.te import emulate
from kvmpy.arch.ppc.te.mmu import (
    PAGE,
    TID_GUEST_KERNEL,
    TID_GUEST_USER,
    Access,
    GuestTlb,
    GuestTlbEntry,
    MemInsn,
    ShadowTlb,
    decode_mem_insn,
)
from kvmpy.arch.ppc.te.timer import GuestTimers
from kvmpy.kvm.backend import WaitForWakeup
from kvmpy.kvm.exits import DcrExit, Exit, HaltExit, InternalErrorExit, MmioExit, ResetExit
from kvmpy.kvm.memory import MemFlags, SlotTable
from kvmpy.kvm.stats import VcpuStats

_ALL_VECTORS = 0xFFFF
_CRITICAL_CLASSES = (Ivor.CRITICAL_INPUT, Ivor.WATCHDOG, Ivor.DEBUG)
_MASK32 = 0xFFFFFFFF


@dataclass
class _PendingMmioRead:
    exit: MmioExit
    insn: MemInsn
    ea: int


class TeVcpu:
    """The 440 trap-and-emulate vCPU: a host core plus the guest's virtual Book E state."""

    def __init__(
        self, core: Core440, slots: SlotTable, vcpu_id: int, stats: VcpuStats, wait_for_wakeup: WaitForWakeup
    ) -> None:
        self.core = core
        self.slots = slots
        self.vcpu_id = vcpu_id
        self.stats = stats
        self._wait_for_wakeup = wait_for_wakeup
        self.sprs: dict[int, int] = {}
        self.ivor = [0] * 16
        self.timers = GuestTimers()
        self.guest_tlb = GuestTlb()
        self.shadow = ShadowTlb(core)
        self.msr = 0
        self.pid = 0
        self.ext_line = False
        self.crit_line = False
        self.pending_dcr: tuple[DcrExit, int] | None = None
        self._pending_mmio: _PendingMmioRead | None = None
        core.host_vectors = _ALL_VECTORS
        # As Linux's 440 KVM did: a guest cannot run in real mode, so it
        # starts with entry 0 mapping 256 MiB of guest physical memory at
        # guest virtual 0 for its supervisor (as a boot loader leaves it).
        self.guest_tlb.entries[0] = GuestTlbEntry(
            TLB0_V | (9 << 4), 0, TLB2_SX | TLB2_SW | TLB2_SR, 0
        )
        self.pc = 0
        self._apply_msr(0, 0, first=True)

    # ------------------------------------------------------------ guest state
    @property
    def pc(self) -> int:
        return int(self.core.pc)

    @pc.setter
    def pc(self, value: int) -> None:
        self.core.pc = value & _MASK32

    def _host_msr(self) -> int:
        return MSR_PR | MSR_IS | MSR_DS | MSR_ME | (self.msr & MSR_FP)

    def set_msr(self, value: int) -> None:
        old = self.msr
        self.msr = value & MSR_IMPLEMENTED
        self._apply_msr(old, self.msr)

    def _apply_msr(self, old: int, new: int, first: bool = False) -> None:
        if (old ^ new) & (MSR_IS | MSR_DS):
            self.shadow.invalidate_all()
        if first or (old ^ new) & MSR_PR:
            # a PID write flushes the core's micro-TLB: only when the guest's privilege changes
            self.core.spr_write(Spr.PID, TID_GUEST_USER if new & MSR_PR else TID_GUEST_KERNEL)
        self.core.msr = self._host_msr()

    def set_pid(self, pid: int) -> None:
        if pid != self.pid:
            self.pid = pid
            self.shadow.invalidate_all()

    def guest_tlbwe(self, index: int, word: int, value: int, stid: int | None = None) -> None:
        """tlbwe of guest TLB entry `index` (word 0 takes its TID from MMUCR[STID] unless `stid` is given)."""
        if stid is None:
            stid = self.sprs.get(Spr.MMUCR, 0) & 0xFF
        old, new = self.guest_tlb.write_word(index, word, value, stid)
        self._drop_shadows_of(old, new)

    def guest_tlb_set_tid(self, index: int, tid: int) -> None:
        old = self.guest_tlb.entries[index]
        new = GuestTlbEntry(old.w0, old.w1, old.w2, tid)
        self.guest_tlb.entries[index] = new
        self._drop_shadows_of(old, new)

    def _drop_shadows_of(self, *entries: GuestTlbEntry) -> None:
        for e in entries:
            if e.valid:
                self.shadow.invalidate_range(e.epn, e.size_bytes)

    def flush_mappings(self) -> None:
        self.shadow.invalidate_all()

    # ------------------------------------------------------------ interrupts
    def deliver(self, ivor: Ivor, srr0: int, esr: int | None = None, dear: int | None = None) -> None:
        """Put guest interrupt `ivor` into the guest, as a 440 takes it."""
        critical = ivor in _CRITICAL_CLASSES
        if ivor == Ivor.MACHINE_CHECK:
            s0, s1 = Spr.MCSRR0, Spr.MCSRR1
        elif critical:
            s0, s1 = Spr.CSRR0, Spr.CSRR1
        else:
            s0, s1 = Spr.SRR0, Spr.SRR1
        self.sprs[s0] = srr0 & _MASK32
        self.sprs[s1] = self.msr
        if esr is not None:
            self.sprs[Spr.ESR] = esr
        if dear is not None:
            self.sprs[Spr.DEAR] = dear & _MASK32
        clear = MSR_WE | MSR_EE | MSR_PR | MSR_FP | MSR_FE0 | MSR_FE1 | MSR_IS | MSR_DS
        if critical or ivor == Ivor.MACHINE_CHECK:
            clear |= MSR_CE | MSR_DE
        if ivor == Ivor.MACHINE_CHECK:
            clear |= MSR_ME
        self.set_msr(self.msr & ~clear)
        self.pc = (self.sprs.get(Spr.IVPR, 0) & 0xFFFF0000) | self.ivor[ivor]
        self.stats.traps[f"guest_interrupt.{ivor.name}"] += 1

    def _deliver_pending(self) -> bool:
        """Deliver the highest-priority asynchronous guest interrupt that is pending and enabled."""
        msr = self.msr
        if self.crit_line and msr & MSR_CE:
            self.deliver(Ivor.CRITICAL_INPUT, self.pc)
            return True
        self.timers.update(self.core.tb)
        if msr & MSR_CE and self.timers.watchdog_pending():
            self.deliver(Ivor.WATCHDOG, self.pc)
            return True
        if not msr & MSR_EE:
            return False
        if self.ext_line:
            self.deliver(Ivor.EXTERNAL_INPUT, self.pc)
            return True
        dec, fit = self.timers.pending()
        if fit:
            self.deliver(Ivor.FIXED_INTERVAL_TIMER, self.pc)
            return True
        if dec:
            self.deliver(Ivor.DECREMENTER, self.pc)
            return True
        return False

    def _can_wake(self) -> bool:
        return bool(self.msr & (MSR_CE | MSR_EE))

    # ------------------------------------------------------------ running
    def run(self, budget: int) -> Exit | None:
        core = self.core
        self._deliver_pending()
        if self.timers.reset_request:
            kind = self.timers.reset_request
            self.timers.reset_request = 0
            name = ("core", "chip", "system")[kind - 1]
            return ResetExit(why=f"watchdog: TCR[WRC] = {kind} ({name} reset)")
        if self.msr & MSR_WE:
            return self._wait()
        tb = core.tb
        budget = max(1, min(budget, self.timers.next_event_tb(tb) - tb))
        stop = core.run(budget)
        if stop == Stop.INTERRUPT:
            return self._handle_interrupt(Ivor(core.last_interrupt))
        if stop in (Stop.BUDGET, Stop.KICK):
            return None
        return InternalErrorExit(message=f"the host core stopped with {Stop(stop).name}", pc=self.pc)

    def _wait(self) -> Exit | None:
        """MSR[WE]: sleep until an interrupt the guest has enabled can come."""
        start = time.monotonic_ns()
        try:
            while not self._deliver_pending():
                if self.timers.reset_request:
                    return None  # run() reports it
                if not self._can_wake():
                    return HaltExit(pc=self.pc)
                timer_wakes = self.msr & MSR_EE and self.timers.can_wake()
                if timer_wakes or (self.msr & MSR_CE and self.timers.tcr & TCR_WIE):
                    # the time base is the instruction count: a waiting core skips to the event
                    self.core.tb = self.timers.next_event_tb(self.core.tb)
                    continue
                if self._wait_for_wakeup(None):
                    return None
            return None
        finally:
            self.stats.halted_ns += time.monotonic_ns() - start

    def _handle_interrupt(self, ivor: Ivor) -> Exit | None:
        core = self.core
        srr0 = int(core.spr_read(Spr.SRR0))
        self.core.msr = self._host_msr()  # back to the guest's context; the interrupt cleared PR/IS/DS
        match ivor:
            case Ivor.PROGRAM:
                esr = int(core.spr_read(Spr.ESR))
                if esr & ESR_PPR and not self.msr & MSR_PR:
                    return self._emulate(srr0)
                self.deliver(ivor, srr0, esr=esr)
            case Ivor.DATA_TLB_ERROR | Ivor.DATA_STORAGE:
                dear = int(core.spr_read(Spr.DEAR))
                store = bool(core.spr_read(Spr.ESR) & ESR_ST)
                return self._storage_fault(srr0, dear, Access.STORE if store else Access.LOAD, ivor)
            case Ivor.INSTRUCTION_TLB_ERROR | Ivor.INSTRUCTION_STORAGE:
                return self._storage_fault(srr0, srr0, Access.FETCH, ivor)
            case Ivor.SYSTEM_CALL:
                self.stats.traps["syscall"] += 1
                self.deliver(ivor, srr0)
            case Ivor.ALIGNMENT:
                self.deliver(ivor, srr0, esr=int(core.spr_read(Spr.ESR)), dear=int(core.spr_read(Spr.DEAR)))
            case Ivor.FP_UNAVAILABLE | Ivor.APU_UNAVAILABLE:
                self.deliver(ivor, srr0)
            case _:
                return InternalErrorExit(message=f"unexpected host interrupt {ivor.name}", pc=srr0)
        return None

    def _emulate(self, pc: int) -> Exit | None:
        insn = self.read_guest_insn(pc)
        if insn is None:
            return InternalErrorExit(message="a trapping instruction's page vanished", pc=pc)
        self.pc = pc
        try:
            return emulate.emulate(self, insn, pc)
        except emulate.IllegalInstruction:
            self.stats.traps["emul_illegal"] += 1
            self.deliver(Ivor.PROGRAM, pc, esr=ESR_PIL)
            return None

    # ------------------------------------------------------------ memory
    def _guest_translate(self, ea: int, access: Access) -> tuple[GuestTlbEntry | None, bool]:
        """(guest TLB entry for `ea` in the guest's current context, whether it permits `access`)."""
        ts = 1 if self.msr & (MSR_IS if access == Access.FETCH else MSR_DS) else 0
        i = self.guest_tlb.find(ea, ts, self.pid)
        if i < 0:
            return None, False
        e = self.guest_tlb.entries[i]
        return e, e.permits(access, bool(self.msr & MSR_PR))

    def read_guest_insn(self, ea: int) -> int | None:
        e, ok = self._guest_translate(ea, Access.FETCH)
        if e is None:
            return None
        slot = self.slots.lookup(e.gpa(ea))
        if slot is None:
            return None
        off = e.gpa(ea) - slot.gpa
        return int.from_bytes(slot.buffer[off : off + 4], "big")

    def _storage_fault(self, pc: int, ea: int, access: Access, ivor: Ivor) -> Exit | None:
        """A miss or denial in the shadow TLB: fill it from the guest TLB, reflect, or go to MMIO."""
        entry, permitted = self._guest_translate(ea, access)
        data_side = access != Access.FETCH
        esr = ESR_ST if access == Access.STORE else 0
        if entry is None:
            self.stats.traps["guest_tlb_miss"] += 1
            if data_side:
                self.deliver(Ivor.DATA_TLB_ERROR, pc, esr=esr, dear=ea)
            else:
                self.deliver(Ivor.INSTRUCTION_TLB_ERROR, pc)
            return None
        if not permitted:
            self.stats.traps["guest_storage_fault"] += 1
            if data_side:
                self.deliver(Ivor.DATA_STORAGE, pc, esr=esr, dear=ea)
            else:
                self.deliver(Ivor.INSTRUCTION_STORAGE, pc, esr=0)
            return None
        gpa = entry.gpa(ea)
        slot = self.slots.lookup(gpa) if gpa < self.slots.gpa_space_bytes else None
        readonly = slot is not None and bool(slot.flags & MemFlags.READONLY)
        if slot is None or (readonly and access == Access.STORE):
            if not data_side:
                return InternalErrorExit(message=f"guest fetch from gpa {gpa:#x}, which is not RAM", pc=pc)
            return self._mmio(pc, ea, gpa)
        user = bool(self.msr & MSR_PR)
        perms = entry.host_perms(user)
        page_gpa = gpa & ~(PAGE - 1)
        writable = not readonly
        if writable and slot.flags & MemFlags.LOG_DIRTY_PAGES:
            if access == Access.STORE:
                slot.mark_dirty(page_gpa)
            writable = slot.is_dirty(page_gpa)
        if not writable:
            perms &= ~0x10  # UW
        size_code = min((entry.w0 >> 4) & 0xF, 1)  # 1 KiB guest pages stay 1 KiB, the rest are 4 KiB
        span = 1024 << (2 * size_code)
        hpa = slot.hpa + ((gpa & ~(span - 1)) - slot.gpa)
        self.shadow.map(ea, TID_GUEST_USER if user else TID_GUEST_KERNEL, hpa, size_code, perms, entry.w2)
        self.stats.traps["shadow_fill"] += 1
        self.pc = pc  # run the access again, now mapped
        return None

    def _mmio(self, pc: int, ea: int, gpa: int) -> Exit | None:
        insn_word = self.read_guest_insn(pc)
        insn = decode_mem_insn(insn_word) if insn_word is not None else None
        if insn is None:
            return InternalErrorExit(
                message=f"MMIO at gpa {gpa:#x} by an instruction that cannot be emulated ({insn_word!r})",
                pc=pc,
            )
        core = self.core
        self.pc = pc
        order = "little" if insn.reversed else "big"
        if insn.is_store:
            value = core.get_gpr(insn.rt) & ((1 << (8 * insn.size)) - 1)
            self.stats.traps["mmio_write"] += 1
            self._finish_mem(insn, ea)
            return MmioExit(gpa, insn.size, True, bytearray(value.to_bytes(insn.size, order)))
        self.stats.traps["mmio_read"] += 1
        exit_ = MmioExit(gpa, insn.size, False, bytearray(insn.size))
        self._pending_mmio = _PendingMmioRead(exit_, insn, ea)
        return exit_

    def _finish_mem(self, insn: MemInsn, ea: int) -> None:
        """Move past an emulated load/store; update forms write the effective address to RA."""
        if insn.update:
            self.core.set_gpr(insn.ra, ea)
        self.pc = self.pc + 4

    def complete_pending(self) -> None:
        pending_mmio, self._pending_mmio = self._pending_mmio, None
        if pending_mmio is not None:
            e, insn = pending_mmio.exit, pending_mmio.insn
            data = bytes(e.data[: insn.size]).ljust(insn.size, b"\0")
            value = int.from_bytes(data, "little" if insn.reversed else "big")
            if insn.algebraic and value & 0x8000:
                value |= 0xFFFF0000
            self.core.set_gpr(insn.rt, value)
            self._finish_mem(insn, pending_mmio.ea)
        pending_dcr, self.pending_dcr = self.pending_dcr, None
        if pending_dcr is not None:
            dcr, rt = pending_dcr
            if not dcr.is_write:
                self.core.set_gpr(rt, dcr.data & _MASK32)
            self.pc = self.pc + 4
