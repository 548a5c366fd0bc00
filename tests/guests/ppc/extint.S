# extint: the external input and the critical input, raised through UIC0
# (DCRs 0xc0-0xc8) by software: UIC_SRS sets a status bit, UIC_ER enables
# it, UIC_CR picks the critical output, UIC_SR clears it (write one). Shows
# mfdcr/mtdcr, MSR[EE]/[CE] gating, SRR0/1 vs CSRR0/1 and rfi/rfci.
	.include "ppc440.inc"

	.set UIC_SR, 0xc0
	.set UIC_SRS, 0xc1
	.set UIC_ER, 0xc2
	.set UIC_CR, 0xc3
	.set UIC_MSR, 0xc6
	.set SOURCE, 0x00000001		# UIC0 input 31: nothing on bamboo drives it

	MAIN_BEGIN
	LI32 r3, uic_hook
	LI32 r4, ext_hook
	stw r3, 0(r4)
	li r3, 0
	mtdcr UIC_ER, r3
	mtdcr UIC_CR, r3
	LI32 r3, 0xffffffff
	mtdcr UIC_SR, r3
	# a status bit without its enable: no interrupt even with EE = 1
	LI32 r3, SOURCE
	mtdcr UIC_SRS, r3
	mfdcr r6, UIC_SR
	PR sr, r6
	mfdcr r6, UIC_MSR
	PR msr_masked, r6
	wrteei 1
	wrteei 0
	SAY "nothing taken"
	# enabled: pending while EE = 0, taken right after wrteei 1
	LI32 r3, SOURCE
	mtdcr UIC_ER, r3
	mfdcr r6, UIC_MSR
	PR msr_pending, r6
	wrteei 1
	wrteei 0
	mfdcr r6, UIC_SR
	PR sr_after, r6
	# the critical output: MSR[EE] does not matter, MSR[CE] does
	LI32 r3, SOURCE
	mtdcr UIC_CR, r3
	mtdcr UIC_SRS, r3
	wrteei 1
	wrteei 0
	SAY "EE alone does not take it"
	LI32 r3, MSR_CE
	mtmsr r3
	li r3, 0
	mtmsr r3
	mfdcr r6, UIC_SR
	PR sr_after_crit, r6
	li r3, 0
	mtdcr UIC_ER, r3
	mtdcr UIC_CR, r3
	LI32 r3, exc_count
	lwz r6, 0(r3)
	PR exc_count, r6
	MAIN_END

# ext_hook(r3 = interrupt number): show the UIC state, acknowledge the source
uic_hook:
	mfdcr r4, UIC_MSR
	PR hook_msr, r4
	LI32 r4, SOURCE
	mtdcr UIC_SR, r4
	blr
