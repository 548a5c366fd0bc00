/*
 * crt0 for kvmpy test guests: entry, exception vectors, the exception
 * entry/exit path and the RT_CALL trampoline used by guest.h's macros.
 *
 * Entry state: we assume nothing beyond "kernel mode, running at _start
 * from kseg0". QEMU's Malta -kernel pseudo-bootloader enters with Status =
 * 0x00400000 (BEV=1, ERL=0, EXL=0, IE=0), a0..a3 = argc, argv, envp,
 * memsize, sp below the boot environment and junk in other registers
 * (k1...); a real YAMON, or kvmpy's loader, may leave ERL=1 too. crt0
 * rewrites Status, Cause, EBase and the TLB control registers, clears
 * every GPR and HI/LO, zeroes .bss, installs the vectors, initialises the
 * UART and calls main(); main's return value goes to exit().
 */
#include "mips.h"

    .set noreorder
    .set noat

    .section .text.start, "ax"
    .globl _start
    .ent _start
_start:
    /* Kernel mode, BEV=0, ERL=0, EXL=0, interrupts off, all IM bits 0.
     * CU0=0 as well: kernel mode has CP0 access regardless. */
    mtc0    $zero, C0_STATUS
    ehb
    /* Cause: IV=0 (interrupts use the general vector), DC=0 (Count runs),
     * software interrupt bits clear. */
    mtc0    $zero, C0_CAUSE
    /* Exception base 0x80000000 (vectors at +0x000 refill, +0x180 general). */
    lui     $t0, 0x8000
    mtc0    $t0, C0_EBASE
    /* Clean TLB-related state; the TLB itself is left to the guests. */
    mtc0    $zero, C0_WIRED
    mtc0    $zero, C0_PAGEMASK
    mtc0    $zero, C0_ENTRYHI
    mtc0    $zero, C0_CONTEXT
    /* Writing Compare clears any pending timer interrupt (Cause.TI). */
    mtc0    $zero, C0_COMPARE
    ehb

    /* Forget everything the boot path left in registers, so that register
     * dumps do not depend on the bootloader (QEMU's leaves a0..a3, k1...). */
    .irp r, 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,30,31
    move    $\r, $zero
    .endr
    mthi    $zero
    mtlo    $zero

    la      $sp, __stack_top
    move    $gp, $zero
    move    $fp, $zero

    /* Zero .bss (word aligned by link.ld). */
    la      $t0, __bss_start
    la      $t1, __bss_end
1:  beq     $t0, $t1, 2f
    nop
    sw      $zero, 0($t0)
    b       1b
    addiu   $t0, $t0, 4
2:
    /* Install the vector stubs. */
    la      $a0, __vec_refill_stub
    li      $a1, 0x80000000
    jal     __copy_stub
    nop
    la      $a0, __vec_general_stub
    li      $a1, 0x80000180
    jal     __copy_stub
    nop
    la      $a0, __vec_general_stub     /* interrupt vector if Cause.IV=1 */
    li      $a1, 0x80000200
    jal     __copy_stub
    nop
    sync
    /* Make the new code visible to instruction fetch. */
    li      $t0, 0x80000000
    synci   0x000($t0)
    synci   0x180($t0)
    synci   0x200($t0)
    sync
    la      $t0, 3f
    jr.hb   $t0
    nop
3:
    jal     uart_init
    nop
    jal     main
    nop
    jal     exit
    move    $a0, $v0
    .end _start

/* Copy one 4-word vector stub from a0 to a1. */
__copy_stub:
    lw      $t0, 0($a0)
    lw      $t1, 4($a0)
    lw      $t2, 8($a0)
    lw      $t3, 12($a0)
    sw      $t0, 0($a1)
    sw      $t1, 4($a1)
    sw      $t2, 8($a1)
    jr      $ra
    sw      $t3, 12($a1)

/* Vector stubs: position independent (absolute jump through k0); k1 tells
 * the common entry which vector was taken. */
__vec_refill_stub:
    lui     $k0, %hi(__exc_common)
    addiu   $k0, $k0, %lo(__exc_common)
    jr      $k0
    li      $k1, VEC_REFILL
__vec_general_stub:
    lui     $k0, %hi(__exc_common)
    addiu   $k0, $k0, %lo(__exc_common)
    jr      $k0
    li      $k1, VEC_GENERAL

/*
 * Common exception entry: save everything into __exc_frame, call
 * exc_dispatch(frame) on the exception stack, restore (the handler may have
 * changed any saved register, EPC or Status) and eret. Not reentrant.
 */
    .globl __exc_common
__exc_common:
    lui     $k0, %hi(__exc_frame)
    addiu   $k0, $k0, %lo(__exc_frame)
    sw      $k1, FR_VECTOR($k0)
    sw      $zero, FR_REG(0)($k0)
    sw      $1, FR_REG(1)($k0)
    sw      $2, FR_REG(2)($k0)
    sw      $3, FR_REG(3)($k0)
    sw      $4, FR_REG(4)($k0)
    sw      $5, FR_REG(5)($k0)
    sw      $6, FR_REG(6)($k0)
    sw      $7, FR_REG(7)($k0)
    sw      $8, FR_REG(8)($k0)
    sw      $9, FR_REG(9)($k0)
    sw      $10, FR_REG(10)($k0)
    sw      $11, FR_REG(11)($k0)
    sw      $12, FR_REG(12)($k0)
    sw      $13, FR_REG(13)($k0)
    sw      $14, FR_REG(14)($k0)
    sw      $15, FR_REG(15)($k0)
    sw      $16, FR_REG(16)($k0)
    sw      $17, FR_REG(17)($k0)
    sw      $18, FR_REG(18)($k0)
    sw      $19, FR_REG(19)($k0)
    sw      $20, FR_REG(20)($k0)
    sw      $21, FR_REG(21)($k0)
    sw      $22, FR_REG(22)($k0)
    sw      $23, FR_REG(23)($k0)
    sw      $24, FR_REG(24)($k0)
    sw      $25, FR_REG(25)($k0)
    sw      $zero, FR_REG(26)($k0)      /* k0/k1 belong to the runtime */
    sw      $zero, FR_REG(27)($k0)
    sw      $28, FR_REG(28)($k0)
    sw      $29, FR_REG(29)($k0)
    sw      $30, FR_REG(30)($k0)
    sw      $31, FR_REG(31)($k0)
    mfhi    $k1
    sw      $k1, FR_HI($k0)
    mflo    $k1
    sw      $k1, FR_LO($k0)
    mfc0    $k1, C0_EPC
    sw      $k1, FR_EPC($k0)
    mfc0    $k1, C0_CAUSE
    sw      $k1, FR_CAUSE($k0)
    mfc0    $k1, C0_STATUS
    sw      $k1, FR_STATUS($k0)
    mfc0    $k1, C0_BADVADDR
    sw      $k1, FR_BADVADDR($k0)

    la      $sp, __exc_stack_top
    jal     exc_dispatch
    move    $a0, $k0

    lui     $k0, %hi(__exc_frame)
    addiu   $k0, $k0, %lo(__exc_frame)
    lw      $k1, FR_HI($k0)
    mthi    $k1
    lw      $k1, FR_LO($k0)
    mtlo    $k1
    lw      $k1, FR_EPC($k0)
    mtc0    $k1, C0_EPC
    lw      $k1, FR_STATUS($k0)
    /* Keep EXL set until eret whatever the handler stored. */
    ori     $k1, $k1, ST_EXL
    mtc0    $k1, C0_STATUS
    lw      $1, FR_REG(1)($k0)
    lw      $2, FR_REG(2)($k0)
    lw      $3, FR_REG(3)($k0)
    lw      $4, FR_REG(4)($k0)
    lw      $5, FR_REG(5)($k0)
    lw      $6, FR_REG(6)($k0)
    lw      $7, FR_REG(7)($k0)
    lw      $8, FR_REG(8)($k0)
    lw      $9, FR_REG(9)($k0)
    lw      $10, FR_REG(10)($k0)
    lw      $11, FR_REG(11)($k0)
    lw      $12, FR_REG(12)($k0)
    lw      $13, FR_REG(13)($k0)
    lw      $14, FR_REG(14)($k0)
    lw      $15, FR_REG(15)($k0)
    lw      $16, FR_REG(16)($k0)
    lw      $17, FR_REG(17)($k0)
    lw      $18, FR_REG(18)($k0)
    lw      $19, FR_REG(19)($k0)
    lw      $20, FR_REG(20)($k0)
    lw      $21, FR_REG(21)($k0)
    lw      $22, FR_REG(22)($k0)
    lw      $23, FR_REG(23)($k0)
    lw      $24, FR_REG(24)($k0)
    lw      $25, FR_REG(25)($k0)
    lw      $28, FR_REG(28)($k0)
    lw      $29, FR_REG(29)($k0)
    lw      $30, FR_REG(30)($k0)
    lw      $31, FR_REG(31)($k0)
    ehb
    eret

/*
 * RT_CALL trampoline (see guest.h). On entry: k0 = &__rt_area, the caller's
 * ra already stored in it, ra = address of the argument block that follows
 * the call site:  .word func, arg0, arg1. Saves every register, calls
 * func(&__rt_area, args) on the runtime stack, restores every register
 * (including ra, but not k0) and returns to the word after the block.
 * Must not be used with interrupts enabled (an interrupt clobbers k0).
 */
    .globl __rt_call
__rt_call:
    sw      $zero, FR_REG(0)($k0)
    sw      $1, FR_REG(1)($k0)
    sw      $2, FR_REG(2)($k0)
    sw      $3, FR_REG(3)($k0)
    sw      $4, FR_REG(4)($k0)
    sw      $5, FR_REG(5)($k0)
    sw      $6, FR_REG(6)($k0)
    sw      $7, FR_REG(7)($k0)
    sw      $8, FR_REG(8)($k0)
    sw      $9, FR_REG(9)($k0)
    sw      $10, FR_REG(10)($k0)
    sw      $11, FR_REG(11)($k0)
    sw      $12, FR_REG(12)($k0)
    sw      $13, FR_REG(13)($k0)
    sw      $14, FR_REG(14)($k0)
    sw      $15, FR_REG(15)($k0)
    sw      $16, FR_REG(16)($k0)
    sw      $17, FR_REG(17)($k0)
    sw      $18, FR_REG(18)($k0)
    sw      $19, FR_REG(19)($k0)
    sw      $20, FR_REG(20)($k0)
    sw      $21, FR_REG(21)($k0)
    sw      $22, FR_REG(22)($k0)
    sw      $23, FR_REG(23)($k0)
    sw      $24, FR_REG(24)($k0)
    sw      $25, FR_REG(25)($k0)
    sw      $zero, FR_REG(26)($k0)      /* k0 is the macro's scratch */
    sw      $27, FR_REG(27)($k0)
    sw      $28, FR_REG(28)($k0)
    sw      $29, FR_REG(29)($k0)
    sw      $30, FR_REG(30)($k0)
    /* FR_REG(31) was stored by the macro */
    mfhi    $t0
    sw      $t0, FR_HI($k0)
    mflo    $t0
    sw      $t0, FR_LO($k0)
    sw      $ra, FR_EPC($k0)            /* argument block address */

    la      $sp, __rt_stack_top
    lw      $t9, 0($ra)
    addiu   $a1, $ra, 4                 /* (jalr's link is visible in its slot) */
    jalr    $t9
    move    $a0, $k0

    lui     $k0, %hi(__rt_area)
    addiu   $k0, $k0, %lo(__rt_area)
    lw      $t0, FR_HI($k0)
    mthi    $t0
    lw      $t0, FR_LO($k0)
    mtlo    $t0
    lw      $1, FR_REG(1)($k0)
    lw      $2, FR_REG(2)($k0)
    lw      $3, FR_REG(3)($k0)
    lw      $4, FR_REG(4)($k0)
    lw      $5, FR_REG(5)($k0)
    lw      $6, FR_REG(6)($k0)
    lw      $7, FR_REG(7)($k0)
    lw      $8, FR_REG(8)($k0)
    lw      $9, FR_REG(9)($k0)
    lw      $10, FR_REG(10)($k0)
    lw      $11, FR_REG(11)($k0)
    lw      $12, FR_REG(12)($k0)
    lw      $13, FR_REG(13)($k0)
    lw      $14, FR_REG(14)($k0)
    lw      $15, FR_REG(15)($k0)
    lw      $16, FR_REG(16)($k0)
    lw      $17, FR_REG(17)($k0)
    lw      $18, FR_REG(18)($k0)
    lw      $19, FR_REG(19)($k0)
    lw      $20, FR_REG(20)($k0)
    lw      $21, FR_REG(21)($k0)
    lw      $22, FR_REG(22)($k0)
    lw      $23, FR_REG(23)($k0)
    lw      $24, FR_REG(24)($k0)
    lw      $25, FR_REG(25)($k0)
    lw      $27, FR_REG(27)($k0)
    lw      $28, FR_REG(28)($k0)
    lw      $29, FR_REG(29)($k0)
    lw      $30, FR_REG(30)($k0)
    lw      $31, FR_REG(31)($k0)
    lw      $k0, FR_EPC($k0)
    addiu   $k0, $k0, 12                /* skip func, arg0, arg1 */
    jr      $k0
    nop

/*
 * Probes: one access at a known instruction. exc_dispatch recognises an
 * exception whose EPC is one of the __probe_insn_* labels, records the
 * ExcCode in __probe_result and resumes after the access.
 *   u32 probe_lw(u32 addr, u32 *out)   u32 probe_sw(u32 addr, u32 val)
 */
#define PROBE_LOAD(name, insn)          \
    .globl name;                        \
    .globl __probe_insn_##name;         \
name:                                   \
    lui     $t0, %hi(__probe_result);   \
    sw      $zero, %lo(__probe_result)($t0); \
__probe_insn_##name:                    \
    insn    $t1, 0($a0);                \
    lw      $v0, %lo(__probe_result)($t0); \
    bnez    $v0, 1f;                    \
    nop;                                \
    sw      $t1, 0($a1);                \
1:  jr      $ra;                        \
    nop

#define PROBE_STORE(name, insn)         \
    .globl name;                        \
    .globl __probe_insn_##name;         \
name:                                   \
    lui     $t0, %hi(__probe_result);   \
    sw      $zero, %lo(__probe_result)($t0); \
__probe_insn_##name:                    \
    insn    $a1, 0($a0);                \
    lw      $v0, %lo(__probe_result)($t0); \
    jr      $ra;                        \
    nop

    .text
    PROBE_LOAD(probe_lw, lw)
    PROBE_LOAD(probe_lh, lh)
    PROBE_LOAD(probe_lb, lb)
    PROBE_STORE(probe_sw, sw)
    PROBE_STORE(probe_sh, sh)
    PROBE_STORE(probe_sb, sb)

    .bss
    .balign 8
    .globl __exc_frame
__exc_frame:
    .space FR_SIZE
    .globl __rt_area
__rt_area:
    .space FR_SIZE
    .globl __probe_result
__probe_result:
    .space 4
    .balign 16
__exc_stack:
    .space 8192
__exc_stack_top:
    .space 16
__rt_stack:
    .space 8192
__rt_stack_top:
    .space 16
