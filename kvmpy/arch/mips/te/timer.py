"""The guest's Count/Compare timer in trap-and-emulate mode.

The guest's Count is the host's Count plus an offset (kept in the compiled
fast path, which answers most `mfc0 Count` traps, so both see one clock).
While the guest's Cause.DC stops its Count, the value is frozen here. The
host timer (root Compare, IP7) is programmed to fire when the guest's would,
and the vCPU turns its firing into the guest's Cause.TI.
"""

from __future__ import annotations

from kvmpy.arch.mips.hw.cpu import Cpu
from kvmpy.arch.mips.hypervisor import reg_sel
from kvmpy.arch.mips.te.cp0 import Cause, Cp0, Ctx
from kvmpy.arch.mips.te.fastpath import FastTraps

M32 = 0xFFFFFFFF
_R_COUNT = reg_sel(Cp0.COUNT)
_R_COMPARE = reg_sel(Cp0.COMPARE)
_R_CAUSE = reg_sel(Cp0.CAUSE)


class GuestTimer:
    """Guest Count/Compare on top of the host's; `regs` is the guest's virtual CP0."""

    def __init__(self, cpu: Cpu, regs: memoryview, fast: FastTraps) -> None:
        self._cpu = cpu
        self._regs = regs
        self._fast = fast
        self._frozen: int | None = None

    @property
    def offset(self) -> int:
        """Guest Count = host Count + this (mod 2^32)."""
        return self._fast.count_offset

    @offset.setter
    def offset(self, value: int) -> None:
        self._fast.count_offset = value & M32

    @property
    def frozen(self) -> int | None:
        """The guest's Count while its Cause.DC stops it, else None."""
        return self._frozen

    @frozen.setter
    def frozen(self, value: int | None) -> None:
        self._frozen = value
        self._fast.count_frozen = value is not None

    def host_count(self) -> int:
        return self._cpu.cp0_read(Ctx.ROOT, *_R_COUNT)

    def count(self) -> int:
        """The guest's Count now."""
        if self._frozen is not None:
            return self._frozen
        return (self.host_count() + self.offset) & M32

    def set_count(self, value: int) -> None:
        if self._frozen is not None:
            self.frozen = value & M32
        else:
            self.offset = (value - self.host_count()) & M32
        self.arm()

    def freeze(self) -> None:
        """Cause.DC set: stop the guest's Count where it is."""
        self.frozen = self.count()

    def thaw(self) -> None:
        """Cause.DC cleared: let the guest's Count run on from where it stopped."""
        if self._frozen is not None:
            frozen, self.frozen = self._frozen, None
            self.set_count(frozen)

    def disarm(self) -> None:
        # One step behind Count: a full 2^32-tick lap away.
        self._write_host_compare((self.host_count() - 1) & M32)

    def arm(self) -> None:
        """Program the host timer for the guest's Compare (or nothing, if it cannot fire)."""
        if self._regs[Cp0.CAUSE] & Cause.TI or self._frozen is not None:
            self.disarm()
        else:
            self._write_host_compare((self._regs[Cp0.COMPARE] - self.offset) & M32)

    def poll(self) -> bool:
        """If the host timer fired, raise the guest's Cause.TI; True if it did."""
        raised = False
        if self._cpu.cp0_read(Ctx.ROOT, *_R_CAUSE) & Cause.TI:
            if self._frozen is None:
                self._regs[Cp0.CAUSE] |= Cause.TI
                raised = True
            self.disarm()
        return raised

    def seconds_to_interrupt(self) -> float:
        """Until the guest's Count reaches its Compare."""
        return ((self._regs[Cp0.COMPARE] - self.count()) & M32) / self._cpu.count_hz

    def _write_host_compare(self, value: int) -> None:
        self._cpu.cp0_write(Ctx.ROOT, *_R_COMPARE, value)
