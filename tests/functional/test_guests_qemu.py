"""The test guests under QEMU, checked against values derived from the architecture.

These tests validate the guests themselves (and QEMU as the reference):
every expected value below follows from the MIPS32 Architecture for
Programmers, vol. II (instruction set) and vol. III (privileged resource
architecture), not from QEMU's output. Comments give the derivation where
it is not obvious. Addresses come from the guest's symbol table.

Guest output conventions (see tests/guests/README.md):
  PRINT_REG  "<name>=<8 hex digits>"
  exceptions "EXC <name> code=<ExcCode> bd=<Cause.BD> vec=<refill|general>
              epc=<EPC>[ badva=<BadVAddr>][ ce=<Cause.CE>][ ip=<Cause.IP>]"
  end        "EXIT <code>"
"""

from __future__ import annotations

import functools
import math
import re
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

pytestmark = pytest.mark.qemu

Output = Callable[[str], str]

MASK32 = 0xFFFFFFFF


# --------------------------------------------------------------------------
# helpers


@functools.cache
def _symbols(elf: Path) -> dict[str, list[int]]:
    proc = subprocess.run(["mipsel-linux-gnu-nm", str(elf)], capture_output=True, text=True, check=True)
    table: dict[str, list[int]] = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3:
            # nm prints 32-bit MIPS addresses sign-extended to 64 bits
            table.setdefault(parts[2], []).append(int(parts[0], 16) & MASK32)
    return table


@pytest.fixture
def sym(guest_elfs: dict[str, Path]) -> Callable[[str, str], int]:
    """sym(guest, symbol) -> address (the symbol must be unique in the ELF)."""

    def lookup(guest: str, name: str) -> int:
        addrs = _symbols(guest_elfs[guest]).get(name, [])
        assert len(addrs) == 1, f"{guest}: symbol {name!r} found {len(addrs)} times"
        return addrs[0]

    return lookup


def text(*lines: str | Iterable[str]) -> str:
    """Join lines (strings or iterables of strings) into newline-terminated text."""
    out: list[str] = []
    for item in lines:
        if isinstance(item, str):
            out.append(item)
        else:
            out.extend(item)
    return "".join(f"{line}\n" for line in out)


def regs(pairs: Iterable[tuple[str, int]]) -> list[str]:
    """PRINT_REG lines."""
    return [f"{name}={value & MASK32:08x}" for name, value in pairs]


def exc(
    name: str,
    code: int,
    epc: int,
    *,
    bd: int = 0,
    vec: str = "general",
    badva: int | None = None,
    ce: int | None = None,
) -> str:
    """The default handler's EXC line (lib.c: exc_print)."""
    line = f"EXC {name} code={code} bd={bd} vec={vec} epc={epc:08x}"
    if badva is not None:
        line += f" badva={badva:08x}"
    if ce is not None:
        line += f" ce={ce}"
    return line


def mem(addr: int, words: list[int]) -> list[str]:
    """DUMP_MEM lines: header, then 4 words per line."""
    lines = [f"MEM {addr:08x} {len(words) * 4}"]
    for i in range(0, len(words), 4):
        chunk = " ".join(f"{w:08x}" for w in words[i : i + 4])
        lines.append(f"{addr + 4 * i:08x}: {chunk}")
    return lines


REGNAMES = (
    "zero", "at", "v0", "v1", "a0", "a1", "a2", "a3", "t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7",
    "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "t8", "t9", "k0", "k1", "gp", "sp", "fp", "ra",
)  # fmt: skip


def dump(tag: int, values: list[int], hi: int, lo: int) -> list[str]:
    """DUMP_REGS lines for 32 register values."""
    lines = [f"REGS {tag}"]
    for row in range(8):
        lines.append(" ".join(f"{REGNAMES[i]}={values[i]:08x}" for i in range(row * 4, row * 4 + 4)))
    lines.append(f"hi={hi:08x} lo={lo:08x}")
    return lines


EXC_SYS, EXC_BP, EXC_RI, EXC_CPU, EXC_OV, EXC_TR = 8, 9, 10, 11, 12, 13
EXC_MOD, EXC_TLBL, EXC_TLBS, EXC_ADEL, EXC_ADES = 1, 2, 3, 4, 5


# --------------------------------------------------------------------------
# runtime conventions


def test_hello(qemu_output: Output) -> None:
    assert qemu_output("hello") == text(
        "hello from kvmpy test guest",
        "dec 0 -12345 4000000000",
        "hex beef 00001234 deadbeef",
        "str [abc] char [Z] pct [%] width [   42] [00042]",
        # F(47) = 2971215073 < 2^32 <= F(48)
        "fib(10)=55 fib(47)=2971215073",
        "EXIT 0",
    )


def test_regdump(qemu_output: Output, sym: Callable[[str, str], int]) -> None:
    # Register n is loaded with n * 0x01010101 (t0 last rewritten to its
    # pattern); k0 is the RT_CALL scratch register and always prints 0.
    values = [n * 0x01010101 for n in range(32)]
    values[26] = 0
    block1 = dump(1, values, 0x0BADF00D, 0xCAFE0001)
    block2 = dump(2, values, 0x0BADF00D, 0xCAFE0001)
    pattern = sym("regdump", "pattern")
    # Little endian: bytes 11 22 33 44 form the word 0x44332211.
    assert qemu_output("regdump") == text(
        "regdump",
        block1,
        "t0=08080808",
        "ra=1f1f1f1f",
        "between",
        block2,
        mem(pattern, [0x00000000, 0xFFFFFFFF, 0x12345678, 0x9ABCDEF0, 0x44332211, 0x88776655]),
        "EXIT 0",
    )


# --------------------------------------------------------------------------
# ALU


def test_alu_imm(qemu_output: Output) -> None:
    expected = [
        ("addiu_wrap", 0x80000010),  # 0x7ffffff0 + 0x20, addiu never traps
        ("addiu_m1", 0xFFFFFFFF),  # immediate is sign-extended
        ("addiu_min_m1", 0x7FFFFFFF),  # 0x80000000 - 1 wraps without Ov
        ("addi_max", 0x7FFFFFFF),  # 0x7ffffff0 + 15: largest positive, no overflow
        ("addi_neg", 0x7FFF8000),  # 0x7ffffff0 - 0x7ff0
        ("addi_min_plus", 0x80007FFF),
        ("slti_pos_m1", 0),  # signed: 0x7ffffff0 < -1 is false
        ("slti_min_m1", 1),  # signed: -2^31 < -1
        ("slti_eq", 0),
        ("sltiu_sext", 1),  # imm -1 sign-extends to 0xffffffff, then unsigned compare
        ("sltiu_big", 0),
        ("sltiu_zero_1", 1),
        ("sltiu_neg_imm", 1),  # imm 0x8000 -> 0xffff8000 > 0xdeadbeef unsigned
        ("andi_low", 0x0000BEEF),  # logical immediates are zero-extended
        ("andi_zext", 0x00008000),
        ("ori_zext", 0x00008000),
        ("ori", 0xDEADBEFF),
        ("xori", 0xDEAD4110),  # 0xbeef ^ 0xffff = 0x4110
        ("xori_0", 0xDEADBEEF),
        ("lui_8001", 0x80010000),
        ("lui_ffff", 0xFFFF0000),
        ("lui_0", 0),
        ("zero", 0),  # writes to $zero are discarded
    ]
    assert qemu_output("alu_imm") == text("alu_imm", regs(expected), "EXIT 0")


def test_alu_reg(qemu_output: Output) -> None:
    expected = [
        ("addu_wrap", 0x80000000),
        ("addu_m1_m1", 0xFFFFFFFE),
        ("add", 0x21436587),  # 0x12345678 + 0x0f0f0f0f, bytewise no carries
        ("add_neg", 0xFFFFFFFE),  # -1 + -1 = -2: no signed overflow
        ("add_min_max", 0xFFFFFFFF),  # -2^31 + (2^31 - 1) = -1
        ("subu_wrap", 0x7FFFFFFF),
        ("subu_neg", 0xFFFFFFFF),
        ("sub_1_m1", 2),
        ("sub", 0x03254769),
        ("and", 0x02040608),
        ("or", 0x1F3F5F7F),
        ("xor", 0x1D3B5977),
        ("nor", 0xE0C0A080),  # ~(0x1f3f5f7f)
        ("nor_zero", 0xFFFFFFFF),
        ("slt_min_1", 1),
        ("slt_1_min", 0),
        ("slt_eq", 0),
        ("slt_m1_0", 1),
        ("sltu_min_1", 0),  # 0x80000000 > 1 unsigned
        ("sltu_1_min", 1),
        ("sltu_0_m1", 1),
        ("addu_self", 0x2468ACF0),
        ("xor_self", 0),
        ("zero", 0),
    ]
    assert qemu_output("alu_reg") == text("alu_reg", regs(expected), "EXIT 0")


def test_shifts(qemu_output: Output) -> None:
    a, b = 0x80000001, 0x12345678

    def rotr(x: int, n: int) -> int:
        return ((x >> n) | (x << (32 - n))) & MASK32 if n else x

    expected = [
        ("sll_1", 0x00000002),  # bit 31 is shifted out
        ("sll_4", 0x23456780),
        ("sll_0", b),
        ("sll_31", 0x80000000),
        ("srl_1", 0x40000000),  # logical: zero fill
        ("srl_31", 1),
        ("srl_8", 0x00123456),
        ("sra_1", 0xC0000000),  # arithmetic: sign fill
        ("sra_31", 0xFFFFFFFF),
        ("sra_pos", 0x01234567),
        ("sllv_36", 0x23456780),  # variable shifts use rs[4:0]: 36 -> 4
        ("srlv_33", 0x40000000),  # 33 -> 1
        ("srav_m31", 0xC0000000),  # 0xffffffe1 -> 1
        ("srav_32", a),  # 32 -> 0
        ("srlv_12", 0x00012345),
        ("rotr_4", rotr(b, 4)),  # 0x81234567
        ("rotr_16", rotr(b, 16)),  # 0x56781234
        ("rotr_1", rotr(a, 1)),  # bit 0 rotates into bit 31: 0xc0000000
        ("rotr_0", b),
        ("rotr_31", rotr(a, 31)),  # = rotate left by 1: 0x00000003
        ("rotrv_8", rotr(b, 8)),  # 0x78123456
        ("rotrv_36", rotr(b, 4)),  # rs[4:0] = 4
        ("rotrv_31", rotr(a, 31)),
        ("rotr_self", rotr(b, 8)),
    ]
    assert expected[15][1] == 0x81234567 and expected[19][1] == 0x00000003
    assert qemu_output("shifts") == text("shifts", regs(expected), "EXIT 0")


def test_muldiv(qemu_output: Output) -> None:
    def split(v: int) -> tuple[int, int]:
        v &= (1 << 64) - 1
        return v >> 32, v & MASK32

    def trunc_div(n: int, d: int) -> tuple[int, int]:
        """div: quotient rounds toward zero; remainder has the dividend's sign."""
        q = abs(n) // abs(d) * (1 if (n < 0) == (d < 0) else -1)
        return n - q * d, q  # (HI, LO)

    cases: list[tuple[str, tuple[int, int]]] = [
        ("acc", (0x11223344, 0x55667788)),
        ("mult_max_max", split((2**31 - 1) ** 2)),  # 0x3fffffff_00000001
        ("mult_m1_m1", split(1)),
        ("multu_ff_ff", split((2**32 - 1) ** 2)),  # 0xfffffffe_00000001
        ("mult_m1_2", split(-2)),
        ("multu_ff_2", split((2**32 - 1) * 2)),
        ("mult_min_min", split(2**62)),
        ("multu_min_min", split(2**62)),
        ("div_7_2", trunc_div(7, 2)),
        ("div_m7_2", trunc_div(-7, 2)),  # LO=-3, HI=-1
        ("div_7_m2", trunc_div(7, -2)),  # LO=-3, HI=1
        ("div_m7_m2", trunc_div(-7, -2)),  # LO=3, HI=-1
        ("divu_ff_2", (1, 0x7FFFFFFF)),
        ("divu_ff_16", (0xF, 0x0FFFFFFF)),
        ("divu_min_3", (2, 0x2AAAAAAA)),  # 2^31 = 3 * 715827882 + 2
        ("div_min_3", trunc_div(-(2**31), 3)),
        ("madd", split(16 + 3 * -2)),  # HI:LO += rs * rt (signed)
        ("madd_carry", split(0xFFFFFFFF + 1)),  # the 64-bit sum carries into HI
        ("maddu", split(0xFFFFFFFF + (2**32 - 1) ** 2)),
        ("madd_m1_m1", split(1)),
        ("msub", split(0 - 3 * 4)),
        ("msub_neg", split(0 - (-2 * 3))),
        ("msubu", split(2**32 - 4 * (2**32 - 1))),  # 0xfffffffd_00000004
        ("msubu_1", split(2**32 - (2**32 - 1))),
    ]
    lines: list[str] = []
    for name, (hi, lo) in cases:
        lines += regs([(f"{name}_hi", hi), (f"{name}_lo", lo)])
    # mul writes the low 32 bits of the signed product to rd (HI/LO are
    # UNPREDICTABLE afterwards, so the guest rewrites them before printing)
    lines += regs(
        [
            ("mul_x10", 0x23456780),
            ("mul_m3_5", -15),
            ("mul_2p32", 0),  # 0x10000 * 0x10000 = 2^32: low word 0
            ("mul_m1_m1", 1),
            ("after_mul_hi", 0xAAAA),
            ("after_mul_lo", 0xBBBB),
        ]
    )
    assert dict(cases)["div_min_3"] == (-2, -715827882)
    assert qemu_output("muldiv") == text("muldiv", lines, "EXIT 0")


def test_clz_clo(qemu_output: Output) -> None:
    def clz(x: int) -> int:
        return 32 - x.bit_length()

    def clo(x: int) -> int:
        return clz(~x & MASK32)

    values = {
        "clz_0": clz(0),  # 32: all zeros
        "clz_1": clz(1),
        "clz_min": clz(0x80000000),
        "clz_00ffffff": clz(0x00FFFFFF),
        "clz_00008000": clz(0x00008000),
        "clz_m1": clz(0xFFFFFFFF),
        "clo_m1": clo(0xFFFFFFFF),  # 32
        "clo_0": clo(0),
        "clo_fffffff0": clo(0xFFFFFFF0),
        "clo_min": clo(0x80000000),
        "clo_ff00ffff": clo(0xFF00FFFF),
        "clo_fffffffe": clo(0xFFFFFFFE),
    }
    assert values["clz_0"] == 32 and values["clo_fffffff0"] == 28
    assert qemu_output("clz_clo") == text("clz_clo", regs(values.items()), "EXIT 0")


def test_bitops(qemu_output: Output) -> None:
    expected = [
        ("ext_4_8", 0x67),  # ext rt, rs, pos, size: zero-extended rs[pos+size-1:pos]
        ("ext_0_32", 0x12345678),
        ("ext_28_4", 0x1),
        ("ext_31_1", 0),
        ("ext_16_16", 0x1234),
        ("ext_3_1", 1),  # 0x8 = 0b1000
        ("ext_min_31_1", 1),
        ("ins_8_8", 0xFFFF78FF),  # ins: rt[pos+size-1:pos] = rs[size-1:0]
        ("ins_28_4", 0x80000000),  # rs[3:0] = 8 -> bits 31..28
        ("ins_0_32", 0x12345678),
        ("ins_clear", 0xAA00000A),  # bits 23..4 cleared
        ("ins_31_1", 0x80000000),
        ("seb_80", 0xFFFFFF80),
        ("seb_7f", 0x7F),
        ("seh_8000", 0xFFFF8000),
        ("seh_7fff", 0x7FFF),
        ("wsbh_11223344", 0x22114433),  # swap bytes within each halfword
        ("wsbh_12345678", 0x34127856),
        ("bswap", 0x44332211),  # wsbh then rotr 16
    ]
    assert qemu_output("bitops") == text("bitops", regs(expected), "EXIT 0")


def test_movcond(qemu_output: Output) -> None:
    expected = [
        ("movz_taken", 0x1111),  # movz: rd = rs if rt == 0
        ("movz_not", 0xAAAA),
        ("movn_taken", 0x1111),  # movn: rd = rs if rt != 0
        ("movn_not", 0xAAAA),
        ("movz_zero", 0x1111),
        ("movn_zero", 0xAAAA),
        ("movz_rd_rt", 0x1111),  # the condition reads rt before rd is written
        ("movn_rd_rt", 0x1111),
    ]
    assert qemu_output("movcond") == text("movcond", regs(expected), "EXIT 0")


# --------------------------------------------------------------------------
# branches and jumps


def test_branches(qemu_output: Output) -> None:
    # 3 = taken (delay slot executed), 1 = not taken (slot executed),
    # 0 = branch-likely not taken: the slot is nullified.
    t, n, nl = 3, 1, 0
    cases = [
        ("beq_eq", t), ("beq_ne", n), ("bne_ne", t), ("bne_eq", n),
        ("blez_neg", t), ("blez_zero", t), ("blez_pos", n),
        ("bgtz_pos", t), ("bgtz_zero", n), ("bgtz_neg", n),
        ("bltz_neg", t), ("bltz_zero", n),
        ("bgez_zero", t), ("bgez_pos", t), ("bgez_neg", n),
        ("bltzal_neg", t), ("bltzal_zero", n), ("bgezal_zero", t), ("bgezal_neg", n),
        ("b", t), ("bal", t),
        ("beql_eq", t), ("beql_ne", nl), ("bnel_ne", t), ("bnel_eq", nl),
        ("blezl_zero", t), ("blezl_pos", nl), ("bgtzl_pos", t), ("bgtzl_neg", nl),
        ("bltzl_neg", t), ("bltzl_zero", nl), ("bgezl_zero", t), ("bgezl_neg", nl),
        ("bltzall_neg", t), ("bltzall_pos", nl), ("bgezall_pos", t), ("bgezall_neg", nl),
    ]  # fmt: skip
    # Linking branches set GPR[31] = PC + 8 whether or not they are taken
    # (BLTZAL/BGEZAL and their likely forms write the link unconditionally).
    links = [
        ("link_bal", 8), ("link_bltzal_taken", 8), ("link_bltzal_not", 8),
        ("link_bgezal_taken", 8), ("link_bgezal_not", 8), ("link_bltzall_not", 8),
        ("link_bgezall_taken", 8),
    ]  # fmt: skip
    rest = [
        ("bal_slot_sees_link", 8),  # the link is written before the slot runs
        ("cond_before_slot", 0),  # beq compared a0 = 5 before its slot made it 6
        ("slot_result", 6),
        ("beql_nullified_store", 0x1234),
        ("bnel_taken_store", 0x5678),
        ("loop_sum", 55),  # 10 + 9 + ... + 1 + 0, the decrement in the slot
        ("loop_counter", -1),  # the final not-taken bnez still runs its slot
        ("branch_to_next", 3),
    ]
    assert qemu_output("branches") == text("branches", regs(cases + links + rest), "EXIT 0")


def test_jumps(qemu_output: Output) -> None:
    expected = [
        ("j", 3),  # slot (1) and target (2), not the fall-through (4)
        ("jal_slot_link", 8),  # jal writes ra = jal + 8 before its slot runs
        ("jal_link", 8),
        ("jal_ret", 42),  # ret_42's jr slot adds 1 to 41
        ("jr", 3),
        ("jalr_link", 8),
        ("jalr_ret", 42),
        ("jalr_rd_link", 8),  # jalr rd, rs links into rd ...
        ("jalr_rd_ra", 0x12345678),  # ... and leaves ra alone
        ("jalr_hb_link", 8),
        ("jalr_hb_ret", 42),
        ("jr_hb", 0x77),
        ("jalr_slot_clobber", 0),  # jumps to the old t9; the slot then zeroes it
        ("fact5", 120),
    ]
    assert qemu_output("jumps") == text("jumps", regs(expected), "EXIT 0")


# --------------------------------------------------------------------------
# loads and stores


def test_loadstore(qemu_output: Output, sym: Callable[[str, str], int]) -> None:
    # src bytes: 80 7f ff 01 34 12 00 80 78 56 34 12 ef be ad de (little endian)
    first = regs(
        [
            ("lb_80", 0xFFFFFF80),
            ("lbu_80", 0x80),
            ("lb_7f", 0x7F),
            ("lbu_ff", 0xFF),
            ("lh_0", 0x7F80),  # bytes 80 7f -> 0x7f80, positive
            ("lh_2", 0x01FF),
            ("lh_6", 0xFFFF8000),  # bytes 00 80 -> 0x8000, sign-extended
            ("lhu_6", 0x8000),
            ("lw_0", 0x01FF7F80),
            ("lw_8", 0x12345678),
            ("lw_neg_off", 0x12345678),
            ("lbu_neg_off", 0x01),  # (src + 12) - 9 = src + 3
            ("lw_zero", 0),
            ("load_use", 0x2468ACF0),
        ]
    )
    # dst word 0: sb 0xab at +1, sh 0xbeef at +2            -> 0xbeefab00
    # dst word 2: sh 0x5678 at +8, sb 0x78 at +11, 0xff at +10 -> 0x78ff5678
    # dst word 3: 0x01020304 with byte +13 replaced by 0x55  -> 0x01025504
    dst = sym("loadstore", "dst")
    dumped = mem(dst, [0xBEEFAB00, 0xCAFEBABE, 0x78FF5678, 0x01025504])
    last = regs(
        [
            ("lbu_after_sw", 0xBE),  # lowest byte of 0xcafebabe
            ("lhu_after_sw", 0xCAFE),
            ("kseg1_read", 0x600DCAFE),  # kseg0 and kseg1 map the same PA
            ("kseg0_read", 0x0BAD0BAD),
        ]
    )
    assert qemu_output("loadstore") == text("loadstore", first, dumped, last, "EXIT 0")


def test_lwlr(qemu_output: Output, sym: Callable[[str, str], int]) -> None:
    # Little-endian semantics (vol. II LWL/LWR/SWL/SWR), b = address & 3,
    # W = the aligned memory word, R = the register:
    #   lwl: R = W << 8*(3-b) | R & (2^(8*(3-b)) - 1)   (bytes a-b..a -> top of R)
    #   lwr: R = W >> 8*b | R & ~(0xffffffff >> 8*b)    (bytes a..a|3 -> bottom of R)
    #   swl: W = R >> 8*(3-b) | W & ~(0xffffffff >> 8*(3-b))
    #   swr: W = R << 8*b | W & (2^(8*b) - 1)
    mem_bytes = bytes(range(0x00, 0x88, 0x11))  # 00 11 22 ... 77
    w0 = int.from_bytes(mem_bytes[0:4], "little")  # 0x33221100
    r = 0xAABBCCDD

    def lwl(w: int, b: int, reg: int) -> int:
        sh = 8 * (3 - b)
        return ((w << sh) | (reg & ((1 << sh) - 1))) & MASK32

    def lwr(w: int, b: int, reg: int) -> int:
        sh = 8 * b
        return (w >> sh) | (reg & ~(MASK32 >> sh) & MASK32)

    def swl(w: int, b: int, reg: int) -> int:
        sh = 8 * (3 - b)
        return (reg >> sh) | (w & ~(MASK32 >> sh) & MASK32)

    def swr(w: int, b: int, reg: int) -> int:
        sh = 8 * b
        return ((reg << sh) & MASK32) | (w & ((1 << sh) - 1))

    loads = [(f"lwl_{b}", lwl(w0, b, r)) for b in range(4)] + [(f"lwr_{b}", lwr(w0, b, r)) for b in range(4)]
    assert [v for _, v in loads] == [
        0x00BBCCDD, 0x1100CCDD, 0x221100DD, 0x33221100,
        0x33221100, 0xAA332211, 0xAABB3322, 0xAABBCC33,
    ]  # fmt: skip

    def unaligned(off: int) -> int:
        return int.from_bytes(mem_bytes[off : off + 4], "little")

    # lwr X; lwl X+3 (in either order) loads the unaligned word at X
    loads += [("ulw_1", unaligned(1)), ("ulw_2", unaligned(2)), ("ulw_3", unaligned(3)), ("ulw_0", w0)]
    rs = 0x44332211
    cells = [swl(MASK32, b, rs) for b in range(4)] + [swr(MASK32, b, rs) for b in range(4)]
    assert cells == [
        0xFFFFFF44, 0xFFFF4433, 0xFF443322, 0x44332211,
        0x44332211, 0x332211FF, 0x2211FFFF, 0x11FFFFFF,
    ]  # fmt: skip
    # swr X; swl X+3 stores 11 22 33 44 at X = pair+1 and X = pair+10
    pair = bytearray(b"\xff" * 16)
    pair[1:5] = rs.to_bytes(4, "little")
    pair[10:14] = rs.to_bytes(4, "little")
    pair_words = [int.from_bytes(pair[i : i + 4], "little") for i in range(0, 16, 4)]
    assert qemu_output("lwlr") == text(
        "lwlr",
        regs(loads),
        mem(sym("lwlr", "cells"), cells),
        mem(sym("lwlr", "pair"), pair_words),
        "EXIT 0",
    )


def test_llsc(qemu_output: Output, sym: Callable[[str, str], int]) -> None:
    assert qemu_output("llsc") == text(
        "llsc",
        regs([("sc_ok_flag", 1), ("sc_ok_mem", 6), ("atomic_inc", 9)]),
        # eret clears LLbit (vol. II ERET), so the sc after the syscall fails:
        # rt = 0 and memory keeps 9
        exc("Sys", EXC_SYS, sym("llsc", "llsc_syscall")),
        regs(
            [
                ("sc_after_eret_flag", 0),
                ("sc_after_eret_mem", 9),
                ("sc_again_flag", 1),
                ("sc_again_mem", 0x99),
                # privileged instructions between ll and sc leave LLbit set
                # (only eret clears it), in one pair and in a 100-round loop
                ("sc_over_cp0_flag", 1),
                ("sc_over_cp0_mem", 0xAB),
                ("sc_loop_over_tlbp", 0xAB + 100),
            ]
        ),
        "EXIT 0",
    )


# --------------------------------------------------------------------------
# traps, syscall, break


def test_traps(qemu_output: Output, sym: Callable[[str, str], int]) -> None:
    # t0 = t1 = 5, t2 = -1, t3 = 1. Unsigned forms compare 0xffffffff; the
    # immediate of tgeiu/tltiu is sign-extended, then compared unsigned.
    taken = {
        "teq_taken": True, "teq_not": False, "tne_taken": True, "tne_not": False,
        "tge_taken": True, "tge_not": False,  # 5 >= 5; -1 >= 1 is false
        "tgeu_taken": True, "tgeu_not": False,  # 0xffffffff >= 1; 1 >= 0xffffffff false
        "tlt_taken": True, "tlt_not": False,  # -1 < 1; 5 < 5 false
        "tltu_taken": True, "tltu_not": False,  # 1 < 0xffffffff; 0xffffffff < 1 false
        "teqi_taken": True, "teqi_not": False, "tnei_taken": True, "tnei_not": False,
        "tgei_taken": True, "tgei_not": False,  # -1 >= -1; -1 >= 0 false
        "tgeiu_taken": True, "tgeiu_not": False,  # 0xffffffff >= 0xffffffff; 1 >= 0xffffffff false
        "tlti_taken": True, "tlti_not": False,  # -1 < 0; 1 < 0 false
        "tltiu_taken": True, "tltiu_not": False,  # 1 < 0xffffffff; 0xffffffff < 5 false
        "teq_code": True,
    }  # fmt: skip
    lines = ["traps"]
    for case, trap in taken.items():
        lines.append(case)
        if trap:
            lines.append(exc("Tr", EXC_TR, sym("traps", f"trap_{case}")))
    assert qemu_output("traps") == text(lines, "end", "EXIT 0")


def test_syscall_break(qemu_output: Output, sym: Callable[[str, str], int]) -> None:
    # The code field is bits 25..6. gas puts "break 7" in bits 25..16
    # (code1), so the 20-bit field is 7 << 10 = 0x01c00; "break 0x3ff, 0x3ff"
    # fills all 20 bits.
    assert qemu_output("syscall_break") == text(
        "syscall_break",
        exc("Sys", EXC_SYS, sym("syscall_break", "sb_sys0")),
        exc("Bp", EXC_BP, sym("syscall_break", "sb_brk0")),
        "handler: exccode=8 code=12345",
        "syscall_ret=00112345",
        "handler: exccode=8 code=00000",
        "syscall0_ret=00100000",
        "handler: exccode=9 code=01c00",
        "break_ret=00101c00",
        "handler: exccode=9 code=fffff",
        "break2_ret=001fffff",
        "EXIT 0",
    )


def test_nops(qemu_output: Output, sym: Callable[[str, str], int]) -> None:
    out = qemu_output("nops")
    lines = out.splitlines()
    assert lines[0] == "nops" and lines[-1] == "EXIT 0"
    # REGS 1 (10 lines) and MEM (2 lines) before, the same after
    before, after = lines[1:13], lines[13:25]
    assert before[0] == "REGS 1" and after[0] == "REGS 2"
    assert before[1:] == after[1:], "nop/ssnop/ehb/sync/pref/cache/synci changed state"
    data = sym("nops", "data")
    assert before[3].startswith("t0=01234567 t1=89abcdef t2=00001000 ")
    assert before[5].startswith(f"s0={data:08x}")
    assert "a0=feedface" in before[2]
    assert before[9] == "hi=01234567 lo=89abcdef"
    assert before[10:] == mem(data, [0x11111111, 0x22222222, 0x33333333, 0x44444444])


def test_mmio_bd(qemu_output: Output) -> None:
    # UART accesses in delay slots behave like any other slot instruction:
    # executed after taken and not-taken branches and jumps, nullified after
    # a not-taken branch-likely ('E' never reaches the UART, v1 keeps 0x77).
    # An idle 16550 reads LSR with THRE (0x20) and TEMT (0x40) set.
    assert qemu_output("mmio_bd") == text(
        "mmio_bd",
        "ABCDF",
        regs([("lsr_taken", 0x60), ("lsr_not_taken", 0x60), ("lsr_jalr", 0x60), ("lsr_nullified", 0x77)]),
        "EXIT 0",
    )


# --------------------------------------------------------------------------
# CP0


def test_cp0_misc(qemu_output: Output) -> None:
    expected = [
        ("di_old", 0x1),  # di rt: rt = Status before, then IE = 0
        ("di_new", 0x0),
        ("ei_old", 0x0),
        ("ei_new", 0x1),
        ("di_noreg", 0x0),
        ("ei_noreg", 0x1),
        ("eret_exl_skipped", 0),  # eret has no delay slot
        ("eret_exl_status", 0),  # EXL cleared
        ("eret_erl_wrong_target", 0),  # ERL=1: return to ErrorEPC, not EPC
        ("eret_erl_status", 0x2),  # only ERL is cleared; EXL stays set
        ("epc", 0x12345678),
        ("errorepc", 0x87654320),
        ("compare", 0xDEADBEEF),
        ("entryhi", 0x12346055),
        ("pagemask_16k", 0x6000),
        ("pagemask_64k", 0x1E000),
        ("wired", 5),
        ("index", 3),
        ("context_ptebase", 0xFF800000),  # PTEBase writable, low 4 bits 0
        ("ebase", 0x80000000),  # crt0's exception base, CPUNum 0
        ("cause_swint", 0x300),  # IP1..IP0 are software writable
        ("cause_swint_clear", 0),
        ("count_stopped_delta", 0),  # Cause.DC = 1 stops Count
        ("count_not_advanced", 0),
        ("count_plausible", 1),
    ]
    assert qemu_output("cp0_misc") == text("cp0_misc", regs(expected), "EXIT 0")


def test_rdhwr(qemu_output: Output) -> None:
    # CPUNum = EBase.CPUNum = 0 on the only CPU. SYNCI_Step is the L1 line
    # size and CCRes the Count resolution: implementation values (P5600: 32
    # and 2), which kvmpy's P5600-class core must match.
    assert qemu_output("rdhwr") == text(
        "rdhwr",
        regs(
            [
                ("cpunum", 0),
                ("synci_step", 32),
                ("ccres", 2),
                ("cc_close_to_count", 1),  # hw register 2 reads Count
                ("cc_advanced", 1),
                ("hwrena_f", 0xF),
                ("hwrena_5", 0x5),
                ("hwrena_0", 0x0),
                ("cpunum_hwrena_0", 0),  # kernel mode ignores HWREna
            ]
        ),
        "EXIT 0",
    )


# --------------------------------------------------------------------------
# exceptions


def test_exc_addr(qemu_output: Output, sym: Callable[[str, str], int]) -> None:
    def s(name: str) -> int:
        return sym("exc_addr", name)

    data = s("data")
    fetch_bad = s("fetch_target") + 2
    assert qemu_output("exc_addr") == text(
        "exc_addr",
        # AdEL/AdES: BadVAddr = the unaligned data address, EPC = the access
        "lw_1", exc("AdEL", EXC_ADEL, s("ae_lw_1"), badva=data + 1),
        "lw_2", exc("AdEL", EXC_ADEL, s("ae_lw_2"), badva=data + 2),
        "lw_3", exc("AdEL", EXC_ADEL, s("ae_lw_3"), badva=data + 3),
        "lh_1", exc("AdEL", EXC_ADEL, s("ae_lh_1"), badva=data + 1),
        "lhu_3", exc("AdEL", EXC_ADEL, s("ae_lhu_3"), badva=data + 3),
        "dest_unchanged=aaaaaaaa",  # a faulting load does not write rt
        "lb_1", "lb_1_value=00000011",
        "sw_2", exc("AdES", EXC_ADES, s("ae_sw_2"), badva=data + 2),
        "sh_1", exc("AdES", EXC_ADES, s("ae_sh_1"), badva=data + 1),
        "sh_2",
        # faulting stores wrote nothing; sh at +6 wrote the upper half of word 1
        mem(data, [0x11111111, 0x56782222]),
        "fetch",
        # fetch from an unaligned PC: EPC = BadVAddr = that PC (BD=0: the
        # jalr and its slot completed)
        exc("AdEL", EXC_ADEL, fetch_bad, badva=fetch_bad),
        "fetch_slot_ran=00000001",
        "EXIT 0",
    )  # fmt: skip


def test_exc_ri(qemu_output: Output, sym: Callable[[str, str], int]) -> None:
    def s(name: str) -> int:
        return sym("exc_ri", name)

    assert qemu_output("exc_ri") == text(
        "exc_ri",
        "dsra32", exc("RI", EXC_RI, s("ri_dsra32")),  # MIPS64-only encodings are RI on MIPS32
        "ld", exc("RI", EXC_RI, s("ri_ld")),
        "mfc1", exc("CpU", EXC_CPU, s("ri_mfc1"), ce=1),  # Status.CU1 = 0
        "t0_unchanged=5555aaaa",
        "EXIT 0",
    )  # fmt: skip


def test_exc_ov(qemu_output: Output, sym: Callable[[str, str], int]) -> None:
    mx, mn = 2**31 - 1, -(2**31)

    def fits(v: int) -> bool:
        return mn <= v <= mx

    # (case, exact signed result); Ov iff the result does not fit in 32 bits,
    # and then the destination keeps 0xaaaaaaaa
    cases = [
        ("add_max_1", mx + 1), ("add_min_min", mn + mn), ("add_min_m1", mn - 1),
        ("add_max_m1", mx - 1), ("addi_max_1", mx + 1), ("addi_min_m1", mn - 1),
        ("addi_max_m1", mx - 1), ("sub_min_1", mn - 1), ("sub_0_min", 0 - mn),
        ("sub_max_m1", mx + 1), ("sub_min_m1", mn + 1), ("sub_m1_max", -1 - mx),
    ]  # fmt: skip
    lines = ["exc_ov"]
    for name, result in cases:
        lines.append(name)
        if fits(result):
            lines.append(f"{name}={result & MASK32:08x}")
        else:
            lines.append(exc("Ov", EXC_OV, sym("exc_ov", f"ov_{name}")))
            lines.append(f"{name}=aaaaaaaa")
    # the unsigned forms wrap silently
    for name, result in [("addu_max_1", 0x80000000), ("addiu_max_1", 0x80000000), ("subu_min_1", 0x7FFFFFFF)]:
        lines += [name, f"{name}={result:08x}"]
    assert qemu_output("exc_ov") == text(lines, "EXIT 0")


def test_exc_bd(qemu_output: Output, sym: Callable[[str, str], int]) -> None:
    def s(name: str) -> int:
        return sym("exc_bd", name)

    data = s("data")
    # Exception in a delay slot: Cause.BD = 1 and EPC = the branch/jump
    # (vol. III, EPC and Cause). The handler resumes where the branch goes:
    # path 2 = branch target, 1 = fall-through; linking jumps return to
    # branch + 8.
    assert qemu_output("exc_bd") == text(
        "exc_bd",
        "beq_taken_adel", exc("AdEL", EXC_ADEL, s("bd_beq"), bd=1, badva=data + 1), "path=00000002",
        # a not-taken branch's slot is still a delay slot
        "bne_not_taken_ades", exc("AdES", EXC_ADES, s("bd_bne"), bd=1, badva=data + 2), "path=00000001",
        "j_syscall", exc("Sys", EXC_SYS, s("bd_j"), bd=1), "path=00000002",
        "jal_break", exc("Bp", EXC_BP, s("bd_jal"), bd=1), "path=00000002", "link=00000008",
        "jr_teq", exc("Tr", EXC_TR, s("bd_jr"), bd=1), "path=00000002",
        "jalr_ov", exc("Ov", EXC_OV, s("bd_jalr"), bd=1), "path=00000002", "link=00000008",
        "beql_taken_adel", exc("AdEL", EXC_ADEL, s("bd_beql"), bd=1, badva=data + 1), "path=00000002",
        "bltzal_not_taken_syscall", exc("Sys", EXC_SYS, s("bd_bltzal"), bd=1), "path=00000001",
        "link=00000008",
        "EXIT 0",
    )  # fmt: skip


def test_usermode(qemu_output: Output, sym: Callable[[str, str], int]) -> None:
    def u(name: str) -> int:
        """User code runs at VA = PA = kseg0 address - 0x80000000."""
        return sym("usermode", name) - 0x80000000

    assert qemu_output("usermode") == text(
        "usermode",
        "phase1",
        exc("RI", EXC_RI, u("um_rdhwr")),  # HWREna[0] = 0 and CP0 not usable
        exc("CpU", EXC_CPU, u("um_mfc0"), ce=0),  # privileged instructions
        exc("CpU", EXC_CPU, u("um_di"), ce=0),
        exc("CpU", EXC_CPU, u("um_cache"), ce=0),
        exc("CpU", EXC_CPU, u("um_tlbwi"), ce=0),
        exc("CpU", EXC_CPU, u("um_eret"), ce=0),
        exc("AdEL", EXC_ADEL, u("um_lw_kseg0"), badva=0x80000000),  # kseg0 from user mode
        exc("AdES", EXC_ADES, u("um_sw_kseg1"), badva=0xB80003F8),
        # kuseg miss with EXL = 0: the TLB refill vector
        exc("TLBL", EXC_TLBL, u("um_lw_unmapped"), vec="refill", badva=0x00400000),
        regs(
            [
                ("rdhwr_ri_unchanged", 0x11),
                ("mfc0_cpu_unchanged", 0x22),
                ("kseg0_load_unchanged", 0x33),
                ("mapped_load", 0x0005EED5),
                ("unmapped_load_unchanged", 0x44),
                ("user_store_readback", 0x5A5A),
                ("status_back_in_kernel", 0),
            ]
        ),
        "phase2",
        regs([("user_cpunum", 0), ("user_synci_step", 32), ("user_ccres", 2), ("user_cc_nonzero", 1)]),
        "phase3",
        exc("RI", EXC_RI, u("um_rdhwr3")),  # HWREna = 0x1: register 3 not enabled
        regs([("user_cpunum", 0), ("user_ccres_ri_unchanged", 0x66)]),
        "phase4",
        # CU0 = 1 makes CP0 usable in user mode: rdhwr ignores HWREna and
        # mfc0 works (RDHWR: RI only if HWREna[rd] = 0 and not CP0-enabled)
        regs([("user_cu0_ccres", 2), ("user_cu0_entryhi_asid", 1), ("status_back_in_kernel", 0)]),
        "EXIT 0",
    )


def test_tlb(qemu_output: Output, sym: Callable[[str, str], int]) -> None:
    lw = sym("tlb", "__probe_insn_probe_lw")
    sw = sym("tlb", "__probe_insn_probe_sw")

    def lo(pa: int, flags: int) -> int:
        """EntryLo: PFN in bits 25..6, C in 5..3, D V G in 2..0."""
        return (pa >> 12) << 6 | flags

    cdv = 2 << 3 | 0x4 | 0x2  # C=2 (uncached), D, V
    expected = [
        "tlb",
        "tlb entries >= 16: 1",
        "wired=8",
        "4k even: va=10000000 asid=0 -> 11111111",
        "4k odd: va=10001000 asid=0 -> 22222222",  # odd page of the pair -> EntryLo1
        "4k even end: va=10000ffc asid=0 -> 0000fffc",
        "4k store via mapping, kseg0 read: 33333333",
        "tlbp 4k: hit index=1",
        "tlbp 4k odd half: hit index=1",  # one entry maps the even/odd pair (VPN2)
        "tlbp unmapped: miss",  # Index.P = 1
        f"tlbr 1: entryhi=10000000 lo0={lo(0x400000, cdv):08x} lo1={lo(0x401000, cdv):08x} pagemask=00000000",
        # 16K pages: even page 0x30000000-0x30003fff, odd 0x30004000-0x30007fff
        "16k even last word: va=30003ffc asid=0 -> 44444444",
        "16k odd +0x1000: va=30005000 asid=0 -> 55555555",  # PA 0x804000 + 0x1000
        "tlbp 16k: hit index=2",  # VPN2 compare ignores bits 14..13 (PageMask)
        f"tlbr 2: entryhi=30000000 lo0={lo(0x800000, cdv):08x} lo1={lo(0x804000, cdv):08x} pagemask=00006000",
        # V = 0: TLB invalid, through the general vector (not refill)
        exc("TLBL", EXC_TLBL, lw, badva=0x40000000),
        "invalid even (load): va=40000000 asid=0 -> exception TLBL",
        exc("TLBS", EXC_TLBS, sw, badva=0x40000010),
        "invalid even (store): TLBS",
        "valid odd: va=40001000 asid=0 -> 77777777",
        "clean page load: va=50000000 asid=0 -> 88888888",
        # D = 0: TLB modified; EntryHi holds the faulting VPN2 and ASID
        "MOD badva=50000008 entryhi=50000000",
        "MOD fixed index=4",
        "store to clean page: result=0 kseg0 read=99999999",
        "second store (now dirty): result=0 kseg0 read=aaaaaaaa",
        "asid match: va=60000000 asid=5 -> 0a51d005",
        "global: va=70000000 asid=5 -> 0610ba10",
        # ASID 6 does not match the non-global ASID 5 entry: refill vector;
        # EntryHi = VPN2 | current ASID, Context.BadVPN2 = VA[31:13]
        "REFILL TLBL bd=0 badva=60000000 entryhi=60000006 context.badvpn2=30000",
        exc("TLBL", EXC_TLBL, lw, vec="refill", badva=0x60000000),
        "asid mismatch: va=60000000 asid=6 -> exception TLBL",
        "global: va=70000000 asid=6 -> 0610ba10",  # G = 1 ignores the ASID
        "tlbp asid 5 entry with asid 6: miss",
        "tlbp asid 5 entry with asid 5: hit index=5",
        "tlbp global entry with asid 6: hit index=6",
        # G is the AND of both EntryLo.G at write; it reads back in both
        f"tlbr 6: entryhi=70000009 lo0={lo(0x440000, cdv | 1):08x} lo1={lo(0x441000, cdv | 1):08x}"
        " pagemask=00000000",
        "REFILL TLBL bd=0 badva=20000010 entryhi=20000000 context.badvpn2=10000",
        "refill load: va=20000010 asid=0 -> 66666666",
        "refill again (no refill): va=20000014 asid=0 -> 67676767",
        "tlbwr entry found=1 index>=wired=1 index<size=1",  # Random is in [Wired, size)
        "REFILL TLBS bd=0 badva=20002000 entryhi=20002000 context.badvpn2=10001",
        "refill store: result=0 kseg0 read=12121212",
        # refill in a delay slot: BD = 1, EPC = the branch, which re-executes
        "REFILL TLBL bd=1 badva=20004000 entryhi=20004000 context.badvpn2=10002",
        "bd load: 0bd0bd00",
        # instruction fetch miss: BadVAddr = the PC
        "REFILL TLBL bd=0 badva=74000000 entryhi=74000000 context.badvpn2=3a000",
        "mapped call: 00001234",
        "refills: 4",
        # miss with EXL = 1: general vector (not refill) and EPC not written
        "EXL-MISS vec=general code=TLBL badva=7f000000",
        "exl miss: resumed at exl_resume=1 v0=00001111",
        "EXIT 0",
    ]
    assert lo(0x400000, cdv) == 0x00010016
    assert qemu_output("tlb") == text(expected)


def test_interrupts(qemu_output: Output) -> None:
    assert qemu_output("interrupts") == text(
        "interrupts",
        # pending (Cause.IP0 = 1) but IE = 0: not taken
        "sw0 set, IE=0: ip=01 ti=0 irqs=0",
        "INT ip=01 ti=0",
        "sw0 after IE=1: ip=00 ti=0 irqs=1",
        # IM1 = 0 masks IP1
        "sw1 set, IM1=0: ip=02 ti=0 irqs=1",
        "INT ip=02 ti=0",
        "sw1 after IM1=1: ip=00 ti=0 irqs=2",
        # EXL = 1 masks all interrupts
        "sw1 set, EXL=1: ip=02 ti=0 irqs=2",
        "INT ip=02 ti=0",
        "sw1 after EXL=0: ip=00 ti=0 irqs=3",
        # Count == Compare sets Cause.TI and the timer's IP line (IntCtl.IPTI
        # = 7 on Malta); writing Compare clears both
        "timer poll: fired=1",
        "timer pending: ip=80 ti=1 irqs=3",
        "after Compare write: ip=00 ti=0 irqs=3",
        # an interrupt ending WAIT has EPC = the instruction after WAIT
        "INT ip=80 ti=1",
        "wait: timer irqs=1 epc after wait=1",
        "after wait: ip=00 ti=0 irqs=4",
        "INT ip=80 ti=1",
        "spin: timer irqs=2",
        "end: ip=00 ti=0 irqs=5",
        "EXIT 0",
    )


# --------------------------------------------------------------------------
# C programs (expected values computed independently in Python)


def _lcg_bytes(n: int) -> bytes:
    x, out = 1, bytearray(n)
    for i in range(n):
        x = (x * 1664525 + 1013904223) & MASK32
        out[i] = x >> 24
    return bytes(out)


def _crc_table_entry(i: int) -> int:
    c = i
    for _ in range(8):
        c = 0xEDB88320 ^ (c >> 1) if c & 1 else c >> 1
    return c


def test_c_crc32(qemu_output: Output) -> None:
    buf = _lcg_bytes(16384)
    assert qemu_output("c_crc32") == text(
        "crc32",
        f"table[1]={_crc_table_entry(1):08x} table[255]={_crc_table_entry(255):08x}",
        'crc32("123456789")=cbf43926',  # the standard CRC-32 check value
        'crc32("")=00000000',
        f"size=16384 rounds=1 crc={zlib.crc32(buf):08x}",
        "EXIT 0",
    )


def _qsort_expected(n: int, rounds: int) -> list[str]:
    x = 42
    a: list[int] = []
    for _ in range(rounds):
        a = []
        for _ in range(n):
            x = (x * 1103515245 + 12345) & MASK32
            a.append(x)
    a.sort()
    checksum = sum((i + 1) * v for i, v in enumerate(a)) & MASK32
    return [
        f"n={n} rounds={rounds} sorted=1 checksum={checksum:08x}",
        f"a[0]={a[0]:08x} a[1]={a[1]:08x} a[n/2]={a[n // 2]:08x} a[n-1]={a[n - 1]:08x}",
    ]


def test_c_qsort(qemu_output: Output) -> None:
    assert qemu_output("c_qsort") == text("qsort", _qsort_expected(3000, 1), "EXIT 0")


def test_c_bignum(qemu_output: Output) -> None:
    fact, pow2 = str(math.factorial(100)), str(2**1000)
    assert qemu_output("c_bignum") == text(
        "bignum",
        f"n=100 fact: digits={len(fact)} digitsum={sum(map(int, fact))}",
        f"fact={fact}",
        f"n=1000 pow2: digits={len(pow2)} digitsum={sum(map(int, pow2))}",  # digit sum 1366
        f"pow2={pow2}",
        "EXIT 0",
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bench_crc32", "bench_qsort", "bench_bignum"])
def test_bench_guests(name: str, qemu_output: Output) -> None:
    out = qemu_output(name)
    if name == "bench_crc32":
        buf, crc = _lcg_bytes(1 << 20), 0
        for _ in range(128):
            crc = zlib.crc32(buf, crc)
        assert re.search(rf"^size=1048576 rounds=128 crc={crc:08x}$", out, re.M), out
    elif name == "bench_qsort":
        assert out.endswith(text(_qsort_expected(200000, 40), "EXIT 0")), out
    else:
        limit = sys.get_int_max_str_digits()
        sys.set_int_max_str_digits(0)  # 12000! has 43742 digits
        try:
            fact, pow2 = str(math.factorial(12000)), str(2**50000)
        finally:
            sys.set_int_max_str_digits(limit)
        for label, n, digits in (("fact", 12000, fact), ("pow2", 50000, pow2)):
            assert f"n={n} {label}: digits={len(digits)} digitsum={sum(map(int, digits))}\n" in out
            assert f"{label} head={digits[:30]} tail={digits[-30:]}\n" in out
    assert out.endswith("EXIT 0\n")
