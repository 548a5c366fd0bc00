"""The VZ hypervisor: a guest in guest kernel mode with its own CP0 in hardware.

Only root-level events reach this code (seed 002/003): root TLB exceptions on
guest physical addresses (a page not yet mapped, a write to a page being
dirty-logged or read-only, or an address with no RAM behind it, which is
MMIO), guest exits (hypercalls, guest privileged sensitive instructions the
root chose to trap: WAIT, writes to Count) and the host's own time slice.
Everything else the guest does, including its own TLB refills, exceptions,
interrupts and CP0 accesses, happens in hardware without us.
"""

from __future__ import annotations

from kvmpy.arch.mips.decode import is_cache, is_wait, mtc0_target
from kvmpy.arch.mips.hw import defs
from kvmpy.arch.mips.hw.cpu import Cpu
from kvmpy.arch.mips.hw.defs import Cp0, Ctx, ExcCode, GExcCode, Stop
from kvmpy.arch.mips.hypervisor import RootEventHandler, WaitForWakeup, reg_sel, slot_tlb_pair
from kvmpy.kvm.exits import Exit, InternalErrorExit
from kvmpy.kvm.memory import MemFlags, MemorySlot, SlotTable
from kvmpy.kvm.stats import VcpuStats

_reg = reg_sel
# Register bits as plain ints: exits look them up (see defs.plain)
Cause = defs.plain(defs.Cause)
GuestCtl0 = defs.plain(defs.GuestCtl0)
Status = defs.plain(defs.Status)


class VzVcpu(RootEventHandler):
    """The VZ half of a vCPU: sets up the guest context and handles root events."""

    def __init__(
        self,
        cpu: Cpu,
        slots: SlotTable,
        guest_id: int,
        vcpu_id: int,
        stats: VcpuStats,
        wait_for_wakeup: WaitForWakeup,
    ) -> None:
        super().__init__(cpu, slots, vcpu_id, stats, wait_for_wakeup)
        self.guest_id = guest_id
        self._setup()

    # ---------------------------------------------------------------- setup
    def _setup(self) -> None:
        cpu = self.cpu
        root, guest = Ctx.ROOT, Ctx.GUEST
        # The root runs at kernel level, out of reset/error state; guest mode is
        # entered by clearing EXL (our run() = eret).
        cpu.cp0_set_raw(root, *_reg(Cp0.STATUS), Status.EXL)
        cpu.cp0_set_raw(
            root,
            *_reg(Cp0.GUESTCTL0),
            GuestCtl0.GM | GuestCtl0.CP0 | GuestCtl0.AT_GUEST | GuestCtl0.GT | GuestCtl0.CG,
        )
        cpu.cp0_set_raw(root, *_reg(Cp0.GUESTCTL1), self.guest_id | (self.guest_id << 16))
        cpu.cp0_set_raw(root, *_reg(Cp0.ENTRYHI), 0)
        cpu.cp0_set_raw(root, *_reg(Cp0.EPC), 0xBFC00000)
        # What the guest sees of the core: no VZ, no segmentation control, no FPU.
        config3 = cpu.cp0_read(guest, *_reg(Cp0.CONFIG3)) & ~((1 << 23) | (1 << 25))
        cpu.cp0_set_raw(guest, *_reg(Cp0.CONFIG3), config3)
        cpu.cp0_set_raw(guest, *_reg(Cp0.EBASE), 0x80000000 | self.vcpu_id)
        cpu.cp0_set_raw(guest, *_reg(Cp0.STATUS), Status.BEV | Status.ERL)

    # ---------------------------------------------------------------- registers
    def read_cp0(self, reg: int, sel: int) -> int:
        return self.cpu.cp0_read(Ctx.GUEST, reg, sel)

    def write_cp0(self, reg: int, sel: int, value: int) -> None:
        if (reg, sel) == _reg(Cp0.COUNT):
            # Guest Count is root Count + GTOffset, as in hardware.
            root = self.cpu.cp0_read(Ctx.ROOT, *_reg(Cp0.COUNT))
            self.cpu.cp0_write(Ctx.ROOT, *_reg(Cp0.GTOFFSET), (value - root) & 0xFFFFFFFF)
            return
        self.cpu.cp0_write(Ctx.GUEST, reg, sel, value & 0xFFFFFFFF)

    def set_irq_lines(self, lines: int) -> None:
        """Assert guest interrupt pins IP2..IP7 (bit 0 = IP2) through GuestCtl2.VIP."""
        self.cpu.set_guest_vip(lines)

    def guest_interrupt_pending(self) -> bool:
        return bool(self.cpu.interrupt_pending(Ctx.GUEST))

    # ---------------------------------------------------------------- run
    def handle(self, stop: Stop) -> Exit | None:
        """React to the core entering the root. None means: resume the guest."""
        if stop == Stop.BUDGET or stop == Stop.KICK:
            return None
        if stop == Stop.DEBUG:
            return self._debug_stop()
        if stop != Stop.ROOT_EXCEPTION:
            return InternalErrorExit(f"unexpected stop {stop!r} in VZ mode", self.pc)
        cpu = self.cpu
        cause = cpu.cp0_read(Ctx.ROOT, *_reg(Cp0.CAUSE))
        code = (cause >> 2) & 0x1F
        if code in (ExcCode.TLBL, ExcCode.TLBS, ExcCode.MOD):
            return self._root_tlb_fault(code)
        if code == ExcCode.GE:
            gctl0 = cpu.cp0_read(Ctx.ROOT, *_reg(Cp0.GUESTCTL0))
            gexc = (gctl0 & GuestCtl0.GEXC_MASK) >> GuestCtl0.GEXC_SHIFT
            if gexc == GExcCode.HC:
                return self._hypercall()
            if gexc == GExcCode.GPSI:
                return self._gpsi()
            return InternalErrorExit(f"unhandled guest exit GExcCode={gexc}", self.pc)
        if code == ExcCode.INT:
            self.stats.traps["root_interrupt"] += 1
            return None
        return InternalErrorExit(
            f"unexpected root exception ExcCode={code} at guest pc {self.pc:#010x}", self.pc
        )

    # ---------------------------------------------------------------- helpers
    def _inject_guest_exception(self, code: ExcCode) -> None:
        """Deliver an exception into the guest as its hardware would (guest EPC/Cause/Status)."""
        cpu = self.cpu
        g = Ctx.GUEST
        epc = cpu.cp0_read(Ctx.ROOT, *_reg(Cp0.EPC))
        root_cause = cpu.cp0_read(Ctx.ROOT, *_reg(Cp0.CAUSE))
        status = cpu.cp0_read(g, *_reg(Cp0.STATUS))
        cause = cpu.cp0_read(g, *_reg(Cp0.CAUSE))
        if not status & Status.EXL:
            cpu.cp0_write(g, *_reg(Cp0.EPC), epc)
            cause = (cause & ~Cause.BD) | (root_cause & Cause.BD)
        cause = (cause & ~0x7C) | (int(code) << 2)
        cpu.cp0_set_raw(g, *_reg(Cp0.CAUSE), cause)
        cpu.cp0_set_raw(g, *_reg(Cp0.BADINSTR), cpu.cp0_read(Ctx.ROOT, *_reg(Cp0.BADINSTR)))
        cpu.cp0_set_raw(g, *_reg(Cp0.STATUS), status | Status.EXL)
        if status & Status.BEV:
            vector = 0xBFC00380
        else:
            vector = (cpu.cp0_read(g, *_reg(Cp0.EBASE)) & 0xFFFFF000) + 0x180
        cpu.cp0_write(Ctx.ROOT, *_reg(Cp0.EPC), vector)
        self.stats.traps[f"inject_exc_{code.name.lower()}"] += 1

    # ---------------------------------------------------------------- root TLB (GPA -> HPA)
    def _root_tlb_fault(self, code: int) -> Exit | None:
        cpu = self.cpu
        gpa = cpu.cp0_read(Ctx.ROOT, *_reg(Cp0.BADVADDR))
        is_write = code in (ExcCode.TLBS, ExcCode.MOD)
        slot = self.slots.lookup(gpa)
        if slot is not None and not (is_write and slot.flags & MemFlags.READONLY):
            if is_write and slot.flags & MemFlags.LOG_DIRTY_PAGES:
                slot.mark_dirty(gpa)
                self.stats.traps["dirty_log_fault"] += 1
            self._map_gpa(slot, gpa)
            self.stats.traps["root_tlb_fill"] += 1
            return None
        return self._mmio(gpa, self._is_ifetch_fault(gpa))

    def _map_gpa(self, slot: MemorySlot, gpa: int) -> None:
        """Install a root TLB entry covering `gpa`, as large as the slot allows."""
        base, mask, lo0, lo1 = slot_tlb_pair(slot, gpa)
        index = self.cpu.tlb_probe(Ctx.ROOT, base, self.guest_id)
        if index >= 0:
            self.cpu.tlb_write(Ctx.ROOT, index, base, mask, lo0, lo1, self.guest_id)
        else:
            self.cpu.tlb_write_random(Ctx.ROOT, base, mask, lo0, lo1, self.guest_id)

    def flush_root_tlb(self) -> None:
        """Forget every GPA mapping of this guest (slots changed, dirty log re-armed)."""
        self.cpu.tlb_invalidate_guestid(self.guest_id)

    # ---------------------------------------------------------------- MMIO
    def _is_ifetch_fault(self, gpa: int) -> bool:
        # A fetch fault leaves BadInstr meaningless. The code page and the
        # faulting page coincide only for a fetch: a data access to the page
        # the code came from would have hit RAM.
        code_gpa = self.cpu.guest_va_to_pa(self._faulting_pc())
        return code_gpa is not None and (code_gpa >> 12) == (gpa >> 12)

    # ---------------------------------------------------------------- sensitive instructions
    def _gpsi(self) -> Exit | None:
        cpu = self.cpu
        insn = cpu.cp0_read(Ctx.ROOT, *_reg(Cp0.BADINSTR))
        if is_wait(insn):
            self.stats.traps["wait"] += 1
            self._skip()
            return self._block_until_interrupt()
        mt = mtc0_target(insn)
        if mt is not None and (mt[1], mt[2]) == _reg(Cp0.COUNT):
            self.stats.traps["mtc0_count"] += 1
            self.write_cp0(9, 0, cpu.get_gpr(mt[0]))
            self._skip()
            return None
        if is_cache(insn):
            self.stats.traps["cache"] += 1
            self._skip()
            return None
        # Root-only instructions and registers: the guest sees a reserved instruction.
        self._inject_guest_exception(ExcCode.RI)
        return None

    def _guest_irq_state(self) -> tuple[int, int, float | None]:
        cpu = self.cpu
        g = Ctx.GUEST
        status = cpu.cp0_read(g, *_reg(Cp0.STATUS))
        cause = cpu.cp0_read(g, *_reg(Cp0.CAUSE))
        timer_bit = 1 << (8 + (cpu.cp0_read(g, *_reg(Cp0.INTCTL)) >> 29))
        timer_s = cpu.ns_until_timer(g) / 1e9 if status & timer_bit else None
        return status, cause, timer_s
