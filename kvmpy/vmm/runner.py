"""The VMM's vCPU loop: run, handle the exit, run again (QEMU's kvm_cpu_exec).

This is the only place generic exits are interpreted: MMIO goes to the MMIO
bus and port I/O to the port-I/O bus, both as the bytes the exit carries;
hypercalls the hypervisor left to userspace are answered here; every exit
that ends a run becomes a `RunOutcome`. Any other exit is an architecture's
own (a DCR access on BookE, a PAPR hypercall on POWER): it goes to the
machine's `ArchExitHandler`, and one that nobody handles stops the VM with
INTERNAL_ERROR. A device that raised (recorded by a bus as a `DeviceFault`)
stops the VM with DEVICE_FAULT once the exit is handled.
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

ArchExitHandler = Callable[[object], bool]
"""`handle(exit) -> handled`: a machine's handler for the exits the runner does not know.

It completes the exit (fills its answer fields) and returns True, or returns
False for an exit it does not know either (the run then stops with
INTERNAL_ERROR). It may call `StopControl.request` to end the run.
"""


class StopReason(Enum):
    SHUTDOWN = "shutdown"  # the guest powered off
    RESET = "reset"  # the guest asked for a reset and the board does not reboot
    HALTED = "halted"  # WAIT with every interrupt source masked
    QUIT = "quit"  # the user quit from the console
    TIMEOUT = "timeout"  # --max-seconds elapsed
    DEVICE_FAULT = "device-fault"  # a device model raised
    INTERNAL_ERROR = "internal-error"  # the hypervisor could not emulate something
    DEBUG = "debug"  # a debug breakpoint with no debugger attached
    GDB_KILL = "killed-by-gdb"  # gdb's kill command ended the VM


EXIT_CODES = {
    StopReason.SHUTDOWN: 0,
    StopReason.RESET: 0,
    StopReason.HALTED: 0,
    StopReason.QUIT: 0,
    StopReason.TIMEOUT: 124,
    StopReason.DEVICE_FAULT: 1,
    StopReason.INTERNAL_ERROR: 1,
    StopReason.DEBUG: 1,
    StopReason.GDB_KILL: 9,
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
    mmio: Bus,
    pio: Bus,
    stop: StopControl,
    max_seconds: float | None = None,
    service: Callable[[], None] | None = None,
    arch_exit: ArchExitHandler | None = None,
) -> RunOutcome:
    """Run one vCPU until the guest or the user ends the run.

    `service`, if given, runs on this (the vCPU's) thread after every exit:
    the place where devices fed by other threads move their input into guest
    memory. Such devices kick the vCPU to get there promptly. `arch_exit`
    handles the exits that are not generic (see `ArchExitHandler`).
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
            if handle_exit(vcpu.run(), mmio, pio, stop, service, arch_exit):
                reason = stop.reason or StopReason.INTERNAL_ERROR
                return RunOutcome(reason, stop.detail, time.monotonic() - start)
    finally:
        if timer is not None:
            timer.cancel()


def handle_exit(
    exit_: object,
    mmio: Bus,
    pio: Bus,
    stop: StopControl,
    service: Callable[[], None] | None = None,
    arch_exit: ArchExitHandler | None = None,
) -> bool:
    """Handle one exit of `Vcpu.run()` as the vCPU loop does; True when the run must end (`stop.reason`).

    Shared by `run_vcpu` and loops that look at some exits first (the gdb
    stub's target takes the debug exits and its own kicks).
    """
    # MMIO first and without `match`: it is most of the exits of a boot (RTC polling).
    if type(exit_) is MmioExit:
        if exit_.is_write:
            mmio.store(exit_.phys_addr, exit_.data)
        else:
            mmio.load(exit_.phys_addr, exit_.data)
    else:
        _handle_other(exit_, pio, stop, arch_exit)
    if service is not None:
        service()
    fault = mmio.fault or pio.fault
    if fault is not None:
        stop.request(StopReason.DEVICE_FAULT, str(fault))
    return stop.reason is not None


def _handle_other(exit_: object, pio: Bus, stop: StopControl, arch_exit: ArchExitHandler | None) -> None:
    match exit_:
        case IoExit(is_write=True):
            pio.store(exit_.port, exit_.data[: exit_.size])
        case IoExit():
            data = bytearray(exit_.size)
            pio.load(exit_.port, data)
            exit_.data[: exit_.size] = data
        case HypercallExit():
            pass  # no paravirtual services are offered: the guest gets -KVM_ENOSYS
        case ShutdownExit():
            stop.request(StopReason.SHUTDOWN, exit_.why)
        case ResetExit():
            stop.request(StopReason.RESET, exit_.why)
        case HaltExit():
            stop.request(StopReason.HALTED, f"guest waits with all interrupts masked at {exit_.pc:#010x}")
        case InternalErrorExit():
            stop.request(StopReason.INTERNAL_ERROR, exit_.message)
        case DebugExit():
            stop.request(StopReason.DEBUG, f"breakpoint at {exit_.pc:#010x}")
        case InterruptedExit():
            pass
        case _:
            if arch_exit is None or not arch_exit(exit_):
                reason = getattr(exit_, "reason", None)
                name = getattr(reason, "value", None) or type(exit_).__name__
                why = f"unhandled exit {name}: neither the VMM nor the machine handles it"
                stop.request(StopReason.INTERNAL_ERROR, why)
