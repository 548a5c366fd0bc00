"""A conventional PCI bus (bus 0 only) and the type-0 configuration space of its functions.

The model is the part of PCI that a guest's enumeration and drivers see:

- `PciDevice` is one PCI *function*: a 256-byte type-0 configuration space
  with per-byte write masks (bits a write can change) and write-1-to-clear
  masks (status bits), BARs with size probing (write all-ones, read back
  ~(size - 1) | type bits), a capability list (for virtio-pci), INTx output
  through `set_irq`, and hooks for subclasses with device-specific registers.
- `PciBus` holds up to 256 functions by devfn (slot << 3 | function), answers
  configuration cycles from a host bridge (absent functions read all-ones;
  the host bridge asks `present()` to report a master abort), routes INTx
  through a board-supplied `route_intx(devfn, pin) -> IrqLine`, and tells
  the board when a BAR starts or stops decoding an address
  (`on_bar_change(device, bar_index, old_addr, new_addr)`).
- `BusBarMapper` is a ready-made `on_bar_change`: it adds and removes the
  BAR's `region` (a `BusDevice`) on the board's port-I/O `Bus` (I/O BARs, by
  port) or MMIO `Bus` (memory BARs, at a fixed offset from the PCI address;
  the Malta's is 0). How the CPU reaches port I/O is the board's business
  (the Malta's host bridge maps a window of its MMIO space onto the port bus).

Configuration space is little-endian (PCI): `config_read(reg, 2)` returns
`config[reg] | config[reg + 1] << 8`. Accesses never cross a dword.

Model choices (QEMU's unless noted):

- Default write masks: command bits IO, MEMORY, MASTER, SERR and
  INTX_DISABLE (0x0507); cache line size; interrupt line; the BARs that are declared
  with `add_bar`. Everything else is read-only until a device opens it with
  `set_wmask` (QEMU makes 0x40-0xff writable by default; here a device says
  so, as the PIIX4 functions do). Status bits 15:11 and 8 are write-1-to-clear.
- A BAR decodes only while its command bit (IO or MEMORY) is set and its
  address is neither 0 nor the sizing pattern (the BAR's last byte at the top
  of its address space); otherwise it is unmapped (`None`).
- The INTERRUPT status bit (bit 3) follows the function's INTx level; the pin
  is driven only while command INTX_DISABLE is clear.
- Function 0's header type gets the multi-function bit (0x80) as soon as any
  other function of its slot is attached, in either order.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Protocol

from kvmpy.vmm.bus import Bus, BusDevice, BusError, IrqLine
from kvmpy.vmm.errors import VmmError

log = logging.getLogger(__name__)

CONFIG_SPACE_BYTES = 256
NUM_BARS = 6
NUM_DEVFNS = 256
FIRST_CAPABILITY_OFFSET = 0x40


class PciError(VmmError):
    """Building the PCI topology failed (devfn taken, bad BAR or capability layout, bad access)."""


class Cfg(IntEnum):
    """Type-0 configuration header offsets."""

    VENDOR_ID = 0x00
    DEVICE_ID = 0x02
    COMMAND = 0x04
    STATUS = 0x06
    REVISION_ID = 0x08
    PROG_IF = 0x09
    SUBCLASS = 0x0A
    CLASS = 0x0B
    CACHE_LINE_SIZE = 0x0C
    LATENCY_TIMER = 0x0D
    HEADER_TYPE = 0x0E
    BIST = 0x0F
    BAR0 = 0x10
    CARDBUS_CIS = 0x28
    SUBSYSTEM_VENDOR_ID = 0x2C
    SUBSYSTEM_ID = 0x2E
    ROM_ADDRESS = 0x30
    CAPABILITIES_POINTER = 0x34
    INTERRUPT_LINE = 0x3C
    INTERRUPT_PIN = 0x3D
    MIN_GNT = 0x3E
    MAX_LAT = 0x3F


class Command(IntEnum):
    IO = 0x0001
    MEMORY = 0x0002
    MASTER = 0x0004
    SPECIAL = 0x0008
    INVALIDATE = 0x0010
    VGA_PALETTE = 0x0020
    PARITY = 0x0040
    WAIT = 0x0080
    SERR = 0x0100
    FAST_BACK = 0x0200
    INTX_DISABLE = 0x0400


class Status(IntEnum):
    INTERRUPT = 0x0008
    CAP_LIST = 0x0010
    MHZ66 = 0x0020
    FAST_BACK = 0x0080
    PARITY = 0x0100
    DEVSEL_MEDIUM = 0x0200
    SIG_TARGET_ABORT = 0x0800
    REC_TARGET_ABORT = 0x1000
    REC_MASTER_ABORT = 0x2000
    SIG_SYSTEM_ERROR = 0x4000
    DETECTED_PARITY = 0x8000


HEADER_TYPE_MULTI_FUNCTION = 0x80
COMMAND_WMASK = Command.IO | Command.MEMORY | Command.MASTER | Command.SERR | Command.INTX_DISABLE
STATUS_W1C = (
    Status.PARITY
    | Status.SIG_TARGET_ABORT
    | Status.REC_TARGET_ABORT
    | Status.REC_MASTER_ABORT
    | Status.SIG_SYSTEM_ERROR
    | Status.DETECTED_PARITY
)

# Capability IDs used by the devices of this project.
CAP_ID_VENDOR_SPECIFIC = 0x09
CAP_ID_MSIX = 0x11


class InterruptPin(IntEnum):
    """Values of the interrupt pin register (0x3d)."""

    NONE = 0
    INTA = 1
    INTB = 2
    INTC = 3
    INTD = 4


class BarKind(Enum):
    IO = "io"
    MEM32 = "mem32"
    MEM64 = "mem64"


BAR_IO_SPACE = 0x1
BAR_MEM_TYPE_64 = 0x4
BAR_MEM_PREFETCH = 0x8


def devfn(slot: int, function: int = 0) -> int:
    """The devfn of `slot` (0-31) and `function` (0-7)."""
    if not (0 <= slot < 32 and 0 <= function < 8):
        raise PciError(f"slot {slot} function {function} out of range")
    return slot << 3 | function


def devfn_str(dev_fn: int) -> str:
    """`ss.f` as lspci prints it."""
    return f"{dev_fn >> 3:02x}.{dev_fn & 7}"


@dataclass
class PciBar:
    """One base address register (a 64-bit BAR occupies `index` and `index + 1`).

    `region` serves accesses inside the BAR's window, with offsets from the
    BAR's start (None: nothing behind it, the board maps nothing). `address`
    is the PCI address the BAR currently decodes, or None.
    """

    index: int
    size_bytes: int
    kind: BarKind
    prefetchable: bool = False
    region: BusDevice | None = None
    address: int | None = None

    @property
    def is_io(self) -> bool:
        return self.kind is BarKind.IO

    @property
    def type_bits(self) -> int:
        if self.kind is BarKind.IO:
            return BAR_IO_SPACE
        bits = BAR_MEM_TYPE_64 if self.kind is BarKind.MEM64 else 0
        return bits | (BAR_MEM_PREFETCH if self.prefetchable else 0)


class BarChangeHandler(Protocol):
    """Called when a BAR starts decoding, moves, or stops decoding.

    `old_addr`/`new_addr` are PCI addresses (I/O port numbers for I/O BARs,
    PCI memory addresses otherwise), None when the BAR does not decode.
    """

    def __call__(
        self, device: PciDevice, bar_index: int, old_addr: int | None, new_addr: int | None
    ) -> None: ...


IntxRouter = Callable[[int, int], IrqLine]
"""`route_intx(devfn, pin) -> IrqLine`: the line a function's INTx pin (1-4) drives."""


def _check_access(reg: int, size: int) -> None:
    if size not in (1, 2, 4) or reg < 0 or (reg & 3) + size > 4 or reg + size > CONFIG_SPACE_BYTES:
        raise PciError(f"bad configuration access: {size} bytes at {reg:#x}")


class PciDevice:
    """One PCI function with a type-0 configuration header.

    Subclasses describe themselves in `__init__` (identity, BARs with
    `add_bar`, capabilities with `add_capability`, device registers with
    `set_*` and `set_wmask`), and may override `config_written` to react to
    the guest writing device-specific registers, or wrap `config_read` /
    `config_write` for registers with side effects (call `super()`).

    Thread-safety: configuration cycles come from the vCPU thread; `set_irq`
    may be called from any thread.
    """

    def __init__(
        self,
        *,
        vendor_id: int,
        device_id: int,
        class_code: int,
        revision: int = 0,
        header_type: int = 0,
        subsystem_vendor_id: int = 0,
        subsystem_id: int = 0,
        interrupt_pin: int = InterruptPin.NONE,
        status: int = 0,
        name: str = "",
    ) -> None:
        self.name = name or f"{vendor_id:04x}:{device_id:04x}"
        self.config = bytearray(CONFIG_SPACE_BYTES)
        self.wmask = bytearray(CONFIG_SPACE_BYTES)
        self.w1cmask = bytearray(CONFIG_SPACE_BYTES)
        self.bars: dict[int, PciBar] = {}
        self.bus: PciBus | None = None
        self.devfn: int | None = None
        self._cap_tail: int | None = None  # offset of the last capability, to link the next one
        self._cap_next_free = FIRST_CAPABILITY_OFFSET
        self._irq_level = False
        self._intx_out = False
        self._irq_lock = threading.Lock()

        self.set_word(Cfg.VENDOR_ID, vendor_id)
        self.set_word(Cfg.DEVICE_ID, device_id)
        self.set_long(Cfg.REVISION_ID, (class_code & 0xFFFFFF) << 8 | (revision & 0xFF))
        self.set_byte(Cfg.HEADER_TYPE, header_type)
        self.set_word(Cfg.SUBSYSTEM_VENDOR_ID, subsystem_vendor_id)
        self.set_word(Cfg.SUBSYSTEM_ID, subsystem_id)
        self.set_byte(Cfg.INTERRUPT_PIN, interrupt_pin)
        self.set_word(Cfg.STATUS, status)
        self.set_wmask(Cfg.COMMAND, 2, COMMAND_WMASK)
        self.set_wmask(Cfg.CACHE_LINE_SIZE, 1, 0xFF)
        self.set_wmask(Cfg.INTERRUPT_LINE, 1, 0xFF)
        self.set_w1cmask(Cfg.STATUS, 2, STATUS_W1C)

    # ------------------------------------------------------------------ description helpers
    def _set(self, array: bytearray, reg: int, size: int, value: int) -> None:
        if reg < 0 or reg + size > CONFIG_SPACE_BYTES:
            raise PciError(f"{self.name}: register {reg:#x}+{size} outside configuration space")
        array[reg : reg + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")

    def set_byte(self, reg: int, value: int) -> None:
        self._set(self.config, reg, 1, value)

    def set_word(self, reg: int, value: int) -> None:
        self._set(self.config, reg, 2, value)

    def set_long(self, reg: int, value: int) -> None:
        self._set(self.config, reg, 4, value)

    def set_wmask(self, reg: int, size: int, mask: int) -> None:
        """Make the bits of `mask` writable (and the others read-only) in `size` bytes at `reg`."""
        self._set(self.wmask, reg, size, mask)

    def set_w1cmask(self, reg: int, size: int, mask: int) -> None:
        """Make the bits of `mask` write-1-to-clear in `size` bytes at `reg`."""
        self._set(self.w1cmask, reg, size, mask)

    def get(self, reg: int, size: int) -> int:
        """The raw value of `size` bytes at `reg`, without side effects."""
        return int.from_bytes(self.config[reg : reg + size], "little")

    @property
    def command(self) -> int:
        return self.get(Cfg.COMMAND, 2)

    @property
    def vendor_id(self) -> int:
        return self.get(Cfg.VENDOR_ID, 2)

    @property
    def device_id(self) -> int:
        return self.get(Cfg.DEVICE_ID, 2)

    @property
    def interrupt_pin(self) -> int:
        return self.config[Cfg.INTERRUPT_PIN]

    def add_bar(
        self,
        index: int,
        size_bytes: int,
        kind: BarKind,
        *,
        prefetchable: bool = False,
        region: BusDevice | None = None,
    ) -> PciBar:
        """Declare BAR `index`: a power-of-two window of `size_bytes` (I/O at least 4, memory 16)."""
        last = index + (1 if kind is BarKind.MEM64 else 0)
        if not 0 <= index <= last < NUM_BARS:
            raise PciError(f"{self.name}: BAR {index} out of range for {kind.value}")
        if size_bytes <= 0 or size_bytes & (size_bytes - 1):
            raise PciError(f"{self.name}: BAR {index} size {size_bytes:#x} is not a power of two")
        if size_bytes < (4 if kind is BarKind.IO else 16):
            raise PciError(f"{self.name}: BAR {index} size {size_bytes:#x} too small for {kind.value}")
        if kind is BarKind.IO and prefetchable:
            raise PciError(f"{self.name}: I/O BAR {index} cannot be prefetchable")
        taken = {i for bar in self.bars.values() for i in self._bar_regs(bar)}
        if index in taken or last in taken:
            raise PciError(f"{self.name}: BAR {index} overlaps another BAR")
        bar = PciBar(index, size_bytes, kind, prefetchable, region)
        self.bars[index] = bar
        reg = Cfg.BAR0 + 4 * index
        self.set_long(reg, bar.type_bits)
        self.set_wmask(reg, 4, ~(size_bytes - 1) & 0xFFFFFFFF & ~(0x3 if bar.is_io else 0xF))
        if kind is BarKind.MEM64:
            self.set_long(reg + 4, 0)
            self.set_wmask(reg + 4, 4, (~(size_bytes - 1) >> 32) & 0xFFFFFFFF)
        return bar

    @staticmethod
    def _bar_regs(bar: PciBar) -> tuple[int, ...]:
        return (bar.index, bar.index + 1) if bar.kind is BarKind.MEM64 else (bar.index,)

    def bar(self, index: int) -> PciBar | None:
        return self.bars.get(index)

    def add_capability(
        self, cap_id: int, body: bytes, *, offset: int | None = None, wmask: bytes | None = None
    ) -> int:
        """Append a capability and return its offset.

        The capability occupies 2 + len(body) bytes: the ID, the next
        pointer (maintained here), then `body` (for a vendor-specific
        capability `body` starts with its length byte). It is placed at
        `offset` (dword-aligned, at or after 0x40) or after the previous
        capability. `wmask` optionally makes bits of `body` writable.
        """
        length = 2 + len(body)
        at = self._cap_next_free if offset is None else offset
        if at < FIRST_CAPABILITY_OFFSET or at & 3 or at + length > CONFIG_SPACE_BYTES:
            raise PciError(f"{self.name}: capability {cap_id:#x} does not fit at {at:#x}")
        if wmask is not None and len(wmask) != len(body):
            raise PciError(f"{self.name}: capability {cap_id:#x} wmask length differs from body")
        self.config[at] = cap_id & 0xFF
        self.config[at + 1] = 0
        self.config[at + 2 : at + length] = body
        self.wmask[at : at + length] = bytes(length)
        if wmask is not None:
            self.wmask[at + 2 : at + length] = wmask
        if self._cap_tail is None:
            self.set_byte(Cfg.CAPABILITIES_POINTER, at)
            self.set_word(Cfg.STATUS, self.get(Cfg.STATUS, 2) | Status.CAP_LIST)
        else:
            self.config[self._cap_tail + 1] = at
        self._cap_tail = at
        self._cap_next_free = max(self._cap_next_free, (at + length + 3) & ~3)
        return at

    def capabilities(self) -> Iterator[tuple[int, int]]:
        """(offset, cap_id) of each capability, in list order."""
        if not self.get(Cfg.STATUS, 2) & Status.CAP_LIST:
            return
        at, seen = self.config[Cfg.CAPABILITIES_POINTER] & 0xFC, set()
        while at and at not in seen:
            seen.add(at)
            yield at, self.config[at]
            at = self.config[at + 1] & 0xFC

    # ------------------------------------------------------------------ configuration cycles
    def config_read(self, reg: int, size: int) -> int:
        """A configuration read of `size` bytes at `reg` (within one dword)."""
        _check_access(reg, size)
        return int.from_bytes(self.config[reg : reg + size], "little")

    def config_write(self, reg: int, size: int, value: int) -> None:
        """A configuration write of `size` bytes at `reg`, through the write and W1C masks."""
        _check_access(reg, size)
        for i in range(size):
            at = reg + i
            byte = (value >> (8 * i)) & 0xFF
            wm = self.wmask[at]
            new = (self.config[at] & ~wm) | (byte & wm)
            self.config[at] = new & ~(byte & self.w1cmask[at]) & 0xFF
        end = reg + size
        if reg < Cfg.COMMAND + 2 and end > Cfg.COMMAND:
            self._update_intx()
        if reg < Cfg.BAR0 + 4 * NUM_BARS and end > Cfg.COMMAND:
            self.update_bars()
        self.config_written(reg, size)

    def config_written(self, reg: int, size: int) -> None:
        """Hook: the guest wrote `size` bytes at `reg` (after the masks were applied)."""

    # ------------------------------------------------------------------ BAR decoding
    def bar_address(self, bar: PciBar) -> int | None:
        """The PCI address `bar` decodes now, or None (decode disabled, 0, or the sizing pattern)."""
        reg = Cfg.BAR0 + 4 * bar.index
        value = self.get(reg, 4)
        if bar.is_io:
            if not self.command & Command.IO:
                return None
            addr, limit = value & ~0x3 & ~(bar.size_bytes - 1), 1 << 32
        else:
            if not self.command & Command.MEMORY:
                return None
            if bar.kind is BarKind.MEM64:
                value |= self.get(reg + 4, 4) << 32
                limit = 1 << 64
            else:
                limit = 1 << 32
            addr = value & ~0xF & ~(bar.size_bytes - 1)
        if addr == 0 or addr + bar.size_bytes >= limit:
            return None
        return addr

    def update_bars(self) -> None:
        """Recompute every BAR's decoded address and report the ones that changed."""
        for bar in self.bars.values():
            new = self.bar_address(bar)
            if new != bar.address:
                old, bar.address = bar.address, new
                log.debug("pci %s BAR %d: %s -> %s", self.name, bar.index, _hex(old), _hex(new))
                if self.bus is not None:
                    self.bus.bar_changed(self, bar.index, old, new)

    # ------------------------------------------------------------------ INTx
    def set_irq(self, level: bool) -> None:
        """Drive this function's INTx pin (level-triggered; True asserts).

        The INTERRUPT status bit follows `level`; the pin reaches the board's
        interrupt routing only while command INTX_DISABLE is clear.
        """
        with self._irq_lock:
            self._irq_level = bool(level)
            status = self.get(Cfg.STATUS, 2)
            status = status | Status.INTERRUPT if level else status & ~Status.INTERRUPT
            self.set_word(Cfg.STATUS, status)
            self._update_intx_locked()

    @property
    def irq_level(self) -> bool:
        return self._irq_level

    def _update_intx(self) -> None:
        with self._irq_lock:
            self._update_intx_locked()

    def _update_intx_locked(self) -> None:
        out = self._irq_level and not self.command & Command.INTX_DISABLE
        if out != self._intx_out:
            self._intx_out = out
            if self.bus is not None and self.devfn is not None:
                self.bus.drive_intx(self, out)


def _hex(addr: int | None) -> str:
    return "unmapped" if addr is None else f"{addr:#x}"


class PciBus:
    """PCI bus 0: functions by devfn, configuration cycles, INTx routing, BAR notifications.

    `route_intx(devfn, pin)` (pin 1-4 = INTA-INTD) gives the line a
    function's INTx pin drives; it is asked lazily, on the first time the
    pin changes, so it may be set after functions are attached (the PIIX4
    that routes PCI interrupts is itself a function on this bus).
    `on_bar_change` is told about every BAR that starts or stops decoding
    or moves; it may also be set later.
    """

    def __init__(
        self,
        *,
        route_intx: IntxRouter | None = None,
        on_bar_change: BarChangeHandler | None = None,
    ) -> None:
        self.route_intx = route_intx
        self.on_bar_change = on_bar_change
        self._functions: dict[int, PciDevice] = {}
        self._intx_lines: dict[int, IrqLine] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ topology
    def attach(self, dev_fn: int, device: PciDevice) -> None:
        """Put `device` at `dev_fn`; a function 0 becomes multi-function when its slot has others."""
        if not 0 <= dev_fn < NUM_DEVFNS:
            raise PciError(f"devfn {dev_fn:#x} out of range")
        if dev_fn in self._functions:
            taken_by = self._functions[dev_fn].name
            raise PciError(f"{device.name}: devfn {devfn_str(dev_fn)} is taken by {taken_by}")
        if device.bus is not None:
            raise PciError(f"{device.name} is already attached at {devfn_str(device.devfn or 0)}")
        self._functions[dev_fn] = device
        device.bus, device.devfn = self, dev_fn
        slot = dev_fn & ~7
        fn0 = self._functions.get(slot)
        if fn0 is not None and any(slot + f in self._functions for f in range(1, 8)):
            fn0.set_byte(Cfg.HEADER_TYPE, fn0.config[Cfg.HEADER_TYPE] | HEADER_TYPE_MULTI_FUNCTION)
        log.debug("pci %s: %s", devfn_str(dev_fn), device.name)

    def device(self, dev_fn: int) -> PciDevice | None:
        return self._functions.get(dev_fn)

    def devices(self) -> Iterator[tuple[int, PciDevice]]:
        """(devfn, device) in devfn order."""
        yield from sorted(self._functions.items())

    def present(self, bus: int, dev_fn: int) -> bool:
        """Whether a configuration cycle to (bus, devfn) has a target (else: master abort)."""
        return bus == 0 and dev_fn in self._functions

    # ------------------------------------------------------------------ configuration cycles
    def config_read(self, bus: int, dev_fn: int, reg: int, size: int) -> int:
        """Read `size` bytes at `reg` of (bus, devfn); all-ones if nothing answers."""
        _check_access(reg, size)
        device = self._functions.get(dev_fn) if bus == 0 else None
        if device is None:
            return (1 << (8 * size)) - 1
        return device.config_read(reg, size)

    def config_write(self, bus: int, dev_fn: int, reg: int, size: int, value: int) -> None:
        """Write `size` bytes at `reg` of (bus, devfn); dropped if nothing answers."""
        _check_access(reg, size)
        device = self._functions.get(dev_fn) if bus == 0 else None
        if device is not None:
            device.config_write(reg, size, value & ((1 << (8 * size)) - 1))

    # ------------------------------------------------------------------ called by functions
    def bar_changed(self, device: PciDevice, bar_index: int, old: int | None, new: int | None) -> None:
        if self.on_bar_change is not None:
            self.on_bar_change(device, bar_index, old, new)

    def drive_intx(self, device: PciDevice, level: bool) -> None:
        """Drive the routed line of `device`'s INTx pin (called by `PciDevice`)."""
        dev_fn, pin = device.devfn, device.interrupt_pin
        if dev_fn is None or not 1 <= pin <= 4:
            return
        with self._lock:
            line = self._intx_lines.get(dev_fn)
            if line is None:
                if self.route_intx is None:
                    log.warning("pci %s: INTx with no interrupt routing", devfn_str(dev_fn))
                    return
                line = self._intx_lines[dev_fn] = self.route_intx(dev_fn, pin)
        line.set(level)


class BusBarMapper:
    """An `on_bar_change` that maps BAR regions onto the board's buses.

    I/O BARs appear on `pio` at their port, memory BARs on `mmio` at
    `mem_gpa_offset + address`. BARs without a `region` are not mapped. A
    BAR that would overlap another mapping is left unmapped with a warning:
    a guest's bad assignment must not stop the VM.
    """

    def __init__(self, mmio: Bus, pio: Bus, *, mem_gpa_offset: int = 0) -> None:
        self.mmio = mmio
        self.pio = pio
        self.mem_gpa_offset = mem_gpa_offset

    @staticmethod
    def mapping_name(device: PciDevice, bar_index: int) -> str:
        return f"pci{devfn_str(device.devfn or 0)}-bar{bar_index}"

    def __call__(self, device: PciDevice, bar_index: int, old_addr: int | None, new_addr: int | None) -> None:
        bar = device.bar(bar_index)
        if bar is None or bar.region is None:
            return
        name = self.mapping_name(device, bar_index)
        bus, offset = (self.pio, 0) if bar.is_io else (self.mmio, self.mem_gpa_offset)
        if old_addr is not None:
            bus.remove(name)
        if new_addr is not None:
            try:
                bus.add(offset + new_addr, bar.size_bytes, bar.region, name)
            except BusError as exc:
                log.warning("%s: BAR %d left unmapped: %s", device.name, bar_index, exc)
