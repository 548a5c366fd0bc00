"""Where a simulated host puts the buffers a hypervisor pins: host physical address allocation.

A hypervisor running on a simulated host attaches each memory slot's buffer
to the host's physical memory (`kvmpy.sim.physmem.PhysicalMemory`) at a host
physical address (hpa) it chooses here. Keeping hpa congruent to the guest
physical address modulo a large alignment lets second-stage translations use
large pages wherever a slot allows them. This is hardware bookkeeping: it
knows address ranges, not slots or VMs.
"""

from __future__ import annotations

# A 32-bit simulated host names 4 GiB of host physical addresses (the MIPS
# core's EntryLo PFN: 20 bits of 4 KiB pages).
HPA_SPACE_32BIT = 1 << 32
# Large second-stage pages need gpa and hpa congruent modulo the largest page
# pair a core maps (two 256 MiB pages on the MIPS P5600).
HPA_ALIGN = 512 << 20


class HostPhysExhaustedError(Exception):
    """No host physical range of the requested size is free."""


class HostPhysAllocator:
    """Hands out host physical ranges, keeping `hpa % align == gpa % align`.

    `space_bytes` is how much host physical address space the simulated host
    has, `align` the congruence modulus. Ranges are freed by their start.
    """

    def __init__(self, space_bytes: int = HPA_SPACE_32BIT, align: int = HPA_ALIGN) -> None:
        self._space_bytes = space_bytes
        self._align = align
        self._used: list[tuple[int, int]] = []

    def allocate(self, gpa: int, size: int) -> int:
        """A free hpa range of `size` bytes congruent to `gpa`; raises HostPhysExhaustedError."""
        offset = gpa % self._align
        base = 0
        while base + offset + size <= self._space_bytes:
            hpa = base + offset
            if all(hpa + size <= s or hpa >= s + n for s, n in self._used):
                self._used.append((hpa, size))
                return hpa
            base += self._align
        raise HostPhysExhaustedError(
            f"no host physical space left for {size >> 20} MiB "
            f"(the simulated host addresses {self._space_bytes >> 30} GiB)"
        )

    def free(self, hpa: int) -> None:
        """Return the range that starts at `hpa`."""
        self._used = [(s, n) for s, n in self._used if s != hpa]
