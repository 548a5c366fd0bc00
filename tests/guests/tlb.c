/*
 * The guest-managed TLB: tlbwi tlbwr tlbp tlbr, 4K and 16K pages, TLB
 * refill (through the refill vector, for loads, stores and instruction
 * fetches, and from a branch delay slot), TLB invalid, TLB modified, ASID
 * matching versus global entries, Wired, and a TLB miss while Status.EXL=1
 * (general vector, EPC not written).
 *
 * Mapped pages are backed by physical memory at 4-8 MiB, written and
 * checked through kseg0 (unmapped) aliases.
 */
#include "lib.h"

#define KSEG0(pa) ((pa) | 0x80000000u)
#define RD(va) (*(volatile u32 *)(va))

#define WIRED 8

/* Region served by the refill handler: VA 0x20000000.. -> PA 0x00600000.. */
#define REFILL_VA 0x20000000u
#define REFILL_PA 0x00600000u
#define REFILL_LEN 0x00010000u
/* Code mapping served by the refill handler: VA 0x74000000.. -> code page */
#define CODE_VA 0x74000000u

static volatile u32 refills;
static u32 code_pa; /* PA of the even page holding mapped_fn */

static void print_lookup(const char *name, u32 va, u32 asid)
{
    u32 v = 0;
    u32 r = probe_lw(va, &v);
    if (r)
        kprintf("%s: va=%08x asid=%u -> exception %s\n", name, va, asid, exc_name(r));
    else
        kprintf("%s: va=%08x asid=%u -> %08x\n", name, va, asid, v);
}

/* TLB refill handler: maps the REFILL and CODE regions with tlbwr, lets
 * everything else fail (probe) or be reported by the default handler. */
static void refill_handler(struct exc_frame *f)
{
    u32 va = f->badvaddr;
    u32 ehi = mfc0(CP0_ENTRYHI, 0);
    u32 ctx = mfc0(CP0_CONTEXT, 0);
    kprintf("REFILL %s bd=%u badva=%08x entryhi=%08x context.badvpn2=%05x\n",
            exc_name((f->cause & CA_EXCCODE_MASK) >> 2), f->cause >> 31, va, ehi,
            (ctx >> 4) & 0x7ffff);
    u32 vpn2 = va & 0xffffe000u;
    u32 pa;
    if (va - REFILL_VA < REFILL_LEN)
        pa = REFILL_PA + (vpn2 - REFILL_VA);
    else if ((va & 0xffffe000u) == CODE_VA)
        pa = code_pa;
    else {
        exc_default_handler(f);
        return;
    }
    refills++;
    /* EntryHi already holds VPN2 and the current ASID: only EntryLo and
     * PageMask need to be written before tlbwr. */
    mtc0(CP0_PAGEMASK, 0, PM_4K);
    mtc0(CP0_ENTRYLO0, 0, ELO_PFN(pa) | ELO_C(2) | ELO_D | ELO_V | ELO_G);
    mtc0(CP0_ENTRYLO1, 0, ELO_PFN(pa + 0x1000) | ELO_C(2) | ELO_D | ELO_V | ELO_G);
    tlbwr();
    /* retry the instruction: EPC unchanged */
}

/* TLB modified handler: report, then make the page writable and retry. */
static void mod_handler(struct exc_frame *f)
{
    u32 ehi = mfc0(CP0_ENTRYHI, 0);
    kprintf("MOD badva=%08x entryhi=%08x\n", f->badvaddr, ehi);
    tlbp(); /* EntryHi holds the faulting VPN2 and ASID */
    u32 idx = mfc0(CP0_INDEX, 0);
    tlbr();
    if (f->badvaddr & 0x1000)
        mtc0(CP0_ENTRYLO1, 0, mfc0(CP0_ENTRYLO1, 0) | ELO_D);
    else
        mtc0(CP0_ENTRYLO0, 0, mfc0(CP0_ENTRYLO0, 0) | ELO_D);
    tlbwi();
    kprintf("MOD fixed index=%u\n", idx);
}

/* TLB miss with EXL=1: report where EPC points, resume there. */
static volatile u32 exl_seen_epc;
static void exl_tlbl_handler(struct exc_frame *f)
{
    exl_seen_epc = f->epc;
    kprintf("EXL-MISS vec=%s code=%s badva=%08x\n", f->vector == VEC_REFILL ? "refill" : "general",
            exc_name((f->cause & CA_EXCCODE_MASK) >> 2), f->badvaddr);
    /* EPC was not written: it still holds what exl_access put there. */
}

/* Assembly helpers with fixed instruction layout. */
u32 exl_access(u32 va);
u32 bd_load(u32 va);
u32 mapped_fn(void);
extern const u32 exl_resume[];
__asm__(
    "   .text\n"
    "   .set push\n"
    "   .set noreorder\n"
    /* u32 exl_access(u32 va): EPC = exl_resume, EXL = 1, load from va */
    "   .globl exl_access\n"
    "exl_access:\n"
    "   la      $t0, exl_resume\n"
    "   mtc0    $t0, $14\n"
    "   mfc0    $t1, $12\n"
    "   ori     $t2, $t1, 2\n"
    "   mtc0    $t2, $12\n"
    "   ehb\n"
    "   li      $v0, 0x1111\n"
    "   lw      $v0, 0($a0)\n"
    "   li      $v0, 0x2222\n"          /* not reached: the handler erets to exl_resume */
    "   .globl exl_resume\n"
    "exl_resume:\n"
    "   mfc0    $t1, $12\n"             /* eret cleared EXL */
    "   andi    $t1, $t1, 2\n"
    "   jr      $ra\n"
    "   or      $v0, $v0, $t1\n"
    /* u32 bd_load(u32 va): a load in the delay slot of a taken branch */
    "   .globl bd_load\n"
    "bd_load:\n"
    "   li      $v0, 0\n"
    "   .globl bd_load_branch\n"
    "bd_load_branch:\n"
    "   beq     $zero, $zero, 1f\n"
    "   lw      $v0, 0($a0)\n"
    "   li      $v0, 0xbad\n"
    "1: jr      $ra\n"
    "   nop\n"
    /* mapped_fn: called through a TLB mapping; alone in its page */
    "   .balign 8192\n"
    "   .globl mapped_fn\n"
    "mapped_fn:\n"
    "   jr      $ra\n"
    "   li      $v0, 0x1234\n"
    "   .balign 8192\n"
    "   .set pop\n");

static void tlbp_report(const char *name, u32 entryhi)
{
    mtc0(CP0_ENTRYHI, 0, entryhi);
    tlbp();
    u32 idx = mfc0(CP0_INDEX, 0);
    if (idx & 0x80000000u)
        kprintf("tlbp %s: miss\n", name);
    else
        kprintf("tlbp %s: hit index=%u\n", name, idx);
}

static void tlbr_report(u32 index)
{
    mtc0(CP0_INDEX, 0, index);
    tlbr();
    /* Only architecturally defined fields: EntryHi VPN2|ASID, EntryLo
     * PFN|C|D|V|G (bits 29..0), PageMask Mask (bits 28..13). */
    kprintf("tlbr %u: entryhi=%08x lo0=%08x lo1=%08x pagemask=%08x\n", index,
            mfc0(CP0_ENTRYHI, 0) & 0xffffe0ffu, mfc0(CP0_ENTRYLO0, 0) & 0x3fffffffu,
            mfc0(CP0_ENTRYLO1, 0) & 0x3fffffffu, mfc0(CP0_PAGEMASK, 0) & 0x1fffe000u);
    mtc0(CP0_ENTRYHI, 0, 0);
}

int main(void)
{
    puts("tlb\n");
    u32 n = tlb_size();
    kprintf("tlb entries >= 16: %u\n", n >= 16);
    tlb_init();
    mtc0(CP0_WIRED, 0, WIRED);
    kprintf("wired=%u\n", mfc0(CP0_WIRED, 0));
    exc_set_refill_handler(refill_handler);
    exc_set_handler(EXC_MOD, mod_handler);
    probe_verbose = 1;

    /* --- 4K pages, tlbwi, index 1: VA 0x10000000 -> PA 0x400000/0x401000 --- */
    RD(KSEG0(0x00400000)) = 0x11111111;
    RD(KSEG0(0x00401000)) = 0x22222222;
    RD(KSEG0(0x00400ffc)) = 0x0000fffc;
    tlb_write(1, 0x10000000, ELO_PFN(0x00400000) | ELO_C(2) | ELO_D | ELO_V,
              ELO_PFN(0x00401000) | ELO_C(2) | ELO_D | ELO_V, PM_4K, 0);
    print_lookup("4k even", 0x10000000, 0);
    print_lookup("4k odd", 0x10001000, 0);
    print_lookup("4k even end", 0x10000ffc, 0);
    RD(0x10000004) = 0x33333333; /* through the mapping */
    kprintf("4k store via mapping, kseg0 read: %08x\n", RD(KSEG0(0x00400004)));
    tlbp_report("4k", 0x10000000);
    tlbp_report("4k odd half", 0x10001000); /* same VPN2 */
    tlbp_report("unmapped", 0x0f000000);
    tlbr_report(1);

    /* --- 16K pages, index 2: VA 0x30000000 -> PA 0x800000 / 0x804000 --- */
    RD(KSEG0(0x00803ffc)) = 0x44444444;
    RD(KSEG0(0x00805000)) = 0x55555555;
    tlb_write(2, 0x30000000, ELO_PFN(0x00800000) | ELO_C(2) | ELO_D | ELO_V,
              ELO_PFN(0x00804000) | ELO_C(2) | ELO_D | ELO_V, PM_16K, 0);
    print_lookup("16k even last word", 0x30003ffc, 0);
    print_lookup("16k odd +0x1000", 0x30005000, 0);
    tlbp_report("16k", 0x30006000); /* VPN2 compare ignores bits 14..13 */
    tlbr_report(2);

    /* --- invalid: index 3, even page V=0, odd page V=1 --- */
    RD(KSEG0(0x00411000)) = 0x77777777;
    tlb_write(3, 0x40000000, ELO_PFN(0x00410000) | ELO_C(2) | ELO_D,
              ELO_PFN(0x00411000) | ELO_C(2) | ELO_D | ELO_V, PM_4K, 0);
    print_lookup("invalid even (load)", 0x40000000, 0);
    kprintf("invalid even (store): %s\n", exc_name(probe_sw(0x40000010, 1)));
    print_lookup("valid odd", 0x40001000, 0);

    /* --- modified: index 4, D=0; the Mod handler sets D and retries --- */
    RD(KSEG0(0x00420000)) = 0x88888888;
    tlb_write(4, 0x50000000, ELO_PFN(0x00420000) | ELO_C(2) | ELO_V,
              ELO_PFN(0x00421000) | ELO_C(2) | ELO_V, PM_4K, 0);
    print_lookup("clean page load", 0x50000000, 0);
    u32 r = probe_sw(0x50000008, 0x99999999);
    kprintf("store to clean page: result=%u kseg0 read=%08x\n", r, RD(KSEG0(0x00420008)));
    r = probe_sw(0x5000000c, 0xaaaaaaaa);
    kprintf("second store (now dirty): result=%u kseg0 read=%08x\n", r, RD(KSEG0(0x0042000c)));

    /* --- ASID: index 5 non-global ASID 5; index 6 global --- */
    RD(KSEG0(0x00430000)) = 0x0a51d005;
    RD(KSEG0(0x00440000)) = 0x0610ba10;
    tlb_write(5, 0x60000000 | 5, ELO_PFN(0x00430000) | ELO_C(2) | ELO_D | ELO_V,
              ELO_PFN(0x00431000) | ELO_C(2) | ELO_D | ELO_V, PM_4K, 5);
    tlb_write(6, 0x70000000 | 9, ELO_PFN(0x00440000) | ELO_C(2) | ELO_D | ELO_V | ELO_G,
              ELO_PFN(0x00441000) | ELO_C(2) | ELO_D | ELO_V | ELO_G, PM_4K, 5);
    print_lookup("asid match", 0x60000000, 5);
    print_lookup("global", 0x70000000, 5);
    mtc0(CP0_ENTRYHI, 0, 6);
    print_lookup("asid mismatch", 0x60000000, 6);
    print_lookup("global", 0x70000000, 6);
    tlbp_report("asid 5 entry with asid 6", 0x60000000 | 6);
    tlbp_report("asid 5 entry with asid 5", 0x60000000 | 5);
    tlbp_report("global entry with asid 6", 0x70000000 | 6);
    tlbr_report(6); /* G reads back as 1 in both EntryLo */
    mtc0(CP0_ENTRYHI, 0, 0);

    /* --- refill: load and store misses served by tlbwr --- */
    RD(KSEG0(REFILL_PA + 0x10)) = 0x66666666;
    RD(KSEG0(REFILL_PA + 0x14)) = 0x67676767;
    print_lookup("refill load", REFILL_VA + 0x10, 0);
    print_lookup("refill again (no refill)", REFILL_VA + 0x14, 0);
    /* Where tlbwr put it is random: only check the range. */
    mtc0(CP0_ENTRYHI, 0, REFILL_VA);
    tlbp();
    u32 idx = mfc0(CP0_INDEX, 0);
    kprintf("tlbwr entry found=%u index>=wired=%u index<size=%u\n", !(idx >> 31),
            (idx & 0x7fffffff) >= WIRED, (idx & 0x7fffffff) < n);
    mtc0(CP0_ENTRYHI, 0, 0);
    r = probe_sw(REFILL_VA + 0x2000, 0x12121212);
    kprintf("refill store: result=%u kseg0 read=%08x\n", r, RD(KSEG0(REFILL_PA + 0x2000)));

    /* --- refill from a branch delay slot: EPC = branch, BD = 1, the
     *     branch is re-executed after the refill --- */
    RD(KSEG0(REFILL_PA + 0x4000)) = 0x0bd0bd00;
    kprintf("bd load: %08x\n", bd_load(REFILL_VA + 0x4000));

    /* --- instruction fetch refill: call mapped_fn through VA 0x74000000 --- */
    code_pa = (u32)mapped_fn & 0x1fffffffu;
    u32 (*fn)(void) = (u32(*)(void))(CODE_VA | ((u32)mapped_fn & 0x1fffu));
    kprintf("mapped call: %08x\n", fn());
    kprintf("refills: %u\n", refills);

    /* --- miss with EXL=1: general vector, EPC not updated --- */
    exc_set_handler(EXC_TLBL, exl_tlbl_handler);
    u32 v = exl_access(0x7f000000);
    kprintf("exl miss: resumed at exl_resume=%u v0=%08x\n",
            exl_seen_epc == (u32)exl_resume, v);
    exc_set_handler(EXC_TLBL, 0);
    return 0;
}
