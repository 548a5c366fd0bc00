# program: illegal instructions (ESR[PIL]), privileged instructions in user
# mode (ESR[PPR]), tw/twi traps (ESR[PTR]), sc from supervisor and user mode,
# FP unavailable, alignment of lwarx/stwcx., unknown SPRs, user-mode SPRs
	.include "ppc440.inc"

	MAIN_BEGIN
	bl setup_user_tlb
	# illegal encodings
	.long 0x00000000
	.long 0x7c000002		# opcode 31, undefined extended opcode 1
	.long 0x4c000002		# opcode 19, undefined extended opcode 1
	# traps: taken and not taken
	li r4, 5
	li r5, 7
	tw 0, r4, r5
	twi 0, r4, 3
	twlt r4, r5
	twgt r4, r5
	tweq r4, r4
	twllt r5, r4
	twlgt r5, r4
	twi 31, r4, 0
	twgei r4, 5
	twlti r4, 5
	trap
	# sc from supervisor mode
	li r0, 1
	sc
	# FP unavailable (MSR[FP] = 0)
	lfd f1, 0(r1)
	fadd f1, f2, f3
	stfd f1, 0(r1)
	# alignment: lwarx and stwcx. need word alignment
	lis r20, word@ha
	addi r20, r20, word@l
	addi r21, r20, 2
	lwarx r6, 0, r21
	# (not stwcx.: QEMU 7.2 checks the reservation before the alignment)
	# user mode
	LI32 r3, user_code
	bl to_user
	SAY "back in supervisor mode"
	mfmsr r6
	PR msr, r6
	LI32 r3, exc_count
	lwz r6, 0(r3)
	PR exc_count, r6
	MAIN_END

user_code:
	mfmsr r6
	mtmsr r6
	wrteei 1
	wrtee r6
	rfi
	rfci
	mtspr SPRN_SPRG0, r6
	mfspr r6, SPRN_SPRG0
	mfspr r6, SPRN_SRR0
	mtspr SPRN_PID, r6
	mtspr SPRN_DEC, r6
	mfspr r6, SPRN_TSR
	tlbwe r6, r6, 0
	tlbre r6, r6, 0
	tlbsx r6, 0, r6
	tlbsync
	iccci 0, r6
	dccci 0, r6
	dcbi 0, r1
	mfdcr r6, 0xc0
	mtdcr 0xc0, r6
	# user-mode SPRs work
	li r6, 0x55
	mtlr r6
	mflr r7
	PR lr, r7
	mtctr r6
	mfctr r7
	PR ctr, r7
	mtspr SPRN_USPRG0, r6
	mfspr r7, SPRN_USPRG0
	PR usprg0, r7
	mfspr r7, 260
	PR sprg4r, r7
	mfspr r7, SPRN_TBRU
	# traps and sc from user mode
	twi 31, r0, 0
	li r0, 1
	sc
	li r0, 0x7f7f
	sc

	.data
	.balign 4
word:	.long 0x12345678
