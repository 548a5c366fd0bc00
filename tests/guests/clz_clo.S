/* Count leading zeros / ones: clz clo. */
#include "guest.h"

.macro CASE insn, name, value
    LI32 $t0, \value
    \insn   $v0, $t0
    PRINT_REG "\name", $v0
.endm

    .text
    .set noreorder
    .globl main
main:
    PRINT "clz_clo\n"
    CASE clz, clz_0, 0x00000000
    CASE clz, clz_1, 0x00000001
    CASE clz, clz_min, 0x80000000
    CASE clz, clz_00ffffff, 0x00ffffff
    CASE clz, clz_00008000, 0x00008000
    CASE clz, clz_m1, 0xffffffff
    CASE clo, clo_m1, 0xffffffff
    CASE clo, clo_0, 0x00000000
    CASE clo, clo_fffffff0, 0xfffffff0
    CASE clo, clo_min, 0x80000000
    CASE clo, clo_ff00ffff, 0xff00ffff
    CASE clo, clo_fffffffe, 0xfffffffe
    EXIT 0
