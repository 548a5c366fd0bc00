"""Run a guest on the Malta board for a fixed number of guest instructions.

    python benchmarks/icount.py bench_bignum 20000000

Meant for valgrind's callgrind, whose host-instruction counts are immune to
machine noise (wall-clock runs on a shared machine are not):

    valgrind --tool=callgrind --toggle-collect='*Cpu_loop*' \\
        python benchmarks/icount.py bench_bignum 20000000

Only the interpreter loop (and what it calls) is counted; divide the total by
the instruction count to get host instructions per guest instruction. The
block translator is off here (`JitSettings(enabled=False)`): this measures
the interpreter, which still runs all cold code.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kvmpy.arch.mips.vz.vcpu import VzVcpu  # noqa: E402
from kvmpy.kvm import JitSettings  # noqa: E402
from kvmpy.vmm.machines.malta import Malta, MaltaConfig  # noqa: E402
from kvmpy.vmm.serial import open_serial  # noqa: E402


class _Done(Exception):
    pass


def main() -> None:
    name = sys.argv[1]
    limit = int(sys.argv[2])
    elf = REPO / "build" / "guests" / f"{name}.elf"
    orig_enter = VzVcpu.enter

    def enter(self: VzVcpu, budget: int):  # type: ignore[no-untyped-def]
        left = limit - self.cpu.icount
        if left <= 0:
            raise _Done
        return orig_enter(self, min(budget, left))

    VzVcpu.enter = enter  # type: ignore[method-assign]
    serial = open_serial("none", lambda: None)
    machine = Malta(MaltaConfig(kernel=elf, mem_size_mib=64, mode="vz", no_reboot=True,
                                jit=JitSettings(enabled=False)), serial)
    start = time.process_time()
    with contextlib.suppress(_Done):
        machine.run()
    cpu_s = time.process_time() - start
    icount = machine.vcpu.stats.instructions
    rate = icount / cpu_s / 1e6
    print(f"{name}: {icount} guest instructions, {cpu_s:.2f} s CPU, {rate:.1f} M/s", file=sys.stderr)


if __name__ == "__main__":
    main()
