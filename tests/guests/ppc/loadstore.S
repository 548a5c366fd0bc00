# loadstore: every load and store width incl. algebraic, update, indexed and
# byte-reversed forms, lmw/stmw, lswi/stswi/lswx/stswx, unaligned accesses
# (the 440 handles them in hardware, also across a page)
	.include "ppc440.inc"

	.data
	.balign 16
src:	.long 0x01234567, 0x89abcdef, 0xfedcba98, 0x76543210, 0x8081f2f3, 0x7f7e0102
	.text

	.macro DUMPBUF
	lis r9, buf@ha
	addi r9, r9, buf@l
	lwz r6, 0(r9)
	PR buf0, r6
	lwz r6, 4(r9)
	PR buf4, r6
	lwz r6, 8(r9)
	PR buf8, r6
	lwz r6, 12(r9)
	PR buf12, r6
	.endm

	.macro CLRBUF
	lis r9, buf@ha
	addi r9, r9, buf@l
	li r6, 0
	stw r6, 0(r9)
	stw r6, 4(r9)
	stw r6, 8(r9)
	stw r6, 12(r9)
	.endm

	MAIN_BEGIN
	lis r20, src@ha
	addi r20, r20, src@l
	lis r21, buf@ha
	addi r21, r21, buf@l
	# D-form loads
	lwz r6, 4(r20)
	PR lwz, r6
	lhz r6, 4(r20)
	PR lhz, r6
	lha r6, 4(r20)
	PR lha, r6
	lha r6, 2(r20)
	PR lha2, r6
	lbz r6, 9(r20)
	PR lbz, r6
	lha r6, 20(r20)
	PR lha3, r6
	# update forms: RA gets the EA
	mr r22, r20
	lwzu r6, 8(r22)
	subf r7, r20, r22
	PR lwzu, r6
	PR lwzu_ra, r7
	lhzu r6, 2(r22)
	subf r7, r20, r22
	PR lhzu, r6
	PR lhzu_ra, r7
	lhau r6, 6(r22)
	subf r7, r20, r22
	PR lhau, r6
	PR lhau_ra, r7
	lbzu r6, -3(r22)
	subf r7, r20, r22
	PR lbzu, r6
	PR lbzu_ra, r7
	# indexed forms
	li r5, 12
	lwzx r6, r20, r5
	PR lwzx, r6
	lhzx r6, r20, r5
	PR lhzx, r6
	lhax r6, r20, r5
	PR lhax, r6
	lbzx r6, r20, r5
	PR lbzx, r6
	mr r22, r20
	lwzux r6, r22, r5
	subf r7, r20, r22
	PR lwzux, r6
	PR lwzux_ra, r7
	mr r22, r20
	lhaux r6, r22, r5
	PR lhaux, r6
	lhzux r6, r22, r5
	PR lhzux, r6
	lbzux r6, r22, r5
	subf r7, r20, r22
	PR lbzux, r6
	PR lbzux_ra, r7
	# byte-reversed
	lwbrx r6, r20, r5
	PR lwbrx, r6
	lhbrx r6, r20, r5
	PR lhbrx, r6
	# stores
	CLRBUF
	LI32 r4, 0xa1b2c3d4
	stw r4, 0(r21)
	sth r4, 4(r21)
	stb r4, 7(r21)
	li r5, 8
	stwbrx r4, r21, r5
	li r5, 12
	sthbrx r4, r21, r5
	li r5, 15
	stbx r4, r21, r5
	DUMPBUF
	CLRBUF
	mr r22, r21
	stwu r4, 4(r22)
	sthu r4, 4(r22)
	stbu r4, 3(r22)
	subf r7, r21, r22
	PR stu_ra, r7
	mr r22, r21
	li r5, 2
	sthux r4, r22, r5
	stbux r4, r22, r5
	li r5, 9
	stwux r4, r22, r5
	subf r7, r21, r22
	PR stux_ra, r7
	li r5, 0
	sthx r4, r21, r5
	DUMPBUF
	# unaligned word and halfword accesses
	lwz r6, 1(r20)
	PR lwz1, r6
	lwz r6, 3(r20)
	PR lwz3, r6
	lhz r6, 3(r20)
	PR lhz3, r6
	CLRBUF
	stw r4, 1(r21)
	sth r4, 7(r21)
	stw r4, 11(r21)
	DUMPBUF
	# across a page boundary
	LI32 r23, 0x00400ffe
	stw r4, 0(r23)
	lwz r6, 0(r23)
	PR pagecross, r6
	lbz r6, 3(r23)
	PR pagecross_b3, r6
	# lmw / stmw
	lmw r26, 0(r20)
	PR lmw26, r26
	PR lmw31, r31
	CLRBUF
	stmw r28, 0(r21)
	DUMPBUF
	# string instructions
	lswi r26, r20, 7
	PR lswi26, r26
	PR lswi27, r27
	CLRBUF
	stswi r26, r21, 7
	DUMPBUF
	li r6, 6
	mtxer r6
	li r5, 2
	lswx r28, r20, r5
	PR lswx28, r28
	PR lswx29, r29
	CLRBUF
	li r5, 1
	stswx r28, r21, r5
	DUMPBUF
	li r6, 0
	mtxer r6
	MAIN_END

	.bss
	.balign 16
buf:	.space 32
