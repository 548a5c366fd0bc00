/*
 * The asm-guest conventions themselves: PRINT, PRINT_REG, DUMP_REGS and
 * DUMP_MEM, and that they preserve every register except k0.
 */
#include "guest.h"

    .text
    .set noreorder
    .globl main
main:
    PRINT "regdump\n"
    /* r_n = 0x0n0n0n0n-ish pattern: reg n holds n * 0x01010101 */
    .set noat
    LI32 $1, 0x01010101
    .set at
    LI32 $2, 0x02020202
    LI32 $3, 0x03030303
    LI32 $4, 0x04040404
    LI32 $5, 0x05050505
    LI32 $6, 0x06060606
    LI32 $7, 0x07070707
    LI32 $8, 0x08080808
    LI32 $9, 0x09090909
    LI32 $10, 0x0a0a0a0a
    LI32 $11, 0x0b0b0b0b
    LI32 $12, 0x0c0c0c0c
    LI32 $13, 0x0d0d0d0d
    LI32 $14, 0x0e0e0e0e
    LI32 $15, 0x0f0f0f0f
    LI32 $16, 0x10101010
    LI32 $17, 0x11111111
    LI32 $18, 0x12121212
    LI32 $19, 0x13131313
    LI32 $20, 0x14141414
    LI32 $21, 0x15151515
    LI32 $22, 0x16161616
    LI32 $23, 0x17171717
    LI32 $24, 0x18181818
    LI32 $25, 0x19191919
    LI32 $27, 0x1b1b1b1b
    LI32 $28, 0x1c1c1c1c
    LI32 $29, 0x1d1d1d1d
    LI32 $30, 0x1e1e1e1e
    LI32 $31, 0x1f1f1f1f
    LI32 $8, 0x0badf00d
    mthi    $8
    LI32 $8, 0xcafe0001
    mtlo    $8
    LI32 $8, 0x08080808
    DUMP_REGS 1
    PRINT_REG "t0", $t0
    PRINT_REG "ra", $ra
    PRINT "between\n"
    /* Everything must be unchanged after the macros above. */
    DUMP_REGS 2
    DUMP_MEM pattern, 24
    EXIT 0

    .data
    .balign 16
pattern:
    .word 0x00000000, 0xffffffff, 0x12345678, 0x9abcdef0
    .byte 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88
