"""Architectural constants of the simulated PowerPC 440 core (Book E, 440x4 of the 440EP).

Shared by the hardware model, the hypervisor and the tests. Bit values are
the 32-bit masks of the registers (IBM numbers bit 0 as the MSB).
"""

from __future__ import annotations

from enum import IntEnum


class Stop(IntEnum):
    """Why Core440.run() returned."""

    INTERRUPT = 1  # an interrupt whose vector the host owns (Core440.host_vectors) was taken
    BUDGET = 2  # the instruction budget ran out
    KICK = 3  # another thread asked the core to stop
    WAIT = 4  # MSR[WE] set with no interrupt source that could ever wake the core
    DCR = 5  # mfdcr/mtdcr: the DCR bus is the host's (Core440.dcr_pending / dcr_complete)
    RESET = 6  # DBCR0[RST] or the watchdog requested a reset (Core440.reset_request)
    CHECKSTOP = 7  # machine check with MSR[ME] = 0: the core stopped


class Ivor(IntEnum):
    """Interrupt classes: the IVOR (interrupt vector offset register) each one uses."""

    CRITICAL_INPUT = 0
    MACHINE_CHECK = 1
    DATA_STORAGE = 2
    INSTRUCTION_STORAGE = 3
    EXTERNAL_INPUT = 4
    ALIGNMENT = 5
    PROGRAM = 6
    FP_UNAVAILABLE = 7
    SYSTEM_CALL = 8
    APU_UNAVAILABLE = 9
    DECREMENTER = 10
    FIXED_INTERVAL_TIMER = 11
    WATCHDOG = 12
    DATA_TLB_ERROR = 13
    INSTRUCTION_TLB_ERROR = 14
    DEBUG = 15


class Spr(IntEnum):
    """SPR numbers of the 440 (mfspr/mtspr operands)."""

    XER = 1
    LR = 8
    CTR = 9
    DEC = 22
    SRR0 = 26
    SRR1 = 27
    PID = 48
    DECAR = 54
    CSRR0 = 58
    CSRR1 = 59
    DEAR = 61
    ESR = 62
    IVPR = 63
    USPRG0 = 256
    SPRG3_RO = 259
    SPRG4_RO = 260
    SPRG5_RO = 261
    SPRG6_RO = 262
    SPRG7_RO = 263
    TBL_RO = 268
    TBU_RO = 269
    SPRG0 = 272
    SPRG1 = 273
    SPRG2 = 274
    SPRG3 = 275
    SPRG4 = 276
    SPRG5 = 277
    SPRG6 = 278
    SPRG7 = 279
    TBL = 284
    TBU = 285
    PIR = 286
    PVR = 287
    DBSR = 304
    DBCR0 = 308
    DBCR1 = 309
    DBCR2 = 310
    TSR = 336
    TCR = 340
    IVOR0 = 400
    MCSRR0 = 570
    MCSRR1 = 571
    MCSR = 572
    CCR1 = 888
    MMUCR = 946
    CCR0 = 947


# MSR
MSR_WE = 0x00040000
MSR_CE = 0x00020000
MSR_EE = 0x00008000
MSR_PR = 0x00004000
MSR_FP = 0x00002000
MSR_ME = 0x00001000
MSR_FE0 = 0x00000800
MSR_DWE = 0x00000400
MSR_DE = 0x00000200
MSR_FE1 = 0x00000100
MSR_IS = 0x00000020
MSR_DS = 0x00000010
MSR_IMPLEMENTED = 0x0006FF30  # the bits a 440's MSR holds (the rest read as 0)

# ESR
ESR_PIL = 0x08000000
ESR_PPR = 0x04000000
ESR_PTR = 0x02000000
ESR_FP = 0x01000000
ESR_ST = 0x00800000

# TCR / TSR
TCR_WP = 0xC0000000
TCR_WRC = 0x30000000
TCR_WIE = 0x08000000
TCR_DIE = 0x04000000
TCR_FP = 0x03000000
TCR_FIE = 0x00800000
TCR_ARE = 0x00400000
TSR_ENW = 0x80000000
TSR_WIS = 0x40000000
TSR_WRS = 0x30000000
TSR_DIS = 0x08000000
TSR_FIS = 0x04000000

# DBCR0
DBCR0_RST = 0x30000000

# TLB words (tlbwe/tlbre)
TLB0_EPN = 0xFFFFFC00
TLB0_V = 0x00000200
TLB0_TS = 0x00000100
TLB0_SIZE = 0x000000F0
TLB1_RPN = 0xFFFFFC00
TLB1_ERPN = 0x0000000F
TLB0_STORED = 0xFFFFFFF0  # what tlbre reads back of each word (TPAR and reserved bits read as 0)
TLB1_STORED = 0xFFFFFC0F
TLB2_STORED = 0x0000FFBF
TLB2_W = 0x00000800
TLB2_I = 0x00000400
TLB2_M = 0x00000200
TLB2_G = 0x00000100
TLB2_E = 0x00000080
TLB2_UX = 0x00000020
TLB2_UW = 0x00000010
TLB2_UR = 0x00000008
TLB2_SX = 0x00000004
TLB2_SW = 0x00000002
TLB2_SR = 0x00000001
MMUCR_STS = 0x00010000
MMUCR_STID = 0x000000FF

NTLB = 64
PVR_440EPB = 0x422218D3  # what QEMU's "440epb" (bamboo's default CPU) reports
