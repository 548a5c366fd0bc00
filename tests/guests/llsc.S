/*
 * Load linked / store conditional: a successful pair, an atomic increment
 * loop, and an sc that fails because an exception return (eret) cleared
 * LLbit in between.
 */
#include "guest.h"

    .text
    .set noreorder
    .globl main
main:
    PRINT "llsc\n"
    la      $s0, word
    li      $t0, 5
    sw      $t0, 0($s0)

    ll      $t1, 0($s0)
    addiu   $t1, $t1, 1
    sc      $t1, 0($s0)
    PRINT_REG "sc_ok_flag", $t1
    lw      $v0, 0($s0)
    PRINT_REG "sc_ok_mem", $v0

    /* atomic add of 1, three times */
    li      $s1, 3
1:  ll      $t1, 0($s0)
    addiu   $t1, $t1, 1
    sc      $t1, 0($s0)
    beqz    $t1, 1b
    nop
    addiu   $s1, $s1, -1
    bnez    $s1, 1b
    nop
    lw      $v0, 0($s0)
    PRINT_REG "atomic_inc", $v0

    /* ll; exception + eret (syscall, handled by the default handler,
     * which prints one EXC line and skips it); sc must fail. */
    ll      $t1, 0($s0)
    li      $t1, 0x77
    .globl llsc_syscall
llsc_syscall:
    syscall
    sc      $t1, 0($s0)
    PRINT_REG "sc_after_eret_flag", $t1
    lw      $v0, 0($s0)
    PRINT_REG "sc_after_eret_mem", $v0

    /* a new ll/sc pair works again */
    ll      $t1, 0($s0)
    li      $t1, 0x99
    sc      $t1, 0($s0)
    PRINT_REG "sc_again_flag", $t1
    lw      $v0, 0($s0)
    PRINT_REG "sc_again_mem", $v0
    EXIT 0

    .data
    .balign 4
word:
    .word 0
