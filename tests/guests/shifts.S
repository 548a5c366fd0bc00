/*
 * Shifts and rotates: sll srl sra sllv srlv srav rotr rotrv.
 * The variable forms use only the low 5 bits of rs.
 */
#include "guest.h"

    .text
    .set noreorder
    .globl main
main:
    PRINT "shifts\n"
    LI32 $t0, 0x80000001
    LI32 $t1, 0x12345678

    sll     $v0, $t0, 1
    PRINT_REG "sll_1", $v0
    sll     $v0, $t1, 4
    PRINT_REG "sll_4", $v0
    sll     $v0, $t1, 0
    PRINT_REG "sll_0", $v0
    sll     $v0, $t0, 31
    PRINT_REG "sll_31", $v0
    srl     $v0, $t0, 1
    PRINT_REG "srl_1", $v0
    srl     $v0, $t0, 31
    PRINT_REG "srl_31", $v0
    srl     $v0, $t1, 8
    PRINT_REG "srl_8", $v0
    sra     $v0, $t0, 1
    PRINT_REG "sra_1", $v0
    sra     $v0, $t0, 31
    PRINT_REG "sra_31", $v0
    sra     $v0, $t1, 4
    PRINT_REG "sra_pos", $v0

    li      $t2, 36                 /* 36 & 31 = 4 */
    sllv    $v0, $t1, $t2
    PRINT_REG "sllv_36", $v0
    li      $t2, 33                 /* 33 & 31 = 1 */
    srlv    $v0, $t0, $t2
    PRINT_REG "srlv_33", $v0
    li      $t2, -31                /* 0xffffffe1 & 31 = 1 */
    srav    $v0, $t0, $t2
    PRINT_REG "srav_m31", $v0
    li      $t2, 32                 /* 32 & 31 = 0 */
    srav    $v0, $t0, $t2
    PRINT_REG "srav_32", $v0
    li      $t2, 12
    srlv    $v0, $t1, $t2
    PRINT_REG "srlv_12", $v0

    rotr    $v0, $t1, 4
    PRINT_REG "rotr_4", $v0
    rotr    $v0, $t1, 16
    PRINT_REG "rotr_16", $v0
    rotr    $v0, $t0, 1
    PRINT_REG "rotr_1", $v0
    rotr    $v0, $t1, 0
    PRINT_REG "rotr_0", $v0
    rotr    $v0, $t0, 31
    PRINT_REG "rotr_31", $v0
    li      $t2, 8
    rotrv   $v0, $t1, $t2
    PRINT_REG "rotrv_8", $v0
    li      $t2, 36                 /* & 31 = 4 */
    rotrv   $v0, $t1, $t2
    PRINT_REG "rotrv_36", $v0
    li      $t2, 31
    rotrv   $v0, $t0, $t2
    PRINT_REG "rotrv_31", $v0
    move    $v0, $t1                /* rd == rt */
    rotr    $v0, $v0, 8
    PRINT_REG "rotr_self", $v0
    EXIT 0
