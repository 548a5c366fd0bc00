# Runtime of the PowerPC 440 test guests: entry, interrupt vectors, print
# helpers, exit. Entered in supervisor mode the way QEMU's bamboo enters a
# -kernel ELF: MSR = 0, r1 = 16 MiB - 8, r3 = device tree, and TLB entries
# mapping all 4 GiB 1:1 in TS 0 with supervisor read/write/execute.
	.include "ppc440.inc"

# a frame saving what the helpers below use, so they preserve every register
	.macro SAVE_ALL
	stwu r1, -96(r1)
	stw r0, 8(r1)
	stw r3, 12(r1)
	stw r4, 16(r1)
	stw r5, 20(r1)
	stw r6, 24(r1)
	stw r7, 28(r1)
	mfcr r0
	stw r0, 32(r1)
	mfxer r0
	stw r0, 36(r1)
	mfctr r0
	stw r0, 40(r1)
	mflr r0
	stw r0, 44(r1)
	.endm

	.macro RESTORE_ALL
	lwz r0, 32(r1)
	mtcr r0
	lwz r0, 36(r1)
	mtxer r0
	lwz r0, 40(r1)
	mtctr r0
	lwz r0, 44(r1)
	mtlr r0
	lwz r0, 8(r1)
	lwz r3, 12(r1)
	lwz r4, 16(r1)
	lwz r5, 20(r1)
	lwz r6, 24(r1)
	lwz r7, 28(r1)
	addi r1, r1, 96
	.endm

# ------------------------------------------------------------ vectors
# IVPR = 0x00100000 (this section is first in the image), IVORn = n * 0x100.
	.macro VEC n
	.balign 0x100
	mtspr SPRN_SPRG0, r1
	lis r1, (__exc_stack_top - 256)@ha
	addi r1, r1, (__exc_stack_top - 256)@l
	stw r3, 16(r1)
	li r3, \n
	b exc_common
	.endm

	.section .vectors, "ax"
	.globl _vectors
_vectors:
	VEC 0
	VEC 1
	VEC 2
	VEC 3
	VEC 4
	VEC 5
	VEC 6
	VEC 7
	VEC 8
	VEC 9
	VEC 10
	VEC 11
	VEC 12
	VEC 13
	VEC 14
	VEC 15

# ------------------------------------------------------------ entry
	.section .text.start, "ax"
	.globl _start
_start:
	LI32 r1, __stack_top - 16
	LI32 r4, LOG_POS
	li r5, 0
	stw r5, 0(r4)
	LI32 r4, exc_count
	stw r5, 0(r4)
	LI32 r4, ext_hook
	stw r5, 0(r4)
	LI32 r4, _vectors
	mtspr SPRN_IVPR, r4
	li r4, 0
	li r5, 16
	mtctr r5
	LI32 r6, ivor_set
1:	mtlr r6
	blrl
	addi r4, r4, 0x100
	addi r6, r6, 8
	bdnz 1b
	li r3, 0
	mtcr r3
	mtxer r3
	bl main
	b exit

# mtspr IVORn, r4 for n = 0..15, eight bytes apart (mtspr has no indexed form)
ivor_set:
	.irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
	mtspr SPRN_IVOR0 + \n, r4
	blr
	.endr

# ------------------------------------------------------------ interrupts
# Print "EXC <n> srr0=.. srr1=..[ esr=..][ dear=..]", then resume:
# after the faulting instruction (storage, alignment, program, FP unavailable,
# data TLB), at the caller (LR) for instruction fetch faults, unchanged for
# sc; timer interrupts are acknowledged and disabled; the external input is
# handed to the guest's ext_hook.
exc_common:
	stw r0, 8(r1)
	mfspr r0, SPRN_SPRG0
	stw r0, 12(r1)
	stw r4, 20(r1)
	stw r5, 24(r1)
	stw r6, 28(r1)
	stw r7, 32(r1)
	stw r8, 36(r1)
	stw r9, 40(r1)
	stw r10, 44(r1)
	stw r11, 48(r1)
	stw r12, 52(r1)
	mfcr r0
	stw r0, 56(r1)
	mfxer r0
	stw r0, 60(r1)
	mflr r0
	stw r0, 64(r1)
	mfctr r0
	stw r0, 68(r1)
	mr r12, r3			# r12 = interrupt number from here on
	LI32 r4, exc_count
	lwz r5, 0(r4)
	addi r5, r5, 1
	stw r5, 0(r4)
	LI32 r3, s_exc
	bl puts
	mr r3, r12
	bl putdec
	# which save/restore pair: r10 = 0 normal, 1 critical, 2 machine check
	li r10, 0
	cmpwi r12, 0
	beq 2f
	cmpwi r12, 12
	beq 2f
	cmpwi r12, 15
	beq 2f
	cmpwi r12, 1
	bne 3f
	li r10, 2
	mfspr r8, SPRN_MCSRR0
	mfspr r9, SPRN_MCSRR1
	b 4f
2:	li r10, 1
	mfspr r8, SPRN_CSRR0
	mfspr r9, SPRN_CSRR1
	b 4f
3:	mfspr r8, SPRN_SRR0
	mfspr r9, SPRN_SRR1
	cmpwi r12, 6
	bne 4f
	# QEMU 7.2 puts classic (non-Book E) program-interrupt reason bits into
	# SRR1 (0x00080000 illegal, 0x00040000 privileged, 0x00020000 trap), which
	# rfi would turn into MSR[WE]/[CE]; a 440 saves the MSR alone. Neither
	# MSR[WE] nor MSR[CE] is ever set when these guests take a program
	# interrupt, so clearing the three bits shows the same value on both.
	LI32 r3, ~0x000e0000
	and r9, r9, r3
	mtspr SPRN_SRR1, r9
4:	LI32 r3, s_srr0
	bl puts
	mr r3, r8
	bl puthex
	LI32 r3, s_srr1
	bl puts
	mr r3, r9
	bl puthex
	# ESR for storage, program, data TLB; DEAR for the data ones and alignment
	# (QEMU does not write ESR on an alignment interrupt; a 440 sets ESR[ST] for stores)
	cmpwi r12, 2
	beq 5f
	cmpwi r12, 5
	bne 51f
	LI32 r3, s_dear
	bl puts
	mfspr r3, SPRN_DEAR
	bl puthex
	b 7f
51:
	cmpwi r12, 13
	beq 5f
	cmpwi r12, 6
	beq 6f
	cmpwi r12, 3
	beq 6f
	b 7f
5:	LI32 r3, s_dear
	bl puts
	mfspr r3, SPRN_DEAR
	bl puthex
6:	LI32 r3, s_esr
	bl puts
	mfspr r3, SPRN_ESR
	bl puthex
7:	li r3, 10
	bl putc
	# what to do next
	cmpwi r12, 8
	bne 8f
	lwz r3, 8(r1)			# sc with r0 = 0x7f7f: back to to_user's caller
	cmpwi r3, 0x7f7f
	bne exc_return
	LI32 r3, user_return
	lwz r3, 0(r3)
	mtspr SPRN_SRR0, r3
	li r3, 0
	mtspr SPRN_SRR1, r3
	b exc_return
8:	cmpwi r12, 3
	beq 10f
	cmpwi r12, 14
	beq 10f
	cmpwi r12, 10
	beq 11f
	cmpwi r12, 11
	beq 12f
	cmpwi r12, 12
	beq 13f
	cmpwi r12, 4
	beq 14f
	cmpwi r12, 0
	beq 14f
	cmpwi r12, 1
	beq 15f
	cmpwi r12, 9
	beq 15f
	cmpwi r12, 15
	beq 15f
	addi r8, r8, 4			# skip the faulting instruction
	mtspr SPRN_SRR0, r8
	b exc_return
10:	lwz r8, 64(r1)			# fetch fault: back to the caller
	mtspr SPRN_SRR0, r8
	b exc_return
11:	LI32 r3, 0x08000000		# decrementer: acknowledge, disable
	mtspr SPRN_TSR, r3
	mfspr r3, SPRN_TCR
	LI32 r4, ~0x04000000
	and r3, r3, r4
	mtspr SPRN_TCR, r3
	b exc_return
12:	LI32 r3, 0x04000000		# FIT
	mtspr SPRN_TSR, r3
	mfspr r3, SPRN_TCR
	LI32 r4, ~0x00800000
	and r3, r3, r4
	mtspr SPRN_TCR, r3
	b exc_return
13:	LI32 r3, 0xc0000000		# watchdog: ENW and WIS
	mtspr SPRN_TSR, r3
	mfspr r3, SPRN_TCR
	LI32 r4, ~0x08000000
	and r3, r3, r4
	mtspr SPRN_TCR, r3
	b exc_return
14:	LI32 r4, ext_hook		# external/critical input: the guest's hook
	lwz r4, 0(r4)
	cmpwi r4, 0
	beq 15f
	mtlr r4
	mr r3, r12
	blrl
	b exc_return
15:	li r3, 99			# nothing sensible to resume: give up
	b exit

exc_return:
	lwz r0, 56(r1)
	mtcr r0
	lwz r0, 60(r1)
	mtxer r0
	lwz r0, 64(r1)
	mtlr r0
	lwz r0, 68(r1)
	mtctr r0
	cmpwi r10, 1
	lwz r0, 8(r1)
	lwz r3, 16(r1)
	lwz r4, 20(r1)
	lwz r5, 24(r1)
	lwz r6, 28(r1)
	lwz r7, 32(r1)
	lwz r8, 36(r1)
	lwz r9, 40(r1)
	lwz r10, 44(r1)
	lwz r11, 48(r1)
	lwz r12, 52(r1)
	beq 1f
	lwz r1, 12(r1)
	rfi
1:	lwz r1, 12(r1)
	rfci

# to_user(r3 = function): run it in user mode (MSR = PR | IS | DS) with the
# user TLB entry set up by setup_user_tlb; it returns with "li r0, 0x7f7f; sc"
# and to_user returns to its caller in supervisor mode (MSR = 0). r3 and r4
# reach the function unchanged.
	.globl to_user
to_user:
	LI32 r5, user_return
	mflr r6
	stw r6, 0(r5)
	mtspr SPRN_SRR0, r3
	LI32 r5, MSR_PR | MSR_IS | MSR_DS
	mtspr SPRN_SRR1, r5
	rfi

# setup_user_tlb: TLB entry 20 maps 0-16 MiB 1:1 in TS 1 for everyone (TID 0),
# user and supervisor read/write/execute
	.globl setup_user_tlb
setup_user_tlb:
	SAVE_ALL
	li r3, 0
	mtspr SPRN_MMUCR, r3
	li r4, 20
	LI32 r3, 0x00000000 | 0x200 | 0x100 | (7 << 4)
	tlbwe r3, r4, 0
	li r3, 0
	tlbwe r3, r4, 1
	li r3, 0x3f
	tlbwe r3, r4, 2
	isync
	RESTORE_ALL
	blr

# ------------------------------------------------------------ output
# Every helper preserves all registers, CR, XER, CTR and LR.


# putc(r3 = byte): append to the log
	.globl putc
putc:
	SAVE_ALL
	LI32 r4, LOG_POS
	lwz r5, 0(r4)
	add r6, r4, r5
	stb r3, 4(r6)
	addi r5, r5, 1
	stw r5, 0(r4)
	RESTORE_ALL
	blr

# puts(r3 = NUL-terminated string)
	.globl puts
puts:
	SAVE_ALL
	mr r4, r3
1:	lbz r3, 0(r4)
	cmpwi r3, 0
	beq 2f
	bl putc
	addi r4, r4, 1
	b 1b
2:	RESTORE_ALL
	blr

# puthex(r3): eight lower-case hex digits
	.globl puthex
puthex:
	SAVE_ALL
	mr r4, r3
	LI32 r5, hexdigits
	li r6, 8
	mtctr r6
1:	rlwinm r4, r4, 4, 0, 31
	andi. r6, r4, 15
	lbzx r3, r5, r6
	bl putc
	bdnz 1b
	RESTORE_ALL
	blr

# putdec(r3 < 100): decimal
	.globl putdec
putdec:
	SAVE_ALL
	li r4, 10
	divwu r5, r3, r4
	mullw r6, r5, r4
	subf r6, r6, r3
	cmpwi r5, 0
	beq 1f
	addi r3, r5, '0'
	bl putc
1:	addi r3, r6, '0'
	bl putc
	RESTORE_ALL
	blr

# print_reg(r3 = name, r4 = value): "<name>=<hex>\n"
	.globl print_reg
print_reg:
	SAVE_ALL
	bl puts
	li r3, '='
	bl putc
	mr r3, r4
	bl puthex
	li r3, 10
	bl putc
	RESTORE_ALL
	blr

# exit(r3 = code): "EXIT <code>", the log to the UART, then a system reset
# through DBCR0 (QEMU -no-reboot exits; the harness sees Stop.RESET).
	.globl exit
exit:
	li r0, 0
	mtmsr r0			# TS 0 again, interrupts off
	isync
	LI32 r1, __stack_top - 16
	mr r4, r3
	LI32 r3, s_exit
	bl puts
	mr r3, r4
	bl putdec
	li r3, 10
	bl putc
	LI32 r4, LOG_POS
	lwz r5, 0(r4)
	addi r6, r4, 4
	LI32 r7, UART_THR
1:	cmpwi r5, 0
	beq 3f
2:	lbz r8, 5(r7)			# LSR: wait for THRE
	andi. r8, r8, 0x20
	beq 2b
	lbz r8, 0(r6)
	stb r8, 0(r7)
	addi r6, r6, 1
	addi r5, r5, -1
	b 1b
3:	lbz r8, 5(r7)			# LSR: wait for TEMT
	andi. r8, r8, 0x40
	beq 3b
	LI32 r3, 0x30000000
	mtspr SPRN_DBCR0, r3
4:	b 4b

	.section .rodata
hexdigits:
	.ascii "0123456789abcdef"
s_exc:	.asciz "EXC "
s_srr0:	.asciz " srr0="
s_srr1:	.asciz " srr1="
s_esr:	.asciz " esr="
s_dear:	.asciz " dear="
s_exit:	.asciz "EXIT "

	.section .bss
	.balign 4
	.globl exc_count, ext_hook
exc_count:	.space 4		# interrupts taken so far
ext_hook:	.space 4		# address of the guest's external input handler, or 0
user_return:	.space 4		# where to_user's caller continues
