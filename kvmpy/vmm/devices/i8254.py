"""The PIIX4's Intel 8254 programmable interval timer (ports 0x40-0x43).

Three 16-bit down counters clocked at 1.193182 MHz (the ISA OSC / 12):

    counter 0  gate tied high, OUT drives ISA IRQ0
    counter 1  gate tied high, OUT unused (DRAM refresh on PCs)
    counter 2  gate = port 0x61 bit 0, OUT read back on port 0x61 bit 5 (speaker)

Time comes from a host monotonic nanosecond clock: every counter value and
OUT level is computed from the nanoseconds elapsed since the count was
loaded, so nothing ticks in the background. IRQ0 edges need a clock of their
own: the device reports `next_deadline_ns()` (the next rising edge of
counter 0's OUT) and delivers edges from `poll(now_ns)`; every port access
also brings IRQ0 up to date. `kvmpy.vmm.devices.timer.DeadlineTimer` is a
host thread that sleeps until the earliest deadline (no spinning); a board
may instead call `poll()` from its own loop. Edges missed while the host was
late are coalesced into one (the PIC latches edges anyway).

What Linux 6.1 (Debian 4kc-malta, CONFIG_I8253=y, CONFIG_CEVT_R4K=y,
CONFIG_CSRC_R4K=y, HZ=250) does with it: plat_time_init() calls
setup_pit_timer(), registering the PIT as the "pit" clockevent (rating 0)
and requesting IRQ0; the tick device programs it periodic (control 0x34:
mode 2, LSB/MSB, count 4773). Moments later the CP0 Count/Compare
clockevent (rating 300) replaces it and the PIT is shut down (control 0x30,
mode 0, then count 0x0000 = 65536), so it raises IRQ0 once about 55 ms
later and stays quiet. The i8253 clocksource is not registered (the PIT
clockevent is no longer periodic at arch_initcall time): the clocksource is
"MIPS" (Count). So IRQ0 is a boot-time formality on Malta, but the counters
are modelled fully for other guests.

Model notes:

- Reset state is QEMU's: every counter in mode 3 with count 65536 loaded at
  power-on (so IRQ0 runs at 18.2 Hz until the guest reprograms it), gates of
  counters 0 and 1 high, counter 2's low.
- The one-clock delay between writing a count and loading it into the
  counting element is not modelled (OUT changes are 838 ns early).
- Writing a new count in modes 2 and 3 restarts the period at once (QEMU);
  the datasheet loads it at the end of the current period.
- Mode 3 counter reads use "decrement by two" values for each half period;
  the exact odd-count sequence of the datasheet is approximated.
- Mode 0 with LSB-then-MSB access: writing the LSB stops counting, the MSB
  starts the new count (datasheet).
- Reading a 16-bit counter without a latch reads LSB and MSB at two moments,
  as on the real part.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from kvmpy.vmm.bus import IrqLine, read_lanes, write_lanes

log = logging.getLogger(__name__)

PIT_PORT = 0x40
PIT_WINDOW_BYTES = 4
PIT_HZ = 1_193_182
NS_PER_S = 1_000_000_000
NUM_COUNTERS = 3
CONTROL_PORT = 3


class Access(IntEnum):
    """Control word RW field: how the 16-bit count is read and written."""

    LATCH = 0  # counter latch command, not a mode
    LSB = 1
    MSB = 2
    WORD = 3  # LSB then MSB


class RunState(IntEnum):
    IDLE = 0  # no count running: after a control word, before a trigger, or gate low in modes 2/3
    RUNNING = 1
    PAUSED = 2  # modes 0/4 with the gate low: counting suspended


STATUS_OUT = 0x80
STATUS_NULL_COUNT = 0x40
READBACK_NOT_COUNT = 0x20
READBACK_NOT_STATUS = 0x10


@dataclass
class _Counter:
    gate: bool
    mode: int = 3  # effective mode 0..5 (6 and 7 are aliases of 2 and 3)
    mode_bits: int = 3  # M2..M0 as written, for the status byte
    access: int = Access.WORD
    bcd: bool = False
    period: int = 0x10000  # N of the running count
    reload: int = 0x10000  # N of the count register (waits for a trigger in modes 1/5)
    loaded: bool = False  # a count was written since the last control word
    state: RunState = RunState.IDLE
    load_ns: int = 0
    paused_ticks: int = 0
    idle_count: int = 0
    edge_ticks: int = 0  # elapsed ticks when IRQ edges were last delivered
    write_msb_next: bool = False
    write_lsb: int = 0
    read_msb_next: bool = False
    latch: int | None = None
    latch_msb_next: bool = False
    status_latch: int | None = None
    null_count: bool = True


@dataclass(frozen=True)
class CounterState:
    """A side-effect-free view of one counter at a moment."""

    mode: int
    access: int
    bcd: bool
    period: int  # N of the running count
    reload: int  # N last written (the count register)
    running: bool
    gate: bool
    count: int
    out: bool


def _from_bcd(value: int) -> int:
    return (value >> 12 & 0xF) * 1000 + (value >> 8 & 0xF) * 100 + (value >> 4 & 0xF) * 10 + (value & 0xF)


def _to_bcd(value: int) -> int:
    value %= 10000
    return (value // 1000) << 12 | (value // 100 % 10) << 8 | (value // 10 % 10) << 4 | value % 10


def _ticks_to_ns(ticks: int) -> int:
    """Nanoseconds until `ticks` clocks have elapsed (rounded up)."""
    return -((-ticks * NS_PER_S) // PIT_HZ)


class I8254:
    """The 8254 as a `BusDevice` at port 0x40 (offsets 0-2 counters, 3 control).

    `irq` receives counter 0's OUT (ISA IRQ0). `clock_ns` is the host
    monotonic clock in nanoseconds. The timed-device contract (shared with
    the RTC): `next_deadline_ns()` is when `poll()` next has something to
    deliver (None: nothing pending), `poll(now_ns)` delivers it, and
    `on_deadline_change` (set by a timer) is called whenever the guest
    reprogrammed the deadline. Thread-safe.
    """

    def __init__(
        self,
        irq: IrqLine | None = None,
        clock_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.irq = irq
        self.clock_ns = clock_ns
        self.on_deadline_change: Callable[[], None] | None = None
        self._lock = threading.RLock()
        self._irq_level = False
        self._counters = [_Counter(gate=i != 2) for i in range(NUM_COUNTERS)]
        self.reset()

    def reset(self) -> None:
        """Power-on state (QEMU's): mode 3, count 65536 loaded, counters 0 and 1 running."""
        with self._lock:
            now = self.clock_ns()
            for i, c in enumerate(self._counters):
                self._counters[i] = c = _Counter(gate=i != 2)
                self._load(c, 0, now)
            self._sync_irq(now)
        self._deadline_changed()

    # ------------------------------------------------------------------ bus
    def read(self, offset: int, size: int) -> int:
        if size == 1 and offset < CONTROL_PORT:
            with self._lock:
                return self._read_counter(self._counters[offset], self.clock_ns())
        # the control word register is write-only: its lane floats high
        return read_lanes(self._read_port, offset, size, CONTROL_PORT)

    def _read_port(self, port: int) -> int:
        with self._lock:
            return self._read_counter(self._counters[port], self.clock_ns())

    def write(self, offset: int, size: int, value: int) -> None:
        write_lanes(self._write_port, offset, size, value, PIT_WINDOW_BYTES)

    def _write_port(self, port: int, byte: int) -> None:
        with self._lock:
            now = self.clock_ns()
            self._sync_irq(now)  # deliver what happened under the old programming
            if port == CONTROL_PORT:
                self._write_control(byte, now)
            else:
                self._write_counter(port, byte, now)
            self._sync_irq(now)
        if port == CONTROL_PORT or port == 0:
            self._deadline_changed()

    # ------------------------------------------------------------------ gate / output (port 0x61)
    def set_gate(self, counter: int, level: bool) -> None:
        """Drive a counter's GATE input (counter 2: port 0x61 bit 0)."""
        with self._lock:
            now = self.clock_ns()
            self._sync_irq(now)
            self._set_gate(self._counters[counter], level, now)
            self._sync_irq(now)
        if counter == 0:
            self._deadline_changed()

    def gate(self, counter: int) -> bool:
        return self._counters[counter].gate

    def output(self, counter: int, now_ns: int | None = None) -> bool:
        """The OUT level of `counter` at `now_ns` (default: now)."""
        with self._lock:
            now = self.clock_ns() if now_ns is None else now_ns
            c = self._counters[counter]
            return self._out(c, self._elapsed(c, now))

    def counter_state(self, counter: int, now_ns: int | None = None) -> CounterState:
        with self._lock:
            now = self.clock_ns() if now_ns is None else now_ns
            c = self._counters[counter]
            d = self._elapsed(c, now)
            return CounterState(
                mode=c.mode,
                access=c.access,
                bcd=c.bcd,
                period=c.period,
                reload=c.reload,
                running=c.state == RunState.RUNNING,
                gate=c.gate,
                count=self._count(c, d),
                out=self._out(c, d),
            )

    # ------------------------------------------------------------------ timed device
    def next_deadline_ns(self) -> int | None:
        """When counter 0's OUT next rises (IRQ0), or None if it will not on its own."""
        with self._lock:
            c = self._counters[0]
            if c.state != RunState.RUNNING:
                return None
            tick = self._next_rise(c, c.edge_ticks)
            return None if tick is None else c.load_ns + _ticks_to_ns(tick)

    def poll(self, now_ns: int | None = None) -> None:
        """Deliver counter 0's OUT edges up to `now_ns` to IRQ0."""
        with self._lock:
            self._sync_irq(self.clock_ns() if now_ns is None else now_ns)

    def _deadline_changed(self) -> None:
        notify = self.on_deadline_change
        if notify is not None:
            notify()

    # ------------------------------------------------------------------ counting model
    def _elapsed(self, c: _Counter, now: int) -> int | None:
        """Clock ticks counted by the current count, None when no count runs."""
        if c.state == RunState.RUNNING:
            return max(0, (now - c.load_ns) * PIT_HZ // NS_PER_S)
        if c.state == RunState.PAUSED:
            return c.paused_ticks
        return None

    @staticmethod
    def _out(c: _Counter, d: int | None) -> bool:
        mode = c.mode
        if d is None:
            return mode != 0  # after a control word OUT is low in mode 0, high otherwise
        n = c.period
        if mode <= 1:
            return d >= n
        if mode == 2:
            return d % n != n - 1  # low for the one clock while the count is 1
        if mode == 3:
            return d % n < (n + 1) // 2
        return d != n  # modes 4/5: low for the one clock after the count reaches 0

    @staticmethod
    def _count(c: _Counter, d: int | None) -> int:
        if d is None:
            value = c.idle_count
        else:
            n = c.period
            mode = c.mode
            if mode == 2:
                value = n - d % n
            elif mode == 3:
                pos = d % n
                half = (n + 1) // 2
                value = (n - 2 * (pos if pos < half else pos - half)) & ~1
            else:
                value = n - d  # wraps to 0xffff (or 9999) after the terminal count
        if c.bcd:
            return _to_bcd(value % 10000)
        return value & 0xFFFF

    @staticmethod
    def _next_rise(c: _Counter, after: int) -> int | None:
        """The tick of OUT's next rising edge strictly after tick `after`, if any."""
        n = c.period
        mode = c.mode
        if mode <= 1:
            return n if after < n else None
        if mode <= 3:
            return (after // n + 1) * n if n >= 2 else None
        return n + 1 if after < n + 1 else None

    def _start(self, c: _Counter, now: int) -> None:
        c.period = c.reload
        c.load_ns = now
        c.edge_ticks = 0
        c.null_count = False
        if c.mode in (0, 4) and not c.gate:
            c.state = RunState.PAUSED
            c.paused_ticks = 0
        else:
            c.state = RunState.RUNNING

    def _stop(self, c: _Counter, now: int) -> None:
        c.idle_count = self._count_raw(c, now)
        c.state = RunState.IDLE

    def _count_raw(self, c: _Counter, now: int) -> int:
        value = self._count(c, self._elapsed(c, now))
        return _from_bcd(value) if c.bcd else value

    def _load(self, c: _Counter, raw: int, now: int) -> None:
        """A complete count was written to the count register."""
        n = _from_bcd(raw) if c.bcd else raw
        if n == 0:
            n = 10000 if c.bcd else 0x10000
        c.reload = n
        c.loaded = True
        c.null_count = True
        if c.mode in (1, 5):
            return  # waits for a gate trigger
        if c.mode in (2, 3) and not c.gate:
            c.state = RunState.IDLE
            return
        self._start(c, now)

    def _set_gate(self, c: _Counter, level: bool, now: int) -> None:
        if level == c.gate:
            return
        c.gate = level
        mode = c.mode
        if mode in (0, 4):
            if not level and c.state == RunState.RUNNING:
                c.paused_ticks = self._elapsed(c, now) or 0
                c.state = RunState.PAUSED
            elif level and c.state == RunState.PAUSED:
                c.load_ns = now - _ticks_to_ns(c.paused_ticks)
                c.state = RunState.RUNNING
        elif mode in (2, 3):
            if not level:
                if c.state == RunState.RUNNING:
                    self._stop(c, now)  # OUT goes high and the count holds
            elif c.loaded:
                self._start(c, now)  # a rising gate reloads the count
        elif level and c.loaded:
            self._start(c, now)  # modes 1/5: the rising gate is the trigger

    # ------------------------------------------------------------------ registers
    def _write_control(self, byte: int, now: int) -> None:
        select = byte >> 6
        if select == 3:
            self._read_back(byte, now)
            return
        c = self._counters[select]
        access = (byte >> 4) & 3
        if access == Access.LATCH:
            if c.latch is None:
                c.latch = self._count(c, self._elapsed(c, now))
                c.latch_msb_next = False
            return
        if c.state != RunState.IDLE:
            self._stop(c, now)
        mode_bits = (byte >> 1) & 7
        c.mode_bits = mode_bits
        c.mode = mode_bits & 3 if mode_bits > 5 else mode_bits
        c.access = access
        c.bcd = bool(byte & 1)
        c.loaded = False
        c.null_count = True
        c.write_msb_next = False
        c.read_msb_next = False
        c.latch = None
        c.status_latch = None

    def _read_back(self, byte: int, now: int) -> None:
        for i, c in enumerate(self._counters):
            if not byte & (2 << i):
                continue
            d = self._elapsed(c, now)
            if not byte & READBACK_NOT_COUNT and c.latch is None:
                c.latch = self._count(c, d)
                c.latch_msb_next = False
            if not byte & READBACK_NOT_STATUS and c.status_latch is None:
                c.status_latch = (
                    (STATUS_OUT if self._out(c, d) else 0)
                    | (STATUS_NULL_COUNT if c.null_count else 0)
                    | c.access << 4
                    | c.mode_bits << 1
                    | int(c.bcd)
                )

    def _write_counter(self, index: int, byte: int, now: int) -> None:
        c = self._counters[index]
        if c.access == Access.LSB:
            self._load(c, byte, now)
        elif c.access == Access.MSB:
            self._load(c, byte << 8, now)
        elif not c.write_msb_next:
            c.write_lsb = byte
            c.write_msb_next = True
            if c.mode == 0 and c.state != RunState.IDLE:
                self._stop(c, now)  # mode 0: the first byte stops the count
        else:
            c.write_msb_next = False
            self._load(c, c.write_lsb | byte << 8, now)

    def _read_counter(self, c: _Counter, now: int) -> int:
        if c.status_latch is not None:
            value = c.status_latch
            c.status_latch = None
            return value
        if c.latch is not None:
            latched = c.latch
            if c.access == Access.WORD and not c.latch_msb_next:
                c.latch_msb_next = True
                return latched & 0xFF
            c.latch = None
            c.latch_msb_next = False
            return latched >> 8 if c.access == Access.MSB or c.access == Access.WORD else latched & 0xFF
        count = self._count(c, self._elapsed(c, now))
        if c.access == Access.LSB:
            return count & 0xFF
        if c.access == Access.MSB:
            return count >> 8
        msb = c.read_msb_next
        c.read_msb_next = not msb
        return count >> 8 if msb else count & 0xFF

    # ------------------------------------------------------------------ IRQ0
    def _sync_irq(self, now: int) -> None:
        """Drive IRQ0 with counter 0's OUT, turning rising edges since the last sync into pulses."""
        c = self._counters[0]
        d = self._elapsed(c, now)
        level = self._out(c, d)
        rose = False
        if c.state == RunState.RUNNING and d is not None and d > c.edge_ticks:
            tick = self._next_rise(c, c.edge_ticks)
            rose = tick is not None and tick <= d
            c.edge_ticks = d
        irq = self.irq
        if rose:
            if irq is not None:
                if self._irq_level:
                    irq.set(False)
                irq.set(True)
            self._irq_level = True
        if level != self._irq_level:
            self._irq_level = level
            if irq is not None:
                irq.set(level)
