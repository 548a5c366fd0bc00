"""The stub's view of the VM: a `DebugTarget` and the values it exchanges.

Every method of `DebugTarget` is one KVM API call (or the VMM's own RAM),
so the VMM's adapter is a thin forwarding layer and the stub never touches
CPU state, TLBs or the hypervisor directly:

| DebugTarget           | KVM API                                           |
|-----------------------|---------------------------------------------------|
- get_one_reg / set_one_reg: KVM_GET_ONE_REG / KVM_SET_ONE_REG
- set_guest_debug: KVM_SET_GUEST_DEBUG
- translate: KVM_TRANSLATE
- read_gpa / write_gpa: the VMM's own mapping of guest RAM (its memory slots)
- run: the VMM's vCPU loop around KVM_RUN, returning on KVM_EXIT_DEBUG,
  KVM_EXIT_INTR or the end of the VM
- kick: the VMM's kick (a signal to the vCPU thread in Linux)

docs/gdbstub.md states the semantics the hypervisor must give these calls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

# The KVM API's own types: the stub passes them through unchanged.
from kvmpy.kvm import GuestDebug, GuestDebugError, WatchKind, Watchpoint

__all__ = [
    "DebugExit", "DebugTarget", "GuestDebug", "GuestDebugError", "GuestMemoryError", "MonitorCommand",
    "StopKind", "WatchKind", "Watchpoint",
]


class StopKind(Enum):
    """Why run() returned."""

    SW_BREAKPOINT = "swbreak"    # the PC reached a software breakpoint
    HW_BREAKPOINT = "hwbreak"    # the PC reached a hardware breakpoint
    WATCHPOINT = "watch"         # a watched access is about to happen
    SINGLE_STEP = "step"         # one instruction completed
    INTERRUPTED = "interrupted"  # kick() (KVM_EXIT_INTR)
    EXITED = "exited"            # the VM ended (shutdown, reset to power-off, fatal error)


@dataclass(frozen=True)
class DebugExit:
    """Why the vCPU stopped: KVM_EXIT_DEBUG (or an interruption / the end of the VM).

    `pc` is the guest PC at the stop: the breakpoint address, the
    instruction after a step, the accessing instruction of a watchpoint.
    For watchpoints `watch_gva` is the watched address that matched and
    `watch_kind` the kind of access. For EXITED, `exit_code` is the VM's
    status (0 for a clean power-off) and `message` says why in one line.
    """

    kind: StopKind
    pc: int = 0
    watch_gva: int | None = None
    watch_kind: WatchKind | None = None
    exit_code: int = 0
    message: str = ""


class GuestMemoryError(Exception):
    """A guest-physical access outside the guest's RAM (or into memory that is not RAM)."""


@dataclass(frozen=True)
class MonitorCommand:
    """A `monitor NAME [ARGS]` command.

    `run(args)` gets the rest of the line after the name (stripped, maybe
    empty) and returns the text to print (it may span lines). It runs while
    the vCPU is stopped; an exception it raises is printed, not propagated.
    """

    help: str
    run: Callable[[str], str] = field(compare=False)


class DebugTarget(Protocol):
    """One vCPU of a VM, as the gdb stub drives it.

    Threading: `run()` is called on the vCPU thread; `kick()` from any
    thread while run() is in progress. Every other method is called only
    while no run() is in progress (the vCPU is stopped), from the stub's
    connection thread.
    """

    def get_one_reg(self, reg_id: int) -> int:
        """KVM_GET_ONE_REG: the register's value as an unsigned integer.

        Raises an exception (KVM's RegisterAccessError) for an unknown id;
        the stub reports that register as unavailable.
        """
        ...

    def set_one_reg(self, reg_id: int, value: int) -> None:
        """KVM_SET_ONE_REG; raises for an unknown id or a value the register cannot hold."""
        ...

    def set_guest_debug(self, debug: GuestDebug) -> None:
        """KVM_SET_GUEST_DEBUG: replace the whole debug state for the following run() calls.

        Raises GuestDebugError when the hypervisor cannot honour it (too many
        hardware breakpoints or watchpoints, an unsupported length); the
        previous state then stays in force.
        """
        ...

    def translate(self, gva: int) -> int | None:
        """KVM_TRANSLATE: the guest-physical address of `gva` as the guest's MMU maps it now.

        Uses the guest's current address space (ASID/GuestID, segment
        configuration, guest TLB or page tables) without changing any guest
        state and without taking a guest exception; None if unmapped.
        """
        ...

    def read_gpa(self, gpa: int, size_bytes: int) -> bytes:
        """Read guest RAM; GuestMemoryError if any byte is outside RAM."""
        ...

    def write_gpa(self, gpa: int, data: bytes) -> None:
        """Write guest RAM (dirty-logged, translated code invalidated); GuestMemoryError if outside RAM."""
        ...

    def run(self) -> DebugExit:
        """Run the vCPU under the current GuestDebug until something for the debugger happens.

        Device exits (MMIO, port I/O, halts waiting for an interrupt) are
        handled inside, as the VMM's vCPU loop does; run() returns only for
        a debug exit, after kick(), or when the VM ends. The first
        instruction executed never reports a breakpoint at its own address,
        so resuming from a breakpoint makes progress.
        """
        ...

    def kick(self) -> None:
        """Make an in-progress run() return INTERRUPTED soon (or the next run() at once). Thread-safe."""
        ...

    def monitor_commands(self) -> Mapping[str, MonitorCommand]:
        """The `monitor` commands this target offers (kvmpy's own state: stats, TLBs...)."""
        ...
