"""The arch-neutral translation service (kvmpy/sim/translate.py) with a toy front end.

The toy "architecture": a block is its code words; its host function returns
the sum of the words, plus what its chained successor returns when the
service has filled the chain slot. So the results show which translation
ran and whether chaining reached the successor.
"""

from __future__ import annotations

import ctypes
import subprocess
import sys
from dataclasses import dataclass

from llvmlite import ir

from kvmpy.sim.translate import Translator

I64 = ir.IntType(64)
FN = ir.FunctionType(I64, [])


@dataclass(frozen=True)
class ToyShape:
    vpc: int
    words: tuple[int, ...]
    successor: int | None

    @property
    def insn_count(self) -> int:
        return len(self.words)


class ToyFrontEnd:
    def __init__(self) -> None:
        self.checked = 0

    def check(self) -> None:
        self.checked += 1

    def shape(self, vpc: int, code: bytes) -> ToyShape | None:
        words = tuple(code[i] for i in range(0, len(code), 4))
        if not words or words[0] == 0:
            return None
        # the last word, if 0xff, means "then go on at vpc + 0x100"
        successor = vpc + 0x100 if words[-1] == 0xFF else None
        return ToyShape(vpc, words, successor)

    def emit(self, shape: ToyShape, module: ir.Module, name: str) -> dict[int, str]:
        fn = ir.Function(module, FN, name=name)
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        total = ir.Constant(I64, sum(shape.words))
        if shape.successor is None:
            b.ret(total)
            return {}
        slot = ir.GlobalVariable(module, I64, name=f"{name}_to_{shape.successor:08x}")
        slot.initializer = ir.Constant(I64, 0)
        slot.linkage = "internal"
        target = b.load(slot)
        with b.if_else(b.icmp_unsigned("==", target, ir.Constant(I64, 0))) as (alone, chained):
            with alone:
                alone_bb = b.block
            with chained:
                more = b.call(b.inttoptr(target, FN.as_pointer()), [])
                chained_total = b.add(total, more)
                chained_bb = b.block
        phi = b.phi(I64)
        phi.add_incoming(total, alone_bb)
        phi.add_incoming(chained_total, chained_bb)
        b.ret(phi)
        return {shape.successor: slot.name}


def code(*words: int) -> bytes:
    return b"".join(w.to_bytes(4, "little") for w in words)


def call(address: int) -> int:
    return ctypes.CFUNCTYPE(ctypes.c_int64)(address)()


def test_blocks_are_compiled_cached_by_address_and_code_and_chained():
    front = ToyFrontEnd()
    t = Translator(front)
    assert front.checked == 1
    a = t.translate(0x1000, code(1, 2, 0xFF))
    assert a is not None and a.insn_count == 3 and call(a.address) == 0x102   # successor not there yet
    assert t.translate(0x1000, code(1, 2, 0xFF)) is a and t.cache_hits == 1
    b = t.translate(0x1100, code(5, 6))
    assert call(b.address) == 11
    assert call(a.address) == 0x102 + 11          # the service filled a's chain slot with b
    b2 = t.translate(0x1100, code(7))              # the guest changed its code: a new translation
    assert b2 is not None and b2.address != b.address and call(a.address) == 0x102 + 7
    assert t.translate(0x2000, code(0, 1)) is None
    assert t.blocks_compiled == 3


def test_requests_are_batched_on_the_service_thread():
    t = Translator(ToyFrontEnd())
    results = []
    for i in range(1, 6):
        t.request(0x1000 * i, code(i, i), results.append)
    t.request(0x9000, code(0), results.append)
    t.stop_worker()
    assert sorted(call(r.address) for r in results if r is not None) == [2, 4, 6, 8, 10]
    assert results.count(None) == 1 and not t._worker.is_alive()


def test_the_service_imports_no_architecture():
    probe = ("import sys, kvmpy.sim.translate; layers = ('kvmpy.arch', 'kvmpy.kvm', 'kvmpy.vmm'); "
             "print(sorted(m for m in sys.modules if m.startswith(layers)))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
