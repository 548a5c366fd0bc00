# spr: the privileged SPRs written and read back (which bits stick), the
# user read-only aliases of SPRG4-7, TB written through SPRs 284/285 and read
# through 268/269, mfmsr/mtmsr (implemented MSR bits), wrtee/wrteei, PVR/PIR
	.include "ppc440.inc"

	.macro WR sprn, name, value
	LI32 r4, \value
	mtspr \sprn, r4
	mfspr r6, \sprn
	PR "\name", r6
	.endm

	MAIN_BEGIN
	WR SPRN_SPRG0, sprg0, 0x11111111
	WR SPRN_SPRG1, sprg1, 0x22222222
	WR SPRN_SPRG2, sprg2, 0x33333333
	WR SPRN_SPRG3, sprg3, 0x44444444
	WR SPRN_SPRG4, sprg4, 0x55555555
	WR 277, sprg5, 0x66666666
	WR 278, sprg6, 0x77777777
	WR 279, sprg7, 0x88888888
	mfspr r6, 260
	PR sprg4r, r6
	mfspr r6, 261
	PR sprg5r, r6
	mfspr r6, 262
	PR sprg6r, r6
	mfspr r6, 263
	PR sprg7r, r6
	WR SPRN_USPRG0, usprg0, 0x99999999
	WR SPRN_SRR0, srr0, 0x12345678
	WR SPRN_SRR1, srr1, 0x0002bf30
	WR SPRN_CSRR0, csrr0, 0x23456789
	WR SPRN_CSRR1, csrr1, 0x00001000
	WR SPRN_MCSRR0, mcsrr0, 0x3456789a
	WR SPRN_MCSRR1, mcsrr1, 0x00020000
	WR SPRN_DEAR, dear, 0xdeadbeef
	WR SPRN_ESR, esr, 0x00800000
	# DECAR is write-only (QEMU makes reading it a program interrupt)
	LI32 r4, 0x1000
	mtspr SPRN_DECAR, r4
	WR SPRN_MMUCR, mmucr, 0x000100a5
	WR SPRN_MMUCR, mmucr0, 0x00000000
	WR SPRN_PID, pid, 0x0000007e
	WR SPRN_PID, pid0, 0x00000000
	WR SPRN_IVOR0 + 5, ivor5, 0x00000500
	WR SPRN_IVOR0 + 9, ivor9, 0x00000900
	WR SPRN_CCR0, ccr0, 0x00000000
	mfspr r6, SPRN_PVR
	PR pvr, r6
	mfspr r6, SPRN_PIR
	PR pir, r6
	mfspr r6, SPRN_TCR
	PR tcr, r6
	# IVPR: only the upper half is used; put it back afterwards
	mfspr r20, SPRN_IVPR
	PR ivpr, r20
	# time base: write the upper half, then the lower; read back through 268/269
	li r4, 0
	mtspr SPRN_TBWL, r4
	LI32 r4, 0x00012345
	mtspr SPRN_TBWU, r4
	li r4, 0x100
	mtspr SPRN_TBWL, r4
	mfspr r6, SPRN_TBRU
	PR tbu, r6
	mfspr r7, SPRN_TBRL
	subf r7, r4, r7
	# a few instructions later TBL has moved forward by a little
	cmplwi r7, 0x8000
	mfcr r6
	rlwinm r6, r6, 4, 28, 31
	PR tbl_small, r6
	mfspr r8, SPRN_TBRL
	mftb r9
	subf r9, r8, r9
	cmplwi r9, 0x8000
	mfcr r6
	rlwinm r6, r6, 4, 28, 31
	PR mftb_small, r6
	# mfmsr / mtmsr: which bits stick (not PR, IS, DS, WE: they would change
	# the test; not ME: QEMU 7.2's 440 does not implement it)
	LI32 r4, 0xfffbafcf
	mtmsr r4
	mfmsr r6
	PR msr_all, r6
	li r4, 0
	mtmsr r4
	mfmsr r6
	PR msr_none, r6
	# wrtee / wrteei touch only EE
	LI32 r4, 0x00000200
	mtmsr r4
	wrteei 1
	mfmsr r6
	PR wrteei1, r6
	wrteei 0
	mfmsr r6
	PR wrteei0, r6
	LI32 r4, 0xffffffff
	wrtee r4
	mfmsr r6
	PR wrtee1, r6
	li r4, 0
	wrtee r4
	mfmsr r6
	PR wrtee0, r6
	li r4, 0
	mtmsr r4
	MAIN_END
