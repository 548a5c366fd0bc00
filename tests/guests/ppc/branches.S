# branches: b ba bl, bc with every BO class (CTR decrement, condition true or
# false, always), bclr and bcctr with and without LK, the LR and CTR values
	.include "ppc440.inc"

# bc BO, BI from CR = cr and CTR = ctr: print whether it branched, CTR and LR
	.macro TBC bo, bi, cr, ctr
	LI32 r6, \cr
	mtcr r6
	LI32 r6, \ctr
	mtctr r6
	li r9, 0
	li r6, 0
	mtlr r6
	bcl \bo, \bi, .Lt\@
.Lf\@:	li r9, 1			# not taken
	b .Lj\@
.Lt\@:	li r9, 2			# taken
.Lj\@:	mfctr r7
	mflr r8
	lis r10, .Lf\@@ha
	addi r10, r10, .Lf\@@l
	subf r8, r10, r8		# LR relative to the fall-through path
	PR "bc\bo\()_\bi", r9
	PR ctr, r7
	PR lr, r8
	.endm

	.macro TBCLR bo, bi, cr, ctr
	LI32 r6, \cr
	mtcr r6
	LI32 r6, \ctr
	mtctr r6
	lis r6, .Lt\@@ha
	addi r6, r6, .Lt\@@l
	mtlr r6
	li r9, 0
	bclr \bo, \bi
	li r9, 1
	b .Lj\@
.Lt\@:	li r9, 2
.Lj\@:	mfctr r7
	PR "bclr\bo\()_\bi", r9
	PR ctr, r7
	.endm

	.macro TBCCTRL bo, bi, cr
	LI32 r6, \cr
	mtcr r6
	lis r6, .Lt\@@ha
	addi r6, r6, .Lt\@@l
	mtctr r6
	li r9, 0
	li r6, 0
	mtlr r6
	bcctrl \bo, \bi
.Lf\@:	li r9, 1
	b .Lj\@
.Lt\@:	li r9, 2
.Lj\@:	mflr r8
	lis r10, .Lf\@@ha
	addi r10, r10, .Lf\@@l
	subf r8, r10, r8
	PR "bcctrl\bo\()_\bi", r9
	PR lr, r8
	.endm

	MAIN_BEGIN
	.irp bo, 0, 2, 4, 8, 10, 12, 16, 18, 20
	TBC \bo, 2, 0x20000000, 1
	TBC \bo, 2, 0x00000000, 1
	TBC \bo, 2, 0x20000000, 2
	TBC \bo, 2, 0x00000000, 0
	TBC \bo, 31, 0x00000001, 5
	.endr
	.irp bo, 4, 12, 20, 16, 18
	TBCLR \bo, 0, 0x80000000, 1
	TBCLR \bo, 0, 0x00000000, 2
	.endr
	.irp bo, 4, 12, 20
	TBCCTRL \bo, 5, 0x04000000
	TBCCTRL \bo, 5, 0x00000000
	.endr
	# b, bl, and a backward loop with bdnz
	li r9, 0
	b 1f
	li r9, 1
1:	PR b, r9
	bl 2f
after_bl:
	li r9, 3
	b 4f
2:	mflr r8
	lis r10, after_bl@ha
	addi r10, r10, after_bl@l
	subf r8, r10, r8
	PR bl_lr, r8
	blr
4:	PR after_bl, r9
	li r6, 10
	mtctr r6
	li r9, 0
5:	addi r9, r9, 3
	bdnz 5b
	PR bdnz, r9
	# blrl: LR gets the next address, the target is the old LR
	lis r6, blrl_target@ha
	addi r6, r6, blrl_target@l
	mtlr r6
	blrl
after_blrl:
	b 8f
blrl_target:
	mflr r8
	lis r10, after_blrl@ha
	addi r10, r10, after_blrl@l
	subf r8, r10, r8
	PR blrl_lr, r8
	blr
8:	MAIN_END
