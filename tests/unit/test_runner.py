"""The runner's exit dispatch, with a stand-in vCPU that returns scripted exits."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pytest

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
)
from kvmpy.vmm.bus import Bus
from kvmpy.vmm.runner import RunOutcome, StopControl, StopReason, run_vcpu


class ScriptedVcpu:
    """Returns the given exits in order, then a power-off (so every run ends)."""

    def __init__(self, exits: Iterable[object]) -> None:
        self.exits = list(exits)
        self.returned: list[object] = []
        self.kicks = 0

    def run(self) -> object:
        exit_ = self.exits.pop(0) if self.exits else ShutdownExit("script ended")
        self.returned.append(exit_)
        return exit_

    def kick(self) -> None:
        self.kicks += 1


class Regs:
    def __init__(self) -> None:
        self.values: dict[int, int] = {}
        self.writes: list[tuple[int, int, int]] = []

    def read(self, offset: int, size: int) -> int:
        return self.values.get(offset, 0)

    def write(self, offset: int, size: int, value: int) -> None:
        self.writes.append((offset, size, value))


class Broken:
    def read(self, offset: int, size: int) -> int:
        raise ZeroDivisionError("bug in the model")

    def write(self, offset: int, size: int, value: int) -> None:
        raise ZeroDivisionError("bug in the model")


@dataclass
class DcrExit:
    """An architecture exit the runner does not know (as BookE's DCR access)."""

    dcrn: int
    is_write: bool
    data: int = 0


def run(exits: Iterable[object], mmio: Bus | None = None, pio: Bus | None = None, **kw: object) -> RunOutcome:
    vcpu = ScriptedVcpu(exits)
    return run_vcpu(vcpu, mmio or Bus(), pio or Bus("pio"), StopControl(), **kw)  # type: ignore[arg-type]


def test_mmio_read_completes_the_exit_data_and_write_reaches_the_device() -> None:
    mmio, regs = Bus(), Regs()
    mmio.add(0x1F000000, 0x100, regs, "regs")
    regs.values[0x10] = 0xBEEF
    read = MmioExit(0x1F000010, 2, False, bytearray(2))
    write = MmioExit(0x1F000020, 4, True, bytearray(b"\x01\x02\x03\x04"))
    outcome = run([read, write], mmio=mmio)
    assert read.data == b"\xef\xbe"
    assert regs.writes == [(0x20, 4, 0x04030201)]
    assert outcome.reason is StopReason.SHUTDOWN


def test_port_io_goes_to_the_port_bus() -> None:
    pio, uart = Bus("pio"), Regs()
    pio.add(0x3F8, 8, uart, "uart")
    uart.values[5] = 0x60
    out = IoExit(0x3F8, 1, True, bytearray(b"A"))
    inb = IoExit(0x3FD, 1, False, bytearray(1))
    run([out, inb], pio=pio)
    assert uart.writes == [(0, 1, 0x41)]
    assert inb.data == b"\x60"
    assert pio.counts["uart"] == 2


def test_an_architecture_exit_reaches_the_machine_handler() -> None:
    handled: list[object] = []

    def handler(exit_: object) -> bool:
        if isinstance(exit_, DcrExit):
            exit_.data = 0x440
            handled.append(exit_)
            return True
        return False

    dcr = DcrExit(0x0C, False)
    outcome = run([dcr, MmioExit(0, 1, False, bytearray(1))], arch_exit=handler)
    assert handled == [dcr] and dcr.data == 0x440
    assert outcome.reason is StopReason.SHUTDOWN  # the run went on after it


@pytest.mark.parametrize("with_handler", [False, True], ids=["no-handler", "handler-declines"])
def test_an_exit_nobody_handles_stops_with_internal_error(with_handler: bool) -> None:
    vcpu = ScriptedVcpu([DcrExit(0x0C, True), MmioExit(0, 1, False, bytearray(1))])
    outcome = run_vcpu(
        vcpu, Bus(), Bus("pio"), StopControl(), arch_exit=(lambda _e: False) if with_handler else None  # type: ignore[arg-type]
    )
    assert outcome.reason is StopReason.INTERNAL_ERROR
    assert outcome.detail == "unhandled exit DcrExit: neither the VMM nor the machine handles it"
    assert len(vcpu.returned) == 1  # stopped at once, the next exit never came
    assert outcome.exit_code == 1


@pytest.mark.parametrize("space", ["mmio", "pio", "pio-behind-window"])
def test_a_raising_device_stops_the_vm_with_a_device_fault(space: str) -> None:
    mmio, pio = Bus(), Bus("pio")
    if space == "mmio":
        mmio.add(0x1000, 4, Broken(), "broken")
        exit_: object = MmioExit(0x1000, 4, False, bytearray(4))
        where = "at 0x00001000"
    else:
        pio.add(0x70, 2, Broken(), "broken")
        if space == "pio":
            exit_ = IoExit(0x71, 1, True, bytearray(b"\x00"))
        else:
            mmio.add(0x18000000, 0x10000, pio, "pci-io")
            exit_ = MmioExit(0x18000071, 1, True, bytearray(b"\x00"))
        where = "at port 0x0071"
    vcpu = ScriptedVcpu([exit_, MmioExit(0, 1, False, bytearray(1))])
    outcome = run_vcpu(vcpu, mmio, pio, StopControl())  # type: ignore[arg-type]
    assert outcome.reason is StopReason.DEVICE_FAULT
    assert "device broken failed" in outcome.detail and where in outcome.detail
    assert "ZeroDivisionError" in outcome.detail
    assert len(vcpu.returned) == 1


@pytest.mark.parametrize(
    ("exit_", "reason", "detail"),
    [
        (ShutdownExit("EXIT_VM"), StopReason.SHUTDOWN, "EXIT_VM"),
        (ResetExit("guest reset"), StopReason.RESET, "guest reset"),
        (HaltExit(0x80001234), StopReason.HALTED, "0x80001234"),
        (DebugExit(0x80000100), StopReason.DEBUG, "breakpoint at 0x80000100"),
        (InternalErrorExit("cannot emulate", 0x80000000), StopReason.INTERNAL_ERROR, "cannot emulate"),
    ],
)
def test_exits_that_end_the_run(exit_: object, reason: StopReason, detail: str) -> None:
    outcome = run([exit_, DcrExit(0, False)])  # the DCR exit would stop it differently if reached
    assert outcome.reason is reason and detail in outcome.detail


def test_kick_and_hypercall_exits_continue_the_run() -> None:
    hypercall = HypercallExit(7, (1, 2, 3, 4))
    serviced: list[int] = []
    vcpu = ScriptedVcpu([InterruptedExit(), hypercall])
    outcome = run_vcpu(
        vcpu, Bus(), Bus("pio"), StopControl(), service=lambda: serviced.append(1)  # type: ignore[arg-type]
    )
    assert outcome.reason is StopReason.SHUTDOWN and len(vcpu.returned) == 3
    assert hypercall.ret == 0
    assert serviced == [1, 1, 1]  # after every exit


def test_a_stop_requested_from_elsewhere_ends_the_run_after_the_current_exit() -> None:
    stop = StopControl()
    vcpu = ScriptedVcpu([InterruptedExit()] * 5)
    outcome = run_vcpu(
        vcpu, Bus(), Bus("pio"), stop, service=lambda: stop.request(StopReason.QUIT, "user")  # type: ignore[arg-type]
    )
    assert outcome.reason is StopReason.QUIT and len(vcpu.returned) == 1
