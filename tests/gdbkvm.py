"""A DebugTarget over a real kvmpy vCPU, with only what the KVM API offers today.

This is the shape of the adapter the VMM gets once the KVM API has
KVM_SET_GUEST_DEBUG and KVM_TRANSLATE (docs/gdbstub.md). Until then it
offers what exists: ONE_REG, the VMM's own RAM, run and kick. Guest debug
beyond "off" is refused (GuestDebugError, which gdb sees as E28) and
translation covers the guest's unmapped kseg0/kseg1 only, which is all a
bare-metal test guest uses.
"""

from __future__ import annotations

import mmap
import threading
from collections.abc import Mapping

from kvmpy.arch.mips.uapi import VmType
from kvmpy.kvm import (
    HaltExit,
    InternalErrorExit,
    InterruptedExit,
    Kvm,
    MmioExit,
    ResetExit,
    ShutdownExit,
    Vcpu,
)
from kvmpy.vmm.gdbstub import (
    DebugExit,
    GuestDebug,
    GuestDebugError,
    GuestMemoryError,
    MonitorCommand,
    StopKind,
)
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


class KvmVcpuTarget:
    """vCPU + RAM (one slot at guest physical 0) as a DebugTarget."""

    def __init__(self, vcpu: Vcpu, ram: mmap.mmap) -> None:
        self.vcpu = vcpu
        self.ram = ram
        self._stub_kick = threading.Event()
        self.mmio_reads = 0

    def get_one_reg(self, reg_id: int) -> int:
        return self.vcpu.get_one_reg(reg_id)

    def set_one_reg(self, reg_id: int, value: int) -> None:
        self.vcpu.set_one_reg(reg_id, value)

    def set_guest_debug(self, debug: GuestDebug) -> None:
        wanted = debug.enable and (debug.single_step or debug.sw_breakpoints or debug.hw_breakpoints
                                   or debug.watchpoints)
        if wanted:
            raise GuestDebugError("the hypervisor has no KVM_SET_GUEST_DEBUG yet")

    def translate(self, gva: int) -> int | None:
        if not KSEG0 <= gva < KSEG2:
            return None
        gpa = gva & 0x1FFF_FFFF
        return gpa if gpa < len(self.ram) else None

    def read_gpa(self, gpa: int, size_bytes: int) -> bytes:
        if gpa + size_bytes > len(self.ram):
            raise GuestMemoryError(f"gpa {gpa:#x}+{size_bytes} is not RAM")
        return self.ram[gpa:gpa + size_bytes]

    def write_gpa(self, gpa: int, data: bytes) -> None:
        if gpa + len(data) > len(self.ram):
            raise GuestMemoryError(f"gpa {gpa:#x}+{len(data)} is not RAM")
        self.ram[gpa:gpa + len(data)] = data

    def run(self) -> DebugExit:
        while True:
            exit_ = self.vcpu.run()
            match exit_:
                case InterruptedExit():
                    if self._stub_kick.is_set():
                        self._stub_kick.clear()
                        return DebugExit(StopKind.INTERRUPTED, pc=self.vcpu.get_regs().pc)
                case MmioExit(is_write=False):
                    self.mmio_reads += 1
                    exit_.data[:] = bytes(exit_.length)
                case ShutdownExit() | ResetExit():
                    return DebugExit(StopKind.EXITED, message=exit_.why)
                case HaltExit():
                    return DebugExit(StopKind.EXITED, pc=exit_.pc, message="halted")
                case InternalErrorExit():
                    return DebugExit(StopKind.EXITED, pc=exit_.pc, exit_code=1, message=exit_.message)

    def kick(self) -> None:
        self._stub_kick.set()
        self.vcpu.kick()

    def monitor_commands(self) -> Mapping[str, MonitorCommand]:
        def stats(_args: str) -> str:
            s = self.vcpu.stats
            exits = " ".join(f"{k}={v}" for k, v in sorted(s.exits.items()))
            traps = " ".join(f"{k}={v}" for k, v in sorted(s.traps.items()))
            return f"instructions {s.instructions}\nexits {exits or '-'}\ntraps {traps or '-'}"

        return {"stats": MonitorCommand("the vCPU's exit and trap counters", stats)}
