"""Run a bare-metal 440 test guest under the trap-and-emulate backend, through the KVM API only.

The same guests and entry state as tests/ppc440_harness.py (which drives a
bare core), but here the guest is a VM: RAM and the UART page are memory
slots, QEMU bamboo's boot mappings are written into the *guest* TLB with
ONE_REG, UIC0 answers the guest's DCR exits and drives the vCPU's
external/critical input lines with `Vm.irq_line`, and the guest's DBCR0
reset request ends the run as a ResetExit. What the guest logs must equal
what it logs on the bare core (and so what QEMU prints).
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

from kvmpy.arch.ppc.uapi import IRQ_CRITICAL, IRQ_EXTERNAL, KVM_REG_PPC_PC, VmType, gp_reg, tlb_reg
from kvmpy.kvm import DcrExit, Kvm, MmioExit, ResetExit, Vcpu, Vm
from tests.ppc440_harness import (
    _PAGE_256M,
    _SUPERVISOR_RWX,
    _TLB0_V,
    _UIC_VCR,
    BOOT_TLB_ENTRIES,
    LOG_BUF_HPA,
    LOG_POS_HPA,
    QEMU_BAMBOO_R1,
    QEMU_BAMBOO_R3,
    RAM_SIZE,
    UART_LSR_OFFSET,
    UART_PAGE_HPA,
    UIC0_BASE,
    GuestError,
    Uic0,
    load_elf32_be,
)


class _IrqPins:
    """UIC0's two outputs as the vCPU's interrupt lines (what Uic0 calls the core's pins)."""

    def __init__(self, vm: Vm) -> None:
        self.vm = vm

    def set_external_input(self, level: bool) -> None:
        self.vm.irq_line(IRQ_EXTERNAL, level)

    def set_critical_input(self, level: bool) -> None:
        self.vm.irq_line(IRQ_CRITICAL, level)


def boot_vm(elf: Path) -> tuple[Vm, Vcpu, mmap.mmap]:
    kvm = Kvm("ppc440")
    vm = kvm.create_vm(VmType.TE)
    ram = mmap.mmap(-1, RAM_SIZE)
    entry = load_elf32_be(elf, ram)
    vm.set_user_memory_region(0, 0, RAM_SIZE, ram)
    uart = mmap.mmap(-1, 4096)
    uart[UART_LSR_OFFSET & 0xFFF] = 0x60  # THRE | TEMT, as the bare harness
    vm.set_user_memory_region(1, UART_PAGE_HPA, 4096, uart)
    vcpu = vm.create_vcpu(0)
    for i in range(BOOT_TLB_ENTRIES):
        base = i << 28
        for word, value in enumerate((base | _TLB0_V | (_PAGE_256M << 4), base, _SUPERVISOR_RWX, 0)):
            vcpu.set_one_reg(tlb_reg(i, word), value)
    vcpu.set_one_reg(KVM_REG_PPC_PC, entry)
    vcpu.set_one_reg(gp_reg(1), QEMU_BAMBOO_R1)
    vcpu.set_one_reg(gp_reg(3), QEMU_BAMBOO_R3)
    return vm, vcpu, ram


def run_guest_kvm(elf: Path, max_exits: int = 200_000) -> tuple[bytes, Vcpu]:
    """Run a guest to its reset request under the backend; return its log and the vCPU (for stats)."""
    vm, vcpu, ram = boot_vm(elf)
    uic = Uic0(_IrqPins(vm))  # type: ignore[arg-type]
    for _ in range(max_exits):
        e = vcpu.run()
        if isinstance(e, ResetExit):
            break
        if isinstance(e, DcrExit):
            in_uic = UIC0_BASE <= e.dcrn <= UIC0_BASE + _UIC_VCR
            result = uic.access(e.dcrn, e.is_write, e.data) if in_uic else 0
            if not e.is_write:
                e.data = result
            continue
        if isinstance(e, MmioExit):
            raise GuestError(f"{Path(elf).name}: MMIO at {e.phys_addr:#x}, which this board does not have")
        raise GuestError(f"{Path(elf).name}: unexpected exit {e!r}")
    else:
        raise GuestError(f"{Path(elf).name}: no reset after {max_exits} exits")
    (pos,) = struct.unpack_from(">I", ram, LOG_POS_HPA)
    if pos > 0x10000:
        raise GuestError(f"{Path(elf).name}: log position {pos:#x} is garbage")
    return bytes(ram[LOG_BUF_HPA : LOG_BUF_HPA + pos]), vcpu
