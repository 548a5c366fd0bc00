"""The simulated PowerPC 440 core on its own, driven as a host kernel would drive it.

Instructions are encoded here from their Book E formats; every expected
value follows from Book E and the PPC440x4 core manual. Interrupt vectors
are owned by the "host" (`host_vectors`), so a taken interrupt stops the
core with Stop.INTERRUPT and the test inspects SRR0/1, ESR and DEAR.
"""

from __future__ import annotations

import mmap
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmpy.arch.ppc.hw import defs
from kvmpy.arch.ppc.hw.core440 import Core440
from kvmpy.arch.ppc.hw.defs import Ivor, Spr, Stop
from kvmpy.sim.physmem import PhysicalMemory

M32 = 0xFFFFFFFF
CODE = 0x2000
ALL_VECTORS = 0xFFFF


# ------------------------------------------------------------ encodings
def d_form(op: int, rt: int, ra: int, imm: int) -> int:
    return (op << 26) | (rt << 21) | (ra << 16) | (imm & 0xFFFF)


def x_form(rt: int, ra: int, rb: int, xo: int, rc: int = 0, op: int = 31) -> int:
    return (op << 26) | (rt << 21) | (ra << 16) | (rb << 11) | (xo << 1) | rc


def xo_form(rt: int, ra: int, rb: int, xo: int, oe: int = 0, rc: int = 0) -> int:
    return x_form(rt, ra, rb, xo | (oe << 9), rc)


def mtspr(spr: int, rs: int) -> int:
    return x_form(rs, spr & 0x1F, spr >> 5, 467)


def mfspr(rt: int, spr: int) -> int:
    return x_form(rt, spr & 0x1F, spr >> 5, 339)


def lwz(rt: int, ra: int, d: int) -> int:
    return d_form(32, rt, ra, d)


def stw(rs: int, ra: int, d: int) -> int:
    return d_form(36, rs, ra, d)


def rlwinm(ra: int, rs: int, sh: int, mb: int, me: int, rc: int = 0) -> int:
    return (21 << 26) | (rs << 21) | (ra << 16) | (sh << 11) | (mb << 6) | (me << 1) | rc


SC = 0x44000002
B_SELF = 0x48000000
MFMSR_R5 = x_form(5, 0, 0, 83)
WRTEEI_1 = x_form(0, 0, 0, 163) | 0x8000
NOP = d_form(24, 0, 0, 0)  # ori r0, r0, 0


# ------------------------------------------------------------ a bare core
class Machine:
    """A core with 1 MiB of RAM at 0, TLB entry 63 mapping it (TS 0, everyone rwx), vectors at n*0x100."""

    def __init__(self) -> None:
        self.phys = PhysicalMemory()
        self.ram = mmap.mmap(-1, 1 << 20)
        self.phys.attach(0, self.ram)
        self.core = Core440(self.phys)
        self.core.tlb_write(63, 0x00000000 | defs.TLB0_V | (9 << 4), 0, 0x3F, 0)
        for n in range(16):
            self.core.spr_write(Spr.IVOR0 + n, n * 0x100)
        self.core.host_vectors = ALL_VECTORS
        self.core.pc = CODE

    def load(self, *words: int, at: int = CODE) -> None:
        for i, w in enumerate(words):
            struct.pack_into(">I", self.ram, at + 4 * i, w & M32)
        self.core.pc = at

    def word(self, addr: int) -> int:
        return struct.unpack_from(">I", self.ram, addr)[0]


@pytest.fixture
def m() -> Machine:
    return Machine()


def test_reset_state() -> None:
    core = Core440(PhysicalMemory())
    assert core.pc == 0xFFFFFFFC
    assert core.msr == 0
    assert core.spr_read(Spr.PVR) == defs.PVR_440EPB
    with pytest.raises(ValueError):
        core.spr_read(1000)


# ------------------------------------------------------------ integer ALU against a reference
def _add(a: int, b: int, cin: int) -> tuple[int, int, int]:
    wide = a + b + cin
    r = wide & M32
    ov = int(((~(a ^ b)) & (a ^ r) & 0x80000000) != 0)
    return r, wide >> 32, ov


def _s32(v: int) -> int:
    return v - (1 << 32) if v & 0x80000000 else v


def reference(name: str, a: int, b: int, ca: int) -> tuple[int, int | None, int | None]:
    """(result, carry or None, overflow or None) of a two-source operation."""
    if name == "add":
        r, c, o = _add(a, b, 0)
        return r, None, o
    if name == "addc":
        return _add(a, b, 0)
    if name == "adde":
        return _add(a, b, ca)
    if name == "subf":
        r, c, o = _add(~a & M32, b, 1)
        return r, None, o
    if name == "subfc":
        return _add(~a & M32, b, 1)
    if name == "subfe":
        return _add(~a & M32, b, ca)
    if name == "mullw":
        p = _s32(a) * _s32(b)
        return p & M32, None, int(p != _s32(p & M32))
    if name == "mulhw":
        return ((_s32(a) * _s32(b)) >> 32) & M32, None, None
    if name == "mulhwu":
        return ((a * b) >> 32) & M32, None, None
    if name == "and":
        return a & b, None, None
    if name == "or":
        return a | b, None, None
    if name == "xor":
        return a ^ b, None, None
    if name == "nand":
        return ~(a & b) & M32, None, None
    if name == "nor":
        return ~(a | b) & M32, None, None
    if name == "eqv":
        return ~(a ^ b) & M32, None, None
    if name == "andc":
        return a & ~b & M32, None, None
    if name == "orc":
        return (a | ~b) & M32, None, None
    n = b & 0x3F
    if name == "slw":
        return (a << n) & M32 if n < 32 else 0, None, None
    if name == "srw":
        return a >> n if n < 32 else 0, None, None
    if name == "sraw":
        r = (_s32(a) >> min(n, 31)) & M32
        lost = a & ((1 << min(n, 32)) - 1)
        return r, int(bool(a & 0x80000000) and lost != 0), None
    raise AssertionError(name)


# name: (extended opcode, XO form (OE allowed), RA = f(RS, RB) rather than RT = f(RA, RB))
OPS = {
    "add": (266, True, False), "addc": (10, True, False), "adde": (138, True, False),
    "subf": (40, True, False), "subfc": (8, True, False), "subfe": (136, True, False),
    "mullw": (235, True, False), "mulhw": (75, False, False), "mulhwu": (11, False, False),
    "and": (28, False, True), "or": (444, False, True), "xor": (316, False, True),
    "nand": (476, False, True), "nor": (124, False, True), "eqv": (284, False, True),
    "andc": (60, False, True), "orc": (412, False, True), "slw": (24, False, True),
    "srw": (536, False, True), "sraw": (792, False, True),
}  # fmt: skip

_shared = Machine()
words32 = st.one_of(st.integers(0, M32), st.sampled_from([0, 1, 0x7FFFFFFF, 0x80000000, M32, 31, 32, 63]))


@settings(max_examples=600, deadline=None)
@given(
    name=st.sampled_from(sorted(OPS)),
    a=words32,
    b=words32,
    xer_in=st.sampled_from([0, 0x20000000, 0x80000000]),
    oe=st.integers(0, 1),
    rc=st.integers(0, 1),
)
def test_alu_against_reference(name: str, a: int, b: int, xer_in: int, oe: int, rc: int) -> None:
    m = _shared
    xo, is_xo, logical = OPS[name]
    oe = oe if is_xo else 0
    if logical:
        insn = x_form(3, 5, 4, xo, rc)  # RA=5 <- f(RS=3, RB=4)
    else:
        insn = xo_form(5, 3, 4, xo, oe, rc)
    m.load(insn)
    core = m.core
    core.msr = 0
    core.set_gpr(3, a)
    core.set_gpr(4, b)
    core.set_gpr(5, 0xDEADBEEF)
    core.xer = xer_in
    core.cr = 0x12345678
    assert core.run(1) is Stop.BUDGET
    result, carry, overflow = reference(name, a, b, (xer_in >> 29) & 1)
    assert core.get_gpr(5) == result
    xer = xer_in
    if carry is not None:
        xer = (xer & ~0x20000000) | (carry << 29)
    if oe:
        xer = (xer & ~0x40000000) | (overflow << 30) | ((overflow or (xer >> 31)) << 31)
    assert core.xer == xer
    cr0 = 0x1 if xer & 0x80000000 else 0
    s = _s32(result)
    cr0 |= 0x8 if s < 0 else 0x4 if s > 0 else 0x2
    assert core.cr == ((cr0 << 28) | 0x02345678 if rc else 0x12345678)
    assert core.pc == CODE + 4


@settings(max_examples=300, deadline=None)
@given(s=words32, sh=st.integers(0, 31), mb=st.integers(0, 31), me=st.integers(0, 31))
def test_rlwinm_against_reference(s: int, sh: int, mb: int, me: int) -> None:
    m = _shared
    m.load(rlwinm(5, 3, sh, mb, me))
    m.core.set_gpr(3, s)
    m.core.run(1)
    rot = ((s << sh) | (s >> (32 - sh))) & M32 if sh else s
    mask = 0
    i = mb
    while True:
        mask |= 0x80000000 >> i
        if i == me:
            break
        i = (i + 1) % 32
    assert m.core.get_gpr(5) == rot & mask


# ------------------------------------------------------------ interrupts and the host
def test_sc_enters_the_host_vector(m: Machine) -> None:
    m.core.spr_write(Spr.IVPR, 0x00000000)
    m.core.msr = defs.MSR_EE | defs.MSR_CE | defs.MSR_DE
    m.load(NOP, SC)
    assert m.core.run(10) is Stop.INTERRUPT
    assert m.core.last_interrupt == Ivor.SYSTEM_CALL
    assert m.core.pc == 0x800
    assert m.core.spr_read(Spr.SRR0) == CODE + 8
    assert m.core.spr_read(Spr.SRR1) == defs.MSR_EE | defs.MSR_CE | defs.MSR_DE
    # EE cleared, CE/DE kept, like every non-critical interrupt
    assert m.core.msr == defs.MSR_CE | defs.MSR_DE
    assert m.core.icount == 2


def test_without_host_vectors_the_core_runs_the_handler(m: Machine) -> None:
    m.core.host_vectors = 0
    m.load(d_form(14, 7, 0, 0x55), B_SELF, at=0x800)  # handler: li r7, 0x55; b .
    m.load(SC)
    assert m.core.run(50) is Stop.BUDGET
    assert m.core.get_gpr(7) == 0x55
    assert m.core.pc == 0x804


def test_privileged_instruction_in_user_mode(m: Machine) -> None:
    m.core.msr = defs.MSR_PR
    m.load(MFMSR_R5)
    assert m.core.run(10) is Stop.INTERRUPT
    assert m.core.last_interrupt == Ivor.PROGRAM
    assert m.core.spr_read(Spr.ESR) == defs.ESR_PPR
    assert m.core.spr_read(Spr.SRR0) == CODE
    assert m.core.spr_read(Spr.SRR1) == defs.MSR_PR
    assert m.core.msr == 0


def test_privileged_spr_numbers_trap_in_user_mode_user_ones_do_not(m: Machine) -> None:
    m.core.msr = defs.MSR_PR
    m.core.spr_write(Spr.SPRG4, 0xCAFE)
    m.load(mfspr(5, 260), mfspr(6, Spr.SPRG4))
    assert m.core.run(10) is Stop.INTERRUPT
    assert m.core.get_gpr(5) == 0xCAFE
    assert m.core.spr_read(Spr.SRR0) == CODE + 4


def test_illegal_instruction(m: Machine) -> None:
    m.load(0)
    assert m.core.run(10) is Stop.INTERRUPT
    assert m.core.last_interrupt == Ivor.PROGRAM
    assert m.core.spr_read(Spr.ESR) == defs.ESR_PIL


def test_trap(m: Machine) -> None:
    m.load(d_form(3, 31, 0, 0))  # twi 31, r0, 0: always
    assert m.core.run(10) is Stop.INTERRUPT
    assert m.core.spr_read(Spr.ESR) == defs.ESR_PTR
    assert m.core.spr_read(Spr.SRR0) == CODE


def test_fp_unavailable(m: Machine) -> None:
    m.load(d_form(50, 1, 0, 0x100))  # lfd f1, 0x100(0) with MSR[FP] = 0
    assert m.core.run(10) is Stop.INTERRUPT
    assert m.core.last_interrupt == Ivor.FP_UNAVAILABLE


def test_stwcx_unaligned_is_an_alignment_interrupt(m: Machine) -> None:
    m.core.set_gpr(4, 0x3002)
    m.load(x_form(5, 0, 4, 150, 1))  # stwcx. r5, 0, r4
    assert m.core.run(10) is Stop.INTERRUPT
    assert m.core.last_interrupt == Ivor.ALIGNMENT
    assert m.core.spr_read(Spr.DEAR) == 0x3002
    assert m.core.spr_read(Spr.ESR) == defs.ESR_ST


def test_dcr_access_stops_for_the_host(m: Machine) -> None:
    mfdcr = x_form(5, 0xC4 & 0x1F, 0xC4 >> 5, 323)
    mtdcr = x_form(6, 0xC2 & 0x1F, 0xC2 >> 5, 451)
    m.core.set_gpr(6, 0xABCD)
    m.load(mfdcr, mtdcr, B_SELF)
    assert m.core.run(10) is Stop.DCR
    assert m.core.dcr_pending() == (0xC4, False, 0)
    assert m.core.pc == CODE  # not executed until the host completes it
    m.core.dcr_complete(0x1234)
    assert m.core.get_gpr(5) == 0x1234 and m.core.pc == CODE + 4
    assert m.core.run(10) is Stop.DCR
    assert m.core.dcr_pending() == (0xC2, True, 0xABCD)
    m.core.dcr_complete()
    assert m.core.run(5) is Stop.BUDGET and m.core.pc == CODE + 8


def test_dbcr0_reset_request(m: Machine) -> None:
    m.core.set_gpr(3, 0x20000000)
    m.load(mtspr(Spr.DBCR0, 3), B_SELF)
    assert m.core.run(10) is Stop.RESET
    assert m.core.reset_request == 2  # chip reset


def test_access_without_ram_is_a_machine_check_or_checkstop(m: Machine) -> None:
    m.core.tlb_write(62, 0x10000000 | defs.TLB0_V | (9 << 4), 0x10000000, 0x3F, 0)
    m.core.set_gpr(4, 0x10000000)
    m.core.msr = defs.MSR_ME
    m.load(lwz(5, 4, 0))
    assert m.core.run(10) is Stop.INTERRUPT
    assert m.core.last_interrupt == Ivor.MACHINE_CHECK
    assert m.core.spr_read(Spr.MCSRR0) == CODE and m.core.spr_read(Spr.MCSRR1) == defs.MSR_ME
    m.load(lwz(5, 4, 0))
    m.core.msr = 0
    assert m.core.run(10) is Stop.CHECKSTOP


def test_erpn_above_4gib_has_no_ram(m: Machine) -> None:
    m.core.tlb_write(62, 0x10000000 | defs.TLB0_V | (9 << 4), 0x00000001, 0x3F, 0)  # ERPN = 1
    assert m.core.translate(0x10000010) == 0x1_0000_0010
    m.core.set_gpr(4, 0x10000000)
    m.core.msr = defs.MSR_ME
    m.load(lwz(5, 4, 0))
    assert m.core.run(10) is Stop.INTERRUPT and m.core.last_interrupt == Ivor.MACHINE_CHECK


# ------------------------------------------------------------ MMU
def _ts1_entry(m: Machine, index: int, epn: int, rpn: int, perms: int, size: int = 1, tid: int = 0) -> None:
    m.core.tlb_write(index, epn | defs.TLB0_V | defs.TLB0_TS | (size << 4), rpn, perms, tid)


def test_permission_change_takes_effect_at_once(m: Machine) -> None:
    struct.pack_into(">I", m.ram, 0x5000, 0x11223344)
    _ts1_entry(m, 10, 0x30000000, 0x5000, defs.TLB2_SR)
    m.core.set_gpr(4, 0x30000000)
    m.core.msr = defs.MSR_DS
    m.load(lwz(5, 4, 0), lwz(6, 4, 0))
    assert m.core.run(1) is Stop.BUDGET and m.core.get_gpr(5) == 0x11223344
    _ts1_entry(m, 10, 0x30000000, 0x5000, defs.TLB2_SW)  # the micro-TLB must forget the page
    assert m.core.run(1) is Stop.INTERRUPT
    assert m.core.last_interrupt == Ivor.DATA_STORAGE
    assert m.core.spr_read(Spr.DEAR) == 0x30000000 and m.core.spr_read(Spr.ESR) == 0


def test_tid_and_pid(m: Machine) -> None:
    _ts1_entry(m, 10, 0x30000000, 0x5000, defs.TLB2_SR, tid=7)
    m.core.set_gpr(4, 0x30000000)
    m.core.msr = defs.MSR_DS
    m.core.spr_write(Spr.PID, 7)
    m.load(lwz(5, 4, 0), lwz(5, 4, 0))
    assert m.core.run(1) is Stop.BUDGET
    m.core.spr_write(Spr.PID, 8)  # a PID change flushes the micro-TLB
    assert m.core.run(1) is Stop.INTERRUPT and m.core.last_interrupt == Ivor.DATA_TLB_ERROR


def test_1k_page_and_store_miss(m: Machine) -> None:
    _ts1_entry(m, 10, 0x30000400, 0x5400, defs.TLB2_SR | defs.TLB2_SW, size=0)
    m.core.set_gpr(4, 0x300007FC)
    m.core.set_gpr(5, 0x99)
    m.core.msr = defs.MSR_DS
    m.load(stw(5, 4, 0), stw(5, 4, 4))
    assert m.core.run(1) is Stop.BUDGET and m.word(0x57FC) == 0x99
    assert m.core.run(1) is Stop.INTERRUPT
    assert m.core.last_interrupt == Ivor.DATA_TLB_ERROR
    assert m.core.spr_read(Spr.DEAR) == 0x30000800 and m.core.spr_read(Spr.ESR) == defs.ESR_ST


def test_instruction_tlb_miss(m: Machine) -> None:
    m.core.msr = defs.MSR_IS
    m.load(NOP)
    assert m.core.run(1) is Stop.INTERRUPT
    assert m.core.last_interrupt == Ivor.INSTRUCTION_TLB_ERROR
    assert m.core.spr_read(Spr.SRR0) == CODE and m.core.spr_read(Spr.SRR1) == defs.MSR_IS


def test_user_needs_user_permission(m: Machine) -> None:
    _ts1_entry(m, 10, 0x30000000, 0x5000, defs.TLB2_SR | defs.TLB2_SW)
    m.core.set_gpr(4, 0x30000000)
    m.core.msr = defs.MSR_DS | defs.MSR_PR
    m.load(lwz(5, 4, 0))
    assert m.core.run(1) is Stop.INTERRUPT and m.core.last_interrupt == Ivor.DATA_STORAGE


def test_tlbsx_uses_mmucr(m: Machine) -> None:
    _ts1_entry(m, 10, 0x30000000, 0x5000, defs.TLB2_SR, tid=9)
    assert m.core.tlb_search(0x30000ABC, 1, 9) == 10
    assert m.core.tlb_search(0x30000ABC, 0, 9) == -1
    assert m.core.tlb_search(0x30000ABC, 1, 8) == -1
    m.core.spr_write(Spr.MMUCR, defs.MMUCR_STS | 9)
    m.core.set_gpr(4, 0x30000ABC)
    m.load(x_form(5, 0, 4, 914, 1))  # tlbsx. r5, 0, r4
    assert m.core.run(1) is Stop.BUDGET
    assert m.core.get_gpr(5) == 10 and (m.core.cr >> 28) == 0x2


# ------------------------------------------------------------ timers
def test_decrementer_interrupt_and_stop_at_zero(m: Machine) -> None:
    m.core.spr_write(Spr.TCR, defs.TCR_DIE)
    m.core.spr_write(Spr.DEC, 100)
    m.core.msr = defs.MSR_EE
    m.load(B_SELF)
    assert m.core.run(1000) is Stop.INTERRUPT
    assert m.core.last_interrupt == Ivor.DECREMENTER
    assert 99 <= m.core.icount <= 101
    assert m.core.spr_read(Spr.TSR) & defs.TSR_DIS
    assert m.core.spr_read(Spr.DEC) == 0
    assert m.core.spr_read(Spr.SRR0) == CODE


def test_decrementer_write_zero_and_auto_reload(m: Machine) -> None:
    m.core.spr_write(Spr.DEC, 0)
    m.load(B_SELF)
    m.core.run(5000)
    assert not m.core.spr_read(Spr.TSR) & defs.TSR_DIS
    m.core.spr_write(Spr.TCR, defs.TCR_ARE)
    m.core.spr_write(Spr.DECAR, 1000)
    m.core.spr_write(Spr.DEC, 1000)
    m.core.run(1500)
    assert m.core.spr_read(Spr.TSR) & defs.TSR_DIS
    assert 400 <= m.core.spr_read(Spr.DEC) <= 600


def test_fixed_interval_timer(m: Machine) -> None:
    m.load(B_SELF)
    m.core.tb = (1 << 13) - 10  # FP = 0: bit 2^13 of the time base
    m.core.run(5)
    assert not m.core.spr_read(Spr.TSR) & defs.TSR_FIS
    m.core.run(10)
    assert m.core.spr_read(Spr.TSR) & defs.TSR_FIS
    m.core.spr_write(Spr.TCR, defs.TCR_FIE)
    m.core.msr = defs.MSR_EE
    assert m.core.run(10) is Stop.INTERRUPT and m.core.last_interrupt == Ivor.FIXED_INTERVAL_TIMER


def test_watchdog_enw_wis_then_reset(m: Machine) -> None:
    m.load(B_SELF)
    m.core.spr_write(Spr.TCR, 0x10000000)  # WP = 2^17, WRC = core reset, WIE = 0
    period = 1 << 18
    m.core.tb = (1 << 17) - 5
    m.core.run(10)
    assert m.core.spr_read(Spr.TSR) & 0xC0000000 == 0x80000000  # ENW
    m.core.tb = (1 << 17) + period - 5
    m.core.run(10)
    assert m.core.spr_read(Spr.TSR) & 0xC0000000 == 0xC0000000  # and WIS
    m.core.spr_write(Spr.TCR, 0x10000000 | defs.TCR_WIE)
    m.core.msr = defs.MSR_CE
    assert m.core.run(10) is Stop.INTERRUPT and m.core.last_interrupt == Ivor.WATCHDOG
    assert m.core.spr_read(Spr.CSRR1) == defs.MSR_CE and m.core.msr == 0
    m.load(B_SELF)
    m.core.tb = (1 << 17) + 2 * period - 5
    assert m.core.run(10) is Stop.RESET and m.core.reset_request == 1
    assert m.core.spr_read(Spr.TSR) & defs.TSR_WRS == 0x10000000


def test_wait_state_sleeps_until_the_decrementer(m: Machine) -> None:
    m.core.spr_write(Spr.TCR, defs.TCR_DIE)
    m.core.spr_write(Spr.DEC, 1_000_000)
    m.core.msr = defs.MSR_EE | defs.MSR_WE
    m.load(B_SELF)
    assert m.core.run(100) is Stop.INTERRUPT  # time jumped, no instructions ran
    assert m.core.icount == 0 and m.core.last_interrupt == Ivor.DECREMENTER
    assert not m.core.msr & defs.MSR_WE
    m.core.msr = defs.MSR_WE
    assert m.core.run(100) is Stop.WAIT


def test_external_input_pin(m: Machine) -> None:
    m.core.set_external_input(True)
    m.load(NOP, WRTEEI_1, NOP, B_SELF)
    assert m.core.run(3) is Stop.INTERRUPT  # taken right after wrteei 1
    assert m.core.last_interrupt == Ivor.EXTERNAL_INPUT
    assert m.core.spr_read(Spr.SRR0) == CODE + 8
    assert m.core.icount == 2


def test_kick_and_time_base_ports(m: Machine) -> None:
    m.load(mfspr(5, 268), mfspr(6, 269), B_SELF)
    m.core.tb = 0x1_0000_0000 - 2  # the time base ticks once per instruction, before it executes
    m.core.kick()
    assert m.core.run(100) is Stop.KICK
    assert m.core.run(2) is Stop.BUDGET
    assert m.core.get_gpr(5) == 0xFFFFFFFF and m.core.get_gpr(6) == 1
    assert m.core.tb == 0x1_0000_0000


def test_host_misuse_is_refused(m: Machine) -> None:
    with pytest.raises(RuntimeError):
        m.core.dcr_complete(0)
    with pytest.raises(ValueError):
        m.core.tlb_write(64, 0, 0, 0, 0)
    m.load(x_form(5, 0xC0 & 0x1F, 0xC0 >> 5, 323))
    assert m.core.run(5) is Stop.DCR
    with pytest.raises(RuntimeError):
        m.core.run(5)  # the DCR access must be completed first


def test_fetch_follows_a_tlbwe_of_the_running_page(m: Machine) -> None:
    # VA 0x40000000 runs from physical 0x3000; its first instruction remaps the
    # page to 0x4000 (word 1), so the next instruction comes from there
    m.core.tlb_write(62, 0x40000000 | defs.TLB0_V | (1 << 4), 0x3000, 0x3F, 0)
    tlbwe_word1 = x_form(6, 4, 1, 978)  # tlbwe r6, r4, 1
    m.load(tlbwe_word1, d_form(14, 5, 0, 1), B_SELF, at=0x3000)
    m.load(NOP, d_form(14, 5, 0, 2), B_SELF, at=0x4000)
    m.core.set_gpr(4, 62)
    m.core.set_gpr(6, 0x4000)
    m.core.pc = 0x40000000
    assert m.core.run(2) is Stop.BUDGET
    assert m.core.get_gpr(5) == 2
    # and back, by the host this time
    m.core.tlb_write(62, 0x40000000 | defs.TLB0_V | (1 << 4), 0x3000, 0x3F, 0)
    m.core.pc = 0x40000004
    assert m.core.run(1) is Stop.BUDGET
    assert m.core.get_gpr(5) == 1
