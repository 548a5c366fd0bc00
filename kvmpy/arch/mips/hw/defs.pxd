# Architectural constants of the simulated MIPS32 release-5 (P5600-class) core:
# the one definition of each. `cpdef enum` makes every member a C constant for
# the Cython modules that `cimport` it (cpu.pyx's interpreter loop, the TE fast
# path) and an IntEnum member for Python code that imports kvmpy.arch.mips.hw.defs.
#
# The members of all enums here share one namespace at C level, so no two
# enums may name a member alike.


cpdef enum ExcCode:
    # Cause.ExcCode values
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
    GE = 27            # guest exit (VZ): details in GuestCtl0.GExcCode


cpdef enum GExcCode:
    # GuestCtl0.GExcCode: why a guest-mode event needs the root
    GPSI = 0           # guest privileged sensitive instruction
    GSFC = 1           # guest software field change
    HC = 2             # hypercall
    GRR = 3            # guest reserved instruction redirect
    GVA = 8            # root TLB exception, BadVAddr holds the guest virtual address
    GHFC = 9           # guest hardware field change
    GPA = 10           # root TLB exception, BadVAddr holds the guest physical address


cpdef enum Stop:
    # Why Cpu.run() returned: the simulated core entered the root (host) side
    ROOT_EXCEPTION = 1  # a root exception was taken; root CP0 holds the details
    BUDGET = 2          # the instruction budget ran out (host timer tick)
    KICK = 3            # another thread asked the core to stop
    ROOT_WAIT = 4       # WAIT executed in root kernel mode (bare hardware tests only)
    DEBUG = 5           # SDBBP: EJTAG debug breakpoint, always owned by the root


cpdef enum Ctx:
    # Which CP0 context an operation addresses
    ROOT = 0
    GUEST = 1


cpdef enum Cp0:
    # CP0 registers by index register * 8 + select (also the trap-and-emulate
    # commpage's word index of each register)
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
    ERRCTL = 26 * 8 + 0
    TAGLO = 28 * 8 + 0
    DATALO = 28 * 8 + 1
    TAGHI = 29 * 8 + 0
    DATAHI = 29 * 8 + 1
    ERROREPC = 30 * 8 + 0
    DESAVE = 31 * 8 + 0
    KSCRATCH1 = 31 * 8 + 2
    KSCRATCH2 = 31 * 8 + 3


cpdef enum Status:
    # Status register bits
    IE = 1 << 0
    EXL = 1 << 1
    ERL = 1 << 2
    UM = 1 << 4         # KSU = user
    KSU_MASK = 3 << 3
    BEV = 1 << 22
    CU0 = 1 << 28
    CU1 = 1 << 29


cpdef enum Cause:
    # Cause register bits
    BD = 0x80000000
    TI = 1 << 30
    CE_SHIFT = 28
    CE_MASK = 3 << 28
    DC = 1 << 27
    IV = 1 << 23
    IP_MASK = 0xFF00
    IP_HW_MASK = 0xFC00  # IP7..IP2, driven by the hardware


cpdef enum GuestCtl0:
    # GuestCtl0 bits
    GM = 0x80000000
    CP0 = 1 << 28
    AT_GUEST = 3 << 26
    GT = 1 << 25
    CG = 1 << 24
    GEXC_SHIFT = 2
    GEXC_MASK = 0x1F << 2


cpdef enum EntryLo:
    # EntryLo0/1 bits
    G = 1 << 0
    V = 1 << 1
    D = 1 << 2
    C_SHIFT = 3


cpdef enum Tlb:
    # The core's root (and guest) TLB
    ENTRIES = 64
    MAX_PAGEMASK = 0x1FFFE000  # the largest page it supports: 256 MiB pages
