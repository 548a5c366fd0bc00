"""Instruction decoding the hypervisor needs outside the hardware.

When a guest's load or store faults into the root (MMIO, read-only memory),
the hypervisor emulates it from the faulting instruction word (BadInstr).
When that instruction sat in a branch delay slot (Cause.BD), it must also
finish the branch (from BadInstrP) to know where the guest continues, as
Linux's kvm_compute_return_epc does.
"""

from __future__ import annotations

from dataclasses import dataclass


def sext16(v: int) -> int:
    v &= 0xFFFF
    return v - 0x10000 if v & 0x8000 else v


def s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


class NotABranchError(ValueError):
    """The instruction in front of a delay slot is not a branch or jump."""


def branch_next_pc(branch_insn: int, branch_pc: int, gpr: list[int]) -> int:
    """Where execution continues after the delay slot of `branch_insn` at `branch_pc`.

    The branch's link register (if any) was already written when the branch
    executed, so only the condition and the target are computed here, from
    the register values as they are now (the delay-slot instruction has not
    yet written its result).
    """
    op = branch_insn >> 26
    rs = (branch_insn >> 21) & 31
    rt = (branch_insn >> 16) & 31
    fall = (branch_pc + 8) & 0xFFFFFFFF
    target = (branch_pc + 4 + (sext16(branch_insn) << 2)) & 0xFFFFFFFF
    vs, vt = gpr[rs] & 0xFFFFFFFF, gpr[rt] & 0xFFFFFFFF
    if op == 0 and (branch_insn & 0x3F) in (8, 9):  # jr, jalr
        return vs
    if op in (2, 3):  # j, jal
        return ((branch_pc + 4) & 0xF0000000) | ((branch_insn & 0x3FFFFFF) << 2)
    if op in (4, 20):
        return target if vs == vt else fall
    if op in (5, 21):
        return target if vs != vt else fall
    if op in (6, 22):
        return target if s32(vs) <= 0 else fall
    if op in (7, 23):
        return target if s32(vs) > 0 else fall
    if op == 1 and rt in (0, 2, 16, 18):
        return target if s32(vs) < 0 else fall
    if op == 1 and rt in (1, 3, 17, 19):
        return target if s32(vs) >= 0 else fall
    raise NotABranchError(f"instruction {branch_insn:#010x} at {branch_pc:#010x} is not a branch")


@dataclass(frozen=True, slots=True)
class MemAccess:
    """A decoded load or store: what an MMIO exit needs."""

    is_write: bool
    length: int
    signed: bool
    reg: int  # rt: destination (load) or source (store)


_LOADS = {32: (1, True), 33: (2, True), 35: (4, False), 36: (1, False), 37: (2, False)}
_STORES = {40: 1, 41: 2, 43: 4}


def decode_mem_access(insn: int) -> MemAccess | None:
    """Decode a plain load/store; None for anything MMIO emulation does not support.

    Partial-word (lwl/lwr/swl/swr), linked (ll/sc) and coprocessor accesses
    to device memory are not emulated, as in Linux's KVM.
    """
    op = insn >> 26
    rt = (insn >> 16) & 31
    if op in _LOADS:
        length, signed = _LOADS[op]
        return MemAccess(False, length, signed, rt)
    if op in _STORES:
        return MemAccess(True, _STORES[op], False, rt)
    return None


def is_wait(insn: int) -> bool:
    return (insn >> 26) == 16 and (insn & (1 << 25)) != 0 and (insn & 0x3F) == 0x20


def is_cache(insn: int) -> bool:
    return (insn >> 26) == 47


def mtc0_target(insn: int) -> tuple[int, int, int] | None:
    """(rt, rd, sel) if `insn` is mtc0, else None."""
    if (insn >> 26) == 16 and ((insn >> 21) & 31) == 4:
        return (insn >> 16) & 31, (insn >> 11) & 31, insn & 7
    return None



def hypcall_code(insn: int) -> int:
    return (insn >> 11) & 0x3FF
