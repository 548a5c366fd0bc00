/*
 * Instructions that must not change architectural state here:
 * nop ssnop ehb sync pref cache synci (PrepareForStore, pref hint 30/31,
 * is not used: it may legally zero a cache line). The register dump before and after
 * must be identical, and memory unchanged.
 */
#include "guest.h"

    .text
    .set noreorder
    .globl main
main:
    PRINT "nops\n"
    la      $s0, data
    LI32 $t0, 0x01234567
    LI32 $t1, 0x89abcdef
    LI32 $a0, 0xfeedface
    li      $t2, 0x00001000         /* an unmapped kuseg address */
    mthi    $t0
    mtlo    $t1
    DUMP_REGS 1
    DUMP_MEM data, 16
    nop
    ssnop
    ehb
    sync
    sync    0x10
    pref    0, 0($s0)               /* load */
    pref    1, 4($s0)               /* store */
    pref    25, 0($s0)              /* writeback_invalidate ("nudge") */
    /* PREF never raises address exceptions: an unmapped kuseg address and
     * an unaligned one are fine. */
    pref    0, 0($t2)
    pref    0, 3($s0)
    cache   0x15, 0($s0)            /* D: Hit_Writeback_Invalidate */
    cache   0x19, 0($s0)            /* D: Hit_Writeback */
    cache   0x10, 0($s0)            /* I: Hit_Invalidate */
    synci   0($s0)
    sync
    ehb
    DUMP_REGS 2
    DUMP_MEM data, 16
    EXIT 0

    .data
    .balign 32
data:
    .word 0x11111111, 0x22222222, 0x33333333, 0x44444444
    .space 16
