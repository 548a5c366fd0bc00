"""The VMM's MMIO bus: guest-physical ranges routed to device models.

Devices implement `BusDevice` and see only offsets within their own range,
never guest addresses, memory slots or the vCPU. An exception raised inside
a device is caught here and recorded as a `DeviceFault`; the VMM stops the
VM with that reason after the exit is handled, so a device bug never unwinds
through the hypervisor mid-instruction.
"""

from __future__ import annotations

import bisect
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger(__name__)


class BusDevice(Protocol):
    """A device register window on the bus.

    `read` returns the value of `size` bytes (1, 2 or 4) at `offset` from
    the start of the device's range, as an unsigned little-endian integer.
    `write` stores `value` (already masked to `size` bytes). Accesses a
    device does not implement should read as 0 (or what the hardware
    returns) and ignore writes, never raise: raising means the device is
    broken, and stops the VM.
    """

    def read(self, offset: int, size: int) -> int: ...

    def write(self, offset: int, size: int, value: int) -> None: ...


class IrqLine(Protocol):
    """An interrupt output of a device: level-triggered, `set(True)` asserts."""

    def set(self, level: bool) -> None: ...


class BusError(Exception):
    """Adding a device failed (overlapping or empty range)."""


@dataclass(frozen=True)
class DeviceFault:
    """A device raised while handling an access; the VM must stop."""

    device: str
    gpa: int
    is_write: bool
    error: BaseException

    def __str__(self) -> str:
        kind = "write" if self.is_write else "read"
        return f"device {self.device} failed on {kind} at {self.gpa:#010x}: {self.error!r}"


@dataclass
class _Mapping:
    base: int
    size: int
    device: BusDevice
    name: str


@dataclass
class Bus:
    """Routes accesses to devices by guest physical address."""

    mappings: list[_Mapping] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    fault: DeviceFault | None = None
    _bases: list[int] = field(default_factory=list)

    def add(self, base: int, size: int, device: BusDevice, name: str) -> None:
        if size <= 0:
            raise BusError(f"{name}: empty range")
        for m in self.mappings:
            if base < m.base + m.size and m.base < base + size:
                raise BusError(f"{name} [{base:#x},+{size:#x}) overlaps {m.name} [{m.base:#x},+{m.size:#x})")
        idx = bisect.bisect(self._bases, base)
        self._bases.insert(idx, base)
        self.mappings.insert(idx, _Mapping(base, size, device, name))

    def remove(self, name: str) -> None:
        keep = [m for m in self.mappings if m.name != name]
        self.mappings = keep
        self._bases = [m.base for m in keep]

    def find(self, gpa: int) -> _Mapping | None:
        idx = bisect.bisect(self._bases, gpa) - 1
        if idx >= 0:
            m = self.mappings[idx]
            if gpa < m.base + m.size:
                return m
        return None

    def read(self, gpa: int, size: int) -> int:
        m = self.find(gpa)
        if m is None:
            self.counts["unassigned"] += 1
            log.debug("read of unassigned address %#x", gpa)
            return (1 << (8 * size)) - 1
        self.counts[m.name] += 1
        try:
            return m.device.read(gpa - m.base, size) & ((1 << (8 * size)) - 1)
        except Exception as exc:  # noqa: BLE001 - any device bug stops the VM, see module doc
            self.fault = self.fault or DeviceFault(m.name, gpa, False, exc)
            return 0

    def write(self, gpa: int, size: int, value: int) -> None:
        m = self.find(gpa)
        if m is None:
            self.counts["unassigned"] += 1
            log.debug("write of %#x to unassigned address %#x", value, gpa)
            return
        self.counts[m.name] += 1
        try:
            m.device.write(gpa - m.base, size, value & ((1 << (8 * size)) - 1))
        except Exception as exc:  # noqa: BLE001 - any device bug stops the VM, see module doc
            self.fault = self.fault or DeviceFault(m.name, gpa, True, exc)
