"""The VMM's vCPU loop: run, handle the exit, run again (QEMU's kvm_cpu_exec).

This is the only place exits are interpreted. MMIO goes to the bus;
hypercalls the hypervisor left to userspace are answered here; everything
that ends a run becomes a `RunOutcome`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from kvmpy.kvm import (
    DebugExit,
    HaltExit,
    HypercallExit,
    InternalErrorExit,
    InterruptedExit,
    IoExit,
    MmioExit,
    ResetExit,
    ShutdownExit,
    Vcpu,
)
from kvmpy.vmm.bus import Bus


class StopReason(Enum):
    SHUTDOWN = "shutdown"  # the guest powered off
    RESET = "reset"  # the guest asked for a reset and the board does not reboot
    HALTED = "halted"  # WAIT with every interrupt source masked
    QUIT = "quit"  # the user quit from the console
    TIMEOUT = "timeout"  # --max-seconds elapsed
    DEVICE_FAULT = "device-fault"  # a device model raised
    INTERNAL_ERROR = "internal-error"  # the hypervisor could not emulate something
    DEBUG = "debug"  # a debug breakpoint with no debugger attached


EXIT_CODES = {
    StopReason.SHUTDOWN: 0,
    StopReason.RESET: 0,
    StopReason.HALTED: 0,
    StopReason.QUIT: 0,
    StopReason.TIMEOUT: 124,
    StopReason.DEVICE_FAULT: 1,
    StopReason.INTERNAL_ERROR: 1,
    StopReason.DEBUG: 1,
}


@dataclass
class RunOutcome:
    reason: StopReason
    detail: str = ""
    wall_s: float = 0.0

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.reason]

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.detail}" if self.detail else self.reason.value


@dataclass
class StopControl:
    """Requests to end a run, set from devices or other threads."""

    reason: StopReason | None = None
    detail: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def request(self, reason: StopReason, detail: str = "") -> None:
        with self._lock:
            if self.reason is None:
                self.reason, self.detail = reason, detail


def run_vcpu(
    vcpu: Vcpu,
    bus: Bus,
    stop: StopControl,
    max_seconds: float | None = None,
    service: Callable[[], None] | None = None,
) -> RunOutcome:
    """Run one vCPU until the guest or the user ends the run.

    `service`, if given, runs on this (the vCPU's) thread after every exit:
    the place where devices fed by other threads move their input into guest
    memory. Such devices kick the vCPU to get there promptly.
    """
    start = time.monotonic()
    timer: threading.Timer | None = None
    if max_seconds is not None:

        def expire() -> None:
            stop.request(StopReason.TIMEOUT, f"stopped after {max_seconds:g} s")
            vcpu.kick()

        timer = threading.Timer(max_seconds, expire)
        timer.daemon = True
        timer.start()
    try:
        while True:
            exit_ = vcpu.run()
            match exit_:
                case MmioExit(is_write=True):
                    bus.write(exit_.phys_addr, exit_.length, int.from_bytes(exit_.data, "little"))
                case MmioExit():
                    value = bus.read(exit_.phys_addr, exit_.length)
                    exit_.data[:] = value.to_bytes(exit_.length, "little")
                case HypercallExit():
                    pass  # no paravirtual services are offered: the guest gets -KVM_ENOSYS
                case ShutdownExit():
                    stop.request(StopReason.SHUTDOWN, exit_.why)
                case ResetExit():
                    stop.request(StopReason.RESET, exit_.why)
                case HaltExit():
                    stop.request(
                        StopReason.HALTED, f"guest waits with all interrupts masked at {exit_.pc:#010x}"
                    )
                case InternalErrorExit():
                    stop.request(StopReason.INTERNAL_ERROR, exit_.message)
                case DebugExit():
                    stop.request(StopReason.DEBUG, f"breakpoint at {exit_.pc:#010x}")
                case InterruptedExit() | IoExit():
                    pass
            if service is not None:
                service()
            if bus.fault is not None:
                stop.request(StopReason.DEVICE_FAULT, str(bus.fault))
            if stop.reason is not None:
                return RunOutcome(stop.reason, stop.detail, time.monotonic() - start)
    finally:
        if timer is not None:
            timer.cancel()
