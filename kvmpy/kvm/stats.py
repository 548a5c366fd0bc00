"""Per-vCPU exit and trap counters (Linux: the kvm debugfs/stat counters)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class VcpuStats:
    """What happened on one vCPU.

    `exits` counts exits to the VMM by reason; `traps` counts root-level
    events the hypervisor handled itself (lightweight exits), by kind;
    `mmio_by_addr` counts MMIO accesses by guest physical address (the VMM
    folds these into devices).
    """

    exits: Counter[str] = field(default_factory=Counter)
    traps: Counter[str] = field(default_factory=Counter)
    mmio_by_addr: Counter[int] = field(default_factory=Counter)
    instructions: int = 0
    halted_ns: int = 0

    def merge(self, other: VcpuStats) -> None:
        self.exits.update(other.exits)
        self.traps.update(other.traps)
        self.mmio_by_addr.update(other.mmio_by_addr)
        self.instructions += other.instructions
        self.halted_ns += other.halted_ns
