# logic: and or xor nand nor eqv andc orc (and record forms), the immediate
# logical forms, extsb extsh cntlzw; CR after each
	.include "ppc440.inc"

	.macro PAIRS insn
	OP3 \insn, 0x00000000, 0x00000000
	OP3 \insn, 0xf0f0f0f0, 0x0ff00ff0
	OP3 \insn, 0x80000001, 0xffffffff
	OP3 \insn, 0x12345678, 0x87654321
	.endm

# RA = insn(RS, imm): RS is the second operand register
	.macro OPL insn, s, imm
	LI32 r4, \s
	li r6, 0
	mtcr r6
	\insn r6, r4, \imm
	mfcr r7
	PR "\insn", r6
	PR cr, r7
	.endm

	.macro ONE insn, s
	LI32 r4, \s
	li r6, 0
	mtcr r6
	\insn r6, r4
	mfcr r7
	PR "\insn", r6
	PR cr, r7
	.endm

	MAIN_BEGIN
	.irp op, and, and., or, or., xor, xor., nand, nand., nor, nor., eqv, eqv., andc, andc., orc, orc.
	PAIRS \op
	.endr
	.irp op, andi., andis., ori, oris, xori, xoris
	OPL \op, 0x00000000, 0x0000
	OPL \op, 0xf0f0f0f0, 0x8001
	OPL \op, 0x12345678, 0xffff
	.endr
	.irp op, extsb, extsb., extsh, extsh., cntlzw, cntlzw.
	ONE \op, 0x00000000
	ONE \op, 0x00000080
	ONE \op, 0x0000807f
	ONE \op, 0x80000000
	ONE \op, 0x00010000
	ONE \op, 0x00000001
	ONE \op, 0xffffffff
	.endr
	# mr and not are or/nor aliases; a record form with SO set copies it to CR0
	li r6, 0
	mtcr r6
	LI32 r6, 0x80000000
	mtxer r6
	LI32 r4, 0x00008000
	or. r6, r4, r4
	mfcr r7
	PR "or.so", r7
	MAIN_END
