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

The set is closed: a backend returns only these types. Some exist for one
family of architectures only, as in Linux: `IoExit` (port I/O, x86),
`DcrExit` (device control registers, PowerPC Book E) and `PaprHcallExit`
(PAPR hypercalls, POWER). A VMM handles the generic ones the same way for
every machine and passes the architecture's own to its board.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from kvmpy.kvm.debug import DebugKind, WatchKind


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
    DCR = "dcr"
    PAPR_HCALL = "papr_hcall"


@dataclass(slots=True)
class MmioExit:
    """KVM_EXIT_MMIO: the guest accessed a guest-physical address that is not RAM.

    `phys_addr` is the guest physical address, `length` 1, 2, 4 or 8 bytes.
    `data` holds bytes in the order they have in guest memory, as Linux's
    `kvm_run.mmio.data`: for a write, the bytes the guest stored; for a
    read, the VMM must fill `data` (exactly `length` bytes) before the next
    `run()`, and the hypervisor loads them into the destination register as
    the guest's load instruction would (with the guest's byte order and sign
    extension), then resumes after the faulting instruction (branch delay
    slots included). What the bytes mean as a number is the device's
    business: a device knows its own register byte order, the hypervisor
    does not.
    """

    phys_addr: int
    length: int
    is_write: bool
    data: bytearray
    reason: ExitReason = field(default=ExitReason.MMIO, init=False)


@dataclass(slots=True)
class IoExit:
    """KVM_EXIT_IO: an access to the I/O port space (x86 in/out), separate from memory.

    `port` is the port number, `size` 1, 2 or 4 bytes. `data` holds the
    bytes written, or receives the bytes read (filled by the VMM before the
    next `run()`), in the guest's memory byte order as for `MmioExit`.
    Architectures without port I/O (MIPS, PowerPC) never return it.
    """

    port: int
    size: int
    is_write: bool
    data: bytearray
    reason: ExitReason = field(default=ExitReason.IO, init=False)


@dataclass(slots=True)
class HypercallExit:
    """KVM_EXIT_HYPERCALL: a hypercall the hypervisor does not handle itself.

    `nr` is the call number, `args` the arguments, in the registers the
    architecture's convention names (MIPS: v0 and a0..a3). The VMM sets
    `ret`, which the guest receives in the result register (MIPS: v0) when
    the vCPU next runs.
    """

    nr: int
    args: tuple[int, ...]
    ret: int = 0
    reason: ExitReason = field(default=ExitReason.HYPERCALL, init=False)


@dataclass(slots=True)
class DcrExit:
    """KVM_EXIT_DCR: a PowerPC Book E `mfdcr`/`mtdcr` the hypervisor left to the VMM.

    Device control registers are a bus of their own on the 440 (numbered
    `dcrn`, 32 bits each), beside memory. For a write (`is_write`), `data`
    is the value written. For a read, the VMM sets `data` before the next
    `run()`; the guest receives it in the instruction's target register.
    """

    dcrn: int
    is_write: bool
    data: int = 0
    reason: ExitReason = field(default=ExitReason.DCR, init=False)


@dataclass(slots=True)
class PaprHcallExit:
    """KVM_EXIT_PAPR_HCALL: a PAPR hypercall (POWER `sc 1`) the hypervisor left to the VMM.

    `nr` is the hypercall number (the guest's r3), `args` its arguments (r4
    onwards). The VMM sets `ret` (the H_* status), which the guest receives
    in r3 when the vCPU next runs.
    """

    nr: int
    args: tuple[int, ...]
    ret: int = 0
    reason: ExitReason = field(default=ExitReason.PAPR_HCALL, init=False)


@dataclass(slots=True)
class HaltExit:
    """KVM_EXIT_HLT: the guest waits for an interrupt that nothing can deliver.

    The hypervisor blocks a waiting vCPU by itself while a timer or an
    interrupt line can wake it; this exit means the guest masked every
    interrupt source and then waited (MIPS `wait`, PowerPC MSR[WE], x86 `hlt`).
    `pc` is where the guest resumes.
    """

    pc: int
    reason: ExitReason = field(default=ExitReason.HALT, init=False)


@dataclass(slots=True)
class ShutdownExit:
    """KVM_EXIT_SYSTEM_EVENT(SHUTDOWN): the guest asked to power off (e.g. a hypercall)."""

    why: str
    reason: ExitReason = field(default=ExitReason.SHUTDOWN, init=False)


@dataclass(slots=True)
class ResetExit:
    """KVM_EXIT_SYSTEM_EVENT(RESET): the guest asked for a reset."""

    why: str
    reason: ExitReason = field(default=ExitReason.RESET, init=False)


@dataclass(slots=True)
class DebugExit:
    """KVM_EXIT_DEBUG: a debug event at guest `pc`.

    `kind` GUEST_BREAK (the default): the guest executed its breakpoint
    instruction (MIPS SDBBP); the next `run()` resumes after it. The other
    kinds come from `Vcpu.set_guest_debug`: a breakpoint (the instruction
    at `pc` has not executed), a single step (`pc` is the next
    instruction), a watchpoint (the access at `pc` has not happened;
    `watch_gva` is the matched watchpoint's address, `watch_kind` READ or
    WRITE for the access). The next `run()` resumes at `pc`.
    """

    pc: int
    kind: DebugKind = DebugKind.GUEST_BREAK
    watch_gva: int | None = None
    watch_kind: WatchKind | None = None
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
    | DcrExit
    | PaprHcallExit
    | HypercallExit
    | HaltExit
    | ShutdownExit
    | ResetExit
    | DebugExit
    | InternalErrorExit
    | InterruptedExit
)
