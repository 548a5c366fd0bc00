"""The architecture backend protocol: what `kvmpy.kvm` asks of an architecture.

`kvmpy.kvm` is the generic half of the hypervisor (Linux's virt/kvm): the
objects of the API, the memory-slot table, the dirty log, the run loop with
its requests and kicks, the exit types. Everything that depends on what the
guest's CPU is lives in a backend (Linux's `kvm_arch_*` hooks, arch/*/kvm):
which VM types and capabilities exist, how a vCPU runs and what its
registers are, what an interrupt number means. The generic layer never
names an architecture; it finds a backend by name through
`kvmpy.kvm.backends` and talks to it only through the protocols below.

Four objects, one per level of the API:

- `Backend`: the architecture itself, a module-level object found by name.
- `ArchHost`: one simulated host of that architecture (one per `Kvm`): its
  physical memory, its identifiers shared by all VMs (e.g. MIPS GuestIDs).
- `ArchVm`: the architecture's part of one VM (Linux: `struct kvm_arch`).
- `ArchVcpu`: the architecture's part of one vCPU (Linux:
  `struct kvm_vcpu_arch`), which runs guest code.

Threading: the generic layer serialises `ArchVm` calls under the VM's lock
and calls an `ArchVcpu` from the thread that runs it, except for the methods
documented as thread-safe (`kick`, `irq_line`, `interrupt`).

Errors: a backend raises the `kvmpy.kvm.errors` class of the operation
(CreateVmError, MemoryRegionError, RegisterAccessError, ...), never a bare
Python exception for input the VMM passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from kvmpy.kvm.debug import GuestDebug, Translation
from kvmpy.kvm.exits import Exit
from kvmpy.kvm.memory import MemorySlot, SlotTable
from kvmpy.kvm.settings import JitSettings
from kvmpy.kvm.stats import VcpuStats

WaitForWakeup = Callable[[float | None], bool]
"""Block the vCPU thread until something wakes it or `timeout_s` passes (None: no timeout).

Pending requests (interrupt lines, flushes) are applied before it returns.
Returns True if a kick asked `run()` to return to the VMM.
"""


@dataclass(frozen=True)
class VcpuServices:
    """What the generic vCPU lends its backend half.

    `stats` is the vCPU's counter set: the backend counts its lightweight
    exits in `stats.traps`, sets `stats.instructions_source` to read the
    guest instructions its core retired, and may set `stats.jit_source`. `wait_for_wakeup`
    is how a backend sleeps while the guest waits for an interrupt (see
    `WaitForWakeup`).
    """

    vcpu_id: int
    stats: VcpuStats
    wait_for_wakeup: WaitForWakeup


class Backend(Protocol):
    """An architecture: the object `kvmpy.arch.<name>.backend` exports as `BACKEND`.

    `arch` is the name `Kvm(arch=...)` takes ("mips"). Importing the module
    must not need anything compiled: a backend whose simulated core is not
    built raises `kvmpy.kvm.errors.CreateVmError` (or reports the affected
    capabilities as 0) when asked for a VM, not on import.
    """

    arch: str

    def create_host(self, jit: JitSettings) -> ArchHost:
        """The simulated host of one `Kvm`: its physical memory and host-wide state.

        `jit` says how the host's cores run guest code; a backend without a
        block translator ignores it.
        """
        ...


class ArchHost(Protocol):
    """One host of the architecture (one `Kvm`): shared by every VM it creates.

    Linux's counterpart is the hardware plus `kvm_arch_init`: what exists
    once per machine (host physical memory, the pool of GuestIDs or VMIDs).
    """

    max_vcpus: int
    """How many vCPUs one VM may have (KVM_CAP_MAX_VCPUS); ids are 0..max_vcpus-1."""

    def check_extension(self, cap: int) -> int:
        """KVM_CHECK_EXTENSION for what the architecture decides: 0 if unsupported.

        The generic layer answers the capabilities it implements itself
        (USER_MEMORY, NR_MEMSLOTS, IMMEDIATE_EXIT, ...) and asks the backend
        for everything else, including the architecture's own capabilities
        (from its uapi module) and generic ones whose support depends on the
        backend (ONE_REG, READONLY_MEM, NR_VCPUS, MAX_VCPUS).
        """
        ...

    def create_vm(self, vm_type: int, slots: SlotTable) -> ArchVm:
        """KVM_CREATE_VM: the architecture's part of a new VM.

        `vm_type` is a value of the architecture's VM-type enum; 0 always
        means "the default kind" (as in Linux). `slots` is the VM's slot
        table, which the generic layer keeps up to date and the backend only
        reads. Raises CreateVmError for an unknown type, a type this host
        cannot run, or a host out of per-VM resources.
        """
        ...


class ArchVm(Protocol):
    """The architecture's part of one VM (Linux: `struct kvm_arch` and the kvm_arch_vm hooks)."""

    vm_type: int
    """The VM type actually created (the default resolved), a member of the arch's enum."""

    gpa_space_bytes: int
    """Size of the guest physical address space: no memory slot may reach beyond it."""

    def enable_cap(self, cap: int, arg: int) -> None:
        """KVM_ENABLE_CAP on the VM; raises EnableCapError if `cap` or `arg` is not supported here.

        Affects the VM's existing vCPUs at once.
        """
        ...

    def prepare_memory_region(self, slot: MemorySlot) -> None:
        """Pin a new slot's buffer before the slot becomes visible (kvm_arch_prepare_memory_region).

        A backend on a simulated host attaches `slot.buffer` to the host's
        physical memory and records where in `slot.hpa`. Raises
        MemoryRegionError if the host cannot take it.
        """
        ...

    def release_memory_region(self, slot: MemorySlot) -> None:
        """Unpin a deleted slot's buffer; called after every vCPU dropped its mappings of it."""
        ...

    def create_vcpu(self, services: VcpuServices) -> ArchVcpu:
        """KVM_CREATE_VCPU: the architecture's part of a vCPU, in its reset state.

        Raises CreateVcpuError if the vCPU cannot be built (e.g. a block
        translator was asked for and its library is missing).
        """
        ...


class ArchVcpu(Protocol):
    """The architecture's part of one vCPU: it runs guest code and owns the registers.

    The generic `Vcpu.run()` loop is, per time slice:

        apply requests (flush_mappings, deliver_interrupts); return on a kick
        exit = arch.run(budget)      # None: nothing for the VMM, go on

    so `run` is called once per root-level event and must not do more than
    enter the guest and handle what made it leave. (Counting is the
    backend's: lightweight exits in `stats.traps`, retired instructions
    through `stats.instructions_source`.)
    """

    def run(self, budget: int) -> Exit | None:
        """Run the guest for at most about `budget` instructions.

        Returns the exit for the VMM, or None when the guest only stopped for
        the hypervisor (a lightweight exit it handled, the budget, a kick).
        A returned exit that needs an answer (MMIO or port read, hypercall,
        DCR read) is completed by `complete_pending` before the next `run`.
        """
        ...

    def complete_pending(self) -> None:
        """Finish the previous exit from the fields the VMM filled in (KVM_RUN's entry).

        Writes an MMIO read's data or a hypercall's return value into the
        guest's registers and moves past the instruction. Nothing to do
        when the previous exit needed no answer.
        """
        ...

    def kick(self) -> None:
        """Make a `run` in progress on another thread return soon. Thread-safe."""
        ...

    def flush_mappings(self) -> None:
        """Forget every guest-physical mapping (the slots changed or the dirty log was re-armed).

        Called on the vCPU's thread, between two `run`s.
        """
        ...

    def irq_line(self, irq: int, level: bool) -> bool:
        """KVM_IRQ_LINE for this vCPU: set interrupt input `irq` (the architecture's numbering).

        Records the new level only; returns True if it changed, and the
        generic layer then calls `deliver_interrupts` on the vCPU's thread.
        Raises InterruptError for a number the architecture does not have.
        Thread-safe.
        """
        ...

    def interrupt(self, irq: int) -> bool:
        """KVM_INTERRUPT with the architecture's meaning of `irq` (recorded as for `irq_line`).

        Returns True if the interrupt state changed. Raises InterruptError
        for a value the architecture does not define. Thread-safe.
        """
        ...

    def deliver_interrupts(self) -> None:
        """Make the recorded interrupt lines visible to the guest's CPU (vCPU thread)."""
        ...

    def get_regs(self) -> Any:
        """KVM_GET_REGS: the architecture's `Regs` (defined in its uapi module)."""
        ...

    def set_regs(self, regs: Any) -> None:
        """KVM_SET_REGS from the architecture's `Regs`; RegisterAccessError if malformed."""
        ...

    def get_one_reg(self, reg_id: int) -> int:
        """KVM_GET_ONE_REG by the architecture's ONE_REG id; RegisterAccessError if unknown."""
        ...

    def set_one_reg(self, reg_id: int, value: int) -> None:
        """KVM_SET_ONE_REG; RegisterAccessError for an unknown id or a value that does not fit."""
        ...

    def set_guest_debug(self, debug: GuestDebug) -> None:
        """KVM_SET_GUEST_DEBUG (the whole state; see `kvmpy.kvm.Vcpu.set_guest_debug`).

        Raises GuestDebugError, keeping the previous state, when the request
        exceeds the hardware's comparators.
        """
        ...

    def debug_resume_latch(self) -> None:
        """Called at each KVM_RUN entry while debugging is enabled: the next instruction may not stop
        at a breakpoint at its own address (x86's EFLAGS.RF)."""
        ...

    def translate(self, gva: int) -> Translation | None:
        """KVM_TRANSLATE without side effects (see `kvmpy.kvm.Vcpu.translate`)."""
        ...

    def tlb_snapshot(self) -> Mapping[str, Sequence[str]]:
        """Named tables of formatted TLB entries, for `Vcpu.tlb_snapshot`."""
        ...
