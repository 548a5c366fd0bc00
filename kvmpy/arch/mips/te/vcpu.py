"""Trap and emulate: the guest kernel runs in host user mode (seeds 000, 001, 003).

The core runs the guest — its kernel and its user programs alike — in root
user mode (Status.KSU = user, CU0 clear), without the VZ module. Everything
privileged the guest does therefore traps into the hypervisor. The parts,
split the way Linux splits its MIPS KVM:

- `te.emulate`: privileged instructions (CP0 instructions, `rdhwr`) emulated
  against the virtual CP0 (`te.cp0`), and exceptions that belong to the
  guest (syscall, break, trap, overflow, address errors, reserved
  instructions, its TLB exceptions) delivered into it by setting its
  virtual EPC/Cause/Status/BadVAddr and resuming at its vector;
- `te.mmu`: host TLB misses resolved from the guest's view of memory
  (unmapped kseg0/kseg1, the guest TLB `te.tlb`, the commpage) into shadow
  entries, under a host ASID per guest address space and mode;
- `te.dyntrans`: trapping instructions rewritten into commpage loads and
  stores so they stop trapping (seed 003);
- `te.timer`: the guest's Count/Compare on the host's Count, the host timer
  (root Compare, IP7) programmed to fire when the guest's would;
- `te.fastpath`: the compiled shortcut for the commonest traps.

This module is the vCPU that ties them together: it runs the core, sorts
what stopped it, and keeps the guest's interrupt lines.
"""

from __future__ import annotations

import random

from kvmpy.arch.mips.hw.cpu import Cpu
from kvmpy.arch.mips.hw.defs import ExcCode, Stop
from kvmpy.arch.mips.hypervisor import RootEventHandler, WaitForWakeup, reg_sel
from kvmpy.arch.mips.te import emulate
from kvmpy.arch.mips.te.cp0 import (
    GUEST_TLB_ENTRIES,
    STATUS_WRITABLE,
    TIMER_IP,
    Cause,
    Cp0,
    Ctx,
    Status,
    VirtualCp0,
)
from kvmpy.arch.mips.te.fastpath import FastTraps
from kvmpy.arch.mips.te.mmu import NoRam, TeMmu
from kvmpy.arch.mips.te.timer import GuestTimer
from kvmpy.arch.mips.te.tlb import GuestTlb
from kvmpy.kvm.exits import Exit, InternalErrorExit
from kvmpy.kvm.memory import SlotTable
from kvmpy.kvm.stats import VcpuStats

_R_STATUS = reg_sel(Cp0.STATUS)
_R_CAUSE = reg_sel(Cp0.CAUSE)
_R_BADVADDR = reg_sel(Cp0.BADVADDR)

# Host Status while the guest runs: user mode, interrupts on, only the host
# timer (IP7) and the hypervisor's own doorbell (software interrupt IP0,
# raised to stop the guest at the next point where an interrupt can be
# delivered) unmasked. CU0 clear: every CP0 instruction traps.
HOST_STATUS = Status.UM | Status.IE | (1 << 15) | (1 << 8)
HOST_DOORBELL = 1 << 8

_TLB_EXCEPTIONS = (ExcCode.TLBL, ExcCode.TLBS, ExcCode.MOD)
_EXC_CPU, _EXC_INT, _EXC_RI = int(ExcCode.CPU), int(ExcCode.INT), int(ExcCode.RI)
_GUEST_OWNED = (ExcCode.SYS, ExcCode.BP, ExcCode.TR, ExcCode.OV, ExcCode.ADEL, ExcCode.ADES)
# CP0 registers whose ONE_REG write has the side effects of the guest's own mtc0
_WRITE_AS_MTC0 = (Cp0.STATUS, Cp0.CAUSE, Cp0.COUNT, Cp0.COMPARE, Cp0.ENTRYHI, Cp0.USERLOCAL, Cp0.HWRENA)


class TeVcpu(RootEventHandler):
    """The trap-and-emulate half of a vCPU (see kvm.api.ArchVcpu)."""

    def __init__(
        self,
        cpu: Cpu,
        slots: SlotTable,
        vcpu_id: int,
        stats: VcpuStats,
        wait_for_wakeup: WaitForWakeup,
        commpage: bytearray,
        commpage_hpa: int,
        rewrite: bool = True,
    ) -> None:
        super().__init__(cpu, slots, vcpu_id, stats, wait_for_wakeup)
        self.cp0 = VirtualCp0(commpage, vcpu_id)
        self.tlb = GuestTlb(GUEST_TLB_ENTRIES)
        self.rewrite = rewrite  # dynamic translation (te.dyntrans) on
        self._random = random.Random(vcpu_id)
        self._irq_lines = 0  # IP2..IP7 from the VMM, bit 0 = IP2
        # The compiled fast path emulates the commonest traps (te/fastpath.pyx);
        # it keeps the Count offset, so that both see the same clock.
        self._fast = FastTraps(cpu, commpage, STATUS_WRITABLE)
        self.timer = GuestTimer(cpu, self.cp0.regs, self._fast)
        self.mmu = TeMmu(cpu, slots, stats, self.cp0.regs, self._fast, commpage_hpa, self.tlb)
        self._clear_llbit = False
        # The hypervisor sits "in the root" (EXL) until the first run, which
        # erets into the guest at the reset vector.
        cpu.cp0_set_raw(Ctx.ROOT, *_R_STATUS, HOST_STATUS | Status.EXL)
        self.root_epc = 0xBFC00000
        cpu.cp0_set_raw(Ctx.ROOT, *reg_sel(Cp0.GUESTCTL0), 0)
        self.timer.disarm()
        self.mmu.sync_host_mode()

    def flush_root_tlb(self) -> None:
        """Forget every shadow and kseg mapping (slots changed, dirty log re-armed)."""
        self.mmu.flush()

    # ---------------------------------------------------------------- interrupts
    def _poll_host_timer(self) -> None:
        """If the host timer fired, the guest's Count reached its Compare: raise the guest's timer."""
        if self.timer.poll():
            self._refresh_cause_ip()
            self.stats.traps["timer_interrupt"] += 1

    def _refresh_cause_ip(self) -> None:
        v = self.cp0.regs
        ip = (self._irq_lines & 0x3F) << 10
        if v[Cp0.CAUSE] & Cause.TI:
            ip |= TIMER_IP
        v[Cp0.CAUSE] = (v[Cp0.CAUSE] & ~Cause.IP_HW_MASK) | ip

    def set_irq_lines(self, lines: int) -> None:
        """Drive the guest's interrupt pins IP2..IP7 (bit 0 = IP2); they show in its Cause."""
        self._irq_lines = lines & 0x3F
        self._refresh_cause_ip()

    def _guest_interrupt_deliverable(self) -> bool:
        v = self.cp0.regs
        status = v[Cp0.STATUS]
        return bool(
            status & Status.IE
            and not status & (Status.EXL | Status.ERL)
            and v[Cp0.CAUSE] & status & Cause.IP_MASK
        )

    def _guest_irq_state(self) -> tuple[int, int, float | None]:
        self._poll_host_timer()
        v = self.cp0.regs
        status, cause = v[Cp0.STATUS], v[Cp0.CAUSE]
        timer_s = None
        if status & TIMER_IP and not cause & Cause.TI and self.timer.frozen is None:
            timer_s = self.timer.seconds_to_interrupt()
        return status, cause, timer_s

    def _set_doorbell(self, on: bool) -> None:
        cause = self.cpu.cp0_read(Ctx.ROOT, *_R_CAUSE)
        want = (cause | HOST_DOORBELL) if on else (cause & ~HOST_DOORBELL)
        if want != cause:
            self.cpu.cp0_write(Ctx.ROOT, *_R_CAUSE, want)

    # ---------------------------------------------------------------- registers (ONE_REG)
    def read_cp0(self, reg: int, sel: int) -> int:
        return emulate.read_cp0(self, reg * 8 + sel)

    def write_cp0(self, reg: int, sel: int, value: int) -> None:
        index = reg * 8 + sel
        if index in _WRITE_AS_MTC0:
            emulate.write_cp0(self, index, value)
        else:
            # The VMM may set what the guest cannot (BadVAddr, Config...), as KVM_SET_ONE_REG.
            self.cp0[index] = value

    # ---------------------------------------------------------------- run
    def enter(self, budget: int) -> Stop:
        if self._guest_interrupt_deliverable():
            if self._in_root():
                emulate.deliver(self, ExcCode.INT, epc=self.root_epc, bd=False)
            else:
                # Stopped between two guest instructions, maybe in a delay
                # slot: let the core stop again where an interrupt may be taken.
                self._set_doorbell(True)
        return super().enter(budget)

    def _resume(self, budget: int) -> Stop:
        # Return to the guest with ERETNC, keeping its LLbit, unless the
        # guest's own eret was emulated (which clears it): an emulated
        # instruction between the guest's ll and sc (Linux's TLB handlers
        # have a tlbp there) must not make the sc fail, or the guest retries
        # forever.
        clear, self._clear_llbit = self._clear_llbit, False
        fast = self._fast
        stop = fast.run(budget, not clear)
        if fast.n_di or fast.n_ei or fast.n_mtc0_status or fast.n_mfc0_count:
            traps = self.stats.traps
            traps["emul_di"] += fast.n_di
            traps["emul_ei"] += fast.n_ei
            traps["emul_mtc0"] += fast.n_mtc0_status
            traps["emul_mtc0.STATUS"] += fast.n_mtc0_status
            traps["emul_mfc0"] += fast.n_mfc0_count
            traps["emul_mfc0.COUNT"] += fast.n_mfc0_count
            traps["fast_path"] += fast.n_di + fast.n_ei + fast.n_mtc0_status + fast.n_mfc0_count
            fast.n_di = fast.n_ei = fast.n_mtc0_status = fast.n_mfc0_count = 0
        return stop

    def handle(self, stop: Stop) -> Exit | None:
        """React to the core entering the root. None means: resume the guest."""
        if stop != Stop.ROOT_EXCEPTION:
            if stop == Stop.BUDGET or stop == Stop.KICK:
                return None
            if stop == Stop.DEBUG:
                return self._debug_stop()
            return InternalErrorExit(f"unexpected stop {stop!r} in trap-and-emulate mode", self.pc)
        cause = self.cpu.cp0_read(0, 13, 0)
        code = (cause >> 2) & 0x1F
        if code == _EXC_CPU:
            return emulate.coprocessor_unusable(self, cause)
        if code in _TLB_EXCEPTIONS:
            return self._host_tlb_fault(code)
        if code == _EXC_INT:
            return self._host_interrupt()
        if code == _EXC_RI:
            return emulate.reserved_instruction(self)
        if code in _GUEST_OWNED:
            badva = None
            if code in (ExcCode.ADEL, ExcCode.ADES):
                badva = self.cpu.cp0_read(Ctx.ROOT, *_R_BADVADDR)
            emulate.deliver(self, ExcCode(code), badva=badva)
            return None
        return InternalErrorExit(
            f"unexpected host exception ExcCode={code} at guest pc {self.pc:#010x}", self.pc
        )

    def _host_interrupt(self) -> Exit | None:
        self.stats.traps["host_interrupt"] += 1
        self._set_doorbell(False)
        self._poll_host_timer()
        if self._guest_interrupt_deliverable():
            emulate.deliver(self, ExcCode.INT, epc=self.root_epc, bd=False)
        return None

    def _host_tlb_fault(self, code: int) -> Exit | None:
        gva = self.cpu.cp0_read(Ctx.ROOT, *_R_BADVADDR)
        outcome = self.mmu.fill(gva, code != ExcCode.TLBL)
        if outcome is None:
            return None
        if isinstance(outcome, NoRam):
            is_fetch = code == ExcCode.TLBL and (gva >> 12) == (self._faulting_pc() >> 12)
            return self._mmio(outcome.gpa, is_fetch)
        emulate.deliver(self, outcome.code, badva=gva, refill=outcome.refill)
        return None

    def _inject_guest_exception(self, code: ExcCode) -> None:
        emulate.deliver(self, code)
