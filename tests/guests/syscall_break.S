/*
 * syscall and break: the default handler (EXC lines), then a custom
 * handler that decodes the 20-bit code field of the instruction at EPC,
 * returns a value in v0 (as a system call would) and resumes after it.
 */
#include "guest.h"

    .text
    .set noreorder
    .globl main
main:
    PRINT "syscall_break\n"
    .globl sb_sys0
sb_sys0:
    syscall
    .globl sb_brk0
sb_brk0:
    break

    SET_HANDLER EXC_SYS, code_handler
    SET_HANDLER EXC_BP, code_handler
    li      $v0, 0
    syscall 0x12345
    PRINT_REG "syscall_ret", $v0
    syscall
    PRINT_REG "syscall0_ret", $v0
    break   7
    PRINT_REG "break_ret", $v0
    break   0x3ff, 0x3ff
    PRINT_REG "break2_ret", $v0
    EXIT 0

/* void code_handler(struct exc_frame *f): C ABI, on the exception stack */
code_handler:
    addiu   $sp, $sp, -24
    sw      $ra, 20($sp)
    sw      $s0, 16($sp)
    move    $s0, $a0
    lw      $t0, FR_EPC($s0)
    lw      $t1, 0($t0)             /* the instruction */
    ext     $a2, $t1, 6, 20         /* code field, bits 25..6 */
    lw      $a1, FR_CAUSE($s0)
    ext     $a1, $a1, 2, 5          /* ExcCode */
    la      $a0, fmt
    jal     kprintf
    nop
    lw      $t0, FR_EPC($s0)
    lw      $t1, 0($t0)
    ext     $t1, $t1, 6, 20
    /* v0 = 0x100000 | code */
    lui     $t2, 0x10
    or      $t1, $t1, $t2
    sw      $t1, FR_REG(2)($s0)
    addiu   $t0, $t0, 4
    sw      $t0, FR_EPC($s0)
    lw      $s0, 16($sp)
    lw      $ra, 20($sp)
    jr      $ra
    addiu   $sp, $sp, 24

    .section .rodata
fmt:
    .asciz "handler: exccode=%u code=%05x\n"
