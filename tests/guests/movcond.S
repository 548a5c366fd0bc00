/* Conditional moves: movn movz (taken, not taken, rd == rt, rt = $zero). */
#include "guest.h"

    .text
    .set noreorder
    .globl main
main:
    PRINT "movcond\n"
    li      $t0, 0x1111
    li      $t1, 0
    li      $t2, 5

    li      $v0, 0xaaaa
    movz    $v0, $t0, $t1
    PRINT_REG "movz_taken", $v0
    li      $v0, 0xaaaa
    movz    $v0, $t0, $t2
    PRINT_REG "movz_not", $v0
    li      $v0, 0xaaaa
    movn    $v0, $t0, $t2
    PRINT_REG "movn_taken", $v0
    li      $v0, 0xaaaa
    movn    $v0, $t0, $t1
    PRINT_REG "movn_not", $v0
    li      $v0, 0xaaaa
    movz    $v0, $t0, $zero
    PRINT_REG "movz_zero", $v0
    li      $v0, 0xaaaa
    movn    $v0, $t0, $zero
    PRINT_REG "movn_zero", $v0
    /* rd == rt: condition tested on the old value */
    li      $v1, 0
    movz    $v1, $t0, $v1
    PRINT_REG "movz_rd_rt", $v1
    li      $v1, 5
    movn    $v1, $t0, $v1
    PRINT_REG "movn_rd_rt", $v1
    EXIT 0
