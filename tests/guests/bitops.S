/* Release 2 bit-field and byte ops: ext ins seb seh wsbh. */
#include "guest.h"

    .text
    .set noreorder
    .globl main
main:
    PRINT "bitops\n"
    LI32 $t0, 0x12345678

    ext     $v0, $t0, 4, 8
    PRINT_REG "ext_4_8", $v0
    ext     $v0, $t0, 0, 32
    PRINT_REG "ext_0_32", $v0
    ext     $v0, $t0, 28, 4
    PRINT_REG "ext_28_4", $v0
    ext     $v0, $t0, 31, 1
    PRINT_REG "ext_31_1", $v0
    ext     $v0, $t0, 16, 16
    PRINT_REG "ext_16_16", $v0
    ext     $v0, $t0, 3, 1
    PRINT_REG "ext_3_1", $v0
    LI32 $t1, 0x80000000
    ext     $v0, $t1, 31, 1
    PRINT_REG "ext_min_31_1", $v0

    LI32 $v0, 0xffffffff
    ins     $v0, $t0, 8, 8
    PRINT_REG "ins_8_8", $v0
    move    $v0, $zero
    ins     $v0, $t0, 28, 4
    PRINT_REG "ins_28_4", $v0
    LI32 $v0, 0xaaaaaaaa
    ins     $v0, $t0, 0, 32
    PRINT_REG "ins_0_32", $v0
    LI32 $v0, 0xaaaaaaaa
    ins     $v0, $zero, 4, 20
    PRINT_REG "ins_clear", $v0
    LI32 $v0, 0x00000000
    li      $t2, 0xffff
    ins     $v0, $t2, 31, 1
    PRINT_REG "ins_31_1", $v0

    LI32 $t1, 0x12345680
    seb     $v0, $t1
    PRINT_REG "seb_80", $v0
    LI32 $t1, 0x1234567f
    seb     $v0, $t1
    PRINT_REG "seb_7f", $v0
    LI32 $t1, 0x12348000
    seh     $v0, $t1
    PRINT_REG "seh_8000", $v0
    LI32 $t1, 0xffff7fff
    seh     $v0, $t1
    PRINT_REG "seh_7fff", $v0

    LI32 $t1, 0x11223344
    wsbh    $v0, $t1
    PRINT_REG "wsbh_11223344", $v0
    wsbh    $v0, $t0
    PRINT_REG "wsbh_12345678", $v0
    /* wsbh + rotr 16 = full byte swap */
    wsbh    $v0, $t1
    rotr    $v0, $v0, 16
    PRINT_REG "bswap", $v0
    EXIT 0
