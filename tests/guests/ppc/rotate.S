# rotate: rlwinm rlwimi rlwnm (masks that wrap, record forms), slw srw sraw
# srawi with shift amounts 0, 31, 32, 63 and XER[CA]
	.include "ppc440.inc"

	.macro RLW insn, s, a, sh, mb, me
	LI32 r4, \s
	LI32 r6, \a
	li r7, 0
	mtcr r7
	\insn r6, r4, \sh, \mb, \me
	mfcr r7
	PR "\insn", r6
	PR cr, r7
	.endm

	.macro RLWN insn, s, a, n, mb, me
	LI32 r4, \s
	LI32 r6, \a
	li r5, \n
	li r7, 0
	mtcr r7
	\insn r6, r4, r5, \mb, \me
	mfcr r7
	PR "\insn", r6
	PR cr, r7
	.endm

	.macro SHIFTS insn
	.irp n, 0, 1, 4, 31, 32, 33, 63, 64
	OP3 \insn, 0x80000f01, \n, 0x20000000
	OP3 \insn, 0x7f00000f, \n
	.endr
	.endm

	MAIN_BEGIN
	.irp op, rlwinm, rlwinm., rlwimi, rlwimi.
	RLW \op, 0x12345678, 0xffffffff, 0, 0, 31
	RLW \op, 0x12345678, 0xffffffff, 4, 0, 27
	RLW \op, 0x12345678, 0x00000000, 28, 4, 31
	RLW \op, 0x80000001, 0xaaaaaaaa, 1, 30, 1
	RLW \op, 0x80000001, 0x55555555, 31, 16, 15
	RLW \op, 0xf0000000, 0x00000000, 8, 8, 8
	RLW \op, 0x00000000, 0x12345678, 3, 0, 31
	.endr
	.irp op, rlwnm, rlwnm.
	RLWN \op, 0x12345678, 0, 0, 0, 31
	RLWN \op, 0x12345678, 0, 36, 0, 31
	RLWN \op, 0x80000001, 0, 17, 28, 3
	.endr
	.irp op, slw, slw., srw, srw., sraw, sraw.
	SHIFTS \op
	.endr
	.irp n, 0, 1, 4, 31
	OPI srawi, 0x80000f01, \n, 0x20000000
	OPI srawi., 0x80000000, \n
	OPI srawi, 0x7f00000f, \n, 0x20000000
	.endr
	MAIN_END
