"""Guest debugging in the KVM API: KVM_SET_GUEST_DEBUG's argument and KVM_TRANSLATE's answer.

Architecture-neutral: addresses are guest virtual (breakpoints, watchpoints,
translate's argument) or guest physical (translate's answer); how a backend
compares them is its business (the MIPS core models EJTAG-like comparators).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class WatchKind(Enum):
    """Which data accesses a watchpoint stops on (gdb's Z2 write, Z3 read, Z4 access)."""

    WRITE = "write"
    READ = "read"
    ACCESS = "access"


@dataclass(frozen=True)
class Watchpoint:
    """A data watchpoint on the guest-virtual range [gva, gva + length_bytes)."""

    gva: int
    length_bytes: int
    kind: WatchKind


@dataclass(frozen=True)
class GuestDebug:
    """The argument of KVM_SET_GUEST_DEBUG: what the hypervisor watches for in the next run() calls.

    - `enable`: False turns all debugging off (the other fields are ignored).
    - `single_step`: run() returns DebugExit(SINGLE_STEP) after one guest
      instruction (a branch and its delay slot are one; an instruction the
      hypervisor emulates is one; an exception taken instead is one, with
      `pc` at its vector).
    - `sw_breakpoints`: guest-virtual PCs compared by the hypervisor before
      each instruction; guest memory is never written, so the guest cannot
      see or overwrite them.
    - `hw_breakpoints`: the same check, modelling instruction-breakpoint
      registers (at most `Cap.GUEST_DEBUG_HW_BPS`).
    - `watchpoints`: a load/store overlapping a range stops the vCPU before
      the access happens (at most `Cap.GUEST_DEBUG_HW_WPS`).

    Addresses match in every guest address space (kernel and user, any
    ASID), as x86's debug registers do.
    """

    enable: bool = False
    single_step: bool = False
    sw_breakpoints: frozenset[int] = frozenset()
    hw_breakpoints: frozenset[int] = frozenset()
    watchpoints: tuple[Watchpoint, ...] = ()


class DebugKind(Enum):
    """Why a DebugExit happened."""

    SW_BREAKPOINT = "swbreak"
    HW_BREAKPOINT = "hwbreak"
    WATCHPOINT = "watch"
    SINGLE_STEP = "step"
    GUEST_BREAK = "guest_break"   # the guest executed its own breakpoint instruction (MIPS SDBBP)


@dataclass(frozen=True)
class Translation:
    """KVM_TRANSLATE's answer: where a guest virtual address goes now."""

    gpa: int
    writeable: bool
    usermode: bool
