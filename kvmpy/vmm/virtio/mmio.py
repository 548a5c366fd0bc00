"""The virtio-mmio transport (virtio 1.x, section 4.2 "Virtio Over MMIO"), version 2 (modern) only.

One device per 0x200-byte window. Registers 0x000-0x0ff are 32-bit and
little-endian whatever the guest's byte order (`endian` below tells the
bus; a big-endian PowerPC guest's `stwbrx`/`lwbrx` or `iowrite32` produce
these values); the device-specific configuration space starts at 0x100 and
is accessed with the width of each field, laid out as the device model
says (`VirtioDevice.config_read`, little-endian as well).

    offset  register              access
    0x000   MagicValue            R   0x74726976 ("virt")
    0x004   Version               R   2
    0x008   DeviceID              R
    0x00c   VendorID              R
    0x010   DeviceFeatures        R   word DeviceFeaturesSel of the features
    0x014   DeviceFeaturesSel     W
    0x020   DriverFeatures        W   word DriverFeaturesSel
    0x024   DriverFeaturesSel     W
    0x030   QueueSel              W
    0x034   QueueNumMax           R   0 for a queue the device does not have
    0x038   QueueNum              W
    0x044   QueueReady            RW
    0x050   QueueNotify           W   the queue index
    0x060   InterruptStatus       R   bit 0 used buffer, bit 1 configuration change
    0x064   InterruptACK          W
    0x070   Status                RW  0 resets the device
    0x080   QueueDescLow/High     W   (0x084)
    0x090   QueueDriverLow/High   W   (0x094)
    0x0a0   QueueDeviceLow/High   W   (0x0a4)
    0x0ac   SHMSel                W   no shared memory regions: SHMLen reads all ones
    0x0fc   ConfigGeneration      R
    0x100+  Config                RW

Everything device-independent (features, status, queues, interrupt status,
breakage) is `VirtioTransportCore`, shared with virtio-pci. What a wrong
guest gets:

- a control-register access that is not 32 bits wide and aligned, or at an
  offset that is no register: reads 0, writes ignored (counted in
  `guest_errors`); the spec requires drivers to use aligned 32-bit accesses;
- a write to a read-only register, or to QueueNum / queue addresses while
  the queue is ready: ignored (the spec forbids it);
- QueueReady=1 with a size that is 0, not a power of two or above
  QueueNumMax, or with rings outside RAM: the device is marked broken
  (Status gets DEVICE_NEEDS_RESET, a configuration interrupt if DRIVER_OK
  was set) and the queue stays not ready;
- QueueNotify of a queue that is not ready (or does not exist): ignored.

The interrupt is one level-triggered line (`IrqLine`), high while
InterruptStatus is not 0.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import IntEnum
from typing import ClassVar

from kvmpy.vmm.bus import Endian, IrqLine
from kvmpy.vmm.virtio.device import VirtioDevice
from kvmpy.vmm.virtio.queue import GuestMemory, Virtqueue
from kvmpy.vmm.virtio.transport import DeviceStatus, VirtioTransportCore

log = logging.getLogger(__name__)

MAGIC_VALUE = 0x74726976
VERSION = 2
VENDOR_ID = 0x554D4551
"""QEMU's vendor ID ("QEMU"): Linux matches drivers on DeviceID only, and a guest sees what QEMU shows."""

WINDOW_BYTES = 0x200
CONFIG_OFFSET = 0x100
NO_SHM_REGION = 0xFFFFFFFF


class Reg(IntEnum):
    """Control register offsets (version 2 layout)."""

    MAGIC_VALUE = 0x000
    VERSION = 0x004
    DEVICE_ID = 0x008
    VENDOR_ID = 0x00C
    DEVICE_FEATURES = 0x010
    DEVICE_FEATURES_SEL = 0x014
    DRIVER_FEATURES = 0x020
    DRIVER_FEATURES_SEL = 0x024
    QUEUE_SEL = 0x030
    QUEUE_NUM_MAX = 0x034
    QUEUE_NUM = 0x038
    QUEUE_READY = 0x044
    QUEUE_NOTIFY = 0x050
    INTERRUPT_STATUS = 0x060
    INTERRUPT_ACK = 0x064
    STATUS = 0x070
    QUEUE_DESC_LOW = 0x080
    QUEUE_DESC_HIGH = 0x084
    QUEUE_DRIVER_LOW = 0x090
    QUEUE_DRIVER_HIGH = 0x094
    QUEUE_DEVICE_LOW = 0x0A0
    QUEUE_DEVICE_HIGH = 0x0A4
    SHM_SEL = 0x0AC
    SHM_LEN_LOW = 0x0B0
    SHM_LEN_HIGH = 0x0B4
    SHM_BASE_LOW = 0x0B8
    SHM_BASE_HIGH = 0x0BC
    CONFIG_GENERATION = 0x0FC


_QUEUE_ADDRESS = {
    Reg.QUEUE_DESC_LOW: ("desc", 0),
    Reg.QUEUE_DESC_HIGH: ("desc", 1),
    Reg.QUEUE_DRIVER_LOW: ("driver", 0),
    Reg.QUEUE_DRIVER_HIGH: ("driver", 1),
    Reg.QUEUE_DEVICE_LOW: ("device", 0),
    Reg.QUEUE_DEVICE_HIGH: ("device", 1),
}
_REGS = frozenset(int(r) for r in Reg)


class VirtioMmioDevice:
    """A virtio device model behind a virtio-mmio register window (a `BusDevice`, see module doc).

    `device` is the model, `mem` guest RAM for its queues, `irq` its
    interrupt line (for the bamboo board, a UIC input). `core` is the
    transport-independent state (`service_queue`, `config_changed`, ...
    for host-side device work).
    """

    endian: ClassVar[Endian] = Endian.LITTLE
    """Register byte order: virtio-mmio is little-endian on every guest (the bus converts)."""

    def __init__(self, device: VirtioDevice, mem: GuestMemory, irq: IrqLine, *, name: str = "") -> None:
        self.name = name or f"virtio-mmio-{device.device_id}"
        self.virtio = device
        self.irq = irq
        self.core = VirtioTransportCore(device, mem, irq.set, self.name)
        self.guest_errors = 0
        self._reset_registers()

    def _reset_registers(self) -> None:
        self.device_features_sel = 0
        self.driver_features_sel = 0
        self.queue_sel = 0
        self.shm_sel = 0

    # ------------------------------------------------------------------ host side
    def reset(self) -> None:
        """Board reset: the device and every register back to power-on state."""
        with self.core.lock:
            self._reset_registers()
            self.core.reset()

    def queue(self, index: int) -> Virtqueue | None:
        return self.core.queue(index)

    def service_queue(self, index: int, work: Callable[[Virtqueue, Callable[[], None]], object]) -> None:
        """Host-initiated work on queue `index` (see `VirtioTransportCore.service_queue`)."""
        self.core.service_queue(index, work)

    def config_changed(self) -> None:
        self.core.config_changed()

    @property
    def status(self) -> int:
        return self.core.status

    # ------------------------------------------------------------------ BusDevice
    def _guest_error(self, what: str, offset: int, size: int) -> None:
        self.guest_errors += 1
        log.debug("%s: %s: %d-byte access at %#x", self.name, what, size, offset)

    def read(self, offset: int, size: int) -> int:
        """A guest read of `size` bytes at `offset` in the window; never raises."""
        if offset >= CONFIG_OFFSET:
            if size not in (1, 2, 4, 8) or offset + size > WINDOW_BYTES:
                self._guest_error("bad configuration read", offset, size)
                return 0
            return self.core.config_read(offset - CONFIG_OFFSET, size)
        if size != 4 or offset % 4 or offset not in _REGS:
            self._guest_error("bad register read", offset, size)
            return 0
        with self.core.lock:
            return self._read_register(offset) & 0xFFFFFFFF

    def write(self, offset: int, size: int, value: int) -> None:
        """A guest write of `size` bytes at `offset` in the window; never raises."""
        if offset >= CONFIG_OFFSET:
            if size not in (1, 2, 4, 8) or offset + size > WINDOW_BYTES:
                self._guest_error("bad configuration write", offset, size)
                return
            self.core.config_write(offset - CONFIG_OFFSET, size, value & ((1 << (8 * size)) - 1))
            return
        if size != 4 or offset % 4 or offset not in _REGS:
            self._guest_error("bad register write", offset, size)
            return
        with self.core.lock:
            self._write_register(offset, value & 0xFFFFFFFF)

    def _read_register(self, offset: int) -> int:
        core = self.core
        q = core.queue_state(self.queue_sel)
        match offset:
            case Reg.MAGIC_VALUE:
                return MAGIC_VALUE
            case Reg.VERSION:
                return VERSION
            case Reg.DEVICE_ID:
                return self.virtio.device_id
            case Reg.VENDOR_ID:
                return VENDOR_ID
            case Reg.DEVICE_FEATURES:
                return core.device_feature_word(self.device_features_sel)
            case Reg.QUEUE_NUM_MAX:
                return q.max_size if q is not None else 0
            case Reg.QUEUE_READY:
                return int(q.ready) if q is not None else 0
            case Reg.INTERRUPT_STATUS:
                return core.interrupt_status
            case Reg.STATUS:
                return core.status
            case Reg.SHM_LEN_LOW | Reg.SHM_LEN_HIGH | Reg.SHM_BASE_LOW | Reg.SHM_BASE_HIGH:
                return NO_SHM_REGION
            case Reg.CONFIG_GENERATION:
                return core.config_generation
        if offset in _QUEUE_ADDRESS and q is not None:
            ring, half = _QUEUE_ADDRESS[Reg(offset)]
            return (getattr(q, ring) >> (32 * half)) & 0xFFFFFFFF
        self._guest_error("read of a write-only register", offset, 4)
        return 0

    def _write_register(self, offset: int, value: int) -> None:
        core = self.core
        match offset:
            case Reg.DEVICE_FEATURES_SEL:
                self.device_features_sel = value
            case Reg.DRIVER_FEATURES:
                core.set_driver_feature_word(self.driver_features_sel, value)
            case Reg.DRIVER_FEATURES_SEL:
                self.driver_features_sel = value
            case Reg.QUEUE_SEL:
                self.queue_sel = value
            case Reg.QUEUE_NUM:
                if not core.set_queue_size(self.queue_sel, value):
                    self._guest_error("QueueNum of a ready or missing queue", offset, 4)
            case Reg.QUEUE_READY:
                if value == 1:
                    core.enable_queue(self.queue_sel)
                elif value == 0:
                    core.disable_queue(self.queue_sel)
                else:
                    self._guest_error(f"QueueReady {value:#x}", offset, 4)
            case Reg.QUEUE_NOTIFY:
                core.notify(value)
            case Reg.INTERRUPT_ACK:
                core.acknowledge_interrupt(value)
            case Reg.STATUS:
                if value == 0:
                    self._reset_registers()
                core.write_status(value)
            case Reg.SHM_SEL:
                self.shm_sel = value
            case _ if offset in _QUEUE_ADDRESS:
                ring, half = _QUEUE_ADDRESS[Reg(offset)]
                if not core.set_queue_address(self.queue_sel, ring, half, value):
                    self._guest_error("queue address of a ready or missing queue", offset, 4)
            case _:
                self._guest_error("write of a read-only register", offset, 4)


__all__ = [
    "CONFIG_OFFSET",
    "MAGIC_VALUE",
    "VERSION",
    "WINDOW_BYTES",
    "DeviceStatus",
    "Reg",
    "VirtioMmioDevice",
]
