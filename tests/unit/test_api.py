"""The KVM API contract, exercised with small real guests in both VM types.

Every test that runs a guest runs twice: in a VZ VM and in a
trap-and-emulate VM. The contract (exits, completion, memory slots, dirty
logging, interrupts, registers) does not depend on how the hypervisor runs
the guest.
"""

from __future__ import annotations

import mmap
import threading
import time

import pytest

from kvmpy.arch.mips.regs import CP0_ID_BY_NAME, KVM_REG_MIPS_PC, Regs, gp_reg
from kvmpy.kvm import (
    Cap,
    CreateVcpuError,
    CreateVmError,
    DirtyLogError,
    HaltExit,
    HypercallExit,
    InternalErrorExit,
    InterruptedExit,
    Kvm,
    MemFlags,
    MemoryRegionError,
    MemoryRegionOverlapError,
    MmioExit,
    RegisterAccessError,
    ShutdownExit,
    VmType,
    dirty_pages,
)
from tests.asm import assemble

RAM_MIB = 16
VM_TYPE = VmType.VZ  # set per test by the vm_type fixture
CODE_GPA = 0x1000
ENTRY = 0x80000000 | CODE_GPA

# Guest prologue: leave the reset state (BEV/ERL) so exceptions use EBase (0x80000000).
PROLOGUE = "mtc0 $zero, $12\n ehb\n"
EXIT = "li $v0, 1\n hypcall\n nop\n"
# A handler at EBase+0x180 that records Cause, EPC, BadVAddr in s5, s6, s7 and exits.
HANDLER = "mfc0 $s5, $13\n mfc0 $s6, $14\n mfc0 $s7, $8\n" + EXIT


@pytest.fixture(autouse=True, params=[VmType.VZ, VmType.TE], ids=["vz", "te"])
def vm_type(request, monkeypatch) -> VmType:
    monkeypatch.setattr(f"{__name__}.VM_TYPE", request.param)
    return request.param


def make_vm(source: str, handler: str | None = HANDLER, mem_mib: int = RAM_MIB):
    kvm = Kvm()
    vm = kvm.create_vm(VM_TYPE)
    ram = mmap.mmap(-1, mem_mib << 20)
    code = assemble(source, ENTRY)
    ram[CODE_GPA : CODE_GPA + len(code)] = code
    if handler is not None:
        h = assemble(handler, 0x80000180)
        ram[0x180 : 0x180 + len(h)] = h
    vm.set_user_memory_region(0, 0, mem_mib << 20, ram)
    vcpu = vm.create_vcpu(0)
    regs = vcpu.get_regs()
    regs.pc = ENTRY
    vcpu.set_regs(regs)
    return kvm, vm, vcpu, ram


def run_to_shutdown(vcpu, mmio_reply: int = 0):
    exits = []
    for _ in range(1000):
        e = vcpu.run()
        exits.append(e)
        if isinstance(e, MmioExit) and not e.is_write:
            e.data[:] = mmio_reply.to_bytes(4, "little")[: e.length]
        elif isinstance(e, ShutdownExit | InternalErrorExit | HaltExit):
            return exits
    raise AssertionError("guest did not finish")


def test_api_version_and_caps():
    kvm = Kvm()
    assert kvm.api_version() == 12
    assert kvm.check_extension(Cap.READONLY_MEM) == 1
    assert kvm.check_extension(Cap.MAX_VCPUS) >= 1
    assert kvm.check_extension(Cap.MIPS_VZ) == 1
    assert kvm.check_extension(Cap.MIPS_TE) == 1
    assert kvm.create_vm(VmType.TE).vm_type == VmType.TE
    with pytest.raises(CreateVmError):
        kvm.create_vm(99)  # type: ignore[arg-type]


def test_each_vm_type_runs_its_own_hypervisor(vm_type):
    kvm, vm, vcpu, ram = make_vm(PROLOGUE + EXIT)
    assert vm.vm_type == vm_type
    assert isinstance(run_to_shutdown(vcpu)[-1], ShutdownExit)
    traps = vcpu.stats.traps
    if vm_type == VmType.TE:
        # the prologue's mtc0 and the hypcall trapped out of host user mode
        assert traps["emul_mtc0.STATUS"] == 1 and traps["hypercall"] == 1
    else:
        assert traps["hypercall"] == 1 and not any(k.startswith("emul_") for k in traps)


def test_mmio_read_completion_reaches_register():
    src = """
    lui $s0, 0xb800
    lb  $t0, 0($s0)      # sign-extended byte
    lbu $t1, 0($s0)
    lh  $t2, 2($s0)
    lhu $t3, 2($s0)
    lw  $t4, 4($s0)
    """ + EXIT
    _, _, vcpu, _ = make_vm(src)
    exits = run_to_shutdown(vcpu, mmio_reply=0x89ABCDEF)
    reads = [e for e in exits if isinstance(e, MmioExit)]
    assert [(e.phys_addr, e.length, e.is_write) for e in reads] == [
        (0x18000000, 1, False),
        (0x18000000, 1, False),
        (0x18000002, 2, False),
        (0x18000002, 2, False),
        (0x18000004, 4, False),
    ]
    g = vcpu.get_regs().gpr
    assert g[8] == 0xFFFFFFEF  # lb of 0xEF sign-extends
    assert g[9] == 0xEF
    assert g[10] == 0xFFFFCDEF
    assert g[11] == 0xCDEF
    assert g[12] == 0x89ABCDEF
    assert isinstance(exits[-1], ShutdownExit)


def test_mmio_write_carries_data_and_size():
    src = """
    lui $s0, 0xb800
    li  $t0, 0x11223344
    sw  $t0, 0x10($s0)
    sh  $t0, 0x20($s0)
    sb  $t0, 0x31($s0)
    """ + EXIT
    _, _, vcpu, _ = make_vm(src)
    writes = [e for e in run_to_shutdown(vcpu) if isinstance(e, MmioExit)]
    assert [(e.phys_addr, e.length, bytes(e.data)) for e in writes] == [
        (0x18000010, 4, bytes.fromhex("44332211")),
        (0x18000020, 2, bytes.fromhex("4433")),
        (0x18000031, 1, bytes.fromhex("44")),
    ]


def test_mmio_in_branch_delay_slot_resumes_at_target():
    src = """
    lui $s0, 0xb800
    li  $t1, 5
    bne $t1, $zero, 1f
    lw  $t1, 0($s0)      # MMIO in the delay slot overwrites the branch operand
    li  $s1, 0xbad       # must be skipped
1:  li  $s2, 0x600d
    """ + EXIT
    _, _, vcpu, _ = make_vm(src)
    run_to_shutdown(vcpu, mmio_reply=0)
    g = vcpu.get_regs().gpr
    assert g[17] == 0 and g[18] == 0x600D and g[9] == 0


def test_hypercall_exit_and_return_value():
    src = "li $v0, 7\n li $a0, 11\n li $a1, 22\n hypcall\n move $s0, $v0\n" + EXIT
    _, _, vcpu, _ = make_vm(src)
    e = vcpu.run()
    assert isinstance(e, HypercallExit) and e.nr == 7 and e.args[:2] == (11, 22)
    e.ret = 0xCAFE
    assert isinstance(vcpu.run(), ShutdownExit)
    assert vcpu.get_regs().gpr[16] == 0xCAFE


def test_dirty_log_reports_exactly_the_written_pages():
    page = 4096
    src = f"""
    lui $s0, 0x8040          # slot 1 at GPA 0x00400000
    sw  $zero, {3 * page}($s0)
    sw  $zero, {5 * page}($s0)
    sb  $zero, {5 * page + 17}($s0)
    lw  $t0,  {7 * page}($s0)   # read only: not dirty
    li  $t1, {100 * page}
    addu $t1, $t1, $s0
    sh  $zero, 2($t1)
    li  $v0, 9
    hypcall                  # pause: the VMM reads the log here
    sw  $zero, {3 * page}($s0)
    li  $t1, {200 * page}
    addu $t1, $t1, $s0
    sw  $zero, 0($t1)
    """ + EXIT
    kvm, vm, vcpu, _ = make_vm(src, mem_mib=4)
    logged = mmap.mmap(-1, 1 << 20)
    vm.set_user_memory_region(1, 0x400000, 1 << 20, logged, MemFlags.LOG_DIRTY_PAGES)
    assert isinstance(vcpu.run(), HypercallExit)
    assert dirty_pages(vm.get_dirty_log(1)) == [3, 5, 100]
    assert dirty_pages(vm.get_dirty_log(1)) == []  # cleared by the read
    assert isinstance(vcpu.run(), ShutdownExit)
    # page 3 was written again after the log was taken: it must be caught again
    assert dirty_pages(vm.get_dirty_log(1)) == [3, 200]
    with pytest.raises(DirtyLogError):
        vm.get_dirty_log(0)  # slot 0 does not log
    with pytest.raises(DirtyLogError):
        vm.get_dirty_log(5)


def test_readonly_slot_reads_memory_and_writes_exit():
    src = """
    lui $s0, 0x8080          # read-only slot at GPA 0x00800000
    lw  $t0, 0x10($s0)
    li  $t1, 0x55
    sw  $t1, 0x10($s0)
    lw  $t2, 0x10($s0)
    """ + EXIT
    kvm, vm, vcpu, _ = make_vm(src, mem_mib=4)
    rom = mmap.mmap(-1, 1 << 20)
    rom[0x10:0x14] = (0xA5A5A5A5).to_bytes(4, "little")
    vm.set_user_memory_region(2, 0x800000, 1 << 20, rom, MemFlags.READONLY)
    exits = run_to_shutdown(vcpu)
    writes = [e for e in exits if isinstance(e, MmioExit)]
    assert [(e.phys_addr, e.is_write, bytes(e.data)) for e in writes] == [
        (0x800010, True, (0x55).to_bytes(4, "little"))
    ]
    g = vcpu.get_regs().gpr
    assert g[8] == 0xA5A5A5A5 and g[10] == 0xA5A5A5A5
    assert rom[0x10:0x14] == (0xA5A5A5A5).to_bytes(4, "little")


@pytest.mark.parametrize(
    ("slot", "gpa", "size", "error"),
    [
        (1, 0x100, 0x1000, MemoryRegionError),  # misaligned address
        (1, 0x2000000, 0x1800, MemoryRegionError),  # misaligned size
        (1, 0x2000000, 0, MemoryRegionError),  # zero size for a slot that does not exist
        (1, 0x800000, 0x1000, MemoryRegionOverlapError),  # inside slot 0
        (99, 0x2000000, 0x1000, MemoryRegionError),  # slot number out of range
        (1, 0xFFFFF000, 0x2000, MemoryRegionError),  # beyond 4 GiB
    ],
)
def test_bad_slot_arguments_raise_typed_errors(slot, gpa, size, error):
    kvm = Kvm()
    vm = kvm.create_vm()
    vm.set_user_memory_region(0, 0, 16 << 20, mmap.mmap(-1, 16 << 20))
    with pytest.raises(error):
        vm.set_user_memory_region(slot, gpa, size, mmap.mmap(-1, max(size, 4096)))


def test_slot_buffer_checks():
    vm = Kvm().create_vm()
    with pytest.raises(MemoryRegionError, match="holds"):
        vm.set_user_memory_region(0, 0, 0x4000, mmap.mmap(-1, 0x1000))
    with pytest.raises(MemoryRegionError, match="writable"):
        vm.set_user_memory_region(0, 0, 0x1000, bytes(0x1000))
    with pytest.raises(MemoryRegionError, match="buffer"):
        vm.set_user_memory_region(0, 0, 0x1000, None)


def test_deleting_a_slot_turns_its_addresses_into_mmio():
    src = "lui $s0, 0x8040\n lw $t0, 0($s0)\n li $v0, 9\n hypcall\n lw $t0, 0($s0)\n" + EXIT
    kvm, vm, vcpu, _ = make_vm(src, mem_mib=4)
    extra = mmap.mmap(-1, 0x10000)
    vm.set_user_memory_region(1, 0x400000, 0x10000, extra)
    assert isinstance(vcpu.run(), HypercallExit)  # first read hit RAM
    vm.set_user_memory_region(1, 0x400000, 0, None)
    e = vcpu.run()
    assert isinstance(e, MmioExit) and e.phys_addr == 0x400000


def test_reserved_instruction_is_delivered_to_the_guest():
    src = PROLOGUE + "nop\n bad: .word 0x7c00003f\n" + EXIT  # SPECIAL3 function 63: reserved
    _, _, vcpu, _ = make_vm(src)
    assert isinstance(vcpu.run(), ShutdownExit)
    g = vcpu.get_regs().gpr
    assert (g[21] >> 2) & 0x1F == 10  # Cause.ExcCode = RI
    assert g[22] == ENTRY + 12  # EPC = the reserved word (after mtc0, ehb, nop)


def test_jump_to_nowhere_is_a_guest_bus_error():
    src = PROLOGUE + "lui $t0, 0x9f00\n jr $t0\n nop\n" + EXIT  # GPA 0x1f000000: no memory
    _, _, vcpu, _ = make_vm(src)
    assert isinstance(vcpu.run(), ShutdownExit)
    g = vcpu.get_regs().gpr
    assert (g[21] >> 2) & 0x1F == 6  # IBE
    assert g[22] == 0x9F000000


def test_jump_to_unaligned_address_is_address_error():
    src = PROLOGUE + "li $t0, 0x80001002\n jr $t0\n nop\n" + EXIT
    _, _, vcpu, _ = make_vm(src)
    assert isinstance(vcpu.run(), ShutdownExit)
    g = vcpu.get_regs().gpr
    assert (g[21] >> 2) & 0x1F == 4 and g[22] == 0x80001002 and g[23] == 0x80001002


def test_unbacked_exception_vector_is_an_internal_error_not_a_hang():
    # BEV=1 (reset state): the vector at 0xbfc00380 has no memory behind it
    src = "lui $t0, 0x9f00\n jr $t0\n nop\n"
    _, _, vcpu, _ = make_vm(src, handler=None)
    e = vcpu.run()
    assert isinstance(e, InternalErrorExit) and "not backed" in e.message


def test_kick_from_another_thread_interrupts_run():
    _, _, vcpu, _ = make_vm("1: b 1b\n nop\n")
    threading.Timer(0.2, vcpu.kick).start()
    t0 = time.monotonic()
    assert isinstance(vcpu.run(), InterruptedExit)
    assert time.monotonic() - t0 < 5
    # the loop resumes where it was
    assert vcpu.get_regs().pc in (ENTRY, ENTRY + 4)


def test_immediate_exit():
    _, _, vcpu, _ = make_vm("1: b 1b\n nop\n")
    vcpu.immediate_exit = True
    assert isinstance(vcpu.run(), InterruptedExit)
    assert vcpu.stats.instructions == 0


def test_wait_with_everything_masked_is_a_halt_exit():
    _, _, vcpu, _ = make_vm(PROLOGUE + "wait\n nop\n")
    e = vcpu.run()
    assert isinstance(e, HaltExit) and e.pc == ENTRY + 12


def test_timer_interrupt_wakes_a_waiting_guest():
    src = """
    li   $t0, 0x8001         # IM7 | IE, kernel mode, BEV clear
    mfc0 $t1, $9
    addiu $t1, $t1, 20000    # ~0.2 ms at 100 MHz
    mtc0 $t1, $11
    mtc0 $t0, $12
    ehb
    wait
    nop
    li $s4, 0xbad            # not reached: the handler exits
    """
    _, _, vcpu, _ = make_vm(src)
    assert isinstance(vcpu.run(), ShutdownExit)
    g = vcpu.get_regs().gpr
    cause = g[21]
    assert (cause >> 2) & 0x1F == 0  # interrupt
    assert cause & (1 << 30) and cause & (1 << 15)  # TI and IP7
    assert g[20] == 0


def test_interrupt_line_is_delivered():
    src = """
    li   $t0, 0x0401         # IM2 | IE
    mtc0 $t0, $12
    ehb
    li   $v0, 9
    hypcall                  # the VMM raises IP2 here
    1: b 1b
    nop
    """
    _, vm, vcpu, _ = make_vm(src)
    assert isinstance(vcpu.run(), HypercallExit)
    vm.irq_line(2, True)
    assert isinstance(vcpu.run(), ShutdownExit)
    cause = vcpu.get_regs().gpr[21]
    assert (cause >> 2) & 0x1F == 0 and cause & (1 << 10)
    with pytest.raises(ValueError):
        vcpu.interrupt(9)


def test_one_reg_and_regs():
    _, _, vcpu, _ = make_vm(EXIT)
    vcpu.set_one_reg(gp_reg(5), 0x1234)
    assert vcpu.get_one_reg(gp_reg(5)) == 0x1234
    assert vcpu.get_one_reg(KVM_REG_MIPS_PC) == ENTRY
    vcpu.set_one_reg(gp_reg(0), 99)
    assert vcpu.get_one_reg(gp_reg(0)) == 0  # r0 is hard-wired
    status = CP0_ID_BY_NAME["STATUS"]
    assert vcpu.get_one_reg(status) & 0x00400004 == 0x00400004  # guest reset state: BEV | ERL
    vcpu.set_one_reg(CP0_ID_BY_NAME["KSCRATCH1"], 0xFEEDF00D)
    assert vcpu.get_one_reg(CP0_ID_BY_NAME["KSCRATCH1"]) == 0xFEEDF00D
    with pytest.raises(RegisterAccessError):
        vcpu.get_one_reg(0x1234)
    with pytest.raises(RegisterAccessError):
        vcpu.set_one_reg(status, 1 << 40)
    with pytest.raises(RegisterAccessError):
        vcpu.set_regs(Regs(gpr=[0] * 3))


def test_vcpu_ids():
    vm = Kvm().create_vm()
    vm.create_vcpu(0)
    with pytest.raises(CreateVcpuError):
        vm.create_vcpu(0)
    with pytest.raises(CreateVcpuError):
        vm.create_vcpu(64)
