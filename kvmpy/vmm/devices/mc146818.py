"""The PIIX4's MC146818-compatible real-time clock and CMOS RAM (ports 0x70-0x73).

Ports (offsets in an 8-byte window at 0x70; 0x74-0x77 alias 0x70-0x73):

    0x70  index of the standard bank (write-only; bit 7 is the PC's NMI mask)
    0x71  data of the standard bank: registers 0-13, then NVRAM bytes 14-127
    0x72  index of the upper bank (write-only)
    0x73  data of the upper bank: NVRAM bytes 128-255 (the PIIX4's extended RAM)

Registers: 0 seconds, 1 seconds alarm, 2 minutes, 3 minutes alarm, 4 hours,
5 hours alarm, 6 day of week (1 = Sunday), 7 day of month, 8 month, 9 year
(two digits), 10 A (UIP, DV2-0, RS3-0), 11 B (SET, PIE, AIE, UIE, SQWE, DM,
24/12, DSE), 12 C (IRQF, PF, AF, UF; read clears), 13 D (VRT). Byte 0x32
holds the century as PC firmware and QEMU keep it.

How Linux 6.1 on Malta uses it: plat_time_init() -> init_rtc() makes sure
A selects the 32.768 kHz time base and B.SET is clear, then
estimate_frequencies() counts CP0 Count between two rising edges of UIP
(waiting for each falling edge and reading the seconds register), polling
register A in a tight loop for one to two seconds -- about 90% of all
device accesses of a boot. read_persistent_clock64() reads the time at
timekeeping init; later rtc-cmos (DT node "motorola,mc146818", IRQ 8)
registers rtc0, sets the system clock from it (hctosys) and expects
24-hour BCD mode (the reset default here, as in QEMU).

So the register A / seconds read path is built to be cheap: time is the
host monotonic clock offset to UTC at construction, the second boundaries
are cached, and the time registers are re-encoded once per second, never
per read.

UIP is high during the last 244 us (8 periods of 32.768 kHz) before each
update, and the update happens at the second boundary (QEMU's model; the
datasheet keeps UIP high through the ~2 ms update as well). A vCPU thread
delayed by the host (the GIL alone can hold it 5 ms) could miss that short
window and leave a polling guest spinning for another second or forever:
when two reads of register A less than `UIP_CATCHUP_NS` apart straddle a
second boundary without either seeing UIP, the later one reports UIP, as
if it had been performed a little earlier.

Other model choices:

- The periodic interrupt (RS) runs whenever the divider runs; rates assume
  the 32.768 kHz time base (RS 1, 2 -> 256, 128 Hz; RS n >= 3 -> 65536 >> n Hz).
- Interrupt flags are set whether or not enabled; IRQF and the IRQ8 output
  are the OR of the enabled flags, recomputed whenever flags or B change
  (so enabling an interrupt whose flag is set raises IRQ8 at once).
- Setting B.SET stops updates and clears UIE (datasheet); clearing it
  restarts the clock from the registers, keeping the sub-second phase.
  Writing a time register while the clock runs also restarts it from the
  registers (QEMU). Changing DM or 24/12 re-encodes the time in the new
  format (QEMU; real parts leave the bytes as they are).
- Holding the divider in reset (DV = 11x) or a test mode (DV = 011-101)
  stops the clock; leaving it for DV <= 010 schedules the first update
  500 ms later (datasheet).
- The day of week is computed from the date at each update; DSE is stored
  but daylight saving is not applied; the square-wave output has no pin.
- Out-of-range time values written by the guest are clamped when the clock
  restarts from them (a real part would count on from the odd value).
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

RTC_PORT = 0x70
RTC_WINDOW_BYTES = 8
NVRAM_BYTES = 256
CENTURY_INDEX = 0x32

NS_PER_S = 1_000_000_000
UIP_HOLD_NS = 8 * NS_PER_S // 32768  # 244140 ns
UIP_CATCHUP_NS = 50_000_000
DIVIDER_RESTART_NS = NS_PER_S // 2
_NEVER = 1 << 62  # a monotonic time no run reaches


class Reg(IntEnum):
    SECONDS = 0
    SECONDS_ALARM = 1
    MINUTES = 2
    MINUTES_ALARM = 3
    HOURS = 4
    HOURS_ALARM = 5
    DAY_OF_WEEK = 6
    DAY_OF_MONTH = 7
    MONTH = 8
    YEAR = 9
    A = 10
    B = 11
    C = 12
    D = 13


REG_A_UIP = 0x80
REG_A_DV_MASK = 0x70
REG_A_DV_32KHZ = 0x20
REG_A_RS_MASK = 0x0F
REG_B_SET = 0x80
REG_B_PIE = 0x40
REG_B_AIE = 0x20
REG_B_UIE = 0x10
REG_B_SQWE = 0x08
REG_B_DM_BINARY = 0x04
REG_B_24H = 0x02
REG_B_DSE = 0x01
REG_C_IRQF = 0x80
REG_C_PF = 0x40
REG_C_AF = 0x20
REG_C_UF = 0x10
REG_D_VRT = 0x80
INTERRUPT_BITS = REG_C_PF | REG_C_AF | REG_C_UF  # the same bit positions as PIE/AIE/UIE in B
ALARM_DONT_CARE = 0xC0

RESET_REG_A = 0x26  # 32.768 kHz time base, 1024 Hz periodic rate (QEMU's reset value)
RESET_REG_B = REG_B_24H  # 24-hour BCD

_TIME_REGS = frozenset(
    (
        Reg.SECONDS,
        Reg.MINUTES,
        Reg.HOURS,
        Reg.DAY_OF_WEEK,
        Reg.DAY_OF_MONTH,
        Reg.MONTH,
        Reg.YEAR,
        CENTURY_INDEX,
    )
)
_ALARM_REGS = frozenset((Reg.SECONDS_ALARM, Reg.MINUTES_ALARM, Reg.HOURS_ALARM))
_INDEX_A = int(Reg.A)
_INDEX_C = int(Reg.C)


# ---------------------------------------------------------------------- calendar arithmetic
# Proleptic Gregorian day numbers relative to 1970-01-01, valid for any year (no datetime limits).
def days_from_civil(year: int, month: int, day: int) -> int:
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month - 3 if month > 2 else month + 9) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(days: int) -> tuple[int, int, int]:
    days += 719468
    era = days // 146097
    doe = days - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def _to_bcd(value: int) -> int:
    return (value // 10) << 4 | value % 10


def _from_bcd(value: int) -> int:
    return (value >> 4) * 10 + (value & 0x0F)


def periodic_rate_hz(rs: int) -> int:
    """The periodic interrupt rate for RS3-0 with the 32.768 kHz time base (0: none)."""
    if rs == 0:
        return 0
    if rs <= 2:
        return 512 >> rs  # 256, 128 Hz: the datasheet's exceptions
    return 65536 >> rs


@dataclass(frozen=True)
class RtcState:
    """A side-effect-free view of the clock."""

    rtc_seconds: int  # the register time as seconds since 1970 (UTC)
    running: bool
    reg_a: int
    reg_b: int
    flags: int
    irq_level: bool
    nmi_masked: bool


class Mc146818Rtc:
    """The RTC as a `BusDevice` for the window at port 0x70.

    `irq` is ISA IRQ8. `clock_ns` is the host monotonic clock; `wall_ns`
    (read once, at construction and `set_time_from_host`) gives the UTC
    time it starts from. Timed-device contract as `I8254`: `poll(now_ns)`,
    `next_deadline_ns()` and `on_deadline_change`. Thread-safe.
    """

    def __init__(
        self,
        irq: IrqLine | None = None,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.irq = irq
        self.clock_ns = clock_ns
        self.wall_ns = wall_ns
        self.on_deadline_change: Callable[[], None] | None = None
        self._lock = threading.RLock()
        self._ram = bytearray(NVRAM_BYTES)
        self._ram[Reg.A] = RESET_REG_A
        self._ram[Reg.B] = RESET_REG_B
        self._ram[Reg.D] = REG_D_VRT
        self._index = 0
        self._ext_index = 0
        self.nmi_masked = False
        self._flags = 0
        self._irq_level = False
        self._divider_running = True
        self._running = True
        self._base_ns = 0  # a second boundary on the monotonic clock...
        self._base_sec = 0  # ...at which the RTC showed this time
        self._cur_sec = 0
        self._sec_start_ns = 0
        self._next_boundary_ns = _NEVER
        self._uip_start_ns = _NEVER
        self._last_a_read_ns = -_NEVER
        self._pf_origin_ns = 0
        self._pf_rate = periodic_rate_hz(RESET_REG_A & REG_A_RS_MASK)
        self._pf_seen = 0
        self._alarm_next: int | None = None
        self.set_time_from_host()

    # ------------------------------------------------------------------ host side
    def set_time_from_host(self) -> None:
        """Start the clock at the host's UTC time (power-on with a fresh battery-backed clock)."""
        with self._lock:
            wall = self.wall_ns()
            now = self.clock_ns()
            self._base_sec = wall // NS_PER_S
            self._base_ns = now - wall % NS_PER_S
            self._pf_origin_ns = self._base_ns
            self._pf_seen = self._pf_ticks(now)
            self._cur_sec = self._base_sec - 1  # forces the encode below
            if self._running:
                self._start_second(now, count_update=False)
                self._alarm_next = self._next_alarm_after(self._cur_sec)
            self._update_irq()
        self._deadline_changed()

    def reset(self) -> None:
        """The RESET pin (board reset): interrupt enables and flags clear; time and RAM survive."""
        with self._lock:
            self._ram[Reg.B] &= ~(REG_B_PIE | REG_B_AIE | REG_B_UIE | REG_B_SQWE)
            self._flags = 0
            self._update_irq()
        self._deadline_changed()

    def rtc_seconds(self) -> int:
        """The clock's time in seconds since 1970 as its registers show it now."""
        with self._lock:
            self._sync(self.clock_ns())
            self._update_irq()
            return self._decode_time() if not self._running else self._cur_sec

    def state(self) -> RtcState:
        with self._lock:
            self._sync(self.clock_ns())
            self._update_irq()
            return RtcState(
                rtc_seconds=self._decode_time() if not self._running else self._cur_sec,
                running=self._running,
                reg_a=self._ram[Reg.A],
                reg_b=self._ram[Reg.B],
                flags=self._flags,
                irq_level=self._irq_level,
                nmi_masked=self.nmi_masked,
            )

    def nvram(self) -> bytes:
        """All 256 bytes (registers included, as last updated)."""
        with self._lock:
            return bytes(self._ram)

    # ------------------------------------------------------------------ bus
    def read(self, offset: int, size: int) -> int:
        if size == 1 and offset & 3 == 1:
            # The hot path: Linux polls register A and the seconds here a million times.
            # Plain int constants, no enum attribute lookups, no calendar work (once per second).
            with self._lock:
                now = self.clock_ns()
                if now >= self._next_boundary_ns:
                    self._start_second(now, count_update=True)
                    self._update_irq()
                index = self._index
                if index == _INDEX_A:
                    value = self._ram[_INDEX_A]
                    if now >= self._uip_start_ns or (
                        self._running
                        and now - self._last_a_read_ns < UIP_CATCHUP_NS
                        and self._last_a_read_ns < self._sec_start_ns - UIP_HOLD_NS
                    ):
                        value |= REG_A_UIP
                    self._last_a_read_ns = now
                    return value
                if index == _INDEX_C:
                    return self._read_c(now)
                return self._ram[index]
        return read_lanes(lambda port: self._read_port(port & 3), offset, size, RTC_WINDOW_BYTES)

    def write(self, offset: int, size: int, value: int) -> None:
        if size == 1 and offset & 3 == 0:  # the index write of every CMOS_READ
            self._index = value & 0x7F
            self.nmi_masked = bool(value & 0x80)
            return
        write_lanes(lambda port, b: self._write_port(port & 3, b), offset, size, value, RTC_WINDOW_BYTES)

    def _read_port(self, port: int) -> int:
        if port == 1:
            return self.read(1, 1)
        if port == 3:
            with self._lock:
                return self._ram[0x80 | self._ext_index]
        return 0xFF  # the index registers are write-only; beyond the window floats

    def _write_port(self, port: int, byte: int) -> None:
        if port == 0:
            self._index = byte & 0x7F
            self.nmi_masked = bool(byte & 0x80)
        elif port == 2:
            self._ext_index = byte & 0x7F
        elif port == 3:
            with self._lock:
                self._ram[0x80 | self._ext_index] = byte
        else:
            with self._lock:
                now = self.clock_ns()
                self._sync(now)
                notify = self._write_data(self._index, byte, now)
                self._update_irq()
            if notify:
                self._deadline_changed()

    # ------------------------------------------------------------------ timed device
    def next_deadline_ns(self) -> int | None:
        """When the next enabled interrupt flag will be set, or None (none enabled, or IRQ8 already high)."""
        with self._lock:
            if self._irq_level:
                return None
            enabled = self._ram[Reg.B]
            deadlines = []
            if enabled & REG_B_PIE and self._pf_rate and self._divider_running:
                tick = self._pf_seen + 1
                deadlines.append(self._pf_origin_ns - ((-tick * NS_PER_S) // self._pf_rate))
            if self._running:
                if enabled & REG_B_UIE:
                    deadlines.append(self._next_boundary_ns)
                if enabled & REG_B_AIE and self._alarm_next is not None:
                    deadlines.append(self._base_ns + (self._alarm_next - self._base_sec) * NS_PER_S)
            return min(deadlines) if deadlines else None

    def poll(self, now_ns: int | None = None) -> None:
        """Bring the clock, its flags and IRQ8 up to `now_ns`."""
        with self._lock:
            self._sync(self.clock_ns() if now_ns is None else now_ns)
            self._update_irq()

    def _deadline_changed(self) -> None:
        notify = self.on_deadline_change
        if notify is not None:
            notify()

    # ------------------------------------------------------------------ time keeping
    def _sync(self, now: int) -> None:
        if now >= self._next_boundary_ns:
            self._start_second(now, count_update=True)
        rate = self._pf_rate
        if rate and self._divider_running:
            ticks = (now - self._pf_origin_ns) * rate // NS_PER_S
            if ticks > self._pf_seen:
                self._flags |= REG_C_PF
                self._pf_seen = ticks

    def _pf_ticks(self, now: int) -> int:
        rate = self._pf_rate
        return (now - self._pf_origin_ns) * rate // NS_PER_S if rate else 0

    def _start_second(self, now: int, *, count_update: bool) -> None:
        """Enter the second containing `now` (clock running): registers, UF/AF, boundaries."""
        k = (now - self._base_ns) // NS_PER_S
        sec = self._base_sec + k
        if sec != self._cur_sec:
            if count_update and sec > self._cur_sec:
                self._flags |= REG_C_UF
                if self._alarm_next is not None and sec >= self._alarm_next:
                    self._flags |= REG_C_AF
                    self._alarm_next = self._next_alarm_after(sec)
            self._cur_sec = sec
            self._encode_time(sec)
        start = self._base_ns + k * NS_PER_S
        self._sec_start_ns = start
        self._next_boundary_ns = start + NS_PER_S
        self._uip_start_ns = start + NS_PER_S - UIP_HOLD_NS

    def _stop_clock(self) -> None:
        self._running = False
        self._next_boundary_ns = _NEVER
        self._uip_start_ns = _NEVER

    def _restart_clock(self, now: int, second_start_ns: int) -> None:
        """Run from the time in the registers, the current second having begun at `second_start_ns`."""
        self._running = True
        self._base_ns = second_start_ns
        self._base_sec = self._decode_time()
        self._cur_sec = self._base_sec - 1
        self._start_second(now, count_update=False)
        self._alarm_next = self._next_alarm_after(self._cur_sec)

    def _grid_second_start(self, now: int) -> int:
        return self._base_ns + (now - self._base_ns) // NS_PER_S * NS_PER_S

    # ------------------------------------------------------------------ register encoding
    def _enc(self, value: int) -> int:
        return value if self._ram[Reg.B] & REG_B_DM_BINARY else _to_bcd(value)

    def _dec(self, value: int) -> int:
        return value if self._ram[Reg.B] & REG_B_DM_BINARY else _from_bcd(value)

    def _encode_time(self, sec: int) -> None:
        days, tod = divmod(sec, 86400)
        year, month, day = civil_from_days(days)
        hour, rem = divmod(tod, 3600)
        minute, second = divmod(rem, 60)
        ram = self._ram
        enc = self._enc
        ram[Reg.SECONDS] = enc(second)
        ram[Reg.MINUTES] = enc(minute)
        if ram[Reg.B] & REG_B_24H:
            ram[Reg.HOURS] = enc(hour)
        else:
            ram[Reg.HOURS] = enc(hour % 12 or 12) | (0x80 if hour >= 12 else 0)
        ram[Reg.DAY_OF_WEEK] = enc((days + 4) % 7 + 1)  # 1970-01-01 was a Thursday; Sunday = 1
        ram[Reg.DAY_OF_MONTH] = enc(day)
        ram[Reg.MONTH] = enc(month)
        ram[Reg.YEAR] = enc(year % 100)
        ram[CENTURY_INDEX] = enc(year // 100 % 100)

    def _decode_hour(self, raw: int) -> int:
        if self._ram[Reg.B] & REG_B_24H:
            return self._dec(raw)
        hour12 = self._dec(raw & 0x7F)
        return hour12 % 12 + (12 if raw & 0x80 else 0)

    def _decode_time(self) -> int:
        ram = self._ram
        dec = self._dec
        second = min(dec(ram[Reg.SECONDS]), 59)
        minute = min(dec(ram[Reg.MINUTES]), 59)
        hour = min(self._decode_hour(ram[Reg.HOURS]), 23)
        day = min(max(dec(ram[Reg.DAY_OF_MONTH]), 1), 31)
        month = min(max(dec(ram[Reg.MONTH]), 1), 12)
        year = min(dec(ram[CENTURY_INDEX]), 99) * 100 + min(dec(ram[Reg.YEAR]), 99)
        return days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second

    # ------------------------------------------------------------------ alarm
    def _alarm_field(self, raw: int, limit: int, *, hours: bool = False) -> range | tuple[int, ...]:
        if raw & ALARM_DONT_CARE == ALARM_DONT_CARE:
            return range(limit)
        value = self._decode_hour(raw) if hours else self._dec(raw)
        if hours and not self._ram[Reg.B] & REG_B_24H and not 1 <= self._dec(raw & 0x7F) <= 12:
            return ()
        return (value,) if 0 <= value < limit else ()

    def _next_alarm_after(self, sec: int) -> int | None:
        """The first second after `sec` whose time matches the alarm registers, or None."""
        ram = self._ram
        hours = self._alarm_field(ram[Reg.HOURS_ALARM], 24, hours=True)
        minutes = self._alarm_field(ram[Reg.MINUTES_ALARM], 60)
        seconds = self._alarm_field(ram[Reg.SECONDS_ALARM], 60)
        if not hours or not minutes or not seconds:
            return None
        target = sec + 1
        day_start = target - target % 86400
        tod = target - day_start
        h0, rem = divmod(tod, 3600)
        m0, s0 = divmod(rem, 60)
        for h in hours:
            if h < h0:
                continue
            for m in minutes:
                if h == h0 and m < m0:
                    continue
                for s in seconds:
                    if h == h0 and m == m0 and s < s0:
                        continue
                    return day_start + h * 3600 + m * 60 + s
        return day_start + 86400 + hours[0] * 3600 + minutes[0] * 60 + seconds[0]

    # ------------------------------------------------------------------ registers
    def _read_c(self, now: int) -> int:
        self._sync(now)
        flags = self._flags
        value = flags | (REG_C_IRQF if flags & self._ram[Reg.B] & INTERRUPT_BITS else 0)
        self._flags = 0
        self._update_irq()
        self._deadline_changed()
        return value

    def _write_data(self, index: int, byte: int, now: int) -> bool:
        """Store `byte` at register/NVRAM `index`; True if interrupt deadlines may have moved."""
        ram = self._ram
        if index in _ALARM_REGS:
            ram[index] = byte
            if self._running:
                self._alarm_next = self._next_alarm_after(self._cur_sec)
            return True
        if index in _TIME_REGS:
            ram[index] = byte
            if self._running:
                self._restart_clock(now, self._grid_second_start(now))
                return True
            return False
        if index == Reg.A:
            self._write_a(byte, now)
            return True
        if index == Reg.B:
            self._write_b(byte, now)
            return True
        if index in (Reg.C, Reg.D):
            return False  # read-only
        ram[index] = byte
        return False

    def _write_a(self, byte: int, now: int) -> None:
        ram = self._ram
        old = ram[Reg.A]
        ram[Reg.A] = byte & ~REG_A_UIP
        divider_runs = (byte & REG_A_DV_MASK) <= REG_A_DV_32KHZ
        if self._divider_running and not divider_runs:
            self._divider_running = False
            self._stop_clock()
        elif not self._divider_running and divider_runs:
            # Leaving divider reset: the first update comes half a second later.
            self._divider_running = True
            second_start = now + DIVIDER_RESTART_NS - NS_PER_S
            self._pf_origin_ns = second_start
            self._pf_seen = self._pf_ticks(now)
            if not ram[Reg.B] & REG_B_SET:
                self._restart_clock(now, second_start)
            else:
                self._base_ns = second_start  # the grid SET=0 will resume on
        if (old ^ byte) & REG_A_RS_MASK:
            self._pf_rate = periodic_rate_hz(byte & REG_A_RS_MASK)
            self._pf_seen = self._pf_ticks(now)

    def _write_b(self, byte: int, now: int) -> None:
        ram = self._ram
        old = ram[Reg.B]
        if byte & REG_B_SET:
            byte &= ~REG_B_UIE  # setting SET clears UIE (datasheet)
        ram[Reg.B] = byte
        if byte & REG_B_SET:
            if self._running:
                self._stop_clock()
        elif old & REG_B_SET:
            if self._divider_running:
                self._restart_clock(now, self._grid_second_start(now))
        elif (old ^ byte) & (REG_B_DM_BINARY | REG_B_24H) and self._running:
            self._encode_time(self._cur_sec)
        if self._running:
            self._alarm_next = self._next_alarm_after(self._cur_sec)

    def _update_irq(self) -> None:
        level = bool(self._flags & self._ram[Reg.B] & INTERRUPT_BITS)
        if level != self._irq_level:
            self._irq_level = level
            if self.irq is not None:
                self.irq.set(level)
