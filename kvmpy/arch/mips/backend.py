"""The MIPS backend of the KVM API (Linux: arch/mips/kvm's kvm_arch_* hooks).

This is where `kvmpy.kvm`'s generic objects meet the MIPS hypervisor: the
simulated host (a P5600-class core per vCPU over shared host physical
memory), the VM types VZ and TE, GuestIDs, the TE commpage, the guest's
interrupt pins IP2..IP7 and the registers (GPRs, HI/LO, PC, CP0) by ONE_REG
id. The run loop itself stays generic; `MipsVcpu.run` enters the core once
and lets the mode's handler (`vz.vcpu.VzVcpu`, `te.vcpu.TeVcpu`) deal with
why it came back.

Importing this module needs nothing compiled: the core is loaded when the
host is created, and a host without it reports the MIPS capabilities as 0
and refuses to create VMs with a message saying how to build it.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from kvmpy.arch.mips.uapi import (
    CP0_BY_ID,
    KVM_REG_MIPS_COUNT_CTL,
    KVM_REG_MIPS_COUNT_HZ,
    KVM_REG_MIPS_COUNT_RESUME,
    KVM_REG_MIPS_HI,
    KVM_REG_MIPS_LO,
    KVM_REG_MIPS_PC,
    Cap,
    Regs,
    VmType,
    gp_reg,
    reg_size_bytes,
)
from kvmpy.arch.simhost import SimulatedHostMemory
from kvmpy.kvm.api import Cap as GenericCap
from kvmpy.kvm.backend import VcpuServices
from kvmpy.kvm.debug import DebugKind, GuestDebug, Translation, WatchKind
from kvmpy.kvm.errors import (
    CreateVcpuError,
    CreateVmError,
    EnableCapError,
    GuestDebugError,
    InterruptError,
    MemoryRegionError,
    RegisterAccessError,
)
from kvmpy.kvm.exits import DebugExit, Exit
from kvmpy.kvm.memory import MemorySlot, SlotTable
from kvmpy.kvm.settings import JitSettings

if TYPE_CHECKING:
    from kvmpy.arch.mips.hw.cpu import Cpu
    from kvmpy.arch.mips.hypervisor import RootEventHandler

MAX_VCPUS = 8
# GuestCtl1.ID is 8 bits and GuestID 0 is the root's own.
MAX_GUEST_ID = 255
GPA_SPACE_BYTES = 1 << 32  # MIPS32: 32-bit guest physical addresses
FIRST_IRQ_PIN, LAST_IRQ_PIN = 2, 7  # the core's hardware interrupt inputs IP2..IP7

# The core's debug unit: instruction comparators serve hardware and
# software breakpoints alike (software ones are only not counted as
# hardware), data comparators serve watchpoints.
IBREAK_COMPARATORS = 256
HW_BREAKPOINTS = 4
HW_WATCHPOINTS = 4
KSEG0, KSEG2 = 0x8000_0000, 0xC000_0000



class MipsBackend:
    """The `kvmpy.kvm.backend.Backend` for arch "mips"."""

    arch = "mips"

    def create_host(self, jit: JitSettings) -> MipsHost:
        return MipsHost(jit)


BACKEND = MipsBackend()


class MipsHost(SimulatedHostMemory):
    """One simulated MIPS host: host physical memory, its HPA allocator and the GuestID pool."""

    max_vcpus = MAX_VCPUS

    def __init__(self, jit: JitSettings) -> None:
        super().__init__("kvmpy.arch.mips.hw.cpu", "MIPS")
        self.jit = jit
        self._lock = threading.Lock()
        self._next_guest_id = 1

    def check_extension(self, cap: int) -> int:
        if self.core_missing is not None:
            return 0
        return {
            GenericCap.NR_VCPUS: MAX_VCPUS,
            GenericCap.MAX_VCPUS: MAX_VCPUS,
            GenericCap.ONE_REG: 1,
            GenericCap.READONLY_MEM: 1,
            GenericCap.SET_GUEST_DEBUG: 1,
            GenericCap.GUEST_DEBUG_HW_BPS: HW_BREAKPOINTS,
            GenericCap.GUEST_DEBUG_HW_WPS: HW_WATCHPOINTS,
            Cap.MIPS_VZ: 1,
            Cap.MIPS_TE: 1,
            Cap.MIPS_TE_DYNTRANS: 1,
        }.get(cap, 0)

    def create_vm(self, vm_type: int, slots: SlotTable) -> MipsVm:
        if self.core_missing is not None:
            raise CreateVmError(f"cannot create a MIPS VM: {self.core_missing}")
        if vm_type == VmType.AUTO:
            vm_type = VmType.VZ
        if vm_type not in (VmType.VZ, VmType.TE):
            raise CreateVmError(
                f"unknown MIPS VM type {vm_type!r}; known: "
                + ", ".join(f"{t.name} ({t.value})" for t in VmType)
            )
        guest_id = 0
        if vm_type == VmType.VZ:
            with self._lock:
                if self._next_guest_id > MAX_GUEST_ID:
                    raise CreateVmError(f"out of GuestIDs ({MAX_GUEST_ID} VZ VMs per host)")
                guest_id = self._next_guest_id
                self._next_guest_id += 1
        return MipsVm(self, VmType(vm_type), slots, guest_id)


class MipsVm:
    """The MIPS part of a VM: its type, GuestID (VZ) and the TE dyntrans switch."""

    gpa_space_bytes = GPA_SPACE_BYTES

    def __init__(self, host: MipsHost, vm_type: VmType, slots: SlotTable, guest_id: int) -> None:
        self.host = host
        self.vm_type = vm_type
        self.slots = slots
        self.guest_id = guest_id
        self.te_dyntrans = True
        self.vcpus: list[MipsVcpu] = []

    def enable_cap(self, cap: int, arg: int) -> None:
        if cap != Cap.MIPS_TE_DYNTRANS or self.vm_type != VmType.TE:
            raise EnableCapError(f"capability {cap!r} cannot be enabled on a {self.vm_type.name} VM")
        if arg not in (0, 1):
            raise EnableCapError(f"MIPS_TE_DYNTRANS takes 0 or 1, got {arg}")
        self.te_dyntrans = bool(arg)
        for vcpu in self.vcpus:
            vcpu.impl.rewrite = self.te_dyntrans  # type: ignore[attr-defined]

    # ---------------------------------------------------------------- memory
    def prepare_memory_region(self, slot: MemorySlot) -> None:
        slot.hpa = self.host.pin(slot.gpa, slot.buffer)

    def release_memory_region(self, slot: MemorySlot) -> None:
        self.host.unpin(slot.hpa)

    # ---------------------------------------------------------------- vCPUs
    def create_vcpu(self, services: VcpuServices) -> MipsVcpu:
        from kvmpy.arch.mips.hw.cpu import Cpu

        host = self.host
        cpu = Cpu(host.phys, services.vcpu_id)
        services.stats.instructions_source = lambda: cpu.icount
        if host.jit.enabled:
            try:
                from kvmpy.arch.mips.hw.jit import SharedTranslator
            except ImportError as e:
                raise CreateVcpuError(
                    f"translating guest code needs llvmlite ({e}): install it, or turn translation off"
                    " (JitSettings(enabled=False), kvmpy run --no-jit)"
                ) from None
            cpu.enable_jit(SharedTranslator(), host.jit.threshold, host.jit.background)
            services.stats.jit_source = cpu.jit_stats
        impl: RootEventHandler
        if self.vm_type == VmType.TE:
            from kvmpy.arch.mips.te.cp0 import COMMPAGE_SIZE
            from kvmpy.arch.mips.te.vcpu import TeVcpu

            # The commpage is host memory outside every slot: the guest
            # kernel sees it, the guest physical address space does not.
            commpage = bytearray(COMMPAGE_SIZE)
            try:
                hpa = self.host.pin(0, commpage)
            except MemoryRegionError as exc:
                raise CreateVcpuError(f"no host memory for the TE commpage: {exc}") from None
            impl = TeVcpu(
                cpu, self.slots, services.vcpu_id, services.stats, services.wait_for_wakeup, commpage, hpa,
                rewrite=self.te_dyntrans,
            )
        else:
            from kvmpy.arch.mips.vz.vcpu import VzVcpu

            impl = VzVcpu(
                cpu, self.slots, self.guest_id, services.vcpu_id, services.stats, services.wait_for_wakeup
            )
        vcpu = MipsVcpu(cpu, impl, self.vm_type)
        self.vcpus.append(vcpu)
        return vcpu


class MipsVcpu:
    """The MIPS part of a vCPU: the core, the mode's root-event handler, IP2..IP7 and registers."""

    def __init__(self, cpu: Cpu, impl: RootEventHandler, vm_type: VmType = VmType.VZ) -> None:
        from kvmpy.arch.mips.hw.defs import Stop

        self.cpu = cpu
        self.impl = impl
        self.vm_type = vm_type
        self._irq_lines = 0  # bit 0 = IP2
        self._stop_kick = int(Stop.KICK)
        self._stop_debug = int(Stop.DEBUG)
        self._debug = GuestDebug()
        # Called once per KVM_RUN or per kick: bound straight to who does the work.
        self.complete_pending = impl.complete_pending
        self.kick = cpu.kick
        self.flush_mappings = impl.flush_root_tlb

    def run(self, budget: int) -> Exit | None:
        impl = self.impl
        stop = impl.enter(budget)
        if stop == self._stop_kick:
            return None
        if stop == self._stop_debug and self.cpu.dbg_cause:
            return self._debug_exit()
        return impl.handle(stop)

    # ---------------------------------------------------------------- debugging
    def set_guest_debug(self, debug: GuestDebug) -> None:
        if not debug.enable:
            self.cpu.set_debug(False, False, (), ())
            self._debug = debug
            return
        if len(debug.hw_breakpoints) > HW_BREAKPOINTS:
            raise GuestDebugError(
                f"{len(debug.hw_breakpoints)} hardware breakpoints; the core has {HW_BREAKPOINTS}"
            )
        if len(debug.watchpoints) > HW_WATCHPOINTS:
            raise GuestDebugError(f"{len(debug.watchpoints)} watchpoints; the core has {HW_WATCHPOINTS}")
        pcs = sorted({a & 0xFFFFFFFF for a in debug.sw_breakpoints | debug.hw_breakpoints})
        if len(pcs) > IBREAK_COMPARATORS:
            raise GuestDebugError(f"{len(pcs)} breakpoints; the core compares {IBREAK_COMPARATORS}")
        kind_bits = {WatchKind.READ: 1, WatchKind.WRITE: 2, WatchKind.ACCESS: 3}
        watches = []
        for w in debug.watchpoints:
            if not 1 <= w.length_bytes <= 1 << 16 or not 0 <= w.gva <= 0xFFFFFFFF:
                raise GuestDebugError(f"watchpoint {w.gva:#x}+{w.length_bytes} is not a MIPS32 address range")
            watches.append((w.gva, w.length_bytes, kind_bits[w.kind]))
        self.cpu.set_debug(True, debug.single_step, pcs, watches)
        self._debug = debug

    def debug_resume_latch(self) -> None:
        self.cpu.debug_resume_latch()

    def _debug_exit(self) -> DebugExit:
        cpu = self.cpu
        cause, addr = cpu.dbg_cause, cpu.dbg_addr
        cpu.dbg_cause = 0
        pc = self.impl.pc
        if cause == 2:
            return DebugExit(pc, DebugKind.SINGLE_STEP)
        if cause == 3:
            kind = WatchKind.WRITE if cpu.dbg_access == 2 else WatchKind.READ
            return DebugExit(pc, DebugKind.WATCHPOINT, watch_gva=addr, watch_kind=kind)
        sw = addr in {a & 0xFFFFFFFF for a in self._debug.sw_breakpoints}
        return DebugExit(pc, DebugKind.SW_BREAKPOINT if sw else DebugKind.HW_BREAKPOINT)

    def translate(self, gva: int) -> Translation | None:
        if gva > 0xFFFFFFFF:
            return None
        if self.vm_type == VmType.TE:
            from kvmpy.arch.mips.te.cp0 import COMMPAGE_GVA, COMMPAGE_SIZE
            from kvmpy.arch.mips.te.mmu import Mapping

            if COMMPAGE_GVA <= gva < COMMPAGE_GVA + COMMPAGE_SIZE:
                return None  # host memory the guest kernel sees, not guest RAM
            if KSEG0 <= gva < KSEG2:
                return Translation(gva & 0x1FFFFFFF, True, False)
            m = self.impl.mmu.translate(gva)  # type: ignore[attr-defined]
            if not isinstance(m, Mapping):
                return None
            return Translation(m.gpa, m.writable, gva < KSEG0)
        if KSEG0 <= gva < KSEG2:
            return Translation(gva & 0x1FFFFFFF, True, False)
        gpa = self.cpu.guest_va_to_pa(gva)
        if gpa is None:
            return None
        # the guest TLB walk answers where, not whether a store is allowed
        return Translation(gpa, True, gva < KSEG0)

    def tlb_snapshot(self) -> dict[str, list[str]]:
        from kvmpy.arch.mips.hw.defs import Ctx, Tlb

        def fmt(i: int, hi: int, mask: int, lo0: int, lo1: int, tail: str) -> str:
            return f"{i:2d} hi={hi:08x} mask={mask:08x} lo0={lo0:08x} lo1={lo1:08x}{tail}"

        def core(ctx: int) -> list[str]:
            rows = []
            for i in range(int(Tlb.ENTRIES)):
                hi, mask, lo0, lo1, gid = self.cpu.tlb_read(ctx, i)
                if (lo0 | lo1) & 2:  # a valid half
                    rows.append(fmt(i, hi, mask, lo0, lo1, f" guestid={gid}" if ctx == Ctx.ROOT else ""))
            return rows

        if self.vm_type == VmType.TE:
            guest = [
                fmt(i, e.entryhi, e.pagemask, e.entrylo0, e.entrylo1, "")
                for i, e in enumerate(self.impl.tlb.entries)  # type: ignore[attr-defined]
                if (e.entrylo0 | e.entrylo1) & 2
            ]
            return {"guest": guest, "shadow": core(Ctx.ROOT)}
        return {"guest": core(Ctx.GUEST), "root": core(Ctx.ROOT)}

    # ---------------------------------------------------------------- interrupts
    def irq_line(self, irq: int, level: bool) -> bool:
        """Pin IP`irq` (2..7) of the core to `level`."""
        if not FIRST_IRQ_PIN <= irq <= LAST_IRQ_PIN:
            raise InterruptError(f"MIPS interrupt pin must be {FIRST_IRQ_PIN}..{LAST_IRQ_PIN}, got {irq}")
        bit = 1 << (irq - FIRST_IRQ_PIN)
        old = self._irq_lines
        self._irq_lines = (old | bit) if level else (old & ~bit)
        return self._irq_lines != old

    def interrupt(self, irq: int) -> bool:
        """KVM_INTERRUPT as Linux's MIPS: `irq` > 0 raises pin IP`irq`, `irq` < 0 lowers it."""
        if not FIRST_IRQ_PIN <= abs(irq) <= LAST_IRQ_PIN:
            raise InterruptError(
                f"MIPS interrupt pin must be {FIRST_IRQ_PIN}..{LAST_IRQ_PIN} (negative: lower), got {irq}"
            )
        return self.irq_line(abs(irq), irq > 0)

    def deliver_interrupts(self) -> None:
        self.impl.set_irq_lines(self._irq_lines)

    # ---------------------------------------------------------------- registers
    def get_regs(self) -> Regs:
        cpu = self.cpu
        return Regs([cpu.get_gpr(i) for i in range(32)], cpu.hi, cpu.lo, self.impl.pc)

    def set_regs(self, regs: Regs) -> None:
        if not isinstance(regs, Regs) or len(regs.gpr) != 32:
            raise RegisterAccessError("set_regs takes a kvmpy.arch.mips.uapi.Regs with 32 gpr values")
        cpu = self.cpu
        for i, v in enumerate(regs.gpr):
            cpu.set_gpr(i, v & 0xFFFFFFFF)
        cpu.hi = regs.hi & 0xFFFFFFFF
        cpu.lo = regs.lo & 0xFFFFFFFF
        self.impl.pc = regs.pc

    def get_one_reg(self, reg_id: int) -> int:
        cpu = self.cpu
        if gp_reg(0) <= reg_id <= gp_reg(31):
            return cpu.get_gpr(reg_id - gp_reg(0))
        if reg_id == KVM_REG_MIPS_HI:
            return cpu.hi
        if reg_id == KVM_REG_MIPS_LO:
            return cpu.lo
        if reg_id == KVM_REG_MIPS_PC:
            return self.impl.pc
        if reg_id == KVM_REG_MIPS_COUNT_HZ:
            return int(cpu.count_hz)
        if reg_id in (KVM_REG_MIPS_COUNT_CTL, KVM_REG_MIPS_COUNT_RESUME):
            return 0
        if reg_id in CP0_BY_ID:
            _name, reg, sel = CP0_BY_ID[reg_id]
            return self.impl.read_cp0(reg, sel)
        raise RegisterAccessError(f"unknown MIPS register id {reg_id:#x}")

    def set_one_reg(self, reg_id: int, value: int) -> None:
        size = reg_size_bytes(reg_id)
        if size == 0 or not 0 <= value < (1 << (8 * size)):
            raise RegisterAccessError(f"value {value:#x} does not fit register {reg_id:#x}")
        value &= 0xFFFFFFFF
        cpu = self.cpu
        if gp_reg(0) <= reg_id <= gp_reg(31):
            cpu.set_gpr(reg_id - gp_reg(0), value)
        elif reg_id == KVM_REG_MIPS_HI:
            cpu.hi = value
        elif reg_id == KVM_REG_MIPS_LO:
            cpu.lo = value
        elif reg_id == KVM_REG_MIPS_PC:
            self.impl.pc = value
        elif reg_id == KVM_REG_MIPS_COUNT_HZ:
            if value == 0:
                raise RegisterAccessError("COUNT_HZ must be positive")
            cpu.count_hz = float(value)
        elif reg_id in CP0_BY_ID:
            _name, reg, sel = CP0_BY_ID[reg_id]
            self.impl.write_cp0(reg, sel, value)
        else:
            raise RegisterAccessError(f"unknown MIPS register id {reg_id:#x}")
