/*
 * Assembly-side conventions for kvmpy test guests.
 *
 * Every macro below goes through the RT_CALL trampoline in crt0.S: it
 * preserves every register (GPRs, HI, LO) except k0, and must be used with
 * interrupts disabled (Status.IE=0, the state crt0 leaves). k0 and k1 belong
 * to the runtime (the exception entry clobbers them too).
 *
 * A guest written in assembly provides "main" and ends with EXIT.
 */
#ifndef GUEST_GUEST_H
#define GUEST_GUEST_H

#include "mips.h"

#ifdef __ASSEMBLER__

/* Call func(struct exc_frame *saved_regs, const u32 args[2]). */
.macro RT_CALL func, arg0, arg1
    .set push
    .set noreorder
    lui     $k0, %hi(__rt_area)
    addiu   $k0, $k0, %lo(__rt_area)
    sw      $ra, FR_REG(31)($k0)
    jal     __rt_call
    nop
    .word   \func
    .word   \arg0
    .word   \arg1
    .set pop
.endm

/* Print a string literal (no newline added): PRINT "abc\n" */
.macro PRINT str
    RT_CALL __rt_puts, .Lrt_str\@, 0
    .pushsection .rodata.guest_str, "a"
.Lrt_str\@:
    .asciz  "\str"
    .popsection
.endm

/* Print "<label>=<8 hex digits>\n" for one register: PRINT_REG "sum", $t0 */
.macro PRINT_REG label, reg
    .set push
    .set noreorder
    lui     $k0, %hi(__rt_area)
    addiu   $k0, $k0, %lo(__rt_area)
    sw      $ra, FR_REG(31)($k0)
    jal     __rt_call
    nop
    .word   __rt_print_reg
    or      $zero, \reg, $zero          /* never executed: encodes the register */
    .word   .Lrt_lbl\@
    .set pop
    .pushsection .rodata.guest_str, "a"
.Lrt_lbl\@:
    .asciz  "\label"
    .popsection
.endm

/* Print all GPRs, HI and LO (format: see README.md). */
.macro DUMP_REGS tag
    RT_CALL __rt_dump_regs, \tag, 0
.endm

/* Print nbytes (multiple of 4) at addr as words. */
.macro DUMP_MEM addr, nbytes
    RT_CALL __rt_dump_mem, \addr, \nbytes
.endm

/* Install a handler for an ExcCode; handler is a C-ABI function taking
 * struct exc_frame * (it may be written in assembly). */
.macro SET_HANDLER exccode, handler
    RT_CALL __rt_set_handler, \exccode, \handler
.endm

/* Default handler: 0 = print and skip (default), 1 = print and exit. */
.macro SET_DEFAULT_ACTION action
    RT_CALL __rt_set_default_action, \action, 0
.endm

.macro EXIT code
    RT_CALL __rt_exit, \code, 0
.endm

/* Load a 32-bit constant with exactly two instructions (lui + ori),
 * whatever its value, so that code layout never depends on the value. */
.macro LI32 reg, value
    lui     \reg, (((\value) >> 16) & 0xffff)
    ori     \reg, \reg, ((\value) & 0xffff)
.endm

#endif /* __ASSEMBLER__ */
#endif
