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

The device-independent state machine (feature negotiation, status and
reset, queue validation, notifications, the interrupt status and its line,
marking the device broken) is `VirtioTransportCore`, shared with
virtio-mmio; this module only decodes the PCI register structures into it.
The ISR is the core's interrupt status (bit 0 used buffer, bit 1
configuration change). Register accesses never raise.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from enum import IntEnum

from kvmpy.vmm.bus import Endian
from kvmpy.vmm.pci import CAP_ID_VENDOR_SPECIFIC, BarKind, InterruptPin, PciDevice
from kvmpy.vmm.virtio.device import VirtioDevice
from kvmpy.vmm.virtio.queue import GuestMemory, Virtqueue
from kvmpy.vmm.virtio.transport import (
    TRANSPORT_FEATURES,
    VIRTIO_F_EVENT_IDX,
    VIRTIO_F_INDIRECT_DESC,
    VIRTIO_F_VERSION_1,
    DeviceStatus,
    QueueState,
    VirtioTransportCore,
)

log = logging.getLogger(__name__)

VIRTIO_PCI_VENDOR_ID = 0x1AF4
VIRTIO_PCI_MODERN_DEVICE_ID_BASE = 0x1040
VIRTIO_PCI_SUBSYSTEM_VENDOR_ID = 0x1AF4
VIRTIO_PCI_SUBSYSTEM_ID = 0x1100
"""QEMU's subsystem ID; for modern devices the spec lets it reflect the environment."""

VIRTIO_MSI_NO_VECTOR = 0xFFFF

BAR_INDEX = 4
BAR_SIZE = 0x4000
COMMON_OFFSET, COMMON_LENGTH = 0x0000, 0x1000
ISR_OFFSET, ISR_LENGTH = 0x1000, 0x1000
DEVICE_OFFSET, DEVICE_LENGTH = 0x2000, 0x1000
NOTIFY_OFFSET, NOTIFY_LENGTH = 0x3000, 0x1000
NOTIFY_OFF_MULTIPLIER = 4

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
_RING_BY_FIELD = {Common.QUEUE_DESC: "desc", Common.QUEUE_DRIVER: "driver", Common.QUEUE_DEVICE: "device"}

# PCI_CFG capability body offsets (from the capability start).
_PCI_CFG_BAR = 4
_PCI_CFG_OFFSET = 8
_PCI_CFG_LENGTH = 12
_PCI_CFG_DATA = 16


def _cap_body(cfg_type: int, offset: int, length: int, extra: bytes = b"") -> bytes:
    """A virtio_pci_cap body (after cap_vndr and cap_next): cap_len first."""
    body = struct.pack("<BBBxxII", cfg_type, BAR_INDEX, 0, offset, length) + extra
    return bytes([2 + 1 + len(body)]) + body


class VirtioPciDevice(PciDevice):
    """A virtio device behind the modern virtio-pci transport (see module doc).

    `device` is the device model, `mem` guest memory for its queues. The
    BAR's region is this object (`read`/`write` take BAR offsets, as a
    `BusDevice`). INTx is pin A, driven by the core's interrupt status.
    `core` is the transport-independent state (`VirtioTransportCore`).

    Thread-safety: register accesses come from the vCPU thread; a device
    may call the `interrupt` callbacks (or `config_changed`) from others;
    everything takes the core's lock.
    """

    # Modern virtio registers are little-endian whatever the CPU; the bus turns a
    # big-endian guest's bytes into these values, so nothing here swaps.
    endian = Endian.LITTLE

    def __init__(
        self, device: VirtioDevice, mem: GuestMemory, *, class_code: int | None = None, name: str = ""
    ) -> None:
        name = name or f"virtio-pci-{device.device_id}"
        # The core validates queue_max_size and num_queues; its interrupt line is
        # INTx, driven only on changes, so nothing is driven before attachment.
        core = VirtioTransportCore(device, mem, self.set_irq, name)
        if device.num_queues > NOTIFY_LENGTH // NOTIFY_OFF_MULTIPLIER:
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
            name=name,
        )
        self.core = core
        self.virtio = device
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
        self._reset_registers()

    # ------------------------------------------------------------------ state
    def _reset_registers(self) -> None:
        self.device_feature_select = 0
        self.driver_feature_select = 0
        self.queue_select = 0

    def reset(self) -> None:
        """Device reset (the driver wrote 0 to device_status): the selectors and the core."""
        with self.core.lock:
            self._reset_registers()
            self.core.reset()

    @property
    def status(self) -> int:
        return self.core.status

    @property
    def broken(self) -> bool:
        """DEVICE_NEEDS_RESET: the device ignores its queues until the driver resets it."""
        return self.core.broken

    def queue(self, index: int) -> Virtqueue | None:
        """The live virtqueue `index`, or None if the driver has not enabled it."""
        return self.core.queue(index)

    def service_queue(self, index: int, work: Callable[[Virtqueue, Callable[[], None]], object]) -> None:
        """Host-initiated work on queue `index` (see `VirtioTransportCore.service_queue`).

        For input that arrives from the host side (console keystrokes,
        network frames) rather than from a guest notification.
        """
        self.core.service_queue(index, work)

    def config_changed(self) -> None:
        """The device changed its configuration: new config_generation and a config interrupt."""
        self.core.config_changed()

    # ------------------------------------------------------------------ BAR (BusDevice)
    def read(self, offset: int, size: int) -> int:
        """A read of `size` bytes at `offset` in BAR 4; never raises."""
        with self.core.lock:
            try:
                if COMMON_OFFSET <= offset < COMMON_OFFSET + COMMON_LENGTH:
                    return self._common_read(offset - COMMON_OFFSET, size)
                if ISR_OFFSET <= offset < ISR_OFFSET + ISR_LENGTH:
                    return self.core.take_interrupt_status()
                if DEVICE_OFFSET <= offset < DEVICE_OFFSET + DEVICE_LENGTH:
                    return self.core.config_read(offset - DEVICE_OFFSET, size)
            except Exception as exc:  # noqa: BLE001 - a register decoding bug must not reach the vCPU
                log.exception("%s: register read failed", self.name)
                self.core.mark_broken(repr(exc))
            return 0

    def write(self, offset: int, size: int, value: int) -> None:
        """A write of `size` bytes at `offset` in BAR 4; never raises."""
        value &= (1 << (8 * size)) - 1 if size > 0 else 0
        with self.core.lock:
            try:
                if COMMON_OFFSET <= offset < COMMON_OFFSET + COMMON_LENGTH:
                    self._common_write(offset - COMMON_OFFSET, size, value)
                elif DEVICE_OFFSET <= offset < DEVICE_OFFSET + DEVICE_LENGTH:
                    self.core.config_write(offset - DEVICE_OFFSET, size, value)
                elif NOTIFY_OFFSET <= offset < NOTIFY_OFFSET + NOTIFY_LENGTH:
                    rel = offset - NOTIFY_OFFSET
                    if rel % NOTIFY_OFF_MULTIPLIER == 0:
                        self.core.notify(rel // NOTIFY_OFF_MULTIPLIER)
            except Exception as exc:  # noqa: BLE001 - a register decoding bug must not reach the vCPU
                log.exception("%s: register write failed", self.name)
                self.core.mark_broken(repr(exc))

    # ------------------------------------------------------------------ common configuration
    def _field_value(self, field: int) -> int:
        core = self.core
        q = core.queue_state(self.queue_select)
        match field:
            case Common.DEVICE_FEATURE_SELECT:
                return self.device_feature_select
            case Common.DEVICE_FEATURE:
                return core.device_feature_word(self.device_feature_select)
            case Common.DRIVER_FEATURE_SELECT:
                return self.driver_feature_select
            case Common.DRIVER_FEATURE:
                return core.driver_feature_word(self.driver_feature_select)
            case Common.MSIX_CONFIG | Common.QUEUE_MSIX_VECTOR:
                return VIRTIO_MSI_NO_VECTOR
            case Common.NUM_QUEUES:
                return len(core.queues)
            case Common.DEVICE_STATUS:
                return core.status
            case Common.CONFIG_GENERATION:
                return core.config_generation & 0xFF  # an 8-bit register here
            case Common.QUEUE_SELECT:
                return self.queue_select
            case Common.QUEUE_NOTIFY_OFF | Common.QUEUE_NOTIFY_DATA:
                return self.queue_select if q is not None else 0
            case Common.QUEUE_SIZE:
                return q.size if q is not None else 0
            case Common.QUEUE_ENABLE:
                return int(q.ready) if q is not None else 0
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
            ring = _RING_BY_FIELD[Common(start)]
            self.core.set_queue_address(self.queue_select, ring, (offset - start) // 4, value)
            return
        if start != offset or size != field_size:
            log.debug("%s: ignored %d-byte common write at %#x", self.name, size, offset)
            return
        match start:
            case Common.DEVICE_FEATURE_SELECT:
                self.device_feature_select = value
            case Common.DRIVER_FEATURE_SELECT:
                self.driver_feature_select = value
            case Common.DRIVER_FEATURE:
                self.core.set_driver_feature_word(self.driver_feature_select, value)
            case Common.DEVICE_STATUS:
                if value == 0:
                    self.reset()
                else:
                    self.core.write_status(value)
            case Common.QUEUE_SELECT:
                self.queue_select = value
            case Common.QUEUE_SIZE:
                self.core.set_queue_size(self.queue_select, value)
            case Common.QUEUE_ENABLE:
                # The driver never disables a queue through queue_enable (only by reset).
                if value == 1:
                    self.core.enable_queue(self.queue_select)
            case _:
                pass  # read-only fields; MSI-X vectors are not implemented

    # ------------------------------------------------------------------ PCI_CFG window
    def config_read(self, reg: int, size: int) -> int:
        data = self.pci_cfg_cap + _PCI_CFG_DATA
        if reg < data + 4 and reg + size > data:
            with self.core.lock:
                bar, offset, length = self._pci_cfg_target()
                if bar == BAR_INDEX and length:
                    self.set_long(data, self.read(offset, length))
        return super().config_read(reg, size)

    def config_written(self, reg: int, size: int) -> None:
        data = self.pci_cfg_cap + _PCI_CFG_DATA
        if reg < data + 4 and reg + size > data:
            with self.core.lock:
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
    "TRANSPORT_FEATURES",
    "VIRTIO_F_EVENT_IDX",
    "VIRTIO_F_INDIRECT_DESC",
    "VIRTIO_F_VERSION_1",
    "CfgType",
    "Common",
    "DeviceStatus",
    "QueueState",
    "VirtioPciDevice",
]
