/*
 * ALU with register operands: addu add subu sub and or xor nor slt sltu.
 */
#include "guest.h"

    .text
    .set noreorder
    .globl main
main:
    PRINT "alu_reg\n"
    LI32 $t0, 0x7fffffff
    LI32 $t1, 0x00000001
    LI32 $t2, 0x80000000
    LI32 $t3, 0xffffffff
    LI32 $t4, 0x12345678
    LI32 $t5, 0x0f0f0f0f

    addu    $v0, $t0, $t1
    PRINT_REG "addu_wrap", $v0
    addu    $v0, $t3, $t3
    PRINT_REG "addu_m1_m1", $v0
    add     $v0, $t4, $t5
    PRINT_REG "add", $v0
    add     $v0, $t3, $t3
    PRINT_REG "add_neg", $v0
    add     $v0, $t2, $t0
    PRINT_REG "add_min_max", $v0
    subu    $v0, $t2, $t1
    PRINT_REG "subu_wrap", $v0
    subu    $v0, $zero, $t1
    PRINT_REG "subu_neg", $v0
    sub     $v0, $t1, $t3
    PRINT_REG "sub_1_m1", $v0
    sub     $v0, $t4, $t5
    PRINT_REG "sub", $v0

    and     $v0, $t4, $t5
    PRINT_REG "and", $v0
    or      $v0, $t4, $t5
    PRINT_REG "or", $v0
    xor     $v0, $t4, $t5
    PRINT_REG "xor", $v0
    nor     $v0, $t4, $t5
    PRINT_REG "nor", $v0
    nor     $v0, $zero, $zero
    PRINT_REG "nor_zero", $v0

    slt     $v0, $t2, $t1
    PRINT_REG "slt_min_1", $v0
    slt     $v0, $t1, $t2
    PRINT_REG "slt_1_min", $v0
    slt     $v0, $t3, $t3
    PRINT_REG "slt_eq", $v0
    slt     $v0, $t3, $zero
    PRINT_REG "slt_m1_0", $v0
    sltu    $v0, $t2, $t1
    PRINT_REG "sltu_min_1", $v0
    sltu    $v0, $t1, $t2
    PRINT_REG "sltu_1_min", $v0
    sltu    $v0, $zero, $t3
    PRINT_REG "sltu_0_m1", $v0

    /* Same register as source and destination. */
    move    $v1, $t4
    addu    $v1, $v1, $v1
    PRINT_REG "addu_self", $v1
    xor     $v1, $v1, $v1
    PRINT_REG "xor_self", $v1

    addu    $zero, $t4, $t5
    PRINT_REG "zero", $zero
    EXIT 0
