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
from kvmpy.kvm.api import Cap as GenericCap
from kvmpy.kvm.backend import VcpuServices
from kvmpy.kvm.errors import (
    CreateVcpuError,
    CreateVmError,
    EnableCapError,
    InterruptError,
    MemoryRegionError,
    RegisterAccessError,
)
from kvmpy.kvm.exits import Exit
from kvmpy.kvm.memory import MemorySlot, SlotTable
from kvmpy.kvm.settings import JitSettings
from kvmpy.sim.hostphys import HPA_SPACE_32BIT, HostPhysAllocator, HostPhysExhaustedError

if TYPE_CHECKING:
    from kvmpy.arch.mips.hw.cpu import Cpu
    from kvmpy.arch.mips.hypervisor import RootEventHandler

MAX_VCPUS = 8
# GuestCtl1.ID is 8 bits and GuestID 0 is the root's own.
MAX_GUEST_ID = 255
GPA_SPACE_BYTES = 1 << 32  # MIPS32: 32-bit guest physical addresses
FIRST_IRQ_PIN, LAST_IRQ_PIN = 2, 7  # the core's hardware interrupt inputs IP2..IP7

_BUILD_HINT = "build it with `python3 setup.py build_ext --inplace`"


class MipsBackend:
    """The `kvmpy.kvm.backend.Backend` for arch "mips"."""

    arch = "mips"

    def create_host(self, jit: JitSettings) -> MipsHost:
        return MipsHost(jit)


BACKEND = MipsBackend()


class MipsHost:
    """One simulated MIPS host: host physical memory, its HPA allocator and the GuestID pool."""

    max_vcpus = MAX_VCPUS

    def __init__(self, jit: JitSettings) -> None:
        self.jit = jit
        self._lock = threading.Lock()
        self._next_guest_id = 1
        self.hpa = HostPhysAllocator(HPA_SPACE_32BIT)
        try:
            import kvmpy.arch.mips.hw.cpu  # noqa: F401  (the core: checked here, used per vCPU)
            from kvmpy.sim.physmem import PhysicalMemory
        except ImportError as exc:
            self.core_missing: str | None = f"the compiled MIPS core is missing ({exc}); {_BUILD_HINT}"
            return
        self.core_missing = None
        self.phys = PhysicalMemory(HPA_SPACE_32BIT)

    def check_extension(self, cap: int) -> int:
        if self.core_missing is not None:
            return 0
        return {
            GenericCap.NR_VCPUS: MAX_VCPUS,
            GenericCap.MAX_VCPUS: MAX_VCPUS,
            GenericCap.ONE_REG: 1,
            GenericCap.READONLY_MEM: 1,
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
    def _pin(self, gpa: int, buffer: object) -> int:
        try:
            hpa = self.host.hpa.allocate(gpa, len(memoryview(buffer)))  # type: ignore[arg-type]
        except HostPhysExhaustedError as exc:
            raise MemoryRegionError(str(exc)) from None
        try:
            self.host.phys.attach(hpa, buffer)
        except ValueError as exc:
            self.host.hpa.free(hpa)
            raise MemoryRegionError(str(exc)) from exc
        return hpa

    def prepare_memory_region(self, slot: MemorySlot) -> None:
        slot.hpa = self._pin(slot.gpa, slot.buffer)

    def release_memory_region(self, slot: MemorySlot) -> None:
        self.host.phys.detach(slot.hpa)
        self.host.hpa.free(slot.hpa)

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
                hpa = self._pin(0, commpage)
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
        vcpu = MipsVcpu(cpu, impl)
        self.vcpus.append(vcpu)
        return vcpu


class MipsVcpu:
    """The MIPS part of a vCPU: the core, the mode's root-event handler, IP2..IP7 and registers."""

    def __init__(self, cpu: Cpu, impl: RootEventHandler) -> None:
        from kvmpy.arch.mips.hw.defs import Stop

        self.cpu = cpu
        self.impl = impl
        self._irq_lines = 0  # bit 0 = IP2
        self._stop_kick = int(Stop.KICK)
        # Called once per KVM_RUN or per kick: bound straight to who does the work.
        self.complete_pending = impl.complete_pending
        self.kick = cpu.kick
        self.flush_mappings = impl.flush_root_tlb

    def run(self, budget: int) -> Exit | None:
        impl = self.impl
        stop = impl.enter(budget)
        if stop == self._stop_kick:
            return None
        return impl.handle(stop)

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
