"""virtio: split virtqueues, the modern virtio-pci transport, and the device-model contract.

- `queue`: `GuestMemory` / `RamView` (guest RAM for devices), `Virtqueue`,
  `DescriptorChain`, `VirtqueueError`, `GuestMemoryError`.
- `device`: the `VirtioDevice` protocol a device model implements.
- `pci`: `VirtioPciDevice`, the transport (a `PciDevice`).
"""

from kvmpy.vmm.virtio.device import VirtioDevice
from kvmpy.vmm.virtio.pci import VirtioPciDevice
from kvmpy.vmm.virtio.queue import (
    DescriptorChain,
    GuestMemory,
    GuestMemoryError,
    RamView,
    Virtqueue,
    VirtqueueError,
)

__all__ = [
    "DescriptorChain",
    "GuestMemory",
    "GuestMemoryError",
    "RamView",
    "VirtioDevice",
    "VirtioPciDevice",
    "Virtqueue",
    "VirtqueueError",
]
