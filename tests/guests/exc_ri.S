/*
 * Reserved Instruction and Coprocessor Unusable:
 *  - 0x0000003f: SPECIAL function 0x3f (dsra32), MIPS64-only -> RI
 *  - 0xdc000000: opcode 0x37 (ld), MIPS64-only -> RI
 *  - mfc1 with Status.CU1=0 -> CpU, Cause.CE=1
 * A COP2 instruction with Status.CU2=0 should raise CpU with CE=2
 * (MIPS32 vol. III), but QEMU 7.2 decodes the COP2 major opcode only for
 * Loongson and raises RI elsewhere, so it is not tested here.
 * The default handler prints each EXC line and skips the instruction.
 */
#include "guest.h"

.macro RCASE name, word
    PRINT "\name\n"
    .globl ri_\name
ri_\name:
    .word   \word
.endm

    .text
    .set noreorder
    .globl main
main:
    PRINT "exc_ri\n"
    LI32 $t0, 0x5555aaaa
    RCASE dsra32, 0x0000003f
    RCASE ld, 0xdc000000
    RCASE mfc1, 0x44080000          /* mfc1 $t0, $f0 */
    PRINT_REG "t0_unchanged", $t0
    EXIT 0
