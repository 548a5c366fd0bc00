"""virtio-rng: an entropy source (virtio 1.x, section 5.4).

One request queue; the driver posts device-writable buffers and the device
fills them with random bytes from the host (os.urandom), at most
`MAX_BYTES_PER_REQUEST` per buffer chain. There is no configuration space and
no device-specific feature.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from kvmpy.vmm.virtio.queue import Virtqueue, VirtqueueError

VIRTIO_ID_RNG = 4
MAX_BYTES_PER_REQUEST = 64 * 1024


class VirtioRng:
    """virtio entropy device: fills each posted buffer chain from os.urandom."""

    device_id = VIRTIO_ID_RNG
    features = 0
    num_queues = 1
    queue_max_size = 64

    def config_read(self, offset: int, size: int) -> int:
        """No configuration space: everything reads as 0."""
        return 0

    def config_write(self, offset: int, size: int, value: int) -> None:
        """No configuration space: writes are ignored."""

    def ack_features(self, features: int) -> None:
        """Negotiated features: nothing depends on them."""

    def reset(self) -> None:
        """Stateless: nothing to reset."""

    def queue_notify(self, index: int, vq: Virtqueue, interrupt: Callable[[], None]) -> None:
        """Fill every available chain on the request queue; interrupt once if asked to.

        A chain with device-readable buffers is malformed (`VirtqueueError`).
        """
        if index != 0:
            return
        completed = False
        while (chain := vq.pop()) is not None:
            if chain.readable:
                raise VirtqueueError("virtio-rng request has device-readable buffers")
            want = min(sum(length for _, length in chain.writable), MAX_BYTES_PER_REQUEST)
            written = chain.write_into(os.urandom(want)) if want else 0
            vq.push(chain, written)
            completed = True
        if completed:
            interrupt()
