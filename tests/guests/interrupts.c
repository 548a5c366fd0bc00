/*
 * Interrupts: software interrupts (Cause.IP0/IP1) and their masking by
 * Status.IE, Status.IM and Status.EXL; the Count/Compare timer (Cause.TI
 * and IP7 on Malta) polled with interrupts off, taken via ei + wait, and
 * taken from a spin loop. Only the IP bits this guest drives (IP0, IP1,
 * IP7) are ever printed: the board may assert others (i8259 on IP2).
 *
 * Output is independent of timing: each timer step waits (bounded) for
 * the event and prints only what happened, never Count values.
 */
#include "lib.h"

#define IP_MINE (CA_IP(0) | CA_IP(1) | CA_IP(7))
#define TIMER_DELTA 0x2000u
/* Large enough that the timer practically never fires between ei and
 * wait (the handler copes if it does). */
#define TIMER_DELTA_WAIT 0x20000u
#define POLL_LIMIT 200000000u

static volatile u32 irq_count;
static volatile u32 timer_irqs;
static volatile u32 wait_epc_ok;

/* wait_for_irq: ei; wait; di. An interrupt that arrives between ei and
 * wait would leave wait sleeping forever, so the handler moves such an EPC
 * forward to wait_resume (Linux's r4k_wait rollback idea, in reverse). */
extern const u32 wait_for_irq_start[], wait_resume[];
void wait_for_irq(void);
__asm__(
    "   .text\n"
    "   .set push\n"
    "   .set noreorder\n"
    "   .globl wait_for_irq\n"
    "   .globl wait_for_irq_start\n"
    "wait_for_irq:\n"
    "wait_for_irq_start:\n"
    "   ei\n"
    "   ehb\n"
    "   wait\n"
    "   .globl wait_resume\n"
    "wait_resume:\n"
    "   di\n"
    "   ehb\n"
    "   jr      $ra\n"
    "   nop\n"
    "   .set pop\n");

static void int_handler(struct exc_frame *f)
{
    u32 ip = f->cause & IP_MINE;
    irq_count++;
    kprintf("INT ip=%02x ti=%u\n", ip >> 8, (f->cause & CA_TI) != 0);
    if (ip & (CA_IP(0) | CA_IP(1))) {
        /* acknowledge software interrupts by clearing them in Cause */
        mtc0(CP0_CAUSE, 0, mfc0(CP0_CAUSE, 0) & ~(CA_IP(0) | CA_IP(1)));
    }
    if (ip & CA_IP(7)) {
        timer_irqs++;
        /* An interrupt that ends WAIT is taken with EPC = the instruction
         * after the WAIT (MIPS32 vol. II, WAIT). */
        if (f->epc == (u32)wait_resume)
            wait_epc_ok = 1;
        else if (f->epc >= (u32)wait_for_irq_start && f->epc < (u32)wait_resume)
            f->epc = (u32)wait_resume; /* arrived before WAIT ran */
        /* writing Compare acknowledges the timer; also mask IP7 */
        mtc0(CP0_COMPARE, 0, mfc0(CP0_COUNT, 0) - 1);
        f->status &= ~ST_IM(7);
    }
}

static void show_cause(const char *what)
{
    u32 c = mfc0(CP0_CAUSE, 0);
    kprintf("%s: ip=%02x ti=%u irqs=%u\n", what, (c & IP_MINE) >> 8, (c & CA_TI) != 0, irq_count);
}

/*
 * Both polling loops read Count on every iteration. Architecturally that is
 * unnecessary, but QEMU 7.2 without -icount only notices Count == Compare
 * when the guest reads Count or when its main loop gets to run its timers,
 * which a tight guest loop can starve (see tests/qemu_ref.py).
 */
static int wait_ti(void)
{
    for (u32 i = 0; i < POLL_LIMIT; i++) {
        (void)mfc0(CP0_COUNT, 0);
        if (mfc0(CP0_CAUSE, 0) & CA_TI)
            return 1;
    }
    return 0;
}

int main(void)
{
    puts("interrupts\n");
    exc_set_handler(EXC_INT, int_handler);
    /* No timer interrupt pending from boot: Compare far in the future. */
    mtc0(CP0_COMPARE, 0, mfc0(CP0_COUNT, 0) - 1);

    /* software interrupt 0: pending but not taken while IE = 0 */
    mtc0(CP0_STATUS, 0, ST_IM(0));
    mtc0(CP0_CAUSE, 0, CA_IP(0));
    show_cause("sw0 set, IE=0");
    mtc0(CP0_STATUS, 0, ST_IM(0) | ST_IE); /* taken now */
    mtc0(CP0_STATUS, 0, 0);
    show_cause("sw0 after IE=1");

    /* software interrupt 1 with only IM0 enabled: masked */
    mtc0(CP0_STATUS, 0, ST_IM(0) | ST_IE);
    mtc0(CP0_CAUSE, 0, CA_IP(1));
    show_cause("sw1 set, IM1=0");
    mtc0(CP0_STATUS, 0, ST_IM(1) | ST_IM(0) | ST_IE); /* taken now */
    mtc0(CP0_STATUS, 0, 0);
    show_cause("sw1 after IM1=1");

    /* EXL=1 masks interrupts too */
    mtc0(CP0_STATUS, 0, ST_IM(1) | ST_IE | ST_EXL);
    mtc0(CP0_CAUSE, 0, CA_IP(1));
    show_cause("sw1 set, EXL=1");
    mtc0(CP0_STATUS, 0, ST_IM(1) | ST_IE); /* taken now */
    mtc0(CP0_STATUS, 0, 0);
    show_cause("sw1 after EXL=0");

    /* timer, polled with interrupts disabled */
    mtc0(CP0_COMPARE, 0, mfc0(CP0_COUNT, 0) + TIMER_DELTA);
    kprintf("timer poll: fired=%u\n", wait_ti());
    show_cause("timer pending");
    mtc0(CP0_COMPARE, 0, mfc0(CP0_COUNT, 0) - 1);
    show_cause("after Compare write");

    /* timer interrupt while in WAIT */
    mtc0(CP0_COMPARE, 0, mfc0(CP0_COUNT, 0) + TIMER_DELTA_WAIT);
    mtc0(CP0_STATUS, 0, ST_IM(7));
    wait_for_irq();
    kprintf("wait: timer irqs=%u epc after wait=%u\n", timer_irqs, wait_epc_ok);
    show_cause("after wait");

    /* timer interrupt while spinning */
    mtc0(CP0_COMPARE, 0, mfc0(CP0_COUNT, 0) + TIMER_DELTA);
    mtc0(CP0_STATUS, 0, ST_IM(7) | ST_IE);
    for (u32 i = 0; i < POLL_LIMIT && timer_irqs < 2; i++)
        (void)mfc0(CP0_COUNT, 0);
    mtc0(CP0_STATUS, 0, 0);
    kprintf("spin: timer irqs=%u\n", timer_irqs);
    show_cause("end");
    return 0;
}
