"""The virtio-pci modern transport (virtio 1.x, section 4.1), INTx only.

`VirtioPciDevice` is a PCI function (vendor 0x1af4, device 0x1040 + virtio
device ID, revision 1) whose BAR 4 (32-bit memory, 16 KiB: Malta's PCI
memory window is 32-bit) holds the four register structures, each found
through a vendor-specific capability:

    BAR 4 offset  structure          capability cfg_type
    0x0000        common config      1 COMMON_CFG
    0x1000        ISR status         3 ISR_CFG
    0x2000        device config      4 DEVICE_CFG
    0x3000        queue notify       2 NOTIFY_CFG (notify_off_multiplier 4)

plus the PCI_CFG capability (5), a window into the BAR through
configuration space. Queue `i` has queue_notify_off `i`, so its doorbell is
at 0x3000 + 4 * i.

No MSI-X capability: msix_config and queue_msix_vector read NO_VECTOR
(0xffff) and the driver uses INTx with the ISR (bit 0 used buffer, bit 1
configuration change; reading clears it and lowers the line).

No legacy (transitional) interface: Linux 6.1's virtio_pci probes the
modern interface first and only falls back to legacy when it is absent
(and Debian's driver handles device IDs 0x1040-0x107f as modern-only).

A guest mistake in a queue (`VirtqueueError`) or any exception from the
device model marks the device broken: DEVICE_NEEDS_RESET in device_status,
ISR bit 1 and an interrupt if the driver is running; notifications are then
ignored until the driver resets the device by writing 0 to device_status.
Register accesses never raise.
"""

from __future__ import annotations

import logging
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum, IntFlag

from kvmpy.vmm.bus import Endian
from kvmpy.vmm.pci import CAP_ID_VENDOR_SPECIFIC, BarKind, InterruptPin, PciDevice
from kvmpy.vmm.virtio.device import VirtioDevice
from kvmpy.vmm.virtio.queue import MAX_QUEUE_SIZE, GuestMemory, Virtqueue, VirtqueueError

log = logging.getLogger(__name__)

VIRTIO_PCI_VENDOR_ID = 0x1AF4
VIRTIO_PCI_MODERN_DEVICE_ID_BASE = 0x1040
VIRTIO_PCI_SUBSYSTEM_VENDOR_ID = 0x1AF4
VIRTIO_PCI_SUBSYSTEM_ID = 0x1100
"""QEMU's subsystem ID; for modern devices the spec lets it reflect the environment."""

VIRTIO_F_INDIRECT_DESC = 1 << 28
VIRTIO_F_EVENT_IDX = 1 << 29
VIRTIO_F_VERSION_1 = 1 << 32
TRANSPORT_FEATURES = VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX

VIRTIO_MSI_NO_VECTOR = 0xFFFF

BAR_INDEX = 4
BAR_SIZE = 0x4000
COMMON_OFFSET, COMMON_LENGTH = 0x0000, 0x1000
ISR_OFFSET, ISR_LENGTH = 0x1000, 0x1000
DEVICE_OFFSET, DEVICE_LENGTH = 0x2000, 0x1000
NOTIFY_OFFSET, NOTIFY_LENGTH = 0x3000, 0x1000
NOTIFY_OFF_MULTIPLIER = 4

ISR_QUEUE = 0x1
ISR_CONFIG = 0x2

# Default PCI class codes by virtio device ID (QEMU's choices); others are "other" (0xff).
_CLASS_BY_DEVICE_ID = {
    1: 0x020000,  # network: ethernet
    2: 0x010000,  # block: SCSI storage
    3: 0x078000,  # console: other communication
    4: 0x00FF00,  # entropy
    5: 0x00FF00,  # balloon
    8: 0x010000,  # SCSI host
    9: 0x000200,  # 9P transport
    16: 0x038000,  # GPU: other display
    18: 0x098000,  # input: other input
}


class CfgType(IntEnum):
    """virtio_pci_cap.cfg_type."""

    COMMON = 1
    NOTIFY = 2
    ISR = 3
    DEVICE = 4
    PCI = 5


class DeviceStatus(IntFlag):
    ACKNOWLEDGE = 0x01
    DRIVER = 0x02
    DRIVER_OK = 0x04
    FEATURES_OK = 0x08
    DEVICE_NEEDS_RESET = 0x40
    FAILED = 0x80


class Common(IntEnum):
    """Offsets in struct virtio_pci_common_cfg."""

    DEVICE_FEATURE_SELECT = 0x00
    DEVICE_FEATURE = 0x04
    DRIVER_FEATURE_SELECT = 0x08
    DRIVER_FEATURE = 0x0C
    MSIX_CONFIG = 0x10
    NUM_QUEUES = 0x12
    DEVICE_STATUS = 0x14
    CONFIG_GENERATION = 0x15
    QUEUE_SELECT = 0x16
    QUEUE_SIZE = 0x18
    QUEUE_MSIX_VECTOR = 0x1A
    QUEUE_ENABLE = 0x1C
    QUEUE_NOTIFY_OFF = 0x1E
    QUEUE_DESC = 0x20
    QUEUE_DRIVER = 0x28
    QUEUE_DEVICE = 0x30
    QUEUE_NOTIFY_DATA = 0x38
    QUEUE_RESET = 0x3A


_COMMON_SIZES = {
    Common.DEVICE_FEATURE_SELECT: 4,
    Common.DEVICE_FEATURE: 4,
    Common.DRIVER_FEATURE_SELECT: 4,
    Common.DRIVER_FEATURE: 4,
    Common.MSIX_CONFIG: 2,
    Common.NUM_QUEUES: 2,
    Common.DEVICE_STATUS: 1,
    Common.CONFIG_GENERATION: 1,
    Common.QUEUE_SELECT: 2,
    Common.QUEUE_SIZE: 2,
    Common.QUEUE_MSIX_VECTOR: 2,
    Common.QUEUE_ENABLE: 2,
    Common.QUEUE_NOTIFY_OFF: 2,
    Common.QUEUE_DESC: 8,
    Common.QUEUE_DRIVER: 8,
    Common.QUEUE_DEVICE: 8,
    Common.QUEUE_NOTIFY_DATA: 2,
    Common.QUEUE_RESET: 2,
}
_COMMON_END = 0x3C
_BYTE_FIELD = {off + i: (off, size) for off, size in _COMMON_SIZES.items() for i in range(size)}

# PCI_CFG capability body offsets (from the capability start).
_PCI_CFG_BAR = 4
_PCI_CFG_OFFSET = 8
_PCI_CFG_LENGTH = 12
_PCI_CFG_DATA = 16


def _cap_body(cfg_type: int, offset: int, length: int, extra: bytes = b"") -> bytes:
    """A virtio_pci_cap body (after cap_vndr and cap_next): cap_len first."""
    body = struct.pack("<BBBxxII", cfg_type, BAR_INDEX, 0, offset, length) + extra
    return bytes([2 + 1 + len(body)]) + body


@dataclass
class QueueState:
    """One queue's registers in the common configuration structure."""

    max_size: int
    size: int = 0
    enabled: bool = False
    desc: int = 0
    driver: int = 0
    device: int = 0
    vq: Virtqueue | None = None

    def reset(self) -> None:
        self.size, self.enabled = self.max_size, False
        self.desc = self.driver = self.device = 0
        self.vq = None


class VirtioPciDevice(PciDevice):
    """A virtio device behind the modern virtio-pci transport (see module doc).

    `device` is the device model, `mem` guest memory for its queues. The
    BAR's region is this object (`read`/`write` take BAR offsets, as a
    `BusDevice`). INTx is pin A.

    Thread-safety: register accesses come from the vCPU thread; a device
    may call the `interrupt` callbacks (or `config_changed`) from others.
    """

    # Modern virtio registers are little-endian whatever the CPU; the bus turns a
    # big-endian guest's bytes into these values, so nothing here swaps.
    endian = Endian.LITTLE

    def __init__(
        self, device: VirtioDevice, mem: GuestMemory, *, class_code: int | None = None, name: str = ""
    ) -> None:
        max_size = device.queue_max_size
        if not 0 < max_size <= MAX_QUEUE_SIZE or max_size & (max_size - 1):
            raise ValueError(f"virtio device {device.device_id}: queue_max_size {max_size} invalid")
        if not 0 < device.num_queues <= NOTIFY_LENGTH // NOTIFY_OFF_MULTIPLIER:
            raise ValueError(f"virtio device {device.device_id}: num_queues {device.num_queues} invalid")
        if class_code is None:
            class_code = _CLASS_BY_DEVICE_ID.get(device.device_id, 0xFF0000)
        super().__init__(
            vendor_id=VIRTIO_PCI_VENDOR_ID,
            device_id=VIRTIO_PCI_MODERN_DEVICE_ID_BASE + device.device_id,
            class_code=class_code,
            revision=1,
            subsystem_vendor_id=VIRTIO_PCI_SUBSYSTEM_VENDOR_ID,
            subsystem_id=VIRTIO_PCI_SUBSYSTEM_ID,
            interrupt_pin=InterruptPin.INTA,
            name=name or f"virtio-pci-{device.device_id}",
        )
        self.virtio = device
        self.mem = mem
        self.add_bar(BAR_INDEX, BAR_SIZE, BarKind.MEM32, region=self)
        self.add_capability(CAP_ID_VENDOR_SPECIFIC, _cap_body(CfgType.COMMON, COMMON_OFFSET, COMMON_LENGTH))
        self.add_capability(CAP_ID_VENDOR_SPECIFIC, _cap_body(CfgType.ISR, ISR_OFFSET, ISR_LENGTH))
        self.add_capability(CAP_ID_VENDOR_SPECIFIC, _cap_body(CfgType.DEVICE, DEVICE_OFFSET, DEVICE_LENGTH))
        self.add_capability(
            CAP_ID_VENDOR_SPECIFIC,
            _cap_body(CfgType.NOTIFY, NOTIFY_OFFSET, NOTIFY_LENGTH, struct.pack("<I", NOTIFY_OFF_MULTIPLIER)),
        )
        # PCI_CFG: bar, offset, length and data are driver-writable (bar/offset/length say where).
        pci_body = _cap_body(CfgType.PCI, 0, 0, bytes(4))
        pci_wmask = bytearray(len(pci_body))
        pci_wmask[_PCI_CFG_BAR - 2] = 0xFF
        pci_wmask[_PCI_CFG_OFFSET - 2 : _PCI_CFG_DATA + 4 - 2] = b"\xff" * 12
        self.pci_cfg_cap = self.add_capability(CAP_ID_VENDOR_SPECIFIC, pci_body, wmask=bytes(pci_wmask))

        self.device_features = (device.features | TRANSPORT_FEATURES) & ((1 << 64) - 1)
        self._lock = threading.RLock()
        self.queues = [QueueState(max_size) for _ in range(device.num_queues)]
        self._reset_state()

    # ------------------------------------------------------------------ state
    def _reset_state(self) -> None:
        self.device_feature_select = 0
        self.driver_feature_select = 0
        self.driver_features = 0
        self.status = 0
        self.config_generation = 0
        self.queue_select = 0
        self.isr = 0
        self.broken = False
        for q in self.queues:
            q.reset()

    def reset(self) -> None:
        """Device reset (the driver wrote 0 to device_status)."""
        with self._lock:
            self._reset_state()
            self.set_irq(False)
        try:
            self.virtio.reset()
        except Exception:  # noqa: BLE001 - a device bug must not reach the vCPU
            log.exception("%s: device reset failed", self.name)
            self._mark_broken("device reset failed")

    @property
    def negotiated_features(self) -> int:
        return self.driver_features if self.status & DeviceStatus.FEATURES_OK else 0

    def queue(self, index: int) -> Virtqueue | None:
        """The live virtqueue `index`, or None if the driver has not enabled it."""
        return self.queues[index].vq if 0 <= index < len(self.queues) else None

    # ------------------------------------------------------------------ interrupts
    def _raise_isr(self, bits: int) -> None:
        with self._lock:
            self.isr |= bits
            self.set_irq(True)

    def queue_interrupt(self, index: int) -> None:
        """Used-buffer notification for queue `index`, if its suppression state asks for one."""
        with self._lock:
            vq = self.queue(index)
            if vq is None or self.broken:
                return
            try:
                wanted = vq.needs_notification()
            except VirtqueueError as exc:
                self._mark_broken(str(exc))
                return
            if wanted:
                self._raise_isr(ISR_QUEUE)

    def service_queue(self, index: int, work: Callable[[Virtqueue, Callable[[], None]], object]) -> None:
        """Run host-initiated device work on queue `index`: `work(vq, interrupt)`.

        For input that arrives from the host side (console keystrokes,
        network frames) rather than from a guest notification. Like a
        notification, a malformed queue or a device error marks the device
        broken (DEVICE_NEEDS_RESET) and never propagates. Does nothing while
        the queue is not enabled or the device is broken.
        """
        with self._lock:
            vq = self.queue(index)
            if vq is None or self.broken:
                return
            try:
                work(vq, self._interrupt_for(index))
            except Exception as exc:  # noqa: BLE001 - see module doc
                self._mark_broken(repr(exc))

    def config_changed(self) -> None:
        """The device changed its configuration: bump config_generation, send a config interrupt."""
        with self._lock:
            self.config_generation = (self.config_generation + 1) & 0xFF
            if self.status & DeviceStatus.DRIVER_OK:
                self._raise_isr(ISR_CONFIG)

    def _mark_broken(self, why: str) -> None:
        with self._lock:
            if self.broken:
                return
            log.warning("%s: device needs reset: %s", self.name, why)
            self.broken = True
            self.status |= DeviceStatus.DEVICE_NEEDS_RESET
            if self.status & DeviceStatus.DRIVER_OK:
                self._raise_isr(ISR_CONFIG)

    def _interrupt_for(self, index: int) -> Callable[[], None]:
        return lambda: self.queue_interrupt(index)

    # ------------------------------------------------------------------ BAR (BusDevice)
    def read(self, offset: int, size: int) -> int:
        """A read of `size` bytes at `offset` in BAR 4; never raises."""
        with self._lock:
            try:
                if COMMON_OFFSET <= offset < COMMON_OFFSET + COMMON_LENGTH:
                    return self._common_read(offset - COMMON_OFFSET, size)
                if ISR_OFFSET <= offset < ISR_OFFSET + ISR_LENGTH:
                    return self._isr_read()
                if DEVICE_OFFSET <= offset < DEVICE_OFFSET + DEVICE_LENGTH:
                    return self._device_read(offset - DEVICE_OFFSET, size)
            except Exception as exc:  # noqa: BLE001 - see module doc
                log.exception("%s: register read failed", self.name)
                self._mark_broken(repr(exc))
            return 0

    def write(self, offset: int, size: int, value: int) -> None:
        """A write of `size` bytes at `offset` in BAR 4; never raises."""
        value &= (1 << (8 * size)) - 1 if size > 0 else 0
        with self._lock:
            try:
                if COMMON_OFFSET <= offset < COMMON_OFFSET + COMMON_LENGTH:
                    self._common_write(offset - COMMON_OFFSET, size, value)
                elif DEVICE_OFFSET <= offset < DEVICE_OFFSET + DEVICE_LENGTH:
                    if not self.broken:
                        self.virtio.config_write(offset - DEVICE_OFFSET, size, value)
                elif NOTIFY_OFFSET <= offset < NOTIFY_OFFSET + NOTIFY_LENGTH:
                    rel = offset - NOTIFY_OFFSET
                    if rel % NOTIFY_OFF_MULTIPLIER == 0:
                        self._notify(rel // NOTIFY_OFF_MULTIPLIER)
            except Exception as exc:  # noqa: BLE001 - see module doc
                log.exception("%s: register write failed", self.name)
                self._mark_broken(repr(exc))

    def _isr_read(self) -> int:
        value, self.isr = self.isr, 0
        self.set_irq(False)
        return value

    def _device_read(self, offset: int, size: int) -> int:
        if self.broken:
            return 0
        return self.virtio.config_read(offset, size) & ((1 << (8 * size)) - 1)

    def _notify(self, index: int) -> None:
        vq = self.queue(index)
        if vq is None or self.broken:
            return
        try:
            self.virtio.queue_notify(index, vq, self._interrupt_for(index))
        except VirtqueueError as exc:
            self._mark_broken(f"queue {index}: {exc}")
        except Exception as exc:  # noqa: BLE001 - see module doc
            log.exception("%s: queue %d notification failed", self.name, index)
            self._mark_broken(f"queue {index}: {exc!r}")

    # ------------------------------------------------------------------ common configuration
    def _selected(self) -> QueueState | None:
        return self.queues[self.queue_select] if self.queue_select < len(self.queues) else None

    def _field_value(self, field: int) -> int:
        q = self._selected()
        match field:
            case Common.DEVICE_FEATURE_SELECT:
                return self.device_feature_select
            case Common.DEVICE_FEATURE:
                sel = self.device_feature_select
                return (self.device_features >> (32 * sel)) & 0xFFFFFFFF if sel < 2 else 0
            case Common.DRIVER_FEATURE_SELECT:
                return self.driver_feature_select
            case Common.DRIVER_FEATURE:
                sel = self.driver_feature_select
                return (self.driver_features >> (32 * sel)) & 0xFFFFFFFF if sel < 2 else 0
            case Common.MSIX_CONFIG | Common.QUEUE_MSIX_VECTOR:
                return VIRTIO_MSI_NO_VECTOR
            case Common.NUM_QUEUES:
                return len(self.queues)
            case Common.DEVICE_STATUS:
                return self.status
            case Common.CONFIG_GENERATION:
                return self.config_generation
            case Common.QUEUE_SELECT:
                return self.queue_select
            case Common.QUEUE_NOTIFY_OFF | Common.QUEUE_NOTIFY_DATA:
                return self.queue_select if q is not None else 0
            case Common.QUEUE_SIZE:
                return q.size if q is not None else 0
            case Common.QUEUE_ENABLE:
                return int(q.enabled) if q is not None else 0
            case Common.QUEUE_DESC:
                return q.desc if q is not None else 0
            case Common.QUEUE_DRIVER:
                return q.driver if q is not None else 0
            case Common.QUEUE_DEVICE:
                return q.device if q is not None else 0
        return 0

    def _common_read(self, offset: int, size: int) -> int:
        # Byte-wise, so odd-sized or straddling reads see the same little-endian image.
        value, cache = 0, {}
        for i in range(size):
            where = _BYTE_FIELD.get(offset + i)
            if where is None:
                continue
            start, _ = where
            if start not in cache:
                cache[start] = self._field_value(start)
            value |= ((cache[start] >> (8 * (offset + i - start))) & 0xFF) << (8 * i)
        return value

    def _common_write(self, offset: int, size: int, value: int) -> None:
        where = _BYTE_FIELD.get(offset)
        if where is None:
            return
        start, field_size = where
        if field_size == 8 and size == 4 and offset - start in (0, 4):
            self._write_queue_address(start, offset - start, value)
            return
        if start != offset or size != field_size:
            log.debug("%s: ignored %d-byte common write at %#x", self.name, size, offset)
            return
        q = self._selected()
        match start:
            case Common.DEVICE_FEATURE_SELECT:
                self.device_feature_select = value
            case Common.DRIVER_FEATURE_SELECT:
                self.driver_feature_select = value
            case Common.DRIVER_FEATURE:
                sel = self.driver_feature_select
                if sel < 2 and not self.status & DeviceStatus.FEATURES_OK:
                    mask = 0xFFFFFFFF << (32 * sel)
                    self.driver_features = (self.driver_features & ~mask) | (value << (32 * sel))
            case Common.DEVICE_STATUS:
                self._write_status(value)
            case Common.QUEUE_SELECT:
                self.queue_select = value
            case Common.QUEUE_SIZE:
                if q is not None and not q.enabled:
                    q.size = value
            case Common.QUEUE_ENABLE:
                if q is not None and value == 1 and not q.enabled:
                    self._enable_queue(self.queue_select, q)
            case _:
                pass  # read-only fields; MSI-X vectors are not implemented

    def _write_queue_address(self, start: int, half: int, value: int) -> None:
        q = self._selected()
        if q is None or q.enabled:
            return
        attr = {Common.QUEUE_DESC: "desc", Common.QUEUE_DRIVER: "driver", Common.QUEUE_DEVICE: "device"}[
            Common(start)
        ]
        old = getattr(q, attr)
        shift = 8 * half
        setattr(q, attr, (old & ~(0xFFFFFFFF << shift)) | (value << shift))

    def _write_status(self, value: int) -> None:
        if value == 0:
            self.reset()
            return
        new = value & 0xFF
        if new & DeviceStatus.FEATURES_OK and not self.status & DeviceStatus.FEATURES_OK:
            unknown = self.driver_features & ~self.device_features
            if unknown or not self.driver_features & VIRTIO_F_VERSION_1:
                log.info(
                    "%s: refused FEATURES_OK for features %#x (unknown %#x)",
                    self.name,
                    self.driver_features,
                    unknown,
                )
                new &= ~DeviceStatus.FEATURES_OK
            else:
                self.virtio.ack_features(self.driver_features)
        if self.broken:
            new |= DeviceStatus.DEVICE_NEEDS_RESET
        self.status = new

    def _enable_queue(self, index: int, q: QueueState) -> None:
        if q.size > q.max_size:
            self._mark_broken(f"queue {index} size {q.size} above maximum {q.max_size}")
            return
        try:
            q.vq = Virtqueue(
                q.size,
                q.desc,
                q.driver,
                q.device,
                self.mem,
                bool(self.driver_features & VIRTIO_F_EVENT_IDX),
                indirect=bool(self.driver_features & VIRTIO_F_INDIRECT_DESC),
            )
        except VirtqueueError as exc:
            self._mark_broken(f"queue {index}: {exc}")
            return
        q.enabled = True

    # ------------------------------------------------------------------ PCI_CFG window
    def config_read(self, reg: int, size: int) -> int:
        data = self.pci_cfg_cap + _PCI_CFG_DATA
        if reg < data + 4 and reg + size > data:
            with self._lock:
                bar, offset, length = self._pci_cfg_target()
                if bar == BAR_INDEX and length:
                    self.set_long(data, self.read(offset, length))
        return super().config_read(reg, size)

    def config_written(self, reg: int, size: int) -> None:
        data = self.pci_cfg_cap + _PCI_CFG_DATA
        if reg < data + 4 and reg + size > data:
            with self._lock:
                bar, offset, length = self._pci_cfg_target()
                if bar == BAR_INDEX and length:
                    self.write(offset, length, self.get(data, length))
        super().config_written(reg, size)

    def _pci_cfg_target(self) -> tuple[int, int, int]:
        """(bar, offset, length) of the PCI_CFG window; length 0 when the access is invalid."""
        cap = self.pci_cfg_cap
        bar = self.config[cap + _PCI_CFG_BAR]
        offset = self.get(cap + _PCI_CFG_OFFSET, 4)
        length = self.get(cap + _PCI_CFG_LENGTH, 4)
        if length not in (1, 2, 4) or offset % length or offset + length > BAR_SIZE:
            length = 0
        return bar, offset, length


__all__ = [
    "BAR_INDEX",
    "CfgType",
    "Common",
    "DeviceStatus",
    "VirtioPciDevice",
]
