"""What the KVM API does only on MIPS, in both VM types (VZ and trap-and-emulate).

tests/unit/test_api.py runs the architecture-neutral contract on every
backend; here are the MIPS parts of it: MIPS capabilities and VM types, load
sign extension, branch delay slots, the MIPS hypercall convention, guest
exceptions, the guest timer, interrupt pins IP2..IP7 and CP0 registers by
ONE_REG id. Every test runs in a VZ VM and in a trap-and-emulate VM.
"""

from __future__ import annotations

import mmap

import pytest

from kvmpy.arch.mips.uapi import CP0_ID_BY_NAME, KVM_REG_MIPS_PC, Cap, Regs, VmType, gp_reg
from kvmpy.kvm import (
    Cap as GenericCap,
)
from kvmpy.kvm import (
    CreateVmError,
    HaltExit,
    HypercallExit,
    InternalErrorExit,
    InterruptError,
    Kvm,
    MmioExit,
    RegisterAccessError,
    ShutdownExit,
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
    kvm = Kvm("mips")
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


def test_mips_caps_and_vm_types():
    kvm = Kvm("mips")
    assert kvm.check_extension(Cap.MIPS_VZ) == 1
    assert kvm.check_extension(Cap.MIPS_TE) == 1
    assert kvm.check_extension(Cap.MIPS_TE_DYNTRANS) == 1
    assert kvm.check_extension(GenericCap.MAX_VCPUS) == 8
    assert kvm.create_vm(VmType.TE).vm_type == VmType.TE
    assert kvm.create_vm().vm_type == VmType.VZ  # type 0 (AUTO) is VZ
    with pytest.raises(CreateVmError, match="VZ"):
        kvm.create_vm(99)


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
    for bad in (9, 1, 0, -8):
        with pytest.raises(InterruptError):
            vcpu.interrupt(bad)
    with pytest.raises(ValueError):  # an InterruptError is a ValueError too
        vm.irq_line(8, True)


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
