"""Dynamic binary translation of hot guest blocks to host code, through LLVM.

This is part of the simulated *hardware*, like QEMU's TCG is part of QEMU's
CPU: the interpreter loop in `cpu.pyx` counts how often each block start
runs, and when one gets hot it asks the translation service
(kvmpy/sim/translate.py: cache, batching, background thread, LLVM, chaining)
for host code. This module is the service's MIPS front end: how far a block
reaches, and the LLVM IR of its host function.
A block is straight-line guest code from its first instruction up to and
including the delay slot of the first branch or jump, cut short before
anything this module does not translate (CP0, ll/sc, syscall, cache...), at
the end of its 4 KiB page, or after `MAX_BLOCK_INSNS`.

The contract with the interpreter (mirrored by `JitCtx` in cpu.pyx):

* A compiled block is `int64 block(JitCtx*, int64 done_before)`. It returns
  how many guest instructions it (and the blocks it chained to) executed, on
  top of `done_before`, and leaves in the context the PC to go on at, the
  one after it, the last instruction word executed and an exit kind:
  `EXIT_CHAIN` (a block boundary: look up the next block), `EXIT_DELAY_SLOT`
  (go on by interpreting the delay slot at `pc`, with `npc` the branch's
  target), `EXIT_INTERPRET` (interpret the instruction at `pc`: a micro-TLB
  miss, a misaligned access, an overflow, a taken trap or an instruction
  that is not translated) and `EXIT_STALE` (the guest's code at this address
  is no longer what was translated: nothing executed; translate again).
* A block never raises an exception and never changes state before an exit
  that hands an instruction to the interpreter: that instruction then runs
  in the interpreter from scratch, exceptions and all. So exceptions stay
  precise, including in delay slots (Cause.BD and EPC come out as the
  interpreter computes them).
* Loads and stores use the interpreter's micro-TLB (`JitCtx.ut`, the set of
  the current mode) and nothing else: a miss is an `EXIT_INTERPRET`.
* Before running, a block compares its guest code words with the ones it was
  translated from (`JitCtx.code` is their host address), so code the guest
  (or the hypervisor's rewriting, or a DMA) changed is never run stale.
* A block whose last branch leads back to its own start loops inside the
  host code while `JitCtx.left` allows another full pass, and a block whose
  successor on the same page has a translation tail-calls it (chaining), so
  hot loops do not go through the interpreter's dispatch at all.

The service caches translations by guest virtual address and code words
and is shared process-wide (`shared_translator()`): a second vCPU or VM
running the same code gets the same host function without a new compile.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llvmlite import ir

from kvmpy.sim.translate import CompiledBlock, Deliver, Shared, Translator

MAX_BLOCK_INSNS = 64
PAGE_SIZE = 4096

# JitCtx field offsets (bytes): must match `cdef struct JitCtx` in cpu.pyx;
# check_ctx_layout() compares them with the CPU's when a Translator starts.
CTX_GPR = 0       # uint32_t* : the 32 GPRs
CTX_UT = 8        # UtEntry*  : micro-TLB set of the current mode
CTX_CODE = 16     # uint64_t  : host address of the block's first instruction
CTX_LEFT = 24     # int64_t   : instructions the block may execute in all
CTX_HI = 32       # uint32_t  : HI (in and out)
CTX_LO = 36       # uint32_t  : LO (in and out)
CTX_PC = 40       # uint32_t  : out: where to go on
CTX_NPC = 44      # uint32_t  : out: the PC after that
CTX_INSN = 48     # uint32_t  : out: the last instruction word executed
CTX_EXIT = 52     # int32_t   : out: EXIT_*
CTX_SIZE = 56

EXIT_CHAIN = 0
EXIT_DELAY_SLOT = 1
EXIT_INTERPRET = 2
EXIT_STALE = 3

# micro-TLB entry: uint32 rtag, uint32 wtag, uint64 off; the set index is
# bits 12..21 of the virtual address (UT_BITS = 10 in cpu.pyx)
UT_INDEX_MASK_SCALED = ((1 << 10) - 1) << 4

I32 = ir.IntType(32)
I64 = ir.IntType(64)
I8 = ir.IntType(8)
I16 = ir.IntType(16)
I1 = ir.IntType(1)

# a translated block: int64 block(JitCtx* ctx, int64 instructions executed before it by
# blocks chained to it); returns the instructions executed in all
BLOCK_FN_TYPE = ir.FunctionType(I64, [I8.as_pointer(), I64])


def _sext16(word: int) -> int:
    v = word & 0xFFFF
    return v - 0x10000 if v & 0x8000 else v


# ---------------------------------------------------------------- decoding
def _fields(word: int) -> tuple[int, int, int, int, int, int]:
    """(op, rs, rt, rd, sa, function) of an instruction word."""
    return (word >> 26, (word >> 21) & 31, (word >> 16) & 31, (word >> 11) & 31,
            (word >> 6) & 31, word & 63)


_SPECIAL_ALU = {0, 3, 4, 7, 10, 11, 15, 16, 17, 18, 19, 24, 25, 26, 27,
                32, 33, 34, 35, 36, 37, 38, 39, 42, 43, 48, 49, 50, 51, 52, 54}
_REGIMM_BRANCH = {0, 1, 2, 3, 16, 17, 18, 19}
_REGIMM_TRAP = {8, 9, 10, 11, 12, 14}
# the condition of a trap, by the low 3 bits its REGIMM rt and SPECIAL function share
_TRAP_TESTS = {0: "sge", 1: "uge", 2: "slt", 3: "ult", 4: "eq", 6: "ne"}
_IMM_ALU = {8, 9, 10, 11, 12, 13, 14, 15}
_LOADS = {32, 33, 34, 35, 36, 37, 38}
_STORES = {40, 41, 42, 43, 46}
_BRANCHES = {2, 3, 4, 5, 6, 7, 20, 21, 22, 23}


def is_branch(word: int) -> bool:
    """Whether the word is a branch or jump this module translates (it has a delay slot)."""
    op, rs, rt, _rd, _sa, fn = _fields(word)
    if op == 0:
        return fn in (8, 9)
    if op == 1:
        return rt in _REGIMM_BRANCH
    return op in _BRANCHES


def is_translatable(word: int) -> bool:
    """Whether the translator emits host code for this instruction word.

    The set is the interpreter's fast paths: the unprivileged integer ISA
    minus ll/sc (they touch LLAddr) and everything that always traps.
    """
    op, rs, rt, rd, sa, fn = _fields(word)
    if op == 0:
        if fn in (8, 9) or fn in _SPECIAL_ALU:
            return True
        if fn == 2:
            return rs in (0, 1)
        if fn == 6:
            return sa in (0, 1)
        return False
    if op == 1:
        return rt in _REGIMM_BRANCH or rt in _REGIMM_TRAP or rt == 31
    if op in _BRANCHES or op in _IMM_ALU or op in _LOADS or op in _STORES or op == 51:
        return True
    if op == 28:
        return fn in (0, 1, 2, 4, 5, 32, 33)
    if op == 31:
        if fn == 0:
            return True
        if fn == 4:
            return rd >= sa
        if fn == 32:
            return sa in (2, 16, 24)
    return False


@dataclass(frozen=True)
class BlockShape:
    """What a block covers: its instruction words, from `vpc` on."""

    vpc: int
    words: tuple[int, ...]
    ends_in_branch: bool       # the last two words are a branch and its delay slot
    stop_before_untranslated: bool   # the word after the block is not translated

    @property
    def insn_count(self) -> int:
        return len(self.words)


def block_shape(vpc: int, code: bytes) -> BlockShape | None:
    """Decide how far a block starting at `vpc` reaches; `code` runs to the page's end.

    None when not even the first instruction can be translated.
    """
    n_avail = min(len(code) // 4, (PAGE_SIZE - (vpc & (PAGE_SIZE - 1))) // 4)
    words: list[int] = []
    i = 0
    while i < n_avail and len(words) < MAX_BLOCK_INSNS:
        word = int.from_bytes(code[4 * i:4 * i + 4], "little")
        if not is_translatable(word):
            return _shape(vpc, words, False, True)
        if is_branch(word):
            # the delay slot must be on this page, translatable and not a branch
            if i + 1 >= n_avail or len(words) + 2 > MAX_BLOCK_INSNS:
                return _shape(vpc, words, False, False)
            slot = int.from_bytes(code[4 * i + 4:4 * i + 8], "little")
            if not is_translatable(slot) or is_branch(slot):
                return _shape(vpc, words, False, True)
            words += [word, slot]
            return _shape(vpc, words, True, False)
        words.append(word)
        i += 1
    return _shape(vpc, words, False, False)


def _shape(vpc: int, words: list[int], branch: bool, untranslated: bool) -> BlockShape | None:
    if not words:
        return None
    return BlockShape(vpc, tuple(words), branch, untranslated)


# ---------------------------------------------------------------- code generation
@dataclass
class _Exit:
    """Where a block leaves: the values the context gets."""

    pc: ir.Value
    npc: ir.Value
    insn: int
    kind: int
    executed: int          # instructions of this pass executed before leaving


@dataclass
class _Emitter:
    """Builds the LLVM function of one block."""

    shape: BlockShape
    module: ir.Module
    name: str
    func: ir.Function = field(init=False)
    b: ir.IRBuilder = field(init=False)
    regs: dict[int, ir.AllocaInstr] = field(default_factory=dict)
    written: set[int] = field(default_factory=set)
    hilo_written: bool = False

    def __post_init__(self) -> None:
        self.func = ir.Function(self.module, BLOCK_FN_TYPE, name=self.name)
        self.func.args[0].name = "ctx"
        self.func.args[1].name = "done_before"
        # static successors on this page: a global per target holds the address of
        # its translation once there is one (Translator patches them), 0 before
        self.chain_slots: dict[int, ir.GlobalVariable] = {}
        self.entry = self.func.append_basic_block("entry")
        self.epilogue = self.func.append_basic_block("epilogue")
        self.exits: list[tuple[ir.Block, _Exit]] = []
        self.b = ir.IRBuilder(self.entry)

    # -- context access
    def _ctx_ptr(self, offset: int, ty: ir.Type) -> ir.Value:
        p = self.b.gep(self.func.args[0], [ir.Constant(I64, offset)], inbounds=True)
        return self.b.bitcast(p, ty.as_pointer())

    def _c32(self, v: int) -> ir.Constant:
        return ir.Constant(I32, v & 0xFFFFFFFF)

    def reg(self, r: int) -> ir.Value:
        if r == 0:
            return self._c32(0)
        return self.b.load(self.regs[r])

    def set_reg(self, r: int, v: ir.Value) -> None:
        if r != 0:
            self.b.store(v, self.regs[r])
            self.written.add(r)

    def set_hilo(self, hi: ir.Value, lo: ir.Value) -> None:
        self.b.store(hi, self.hi)
        self.b.store(lo, self.lo)
        self.hilo_written = True

    # -- the function
    def build(self) -> None:
        b = self.b
        self.gpr = b.bitcast(b.load(self._ctx_ptr(CTX_GPR, I8.as_pointer())), I32.as_pointer())
        self.ut = b.load(self._ctx_ptr(CTX_UT, I8.as_pointer()))
        self.code = b.load(self._ctx_ptr(CTX_CODE, I64))
        self.left = b.load(self._ctx_ptr(CTX_LEFT, I64))
        done_before = self.func.args[1]
        self.done = b.alloca(I64, name="done")
        b.store(done_before, self.done)
        # every register a field of some word names (a superset of those used), and the link register
        used = {31}
        for word in self.shape.words:
            used |= {(word >> 21) & 31, (word >> 16) & 31, (word >> 11) & 31}
        used.discard(0)
        for r in sorted(used):
            self.regs[r] = b.alloca(I32, name=f"r{r}")
        for r in sorted(used):
            gp = b.gep(self.gpr, [ir.Constant(I32, r)], inbounds=True)
            b.store(b.load(gp), self.regs[r])
        self.hi = b.alloca(I32, name="hi")
        self.lo = b.alloca(I32, name="lo")
        b.store(b.load(self._ctx_ptr(CTX_HI, I32)), self.hi)
        b.store(b.load(self._ctx_ptr(CTX_LO, I32)), self.lo)
        # (allocas above, in the entry block, so that SROA makes them SSA values)
        # reached by chaining with too little of the budget left: hand back at the start
        vpc = self.shape.vpc
        decline = self.func.append_basic_block("decline")
        head = self.func.append_basic_block("head")
        room = b.icmp_signed(">=", b.sub(self.left, done_before), ir.Constant(I64, self.shape.insn_count))
        b.cbranch(room, head, decline)
        b.position_at_end(decline)
        b.store(self._c32(vpc), self._ctx_ptr(CTX_PC, I32))
        b.store(self._c32(vpc + 4), self._ctx_ptr(CTX_NPC, I32))
        b.store(self._c32(0), self._ctx_ptr(CTX_INSN, I32))
        b.store(ir.Constant(I32, EXIT_CHAIN), self._ctx_ptr(CTX_EXIT, I32))
        b.ret(done_before)
        b.position_at_end(head)
        self.head = head
        self._emit_code_check()
        words = self.shape.words
        n = len(words)
        if self.shape.ends_in_branch:
            for i in range(n - 2):
                self._emit_insn(i, vpc + 4 * i, words[i])
            self._emit_branch(n - 2, vpc + 4 * (n - 2), words[n - 2], words[n - 1])
        else:
            for i in range(n):
                self._emit_insn(i, vpc + 4 * i, words[i])
            end = vpc + 4 * n
            kind = EXIT_INTERPRET if self.shape.stop_before_untranslated else EXIT_CHAIN
            if kind == EXIT_CHAIN:
                self.chain_to(end)
            self._leave(_Exit(self._c32(end), self._c32(end + 4), words[-1], kind, n))
        self._emit_epilogue()

    def _emit_code_check(self) -> None:
        """Leave with EXIT_STALE unless the guest's code still is what was translated."""
        b = self.b
        words = self.shape.words
        stale = self.func.append_basic_block("stale")
        i = 0
        while i < len(words):
            addr = b.add(self.code, ir.Constant(I64, 4 * i))
            if i + 1 < len(words):
                v = b.load(b.inttoptr(addr, I64.as_pointer()), align=4)
                expect = ir.Constant(I64, words[i] | (words[i + 1] << 32))
                i += 2
            else:
                v = b.load(b.inttoptr(addr, I32.as_pointer()), align=4)
                expect = self._c32(words[i])
                i += 1
            ok = self.func.append_basic_block("code_ok")
            b.cbranch(b.icmp_unsigned("==", v, expect), ok, stale)
            b.position_at_end(ok)
        cont = b.block
        b.position_at_end(stale)
        vpc = self.shape.vpc
        self._leave(_Exit(self._c32(vpc), self._c32(vpc + 4), 0, EXIT_STALE, 0))
        b.position_at_end(cont)

    def _leave(self, ex: _Exit) -> None:
        """Leave the block with `ex` (terminates the current basic block).

        Every exit goes through one epilogue, emitted last: it writes back
        every register the block writes anywhere, because after a pass
        through the loop to the start, registers written further down were
        changed too.
        """
        self.exits.append((self.b.block, ex))
        self.b.branch(self.epilogue)

    def _emit_epilogue(self) -> None:
        b = self.b
        b.position_at_end(self.epilogue)
        incoming = {"pc": b.phi(I32), "npc": b.phi(I32), "insn": b.phi(I32), "kind": b.phi(I32),
                    "executed": b.phi(I64)}
        for block, ex in self.exits:
            incoming["pc"].add_incoming(ex.pc, block)
            incoming["npc"].add_incoming(ex.npc, block)
            incoming["insn"].add_incoming(self._c32(ex.insn), block)
            incoming["kind"].add_incoming(ir.Constant(I32, ex.kind), block)
            incoming["executed"].add_incoming(ir.Constant(I64, ex.executed), block)
        for r in sorted(self.written):
            gp = b.gep(self.gpr, [ir.Constant(I32, r)], inbounds=True)
            b.store(b.load(self.regs[r]), gp)
        if self.hilo_written:
            b.store(b.load(self.hi), self._ctx_ptr(CTX_HI, I32))
            b.store(b.load(self.lo), self._ctx_ptr(CTX_LO, I32))
        b.store(incoming["pc"], self._ctx_ptr(CTX_PC, I32))
        b.store(incoming["npc"], self._ctx_ptr(CTX_NPC, I32))
        b.store(incoming["insn"], self._ctx_ptr(CTX_INSN, I32))
        b.store(incoming["kind"], self._ctx_ptr(CTX_EXIT, I32))
        total = b.add(b.load(self.done), incoming["executed"])
        pc = incoming["pc"]
        # chaining: a successor on this page that has a translation runs next
        # without going back to the interpreter loop
        next_fn: ir.Value = ir.Constant(I64, 0)
        for target, slot in sorted(self.chain_slots.items()):
            next_fn = b.select(b.icmp_unsigned("==", pc, self._c32(target)), b.load(slot), next_fn)
        if self.chain_slots:
            chained = self.func.append_basic_block("chain")
            plain = self.func.append_basic_block("return")
            go = b.and_(b.icmp_unsigned("==", incoming["kind"], ir.Constant(I32, EXIT_CHAIN)),
                        b.icmp_unsigned("!=", next_fn, ir.Constant(I64, 0)))
            b.cbranch(go, chained, plain)
            b.position_at_end(chained)
            delta = b.sext(b.sub(pc, self._c32(self.shape.vpc)), I64)
            b.store(b.add(self.code, delta), self._ctx_ptr(CTX_CODE, I64))
            callee = b.inttoptr(next_fn, BLOCK_FN_TYPE.as_pointer())
            b.ret(b.call(callee, [self.func.args[0], total], tail="musttail"))
            b.position_at_end(plain)
        b.ret(total)

    def chain_to(self, target: int) -> None:
        """Note a static successor; on this page it can be chained to.

        Not the block's own start: the loop back to it already runs while the
        budget allows a pass, and a chained call would decline on the same test.
        """
        if (target ^ self.shape.vpc) & ~(PAGE_SIZE - 1) or target in self.chain_slots:
            return
        if target == self.shape.vpc:
            return
        slot = ir.GlobalVariable(self.module, I64, name=f"{self.name}_to_{target:08x}")
        slot.initializer = ir.Constant(I64, 0)
        slot.linkage = "internal"
        self.chain_slots[target] = slot

    def _side_exit(self, cond_ok: ir.Value, ex: _Exit) -> None:
        """Go on when `cond_ok`, else leave with `ex` (nothing of this instruction done)."""
        b = self.b
        ok = self.func.append_basic_block("ok")
        out = self.func.append_basic_block("exit")
        b.cbranch(cond_ok, ok, out, )
        b.position_at_end(out)
        self._leave(ex)
        b.position_at_end(ok)

    def _interpret_exit(self, i: int, addr: int, prev_word: int) -> _Exit:
        return _Exit(self._c32(addr), self._c32(addr + 4), prev_word, EXIT_INTERPRET, i)

    # -- memory
    def _host_addr(self, va: ir.Value, mask: int, store: bool, ex: _Exit) -> ir.Value:
        """Host address of guest virtual address `va` through the micro-TLB, or a side exit."""
        b = self.b
        scaled = b.and_(b.lshr(va, self._c32(8)), self._c32(UT_INDEX_MASK_SCALED))
        entry = b.gep(self.ut, [b.zext(scaled, I64)], inbounds=True)
        tag_p = b.bitcast(b.gep(entry, [ir.Constant(I64, 4 if store else 0)], inbounds=True),
                          I32.as_pointer())
        tag = b.load(tag_p, align=4)
        self._side_exit(b.icmp_unsigned("==", b.and_(va, self._c32(mask)), tag), ex)
        off_p = b.bitcast(b.gep(entry, [ir.Constant(I64, 8)], inbounds=True), I64.as_pointer())
        return b.add(b.zext(va, I64), b.load(off_p, align=8))

    def _mem(self, host: ir.Value, ty: ir.Type) -> ir.Value:
        return self.b.inttoptr(host, ty.as_pointer())

    # Guest memory accesses are monotonic atomics: on x86 plain moves, but
    # LLVM may not merge them or hoist a load out of a loop, so a guest
    # spinning on a flag another vCPU (or a device) sets sees the change.
    def _load(self, host: ir.Value, ty: ir.Type) -> ir.Value:
        return self.b.load_atomic(self._mem(host, ty), "monotonic", ty.width // 8)

    def _store(self, value: ir.Value, host: ir.Value, ty: ir.Type) -> None:
        self.b.store_atomic(value, self._mem(host, ty), "monotonic", ty.width // 8)

    # -- instructions
    def _emit_insn(self, i: int, addr: int, word: int, prev_word: int | None = None,
                   ex: _Exit | None = None) -> None:
        """Emit one non-branch instruction; `ex` is where it leaves on a side exit."""
        b = self.b
        if prev_word is None:
            prev_word = self.shape.words[i - 1] if i > 0 else 0
        if ex is None:
            ex = self._interpret_exit(i, addr, prev_word)
        op, rs, rt, rd, sa, fn = _fields(word)
        imm = _sext16(word)
        c = self._c32
        if op == 0:
            self._emit_special(word, rs, rt, rd, sa, fn, ex)
        elif op == 1:
            if rt == 31:       # synci: the caches are coherent here
                return
            self._emit_trap(rt - 8, self.reg(rs), c(imm), ex)   # tgei tgeiu tlti tltiu teqi tnei
        elif op == 8:          # addi
            s = self.reg(rs)
            t = b.add(s, c(imm))
            self._set_unless_overflow(rt, t, b.and_(b.xor(s, t), b.xor(c(imm), t)), ex)
        elif op == 9:
            self.set_reg(rt, b.add(self.reg(rs), c(imm)))
        elif op == 10:
            self.set_reg(rt, b.zext(b.icmp_signed("<", self.reg(rs), c(imm)), I32))
        elif op == 11:
            self.set_reg(rt, b.zext(b.icmp_unsigned("<", self.reg(rs), c(imm)), I32))
        elif op == 12:
            self.set_reg(rt, b.and_(self.reg(rs), c(word & 0xFFFF)))
        elif op == 13:
            self.set_reg(rt, b.or_(self.reg(rs), c(word & 0xFFFF)))
        elif op == 14:
            self.set_reg(rt, b.xor(self.reg(rs), c(word & 0xFFFF)))
        elif op == 15:
            self.set_reg(rt, c(word << 16))
        elif op == 28:
            self._emit_special2(rs, rt, rd, fn)
        elif op == 31:
            self._emit_special3(rs, rt, rd, sa, fn)
        elif op == 51:         # pref
            return
        elif op in _LOADS:
            self._emit_load(op, rs, rt, imm, ex)
        elif op in _STORES:
            self._emit_store(op, rs, rt, imm, ex)
        else:  # pragma: no cover - is_translatable() and this method disagree
            raise AssertionError(f"untranslatable word {word:#010x}")

    def _set_unless_overflow(self, dest: int, result: ir.Value, overflow_sign: ir.Value, ex: _Exit) -> None:
        """Write `result` unless bit 31 of `overflow_sign` says it overflowed: then leave
        for the interpreter, which raises the Integer Overflow exception."""
        b = self.b
        no_overflow = b.icmp_unsigned("==", b.lshr(overflow_sign, self._c32(31)), self._c32(0))
        self._side_exit(no_overflow, ex)
        self.set_reg(dest, result)

    def _emit_trap(self, kind: int, a: ir.Value, c: ir.Value, ex: _Exit) -> None:
        """A trap: leave for the interpreter (which raises it) when it is taken."""
        taken = self._icmp(_TRAP_TESTS[kind], a, c)
        self._side_exit(self.b.not_(taken), ex)

    def _icmp(self, how: str, a: ir.Value, c: ir.Value) -> ir.Value:
        b = self.b
        if how in ("sge", "slt"):
            return b.icmp_signed(">=" if how == "sge" else "<", a, c)
        if how in ("uge", "ult"):
            return b.icmp_unsigned(">=" if how == "uge" else "<", a, c)
        return b.icmp_unsigned("==" if how == "eq" else "!=", a, c)

    def _emit_special(self, word: int, rs: int, rt: int, rd: int, sa: int, fn: int, ex: _Exit) -> None:
        b = self.b
        c = self._c32
        if fn == 0:
            self.set_reg(rd, b.shl(self.reg(rt), c(sa)))
        elif fn == 2:
            v = self.reg(rt)
            if rs == 0:
                self.set_reg(rd, b.lshr(v, c(sa)))
            else:
                self.set_reg(rd, b.or_(b.lshr(v, c(sa)), b.shl(v, c((32 - sa) & 31))))
        elif fn == 3:
            self.set_reg(rd, b.ashr(self.reg(rt), c(sa)))
        elif fn == 4:
            self.set_reg(rd, b.shl(self.reg(rt), b.and_(self.reg(rs), c(31))))
        elif fn == 6:
            v = self.reg(rt)
            t = b.and_(self.reg(rs), c(31))
            if sa == 0:
                self.set_reg(rd, b.lshr(v, t))
            else:
                self.set_reg(rd, b.or_(b.lshr(v, t), b.shl(v, b.and_(b.sub(c(32), t), c(31)))))
        elif fn == 7:
            self.set_reg(rd, b.ashr(self.reg(rt), b.and_(self.reg(rs), c(31))))
        elif fn in (10, 11):   # movz, movn
            t = self.reg(rt)
            cond = b.icmp_unsigned("==" if fn == 10 else "!=", t, c(0))
            if rd != 0:
                self.set_reg(rd, b.select(cond, self.reg(rs), self.reg(rd)))
        elif fn == 15:         # sync
            return
        elif fn == 16:
            self.set_reg(rd, b.load(self.hi))
        elif fn == 17:
            self.set_hilo(self.reg(rs), b.load(self.lo))
        elif fn == 18:
            self.set_reg(rd, b.load(self.lo))
        elif fn == 19:
            self.set_hilo(b.load(self.hi), self.reg(rs))
        elif fn in (24, 25):   # mult, multu
            ext = b.sext if fn == 24 else b.zext
            p = b.mul(ext(self.reg(rs), I64), ext(self.reg(rt), I64))
            self.set_hilo(b.trunc(b.lshr(p, ir.Constant(I64, 32)), I32), b.trunc(p, I32))
        elif fn == 26:         # div: x/0 leaves HI/LO; INT_MIN/-1 gives LO=INT_MIN, HI=0
            x, y = self.reg(rs), self.reg(rt)
            zero = b.icmp_unsigned("==", y, c(0))
            ovf = b.and_(b.icmp_unsigned("==", x, c(0x80000000)), b.icmp_unsigned("==", y, c(-1)))
            safe = b.select(b.or_(zero, ovf), c(1), y)
            q, r = b.sdiv(x, safe), b.srem(x, safe)
            self.set_hilo(b.select(zero, b.load(self.hi), r), b.select(zero, b.load(self.lo), q))
        elif fn == 27:         # divu
            x, y = self.reg(rs), self.reg(rt)
            zero = b.icmp_unsigned("==", y, c(0))
            safe = b.select(zero, c(1), y)
            q, r = b.udiv(x, safe), b.urem(x, safe)
            self.set_hilo(b.select(zero, b.load(self.hi), r), b.select(zero, b.load(self.lo), q))
        elif fn == 32:         # add
            x, y = self.reg(rs), self.reg(rt)
            t = b.add(x, y)
            self._set_unless_overflow(rd, t, b.and_(b.xor(x, t), b.xor(y, t)), ex)
        elif fn == 33:
            self.set_reg(rd, b.add(self.reg(rs), self.reg(rt)))
        elif fn == 34:         # sub
            x, y = self.reg(rs), self.reg(rt)
            t = b.sub(x, y)
            self._set_unless_overflow(rd, t, b.and_(b.xor(x, y), b.xor(x, t)), ex)
        elif fn == 35:
            self.set_reg(rd, b.sub(self.reg(rs), self.reg(rt)))
        elif fn == 36:
            self.set_reg(rd, b.and_(self.reg(rs), self.reg(rt)))
        elif fn == 37:
            self.set_reg(rd, b.or_(self.reg(rs), self.reg(rt)))
        elif fn == 38:
            self.set_reg(rd, b.xor(self.reg(rs), self.reg(rt)))
        elif fn == 39:
            self.set_reg(rd, b.not_(b.or_(self.reg(rs), self.reg(rt))))
        elif fn == 42:
            self.set_reg(rd, b.zext(b.icmp_signed("<", self.reg(rs), self.reg(rt)), I32))
        elif fn == 43:
            self.set_reg(rd, b.zext(b.icmp_unsigned("<", self.reg(rs), self.reg(rt)), I32))
        elif fn in (48, 49, 50, 51, 52, 54):   # tge tgeu tlt tltu teq tne
            self._emit_trap(fn - 48, self.reg(rs), self.reg(rt), ex)
        else:  # pragma: no cover
            raise AssertionError(f"untranslatable SPECIAL word {word:#010x}")

    def _emit_special2(self, rs: int, rt: int, rd: int, fn: int) -> None:
        b = self.b
        if fn == 2:
            self.set_reg(rd, b.mul(self.reg(rs), self.reg(rt)))
        elif fn in (32, 33):
            v = self.reg(rs)
            if fn == 33:
                v = b.not_(v)
            self.set_reg(rd, b.ctlz(v, ir.Constant(I1, 0)))
        else:                  # madd maddu msub msubu
            ext = b.sext if fn in (0, 4) else b.zext
            p = b.mul(ext(self.reg(rs), I64), ext(self.reg(rt), I64))
            acc = b.or_(b.shl(b.zext(b.load(self.hi), I64), ir.Constant(I64, 32)),
                        b.zext(b.load(self.lo), I64))
            acc = b.add(acc, p) if fn in (0, 1) else b.sub(acc, p)
            self.set_hilo(b.trunc(b.lshr(acc, ir.Constant(I64, 32)), I32), b.trunc(acc, I32))

    def _emit_special3(self, rs: int, rt: int, rd: int, sa: int, fn: int) -> None:
        b = self.b
        c = self._c32
        if fn == 0:            # ext: pos=sa, size=rd+1
            self.set_reg(rt, b.and_(b.lshr(self.reg(rs), c(sa)), c(0xFFFFFFFF >> (31 - rd))))
        elif fn == 4:          # ins: lsb=sa, msb=rd
            m = ((0xFFFFFFFF >> (31 - (rd - sa))) << sa) & 0xFFFFFFFF
            self.set_reg(rt, b.or_(b.and_(self.reg(rt), c(~m)), b.and_(b.shl(self.reg(rs), c(sa)), c(m))))
        elif sa == 2:          # wsbh
            v = self.reg(rt)
            self.set_reg(rd, b.or_(b.shl(b.and_(v, c(0x00FF00FF)), c(8)),
                                   b.and_(b.lshr(v, c(8)), c(0x00FF00FF))))
        elif sa == 16:         # seb
            self.set_reg(rd, b.sext(b.trunc(self.reg(rt), I8), I32))
        else:                  # seh
            self.set_reg(rd, b.sext(b.trunc(self.reg(rt), I16), I32))

    def _emit_load(self, op: int, rs: int, rt: int, imm: int, ex: _Exit) -> None:
        b = self.b
        c = self._c32
        va = b.add(self.reg(rs), c(imm))
        if op in (34, 38):     # lwl, lwr: the aligned word holding the address
            host = self._host_addr(va, 0xFFFFF000, False, ex)
            host = b.and_(host, ir.Constant(I64, ~3 & 0xFFFFFFFFFFFFFFFF))
            v = self._load(host, I32)
            shift = b.and_(va, c(3))
            old = self.reg(rt)
            if op == 34:       # lwl: t == 3 loads the whole word
                s = b.mul(b.sub(c(3), shift), c(8))
                keep = b.sub(b.shl(c(1), s), c(1))
                merged = b.or_(b.shl(v, s), b.and_(old, keep))
                self.set_reg(rt, b.select(b.icmp_unsigned("==", shift, c(3)), v, merged))
            else:              # lwr: t == 0 loads the whole word
                s = b.mul(shift, c(8))
                keep = b.not_(b.lshr(c(0xFFFFFFFF), s))
                merged = b.or_(b.lshr(v, s), b.and_(old, keep))
                self.set_reg(rt, b.select(b.icmp_unsigned("==", shift, c(0)), v, merged))
            return
        mask, ty, signed = {32: (0xFFFFF000, I8, True), 36: (0xFFFFF000, I8, False),
                            33: (0xFFFFF001, I16, True), 37: (0xFFFFF001, I16, False),
                            35: (0xFFFFF003, I32, False)}[op]
        host = self._host_addr(va, mask, False, ex)
        v = self._load(host, ty)
        if ty is not I32:
            v = b.sext(v, I32) if signed else b.zext(v, I32)
        self.set_reg(rt, v)

    def _emit_store(self, op: int, rs: int, rt: int, imm: int, ex: _Exit) -> None:
        b = self.b
        c = self._c32
        va = b.add(self.reg(rs), c(imm))
        val = self.reg(rt)
        if op in (42, 46):     # swl, swr: merge into the aligned word
            host = self._host_addr(va, 0xFFFFF000, True, ex)
            host = b.and_(host, ir.Constant(I64, ~3 & 0xFFFFFFFFFFFFFFFF))
            old = self._load(host, I32)
            shift = b.and_(va, c(3))
            if op == 42:       # swl
                s = b.mul(b.sub(c(3), shift), c(8))
                merged = b.or_(b.and_(old, b.not_(b.lshr(c(0xFFFFFFFF), s))), b.lshr(val, s))
                new = b.select(b.icmp_unsigned("==", shift, c(3)), val, merged)
            else:              # swr
                s = b.mul(shift, c(8))
                merged = b.or_(b.and_(old, b.sub(b.shl(c(1), s), c(1))), b.shl(val, s))
                new = b.select(b.icmp_unsigned("==", shift, c(0)), val, merged)
            self._store(new, host, I32)
            return
        mask, ty = {40: (0xFFFFF000, I8), 41: (0xFFFFF001, I16), 43: (0xFFFFF003, I32)}[op]
        host = self._host_addr(va, mask, True, ex)
        if ty is not I32:
            val = b.trunc(val, ty)
        self._store(val, host, ty)

    # -- the closing branch
    def _emit_branch(self, i: int, addr: int, word: int, slot: int) -> None:
        """Branch at index i, its delay slot at i + 1; then leave (or loop to the start)."""
        b = self.b
        c = self._c32
        op, rs, rt, rd, _sa, fn = _fields(word)
        offset_target = (addr + 4 + (_sext16(word) << 2)) & 0xFFFFFFFF
        likely = op in (20, 21, 22, 23) or (op == 1 and rt in (2, 3, 18, 19))
        link_reg = None
        if op == 2 or op == 3:
            taken: ir.Value = ir.Constant(I1, 1)
            target: ir.Value = c(((addr + 4) & 0xF0000000) | ((word & 0x3FFFFFF) << 2))
            if op == 3:
                link_reg = 31
        elif op == 0:          # jr, jalr
            taken = ir.Constant(I1, 1)
            target = self.reg(rs)
            if fn == 9:
                link_reg = rd
        else:
            s = self.reg(rs)
            if op in (4, 20):
                taken = b.icmp_unsigned("==", s, self.reg(rt))
            elif op in (5, 21):
                taken = b.icmp_unsigned("!=", s, self.reg(rt))
            elif op in (6, 22):
                taken = b.icmp_signed("<=", s, c(0))
            elif op in (7, 23):
                taken = b.icmp_signed(">", s, c(0))
            elif rt in (0, 2, 16, 18):
                taken = b.icmp_signed("<", s, c(0))
            else:
                taken = b.icmp_signed(">=", s, c(0))
            if op == 1 and rt >= 16:
                link_reg = 31
            target = c(offset_target)
        if link_reg is not None:   # linked even when not taken
            self.set_reg(link_reg, c(addr + 8))
        fallthrough = c(addr + 8)
        npc = b.select(taken, target, fallthrough) if not isinstance(taken, ir.Constant) else target
        slot_addr = addr + 4
        if likely:
            do_slot = self.func.append_basic_block("likely_taken")
            skip = self.func.append_basic_block("likely_not_taken")
            b.cbranch(taken, do_slot, skip)
            b.position_at_end(skip)
            self.chain_to(addr + 8)
            self._leave(_Exit(fallthrough, c(addr + 12), word, EXIT_CHAIN, i + 1))
            b.position_at_end(do_slot)
            npc = target
        slot_exit = _Exit(c(slot_addr), npc, word, EXIT_DELAY_SLOT, i + 1)
        self._emit_insn(i + 1, slot_addr, slot, prev_word=word, ex=slot_exit)
        n = i + 2
        vpc = self.shape.vpc
        # a block that branches back to its own start runs again while the budget allows
        again = b.icmp_unsigned("==", npc, c(vpc))
        room = b.icmp_signed(">=", b.sub(self.left, b.add(b.load(self.done), ir.Constant(I64, n))),
                             ir.Constant(I64, n))
        loop = self.func.append_basic_block("loop")
        out = self.func.append_basic_block("out")
        b.cbranch(b.and_(again, room), loop, out)
        b.position_at_end(loop)
        b.store(b.add(b.load(self.done), ir.Constant(I64, n)), self.done)
        b.branch(self.head)
        b.position_at_end(out)
        if isinstance(target, ir.Constant):
            self.chain_to(target.constant)
            if not isinstance(taken, ir.Constant):
                self.chain_to(addr + 8)
        self._leave(_Exit(npc, b.add(npc, c(4)), slot, EXIT_CHAIN, n))


# ---------------------------------------------------------------- the front end
class MipsFrontEnd:
    """The MIPS32 front end of the translation service (kvmpy.sim.translate.FrontEnd)."""

    def check(self) -> None:
        check_ctx_layout()

    def shape(self, vpc: int, code: bytes) -> BlockShape | None:
        return block_shape(vpc, code)

    def emit(self, shape: BlockShape, module: ir.Module, name: str) -> dict[int, str]:
        emitter = _Emitter(shape, module, name)
        emitter.build()
        return {target: slot.name for target, slot in emitter.chain_slots.items()}


def check_ctx_layout() -> None:
    """Fail loudly if this module's picture of JitCtx is not the CPU's."""
    from kvmpy.arch.mips.hw.cpu import jit_ctx_layout

    mine = {"gpr": CTX_GPR, "ut": CTX_UT, "code": CTX_CODE, "left": CTX_LEFT, "hi": CTX_HI,
            "lo": CTX_LO, "pc": CTX_PC, "npc": CTX_NPC, "insn": CTX_INSN, "exit": CTX_EXIT,
            "size": CTX_SIZE, "EXIT_CHAIN": EXIT_CHAIN, "EXIT_DELAY_SLOT": EXIT_DELAY_SLOT,
            "EXIT_INTERPRET": EXIT_INTERPRET, "EXIT_STALE": EXIT_STALE}
    theirs = jit_ctx_layout()
    if mine != theirs:
        raise RuntimeError(f"jit: JitCtx layout differs from cpu.pyx: {mine} != {theirs}")


_shared = Shared(lambda: Translator(MipsFrontEnd()))


def shared_translator() -> Translator:
    """The process-wide MIPS translator (created on first use: LLVM is not loaded before)."""
    return _shared.get()


class SharedTranslator:
    """What a CPU is given: the process-wide translator, created at the first hot block.

    So a VM that never gets a block hot never loads LLVM.
    """

    def translate(self, vpc: int, code: bytes) -> CompiledBlock | None:
        return _shared.translate(vpc, code)

    def request(self, vpc: int, code: bytes, deliver: Deliver) -> None:
        _shared.request(vpc, code, deliver)
