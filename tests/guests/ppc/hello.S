# hello: the runtime itself (print helpers, the log, exit) and the entry state
	.include "ppc440.inc"
	.text
	.globl main
main:
	mflr r0
	stw r0, 4(r1)
	stwu r1, -16(r1)
	SAY "hello from the 440"
	li r14, 0x1234
	PR r14, r14
	mfmsr r15
	PR msr, r15
	PRSPR pvr, SPRN_PVR
	PRSPR pir, SPRN_PIR
	PRSPR pid, SPRN_PID
	PRSPR mmucr, SPRN_MMUCR
	addi r1, r1, 16
	lwz r0, 4(r1)
	mtlr r0
	li r3, 0
	blr
