# atomic: lwarx/stwcx. (success, failure without a reservation, reservation
# lost to another stwcx.), barriers (sync msync isync eieio mbar), cache
# operations (dcbz zeroes a 32-byte line; dcbf dcbst dcbt dcbtst icbi dcba
# leave memory alone), iccci dccci tlbsync in supervisor mode
	.include "ppc440.inc"

	MAIN_BEGIN
	lis r20, line@ha
	addi r20, r20, line@l
	LI32 r4, 0x11111111
	stw r4, 0(r20)
	li r0, 0
	mtcr r0
	lwarx r6, 0, r20
	addi r6, r6, 1
	stwcx. r6, 0, r20
	mfcr r7
	lwz r8, 0(r20)
	PR lwarx, r6
	PR stwcx_cr, r7
	PR mem, r8
	# no reservation now: fails, memory unchanged
	li r6, 5
	stwcx. r6, 0, r20
	mfcr r7
	lwz r8, 0(r20)
	PR stwcx2_cr, r7
	PR mem2, r8
	# a reservation used by another stwcx. is gone
	lwarx r6, 0, r20
	stwcx. r6, 0, r20
	stwcx. r6, 0, r20
	mfcr r7
	PR stwcx3_cr, r7
	# CR0[SO] comes from XER
	LI32 r6, 0x80000000
	mtxer r6
	lwarx r6, 0, r20
	stwcx. r6, 0, r20
	mfcr r7
	PR stwcx_so, r7
	li r6, 0
	mtxer r6
	# barriers change nothing
	sync
	msync
	isync
	eieio
	mbar
	# fill the line, then dcbz at an address inside it
	li r6, -1
	li r5, 0
1:	stwx r6, r20, r5
	addi r5, r5, 4
	cmpwi r5, 64
	blt 1b
	li r5, 37
	dcbz r20, r5
	lwz r6, 28(r20)
	PR w28, r6
	lwz r6, 32(r20)
	PR w32, r6
	lwz r6, 60(r20)
	PR w60, r6
	lwz r6, 64(r20)
	PR w64, r6
	li r5, 0
	dcbf r20, r5
	dcbst r20, r5
	dcbt r20, r5
	dcbtst r20, r5
	icbi r20, r5
	dcbi r20, r5
	iccci r20, r5
	dccci r20, r5
	tlbsync
	lwz r6, 0(r20)
	PR cacheops, r6
	# dcbt of an unmapped address never faults
	LI32 r6, 0x00000000
	mtspr SPRN_PID, r6
	LI32 r5, exc_count
	lwz r6, 0(r5)
	PR exc_count, r6
	MAIN_END

	.bss
	.balign 32
line:	.space 32
	.space 96
