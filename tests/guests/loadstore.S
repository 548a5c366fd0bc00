/*
 * Aligned loads and stores of every width: lb lbu lh lhu lw sb sh sw;
 * sign/zero extension, little-endian byte order, negative offsets,
 * loads into $zero, load-use without a gap, kseg0/kseg1 aliasing.
 */
#include "guest.h"

    .text
    .set noreorder
    .globl main
main:
    PRINT "loadstore\n"
    la      $s0, src

    lb      $v0, 0($s0)
    PRINT_REG "lb_80", $v0
    lbu     $v0, 0($s0)
    PRINT_REG "lbu_80", $v0
    lb      $v0, 1($s0)
    PRINT_REG "lb_7f", $v0
    lbu     $v0, 2($s0)
    PRINT_REG "lbu_ff", $v0
    lh      $v0, 0($s0)
    PRINT_REG "lh_0", $v0
    lh      $v0, 2($s0)
    PRINT_REG "lh_2", $v0
    lh      $v0, 6($s0)
    PRINT_REG "lh_6", $v0
    lhu     $v0, 6($s0)
    PRINT_REG "lhu_6", $v0
    lw      $v0, 0($s0)
    PRINT_REG "lw_0", $v0
    lw      $v0, 8($s0)
    PRINT_REG "lw_8", $v0
    addiu   $s1, $s0, 12
    lw      $v0, -4($s1)
    PRINT_REG "lw_neg_off", $v0
    lbu     $v0, -9($s1)
    PRINT_REG "lbu_neg_off", $v0

    /* A load into $zero is discarded. */
    lw      $zero, 8($s0)
    PRINT_REG "lw_zero", $zero

    /* Load-use with no instruction in between (interlocked). */
    lw      $t0, 8($s0)
    addu    $v0, $t0, $t0
    PRINT_REG "load_use", $v0

    /* Stores into dst (initially zero). */
    la      $s2, dst
    li      $t0, 0xab
    sb      $t0, 1($s2)
    li      $t0, 0xbeef
    sh      $t0, 2($s2)
    LI32 $t0, 0xcafebabe
    sw      $t0, 4($s2)
    LI32 $t0, 0x12345678
    sh      $t0, 8($s2)             /* stores the low half only */
    sb      $t0, 11($s2)            /* stores 0x78 */
    li      $t0, 0x1ff
    sb      $t0, 10($s2)            /* stores 0xff */
    LI32 $t0, 0x01020304
    sw      $t0, 12($s2)
    li      $t0, 0x55
    sb      $t0, 13($s2)            /* overwrite one byte of a word */
    DUMP_MEM dst, 16

    /* Byte reads back the stored values (little-endian layout). */
    lbu     $v0, 4($s2)
    PRINT_REG "lbu_after_sw", $v0
    lhu     $v0, 6($s2)
    PRINT_REG "lhu_after_sw", $v0

    /* kseg1 (uncached) and kseg0 alias the same physical memory. */
    la      $t1, alias
    LI32 $t0, 0x600dcafe
    sw      $t0, 0($t1)             /* through kseg0 */
    LI32 $t2, 0x20000000
    or      $t3, $t1, $t2           /* same PA in kseg1 */
    lw      $v0, 0($t3)
    PRINT_REG "kseg1_read", $v0
    LI32 $t0, 0x0bad0bad
    sw      $t0, 0($t3)             /* through kseg1 */
    lw      $v0, 0($t1)
    PRINT_REG "kseg0_read", $v0
    EXIT 0

    .data
    .balign 16
src:
    .byte 0x80, 0x7f, 0xff, 0x01, 0x34, 0x12, 0x00, 0x80
    .byte 0x78, 0x56, 0x34, 0x12, 0xef, 0xbe, 0xad, 0xde
dst:
    .word 0, 0, 0, 0
alias:
    .word 0
