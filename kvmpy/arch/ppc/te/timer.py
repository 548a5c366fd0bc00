"""The guest's Book E timers (DEC, DECAR, FIT, TCR, TSR) as virtual state on the host's time base.

The guest's time base is the host core's (one tick per retired
instruction, deterministic), so `mftb` never traps. The decrementer and the
fixed-interval timer are kept here, never on the host core (whose timers
stay off), and the run loop bounds each entry into the guest by the ticks
until the next guest timer event, so an event is seen at the instruction
it falls on. The watchdog runs as on the 440 (and the host core): at each
0-to-1 transition of its TB bit it sets TSR[ENW], then TSR[WIS] (a critical
class interrupt with TCR[WIE]), then takes the reset TCR[WRC] selects
(`reset_request`, reported in TSR[WRS]).
"""

from __future__ import annotations

from kvmpy.arch.ppc.hw.defs import (
    TCR_ARE,
    TCR_DIE,
    TCR_FIE,
    TCR_FP,
    TCR_WIE,
    TCR_WP,
    TCR_WRC,
    TSR_DIS,
    TSR_ENW,
    TSR_FIS,
    TSR_WIS,
)

_MASK32 = 0xFFFFFFFF


def _next_rise(tb: int, bit: int) -> int:
    """The first time base value after `tb` at which bit `bit` (2**bit) goes from 0 to 1."""
    period = 1 << (bit + 1)
    t = (tb & ~(period - 1)) + (1 << bit)
    return t if t > tb else t + period


class GuestTimers:
    """DEC, DECAR, TCR, TSR and the FIT of one guest, against the host time base `tb`."""

    def __init__(self) -> None:
        self.tcr = 0
        self.tsr = 0
        self.decar = 0
        self._dec_zero_tb = 0  # time base at which DEC reaches 0 (when armed)
        self._dec_armed = False
        self._dec_stopped = 0  # DEC's value while not counting
        self._fit_next = _next_rise(0, self._fit_bit())
        self._wdt_next = _next_rise(0, self._wdt_bit())
        self.reset_request = 0  # 1 core, 2 chip, 3 system: the watchdog's TCR[WRC] action happened

    # ------------------------------------------------------------ registers
    def read_dec(self, tb: int) -> int:
        self.update(tb)
        if self._dec_armed:
            return max(0, self._dec_zero_tb - tb) & _MASK32
        return self._dec_stopped

    def write_dec(self, tb: int, value: int) -> None:
        """mtdec: counts down from `value`; 0 never expires (as the host core)."""
        value &= _MASK32
        self._dec_armed = value != 0
        self._dec_zero_tb = tb + value
        self._dec_stopped = value

    def write_tcr(self, tb: int, value: int) -> None:
        self.update(tb)
        self.tcr = value & _MASK32
        self._fit_next = _next_rise(tb, self._fit_bit())
        self._wdt_next = _next_rise(tb, self._wdt_bit())

    def write_tsr(self, value: int) -> None:
        """mttsr is write-one-to-clear."""
        self.tsr &= ~value & _MASK32

    def _fit_bit(self) -> int:
        return 13 + 4 * ((self.tcr & TCR_FP) >> 24)

    def _wdt_bit(self) -> int:
        return 17 + 4 * ((self.tcr & TCR_WP) >> 30)

    # ------------------------------------------------------------ time
    def update(self, tb: int) -> None:
        """Set TSR[DIS]/[FIS] for every event up to `tb` (reloading DEC from DECAR with TCR[ARE])."""
        if self._dec_armed and tb >= self._dec_zero_tb:
            self.tsr |= TSR_DIS
            if self.tcr & TCR_ARE and self.decar:
                missed = (tb - self._dec_zero_tb) // self.decar + 1
                self._dec_zero_tb += missed * self.decar
            else:
                self._dec_armed = False
                self._dec_stopped = 0
        if tb >= self._fit_next:
            self.tsr |= TSR_FIS
            self._fit_next = _next_rise(tb, self._fit_bit())
        period = 1 << (self._wdt_bit() + 1)
        for _ in range(3):  # ENW, WIS, reset: more missed periods change nothing more
            if tb < self._wdt_next:
                break
            if not self.tsr & TSR_ENW:
                self.tsr |= TSR_ENW
            elif not self.tsr & TSR_WIS:
                self.tsr |= TSR_WIS
            elif self.tcr & TCR_WRC and not self.reset_request:
                self.reset_request = (self.tcr & TCR_WRC) >> 28
                self.tsr = (self.tsr & ~0x30000000) | (self.tcr & TCR_WRC)  # TSR[WRS] = TCR[WRC]
            self._wdt_next += period
        if tb >= self._wdt_next:
            self._wdt_next = _next_rise(tb, self._wdt_bit())

    def next_event_tb(self, tb: int) -> int:
        """The time base of the next DEC or FIT event after `tb` that TCR enables (or a far one)."""
        self.update(tb)
        nxt = tb + (1 << 40)
        if self._dec_armed and self.tcr & TCR_DIE:
            nxt = min(nxt, self._dec_zero_tb)
        if self.tcr & TCR_FIE:
            nxt = min(nxt, self._fit_next)
        if self.tcr & (TCR_WIE | TCR_WRC):
            nxt = min(nxt, self._wdt_next)
        return nxt

    def can_wake(self) -> bool:
        """Whether an enabled timer interrupt will ever come without the guest doing anything."""
        return bool((self._dec_armed and self.tcr & TCR_DIE) or self.tcr & TCR_FIE)

    def watchdog_pending(self) -> bool:
        """The watchdog's critical-class interrupt condition: TSR[WIS] with TCR[WIE]."""
        return bool(self.tsr & TSR_WIS and self.tcr & TCR_WIE)

    def pending(self) -> tuple[bool, bool]:
        """(decrementer, fixed-interval) interrupt conditions: TSR status and TCR enable both set."""
        dec = bool(self.tsr & TSR_DIS and self.tcr & TCR_DIE)
        return dec, bool(self.tsr & TSR_FIS and self.tcr & TCR_FIE)
