"""The block translator (kvmpy/arch/mips/hw/jit.py) against the interpreter.

The interpreter is the reference: every program here runs twice on a bare
core, once interpreted and once with every block start translated as soon as
it has run (threshold 1, translated at once), and the two must end in the
same state: stop reason, PC, registers, HI/LO, instruction count, the
exception registers and memory. The random programs mix every translated
instruction with forward branches (so blocks chain into each other on their
page), loads and stores that miss or are misaligned (side exits to the
interpreter), overflows and taken traps (exceptions from translated code).
"""

from __future__ import annotations

import mmap
import random
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvmpy.arch.mips.hw import jit
from kvmpy.arch.mips.hw.cpu import Cpu
from kvmpy.arch.mips.hw.defs import Cp0, Ctx, ExcCode, Stop
from kvmpy.kvm import CreateVcpuError, JitSettings, Kvm
from kvmpy.sim.physmem import PhysicalMemory
from kvmpy.sim.translate import Translator
from tests.asm import assemble

RESET = 0xBFC00000
DATA_GVA = 0x80001100          # kseg0: physical 0x1100
POOL = [8, 9, 10, 11, 12, 13, 14, 15, 16, 17]   # registers the programs compute in
BASE = 23                      # s7: the data pointer (never written)
COUNTER = 22                   # s6: the loop counter


@pytest.fixture(scope="module")
def translator() -> Translator:
    return jit.shared_translator()


def r_type(op: int, rs: int, rt: int, rd: int, sa: int, fn: int) -> int:
    return (op << 26) | (rs << 21) | (rt << 16) | (rd << 11) | (sa << 6) | fn


def i_type(op: int, rs: int, rt: int, imm: int) -> int:
    return (op << 26) | (rs << 21) | (rt << 16) | (imm & 0xFFFF)


def random_insn(rng: random.Random) -> int:
    """One instruction, nearly always one the translator handles, on POOL registers and the data area."""
    def reg() -> int:
        return rng.choice(POOL)

    kind = rng.randrange(10)
    if rng.random() < 0.04:
        # something the translator leaves to the interpreter: blocks end before it
        return rng.choice([
            i_type(48, BASE, reg(), rng.randrange(8) * 4),      # ll
            i_type(56, BASE, reg(), rng.randrange(8) * 4),      # sc
            0x40006000 | (reg() << 16),                         # mfc0 rt, Status
            0x7C00003B | (reg() << 16) | (0 << 11),             # rdhwr rt, CPUNum
        ])
    if kind < 3:
        common = [33, 35, 36, 37, 38, 39, 42, 43, 4, 6, 7, 10, 11, 24, 25, 26, 27, 16, 17, 18, 19, 0, 2, 3]
        fn = rng.choice(common * 4 + [32, 34, 48, 49, 50, 51, 52, 54])   # + overflow and traps
        sa = rng.randrange(32) if fn in (0, 2, 3) else 0
        rs = reg()
        if fn == 2:
            rs = rng.choice([0, 1])            # srl / rotr
        if fn == 6:
            sa = rng.choice([0, 1])            # srlv / rotrv
        return r_type(0, rs, reg(), reg(), sa, fn)
    if kind < 5:
        op = rng.choice([8, 9, 10, 11, 12, 13, 14, 15])
        imm = rng.choice([rng.randrange(65536), rng.randrange(-8, 8), 0x7FFF, 0x8000])
        return i_type(op, reg() if op != 15 else 0, reg(), imm)
    if kind < 6:
        return r_type(28, reg(), reg(), reg(), 0, rng.choice([0, 1, 2, 4, 5, 32, 33]))
    if kind < 7:
        fn = rng.choice([0, 4, 32])
        if fn == 32:
            return r_type(31, 0, reg(), reg(), rng.choice([2, 16, 24]), 32)
        if fn == 0:
            pos = rng.randrange(32)
            return r_type(31, reg(), reg(), rng.randrange(1, 33 - pos) - 1, pos, 0)
        lsb = rng.randrange(32)
        return r_type(31, reg(), reg(), rng.randrange(lsb, 32), lsb, 4)
    op = rng.choice([32, 33, 34, 35, 36, 37, 38, 40, 41, 42, 43, 46])
    offset = rng.randrange(-16, 16) * 4
    if rng.random() < 0.03:
        offset += rng.randrange(1, 4)          # misaligned: address error from translated code
    elif op in (33, 37, 41):
        offset += rng.choice([0, 2])
    elif op in (32, 36, 40, 34, 38, 42, 46):
        offset += rng.randrange(4)
    return i_type(op, BASE, reg(), offset)


def random_branch(rng: random.Random, ahead: int) -> int:
    reg = rng.choice(POOL + [0])
    op = rng.choice([4, 5, 6, 7, 20, 21, 22, 23, 1])
    if op == 1:        # bltz bgez bltzl bgezl and the linking ones
        return i_type(1, reg, rng.choice([0, 1, 2, 3, 16, 17, 18, 19]), ahead)
    return i_type(op, reg, rng.choice(POOL + [0]) if op in (4, 5, 20, 21) else 0, ahead)


def random_program(seed: int) -> list[int]:
    """Random registers, then a loop of random instructions and forward branches; then wait."""
    rng = random.Random(seed)
    words = []
    for reg in POOL:
        value = rng.getrandbits(32)
        words += [i_type(15, 0, reg, value >> 16), i_type(13, reg, reg, value & 0xFFFF)]
    words += [i_type(15, 0, BASE, DATA_GVA >> 16), i_type(13, BASE, BASE, DATA_GVA & 0xFFFF)]
    words += [i_type(9, 0, COUNTER, rng.randrange(2, 40))]
    loop_start = len(words)
    n = rng.randrange(3, 30)
    previous_was_branch = False
    for i in range(n):
        if rng.random() < 0.12 and i + 2 < n and not previous_was_branch:
            words.append(random_branch(rng, rng.randrange(1, min(6, n - i))))
            previous_was_branch = True
        else:
            words.append(random_insn(rng))
            previous_was_branch = False
    words.append(i_type(9, COUNTER, COUNTER, -1))
    words.append(i_type(5, COUNTER, 0, loop_start - (len(words) + 1)))   # bnez s6, loop
    words.append(random_insn(rng))
    words += [0x42000020, 0]                                            # wait; nop
    return words


def boot(words: list[int]) -> tuple[Cpu, mmap.mmap]:
    cpu, ram, _ = boot_with_phys(words)
    return cpu, ram


def boot_with_phys(words: list[int]) -> tuple[Cpu, mmap.mmap, PhysicalMemory]:
    phys = PhysicalMemory()
    rom = mmap.mmap(-1, 0x10000)
    code = b"".join(w.to_bytes(4, "little") for w in words)
    rom[: len(code)] = code
    ram = mmap.mmap(-1, 1 << 20)
    ram[0x1000:0x1200] = bytes(range(256)) * 2
    phys.attach(0x1FC00000, rom)
    phys.attach(0, ram)
    return Cpu(phys), ram, phys


def final_state(cpu: Cpu, ram: mmap.mmap, stop: Stop) -> tuple:
    return (stop, cpu.pc, [cpu.get_gpr(i) for i in range(32)], cpu.hi, cpu.lo, cpu.icount,
            cpu.cp0_read(Ctx.ROOT, 13, 0), cpu.cp0_read(Ctx.ROOT, 14, 0), cpu.cp0_read(Ctx.ROOT, 8, 0),
            bytes(ram[0x1000:0x1200]))


def run_both(words: list[int], translator: Translator, budget: int = 100_000) -> tuple[tuple, tuple, Cpu]:
    cpu, ram = boot(words)
    interpreted = final_state(cpu, ram, cpu.run(budget))
    cpu, ram = boot(words)
    cpu.enable_jit(translator, threshold=1)
    translated = final_state(cpu, ram, cpu.run(budget))
    return interpreted, translated, cpu


@pytest.mark.parametrize("seed", range(60))
def test_random_programs_end_as_the_interpreter_ends(seed, translator):
    interpreted, translated, _ = run_both(random_program(seed), translator)
    assert translated == interpreted


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(min_value=1000, max_value=2**32))
def test_random_programs_property(seed, translator):
    interpreted, translated, _ = run_both(random_program(seed), translator)
    assert translated == interpreted


def test_the_random_programs_really_run_translated(translator):
    # the differential tests above prove nothing if the blocks stay interpreted
    ran = 0
    for seed in range(20):
        _, _, cpu = run_both(random_program(seed), translator)
        ran += cpu.jit_stats()["jit_insns"] > 0
    assert ran >= 15


HOT_LOOP = """
    lui   $s7, 0x8000
    ori   $s7, $s7, 0x1000
    li    $t0, 0
    li    $t1, 3000
1:  lw    $t2, 0($s7)
    addu  $t0, $t0, $t2
    bne   $t0, $zero, 2f
    addiu $t1, $t1, -1
2:  sw    $t0, 4($s7)
    bnez  $t1, 1b
    nop
    wait
    nop
"""


def test_a_hot_loop_runs_translated_and_chained(translator):
    words = [int.from_bytes(b, "little") for b in _chunks(assemble(HOT_LOOP, RESET))]
    interpreted, translated, cpu = run_both(words, translator)
    assert translated == interpreted
    stats = cpu.jit_stats()
    assert stats["jit_insns"] > 0.9 * cpu.icount
    # two blocks per iteration, 3000 iterations: chaining and the loop to the
    # block's own start keep the interpreter loop's calls far below that
    assert stats["jit_entries"] < 600


def _chunks(code: bytes) -> list[bytes]:
    return [code[i:i + 4] for i in range(0, len(code), 4)]


SELF_MODIFYING = """
    lui   $s7, 0xbfc0
    li    $t1, 2000
    li    $t4, 1000
    li    $t0, 0
loop:
    addiu $t0, $t0, 1
    addiu $t1, $t1, -1
    bne   $t1, $t4, 2f
    nop
    lw    $t3, 0x100($s7)     # halfway: copy "addiu $t0, $t0, 5" over the first
    sw    $t3, %lo(loop)($s7) # instruction of the (by now translated) loop
2:  bnez  $t1, loop
    nop
    wait
    nop
    .org 0x100
    addiu $t0, $t0, 5
"""


def test_code_the_guest_rewrites_is_not_run_stale(translator):
    words = [int.from_bytes(b, "little") for b in _chunks(assemble(SELF_MODIFYING, RESET))]
    interpreted, translated, cpu = run_both(words, translator)
    assert translated == interpreted
    assert cpu.get_gpr(8) == 1000 * 1 + 1000 * 5      # the new instruction from iteration 1001 on
    assert cpu.jit_stats()["jit_stale"] >= 1


DELAY_SLOT_FAULT = """
    li    $t1, 100
    lui   $s7, 0x8000
1:  addiu $t1, $t1, -1
    bnez  $t1, 1b
    lw    $t2, 0($s7)         # in the delay slot; faults once s7 leaves RAM
    lui   $s7, 0xa300         # kseg1 -> physical 0x03000000: no RAM: bus error
    li    $t1, 5
    b     1b
    nop
"""


def test_an_exception_in_a_translated_delay_slot_is_precise(translator):
    words = [int.from_bytes(b, "little") for b in _chunks(assemble(DELAY_SLOT_FAULT, RESET))]
    interpreted, translated, cpu = run_both(words, translator)
    assert translated == interpreted
    assert translated[0] == Stop.ROOT_EXCEPTION
    cause = cpu.cp0_read(Ctx.ROOT, *divmod(Cp0.CAUSE, 8))
    assert (cause >> 2) & 0x1F == ExcCode.DBE and cause & 0x80000000   # Cause.BD
    assert cpu.cp0_read(Ctx.ROOT, *divmod(Cp0.EPC, 8)) == RESET + 3 * 4   # the bnez


def test_budgets_stop_at_the_same_instruction_as_interpreted(translator):
    words = [int.from_bytes(b, "little") for b in _chunks(assemble(HOT_LOOP, RESET))]
    for budget in (1, 7, 100, 4097):
        cpu, ram = boot(words)
        plain = final_state(cpu, ram, cpu.run(budget))
        cpu, ram = boot(words)
        cpu.enable_jit(translator, threshold=1)
        assert final_state(cpu, ram, cpu.run(budget)) == plain


def test_background_translation_arrives_and_is_used(translator):
    # long enough (35 M instructions) for the translator thread to deliver
    source = HOT_LOOP.replace("3000", "5000000")
    words = [int.from_bytes(b, "little") for b in _chunks(assemble(source, RESET))]
    cpu, ram = boot(words)
    cpu.enable_jit(translator, threshold=1, background=True)
    stop = Stop.BUDGET
    for _ in range(1000):
        stop = cpu.run(1_000_000)
        if stop != Stop.BUDGET:
            break
    assert stop == Stop.ROOT_WAIT
    assert cpu.get_gpr(9) == 0
    assert cpu.jit_stats()["jit_insns"] > 0


def test_detaching_ram_forgets_translations(translator):
    # translations hold host addresses: when RAM goes away the table is flushed,
    # so the blocks are looked at (and asked for) afresh; a twin CPU that
    # sees no detach runs the same instructions and asks for fewer
    words = [int.from_bytes(b, "little") for b in _chunks(assemble(HOT_LOOP, RESET))]
    twins = [boot_with_phys(words) for _ in range(2)]
    for cpu, _, _ in twins:
        cpu.enable_jit(translator, threshold=1)
        cpu.run(2000)
    phys = twins[1][2]
    phys.attach(0x10000000, mmap.mmap(-1, 0x1000))
    phys.detach(0x10000000)
    for cpu, _, _ in twins:
        cpu.run(2000)
    kept, flushed = (cpu.jit_stats()["jit_requests"] for cpu, _, _ in twins)
    assert flushed > kept           # the loop's block asked for again
    assert twins[0][0].icount == twins[1][0].icount


def test_block_shapes_follow_the_rules():
    nop = 0
    addiu = i_type(9, 8, 8, 1)
    beq = i_type(4, 8, 9, 4)
    mfc0 = 0x40086000                       # not translated
    syscall = 0x0000000C
    words = lambda *ws: b"".join(w.to_bytes(4, "little") for w in ws)   # noqa: E731

    shape = jit.block_shape(0x80000000, words(addiu, addiu, beq, nop, addiu))
    assert shape is not None and shape.insn_count == 4 and shape.ends_in_branch
    shape = jit.block_shape(0x80000000, words(addiu, mfc0, addiu))
    assert shape is not None and shape.insn_count == 1 and shape.stop_before_untranslated
    assert jit.block_shape(0x80000000, words(syscall)) is None
    # a branch whose delay slot is on the next page ends the block before it
    shape = jit.block_shape(0x80000FF8, words(addiu, beq))
    assert shape is not None and shape.insn_count == 1 and not shape.ends_in_branch
    # a branch in a delay slot is not translated
    shape = jit.block_shape(0x80000000, words(addiu, beq, beq, nop))
    assert shape is not None and shape.insn_count == 1
    shape = jit.block_shape(0x80000000, words(*([addiu] * 100)))
    assert shape is not None and shape.insn_count == jit.MAX_BLOCK_INSNS


def test_the_context_layout_is_the_cpus():
    jit.check_ctx_layout()      # raises if jit.py's offsets and cpu.pyx's JitCtx differ


def test_a_vcpu_that_cannot_load_the_translator_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "kvmpy.arch.mips.hw.jit", None)   # import fails as without llvmlite
    with pytest.raises(CreateVcpuError, match="llvmlite.*--no-jit"):
        Kvm().create_vm().create_vcpu(0)
    vcpu = Kvm(jit=JitSettings(enabled=False)).create_vm().create_vcpu(0)
    assert vcpu.stats.jit == {}


def test_jit_settings_reject_a_threshold_below_one():
    with pytest.raises(ValueError, match="at least 1"):
        JitSettings(threshold=0)


def test_the_translator_thread_finishes_its_work_and_stops():
    translator = Translator(jit.MipsFrontEnd())
    delivered = []
    code = b"".join(w.to_bytes(4, "little") for w in (i_type(9, 8, 8, 1), i_type(5, 8, 0, -2), 0))
    translator.request(0x80000000, code, delivered.append)
    translator.stop_worker()
    assert len(delivered) == 1 and delivered[0] is not None and delivered[0].insn_count == 3
    assert not translator._worker.is_alive()
