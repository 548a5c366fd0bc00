"""The PowerPC 440 part of the KVM API: VM types, capabilities, registers (Linux: arch/powerpc/include/uapi).

What a VMM may import from `kvmpy.arch.ppc` (the import-linter contract
allows the uapi module only): constants and data classes, nothing compiled.

ONE_REG ids use Linux's powerpc encoding, `KVM_REG_PPC | size | index`.
Where Linux defines an id (TCR, TSR, OR_TSR, CLEAR_TSR, FPRs, FPSCR, the
debug address registers) the number is Linux's. Linux has no ONE_REG ids
for the registers of `struct kvm_regs` and `struct kvm_sregs` (PC, MSR,
GPRs, SRR0/1, SPRGs, IVORs...): Book E VMMs move those with
KVM_GET/SET_REGS and KVM_GET/SET_SREGS. kvmpy has no SREGS call, so it
gives them ids of its own in an index range Linux does not use
(0x1000 and up, `kvm_reg`), the way MIPS_TE_DYNTRANS is a kvmpy capability.

Interrupt numbers (`Vm.irq_line`, `Vcpu.interrupt`): line 0 is the core's
external input pin (the UIC's output, IVOR4), line 1 its critical input
(IVOR0). `Vcpu.interrupt` takes Linux's powerpc values: KVM_INTERRUPT_SET
(-1, or 0xFFFFFFFF) raises external input, KVM_INTERRUPT_UNSET (-2) lowers
it, KVM_INTERRUPT_SET_LEVEL (-3) raises it as a level (the same here: the
pin is level sensitive).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

# the generic id encoding, re-exported: this module is what a VMM imports
from kvmpy.kvm.onereg import KVM_REG_SIZE_MASK, KVM_REG_SIZE_U32, KVM_REG_SIZE_U64, reg_size_bytes  # noqa: F401


class VmType(IntEnum):
    """KVM_CREATE_VM machine types for the 440. A 440 has no hardware virtualization: TE only."""

    AUTO = 0  # the default: TE
    TE = 1  # trap and emulate: guest kernel and user both run in host user mode (MSR[PR]=1, AS=1)


class Cap(IntEnum):
    """Capabilities only PowerPC Book E has (generic ones: kvmpy.kvm.Cap); values are Linux's."""

    PPC_BOOKE_SREGS = 40  # KVM_CAP_PPC_BOOKE_SREGS: the Book E registers are reachable (here by ONE_REG)
    PPC_UNSET_IRQ = 53  # KVM_CAP_PPC_UNSET_IRQ: KVM_INTERRUPT_UNSET lowers external input
    PPC_IRQ_LEVEL = 54  # KVM_CAP_PPC_IRQ_LEVEL: KVM_INTERRUPT_SET_LEVEL


# the interrupt lines (Vm.irq_line numbering)
IRQ_EXTERNAL = 0
IRQ_CRITICAL = 1

# KVM_INTERRUPT values (Linux: -1U, -2U, -3U)
KVM_INTERRUPT_SET = 0xFFFFFFFF
KVM_INTERRUPT_UNSET = 0xFFFFFFFE
KVM_INTERRUPT_SET_LEVEL = 0xFFFFFFFD

KVM_REG_PPC = 0x1000000000000000

# Linux's ids
KVM_REG_PPC_IAC1 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0x2
KVM_REG_PPC_IAC2 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0x3
KVM_REG_PPC_IAC3 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0x4
KVM_REG_PPC_IAC4 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0x5
KVM_REG_PPC_DAC1 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0x6
KVM_REG_PPC_DAC2 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0x7
KVM_REG_PPC_FPR0 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0x20
KVM_REG_PPC_FPSCR = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0x80
KVM_REG_PPC_OR_TSR = KVM_REG_PPC | KVM_REG_SIZE_U32 | 0x87
KVM_REG_PPC_CLEAR_TSR = KVM_REG_PPC | KVM_REG_SIZE_U32 | 0x88
KVM_REG_PPC_TCR = KVM_REG_PPC | KVM_REG_SIZE_U32 | 0x89
KVM_REG_PPC_TSR = KVM_REG_PPC | KVM_REG_SIZE_U32 | 0x8A


def fpr_reg(n: int) -> int:
    return KVM_REG_PPC_FPR0 + n


# kvmpy's own ids (Linux moves these through KVM_GET/SET_REGS and SREGS)
_KVMPY_BASE = 0x1000


def kvm_reg(index: int) -> int:
    """A kvmpy ONE_REG id (32-bit registers) at `index` of kvmpy's range."""
    return KVM_REG_PPC | KVM_REG_SIZE_U32 | (_KVMPY_BASE + index)


def gp_reg(n: int) -> int:
    return kvm_reg(n)


KVM_REG_PPC_PC = kvm_reg(0x20)
KVM_REG_PPC_MSR = kvm_reg(0x21)
KVM_REG_PPC_CR = kvm_reg(0x22)
KVM_REG_PPC_XER = kvm_reg(0x23)
KVM_REG_PPC_LR = kvm_reg(0x24)
KVM_REG_PPC_CTR = kvm_reg(0x25)
KVM_REG_PPC_TB = KVM_REG_PPC | KVM_REG_SIZE_U64 | (_KVMPY_BASE + 0x26)

# The guest's Book E SPRs by number: id = kvm_reg(0x400 + SPR number).
SPR_IDS_BASE = 0x400


def spr_reg(spr: int) -> int:
    """The ONE_REG id of the guest's SPR `spr` (its mfspr/mtspr number)."""
    return kvm_reg(SPR_IDS_BASE + spr)


# The guest TLB (kvmpy's own; Linux's 440 KVM had no userspace access to it, and
# its e500 successor shares the TLB through KVM_CAP_SW_TLB instead): entry
# `index` (0-63), word 0-2 as tlbre/tlbwe see them, 3 = its TID. A VMM uses
# them to give a guest the boot loader's mappings (QEMU's bamboo entry state).
TLB_IDS_BASE = 0x800


def tlb_reg(index: int, word: int) -> int:
    """The ONE_REG id of word `word` (0-2, 3 = TID) of guest TLB entry `index`."""
    if not (0 <= index < 64 and 0 <= word < 4):
        raise ValueError(f"guest TLB entry 0-63 and word 0-3, got {index}, {word}")
    return kvm_reg(TLB_IDS_BASE + 4 * index + word)


@dataclass
class Regs:
    """KVM_GET/SET_REGS for powerpc (Linux's struct kvm_regs, same fields and order).

    Linux holds them as 64-bit values; on the 32-bit 440 they are the
    unsigned 32-bit register values. `msr`, `srr0/1`, `pid` and the SPRGs
    are the guest's (virtual) registers, not the host core's.
    """

    pc: int = 0
    cr: int = 0
    ctr: int = 0
    lr: int = 0
    xer: int = 0
    msr: int = 0
    srr0: int = 0
    srr1: int = 0
    pid: int = 0
    sprg: list[int] = field(default_factory=lambda: [0] * 8)
    gpr: list[int] = field(default_factory=lambda: [0] * 32)
