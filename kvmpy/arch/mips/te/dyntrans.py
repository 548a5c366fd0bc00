"""Dynamic translation (seed 003): rewrite trapping instructions so they stop trapping.

The virtual CP0 lives in the commpage, which the guest kernel sees at
`COMMPAGE_GVA` (te.cp0). After emulating an `mfc0` (or a side-effect-free
`mtc0`) once, the hypervisor rewrites the instruction in guest memory into
`lw`/`sw rt, offset($zero)` with the negative offset that reaches the
register's commpage word, and a `cache` instruction into a nop, so later
executions do not trap (statistics `rewrite_*`).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from kvmpy.arch.mips.te.cp0 import COMMPAGE_GVA
from kvmpy.arch.mips.te.mmu import Mapping
from kvmpy.kvm.memory import MemFlags

if TYPE_CHECKING:
    from kvmpy.arch.mips.te.vcpu import TeVcpu

COMMPAGE_OFFSET_FIELD = COMMPAGE_GVA & 0xFFFF  # the 16-bit offset that reaches its first byte
NOP = 0x00000000


def commpage_load(rt: int, index: int) -> int:
    """`lw rt, <CP0 register index's commpage word>($zero)`: what a rewritten mfc0 becomes."""
    return 0x8C000000 | (rt << 16) | (COMMPAGE_OFFSET_FIELD + index * 4)


def commpage_store(rt: int, index: int) -> int:
    """`sw rt, <CP0 register index's commpage word>($zero)`: what a rewritten mtc0 becomes."""
    return 0xAC000000 | (rt << 16) | (COMMPAGE_OFFSET_FIELD + index * 4)


def rewrite(vcpu: TeVcpu, new_insn: int, what: str) -> None:
    """Replace the instruction that trapped in guest memory by `new_insn`."""
    if not vcpu.rewrite or not vcpu.mmu.host_kernel:
        # Only guest kernel mode sees the commpage (user code with CU0 set keeps trapping).
        return
    pc = vcpu._faulting_pc()
    m = vcpu.mmu.translate(pc)
    if not isinstance(m, Mapping):
        return
    slot = vcpu.slots.lookup(m.gpa)
    if slot is None or slot.flags & MemFlags.READONLY:
        return
    offset = m.gpa - slot.gpa
    slot.buffer[offset : offset + 4] = struct.pack("<I", new_insn)
    if slot.flags & MemFlags.LOG_DIRTY_PAGES:
        slot.mark_dirty(m.gpa)
    vcpu.stats.traps[f"rewrite_{what}"] += 1
