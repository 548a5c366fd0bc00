# compare: cmp cmpi cmpl cmpli into several CR fields (with XER[SO]); the CR
# logical instructions; mcrf, mfcr, mtcrf, mcrxr
	.include "ppc440.inc"

	.macro CMPS a, b
	LI32 r4, \a
	LI32 r5, \b
	li r6, 0
	mtcr r6
	cmpw cr0, r4, r5
	cmplw cr3, r4, r5
	cmpw cr7, r5, r4
	cmplw cr5, r5, r4
	mfcr r7
	PR cmp, r7
	.endm

	.macro CMPIS a
	LI32 r4, \a
	li r6, 0
	mtcr r6
	cmpwi cr1, r4, 0
	cmpwi cr2, r4, -1
	cmplwi cr4, r4, 0xffff
	cmplwi cr6, r4, 5
	mfcr r7
	PR cmpi, r7
	.endm

# CR logical op bt, ba, bb from a known CR
	.macro CRL insn, bt, ba, bb
	LI32 r6, 0x5a3c96e1
	mtcr r6
	\insn \bt, \ba, \bb
	mfcr r7
	PR "\insn", r7
	.endm

	MAIN_BEGIN
	CMPS 1, 2
	CMPS 2, 1
	CMPS 7, 7
	CMPS 0xffffffff, 1
	CMPS 0x80000000, 0x7fffffff
	CMPIS 0
	CMPIS 5
	CMPIS 0xffffffff
	CMPIS 0x0000ffff
	CMPIS 0x80000000
	# SO is copied into every compare's field
	LI32 r6, 0x80000000
	mtxer r6
	li r4, 3
	cmpwi cr2, r4, 3
	cmplwi cr6, r4, 9
	mfcr r7
	PR cmpso, r7
	.irp op, crand, cror, crxor, crnand, crnor, creqv, crandc, crorc
	CRL \op, 0, 1, 2
	CRL \op, 31, 4, 7
	CRL \op, 13, 13, 30
	CRL \op, 6, 8, 0
	.endr
	# mcrf
	LI32 r6, 0x12345678
	mtcr r6
	mcrf cr0, cr7
	mcrf cr6, cr1
	mfcr r7
	PR mcrf, r7
	# mtcrf: some fields only
	li r6, 0
	mtcr r6
	LI32 r4, 0xabcdef01
	mtcrf 0x81, r4
	mfcr r7
	PR mtcrf81, r7
	mtcrf 0x3c, r4
	mfcr r7
	PR mtcrf3c, r7
	mtcrf 0xff, r4
	mfcr r7
	PR mtcrfff, r7
	# mcrxr: XER[0:3] into a CR field, then cleared
	LI32 r4, 0xe000001f
	mtxer r4
	li r6, 0
	mtcr r6
	mcrxr cr2
	mfcr r7
	mfxer r8
	PR mcrxr_cr, r7
	PR mcrxr_xer, r8
	MAIN_END
