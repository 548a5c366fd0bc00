"""A GDB remote serial protocol stub: debug a guest with a real gdb, through the KVM API.

`GdbStub` serves one `DebugTarget` (a vCPU seen through KVM API calls) on a
`tcp:` or `unix:` listener; `arch` holds the per-architecture register
descriptions. See docs/gdbstub.md.
"""

from kvmpy.vmm.gdbstub.arch import ArchDescription, ByteOrder, RegisterDesc, mips32
from kvmpy.vmm.gdbstub.stub import GdbStub
from kvmpy.vmm.gdbstub.target import (
    DebugExit,
    DebugTarget,
    GuestDebug,
    GuestDebugError,
    GuestMemoryError,
    MonitorCommand,
    StopKind,
    WatchKind,
    Watchpoint,
)

__all__ = [
    "ArchDescription", "ByteOrder", "DebugExit", "DebugTarget", "GdbStub", "GuestDebug", "GuestDebugError",
    "GuestMemoryError", "MonitorCommand", "RegisterDesc", "StopKind", "WatchKind", "Watchpoint", "mips32",
]
