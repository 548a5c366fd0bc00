"""The KVM API contract, run on every backend and VM type with tiny real guests.

Each test that runs a guest takes the `backend_case` fixture (tests/conftest.py)
and so runs once per case in `tests.contract_guests.backend_cases()` (MIPS VZ,
MIPS trap-and-emulate and PowerPC 440 trap-and-emulate today). The guest is described by architecture-neutral
operations that the case's `TinyGuest` assembles: what is checked here —
exits and their completion, memory slots, dirty logging, read-only memory,
kicks, halts, interrupt lines, vCPU and register errors — must hold for any
backend. What only one architecture does is tested next to it
(tests/unit/test_mips_kvm.py for MIPS, tests/unit/test_ppc_kvm.py for the 440).
"""

from __future__ import annotations

import mmap
import os
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from kvmpy.kvm import (
    Cap,
    CreateVcpuError,
    CreateVmError,
    DirtyLogError,
    Exit,
    HaltExit,
    InterruptedExit,
    InterruptError,
    Kvm,
    KvmError,
    MemFlags,
    MemoryRegionError,
    MemoryRegionOverlapError,
    MmioExit,
    RegisterAccessError,
    RunError,
    UnknownArchitectureError,
    Vcpu,
    Vm,
    dirty_pages,
    known_architectures,
)
from tests.contract_guests import (
    DONE_GPA,
    IRQ_SEEN_GPA,
    MMIO_GPA,
    PAUSE_GPA,
    RAM_BYTES,
    RESULT_GPA,
    BackendCase,
    Halt,
    MmioRead,
    MmioWrite,
    Op,
    Pause,
    RamRead,
    RamWrite,
    Spin,
    WaitForIrq,
)

PAGE = 4096
LOGGED_GPA = 0x400000  # a dirty-logged slot next to RAM
ROM_GPA = 0x800000  # a read-only slot


@dataclass
class Guest:
    case: BackendCase
    kvm: Kvm
    vm: Vm
    vcpu: Vcpu
    ram: mmap.mmap
    entry: int

    def result(self, slot: int) -> int:
        off = RESULT_GPA + 4 * slot
        return int.from_bytes(self.ram[off : off + 4], self.case.guest.byteorder)

    def to_bytes(self, value: int, size: int) -> bytes:
        return value.to_bytes(size, self.case.guest.byteorder)

    def run_until(self, stop_gpa: int = DONE_GPA, reply: bytes = bytes(8)) -> list[Exit]:
        """Run, answering MMIO reads with `reply`, until an MMIO write to `stop_gpa` (or another exit)."""
        exits: list[Exit] = []
        for _ in range(1000):
            e = self.vcpu.run()
            exits.append(e)
            if not isinstance(e, MmioExit):
                return exits
            if e.is_write and e.phys_addr == stop_gpa:
                return exits
            if not e.is_write:
                e.data[:] = reply[: e.length]
        raise AssertionError(f"guest did not reach {stop_gpa:#x}: {exits[-5:]}")


def start(case: BackendCase, ops: list[Op]) -> Guest:
    kvm = Kvm(case.arch)
    vm = kvm.create_vm(case.vm_type)
    ram = mmap.mmap(-1, RAM_BYTES)
    entry = case.guest.load(memoryview(ram), ops)
    vm.set_user_memory_region(0, 0, RAM_BYTES, ram)
    vcpu = vm.create_vcpu(0)
    vcpu.set_one_reg(case.guest.pc_reg_id, entry)
    return Guest(case, kvm, vm, vcpu, ram, entry)


def mmio_writes(exits: list[Exit]) -> list[tuple[int, bytes]]:
    return [(e.phys_addr, bytes(e.data)) for e in exits if isinstance(e, MmioExit) and e.is_write]


# ---------------------------------------------------------------------- the system and VM objects
def test_api_version_and_generic_caps(backend_case):
    kvm = Kvm(backend_case.arch)
    assert kvm.api_version() == 12
    assert kvm.check_extension(Cap.USER_MEMORY) == 1
    assert kvm.check_extension(Cap.NR_MEMSLOTS) >= 2
    assert kvm.check_extension(Cap.IMMEDIATE_EXIT) == 1
    assert kvm.check_extension(Cap.ONE_REG) == 1
    assert kvm.check_extension(Cap.READONLY_MEM) == 1
    assert kvm.check_extension(Cap.MAX_VCPUS) >= 1
    assert kvm.check_extension(0x7FFF_FFFF) == 0
    assert kvm.create_vm(backend_case.vm_type).vm_type == backend_case.vm_type
    with pytest.raises(CreateVmError):
        kvm.create_vm(0x7FFF)


def test_unknown_architecture_is_a_clear_error():
    with pytest.raises(UnknownArchitectureError, match="'vax'.*mips") as info:
        Kvm("vax")
    assert isinstance(info.value, KvmError)
    assert "mips" in known_architectures()


def test_vcpu_ids(backend_case):
    kvm = Kvm(backend_case.arch)
    vm = kvm.create_vm(backend_case.vm_type)
    vm.create_vcpu(0)
    with pytest.raises(CreateVcpuError):
        vm.create_vcpu(0)
    with pytest.raises(CreateVcpuError):
        vm.create_vcpu(kvm.check_extension(Cap.MAX_VCPUS))
    with pytest.raises(CreateVcpuError):
        vm.create_vcpu(-1)


# ---------------------------------------------------------------------- MMIO exits
def test_mmio_read_is_completed_from_the_vmm_bytes(backend_case):
    g = start(
        backend_case, [MmioRead(MMIO_GPA, 1, 0), MmioRead(MMIO_GPA + 2, 2, 1), MmioRead(MMIO_GPA + 4, 4, 2)]
    )
    reply = bytes.fromhex("efcdab8967452301")
    exits = g.run_until(reply=reply)
    reads = [(e.phys_addr, e.length) for e in exits if isinstance(e, MmioExit) and not e.is_write]
    assert reads == [(MMIO_GPA, 1), (MMIO_GPA + 2, 2), (MMIO_GPA + 4, 4)]
    order = backend_case.guest.byteorder
    assert [g.result(i) for i in range(3)] == [int.from_bytes(reply[:n], order) for n in (1, 2, 4)]


def test_mmio_write_carries_the_guest_bytes(backend_case):
    g = start(backend_case, [MmioWrite(MMIO_GPA + 0x10, 4, 0x11223344), MmioWrite(MMIO_GPA + 0x20, 2, 0x5566),
                             MmioWrite(MMIO_GPA + 0x31, 1, 0x77)])
    writes = mmio_writes(g.run_until())
    assert writes[:3] == [
        (MMIO_GPA + 0x10, g.to_bytes(0x11223344, 4)),
        (MMIO_GPA + 0x20, g.to_bytes(0x5566, 2)),
        (MMIO_GPA + 0x31, g.to_bytes(0x77, 1)),
    ]
    assert writes[3][0] == DONE_GPA


# ---------------------------------------------------------------------- memory slots
def test_dirty_log_reports_exactly_the_written_pages(backend_case):
    g = start(backend_case, [
        RamWrite(LOGGED_GPA + 3 * PAGE, 4, 1),
        RamWrite(LOGGED_GPA + 5 * PAGE, 4, 2),
        RamWrite(LOGGED_GPA + 5 * PAGE + 17, 1, 3),
        RamRead(LOGGED_GPA + 7 * PAGE, 0),  # a read does not dirty
        RamWrite(LOGGED_GPA + 100 * PAGE + 2, 2, 4),
        Pause(),
        RamWrite(LOGGED_GPA + 3 * PAGE, 4, 5),
        RamWrite(LOGGED_GPA + 200 * PAGE, 4, 6),
    ])
    logged = mmap.mmap(-1, 1 << 20)
    g.vm.set_user_memory_region(1, LOGGED_GPA, 1 << 20, logged, MemFlags.LOG_DIRTY_PAGES)
    assert mmio_writes(g.run_until(PAUSE_GPA))[-1][0] == PAUSE_GPA
    assert dirty_pages(g.vm.get_dirty_log(1)) == [3, 5, 100]
    assert dirty_pages(g.vm.get_dirty_log(1)) == []  # cleared by the read
    logged[0:4] = b"vmm!"  # the VMM's own writes are not logged
    g.run_until()
    # page 3 was written again after the log was taken: it must be caught again
    assert dirty_pages(g.vm.get_dirty_log(1)) == [3, 200]
    assert logged[5 * PAGE + 17] == 3  # the slot is the VMM's buffer, no copy
    with pytest.raises(DirtyLogError):
        g.vm.get_dirty_log(0)  # slot 0 does not log
    with pytest.raises(DirtyLogError):
        g.vm.get_dirty_log(5)


def test_readonly_slot_reads_memory_and_writes_exit(backend_case):
    word = ROM_GPA + 0x10
    g = start(backend_case, [RamRead(word, 0), RamWrite(word, 4, 0x55), RamRead(word, 1)])
    rom = mmap.mmap(-1, 1 << 20)
    rom[0x10:0x14] = g.to_bytes(0xA5A5A5A5, 4)
    g.vm.set_user_memory_region(2, ROM_GPA, 1 << 20, rom, MemFlags.READONLY)
    writes = mmio_writes(g.run_until())
    assert writes == [(word, g.to_bytes(0x55, 4)), (DONE_GPA, g.to_bytes(1, 4))]
    assert g.result(0) == g.result(1) == 0xA5A5A5A5
    assert rom[0x10:0x14] == g.to_bytes(0xA5A5A5A5, 4)


def test_deleting_a_slot_turns_its_addresses_into_mmio(backend_case):
    g = start(backend_case, [RamRead(LOGGED_GPA, 0), Pause(), RamRead(LOGGED_GPA, 1)])
    extra = mmap.mmap(-1, 0x10000)
    extra[0:4] = g.to_bytes(0x600D, 4)
    g.vm.set_user_memory_region(1, LOGGED_GPA, 0x10000, extra)
    g.run_until(PAUSE_GPA)
    assert g.result(0) == 0x600D  # the first read hit RAM
    g.vm.set_user_memory_region(1, LOGGED_GPA, 0, None)
    e = g.vcpu.run()
    assert isinstance(e, MmioExit) and not e.is_write and e.phys_addr == LOGGED_GPA


@pytest.mark.parametrize(
    ("slot", "gpa", "size", "error"),
    [
        (1, 0x100, 0x1000, MemoryRegionError),  # misaligned address
        (1, 0x2000000, 0x1800, MemoryRegionError),  # misaligned size
        (1, 0x2000000, 0, MemoryRegionError),  # zero size for a slot that does not exist
        (1, 0x200000, 0x1000, MemoryRegionOverlapError),  # inside slot 0
        (99, 0x2000000, 0x1000, MemoryRegionError),  # slot number out of range
    ],
)
def test_bad_slot_arguments_raise_typed_errors(backend_case, slot, gpa, size, error):
    vm = Kvm(backend_case.arch).create_vm(backend_case.vm_type)
    vm.set_user_memory_region(0, 0, RAM_BYTES, mmap.mmap(-1, RAM_BYTES))
    with pytest.raises(error):
        vm.set_user_memory_region(slot, gpa, size, mmap.mmap(-1, max(size, 4096)))


def test_slot_beyond_the_guest_physical_space(backend_case):
    vm = Kvm(backend_case.arch).create_vm(backend_case.vm_type)
    top = vm.arch.gpa_space_bytes
    with pytest.raises(MemoryRegionError, match="beyond"):
        vm.set_user_memory_region(1, top - 0x1000, 0x2000, mmap.mmap(-1, 0x2000))


def test_slot_buffer_checks(backend_case):
    vm = Kvm(backend_case.arch).create_vm(backend_case.vm_type)
    with pytest.raises(MemoryRegionError, match="holds"):
        vm.set_user_memory_region(0, 0, 0x4000, mmap.mmap(-1, 0x1000))
    with pytest.raises(MemoryRegionError, match="writable"):
        vm.set_user_memory_region(0, 0, 0x1000, bytes(0x1000))
    with pytest.raises(MemoryRegionError, match="buffer"):
        vm.set_user_memory_region(0, 0, 0x1000, None)


# ---------------------------------------------------------------------- running
def test_kick_from_another_thread_interrupts_run(backend_case):
    g = start(backend_case, [Spin()])
    threading.Timer(0.2, g.vcpu.kick).start()
    t0 = time.monotonic()
    assert isinstance(g.vcpu.run(), InterruptedExit)
    assert time.monotonic() - t0 < 5
    assert g.vcpu.stats.exits["intr"] == 1 and g.vcpu.stats.instructions > 0
    # and runs on where it was: another kick, another InterruptedExit, no other exit
    threading.Timer(0.1, g.vcpu.kick).start()
    assert isinstance(g.vcpu.run(), InterruptedExit)


def test_run_from_a_second_thread_is_refused(backend_case):
    g = start(backend_case, [Spin()])
    worker = threading.Thread(target=g.vcpu.run)
    worker.start()
    try:
        deadline = time.monotonic() + 5
        while g.vcpu.stats.instructions == 0 and not g.vcpu._lock.locked() and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(RunError):
            g.vcpu.run()
    finally:
        g.vcpu.kick()
        worker.join(5)
    assert not worker.is_alive()


def test_immediate_exit(backend_case):
    g = start(backend_case, [Spin()])
    g.vcpu.immediate_exit = True
    assert isinstance(g.vcpu.run(), InterruptedExit)
    assert g.vcpu.stats.instructions == 0


def test_waiting_with_every_interrupt_masked_is_a_halt_exit(backend_case):
    g = start(backend_case, [Halt()])
    e = g.vcpu.run()
    assert isinstance(e, HaltExit)
    assert g.vcpu.get_one_reg(backend_case.guest.pc_reg_id) == e.pc


def test_interrupt_line_reaches_the_guest(backend_case):
    irq = backend_case.guest.irq
    g = start(backend_case, [Pause(), WaitForIrq(irq)])
    g.run_until(PAUSE_GPA)
    threading.Timer(0.1, g.vm.irq_line, (irq, True)).start()
    watchdog = threading.Timer(20, g.vcpu.kick)  # a lost interrupt fails the test instead of hanging it
    watchdog.start()
    exits = g.run_until(IRQ_SEEN_GPA)
    watchdog.cancel()
    assert mmio_writes(exits)[-1:] == [(IRQ_SEEN_GPA, g.to_bytes(irq, 4))], exits[-3:]


def test_interrupt_errors(backend_case):
    g = start(backend_case, [Spin()])
    with pytest.raises(InterruptError):
        g.vcpu.interrupt(backend_case.guest.bad_irq)
    with pytest.raises(InterruptError):
        g.vm.irq_line(backend_case.guest.irq, True, vcpu_id=5)  # no such vCPU


def test_one_reg_errors_and_pc(backend_case):
    g = start(backend_case, [Spin()])
    pc = backend_case.guest.pc_reg_id
    assert g.vcpu.get_one_reg(pc) == g.entry
    regs = g.vcpu.get_regs()
    g.vcpu.set_regs(regs)  # a round trip changes nothing
    assert g.vcpu.get_one_reg(pc) == g.entry
    with pytest.raises(RegisterAccessError):
        g.vcpu.get_one_reg(0x1234)
    with pytest.raises(RegisterAccessError):
        g.vcpu.set_one_reg(0x1234, 0)
    with pytest.raises(RegisterAccessError):
        g.vcpu.set_regs(object())


# ---------------------------------------------------------------------- the layering
_HIDE_CORE = """
import importlib.abc, sys

class HideCore(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "kvmpy.arch.mips.hw.cpu":
            raise ImportError("hidden by the test: no compiled MIPS core")
        return None

sys.meta_path.insert(0, HideCore())
"""


def test_kvm_imports_without_the_compiled_core_and_says_what_is_missing():
    script = _HIDE_CORE + textwrap.dedent("""
        import kvmpy.kvm
        from kvmpy.arch.mips.uapi import Cap, VmType
        assert "kvmpy.arch.mips.hw.cpu" not in sys.modules
        kvm = kvmpy.kvm.Kvm("mips")
        assert kvm.check_extension(Cap.MIPS_VZ) == 0
        try:
            kvm.create_vm(VmType.VZ)
        except kvmpy.kvm.CreateVmError as e:
            print("ERROR:", e)
        else:
            raise SystemExit("create_vm worked without the core")
    """)
    repo = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "ERROR: cannot create a MIPS VM: the compiled MIPS core is missing" in done.stdout
    assert "build_ext" in done.stdout
