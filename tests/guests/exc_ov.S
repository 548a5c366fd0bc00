/*
 * Integer overflow: add addi sub trap (Ov, ExcCode 12) on signed overflow
 * and leave the destination unmodified; addu/addiu/subu never trap.
 */
#include "guest.h"

.macro OCASE name, insn:vararg
    PRINT "\name\n"
    LI32 $v0, 0xaaaaaaaa
    .globl ov_\name
ov_\name:
    \insn
    PRINT_REG "\name", $v0
.endm

    .text
    .set noreorder
    .globl main
main:
    PRINT "exc_ov\n"
    LI32 $t0, 0x7fffffff
    LI32 $t1, 0x80000000
    li      $t2, 1
    li      $t3, -1

    OCASE add_max_1, add $v0, $t0, $t2
    OCASE add_min_min, add $v0, $t1, $t1
    OCASE add_min_m1, add $v0, $t1, $t3
    OCASE add_max_m1, add $v0, $t0, $t3
    OCASE addi_max_1, addi $v0, $t0, 1
    OCASE addi_min_m1, addi $v0, $t1, -1
    OCASE addi_max_m1, addi $v0, $t0, -1
    OCASE sub_min_1, sub $v0, $t1, $t2
    OCASE sub_0_min, sub $v0, $zero, $t1
    OCASE sub_max_m1, sub $v0, $t0, $t3
    OCASE sub_min_m1, sub $v0, $t1, $t3
    OCASE sub_m1_max, sub $v0, $t3, $t0
    OCASE addu_max_1, addu $v0, $t0, $t2
    OCASE addiu_max_1, addiu $v0, $t0, 1
    OCASE subu_min_1, subu $v0, $t1, $t2
    EXIT 0
