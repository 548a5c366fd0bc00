/*
 * ALU with immediate operands: addiu addi slti sltiu andi ori xori lui.
 * Every result is printed as "<case>=<hex>"; the expected values are in
 * tests/functional/test_guests_qemu.py with their derivation.
 */
#include "guest.h"

    .text
    .set noreorder
    .globl main
main:
    PRINT "alu_imm\n"
    LI32 $t0, 0x7ffffff0
    LI32 $t2, 0x80000000
    LI32 $t3, 0xdeadbeef

    addiu   $t1, $t0, 0x20
    PRINT_REG "addiu_wrap", $t1
    addiu   $t1, $zero, -1
    PRINT_REG "addiu_m1", $t1
    addiu   $t1, $t2, -1
    PRINT_REG "addiu_min_m1", $t1
    addi    $t1, $t0, 0xf
    PRINT_REG "addi_max", $t1
    addi    $t1, $t0, -0x7ff0
    PRINT_REG "addi_neg", $t1
    addi    $t1, $t2, 0x7fff
    PRINT_REG "addi_min_plus", $t1

    slti    $t1, $t0, -1
    PRINT_REG "slti_pos_m1", $t1
    slti    $t1, $t2, -1
    PRINT_REG "slti_min_m1", $t1
    slti    $t1, $zero, 0
    PRINT_REG "slti_eq", $t1
    sltiu   $t1, $t2, -1
    PRINT_REG "sltiu_sext", $t1
    sltiu   $t1, $t0, 0x7fff
    PRINT_REG "sltiu_big", $t1
    sltiu   $t1, $zero, 1
    PRINT_REG "sltiu_zero_1", $t1
    sltiu   $t1, $t3, 0x8000
    PRINT_REG "sltiu_neg_imm", $t1

    andi    $t1, $t3, 0xffff
    PRINT_REG "andi_low", $t1
    andi    $t1, $t3, 0x8000
    PRINT_REG "andi_zext", $t1
    ori     $t1, $zero, 0x8000
    PRINT_REG "ori_zext", $t1
    ori     $t1, $t3, 0x1234
    PRINT_REG "ori", $t1
    xori    $t1, $t3, 0xffff
    PRINT_REG "xori", $t1
    xori    $t1, $t3, 0
    PRINT_REG "xori_0", $t1

    lui     $t1, 0x8001
    PRINT_REG "lui_8001", $t1
    lui     $t1, 0xffff
    PRINT_REG "lui_ffff", $t1
    lui     $t1, 0
    PRINT_REG "lui_0", $t1

    /* Writes to $zero are discarded. */
    addiu   $zero, $zero, 5
    ori     $zero, $t3, 0xffff
    lui     $zero, 0x1234
    PRINT_REG "zero", $zero
    EXIT 0
