"""Architectural constants of the simulated MIPS32 release-5 (P5600-class) core.

These numbers come from the MIPS32 Privileged Resource Architecture and the
VZ module specification. They are shared by the hardware model, the
hypervisor and the tests, so they live in one place.
"""

from __future__ import annotations

from enum import IntEnum


class ExcCode(IntEnum):
    """Cause.ExcCode values."""

    INT = 0
    MOD = 1
    TLBL = 2
    TLBS = 3
    ADEL = 4
    ADES = 5
    IBE = 6
    DBE = 7
    SYS = 8
    BP = 9
    RI = 10
    CPU = 11
    OV = 12
    TR = 13
    FPE = 15
    WATCH = 23
    MCHECK = 24
    GE = 27  # guest exit (VZ): details in GuestCtl0.GExcCode


class GExcCode(IntEnum):
    """GuestCtl0.GExcCode: why a guest-mode event needs the root."""

    GPSI = 0  # guest privileged sensitive instruction
    GSFC = 1  # guest software field change
    HC = 2  # hypercall
    GRR = 3  # guest reserved instruction redirect
    GVA = 8  # root TLB exception, BadVAddr holds the guest virtual address
    GHFC = 9  # guest hardware field change
    GPA = 10  # root TLB exception, BadVAddr holds the guest physical address


class Stop(IntEnum):
    """Why Cpu.run() returned: the simulated core entered the root (host) side."""

    ROOT_EXCEPTION = 1  # a root exception was taken; root CP0 holds the details
    BUDGET = 2  # the instruction budget ran out (host timer tick)
    KICK = 3  # another thread asked the core to stop
    ROOT_WAIT = 4  # WAIT executed in root kernel mode (bare hardware tests only)
    DEBUG = 5  # SDBBP: EJTAG debug breakpoint, always owned by the root


class Ctx(IntEnum):
    """Which CP0 context an operation addresses."""

    ROOT = 0
    GUEST = 1


# CP0 register numbers as (reg, sel)
class Cp0(IntEnum):
    INDEX = 0 * 8 + 0
    RANDOM = 1 * 8 + 0
    ENTRYLO0 = 2 * 8 + 0
    ENTRYLO1 = 3 * 8 + 0
    CONTEXT = 4 * 8 + 0
    USERLOCAL = 4 * 8 + 2
    PAGEMASK = 5 * 8 + 0
    PAGEGRAIN = 5 * 8 + 1
    SEGCTL0 = 5 * 8 + 2
    SEGCTL1 = 5 * 8 + 3
    SEGCTL2 = 5 * 8 + 4
    WIRED = 6 * 8 + 0
    HWRENA = 7 * 8 + 0
    BADVADDR = 8 * 8 + 0
    BADINSTR = 8 * 8 + 1
    BADINSTRP = 8 * 8 + 2
    COUNT = 9 * 8 + 0
    ENTRYHI = 10 * 8 + 0
    GUESTCTL1 = 10 * 8 + 4
    GUESTCTL2 = 10 * 8 + 5
    COMPARE = 11 * 8 + 0
    STATUS = 12 * 8 + 0
    INTCTL = 12 * 8 + 1
    SRSCTL = 12 * 8 + 2
    SRSMAP = 12 * 8 + 3
    GUESTCTL0 = 12 * 8 + 6
    GTOFFSET = 12 * 8 + 7
    CAUSE = 13 * 8 + 0
    EPC = 14 * 8 + 0
    PRID = 15 * 8 + 0
    EBASE = 15 * 8 + 1
    CONFIG0 = 16 * 8 + 0
    CONFIG1 = 16 * 8 + 1
    CONFIG2 = 16 * 8 + 2
    CONFIG3 = 16 * 8 + 3
    CONFIG4 = 16 * 8 + 4
    CONFIG5 = 16 * 8 + 5
    LLADDR = 17 * 8 + 0
    ERROREPC = 30 * 8 + 0
    KSCRATCH1 = 31 * 8 + 2
    KSCRATCH2 = 31 * 8 + 3


# Status bits
ST_IE = 1 << 0
ST_EXL = 1 << 1
ST_ERL = 1 << 2
ST_UM = 1 << 4
ST_KSU_MASK = 3 << 3
ST_BEV = 1 << 22
ST_CU0 = 1 << 28
ST_CU1 = 1 << 29

# Cause bits
CAUSE_BD = 1 << 31
CAUSE_TI = 1 << 30
CAUSE_IV = 1 << 23

# GuestCtl0 bits
GC0_GM = 1 << 31
GC0_CP0 = 1 << 28
GC0_AT_GUEST = 3 << 26
GC0_GT = 1 << 25
GC0_CG = 1 << 24
GC0_GEXC_SHIFT = 2
GC0_GEXC_MASK = 0x1F << 2

# EntryLo bits
ELO_G = 1 << 0
ELO_V = 1 << 1
ELO_D = 1 << 2
ELO_C_SHIFT = 3

TLB_ENTRIES = 64
PAGE_SIZE = 4096

# Largest page the root TLB supports (PageMask 0x1fffe000 = 256 MiB pages)
MAX_PAGE_MASK = 0x1FFFE000

HYPCALL_FUNCT = 0x28
