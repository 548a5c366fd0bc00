"""Per-vCPU exit and trap counters (Linux: the kvm debugfs/stat counters)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class VcpuStats:
    """What happened on one vCPU.

    `exits` counts exits to the VMM by reason; `traps` counts root-level
    events the hypervisor handled itself (lightweight exits), by kind.
    MMIO by device is counted where devices are known: the VMM's bus.
    """

    exits: Counter[str] = field(default_factory=Counter)
    traps: Counter[str] = field(default_factory=Counter)
    halted_ns: int = 0
    # where the guest instructions retired so far are read from (the backend's
    # core keeps the count, so the run loop does no bookkeeping per exit)
    instructions_source: Callable[[], int] | None = None
    # where the core's block translator counters are read from (None: no translator)
    jit_source: Callable[[], dict[str, int]] | None = None

    @property
    def instructions(self) -> int:
        """Guest instructions this vCPU has executed, read now."""
        return self.instructions_source() if self.instructions_source is not None else 0

    @property
    def jit(self) -> Counter[str]:
        """The block translator's counters, read now.

        jit_insns: instructions run as translated host code; jit_entries:
        calls of translated blocks from the interpreter; jit_requests: blocks
        handed to the translator; jit_stale: translations found stale because
        the guest changed its code; interpreted_insns: the rest.
        """
        return Counter(self.jit_source()) if self.jit_source is not None else Counter()
