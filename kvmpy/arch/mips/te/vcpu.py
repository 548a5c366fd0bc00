"""Trap and emulate: the guest kernel runs in host user mode (seeds 000, 001, 003).

The core runs the guest — its kernel and its user programs alike — in root
user mode (Status.KSU = user, CU0 clear), without the VZ module. Everything
privileged the guest does therefore traps into the hypervisor:

- CP0 instructions (mfc0/mtc0, tlbr/tlbwi/tlbwr/tlbp, eret, wait, di/ei,
  cache) raise Coprocessor Unusable; they are decoded from BadInstr and
  emulated against the virtual CP0 (`te.cp0`). `rdhwr` of a register the
  host does not grant raises Reserved Instruction and is emulated too.
- Host TLB misses are resolved from the guest's view of memory: unmapped
  kseg0/kseg1 (which the host maps for guest kernel mode with segmentation
  control), or the guest TLB (`te.tlb`). A miss the guest TLB cannot
  satisfy becomes the guest's own TLB exception, delivered to its vector;
  an address with no RAM behind it becomes an MMIO exit.
- Exceptions that belong to the guest (syscall, break, trap, overflow,
  address errors, reserved instructions) are delivered into it by setting
  its virtual EPC/Cause/Status/BadVAddr and resuming at its vector.
- The guest's Count/Compare timer is the host's Count plus an offset; the
  host timer (root Compare, IP7) is programmed to fire when the guest's
  would, and its interrupt injects the guest's.

Address spaces on the host while the guest runs (seed 000's three TLBs):
the guest TLB is only data here; the host TLB holds shadow entries built
from it, tagged with a host ASID per (guest ASID, guest kernel/user mode),
so switching guest address spaces or privilege needs no flush; kseg0/kseg1
entries are global, as large as the memory slot allows. Guest user mode
cannot reach them because, while the guest is in user mode, segmentation
control makes kseg0-kseg3 kernel-only: the access raises an address error
that the hypervisor passes on, exactly what the guest's hardware would do.

Fewer traps (seed 003): the virtual CP0 lives in the commpage, a host page
the guest kernel sees at virtual address 0xffff8000 (the top of kseg3).
After emulating an mfc0 (or a side-effect-free mtc0) once, the hypervisor
rewrites the instruction in guest memory into `lw`/`sw rt, offset($zero)`
with a negative offset, and a `cache` instruction
into a nop, so later executions do not trap (statistics `rewrite_*`).
"""

from __future__ import annotations

import random
import struct

from kvmpy.arch.mips.hw.cpu import Cpu
from kvmpy.arch.mips.hw.defs import Cp0, Ctx, ExcCode, Stop
from kvmpy.arch.mips.hypervisor import (
    CACHEABLE,
    UNCACHED,
    RootEventHandler,
    WaitForWakeup,
    reg_sel,
    slot_tlb_pair,
)
from kvmpy.arch.mips.te.cp0 import (
    CAUSE_BD,
    CAUSE_CE_SHIFT,
    CAUSE_DC,
    CAUSE_IP_HW_MASK,
    CAUSE_IV,
    CAUSE_SW_WRITABLE,
    CAUSE_TI,
    ENTRYHI_WRITABLE,
    GUEST_TLB_ENTRIES,
    REWRITABLE_READS,
    REWRITABLE_WRITES,
    ST_BEV,
    ST_CU0,
    ST_ERL,
    ST_EXL,
    ST_IE,
    STATUS_WRITABLE,
    TIMER_IP,
    R,
    VirtualCp0,
    guest_kernel_mode,
    reg_name,
)
from kvmpy.arch.mips.te.fastpath import FastTraps
from kvmpy.arch.mips.te.tlb import ELO_D, ELO_G, ELO_V, GuestTlb
from kvmpy.kvm.exits import Exit, InternalErrorExit
from kvmpy.kvm.memory import MemFlags, MemorySlot, SlotTable
from kvmpy.kvm.stats import VcpuStats

M32 = 0xFFFFFFFF
KSEG0 = 0x80000000
KSEG2 = 0xC0000000
# The commpage sits at the top of kseg3, the lowest address a load with base
# $zero reaches with a negative 16-bit offset. Linux leaves that range unused
# (its fixmap ends at 0xfffe0000), user mode cannot reach kseg3, and a kernel
# NULL-pointer access still faults as it should (Linux's own T&E put the page
# at address 0, where it hid the kernel's accesses to user page 0).
COMMPAGE_GVA = 0xFFFF8000
COMMPAGE_OFFSET_FIELD = COMMPAGE_GVA & 0xFFFF  # the 16-bit offset that reaches its first byte
NOP = 0x00000000

# Root CP0 registers the hypervisor programs
_R_STATUS = reg_sel(Cp0.STATUS)
_R_CAUSE = reg_sel(Cp0.CAUSE)
_R_BADVADDR = reg_sel(Cp0.BADVADDR)
_R_ENTRYHI = reg_sel(Cp0.ENTRYHI)
_R_COUNT = reg_sel(Cp0.COUNT)
_R_COMPARE = reg_sel(Cp0.COMPARE)
_R_HWRENA = reg_sel(Cp0.HWRENA)
_R_USERLOCAL = reg_sel(Cp0.USERLOCAL)
_R_SEGCTL = (reg_sel(Cp0.SEGCTL0), reg_sel(Cp0.SEGCTL1), reg_sel(Cp0.SEGCTL2))

# Host Status while the guest runs: user mode, interrupts on, only the host
# timer (IP7) and the hypervisor's own doorbell (software interrupt IP0,
# raised to stop the guest at the next point where an interrupt can be
# delivered) unmasked. CU0 clear: every CP0 instruction traps.
HOST_STATUS = 0x10 | 0x1 | (1 << 15) | (1 << 8)
HOST_DOORBELL = 1 << 8
# Segmentation control (SegCtl0, SegCtl1, SegCtl2): every segment mapped and
# user-accessible (AM=MUSK) in guest kernel mode; kseg0-kseg3 kernel-only
# (AM=MK) in guest user mode so the guest's user code gets address errors.
SEGCTL_GUEST_KERNEL = (0x00300030, 0x00300030, 0x00300030)
SEGCTL_GUEST_USER = (0x00100010, 0x00100010, 0x00300030)
# rdhwr registers the host may answer directly for guest user code:
# CPUNum, SYNCI_Step, CCRes and UserLocal (mirrored). CC (the cycle counter)
# is the guest's virtual Count and always traps.
HWRENA_PASSTHROUGH = 0x2000000B

_TLB_EXCEPTIONS = (ExcCode.TLBL, ExcCode.TLBS, ExcCode.MOD)
_EXC_CPU, _EXC_INT, _EXC_RI = int(ExcCode.CPU), int(ExcCode.INT), int(ExcCode.RI)
# Statistics keys per CP0 register, made once: traps are counted on the hot path.
_MFC0_KEY = tuple(f"emul_mfc0.{reg_name(i)}" for i in range(256))
_MTC0_KEY = tuple(f"emul_mtc0.{reg_name(i)}" for i in range(256))
# Status bits whose change needs the host reprogrammed (KSU, ERL, EXL)
_STATUS_MODE_BITS = 0x1E
_GUEST_OWNED = (ExcCode.SYS, ExcCode.BP, ExcCode.TR, ExcCode.OV, ExcCode.ADEL, ExcCode.ADES)


class _Refill:
    """The guest TLB has no entry: a TLB refill exception for the guest."""


class _Invalid:
    """The guest TLB entry is not valid: a TLB invalid exception for the guest."""


REFILL = _Refill()
INVALID = _Invalid()


class _Mapping:
    __slots__ = ("gpa", "writable", "is_global", "tlb_index", "kseg")

    def __init__(self, gpa: int, writable: bool, is_global: bool, tlb_index: int, kseg: bool) -> None:
        self.gpa = gpa
        self.writable = writable  # guest allows writes (EntryLo.D, or unmapped)
        self.is_global = is_global
        self.tlb_index = tlb_index  # guest TLB entry it came from, -1 for unmapped segments
        self.kseg = kseg  # unmapped kseg0/kseg1


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
        self.commpage_hpa = commpage_hpa
        self.tlb = GuestTlb(GUEST_TLB_ENTRIES)
        self.rewrite = rewrite
        self._random = random.Random(vcpu_id)
        self._irq_lines = 0  # IP2..IP7 from the VMM, bit 0 = IP2
        # The compiled fast path emulates the commonest traps (te/fastpath.pyx);
        # it keeps the Count offset, so that both see the same clock.
        self._fast = FastTraps(cpu, commpage)
        self._frozen: int | None = None
        self._host_asids: dict[tuple[bool, bool, int], int] = {}
        self._next_host_asid = 1  # host ASID 0 is never used for guests: invalid entries carry it
        self._host_key: tuple[bool, bool, int] | None = None
        self._host_kernel: bool | None = None
        self._clear_llbit = False
        self._setup()

    # ---------------------------------------------------------------- setup
    def _setup(self) -> None:
        cpu = self.cpu
        # The hypervisor sits "in the root" (EXL) until the first run, which
        # erets into the guest at the reset vector.
        cpu.cp0_set_raw(Ctx.ROOT, *_R_STATUS, HOST_STATUS | 0x2)
        self.root_epc = 0xBFC00000
        cpu.cp0_set_raw(Ctx.ROOT, *reg_sel(Cp0.GUESTCTL0), 0)
        self._disarm_host_timer()
        self._sync_host_mode()

    # ---------------------------------------------------------------- host mode
    def _sync_host_mode(self) -> None:
        """Make the host's ASID, segments and rdhwr grants follow the guest's mode and ASID."""
        v = self.cp0.regs
        status = v[R.STATUS]
        erl = bool(status & ST_ERL)
        kernel = guest_kernel_mode(status)
        key = (kernel, erl, v[R.ENTRYHI] & 0xFF)
        if key == self._host_key:
            return
        cpu = self.cpu
        if self._host_key is not None and self._host_key[1] != erl:
            # Under ERL the guest's useg is unmapped: shadows built then or before are stale.
            self.flush_root_tlb()
        if kernel != self._host_kernel:
            # Each SegCtl write flushes the core's micro-TLB: write only what differs.
            old = SEGCTL_GUEST_KERNEL if self._host_kernel else SEGCTL_GUEST_USER
            new = SEGCTL_GUEST_KERNEL if kernel else SEGCTL_GUEST_USER
            for rs, before, value in zip(_R_SEGCTL, old, new, strict=True):
                if value != before or self._host_kernel is None:
                    cpu.cp0_write(Ctx.ROOT, *rs, value)
            self._host_kernel = kernel
            self._fast.guest_kernel = kernel
        self._host_key = key
        cpu.cp0_write(Ctx.ROOT, *_R_ENTRYHI, self._host_asid(key))
        self._sync_hwrena()

    def _sync_hwrena(self) -> None:
        kernel = self._host_kernel
        grant = HWRENA_PASSTHROUGH if kernel else self.cp0.regs[R.HWRENA] & HWRENA_PASSTHROUGH
        self.cpu.cp0_write(Ctx.ROOT, *_R_HWRENA, grant)

    def _host_asid(self, key: tuple[bool, bool, int]) -> int:
        asid = self._host_asids.get(key)
        if asid is None:
            if self._next_host_asid > 0xFF:
                # Host ASIDs exhausted: start a new generation with an empty host TLB.
                self.flush_root_tlb()
                self._host_asids.clear()
                self._next_host_asid = 1
                self.stats.traps["host_asid_rollover"] += 1
            asid = self._next_host_asid
            self._next_host_asid += 1
            self._host_asids[key] = asid
        return asid

    def flush_root_tlb(self) -> None:
        """Forget every shadow and kseg mapping (slots changed, dirty log re-armed)."""
        self.cpu.tlb_invalidate_guestid(0)
        self.tlb.all_shadows()

    def _invalidate_shadows(self, shadows: set[int]) -> None:
        cpu = self.cpu
        for entryhi in shadows:
            index = cpu.tlb_probe(Ctx.ROOT, entryhi, 0)
            if index >= 0 and cpu.tlb_read(Ctx.ROOT, index)[0] == entryhi:
                cpu.tlb_write(Ctx.ROOT, index, KSEG0 + index * 0x2000, 0, 0, 0, 0)

    # ---------------------------------------------------------------- timer
    @property
    def _count_offset(self) -> int:
        """Guest Count = host Count + this (mod 2^32)."""
        return self._fast.count_offset

    @_count_offset.setter
    def _count_offset(self, value: int) -> None:
        self._fast.count_offset = value & M32

    @property
    def _frozen_count(self) -> int | None:
        """The guest's Count while its Cause.DC stops it, else None."""
        return self._frozen

    @_frozen_count.setter
    def _frozen_count(self, value: int | None) -> None:
        self._frozen = value
        self._fast.count_frozen = value is not None

    def _host_count(self) -> int:
        return self.cpu.cp0_read(Ctx.ROOT, *_R_COUNT)

    def _guest_count(self) -> int:
        if self._frozen_count is not None:
            return self._frozen_count
        return (self._host_count() + self._count_offset) & M32

    def _set_guest_count(self, value: int) -> None:
        if self._frozen_count is not None:
            self._frozen_count = value & M32
        else:
            self._count_offset = (value - self._host_count()) & M32
        self._arm_host_timer()

    def _disarm_host_timer(self) -> None:
        # One step behind Count: a full 2^32-tick lap away.
        self.cpu.cp0_write(Ctx.ROOT, *_R_COMPARE, (self._host_count() - 1) & M32)

    def _arm_host_timer(self) -> None:
        if self.cp0.regs[R.CAUSE] & CAUSE_TI or self._frozen_count is not None:
            self._disarm_host_timer()
        else:
            host_compare = (self.cp0.regs[R.COMPARE] - self._count_offset) & M32
            self.cpu.cp0_write(Ctx.ROOT, *_R_COMPARE, host_compare)

    def _poll_host_timer(self) -> None:
        """If the host timer fired, the guest's Count reached its Compare: raise the guest's timer."""
        if self.cpu.cp0_read(Ctx.ROOT, *_R_CAUSE) & CAUSE_TI:
            if self._frozen_count is None:
                self.cp0.regs[R.CAUSE] |= CAUSE_TI
                self._refresh_cause_ip()
                self.stats.traps["timer_interrupt"] += 1
            self._disarm_host_timer()

    # ---------------------------------------------------------------- interrupts
    def _refresh_cause_ip(self) -> None:
        v = self.cp0.regs
        ip = (self._irq_lines & 0x3F) << 10
        if v[R.CAUSE] & CAUSE_TI:
            ip |= TIMER_IP
        v[R.CAUSE] = (v[R.CAUSE] & ~CAUSE_IP_HW_MASK) | ip

    def set_irq_lines(self, lines: int) -> None:
        """Drive the guest's interrupt pins IP2..IP7 (bit 0 = IP2); they show in its Cause."""
        self._irq_lines = lines & 0x3F
        self._refresh_cause_ip()

    def _guest_interrupt_deliverable(self) -> bool:
        v = self.cp0.regs
        status = v[R.STATUS]
        return bool(status & ST_IE and not status & (ST_EXL | ST_ERL) and v[R.CAUSE] & status & 0xFF00)

    def _guest_irq_state(self) -> tuple[int, int, float | None]:
        self._poll_host_timer()
        v = self.cp0.regs
        status, cause = v[R.STATUS], v[R.CAUSE]
        timer_s = None
        if status & TIMER_IP and not cause & CAUSE_TI and self._frozen_count is None:
            timer_s = ((v[R.COMPARE] - self._guest_count()) & M32) / self.cpu.count_hz
        return status, cause, timer_s

    def _set_doorbell(self, on: bool) -> None:
        cause = self.cpu.cp0_read(Ctx.ROOT, *_R_CAUSE)
        want = (cause | HOST_DOORBELL) if on else (cause & ~HOST_DOORBELL)
        if want != cause:
            self.cpu.cp0_write(Ctx.ROOT, *_R_CAUSE, want)

    # ---------------------------------------------------------------- registers (ONE_REG)
    def read_cp0(self, reg: int, sel: int) -> int:
        return self._read_cp0(reg * 8 + sel)

    def write_cp0(self, reg: int, sel: int, value: int) -> None:
        index = reg * 8 + sel
        if index in (R.STATUS, R.CAUSE, R.COUNT, R.COMPARE, R.ENTRYHI, R.USERLOCAL, R.HWRENA):
            self._write_cp0(index, value)
        else:
            # The VMM may set what the guest cannot (BadVAddr, Config...), as KVM_SET_ONE_REG.
            self.cp0[index] = value

    # ---------------------------------------------------------------- run
    def enter(self, budget: int) -> Stop:
        if self._guest_interrupt_deliverable():
            if self._in_root():
                self._deliver(ExcCode.INT, epc=self.root_epc, bd=False)
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
            return self._coprocessor_unusable(cause)
        if code in _TLB_EXCEPTIONS:
            return self._host_tlb_fault(code)
        if code == _EXC_INT:
            return self._host_interrupt()
        if code == _EXC_RI:
            return self._reserved_instruction()
        if code in _GUEST_OWNED:
            badva = None
            if code in (ExcCode.ADEL, ExcCode.ADES):
                badva = self.cpu.cp0_read(Ctx.ROOT, *_R_BADVADDR)
            self._deliver(ExcCode(code), badva=badva)
            return None
        return InternalErrorExit(
            f"unexpected host exception ExcCode={code} at guest pc {self.pc:#010x}", self.pc
        )

    def _host_interrupt(self) -> Exit | None:
        self.stats.traps["host_interrupt"] += 1
        self._set_doorbell(False)
        self._poll_host_timer()
        if self._guest_interrupt_deliverable():
            self._deliver(ExcCode.INT, epc=self.root_epc, bd=False)
        return None

    # ---------------------------------------------------------------- exception delivery
    def _inject_guest_exception(self, code: ExcCode) -> None:
        self._deliver(code)

    def _deliver(
        self,
        code: ExcCode,
        *,
        badva: int | None = None,
        refill: bool = False,
        ce: int = 0,
        epc: int | None = None,
        bd: bool | None = None,
    ) -> None:
        """Enter the guest's exception vector as its 24Kc would for `code`.

        By default the exception is for the instruction at the root EPC
        (a delay slot if the root's Cause.BD is set).
        """
        v = self.cp0.regs
        if epc is None:
            epc = self.root_epc
        if bd is None:
            bd = self._in_delay_slot()
        status = v[R.STATUS]
        cause = v[R.CAUSE]
        if not status & ST_EXL:
            v[R.EPC] = epc
            cause = (cause | CAUSE_BD) if bd else (cause & ~CAUSE_BD)
            offset = 0x000 if refill else 0x180
        else:
            offset = 0x180
        cause = (cause & ~0x7C) | (int(code) << 2)
        if code == ExcCode.CPU:
            cause = (cause & ~(3 << CAUSE_CE_SHIFT)) | (ce << CAUSE_CE_SHIFT)
        if code == ExcCode.INT and cause & CAUSE_IV:
            offset = 0x200
        v[R.CAUSE] = cause
        if badva is not None:
            v[R.BADVADDR] = badva
            if code in _TLB_EXCEPTIONS:
                v[R.CONTEXT] = (v[R.CONTEXT] & 0xFF800000) | ((badva >> 9) & 0x007FFFF0)
                v[R.ENTRYHI] = (badva & 0xFFFFE000) | (v[R.ENTRYHI] & 0xFF)
        v[R.STATUS] = status | ST_EXL
        if status & ST_BEV:
            vector = 0xBFC00200 + offset
        else:
            vector = (v[R.EBASE] & 0xFFFFF000) + offset
        self.root_epc = vector
        self._sync_host_mode()
        self.stats.traps[f"deliver_{code.name.lower()}{'_refill' if refill else ''}"] += 1

    # ---------------------------------------------------------------- memory: the guest's view
    def _translate(self, gva: int) -> _Mapping | _Refill | _Invalid:
        """Where guest virtual `gva` goes in the guest's current mode, as its MMU would decide."""
        v = self.cp0.regs
        status = v[R.STATUS]
        kernel = guest_kernel_mode(status)
        if KSEG0 <= gva < KSEG2 and kernel:
            return _Mapping(gva & 0x1FFFFFFF, True, True, -1, True)
        if gva < KSEG0 and status & ST_ERL:
            return _Mapping(gva, True, False, -1, False)  # useg is unmapped under ERL
        t = self.tlb.lookup(gva, v[R.ENTRYHI] & 0xFF)
        if t is None:
            return REFILL
        if not t.valid:
            return INVALID
        return _Mapping(t.gpa, t.dirty, t.is_global and gva >= KSEG0, t.index, False)

    def _shadow_lo(self, m: _Mapping, gva: int) -> int:
        """Host EntryLo for one 4 KiB page of a guest mapping (0 if there is no RAM behind it)."""
        slot = self.slots.lookup(m.gpa)
        if slot is None:
            return 0
        flags = ELO_V | (UNCACHED if 0xA0000000 <= gva < KSEG2 else CACHEABLE)
        if m.is_global:
            flags |= ELO_G
        if m.writable and not slot.flags & MemFlags.READONLY and (
            not slot.flags & MemFlags.LOG_DIRTY_PAGES or slot.is_dirty(m.gpa)
        ):
            flags |= ELO_D
        hpa = m.gpa - slot.gpa + slot.hpa
        return ((hpa >> 12) << 6) | flags

    def _host_tlb_write(self, entryhi: int, pagemask: int, lo0: int, lo1: int) -> None:
        cpu = self.cpu
        index = cpu.tlb_probe(Ctx.ROOT, entryhi, 0)
        if index >= 0:
            cpu.tlb_write(Ctx.ROOT, index, entryhi, pagemask, lo0, lo1, 0)
        else:
            cpu.tlb_write_random(Ctx.ROOT, entryhi, pagemask, lo0, lo1, 0)

    def _install_shadow(self, gva: int, m: _Mapping, slot: MemorySlot | None) -> None:
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
            if half == COMMPAGE_GVA and self._host_kernel:
                los.append(((self.commpage_hpa >> 12) << 6) | ELO_V | ELO_D | CACHEABLE)
                is_global = False
                continue
            hm = m if (half ^ gva) < 0x1000 else self._translate(half)
            if isinstance(hm, _Mapping):
                los.append(self._shadow_lo(hm, half))
                if hm.tlb_index >= 0:
                    sources.add(hm.tlb_index)
                is_global = is_global and hm.is_global
            else:
                los.append(0)
        # The hardware takes G from both halves: an invalid half must carry it too.
        los = [lo | ELO_G for lo in los] if is_global else [lo & ~ELO_G for lo in los]
        entryhi = base if is_global else base | host_asid
        for index in sources:
            self.tlb.entries[index].shadows.add(entryhi)
        self._host_tlb_write(entryhi, 0, los[0], los[1])
        self.stats.traps["shadow_fill"] += 1

    def _host_tlb_fault(self, code: int) -> Exit | None:
        gva = self.cpu.cp0_read(Ctx.ROOT, *_R_BADVADDR)
        is_write = code != ExcCode.TLBL
        if COMMPAGE_GVA <= gva < COMMPAGE_GVA + 0x1000 and self._host_kernel:
            # The commpage: always there for the guest kernel.
            self._install_shadow(gva, _Mapping(0, True, False, -1, False), None)  # gpa unused
            return None
        m = self._translate(gva)
        if not isinstance(m, _Mapping):
            exc = ExcCode.TLBS if is_write else ExcCode.TLBL
            refill = m is REFILL and not self.cp0.regs[R.STATUS] & ST_EXL
            self._deliver(exc, badva=gva, refill=refill)
            return None
        if is_write and not m.writable:
            self._deliver(ExcCode.MOD, badva=gva)
            return None
        slot = self.slots.lookup(m.gpa)
        if slot is None or (is_write and slot.flags & MemFlags.READONLY):
            is_fetch = code == ExcCode.TLBL and (gva >> 12) == (self._faulting_pc() >> 12)
            return self._mmio(m.gpa, is_fetch)
        if is_write and slot.flags & MemFlags.LOG_DIRTY_PAGES:
            slot.mark_dirty(m.gpa)
            self.stats.traps["dirty_log_fault"] += 1
        self._install_shadow(gva, m, slot)
        return None

    # ---------------------------------------------------------------- privileged instructions
    def _coprocessor_unusable(self, cause: int) -> Exit | None:
        ce = (cause >> CAUSE_CE_SHIFT) & 3
        if ce != 0 or not self._cp0_usable():
            # An FPU/COP2 instruction, or CP0 in guest user mode: the guest's own business.
            self._deliver(ExcCode.CPU, ce=ce)
            return None
        cpu = self.cpu
        insn = cpu.cp0_read(0, 8, 1)  # BadInstr
        op = insn >> 26
        traps = self.stats.traps
        if op == 0x10:
            rs = (insn >> 21) & 31
            if rs == 11 and (insn & 0xFFDF) == 0x6000:  # di / ei
                regs = self.cp0.regs
                status = regs[R.STATUS]
                cpu.set_gpr((insn >> 16) & 31, status)
                if insn & 0x20:
                    regs[R.STATUS] = status | ST_IE
                    traps["emul_ei"] += 1
                else:
                    regs[R.STATUS] = status & ~ST_IE
                    traps["emul_di"] += 1
                self._skip(cause)
                return None
            rt = (insn >> 16) & 31
            index = ((insn >> 11) & 31) * 8 + (insn & 7)
            if rs == 4 and not insn & 0x7F8:  # mtc0
                traps["emul_mtc0"] += 1
                traps[_MTC0_KEY[index]] += 1
                self._write_cp0(index, cpu.get_gpr(rt))
                if index in REWRITABLE_WRITES:
                    # sw rt, commpage+index*4($zero)
                    self._rewrite(0xAC000000 | (rt << 16) | (COMMPAGE_OFFSET_FIELD + index * 4), "mtc0")
                self._skip(cause)
                return None
            if rs == 0 and not insn & 0x7F8:  # mfc0
                traps["emul_mfc0"] += 1
                traps[_MFC0_KEY[index]] += 1
                cpu.set_gpr(rt, self._read_cp0(index))
                if index in REWRITABLE_READS:
                    # lw rt, commpage+index*4($zero)
                    self._rewrite(0x8C000000 | (rt << 16) | (COMMPAGE_OFFSET_FIELD + index * 4), "mfc0")
                self._skip(cause)
                return None
            if rs >= 16:
                fn = insn & 0x3F
                if fn == 0x18:
                    return self._eret()
                if fn in (0x01, 0x02, 0x06, 0x08):
                    self._tlb_op(fn)
                    self._skip(cause)
                    return None
                if fn == 0x20:  # wait
                    traps["emul_wait"] += 1
                    self._skip()
                    return self._block_until_interrupt()
                if fn == 0x28:
                    return self._hypercall()
        elif op == 0x2F:  # cache: the simulated caches are coherent, nothing to do
            traps["emul_cache"] += 1
            self._rewrite(NOP, "cache")
            self._skip(cause)
            return None
        else:
            return InternalErrorExit(f"coprocessor unusable on {insn:#010x}, not a CP0 instruction", self.pc)
        # Anything else (deret, rdpgpr, guest-TLB instructions of a VZ core...)
        # does not exist on a 24Kc.
        traps["deliver_ri_cp0"] += 1
        self._deliver(ExcCode.RI)
        return None

    def _cp0_usable(self) -> bool:
        """Guest kernel mode, or Status.CU0 granting user mode the CP0 (as the architecture allows)."""
        return bool(self._host_kernel or self.cp0.regs[R.STATUS] & ST_CU0)

    def _eret(self) -> Exit | None:
        self.stats.traps["emul_eret"] += 1
        v = self.cp0.regs
        status = v[R.STATUS]
        self._clear_llbit = True
        if status & ST_ERL:
            target = v[R.ERROREPC]
            v[R.STATUS] = status & ~ST_ERL
        else:
            target = v[R.EPC]
            v[R.STATUS] = status & ~ST_EXL
        self.root_epc = target
        self._sync_host_mode()
        return None

    def _tlb_op(self, fn: int) -> None:
        v = self.cp0.regs
        tlb = self.tlb
        if fn == 0x08:  # tlbp
            self.stats.traps["emul_tlbp"] += 1
            index = tlb.probe(v[R.ENTRYHI])
            v[R.INDEX] = 0x80000000 if index < 0 else index
            return
        if fn == 0x01:  # tlbr
            self.stats.traps["emul_tlbr"] += 1
            e = tlb.entries[v[R.INDEX] % GUEST_TLB_ENTRIES]
            g = ELO_G if e.is_global else 0
            v[R.ENTRYHI] = e.entryhi
            v[R.PAGEMASK] = e.pagemask
            v[R.ENTRYLO0] = (e.entrylo0 & ~ELO_G) | g
            v[R.ENTRYLO1] = (e.entrylo1 & ~ELO_G) | g
            self._sync_host_mode()  # tlbr loads EntryHi, ASID included
            return
        if fn == 0x02:  # tlbwi
            self.stats.traps["emul_tlbwi"] += 1
            index = v[R.INDEX] % GUEST_TLB_ENTRIES
        else:  # tlbwr
            self.stats.traps["emul_tlbwr"] += 1
            index = self._random_index()
        stale = tlb.write(
            index,
            v[R.ENTRYHI] & ENTRYHI_WRITABLE,
            v[R.PAGEMASK] & 0x1FFFE000,
            v[R.ENTRYLO0] & 0x03FFFFFF,
            v[R.ENTRYLO1] & 0x03FFFFFF,
        )
        self._invalidate_shadows(stale)

    def _random_index(self) -> int:
        wired = self.cp0.regs[R.WIRED] % GUEST_TLB_ENTRIES
        return self._random.randrange(wired, GUEST_TLB_ENTRIES)

    def _reserved_instruction(self) -> Exit | None:
        insn = self._trapped_insn()
        if insn >> 26 == 0x1F and insn & 0x3F == 59 and not insn & 0x7C0:  # rdhwr rt, rd
            rt = (insn >> 16) & 31
            rd = (insn >> 11) & 31
            granted = self._cp0_usable() or (self.cp0.regs[R.HWRENA] >> rd) & 1
            value = self._hwr_value(rd) if granted else None
            if value is not None:
                self.stats.traps[f"emul_rdhwr.{rd}"] += 1
                self.cpu.set_gpr(rt, value)
                self._skip()
                return None
        self._deliver(ExcCode.RI)
        return None

    def _hwr_value(self, rd: int) -> int | None:
        v = self.cp0.regs
        if rd == 0:
            return v[R.EBASE] & 0x3FF
        if rd == 1:
            return 32
        if rd == 2:
            return self._guest_count()
        if rd == 3:
            return 2
        if rd == 29:
            return v[R.USERLOCAL]
        return None

    # ---------------------------------------------------------------- CP0 registers
    def _read_cp0(self, index: int) -> int:
        if index == R.COUNT:
            return self._guest_count()
        if index == R.RANDOM:
            return self._random_index()
        if index == R.CAUSE:
            self._poll_host_timer()
        return self.cp0.regs[index] if 0 <= index < 256 else 0

    def _write_cp0(self, index: int, value: int) -> None:
        v = self.cp0.regs
        value &= M32
        if index == R.STATUS:
            old = v[R.STATUS]
            new = (old & ~STATUS_WRITABLE) | (value & STATUS_WRITABLE)
            v[R.STATUS] = new
            if (old ^ new) & _STATUS_MODE_BITS:
                self._sync_host_mode()
        elif index == R.CAUSE:
            old = v[R.CAUSE]
            if value & CAUSE_DC and not old & CAUSE_DC:
                self._frozen_count = self._guest_count()
            v[R.CAUSE] = (old & ~CAUSE_SW_WRITABLE) | (value & CAUSE_SW_WRITABLE)
            if old & CAUSE_DC and not value & CAUSE_DC and self._frozen_count is not None:
                frozen, self._frozen_count = self._frozen_count, None
                self._set_guest_count(frozen)
            self._arm_host_timer()
        elif index == R.COUNT:
            self._set_guest_count(value)
        elif index == R.COMPARE:
            v[R.COMPARE] = value
            v[R.CAUSE] &= ~CAUSE_TI
            self._refresh_cause_ip()
            self._arm_host_timer()
        elif index == R.ENTRYHI:
            v[R.ENTRYHI] = value & ENTRYHI_WRITABLE
            self._sync_host_mode()
        elif index == R.USERLOCAL:
            v[R.USERLOCAL] = value
            self.cpu.cp0_write(Ctx.ROOT, *_R_USERLOCAL, value)
        elif index == R.HWRENA:
            self.cp0.store(index, value)
            self._sync_hwrena()
        else:
            self.cp0.store(index, value)

    # ---------------------------------------------------------------- dynamic translation
    def _rewrite(self, new_insn: int, what: str) -> None:
        """Replace the trapping instruction in guest memory by `new_insn` (seed 003)."""
        if not self.rewrite or not self._host_kernel:
            # Only guest kernel mode sees the commpage (user code with CU0 set keeps trapping).
            return
        pc = self._faulting_pc()
        m = self._translate(pc)
        if not isinstance(m, _Mapping):
            return
        slot = self.slots.lookup(m.gpa)
        if slot is None or slot.flags & MemFlags.READONLY:
            return
        offset = m.gpa - slot.gpa
        slot.buffer[offset : offset + 4] = struct.pack("<I", new_insn)
        if slot.flags & MemFlags.LOG_DIRTY_PAGES:
            slot.mark_dirty(m.gpa)
        self.stats.traps[f"rewrite_{what}"] += 1
