/*
 * MMIO accesses (the UART) in branch delay slots: stores to THR and loads
 * of LSR in the slots of taken, not-taken and likely branches and of
 * jumps. A hypervisor that completes MMIO by emulating the access must
 * also finish the branch. Prints "ABCDF" (E sits in a nullified slot),
 * then the LSR values read in slots (masked to THRE|TEMT: an idle UART).
 */
#include "guest.h"

    .text
    .set noreorder
    .globl main
main:
    PRINT "mmio_bd\n"
    LI32 $s0, UART_BASE
    li      $t0, 1
    li      $t1, 2

    li      $a0, 'A'
    beq     $t0, $t0, 1f            /* taken */
    sb      $a0, UART_THR($s0)
    li      $v0, 0xbad
1:  li      $a0, 'B'
    jal     ret
    sb      $a0, UART_THR($s0)
    li      $a0, 'C'
    beq     $t0, $t1, 2f            /* not taken */
    sb      $a0, UART_THR($s0)
2:  li      $a0, 'D'
    beql    $t0, $t0, 3f            /* taken: slot runs */
    sb      $a0, UART_THR($s0)
3:  li      $a0, 'E'
    beql    $t0, $t1, 4f            /* not taken: slot nullified */
    sb      $a0, UART_THR($s0)
4:  li      $a0, 'F'
    la      $t9, 5f
    jr      $t9
    sb      $a0, UART_THR($s0)
5:  li      $a0, '\n'
    sb      $a0, UART_THR($s0)

    /* loads */
    li      $v0, 0
    bne     $t0, $t1, 6f            /* taken */
    lbu     $v0, UART_LSR($s0)
6:  andi    $v0, $v0, LSR_THRE | LSR_TEMT
    PRINT_REG "lsr_taken", $v0
    li      $v0, 0
    beq     $t0, $t1, 7f            /* not taken */
    lbu     $v0, UART_LSR($s0)
7:  andi    $v0, $v0, LSR_THRE | LSR_TEMT
    PRINT_REG "lsr_not_taken", $v0
    li      $v0, 0
    la      $t9, 8f
    jalr    $t9
    lbu     $v0, UART_LSR($s0)
8:  andi    $v0, $v0, LSR_THRE | LSR_TEMT
    PRINT_REG "lsr_jalr", $v0
    li      $v1, 0x77
    beql    $t0, $t1, 9f            /* not taken: the load is nullified */
    lbu     $v1, UART_LSR($s0)
9:  PRINT_REG "lsr_nullified", $v1
    EXIT 0

ret:
    jr      $ra
    nop
