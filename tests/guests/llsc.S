/*
 * Load linked / store conditional: a successful pair, an atomic increment
 * loop, an sc that fails because an exception return (eret) cleared
 * LLbit in between, and sc's that succeed although privileged
 * instructions (CP0 reads and writes, tlbp, di/ei, cache) ran between ll and sc, as
 * in Linux's TLB handlers: no eret ran, so LLbit stands. Under a
 * trap-and-emulate hypervisor every one of those instructions traps; the
 * hypervisor must return without clearing LLbit or Linux would livelock.
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

    /* privileged instructions between ll and sc leave LLbit alone */
    ll      $t1, 0($s0)
    mfc0    $t2, C0_STATUS
    mtc0    $t2, C0_STATUS
    mfc0    $t3, C0_ENTRYHI
    tlbp
    di
    ei
    mtc0    $t2, C0_STATUS
    cache   0x15, 0($s0)
    li      $t1, 0xab
    sc      $t1, 0($s0)
    PRINT_REG "sc_over_cp0_flag", $t1
    lw      $v0, 0($s0)
    PRINT_REG "sc_over_cp0_mem", $v0

    /* and the same from a loop that retries on failure (it would never end otherwise) */
    li      $s1, 100
2:  ll      $t1, 0($s0)
    tlbp
    addiu   $t1, $t1, 1
    sc      $t1, 0($s0)
    beqz    $t1, 2b
    nop
    addiu   $s1, $s1, -1
    bnez    $s1, 2b
    nop
    lw      $v0, 0($s0)
    PRINT_REG "sc_loop_over_tlbp", $v0
    EXIT 0

    .data
    .balign 4
word:
    .word 0
