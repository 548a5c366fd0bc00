/*
 * MIPS32 architectural constants shared by C and assembly guests.
 *
 * Only architecture-defined values live here (MIPS32 vol. III, "CP0
 * registers"); nothing specific to one implementation.
 */
#ifndef GUEST_MIPS_H
#define GUEST_MIPS_H

/* CP0 register numbers (use with select 0 unless noted). */
#define CP0_INDEX      0
#define CP0_RANDOM     1
#define CP0_ENTRYLO0   2
#define CP0_ENTRYLO1   3
#define CP0_CONTEXT    4
#define CP0_PAGEMASK   5
#define CP0_WIRED      6
#define CP0_HWRENA     7
#define CP0_BADVADDR   8
#define CP0_COUNT      9
#define CP0_ENTRYHI    10
#define CP0_COMPARE    11
#define CP0_STATUS     12 /* sel 1: IntCtl */
#define CP0_CAUSE      13
#define CP0_EPC        14
#define CP0_PRID       15 /* sel 1: EBase */
#define CP0_CONFIG     16 /* sel 1..5: Config1..Config5 */
#define CP0_ERROREPC   30

#ifdef __ASSEMBLER__
/* CP0 register operands for assembly ("mfc0 $t0, C0_STATUS"). */
#define C0_INDEX     $0
#define C0_RANDOM    $1
#define C0_ENTRYLO0  $2
#define C0_ENTRYLO1  $3
#define C0_CONTEXT   $4
#define C0_PAGEMASK  $5
#define C0_WIRED     $6
#define C0_HWRENA    $7
#define C0_BADVADDR  $8
#define C0_COUNT     $9
#define C0_ENTRYHI   $10
#define C0_COMPARE   $11
#define C0_STATUS    $12
#define C0_INTCTL    $12, 1
#define C0_CAUSE     $13
#define C0_EPC       $14
#define C0_PRID      $15
#define C0_EBASE     $15, 1
#define C0_CONFIG    $16
#define C0_CONFIG1   $16, 1
#define C0_ERROREPC  $30
#endif

/* Status */
#define ST_IE      0x00000001
#define ST_EXL     0x00000002
#define ST_ERL     0x00000004
#define ST_KSU_MASK 0x00000018
#define ST_UM      0x00000010 /* KSU = 0b10: user mode */
#define ST_IM(n)   (1u << (8 + (n)))
#define ST_IM_MASK 0x0000ff00
#define ST_BEV     0x00400000
#define ST_CU0     0x10000000

/* Cause */
#define CA_EXCCODE_SHIFT 2
#define CA_EXCCODE_MASK  0x0000007c
#define CA_IP(n)   (1u << (8 + (n)))
#define CA_IP_MASK 0x0000ff00
#define CA_IV      0x00800000
#define CA_PCI     0x04000000
#define CA_DC      0x08000000
#define CA_CE_SHIFT 28
#define CA_CE_MASK 0x30000000
#define CA_TI      0x40000000
#define CA_BD      0x80000000

/* ExcCode values (MIPS32 vol. III, table "Cause Register ExcCode Field") */
#define EXC_INT   0
#define EXC_MOD   1
#define EXC_TLBL  2
#define EXC_TLBS  3
#define EXC_ADEL  4
#define EXC_ADES  5
#define EXC_IBE   6
#define EXC_DBE   7
#define EXC_SYS   8
#define EXC_BP    9
#define EXC_RI    10
#define EXC_CPU   11
#define EXC_OV    12
#define EXC_TR    13

/* EntryLo fields */
#define ELO_G      0x00000001
#define ELO_V      0x00000002
#define ELO_D      0x00000004
#define ELO_C(c)   ((c) << 3)
#define ELO_PFN(pa) (((pa) >> 12) << 6)

/* PageMask values */
#define PM_4K   0x00000000
#define PM_16K  0x00006000
#define PM_64K  0x0001e000

/* Malta board, as seen from a guest in kseg1 (uncached). */
#define UART_BASE   0xb80003f8 /* 16550 at ISA I/O 0x3f8 (PCI I/O at PA 0x18000000) */
#define UART_THR    0
#define UART_IER    1
#define UART_FCR    2
#define UART_LCR    3
#define UART_MCR    4
#define UART_LSR    5
#define UART_DLL    0
#define UART_DLM    1
#define LSR_THRE    0x20
#define LSR_TEMT    0x40
#define MALTA_SOFTRES    0xbf000500 /* write 0x42 (GORESET) to reset the board */
#define MALTA_GORESET    0x42

/* Exception frame layout (word offsets, shared by crt0.S and lib.c). */
#define FR_REG(n)    ((n) * 4)
#define FR_HI        (32 * 4)
#define FR_LO        (33 * 4)
#define FR_EPC       (34 * 4)
#define FR_CAUSE     (35 * 4)
#define FR_STATUS    (36 * 4)
#define FR_BADVADDR  (37 * 4)
#define FR_VECTOR    (38 * 4) /* 0: TLB refill vector, 1: general vector */
#define FR_SIZE      (40 * 4)

#define VEC_REFILL   0
#define VEC_GENERAL  1

#endif
