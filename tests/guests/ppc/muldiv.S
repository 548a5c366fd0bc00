# muldiv: mullw(o)(.) mulhw(.) mulhwu(.) divw(o)(.) divwu(o)(.); overflow
# cases only print XER and the defined part of CR (results are undefined)
	.include "ppc440.inc"

	.macro PAIRS insn
	OP3 \insn, 0x00000007, 0x00000003
	OP3 \insn, 0xfffffff9, 0x00000003
	OP3 \insn, 0x7fffffff, 0x7fffffff
	OP3 \insn, 0x80000000, 0xffffffff
	OP3 \insn, 0x00010000, 0x00010000
	OP3 \insn, 0x12345678, 0x9abcdef0
	OP3 \insn, 0xffffffff, 0xffffffff
	.endm

	.macro DIVS insn
	OP3 \insn, 0x00000007, 0x00000003
	OP3 \insn, 0xfffffff9, 0x00000003
	OP3 \insn, 0x00000007, 0xfffffffd
	OP3 \insn, 0x7fffffff, 0x00000002
	OP3 \insn, 0x12345678, 0x00000100
	OP3 \insn, 0x00000000, 0x00000005
	.endm

# division by zero or 0x80000000 / -1: only XER (OV, SO) is defined
	.macro DIVOV insn, a, b
	LI32 r4, \a
	LI32 r5, \b
	li r6, 0
	mtxer r6
	\insn r6, r4, r5
	mfxer r8
	PR "\insn", r8
	.endm

	MAIN_BEGIN
	.irp op, mullw, mullw., mullwo, mullwo., mulhw, mulhw., mulhwu, mulhwu.
	PAIRS \op
	.endr
	.irp op, divw, divw., divwo, divwo., divwu, divwu., divwuo, divwuo.
	DIVS \op
	.endr
	DIVOV divwo, 5, 0
	DIVOV divwo, 0x80000000, 0xffffffff
	DIVOV divwuo, 5, 0
	DIVOV divwuo, 0x80000000, 0xffffffff
	MAIN_END
