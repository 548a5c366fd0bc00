"""The PIIX4 south bridge: ISA wiring on the bus, power-off, reset control, small ports, DMA, timers."""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmpy.vmm.bus import Bus
from kvmpy.vmm.devices.timer import DeadlineTimer
from kvmpy.vmm.machines.malta.board import IsaDevices, add_isa_devices
from kvmpy.vmm.machines.malta.piix4 import (
    PIIX4_PM_CONFIG,
    REFRESH_PERIOD_NS,
    I8237Dma,
    Piix4Pm,
)
from tests.unit.fakes import RecordingIrq

ISA = 0x18000000  # the GT-64120's PCI I/O window: the tests reach the ports as the CPU does
T0 = 7_000_000_000_000


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


class Board:
    def __init__(self, start_timer: bool = False) -> None:
        self.pio = Bus("pio")
        self.bus = Bus()
        self.bus.add(ISA, 0x200000, self.pio, "pci-io")
        self.intr = RecordingIrq()
        self.poweroffs = 0
        self.resets = 0
        self.clock = FakeClock()
        self.isa: IsaDevices = add_isa_devices(
            self.pio,
            self.intr,
            self._poweroff,
            self._reset,
            time.monotonic_ns if start_timer else self.clock,
            start_timer=start_timer,
        )

    def _poweroff(self) -> None:
        self.poweroffs += 1

    def _reset(self) -> None:
        self.resets += 1

    def inb(self, port: int) -> int:
        return self.bus.read(ISA + port, 1)

    def outb(self, port: int, value: int) -> None:
        self.bus.write(ISA + port, 1, value)

    def inw(self, port: int) -> int:
        return self.bus.read(ISA + port, 2)

    def outw(self, port: int, value: int) -> None:
        self.bus.write(ISA + port, 2, value)

    def linux_pic_init(self, *irqs: int) -> None:
        """init_8259A(0), the cascade requested, then `irqs` unmasked as request_irq() would."""
        for port, value in (
            (0x21, 0xFF),
            (0xA1, 0xFF),
            (0x20, 0x11),
            (0x21, 0x00),
            (0x21, 0x04),
            (0x21, 0x01),
        ):
            self.outb(port, value)
        for port, value in ((0xA0, 0x11), (0xA1, 0x08), (0xA1, 0x02), (0xA1, 0x01)):
            self.outb(port, value)
        mask = 0xFFFF & ~(1 << 2)
        for irq in irqs:
            mask &= ~(1 << irq)
        self.outb(0x21, mask & 0xFF)
        self.outb(0xA1, mask >> 8)


@pytest.fixture
def board() -> Board:
    return Board()


def test_devices_are_mapped_at_their_ports(board: Board) -> None:
    names = {m.name: (m.base, m.size) for m in board.pio.mappings}
    assert names == {
        "dma1": (0x00, 0x20),
        "pic-master": (0x20, 2),
        "pit": (0x40, 4),
        "kbc-data": (0x60, 1),
        "port-b": (0x61, 1),
        "kbc-command": (0x64, 1),
        "rtc": (0x70, 8),
        "dma-pages": (0x80, 0x10),
        "port-92": (0x92, 1),
        "pic-slave": (0xA0, 2),
        "dma2": (0xC0, 0x20),
        "elcr": (0x4D0, 2),
        "reset-control": (0xCF9, 1),
    }
    board.outb(0x70, 0x0D)
    assert board.inb(0x71) == 0x80
    assert board.inb(0x64) == 0x18
    assert board.bus.fault is None


def test_rtc_interrupt_reaches_the_cpu_through_the_cascade(board: Board) -> None:
    board.linux_pic_init(8)
    board.outb(0x70, 0x0B)
    board.outb(0x71, 0x02 | 0x10)  # UIE
    board.clock.now += 1_000_000_000
    board.isa.poll()
    assert board.intr.level
    assert board.isa.pic.acknowledge() == 8
    board.outb(0x70, 0x0C)
    assert board.inb(0x71) & 0x90 == 0x90
    board.outb(0xA0, 0x60)
    board.outb(0x20, 0x62)
    assert not board.intr.level


def test_uart_irq_lines_are_pic_inputs(board: Board) -> None:
    board.linux_pic_init(3, 4)
    board.isa.com1_irq.set(True)
    assert board.isa.pic.acknowledge() == 4
    board.isa.com2_irq.set(True)
    board.outb(0x20, 0x64)
    assert board.isa.pic.acknowledge() == 3


def test_pit_irq0_through_the_pic(board: Board) -> None:
    board.linux_pic_init(0)
    board.outb(0x43, 0x30)
    board.outb(0x40, 0x10)
    board.outb(0x40, 0x00)
    deadline = board.isa.next_deadline_ns()
    assert deadline is not None
    board.clock.now = deadline
    board.isa.poll()
    assert board.isa.pic.acknowledge() == 0


def test_linux_piix4_poweroff_sequence(board: Board) -> None:
    """drivers/power/reset/piix4-poweroff.c, after fixup-malta.c set PMBA = 0x1000 and PMIOSE."""
    port = PIIX4_PM_CONFIG.pm_io_port(0x1000 | 1, 0x01)
    assert port == 0x1000
    board.isa.map_pm(port)
    board.isa.pm.press_power_button()
    while True:
        sts = board.inw(0x1000)
        if not sts & 0x0100:
            break
        board.outw(0x1000, sts)  # write 1 to clear
    assert board.poweroffs == 0
    board.outw(0x1004, 0x2000)  # SUS_EN | SUS_TYP soft-off
    assert board.poweroffs == 1
    assert board.isa.pm.powered_off


def test_pm_registers(board: Board) -> None:
    board.isa.map_pm(0x1000)
    board.outw(0x1004, 0x1C07)  # SCI_EN, BM_RLD, GBL_RLS (write-only), SUS_TYP 7 (no SUS_EN)
    assert board.inw(0x1004) == 0x1C03
    board.outw(0x1004, 0x2400)  # SUS_EN with SUS_TYP 1 (suspend to RAM): not supported, ignored
    assert board.poweroffs == 0
    assert board.inw(0x1004) == 0x0400  # SUS_EN reads 0
    board.outw(0x1002, 0xFFFF)
    assert board.inw(0x1002) == 0xFFFF
    t1 = board.bus.read(ISA + 0x1008, 4)
    board.clock.now += 1_000_000
    t2 = board.bus.read(ISA + 0x1008, 4)
    assert t2 - t1 == 3579  # 3.579545 MHz
    assert t2 < 1 << 24
    board.bus.write(ISA + 0x1008, 4, 0)  # read-only
    assert board.bus.read(ISA + 0x1008, 4) == t2
    assert board.bus.read(ISA + 0x103F, 2) == 0xFF00  # the lane past the block floats


def test_pm_block_moves_with_pmba(board: Board) -> None:
    assert PIIX4_PM_CONFIG.pm_io_port(0x1001, 0x00) is None
    board.isa.map_pm(0x1000)
    board.isa.map_pm(0x2040)
    assert board.inw(0x1004) == 0xFFFF  # unassigned now
    board.outw(0x2044, 0x2000)
    assert board.poweroffs == 1
    board.isa.map_pm(None)
    assert all(m.name != "piix4-pm" for m in board.pio.mappings)


def test_pm_config_defaults_for_the_pci_model() -> None:
    c = PIIX4_PM_CONFIG
    assert (c.vendor_id, c.device_id) == (0x8086, 0x7113)
    assert c.pmba_offset == 0x40 and c.pmba_default & 1 and c.pmba_write_mask == 0xFFC0
    assert c.pmregmisc_offset == 0x80 and c.pmregmisc_pmiose == 1
    assert c.smbba_default == 0x1101


def test_reset_control_register(board: Board) -> None:
    board.outb(0xCF9, 0x02)
    assert board.inb(0xCF9) == 0x02 and board.resets == 0
    board.outb(0xCF9, 0x06)
    assert board.resets == 1
    board.outb(0xCF9, 0x0E)
    assert board.resets == 2


def test_keyboard_controller_reset_pulse_resets_board(board: Board) -> None:
    board.outb(0x64, 0xFE)
    assert board.resets == 1


def test_port_b_gate_out2_and_refresh_toggle(board: Board) -> None:
    board.outb(0x43, 0xB6)  # counter 2, mode 3
    board.outb(0x42, 0x10)
    board.outb(0x42, 0x00)
    assert board.inb(0x61) & 0x20  # OUT2 high while the gate is low (mode 3)
    board.outb(0x61, 0x03)  # gate on, speaker on
    assert board.inb(0x61) & 0x0F == 0x03
    board.clock.now += 9 * 1_000_000_000 // 1_193_182  # 9+ clocks: the low half
    assert not board.inb(0x61) & 0x20
    first = board.inb(0x61) & 0x10
    board.clock.now += REFRESH_PERIOD_NS
    assert board.inb(0x61) & 0x10 != first
    board.outb(0x61, 0xF0)  # status bits are read-only
    assert board.inb(0x61) & 0xCF == 0x00


def test_port_92_and_post_port(board: Board) -> None:
    board.outb(0x92, 0xFF)
    assert board.inb(0x92) == 0x03 and board.resets == 0
    board.outb(0x80, 0x42)
    assert board.isa.dma_pages.post_code == 0x42 and board.inb(0x80) == 0x42
    board.outb(0x8F, 0x12)
    assert board.inb(0x8F) == 0x12


def test_dma_controller_registers(board: Board) -> None:
    board.outb(0xD4, 0x00)  # Linux's enable_dma(4): unmask the cascade channel
    assert board.isa.dma2.mask == 0x0E
    board.outb(0x0C, 0)  # clear flip-flop
    board.outb(0x04, 0x34)  # channel 2 address, LSB then MSB
    board.outb(0x04, 0x12)
    board.outb(0x05, 0xFF)
    board.outb(0x05, 0x01)
    board.outb(0x0C, 0)
    assert [board.inb(0x04), board.inb(0x04), board.inb(0x05), board.inb(0x05)] == [0x34, 0x12, 0xFF, 0x01]
    assert board.inb(0x14) == 0x34  # 0x10-0x1f alias 0x00-0x0f; the flip-flop is back on the low byte
    board.outb(0x0F, 0x05)
    assert board.inb(0x0F) == 0x05
    board.outb(0x0E, 0)
    assert board.inb(0x0F) == 0
    board.outb(0x0D, 0)  # master clear masks everything
    assert board.inb(0x0F) == 0x0F
    board.outb(0x0B, 0x56)
    assert board.isa.dma1.channels[2].mode == 0x54
    board.outb(0xC4, 0xAA)  # controller 2, channel 1 address (word-spaced registers)
    assert board.isa.dma2.channels[1].base_address & 0xFF == 0xAA


def test_dma_reg_shift() -> None:
    dma = I8237Dma(reg_shift=1)
    dma.write(0x14, 1, 0x00)  # register 0xa: single mask, channel 0 clear
    assert dma.mask == 0x0E


def test_timer_thread_delivers_rtc_update_interrupt() -> None:
    board = Board(start_timer=True)
    try:
        assert board.isa.timer.running
        board.linux_pic_init(8)
        got = threading.Event()
        original = board.intr.set

        def watch(level: bool) -> None:
            original(level)
            if level:
                got.set()

        board.intr.set = watch  # type: ignore[method-assign]
        board.outb(0x70, 0x0C)
        board.inb(0x71)
        board.outb(0x70, 0x0B)
        board.outb(0x71, 0x02 | 0x10)  # update-ended interrupts: within a second
        assert got.wait(2.5)
        assert board.isa.pic.acknowledge() == 8
    finally:
        board.isa.close()
    assert not board.isa.timer.running


def test_timer_thread_sleeps_without_deadlines() -> None:
    class Idle:
        on_deadline_change = None
        polls = 0

        def next_deadline_ns(self) -> int | None:
            return None

        def poll(self, now_ns: int | None = None) -> None:
            Idle.polls += 1

    timer = DeadlineTimer([Idle()])
    timer.start()
    time.sleep(0.2)
    assert Idle.polls == 1  # polled once, then waits for a notify
    timer.notify()
    time.sleep(0.05)
    assert Idle.polls == 2
    timer.stop()


def test_pm_standalone_out_of_window() -> None:
    pm = Piix4Pm(lambda: None)
    assert pm.read(0x40, 1) == 0xFF
    pm.write(0x40, 1, 0xFF)


@settings(max_examples=200, deadline=None)
@given(
    ops=st.lists(
        st.tuples(
            st.booleans(),
            st.sampled_from(
                [0x00, 0x08, 0x0C, 0x0F, 0x20, 0x21, 0x40, 0x42, 0x43, 0x60, 0x61, 0x64, 0x70, 0x71]
                + [
                    0x72,
                    0x73,
                    0x80,
                    0x92,
                    0xA0,
                    0xA1,
                    0xC0,
                    0xD4,
                    0x4D0,
                    0x4D1,
                    0xCF9,
                    0x1000,
                    0x1004,
                    0x1008,
                ]
            ),
            st.sampled_from([1, 2, 4]),
            st.integers(0, 2**32 - 1),
        ),
        max_size=60,
    )
)
def test_fuzz_isa_space_never_faults(ops: list[tuple[bool, int, int, int]]) -> None:
    board = Board()
    board.isa.map_pm(0x1000)
    for is_write, port, size, value in ops:
        if is_write:
            board.bus.write(ISA + port, size, value & ((1 << (8 * size)) - 1))
        else:
            assert 0 <= board.bus.read(ISA + port, size) < 1 << (8 * size)
        board.clock.now += 123_457
        board.isa.poll()
        assert board.bus.fault is None, board.bus.fault
        assert board.intr.level == board.isa.pic.output
