"""Per-vCPU exit and trap counters (Linux: the kvm debugfs/stat counters)."""

from __future__ import annotations

from collections import Counter
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
    instructions: int = 0
    halted_ns: int = 0
