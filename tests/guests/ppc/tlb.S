# tlb: tlbwe/tlbre of words 0-2 (which bits stick), MMUCR[STID] written by
# tlbre, tlbsx and tlbsx. (hit, miss, TS and TID matching), index wrap-around,
# then translation through entries of several sizes, TIDs and permissions in
# TS 1: hits, data TLB misses, data storage interrupts (ESR[ST], DEAR),
# instruction TLB misses and instruction storage interrupts. Entries 0-15
# (the boot mapping) are never touched.
	.include "ppc440.inc"

# write entry \idx (TID from MMUCR[STID] = \tid): invalidated first, word 0
# last. QEMU 7.2 flushes its own TLB only when word 0 changes a valid entry,
# so a change of permissions alone would go unnoticed there (a 440 honours
# every tlbwe after the next context synchronisation).
	.macro TLBW idx, tid, w0, w1, w2
	LI32 r3, \tid
	mtspr SPRN_MMUCR, r3
	li r4, \idx
	li r3, 0
	tlbwe r3, r4, 0
	LI32 r3, \w1
	tlbwe r3, r4, 1
	LI32 r3, \w2
	tlbwe r3, r4, 2
	LI32 r3, \w0
	tlbwe r3, r4, 0
	isync
	.endm

	.macro TLBR idx
	li r3, 0
	mtspr SPRN_MMUCR, r3
	li r4, \idx
	tlbre r5, r4, 0
	tlbre r6, r4, 1
	tlbre r7, r4, 2
	mfspr r8, SPRN_MMUCR
	PR w0, r5
	PR w1, r6
	PR w2, r7
	PR mmucr, r8
	.endm

# tlbsx. for \ea with MMUCR = \mmucr: index (or whatever RT gets) and CR0
	.macro TLBSX ea, mmucr
	LI32 r3, \mmucr
	mtspr SPRN_MMUCR, r3
	LI32 r5, \ea
	li r6, 0x33
	li r0, 0
	mtcr r0
	tlbsx. r6, 0, r5
	mfcr r7
	PR tlbsx_cr, r7
	PR tlbsx_rt, r6
	.endm

# one data access with MSR[DS] = 1, then back to DS = 0
	.macro DLOAD ea
	LI32 r5, \ea
	LI32 r3, MSR_DS
	mtmsr r3
	isync
	lwz r6, 0(r5)
	li r3, 0
	mtmsr r3
	isync
	PR "ld", r6
	.endm

	.macro DSTORE ea, value
	LI32 r5, \ea
	LI32 r7, \value
	LI32 r3, MSR_DS
	mtmsr r3
	isync
	stw r7, 0(r5)
	li r3, 0
	mtmsr r3
	isync
	.endm

	MAIN_BEGIN
	# word 0: EPN, V, TS, SIZE; word 1: RPN, ERPN; word 2: attributes and
	# permissions (not E: QEMU 7.2 has no little-endian pages)
	TLBW 32, 0x5a, 0xfffffe90, 0xffffffff, 0xffffff7f
	TLBR 32
	TLBW 33, 0x00, 0x12345000 | 0x200 | 0x010, 0x00678000, 0x0000003f
	TLBR 33
	TLBW 34, 0x17, 0x40000000 | 0x200 | 0x100 | 0x090, 0x00000000, 0x00000409
	TLBR 34
	TLBR 34 + 64
	# tlbsx: TID from MMUCR[STID] (entries with TID 0 match any). The boot
	# mapping would match everything in TS 0, so it is replaced for this part
	# by entry 20 (TS 1, 0-16 MiB), running with IS = DS = 1. Every search
	# uses the TS of the entry it may find: QEMU 7.2 ignores MMUCR[STS].
	bl setup_user_tlb
	LI32 r3, MSR_IS | MSR_DS
	mtmsr r3
	isync
	.irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
	TLBW \n, 0, 0, 0, 0
	.endr
	TLBSX 0x12345678, 0x00000000
	TLBSX 0x12345678, 0x00000042
	TLBSX 0x12346000, 0x00000000
	TLBSX 0x47ffffff, 0x00010017
	TLBSX 0x47ffffff, 0x00010016
	TLBSX 0x50000000, 0x00010017
	TLBSX 0x00001234, 0x00010000
	# the boot mapping back (256 MiB pages: RAM and the UART), TS 0 again
	TLBW 0, 0, 0x00000000 | 0x200 | 0x090, 0x00000000, 0x00000007
	TLBW 14, 0, 0xe0000000 | 0x200 | 0x090, 0xe0000000, 0x00000007
	li r3, 0
	mtmsr r3
	isync
	# invalidate the scratch entries
	TLBW 32, 0, 0, 0, 0
	TLBW 33, 0, 0, 0, 0
	TLBW 34, 0, 0, 0, 0

	# translation in TS 1 (PID = 0 unless said)
	li r3, 0
	mtspr SPRN_PID, r3
	# fill the data pages through the boot mapping
	LI32 r5, 0x00500000
	LI32 r6, 0xa0000000
	li r7, 0
1:	add r8, r6, r7
	stwx r8, r5, r7
	addi r7, r7, 4
	cmplwi r7, 0x8000
	blt 1b
	# 4 KiB, supervisor read only: loads hit, a store is a DSI with ESR[ST]
	TLBW 40, 0, 0x30000000 | 0x200 | 0x100 | 0x10, 0x00500000, 0x00000001
	DLOAD 0x30000010
	DLOAD 0x30000ffc
	DSTORE 0x30000020, 0x1
	DLOAD 0x30001000
	# supervisor write only: the load is a DSI without ESR[ST]
	TLBW 41, 0, 0x30001000 | 0x200 | 0x100 | 0x10, 0x00501000, 0x00000002
	DSTORE 0x30001008, 0x5555aaaa
	DLOAD 0x30001008
	LI32 r5, 0x00501008
	lwz r6, 0(r5)
	PR stored, r6
	# 1 KiB page (QEMU 7.2 maps at least 4 KiB, so only the page itself is compared)
	TLBW 42, 0, 0x30002400 | 0x200 | 0x100 | 0x00, 0x00502400, 0x00000003
	DLOAD 0x300027fc
	DLOAD 0x30002400
	# 16 KiB and 64 KiB pages map the right offsets
	TLBW 43, 0, 0x30004000 | 0x200 | 0x100 | 0x20, 0x00504000, 0x00000003
	DLOAD 0x30007ff8
	TLBW 44, 0, 0x30010000 | 0x200 | 0x100 | 0x30, 0x00500000, 0x00000003
	DLOAD 0x30017ffc
	# TID: an entry for TID 5 serves PID 5 only
	TLBW 45, 5, 0x30020000 | 0x200 | 0x100 | 0x10, 0x00503000, 0x00000003
	li r3, 5
	mtspr SPRN_PID, r3
	DLOAD 0x30020004
	li r3, 6
	mtspr SPRN_PID, r3
	DLOAD 0x30020004
	li r3, 0
	mtspr SPRN_PID, r3
	DLOAD 0x30020004
	# TS 0 does not see TS 1 entries: through the boot mapping, 0x00500010 is RAM
	LI32 r5, 0x00500010
	lwz r6, 0(r5)
	PR ts0, r6
	# overwriting an entry changes the translation at once
	TLBW 40, 0, 0x30000000 | 0x200 | 0x100 | 0x10, 0x00506000, 0x00000001
	DLOAD 0x30000010
	TLBW 40, 0, 0x30000000 | 0x000 | 0x100 | 0x10, 0x00506000, 0x00000001
	DLOAD 0x30000010

	# instruction side: run with IS = DS = 1 from a TS 1 copy of the boot
	# mapping (user TLB entry 20: 0-16 MiB, all permissions)
	bl setup_user_tlb
	LI32 r3, MSR_IS | MSR_DS
	mtmsr r3
	isync
	SAY "running in TS 1"
	# a page with code, execute permission: runs
	LI32 r5, 0x00505000
	LI32 r6, 0x38c00077		# li r6, 0x77
	stw r6, 0(r5)
	LI32 r6, 0x4e800020		# blr
	stw r6, 4(r5)
	TLBW 46, 0, 0x31000000 | 0x200 | 0x100 | 0x10, 0x00505000, 0x00000005
	li r6, 0
	LI32 r5, 0x31000000
	mtctr r5
	bctrl
	PR ran, r6
	# the same page without execute permission: instruction storage interrupt
	TLBW 46, 0, 0x31000000 | 0x200 | 0x100 | 0x10, 0x00505000, 0x00000003
	li r6, 0
	bctrl
	PR noexec, r6
	# no entry at all: instruction TLB miss
	LI32 r5, 0x32000000
	mtctr r5
	bctrl
	# data TLB miss in TS 1 with the stack mapped
	LI32 r5, 0x33000000
	lwz r6, 0(r5)
	stb r6, 3(r5)
	li r3, 0
	mtmsr r3
	isync
	TLBW 46, 0, 0, 0, 0
	TLBW 20, 0, 0, 0, 0
	.irp n, 40, 41, 42, 43, 44, 45
	TLBW \n, 0, 0, 0, 0
	.endr
	LI32 r3, exc_count
	lwz r6, 0(r3)
	PR exc_count, r6
	MAIN_END
