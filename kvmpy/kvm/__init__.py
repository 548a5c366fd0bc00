"""The KVM API of kvmpy: Kvm, Vm, Vcpu, exits and errors, for every architecture.

Nothing here names an architecture: `Kvm(arch=...)` loads the backend
registered in `kvmpy.kvm.backends`, and the architecture's own constants
(VM types, capabilities, registers) are in its uapi module, e.g.
`kvmpy.arch.mips.uapi`.
"""

from kvmpy.kvm.api import Cap, Kvm, Vcpu, Vm
from kvmpy.kvm.backends import known_architectures
from kvmpy.kvm.debug import DebugKind, GuestDebug, Translation, WatchKind, Watchpoint
from kvmpy.kvm.errors import (
    CreateVcpuError,
    CreateVmError,
    DirtyLogError,
    EnableCapError,
    GuestDebugError,
    InterruptError,
    KvmError,
    MemoryRegionError,
    MemoryRegionOverlapError,
    RegisterAccessError,
    RunError,
    UnknownArchitectureError,
)
from kvmpy.kvm.exits import (
    DcrExit,
    DebugExit,
    Exit,
    ExitReason,
    HaltExit,
    HypercallExit,
    InternalErrorExit,
    InterruptedExit,
    IoExit,
    MmioExit,
    PaprHcallExit,
    ResetExit,
    ShutdownExit,
)
from kvmpy.kvm.memory import MemFlags, dirty_pages
from kvmpy.kvm.settings import JitSettings

__all__ = [
    "Cap", "CreateVcpuError", "DebugKind", "GuestDebug", "GuestDebugError", "Translation", "WatchKind",
    "Watchpoint", "CreateVmError", "DcrExit", "DebugExit", "DirtyLogError", "EnableCapError",
    "Exit", "ExitReason", "HaltExit", "HypercallExit", "InternalErrorExit", "InterruptError",
    "InterruptedExit", "IoExit", "JitSettings", "Kvm", "KvmError", "MemFlags", "MemoryRegionError",
    "MemoryRegionOverlapError", "MmioExit", "PaprHcallExit", "RegisterAccessError", "ResetExit", "RunError",
    "ShutdownExit", "UnknownArchitectureError", "Vcpu", "Vm", "dirty_pages", "known_architectures",
]
