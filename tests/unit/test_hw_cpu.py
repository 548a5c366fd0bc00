"""The simulated core on its own, without a hypervisor: root-mode behaviour.

These drive `Cpu` directly, as the host kernel would run on bare silicon:
code at the reset vector (kseg1 -> physical 0x1fc00000), RAM at physical 0.
"""

from __future__ import annotations

import mmap

import pytest

from kvmpy.arch.mips.hw.cpu import Cpu
from kvmpy.arch.mips.hw.defs import Cp0, Ctx, ExcCode, Stop
from kvmpy.sim.physmem import PhysicalMemory
from tests.asm import assemble

RESET = 0xBFC00000


def reg(c: Cp0) -> tuple[int, int]:
    return c >> 3, c & 7


def boot(source: str, ram_mib: int = 1) -> tuple[Cpu, mmap.mmap]:
    phys = PhysicalMemory()
    rom = mmap.mmap(-1, 0x10000)
    code = assemble(source, RESET)
    rom[: len(code)] = code
    ram = mmap.mmap(-1, ram_mib << 20)
    phys.attach(0x1FC00000, rom)
    phys.attach(0, ram)
    return Cpu(phys), ram


def exc_code(cpu: Cpu) -> int:
    return (cpu.cp0_read(Ctx.ROOT, *reg(Cp0.CAUSE)) >> 2) & 0x1F


def test_reset_state():
    cpu, _ = boot("wait\n nop\n")
    assert cpu.pc == RESET
    status = cpu.cp0_read(Ctx.ROOT, *reg(Cp0.STATUS))
    assert status & (1 << 22) and status & (1 << 2)  # BEV, ERL
    assert cpu.cp0_read(Ctx.ROOT, *reg(Cp0.CONFIG3)) & (1 << 23)  # VZ present
    assert cpu.cp0_read(Ctx.ROOT, *reg(Cp0.CONFIG3)) & (1 << 25)  # segmentation control
    assert (cpu.cp0_read(Ctx.ROOT, *reg(Cp0.CONFIG1)) >> 25) & 0x3F == 63  # 64 TLB entries


def test_root_wait_stops_and_counts_instructions():
    cpu, ram = boot("li $t0, 5\n sw $t0, 0x10($zero)\n wait\n nop\n")
    # kernel mode with ERL=1: useg is unmapped (EU), so address 0x10 is physical 0x10
    assert cpu.run(1000) == Stop.ROOT_WAIT
    assert ram[0x10] == 5
    assert cpu.icount == 3  # li (one addiu), sw, wait


def test_budget_stop_resumes_exactly():
    cpu, ram = boot("li $t0, 0\n1: addiu $t0, $t0, 1\n b 1b\n nop\n")
    assert cpu.run(1000) == Stop.BUDGET
    first = cpu.get_gpr(8)
    assert cpu.run(1000) == Stop.BUDGET
    assert cpu.get_gpr(8) > first


def test_bus_error_on_physical_address_without_ram():
    cpu, _ = boot("lui $t0, 0xa300\n lw $t1, 0($t0)\n")  # kseg1 -> physical 0x03000000: nothing
    assert cpu.run(100) == Stop.ROOT_EXCEPTION
    assert exc_code(cpu) == ExcCode.DBE
    assert cpu.cp0_read(Ctx.ROOT, *reg(Cp0.EPC)) == RESET + 4


def test_divide_by_zero_and_overflowing_divide_do_not_crash_the_host():
    cpu, _ = boot(
        "li $t0, 7\n div $zero, $t0, $zero\n li $t1, 0x80000000\n li $t2, -1\n"
        "div $zero, $t1, $t2\n mflo $s0\n mfhi $s1\n wait\n nop\n"
    )
    assert cpu.run(1000) == Stop.ROOT_WAIT
    assert cpu.get_gpr(16) == 0x80000000 and cpu.get_gpr(17) == 0


def test_exception_in_delay_slot_sets_bd_and_epc_to_branch():
    cpu, _ = boot("b 1f\n syscall\n1: nop\n")
    assert cpu.run(100) == Stop.ROOT_EXCEPTION
    cause = cpu.cp0_read(Ctx.ROOT, *reg(Cp0.CAUSE))
    assert exc_code(cpu) == ExcCode.SYS and cause & (1 << 31)
    assert cpu.cp0_read(Ctx.ROOT, *reg(Cp0.EPC)) == RESET
    assert cpu.cp0_read(Ctx.ROOT, *reg(Cp0.BADINSTRP)) >> 16 == 0x1000  # the branch (beq zero,zero)


def test_user_mode_cannot_touch_kseg0_by_default():
    phys = PhysicalMemory()
    ram = mmap.mmap(-1, 1 << 20)
    code = assemble("lui $t0, 0x8000\n lw $t1, 0x40($t0)\n", 0x00001000)
    phys.attach(0, ram)
    ram[0x1000 : 0x1000 + len(code)] = code
    cpu = Cpu(phys)
    # map useg page 0x1000 with a global TLB entry so user code can be fetched
    cpu.tlb_write(Ctx.ROOT, 0, 0x00000000, 0, (0 << 6) | 0x7 | (3 << 3), (1 << 6) | 0x7 | (3 << 3))
    cpu.cp0_set_raw(Ctx.ROOT, *reg(Cp0.STATUS), 0x10)
    cpu.pc = 0x1000
    assert cpu.run(100) == Stop.ROOT_EXCEPTION
    assert exc_code(cpu) == ExcCode.ADEL
    assert cpu.cp0_read(Ctx.ROOT, *reg(Cp0.BADVADDR)) == 0x80000040


def test_segmentation_control_makes_kseg0_mapped_and_user_accessible():
    phys = PhysicalMemory()
    ram = mmap.mmap(-1, 1 << 20)
    code = assemble("lui $t0, 0x8000\n lw $t1, 0x40($t0)\n", 0x00001000)
    phys.attach(0, ram)
    ram[0x1000 : 0x1000 + len(code)] = code
    cpu = Cpu(phys)
    cpu.tlb_write(Ctx.ROOT, 0, 0x00000000, 0, (0 << 6) | 0x7 | (3 << 3), (1 << 6) | 0x7 | (3 << 3))
    # CFG3 (kseg0, bits 31:16) = AM 3 (MUSK: mapped for user, supervisor and kernel)
    cpu.cp0_set_raw(Ctx.ROOT, *reg(Cp0.SEGCTL1), (0x0030 << 16) | 0x0002)
    cpu.cp0_set_raw(Ctx.ROOT, *reg(Cp0.STATUS), 0x10)
    cpu.pc = 0x1000
    assert cpu.run(100) == Stop.ROOT_EXCEPTION
    assert exc_code(cpu) == ExcCode.TLBL  # mapped now: a TLB miss, not an address error
    assert cpu.cp0_read(Ctx.ROOT, *reg(Cp0.BADVADDR)) == 0x80000040
    # give it a mapping: kseg0 page -> physical 0x5000, readable by user mode
    ram[0x5040:0x5044] = (0xDEADBEEF).to_bytes(4, "little")
    cpu.tlb_write(Ctx.ROOT, 1, 0x80000000, 0, (5 << 6) | 0x7 | (3 << 3), 0)
    cpu.cp0_set_raw(Ctx.ROOT, *reg(Cp0.STATUS), 0x10)
    cpu.pc = 0x1004
    cpu.set_gpr(8, 0x80000000)
    cpu.run(1)
    assert cpu.get_gpr(9) == 0xDEADBEEF


def test_asid_separates_non_global_entries():
    phys = PhysicalMemory()
    ram = mmap.mmap(-1, 1 << 20)
    phys.attach(0, ram)
    code = assemble("lw $t1, 0($t0)\n", 0x00001000)
    ram[0x1000 : 0x1000 + len(code)] = code
    ram[0x3000:0x3004] = (0x11111111).to_bytes(4, "little")
    cpu = Cpu(phys)
    cpu.tlb_write(Ctx.ROOT, 0, 0x00000000, 0, 0x7 | (3 << 3), (1 << 6) | 0x7 | (3 << 3))  # code, global
    # data page 0x00400000 -> physical 0x3000, only for ASID 5 (G clear)
    cpu.tlb_write(Ctx.ROOT, 1, 0x00400000 | 5, 0, (3 << 6) | 0x6 | (3 << 3), 0)
    for asid, expect_fault in ((5, False), (6, True)):
        cpu.cp0_set_raw(Ctx.ROOT, *reg(Cp0.ENTRYHI), asid)
        cpu.cp0_set_raw(Ctx.ROOT, *reg(Cp0.STATUS), 0x10)
        cpu.pc = 0x1000
        cpu.set_gpr(8, 0x00400000)
        cpu.set_gpr(9, 0)
        stop = cpu.run(1)
        if expect_fault:
            assert stop == Stop.ROOT_EXCEPTION and exc_code(cpu) == ExcCode.TLBL
        else:
            assert cpu.get_gpr(9) == 0x11111111


@pytest.mark.parametrize(
    ("pagemask", "size"),
    [(0x0000, 4 << 10), (0x6000, 16 << 10), (0x1FE000, 1 << 20), (0x1FFE000, 16 << 20)],
)
def test_variable_page_sizes_translate_both_halves(pagemask, size):
    phys = PhysicalMemory()
    ram = mmap.mmap(-1, 64 << 20)
    phys.attach(0, ram)
    cpu = Cpu(phys)
    even_pa, odd_pa = 2 * size, 4 * size
    lo = lambda pa: ((pa >> 12) << 6) | 0x6 | 1  # noqa: E731 - V, D, G
    cpu.tlb_write(Ctx.ROOT, 0, 0x40000000, pagemask, lo(even_pa), lo(odd_pa))
    cpu.cp0_set_raw(Ctx.ROOT, *reg(Cp0.STATUS), 0)  # kernel, ERL clear: useg is mapped
    assert cpu.translate(0x40000000 + 0x123) == even_pa + 0x123
    assert cpu.translate(0x40000000 + size + 0x456) == odd_pa + 0x456
    assert cpu.translate(0x40000000 + 2 * size) is None  # beyond the pair


def test_guest_context_is_separate_from_root():
    cpu, _ = boot("wait\n nop\n")
    cpu.cp0_write(Ctx.GUEST, 31, 2, 0x1234)  # guest KScratch1
    assert cpu.cp0_read(Ctx.ROOT, 31, 2) == 0
    assert cpu.cp0_read(Ctx.GUEST, 31, 2) == 0x1234
    cpu.tlb_write(Ctx.GUEST, 3, 0x1000_0000, 0, 0x47, 0x87)
    assert cpu.tlb_read(Ctx.ROOT, 3)[0] != 0x1000_0000
    assert cpu.tlb_read(Ctx.GUEST, 3)[:2] == (0x1000_0000, 0)


@pytest.mark.parametrize("insn", ["lwl", "lwr", "swl", "swr"])
def test_partial_word_access_faults_report_the_effective_address(insn):
    phys = PhysicalMemory()
    ram = mmap.mmap(-1, 1 << 20)
    phys.attach(0, ram)
    code = assemble(f"{insn} $t1, 0($t0)\n", 0x00001000)
    ram[0x1000 : 0x1000 + len(code)] = code
    cpu = Cpu(phys)
    cpu.tlb_write(Ctx.ROOT, 0, 0x00000000, 0, 0x7 | (3 << 3), (1 << 6) | 0x7 | (3 << 3))
    cpu.cp0_set_raw(Ctx.ROOT, *reg(Cp0.STATUS), 0)  # kernel mode, ERL clear: useg mapped
    cpu.pc = 0x1000
    cpu.set_gpr(8, 0x00400003)  # unmapped page, unaligned
    assert cpu.run(1) == Stop.ROOT_EXCEPTION
    assert exc_code(cpu) == (ExcCode.TLBS if insn.startswith("s") else ExcCode.TLBL)
    assert cpu.cp0_read(Ctx.ROOT, *reg(Cp0.BADVADDR)) == 0x00400003


def test_a_store_into_the_page_being_executed_changes_the_next_instructions():
    # the core caches the host address of the page it fetches from, never instruction words
    cpu, _ = boot(
        "la $t0, 1f\n lw $t1, 2f\n sw $t1, 0($t0)\n"  # replace the addiu below with the word at 2f
        "1: addiu $t2, $zero, 1\n wait\n nop\n"
        "2: addiu $t2, $zero, 7\n"
    )
    assert cpu.run(1000) == Stop.ROOT_WAIT
    assert cpu.get_gpr(10) == 7


def test_an_instruction_rewritten_in_memory_between_runs_is_executed():
    # what a trap-and-emulate hypervisor does when it patches guest code
    phys = PhysicalMemory()
    rom = mmap.mmap(-1, 0x10000)
    phys.attach(0x1FC00000, rom)
    code = assemble("addiu $t0, $t0, 1\n wait\n nop\n", RESET)
    rom[: len(code)] = code
    cpu = Cpu(phys)
    assert cpu.run(1000) == Stop.ROOT_WAIT
    assert cpu.get_gpr(8) == 1
    rom[0:4] = assemble("addiu $t0, $t0, 5\n", RESET)[:4]
    cpu.pc = RESET
    assert cpu.run(1000) == Stop.ROOT_WAIT
    assert cpu.get_gpr(8) == 6
