"""The VMM's `DebugTarget`: one vCPU of a running board, through the KVM API only.

Every method forwards to one KVM API call (ONE_REG, KVM_SET_GUEST_DEBUG,
KVM_TRANSLATE, kick) or to the VMM's own RAM (the buffers it registered as
memory slots); `run()` is the VMM's vCPU loop (`runner.handle_exit`) that
returns to the stub on a debug exit, on a kick the stub asked for, or when
the VM ends.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from kvmpy.kvm import DebugExit as KvmDebugExit
from kvmpy.kvm import DebugKind, GuestDebug, InterruptedExit, Vcpu
from kvmpy.vmm.bus import Bus
from kvmpy.vmm.gdbstub.target import DebugExit, GuestMemoryError, MonitorCommand, StopKind
from kvmpy.vmm.runner import EXIT_CODES, ArchExitHandler, StopControl, handle_exit

_STOP_KIND = {
    DebugKind.SW_BREAKPOINT: StopKind.SW_BREAKPOINT,
    DebugKind.HW_BREAKPOINT: StopKind.HW_BREAKPOINT,
    DebugKind.WATCHPOINT: StopKind.WATCHPOINT,
    DebugKind.SINGLE_STEP: StopKind.SINGLE_STEP,
    DebugKind.GUEST_BREAK: StopKind.SW_BREAKPOINT,  # gdb shows a SIGTRAP, as for its own
}


@dataclass(frozen=True)
class RamRegion:
    """Guest RAM the VMM registered: guest physical `gpa`, backed by `buffer`."""

    gpa: int
    buffer: bytearray | memoryview | object


class KvmDebugTarget:
    """vCPU + the VMM's RAM + its buses as a `DebugTarget`."""

    def __init__(
        self,
        vcpu: Vcpu,
        ram: Sequence[RamRegion],
        mmio: Bus,
        pio: Bus,
        stop: StopControl,
        service: Callable[[], None] | None = None,
        arch_exit: ArchExitHandler | None = None,
    ) -> None:
        self.vcpu = vcpu
        self._ram = [(r.gpa, memoryview(r.buffer).cast("B")) for r in ram]  # type: ignore[arg-type]
        self.mmio, self.pio, self.stop = mmio, pio, stop
        self.service, self.arch_exit = service, arch_exit
        self._stub_kick = threading.Event()

    # ------------------------------------------------------------------ registers and debug state
    def get_one_reg(self, reg_id: int) -> int:
        return self.vcpu.get_one_reg(reg_id)

    def set_one_reg(self, reg_id: int, value: int) -> None:
        self.vcpu.set_one_reg(reg_id, value)

    def set_guest_debug(self, debug: GuestDebug) -> None:
        self.vcpu.set_guest_debug(debug)

    def translate(self, gva: int) -> int | None:
        t = self.vcpu.translate(gva)
        return None if t is None else t.gpa

    # ------------------------------------------------------------------ memory
    def _region(self, gpa: int, size_bytes: int) -> tuple[memoryview, int]:
        for base, view in self._ram:
            if base <= gpa and gpa + size_bytes <= base + len(view):
                return view, gpa - base
        raise GuestMemoryError(f"gpa {gpa:#x}+{size_bytes} is not RAM")

    def read_gpa(self, gpa: int, size_bytes: int) -> bytes:
        view, off = self._region(gpa, size_bytes)
        return bytes(view[off:off + size_bytes])

    def write_gpa(self, gpa: int, data: bytes) -> None:
        view, off = self._region(gpa, len(data))
        view[off:off + len(data)] = data

    # ------------------------------------------------------------------ running
    def run(self) -> DebugExit:
        vcpu = self.vcpu
        while True:
            exit_ = vcpu.run()
            if isinstance(exit_, KvmDebugExit):
                return DebugExit(_STOP_KIND[exit_.kind], exit_.pc, exit_.watch_gva, exit_.watch_kind)
            if isinstance(exit_, InterruptedExit) and self._stub_kick.is_set():
                self._stub_kick.clear()
                return DebugExit(StopKind.INTERRUPTED, pc=vcpu.get_regs().pc)
            if handle_exit(exit_, self.mmio, self.pio, self.stop, self.service, self.arch_exit):
                reason = self.stop.reason
                assert reason is not None
                detail = f"{reason.value}: {self.stop.detail}" if self.stop.detail else reason.value
                return DebugExit(StopKind.EXITED, exit_code=EXIT_CODES[reason], message=detail)

    def kick(self) -> None:
        self._stub_kick.set()
        self.vcpu.kick()

    # ------------------------------------------------------------------ monitor
    def monitor_commands(self) -> Mapping[str, MonitorCommand]:
        def stats(_args: str) -> str:
            s = self.vcpu.stats
            exits = " ".join(f"{k}={v}" for k, v in sorted(s.exits.items()))
            traps = " ".join(f"{k}={v}" for k, v in sorted(s.traps.items()))
            return f"instructions {s.instructions}\nexits {exits or '-'}\ntraps {traps or '-'}"

        def tlb(_args: str) -> str:
            lines = []
            for name, rows in self.vcpu.tlb_snapshot().items():
                lines.append(f"{name} TLB ({len(rows)} valid entries):")
                lines += [f"  {row}" for row in rows]
            return "\n".join(lines)

        return {
            "stats": MonitorCommand("the vCPU's exit and trap counters", stats),
            "tlb": MonitorCommand("the guest TLB and the hypervisor's (vz: root, te: shadow) TLB", tlb),
        }
