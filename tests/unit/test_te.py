"""Trap and emulate: what only this hypervisor mode has, with small real guests.

The bare-metal guests (tests/functional/test_guests_kvmpy.py) already run
every instruction group and exception under `te` against QEMU, and
tests/unit/test_api.py runs the KVM API contract on TE VMs. Here: the
commpage and instruction rewriting, isolation (what guest user code and the
guest's TLB can reach), host ASID recycling, and the guest TLB model.
"""

from __future__ import annotations

import mmap
import struct
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmpy.arch.mips.hw.defs import EntryLo
from kvmpy.arch.mips.te.tlb import GuestTlb
from kvmpy.arch.mips.uapi import Cap, VmType
from kvmpy.kvm import (
    DebugExit,
    EnableCapError,
    HaltExit,
    HypercallExit,
    InternalErrorExit,
    InterruptedExit,
    Kvm,
    MmioExit,
    ShutdownExit,
)
from tests.asm import assemble

RAM_MIB = 16
CODE_GPA = 0x1000
ENTRY = 0x80000000 | CODE_GPA
PROLOGUE = "mtc0 $zero, $12\n ehb\n"
EXIT = "li $v0, 1\n hypcall\n nop\n"
# General exception vector (EBase + 0x180) and TLB refill vector (EBase + 0):
# record Cause, EPC, BadVAddr in s5, s6, s7 and stop.
HANDLER = "mfc0 $s5, $13\n mfc0 $s6, $14\n mfc0 $s7, $8\n" + EXIT
ELO_C2 = 2 << 3  # uncached


def make_te_vm(source: str, kvm: Kvm | None = None, dyntrans: bool = True, marker: int = 0):
    kvm = kvm or Kvm()
    vm = kvm.create_vm(VmType.TE)
    if not dyntrans:
        vm.enable_cap(Cap.MIPS_TE_DYNTRANS, 0)
    ram = mmap.mmap(-1, RAM_MIB << 20)
    code = assemble(source, ENTRY)
    ram[CODE_GPA : CODE_GPA + len(code)] = code
    for vector in (0x000, 0x180):
        h = assemble(HANDLER, 0x80000000 + vector)
        ram[vector : vector + len(h)] = h
    ram[0x2000:0x2004] = struct.pack("<I", marker)
    vm.set_user_memory_region(0, 0, RAM_MIB << 20, ram)
    vcpu = vm.create_vcpu(0)
    regs = vcpu.get_regs()
    regs.pc = ENTRY
    vcpu.set_regs(regs)
    return vm, vcpu, ram


def run(vcpu, mmio_replies: dict[int, int] | None = None) -> list:
    exits = []
    for _ in range(100):
        e = vcpu.run()
        exits.append(e)
        if isinstance(e, MmioExit) and not e.is_write:
            e.data[:] = (mmio_replies or {}).get(e.phys_addr, 0).to_bytes(4, "little")[: e.length]
        elif not isinstance(e, MmioExit):
            return exits
    raise AssertionError("guest did not finish")


def gpr(vcpu, name: str) -> int:
    return vcpu.get_regs().gpr[{"t0": 8, "t1": 9, "t2": 10, "s0": 16, "s1": 17, "s2": 18,
                                "s5": 21, "s6": 22, "s7": 23}[name]]


# A loop of CP0 reads and writes the hypervisor can turn into commpage accesses.
CP0_LOOP = PROLOGUE + """
    li    $s0, 200
1:  mfc0  $t0, $12          # Status
    mfc0  $t1, $15, 1       # EBase
    mtc0  $s0, $2           # EntryLo0
    addiu $s0, $s0, -1
    bnez  $s0, 1b
    nop
    mfc0  $t2, $2
""" + EXIT


@pytest.mark.parametrize("dyntrans", [True, False], ids=["rewrite", "no-rewrite"])
def test_rewriting_cp0_instructions_removes_their_traps(dyntrans):
    vm, vcpu, ram = make_te_vm(CP0_LOOP, dyntrans=dyntrans)
    assert isinstance(run(vcpu)[-1], ShutdownExit)
    # same architectural results either way
    assert (gpr(vcpu, "t0"), gpr(vcpu, "t1"), gpr(vcpu, "t2")) == (0, 0x80000000, 1)
    traps = vcpu.stats.traps
    loop_mfc0_status = ENTRY + 4 * 3  # after mtc0, ehb, li
    word = struct.unpack_from("<I", ram, loop_mfc0_status & 0x1FFFFFFF)[0]
    if dyntrans:
        assert traps["emul_mfc0.STATUS"] == 1 and traps["emul_mfc0.EBASE"] == 1
        assert traps["emul_mtc0.ENTRYLO0"] == 1
        assert traps["rewrite_mfc0"] == 3 and traps["rewrite_mtc0"] == 1
        assert word == 0x8C080000 | (0x8000 + 12 * 8 * 4)  # lw $t0, -0x8000+Status*4($zero)
    else:
        assert traps["emul_mfc0.STATUS"] == 200 and traps["emul_mtc0.ENTRYLO0"] == 200
        assert "rewrite_mfc0" not in traps
        assert word == 0x40086000  # mfc0 $t0, $12, untouched


def test_dyntrans_is_a_te_only_capability():
    vm = Kvm().create_vm(VmType.VZ)
    with pytest.raises(EnableCapError):
        vm.enable_cap(Cap.MIPS_TE_DYNTRANS, 0)
    with pytest.raises(EnableCapError):
        Kvm().create_vm(VmType.TE).enable_cap(Cap.MIPS_TE_DYNTRANS, 2)


# Map user VA 0x00400000 -> guest physical 0x3000 (ASID 0), then eret to it
# in user mode. The kernel first reads its own EBase through the commpage
# (at 0xffff8000: a negative offset from $zero), then address 0, which is
# nothing of the hypervisor's: a TLB refill like any unmapped user address.
COMMPAGE_EBASE = -0x8000 + (15 * 8 + 1) * 4
USER_SETUP = PROLOGUE + f"""
    li    $t0, 0x00400000
    mtc0  $t0, $10          # EntryHi: VPN2, ASID 0
    li    $t0, {(0x3000 >> 12) << 6 | ELO_C2 | EntryLo.D | EntryLo.V:#x}
    mtc0  $t0, $2
    mtc0  $zero, $3
    mtc0  $zero, $5
    mtc0  $zero, $0
    tlbwi
    lw    $s1, {COMMPAGE_EBASE}($zero)   # commpage: EBase
    li    $s2, 0x5555
    li    $t0, 0x00400000
    mtc0  $t0, $14
    li    $t0, 0x12         # KSU = user, EXL
    mtc0  $t0, $12
    eret
"""


def test_the_commpage_is_for_the_guest_kernel_only_and_not_at_address_0():
    vm, vcpu, ram = make_te_vm(USER_SETUP)
    user = assemble(f"lw $s2, {COMMPAGE_EBASE}($zero)\n nop\n", 0x00400000)
    ram[0x3000 : 0x3000 + len(user)] = user
    assert isinstance(run(vcpu)[-1], ShutdownExit)
    assert gpr(vcpu, "s1") == 0x80000000  # the guest kernel sees its CP0 in the commpage
    # guest user code at the same address gets the address error its hardware would give
    assert gpr(vcpu, "s2") == 0x5555
    assert (gpr(vcpu, "s5") >> 2) & 0x1F == 4  # AdEL
    assert gpr(vcpu, "s6") == 0x00400000 and gpr(vcpu, "s7") == 0xFFFF8000 + (15 * 8 + 1) * 4

    # the guest kernel's address 0 is plain guest memory: unmapped here, a TLB refill
    vm, vcpu, ram = make_te_vm(PROLOGUE + "li $s2, 0x5555\n lw $s2, 0x10($zero)\n" + EXIT)
    assert isinstance(run(vcpu)[-1], ShutdownExit)
    assert gpr(vcpu, "s2") == 0x5555 and (gpr(vcpu, "s5") >> 2) & 0x1F == 2 and gpr(vcpu, "s7") == 0x10
    assert vcpu.stats.traps["deliver_tlbl_refill"] == 1

    vm, vcpu, ram = make_te_vm(USER_SETUP)
    user = assemble("lui $t0, 0x8000\n lw $s2, 0x2000($t0)\n nop\n", 0x00400000)
    ram[0x3000 : 0x3000 + len(user)] = user
    assert isinstance(run(vcpu)[-1], ShutdownExit)
    assert gpr(vcpu, "s2") == 0x5555
    assert (gpr(vcpu, "s5") >> 2) & 0x1F == 4 and gpr(vcpu, "s7") == 0x80002000  # AdEL


def map_kseg2_page(gpa: int) -> str:
    """Guest code: TLB entry 0 maps VA 0xc0000000 (global, writable) to `gpa`."""
    return f"""
    lui   $t0, 0xc000
    mtc0  $t0, $10
    li    $t0, {(gpa >> 12) << 6 | ELO_C2 | EntryLo.D | EntryLo.V | EntryLo.G:#x}
    mtc0  $t0, $2
    li    $t0, {EntryLo.G:#x}
    mtc0  $t0, $3
    mtc0  $zero, $5
    mtc0  $zero, $0
    tlbwi
"""


def test_guest_tlb_mapping_outside_ram_is_mmio_not_host_memory():
    source = PROLOGUE + map_kseg2_page(0x1F000000) + """
    lui   $t0, 0xc000
    li    $s0, 0x1234
    sw    $s0, 0x10($t0)
    lw    $s1, 0x20($t0)
    """ + EXIT
    vm, vcpu, ram = make_te_vm(source, dyntrans=False)  # no rewriting: RAM must stay as it was
    before = bytes(ram)
    exits = run(vcpu, {0x1F000020: 0xCAFEF00D})
    mmio = [(e.phys_addr, e.is_write, bytes(e.data)) for e in exits if isinstance(e, MmioExit)]
    assert mmio == [(0x1F000010, True, struct.pack("<I", 0x1234)),
                    (0x1F000020, False, struct.pack("<I", 0xCAFEF00D))]
    assert gpr(vcpu, "s1") == 0xCAFEF00D
    assert bytes(ram) == before  # nothing landed in guest RAM either


def test_two_te_vms_on_one_host_see_only_their_own_memory():
    source = PROLOGUE + "lui $t0, 0x8000\n lw $s0, 0x2000($t0)\n sw $s1, 0x2004($t0)\n" + EXIT
    kvm = Kvm()
    machines = [make_te_vm(source, kvm=kvm, marker=m) for m in (0x1111, 0x2222)]
    for i, (_vm, vcpu, _ram) in enumerate(machines):
        regs = vcpu.get_regs()
        regs.gpr[17] = 0xA0 + i
        vcpu.set_regs(regs)
    for _vm, vcpu, _ram in machines:
        assert isinstance(run(vcpu)[-1], ShutdownExit)
    for i, (_vm, vcpu, ram) in enumerate(machines):
        assert gpr(vcpu, "s0") == (0x1111, 0x2222)[i]
        assert struct.unpack_from("<I", ram, 0x2004)[0] == 0xA0 + i


def test_host_asids_are_recycled_when_the_guest_uses_more_than_the_host_has():
    # 300 guest ASIDs in kernel mode need 300 host ASIDs: more than 255.
    source = PROLOGUE + map_kseg2_page(0x2000) + """
    li    $s0, 300
    li    $s1, 0
    lui   $t1, 0xc000
1:  andi  $t0, $s0, 0xff
    mtc0  $t0, $10          # a new guest ASID
    lw    $t2, 0($t1)
    addu  $s1, $s1, $t2
    addiu $s0, $s0, -1
    bnez  $s0, 1b
    nop
    """ + EXIT
    vm, vcpu, ram = make_te_vm(source, marker=3)
    assert isinstance(run(vcpu)[-1], ShutdownExit)
    assert gpr(vcpu, "s1") == 900
    assert vcpu.stats.traps["host_asid_rollover"] >= 1


# ---------------------------------------------------------------- the guest TLB model
def test_guest_tlb_lookup_asid_global_and_page_sizes():
    tlb = GuestTlb(16)
    lo_even = (0x123 << 6) | EntryLo.V | EntryLo.D
    tlb.write(3, 0x00400000 | 5, 0, lo_even, 0)
    hit = tlb.lookup(0x00400ABC, 5)
    assert hit is not None and hit.valid and hit.dirty and hit.gpa == 0x123ABC and hit.index == 3
    assert tlb.lookup(0x00400ABC, 6) is None  # other ASID: refill
    odd = tlb.lookup(0x00401000, 5)
    assert odd is not None and not odd.valid  # odd page invalid: TLB invalid
    tlb.write(4, 0x10000000 | 9, 0, (0x200 << 6) | EntryLo.V | EntryLo.G, EntryLo.G)
    assert tlb.lookup(0x10000004, 77).gpa == 0x200004  # global: any ASID
    # 16 KiB pages (PageMask 0x6000): the odd page starts 16 KiB in
    tlb.write(5, 0x20000000, 0x6000, (0x300 << 6) | EntryLo.V, (0x400 << 6) | EntryLo.V)
    assert tlb.lookup(0x20003FFC, 0).gpa == 0x303FFC
    assert tlb.lookup(0x20004008, 0).gpa == 0x400008
    assert tlb.probe(0x20006000) == 5 and tlb.probe(0x00400000 | 6) == -1


def test_guest_tlb_overwrite_returns_the_shadows_to_drop():
    tlb = GuestTlb(4)
    tlb.write(1, 0x00400000, 0, (1 << 6) | EntryLo.V, 0)
    tlb.entries[1].shadows.add(0x00400000 | 7)
    stale = tlb.write(1, 0x00800000, 0, (2 << 6) | EntryLo.V, 0)
    assert stale == {0x00400000 | 7}
    assert tlb.lookup(0x00400000, 0) is None and tlb.lookup(0x00800000, 0).gpa == 0x2000


def test_compiled_fast_path_emulates_di_ei_status_and_count_like_python():
    # di/ei/mtc0 Status/mfc0 Count in a loop: the compiled fast path takes them
    # (without rewriting, so every one traps), and the results are the
    # architectural ones; an mtc0 Status that changes mode is left to Python.
    source = PROLOGUE + """
    li    $s0, 50
    li    $t3, 0xff01        # IM all, IE
1:  ei    $t0                # t0 = Status before (IE clear)
    di    $t1                # t1 = Status with IE
    mtc0  $t3, $12           # IE on again, IM set
    mfc0  $t4, $9            # Count
    mfc0  $t5, $9
    subu  $t6, $t5, $t4      # Count moves forward, by little
    di
    addiu $s0, $s0, -1
    bnez  $s0, 1b
    nop
    mfc0  $s1, $12
    li    $t7, 0x10          # KSU=user with EXL clear would be a mode change:
    ori   $t7, $t7, 0x2      # set EXL so the guest stays in kernel mode
    mtc0  $t7, $12
    mfc0  $s2, $12
    """ + EXIT
    vm, vcpu, ram = make_te_vm(source, dyntrans=False)
    assert isinstance(run(vcpu)[-1], ShutdownExit)
    regs = vcpu.get_regs().gpr
    assert regs[8] == 0xFF00 and regs[9] == 0xFF01  # ei / di return the old Status
    assert regs[17] == 0xFF00 and regs[18] == 0x12
    assert 0 <= regs[14] < 100_000  # two Count reads in a row: close together, never backwards
    traps = vcpu.stats.traps
    assert traps["emul_di"] == 100 and traps["emul_ei"] == 50 and traps["emul_mfc0.COUNT"] == 100
    assert traps["fast_path"] >= 300  # the loop ran there, not in Python


@settings(max_examples=200, deadline=None)
@given(
    writes=st.lists(
        st.tuples(
            st.integers(0, 15),                                    # index
            st.integers(0, 0xFFFF).map(lambda v: v << 13),  # VPN2 in the low 512 MiB
            st.integers(0, 3),                                     # ASID
            st.sampled_from([0, 0x6000, 0x1E000]),                 # 4K, 16K, 64K pages
            st.booleans(),                                         # global
        ),
        max_size=40,
    ),
    probes=st.lists(st.tuples(st.integers(0, 63), st.integers(0, 0x1FFFF), st.integers(0, 3)), max_size=30),
)
def test_guest_tlb_index_agrees_with_a_linear_search(writes, probes):
    # The lookup goes through a per-VPN2 index; the architecture says: the
    # entry whose VPN2 (under its PageMask) and ASID (unless global) match.
    tlb = GuestTlb(16)
    for index, vpn2, asid, mask, is_global in writes:
        g = EntryLo.G if is_global else 0
        tlb.write(index, vpn2 | asid, mask, (index << 6) | EntryLo.V | g, ((index + 16) << 6) | EntryLo.V | g)
    for pick, offset, asid in probes:
        # near a written entry most of the time, so that hits and near misses both occur
        va = ((writes[pick % len(writes)][1] if writes else 0) + offset) & 0x1FFFFFFF
        expected = [i for i, e in enumerate(tlb.entries)
                    if (va & ~(e.pagemask | 0x1FFF)) == (e.entryhi & ~(e.pagemask | 0x1FFF))
                    and (e.is_global or (e.entryhi & 0xFF) == asid)]
        hit = tlb.lookup(va, asid)
        if not expected:
            assert hit is None
        else:
            assert hit is not None and hit.index in expected


SKIP_HANDLER = "mfc0 $k0, $14\n addiu $k0, $k0, 4\n mtc0 $k0, $14\n ehb\n eret\n nop\n"


@settings(max_examples=30, deadline=None)
@given(words=st.lists(st.integers(0, 0xFFFFFFFF), min_size=1, max_size=12),
       user=st.booleans())
@pytest.mark.parametrize("vm_type", [VmType.TE, VmType.VZ], ids=["te", "vz"])
def test_random_instruction_words_never_crash_the_hypervisor(vm_type, words, user):
    # Whatever the guest executes, in kernel or in user mode, run() returns
    # exits; nothing raises out of the hypervisor. The guest's exception
    # handlers skip the faulting instruction, so the words run to the end.
    kvm = Kvm()
    vm = kvm.create_vm(vm_type)
    ram = mmap.mmap(-1, RAM_MIB << 20)
    for vector in (0x000, 0x180, 0x200):
        h = assemble(SKIP_HANDLER, 0x80000000 + vector)
        ram[vector : vector + len(h)] = h
    # kernel: run the words from kseg0; user: from useg through a TLB entry
    setup = PROLOGUE + map_kseg2_page(0x3000).replace("lui   $t0, 0xc000\n    mtc0  $t0, $10",
                                                        "lui   $t0, 0x0040\n    mtc0  $t0, $10")
    enter = "li $t0, 0x00400000\n mtc0 $t0, $14\n li $t0, 0x12\n mtc0 $t0, $12\n ehb\n eret\n"
    jump = enter if user else "la $t0, 0x80003000\n jr $t0\n nop\n"
    code = assemble(setup + jump, ENTRY)
    ram[CODE_GPA : CODE_GPA + len(code)] = code
    body = b"".join(struct.pack("<I", w) for w in words) + assemble("syscall\n" + EXIT, 0)
    ram[0x3000 : 0x3000 + len(body)] = body
    vm.set_user_memory_region(0, 0, RAM_MIB << 20, ram)
    vcpu = vm.create_vcpu(0)
    regs = vcpu.get_regs()
    regs.pc = ENTRY
    vcpu.set_regs(regs)
    timer = threading.Timer(0.25, vcpu.kick)  # a guest that loops forever is stopped here
    timer.start()
    try:
        for _ in range(200):
            e = vcpu.run()
            if isinstance(e, MmioExit):
                continue
            assert isinstance(e, ShutdownExit | InterruptedExit | HaltExit | InternalErrorExit
                              | DebugExit | HypercallExit), e
            if not isinstance(e, DebugExit | HypercallExit):
                break
    finally:
        timer.cancel()
