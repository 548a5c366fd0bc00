"""What every virtio transport does, whatever its registers look like (virtio 1.x, chapters 2 and 3).

A transport (virtio-pci, virtio-mmio) is two things: a register layout the
driver programs, and the same device-independent state machine behind it.
`VirtioTransportCore` is that state machine, so each transport only decodes
its registers and calls it:

- feature negotiation: the device's features (the model's plus the
  transport features below) in 32-bit words, the driver's words accepted
  until FEATURES_OK, FEATURES_OK refused for unknown features or without
  VIRTIO_F_VERSION_1 (both transports here are modern-only);
- device status: writing 0 resets the device; DEVICE_NEEDS_RESET is kept
  while the device is broken;
- queues: per-queue size and ring addresses, changeable only while the
  queue is not ready; enabling validates them (size a power of two in
  1..QueueNumMax, rings aligned and inside guest RAM) and builds the
  `Virtqueue`; notifications of a queue that is not ready are ignored;
- the interrupt status (bit 0 used buffer, bit 1 configuration change) and
  the one level-triggered line it drives;
- breakage: a guest mistake in a queue (`VirtqueueError`) or any exception
  from the device model marks the device broken (DEVICE_NEEDS_RESET, a
  configuration interrupt if the driver is running) and the device ignores
  its queues until the driver resets it. Nothing raises to the caller.

Thread-safety: register accesses come from the vCPU thread; a device model
may complete requests (`interrupt` callbacks, `service_queue`,
`config_changed`) from other threads. Everything takes the core's lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntFlag

from kvmpy.vmm.virtio.device import VirtioDevice
from kvmpy.vmm.virtio.queue import MAX_QUEUE_SIZE, GuestMemory, Virtqueue, VirtqueueError

log = logging.getLogger(__name__)

VIRTIO_F_INDIRECT_DESC = 1 << 28
VIRTIO_F_EVENT_IDX = 1 << 29
VIRTIO_F_VERSION_1 = 1 << 32
TRANSPORT_FEATURES = VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX
"""Features every transport here offers on top of the device model's."""

FEATURE_WORDS = 2
"""Feature bits are offered in two 32-bit words (bits 0-63)."""

INT_USED_BUFFER = 0x1
INT_CONFIG_CHANGE = 0x2


class DeviceStatus(IntFlag):
    """The device status field (virtio 1.x 2.1)."""

    ACKNOWLEDGE = 0x01
    DRIVER = 0x02
    DRIVER_OK = 0x04
    FEATURES_OK = 0x08
    DEVICE_NEEDS_RESET = 0x40
    FAILED = 0x80


@dataclass
class QueueState:
    """One virtqueue's configuration as the driver programs it."""

    max_size: int
    size: int = 0
    ready: bool = False
    desc: int = 0
    driver: int = 0
    device: int = 0
    vq: Virtqueue | None = None

    def reset(self) -> None:
        self.size, self.ready = self.max_size, False
        self.desc = self.driver = self.device = 0
        self.vq = None


class VirtioTransportCore:
    """The device-independent state of one virtio device behind a transport (see module doc).

    `device` is the device model, `mem` guest RAM for its queues, and
    `set_irq(level)` drives the transport's interrupt line; it is called
    only when the level changes. `name` is for log messages.
    """

    def __init__(
        self, device: VirtioDevice, mem: GuestMemory, set_irq: Callable[[bool], None], name: str
    ) -> None:
        max_size = device.queue_max_size
        if not 0 < max_size <= MAX_QUEUE_SIZE or max_size & (max_size - 1):
            raise ValueError(f"virtio device {device.device_id}: queue_max_size {max_size} invalid")
        if device.num_queues <= 0:
            raise ValueError(f"virtio device {device.device_id}: num_queues {device.num_queues} invalid")
        self.device = device
        self.mem = mem
        self.name = name
        self._set_irq = set_irq
        self.lock = threading.RLock()
        self.device_features = (device.features | TRANSPORT_FEATURES) & ((1 << 64) - 1)
        self.queues = [QueueState(max_size) for _ in range(device.num_queues)]
        self.irq_level = False
        self.notifies_ignored = 0
        self._reset_state()

    # ------------------------------------------------------------------ state
    def _reset_state(self) -> None:
        self.driver_features = 0
        self.status = 0
        self.config_generation = 0
        self.interrupt_status = 0
        self.broken = False
        for q in self.queues:
            q.reset()
        self._drive_irq()

    def reset(self) -> None:
        """Device reset: the driver wrote 0 to the status, or the board reset."""
        with self.lock:
            self._reset_state()
            try:
                self.device.reset()
            except Exception:  # noqa: BLE001 - a device bug must not reach the vCPU
                log.exception("%s: device reset failed", self.name)
                self.mark_broken("device reset failed")

    @property
    def negotiated_features(self) -> int:
        return self.driver_features if self.status & DeviceStatus.FEATURES_OK else 0

    def queue_state(self, index: int) -> QueueState | None:
        return self.queues[index] if 0 <= index < len(self.queues) else None

    def queue(self, index: int) -> Virtqueue | None:
        """The live virtqueue `index`, or None if it is not ready."""
        q = self.queue_state(index)
        return q.vq if q is not None else None

    # ------------------------------------------------------------------ features and status
    def device_feature_word(self, select: int) -> int:
        """Device feature bits [32*select, 32*select + 32); 0 past the last word."""
        return (self.device_features >> (32 * select)) & 0xFFFFFFFF if 0 <= select < FEATURE_WORDS else 0

    def driver_feature_word(self, select: int) -> int:
        return (self.driver_features >> (32 * select)) & 0xFFFFFFFF if 0 <= select < FEATURE_WORDS else 0

    def set_driver_feature_word(self, select: int, value: int) -> None:
        """The driver's feature word `select`; ignored after FEATURES_OK or past the last word."""
        with self.lock:
            if 0 <= select < FEATURE_WORDS and not self.status & DeviceStatus.FEATURES_OK:
                mask = 0xFFFFFFFF << (32 * select)
                word = (value & 0xFFFFFFFF) << (32 * select)
                self.driver_features = (self.driver_features & ~mask) | word

    def write_status(self, value: int) -> None:
        """A driver write of the device status: 0 resets; FEATURES_OK is checked before it sticks."""
        with self.lock:
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
                    try:
                        self.device.ack_features(self.driver_features)
                    except Exception as exc:  # noqa: BLE001 - see module doc
                        self.mark_broken(f"ack_features: {exc!r}")
            if self.broken:
                new |= DeviceStatus.DEVICE_NEEDS_RESET
            self.status = new

    # ------------------------------------------------------------------ queue configuration
    def set_queue_size(self, index: int, size: int) -> bool:
        """The driver's queue size; False (ignored) for a missing or ready queue."""
        with self.lock:
            q = self.queue_state(index)
            if q is None or q.ready:
                return False
            q.size = size
            return True

    def set_queue_address(self, index: int, ring: str, half: int, value: int) -> bool:
        """32-bit half (0 low, 1 high) of ring address `ring` ("desc", "driver", "device").

        False (ignored) for a missing or ready queue.
        """
        with self.lock:
            q = self.queue_state(index)
            if q is None or q.ready or ring not in ("desc", "driver", "device") or half not in (0, 1):
                return False
            shift = 32 * half
            old = getattr(q, ring)
            setattr(q, ring, (old & ~(0xFFFFFFFF << shift)) | ((value & 0xFFFFFFFF) << shift))
            return True

    def enable_queue(self, index: int) -> bool:
        """The driver made queue `index` ready: validate its configuration and build the virtqueue.

        A configuration the device cannot use (size 0, not a power of two,
        above the maximum, rings misaligned or outside RAM) marks the device
        broken and leaves the queue not ready. Returns whether it is ready.
        """
        with self.lock:
            q = self.queue_state(index)
            if q is None:
                return False
            if q.ready:
                return True
            if self.broken:
                return False
            if not 0 < q.size <= q.max_size:
                self.mark_broken(f"queue {index} size {q.size} outside 1..{q.max_size}")
                return False
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
                self.mark_broken(f"queue {index}: {exc}")
                return False
            q.ready = True
            return True

    def disable_queue(self, index: int) -> None:
        """The driver withdrew queue `index` (virtio-mmio QueueReady = 0): forget its virtqueue."""
        with self.lock:
            q = self.queue_state(index)
            if q is not None:
                q.ready, q.vq = False, None

    # ------------------------------------------------------------------ notifications and interrupts
    def notify(self, index: int) -> None:
        """The driver notified queue `index`; ignored unless it is ready and the device works."""
        with self.lock:
            vq = self.queue(index)
            if vq is None or self.broken:
                self.notifies_ignored += 1
                log.debug("%s: notify of queue %d ignored (not ready or broken)", self.name, index)
                return
            try:
                self.device.queue_notify(index, vq, self.interrupt_for(index))
            except VirtqueueError as exc:
                self.mark_broken(f"queue {index}: {exc}")
            except Exception as exc:  # noqa: BLE001 - see module doc
                log.exception("%s: queue %d notification failed", self.name, index)
                self.mark_broken(f"queue {index}: {exc!r}")

    def interrupt_for(self, index: int) -> Callable[[], None]:
        """The `interrupt` callback handed to the device model for queue `index`."""
        return lambda: self.queue_interrupt(index)

    def queue_interrupt(self, index: int) -> None:
        """Used-buffer notification for queue `index`, if its suppression state asks for one."""
        with self.lock:
            vq = self.queue(index)
            if vq is None or self.broken:
                return
            try:
                wanted = vq.needs_notification()
            except VirtqueueError as exc:
                self.mark_broken(str(exc))
                return
            if wanted:
                self.raise_interrupt(INT_USED_BUFFER)

    def service_queue(self, index: int, work: Callable[[Virtqueue, Callable[[], None]], object]) -> None:
        """Host-initiated device work on ready queue `index`: `work(vq, interrupt)`; never raises."""
        with self.lock:
            vq = self.queue(index)
            if vq is None or self.broken:
                return
            try:
                work(vq, self.interrupt_for(index))
            except Exception as exc:  # noqa: BLE001 - see module doc
                self.mark_broken(repr(exc))

    def config_changed(self) -> None:
        """The device changed its configuration: new generation, and an interrupt if the driver runs."""
        with self.lock:
            self.config_generation = (self.config_generation + 1) & 0xFFFFFFFF
            if self.status & DeviceStatus.DRIVER_OK:
                self.raise_interrupt(INT_CONFIG_CHANGE)

    def raise_interrupt(self, bits: int) -> None:
        with self.lock:
            self.interrupt_status |= bits
            self._drive_irq()

    def acknowledge_interrupt(self, bits: int) -> None:
        """Clear interrupt status `bits` (virtio-mmio InterruptACK); the line drops at 0."""
        with self.lock:
            self.interrupt_status &= ~bits
            self._drive_irq()

    def take_interrupt_status(self) -> int:
        """Read and clear the interrupt status (virtio-pci's ISR read)."""
        with self.lock:
            value, self.interrupt_status = self.interrupt_status, 0
            self._drive_irq()
            return value

    def _drive_irq(self) -> None:
        level = self.interrupt_status != 0
        if level != self.irq_level:
            self.irq_level = level
            self._set_irq(level)

    def mark_broken(self, why: str) -> None:
        """The device cannot go on: DEVICE_NEEDS_RESET until the driver resets it."""
        with self.lock:
            if self.broken:
                return
            log.warning("%s: device needs reset: %s", self.name, why)
            self.broken = True
            self.status |= DeviceStatus.DEVICE_NEEDS_RESET
            if self.status & DeviceStatus.DRIVER_OK:
                self.raise_interrupt(INT_CONFIG_CHANGE)

    # ------------------------------------------------------------------ device configuration space
    def config_read(self, offset: int, size: int) -> int:
        """`size` bytes (1, 2, 4 or 8) of the device's configuration at `offset`, little-endian.

        An 8-byte access is two 4-byte ones; a broken device reads 0.
        """
        with self.lock:
            if self.broken:
                return 0
            try:
                if size == 8:
                    low = self.device.config_read(offset, 4) & 0xFFFFFFFF
                    return low | (self.device.config_read(offset + 4, 4) & 0xFFFFFFFF) << 32
                return self.device.config_read(offset, size) & ((1 << (8 * size)) - 1)
            except Exception as exc:  # noqa: BLE001 - see module doc
                log.exception("%s: configuration read failed", self.name)
                self.mark_broken(repr(exc))
                return 0

    def config_write(self, offset: int, size: int, value: int) -> None:
        """A driver write to the device's configuration (1, 2, 4 or 8 bytes); ignored when broken."""
        with self.lock:
            if self.broken:
                return
            try:
                if size == 8:
                    self.device.config_write(offset, 4, value & 0xFFFFFFFF)
                    self.device.config_write(offset + 4, 4, (value >> 32) & 0xFFFFFFFF)
                else:
                    self.device.config_write(offset, size, value)
            except Exception as exc:  # noqa: BLE001 - see module doc
                log.exception("%s: configuration write failed", self.name)
                self.mark_broken(repr(exc))


__all__ = [
    "INT_CONFIG_CHANGE",
    "INT_USED_BUFFER",
    "TRANSPORT_FEATURES",
    "VIRTIO_F_EVENT_IDX",
    "VIRTIO_F_INDIRECT_DESC",
    "VIRTIO_F_VERSION_1",
    "DeviceStatus",
    "QueueState",
    "VirtioTransportCore",
]
