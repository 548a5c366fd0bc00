/*
 * Conditional traps: teq tne tge tgeu tlt tltu and the immediate forms
 * teqi tnei tgei tgeiu tlti tltiu, each taken and not taken. A taken trap
 * raises Tr (ExcCode 13); the default handler prints one EXC line with
 * EPC = the trap, then resumes after it.
 */
#include "guest.h"

.macro TCASE name, insn:vararg
    PRINT "\name\n"
    .globl trap_\name
trap_\name:
    \insn
.endm

    .text
    .set noreorder
    .globl main
main:
    PRINT "traps\n"
    li      $t0, 5
    li      $t1, 5
    li      $t2, -1
    li      $t3, 1

    TCASE teq_taken, teq $t0, $t1
    TCASE teq_not, teq $t0, $t3
    TCASE tne_taken, tne $t0, $t3
    TCASE tne_not, tne $t0, $t1
    TCASE tge_taken, tge $t0, $t1
    TCASE tge_not, tge $t2, $t3
    TCASE tgeu_taken, tgeu $t2, $t3
    TCASE tgeu_not, tgeu $t3, $t2
    TCASE tlt_taken, tlt $t2, $t3
    TCASE tlt_not, tlt $t0, $t1
    TCASE tltu_taken, tltu $t3, $t2
    TCASE tltu_not, tltu $t2, $t3
    TCASE teqi_taken, teqi $t0, 5
    TCASE teqi_not, teqi $t0, 6
    TCASE tnei_taken, tnei $t0, 6
    TCASE tnei_not, tnei $t0, 5
    TCASE tgei_taken, tgei $t2, -1
    TCASE tgei_not, tgei $t2, 0
    TCASE tgeiu_taken, tgeiu $t2, -1
    TCASE tgeiu_not, tgeiu $t3, -1
    TCASE tlti_taken, tlti $t2, 0
    TCASE tlti_not, tlti $t3, 0
    TCASE tltiu_taken, tltiu $t3, -1
    TCASE tltiu_not, tltiu $t2, 5
    TCASE teq_code, teq $zero, $zero, 0x3ff
    PRINT "end\n"
    EXIT 0
