"""The MC146818 RTC: host time, formats, UIP timing (Linux's CPU frequency estimate), IRQs, NVRAM, fuzzing."""

from __future__ import annotations

import calendar
import datetime
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmpy.vmm.devices.mc146818 import (
    NS_PER_S,
    UIP_HOLD_NS,
    Mc146818Rtc,
    civil_from_days,
    days_from_civil,
    periodic_rate_hz,
)
from tests.unit.fakes import RecordingIrq

SEC, SEC_ALARM, MIN, MIN_ALARM, HOUR, HOUR_ALARM, DOW, DOM, MON, YEAR = range(10)
REG_A, REG_B, REG_C, REG_D = 10, 11, 12, 13
UIP = 0x80
# 2026-11-21 12:46:33.25 UTC, a Saturday
WALL_NS = calendar.timegm((2026, 11, 21, 12, 46, 33)) * NS_PER_S + 250_000_000
T0 = 5_000_000_000_000


class FakeClock:
    def __init__(self, now: int = T0, step: int = 0) -> None:
        self.now = now
        self.step = step  # advanced on every read: a guest that takes time per access

    def __call__(self) -> int:
        self.now += self.step
        return self.now



class Rig:
    def __init__(self, step: int = 0, wall_ns: int = WALL_NS) -> None:
        self.clock = FakeClock(step=step)
        self.irq = RecordingIrq()
        self.rtc = Mc146818Rtc(self.irq, self.clock, lambda: wall_ns)

    def cmos_read(self, index: int) -> int:
        self.rtc.write(0, 1, index)
        return self.rtc.read(1, 1)

    def cmos_write(self, index: int, value: int) -> None:
        self.rtc.write(0, 1, index)
        self.rtc.write(1, 1, value)

    def to_next_second(self, extra_ns: int = 0) -> None:
        """Move the clock to the next second boundary (+ extra)."""
        phase = (self.clock.now - T0 + 250_000_000) % NS_PER_S
        self.clock.now += NS_PER_S - phase + extra_ns


@pytest.fixture
def rig() -> Rig:
    return Rig()


def test_power_on_registers_show_host_utc_in_bcd(rig: Rig) -> None:
    assert rig.cmos_read(REG_A) == 0x26
    assert rig.cmos_read(REG_B) == 0x02
    assert rig.cmos_read(REG_C) == 0x00
    assert rig.cmos_read(REG_D) == 0x80
    assert [rig.cmos_read(i) for i in (SEC, MIN, HOUR, DOW, DOM, MON, YEAR)] == [
        0x33,
        0x46,
        0x12,
        0x07,
        0x21,
        0x11,
        0x26,
    ]
    assert rig.cmos_read(0x32) == 0x20
    assert rig.rtc.rtc_seconds() == WALL_NS // NS_PER_S


def test_time_advances_at_wall_clock_second_boundaries(rig: Rig) -> None:
    rig.clock.now += 749_999_999
    assert rig.cmos_read(SEC) == 0x33
    rig.clock.now += 1
    assert rig.cmos_read(SEC) == 0x34
    rig.clock.now += 3600 * NS_PER_S
    assert rig.cmos_read(HOUR) == 0x13 and rig.cmos_read(SEC) == 0x34


def test_binary_and_12_hour_formats(rig: Rig) -> None:
    rig.cmos_write(REG_B, 0x04)  # binary, 12-hour
    assert rig.cmos_read(SEC) == 33 and rig.cmos_read(MIN) == 46
    assert rig.cmos_read(HOUR) == 0x80 | 12  # 12 PM
    rig.cmos_write(REG_B, 0x00)  # BCD, 12-hour
    rig.clock.now += 3600 * NS_PER_S
    assert rig.cmos_read(HOUR) == 0x81  # 1 PM
    rig.clock.now += 12 * 3600 * NS_PER_S
    assert rig.cmos_read(HOUR) == 0x01  # 1 AM
    assert rig.cmos_read(DOW) == 0x01  # Sunday


def test_uip_is_set_for_the_last_244us_of_each_second(rig: Rig) -> None:
    rig.to_next_second(-UIP_HOLD_NS - 1)
    assert rig.cmos_read(REG_A) & UIP == 0
    rig.clock.now += 2
    assert rig.cmos_read(REG_A) & UIP
    assert rig.cmos_read(SEC) == 0x33  # the update has not happened yet
    rig.clock.now += UIP_HOLD_NS - 1
    assert rig.cmos_read(REG_A) & UIP == 0
    assert rig.cmos_read(SEC) == 0x34


def estimate_frequencies(rig: Rig) -> tuple[int, int]:
    """arch/mips/mti-malta/malta-time.c estimate_frequencies(), with host ns standing for CP0 Count."""
    reads = 0

    def reg_a() -> int:
        nonlocal reads
        reads += 1
        return rig.cmos_read(REG_A)

    while reg_a() & UIP:
        pass
    while not reg_a() & UIP:
        pass
    start = rig.clock.now
    while reg_a() & UIP:
        pass
    secs1 = rig.cmos_read(SEC)
    while not reg_a() & UIP:
        pass
    count = rig.clock.now
    while reg_a() & UIP:
        pass
    secs2 = rig.cmos_read(SEC)
    ctrl = rig.cmos_read(REG_B)
    if not ctrl & 0x04:
        secs1 = (secs1 >> 4) * 10 + (secs1 & 0xF)
        secs2 = (secs2 >> 4) * 10 + (secs2 & 0xF)
    secs = secs2 - secs1
    if secs < 1:
        secs += 60
    return (count - start) // secs, reads


@pytest.mark.parametrize("step_ns", [3_000, 11_000, 60_000])
def test_linux_frequency_estimate_measures_one_second(step_ns: int) -> None:
    rig = Rig(step=step_ns)
    per_second, reads = estimate_frequencies(rig)
    assert abs(per_second - NS_PER_S) <= 4 * step_ns
    assert reads > NS_PER_S // step_ns  # the guest polls for one to two seconds


@pytest.mark.parametrize("step_ns", [300_000, 5_000_000])
def test_missed_uip_window_is_caught_up(step_ns: int) -> None:
    """A guest delayed past the 244 us window (host scheduling, the GIL) still sees each update."""
    rig = Rig(step=step_ns)
    per_second, _ = estimate_frequencies(rig)
    assert abs(per_second - NS_PER_S) <= 4 * step_ns


def test_rare_reads_do_not_see_spurious_uip(rig: Rig) -> None:
    rig.to_next_second(-300_000_000)
    assert rig.cmos_read(REG_A) & UIP == 0
    rig.clock.now += 600_000_000  # across the boundary, but not polling
    assert rig.cmos_read(REG_A) & UIP == 0


def test_set_bit_freezes_and_restarts_from_registers(rig: Rig) -> None:
    b = rig.cmos_read(REG_B)
    rig.cmos_write(REG_B, b | 0x80 | 0x10)
    assert rig.cmos_read(REG_B) & 0x10 == 0  # SET clears UIE
    rig.to_next_second(-100)
    assert rig.cmos_read(REG_A) & UIP == 0  # no updates while SET
    for index, value in ((SEC, 0x59), (MIN, 0x59), (HOUR, 0x23), (DOM, 0x31), (MON, 0x12), (YEAR, 0x99)):
        rig.cmos_write(index, value)
    rig.clock.now += 5 * NS_PER_S
    assert rig.cmos_read(SEC) == 0x59
    rig.cmos_write(REG_B, b)
    assert rig.rtc.rtc_seconds() == calendar.timegm((2099, 12, 31, 23, 59, 59))
    rig.to_next_second()
    assert [rig.cmos_read(i) for i in (SEC, MIN, HOUR, DOM, MON, YEAR)] == [0, 0, 0, 1, 1, 0]
    assert rig.cmos_read(0x32) == 0x21


def test_writing_time_while_running_rebases(rig: Rig) -> None:
    rig.cmos_write(MIN, 0x00)
    assert rig.cmos_read(MIN) == 0x00 and rig.cmos_read(SEC) == 0x33
    rig.clock.now += 60 * NS_PER_S
    assert rig.cmos_read(MIN) == 0x01


def test_divider_reset_restarts_half_a_second_later(rig: Rig) -> None:
    rig.cmos_write(REG_A, 0x70)
    rig.clock.now += 10 * NS_PER_S
    assert rig.cmos_read(SEC) == 0x33  # held
    rig.cmos_write(REG_A, 0x26)
    rig.clock.now += 499_999_999
    assert rig.cmos_read(SEC) == 0x33
    rig.clock.now += 1
    assert rig.cmos_read(SEC) == 0x34


def test_linux_init_rtc_leaves_a_running_clock(rig: Rig) -> None:
    """init_rtc(): select the 32 kHz time base if needed, clear SET."""
    freq = rig.cmos_read(REG_A)
    if freq & 0x70 != 0x20:
        rig.cmos_write(REG_A, 0x20)
    ctrl = rig.cmos_read(REG_B)
    if ctrl & 0x80:
        rig.cmos_write(REG_B, ctrl & ~0x80)
    assert rig.rtc.state().running


def test_periodic_interrupt(rig: Rig) -> None:
    assert periodic_rate_hz(6) == 1024 and periodic_rate_hz(1) == 256 and periodic_rate_hz(15) == 2
    rig.cmos_read(REG_C)
    rig.cmos_write(REG_B, 0x02 | 0x40)
    deadline = rig.rtc.next_deadline_ns()
    assert deadline is not None and 0 < deadline - rig.clock.now <= NS_PER_S // 1024 + 1
    rig.clock.now = deadline
    rig.rtc.poll()
    assert rig.irq.level
    assert rig.rtc.next_deadline_ns() is None  # nothing more to deliver until C is read
    assert rig.cmos_read(REG_C) == 0xC0
    assert not rig.irq.level
    assert rig.cmos_read(REG_C) == 0x00


def test_update_ended_interrupt(rig: Rig) -> None:
    rig.cmos_read(REG_C)
    rig.cmos_write(REG_B, 0x02 | 0x10)
    deadline = rig.rtc.next_deadline_ns()
    assert deadline == T0 + 750_000_000
    rig.clock.now = deadline
    rig.rtc.poll()
    assert rig.irq.level
    assert rig.cmos_read(REG_C) == 0xD0  # IRQF | UF, and PF: the 1024 Hz periodic flag runs regardless
    assert rig.cmos_read(SEC) == 0x34


def test_alarm_interrupt_and_dont_care(rig: Rig) -> None:
    rig.cmos_write(SEC_ALARM, 0x40)
    rig.cmos_write(MIN_ALARM, 0x46)
    rig.cmos_write(HOUR_ALARM, 0x12)
    rig.cmos_write(REG_B, 0x02 | 0x20)
    deadline = rig.rtc.next_deadline_ns()
    assert deadline == T0 + 750_000_000 + 6 * NS_PER_S
    rig.clock.now = deadline
    rig.rtc.poll()
    assert rig.irq.level
    assert rig.cmos_read(REG_C) == 0xF0  # IRQF | AF | UF | PF
    rig.cmos_write(HOUR_ALARM, 0xC0)
    rig.cmos_write(MIN_ALARM, 0xFF)  # fires at xx:xx:40 every minute
    assert rig.rtc.next_deadline_ns() == deadline + 60 * NS_PER_S


def test_flags_set_without_enables_and_enabling_raises_at_once(rig: Rig) -> None:
    rig.cmos_read(REG_C)
    rig.clock.now += 2 * NS_PER_S
    rig.rtc.poll()
    assert not rig.irq.level
    rig.cmos_write(REG_B, 0x02 | 0x10)
    assert rig.irq.level
    rig.cmos_write(REG_B, 0x02)
    assert not rig.irq.level
    assert rig.cmos_read(REG_C) & 0x50 == 0x50  # UF and PF, IRQF clear


def test_nvram_banks_and_read_only_registers(rig: Rig) -> None:
    for index in range(14, 128):
        rig.cmos_write(index, index ^ 0x5A)
    assert all(rig.cmos_read(i) == i ^ 0x5A for i in range(14, 128) if i != 0x32)
    rig.rtc.write(2, 1, 0x85)  # upper bank index 5 -> byte 133
    rig.rtc.write(3, 1, 0xA7)
    rig.rtc.write(2, 1, 0x05)
    assert rig.rtc.read(3, 1) == 0xA7
    assert rig.rtc.nvram()[133] == 0xA7
    rig.cmos_write(REG_D, 0)
    rig.cmos_write(REG_C, 0xFF)
    assert rig.cmos_read(REG_D) == 0x80 and rig.cmos_read(REG_C) == 0
    assert rig.rtc.read(0, 1) == 0xFF and rig.rtc.read(2, 1) == 0xFF
    rig.rtc.write(4, 1, REG_D)  # 0x74 aliases 0x70
    assert rig.rtc.read(5, 1) == 0x80
    rig.rtc.write(0, 1, 0x8D)  # NMI mask bit
    assert rig.rtc.state().nmi_masked and rig.rtc.read(1, 1) == 0x80


def test_reset_clears_interrupt_enables(rig: Rig) -> None:
    rig.cmos_write(REG_B, 0x02 | 0x70)
    rig.clock.now += NS_PER_S
    rig.rtc.poll()
    assert rig.irq.level
    rig.rtc.reset()
    assert not rig.irq.level and rig.cmos_read(REG_B) == 0x02


def test_read_path_is_cheap() -> None:
    rtc = Mc146818Rtc(None)
    rtc.write(0, 1, REG_A)
    n = 50_000
    start = time.perf_counter()
    for _ in range(n):
        rtc.read(1, 1)
    per_read = (time.perf_counter() - start) / n
    assert per_read < 20e-6  # a few microseconds; the bus round trip dominates


@given(st.integers(-800_000, 3_000_000))
def test_calendar_round_trip(days: int) -> None:
    year, month, day = civil_from_days(days)
    assert days_from_civil(year, month, day) == days
    if 1 <= year <= 9999:
        assert datetime.date(year, month, day) == datetime.date(1970, 1, 1) + datetime.timedelta(days=days)


_ops = st.one_of(
    st.tuples(st.just("index"), st.integers(0, 255)),
    st.tuples(st.just("data"), st.integers(0, 255)),
    st.tuples(st.just("read"), st.integers(0, 7)),
    st.tuples(st.just("time"), st.integers(0, 3 * NS_PER_S)),
    st.tuples(st.just("poll"), st.just(0)),
    st.tuples(
        st.just("reg"), st.tuples(st.sampled_from([REG_A, REG_B, 1, 3, 5, 0, 4, 9]), st.integers(0, 255))
    ),
)


@settings(max_examples=300, deadline=None)
@given(ops=st.lists(_ops, max_size=60))
def test_fuzz_register_interface(ops: list[tuple[str, object]]) -> None:
    rig = Rig()
    for op, arg in ops:
        if op == "index":
            rig.rtc.write(0, 1, arg)  # type: ignore[arg-type]
        elif op == "data":
            rig.rtc.write(1, 1, arg)  # type: ignore[arg-type]
        elif op == "read":
            assert 0 <= rig.rtc.read(arg, 1) <= 0xFF  # type: ignore[arg-type]
        elif op == "time":
            rig.clock.now += arg  # type: ignore[operator]
        elif op == "poll":
            rig.rtc.poll()
        else:
            index, value = arg  # type: ignore[misc]
            rig.cmos_write(index, value)
        rig.rtc.poll()
        s = rig.rtc.state()
        assert s.irq_level == rig.irq.level == bool(s.flags & s.reg_b & 0x70)
        assert s.reg_a & 0x80 == 0  # UIP is never stored
        deadline = rig.rtc.next_deadline_ns()
        assert deadline is None or deadline > rig.clock.now
