"""The VMM's DCR bus: Book E device control registers routed to device models.

PowerPC 4xx system-on-chip peripherals (interrupt controllers, SDRAM and
bus controllers) sit on the device control register bus rather than in the
physical address space: the guest reaches them with `mfdcr`/`mtdcr`, the
hypervisor turns each access into a DCR exit (DCR number, direction, data)
and the VMM completes it here. A DCR is one 32-bit register named by a
10-bit number; there are no byte lanes, widths or endianness.

Routing reuses the MMIO bus (`kvmpy.vmm.bus.Bus`) with DCR numbers as
addresses, so overlap checks, per-device access counts and device-fault
capture behave exactly as on the MMIO bus. What differs is only what the
4xx hardware does with a DCR nobody implements: it reads 0 and ignores
writes (the MMIO bus reads all-ones there).
"""

from __future__ import annotations

from collections import Counter
from typing import Protocol

from kvmpy.vmm.bus import Bus, BusError, DeviceFault

DCR_COUNT = 1024
"""DCR numbers are 10 bits wide (`mfdcr`/`mtdcr` encode them in the DCRN field)."""

DCR_MASK = 0xFFFFFFFF


class DcrDevice(Protocol):
    """A device's window of consecutive DCRs.

    `read(dcrn_offset)` returns the 32-bit value of the register `dcrn_offset`
    numbers past the start of the device's range; `write(dcrn_offset, value)`
    stores a 32-bit `value` there. A device sees only offsets, never
    absolute DCR numbers, so the same model can be placed at any base (UIC0
    at 0xc0, UIC1 at 0xd0, ...). Registers a device does not implement read
    0 and ignore writes; raising means the device is broken and stops the VM
    (the bus records a `DeviceFault`).
    """

    def read(self, dcrn_offset: int) -> int: ...

    def write(self, dcrn_offset: int, value: int) -> None: ...


class _DcrAsBusDevice:
    """Presents a `DcrDevice` to the MMIO routing code (which passes an access size)."""

    def __init__(self, device: DcrDevice) -> None:
        self.device = device

    def read(self, offset: int, size: int) -> int:
        return self.device.read(offset)

    def write(self, offset: int, size: int, value: int) -> None:
        self.device.write(offset, value)


class DcrBus:
    """Routes `mfdcr`/`mtdcr` accesses by DCR number.

    `add(base_dcrn, count, device, name)` places `device` on DCRs
    [base_dcrn, base_dcrn + count); ranges must lie in 0..1023 and must not
    overlap (`BusError`). `read(dcrn)` / `write(dcrn, value)` never raise:
    an unknown DCR reads 0 and ignores writes; an exception inside a device
    is recorded as `fault` (a `DeviceFault` whose address field holds the
    DCR number) and the access reads 0.
    """

    def __init__(self) -> None:
        self._bus = Bus("dcr")
        self.unassigned = 0

    @property
    def fault(self) -> DeviceFault | None:
        """The first device failure, if any; the VMM stops the VM with it."""
        return self._bus.fault

    @property
    def counts(self) -> Counter[str]:
        """Accesses by device name ("unassigned" for DCRs nobody implements)."""
        counts = Counter(self._bus.counts)
        counts["unassigned"] += self.unassigned
        return +counts

    def add(self, base_dcrn: int, count: int, device: DcrDevice, name: str) -> None:
        if base_dcrn < 0 or base_dcrn + count > DCR_COUNT:
            raise BusError(f"{name}: DCRs [{base_dcrn:#x},+{count:#x}) outside 0..{DCR_COUNT - 1:#x}")
        self._bus.add(base_dcrn, count, _DcrAsBusDevice(device), name)

    def name_of(self, dcrn: int) -> str | None:
        """The name of the device owning `dcrn`, or None."""
        m = self._bus.find(dcrn)
        return m.name if m is not None else None

    def read(self, dcrn: int) -> int:
        """`mfdcr`: the value of DCR `dcrn` (0 for a DCR nobody implements)."""
        if self._bus.find(dcrn) is None:
            self.unassigned += 1
            return 0
        return self._bus.read(dcrn, 4) & DCR_MASK

    def write(self, dcrn: int, value: int) -> None:
        """`mtdcr`: store `value` (masked to 32 bits) in DCR `dcrn` (ignored for an unknown DCR)."""
        if self._bus.find(dcrn) is None:
            self.unassigned += 1
            return
        self._bus.write(dcrn, 4, value & DCR_MASK)


__all__ = ["DCR_COUNT", "DcrBus", "DcrDevice"]
