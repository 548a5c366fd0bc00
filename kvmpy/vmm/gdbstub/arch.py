"""What the stub knows about an architecture: its registers as gdb numbers them.

This is the only architecture-specific part of the gdb stub. A description
lists every register gdb expects, in gdb's register-number order (which is
the order of the `g` packet), with its size, the target description feature
it belongs to, and the KVM ONE_REG id that reads it - or no id when this VM
has no such register, which the stub reports as "unavailable" (`xx...`).
`target_xml()` renders the description gdb fetches with
`qXfer:features:read:target.xml`.

MIPS32 (gdb's mips-tdep): features `org.gnu.gdb.mips.cpu` (r0-r31, lo, hi,
pc), `org.gnu.gdb.mips.cp0` (status, badvaddr, cause) and
`org.gnu.gdb.mips.fpu` (f0-f31, fcsr, fir). gdb rejects a MIPS description
without the fpu feature, so it is always present; without an FPU its
registers are unavailable. Numbering: r0-r31 = 0-31, status 32, lo 33,
hi 34, badvaddr 35, cause 36, pc 37, f0-f31 = 38-69, fcsr 70, fir 71.

PowerPC 440 (next): `org.gnu.gdb.power.core` (r0-r31, pc, msr, cr, lr, ctr,
xer) with `org.gnu.gdb.power.fpu` as gdb's rs6000 target requires; GPRs of
Book E are not ONE_REG registers in Linux, so its backend will name them
with ids of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from xml.sax.saxutils import quoteattr

from kvmpy.arch.mips.uapi import (
    CP0_ID_BY_NAME,
    KVM_REG_MIPS,
    KVM_REG_MIPS_HI,
    KVM_REG_MIPS_LO,
    KVM_REG_MIPS_PC,
    KVM_REG_SIZE_U32,
    gp_reg,
)


class ByteOrder(Enum):
    LITTLE = "little"
    BIG = "big"


@dataclass(frozen=True)
class RegisterDesc:
    """One register as gdb sees it.

    `regnum` is gdb's number for it (its position in the `g` packet);
    `one_reg_id` reads and writes it through KVM_GET/SET_ONE_REG, or is None
    when this VM does not have the register (reported unavailable, writes
    ignored). `gdb_type` is the target description type ("int",
    "code_ptr", "ieee_single"...).
    """

    name: str
    regnum: int
    bitsize: int
    feature: str
    one_reg_id: int | None
    gdb_type: str = "int"

    @property
    def size_bytes(self) -> int:
        return self.bitsize // 8


@dataclass(frozen=True)
class ArchDescription:
    """A guest architecture's registers, byte order and gdb architecture name.

    `registers` is in regnum order with no gaps (regnum i is registers[i]).
    `page_bytes` is the smallest granule over which guest-virtual to
    guest-physical translation is contiguous: the stub translates a memory
    access once per granule it touches.
    """

    gdb_arch: str
    byte_order: ByteOrder
    registers: tuple[RegisterDesc, ...]
    page_bytes: int = 4096

    def __post_init__(self) -> None:
        for index, reg in enumerate(self.registers):
            if reg.regnum != index:
                raise ValueError(f"register {reg.name} has regnum {reg.regnum}, expected {index}")

    @property
    def pc(self) -> RegisterDesc:
        return next(r for r in self.registers if r.name == "pc")

    def encode(self, reg: RegisterDesc, value: int) -> bytes:
        """A register value in target byte order, as the `g`/`p` packets carry it."""
        return (value & ((1 << reg.bitsize) - 1)).to_bytes(reg.size_bytes, self.byte_order.value)

    def decode(self, reg: RegisterDesc, data: bytes) -> int:
        return int.from_bytes(data, self.byte_order.value)

    def target_xml(self) -> str:
        """The target description document (one file, no includes)."""
        lines = [
            '<?xml version="1.0"?>',
            '<!DOCTYPE target SYSTEM "gdb-target.dtd">',
            "<target>",
            f"  <architecture>{self.gdb_arch}</architecture>",
        ]
        features: dict[str, list[RegisterDesc]] = {}
        for reg in self.registers:
            features.setdefault(reg.feature, []).append(reg)
        # Each register names its regnum, so a feature may hold registers gdb numbers apart
        # (MIPS numbers cp0 status between r31 and lo).
        for feature, regs in features.items():
            lines.append(f"  <feature name={quoteattr(feature)}>")
            lines += [
                f"    <reg name={quoteattr(reg.name)} bitsize=\"{reg.bitsize}\""
                f" regnum=\"{reg.regnum}\" type={quoteattr(reg.gdb_type)}/>"
                for reg in regs
            ]
            lines.append("  </feature>")
        lines.append("</target>")
        return "\n".join(lines) + "\n"


_MIPS_CPU = "org.gnu.gdb.mips.cpu"
_MIPS_CP0 = "org.gnu.gdb.mips.cp0"
_MIPS_FPU = "org.gnu.gdb.mips.fpu"

# Linux's KVM_REG_MIPS_FPU group: FPRs at index n, FIR at FCR index 0, FCSR at FCR index 31.
_KVM_REG_MIPS_FPR = KVM_REG_MIPS | 0x30000
_KVM_REG_MIPS_FCR = KVM_REG_MIPS | 0x30100


def mips32(*, byte_order: ByteOrder = ByteOrder.LITTLE, has_fpu: bool = False,
           gdb_arch: str = "mips:isa32r2") -> ArchDescription:
    """The MIPS32 description: the Malta guests are little-endian MIPS32r2 without an FPU."""
    regs: list[RegisterDesc] = [RegisterDesc(f"r{n}", n, 32, _MIPS_CPU, gp_reg(n)) for n in range(32)]
    regs += [
        RegisterDesc("status", 32, 32, _MIPS_CP0, CP0_ID_BY_NAME["STATUS"]),
        RegisterDesc("lo", 33, 32, _MIPS_CPU, KVM_REG_MIPS_LO),
        RegisterDesc("hi", 34, 32, _MIPS_CPU, KVM_REG_MIPS_HI),
        RegisterDesc("badvaddr", 35, 32, _MIPS_CP0, CP0_ID_BY_NAME["BADVADDR"]),
        RegisterDesc("cause", 36, 32, _MIPS_CP0, CP0_ID_BY_NAME["CAUSE"]),
        RegisterDesc("pc", 37, 32, _MIPS_CPU, KVM_REG_MIPS_PC, "code_ptr"),
    ]
    regs += [
        RegisterDesc(f"f{n}", 38 + n, 32, _MIPS_FPU,
                     _KVM_REG_MIPS_FPR | KVM_REG_SIZE_U32 | n if has_fpu else None, "ieee_single")
        for n in range(32)
    ]
    fcr = _KVM_REG_MIPS_FCR | KVM_REG_SIZE_U32
    regs += [
        RegisterDesc("fcsr", 70, 32, _MIPS_FPU, fcr | 31 if has_fpu else None),
        RegisterDesc("fir", 71, 32, _MIPS_FPU, fcr | 0 if has_fpu else None),
    ]
    return ArchDescription(gdb_arch=gdb_arch, byte_order=byte_order, registers=tuple(regs))
