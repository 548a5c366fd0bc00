/*
 * di/ei, eret (from EXL and from ERL), and CP0 registers whose read/write
 * behaviour the architecture fixes. Only architecturally defined fields
 * are printed (values are masked where implementations may differ).
 */
#include "guest.h"

#define STATUS_MASK 0x0000ff1f      /* IM7..IM0, KSU, ERL, EXL, IE */

    .text
    .set noreorder
    .globl main
main:
    PRINT "cp0_misc\n"

    /* ---- di / ei ---- */
    li      $t0, ST_IE              /* IE=1 but all IM bits 0: nothing fires */
    mtc0    $t0, C0_STATUS
    ehb
    di      $t1                     /* t1 = Status before; IE cleared */
    ehb
    andi    $t1, $t1, STATUS_MASK
    PRINT_REG "di_old", $t1
    mfc0    $t2, C0_STATUS
    andi    $t2, $t2, STATUS_MASK
    PRINT_REG "di_new", $t2
    ei      $t1                     /* t1 = Status before (IE=0); IE set */
    ehb
    andi    $t1, $t1, STATUS_MASK
    PRINT_REG "ei_old", $t1
    mfc0    $t2, C0_STATUS
    andi    $t2, $t2, STATUS_MASK
    PRINT_REG "ei_new", $t2
    di                              /* no destination */
    ehb
    mfc0    $t2, C0_STATUS
    andi    $t2, $t2, STATUS_MASK
    PRINT_REG "di_noreg", $t2
    ei
    ehb
    mfc0    $t2, C0_STATUS
    andi    $t2, $t2, STATUS_MASK
    PRINT_REG "ei_noreg", $t2
    mtc0    $zero, C0_STATUS
    ehb

    /* ---- eret with EXL=1: to EPC, clears EXL, no delay slot ---- */
    li      $s0, 0
    la      $t0, 1f
    mtc0    $t0, C0_EPC
    li      $t0, ST_EXL
    mtc0    $t0, C0_STATUS
    ehb
    eret
    addiu   $s0, $s0, 1             /* must not execute */
    addiu   $s0, $s0, 2             /* must not execute */
1:  PRINT_REG "eret_exl_skipped", $s0
    mfc0    $t2, C0_STATUS
    andi    $t2, $t2, STATUS_MASK
    PRINT_REG "eret_exl_status", $t2

    /* ---- eret with ERL=1: to ErrorEPC, clears ERL only ---- */
    li      $s0, 0
    la      $t0, 2f
    mtc0    $t0, C0_ERROREPC
    la      $t0, 3f                 /* EPC must not be used */
    mtc0    $t0, C0_EPC
    li      $t0, ST_ERL | ST_EXL
    mtc0    $t0, C0_STATUS
    ehb
    eret
    nop
3:  li      $s0, 0xbad
2:  PRINT_REG "eret_erl_wrong_target", $s0
    mfc0    $t2, C0_STATUS
    andi    $t2, $t2, STATUS_MASK
    PRINT_REG "eret_erl_status", $t2    /* EXL still set */
    mtc0    $zero, C0_STATUS
    ehb

    /* ---- plain read/write registers ---- */
    LI32 $t0, 0x12345678
    mtc0    $t0, C0_EPC
    ehb
    mfc0    $t1, C0_EPC
    PRINT_REG "epc", $t1
    LI32 $t0, 0x87654320
    mtc0    $t0, C0_ERROREPC
    ehb
    mfc0    $t1, C0_ERROREPC
    PRINT_REG "errorepc", $t1
    LI32 $t0, 0xdeadbeef
    mtc0    $t0, C0_COMPARE
    ehb
    mfc0    $t1, C0_COMPARE
    PRINT_REG "compare", $t1
    mtc0    $zero, C0_COMPARE
    LI32 $t0, 0x12346055            /* VPN2 0x12346000>>13, ASID 0x55 */
    mtc0    $t0, C0_ENTRYHI
    ehb
    mfc0    $t1, C0_ENTRYHI
    PRINT_REG "entryhi", $t1
    mtc0    $zero, C0_ENTRYHI
    li      $t0, PM_16K
    mtc0    $t0, C0_PAGEMASK
    ehb
    mfc0    $t1, C0_PAGEMASK
    PRINT_REG "pagemask_16k", $t1
    LI32 $t0, PM_64K
    mtc0    $t0, C0_PAGEMASK
    ehb
    mfc0    $t1, C0_PAGEMASK
    PRINT_REG "pagemask_64k", $t1
    mtc0    $zero, C0_PAGEMASK
    li      $t0, 5
    mtc0    $t0, C0_WIRED
    ehb
    mfc0    $t1, C0_WIRED
    PRINT_REG "wired", $t1
    mtc0    $zero, C0_WIRED
    li      $t0, 3
    mtc0    $t0, C0_INDEX
    ehb
    mfc0    $t1, C0_INDEX
    PRINT_REG "index", $t1
    /* Context: PTEBase (31..23) is writable, BadVPN2 (22..4) is not, 3..0 are 0 */
    li      $t0, -1
    mtc0    $t0, C0_CONTEXT
    ehb
    mfc0    $t1, C0_CONTEXT
    LI32 $t2, 0xff80000f
    and     $t1, $t1, $t2
    PRINT_REG "context_ptebase", $t1
    mtc0    $zero, C0_CONTEXT
    /* EBase: exception base bits as written; CPUNum 0 */
    mfc0    $t1, C0_EBASE
    LI32 $t2, 0xfffff3ff
    and     $t1, $t1, $t2
    PRINT_REG "ebase", $t1

    /* Cause: IP1..IP0 (software interrupts) are writable; with IE=0 they
     * stay pending without an interrupt being taken. */
    li      $t0, CA_IP(0) | CA_IP(1)
    mtc0    $t0, C0_CAUSE
    ehb
    mfc0    $t1, C0_CAUSE
    andi    $t1, $t1, 0x0300
    PRINT_REG "cause_swint", $t1
    mtc0    $zero, C0_CAUSE
    ehb
    mfc0    $t1, C0_CAUSE
    andi    $t1, $t1, 0x0300
    PRINT_REG "cause_swint_clear", $t1

    /* Cause.DC stops Count; clearing it restarts Count. */
    LI32 $t0, CA_DC
    mtc0    $t0, C0_CAUSE
    ehb
    mfc0    $t1, C0_COUNT
    li      $t3, 2000
4:  bnez    $t3, 4b
    addiu   $t3, $t3, -1
    mfc0    $t2, C0_COUNT
    subu    $t2, $t2, $t1
    PRINT_REG "count_stopped_delta", $t2
    mtc0    $zero, C0_CAUSE
    ehb
    /* Count is writable and keeps counting from the written value. */
    li      $t0, 0x100
    mtc0    $t0, C0_COUNT
    ehb
    li      $t3, 2000
5:  bnez    $t3, 5b
    addiu   $t3, $t3, -1
    mfc0    $t1, C0_COUNT
    sltiu   $t2, $t1, 0x101         /* 1 if Count did not advance */
    PRINT_REG "count_not_advanced", $t2
    LI32 $t4, 0x10000000
    sltu    $t2, $t1, $t4           /* 1 if Count is not wildly off */
    PRINT_REG "count_plausible", $t2
    EXIT 0
