/*
 * Exceptions in branch delay slots: Cause.BD=1 and EPC = the branch (or
 * jump), for taken and not-taken branches, jumps, linking jumps and a
 * likely branch, with AdEL, Sys, Bp, Tr and Ov in the slot. The default
 * handler prints the EXC line and resumes where the branch would have
 * gone (exc_resume_pc decodes the branch at EPC). Every case records in
 * v0 which path ran (2 = target, 1 = fall-through).
 */
#include "guest.h"

    .text
    .set noreorder
    .globl main
main:
    PRINT "exc_bd\n"
    la      $s0, data
    li      $t0, 1
    li      $t5, 1                  /* t5 == t0, but a different register */

    PRINT "beq_taken_adel\n"
    li      $v0, 0
    .globl bd_beq
bd_beq:
    beq     $t0, $t0, 1f
    lw      $t1, 1($s0)             /* AdEL in the slot */
    li      $v0, 1
    b       2f
    nop
1:  li      $v0, 2
2:  PRINT_REG "path", $v0

    PRINT "bne_not_taken_ades\n"
    li      $v0, 0
    .globl bd_bne
bd_bne:
    /* Not "bne $t0, $t0": QEMU translates a branch that can never be
     * taken as a nop, so its slot would not be a delay slot (BD=0). */
    bne     $t0, $t5, 1f
    sw      $t1, 2($s0)             /* AdES in the slot */
    li      $v0, 1
    b       2f
    nop
1:  li      $v0, 2
2:  PRINT_REG "path", $v0

    PRINT "j_syscall\n"
    li      $v0, 0
    .globl bd_j
bd_j:
    j       1f
    syscall
    li      $v0, 1
    b       2f
    nop
1:  li      $v0, 2
2:  PRINT_REG "path", $v0

    PRINT "jal_break\n"
    la      $t8, bd_jal
    li      $v0, 0
    .globl bd_jal
bd_jal:
    jal     sub_ret2
    break   3
    subu    $t9, $ra, $t8           /* back from the call */
    PRINT_REG "path", $v0
    PRINT_REG "link", $t9

    PRINT "jr_teq\n"
    la      $t9, 1f
    li      $v0, 0
    .globl bd_jr
bd_jr:
    jr      $t9
    teq     $zero, $zero
    li      $v0, 1
    b       2f
    nop
1:  li      $v0, 2
2:  PRINT_REG "path", $v0

    PRINT "jalr_ov\n"
    la      $t9, sub_ret2
    la      $t8, bd_jalr
    LI32 $t2, 0x7fffffff
    li      $v0, 0
    .globl bd_jalr
bd_jalr:
    jalr    $t9
    add     $t3, $t2, $t2           /* Ov in the slot */
    subu    $t9, $ra, $t8
    PRINT_REG "path", $v0
    PRINT_REG "link", $t9

    PRINT "beql_taken_adel\n"
    li      $v0, 0
    .globl bd_beql
bd_beql:
    beql    $t0, $t0, 1f
    lh      $t1, 1($s0)
    li      $v0, 1
    b       2f
    nop
1:  li      $v0, 2
2:  PRINT_REG "path", $v0

    PRINT "bltzal_not_taken_syscall\n"
    la      $t8, bd_bltzal
    li      $v0, 0
    .globl bd_bltzal
bd_bltzal:
    bltzal  $t0, 1f
    syscall
    li      $v0, 1
    b       2f
    nop
1:  li      $v0, 2
2:  subu    $t9, $ra, $t8
    PRINT_REG "path", $v0
    PRINT_REG "link", $t9
    EXIT 0

sub_ret2:
    jr      $ra
    li      $v0, 2

    .data
    .balign 8
data:
    .word 0, 0
