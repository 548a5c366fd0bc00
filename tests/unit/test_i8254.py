"""The 8254 PIT: counting modes, access modes, latches, read-back, gate 2, IRQ0 edges, fuzzing."""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmpy.vmm.devices.i8254 import I8254, NS_PER_S, PIT_HZ, RunState
from tests.unit.fakes import RecordingIrq

CONTROL = 3
T0 = 1_000_000_000_000


class FakeClock:
    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def ticks(self, n: int) -> None:
        """Advance by exactly enough time for `n` more PIT clocks."""
        self.now += -((-n * NS_PER_S) // PIT_HZ)



class Rig:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.irq = RecordingIrq()
        self.pit = I8254(self.irq, self.clock)

    def ctl(self, value: int) -> None:
        self.pit.write(CONTROL, 1, value)

    def w(self, counter: int, value: int) -> None:
        self.pit.write(counter, 1, value)

    def r(self, counter: int) -> int:
        return self.pit.read(counter, 1)

    def program(self, counter: int, mode: int, count: int, bcd: bool = False) -> None:
        self.ctl(counter << 6 | 0x30 | mode << 1 | int(bcd))
        self.w(counter, count & 0xFF)
        self.w(counter, count >> 8)

    def read16(self, counter: int) -> int:
        self.ctl(counter << 6)  # counter latch
        return self.r(counter) | self.r(counter) << 8

    def run_to_deadline(self) -> None:
        deadline = self.pit.next_deadline_ns()
        assert deadline is not None and deadline > self.clock.now
        self.clock.now = deadline
        self.pit.poll(deadline)


@pytest.fixture
def rig() -> Rig:
    return Rig()


def test_reset_state_is_qemus(rig: Rig) -> None:
    s0 = rig.pit.counter_state(0)
    assert (s0.mode, s0.period, s0.running, s0.gate) == (3, 0x10000, True, True)
    assert rig.pit.counter_state(2).gate is False
    assert rig.irq.level  # mode 3 starts in the high half
    rig.clock.ticks(0x8000)
    rig.pit.poll()
    assert not rig.irq.level
    rig.run_to_deadline()
    assert rig.irq.level and rig.irq.rising_edges == 2


def test_linux_periodic_tick_and_shutdown(rig: Rig) -> None:
    """drivers/clocksource/i8253.c: pit_set_periodic, then pit_shutdown when the R4K timer takes over."""
    latch = (PIT_HZ + 125) // 250
    rig.ctl(0x34)
    rig.w(0, latch & 0xFF)
    rig.w(0, latch >> 8)
    edges = rig.irq.rising_edges
    start = rig.clock.now
    for _ in range(5):
        rig.run_to_deadline()
    assert rig.irq.rising_edges == edges + 5
    assert abs((rig.clock.now - start) - 5 * latch * NS_PER_S / PIT_HZ) < 1000
    # Shutdown: mode 0 with count 0 -> OUT low now, one rising edge 65536 clocks later.
    rig.ctl(0x30)
    rig.w(0, 0)
    rig.w(0, 0)
    assert not rig.irq.level
    shutdown_at = rig.clock.now
    rig.run_to_deadline()
    assert rig.irq.level
    assert rig.clock.now - shutdown_at == pytest.approx(65536 * NS_PER_S / PIT_HZ, abs=1000)
    assert rig.pit.next_deadline_ns() is None  # then quiet


def test_mode0_interrupt_on_terminal_count(rig: Rig) -> None:
    rig.program(0, 0, 1000)
    assert not rig.irq.level
    rig.clock.ticks(999)
    rig.pit.poll()
    assert not rig.irq.level
    assert rig.read16(0) == 1
    rig.clock.ticks(1)
    rig.pit.poll()
    assert rig.irq.level
    rig.clock.ticks(5)
    assert rig.read16(0) == 0xFFFB  # counting on after the terminal count


def test_mode0_lsb_write_stops_counting(rig: Rig) -> None:
    rig.program(0, 0, 100)
    rig.clock.ticks(10)
    rig.w(0, 0x50)  # first byte stops the count
    assert rig.pit.counter_state(0).running is False
    rig.clock.ticks(500)
    rig.pit.poll()
    assert not rig.irq.level
    rig.w(0, 0x00)
    assert rig.pit.counter_state(0).running


def test_mode2_rate_generator_counts_and_pulses(rig: Rig) -> None:
    rig.program(0, 2, 10)
    assert rig.read16(0) == 10
    rig.clock.ticks(3)
    assert rig.read16(0) == 7
    rig.clock.ticks(6)  # count 1: OUT low for one clock
    assert not rig.pit.output(0)
    rig.clock.ticks(1)
    assert rig.pit.output(0) and rig.read16(0) == 10


def test_mode3_square_wave_levels(rig: Rig) -> None:
    rig.program(2, 3, 10)
    rig.pit.set_gate(2, True)
    levels = []
    for _ in range(20):
        levels.append(rig.pit.output(2))
        rig.clock.ticks(1)
    assert levels == [True] * 5 + [False] * 5 + [True] * 5 + [False] * 5
    rig.program(2, 3, 5)  # odd: high (N+1)/2, low (N-1)/2
    levels = []
    for _ in range(5):
        levels.append(rig.pit.output(2))
        rig.clock.ticks(1)
    assert levels == [True, True, True, False, False]


def test_mode4_software_strobe(rig: Rig) -> None:
    rig.program(0, 4, 20)
    assert rig.irq.level
    rig.clock.ticks(20)
    assert not rig.pit.output(0)
    rig.run_to_deadline()
    assert rig.irq.level
    assert rig.pit.next_deadline_ns() is None


def test_mode1_one_shot_needs_gate_trigger(rig: Rig) -> None:
    rig.program(2, 1, 50)
    assert rig.pit.output(2)
    rig.clock.ticks(100)
    assert rig.pit.output(2)  # no trigger yet
    rig.pit.set_gate(2, True)
    assert not rig.pit.output(2)
    rig.clock.ticks(50)
    assert rig.pit.output(2)
    rig.pit.set_gate(2, False)
    rig.pit.set_gate(2, True)  # retrigger
    assert not rig.pit.output(2)


def test_gate_pauses_mode0_and_restarts_mode2(rig: Rig) -> None:
    rig.pit.set_gate(2, True)
    rig.program(2, 0, 100)
    rig.clock.ticks(40)
    rig.pit.set_gate(2, False)
    rig.clock.ticks(1000)
    assert rig.read16(2) == 60
    rig.pit.set_gate(2, True)
    rig.clock.ticks(60)
    assert rig.pit.output(2)
    rig.program(2, 2, 100)
    rig.clock.ticks(30)
    rig.pit.set_gate(2, False)
    assert rig.pit.output(2) and rig.pit.counter_state(2).running is False
    rig.pit.set_gate(2, True)
    assert rig.read16(2) == 100  # reloaded


def test_access_modes_lsb_msb(rig: Rig) -> None:
    rig.ctl(0x94)  # counter 2, LSB only, mode 2
    rig.w(2, 0x80)
    assert rig.pit.counter_state(2).reload == 0x80
    rig.ctl(0xA4)  # counter 2, MSB only, mode 2
    rig.w(2, 0x12)
    assert rig.pit.counter_state(2).reload == 0x1200
    rig.pit.set_gate(2, True)
    rig.clock.ticks(0x100)
    assert rig.r(2) == 0x11


def test_live_word_reads_alternate_bytes(rig: Rig) -> None:
    rig.program(0, 2, 0x1234)
    assert rig.r(0) == 0x34
    assert rig.r(0) == 0x12


def test_latch_freezes_value_until_read(rig: Rig) -> None:
    rig.program(0, 0, 0x2000)
    rig.clock.ticks(0x10)
    rig.ctl(0x00)
    rig.clock.ticks(0x100)
    rig.ctl(0x00)  # a second latch before reading is ignored
    assert rig.r(0) == 0xF0
    assert rig.r(0) == 0x1F
    assert rig.read16(0) == 0x2000 - 0x110


def test_read_back_status_and_count(rig: Rig) -> None:
    rig.ctl(0x36)  # counter 0, LSB/MSB, mode 3
    rig.ctl(0xE2)  # read-back status of counter 0
    status = rig.r(0)
    assert status == 0x40 | 0x30 | 0x06 | 0x80  # null count, access, mode 3, OUT high
    rig.w(0, 0x00)
    rig.w(0, 0x10)
    rig.clock.ticks(0x100)
    rig.ctl(0xC2)  # latch status and count
    assert rig.r(0) & 0x40 == 0  # count loaded
    assert rig.r(0) | rig.r(0) << 8 == 0x1000 - 0x200  # mode 3 counts by two


def test_bcd_counting(rig: Rig) -> None:
    rig.program(0, 0, 0x1000, bcd=True)  # 1000 decimal
    rig.clock.ticks(1)
    assert rig.read16(0) == 0x0999
    rig.clock.ticks(999)
    rig.pit.poll()
    assert rig.irq.level
    rig.program(0, 2, 0x0000, bcd=True)  # 0 = 10000 in BCD
    assert rig.pit.counter_state(0).period == 10000


def test_missed_edges_coalesce_into_one_pulse(rig: Rig) -> None:
    rig.program(0, 2, 100)
    edges = rig.irq.rising_edges
    rig.clock.ticks(10 * 100 + 50)
    rig.pit.poll()
    assert rig.irq.rising_edges == edges + 1
    assert rig.irq.level


def test_deadline_only_for_counter0_rising_edges(rig: Rig) -> None:
    rig.ctl(0x30)  # mode 0, no count yet
    assert rig.pit.next_deadline_ns() is None
    rig.w(0, 10)
    rig.w(0, 0)
    deadline = rig.pit.next_deadline_ns()
    assert deadline == T0 + -((-10 * NS_PER_S) // PIT_HZ)


def test_control_word_resets_output_and_notifies(rig: Rig) -> None:
    calls = []
    rig.pit.on_deadline_change = lambda: calls.append(1)
    rig.program(0, 0, 5)
    rig.clock.ticks(10)
    rig.pit.poll()
    assert rig.irq.level
    rig.ctl(0x30)
    assert not rig.irq.level
    assert calls


def test_wide_access_and_control_port_reads(rig: Rig) -> None:
    assert rig.pit.read(3, 1) == 0xFF
    rig.pit.write(0, 4, 0x34_00_00_00)  # lanes: counter 0,1,2 get 0, then the control word
    assert rig.pit.counter_state(0).mode == 2


def test_deadline_timer_thread_delivers_irq0() -> None:
    from kvmpy.vmm.devices.timer import DeadlineTimer

    got = threading.Event()

    class Irq:
        def set(self, level: bool) -> None:
            if level:
                got.set()

    pit = I8254(None)
    timer = DeadlineTimer([pit])
    timer.start()
    try:
        pit.write(CONTROL, 1, 0x30)
        pit.irq = Irq()
        start = time.monotonic()
        pit.write(0, 1, 0xA9)  # ~5 ms
        pit.write(0, 1, 0x17)
        assert got.wait(2.0)
        assert time.monotonic() - start >= 0.004
    finally:
        timer.stop()
    assert not timer.running


_ops = st.one_of(
    st.tuples(st.just("ctl"), st.integers(0, 255)),
    st.tuples(st.just("w"), st.tuples(st.integers(0, 2), st.integers(0, 255))),
    st.tuples(st.just("r"), st.integers(0, 3)),
    st.tuples(st.just("gate"), st.booleans()),
    st.tuples(st.just("time"), st.integers(0, 200_000)),
    st.tuples(st.just("poll"), st.just(0)),
)


@settings(max_examples=400, deadline=None)
@given(ops=st.lists(_ops, max_size=60))
def test_fuzz_register_interface(ops: list[tuple[str, object]]) -> None:
    rig = Rig()
    for op, arg in ops:
        if op == "ctl":
            rig.ctl(arg)  # type: ignore[arg-type]
        elif op == "w":
            counter, value = arg  # type: ignore[misc]
            rig.w(counter, value)
        elif op == "r":
            assert 0 <= rig.pit.read(arg, 1) <= 0xFF  # type: ignore[arg-type]
        elif op == "gate":
            rig.pit.set_gate(2, bool(arg))
        elif op == "time":
            rig.clock.now += arg  # type: ignore[operator]
        else:
            rig.pit.poll()
        # After syncing, IRQ0 shows counter 0's OUT and the next deadline lies in the future.
        rig.pit.poll()
        assert rig.irq.level == rig.pit.output(0)
        deadline = rig.pit.next_deadline_ns()
        assert deadline is None or deadline > rig.clock.now
        for i in range(3):
            assert rig.pit._counters[i].state in tuple(RunState)
