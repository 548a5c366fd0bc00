"""The PowerPC 440 backend of the KVM API (Linux: arch/powerpc/kvm's 44x/booke kvm_arch_* hooks).

Arch name "ppc440": the registry is keyed by what the host CPU is, and the
440 is the only PowerPC core kvmpy simulates today (a Book3S POWER backend
would register as its own name). One simulated 440 core per vCPU over the
host's shared physical memory; the VM type is TE, the only way a 440 can
host a guest (docs/ppc440-te.md). The trap-and-emulate machinery lives in
`kvmpy.arch.ppc.te`.

Importing this module needs nothing compiled: a host without the core
reports the capabilities as 0 and refuses to create VMs, saying how to
build it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvmpy.arch.ppc.uapi import (
    IRQ_CRITICAL,
    IRQ_EXTERNAL,
    KVM_INTERRUPT_SET,
    KVM_INTERRUPT_SET_LEVEL,
    KVM_INTERRUPT_UNSET,
    KVM_REG_PPC_CLEAR_TSR,
    KVM_REG_PPC_CR,
    KVM_REG_PPC_CTR,
    KVM_REG_PPC_FPSCR,
    KVM_REG_PPC_LR,
    KVM_REG_PPC_MSR,
    KVM_REG_PPC_OR_TSR,
    KVM_REG_PPC_PC,
    KVM_REG_PPC_TB,
    KVM_REG_PPC_TCR,
    KVM_REG_PPC_TSR,
    KVM_REG_PPC_XER,
    SPR_IDS_BASE,
    TLB_IDS_BASE,
    Cap,
    Regs,
    VmType,
    fpr_reg,
    gp_reg,
    kvm_reg,
    reg_size_bytes,
)
from kvmpy.arch.simhost import SimulatedHostMemory
from kvmpy.kvm.api import Cap as GenericCap
from kvmpy.kvm.backend import VcpuServices
from kvmpy.kvm.errors import (
    CreateVmError,
    EnableCapError,
    InterruptError,
    RegisterAccessError,
)
from kvmpy.kvm.memory import MemorySlot, SlotTable
from kvmpy.kvm.settings import JitSettings

if TYPE_CHECKING:
    from kvmpy.arch.ppc.te.vcpu import TeVcpu

MAX_VCPUS = 1  # the 440EP is a single-core chip; Linux's 44x KVM had one vCPU too
GPA_SPACE_BYTES = 1 << 32  # slots cover the 32-bit part of the 440's 36-bit real space


class Ppc440Backend:
    """The `kvmpy.kvm.backend.Backend` for arch "ppc440"."""

    arch = "ppc440"

    def create_host(self, jit: JitSettings) -> Ppc440Host:
        return Ppc440Host()


BACKEND = Ppc440Backend()


class Ppc440Host(SimulatedHostMemory):
    """One simulated 440 host: its physical memory and HPA allocator."""

    max_vcpus = MAX_VCPUS

    def __init__(self) -> None:
        super().__init__("kvmpy.arch.ppc.hw.core440", "PowerPC 440")

    def check_extension(self, cap: int) -> int:
        if self.core_missing is not None:
            return 0
        return {
            GenericCap.NR_VCPUS: MAX_VCPUS,
            GenericCap.MAX_VCPUS: MAX_VCPUS,
            GenericCap.ONE_REG: 1,
            GenericCap.READONLY_MEM: 1,
            Cap.PPC_BOOKE_SREGS: 1,
            Cap.PPC_UNSET_IRQ: 1,
            Cap.PPC_IRQ_LEVEL: 1,
        }.get(cap, 0)

    def create_vm(self, vm_type: int, slots: SlotTable) -> Ppc440Vm:
        if self.core_missing is not None:
            raise CreateVmError(f"cannot create a PowerPC 440 VM: {self.core_missing}")
        if vm_type == VmType.AUTO:
            vm_type = VmType.TE
        if vm_type != VmType.TE:
            raise CreateVmError(
                f"unknown PowerPC 440 VM type {vm_type!r}; known: "
                + ", ".join(f"{t.name} ({t.value})" for t in VmType)
            )
        return Ppc440Vm(self, slots)


class Ppc440Vm:
    """The 440 part of a VM."""

    gpa_space_bytes = GPA_SPACE_BYTES
    vm_type = VmType.TE

    def __init__(self, host: Ppc440Host, slots: SlotTable) -> None:
        self.host = host
        self.slots = slots

    def enable_cap(self, cap: int, arg: int) -> None:
        raise EnableCapError(f"capability {cap!r} cannot be enabled on a PowerPC 440 VM")

    def prepare_memory_region(self, slot: MemorySlot) -> None:
        slot.hpa = self.host.pin(slot.gpa, slot.buffer)

    def release_memory_region(self, slot: MemorySlot) -> None:
        self.host.unpin(slot.hpa)

    def create_vcpu(self, services: VcpuServices) -> Ppc440Vcpu:
        from kvmpy.arch.ppc.hw.core440 import Core440
        from kvmpy.arch.ppc.te.vcpu import TeVcpu

        core = Core440(self.host.phys, services.vcpu_id)
        services.stats.instructions_source = lambda: core.icount
        impl = TeVcpu(core, self.slots, services.vcpu_id, services.stats, services.wait_for_wakeup)
        return Ppc440Vcpu(impl)


_SIMPLE_REGS = {KVM_REG_PPC_CR: "cr", KVM_REG_PPC_XER: "xer", KVM_REG_PPC_LR: "lr", KVM_REG_PPC_CTR: "ctr"}


class Ppc440Vcpu:
    """The 440 part of a vCPU: the TE vCPU, the external and critical input lines, registers."""

    def __init__(self, impl: TeVcpu) -> None:
        self.impl = impl
        self.core = impl.core
        self._ext = False
        self._crit = False
        self.run = impl.run
        self.complete_pending = impl.complete_pending
        self.kick = impl.core.kick
        self.flush_mappings = impl.flush_mappings

    # ---------------------------------------------------------------- interrupts
    def irq_line(self, irq: int, level: bool) -> bool:
        """Line 0: external input (IVOR4); line 1: critical input (IVOR0)."""
        if irq == IRQ_EXTERNAL:
            old, self._ext = self._ext, bool(level)
        elif irq == IRQ_CRITICAL:
            old, self._crit = self._crit, bool(level)
        else:
            raise InterruptError(f"PowerPC 440 interrupt lines are 0 (external) and 1 (critical), got {irq}")
        return old != bool(level)

    def interrupt(self, irq: int) -> bool:
        """KVM_INTERRUPT as Linux's powerpc: SET / SET_LEVEL raise external input, UNSET lowers it."""
        value = irq & 0xFFFFFFFF
        if value in (KVM_INTERRUPT_SET, KVM_INTERRUPT_SET_LEVEL):
            return self.irq_line(IRQ_EXTERNAL, True)
        if value == KVM_INTERRUPT_UNSET:
            return self.irq_line(IRQ_EXTERNAL, False)
        raise InterruptError(
            f"KVM_INTERRUPT on powerpc takes KVM_INTERRUPT_SET (-1), UNSET (-2) or SET_LEVEL (-3), got {irq}"
        )

    def deliver_interrupts(self) -> None:
        self.impl.ext_line = self._ext
        self.impl.crit_line = self._crit

    # ---------------------------------------------------------------- registers
    def get_regs(self) -> Regs:
        impl, core = self.impl, self.core
        sprs = impl.sprs
        return Regs(
            pc=impl.pc, cr=core.cr, ctr=core.ctr, lr=core.lr, xer=core.xer, msr=impl.msr,
            srr0=sprs.get(26, 0), srr1=sprs.get(27, 0), pid=impl.pid,
            sprg=[int(core.spr_read(272 + i)) for i in range(8)],
            gpr=[int(core.get_gpr(i)) for i in range(32)],
        )

    def set_regs(self, regs: Regs) -> None:
        if not isinstance(regs, Regs) or len(regs.gpr) != 32 or len(regs.sprg) != 8:
            raise RegisterAccessError(
                "set_regs takes a kvmpy.arch.ppc.uapi.Regs with 32 gpr and 8 sprg values"
            )
        impl, core = self.impl, self.core
        for i, v in enumerate(regs.gpr):
            core.set_gpr(i, v & 0xFFFFFFFF)
        for i, v in enumerate(regs.sprg):
            core.spr_write(272 + i, v & 0xFFFFFFFF)
        core.cr, core.ctr, core.lr = regs.cr & 0xFFFFFFFF, regs.ctr & 0xFFFFFFFF, regs.lr & 0xFFFFFFFF
        core.xer = regs.xer & 0xFFFFFFFF
        impl.sprs[26], impl.sprs[27] = regs.srr0 & 0xFFFFFFFF, regs.srr1 & 0xFFFFFFFF
        impl.set_pid(regs.pid & 0xFF)
        impl.set_msr(regs.msr)
        impl.pc = regs.pc

    def _spr_number(self, reg_id: int) -> int | None:
        n = reg_id - kvm_reg(SPR_IDS_BASE)
        return n if 0 <= n < 1024 else None

    def _tlb_word(self, reg_id: int) -> tuple[int, int] | None:
        n = reg_id - kvm_reg(TLB_IDS_BASE)
        return divmod(n, 4) if 0 <= n < 4 * 64 else None

    def get_one_reg(self, reg_id: int) -> int:
        from kvmpy.arch.ppc.te import emulate

        impl, core = self.impl, self.core
        if gp_reg(0) <= reg_id <= gp_reg(31):
            return int(core.get_gpr(reg_id - gp_reg(0)))
        if reg_id == KVM_REG_PPC_PC:
            return impl.pc
        if reg_id == KVM_REG_PPC_MSR:
            return impl.msr
        if reg_id in _SIMPLE_REGS:
            return int(getattr(core, _SIMPLE_REGS[reg_id]))
        if reg_id == KVM_REG_PPC_TB:
            return int(core.tb)
        if reg_id == KVM_REG_PPC_TCR:
            return impl.timers.tcr
        if reg_id == KVM_REG_PPC_TSR:
            impl.timers.update(core.tb)
            return impl.timers.tsr
        if fpr_reg(0) <= reg_id <= fpr_reg(31):
            return int(core.get_fpr(reg_id - fpr_reg(0)))
        if reg_id == KVM_REG_PPC_FPSCR:
            return int(core.fpscr)
        tlb = self._tlb_word(reg_id)
        if tlb is not None:
            e = impl.guest_tlb.entries[tlb[0]]
            return (e.w0, e.w1, e.w2, e.tid)[tlb[1]]
        n = self._spr_number(reg_id)
        if n is not None:
            try:
                return emulate.read_spr(impl, n)
            except emulate.IllegalInstruction:
                pass
        raise RegisterAccessError(f"unknown PowerPC 440 register id {reg_id:#x}")

    def set_one_reg(self, reg_id: int, value: int) -> None:
        from kvmpy.arch.ppc.te import emulate

        size = reg_size_bytes(reg_id)
        if size == 0 or not 0 <= value < (1 << (8 * size)):
            raise RegisterAccessError(f"value {value:#x} does not fit register {reg_id:#x}")
        impl, core = self.impl, self.core
        if gp_reg(0) <= reg_id <= gp_reg(31):
            core.set_gpr(reg_id - gp_reg(0), value)
        elif reg_id == KVM_REG_PPC_PC:
            impl.pc = value
        elif reg_id == KVM_REG_PPC_MSR:
            impl.set_msr(value)
        elif reg_id in _SIMPLE_REGS:
            setattr(core, _SIMPLE_REGS[reg_id], value)
        elif reg_id == KVM_REG_PPC_TB:
            core.tb = value
        elif reg_id == KVM_REG_PPC_TCR:
            impl.timers.write_tcr(core.tb, value)
        elif reg_id == KVM_REG_PPC_TSR:
            impl.timers.tsr = value
        elif reg_id == KVM_REG_PPC_OR_TSR:
            impl.timers.tsr |= value
        elif reg_id == KVM_REG_PPC_CLEAR_TSR:
            impl.timers.tsr &= ~value & 0xFFFFFFFF
        elif fpr_reg(0) <= reg_id <= fpr_reg(31):
            core.set_fpr(reg_id - fpr_reg(0), value)
        elif reg_id == KVM_REG_PPC_FPSCR:
            core.fpscr = value & 0xFFFFFFFF
        elif (tlb := self._tlb_word(reg_id)) is not None:
            index, word = tlb
            if word == 3:
                if value > 0xFF:
                    raise RegisterAccessError(f"a TID is 8 bits, not {value:#x}")
                impl.guest_tlb_set_tid(index, value)
            else:
                impl.guest_tlbwe(index, word, value, stid=impl.guest_tlb.entries[index].tid)
        else:
            n = self._spr_number(reg_id)
            if n is None:
                raise RegisterAccessError(f"unknown PowerPC 440 register id {reg_id:#x}")
            try:
                emulate.write_spr(impl, n, value)
            except emulate.IllegalInstruction:
                raise RegisterAccessError(f"the 440 has no writable SPR {n}") from None
