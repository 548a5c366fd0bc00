/*
 * Jumps: j jal jr jalr (rd = ra and rd = other), jr.hb jalr.hb;
 * delay slots and link values (link = jump address + 8).
 */
#include "guest.h"

    .text
    .set noreorder
    .globl main
main:
    PRINT "jumps\n"

    /* j: slot executed, fall-through skipped */
    move    $v0, $zero
    j       1f
    ori     $v0, $v0, 1
    ori     $v0, $v0, 4             /* skipped */
1:  ori     $v0, $v0, 2
    PRINT_REG "j", $v0

    /* jal: link = site + 8; slot sees the new ra */
    la      $t8, 2f
2:  jal     ret_42
    subu    $s0, $ra, $t8           /* delay slot */
    subu    $s1, $ra, $t8           /* after return */
    PRINT_REG "jal_slot_link", $s0
    PRINT_REG "jal_link", $s1
    PRINT_REG "jal_ret", $v0

    /* jr to a computed address */
    la      $t9, 3f
    move    $v0, $zero
    jr      $t9
    ori     $v0, $v0, 1
    ori     $v0, $v0, 4
3:  ori     $v0, $v0, 2
    PRINT_REG "jr", $v0

    /* jalr with the default rd (ra) */
    la      $t9, ret_42
    la      $t8, 4f
4:  jalr    $t9
    nop
    subu    $s0, $ra, $t8
    PRINT_REG "jalr_link", $s0
    PRINT_REG "jalr_ret", $v0

    /* jalr with rd = t7: ra is left alone */
    la      $t9, 5f
    la      $t8, 6f
    LI32 $ra, 0x12345678
6:  jalr    $t7, $t9
    nop
    ori     $v0, $zero, 0xbad
5:  subu    $s0, $t7, $t8
    PRINT_REG "jalr_rd_link", $s0
    PRINT_REG "jalr_rd_ra", $ra

    /* jalr.hb / jr.hb: same semantics plus hazard barrier */
    la      $t9, ret_42
    la      $t8, 7f
    move    $v0, $zero
7:  jalr.hb $t9
    nop
    subu    $s0, $ra, $t8
    PRINT_REG "jalr_hb_link", $s0
    PRINT_REG "jalr_hb_ret", $v0
    la      $t9, 8f
    jr.hb   $t9
    li      $v0, 0x77
    li      $v0, 0xbad
8:  PRINT_REG "jr_hb", $v0

    /* jalr where the delay slot overwrites the jump register: the old
     * value is used */
    la      $t9, 9f
    jalr    $t9
    move    $t9, $zero
    li      $v0, 0xbad
9:  PRINT_REG "jalr_slot_clobber", $t9

    /* Nested calls through a function that saves ra on the stack */
    la      $sp, stack_top
    li      $a0, 5
    jal     fact
    nop
    PRINT_REG "fact5", $v0
    EXIT 0

/* v0 = 42; the return's delay slot adds 1 */
ret_42:
    li      $v0, 41
    jr      $ra
    addiu   $v0, $v0, 1

/* recursive factorial: v0 = a0! */
fact:
    addiu   $sp, $sp, -8
    sw      $ra, 4($sp)
    sw      $a0, 0($sp)
    blez    $a0, 1f
    li      $v0, 1
    jal     fact
    addiu   $a0, $a0, -1
    lw      $a0, 0($sp)
    mul     $v0, $v0, $a0
1:  lw      $ra, 4($sp)
    jr      $ra
    addiu   $sp, $sp, 8

    .bss
    .balign 8
    .space 256
stack_top:
