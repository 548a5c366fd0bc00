"""Emulation of the privileged Book E instructions a deprivileged guest kernel traps on.

The guest kernel runs at host user privilege, so every privileged
instruction it executes raises a program interrupt (ESR[PPR]) that the
host core hands to the hypervisor. Here it is carried out against the
guest's virtual CPU (`TeVcpu`): its MSR, SRRs, IVPR/IVORs, timers, PID,
MMUCR and TLB. Guest *user* code executing one gets the program interrupt
reflected, as silicon would give it.

SPRs the guest may read or write without trapping are the host core's own
(the guest and the host share them): LR, CTR, XER, USPRG0, the user-mode
SPRG3-7 and time base aliases. The privileged SPRG0-7 also live in the
core (the Python hypervisor never uses them), so the user read aliases see
what the guest kernel wrote.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvmpy.arch.ppc.hw.defs import (
    DBCR0_RST,
    MMUCR_STID,
    MMUCR_STS,
    MSR_EE,
    PVR_440EPB,
    Spr,
)
from kvmpy.kvm.exits import DcrExit, Exit, ResetExit

if TYPE_CHECKING:
    from kvmpy.arch.ppc.te.vcpu import TeVcpu


class IllegalInstruction(Exception):
    """The guest executed something the 440 does not have: a program interrupt with ESR[PIL]."""


# SPRs held as plain virtual storage (no side effects on write)
_PLAIN = {
    Spr.SRR0, Spr.SRR1, Spr.CSRR0, Spr.CSRR1, Spr.MCSRR0, Spr.MCSRR1, Spr.MCSR,
    Spr.ESR, Spr.DEAR, Spr.IVPR, Spr.DBCR1, Spr.DBCR2, Spr.DBSR, Spr.CCR0, Spr.CCR1, Spr.MMUCR,
    312, 313, 314, 315, 316, 317, 318, 319,  # IAC1-4, DAC1-2, DVC1-2: stored, no debug events
}
# SPRs the core holds for the guest: SPRG0-7 and USPRG0, and the user-mode read aliases
_IN_CORE = {Spr.USPRG0, *range(Spr.SPRG0, Spr.SPRG7 + 1)}
_IN_CORE_RO = {*range(Spr.SPRG3_RO, Spr.SPRG7_RO + 1)}
SPR_NAMES = {int(s): s.name for s in Spr} | {400 + i: f"IVOR{i}" for i in range(16)}


def spr_name(n: int) -> str:
    return SPR_NAMES.get(n, str(n))


def read_spr(v: TeVcpu, n: int) -> int:
    """mfspr of guest SPR `n` at guest supervisor privilege; IllegalInstruction if the 440 lacks it."""
    core = v.core
    if n in _PLAIN:
        return v.sprs.get(n, 0)
    if n in _IN_CORE or n in _IN_CORE_RO or n in (Spr.XER, Spr.LR, Spr.CTR):
        return int(core.spr_read(n))
    if Spr.IVOR0 <= n < Spr.IVOR0 + 16:
        return v.ivor[n - Spr.IVOR0]
    tb = core.tb
    match n:
        case Spr.PID:
            return v.pid
        case Spr.DEC:
            return v.timers.read_dec(tb)
        case Spr.DECAR:
            return v.timers.decar
        case Spr.TCR:
            return v.timers.tcr
        case Spr.TSR:
            v.timers.update(tb)
            return v.timers.tsr
        case Spr.TBL_RO | Spr.TBL:
            return tb & 0xFFFFFFFF
        case Spr.TBU_RO | Spr.TBU:
            return (tb >> 32) & 0xFFFFFFFF
        case Spr.PVR:
            return PVR_440EPB
        case Spr.PIR:
            return v.vcpu_id
        case Spr.DBCR0:
            return v.sprs.get(n, 0)
    raise IllegalInstruction(f"mfspr {n}")


def write_spr(v: TeVcpu, n: int, value: int) -> Exit | None:
    """mtspr of guest SPR `n`; may return a ResetExit (DBCR0[RST]). IllegalInstruction if unknown."""
    core = v.core
    value &= 0xFFFFFFFF
    if n in _PLAIN:
        v.sprs[n] = value
        return None
    if n in _IN_CORE or n in (Spr.XER, Spr.LR, Spr.CTR):
        core.spr_write(n, value)
        return None
    if Spr.IVOR0 <= n < Spr.IVOR0 + 16:
        v.ivor[n - Spr.IVOR0] = value & 0xFFF0
        return None
    tb = core.tb
    match n:
        case Spr.PID:
            v.set_pid(value & 0xFF)
        case Spr.DEC:
            v.timers.write_dec(tb, value)
        case Spr.DECAR:
            v.timers.decar = value
        case Spr.TCR:
            v.timers.write_tcr(tb, value)
        case Spr.TSR:
            v.timers.update(tb)
            v.timers.write_tsr(value)
        case Spr.TBL:
            core.tb = (tb & ~0xFFFFFFFF) | value
        case Spr.TBU:
            core.tb = (value << 32) | (tb & 0xFFFFFFFF)
        case Spr.PVR | Spr.PIR:
            pass  # read-only: the write is ignored
        case Spr.DBCR0:
            v.sprs[n] = value & ~DBCR0_RST
            rst = (value & DBCR0_RST) >> 28
            if rst:
                return ResetExit(why=f"DBCR0[RST] = {rst} ({('core', 'chip', 'system')[rst - 1]} reset)")
        case _:
            raise IllegalInstruction(f"mtspr {n}")
    return None


def emulate(v: TeVcpu, insn: int, pc: int) -> Exit | None:
    """Carry out the privileged instruction `insn` at guest `pc` (guest supervisor mode).

    Moves the guest PC on (or to the rfi target); returns an exit for the
    VMM (DCR access, reset) or None. Raises IllegalInstruction for an
    instruction the 440 does not have.
    """
    core = v.core
    op = insn >> 26
    rt, ra, rb = (insn >> 21) & 31, (insn >> 16) & 31, (insn >> 11) & 31
    traps = v.stats.traps
    if op == 19:
        xo = (insn >> 1) & 0x3FF
        name = {50: "rfi", 51: "rfci", 38: "rfmci"}.get(xo)
        if name is None:
            raise IllegalInstruction(f"opcode 19/{xo}")
        traps["emul_" + name] += 1
        pair = {
            "rfi": (Spr.SRR0, Spr.SRR1), "rfci": (Spr.CSRR0, Spr.CSRR1), "rfmci": (Spr.MCSRR0, Spr.MCSRR1)
        }
        srr0, srr1 = pair[name]
        v.set_msr(v.sprs.get(srr1, 0))
        v.pc = v.sprs.get(srr0, 0) & 0xFFFFFFFC
        return None
    if op != 31:
        raise IllegalInstruction(f"opcode {op}")
    xo = (insn >> 1) & 0x3FF
    exit_: Exit | None = None
    match xo:
        case 83:  # mfmsr
            traps["emul_mfmsr"] += 1
            core.set_gpr(rt, v.msr)
        case 146:  # mtmsr
            traps["emul_mtmsr"] += 1
            v.set_msr(core.get_gpr(rt))
        case 131:  # wrtee
            traps["emul_wrtee"] += 1
            v.set_msr((v.msr & ~MSR_EE) | (core.get_gpr(rt) & MSR_EE))
        case 163:  # wrteei
            traps["emul_wrteei"] += 1
            v.set_msr((v.msr & ~MSR_EE) | (MSR_EE if insn & 0x8000 else 0))
        case 339:  # mfspr
            n = ((insn >> 16) & 0x1F) | ((insn >> 6) & 0x3E0)
            traps["emul_mfspr"] += 1
            traps["emul_mfspr." + spr_name(n)] += 1
            core.set_gpr(rt, read_spr(v, n))
        case 467:  # mtspr
            n = ((insn >> 16) & 0x1F) | ((insn >> 6) & 0x3E0)
            traps["emul_mtspr"] += 1
            traps["emul_mtspr." + spr_name(n)] += 1
            exit_ = write_spr(v, n, core.get_gpr(rt))
        case 323 | 451:  # mfdcr / mtdcr: the DCR bus is the VMM's
            dcrn = ((insn >> 16) & 0x1F) | ((insn >> 6) & 0x3E0)
            is_write = xo == 451
            traps["emul_mtdcr" if is_write else "emul_mfdcr"] += 1
            traps["dcr_exit"] += 1
            exit_ = DcrExit(dcrn=dcrn, is_write=is_write, data=core.get_gpr(rt) if is_write else 0)
            v.pending_dcr = (exit_, rt)
            return exit_  # the PC moves on when the VMM completes it
        case 978:  # tlbwe RS, RA, WS
            if rb > 2:
                raise IllegalInstruction(f"tlbwe word {rb}")
            traps["emul_tlbwe"] += 1
            v.guest_tlbwe(core.get_gpr(ra) & 63, rb, core.get_gpr(rt))
        case 946:  # tlbre RT, RA, WS
            if rb > 2:
                raise IllegalInstruction(f"tlbre word {rb}")
            traps["emul_tlbre"] += 1
            e = v.guest_tlb.entries[core.get_gpr(ra) & 63]
            word = rb
            if word == 0:
                v.sprs[Spr.MMUCR] = (v.sprs.get(Spr.MMUCR, 0) & ~MMUCR_STID) | e.tid
            core.set_gpr(rt, (e.w0, e.w1, e.w2)[word])
        case 914:  # tlbsx[.] RT, RA, RB
            traps["emul_tlbsx"] += 1
            ea = ((core.get_gpr(ra) if ra else 0) + core.get_gpr(rb)) & 0xFFFFFFFF
            mmucr = v.sprs.get(Spr.MMUCR, 0)
            index = v.guest_tlb.find(ea, 1 if mmucr & MMUCR_STS else 0, mmucr & MMUCR_STID)
            core.set_gpr(rt, index & 0xFFFFFFFF)
            if insn & 1:
                so = 1 if core.xer & 0x80000000 else 0
                field = (2 if index >= 0 else 0) | so
                core.cr = (core.cr & 0x0FFFFFFF) | (field << 28)
        case 566 | 966 | 454 | 470:  # tlbsync, iccci, dccci, dcbi: nothing cached to act on
            traps["emul_" + {566: "tlbsync", 966: "iccci", 454: "dccci", 470: "dcbi"}[xo]] += 1
        case _:
            raise IllegalInstruction(f"opcode 31/{xo}")
    v.pc = (pc + 4) & 0xFFFFFFFF
    return exit_
