"""Where things are on the bamboo board: physical addresses, DCRs and UIC0 inputs (see docs/bamboo-board.md).

The fixed parts follow QEMU's `-M bamboo` (itself the AMCC 440EP evaluation
board); the virtio-mmio windows are ours, in a hole of the 440EP's physical
map that QEMU's bamboo leaves unused.
"""

from __future__ import annotations

RAM_GPA = 0x0000_0000
MAX_RAM_BYTES = 2 << 30
"""The 440EP's SDRAM controller addresses at most 2 GiB, and the OPB window starts at 0x8000_0000."""

UART0_GPA = 0xEF60_0300
UART0_BYTES = 8
UART0_UIC_INPUT = 0
UART0_CLOCK_HZ = 11_059_200
UART0_BAUD = 115_200

UIC0_DCR_BASE = 0xC0
UIC0_DCR_COUNT = 9

CPU_CLOCK_HZ = 400_000_000
TIMEBASE_HZ = 400_000_000
"""QEMU's bamboo runs the core and its timebase at 400 MHz and says so in the device tree."""
PLB_CLOCK_HZ = 133_333_332
OPB_CLOCK_HZ = 66_666_666

VIRTIO_MMIO_BASE_GPA = 0xD000_0000
VIRTIO_MMIO_STRIDE_BYTES = 0x200
VIRTIO_MMIO_FIRST_UIC_INPUT = 16
VIRTIO_MMIO_MAX_DEVICES = 8
"""virtio-mmio device i: window at VIRTIO_MMIO_BASE_GPA + i * stride, UIC0 input 16 + i (16..23 are
not used by anything this board or QEMU's bamboo tree wires)."""

FDT_GPA = 0x0180_0000
INITRD_GPA = 0x0190_0000
"""QEMU's (U-Boot's) choices: the tree at 24 MiB, the initrd right after it."""


def virtio_mmio_gpa(index: int) -> int:
    """The register window of virtio-mmio device `index`."""
    if not 0 <= index < VIRTIO_MMIO_MAX_DEVICES:
        raise ValueError(f"virtio-mmio device {index} out of range 0..{VIRTIO_MMIO_MAX_DEVICES - 1}")
    return VIRTIO_MMIO_BASE_GPA + index * VIRTIO_MMIO_STRIDE_BYTES


def virtio_mmio_uic_input(index: int) -> int:
    """The UIC0 input of virtio-mmio device `index`."""
    virtio_mmio_gpa(index)
    return VIRTIO_MMIO_FIRST_UIC_INPUT + index
