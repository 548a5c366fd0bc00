"""The cascaded 8259A pair: Linux's init sequence, INTA, EOI variants, edge/level, poll, fuzzing."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmpy.vmm.devices.i8259 import DualPic
from tests.unit.fakes import RecordingIrq

CMD, DATA = 0, 1
DEVICE_IRQS = [irq for irq in range(16) if irq != 2]



class Pics:
    def __init__(self) -> None:
        self.intr = RecordingIrq()
        self.pic = DualPic(self.intr)

    def mw(self, port: int, value: int) -> None:
        self.pic.master.write(port, 1, value)

    def sw(self, port: int, value: int) -> None:
        self.pic.slave.write(port, 1, value)

    def mr(self, port: int) -> int:
        return self.pic.master.read(port, 1)

    def sr(self, port: int) -> int:
        return self.pic.slave.read(port, 1)

    def linux_init(self) -> None:
        """arch/mips/kernel/i8259.c init_8259A(0), then every line unmasked."""
        self.mw(DATA, 0xFF)
        self.sw(DATA, 0xFF)
        self.mw(CMD, 0x11)
        self.mw(DATA, 0x00)
        self.mw(DATA, 0x04)
        self.mw(DATA, 0x01)
        self.sw(CMD, 0x11)
        self.sw(DATA, 0x08)
        self.sw(DATA, 0x02)
        self.sw(DATA, 0x01)
        self.mw(DATA, 0x00)
        self.sw(DATA, 0x00)

    def eoi(self, irq: int) -> None:
        """Linux's mask_and_ack_8259A EOIs: specific EOI to the slave, then to the master's cascade."""
        if irq >= 8:
            self.sw(CMD, 0x60 | (irq & 7))
            self.mw(CMD, 0x62)
        else:
            self.mw(CMD, 0x60 | irq)

    def pulse(self, irq: int) -> None:
        line = self.pic.input(irq)
        line.set(True)
        line.set(False)


@pytest.fixture
def p() -> Pics:
    pics = Pics()
    pics.linux_init()
    return pics


def test_linux_init_programs_vector_bases_and_masks(p: Pics) -> None:
    s = p.pic.state()
    assert s.master.vector_base == 0 and s.slave.vector_base == 8
    assert s.master.init_step == 0 and s.slave.init_step == 0
    assert p.mr(DATA) == 0 and p.sr(DATA) == 0
    assert not p.intr.level


def test_master_irq_delivery_ack_and_specific_eoi(p: Pics) -> None:
    p.pic.input(4).set(True)
    assert p.intr.level
    assert p.pic.acknowledge() == 4
    assert not p.intr.level  # in service: IRQ4 cannot interrupt itself
    p.mw(CMD, 0x0B)
    assert p.mr(CMD) == 0x10  # ISR
    p.mw(CMD, 0x0A)
    assert p.mr(CMD) == 0x00  # IRR: the edge was consumed by INTA
    p.pic.input(4).set(False)
    p.eoi(4)
    p.mw(CMD, 0x0B)
    assert p.mr(CMD) == 0
    assert not p.intr.level


def test_cascaded_slave_irq(p: Pics) -> None:
    p.pic.input(8).set(True)
    assert p.intr.level
    assert p.pic.acknowledge() == 8
    s = p.pic.state()
    assert s.master.isr == 0x04 and s.slave.isr == 0x01
    p.eoi(8)
    s = p.pic.state()
    assert s.master.isr == 0 and s.slave.isr == 0


def test_priority_and_nesting(p: Pics) -> None:
    p.pic.input(3).set(True)
    p.pic.input(1).set(True)
    assert p.pic.acknowledge() == 1
    assert not p.intr.level  # IRQ3 is lower priority than IRQ1 in service
    p.eoi(1)
    assert p.intr.level
    assert p.pic.acknowledge() == 3
    # A higher-priority request interrupts a lower one in service.
    p.pic.input(0).set(True)
    assert p.intr.level
    assert p.pic.acknowledge() == 0
    # Slave IRQs rank at the cascade's place: between IRQ1 and IRQ3.
    p.eoi(0)
    p.pic.input(12).set(True)
    assert p.intr.level
    assert p.pic.acknowledge() == 12


def test_spurious_master_irq7(p: Pics) -> None:
    assert p.pic.acknowledge() == 7
    assert p.pic.state().master.isr == 0  # no ISR bit: Linux reports "spurious 8259A interrupt: IRQ7."


def test_vanished_slave_request_withdraws_the_cascade(p: Pics) -> None:
    p.pic.input(10).set(True)
    assert p.intr.level and p.pic.state().master.irr & 0x04
    p.sw(DATA, 0x04)  # masked on the slave before the CPU took it: the slave's INT drops
    assert not p.intr.level
    assert p.pic.state().master.irr & 0x04 == 0
    assert p.pic.acknowledge() == 7  # an INTA now is the master's spurious IR7, not IRQ15
    p.sw(DATA, 0x00)
    assert p.intr.level  # the edge-latched slave request comes back through a new cascade edge
    assert p.pic.acknowledge() == 10


def test_imr_masks_and_unmask_delivers(p: Pics) -> None:
    p.mw(DATA, 0x10)
    p.pic.input(4).set(True)
    assert not p.intr.level
    p.mw(DATA, 0x00)
    assert p.intr.level


def test_edge_is_latched_until_inta_even_if_line_falls(p: Pics) -> None:
    p.pulse(6)
    assert p.intr.level
    assert p.pic.acknowledge() == 6


def test_edge_needs_a_new_rising_edge(p: Pics) -> None:
    line = p.pic.input(5)
    line.set(True)
    assert p.pic.acknowledge() == 5
    p.eoi(5)
    line.set(True)  # still high: no new edge
    assert not p.intr.level
    line.set(False)
    line.set(True)
    assert p.intr.level


def test_level_triggered_follows_line_and_retriggers(p: Pics) -> None:
    p.pic.elcr.write(1, 1, 0x04)  # IRQ10 level-triggered
    line = p.pic.input(10)
    line.set(True)
    assert p.pic.acknowledge() == 10
    p.eoi(10)
    assert p.intr.level  # line still high: requests again
    line.set(False)
    assert not p.intr.level
    line.set(True)
    line.set(False)
    assert not p.intr.level  # a level that went away is not latched


def test_elcr_reserved_bits_read_zero(p: Pics) -> None:
    p.pic.elcr.write(0, 2, 0xFFFF)
    assert p.pic.elcr.read(0, 2) == 0xDEF8
    assert p.pic.elcr.read(0, 1) == 0xF8 and p.pic.elcr.read(1, 1) == 0xDE


def test_icw1_resets_edge_sense(p: Pics) -> None:
    p.pic.input(3).set(True)
    p.linux_init()
    assert not p.intr.level  # the line was already high: it must fall and rise again
    p.pic.input(3).set(False)
    p.pic.input(3).set(True)
    assert p.intr.level


def test_ocw3_poll_mode(p: Pics) -> None:
    p.pic.input(9).set(True)
    p.mw(CMD, 0x0C)
    assert p.mr(CMD) == 0x82  # master: cascade
    p.sw(CMD, 0x0C)
    assert p.sr(DATA) == 0x81  # slave IR1, read from either port
    s = p.pic.state()
    assert s.master.isr == 0x04 and s.slave.isr == 0x02
    p.mw(CMD, 0x0C)
    assert p.mr(CMD) == 0x00  # nothing requesting
    assert p.mr(DATA) == 0x00  # poll ended: IMR again


def test_non_specific_eoi_clears_highest_in_service(p: Pics) -> None:
    p.pic.input(5).set(True)
    assert p.pic.acknowledge() == 5
    p.pic.input(1).set(True)
    assert p.pic.acknowledge() == 1
    p.mw(CMD, 0x20)
    assert p.pic.state().master.isr == 0x20
    p.mw(CMD, 0x20)
    assert p.pic.state().master.isr == 0


def test_rotation_commands(p: Pics) -> None:
    p.pic.input(1).set(True)
    assert p.pic.acknowledge() == 1
    p.mw(CMD, 0xA0)  # rotate on non-specific EOI: IR1 becomes lowest
    assert p.pic.state().master.priority_add == 2
    p.pic.input(1).set(False)
    p.pic.input(1).set(True)
    p.pic.input(4).set(True)
    assert p.pic.acknowledge() == 4
    p.mw(CMD, 0xE4)  # rotate on specific EOI 4
    assert p.pic.state().master.priority_add == 5
    p.mw(CMD, 0xC7)  # set priority: IR7 lowest
    assert p.pic.state().master.priority_add == 0
    assert p.pic.acknowledge() == 1


def test_auto_eoi_does_not_set_isr() -> None:
    p = Pics()
    p.mw(CMD, 0x11)
    p.mw(DATA, 0x20)
    p.mw(DATA, 0x04)
    p.mw(DATA, 0x03)  # 8086 mode, AEOI
    p.pic.input(3).set(True)
    assert p.pic.acknowledge() == 0x23
    assert p.pic.state().master.isr == 0


def test_special_mask_mode_lets_lower_priorities_in(p: Pics) -> None:
    p.pic.input(3).set(True)
    assert p.pic.acknowledge() == 3
    p.mw(DATA, 0x08)  # mask the level in service
    p.pic.input(5).set(True)
    assert not p.intr.level
    p.mw(CMD, 0x68)  # OCW3: set special mask mode
    assert p.intr.level
    assert p.pic.acknowledge() == 5
    p.mw(CMD, 0x48)  # reset special mask mode


def test_icw_sequence_without_icw4_and_single_mode() -> None:
    p = Pics()
    p.mw(CMD, 0x12)  # single, no ICW4
    p.mw(DATA, 0x48)
    assert p.pic.state().master.init_step == 0
    p.mw(DATA, 0xFE)  # OCW1 right after ICW2
    assert p.mr(DATA) == 0xFE


def test_wide_accesses_split_into_bytes(p: Pics) -> None:
    p.pic.master.write(0, 2, 0xAA0B)  # OCW3 read ISR, then IMR = 0xaa
    assert p.pic.master.read(0, 2) == 0xAA00
    assert p.pic.master.read(1, 2) == 0xFFAA  # the second lane is outside the window


@pytest.mark.parametrize("irq", [-1, 2, 16])
def test_input_range(irq: int) -> None:
    with pytest.raises(ValueError):
        Pics().pic.input(irq)


def test_lines_from_many_threads(p: Pics) -> None:
    def worker(irq: int) -> None:
        line = p.pic.input(irq)
        for _ in range(500):
            line.set(True)
            line.set(False)

    threads = [threading.Thread(target=worker, args=(irq,)) for irq in (3, 4, 5, 9, 10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seen = set()
    while p.intr.level:
        vector = p.pic.acknowledge()
        seen.add(vector)
        p.eoi(vector)
    assert seen == {3, 4, 5, 9, 10}
    assert p.intr.changes == [c for i, c in enumerate(p.intr.changes) if i == 0 or c != p.intr.changes[i - 1]]


_ops = st.one_of(
    st.tuples(st.just("mw"), st.integers(0, 1), st.integers(0, 255)),
    st.tuples(st.just("sw"), st.integers(0, 1), st.integers(0, 255)),
    st.tuples(st.just("mr"), st.integers(0, 1), st.just(0)),
    st.tuples(st.just("sr"), st.integers(0, 1), st.just(0)),
    st.tuples(st.just("elcr"), st.integers(0, 1), st.integers(0, 255)),
    st.tuples(st.just("line"), st.sampled_from(DEVICE_IRQS), st.booleans()),
    st.tuples(st.just("inta"), st.just(0), st.just(0)),
)


@settings(max_examples=400, deadline=None)
@given(ops=st.lists(_ops, max_size=80), init=st.booleans())
def test_fuzz_register_interface(ops: list[tuple[str, int, int]], init: bool) -> None:
    p = Pics()
    if init:
        p.linux_init()
    for op, a, b in ops:
        if op == "mw":
            p.mw(a, b)
        elif op == "sw":
            p.sw(a, b)
        elif op == "mr":
            assert 0 <= p.mr(a) <= 0xFF
        elif op == "sr":
            assert 0 <= p.sr(a) <= 0xFF
        elif op == "elcr":
            p.pic.elcr.write(a, 1, b)
        elif op == "line":
            p.pic.input(a).set(bool(b))
        else:
            assert 0 <= p.pic.acknowledge() <= 0xFF
        s = p.pic.state()
        for chip in (s.master, s.slave):
            assert 0 <= chip.irr <= 0xFF and 0 <= chip.isr <= 0xFF and 0 <= chip.imr <= 0xFF
            assert chip.irr & chip.elcr == chip.line_levels & chip.elcr  # level requests follow the line
            assert chip.elcr & ~0xF8 == 0 if chip is s.master else chip.elcr & ~0xDE == 0
        # INTR is exactly "the master has something to deliver", and the line saw every change.
        assert s.intr == s.master.output == p.intr.level
        assert bool(s.master.line_levels & 0x04) == s.slave.output
