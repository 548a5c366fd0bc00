"""The KVM API: the only door between a VMM and the hypervisor.

The shape follows Linux's /dev/kvm (Documentation/virt/kvm/api.rst): a system
object (`Kvm`, the open /dev/kvm), VM objects (`Vm`, the fd KVM_CREATE_VM
returns) and vCPU objects (`Vcpu`, the fd KVM_CREATE_VCPU returns). Each
method names the ioctl it stands for. Errors are exceptions from
`kvmpy.kvm.errors`; exits are values from `kvmpy.kvm.exits`.

Threading: like Linux, each vCPU is meant to be run by one thread at a time;
`Vcpu.kick()`, `Vcpu.interrupt()` and `Vm` calls may come from any thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

from kvmpy.arch.mips.hw.cpu import Cpu
from kvmpy.arch.mips.hw.defs import Stop
from kvmpy.arch.mips.regs import (
    CP0_BY_ID,
    KVM_REG_MIPS_COUNT_CTL,
    KVM_REG_MIPS_COUNT_HZ,
    KVM_REG_MIPS_COUNT_RESUME,
    KVM_REG_MIPS_HI,
    KVM_REG_MIPS_LO,
    KVM_REG_MIPS_PC,
    Regs,
    gp_reg,
    reg_size_bytes,
)
from kvmpy.kvm.errors import (
    CreateVcpuError,
    CreateVmError,
    EnableCapError,
    MemoryRegionError,
    RegisterAccessError,
    RunError,
)
from kvmpy.kvm.exits import Exit, InterruptedExit
from kvmpy.kvm.memory import HostPhysAllocator, MemFlags, MemorySlot, SlotTable
from kvmpy.kvm.stats import VcpuStats
from kvmpy.sim.physmem import PhysicalMemory

KVM_API_VERSION = 12
MAX_VCPUS = 8
# Instructions the core runs before the hypervisor looks at requests again
# (the host timer tick; a kick cuts it short).
TIME_SLICE_INSNS = 4_000_000


@dataclass(frozen=True)
class JitSettings:
    """How the simulated host core runs guest code (like a kvm module parameter).

    With `enabled`, a block of guest code whose start has run `threshold`
    times is translated to host code (kvmpy/arch/mips/hw/jit.py); otherwise
    every instruction is interpreted. Guests cannot tell the difference: the
    translator keeps exceptions precise and re-checks the guest's code before
    running a translation of it.
    """

    enabled: bool = True
    threshold: int = 50_000
    # translate on a thread of its own while the vCPU goes on interpreting;
    # False translates at once, which makes runs repeatable (tests)
    background: bool = True

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ValueError(f"JIT threshold {self.threshold}: must be at least 1")


class VmType(IntEnum):
    """KVM_CREATE_VM machine types for MIPS (Linux: KVM_VM_MIPS_*)."""

    AUTO = 0
    VZ = 1
    TE = 2


class Cap(IntEnum):
    """KVM_CHECK_EXTENSION capabilities (Linux numbering where one exists)."""

    IRQCHIP = 0
    USER_MEMORY = 3
    NR_VCPUS = 9
    NR_MEMSLOTS = 10
    SYNC_MMU = 16
    ONE_REG = 70
    READONLY_MEM = 81
    IMMEDIATE_EXIT = 136
    MAX_VCPUS = 66
    MIPS_VZ = 137
    MIPS_TE = 138
    # kvmpy's own: trap-and-emulate guests get trapped CP0 instructions
    # rewritten into commpage loads/stores (Linux: CONFIG_KVM_MIPS_DYN_TRANS)
    MIPS_TE_DYNTRANS = 0x10001


class ArchVcpu(Protocol):
    """What an architecture/mode backend provides to the generic vCPU."""

    pc: int

    def enter(self, budget: int) -> Stop: ...
    def handle(self, stop: Stop) -> Exit | None: ...
    def complete_pending(self) -> None: ...
    def read_cp0(self, reg: int, sel: int) -> int: ...
    def write_cp0(self, reg: int, sel: int, value: int) -> None: ...
    def set_irq_lines(self, lines: int) -> None: ...
    def flush_root_tlb(self) -> None: ...


class Kvm:
    """The hypervisor itself (an open /dev/kvm).

    One `Kvm` is one simulated host: its physical memory is shared by all the
    VMs it creates. `jit` says how that host's cores run guest code: hot
    blocks translated to host code (the default) or everything interpreted;
    like a kvm module parameter it holds for every VM and vCPU of this `Kvm`.
    `Vm.create_vcpu` raises CreateVcpuError if translation is asked for and
    its library (llvmlite) cannot be loaded.
    """

    def __init__(self, jit: JitSettings | None = None) -> None:
        self.jit = jit if jit is not None else JitSettings()
        self.phys = PhysicalMemory()
        self._hpa = HostPhysAllocator()
        self._next_guest_id = 1
        self._lock = threading.Lock()

    def api_version(self) -> int:
        """KVM_GET_API_VERSION: always 12, as in Linux."""
        return KVM_API_VERSION

    def check_extension(self, cap: Cap) -> int:
        """KVM_CHECK_EXTENSION: 0 if unsupported, else a positive value (a count where it is one)."""
        return {
            Cap.USER_MEMORY: 1,
            Cap.NR_VCPUS: MAX_VCPUS,
            Cap.MAX_VCPUS: MAX_VCPUS,
            Cap.NR_MEMSLOTS: 32,
            Cap.ONE_REG: 1,
            Cap.READONLY_MEM: 1,
            Cap.IMMEDIATE_EXIT: 1,
            Cap.MIPS_VZ: 1,
            Cap.MIPS_TE: 1,
            Cap.MIPS_TE_DYNTRANS: 1,
        }.get(cap, 0)

    def create_vm(self, vm_type: VmType = VmType.VZ) -> Vm:
        """KVM_CREATE_VM: a new VM with no memory and no vCPUs.

        `VmType.VZ` runs the guest in the core's guest mode (hardware
        virtualization); `VmType.TE` runs it in host user mode and emulates
        everything privileged it does (trap and emulate; the guest sees a
        24Kc). `VmType.AUTO` picks VZ. Raises CreateVmError for another type.
        """
        if vm_type == VmType.AUTO:
            vm_type = VmType.VZ
        if vm_type not in (VmType.VZ, VmType.TE):
            raise CreateVmError(f"unknown VM type {vm_type!r}")
        with self._lock:
            if self._next_guest_id > 255:
                raise CreateVmError("out of GuestIDs (255 VMs per host)")
            guest_id = self._next_guest_id
            self._next_guest_id += 1
        return Vm(self, vm_type, guest_id)


class Vm:
    """A virtual machine: memory slots, vCPUs and interrupt lines."""

    def __init__(self, kvm: Kvm, vm_type: VmType, guest_id: int) -> None:
        self.kvm = kvm
        self.vm_type = vm_type
        self.guest_id = guest_id
        self.slots = SlotTable()
        self.vcpus: dict[int, Vcpu] = {}
        self.te_dyntrans = True
        self._lock = threading.RLock()

    def enable_cap(self, cap: Cap, arg: int) -> None:
        """KVM_ENABLE_CAP on the VM: switch an optional behaviour on (arg 1) or off (arg 0).

        Supported: `Cap.MIPS_TE_DYNTRANS` on a TE VM, rewriting of trapped
        mfc0/mtc0/cache instructions (on by default); turning it off makes
        every such instruction trap every time, for measurements. Affects
        existing vCPUs at once. Raises EnableCapError otherwise.
        """
        if cap != Cap.MIPS_TE_DYNTRANS or self.vm_type != VmType.TE:
            raise EnableCapError(f"capability {cap!r} cannot be enabled on a {self.vm_type.name} VM")
        if arg not in (0, 1):
            raise EnableCapError(f"MIPS_TE_DYNTRANS takes 0 or 1, got {arg}")
        with self._lock:
            self.te_dyntrans = bool(arg)
            for vcpu in self.vcpus.values():
                vcpu._arch.rewrite = self.te_dyntrans  # type: ignore[attr-defined]

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
        view = SlotTable.validate(slot, int(flags), guest_phys_addr, memory_size, userspace)
        with self._lock:
            old = self.slots.get(slot)
            if view is None:
                if old is None:
                    # Linux: EINVAL. A zero size only deletes an existing slot.
                    raise MemoryRegionError(f"memory_size 0 for slot {slot}, which does not exist")
                self._drop_slot(old)
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
            hpa = self.kvm._hpa.allocate(guest_phys_addr, memory_size)
            try:
                self.kvm.phys.attach(hpa, view)
            except ValueError as exc:
                self.kvm._hpa.free(hpa)
                raise MemoryRegionError(str(exc)) from exc
            new = MemorySlot(slot, MemFlags(flags), guest_phys_addr, memory_size, view, hpa)
            new.dirty = bytearray((new.npages + 7) // 8)
            self.slots.insert(new)
            self._flush_all_vcpus()

    def _drop_slot(self, s: MemorySlot) -> None:
        self.slots.remove(s.slot)
        self._flush_all_vcpus()
        self.kvm.phys.detach(s.hpa)
        self.kvm._hpa.free(s.hpa)

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
            v._request_root_tlb_flush()

    # ------------------------------------------------------------------ vCPUs
    def create_vcpu(self, vcpu_id: int) -> Vcpu:
        """KVM_CREATE_VCPU: a vCPU in its reset state (PC at the reset vector)."""
        with self._lock:
            if not 0 <= vcpu_id < MAX_VCPUS:
                raise CreateVcpuError(f"vcpu id {vcpu_id} out of range 0..{MAX_VCPUS - 1}")
            if vcpu_id in self.vcpus:
                raise CreateVcpuError(f"vcpu {vcpu_id} already exists")
            vcpu = Vcpu(self, vcpu_id)
            self.vcpus[vcpu_id] = vcpu
            return vcpu

    # ------------------------------------------------------------------ interrupts
    def irq_line(self, irq: int, level: bool, vcpu_id: int = 0) -> None:
        """KVM_IRQ_LINE: drive guest interrupt pin IP`irq` (2..7) of a vCPU."""
        self.vcpus[vcpu_id].interrupt(irq if level else -irq)


class Vcpu:
    """A virtual CPU: run it, read and write its registers, interrupt it."""

    def __init__(self, vm: Vm, vcpu_id: int) -> None:
        self.vm = vm
        self.vcpu_id = vcpu_id
        self.stats = VcpuStats()
        self.cpu = Cpu(vm.kvm.phys, vcpu_id)
        if vm.kvm.jit.enabled:
            try:
                from kvmpy.arch.mips.hw.jit import SharedTranslator
            except ImportError as e:
                raise CreateVcpuError(
                    f"translating guest code needs llvmlite ({e}): install it, or turn translation off"
                    " (JitSettings(enabled=False), kvmpy run --no-jit)"
                ) from None
            self.cpu.enable_jit(SharedTranslator(), vm.kvm.jit.threshold, vm.kvm.jit.background)
            self.stats.jit_source = self.cpu.jit_stats
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._kick_requested = False
        self._flush_requested = False
        self._irq_lines = 0
        self._irq_dirty = False
        self.immediate_exit = False
        self._arch: ArchVcpu = self._create_backend()

    def _create_backend(self) -> ArchVcpu:
        vm = self.vm
        if vm.vm_type == VmType.TE:
            from kvmpy.arch.mips.te.cp0 import COMMPAGE_SIZE
            from kvmpy.arch.mips.te.vcpu import TeVcpu

            # The commpage is host memory outside every slot: the guest
            # kernel sees it, the guest physical address space does not.
            commpage = bytearray(COMMPAGE_SIZE)
            hpa = vm.kvm._hpa.allocate(0, COMMPAGE_SIZE)
            vm.kvm.phys.attach(hpa, commpage)
            return TeVcpu(
                self.cpu, vm.slots, self.vcpu_id, self.stats, self._wait_for_wakeup, commpage, hpa,
                rewrite=vm.te_dyntrans,
            )
        from kvmpy.arch.mips.vz.vcpu import VzVcpu

        return VzVcpu(self.cpu, vm.slots, vm.guest_id, self.vcpu_id, self.stats, self._wait_for_wakeup)

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
        try:
            self._arch.complete_pending()
            if self.immediate_exit:
                self.stats.exits["intr"] += 1
                return InterruptedExit()
            start_insns = self.cpu.icount
            try:
                while True:
                    self._service_requests()
                    if self._kick_requested:
                        self._kick_requested = False
                        self.stats.exits["intr"] += 1
                        return InterruptedExit()
                    stop = self._arch.enter(TIME_SLICE_INSNS)
                    if stop == Stop.KICK:
                        continue
                    exit_ = self._arch.handle(stop)
                    if exit_ is not None:
                        self.stats.exits[exit_.reason.value] += 1
                        return exit_
            finally:
                self.stats.instructions += self.cpu.icount - start_insns
        finally:
            self._lock.release()

    def kick(self) -> None:
        """Make a running (or blocked) `run()` return InterruptedExit soon. Thread-safe."""
        self._kick_requested = True
        self.cpu.kick()
        self._wake.set()

    def _request_root_tlb_flush(self) -> None:
        self._flush_requested = True
        if self._lock.locked():
            self.cpu.kick()
            self._wake.set()
        else:
            self._service_requests()

    def _service_requests(self) -> None:
        if self._flush_requested:
            self._flush_requested = False
            self._arch.flush_root_tlb()
        if self._irq_dirty:
            self._irq_dirty = False
            self._arch.set_irq_lines(self._irq_lines)

    def _wait_for_wakeup(self, timeout_s: float | None) -> str | None:
        self._wake.wait(timeout_s)
        self._wake.clear()
        self._service_requests()
        return "kick" if self._kick_requested else None

    # ------------------------------------------------------------------ interrupts
    def interrupt(self, irq: int) -> None:
        """KVM_INTERRUPT (MIPS): `irq` > 0 raises guest pin IP`irq`, `irq` < 0 lowers it.

        Pins 2..7 are the core's hardware interrupt inputs (IP2..IP7). Thread-safe.
        """
        pin = abs(irq)
        if not 2 <= pin <= 7:
            raise ValueError(f"MIPS interrupt pin must be 2..7, got {irq}")
        bit = 1 << (pin - 2)
        lines = (self._irq_lines | bit) if irq > 0 else (self._irq_lines & ~bit)
        if lines == self._irq_lines:
            return
        self._irq_lines = lines
        self._irq_dirty = True
        if self._lock.locked():
            self.cpu.kick()
            self._wake.set()
        else:
            self._service_requests()

    # ------------------------------------------------------------------ registers
    def get_regs(self) -> Regs:
        """KVM_GET_REGS: general registers, HI, LO and PC."""
        return Regs([self.cpu.get_gpr(i) for i in range(32)], self.cpu.hi, self.cpu.lo, self._arch.pc)

    def set_regs(self, regs: Regs) -> None:
        """KVM_SET_REGS: set general registers, HI, LO and PC (r0 stays zero)."""
        if len(regs.gpr) != 32:
            raise RegisterAccessError("Regs.gpr must hold 32 values")
        for i, v in enumerate(regs.gpr):
            self.cpu.set_gpr(i, v & 0xFFFFFFFF)
        self.cpu.hi = regs.hi & 0xFFFFFFFF
        self.cpu.lo = regs.lo & 0xFFFFFFFF
        self._arch.pc = regs.pc

    def get_one_reg(self, reg_id: int) -> int:
        """KVM_GET_ONE_REG with Linux's MIPS ids (see kvmpy.arch.mips.regs)."""
        if gp_reg(0) <= reg_id <= gp_reg(31):
            return self.cpu.get_gpr(reg_id - gp_reg(0))
        if reg_id == KVM_REG_MIPS_HI:
            return self.cpu.hi
        if reg_id == KVM_REG_MIPS_LO:
            return self.cpu.lo
        if reg_id == KVM_REG_MIPS_PC:
            return self._arch.pc
        if reg_id == KVM_REG_MIPS_COUNT_HZ:
            return int(self.cpu.count_hz)
        if reg_id in (KVM_REG_MIPS_COUNT_CTL, KVM_REG_MIPS_COUNT_RESUME):
            return 0
        if reg_id in CP0_BY_ID:
            _name, reg, sel = CP0_BY_ID[reg_id]
            return self._arch.read_cp0(reg, sel)
        raise RegisterAccessError(f"unknown register id {reg_id:#x}")

    def set_one_reg(self, reg_id: int, value: int) -> None:
        """KVM_SET_ONE_REG with Linux's MIPS ids. Values must fit the register's size."""
        size = reg_size_bytes(reg_id)
        if size == 0 or not 0 <= value < (1 << (8 * size)):
            raise RegisterAccessError(f"value {value:#x} does not fit register {reg_id:#x}")
        value &= 0xFFFFFFFF
        if gp_reg(0) <= reg_id <= gp_reg(31):
            self.cpu.set_gpr(reg_id - gp_reg(0), value)
        elif reg_id == KVM_REG_MIPS_HI:
            self.cpu.hi = value
        elif reg_id == KVM_REG_MIPS_LO:
            self.cpu.lo = value
        elif reg_id == KVM_REG_MIPS_PC:
            self._arch.pc = value
        elif reg_id == KVM_REG_MIPS_COUNT_HZ:
            if value == 0:
                raise RegisterAccessError("COUNT_HZ must be positive")
            self.cpu.count_hz = float(value)
        elif reg_id in CP0_BY_ID:
            _name, reg, sel = CP0_BY_ID[reg_id]
            self._arch.write_cp0(reg, sel, value)
        else:
            raise RegisterAccessError(f"unknown register id {reg_id:#x}")
