"""Settings of a whole `Kvm` (what module parameters are to Linux's kvm)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JitSettings:
    """How the simulated host's cores run guest code (like a kvm module parameter).

    With `enabled`, a block of guest code whose start has run `threshold`
    times is translated to host code by the core's block translator;
    otherwise every instruction is interpreted. Guests cannot tell the
    difference: a translator keeps exceptions precise and re-checks the
    guest's code before running a translation of it. A backend without a
    translator ignores these settings.
    """

    enabled: bool = True
    threshold: int = 50_000
    # translate on a thread of its own while the vCPU goes on interpreting;
    # False translates at once, which makes runs repeatable (tests)
    background: bool = True

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ValueError(f"JIT threshold {self.threshold}: must be at least 1")
