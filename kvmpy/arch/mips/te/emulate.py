"""Trap and emulate: privileged instructions and exception delivery, against the virtual CP0.

Everything privileged the guest does traps into the hypervisor: CP0
instructions (mfc0/mtc0, tlbr/tlbwi/tlbwr/tlbp, eret, wait, di/ei, cache)
raise Coprocessor Unusable and are decoded from BadInstr; `rdhwr` of a
register the host does not grant raises Reserved Instruction. They are
emulated here against the virtual CP0 (`te.cp0`), the guest TLB and the
guest timer. Exceptions that belong to the guest are delivered into it by
setting its virtual EPC/Cause/Status/BadVAddr and resuming at its vector.

Plain functions over the vCPU (`TeVcpu`), which owns the state they work on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvmpy.arch.mips.hw.defs import ExcCode
from kvmpy.arch.mips.hypervisor import reg_sel
from kvmpy.arch.mips.te import dyntrans
from kvmpy.arch.mips.te.cp0 import (
    CAUSE_SW_WRITABLE,
    ENTRYHI_WRITABLE,
    GUEST_TLB_ENTRIES,
    REWRITABLE_READS,
    REWRITABLE_WRITES,
    STATUS_WRITABLE,
    Cause,
    Cp0,
    Ctx,
    EntryLo,
    Status,
    reg_name,
)
from kvmpy.kvm.exits import Exit, InternalErrorExit

if TYPE_CHECKING:
    from kvmpy.arch.mips.te.vcpu import TeVcpu

M32 = 0xFFFFFFFF
_R_USERLOCAL = reg_sel(Cp0.USERLOCAL)
_TLB_EXCEPTIONS = (ExcCode.TLBL, ExcCode.TLBS, ExcCode.MOD)
# Statistics keys per CP0 register, made once: traps are counted on the hot path.
_MFC0_KEY = tuple(f"emul_mfc0.{reg_name(i)}" for i in range(256))
_MTC0_KEY = tuple(f"emul_mtc0.{reg_name(i)}" for i in range(256))
# Status bits whose change needs the host reprogrammed (KSU, ERL, EXL)
_STATUS_MODE_BITS = Status.KSU_MASK | Status.ERL | Status.EXL


# ---------------------------------------------------------------- exception delivery
def deliver(
    vcpu: TeVcpu,
    code: ExcCode,
    *,
    badva: int | None = None,
    refill: bool = False,
    ce: int = 0,
    epc: int | None = None,
    bd: bool | None = None,
) -> None:
    """Enter the guest's exception vector as its 24Kc would for `code`.

    By default the exception is for the instruction at the root EPC
    (a delay slot if the root's Cause.BD is set).
    """
    v = vcpu.cp0.regs
    if epc is None:
        epc = vcpu.root_epc
    if bd is None:
        bd = vcpu._in_delay_slot()
    status = v[Cp0.STATUS]
    cause = v[Cp0.CAUSE]
    if not status & Status.EXL:
        v[Cp0.EPC] = epc
        cause = (cause | Cause.BD) if bd else (cause & ~Cause.BD)
        offset = 0x000 if refill else 0x180
    else:
        offset = 0x180
    cause = (cause & ~0x7C) | (int(code) << 2)
    if code == ExcCode.CPU:
        cause = (cause & ~(3 << Cause.CE_SHIFT)) | (ce << Cause.CE_SHIFT)
    if code == ExcCode.INT and cause & Cause.IV:
        offset = 0x200
    v[Cp0.CAUSE] = cause
    if badva is not None:
        v[Cp0.BADVADDR] = badva
        if code in _TLB_EXCEPTIONS:
            v[Cp0.CONTEXT] = (v[Cp0.CONTEXT] & 0xFF800000) | ((badva >> 9) & 0x007FFFF0)
            v[Cp0.ENTRYHI] = (badva & 0xFFFFE000) | (v[Cp0.ENTRYHI] & 0xFF)
    v[Cp0.STATUS] = status | Status.EXL
    if status & Status.BEV:
        vector = 0xBFC00200 + offset
    else:
        vector = (v[Cp0.EBASE] & 0xFFFFF000) + offset
    vcpu.root_epc = vector
    vcpu.mmu.sync_host_mode()
    vcpu.stats.traps[f"deliver_{code.name.lower()}{'_refill' if refill else ''}"] += 1


# ---------------------------------------------------------------- privileged instructions
def coprocessor_unusable(vcpu: TeVcpu, cause: int) -> Exit | None:
    """Emulate the CP0 instruction in BadInstr (or pass the exception on to the guest)."""
    ce = (cause >> Cause.CE_SHIFT) & 3
    if ce != 0 or not cp0_usable(vcpu):
        # An FPU/COP2 instruction, or CP0 in guest user mode: the guest's own business.
        deliver(vcpu, ExcCode.CPU, ce=ce)
        return None
    cpu = vcpu.cpu
    insn = cpu.cp0_read(0, 8, 1)  # BadInstr
    op = insn >> 26
    traps = vcpu.stats.traps
    if op == 0x10:
        rs = (insn >> 21) & 31
        if rs == 11 and (insn & 0xFFDF) == 0x6000:  # di / ei
            regs = vcpu.cp0.regs
            status = regs[Cp0.STATUS]
            cpu.set_gpr((insn >> 16) & 31, status)
            if insn & 0x20:
                regs[Cp0.STATUS] = status | Status.IE
                traps["emul_ei"] += 1
            else:
                regs[Cp0.STATUS] = status & ~Status.IE
                traps["emul_di"] += 1
            vcpu._skip(cause)
            return None
        rt = (insn >> 16) & 31
        index = ((insn >> 11) & 31) * 8 + (insn & 7)
        if rs == 4 and not insn & 0x7F8:  # mtc0
            traps["emul_mtc0"] += 1
            traps[_MTC0_KEY[index]] += 1
            write_cp0(vcpu, index, cpu.get_gpr(rt))
            if index in REWRITABLE_WRITES:
                dyntrans.rewrite(vcpu, dyntrans.commpage_store(rt, index), "mtc0")
            vcpu._skip(cause)
            return None
        if rs == 0 and not insn & 0x7F8:  # mfc0
            traps["emul_mfc0"] += 1
            traps[_MFC0_KEY[index]] += 1
            cpu.set_gpr(rt, read_cp0(vcpu, index))
            if index in REWRITABLE_READS:
                dyntrans.rewrite(vcpu, dyntrans.commpage_load(rt, index), "mfc0")
            vcpu._skip(cause)
            return None
        if rs >= 16:
            fn = insn & 0x3F
            if fn == 0x18:
                return eret(vcpu)
            if fn in (0x01, 0x02, 0x06, 0x08):
                tlb_op(vcpu, fn)
                vcpu._skip(cause)
                return None
            if fn == 0x20:  # wait
                traps["emul_wait"] += 1
                vcpu._skip()
                return vcpu._block_until_interrupt()
            if fn == 0x28:
                return vcpu._hypercall()
    elif op == 0x2F:  # cache: the simulated caches are coherent, nothing to do
        traps["emul_cache"] += 1
        dyntrans.rewrite(vcpu, dyntrans.NOP, "cache")
        vcpu._skip(cause)
        return None
    else:
        return InternalErrorExit(f"coprocessor unusable on {insn:#010x}, not a CP0 instruction", vcpu.pc)
    # Anything else (deret, rdpgpr, guest-TLB instructions of a VZ core...)
    # does not exist on a 24Kc.
    traps["deliver_ri_cp0"] += 1
    deliver(vcpu, ExcCode.RI)
    return None


def cp0_usable(vcpu: TeVcpu) -> bool:
    """Guest kernel mode, or Status.CU0 granting user mode the CP0 (as the architecture allows)."""
    return bool(vcpu.mmu.host_kernel or vcpu.cp0.regs[Cp0.STATUS] & Status.CU0)


def eret(vcpu: TeVcpu) -> Exit | None:
    vcpu.stats.traps["emul_eret"] += 1
    v = vcpu.cp0.regs
    status = v[Cp0.STATUS]
    vcpu._clear_llbit = True
    if status & Status.ERL:
        target = v[Cp0.ERROREPC]
        v[Cp0.STATUS] = status & ~Status.ERL
    else:
        target = v[Cp0.EPC]
        v[Cp0.STATUS] = status & ~Status.EXL
    vcpu.root_epc = target
    vcpu.mmu.sync_host_mode()
    return None


def tlb_op(vcpu: TeVcpu, fn: int) -> None:
    """tlbp, tlbr, tlbwi, tlbwr on the guest TLB."""
    v = vcpu.cp0.regs
    tlb = vcpu.tlb
    traps = vcpu.stats.traps
    if fn == 0x08:  # tlbp
        traps["emul_tlbp"] += 1
        index = tlb.probe(v[Cp0.ENTRYHI])
        v[Cp0.INDEX] = 0x80000000 if index < 0 else index
        return
    if fn == 0x01:  # tlbr
        traps["emul_tlbr"] += 1
        e = tlb.entries[v[Cp0.INDEX] % GUEST_TLB_ENTRIES]
        g = EntryLo.G if e.is_global else 0
        v[Cp0.ENTRYHI] = e.entryhi
        v[Cp0.PAGEMASK] = e.pagemask
        v[Cp0.ENTRYLO0] = (e.entrylo0 & ~EntryLo.G) | g
        v[Cp0.ENTRYLO1] = (e.entrylo1 & ~EntryLo.G) | g
        vcpu.mmu.sync_host_mode()  # tlbr loads EntryHi, ASID included
        return
    if fn == 0x02:  # tlbwi
        traps["emul_tlbwi"] += 1
        index = v[Cp0.INDEX] % GUEST_TLB_ENTRIES
    else:  # tlbwr
        traps["emul_tlbwr"] += 1
        index = random_index(vcpu)
    stale = tlb.write(
        index,
        v[Cp0.ENTRYHI] & ENTRYHI_WRITABLE,
        v[Cp0.PAGEMASK] & 0x1FFFE000,
        v[Cp0.ENTRYLO0] & 0x03FFFFFF,
        v[Cp0.ENTRYLO1] & 0x03FFFFFF,
    )
    vcpu.mmu.invalidate_shadows(stale)


def random_index(vcpu: TeVcpu) -> int:
    wired = vcpu.cp0.regs[Cp0.WIRED] % GUEST_TLB_ENTRIES
    return vcpu._random.randrange(wired, GUEST_TLB_ENTRIES)


def reserved_instruction(vcpu: TeVcpu) -> Exit | None:
    """Emulate an `rdhwr` the host did not grant; anything else is the guest's exception."""
    insn = vcpu._trapped_insn()
    if insn >> 26 == 0x1F and insn & 0x3F == 59 and not insn & 0x7C0:  # rdhwr rt, rd
        rt = (insn >> 16) & 31
        rd = (insn >> 11) & 31
        granted = cp0_usable(vcpu) or (vcpu.cp0.regs[Cp0.HWRENA] >> rd) & 1
        value = hwr_value(vcpu, rd) if granted else None
        if value is not None:
            vcpu.stats.traps[f"emul_rdhwr.{rd}"] += 1
            vcpu.cpu.set_gpr(rt, value)
            vcpu._skip()
            return None
    deliver(vcpu, ExcCode.RI)
    return None


def hwr_value(vcpu: TeVcpu, rd: int) -> int | None:
    v = vcpu.cp0.regs
    if rd == 0:
        return v[Cp0.EBASE] & 0x3FF
    if rd == 1:
        return 32
    if rd == 2:
        return vcpu.timer.count()
    if rd == 3:
        return 2
    if rd == 29:
        return v[Cp0.USERLOCAL]
    return None


# ---------------------------------------------------------------- CP0 registers
def read_cp0(vcpu: TeVcpu, index: int) -> int:
    """What the guest's mfc0 of register `index` (reg * 8 + sel) reads."""
    if index == Cp0.COUNT:
        return vcpu.timer.count()
    if index == Cp0.RANDOM:
        return random_index(vcpu)
    if index == Cp0.CAUSE:
        vcpu._poll_host_timer()
    return vcpu.cp0.regs[index] if 0 <= index < 256 else 0


def write_cp0(vcpu: TeVcpu, index: int, value: int) -> None:
    """The guest's mtc0 to register `index`, with its side effects on the host."""
    v = vcpu.cp0.regs
    value &= M32
    if index == Cp0.STATUS:
        old = v[Cp0.STATUS]
        new = (old & ~STATUS_WRITABLE) | (value & STATUS_WRITABLE)
        v[Cp0.STATUS] = new
        if (old ^ new) & _STATUS_MODE_BITS:
            vcpu.mmu.sync_host_mode()
    elif index == Cp0.CAUSE:
        timer = vcpu.timer
        old = v[Cp0.CAUSE]
        if value & Cause.DC and not old & Cause.DC:
            timer.freeze()
        v[Cp0.CAUSE] = (old & ~CAUSE_SW_WRITABLE) | (value & CAUSE_SW_WRITABLE)
        if old & Cause.DC and not value & Cause.DC:
            timer.thaw()
        timer.arm()
    elif index == Cp0.COUNT:
        vcpu.timer.set_count(value)
    elif index == Cp0.COMPARE:
        v[Cp0.COMPARE] = value
        v[Cp0.CAUSE] &= ~Cause.TI
        vcpu._refresh_cause_ip()
        vcpu.timer.arm()
    elif index == Cp0.ENTRYHI:
        v[Cp0.ENTRYHI] = value & ENTRYHI_WRITABLE
        vcpu.mmu.sync_host_mode()
    elif index == Cp0.USERLOCAL:
        v[Cp0.USERLOCAL] = value
        vcpu.cpu.cp0_write(Ctx.ROOT, *_R_USERLOCAL, value)
    elif index == Cp0.HWRENA:
        vcpu.cp0.store(index, value)
        vcpu.mmu.sync_hwrena()
    else:
        vcpu.cp0.store(index, value)
