"""KVM_SET_GUEST_DEBUG and KVM_TRANSLATE on both MIPS VM types, with real guest code.

The guest's kernel code (kseg0) maps one user page with tlbwi and erets
into a user-mode loop, so breakpoints, steps and translations are checked
in guest kernel and guest user code, over instructions te traps and
emulates (mtc0, tlbwi, eret) and through branch delay slots.
"""

from __future__ import annotations

import mmap
import threading

import pytest

from kvmpy.arch.mips.uapi import VmType
from kvmpy.kvm import (
    Cap,
    DebugExit,
    DebugKind,
    GuestDebug,
    GuestDebugError,
    JitSettings,
    Kvm,
    Vcpu,
    WatchKind,
    Watchpoint,
)
from tests.asm import assemble

KERNEL_GVA = 0x8000_1000
USER_GVA = 0x0040_0000
USER_GPA = 0x3000
COUNTER_GVA = 0x8000_2000
RAM_BYTES = 4 << 20

KERNEL = f"""
    mtc0  $zero, $12
    ehb
    lui   $8, 0x8000
    ori   $8, $8, 0x2000
    sw    $zero, 0($8)
    lui   $8, {USER_GVA >> 16:#x}
    mtc0  $8, $10
    li    $8, {((USER_GPA >> 12) << 6) | 0x1F:#x}
    mtc0  $8, $2
    mtc0  $zero, $3
    mtc0  $zero, $5
    mtc0  $zero, $0
    ehb
    tlbwi
    lui   $8, {USER_GVA >> 16:#x}
    mtc0  $8, $14
    li    $9, 0x12
    mtc0  $9, $12
    ehb
    eret
"""
# kernel offsets of interest
KERNEL_STORE = KERNEL_GVA + 0x10   # sw $zero to the counter
KERNEL_TLBWI = KERNEL_GVA + 0x34
USER = """
    addu  $10, $0, $0
1:  addiu $10, $10, 1
    b     1b
    nop
"""
USER_LOOP = USER_GVA + 4
USER_BRANCH = USER_GVA + 8

# kseg0 code that counts in memory forever (the store sits in a delay slot)
COUNTING = """
    lui   $8, 0x8000
    ori   $8, $8, 0x2000
    addu  $9, $0, $0
1:  addiu $9, $9, 1
    b     1b
    sw    $9, 0($8)
"""
COUNT_STORE = KERNEL_GVA + 0x14

VM_TYPES = [pytest.param(VmType.VZ, id="vz"), pytest.param(VmType.TE, id="te")]


def make_vcpu(
    vm_type: VmType, kernel: str = KERNEL, jit: JitSettings | None = None
) -> tuple[Vcpu, mmap.mmap]:
    vm = Kvm(jit=jit).create_vm(vm_type)
    ram = mmap.mmap(-1, RAM_BYTES)
    code = assemble(kernel, KERNEL_GVA)
    ram[KERNEL_GVA & 0xFFFF:(KERNEL_GVA & 0xFFFF) + len(code)] = code
    user = assemble(USER, USER_GVA)
    ram[USER_GPA:USER_GPA + len(user)] = user
    vm.set_user_memory_region(0, 0, RAM_BYTES, ram)
    vcpu = vm.create_vcpu(0)
    regs = vcpu.get_regs()
    regs.pc = KERNEL_GVA
    vcpu.set_regs(regs)
    return vcpu, ram


def run_debug(vcpu: Vcpu) -> DebugExit:
    exit_ = vcpu.run()
    assert isinstance(exit_, DebugExit), exit_
    return exit_


def test_capabilities_and_limits() -> None:
    kvm = Kvm()
    assert kvm.check_extension(Cap.SET_GUEST_DEBUG) == 1
    n_bps = kvm.check_extension(Cap.GUEST_DEBUG_HW_BPS)
    n_wps = kvm.check_extension(Cap.GUEST_DEBUG_HW_WPS)
    assert n_bps >= 1 and n_wps >= 1
    vcpu, _ = make_vcpu(VmType.VZ)
    vcpu.set_guest_debug(GuestDebug(enable=True, sw_breakpoints=frozenset({USER_LOOP})))
    with pytest.raises(GuestDebugError):
        vcpu.set_guest_debug(GuestDebug(enable=True, hw_breakpoints=frozenset(range(0, 4 * (n_bps + 1), 4))))
    with pytest.raises(GuestDebugError):
        watch = Watchpoint(COUNTER_GVA, 4, WatchKind.WRITE)
        vcpu.set_guest_debug(GuestDebug(enable=True, watchpoints=(watch,) * (n_wps + 1)))
    # the refused requests left the user-code breakpoint in force
    assert run_debug(vcpu).pc == USER_LOOP


@pytest.mark.parametrize("vm_type", VM_TYPES)
def test_breakpoints_in_guest_kernel_and_user_code(vm_type: VmType) -> None:
    vcpu, ram = make_vcpu(vm_type)
    vcpu.set_guest_debug(GuestDebug(enable=True, sw_breakpoints=frozenset({KERNEL_TLBWI}),
                                    hw_breakpoints=frozenset({USER_LOOP})))
    stop = run_debug(vcpu)
    assert (stop.pc, stop.kind) == (KERNEL_TLBWI, DebugKind.SW_BREAKPOINT)
    assert vcpu.translate(USER_GVA) is None  # tlbwi has not executed
    stop = run_debug(vcpu)
    assert (stop.pc, stop.kind) == (USER_LOOP, DebugKind.HW_BREAKPOINT)
    assert vcpu.get_one_reg(0x7020000000010000 | 12 << 3) & 0x10  # Status.UM: guest user mode
    counts = []
    for _ in range(3):
        counts.append(vcpu.get_regs().gpr[10])
        assert run_debug(vcpu).pc == USER_LOOP  # continuing makes progress, stops again
    assert counts == [0, 1, 2]
    # the guest's memory was never written
    assert ram[USER_GPA:USER_GPA + 16] == assemble(USER, USER_GVA)


@pytest.mark.parametrize("vm_type", VM_TYPES)
def test_single_step_over_emulated_instructions_and_through_delay_slot(vm_type: VmType) -> None:
    vcpu, _ = make_vcpu(vm_type)
    vcpu.set_guest_debug(GuestDebug(enable=True, single_step=True))
    pcs = [vcpu.get_regs().pc]
    for _ in range(24):
        stop = run_debug(vcpu)
        assert stop.kind == DebugKind.SINGLE_STEP
        assert stop.pc == vcpu.get_regs().pc
        pcs.append(stop.pc)
    # every kernel instruction one step, eret lands in user code, then the
    # loop: the branch and its delay slot are one step
    kernel = [KERNEL_GVA + 4 * i for i in range(20)]
    assert pcs[:20] == kernel
    assert pcs[20:] == [USER_GVA, USER_LOOP, USER_BRANCH, USER_LOOP, USER_BRANCH]


@pytest.mark.parametrize("vm_type", VM_TYPES)
def test_watchpoint_fires_before_the_store(vm_type: VmType) -> None:
    vcpu, ram = make_vcpu(vm_type, COUNTING)
    counter_gpa = COUNTER_GVA & 0x1FFF_FFFF
    upper_half = Watchpoint(COUNTER_GVA + 2, 2, WatchKind.WRITE)
    vcpu.set_guest_debug(GuestDebug(enable=True, watchpoints=(upper_half,)))
    for expected_old in (0, 1, 2):
        stop = run_debug(vcpu)
        assert stop.kind == DebugKind.WATCHPOINT
        assert (stop.pc, stop.watch_gva, stop.watch_kind) == (COUNT_STORE, COUNTER_GVA + 2, WatchKind.WRITE)
        assert int.from_bytes(ram[counter_gpa:counter_gpa + 4], "little") == expected_old
        assert vcpu.get_regs().gpr[9] == expected_old + 1
    # a read watchpoint on the same word never fires: the guest only stores
    vcpu.set_guest_debug(GuestDebug(enable=True, watchpoints=(Watchpoint(COUNTER_GVA, 4, WatchKind.READ),),
                                    sw_breakpoints=frozenset({KERNEL_GVA + 0xC})))
    assert run_debug(vcpu).kind == DebugKind.SW_BREAKPOINT


@pytest.mark.parametrize("vm_type", VM_TYPES)
def test_translate_mapped_and_unmapped(vm_type: VmType) -> None:
    vcpu, _ = make_vcpu(vm_type)
    kseg0 = vcpu.translate(COUNTER_GVA)
    assert kseg0 is not None and kseg0.gpa == COUNTER_GVA & 0x1FFF_FFFF
    assert vcpu.translate(0xA000_2004).gpa == 0x2004  # type: ignore[union-attr]
    # out of reset Status.ERL leaves useg unmapped; the first instruction clears it
    assert vcpu.translate(USER_GVA + 0x10).gpa == USER_GVA + 0x10  # type: ignore[union-attr]
    vcpu.set_guest_debug(GuestDebug(enable=True, single_step=True))
    run_debug(vcpu)
    assert vcpu.translate(USER_GVA + 0x10) is None
    vcpu.set_guest_debug(GuestDebug(enable=True, sw_breakpoints=frozenset({USER_LOOP})))
    run_debug(vcpu)
    t = vcpu.translate(USER_GVA + 0x10)
    assert t is not None and (t.gpa, t.usermode) == (USER_GPA + 0x10, True)
    assert vcpu.translate(USER_GVA + 0x1000) is None   # the odd page of the pair is invalid
    assert vcpu.translate(0x0080_0000) is None
    tables = vcpu.tlb_snapshot()
    assert any(row.startswith(" 0 hi=00400000") for row in tables["guest"])
    assert set(tables) == ({"guest", "root"} if vm_type == VmType.VZ else {"guest", "shadow"})


@pytest.mark.parametrize("vm_type", VM_TYPES)
def test_debugging_off_runs_freely(vm_type: VmType) -> None:
    vcpu, _ = make_vcpu(vm_type)
    vcpu.set_guest_debug(GuestDebug(enable=True, sw_breakpoints=frozenset({USER_LOOP})))
    run_debug(vcpu)
    vcpu.set_guest_debug(GuestDebug())
    vcpu.kick()
    exit_ = vcpu.run()
    assert not isinstance(exit_, DebugExit)


@pytest.mark.parametrize("vm_type", VM_TYPES)
def test_breakpoints_stop_code_the_block_translator_has_translated(vm_type: VmType) -> None:
    jit = JitSettings(enabled=True, threshold=2, background=False)
    vcpu, ram = make_vcpu(vm_type, COUNTING, jit)
    vcpu.set_guest_debug(GuestDebug(enable=True, hw_breakpoints=frozenset({KERNEL_GVA + 0xC})))
    run_debug(vcpu)
    # run freely until the loop is translated and has gone round many times
    vcpu.set_guest_debug(GuestDebug())
    cpu = vcpu.arch.cpu  # type: ignore[attr-defined]
    for _ in range(50):
        threading.Timer(0.05, vcpu.kick).start()
        vcpu.run()
        if cpu.jit_insns > 100_000:
            break
    assert cpu.jit_insns > 100_000
    counter_gpa = COUNTER_GVA & 0x1FFF_FFFF
    vcpu.set_guest_debug(GuestDebug(enable=True, sw_breakpoints=frozenset({KERNEL_GVA + 0xC})))
    before = int.from_bytes(ram[counter_gpa:counter_gpa + 4], "little")
    stop = run_debug(vcpu)
    assert (stop.pc, stop.kind) == (KERNEL_GVA + 0xC, DebugKind.SW_BREAKPOINT)
    after = int.from_bytes(ram[counter_gpa:counter_gpa + 4], "little")
    assert after - before <= 1  # stopped within one turn of the loop
    vcpu.set_guest_debug(GuestDebug())
    jit_before = cpu.jit_insns
    threading.Timer(0.05, vcpu.kick).start()
    vcpu.run()
    assert cpu.jit_insns > jit_before  # disarmed: translated code runs again


def test_bad_requests_are_refused() -> None:
    vcpu, _ = make_vcpu(VmType.TE)
    with pytest.raises(GuestDebugError):
        vcpu.set_guest_debug("break main")  # type: ignore[arg-type]
    with pytest.raises(GuestDebugError):
        empty = Watchpoint(COUNTER_GVA, 0, WatchKind.READ)
        vcpu.set_guest_debug(GuestDebug(enable=True, watchpoints=(empty,)))
    with pytest.raises(ValueError):
        vcpu.translate(-4)
    assert vcpu.translate(1 << 40) is None
