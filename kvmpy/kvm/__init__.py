"""The KVM API of kvmpy: Kvm, Vm, Vcpu, exits and errors."""

from kvmpy.kvm.api import Cap, JitSettings, Kvm, Vcpu, Vm, VmType
from kvmpy.kvm.errors import (
    CreateVcpuError,
    CreateVmError,
    DirtyLogError,
    EnableCapError,
    KvmError,
    MemoryRegionError,
    MemoryRegionOverlapError,
    RegisterAccessError,
    RunError,
)
from kvmpy.kvm.exits import (
    DebugExit,
    Exit,
    ExitReason,
    HaltExit,
    HypercallExit,
    InternalErrorExit,
    InterruptedExit,
    IoExit,
    MmioExit,
    ResetExit,
    ShutdownExit,
)
from kvmpy.kvm.memory import MemFlags, dirty_pages

__all__ = [
    "Cap", "CreateVcpuError", "CreateVmError", "EnableCapError", "DebugExit", "DirtyLogError", "Exit",
    "ExitReason",
    "HaltExit", "HypercallExit", "InternalErrorExit", "InterruptedExit", "IoExit", "JitSettings", "Kvm",
    "KvmError",
    "MemFlags", "MemoryRegionError", "MemoryRegionOverlapError", "MmioExit", "RegisterAccessError",
    "ResetExit", "RunError", "ShutdownExit", "Vcpu", "Vm", "VmType", "dirty_pages",
]
