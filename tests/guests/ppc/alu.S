# alu: add/subtract families in all four forms (plain, ".", "o", "o."), with
# carry in and out, and the immediate forms; CR and XER after each
	.include "ppc440.inc"

	.macro PAIRS insn, xer=0
	OP3 \insn, 0x00000005, 0x00000003, \xer
	OP3 \insn, 0x7fffffff, 0x00000001, \xer
	OP3 \insn, 0xffffffff, 0x00000001, \xer
	OP3 \insn, 0x80000000, 0x80000000, \xer
	OP3 \insn, 0x00000000, 0x00000000, \xer
	OP3 \insn, 0x80000000, 0x00000001, \xer
	OP3 \insn, 0x12345678, 0xfedcba98, \xer
	.endm

	.macro ONES insn, xer=0
	OP2 \insn, 0x00000000, \xer
	OP2 \insn, 0x7fffffff, \xer
	OP2 \insn, 0x80000000, \xer
	OP2 \insn, 0xffffffff, \xer
	OP2 \insn, 0x00001234, \xer
	.endm

	MAIN_BEGIN
	.irp op, add, add., addo, addo., addc, addc., addco, addco., subf, subf., subfo, subfo., subfc, subfc., subfco, subfco.
	PAIRS \op
	.endr
	.irp op, adde, adde., addeo, addeo., subfe, subfe., subfeo, subfeo.
	PAIRS \op, 0
	PAIRS \op, 0x20000000
	.endr
	.irp op, neg, neg., nego, nego.
	ONES \op
	.endr
	.irp op, addze, addzeo., addme, addmeo., subfze, subfzeo., subfme, subfmeo.
	ONES \op, 0
	ONES \op, 0x20000000
	.endr
	# XER[SO] is sticky: set, then an add without overflow keeps it, and CR0[SO] copies it
	OP3 addo., 1, 2, 0x80000000
	OP3 add., 1, 2, 0xc0000000
	.irp op, addi, addic, addic., subfic, mulli
	OPI \op, 0x00000005, 3
	OPI \op, 0x7fffffff, 1
	OPI \op, 0xffffffff, 1
	OPI \op, 0x00000000, -1
	OPI \op, 0x80000000, -32768
	OPI \op, 0x12345678, 32767
	.endr
	LI32 r4, 0x11112222
	addis r6, r4, 0x7fff
	PR addis, r6
	addis r6, 0, -2
	PR addis0, r6
	addi r6, 0, -2
	PR addi0, r6
	MAIN_END
