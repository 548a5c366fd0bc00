"""The guest's virtual CP0 in trap-and-emulate mode, stored in the commpage.

Every CP0 register the guest can name lives in one 4 KiB host page, the
commpage, at byte offset `(reg * 8 + sel) * 4`. The hypervisor reads and
writes the registers there; the guest kernel sees the same page at guest
virtual address 0xffff8000 (in guest kernel mode only), so an `mfc0` the
hypervisor has rewritten into `lw rt, offset($zero)` (a negative offset
reaches the top of kseg3) reads the very value the emulation
would have produced (seed 003's "commpage" trick). Registers whose value is
computed when read (Count, Random) or whose writes have side effects are
never rewritten and always trap.

What the guest sees is a MIPS 24Kc (MIPS32 release 2, no FPU, no MIPS16,
no watch registers, no EJTAG), with 64 JTLB entries (the 24K family's
largest configuration) and UserLocal.
"""

from __future__ import annotations

from kvmpy.arch.mips.hw import defs

# The hardware constants (hw/defs.pxd) as plain ints for the TE modules: the
# trap path looks them up constantly (see defs.plain).
Cp0 = defs.plain(defs.Cp0)
Status = defs.plain(defs.Status)
Cause = defs.plain(defs.Cause)
EntryLo = defs.plain(defs.EntryLo)
Ctx = defs.plain(defs.Ctx)

COMMPAGE_SIZE = 4096
# The commpage sits at the top of kseg3, the lowest address a load with base
# $zero reaches with a negative 16-bit offset. Linux leaves that range unused
# (its fixmap ends at 0xfffe0000), user mode cannot reach kseg3, and a kernel
# NULL-pointer access still faults as it should (Linux's own T&E put the page
# at address 0, where it hid the kernel's accesses to user page 0).
COMMPAGE_GVA = 0xFFFF8000
GUEST_TLB_ENTRIES = 64

# The CP0 registers a 24Kc has (by commpage index, register * 8 + select)
GUEST_CP0 = frozenset({
    Cp0.INDEX, Cp0.RANDOM, Cp0.ENTRYLO0, Cp0.ENTRYLO1, Cp0.CONTEXT, Cp0.USERLOCAL, Cp0.PAGEMASK,
    Cp0.WIRED, Cp0.HWRENA, Cp0.BADVADDR, Cp0.COUNT, Cp0.ENTRYHI, Cp0.COMPARE, Cp0.STATUS,
    Cp0.INTCTL, Cp0.SRSCTL, Cp0.CAUSE, Cp0.EPC, Cp0.PRID, Cp0.EBASE, Cp0.CONFIG0, Cp0.CONFIG1,
    Cp0.CONFIG2, Cp0.CONFIG3, Cp0.LLADDR, Cp0.ERRCTL, Cp0.TAGLO, Cp0.DATALO, Cp0.TAGHI, Cp0.DATAHI,
    Cp0.ERROREPC, Cp0.DESAVE,
})

CAUSE_SW_WRITABLE = Cause.DC | Cause.IV | 0x300  # and IP1..IP0, the software interrupts
TIMER_IP = 1 << 15  # IntCtl.IPTI = 7: the timer is IP7

# What the guest can change by mtc0 (other bits are read-only or not implemented)
STATUS_WRITABLE = Status.CU0 | Status.BEV | 0xFF00 | 0x1F
ENTRYLO_WRITABLE = 0x03FFFFFF
ENTRYHI_WRITABLE = 0xFFFFE0FF
PAGEMASK_WRITABLE = 0x1FFFE000
CONTEXT_PTEBASE = 0xFF800000
HWRENA_WRITABLE = 0x2000000F
EBASE_WRITABLE = 0x3FFFF000

# A 24Kc (PRId company 1, implementation 0x93), as QEMU's 24Kc presents it,
# except: 64 TLB entries, no MIPS16 and no watch registers (the core under
# it implements neither), and UserLocal present.
PRID_24KC = 0x00019300
CONFIG0_24KC = 0x80000000 | (1 << 10) | (1 << 7) | 2  # M, AR=1 (release 2), MT=1 (TLB), K0=uncached
CONFIG1_24KC = (
    0x80000000
    | ((GUEST_TLB_ENTRIES - 1) << 25)
    | (0 << 22) | (3 << 19) | (1 << 16)  # I-cache: 64 sets, 16-byte lines, 2-way
    | (0 << 13) | (3 << 10) | (1 << 7)  # D-cache: 64 sets, 16-byte lines, 2-way
)
CONFIG2_24KC = 0x80000000  # M: Config3 follows
CONFIG3_24KC = 1 << 13  # ULRI (UserLocal); no VInt, no VEIC, no SegCtl, no VZ
INTCTL_24KC = (7 << 29) | (6 << 26)  # timer on IP7, performance counters on IP6

# Registers a trapped mfc0 may be rewritten into a commpage load for: their
# commpage value is always the architectural value. Not Count or Random
# (computed when read).
REWRITABLE_READS = GUEST_CP0 - {Cp0.COUNT, Cp0.RANDOM}
# Registers a trapped mtc0 may be rewritten into a commpage store for: plain
# storage the hypervisor only looks at when it next emulates something
# (tlbwi reads EntryLo/PageMask/Index then and masks them), with no side
# effect at the time of the write.
REWRITABLE_WRITES = frozenset(
    {Cp0.ENTRYLO0, Cp0.ENTRYLO1, Cp0.PAGEMASK, Cp0.INDEX, Cp0.EPC, Cp0.ERROREPC, Cp0.DESAVE,
     Cp0.TAGLO, Cp0.DATALO, Cp0.TAGHI, Cp0.DATAHI}
)


def reg_name(index: int) -> str:
    if index in GUEST_CP0:
        return defs.Cp0(index).name
    return f"r{index >> 3}s{index & 7}"


def guest_kernel_mode(status: int) -> bool:
    """The guest is in kernel mode: EXL or ERL set, or KSU = kernel (supervisor counts as user)."""
    return bool(status & (Status.EXL | Status.ERL)) or not status & Status.KSU_MASK


class VirtualCp0:
    """The guest's CP0 register file: plain storage in the commpage with reset values.

    Side effects of writes (ASID switches, timer reprogramming, interrupt
    delivery) are the vCPU's business; this class only knows storage,
    reset values and write masks.
    """

    def __init__(self, page: bytearray, vcpu_id: int) -> None:
        if len(page) != COMMPAGE_SIZE:
            raise ValueError("the commpage is one 4 KiB page")
        self.page = page
        self.regs = memoryview(page).cast("I")
        self.vcpu_id = vcpu_id
        self.reset()

    def reset(self) -> None:
        r = self.regs
        for i in range(len(r)):
            r[i] = 0
        r[Cp0.STATUS] = Status.BEV | Status.ERL
        r[Cp0.PRID] = PRID_24KC
        r[Cp0.EBASE] = 0x80000000 | (self.vcpu_id & 0x3FF)
        r[Cp0.CONFIG0] = CONFIG0_24KC
        r[Cp0.CONFIG1] = CONFIG1_24KC
        r[Cp0.CONFIG2] = CONFIG2_24KC
        r[Cp0.CONFIG3] = CONFIG3_24KC
        r[Cp0.INTCTL] = INTCTL_24KC
        r[Cp0.RANDOM] = GUEST_TLB_ENTRIES - 1

    def __getitem__(self, index: int) -> int:
        return self.regs[index]

    def __setitem__(self, index: int, value: int) -> None:
        self.regs[index] = value & 0xFFFFFFFF

    def store(self, index: int, value: int) -> None:
        """mtc0 semantics for registers without side effects: apply the write mask."""
        r = self.regs
        value &= 0xFFFFFFFF
        if index == Cp0.INDEX:
            r[index] = (r[index] & 0x80000000) | (value % GUEST_TLB_ENTRIES)
        elif index in (Cp0.ENTRYLO0, Cp0.ENTRYLO1):
            r[index] = value & ENTRYLO_WRITABLE
        elif index == Cp0.CONTEXT:
            r[index] = (r[index] & ~CONTEXT_PTEBASE) | (value & CONTEXT_PTEBASE)
        elif index == Cp0.PAGEMASK:
            r[index] = value & PAGEMASK_WRITABLE
        elif index == Cp0.WIRED:
            r[index] = value % GUEST_TLB_ENTRIES
            r[Cp0.RANDOM] = GUEST_TLB_ENTRIES - 1
        elif index == Cp0.HWRENA:
            r[index] = value & HWRENA_WRITABLE
        elif index == Cp0.EBASE:
            r[index] = (r[index] & ~EBASE_WRITABLE) | (value & EBASE_WRITABLE)
        elif index == Cp0.CONFIG0:
            r[index] = (r[index] & ~7) | (value & 7)
        elif index in (Cp0.USERLOCAL, Cp0.EPC, Cp0.ERROREPC, Cp0.DESAVE, Cp0.TAGLO, Cp0.DATALO,
                       Cp0.TAGHI, Cp0.DATAHI, Cp0.ERRCTL):
            r[index] = value
        # Everything else is read-only or not implemented on a 24Kc: ignored.
