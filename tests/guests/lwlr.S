/*
 * Unaligned partial-word loads and stores (little-endian): lwl lwr swl swr
 * at all four byte offsets, and the lwl/lwr, swl/swr pairs that make up
 * an unaligned word access.
 */
#include "guest.h"

.macro LCASE insn, name, off
    LI32 $v0, 0xaabbccdd
    \insn   $v0, \off($s0)
    PRINT_REG "\name", $v0
.endm

.macro SCASE insn, cell, off
    LI32 $t0, 0xffffffff
    sw      $t0, \cell*4($s2)
    \insn   $s1, \cell*4+\off($s2)
.endm

    .text
    .set noreorder
    .globl main
main:
    PRINT "lwlr\n"
    la      $s0, src                /* bytes 00 11 22 33 44 55 66 77 */

    LCASE lwl, lwl_0, 0
    LCASE lwl, lwl_1, 1
    LCASE lwl, lwl_2, 2
    LCASE lwl, lwl_3, 3
    LCASE lwr, lwr_0, 0
    LCASE lwr, lwr_1, 1
    LCASE lwr, lwr_2, 2
    LCASE lwr, lwr_3, 3

    /* unaligned word loads: lwr X; lwl X+3 */
    lwr     $v0, 1($s0)
    lwl     $v0, 4($s0)
    PRINT_REG "ulw_1", $v0
    lwr     $v0, 2($s0)
    lwl     $v0, 5($s0)
    PRINT_REG "ulw_2", $v0
    lwl     $v0, 6($s0)             /* the other order gives the same */
    lwr     $v0, 3($s0)
    PRINT_REG "ulw_3", $v0
    lwr     $v0, 0($s0)
    lwl     $v0, 3($s0)
    PRINT_REG "ulw_0", $v0

    /* stores: each case starts from an all-ones word */
    LI32 $s1, 0x44332211
    la      $s2, cells
    SCASE swl, 0, 0
    SCASE swl, 1, 1
    SCASE swl, 2, 2
    SCASE swl, 3, 3
    SCASE swr, 4, 0
    SCASE swr, 5, 1
    SCASE swr, 6, 2
    SCASE swr, 7, 3
    DUMP_MEM cells, 32

    /* unaligned word store at pair+1: swr X; swl X+3 */
    la      $s3, pair
    swr     $s1, 1($s3)
    swl     $s1, 4($s3)
    /* and at pair+10 */
    swr     $s1, 10($s3)
    swl     $s1, 13($s3)
    DUMP_MEM pair, 16
    EXIT 0

    .data
    .balign 16
src:
    .byte 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77
cells:
    .space 32
pair:
    .word 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff
