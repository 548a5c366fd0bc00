# fpu: the 440EP's classic FPU. Loads and stores (lfs/lfd/stfs/stfd, update
# and indexed forms, stfiwx), double and single arithmetic, fused
# multiply-add, fsel, compares into CR fields, conversions (frsp, fctiw,
# fctiwz), sign operations, and FPSCR: the exception bits each operation
# sets, FPRF, mffs/mtfsf/mtfsfi/mtfsb0/mtfsb1/mcrfs, rounding modes.
	.include "ppc440.inc"

	.set ONE, 0
	.set THREE, 8
	.set MTWOH, 16
	.set TENTH, 24
	.set HUGE, 32
	.set DENORM, 40
	.set ZERO, 48
	.set MZERO, 56
	.set INF, 64
	.set MINF, 72
	.set QNAN, 80
	.set SNAN, 88
	.set TWO31, 96
	.set BIGNEG, 104
	.set ONEHALF, 112
	.set TWOHALF, 120
	.set TINY, 128
	.set SEVEN, 136

	.data
	.balign 8
vals:	.double 1.0, 3.0, -2.5, 0.1, 1.0e308, 1.0e-310, 0.0, -0.0
	.long 0x7ff00000, 0, 0xfff00000, 0, 0x7ff80000, 0, 0x7ff40000, 1
	.double 2147483648.0, -2147483649.0, 1.5, 2.5, 1.0e-300, -7.0
singles: .float 1.5, -0.1, 3.4e38
	.long 0x7fa00000		# a single-precision SNaN
	.text

# FPSCR := 0, then print FRT (both words), FPSCR and CR
	.macro SHOW name
	stfd f3, 0(r21)
	mffs f4
	stfd f4, 8(r21)
	mfcr r7
	lwz r5, 0(r21)
	lwz r6, 4(r21)
	lwz r8, 12(r21)
	PR "\name", r5
	PR lo, r6
	PR fpscr, r8
	PR cr, r7
	.endm

	.macro CLR
	mtfsf 0xff, f31
	li r3, 0
	mtcr r3
	.endm

	.macro F2 insn, a, b
	lfd f1, \a(r20)
	lfd f2, \b(r20)
	CLR
	\insn f3, f1, f2
	SHOW "\insn"
	.endm

	.macro F3 insn, a, c, b
	lfd f1, \a(r20)
	lfd f5, \c(r20)
	lfd f2, \b(r20)
	CLR
	\insn f3, f1, f5, f2
	SHOW "\insn"
	.endm

	.macro F1 insn, b
	lfd f2, \b(r20)
	CLR
	\insn f3, f2
	SHOW "\insn"
	.endm

	.macro FCMP insn, a, b
	lfd f1, \a(r20)
	lfd f2, \b(r20)
	CLR
	\insn cr3, f1, f2
	mffs f4
	stfd f4, 8(r21)
	mfcr r7
	lwz r8, 12(r21)
	PR "\insn", r7
	PR fpscr, r8
	.endm

	MAIN_BEGIN
	LI32 r3, MSR_FP
	mtmsr r3
	isync
	lis r20, vals@ha
	addi r20, r20, vals@l
	lis r21, buf@ha
	addi r21, r21, buf@l
	lfd f31, ZERO(r20)
	.irp op, fadd, fadd., fsub, fmul, fdiv, fadds, fsubs, fmuls, fdivs
	F2 \op, ONE, THREE
	F2 \op, TENTH, MTWOH
	F2 \op, HUGE, HUGE
	F2 \op, INF, MINF
	F2 \op, INF, INF
	F2 \op, ZERO, ZERO
	F2 \op, ONE, ZERO
	F2 \op, DENORM, TENTH
	F2 \op, QNAN, ONE
	F2 \op, ONE, SNAN
	F2 \op, MZERO, ZERO
	F2 \op, TINY, TINY
	.endr
	.irp op, fmadd, fmsub, fnmadd, fnmsub, fmadds, fnmsubs
	F3 \op, TENTH, THREE, ONE
	F3 \op, THREE, SEVEN, MTWOH
	F3 \op, ZERO, INF, ONE
	F3 \op, INF, ONE, INF
	F3 \op, HUGE, HUGE, ONE
	.endr
	F3 fsel, ONE, THREE, SEVEN
	F3 fsel, MTWOH, THREE, SEVEN
	F3 fsel, MZERO, THREE, SEVEN
	F3 fsel, QNAN, THREE, SEVEN
	.irp op, frsp, fctiw, fctiwz, fneg, fabs, fnabs, fmr
	F1 \op, TENTH
	F1 \op, MTWOH
	F1 \op, ONEHALF
	F1 \op, TWOHALF
	F1 \op, TWO31
	F1 \op, BIGNEG
	F1 \op, HUGE
	F1 \op, QNAN
	F1 \op, SNAN
	F1 \op, MZERO
	F1 \op, DENORM
	.endr
	.irp op, fcmpu, fcmpo
	FCMP \op, ONE, THREE
	FCMP \op, THREE, ONE
	FCMP \op, MZERO, ZERO
	FCMP \op, QNAN, ONE
	FCMP \op, ONE, SNAN
	.endr
	# rounding modes: 1/3 and -1/3 in each mode, and fctiw of 2.5/-2.5
	.irp rn, 0, 1, 2, 3
	mtfsfi 7, \rn
	lfd f1, ONE(r20)
	lfd f2, THREE(r20)
	fdiv f3, f1, f2
	stfd f3, 0(r21)
	lwz r6, 4(r21)
	PR "rn\rn", r6
	fneg f1, f1
	fdiv f3, f1, f2
	stfd f3, 0(r21)
	lwz r6, 4(r21)
	PR neg, r6
	lfd f2, TWOHALF(r20)
	fctiw f3, f2
	stfiwx f3, 0, r21
	lwz r6, 0(r21)
	PR fctiw, r6
	lfd f2, MTWOH(r20)
	fctiw f3, f2
	stfiwx f3, 0, r21
	lwz r6, 0(r21)
	PR fctiwneg, r6
	.endr
	# FPSCR instructions
	# (FX explicitly first: QEMU 7.2's mtfsb1 does not set it implicitly when
	# it sets an exception bit, which the architecture asks for)
	CLR
	mtfsb1 0
	mtfsb1 3
	mtfsb1 30
	mffs f4
	stfd f4, 8(r21)
	lwz r8, 12(r21)
	PR mtfsb1, r8
	mtfsb0 3
	mffs f4
	stfd f4, 8(r21)
	lwz r8, 12(r21)
	PR mtfsb0, r8
	mtfsfi 1, 0xf
	mffs f4
	stfd f4, 8(r21)
	lwz r8, 12(r21)
	PR mtfsfi, r8
	mcrfs cr2, 1
	mcrfs cr4, 0
	mffs f4
	stfd f4, 8(r21)
	lwz r8, 12(r21)
	mfcr r7
	PR mcrfs_cr, r7
	PR mcrfs_fpscr, r8
	# (no enable bits: QEMU 7.2 then raises a deferred program interrupt
	# even with MSR[FE0] = MSR[FE1] = 0)
	LI32 r3, 0xffffff07
	stw r3, 8(r21)
	stw r3, 12(r21)
	lfd f4, 8(r21)
	mtfsf 0x0f, f4
	mffs f4
	stfd f4, 8(r21)
	lwz r8, 12(r21)
	PR mtfsf, r8
	CLR
	# loads and stores
	lis r22, singles@ha
	addi r22, r22, singles@l
	lfs f3, 0(r22)
	SHOW lfs
	lfs f3, 4(r22)
	SHOW lfs2
	lfs f3, 12(r22)
	SHOW lfs_snan
	mr r23, r22
	lfsu f3, 8(r23)
	subf r6, r22, r23
	PR lfsu_ra, r6
	stfs f3, 16(r21)
	lwz r6, 16(r21)
	PR stfs, r6
	li r5, 4
	lfsx f3, r22, r5
	stfsx f3, r21, r5
	lwz r6, 4(r21)
	PR stfsx, r6
	mr r23, r21
	stfdu f3, 8(r23)
	subf r6, r21, r23
	PR stfdu_ra, r6
	lwz r6, 8(r21)
	PR stfdu, r6
	li r5, 16
	mr r23, r20
	lfdux f3, r23, r5
	subf r6, r20, r23
	PR lfdux_ra, r6
	stfdx f3, r21, r5
	lwz r6, 16(r21)
	PR stfdx, r6
	li r3, 0
	mtmsr r3
	MAIN_END

	.bss
	.balign 8
buf:	.space 64
