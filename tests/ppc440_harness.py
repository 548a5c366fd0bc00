"""Play the host for a bare PowerPC 440 core: boot a test guest the way QEMU's bamboo does.

The harness is what a host kernel and board would be around the simulated
core (kvmpy.arch.ppc.hw.core440), for the bare-metal guests in
tests/guests/ppc: RAM at physical 0, the guest's ELF segments loaded at
their physical addresses, and the entry state QEMU 7.2's bamboo gives a
-kernel ELF (hw/ppc/ppc440_bamboo.c):

* MSR = 0 (supervisor, TS 0, interrupts off), PC = the ELF entry,
  r1 = 16 MiB - 8, r3 = 0x01800000 (where QEMU puts the device tree).
* All 4 GiB mapped 1:1 in TS 0, TID 0, supervisor read/write/execute, no
  storage attributes. QEMU does it with two 2 GiB entries (0 and 1), a size
  the 440 does not have; the harness uses the 440's largest page, 256 MiB,
  in entries 0-15. Guests therefore leave entries 0-15 alone and never
  print them.

DCRs: UIC0 (DCRs 0xc0-0xc8) is modelled as far as a guest can drive it on
its own (status set through UIC_SRS, cleared through UIC_SR, enable,
critical select, masked status), with its two outputs on the core's
external and critical input pins; no device raises a UIC input here.
Other DCRs read as 0 and ignore writes.

The UART page (physical 0xef600000) is plain RAM here with the 16550's LSR
reading "transmitter empty", so the guest's output loop runs unchanged; the
text compared with QEMU's UART output is the guest's log buffer, which is
exactly what the guest wrote to the UART.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

from kvmpy.arch.ppc.hw.core440 import Core440
from kvmpy.arch.ppc.hw.defs import Stop
from kvmpy.sim.physmem import PhysicalMemory

RAM_SIZE = 64 << 20
UART_PAGE_HPA = 0xEF600000
UART_LSR_OFFSET = 0x305
LOG_POS_HPA = 0x00300000
LOG_BUF_HPA = 0x00300004
QEMU_BAMBOO_R1 = (16 << 20) - 8
QEMU_BAMBOO_R3 = 0x01800000

BOOT_TLB_ENTRIES = 16
_PAGE_256M = 9  # TLB word 0 SIZE field
_TLB0_V = 0x200
_SUPERVISOR_RWX = 0x7


UIC0_BASE = 0xC0
_UIC_SR, _UIC_SRS, _UIC_ER, _UIC_CR, _UIC_PR, _UIC_TR, _UIC_MSR, _UIC_VR, _UIC_VCR = range(9)


class Uic0:
    """The part of UIC0 a guest can exercise without devices, driving the core's pins."""

    def __init__(self, core: Core440) -> None:
        self.core = core
        self.regs = [0] * 9

    def access(self, dcrn: int, is_write: bool, value: int) -> int:
        """One mfdcr/mtdcr of UIC0; returns what an mfdcr reads."""
        reg = dcrn - UIC0_BASE
        r = self.regs
        if is_write:
            if reg == _UIC_SR:
                r[_UIC_SR] &= ~value  # write one to clear
            elif reg == _UIC_SRS:
                r[_UIC_SR] |= value
            elif reg not in (_UIC_MSR, _UIC_VR):
                r[reg] = value
            self._update()
            return 0
        if reg == _UIC_MSR:
            return r[_UIC_SR] & r[_UIC_ER]
        return r[reg]

    def _update(self) -> None:
        pending = self.regs[_UIC_SR] & self.regs[_UIC_ER]
        self.core.set_external_input(bool(pending & ~self.regs[_UIC_CR]))
        self.core.set_critical_input(bool(pending & self.regs[_UIC_CR]))


class GuestError(RuntimeError):
    """The guest did not run to its reset request."""


@dataclass
class GuestRun:
    """What a guest run produced: the log text and how the core ended."""

    output: bytes
    stop: Stop
    instructions: int
    dcr_accesses: list[tuple[int, bool, int]]


def load_elf32_be(path: Path, ram: mmap.mmap) -> int:
    """Copy the PT_LOAD segments of a big-endian ELF32 into RAM at their p_paddr; return the entry."""
    data = Path(path).read_bytes()
    if data[:6] != b"\x7fELF\x01\x02":
        raise GuestError(f"{path}: not a big-endian 32-bit ELF")
    entry, phoff = struct.unpack_from(">II", data, 24)
    phentsize, phnum = struct.unpack_from(">HH", data, 42)
    for i in range(phnum):
        p_type, p_offset, _vaddr, p_paddr, p_filesz, p_memsz = struct.unpack_from(
            ">IIIIII", data, phoff + i * phentsize
        )
        if p_type != 1:
            continue
        if p_paddr + p_memsz > len(ram):
            raise GuestError(f"{path}: segment at {p_paddr:#x} outside RAM")
        ram[p_paddr : p_paddr + p_filesz] = data[p_offset : p_offset + p_filesz]
        ram[p_paddr + p_filesz : p_paddr + p_memsz] = bytes(p_memsz - p_filesz)
    return entry


def boot_core(elf: Path) -> tuple[Core440, mmap.mmap]:
    """A core with RAM and the guest loaded, in QEMU bamboo's -kernel entry state."""
    phys = PhysicalMemory()
    ram = mmap.mmap(-1, RAM_SIZE)
    phys.attach(0, ram)
    uart = mmap.mmap(-1, 4096)
    uart[UART_LSR_OFFSET & 0xFFF] = 0x60  # THRE | TEMT
    phys.attach(UART_PAGE_HPA, uart)
    entry = load_elf32_be(elf, ram)
    core = Core440(phys)
    for i in range(BOOT_TLB_ENTRIES):
        base = i << 28
        core.tlb_write(i, base | _TLB0_V | (_PAGE_256M << 4), base, _SUPERVISOR_RWX, 0)
    core.pc = entry
    core.set_gpr(1, QEMU_BAMBOO_R1)
    core.set_gpr(3, QEMU_BAMBOO_R3)
    return core, ram


def run_guest(elf: Path, max_instructions: int = 50_000_000) -> GuestRun:
    """Run a guest to its reset request; return its log."""
    core, ram = boot_core(elf)
    uic = Uic0(core)
    accesses: list[tuple[int, bool, int]] = []
    while True:
        left = max_instructions - core.icount
        if left <= 0:
            raise GuestError(
                f"{Path(elf).name}: no reset after {max_instructions} instructions, pc={core.pc:#x}"
            )
        stop = core.run(min(left, 1_000_000))
        if stop is Stop.BUDGET:
            continue
        if stop is Stop.DCR:
            num, is_write, value = core.dcr_pending()
            accesses.append((num, is_write, value))
            in_uic = UIC0_BASE <= num <= UIC0_BASE + _UIC_VCR
            core.dcr_complete(uic.access(num, is_write, value) if in_uic else 0)
            continue
        if stop is Stop.RESET:
            break
        raise GuestError(f"{Path(elf).name}: core stopped with {stop!r} at pc={core.pc:#x}")
    (pos,) = struct.unpack_from(">I", ram, LOG_POS_HPA)
    if pos > 0x10000:
        raise GuestError(f"{Path(elf).name}: log position {pos:#x} is garbage")
    return GuestRun(bytes(ram[LOG_BUF_HPA : LOG_BUF_HPA + pos]), stop, core.icount, accesses)
