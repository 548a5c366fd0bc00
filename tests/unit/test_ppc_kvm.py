"""What only the 440 trap-and-emulate backend does, with small real guests (the contract: test_api.py).

Each guest is one image at guest physical 0: vectors at IVPR 0 + IVORn =
n * 0x100 (every vector logs ivor, SRR0, SRR1, ESR, DEAR and its MSR to
LOG_GPA, then resumes the kernel at r28 in supervisor mode, except the
decrementer's, which acknowledges TSR[DIS] and returns with rfi), the
guest kernel at KERNEL_GPA, user code at 0x2000. The guest kernel sets up
its own TLB entries and IVORs and runs deprivileged under the hypervisor.
"""

from __future__ import annotations

import mmap
import struct
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvmpy.arch.ppc.hw.defs import (
    ESR_PIL,
    ESR_PPR,
    ESR_ST,
    MSR_EE,
    MSR_PR,
    TCR_ARE,
    TCR_DIE,
    TCR_WIE,
    TSR_DIS,
    TSR_ENW,
    TSR_FIS,
    TSR_WIS,
    Ivor,
)
from kvmpy.arch.ppc.te.timer import GuestTimers
from kvmpy.arch.ppc.uapi import KVM_REG_PPC_PC, KVM_REG_PPC_TSR, VmType, gp_reg
from kvmpy.kvm import DcrExit, HaltExit, InternalErrorExit, InterruptedExit, Kvm, MmioExit, ResetExit
from tests.asm import assemble_ppc

RAM_BYTES = 4 << 20
KERNEL_GPA = 0x1100
LOG_GPA = 0x6000
RESULT_GPA = 0x3000
MMIO_GPA = 0x18000000
DONE_GPA = 0x1F000010


def li32(reg: str, value: int) -> str:
    return f"lis {reg}, {(value >> 16) & 0xFFFF:#x}\n ori {reg}, {reg}, {value & 0xFFFF:#x}\n"


def tlbwe(index: int, w0: int, w1: int, w2: int) -> str:
    return (f"li r3, {index}\n" + li32("r4", w0) + li32("r5", w1) + li32("r6", w2)
            + "tlbwe r4, r3, 0\n tlbwe r5, r3, 1\n tlbwe r6, r3, 2\n isync\n")


SR, SW, SX, UR, UW, UX, IG = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x500
V = 0x200


def image(kernel: str, user: str = "b .\n") -> str:
    vectors = "".join(
        f".org {n * 0x100:#x}\n li r30, {n}\n b common\n" for n in range(16)
    )
    ivors = "".join(f"li r3, {n * 0x100:#x}\n mtspr {400 + n}, r3\n" for n in range(16))
    common = (
        ".org 0xF80\ncommon:\n stw r30, 0(r29)\n mfsrr0 r3\n stw r3, 4(r29)\n mfsrr1 r3\n stw r3, 8(r29)\n"
        " mfspr r3, 62\n stw r3, 12(r29)\n mfspr r3, 61\n stw r3, 16(r29)\n mfmsr r3\n stw r3, 20(r29)\n"
        " addi r29, r29, 24\n cmpwi r30, 10\n beq 1f\n mtsrr0 r28\n li r3, 0\n mtsrr1 r3\n rfi\n"
        "1: lis r3, 0x0800\n mtspr 336, r3\n li r3, 0\n mtspr 340, r3\n rfi\n"
    )
    start = (
        f".org {KERNEL_GPA:#x}\n li r3, 0\n mtspr 63, r3\n" + ivors + li32("r29", LOG_GPA)
        + tlbwe(1, 0x10000000 | V | (9 << 4), 0x10000000, IG | SR | SW)
    )
    done = "li r11, 1\n" + li32("r10", DONE_GPA) + "stw r11, 0(r10)\n b .\n"
    return vectors + common + start + kernel + done + ".org 0x2000\nuser:\n" + user


class Guest:
    def __init__(self, kernel: str, user: str = "b .\n") -> None:
        self.kvm = Kvm("ppc440")
        self.vm = self.kvm.create_vm(VmType.TE)
        self.ram = mmap.mmap(-1, RAM_BYTES)
        code = assemble_ppc(image(kernel, user), 0)
        assert len(code) < RESULT_GPA
        self.ram[0 : len(code)] = code
        self.vm.set_user_memory_region(0, 0, RAM_BYTES, self.ram)
        self.vcpu = self.vm.create_vcpu(0)
        self.vcpu.set_one_reg(KVM_REG_PPC_PC, KERNEL_GPA)

    def word(self, gpa: int) -> int:
        return struct.unpack_from(">I", self.ram, gpa)[0]

    def log(self) -> list[tuple[int, int, int, int, int, int]]:
        end = self.vcpu.get_one_reg(gp_reg(29))
        return [struct.unpack_from(">6I", self.ram, a) for a in range(LOG_GPA, end, 24)]

    def run_to_done(self) -> list:
        exits = []
        for _ in range(200):
            e = self.vcpu.run()
            exits.append(e)
            if isinstance(e, MmioExit) and e.is_write and e.phys_addr == DONE_GPA:
                return exits
            if not isinstance(e, MmioExit):
                raise AssertionError(f"unexpected exit {e!r}")
        raise AssertionError(f"guest never finished: {exits[-3:]}")


def test_guest_kernel_maps_itself_high_and_takes_a_decrementer_interrupt():
    # entry 2: 16 MiB at EA 0xC0000000 -> guest physical 0, supervisor only; the kernel jumps up there
    kernel = (
        tlbwe(2, 0xC0000000 | V | (7 << 4), 0, SR | SW | SX)
        + "lis r3, 0xC000\n ori r3, r3, high@l\n mtctr r3\n bctr\n high:\n"
        + li32("r7", 0xC0004000) + li32("r8", 0xCAFEF00D) + "stw r8, 0(r7)\n stw r8, 0x4000(r7)\n"
        + "li r3, 2000\n mtspr 22, r3\n lis r3, 0x0400\n mtspr 340, r3\n wrteei 1\n"
        + li32("r4", LOG_GPA) + "1: cmpw r29, r4\n beq 1b\n wrteei 0\n"
        + "mfspr r9, 22\n" + li32("r10", RESULT_GPA) + "stw r9, 0(r10)\n"
    )
    g = Guest(kernel)
    g.run_to_done()
    assert g.word(0x4000) == g.word(0x8000) == 0xCAFEF00D  # through the high alias, at physical 0x4000/0x8000
    [(ivor, srr0, srr1, _esr, _dear, msr)] = g.log()
    assert ivor == Ivor.DECREMENTER
    assert srr0 >= 0xC0000000  # interrupted in the high mapping
    assert srr1 & MSR_EE and not srr1 & MSR_PR
    assert not msr & (MSR_EE | MSR_PR)  # delivered as a 440 does: EE and PR cleared
    assert g.word(RESULT_GPA) == 0  # DEC stopped at 0 (TCR[ARE] = 0)
    traps = g.vcpu.stats.traps
    assert traps["emul_tlbwe"] == 6 and traps["emul_mtspr.DEC"] == 1 and traps["emul_mtspr.IVOR10"] == 1
    assert traps["emul_wrteei"] == 2 and traps["emul_rfi"] == 1 and traps["emul_mfspr.DEC"] == 1
    assert traps["guest_interrupt.DECREMENTER"] == 1
    # the 16 MiB guest page is backed by separate 4 KiB shadow entries, filled without the guest
    assert traps["shadow_fill"] >= 4 and traps["guest_tlb_miss"] == 0


USER_KERNEL = (
    tlbwe(2, 0x20000000 | V | (1 << 4), 0x2000, UX | UR | SX | SR)  # user code, 4 KiB
    + tlbwe(3, 0x30000000 | V | (1 << 4), 0x5000, SR | SW)  # kernel-only data
    + tlbwe(4, 0x31000000 | V | (1 << 4), 0x7000, UR | SR | SW)  # user read-only
    + li32("r6", 0x30000000) + li32("r5", 0x5EC2E7) + "stw r5, 0(r6)\n"  # the kernel uses its page first
    + "".join(
        "lis r28, 1f@h\n ori r28, r28, 1f@l\n" + li32("r3", 0x20000000 + off)
        + "mtsrr0 r3\n li r3, 0x4000\n mtsrr1 r3\n li r5, 0\n rfi\n1:\n"
        for off in (0x0, 0x10, 0x20, 0x30, 0x40)
    )
    + li32("r10", RESULT_GPA) + "stw r5, 0(r10)\n"
)
USER = (
    "sc\n b .\n"
    ".org 0x2010\n lis r6, 0x3000\n lwz r5, 0(r6)\n b .\n"
    ".org 0x2020\n lis r6, 0x3100\n li r5, 1\n stw r5, 8(r6)\n b .\n"
    ".org 0x2030\n lis r6, 0x4000\n lwz r5, 4(r6)\n b .\n"
    ".org 0x2040\n mfmsr r5\n b .\n"
)


def test_user_mode_syscall_protection_and_guest_tlb_miss():
    g = Guest(USER_KERNEL, USER)
    g.run_to_done()
    log = g.log()
    assert [r[0] for r in log] == [Ivor.SYSTEM_CALL, Ivor.DATA_STORAGE, Ivor.DATA_STORAGE,
                                   Ivor.DATA_TLB_ERROR, Ivor.PROGRAM]
    sc, dsi_load, dsi_store, dtlb, priv = log
    assert sc[1] == 0x20000004 and sc[2] & MSR_PR and not sc[5] & MSR_PR
    # guest user cannot reach the kernel-only page, though the kernel's shadow entry for it exists
    assert dsi_load[1] == 0x20000014 and dsi_load[3] & ESR_ST == 0 and dsi_load[4] == 0x30000000
    assert dsi_store[1] == 0x20000028 and dsi_store[3] & ESR_ST and dsi_store[4] == 0x31000008
    assert dtlb[1] == 0x20000034 and dtlb[4] == 0x40000004
    assert priv[1] == 0x20000040 and priv[3] & ESR_PPR  # mfmsr in guest user mode: reflected, not emulated
    assert g.word(RESULT_GPA) == 0  # r5 never received the kernel's secret
    assert g.word(0x5000) == 0x5EC2E7 and g.word(0x7008) == 0
    traps = g.vcpu.stats.traps
    assert traps["syscall"] == 1 and traps["guest_storage_fault"] == 2 and traps["guest_tlb_miss"] == 1


def test_mfdcr_mtdcr_round_trip_as_dcr_exits():
    kernel = (
        "li r3, 0x55\n mtdcr 0xc0, r3\n mfdcr r4, 0xc1\n" + li32("r10", RESULT_GPA) + "stw r4, 0(r10)\n"
    )
    g = Guest(kernel)
    e = g.vcpu.run()
    while not isinstance(e, DcrExit):
        e = g.vcpu.run()
    assert (e.dcrn, e.is_write, e.data) == (0xC0, True, 0x55)
    e = g.vcpu.run()
    assert isinstance(e, DcrExit) and (e.dcrn, e.is_write) == (0xC1, False)
    e.data = 0xDEADBEEF
    g.run_to_done()
    assert g.word(RESULT_GPA) == 0xDEADBEEF
    assert g.vcpu.stats.traps["dcr_exit"] == 2 and g.vcpu.stats.exits["dcr"] == 2


def test_mmio_byte_order_and_update_forms():
    kernel = (
        li32("r10", MMIO_GPA) + li32("r11", 0x11223344) + "stw r11, 0(r10)\n addi r12, r10, 4\n"
        + "stwbrx r11, 0, r12\n li r11, 0x5566\n sth r11, 8(r10)\n"
        + "lwz r13, 0x10(r10)\n addi r12, r10, 0x14\n lwbrx r14, 0, r12\n lha r15, 0x18(r10)\n"
        + "lwzu r16, 0x20(r10)\n" + li32("r20", RESULT_GPA)
        + "stw r13, 0(r20)\n stw r14, 4(r20)\n stw r15, 8(r20)\n stw r16, 12(r20)\n stw r10, 16(r20)\n"
    )
    g = Guest(kernel)
    writes, reads = [], []
    replies = {MMIO_GPA + 0x10: b"\x01\x02\x03\x04", MMIO_GPA + 0x14: b"\x01\x02\x03\x04",
               MMIO_GPA + 0x18: b"\x80\x01", MMIO_GPA + 0x20: b"\xa1\xb2\xc3\xd4"}
    for _ in range(100):
        e = g.vcpu.run()
        assert isinstance(e, MmioExit), e
        if e.is_write:
            if e.phys_addr == DONE_GPA:
                break
            writes.append((e.phys_addr, bytes(e.data)))
        else:
            reads.append((e.phys_addr, e.length))
            e.data[:] = replies[e.phys_addr]
    assert writes == [(MMIO_GPA, bytes.fromhex("11223344")), (MMIO_GPA + 4, bytes.fromhex("44332211")),
                      (MMIO_GPA + 8, bytes.fromhex("5566"))]
    assert reads == [(MMIO_GPA + 0x10, 4), (MMIO_GPA + 0x14, 4), (MMIO_GPA + 0x18, 2), (MMIO_GPA + 0x20, 4)]
    assert [g.word(RESULT_GPA + 4 * i) for i in range(5)] == [
        0x01020304, 0x04030201, 0xFFFF8001, 0xA1B2C3D4, MMIO_GPA + 0x20]
    assert g.vcpu.stats.traps["mmio_write"] == 4 and g.vcpu.stats.traps["mmio_read"] == 4


def test_dbcr0_reset_is_a_reset_exit_and_an_unknown_privileged_spr_is_illegal():
    kernel = "lis r28, 1f@h\n ori r28, r28, 1f@l\n mfspr r3, 816\n1: lis r3, 0x3000\n mtspr 308, r3\n"
    g = Guest(kernel)
    e = g.vcpu.run()
    while not isinstance(e, ResetExit):
        e = g.vcpu.run()
    assert "system" in e.why
    assert g.vcpu.stats.traps["emul_illegal"] == 1
    [(ivor, _srr0, _srr1, esr, _dear, _msr)] = g.log()
    assert ivor == Ivor.PROGRAM and esr & ESR_PIL


@pytest.mark.parametrize("irq", [-1, -3])
def test_kvm_interrupt_values_are_linux_powerpc_ones(irq):
    g = Guest("b .\n")
    g.vcpu.interrupt(irq)
    g.vcpu.interrupt(-2)
    with pytest.raises(ValueError):
        g.vcpu.interrupt(5)


_PRIVILEGED_XO = [83, 146, 131, 163, 339, 467, 323, 451, 978, 946, 914, 566, 966, 454, 470]
_WORDS = st.one_of(
    st.integers(0, 0xFFFFFFFF),
    st.builds(lambda xo, fields, rc: (31 << 26) | (fields << 11) | (xo << 1) | rc,
              st.sampled_from(_PRIVILEGED_XO), st.integers(0, 0x7FFF), st.integers(0, 1)),
    st.builds(lambda xo, fields: (19 << 26) | (fields << 11) | (xo << 1), st.sampled_from([50, 51, 38]),
              st.integers(0, 0x7FFF)),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_WORDS, min_size=8, max_size=8), st.integers(0, 0xFFFFFFFF))
def test_random_guest_kernel_code_never_breaks_the_host(words: list[int], r_value: int) -> None:
    """Whatever a guest kernel executes, privileged or not, the hypervisor answers with exits, never raises.

    A guest that spins or waits is stopped by a kick (InterruptedExit).
    """
    g = Guest("b .\n")
    code = b"".join(w.to_bytes(4, "big") for w in words)
    g.ram[0x4000 : 0x4000 + len(code)] = code
    for r in range(3, 32):
        g.vcpu.set_one_reg(gp_reg(r), (r_value * r) & 0xFFFFFFFF)
    g.vcpu.set_one_reg(gp_reg(28), 0x4000)  # the vectors resume here
    g.vcpu.set_one_reg(gp_reg(29), LOG_GPA)
    g.vcpu.set_one_reg(KVM_REG_PPC_PC, 0x4000)
    watchdog = threading.Timer(0.2, g.vcpu.kick)
    watchdog.start()
    try:
        for _ in range(30):
            e = g.vcpu.run()
            if isinstance(e, MmioExit) and not e.is_write:
                e.data[:] = bytes(e.length)
            elif isinstance(e, ResetExit | HaltExit | InternalErrorExit | InterruptedExit):
                break
    finally:
        watchdog.cancel()


def test_fixed_interval_timer_interrupt():
    # TCR[FP] = 0: FIT on every 0->1 transition of TB bit 2**13; TCR[FIE], then MSR[EE]
    kernel = (
        "lis r28, 1f@h\n ori r28, r28, 1f@l\n lis r3, 0x0080\n mtspr 340, r3\n wrteei 1\n 2: b 2b\n"
        "1: mfspr r9, 336\n" + li32("r10", RESULT_GPA) + "stw r9, 0(r10)\n"
    )
    g = Guest(kernel)
    g.run_to_done()
    [(ivor, srr0, srr1, _esr, _dear, _msr)] = g.log()
    assert ivor == Ivor.FIXED_INTERVAL_TIMER and srr1 & MSR_EE
    assert g.word(RESULT_GPA) & TSR_FIS  # the handler did not clear it: still set
    assert g.vcpu.get_one_reg(KVM_REG_PPC_TSR) & TSR_FIS


def test_guest_timers_follow_the_440():
    t = GuestTimers()
    t.write_dec(100, 50)
    assert t.read_dec(120) == 30
    assert t.read_dec(200) == 0 and t.tsr & TSR_DIS  # stops at 0 and sets DIS
    t.write_tsr(TSR_DIS)
    assert not t.tsr & TSR_DIS  # write one to clear
    t.write_dec(300, 0)
    assert t.read_dec(10_000) == 0 and not t.tsr & TSR_DIS  # a write of 0 never expires
    t.decar = 40
    t.write_tcr(400, TCR_ARE | TCR_DIE)
    t.write_dec(400, 10)
    assert t.next_event_tb(400) == 410
    assert t.read_dec(415) == 35 and t.tsr & TSR_DIS  # reloaded from DECAR
    assert t.pending() == (True, False)


def test_guest_watchdog_enw_wis_then_reset():
    t = GuestTimers()
    t.write_tcr(0, TCR_WIE | (1 << 28))  # WP = 0: TB bit 2**17; WRC = core reset
    assert t.next_event_tb(0) == 1 << 17
    t.update(1 << 17)
    assert t.tsr & TSR_ENW and not t.tsr & TSR_WIS and not t.watchdog_pending()
    t.update(3 << 17)
    assert t.tsr & TSR_WIS and t.watchdog_pending() and t.reset_request == 0
    t.update(5 << 17)
    assert t.reset_request == 1 and t.tsr & 0x30000000 == 1 << 28


def test_watchdog_interrupt_reaches_the_guest_then_its_reset_ends_the_run():
    # TCR: WIE and WRC = system reset; MSR[CE]; the handler (critical class) logs, resumes at r28, CE off
    kernel = (
        "lis r28, 1f@h\n ori r28, r28, 1f@l\n lis r3, 0x3800\n mtspr 340, r3\n"
        "lis r3, 0x0002\n mtmsr r3\n 2: b 2b\n 1: b 1b\n"
    )
    g = Guest(kernel)
    e = g.vcpu.run()
    while not isinstance(e, ResetExit):
        e = g.vcpu.run()
    assert "watchdog" in e.why and "system" in e.why
    [(ivor, *_rest)] = g.log()
    assert ivor == Ivor.WATCHDOG
