"""The 440EP's Universal Interrupt Controller (UIC), a DCR device.

A UIC gathers 32 interrupt inputs into the core's two interrupt pins:
external input (non-critical, MSR[EE]) and critical input (MSR[CE]). Its
registers are DCRs, at offsets from the controller's base (the board places UIC0 at 0xc0):

    offset  name  access  meaning (bit for input n is IBM bit n = 1 << (31 - n))
    0       SR    R/W1C   status: an interrupt was detected on input n
    1       SRS   W       status set: writing 1 sets SR bits (for software tests)
    2       ER    R/W     enable: input n may raise a pin
    3       CR    R/W     critical: input n goes to the critical pin, not external
    4       PR    R/W     polarity: 1 = active high / rising edge, 0 = active low / falling
    5       TR    R/W     trigger: 1 = edge-sensitive, 0 = level-sensitive
    6       MSR   R       masked status: SR & ER
    7       VR    R       vector for the highest-priority pending critical interrupt
    8       VCR   R/W     vector base (bits 0:29) and priority order PRO (bit 31)

Semantics (PPC440EP user manual, UIC chapter; Linux's arch/powerpc/sysdev/uic.c
is the only consumer that matters):

- An input is *active* when its pin level equals its polarity bit.
- Level-sensitive inputs: the SR bit is set exactly while the input is
  active; writing 1 to it cannot clear an active input (the bit is set again
  at once) and the bit drops when the input goes inactive.
- Edge-sensitive inputs: the SR bit is latched when the input becomes
  active and stays set until software writes 1 to it in SR.
- External pin = (SR & ER & ~CR) != 0, critical pin = (SR & ER & CR) != 0,
  both level signals recomputed after every change.
- VR = VCR[VBA] + 512 * (distance of the highest-priority pending critical
  input from the highest-priority position); PRO=0 makes input 0 highest,
  PRO=1 input 31. VR reads 0 when no critical interrupt is pending.

Where QEMU differs (it ignores PR, computes VR mirrored) see
docs/bamboo-board.md.

Devices drive inputs through `Uic.input(n)`, an `IrqLine`: `set(True)`
puts the pin high. Every device on the bamboo board signals active high
(the device tree says sense 4, level high), so Linux programs PR=1 for them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from enum import IntEnum

from kvmpy.vmm.bus import IrqLine

UIC_INPUTS = 32
UIC_DCR_COUNT = 9
VECTOR_STRIDE_BYTES = 512
_MASK32 = 0xFFFFFFFF
_VCR_PRO = 0x1
_VCR_WRITABLE = 0xFFFFFFFD  # bit 30 (IBM) is reserved
_VCR_VBA = 0xFFFFFFFC


class UicReg(IntEnum):
    """DCR offsets from the UIC's base."""

    SR = 0
    SRS = 1
    ER = 2
    CR = 3
    PR = 4
    TR = 5
    MSR = 6
    VR = 7
    VCR = 8


def input_bit(n: int) -> int:
    """The register bit of input `n` (IBM numbering: input 0 is the most significant bit)."""
    if not 0 <= n < UIC_INPUTS:
        raise ValueError(f"UIC input {n} out of range 0..{UIC_INPUTS - 1}")
    return 1 << (31 - n)


class UicInput:
    """One input pin of a UIC, as an `IrqLine` for the device wired to it."""

    def __init__(self, uic: Uic, n: int) -> None:
        self._uic, self.n = uic, n

    def set(self, level: bool) -> None:
        self._uic.set_input(self.n, level)


class Uic:
    """A UIC with its two outputs (see module doc).

    `output` is the core's external-input pin, `critical_output` its
    critical-input pin; each is called with the new level only when that
    level changes. The register interface is a `DcrDevice` (`read`/`write`
    take offsets from the base). Inputs may be driven from any thread.
    """

    def __init__(self, output: IrqLine, critical_output: IrqLine, name: str = "uic0") -> None:
        self.name = name
        self._output = output
        self._critical_output = critical_output
        self._lock = threading.RLock()
        self.pins = 0  # electrical level of each input, IBM bit order
        self._out_level = False
        self._crit_level = False
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Power-on state: every register 0 (all inputs level-sensitive, active low, disabled)."""
        with self._lock:
            self.er = self.cr = self.pr = self.tr = self.vcr = 0
            self._latched = 0
            self._update()

    @property
    def active(self) -> int:
        """Inputs whose pin level matches their polarity."""
        return ~(self.pins ^ self.pr) & _MASK32

    @property
    def sr(self) -> int:
        return (self._latched & self.tr) | (self.active & ~self.tr & _MASK32)

    @property
    def msr(self) -> int:
        return self.sr & self.er

    @property
    def vr(self) -> int:
        pending = self.msr & self.cr
        if not pending:
            return 0
        if self.vcr & _VCR_PRO:
            n = 31 - ((pending & -pending).bit_length() - 1)  # highest-numbered input
            distance = 31 - n
        else:
            n = 32 - pending.bit_length()  # lowest-numbered input
            distance = n
        return ((self.vcr & _VCR_VBA) + VECTOR_STRIDE_BYTES * distance) & _MASK32

    @property
    def output_level(self) -> bool:
        return self._out_level

    @property
    def critical_level(self) -> bool:
        return self._crit_level

    def _update(self) -> None:
        msr = self.msr
        out, crit = bool(msr & ~self.cr), bool(msr & self.cr)
        if out != self._out_level:
            self._out_level = out
            self._output.set(out)
        if crit != self._crit_level:
            self._crit_level = crit
            self._critical_output.set(crit)

    # ------------------------------------------------------------------ inputs
    def input(self, n: int) -> UicInput:
        """The `IrqLine` a device on input `n` drives (ValueError outside 0..31)."""
        input_bit(n)
        return UicInput(self, n)

    def set_input(self, n: int, level: bool) -> None:
        """Drive input `n`'s pin to `level` (True = high)."""
        bit = input_bit(n)
        with self._lock:
            was_active = bool(self.active & bit)
            self.pins = (self.pins | bit) if level else (self.pins & ~bit)
            if self.tr & bit and not was_active and self.active & bit:
                self._latched |= bit
            self._update()

    # ------------------------------------------------------------------ DCRs (DcrDevice)
    def read(self, dcrn_offset: int) -> int:
        with self._lock:
            match dcrn_offset:
                case UicReg.SR | UicReg.SRS:
                    return self.sr
                case UicReg.ER:
                    return self.er
                case UicReg.CR:
                    return self.cr
                case UicReg.PR:
                    return self.pr
                case UicReg.TR:
                    return self.tr
                case UicReg.MSR:
                    return self.msr
                case UicReg.VR:
                    return self.vr
                case UicReg.VCR:
                    return self.vcr
            return 0

    def write(self, dcrn_offset: int, value: int) -> None:
        value &= _MASK32
        with self._lock:
            setter: Callable[[int], None] | None = {
                UicReg.SR: self._write_sr,
                UicReg.SRS: self._write_srs,
                UicReg.ER: self._write_er,
                UicReg.CR: self._write_cr,
                UicReg.PR: self._write_pr,
                UicReg.TR: self._write_tr,
                UicReg.VCR: self._write_vcr,
            }.get(dcrn_offset)
            if setter is None:
                return  # MSR and VR are read-only; other offsets are not registers
            setter(value)
            self._update()

    def _write_sr(self, value: int) -> None:
        self._latched &= ~value

    def _write_srs(self, value: int) -> None:
        # A level-sensitive bit always mirrors its input, so only edge bits can be set.
        self._latched |= value & self.tr

    def _write_er(self, value: int) -> None:
        self.er = value

    def _write_cr(self, value: int) -> None:
        self.cr = value

    def _write_pr(self, value: int) -> None:
        # A polarity change is not an edge: the latch only reacts to the input's own transitions.
        self.pr = value

    def _write_tr(self, value: int) -> None:
        self.tr = value
        self._latched &= value

    def _write_vcr(self, value: int) -> None:
        self.vcr = value & _VCR_WRITABLE


__all__ = ["UIC_DCR_COUNT", "UIC_INPUTS", "Uic", "UicInput", "UicReg", "input_bit"]
