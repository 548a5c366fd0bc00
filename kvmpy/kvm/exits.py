"""The closed set of values `Vcpu.run()` returns.

Linux's KVM_RUN fills `struct kvm_run` with an `exit_reason` and a union of
per-reason data. Here each reason is its own frozen-shape dataclass, and the
union is the `Exit` type alias. A VMM dispatches with `match`:

    match vcpu.run():
        case MmioExit(is_write=False) as e:
            e.data[:] = bus.read(e.phys_addr, e.length)
        case HaltExit():
            ...

Exits that need an answer (an MMIO read's data, a hypercall's return value)
are completed by filling the exit object's fields before the next `run()`,
exactly as QEMU fills `kvm_run->mmio.data` before re-entering.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class ExitReason(Enum):
    MMIO = "mmio"
    IO = "io"
    HYPERCALL = "hypercall"
    HALT = "halt"
    SHUTDOWN = "shutdown"
    RESET = "reset"
    DEBUG = "debug"
    INTERNAL_ERROR = "internal_error"
    INTR = "intr"


@dataclass(slots=True)
class MmioExit:
    """KVM_EXIT_MMIO: the guest accessed a guest-physical address that is not RAM.

    `phys_addr` is the guest physical address, `length` 1, 2 or 4 bytes.
    For a write, `data` holds the bytes written (little-endian, as in
    memory). For a read, the VMM must fill `data` (exactly `length` bytes)
    before the next `run()`; the hypervisor then writes the value into the
    destination register and resumes after the faulting instruction (branch
    delay slots included).
    """

    phys_addr: int
    length: int
    is_write: bool
    data: bytearray
    reason: ExitReason = field(default=ExitReason.MMIO, init=False)


@dataclass(slots=True)
class IoExit:
    """KVM_EXIT_IO: port I/O. MIPS has none; the value exists for the x86 backend."""

    port: int
    size: int
    is_write: bool
    data: bytearray
    reason: ExitReason = field(default=ExitReason.IO, init=False)


@dataclass(slots=True)
class HypercallExit:
    """KVM_EXIT_HYPERCALL: a hypercall the hypervisor does not handle itself.

    `nr` is the call number (v0), `args` the arguments (a0..a3). The VMM sets
    `ret`, which the guest receives in v0 when the vCPU next runs.
    """

    nr: int
    args: tuple[int, ...]
    ret: int = 0
    reason: ExitReason = field(default=ExitReason.HYPERCALL, init=False)


@dataclass(slots=True)
class HaltExit:
    """KVM_EXIT_HLT: the guest waits for an interrupt that nothing can deliver.

    The hypervisor blocks a waiting vCPU by itself while a timer or an
    interrupt line can wake it; this exit means the guest masked every
    interrupt source and then executed WAIT.
    """

    pc: int
    reason: ExitReason = field(default=ExitReason.HALT, init=False)


@dataclass(slots=True)
class ShutdownExit:
    """KVM_EXIT_SYSTEM_EVENT(SHUTDOWN): the guest asked to power off (hypercall EXIT_VM)."""

    why: str
    reason: ExitReason = field(default=ExitReason.SHUTDOWN, init=False)


@dataclass(slots=True)
class ResetExit:
    """KVM_EXIT_SYSTEM_EVENT(RESET): the guest asked for a reset."""

    why: str
    reason: ExitReason = field(default=ExitReason.RESET, init=False)


@dataclass(slots=True)
class DebugExit:
    """KVM_EXIT_DEBUG: the guest hit a debug breakpoint (SDBBP) at `pc`.

    The next `run()` resumes after the breakpoint instruction.
    """

    pc: int
    reason: ExitReason = field(default=ExitReason.DEBUG, init=False)


@dataclass(slots=True)
class InternalErrorExit:
    """KVM_EXIT_INTERNAL_ERROR: the hypervisor met something it cannot emulate.

    The VM cannot continue meaningfully; `message` says why in one line and
    `pc` is the guest instruction involved.
    """

    message: str
    pc: int
    reason: ExitReason = field(default=ExitReason.INTERNAL_ERROR, init=False)


@dataclass(slots=True)
class InterruptedExit:
    """KVM_EXIT_INTR: `run()` returned because `Vcpu.kick()` asked it to."""

    reason: ExitReason = field(default=ExitReason.INTR, init=False)


Exit = (
    MmioExit
    | IoExit
    | HypercallExit
    | HaltExit
    | ShutdownExit
    | ResetExit
    | DebugExit
    | InternalErrorExit
    | InterruptedExit
)
