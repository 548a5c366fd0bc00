/*
 * Address errors: unaligned lw/lh/lhu (AdEL), sw/sh (AdES), and an
 * instruction fetch from an unaligned address reached through jalr (AdEL
 * with EPC = BadVAddr = the bad target). Each data case is preceded by a
 * marker line and followed by the default handler's EXC line; the handler
 * skips the faulting instruction, whose destination must stay unchanged.
 */
#include "guest.h"

.macro ACASE name, insn:vararg
    PRINT "\name\n"
    .globl ae_\name
ae_\name:
    \insn
.endm

    .text
    .set noreorder
    .globl main
main:
    PRINT "exc_addr\n"
    la      $s0, data
    LI32 $t0, 0xaaaaaaaa

    ACASE lw_1, lw $t0, 1($s0)
    ACASE lw_2, lw $t0, 2($s0)
    ACASE lw_3, lw $t0, 3($s0)
    ACASE lh_1, lh $t0, 1($s0)
    ACASE lhu_3, lhu $t0, 3($s0)
    PRINT_REG "dest_unchanged", $t0
    ACASE lb_1, lb $t0, 1($s0)      /* fine: bytes are always aligned */
    PRINT_REG "lb_1_value", $t0
    LI32 $t1, 0x12345678
    ACASE sw_2, sw $t1, 2($s0)
    ACASE sh_1, sh $t1, 1($s0)
    ACASE sh_2, sh $t1, 6($s0)      /* fine: halfword aligned */
    DUMP_MEM data, 8

    /* Fetch from target+2: jalr and its delay slot complete, then the
     * fetch faults. The handler below resumes at ra. */
    SET_HANDLER EXC_ADEL, fetch_handler
    PRINT "fetch\n"
    la      $t9, fetch_target
    addiu   $t9, $t9, 2
    li      $v0, 0
    jalr    $t9
    addiu   $v0, $v0, 1             /* delay slot: executed */
    .globl ae_after_fetch
ae_after_fetch:
    PRINT_REG "fetch_slot_ran", $v0
    EXIT 0

    .balign 8
    .globl fetch_target
fetch_target:
    jr      $ra
    nop

/* void fetch_handler(struct exc_frame *f): print, then resume at f->ra if
 * the fault was on the fetch itself (EPC == BadVAddr). */
fetch_handler:
    addiu   $sp, $sp, -24
    sw      $ra, 20($sp)
    sw      $s0, 16($sp)
    jal     exc_print
    move    $s0, $a0
    lw      $t0, FR_EPC($s0)
    lw      $t1, FR_BADVADDR($s0)
    bne     $t0, $t1, 1f
    addiu   $t0, $t0, 4             /* not a fetch fault: skip */
    lw      $t0, FR_REG(31)($s0)
1:  sw      $t0, FR_EPC($s0)
    lw      $s0, 16($sp)
    lw      $ra, 20($sp)
    jr      $ra
    addiu   $sp, $sp, 24

    .data
    .balign 8
data:
    .word 0x11111111, 0x22222222
