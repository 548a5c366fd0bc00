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

import time
from collections.abc import Callable
from dataclasses import dataclass

from kvmpy.arch.mips.decode import (
    MemAccess,
    NotABranchError,
    branch_next_pc,
    decode_mem_access,
    hypcall_code,
    is_cache,
    is_wait,
    mtc0_target,
)
from kvmpy.arch.mips.hw.cpu import Cpu
from kvmpy.arch.mips.hw.defs import (
    CAUSE_BD,
    ELO_D,
    ELO_G,
    ELO_V,
    GC0_AT_GUEST,
    GC0_CG,
    GC0_CP0,
    GC0_GEXC_MASK,
    GC0_GEXC_SHIFT,
    GC0_GM,
    GC0_GT,
    MAX_PAGE_MASK,
    ST_BEV,
    ST_ERL,
    ST_EXL,
    Cp0,
    Ctx,
    ExcCode,
    GExcCode,
    Stop,
)
from kvmpy.kvm.exits import (
    DebugExit,
    Exit,
    HaltExit,
    HypercallExit,
    InternalErrorExit,
    MmioExit,
    ShutdownExit,
)
from kvmpy.kvm.memory import PAGE_SIZE, MemFlags, MemorySlot, SlotTable
from kvmpy.kvm.stats import VcpuStats

# Linux's MIPS paravirtual hypercall numbers (arch/mips/include/asm/kvm_para.h)
KVM_HC_MIPS_GET_CLOCK_FREQ = 0
KVM_HC_MIPS_EXIT_VM = 1
KVM_HC_MIPS_CONSOLE_OUTPUT = 2
KVM_ENOSYS = 1000

CACHEABLE = 3 << 3  # EntryLo.C = cacheable noncoherent, write-back

# Page sizes the root TLB may use for a GPA pair, largest first: (PageMask, bytes per page)
_PAGE_SIZES = [(((1 << s) - 1) & ~0x1FFF & MAX_PAGE_MASK, 1 << (s - 1)) for s in range(29, 12, -2)]


def _reg(reg_sel: Cp0) -> tuple[int, int]:
    return reg_sel >> 3, reg_sel & 7


@dataclass(slots=True)
class _PendingMmioRead:
    exit: MmioExit
    access: MemAccess
    resume_pc: int


@dataclass(slots=True)
class _PendingHypercall:
    exit: HypercallExit
    resume_pc: int


class VzVcpu:
    """The VZ half of a vCPU: sets up the guest context and handles root events."""

    def __init__(
        self,
        cpu: Cpu,
        slots: SlotTable,
        guest_id: int,
        vcpu_id: int,
        stats: VcpuStats,
        wait_for_wakeup: Callable[[float | None], None],
    ) -> None:
        self.cpu = cpu
        self.slots = slots
        self.guest_id = guest_id
        self.vcpu_id = vcpu_id
        self.stats = stats
        self._wait_for_wakeup = wait_for_wakeup
        self._pending: _PendingMmioRead | _PendingHypercall | None = None
        self._resume_after_debug = False
        self._setup()

    # ---------------------------------------------------------------- setup
    def _setup(self) -> None:
        cpu = self.cpu
        root, guest = Ctx.ROOT, Ctx.GUEST
        # The root runs at kernel level, out of reset/error state; guest mode is
        # entered by clearing EXL (our run() = eret).
        cpu.cp0_set_raw(root, *_reg(Cp0.STATUS), ST_EXL)
        cpu.cp0_set_raw(
            root, *_reg(Cp0.GUESTCTL0), GC0_GM | GC0_CP0 | GC0_AT_GUEST | GC0_GT | GC0_CG
        )
        cpu.cp0_set_raw(root, *_reg(Cp0.GUESTCTL1), self.guest_id | (self.guest_id << 16))
        cpu.cp0_set_raw(root, *_reg(Cp0.ENTRYHI), 0)
        cpu.cp0_set_raw(root, *_reg(Cp0.EPC), 0xBFC00000)
        # What the guest sees of the core: no VZ, no segmentation control, no FPU.
        config3 = cpu.cp0_read(guest, *_reg(Cp0.CONFIG3)) & ~((1 << 23) | (1 << 25))
        cpu.cp0_set_raw(guest, *_reg(Cp0.CONFIG3), config3)
        cpu.cp0_set_raw(guest, *_reg(Cp0.EBASE), 0x80000000 | self.vcpu_id)
        cpu.cp0_set_raw(guest, *_reg(Cp0.STATUS), ST_BEV | ST_ERL)

    # ---------------------------------------------------------------- registers
    @property
    def pc(self) -> int:
        # While a root event is being handled, the guest's PC is the root EPC.
        if self.cpu.cp0_read(Ctx.ROOT, *_reg(Cp0.STATUS)) & ST_EXL:
            return self.cpu.cp0_read(Ctx.ROOT, *_reg(Cp0.EPC))
        return self.cpu.pc

    @pc.setter
    def pc(self, value: int) -> None:
        self._pending = None
        self._resume_after_debug = False
        if self.cpu.cp0_read(Ctx.ROOT, *_reg(Cp0.STATUS)) & ST_EXL:
            self.cpu.cp0_write(Ctx.ROOT, *_reg(Cp0.EPC), value & 0xFFFFFFFF)
        else:
            self.cpu.pc = value & 0xFFFFFFFF

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
    def enter(self, budget: int) -> Stop:
        if self._pending is not None:
            raise RuntimeError("enter() with an uncompleted exit")
        if self._resume_after_debug:
            self._resume_after_debug = False
            self.cpu.pc = (self.cpu.pc + 4) & 0xFFFFFFFF
        return self.cpu.run(budget)

    def complete_pending(self) -> None:
        """Finish the exit the VMM answered: write the MMIO read or hypercall result."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        cpu = self.cpu
        if isinstance(pending, _PendingMmioRead):
            data = bytes(pending.exit.data[: pending.access.length])
            if len(data) != pending.access.length:
                data = data.ljust(pending.access.length, b"\0")
            value = int.from_bytes(data, "little", signed=pending.access.signed) & 0xFFFFFFFF
            cpu.set_gpr(pending.access.reg, value)
        else:
            cpu.set_gpr(2, pending.exit.ret & 0xFFFFFFFF)
        cpu.cp0_write(Ctx.ROOT, *_reg(Cp0.EPC), pending.resume_pc)

    def handle(self, stop: Stop) -> Exit | None:
        """React to the core entering the root. None means: resume the guest."""
        if stop == Stop.BUDGET or stop == Stop.KICK:
            return None
        if stop == Stop.DEBUG:
            self._resume_after_debug = True
            return DebugExit(pc=self.cpu.pc)
        if stop != Stop.ROOT_EXCEPTION:
            return InternalErrorExit(f"unexpected stop {stop!r} in VZ mode", self.pc)
        cpu = self.cpu
        cause = cpu.cp0_read(Ctx.ROOT, *_reg(Cp0.CAUSE))
        code = (cause >> 2) & 0x1F
        if code in (ExcCode.TLBL, ExcCode.TLBS, ExcCode.MOD):
            return self._root_tlb_fault(code)
        if code == ExcCode.GE:
            gexc = (cpu.cp0_read(Ctx.ROOT, *_reg(Cp0.GUESTCTL0)) & GC0_GEXC_MASK) >> GC0_GEXC_SHIFT
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
    def _gpr_list(self) -> list[int]:
        return [self.cpu.get_gpr(i) for i in range(32)]

    def _next_pc(self) -> int:
        """The guest PC after the instruction that trapped (finishing a branch if in a delay slot)."""
        cpu = self.cpu
        epc = cpu.cp0_read(Ctx.ROOT, *_reg(Cp0.EPC))
        if cpu.cp0_read(Ctx.ROOT, *_reg(Cp0.CAUSE)) & CAUSE_BD:
            branch = cpu.cp0_read(Ctx.ROOT, *_reg(Cp0.BADINSTRP))
            return branch_next_pc(branch, epc, self._gpr_list())
        return (epc + 4) & 0xFFFFFFFF

    def _skip(self) -> None:
        self.cpu.cp0_write(Ctx.ROOT, *_reg(Cp0.EPC), self._next_pc())

    def _inject_guest_exception(self, code: ExcCode) -> None:
        """Deliver an exception into the guest as its hardware would (guest EPC/Cause/Status)."""
        cpu = self.cpu
        g = Ctx.GUEST
        epc = cpu.cp0_read(Ctx.ROOT, *_reg(Cp0.EPC))
        root_cause = cpu.cp0_read(Ctx.ROOT, *_reg(Cp0.CAUSE))
        status = cpu.cp0_read(g, *_reg(Cp0.STATUS))
        cause = cpu.cp0_read(g, *_reg(Cp0.CAUSE))
        if not status & ST_EXL:
            cpu.cp0_write(g, *_reg(Cp0.EPC), epc)
            cause = (cause & ~CAUSE_BD) | (root_cause & CAUSE_BD)
        cause = (cause & ~0x7C) | (int(code) << 2)
        cpu.cp0_set_raw(g, *_reg(Cp0.CAUSE), cause)
        cpu.cp0_set_raw(g, *_reg(Cp0.BADINSTR), cpu.cp0_read(Ctx.ROOT, *_reg(Cp0.BADINSTR)))
        cpu.cp0_set_raw(g, *_reg(Cp0.STATUS), status | ST_EXL)
        if status & ST_BEV:
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
        return self._mmio(gpa)

    def _map_gpa(self, slot: MemorySlot, gpa: int) -> None:
        """Install a root TLB entry covering `gpa`, as large as the slot allows."""
        small = bool(slot.flags & (MemFlags.LOG_DIRTY_PAGES | MemFlags.READONLY))
        delta = slot.hpa - slot.gpa
        for mask, page in _PAGE_SIZES:
            pair = 2 * page
            base = gpa & ~(pair - 1)
            if page > PAGE_SIZE and (small or base < slot.gpa or base + pair > slot.gpa_end or delta % pair):
                continue
            los = []
            for half in (base, base + page):
                if not slot.contains(half):
                    los.append(0)
                    continue
                flags = ELO_V | ELO_G | CACHEABLE
                writable = not slot.flags & MemFlags.READONLY
                if writable and (not slot.flags & MemFlags.LOG_DIRTY_PAGES or slot.is_dirty(half)):
                    flags |= ELO_D
                los.append((((half + delta) >> 12) << 6) | flags)
            entryhi = base & 0xFFFFE000
            index = self.cpu.tlb_probe(Ctx.ROOT, entryhi, self.guest_id)
            if index >= 0:
                self.cpu.tlb_write(Ctx.ROOT, index, entryhi, mask, los[0], los[1], self.guest_id)
            else:
                self.cpu.tlb_write_random(Ctx.ROOT, entryhi, mask, los[0], los[1], self.guest_id)
            return

    def flush_root_tlb(self) -> None:
        """Forget every GPA mapping of this guest (slots changed, dirty log re-armed)."""
        self.cpu.tlb_invalidate_guestid(self.guest_id)

    # ---------------------------------------------------------------- MMIO
    def _faulting_pc(self) -> int:
        epc = self.cpu.cp0_read(Ctx.ROOT, *_reg(Cp0.EPC))
        if self.cpu.cp0_read(Ctx.ROOT, *_reg(Cp0.CAUSE)) & CAUSE_BD:
            return (epc + 4) & 0xFFFFFFFF
        return epc

    def _is_ifetch_fault(self, gpa: int) -> bool:
        # A fetch fault leaves BadInstr meaningless. The code page and the
        # faulting page coincide only for a fetch: a data access to the page
        # the code came from would have hit RAM.
        code_gpa = self.cpu.guest_va_to_pa(self._faulting_pc())
        return code_gpa is not None and (code_gpa >> 12) == (gpa >> 12)

    def _mmio(self, gpa: int) -> Exit | None:
        cpu = self.cpu
        epc = cpu.cp0_read(Ctx.ROOT, *_reg(Cp0.EPC))
        if self._is_ifetch_fault(gpa):
            # On the board, fetching from where no memory answers is a bus error.
            fault_pc = self._faulting_pc()
            self._inject_guest_exception(ExcCode.IBE)
            if self.cpu.cp0_read(Ctx.ROOT, *_reg(Cp0.EPC)) == fault_pc:
                return InternalErrorExit(
                    f"guest exception vector {fault_pc:#010x} is not backed by memory", fault_pc
                )
            return None
        insn = cpu.cp0_read(Ctx.ROOT, *_reg(Cp0.BADINSTR))
        access = decode_mem_access(insn)
        if access is None:
            return InternalErrorExit(
                f"cannot emulate instruction {insn:#010x} at {epc:#010x} accessing "
                f"guest physical {gpa:#010x} (no RAM there)",
                epc,
            )
        try:
            resume = self._next_pc()
        except NotABranchError as exc:
            return InternalErrorExit(str(exc), epc)
        if access.is_write:
            value = cpu.get_gpr(access.reg) & ((1 << (8 * access.length)) - 1)
            self.stats.traps["mmio_write"] += 1
            cpu.cp0_write(Ctx.ROOT, *_reg(Cp0.EPC), resume)
            return MmioExit(gpa, access.length, True, bytearray(value.to_bytes(access.length, "little")))
        self.stats.traps["mmio_read"] += 1
        exit_ = MmioExit(gpa, access.length, False, bytearray(access.length))
        self._pending = _PendingMmioRead(exit_, access, resume)
        return exit_

    # ---------------------------------------------------------------- hypercalls
    def _hypercall(self) -> Exit | None:
        cpu = self.cpu
        insn = cpu.cp0_read(Ctx.ROOT, *_reg(Cp0.BADINSTR))
        resume = self._next_pc()
        self.stats.traps["hypercall"] += 1
        if hypcall_code(insn) != 0:
            self._inject_guest_exception(ExcCode.RI)
            return None
        nr = cpu.get_gpr(2)
        args = tuple(cpu.get_gpr(i) for i in (4, 5, 6, 7))
        if nr == KVM_HC_MIPS_GET_CLOCK_FREQ:
            cpu.set_gpr(2, int(cpu.count_hz))
            cpu.cp0_write(Ctx.ROOT, *_reg(Cp0.EPC), resume)
            return None
        if nr == KVM_HC_MIPS_EXIT_VM:
            cpu.cp0_write(Ctx.ROOT, *_reg(Cp0.EPC), resume)
            return ShutdownExit("guest hypercall EXIT_VM")
        exit_ = HypercallExit(nr, args, ret=-KVM_ENOSYS & 0xFFFFFFFF)
        self._pending = _PendingHypercall(exit_, resume)
        return exit_

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

    def _block_until_interrupt(self) -> Exit | None:
        """WAIT: sleep until a guest interrupt is pending (regardless of Status.IE, as silicon)."""
        cpu = self.cpu
        g = Ctx.GUEST
        start = time.monotonic_ns()
        while True:
            status = cpu.cp0_read(g, *_reg(Cp0.STATUS))
            cause = cpu.cp0_read(g, *_reg(Cp0.CAUSE))
            if cause & status & 0xFF00:
                break
            im = status & 0xFF00
            timer_bit = 1 << (8 + (cpu.cp0_read(g, *_reg(Cp0.INTCTL)) >> 29))
            if not im:
                self.stats.halted_ns += time.monotonic_ns() - start
                return HaltExit(pc=self.pc)
            timeout = cpu.ns_until_timer(g) / 1e9 if im & timer_bit else None
            woke = self._wait_for_wakeup(timeout)
            if woke == "kick":
                break
        self.stats.halted_ns += time.monotonic_ns() - start
        return None
