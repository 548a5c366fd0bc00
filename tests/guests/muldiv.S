/*
 * Multiply/divide unit: mult multu div divu madd maddu msub msubu mul,
 * mfhi mflo mthi mtlo. Results are read with mfhi/mflo into registers
 * and printed as "<case>_hi" / "<case>_lo".
 *
 * Not tested (UNPREDICTABLE in the spec): division by zero, HI/LO after
 * mul. After mul this guest rewrites HI/LO before anything prints them.
 */
#include "guest.h"

/* Print HI and LO of the last operation. */
.macro SHOW name
    mfhi    $s6
    mflo    $s7
    PRINT_REG "\name\()_hi", $s6
    PRINT_REG "\name\()_lo", $s7
.endm

.macro ACC hi, lo
    LI32 $s6, \hi
    mthi    $s6
    LI32 $s6, \lo
    mtlo    $s6
.endm

    .text
    .set noreorder
    .globl main
main:
    PRINT "muldiv\n"
    LI32 $t0, 0x7fffffff
    LI32 $t1, 0xffffffff
    LI32 $t2, 0x80000000
    li      $t3, 2
    li      $t4, 7
    li      $t5, -7
    li      $t6, -2
    li      $t7, 3

    /* mthi/mtlo/mfhi/mflo round trip */
    ACC 0x11223344, 0x55667788
    SHOW acc

    mult    $t0, $t0
    SHOW mult_max_max
    mult    $t1, $t1
    SHOW mult_m1_m1
    multu   $t1, $t1
    SHOW multu_ff_ff
    mult    $t1, $t3
    SHOW mult_m1_2
    multu   $t1, $t3
    SHOW multu_ff_2
    mult    $t2, $t2
    SHOW mult_min_min
    multu   $t2, $t2
    SHOW multu_min_min

    div     $zero, $t4, $t3
    SHOW div_7_2
    div     $zero, $t5, $t3
    SHOW div_m7_2
    div     $zero, $t4, $t6
    SHOW div_7_m2
    div     $zero, $t5, $t6
    SHOW div_m7_m2
    divu    $zero, $t1, $t3
    SHOW divu_ff_2
    li      $s0, 16
    divu    $zero, $t1, $s0
    SHOW divu_ff_16
    divu    $zero, $t2, $t7
    SHOW divu_min_3
    div     $zero, $t2, $t7
    SHOW div_min_3

    ACC 0x00000000, 0x00000010
    madd    $t7, $t6                /* 16 + 3 * -2 */
    SHOW madd
    ACC 0x00000000, 0xffffffff
    li      $s0, 1
    madd    $s0, $s0                /* carry from LO into HI */
    SHOW madd_carry
    ACC 0x00000000, 0xffffffff
    maddu   $t1, $t1
    SHOW maddu
    ACC 0x00000000, 0x00000000
    madd    $t1, $t1                /* signed: -1 * -1 */
    SHOW madd_m1_m1
    ACC 0x00000000, 0x00000000
    li      $s0, 4
    msub    $t7, $s0                /* 0 - 12 */
    SHOW msub
    ACC 0x00000000, 0x00000000
    msub    $t6, $t7                /* 0 - (-6) */
    SHOW msub_neg
    ACC 0x00000001, 0x00000000
    msubu   $t1, $s0                /* 2^32 - 4 * 0xffffffff */
    SHOW msubu
    ACC 0x00000001, 0x00000000
    li      $s0, 1
    msubu   $t1, $s0                /* 2^32 - 0xffffffff */
    SHOW msubu_1

    LI32 $s0, 0x12345678
    li      $s1, 0x10
    mul     $v0, $s0, $s1
    li      $s2, -3
    li      $s3, 5
    mul     $v1, $s2, $s3
    lui     $s4, 1
    mul     $a0, $s4, $s4
    mul     $a1, $t1, $t1
    PRINT_REG "mul_x10", $v0
    PRINT_REG "mul_m3_5", $v1
    PRINT_REG "mul_2p32", $a0
    PRINT_REG "mul_m1_m1", $a1
    /* mul leaves HI/LO UNPREDICTABLE: rewrite them before the dump. */
    ACC 0x0000aaaa, 0x0000bbbb
    SHOW after_mul
    EXIT 0
