/*
 * rdhwr in kernel mode (always allowed): CPUNum, SYNCI_Step, CC, CCRes;
 * HWREna read/write. User-mode rdhwr and HWREna enforcement are in
 * usermode.S. CC is not printed (it is time): only its relation to Count.
 */
#include "guest.h"

    .text
    .set noreorder
    .globl main
main:
    PRINT "rdhwr\n"
    rdhwr   $t0, $0
    PRINT_REG "cpunum", $t0
    rdhwr   $t0, $1
    PRINT_REG "synci_step", $t0
    rdhwr   $t0, $3
    PRINT_REG "ccres", $t0

    /* CC is Count: Count read between two CC reads lies between them (a
       fixed bound on the distance would fail whenever the host is slow to
       emulate rdhwr), and CC advances. */
    rdhwr   $t0, $2
    mfc0    $t1, C0_COUNT
    rdhwr   $t5, $2
    li      $t3, 1000
1:  bnez    $t3, 1b
    addiu   $t3, $t3, -1
    rdhwr   $t2, $2
    subu    $t4, $t1, $t0           /* Count - CC before */
    subu    $t6, $t5, $t0           /* CC after - CC before */
    sltu    $t4, $t6, $t4           /* Count beyond the second CC? */
    xori    $t4, $t4, 1
    PRINT_REG "cc_close_to_count", $t4
    sltu    $t4, $t0, $t2           /* advanced (no wrap in this short time) */
    PRINT_REG "cc_advanced", $t4

    /* HWREna bits 3..0 enable user access to registers 3..0. */
    li      $t0, 0xf
    mtc0    $t0, C0_HWRENA
    ehb
    mfc0    $t1, C0_HWRENA
    andi    $t1, $t1, 0xf
    PRINT_REG "hwrena_f", $t1
    li      $t0, 0x5
    mtc0    $t0, C0_HWRENA
    ehb
    mfc0    $t1, C0_HWRENA
    andi    $t1, $t1, 0xf
    PRINT_REG "hwrena_5", $t1
    mtc0    $zero, C0_HWRENA
    ehb
    mfc0    $t1, C0_HWRENA
    andi    $t1, $t1, 0xf
    PRINT_REG "hwrena_0", $t1
    /* Kernel mode ignores HWREna. */
    rdhwr   $t0, $0
    PRINT_REG "cpunum_hwrena_0", $t0
    EXIT 0
