/*
 * User mode (Status.KSU=2, reached with eret): what user code may and may
 * not do. The user code runs from a TLB-mapped page pair at VA = PA
 * (kuseg), ASID 1; it records results in registers and returns to the
 * kernel with syscall. Every fault in user mode is printed by the default
 * handler (EPC is a user VA) and skipped.
 *
 * Phase 1 (HWREna = 0, CU0 = 0): rdhwr -> RI; mfc0, di, eret, cache,
 *   tlbwi -> CpU (CE=0); kseg0 load -> AdEL; kseg1 store -> AdES;
 *   unmapped kuseg load -> TLBL via the refill vector; mapped load works.
 * Phase 2 (HWREna = 0xf): rdhwr 0..3 work.
 * Phase 3 (HWREna = 0x1): rdhwr 3 -> RI, rdhwr 0 works.
 * Phase 4 (HWREna = 0, CU0 = 1): rdhwr works whatever HWREna says (the
 *   RDHWR check is "HWREna[rd] = 0 and not IsCoprocessor0Enabled()"), and
 *   mfc0 works in user mode.
 */
#include "guest.h"

.macro ENTER_USER entry, status
    la      $t0, 9f
    la      $t1, kernel_resume
    sw      $t0, 0($t1)
    la      $t0, \entry
    LI32 $t1, 0x1fffffff
    and     $t0, $t0, $t1           /* user VA = PA */
    mtc0    $t0, C0_EPC
    LI32 $t0, \status
    mtc0    $t0, C0_STATUS
    ehb
    eret
9:
.endm

    .text
    .set noreorder
    .globl main
main:
    PRINT "usermode\n"
    jal     tlb_init
    nop
    /* map the user page pair: VA = PA, 4K pages, ASID 1, D=1 V=1 C=2 */
    la      $s0, user_page
    LI32 $t1, 0x1fffffff
    and     $s0, $s0, $t1           /* PA of the even page */
    li      $a0, 0                  /* index */
    ori     $a1, $s0, 1             /* EntryHi: VPN2 | ASID 1 */
    srl     $a2, $s0, 6             /* PFN << 6 */
    ori     $a2, $a2, ELO_C(2) | ELO_D | ELO_V
    addiu   $a3, $a2, 0x40          /* next PFN */
    addiu   $sp, $sp, -24
    sw      $zero, 16($sp)          /* pagemask 4K */
    li      $t0, 1
    jal     tlb_write               /* leaves EntryHi.ASID = 1 */
    sw      $t0, 20($sp)            /* asid_after = 1 */
    addiu   $sp, $sp, 24
    SET_HANDLER EXC_SYS, sys_to_kernel

    PRINT "phase1\n"
    mtc0    $zero, C0_HWRENA
    ENTER_USER user_phase1, (ST_UM | ST_EXL)
    PRINT_REG "rdhwr_ri_unchanged", $s0
    PRINT_REG "mfc0_cpu_unchanged", $s1
    PRINT_REG "kseg0_load_unchanged", $s2
    PRINT_REG "mapped_load", $s3
    PRINT_REG "unmapped_load_unchanged", $s4
    PRINT_REG "user_store_readback", $s5
    mfc0    $t0, C0_STATUS
    andi    $t0, $t0, 0xff1f
    PRINT_REG "status_back_in_kernel", $t0

    PRINT "phase2\n"
    li      $t0, 0xf
    mtc0    $t0, C0_HWRENA
    ENTER_USER user_phase2, (ST_UM | ST_EXL)
    PRINT_REG "user_cpunum", $s0
    PRINT_REG "user_synci_step", $s1
    PRINT_REG "user_ccres", $s2
    PRINT_REG "user_cc_nonzero", $s3

    PRINT "phase3\n"
    li      $t0, 0x1
    mtc0    $t0, C0_HWRENA
    ENTER_USER user_phase3, (ST_UM | ST_EXL)
    PRINT_REG "user_cpunum", $s0
    PRINT_REG "user_ccres_ri_unchanged", $s2

    PRINT "phase4\n"
    mtc0    $zero, C0_HWRENA
    ENTER_USER user_phase4, (ST_CU0 | ST_UM | ST_EXL)
    PRINT_REG "user_cu0_ccres", $s2
    PRINT_REG "user_cu0_entryhi_asid", $s4
    mfc0    $t0, C0_STATUS
    LI32 $t1, ST_CU0 | 0xff1f
    and     $t0, $t0, $t1
    PRINT_REG "status_back_in_kernel", $t0
    EXIT 0

/*
 * void sys_to_kernel(struct exc_frame *f): a syscall from user mode ends
 * the user phase: resume at kernel_resume in kernel mode with CU0 = 0.
 */
sys_to_kernel:
    la      $t0, kernel_resume
    lw      $t0, 0($t0)
    sw      $t0, FR_EPC($a0)
    lw      $t1, FR_STATUS($a0)
    LI32 $t2, ~(ST_KSU_MASK | ST_CU0)
    and     $t1, $t1, $t2
    jr      $ra
    sw      $t1, FR_STATUS($a0)

/* ---- code and data below run in user mode at VA = PA ---- */
    .balign 8192
user_page:
user_phase1:
    li      $s0, 0x11
um_rdhwr:
    rdhwr   $s0, $0                 /* RI: HWREna = 0 */
    li      $s1, 0x22
um_mfc0:
    mfc0    $s1, C0_STATUS          /* CpU, CE=0 */
um_di:
    di                              /* CpU */
um_cache:
    cache   0x15, 0($zero)          /* CpU */
um_tlbwi:
    tlbwi                           /* CpU */
um_eret:
    eret                            /* CpU */
    li      $s2, 0x33
    lui     $t0, 0x8000
um_lw_kseg0:
    lw      $s2, 0($t0)             /* AdEL: kseg0 */
    lui     $t0, 0xb800
um_sw_kseg1:
    sw      $s2, 0x3f8($t0)         /* AdES: kseg1 (the UART) */
    la      $t0, user_data
    LI32 $t1, 0x1fffffff
    and     $t0, $t0, $t1
    lw      $s3, 0($t0)             /* mapped: works */
    li      $s4, 0x44
    lui     $t2, 0x0040
um_lw_unmapped:
    lw      $s4, 0($t2)             /* unmapped: TLB refill */
    li      $t3, 0x5a5a
    sw      $t3, 4($t0)             /* mapped store */
    lw      $s5, 4($t0)
    syscall

user_phase2:
    li      $s3, 0
    rdhwr   $s0, $0
    rdhwr   $s1, $1
    rdhwr   $s2, $3
    rdhwr   $t0, $2
    sltu    $s3, $zero, $t0         /* CC != 0 */
    syscall

user_phase3:
    li      $s0, 0x55
    li      $s2, 0x66
    rdhwr   $s0, $0
um_rdhwr3:
    rdhwr   $s2, $3                 /* RI: HWREna bit 3 clear */
    syscall

user_phase4:
    li      $s2, 0x66
    rdhwr   $s2, $3                 /* allowed: CU0 = 1 */
    li      $s4, 0x77
    mfc0    $s4, C0_ENTRYHI         /* allowed: CU0 = 1 */
    andi    $s4, $s4, 0xff
    syscall

    .balign 64
user_data:
    .word 0x0005eed5, 0

    .data
    .balign 4
kernel_resume:
    .word 0
