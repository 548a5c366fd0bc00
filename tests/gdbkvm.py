"""A bare VM with a counting guest, served by the VMM's KvmDebugTarget (kvmpy/vmm/gdbstub/kvm_target.py)."""

from __future__ import annotations

import mmap

from kvmpy.arch.mips.uapi import VmType
from kvmpy.kvm import Kvm, Vcpu
from kvmpy.vmm.bus import Bus
from kvmpy.vmm.gdbstub.kvm_target import KvmDebugTarget, RamRegion
from kvmpy.vmm.runner import StopControl
from tests.asm import assemble

KSEG0 = 0x8000_0000
KSEG2 = 0xC000_0000

RAM_MIB = 4
CODE_GPA = 0x1000
ENTRY = KSEG0 | CODE_GPA
COUNTER_GPA = 0x2000
# A bare-metal guest: leave the reset state, then count in memory forever.
COUNTING_SOURCE = """
    mtc0  $zero, $12
    ehb
    lui   $8, 0x8000
    ori   $8, $8, 0x2000
    addu  $9, $0, $0
1:  addiu $9, $9, 1
    b     1b
    sw    $9, 0($8)
"""


def counting_vm(vm_type: VmType) -> tuple[KvmVcpuTarget, bytes]:
    """A VM of `vm_type` with the counting guest loaded, its vCPU at ENTRY; (target, code)."""
    code = assemble(COUNTING_SOURCE, ENTRY)
    vm = Kvm().create_vm(vm_type)
    ram = mmap.mmap(-1, RAM_MIB << 20)
    ram[CODE_GPA:CODE_GPA + len(code)] = code
    vm.set_user_memory_region(0, 0, RAM_MIB << 20, ram)
    vcpu = vm.create_vcpu(0)
    regs = vcpu.get_regs()
    regs.pc = ENTRY
    vcpu.set_regs(regs)
    return KvmVcpuTarget(vcpu, ram), code


class KvmVcpuTarget(KvmDebugTarget):
    """The VMM's adapter over a bare VM: one RAM slot at guest physical 0, no devices."""

    def __init__(self, vcpu: Vcpu, ram: mmap.mmap) -> None:
        super().__init__(vcpu, [RamRegion(0, ram)], Bus("mmio"), Bus("pio"), StopControl())
        self.ram = ram
