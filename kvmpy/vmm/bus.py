"""The VMM's address spaces: ranges of one space routed to device models.

A board has two `Bus`es, as Firecracker does: the MMIO space (guest physical
addresses, fed by `MmioExit`) and the port-I/O space (port numbers, fed by
`IoExit` on architectures that have port instructions, or by a host bridge's
I/O window on those that do not). Both are this one class.

Data crosses the bus in two shapes:

- `load`/`store` carry bytes in guest memory order, exactly as the exit
  carries them (Linux's `kvm_run.mmio.data`). The bus turns them into the
  integer a device works with using the device's register endianness
  (`endian`, `Endian.LITTLE` unless the device says otherwise), so a
  big-endian board can use little-endian PCI/virtio registers and the other
  way round without either side swapping bytes by hand.
- `read`/`write` carry that integer directly (a device-to-device path, e.g.
  a bridge forwarding a cycle, and tests).

A mapping can also be a window onto part of a device (`add(..., offset=)`:
the device sees offsets from `offset`) or onto another bus (a host bridge's
I/O window: the target `Bus` sees addresses from `offset`), so no device
needs an adapter class to be mapped in pieces or behind a bridge.

Devices see only offsets within their own range, never guest addresses,
memory slots or the vCPU. An exception raised inside a device is caught here
and recorded as a `DeviceFault`; the runner stops the VM with that reason
after the exit is handled, so a device bug never unwinds through the
hypervisor mid-instruction.

The byte-lane helpers at the end are for devices whose registers are
narrower or wider than the access: a wide access to byte-wide registers is
split into one cycle per byte lane (`read_lanes`/`write_lanes`), a narrow
access to a word register takes or merges its lanes (`word_lane`/`merge_lane`).
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal, Protocol

log = logging.getLogger(__name__)


class Endian(Enum):
    """Byte order of a device's registers: how the bytes of an access make its integer value."""

    LITTLE = "little"
    BIG = "big"


class BusDevice(Protocol):
    """A device register window on a bus.

    `read` returns the value of `size` bytes (1, 2, 4 or 8) at `offset` from
    the start of the device's range, as an unsigned integer. `write` stores
    `value` (already masked to `size` bytes). The device may set an
    attribute `endian` (an `Endian`; little when absent): the bus builds the
    integer from the access's bytes in that order. Accesses a device does
    not implement should read as 0 (or what the hardware returns) and
    ignore writes, never raise: raising means the device is broken, and
    stops the VM.
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
    addr: int
    is_write: bool
    error: BaseException
    space: str = "mmio"

    def __str__(self) -> str:
        kind = "write" if self.is_write else "read"
        where = f"port {self.addr:#06x}" if self.space == "pio" else f"{self.addr:#010x}"
        return f"device {self.device} failed on {kind} at {where}: {self.error!r}"


@dataclass(slots=True)
class _Mapping:
    base: int
    end: int  # one past the last address
    device: BusDevice | Bus
    name: str
    # what the target sees for `base` (a window onto part of a device, or a bridged bus)
    offset: int = 0
    byteorder: Literal["little", "big"] = "little"
    target_bus: Bus | None = None
    count: int = 0  # accesses, for statistics (a plain attribute: cheaper than a Counter on the hot path)

    @property
    def size(self) -> int:
        return self.end - self.base


_MASKS = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFFFFFF, 8: 0xFFFFFFFFFFFFFFFF}


def _mask(size: int) -> int:
    return _MASKS.get(size) or (1 << (8 * size)) - 1


@dataclass
class Bus:
    """One address space: routes accesses to devices (or other buses) by address.

    `space` names it in messages and statistics ("mmio", "pio").
    `counts` counts accesses by mapping name; `fault` is the first
    `DeviceFault`, set when a device raised (on this bus or on a bus it
    bridges to).
    """

    space: str = "mmio"
    mappings: list[_Mapping] = field(default_factory=list)
    fault: DeviceFault | None = None
    unassigned: int = 0
    _bases: list[int] = field(default_factory=list)
    _removed_counts: Counter[str] = field(default_factory=Counter)
    _bridged_from: list[Bus] = field(default_factory=list)

    @property
    def counts(self) -> Counter[str]:
        """Accesses by mapping name (removed mappings included), and "unassigned"."""
        counts = Counter(self._removed_counts)
        for m in self.mappings:
            counts[m.name] += m.count
        if self.unassigned:
            counts["unassigned"] += self.unassigned
        return +counts

    def add(self, base: int, size: int, device: BusDevice | Bus, name: str, *, offset: int = 0) -> None:
        """Map `size` bytes at `base` to `device`, which sees `offset` at `base`.

        `device` is a `BusDevice` or another `Bus` (a bridge window: the
        bytes pass through unconverted, and the target's faults stop the VM
        as this bus's do).
        """
        if size <= 0:
            raise BusError(f"{name}: empty range")
        for m in self.mappings:
            if base < m.end and m.base < base + size:
                raise BusError(f"{name} [{base:#x},+{size:#x}) overlaps {m.name} [{m.base:#x},+{m.size:#x})")
        if isinstance(device, Bus):
            mapping = _Mapping(base, base + size, device, name, offset, target_bus=device)
            device._bridged_from.append(self)
        else:
            endian = getattr(device, "endian", Endian.LITTLE)
            byteorder: Literal["little", "big"] = "big" if endian is Endian.BIG else "little"
            mapping = _Mapping(base, base + size, device, name, offset, byteorder)
        idx = bisect_right(self._bases, base)
        self._bases.insert(idx, base)
        self.mappings.insert(idx, mapping)

    def remove(self, name: str) -> None:
        for m in self.mappings:
            if m.name == name:
                self._removed_counts[name] += m.count
        keep = [m for m in self.mappings if m.name != name]
        self.mappings = keep
        self._bases = [m.base for m in keep]

    def find(self, addr: int) -> _Mapping | None:
        idx = bisect_right(self._bases, addr) - 1
        if idx >= 0:
            m = self.mappings[idx]
            if addr < m.end:
                return m
        return None

    def _record_fault(self, fault: DeviceFault) -> None:
        if self.fault is None:
            self.fault = fault
        for bus in self._bridged_from:
            bus._record_fault(fault)

    # ------------------------------------------------------------------ bytes in memory order (exits)
    # load and store are the MMIO exit's hot path: find() is inlined, nothing is allocated but the value.
    def load(self, addr: int, data: bytearray) -> None:
        """Fill `data` (len = access size) with the bytes a read of `addr` returns, in memory order."""
        idx = bisect_right(self._bases, addr) - 1
        m = self.mappings[idx] if idx >= 0 else None
        size = len(data)
        if m is None or addr >= m.end:
            self.unassigned += 1
            log.debug("%s: read of unassigned address %#x", self.space, addr)
            data[:] = b"\xff" * size
            return
        m.count += 1
        target = m.target_bus
        if target is not None:
            target.load(addr - m.base + m.offset, data)
            return
        try:
            value = m.device.read(addr - m.base + m.offset, size) & (_MASKS.get(size) or _mask(size))
        except Exception as exc:  # noqa: BLE001 - any device bug stops the VM, see module doc
            self._record_fault(DeviceFault(m.name, addr, False, exc, self.space))
            value = 0
        data[:] = value.to_bytes(size, m.byteorder)

    def store(self, addr: int, data: bytes | bytearray) -> None:
        """Write `data` (in memory order) at `addr`."""
        idx = bisect_right(self._bases, addr) - 1
        m = self.mappings[idx] if idx >= 0 else None
        if m is None or addr >= m.end:
            self.unassigned += 1
            log.debug("%s: write of %s to unassigned address %#x", self.space, bytes(data).hex(), addr)
            return
        m.count += 1
        target = m.target_bus
        if target is not None:
            target.store(addr - m.base + m.offset, data)
            return
        try:
            m.device.write(addr - m.base + m.offset, len(data), int.from_bytes(data, m.byteorder))
        except Exception as exc:  # noqa: BLE001 - any device bug stops the VM, see module doc
            self._record_fault(DeviceFault(m.name, addr, True, exc, self.space))

    # ------------------------------------------------------------------ register values
    def read(self, addr: int, size: int) -> int:
        """The register value a `size`-byte read of `addr` returns (all-ones where nothing answers)."""
        m = self.find(addr)
        if m is None:
            self.unassigned += 1
            log.debug("%s: read of unassigned address %#x", self.space, addr)
            return _mask(size)
        m.count += 1
        if m.target_bus is not None:
            return m.target_bus.read(addr - m.base + m.offset, size)
        try:
            return m.device.read(addr - m.base + m.offset, size) & _mask(size)
        except Exception as exc:  # noqa: BLE001 - any device bug stops the VM, see module doc
            self._record_fault(DeviceFault(m.name, addr, False, exc, self.space))
            return 0

    def write(self, addr: int, size: int, value: int) -> None:
        """Write the register value `value` (`size` bytes) at `addr`."""
        m = self.find(addr)
        if m is None:
            self.unassigned += 1
            log.debug("%s: write of %#x to unassigned address %#x", self.space, value, addr)
            return
        m.count += 1
        if m.target_bus is not None:
            m.target_bus.write(addr - m.base + m.offset, size, value)
            return
        try:
            m.device.write(addr - m.base + m.offset, size, value & _mask(size))
        except Exception as exc:  # noqa: BLE001 - any device bug stops the VM, see module doc
            self._record_fault(DeviceFault(m.name, addr, True, exc, self.space))


# ====================================================================== byte lanes
def read_lanes(read_byte: Callable[[int], int], offset: int, size: int, window_bytes: int) -> int:
    """A `size`-byte read at `offset` of byte-wide registers: one byte cycle per lane, lane 0 lowest.

    `read_byte(offset)` reads one register; lanes at or beyond `window_bytes`
    float high (0xff), as an ISA bus with nothing driving it.
    """
    value = 0
    for i in range(size):
        at = offset + i
        value |= ((read_byte(at) & 0xFF) if at < window_bytes else 0xFF) << (8 * i)
    return value


def write_lanes(
    write_byte: Callable[[int, int], None], offset: int, size: int, value: int, window_bytes: int
) -> None:
    """A `size`-byte write at `offset` to byte-wide registers: `write_byte(offset, byte)` per lane.

    Lanes at or beyond `window_bytes` are dropped.
    """
    for i in range(size):
        at = offset + i
        if at < window_bytes:
            write_byte(at, (value >> (8 * i)) & 0xFF)


def word_lane(word: int, offset: int, size: int, word_bytes: int = 4) -> int:
    """The `size` bytes at `offset` of a `word_bytes`-wide register holding `word` (lane 0 lowest)."""
    return (word >> (8 * (offset % word_bytes))) & _mask(size)


def merge_lane(word: int, offset: int, size: int, value: int, word_bytes: int = 4) -> int:
    """`word` with the `size` bytes at `offset` (within the register) replaced by `value`."""
    shift = 8 * (offset % word_bytes)
    mask = _mask(size) << shift
    return (word & ~mask) | ((value << shift) & mask)
