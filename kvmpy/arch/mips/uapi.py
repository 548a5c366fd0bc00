"""The MIPS part of the KVM API: VM types, capabilities, registers (Linux: arch/mips/include/uapi).

This is what a VMM may import from `kvmpy.arch.mips` (the import-linter
contract in pyproject.toml allows this module and nothing else there): plain
constants and data classes, no simulated hardware, so importing it needs
nothing compiled.

KVM_GET/SET_ONE_REG ids use Linux's encoding. An id is
`KVM_REG_MIPS | size | group | index` (Linux uapi asm/kvm.h): general
registers are group 0 (index 0..31, 32 = HI, 33 = LO, 34 = PC), CP0
registers group 1 with index `8 * reg + sel`, and KVM's own control
registers group 2. 32-bit CP0 registers use KVM_REG_SIZE_U32 ids; the ones
Linux declares `unsigned long` (EntryHi, EPC, BadVAddr...) use U64 ids, as
QEMU expects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

# the generic id encoding, re-exported: this module is what a VMM imports
from kvmpy.kvm.onereg import KVM_REG_SIZE_MASK, KVM_REG_SIZE_U32, KVM_REG_SIZE_U64, reg_size_bytes  # noqa: F401


class VmType(IntEnum):
    """KVM_CREATE_VM machine types for MIPS (Linux: KVM_VM_MIPS_*)."""

    AUTO = 0  # the default: VZ
    VZ = 1  # the guest runs in the core's guest mode (hardware virtualization)
    TE = 2  # trap and emulate: the guest kernel runs in host user mode (the guest sees a 24Kc)


class Cap(IntEnum):
    """KVM_CHECK_EXTENSION / KVM_ENABLE_CAP capabilities only MIPS has (generic ones: kvmpy.kvm.Cap)."""

    MIPS_VZ = 137
    MIPS_TE = 138
    # kvmpy's own: trap-and-emulate guests get trapped CP0 instructions
    # rewritten into commpage loads/stores (Linux: CONFIG_KVM_MIPS_DYN_TRANS);
    # KVM_ENABLE_CAP with 0 turns that off on a TE VM, for measurements.
    MIPS_TE_DYNTRANS = 0x10001


KVM_REG_MIPS = 0x7000000000000000

KVM_REG_MIPS_GP = KVM_REG_MIPS | 0x0000000000000000
KVM_REG_MIPS_CP0 = KVM_REG_MIPS | 0x0000000000010000
KVM_REG_MIPS_KVM = KVM_REG_MIPS | 0x0000000000020000


def gp_reg(n: int) -> int:
    return KVM_REG_MIPS_GP | KVM_REG_SIZE_U64 | n


KVM_REG_MIPS_HI = gp_reg(32)
KVM_REG_MIPS_LO = gp_reg(33)
KVM_REG_MIPS_PC = gp_reg(34)

KVM_REG_MIPS_COUNT_CTL = KVM_REG_MIPS_KVM | KVM_REG_SIZE_U64 | 0
KVM_REG_MIPS_COUNT_RESUME = KVM_REG_MIPS_KVM | KVM_REG_SIZE_U64 | 1
KVM_REG_MIPS_COUNT_HZ = KVM_REG_MIPS_KVM | KVM_REG_SIZE_U64 | 2


def cp0_32(reg: int, sel: int) -> int:
    return KVM_REG_MIPS_CP0 | KVM_REG_SIZE_U32 | (8 * reg + sel)


def cp0_64(reg: int, sel: int) -> int:
    return KVM_REG_MIPS_CP0 | KVM_REG_SIZE_U64 | (8 * reg + sel)


# (name, reg, sel, 64-bit id?) for the CP0 registers this hypervisor exposes.
CP0_REGISTERS: tuple[tuple[str, int, int, bool], ...] = (
    ("INDEX", 0, 0, False),
    ("ENTRYLO0", 2, 0, True),
    ("ENTRYLO1", 3, 0, True),
    ("CONTEXT", 4, 0, True),
    ("USERLOCAL", 4, 2, True),
    ("PAGEMASK", 5, 0, False),
    ("PAGEGRAIN", 5, 1, False),
    ("WIRED", 6, 0, False),
    ("HWRENA", 7, 0, False),
    ("BADVADDR", 8, 0, True),
    ("BADINSTR", 8, 1, False),
    ("BADINSTRP", 8, 2, False),
    ("COUNT", 9, 0, False),
    ("ENTRYHI", 10, 0, True),
    ("COMPARE", 11, 0, False),
    ("STATUS", 12, 0, False),
    ("INTCTL", 12, 1, False),
    ("CAUSE", 13, 0, False),
    ("EPC", 14, 0, True),
    ("PRID", 15, 0, False),
    ("EBASE", 15, 1, True),
    ("CONFIG", 16, 0, False),
    ("CONFIG1", 16, 1, False),
    ("CONFIG2", 16, 2, False),
    ("CONFIG3", 16, 3, False),
    ("CONFIG4", 16, 4, False),
    ("CONFIG5", 16, 5, False),
    ("ERROREPC", 30, 0, True),
    ("KSCRATCH1", 31, 2, True),
    ("KSCRATCH2", 31, 3, True),
)

CP0_BY_ID: dict[int, tuple[str, int, int]] = {
    (cp0_64(r, s) if wide else cp0_32(r, s)): (name, r, s) for name, r, s, wide in CP0_REGISTERS
}
CP0_ID_BY_NAME: dict[str, int] = {name: rid for rid, (name, _r, _s) in CP0_BY_ID.items()}


@dataclass
class Regs:
    """KVM_GET/SET_REGS for MIPS (struct kvm_regs): gpr[32], hi, lo, pc.

    Linux keeps these as 64-bit values; a 32-bit guest's registers are the
    sign-extended 32-bit values. Here they are held as unsigned 32-bit.
    """

    gpr: list[int] = field(default_factory=lambda: [0] * 32)
    hi: int = 0
    lo: int = 0
    pc: int = 0
