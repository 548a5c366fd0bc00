"""What both MIPS hypervisor modes (VZ and trap-and-emulate) do the same way.

In both modes the guest runs on the simulated core until something makes the
core enter the root (a root exception: a root TLB miss, a coprocessor-unusable
trap, a guest exit, the host timer). The root's EPC then holds where the
guest stopped, Cause.BD says whether that was a branch delay slot, and
BadInstr/BadInstrP hold the instruction words involved. Starting the core
again (`Cpu.run`) is the root's `eret` to EPC. This module holds the handling
that only depends on that root state: finishing an instruction the
hypervisor emulated (including the branch it sat under), MMIO exits and
their completion, hypercalls and WAIT.

Mode-specific classes provide how an exception is put into the guest and
how the guest's interrupt state is read.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from kvmpy.arch.mips.decode import MemAccess, NotABranchError, branch_next_pc, decode_mem_access, hypcall_code
from kvmpy.arch.mips.hw.cpu import Cpu
from kvmpy.arch.mips.hw.defs import Cause, Cp0, Ctx, EntryLo, ExcCode, Status, Stop, Tlb, plain
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

# plain ints for the exit paths: an IntEnum member lookup costs ten times a class attribute
_Status, _Cause, _EntryLo = plain(Status), plain(Cause), plain(EntryLo)

CACHEABLE = 3 << 3  # EntryLo.C: cacheable noncoherent, write-back
UNCACHED = 2 << 3  # EntryLo.C: uncached

# Page sizes a root TLB pair may use, largest first: (PageMask, bytes per page)
PAGE_SIZES = [(((1 << s) - 1) & ~0x1FFF & Tlb.MAX_PAGEMASK, 1 << (s - 1)) for s in range(29, 12, -2)]

# kvmpy.kvm.backend.WaitForWakeup: sleep until woken or timed out; True if a kick asks run() to return
WaitForWakeup = Callable[[float | None], bool]


def reg_sel(name: Cp0) -> tuple[int, int]:
    """(register, select) of a CP0 register named in hw.defs.Cp0."""
    return name >> 3, name & 7


_EPC = reg_sel(Cp0.EPC)
_CAUSE = reg_sel(Cp0.CAUSE)
_STATUS = reg_sel(Cp0.STATUS)
_BADINSTR = reg_sel(Cp0.BADINSTR)
_BADINSTRP = reg_sel(Cp0.BADINSTRP)


def slot_tlb_pair(slot: MemorySlot, gpa: int, cache: int = CACHEABLE) -> tuple[int, int, int, int]:
    """The largest root TLB pair the slot allows around guest physical `gpa`.

    Returns (gpa of the pair's first byte, PageMask, EntryLo0, EntryLo1),
    with G set. Host addresses are congruent to guest addresses modulo
    512 MiB, so a large page works wherever the pair lies inside the slot;
    dirty-logged and read-only slots use 4 KiB pages so that each page's
    first write is caught. A half outside the slot is left invalid.
    """
    small = bool(slot.flags & (MemFlags.LOG_DIRTY_PAGES | MemFlags.READONLY))
    delta = slot.hpa - slot.gpa
    writable = not slot.flags & MemFlags.READONLY
    logging = bool(slot.flags & MemFlags.LOG_DIRTY_PAGES)
    for mask, page in PAGE_SIZES:
        pair = 2 * page
        base = gpa & ~(pair - 1)
        if page > PAGE_SIZE and (small or base < slot.gpa or base + pair > slot.gpa_end or delta % pair):
            continue
        los = []
        for half in (base, base + page):
            if not slot.contains(half):
                los.append(0)
                continue
            flags = _EntryLo.V | _EntryLo.G | cache
            if writable and (not logging or slot.is_dirty(half)):
                flags |= _EntryLo.D
            los.append((((half + delta) >> 12) << 6) | flags)
        return base & 0xFFFFE000, mask, los[0], los[1]
    raise AssertionError("a 4 KiB pair always fits")


@dataclass(slots=True)
class _PendingMmioRead:
    exit: MmioExit
    access: MemAccess
    resume_pc: int


@dataclass(slots=True)
class _PendingHypercall:
    exit: HypercallExit
    resume_pc: int


class RootEventHandler(ABC):
    """The mode-independent half of a MIPS vCPU (kvmpy.arch.mips.backend.MipsVcpu drives it).

    Per time slice the backend calls `enter(budget)` (run the core) and,
    unless the core was only kicked, `handle(stop)`, which returns an exit
    for the VMM or None to go on.
    """

    def __init__(
        self, cpu: Cpu, slots: SlotTable, vcpu_id: int, stats: VcpuStats, wait_for_wakeup: WaitForWakeup
    ) -> None:
        self.cpu = cpu
        self.slots = slots
        self.vcpu_id = vcpu_id
        self.stats = stats
        self._wait_for_wakeup = wait_for_wakeup
        self._pending: _PendingMmioRead | _PendingHypercall | None = None
        self._resume_after_debug = False

    # ---------------------------------------------------------------- mode hooks
    @abstractmethod
    def _inject_guest_exception(self, code: ExcCode) -> None:
        """Deliver a synchronous exception into the guest for the instruction at root EPC."""

    @abstractmethod
    def _guest_irq_state(self) -> tuple[int, int, float | None]:
        """(guest Status, guest Cause, seconds until the guest timer fires or None if it is masked)."""

    # ---------------------------------------------------------------- root state
    @property
    def root_epc(self) -> int:
        return self.cpu.cp0_read(Ctx.ROOT, *_EPC)

    @root_epc.setter
    def root_epc(self, value: int) -> None:
        self.cpu.cp0_write(Ctx.ROOT, *_EPC, value & 0xFFFFFFFF)

    def _in_root(self) -> bool:
        return bool(self.cpu.cp0_read(Ctx.ROOT, *_STATUS) & _Status.EXL)

    @property
    def pc(self) -> int:
        # While a root event is being handled, the guest's PC is the root EPC.
        return self.root_epc if self._in_root() else self.cpu.pc

    @pc.setter
    def pc(self, value: int) -> None:
        self._pending = None
        self._resume_after_debug = False
        if self._in_root():
            self.root_epc = value
        else:
            self.cpu.pc = value & 0xFFFFFFFF

    def _gpr_list(self) -> list[int]:
        return [self.cpu.get_gpr(i) for i in range(32)]

    def _in_delay_slot(self) -> bool:
        return bool(self.cpu.cp0_read(Ctx.ROOT, *_CAUSE) & _Cause.BD)

    def _trapped_insn(self) -> int:
        return self.cpu.cp0_read(Ctx.ROOT, *_BADINSTR)

    def _next_pc(self, cause: int | None = None) -> int:
        """The guest PC after the instruction that trapped (finishing a branch if in a delay slot).

        `cause` is the root Cause if the caller already read it.
        Raises NotABranchError if Cause.BD is set but BadInstrP is no branch.
        """
        epc = self.root_epc
        if cause is None:
            cause = self.cpu.cp0_read(Ctx.ROOT, *_CAUSE)
        if cause & _Cause.BD:
            branch = self.cpu.cp0_read(Ctx.ROOT, *_BADINSTRP)
            return branch_next_pc(branch, epc, self._gpr_list())
        return (epc + 4) & 0xFFFFFFFF

    def _skip(self, cause: int | None = None) -> None:
        """Resume the guest after the instruction that trapped (see _next_pc)."""
        self.root_epc = self._next_pc(cause)

    def _faulting_pc(self) -> int:
        """Address of the instruction that trapped (the delay slot, not its branch)."""
        epc = self.root_epc
        return (epc + 4) & 0xFFFFFFFF if self._in_delay_slot() else epc

    # ---------------------------------------------------------------- run
    def enter(self, budget: int) -> Stop:
        if self._pending is not None:
            raise RuntimeError("enter() with an uncompleted exit")
        if self._resume_after_debug:
            self._resume_after_debug = False
            self.cpu.pc = (self.cpu.pc + 4) & 0xFFFFFFFF
        return self._resume(budget)

    def _resume(self, budget: int) -> Stop:
        return self.cpu.run(budget)

    def _debug_stop(self) -> Exit:
        self._resume_after_debug = True
        return DebugExit(pc=self.cpu.pc)

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
        self.root_epc = pending.resume_pc

    # ---------------------------------------------------------------- MMIO
    def _mmio(self, gpa: int, is_fetch: bool) -> Exit | None:
        """Emulate the load/store at root EPC on guest physical `gpa`, where no RAM is."""
        epc = self.root_epc
        if is_fetch:
            # On the board, fetching from where no memory answers is a bus error.
            fault_pc = self._faulting_pc()
            self._inject_guest_exception(ExcCode.IBE)
            if self.root_epc == fault_pc:
                return InternalErrorExit(
                    f"guest exception vector {fault_pc:#010x} is not backed by memory", fault_pc
                )
            return None
        insn = self._trapped_insn()
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
            value = self.cpu.get_gpr(access.reg) & ((1 << (8 * access.length)) - 1)
            self.stats.traps["mmio_write"] += 1
            self.root_epc = resume
            return MmioExit(gpa, access.length, True, bytearray(value.to_bytes(access.length, "little")))
        self.stats.traps["mmio_read"] += 1
        exit_ = MmioExit(gpa, access.length, False, bytearray(access.length))
        self._pending = _PendingMmioRead(exit_, access, resume)
        return exit_

    # ---------------------------------------------------------------- hypercalls
    def _hypercall(self) -> Exit | None:
        """HYPCALL (code 0) with Linux's MIPS convention: number in v0, args in a0-a3, result in v0."""
        cpu = self.cpu
        insn = self._trapped_insn()
        resume = self._next_pc()
        self.stats.traps["hypercall"] += 1
        if hypcall_code(insn) != 0:
            self._inject_guest_exception(ExcCode.RI)
            return None
        nr = cpu.get_gpr(2)
        args = tuple(cpu.get_gpr(i) for i in (4, 5, 6, 7))
        if nr == KVM_HC_MIPS_GET_CLOCK_FREQ:
            cpu.set_gpr(2, int(cpu.count_hz))
            self.root_epc = resume
            return None
        if nr == KVM_HC_MIPS_EXIT_VM:
            self.root_epc = resume
            return ShutdownExit("guest hypercall EXIT_VM")
        exit_ = HypercallExit(nr, args, ret=-KVM_ENOSYS & 0xFFFFFFFF)
        self._pending = _PendingHypercall(exit_, resume)
        return exit_

    # ---------------------------------------------------------------- WAIT
    def _block_until_interrupt(self) -> Exit | None:
        """WAIT: sleep until a guest interrupt is pending (regardless of Status.IE, as silicon).

        With every interrupt masked nothing can ever wake the guest: that is a
        HaltExit for the VMM to decide about.
        """
        start = time.monotonic_ns()
        try:
            while True:
                status, cause, timer_s = self._guest_irq_state()
                if cause & status & 0xFF00:
                    return None
                if not status & 0xFF00:
                    return HaltExit(pc=self.pc)
                if self._wait_for_wakeup(timer_s):
                    return None
        finally:
            self.stats.halted_ns += time.monotonic_ns() - start
