# timer: the decrementer (TSR[DIS] on expiry, write-one-to-clear, auto-reload
# from DECAR with TCR[ARE]) and the decrementer interrupt (taken as soon as
# MSR[EE] allows it). Nothing printed depends on how fast time passes.
#
# Not here because QEMU 7.2 differs from the 440: DEC goes on counting below
# 0 after an expiry without auto-reload (the 440 stops at 0), a write of 0
# to DEC expires it at once, and the fixed-interval timer and watchdog never
# run (they are only armed while their TSR bit is already set, and the
# watchdog callback does not set ENW/WIS). The core's unit tests cover them.
	.include "ppc440.inc"

# spin until TSR has \bit (with a bound, so a dead timer ends the test)
	.macro WAIT_TSR bit, name
	LI32 r5, \bit
	LI32 r9, 50000000
	mtctr r9
1:	mfspr r6, SPRN_TSR
	and. r6, r6, r5
	bne 2f
	bdnz 1b
2:	PR "\name", r6
	.endm

	MAIN_BEGIN
	li r3, 0
	mtspr SPRN_TCR, r3
	LI32 r3, 0xffffffff
	mtspr SPRN_TSR, r3
	# one-shot: DEC counts down to 0, sets DIS and stays at 0
	li r3, 2000
	mtspr SPRN_DEC, r3
	WAIT_TSR 0x08000000, dis
	# TSR bits are cleared by writing ones
	LI32 r3, 0x08000000
	mtspr SPRN_TSR, r3
	mfspr r6, SPRN_TSR
	rlwinm r6, r6, 0, 4, 4
	PR dis_cleared, r6
	# auto-reload: two expiries in a row, DEC reloaded (non-zero) after each
	LI32 r3, 0x00400000
	mtspr SPRN_TCR, r3
	li r3, 3000
	mtspr SPRN_DECAR, r3
	mtspr SPRN_DEC, r3
	WAIT_TSR 0x08000000, dis_reload1
	LI32 r3, 0x08000000
	mtspr SPRN_TSR, r3
	WAIT_TSR 0x08000000, dis_reload2
	li r3, 0
	mtspr SPRN_TCR, r3
	mtspr SPRN_DEC, r3
	LI32 r3, 0x08000000
	mtspr SPRN_TSR, r3
	# the interrupt: DIS pending with EE = 0, then TCR[DIE] and wrteei 1
	li r3, 1000
	mtspr SPRN_DEC, r3
	WAIT_TSR 0x08000000, dis_pending
	LI32 r3, 0x04000000
	mtspr SPRN_TCR, r3
	SAY "DIE set, EE still 0"
	wrteei 1
	wrteei 0
	mfspr r6, SPRN_TSR
	rlwinm r6, r6, 0, 4, 4
	PR dis_after_irq, r6
	mfspr r6, SPRN_TCR
	PR tcr_after_irq, r6
	LI32 r3, exc_count
	lwz r6, 0(r3)
	PR exc_count, r6
	MAIN_END
