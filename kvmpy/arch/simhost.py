"""What every backend on a simulated host core shares: the host's memory side.

A backend's host (`ArchHost`) owns the simulated host physical memory its
cores run on, hands out host physical ranges for memory slots (pinning, as
Linux's get_user_pages would) and checks once that its compiled core can be
loaded, so a missing build is a clear error at `create_vm`, not at import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from kvmpy.kvm.errors import MemoryRegionError
from kvmpy.sim.hostphys import HPA_SPACE_32BIT, HostPhysAllocator, HostPhysExhaustedError

if TYPE_CHECKING:
    from kvmpy.sim.physmem import PhysicalMemory

BUILD_HINT = "build it with `python3 setup.py build_ext --inplace`"


class SimulatedHostMemory:
    """Host physical memory and its allocator for the cores of `core_module` (e.g. "MIPS").

    `core_missing` is None when the compiled core and the shared physical
    memory import, else a one-line reason (and `phys` is absent).
    """

    def __init__(self, core_module: str, core_name: str, space_bytes: int = HPA_SPACE_32BIT) -> None:
        self.hpa = HostPhysAllocator(space_bytes)
        try:
            importlib.import_module(core_module)  # checked here, used per vCPU
            from kvmpy.sim.physmem import PhysicalMemory
        except ImportError as exc:
            self.core_missing: str | None = f"the compiled {core_name} core is missing ({exc}); {BUILD_HINT}"
            return
        self.core_missing = None
        self.phys: PhysicalMemory = PhysicalMemory(space_bytes)

    def pin(self, gpa: int, buffer: object) -> int:
        """Give `buffer` a host physical range congruent with `gpa` and attach it; its hpa."""
        try:
            hpa = self.hpa.allocate(gpa, len(memoryview(buffer)))  # type: ignore[arg-type]
        except HostPhysExhaustedError as exc:
            raise MemoryRegionError(str(exc)) from None
        try:
            self.phys.attach(hpa, buffer)
        except ValueError as exc:
            self.hpa.free(hpa)
            raise MemoryRegionError(str(exc)) from exc
        return hpa

    def unpin(self, hpa: int) -> None:
        """Detach the range `pin` returned and give it back."""
        self.phys.detach(hpa)
        self.hpa.free(hpa)
