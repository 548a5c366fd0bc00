"""The KVM API: the only door between a VMM and the hypervisor.

The shape follows Linux's /dev/kvm (Documentation/virt/kvm/api.rst): a system
object (`Kvm`, the open /dev/kvm), VM objects (`Vm`, the fd KVM_CREATE_VM
returns) and vCPU objects (`Vcpu`, the fd KVM_CREATE_VCPU returns). Each
method names the ioctl it stands for. Errors are exceptions from
`kvmpy.kvm.errors`; exits are values from `kvmpy.kvm.exits`.

This module is generic: what depends on the guest's architecture (VM types,
registers, what an interrupt number means, how guest code runs) is asked of
the backend `Kvm(arch=...)` loads (`kvmpy.kvm.backend`). The architecture's
own constants (VM types, capabilities, ONE_REG ids, `Regs`) are in its uapi
module, e.g. `kvmpy.arch.mips.uapi`.

Threading: like Linux, each vCPU is meant to be run by one thread at a time;
`Vcpu.kick()`, `Vcpu.interrupt()` and `Vm` calls may come from any thread.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from enum import IntEnum
from typing import Any

from kvmpy.kvm.backend import ArchHost, ArchVcpu, ArchVm, Backend, VcpuServices
from kvmpy.kvm.backends import load_backend
from kvmpy.kvm.debug import GuestDebug, Translation
from kvmpy.kvm.errors import CreateVcpuError, GuestDebugError, InterruptError, MemoryRegionError, RunError
from kvmpy.kvm.exits import Exit, InterruptedExit
from kvmpy.kvm.memory import MAX_SLOTS, MemFlags, MemorySlot, SlotTable
from kvmpy.kvm.settings import JitSettings
from kvmpy.kvm.stats import VcpuStats

KVM_API_VERSION = 12
# Instructions the core runs before the hypervisor looks at requests again
# (the host timer tick; a kick cuts it short).
TIME_SLICE_INSNS = 4_000_000


class Cap(IntEnum):
    """KVM_CHECK_EXTENSION capabilities every architecture may have (Linux numbering).

    An architecture's own capabilities are in its uapi module (e.g.
    `kvmpy.arch.mips.uapi.Cap`); `Kvm.check_extension` takes either.
    """

    IRQCHIP = 0
    USER_MEMORY = 3
    NR_VCPUS = 9
    NR_MEMSLOTS = 10
    SYNC_MMU = 16
    MAX_VCPUS = 66
    ONE_REG = 70
    READONLY_MEM = 81
    SET_GUEST_DEBUG = 23
    IMMEDIATE_EXIT = 136
    GUEST_DEBUG_HW_BPS = 119
    GUEST_DEBUG_HW_WPS = 120


# What the generic layer implements itself, whatever the backend.
_GENERIC_CAPS: dict[int, int] = {
    Cap.USER_MEMORY: 1,
    Cap.NR_MEMSLOTS: MAX_SLOTS,
    Cap.IMMEDIATE_EXIT: 1,
}


class Kvm:
    """The hypervisor itself (an open /dev/kvm) on one simulated host of architecture `arch`.

    One `Kvm` is one host: its physical memory is shared by all the VMs it
    creates. `arch` names the backend ("mips"); an unknown name raises
    UnknownArchitectureError listing the known ones. `jit` says how that
    host's cores run guest code: hot blocks translated to host code (the
    default) or everything interpreted; like a kvm module parameter it holds
    for every VM and vCPU of this `Kvm`. `Vm.create_vcpu` raises
    CreateVcpuError if translation is asked for and its library (llvmlite)
    cannot be loaded.
    """

    def __init__(self, arch: str = "mips", jit: JitSettings | None = None) -> None:
        self.arch = arch
        self.jit = jit if jit is not None else JitSettings()
        self._backend: Backend = load_backend(arch)
        self._host: ArchHost = self._backend.create_host(self.jit)

    def api_version(self) -> int:
        """KVM_GET_API_VERSION: always 12, as in Linux."""
        return KVM_API_VERSION

    def check_extension(self, cap: int) -> int:
        """KVM_CHECK_EXTENSION: 0 if unsupported, else a positive value (a count where it is one).

        `cap` is a generic `Cap` or one of the architecture's (its uapi `Cap`).
        """
        value = _GENERIC_CAPS.get(cap)
        return value if value is not None else self._host.check_extension(cap)

    def create_vm(self, vm_type: int = 0) -> Vm:
        """KVM_CREATE_VM: a new VM with no memory and no vCPUs.

        `vm_type` is one of the architecture's VM types (its uapi `VmType`);
        0 is the architecture's default. Raises CreateVmError for a type the
        architecture does not have or this host cannot run.
        """
        slots = SlotTable()
        arch_vm = self._host.create_vm(int(vm_type), slots)
        slots.gpa_space_bytes = arch_vm.gpa_space_bytes
        return Vm(self, arch_vm, slots)


class Vm:
    """A virtual machine: memory slots, vCPUs and interrupt lines."""

    def __init__(self, kvm: Kvm, arch_vm: ArchVm, slots: SlotTable) -> None:
        self.kvm = kvm
        self.arch = arch_vm
        self.slots = slots
        self.vcpus: dict[int, Vcpu] = {}
        self._lock = threading.RLock()

    @property
    def vm_type(self) -> int:
        """The VM's type, as the architecture's `VmType` (the default resolved)."""
        return self.arch.vm_type

    def enable_cap(self, cap: int, arg: int) -> None:
        """KVM_ENABLE_CAP on the VM: switch an optional behaviour of the architecture on or off.

        What exists is the architecture's (e.g. `Cap.MIPS_TE_DYNTRANS` in
        kvmpy.arch.mips.uapi). Affects existing vCPUs at once. Raises
        EnableCapError for a capability or argument the VM does not support.
        """
        with self._lock:
            self.arch.enable_cap(cap, arg)

    # ------------------------------------------------------------------ memory
    def set_user_memory_region(
        self,
        slot: int,
        guest_phys_addr: int,
        memory_size: int,
        userspace: object | None,
        flags: MemFlags = MemFlags.NONE,
    ) -> None:
        """KVM_SET_USER_MEMORY_REGION: create, change or delete a memory slot.

        Maps guest physical `[guest_phys_addr, guest_phys_addr + memory_size)`
        onto the writable buffer `userspace` (an mmap or anything with the
        buffer protocol), without copying. `memory_size == 0` deletes the
        slot. An existing slot may only change its flags (its address and
        size are fixed, as Linux requires). Flags:

        - `MemFlags.READONLY`: guest writes become MMIO write exits.
        - `MemFlags.LOG_DIRTY_PAGES`: guest writes are recorded per 4 KiB
          page, see `get_dirty_log`.

        Raises MemoryRegionError for misaligned, out-of-range or
        too-small buffers, MemoryRegionOverlapError for overlaps.
        """
        view = self.slots.validate(slot, int(flags), guest_phys_addr, memory_size, userspace)
        with self._lock:
            old = self.slots.get(slot)
            if view is None:
                if old is None:
                    # Linux: EINVAL. A zero size only deletes an existing slot.
                    raise MemoryRegionError(f"memory_size 0 for slot {slot}, which does not exist")
                self.slots.remove(old.slot)
                self._flush_all_vcpus()
                self.arch.release_memory_region(old)
                return
            if old is not None:
                if old.gpa != guest_phys_addr or old.size != memory_size:
                    raise MemoryRegionError(
                        f"slot {slot} exists at {old.gpa:#x}+{old.size:#x}; "
                        "delete it before moving or resizing"
                    )
                if (flags & MemFlags.READONLY) != (old.flags & MemFlags.READONLY):
                    raise MemoryRegionError("the READONLY flag of an existing slot cannot change")
                old.flags = MemFlags(flags)
                old.dirty = bytearray((old.npages + 7) // 8)
                self._flush_all_vcpus()
                return
            self.slots.check_overlap(slot, guest_phys_addr, memory_size)
            new = MemorySlot(slot, MemFlags(flags), guest_phys_addr, memory_size, view)
            self.arch.prepare_memory_region(new)
            new.dirty = bytearray((new.npages + 7) // 8)
            self.slots.insert(new)
            self._flush_all_vcpus()

    def get_dirty_log(self, slot: int) -> bytes:
        """KVM_GET_DIRTY_LOG: pages of `slot` written since the last call, then re-arm.

        Returns a bitmap, bit `i` (byte `i // 8`, bit `i % 8`) for the slot's
        page `i`. Only guest writes count (the VMM's own writes do not, as in
        Linux). The log is cleared and every vCPU's write access to the slot
        is revoked so that the next guest write is caught again.
        Raises DirtyLogError if the slot does not exist or does not log.
        """
        with self._lock:
            bitmap = self.slots.take_dirty_log(slot)
            self._flush_all_vcpus()
        return bitmap

    def _flush_all_vcpus(self) -> None:
        for v in self.vcpus.values():
            v._request_flush()

    # ------------------------------------------------------------------ vCPUs
    def create_vcpu(self, vcpu_id: int) -> Vcpu:
        """KVM_CREATE_VCPU: a vCPU in its reset state (PC at the architecture's reset vector).

        Raises CreateVcpuError for an id outside 0..MAX_VCPUS-1 (see
        `check_extension(Cap.MAX_VCPUS)`), a duplicate id, or a vCPU the
        backend cannot build.
        """
        with self._lock:
            max_vcpus = self.kvm._host.max_vcpus
            if not 0 <= vcpu_id < max_vcpus:
                raise CreateVcpuError(f"vcpu id {vcpu_id} out of range 0..{max_vcpus - 1}")
            if vcpu_id in self.vcpus:
                raise CreateVcpuError(f"vcpu {vcpu_id} already exists")
            vcpu = Vcpu(self, vcpu_id)
            self.vcpus[vcpu_id] = vcpu
            return vcpu

    # ------------------------------------------------------------------ interrupts
    def irq_line(self, irq: int, level: bool, vcpu_id: int = 0) -> None:
        """KVM_IRQ_LINE: drive interrupt input `irq` of vCPU `vcpu_id` to `level`.

        The numbering is the architecture's (MIPS: pins IP2..IP7 as 2..7).
        Raises InterruptError for an unknown number or vCPU. Thread-safe.
        """
        vcpu = self.vcpus.get(vcpu_id)
        if vcpu is None:
            raise InterruptError(f"irq_line for vcpu {vcpu_id}, which does not exist")
        if vcpu.arch.irq_line(irq, level):
            vcpu._request_interrupt_update()


class Vcpu:
    """A virtual CPU: run it, read and write its registers, interrupt it.

    `arch` is the backend's half of the vCPU (kvmpy.kvm.backend.ArchVcpu).
    It is there for the backend's own tests and benchmarks; a VMM uses only
    the methods below.
    """

    def __init__(self, vm: Vm, vcpu_id: int) -> None:
        self.vm = vm
        self.vcpu_id = vcpu_id
        self.stats = VcpuStats()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._kick_requested = False
        self._flush_requested = False
        self._irq_dirty = False
        self.immediate_exit = False
        self._debug_enabled = False
        self.arch: ArchVcpu = vm.arch.create_vcpu(VcpuServices(vcpu_id, self.stats, self._wait_for_wakeup))

    # ------------------------------------------------------------------ run
    def run(self) -> Exit:
        """KVM_RUN: run the guest until something needs the VMM; return that exit.

        Before running, completes the previous exit (an MMIO read's data, a
        hypercall's return value) from the exit object the VMM filled in.
        If `immediate_exit` is set, returns InterruptedExit without running
        (after completing the previous exit), as KVM_CAP_IMMEDIATE_EXIT.
        Raises RunError if another thread is running this vCPU.
        """
        if not self._lock.acquire(blocking=False):
            raise RunError(f"vcpu {self.vcpu_id} is already running in another thread")
        arch = self.arch
        try:
            if self._debug_enabled:
                arch.debug_resume_latch()
            arch.complete_pending()
            if self.immediate_exit:
                self.stats.exits["intr"] += 1
                return InterruptedExit()
            while True:
                self._service_requests()
                if self._kick_requested:
                    self._kick_requested = False
                    self.stats.exits["intr"] += 1
                    return InterruptedExit()
                exit_ = arch.run(TIME_SLICE_INSNS)
                if exit_ is not None:
                    self.stats.exits[exit_.reason.value] += 1
                    return exit_
        finally:
            self._lock.release()

    def kick(self) -> None:
        """Make a running (or blocked) `run()` return InterruptedExit soon. Thread-safe."""
        self._kick_requested = True
        self.arch.kick()
        self._wake.set()

    # Requests (Linux: kvm_make_request): work another thread asks of this
    # vCPU, done on its own thread before it next enters the guest. A vCPU
    # that is not running does it at once.
    def _request_flush(self) -> None:
        self._flush_requested = True
        self._make_request()

    def _request_interrupt_update(self) -> None:
        self._irq_dirty = True
        self._make_request()

    def _make_request(self) -> None:
        if self._lock.locked():
            self.arch.kick()
            self._wake.set()
        else:
            self._service_requests()

    def _service_requests(self) -> None:
        if self._flush_requested:
            self._flush_requested = False
            self.arch.flush_mappings()
        if self._irq_dirty:
            self._irq_dirty = False
            self.arch.deliver_interrupts()

    def _wait_for_wakeup(self, timeout_s: float | None) -> bool:
        self._wake.wait(timeout_s)
        self._wake.clear()
        self._service_requests()
        return self._kick_requested

    # ------------------------------------------------------------------ interrupts
    def interrupt(self, irq: int) -> None:
        """KVM_INTERRUPT with the architecture's meaning of `irq`. Thread-safe.

        MIPS: `irq` > 0 raises guest pin IP`irq`, `irq` < 0 lowers it (2..7).
        Raises InterruptError (a ValueError) for a value the architecture
        does not define.
        """
        if self.arch.interrupt(irq):
            self._request_interrupt_update()

    # ------------------------------------------------------------------ registers
    def get_regs(self) -> Any:
        """KVM_GET_REGS: the architecture's `Regs` (e.g. kvmpy.arch.mips.uapi.Regs)."""
        return self.arch.get_regs()

    def set_regs(self, regs: Any) -> None:
        """KVM_SET_REGS from the architecture's `Regs`. Raises RegisterAccessError if malformed."""
        self.arch.set_regs(regs)

    def get_one_reg(self, reg_id: int) -> int:
        """KVM_GET_ONE_REG by the architecture's ONE_REG id. Raises RegisterAccessError if unknown."""
        return self.arch.get_one_reg(reg_id)

    def set_one_reg(self, reg_id: int, value: int) -> None:
        """KVM_SET_ONE_REG. Raises RegisterAccessError for an unknown id or a value that does not fit."""
        self.arch.set_one_reg(reg_id, value)

    # ------------------------------------------------------------------ debugging
    def set_guest_debug(self, debug: GuestDebug) -> None:
        """KVM_SET_GUEST_DEBUG: replace the whole debug state; it applies from the next run().

        Breakpoints are compared by the hypervisor, never written into guest
        memory. The first instruction each run() executes never stops at a
        breakpoint at its own address (so continuing from one makes progress);
        every later one is checked. Raises GuestDebugError if the request
        exceeds what the hypervisor offers (Cap.GUEST_DEBUG_HW_BPS/_HW_WPS),
        leaving the previous state; RunError while the vCPU is running.
        """
        if not isinstance(debug, GuestDebug):
            raise GuestDebugError("set_guest_debug takes a kvmpy.kvm.GuestDebug")
        if not self._lock.acquire(blocking=False):
            raise RunError(f"vcpu {self.vcpu_id} is running")
        try:
            self.arch.set_guest_debug(debug)
            self._debug_enabled = debug.enable
        finally:
            self._lock.release()

    def translate(self, gva: int) -> Translation | None:
        """KVM_TRANSLATE: where guest virtual `gva` goes in the guest's current address space.

        No side effects: no TLB refill, no guest exception, no TLB or
        dirty-log change. None if the guest could not access `gva` now.
        """
        if not 0 <= gva < (1 << 64):
            raise ValueError(f"guest virtual address {gva!r} out of range")
        return self.arch.translate(gva)

    def tlb_snapshot(self) -> Mapping[str, Sequence[str]]:
        """kvmpy's own inspection call: the vCPU's TLBs as named tables of formatted entries.

        MIPS vz: "guest" and "root"; te: "guest" and "shadow". Read only;
        meant for debuggers (`monitor tlb`), taken while the vCPU is stopped.
        """
        return self.arch.tlb_snapshot()
