"""The 440EP UIC (DCR device) and the DCR bus: registers, triggers, polarity, routing, Linux's sequences."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmpy.vmm.bus import BusError
from kvmpy.vmm.dcr import DcrBus
from kvmpy.vmm.devices.uart16550 import Uart16550
from kvmpy.vmm.machines.bamboo import layout
from kvmpy.vmm.machines.bamboo.layout import UIC0_DCR_BASE, UIC0_DCR_COUNT
from kvmpy.vmm.machines.bamboo.uic import UIC_DCR_COUNT, Uic, UicReg, input_bit
from kvmpy.vmm.serial import BufferSerial
from kvmpy.vmm.virtio.mmio import Reg
from kvmpy.vmm.virtio.rng import VirtioRng
from tests.unit.fakes import RecordingIrq
from tests.unit.test_virtio_mmio import Driver

SR, SRS, ER, CR, PR, TR, MSR, VR, VCR = (UIC0_DCR_BASE + r for r in UicReg)


def make() -> tuple[DcrBus, Uic, RecordingIrq, RecordingIrq]:
    out, crit = RecordingIrq(), RecordingIrq()
    uic = Uic(out, crit)
    bus = DcrBus()
    assert UIC0_DCR_COUNT == UIC_DCR_COUNT
    bus.add(UIC0_DCR_BASE, UIC0_DCR_COUNT, uic, "uic0")
    return bus, uic, out, crit


def linux_set_type(bus: DcrBus, n: int, *, edge: bool, high: bool) -> None:
    """What Linux's uic_set_irq_type does: read-modify-write PR and TR, then clear the status bit."""
    bit = input_bit(n)
    bus.write(PR, (bus.read(PR) & ~bit) | (bit if high else 0))
    bus.write(TR, (bus.read(TR) & ~bit) | (bit if edge else 0))
    bus.write(SR, bit)


def linux_unmask(bus: DcrBus, n: int, *, level: bool) -> None:
    bit = input_bit(n)
    if level:
        bus.write(SR, bit)  # ack before enabling, as uic_unmask_irq does for level types
    bus.write(ER, bus.read(ER) | bit)


def linux_get_irq(bus: DcrBus) -> int | None:
    msr = bus.read(MSR)
    return None if msr == 0 else 32 - (msr & -msr).bit_length()


def test_reset_state_reads_zero_and_pins_low() -> None:
    bus, uic, out, crit = make()
    for dcrn in (ER, CR, PR, TR, MSR, VR, VCR):
        assert bus.read(dcrn) == 0, hex(dcrn)
    # PR=0 means active low: every idle (low) input is active and level-sensitive, so SR is all ones ...
    assert bus.read(SR) == 0xFFFFFFFF
    # ... but nothing is enabled, so neither pin is raised.
    assert out.changes == [] and crit.changes == []


def test_linux_init_and_level_interrupt_round_trip() -> None:
    """uic_init_one, then the UART (input 0, level high) interrupts and is handled like handle_level_irq."""
    bus, uic, out, crit = make()
    bus.write(ER, 0)
    bus.write(CR, 0)
    bus.write(TR, 0)
    bus.write(SR, 0xFFFFFFFF)
    linux_set_type(bus, 0, edge=False, high=True)
    linux_unmask(bus, 0, level=True)
    assert bus.read(SR) & input_bit(0) == 0 and not out.level

    uart = uic.input(0)
    uart.set(True)
    assert out.level and not crit.level
    assert bus.read(MSR) == input_bit(0)
    assert linux_get_irq(bus) == 0
    # mask_ack: disable, then write-1-to-clear: an active level input stays set.
    bus.write(ER, bus.read(ER) & ~input_bit(0))
    bus.write(SR, input_bit(0))
    assert bus.read(SR) & input_bit(0)
    assert not out.level  # masked
    uart.set(False)  # the handler drained the UART
    assert bus.read(SR) & input_bit(0) == 0
    linux_unmask(bus, 0, level=True)
    assert not out.level and linux_get_irq(bus) is None
    assert out.changes == [True, False]


def test_level_input_sr_follows_the_line() -> None:
    bus, uic, out, _ = make()
    linux_set_type(bus, 5, edge=False, high=True)
    bus.write(ER, input_bit(5))
    for _ in range(3):
        uic.set_input(5, True)
        assert bus.read(SR) == input_bit(5) | _idle_active_low(bus)
        assert out.level
        bus.write(SR, input_bit(5))  # cannot clear while active
        assert out.level
        uic.set_input(5, False)
        assert not out.level
    assert out.changes == [True, False] * 3


def _idle_active_low(bus: DcrBus) -> int:
    """Inputs left at reset polarity (active low, level) read as set while their pins are low."""
    return ~bus.read(PR) & ~bus.read(TR) & 0xFFFFFFFF


def test_edge_input_latches_until_acknowledged() -> None:
    bus, uic, out, _ = make()
    linux_set_type(bus, 9, edge=True, high=True)
    bus.write(ER, input_bit(9))
    uic.set_input(9, True)
    uic.set_input(9, False)  # a pulse
    assert out.level and bus.read(MSR) == input_bit(9)
    uic.set_input(9, True)  # held high: no new edge after the ack
    bus.write(SR, input_bit(9))
    assert not out.level and bus.read(MSR) == 0
    uic.set_input(9, True)  # same level again is no edge
    assert bus.read(MSR) == 0
    uic.set_input(9, False)
    uic.set_input(9, True)
    assert bus.read(MSR) == input_bit(9) and out.level


def test_falling_edge_and_active_low_level_polarity() -> None:
    bus, uic, out, _ = make()
    uic.set_input(3, True)
    uic.set_input(4, True)
    linux_set_type(bus, 3, edge=True, high=False)  # falling edge
    linux_set_type(bus, 4, edge=False, high=False)  # level low
    bus.write(ER, input_bit(3) | input_bit(4))
    assert bus.read(MSR) == 0
    uic.set_input(3, False)
    assert bus.read(MSR) == input_bit(3)
    uic.set_input(3, True)  # rising edge: still latched, not a new event, not cleared either
    assert bus.read(MSR) == input_bit(3)
    bus.write(SR, input_bit(3))
    assert bus.read(MSR) == 0
    uic.set_input(4, False)
    assert bus.read(MSR) == input_bit(4) and out.level
    uic.set_input(4, True)
    assert bus.read(MSR) == 0 and not out.level


def test_critical_routing_and_vectors() -> None:
    bus, uic, out, crit = make()
    for n in (2, 7, 20):
        linux_set_type(bus, n, edge=True, high=True)
    bus.write(CR, input_bit(7) | input_bit(20))
    bus.write(ER, input_bit(2) | input_bit(7) | input_bit(20))
    bus.write(VCR, 0x10000003)  # VBA 0x10000000, PRO=1, reserved bit 30 ignored
    assert bus.read(VCR) == 0x10000001
    uic.set_input(2, True)
    assert out.level and not crit.level and bus.read(VR) == 0  # no critical pending
    uic.set_input(20, True)
    assert crit.level
    # PRO=1: input 31 has the highest priority; input 20 is 11 positions away.
    assert bus.read(VR) == 0x10000000 + 11 * 512
    uic.set_input(7, True)
    assert bus.read(VR) == 0x10000000 + 11 * 512  # 20 still outranks 7 with PRO=1
    bus.write(VCR, 0x10000000)  # PRO=0: input 0 highest, so 7 wins at distance 7
    assert bus.read(VR) == 0x10000000 + 7 * 512
    bus.write(SR, input_bit(7) | input_bit(20))
    assert not crit.level and out.level and bus.read(VR) == 0
    bus.write(CR, input_bit(2))  # moving input 2 to critical moves the pin
    assert crit.level and not out.level


def test_status_set_register_and_read_only_registers() -> None:
    bus, uic, out, _ = make()
    bus.write(TR, input_bit(30))
    bus.write(PR, 0xFFFFFFFF)  # everything active high: idle low pins are inactive
    bus.write(ER, input_bit(30) | input_bit(31))
    bus.write(SRS, input_bit(30) | input_bit(31))  # 31 is level-sensitive: it mirrors its pin
    assert bus.read(SR) == input_bit(30) and out.level
    bus.write(MSR, 0)
    bus.write(VR, 0x1234)
    assert bus.read(MSR) == input_bit(30) and bus.read(VR) == 0
    bus.write(TR, 0)  # switching to level drops the latched edge
    assert bus.read(SR) == 0 and not out.level


def test_reset_lowers_outputs() -> None:
    bus, uic, out, crit = make()
    bus.write(PR, 0xFFFFFFFF)
    bus.write(ER, 0xFFFFFFFF)
    bus.write(CR, input_bit(1))
    uic.set_input(0, True)
    uic.set_input(1, True)
    assert out.level and crit.level
    uic.reset()
    assert not out.level and not crit.level
    assert bus.read(ER) == 0


def test_input_numbers_are_checked() -> None:
    _, uic, _, _ = make()
    with pytest.raises(ValueError):
        uic.input(32)
    with pytest.raises(ValueError):
        uic.set_input(-1, True)


# ---------------------------------------------------------------------- the DCR bus


class Exploding:
    def read(self, dcrn_offset: int) -> int:
        raise RuntimeError("boom")

    def write(self, dcrn_offset: int, value: int) -> None:
        raise RuntimeError("bang")


class Scratch:
    def __init__(self) -> None:
        self.regs: dict[int, int] = {}

    def read(self, dcrn_offset: int) -> int:
        return self.regs.get(dcrn_offset, 0)

    def write(self, dcrn_offset: int, value: int) -> None:
        self.regs[dcrn_offset] = value


def test_dcr_bus_routes_offsets_and_unknown_dcrs_read_zero() -> None:
    bus = DcrBus()
    scratch = Scratch()
    bus.add(0x10, 2, scratch, "sdram")
    bus.write(0x11, 0x1_DEADBEEF)
    assert scratch.regs == {1: 0xDEADBEEF}
    assert bus.read(0x11) == 0xDEADBEEF
    assert bus.read(0x12) == 0
    bus.write(0x3FF, 5)
    assert bus.read(0x3FF) == 0
    assert bus.counts["sdram"] == 2 and bus.counts["unassigned"] == 3
    assert bus.name_of(0x10) == "sdram" and bus.name_of(0x12) is None
    assert bus.fault is None


def test_dcr_bus_rejects_overlaps_and_out_of_range() -> None:
    bus = DcrBus()
    bus.add(0xC0, 9, Scratch(), "uic0")
    with pytest.raises(BusError):
        bus.add(0xC8, 2, Scratch(), "other")
    with pytest.raises(BusError):
        bus.add(0x3FF, 2, Scratch(), "past-end")
    with pytest.raises(BusError):
        bus.add(-1, 1, Scratch(), "negative")


def test_dcr_bus_records_a_device_fault() -> None:
    bus = DcrBus()
    bus.add(0x20, 1, Exploding(), "bad")
    assert bus.read(0x20) == 0
    bus.write(0x20, 1)
    assert bus.fault is not None
    assert bus.fault.device == "bad" and not bus.fault.is_write  # the first fault is kept
    assert "boom" in str(bus.fault)


# ---------------------------------------------------------------------- fuzzing with invariants

_OPS = st.one_of(
    st.tuples(st.just("dcr"), st.integers(0, UIC_DCR_COUNT + 2), st.integers(0, 0xFFFFFFFF)),
    st.tuples(st.just("pin"), st.integers(0, 31), st.booleans()),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_OPS, max_size=60))
def test_register_fuzz_invariants(ops: list[tuple[str, int, int | bool]]) -> None:
    bus, uic, out, crit = make()
    for kind, a, b in ops:
        if kind == "dcr":
            bus.write(UIC0_DCR_BASE + a, int(b))
        else:
            uic.set_input(a, bool(b))
        sr, er, cr, tr, pr = bus.read(SR), bus.read(ER), bus.read(CR), bus.read(TR), bus.read(PR)
        msr = bus.read(MSR)
        assert msr == sr & er
        assert out.level == (msr & ~cr != 0)
        assert crit.level == (msr & cr != 0)
        active = ~(uic.pins ^ pr) & 0xFFFFFFFF
        assert sr & ~tr & 0xFFFFFFFF == active & ~tr & 0xFFFFFFFF  # level bits mirror their inputs
        if msr & cr == 0:
            assert bus.read(VR) == 0
    # The pins were only driven on changes: consecutive recorded levels alternate.
    for line in (out, crit):
        assert all(x != y for x, y in zip(line.changes, line.changes[1:], strict=False))
    assert bus.fault is None


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 31), st.lists(st.booleans(), max_size=20))
def test_edge_latch_matches_counted_edges(n: int, levels: list[bool]) -> None:
    """An edge input's SR bit is set iff a rising edge happened since the last acknowledge."""
    bus, uic, _, _ = make()
    linux_set_type(bus, n, edge=True, high=True)
    pin, edge_seen = False, False
    for level in levels:
        if level and not pin:
            edge_seen = True
        pin = level
        uic.set_input(n, level)
        assert bool(bus.read(SR) & input_bit(n)) == edge_seen
        if edge_seen and level:
            bus.write(SR, input_bit(n))
            edge_seen = False


# ---------------------------------------------------------------------- wired to the board's devices


def test_uart_and_virtio_mmio_interrupts_through_uic0() -> None:
    """The bamboo wiring: the 16550 on input 0 and a virtio-mmio rng on input 16, handled as Linux does."""
    bus, uic, out, crit = make()
    uart = Uart16550(BufferSerial(), uic.input(layout.UART0_UIC_INPUT))
    rng = Driver(VirtioRng(), irq=uic.input(layout.virtio_mmio_uic_input(0)))
    for n in (layout.UART0_UIC_INPUT, layout.virtio_mmio_uic_input(0)):
        linux_set_type(bus, n, edge=False, high=True)
        linux_unmask(bus, n, level=True)
    assert not out.level

    uart.write(1, 1, 0x02)  # IER: transmitter-empty interrupt; the THR is empty, so it fires at once
    assert out.level and not crit.level and linux_get_irq(bus) == 0
    assert uart.read(2, 1) & 0x0F == 0x02  # reading IIR with THRI pending clears it
    assert not out.level and linux_get_irq(bus) is None

    rng.init()
    buf = rng.alloc(16)
    rng.submit(0, [(buf, 16, True)])
    assert out.level and linux_get_irq(bus) == 16
    rng.w(Reg.INTERRUPT_ACK, rng.r(Reg.INTERRUPT_STATUS))
    assert not out.level and bus.read(MSR) == 0
