"""Tiny guests for the KVM API contract suite (tests/unit/test_api.py), one builder per architecture.

The contract is the same for every backend: an MMIO read is completed from
the bytes the VMM fills in, a write carries the guest's bytes, dirty logging
catches exactly the written pages, a kick interrupts a spinning guest... So
the contract tests describe their guest as a list of operations (`Op`) and
an architecture's `TinyGuest` turns that list into machine code and loads it.
A new backend joins the suite by adding a `TinyGuest` and its cases to
`BACKEND_CASES`.

Conventions every `TinyGuest` keeps:
- RAM is slot 0 at guest physical 0 (`RAM_BYTES`); code goes at `CODE_GPA`.
- `MMIO_GPA` and up has no RAM (the tests never map a slot there).
- A program ends with an MMIO write of 4 bytes to `DONE_GPA`.
- `Pause` is an MMIO write to `PAUSE_GPA`: the test does something, then runs on.
- Results (`MmioRead`, `RamRead`) are 32-bit words stored at `RESULT_GPA + 4 * slot`,
  in the guest's byte order (`TinyGuest.byteorder`).
- An interrupt that reaches the guest makes it write the interrupt number to
  `IRQ_SEEN_GPA` (4 bytes, an MMIO write) and then spin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

RAM_BYTES = 4 << 20
CODE_GPA = 0x1000
RESULT_GPA = 0x3000
MMIO_GPA = 0x18000000
PAUSE_GPA = 0x1F000000
DONE_GPA = 0x1F000010
IRQ_SEEN_GPA = 0x1F000020


@dataclass(frozen=True)
class MmioRead:
    """Load `size` bytes from `gpa` (zero-extended) and store the value as result `slot`."""

    gpa: int
    size: int
    slot: int


@dataclass(frozen=True)
class MmioWrite:
    """Store the low `size` bytes of `value` at `gpa` (no RAM there)."""

    gpa: int
    size: int
    value: int


@dataclass(frozen=True)
class RamWrite:
    """Store the low `size` bytes of `value` at guest physical `gpa` (a slot, or read-only memory)."""

    gpa: int
    size: int
    value: int


@dataclass(frozen=True)
class RamRead:
    """Load the 32-bit word at `gpa` and store it as result `slot`."""

    gpa: int
    slot: int


@dataclass(frozen=True)
class Pause:
    """Exit to the VMM (an MMIO write to PAUSE_GPA) and go on when it runs the vCPU again."""


@dataclass(frozen=True)
class Halt:
    """Mask every interrupt and wait for one: a HaltExit, since nothing can wake the guest."""


@dataclass(frozen=True)
class Spin:
    """Loop forever (the test kicks or interrupts the vCPU)."""


@dataclass(frozen=True)
class WaitForIrq:
    """Unmask interrupt `irq` only (the number `Vm.irq_line` takes) and spin until it comes."""

    irq: int


Op = MmioRead | MmioWrite | RamWrite | RamRead | Pause | Halt | Spin | WaitForIrq


class TinyGuest(Protocol):
    """One architecture's builder of contract guests."""

    byteorder: Literal["little", "big"]
    irq: int  # an interrupt line number `Vm.irq_line` accepts and `WaitForIrq` can unmask
    bad_irq: int  # a number `Vcpu.interrupt` rejects
    pc_reg_id: int  # the ONE_REG id of the program counter

    def load(self, ram: memoryview, ops: list[Op]) -> int:
        """Write the program for `ops` (and its exception vectors) into RAM; return the entry PC."""
        ...


class MipsTinyGuest:
    """MIPS32 little-endian: kseg0 for RAM, kseg1 (uncached) for MMIO, vectors at EBase 0x80000000."""

    byteorder: Literal["little", "big"] = "little"
    irq = 2  # IP2
    bad_irq = 9

    def __init__(self) -> None:
        from kvmpy.arch.mips.uapi import KVM_REG_MIPS_PC

        self.pc_reg_id = KVM_REG_MIPS_PC

    @staticmethod
    def _kseg0(gpa: int) -> int:
        return 0x80000000 | gpa

    @staticmethod
    def _kseg1(gpa: int) -> int:
        return 0xA0000000 | gpa

    def _store(self, va: int, size: int, reg: str) -> str:
        insn = {1: "sb", 2: "sh", 4: "sw"}[size]
        return f"li $t9, {va:#x}\n {insn} {reg}, 0($t9)\n"

    def _op(self, op: Op) -> str:
        match op:
            case MmioRead(gpa, size, slot):
                insn = {1: "lbu", 2: "lhu", 4: "lw"}[size]
                return (f"li $t8, {self._kseg1(gpa):#x}\n {insn} $t0, 0($t8)\n"
                        + self._store(self._kseg0(RESULT_GPA + 4 * slot), 4, "$t0"))
            case MmioWrite(gpa, size, value) | RamWrite(gpa, size, value):
                va = self._kseg1(gpa) if isinstance(op, MmioWrite) else self._kseg0(gpa)
                return f"li $t0, {value:#x}\n" + self._store(va, size, "$t0")
            case RamRead(gpa, slot):
                return (f"li $t8, {self._kseg0(gpa):#x}\n lw $t0, 0($t8)\n"
                        + self._store(self._kseg0(RESULT_GPA + 4 * slot), 4, "$t0"))
            case Pause():
                return self._store(self._kseg1(PAUSE_GPA), 4, "$zero")
            case Halt():
                return "mtc0 $zero, $12\n ehb\n wait\n nop\n"
            case Spin():
                return "1: b 1b\n nop\n"
            case WaitForIrq(irq):
                # Status: IM<irq> | IE, kernel mode, BEV and ERL clear (vectors at EBase)
                return f"li $t0, {(1 << (8 + irq)) | 1:#x}\n mtc0 $t0, $12\n ehb\n 1: b 1b\n nop\n"
        raise AssertionError(f"unknown op {op!r}")

    def load(self, ram: memoryview, ops: list[Op]) -> int:
        from tests.asm import assemble

        entry = self._kseg0(CODE_GPA)
        done = "li $t0, 1\n" + self._store(self._kseg1(DONE_GPA), 4, "$t0")
        code = assemble("".join(self._op(op) for op in ops) + done + "1: b 1b\n nop\n", entry)
        ram[CODE_GPA : CODE_GPA + len(code)] = code
        # General exception vector: report the highest pending interrupt pin (Cause.IP), then spin.
        handler = (
            "mfc0 $k0, $13\n srl $k0, $k0, 8\n andi $k0, $k0, 0xff\n li $k1, 7\n"
            "2: li $t0, 1\n sllv $t0, $t0, $k1\n and $t0, $t0, $k0\n bnez $t0, 3f\n nop\n"
            "addiu $k1, $k1, -1\n bgez $k1, 2b\n nop\n"
            "3: " + self._store(self._kseg1(IRQ_SEEN_GPA), 4, "$k1") + "4: b 4b\n nop\n"
        )
        vec = assemble(handler, 0x80000180)
        ram[0x180 : 0x180 + len(vec)] = vec
        return entry


def _li32(reg: str, value: int) -> str:
    return f"lis {reg}, {(value >> 16) & 0xFFFF:#x}\n ori {reg}, {reg}, {value & 0xFFFF:#x}\n"


class Ppc440TinyGuest:
    """PowerPC 440 (big-endian Book E) in guest supervisor mode, under the trap-and-emulate hypervisor.

    The vCPU starts with guest TLB entry 0 mapping 0-256 MiB 1:1 (RAM and
    the slots the tests add); the program first writes entry 1 for
    0x10000000-0x1fffffff (caching inhibited, guarded: MMIO) with `tlbwe`,
    and points IVPR/IVOR0/IVOR4 at handlers below 0x1000.
    """

    byteorder: Literal["little", "big"] = "big"
    irq = 0  # the external input line (IVOR4); line 1 is critical input
    bad_irq = 7

    def __init__(self) -> None:
        from kvmpy.arch.ppc.uapi import KVM_REG_PPC_PC

        self.pc_reg_id = KVM_REG_PPC_PC

    def _op(self, op: Op) -> str:
        st = {1: "stb", 2: "sth", 4: "stw"}
        match op:
            case MmioRead(gpa, size, slot):
                insn = {1: "lbz", 2: "lhz", 4: "lwz"}[size]
                return (_li32("r10", gpa) + f"{insn} r11, 0(r10)\n"
                        + _li32("r12", RESULT_GPA + 4 * slot) + "stw r11, 0(r12)\n")
            case MmioWrite(gpa, size, value) | RamWrite(gpa, size, value):
                return _li32("r10", gpa) + _li32("r11", value) + f"{st[size]} r11, 0(r10)\n"
            case RamRead(gpa, slot):
                return (_li32("r10", gpa) + "lwz r11, 0(r10)\n"
                        + _li32("r12", RESULT_GPA + 4 * slot) + "stw r11, 0(r12)\n")
            case Pause():
                return _li32("r10", PAUSE_GPA) + "stw r0, 0(r10)\n"
            case Halt():
                # every interrupt masked (EE = CE = 0), then MSR[WE]
                return "li r3, 0\n mtmsr r3\n lis r3, 0x0004\n mtmsr r3\n 1: b 1b\n"
            case Spin():
                return "1: b 1b\n"
            case WaitForIrq(irq):
                msr = {0: 0x00008000, 1: 0x00020000}[irq]  # MSR[EE] for external, MSR[CE] for critical
                return _li32("r3", msr) + "mtmsr r3\n 1: b 1b\n"
        raise AssertionError(f"unknown op {op!r}")

    def load(self, ram: memoryview, ops: list[Op]) -> int:
        from tests.asm import assemble_ppc

        setup = (
            "li r3, 1\n" + _li32("r4", 0x10000000 | 0x200 | (9 << 4)) + _li32("r5", 0x10000000)
            + "li r6, 0x503\n tlbwe r4, r3, 0\n tlbwe r5, r3, 1\n tlbwe r6, r3, 2\n isync\n"
            + "li r3, 0\n mtspr 63, r3\n li r3, 0x100\n mtspr 400, r3\n li r3, 0x500\n mtspr 404, r3\n"
        )
        done = "li r11, 1\n" + _li32("r10", DONE_GPA) + "stw r11, 0(r10)\n 1: b 1b\n"
        code = assemble_ppc(setup + "".join(self._op(op) for op in ops) + done, CODE_GPA)
        assert len(code) <= RESULT_GPA - CODE_GPA, "contract guest too large"
        ram[CODE_GPA : CODE_GPA + len(code)] = code
        for vector, irq in ((0x100, 1), (0x500, 0)):
            source = f"li r20, {irq}\n" + _li32("r21", IRQ_SEEN_GPA) + "stw r20, 0(r21)\n 1: b 1b\n"
            handler = assemble_ppc(source, vector)
            ram[vector : vector + len(handler)] = handler
        return CODE_GPA


@dataclass(frozen=True)
class BackendCase:
    """One backend and VM type the contract runs on."""

    arch: str
    vm_type: int
    guest: TinyGuest
    name: str


def backend_cases() -> list[BackendCase]:
    """Every backend and VM type of this tree (add a new architecture's here)."""
    from kvmpy.arch.mips.uapi import VmType
    from kvmpy.arch.ppc.uapi import VmType as PpcVmType

    mips = MipsTinyGuest()
    return [
        BackendCase("mips", VmType.VZ, mips, "mips-vz"),
        BackendCase("mips", VmType.TE, mips, "mips-te"),
        BackendCase("ppc440", PpcVmType.TE, Ppc440TinyGuest(), "ppc440-te"),
    ]
