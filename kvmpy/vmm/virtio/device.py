"""The contract between a virtio device model and its transport.

The transport (`kvmpy.vmm.virtio.pci.VirtioPciDevice`) owns everything
generic: feature negotiation, device status, queue configuration, the ISR
and the interrupt line. A device model owns only its own feature bits, its
configuration space and what its queues mean.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from kvmpy.vmm.virtio.queue import Virtqueue


class VirtioDevice(Protocol):
    """A virtio device model (block, net, console, ...), transport-independent.

    - `device_id`: the virtio device ID (1 net, 2 block, 3 console, 4 rng, ...).
    - `features`: the device-specific feature bits it offers (bits 0-23 and
      any others it implements); the transport adds VERSION_1,
      INDIRECT_DESC and EVENT_IDX itself.
    - `num_queues`, `queue_max_size`: how many virtqueues and the largest
      size of each (a power of two at most 32768).
    - `config_read(offset, size)` / `config_write(offset, size, value)`: the
      device-specific configuration structure, little-endian, `size` 1, 2
      or 4 (offsets may be anywhere inside the transport's window: return 0
      / ignore for what the device does not have).
    - `ack_features(features)`: the negotiated feature set, told once when
      the driver's FEATURES_OK is accepted (before any queue is used).
    - `queue_notify(index, vq, interrupt)`: the driver notified queue
      `index`. Pop chains from `vq`, push them back, then call `interrupt()`
      (the transport applies the queue's notification suppression). A device
      may keep `vq` and `interrupt` to complete requests later from another
      thread, serialising its own access to `vq`.
    - `reset()`: the driver reset the device (status 0) or the transport
      marked it broken and the driver reset it; forget all queues.

    Any exception a device raises (including `VirtqueueError` from the queue)
    is caught by the transport, which marks the device broken
    (DEVICE_NEEDS_RESET); it never reaches the vCPU.
    """

    device_id: int
    features: int
    num_queues: int
    queue_max_size: int

    def config_read(self, offset: int, size: int) -> int: ...

    def config_write(self, offset: int, size: int, value: int) -> None: ...

    def ack_features(self, features: int) -> None: ...

    def queue_notify(self, index: int, vq: Virtqueue, interrupt: Callable[[], None]) -> None: ...

    def reset(self) -> None: ...
