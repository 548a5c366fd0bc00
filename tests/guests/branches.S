/*
 * Conditional branches, normal and likely, taken and not taken.
 *
 * BCASE prints v0 = (slot executed ? 1 : 0) | (taken ? 2 : 0):
 *   3 = taken (delay slot executed), 1 = not taken (slot executed),
 *   0 = likely branch not taken (slot nullified).
 */
#include "guest.h"

.macro BCASE name, br:vararg
    move    $v0, $zero
    \br, .Ltaken\@
    ori     $v0, $v0, 1             /* delay slot */
    b       .Ldone\@
    nop
.Ltaken\@:
    ori     $v0, $v0, 2
.Ldone\@:
    PRINT_REG "\name", $v0
.endm

/* Link value of a linking branch, relative to the branch itself. */
.macro LINKCASE name, br:vararg
    la      $t8, .Lsite\@
    move    $ra, $zero
.Lsite\@:
    \br, .Lt\@
    nop
.Lt\@:
    subu    $v0, $ra, $t8
    PRINT_REG "\name", $v0
.endm

    .text
    .set noreorder
    .globl main
main:
    PRINT "branches\n"
    li      $t0, 5
    li      $t1, 5
    li      $t2, 7
    li      $t3, -3
    move    $t4, $zero

    BCASE beq_eq, beq $t0, $t1
    BCASE beq_ne, beq $t0, $t2
    BCASE bne_ne, bne $t0, $t2
    BCASE bne_eq, bne $t0, $t1
    BCASE blez_neg, blez $t3
    BCASE blez_zero, blez $t4
    BCASE blez_pos, blez $t0
    BCASE bgtz_pos, bgtz $t0
    BCASE bgtz_zero, bgtz $t4
    BCASE bgtz_neg, bgtz $t3
    BCASE bltz_neg, bltz $t3
    BCASE bltz_zero, bltz $t4
    BCASE bgez_zero, bgez $t4
    BCASE bgez_pos, bgez $t0
    BCASE bgez_neg, bgez $t3
    BCASE bltzal_neg, bltzal $t3
    BCASE bltzal_zero, bltzal $t4
    BCASE bgezal_zero, bgezal $t4
    BCASE bgezal_neg, bgezal $t3
    BCASE b, beq $zero, $zero
    BCASE bal, bgezal $zero

    BCASE beql_eq, beql $t0, $t1
    BCASE beql_ne, beql $t0, $t2
    BCASE bnel_ne, bnel $t0, $t2
    BCASE bnel_eq, bnel $t0, $t1
    BCASE blezl_zero, blezl $t4
    BCASE blezl_pos, blezl $t0
    BCASE bgtzl_pos, bgtzl $t0
    BCASE bgtzl_neg, bgtzl $t3
    BCASE bltzl_neg, bltzl $t3
    BCASE bltzl_zero, bltzl $t4
    BCASE bgezl_zero, bgezl $t4
    BCASE bgezl_neg, bgezl $t3
    BCASE bltzall_neg, bltzall $t3
    BCASE bltzall_pos, bltzall $t0
    BCASE bgezall_pos, bgezall $t0
    BCASE bgezall_neg, bgezall $t3

    /* Linking branches write ra = branch + 8, taken or not (also likely). */
    LINKCASE link_bal, bgezal $zero
    LINKCASE link_bltzal_taken, bltzal $t3
    LINKCASE link_bltzal_not, bltzal $t0
    LINKCASE link_bgezal_taken, bgezal $t0
    LINKCASE link_bgezal_not, bgezal $t3
    LINKCASE link_bltzall_not, bltzall $t0
    LINKCASE link_bgezall_taken, bgezall $t4

    /* The delay slot sees the link value already written. */
    la      $t8, 1f
1:  bal     2f
    subu    $v0, $ra, $t8           /* delay slot */
2:  PRINT_REG "bal_slot_sees_link", $v0

    /* The condition is evaluated before the delay slot changes it. */
    li      $a0, 5
    li      $v0, 0
    beq     $a0, $t0, 3f
    addiu   $a0, $a0, 1             /* delay slot: a0 = 6 */
    li      $v0, 0xbad
3:  PRINT_REG "cond_before_slot", $v0
    PRINT_REG "slot_result", $a0

    /* A nullified slot of a likely branch does not store. */
    la      $a1, cell
    li      $a2, 0x1234
    sw      $a2, 0($a1)
    li      $a3, 0x5678
    beql    $t0, $t2, 4f            /* not taken */
    sw      $a3, 0($a1)             /* nullified */
4:  lw      $v0, 0($a1)
    PRINT_REG "beql_nullified_store", $v0
    bnel    $t0, $t2, 5f            /* taken */
    sw      $a3, 0($a1)             /* executed */
5:  lw      $v0, 0($a1)
    PRINT_REG "bnel_taken_store", $v0

    /* Backward branch loop: sum 1..10, counter update in the slot. */
    li      $v0, 0
    li      $a0, 10
6:  addu    $v0, $v0, $a0
    bnez    $a0, 6b
    addiu   $a0, $a0, -1            /* delay slot, runs every iteration */
    PRINT_REG "loop_sum", $v0
    PRINT_REG "loop_counter", $a0

    /* A branch to the instruction right after its delay slot. */
    li      $v0, 0
    beq     $zero, $zero, 7f
    addiu   $v0, $v0, 1
7:  addiu   $v0, $v0, 2
    PRINT_REG "branch_to_next", $v0
    EXIT 0

    .data
    .balign 4
cell:
    .word 0
