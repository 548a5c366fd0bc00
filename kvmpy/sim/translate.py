"""The block-translation service every simulated core shares: guest blocks to host code, through LLVM.

A core's interpreter profiles block starts; when one gets hot it asks this
service for host code. What a block is, and the LLVM IR of its host
function, are the architecture's: a `FrontEnd` (the MIPS one is
kvmpy/arch/mips/hw/jit.py). What is not architecture-specific lives here:

* a cache of translations keyed by guest virtual address and the guest's
  code words (translations depend on nothing else), shared process-wide, so
  a second vCPU or VM running the same code gets the same host function;
* batching: the blocks that queued up while the last batch compiled become
  one LLVM module (a module costs LLVM a fixed part on top of each
  function, so this roughly halves the cost per block);
* the background thread: `request()` returns at once and the result is
  handed to a callback on the service's thread; LLVM runs with the GIL
  released (llvmlite calls it through ctypes);
* the LLVM pipeline (what a block needs: guest registers into SSA values,
  then folding) and MCJIT's code memory;
* chaining: a block may call its successor directly through a 64-bit
  global (its chain slot) holding the successor's host address; the
  service stores the newest translation of each guest address into every
  slot waiting for it, as translations arrive.

Why llvmlite: the well-kept binding numba is built on, with LLVM inside its
wheels; LLVM turns a block's guest registers into host registers (SROA) and
does the instruction selection a hand-written code generator would need
(docs/jit.md).
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import queue
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from llvmlite import ir

MAX_BATCH = 32  # blocks the service's thread compiles as one LLVM module


class BlockShape(Protocol):
    """What a block covers, as its front end decided: the cache key and the instruction count."""

    @property
    def vpc(self) -> int:
        """Guest virtual address of the block's first instruction."""
        ...

    @property
    def words(self) -> tuple[int, ...]:
        """The guest code words the translation was made from (with `vpc`, the cache key)."""
        ...

    @property
    def insn_count(self) -> int:
        """Guest instructions one pass through the block executes."""
        ...


class FrontEnd(Protocol):
    """What an architecture gives the service: how far a block reaches, and its LLVM IR."""

    def check(self) -> None:
        """Called once when a service starts: fail loudly if the front end does not fit the core."""
        ...

    def shape(self, vpc: int, code: bytes) -> BlockShape | None:
        """The block starting at `vpc` (`code`: the guest's bytes from there to its page's end).

        None when not even the first instruction can be translated.
        """
        ...

    def emit(self, shape: BlockShape, module: ir.Module, name: str) -> dict[int, str]:
        """Add the block's host function, named `name`, to `module`.

        Returns its chain slots: successor guest address -> name of an
        internal i64 global in `module`, initially 0, that the block calls
        through when it is not 0. The service stores the successor's host
        address there once it has a translation.
        """
        ...


@dataclass(frozen=True)
class CompiledBlock:
    """A translated block: the host function's address and how many instructions one pass runs."""

    address: int
    insn_count: int
    shape: BlockShape


# what Translator.request() calls with the result (on the service's thread)
Deliver = Callable[[CompiledBlock | None], None]


class Translator:
    """Turns guest blocks into host code for one front end; meant to be one per process and architecture.

    `translate(vpc, code)` compiles now; `request(vpc, code, deliver)` in
    the background. `code` holds the guest's bytes from `vpc` to the end of
    its page.
    """

    def __init__(self, front_end: FrontEnd, codegen_level: int = 1, full_pipeline: bool = False) -> None:
        import llvmlite.binding as llvm

        front_end.check()
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        self.front_end = front_end
        self._llvm = llvm
        self._tm = llvm.Target.from_default_triple().create_target_machine(opt=codegen_level, jit=True)
        self._full_pipeline = full_pipeline
        self._engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), self._tm)
        self._cache: dict[tuple[int, tuple[int, ...]], CompiledBlock] = {}
        self._lock = threading.Lock()
        self._serial = 0
        self._requests: queue.SimpleQueue[tuple[int, bytes, Deliver] | None] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        # chaining: the newest translation of each guest address, and the
        # chain slots (host addresses) that lead to each guest address
        self._latest: dict[int, int] = {}
        self._chain_waiting: dict[int, list[int]] = {}
        self.blocks_compiled = 0
        self.cache_hits = 0
        self.failures = 0

    def translate(self, vpc: int, code: bytes) -> CompiledBlock | None:
        """Host code for the block at guest virtual address `vpc`, or None if it has no translatable start."""
        return self.translate_many([(vpc, code)])[0]

    def translate_many(self, blocks: list[tuple[int, bytes]]) -> list[CompiledBlock | None]:
        """`translate()` for several blocks at once: the new ones are compiled as one LLVM module."""
        shapes = [self.front_end.shape(vpc, code) for vpc, code in blocks]
        with self._lock:
            new: dict[tuple[int, tuple[int, ...]], BlockShape] = {}
            for shape in shapes:
                if shape is None:
                    continue
                key = (shape.vpc, shape.words)
                if key in self._cache:
                    self.cache_hits += 1
                else:
                    new.setdefault(key, shape)
            if new:
                for compiled in self._compile(list(new.values())):
                    self._cache[(compiled.shape.vpc, compiled.shape.words)] = compiled
            return [None if shape is None else self._cache[(shape.vpc, shape.words)] for shape in shapes]

    def request(self, vpc: int, code: bytes, deliver: Deliver) -> None:
        """Translate in the background; `deliver` gets the result on the service's thread."""
        with self._lock:
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="kvmpy-jit", daemon=True)
                self._worker.start()
                atexit.register(self.stop_worker)
        self._requests.put((vpc, code, deliver))

    def stop_worker(self, timeout_s: float = 10.0) -> None:
        """Let the service's thread finish its batch and end (at exit).

        A daemon thread still inside LLVM while the interpreter tears
        llvmlite down could crash the process on its way out.
        """
        worker = self._worker
        if worker is not None and worker.is_alive():
            self._requests.put(None)
            worker.join(timeout_s)

    def _work(self) -> None:
        # Building IR is Python and holds the GIL for milliseconds; a vCPU thread
        # handling an exit must not wait the default 5 ms for it.
        sys.setswitchinterval(min(sys.getswitchinterval(), 0.0005))
        while True:
            first = self._requests.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < MAX_BATCH:    # whatever queued up while the last batch compiled
                try:
                    item = self._requests.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._requests.put(None)     # stop after this batch
                    break
                batch.append(item)
            results: list[CompiledBlock | None]
            try:
                results = self.translate_many([(vpc, code) for vpc, code, _ in batch])
            except Exception:  # a translator bug must not kill the thread: those blocks stay interpreted
                self.failures += 1
                _log.exception("jit: translating blocks at %s failed", [hex(vpc) for vpc, _, _ in batch])
                results = [None] * len(batch)
            for (_, _, deliver), block in zip(batch, results, strict=True):
                deliver(block)

    def ir_of(self, shape: BlockShape) -> str:
        """The LLVM IR of a block, unoptimised (for docs and debugging)."""
        module = ir.Module(name="kvmpy_block")
        self.front_end.emit(shape, module, "block")
        return str(module)

    def _compile(self, shapes: list[BlockShape]) -> list[CompiledBlock]:
        llvm = self._llvm
        self._serial += 1
        module = ir.Module(name=f"blocks{self._serial}")
        module.triple = self._tm.triple
        emitted: list[tuple[BlockShape, str, dict[int, str]]] = []
        for i, shape in enumerate(shapes):
            name = f"blk{self._serial}_{i}_{shape.vpc:08x}"
            emitted.append((shape, name, self.front_end.emit(shape, module, name)))
        mod = llvm.parse_assembly(str(module))
        mod.verify()
        pb = llvm.create_pass_builder(self._tm, llvm.create_pipeline_tuning_options(speed_level=2))
        if self._full_pipeline:
            pb.getModulePassManager().run(mod, pb)
        else:
            # what a block needs: guest registers into SSA values, then folding
            fpm = llvm.create_new_function_pass_manager()
            fpm.add_sroa_pass()
            fpm.add_instruction_combine_pass()
            fpm.add_simplify_cfg_pass()
            fpm.add_new_gvn_pass()
            fpm.add_dead_code_elimination_pass()
            for fn in mod.functions:
                fpm.run(fn, pb)
        self._engine.add_module(mod)
        self._engine.finalize_object()
        compiled = []
        for shape, name, _ in emitted:
            address = self._engine.get_function_address(name)
            compiled.append(CompiledBlock(address, shape.insn_count, shape))
            self._latest[shape.vpc] = address
        self.blocks_compiled += len(compiled)
        # chaining: the new blocks' successors, and the blocks waiting for the new ones
        for _, _, chain_slots in emitted:
            for target, slot_name in chain_slots.items():
                slot_address = self._engine.get_global_value_address(slot_name)
                self._chain_waiting.setdefault(target, []).append(slot_address)
                if target in self._latest:
                    ctypes.c_uint64.from_address(slot_address).value = self._latest[target]
        for block in compiled:
            for slot_address in self._chain_waiting.get(block.shape.vpc, ()):
                ctypes.c_uint64.from_address(slot_address).value = self._latest[block.shape.vpc]
        return compiled


class Shared:
    """A process-wide translator made on first use (so a VM that never gets a block hot never loads LLVM).

    What a core is given: `translate` and `request` as on `Translator`.
    """

    def __init__(self, make: Callable[[], Translator]) -> None:
        self._make = make
        self._translator: Translator | None = None
        self._lock = threading.Lock()

    def get(self) -> Translator:
        with self._lock:
            if self._translator is None:
                self._translator = self._make()
            return self._translator

    def translate(self, vpc: int, code: bytes) -> CompiledBlock | None:
        return self.get().translate(vpc, code)

    def request(self, vpc: int, code: bytes, deliver: Deliver) -> None:
        self.get().request(vpc, code, deliver)


_log = logging.getLogger(__name__)
