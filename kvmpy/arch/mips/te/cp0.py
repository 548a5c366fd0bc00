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

from enum import IntEnum

COMMPAGE_SIZE = 4096
GUEST_TLB_ENTRIES = 64


class R(IntEnum):
    """Virtual CP0 registers by commpage index (register * 8 + select)."""

    INDEX = 0
    RANDOM = 8
    ENTRYLO0 = 16
    ENTRYLO1 = 24
    CONTEXT = 32
    USERLOCAL = 34
    PAGEMASK = 40
    WIRED = 48
    HWRENA = 56
    BADVADDR = 64
    COUNT = 72
    ENTRYHI = 80
    COMPARE = 88
    STATUS = 96
    INTCTL = 97
    SRSCTL = 98
    CAUSE = 104
    EPC = 112
    PRID = 120
    EBASE = 121
    CONFIG0 = 128
    CONFIG1 = 129
    CONFIG2 = 130
    CONFIG3 = 131
    LLADDR = 136
    ERRCTL = 208
    TAGLO = 224
    DATALO = 225
    TAGHI = 232
    DATAHI = 233
    ERROREPC = 240
    DESAVE = 248


# Status bits
ST_IE = 0x1
ST_EXL = 0x2
ST_ERL = 0x4
ST_KSU_USER = 0x10
ST_BEV = 0x00400000
ST_CU0 = 0x10000000
# Cause bits
CAUSE_BD = 0x80000000
CAUSE_TI = 0x40000000
CAUSE_CE_SHIFT = 28
CAUSE_DC = 0x08000000
CAUSE_IV = 0x00800000
CAUSE_IP_MASK = 0xFF00
CAUSE_IP_HW_MASK = 0xFC00  # IP7..IP2, driven by the hardware (our injected lines)
CAUSE_SW_WRITABLE = CAUSE_DC | CAUSE_IV | 0x300
TIMER_IP = 1 << 15  # IntCtl.IPTI = 7: the timer is IP7

# What the guest can change by mtc0 (other bits are read-only or not implemented)
STATUS_WRITABLE = ST_CU0 | ST_BEV | 0xFF00 | 0x1F
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
REWRITABLE_READS = frozenset(R) - {R.COUNT, R.RANDOM}
# Registers a trapped mtc0 may be rewritten into a commpage store for: plain
# storage the hypervisor only looks at when it next emulates something
# (tlbwi reads EntryLo/PageMask/Index then and masks them), with no side
# effect at the time of the write.
REWRITABLE_WRITES = frozenset(
    {R.ENTRYLO0, R.ENTRYLO1, R.PAGEMASK, R.INDEX, R.EPC, R.ERROREPC, R.DESAVE, R.TAGLO, R.DATALO,
     R.TAGHI, R.DATAHI}
)


def reg_name(index: int) -> str:
    try:
        return R(index).name
    except ValueError:
        return f"r{index >> 3}s{index & 7}"


def guest_kernel_mode(status: int) -> bool:
    """The guest is in kernel mode: EXL or ERL set, or KSU = kernel (supervisor counts as user)."""
    return bool(status & (ST_EXL | ST_ERL)) or not status & 0x18


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
        r[R.STATUS] = ST_BEV | ST_ERL
        r[R.PRID] = PRID_24KC
        r[R.EBASE] = 0x80000000 | (self.vcpu_id & 0x3FF)
        r[R.CONFIG0] = CONFIG0_24KC
        r[R.CONFIG1] = CONFIG1_24KC
        r[R.CONFIG2] = CONFIG2_24KC
        r[R.CONFIG3] = CONFIG3_24KC
        r[R.INTCTL] = INTCTL_24KC
        r[R.RANDOM] = GUEST_TLB_ENTRIES - 1

    def __getitem__(self, index: int) -> int:
        return self.regs[index]

    def __setitem__(self, index: int, value: int) -> None:
        self.regs[index] = value & 0xFFFFFFFF

    def store(self, index: int, value: int) -> None:
        """mtc0 semantics for registers without side effects: apply the write mask."""
        r = self.regs
        value &= 0xFFFFFFFF
        if index == R.INDEX:
            r[index] = (r[index] & 0x80000000) | (value % GUEST_TLB_ENTRIES)
        elif index in (R.ENTRYLO0, R.ENTRYLO1):
            r[index] = value & ENTRYLO_WRITABLE
        elif index == R.CONTEXT:
            r[index] = (r[index] & ~CONTEXT_PTEBASE) | (value & CONTEXT_PTEBASE)
        elif index == R.PAGEMASK:
            r[index] = value & PAGEMASK_WRITABLE
        elif index == R.WIRED:
            r[index] = value % GUEST_TLB_ENTRIES
            r[R.RANDOM] = GUEST_TLB_ENTRIES - 1
        elif index == R.HWRENA:
            r[index] = value & HWRENA_WRITABLE
        elif index == R.EBASE:
            r[index] = (r[index] & ~EBASE_WRITABLE) | (value & EBASE_WRITABLE)
        elif index == R.CONFIG0:
            r[index] = (r[index] & ~7) | (value & 7)
        elif index in (R.USERLOCAL, R.EPC, R.ERROREPC, R.DESAVE, R.TAGLO, R.DATALO, R.TAGHI, R.DATAHI,
                       R.ERRCTL):
            r[index] = value
        # Everything else is read-only or not implemented on a 24Kc: ignored.
