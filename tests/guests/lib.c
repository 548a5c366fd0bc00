/*
 * Tiny freestanding runtime for kvmpy test guests: console, exit, dumps,
 * exception dispatch. Deliberately simple C; no libc.
 */
#include "lib.h"

/* ------------------------------------------------------------------ */
/* console                                                             */

#define UART_REG(off) (*(volatile u8 *)(UART_BASE + (off)))

void uart_init(void)
{
    UART_REG(UART_IER) = 0x00;
    UART_REG(UART_LCR) = 0x80;  /* DLAB=1 */
    UART_REG(UART_DLL) = 0x01;  /* 115200 baud from the 1.8432 MHz clock */
    UART_REG(UART_DLM) = 0x00;
    UART_REG(UART_LCR) = 0x03;  /* 8N1, DLAB=0 */
    UART_REG(UART_FCR) = 0x07;  /* FIFOs on, both cleared */
    UART_REG(UART_MCR) = 0x03;  /* DTR, RTS; OUT2=0 (no interrupt) */
}

void putc(int c)
{
    while (!(UART_REG(UART_LSR) & LSR_THRE))
        ;
    UART_REG(UART_THR) = (u8)c;
}

void puts(const char *s)
{
    while (*s)
        putc(*s++);
}

static const char hexdigits[] = "0123456789abcdef";

void puthex32(u32 v)
{
    for (int i = 28; i >= 0; i -= 4)
        putc(hexdigits[(v >> i) & 0xf]);
}

static void put_number(u32 v, u32 base, int width, int zero_pad, int negative)
{
    char buf[12];
    int n = 0;
    do {
        buf[n++] = hexdigits[v % base];
        v /= base;
    } while (v);
    if (negative)
        buf[n++] = '-';
    while (n < width && !zero_pad) {
        putc(' ');
        width--;
    }
    while (n < width) {
        putc('0');
        width--;
    }
    while (n)
        putc(buf[--n]);
}

void putudec(u32 v) { put_number(v, 10, 0, 0, 0); }

void putdec(s32 v)
{
    if (v < 0)
        put_number(0u - (u32)v, 10, 0, 0, 1);
    else
        put_number((u32)v, 10, 0, 0, 0);
}

void kprintf(const char *fmt, ...)
{
    __builtin_va_list ap;
    __builtin_va_start(ap, fmt);
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            putc(*fmt);
            continue;
        }
        fmt++;
        int zero_pad = 0, width = 0;
        if (*fmt == '0') {
            zero_pad = 1;
            fmt++;
        }
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        switch (*fmt) {
        case 's': {
            const char *s = __builtin_va_arg(ap, const char *);
            puts(s ? s : "(null)");
            break;
        }
        case 'c':
            putc(__builtin_va_arg(ap, int));
            break;
        case 'd': {
            s32 v = __builtin_va_arg(ap, s32);
            if (v < 0)
                put_number(0u - (u32)v, 10, width, zero_pad, 1);
            else
                put_number((u32)v, 10, width, zero_pad, 0);
            break;
        }
        case 'u':
            put_number(__builtin_va_arg(ap, u32), 10, width, zero_pad, 0);
            break;
        case 'x':
            put_number(__builtin_va_arg(ap, u32), 16, width, zero_pad, 0);
            break;
        case 'p':
            puthex32(__builtin_va_arg(ap, u32));
            break;
        case '%':
            putc('%');
            break;
        case '\0':
            fmt--;
            break;
        default:
            putc('%');
            putc(*fmt);
        }
    }
    __builtin_va_end(ap);
}

void exit(int code)
{
    kprintf("EXIT %d\n", code);
    while (!(UART_REG(UART_LSR) & LSR_TEMT))
        ;
    *(volatile u8 *)MALTA_SOFTRES = MALTA_GORESET;
    /* Not a tight branch-to-self loop: QEMU (TCG) may act on the reset
     * request only once the vCPU leaves its execution loop, which a tight
     * loop with interrupts off can postpone until the next timer interrupt.
     * WAIT halts the vCPU (interrupts are disabled: nothing wakes it). */
    for (;;)
        __asm__ __volatile__("di\n\tehb\n\twait" ::: "memory");
}

/* ------------------------------------------------------------------ */
/* libc bits                                                           */

void *memcpy(void *dst, const void *src, size_t n)
{
    u8 *d = dst;
    const u8 *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}

void *memmove(void *dst, const void *src, size_t n)
{
    u8 *d = dst;
    const u8 *s = src;
    if (d < s) {
        while (n--)
            *d++ = *s++;
    } else {
        while (n--)
            d[n] = s[n];
    }
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    u8 *d = dst;
    while (n--)
        *d++ = (u8)c;
    return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const u8 *x = a, *y = b;
    for (; n; n--, x++, y++)
        if (*x != *y)
            return *x - *y;
    return 0;
}

/* ------------------------------------------------------------------ */
/* dumps                                                               */

static const char *const regnames[32] = {
    "zero", "at", "v0", "v1", "a0", "a1", "a2", "a3",
    "t0",   "t1", "t2", "t3", "t4", "t5", "t6", "t7",
    "s0",   "s1", "s2", "s3", "s4", "s5", "s6", "s7",
    "t8",   "t9", "k0", "k1", "gp", "sp", "fp", "ra",
};

void dump_regs(const struct exc_frame *f, u32 tag)
{
    kprintf("REGS %u\n", tag);
    for (int i = 0; i < 32; i++) {
        kprintf("%s=%08x", regnames[i], f->regs[i]);
        putc((i & 3) == 3 ? '\n' : ' ');
    }
    kprintf("hi=%08x lo=%08x\n", f->hi, f->lo);
}

void dump_mem(const void *addr, u32 nbytes)
{
    const volatile u32 *p = addr;
    kprintf("MEM %08x %u\n", (u32)addr, nbytes);
    for (u32 i = 0; i < nbytes / 4; i++) {
        if ((i & 3) == 0)
            kprintf("%08x:", (u32)(p + i));
        kprintf(" %08x", p[i]);
        if ((i & 3) == 3 || i + 1 == nbytes / 4)
            putc('\n');
    }
}

/* ------------------------------------------------------------------ */
/* exceptions                                                          */

static exc_handler_t handlers[32];
static exc_handler_t refill_handler;
volatile u32 exc_default_action = EXC_ACTION_SKIP;
volatile u32 exc_count;
volatile u32 exc_last_code;
volatile u32 exc_last_vector;
volatile u32 probe_verbose;

extern volatile u32 __probe_result;
extern const u32 __probe_insn_probe_lw[], __probe_insn_probe_lh[],
    __probe_insn_probe_lb[], __probe_insn_probe_sw[], __probe_insn_probe_sh[],
    __probe_insn_probe_sb[];

static int is_probe_insn(u32 pc)
{
    return pc == (u32)__probe_insn_probe_lw || pc == (u32)__probe_insn_probe_lh ||
           pc == (u32)__probe_insn_probe_lb || pc == (u32)__probe_insn_probe_sw ||
           pc == (u32)__probe_insn_probe_sh || pc == (u32)__probe_insn_probe_sb;
}

void exc_set_handler(u32 exccode, exc_handler_t h) { handlers[exccode & 31] = h; }
void exc_set_refill_handler(exc_handler_t h) { refill_handler = h; }

const char *exc_name(u32 code)
{
    static const char *const names[] = {
        "Int", "Mod", "TLBL", "TLBS", "AdEL", "AdES", "IBE", "DBE",
        "Sys", "Bp",  "RI",   "CpU",  "Ov",   "Tr",
    };
    return code < ARRAY_SIZE(names) ? names[code] : "?";
}

void exc_print(const struct exc_frame *f)
{
    u32 code = (f->cause & CA_EXCCODE_MASK) >> CA_EXCCODE_SHIFT;
    kprintf("EXC %s code=%u bd=%u vec=%s epc=%08x", exc_name(code), code,
            f->cause >> 31, f->vector == VEC_REFILL ? "refill" : "general", f->epc);
    if (code >= EXC_MOD && code <= EXC_ADES)
        kprintf(" badva=%08x", f->badvaddr);
    if (code == EXC_CPU)
        kprintf(" ce=%u", (f->cause & CA_CE_MASK) >> CA_CE_SHIFT);
    if (code == EXC_INT)
        kprintf(" ip=%02x", (f->cause & CA_IP_MASK) >> 8);
    putc('\n');
}

static s32 sext16(u32 v) { return (s32)(short)(v & 0xffff); }

u32 exc_resume_pc(const struct exc_frame *f)
{
    if (!(f->cause & CA_BD))
        return f->epc + 4;
    u32 insn = *(const volatile u32 *)f->epc;
    u32 op = insn >> 26, rs = (insn >> 21) & 31, rt = (insn >> 16) & 31;
    s32 a = (s32)f->regs[rs], b = (s32)f->regs[rt];
    u32 target = f->epc + 4 + ((u32)sext16(insn) << 2);
    u32 fall = f->epc + 8;
    switch (op) {
    case 0: /* SPECIAL: jr, jalr */
        return f->regs[rs];
    case 1: /* REGIMM: bltz/bgez (+likely, +al) */
        if ((rt & 1) == 0)
            return a < 0 ? target : fall;
        return a >= 0 ? target : fall;
    case 2: case 3: /* j, jal */
        return ((f->epc + 4) & 0xf0000000) | ((insn & 0x03ffffff) << 2);
    case 4: case 20: return a == b ? target : fall; /* beq(l) */
    case 5: case 21: return a != b ? target : fall; /* bne(l) */
    case 6: case 22: return a <= 0 ? target : fall; /* blez(l) */
    case 7: case 23: return a > 0 ? target : fall;  /* bgtz(l) */
    }
    return fall;
}

void exc_skip(struct exc_frame *f) { f->epc = exc_resume_pc(f); }

void exc_default_handler(struct exc_frame *f)
{
    u32 code = (f->cause & CA_EXCCODE_MASK) >> CA_EXCCODE_SHIFT;
    if (code != EXC_INT && is_probe_insn(f->epc)) {
        __probe_result = code;
        if (probe_verbose)
            exc_print(f);
        f->epc += 4;
        return;
    }
    exc_print(f);
    if (code == EXC_INT || exc_default_action == EXC_ACTION_EXIT) {
        /* An interrupt cannot be skipped: its source is still asserted. */
        exit(code == EXC_INT ? 98 : 99);
    }
    exc_skip(f);
}

void exc_dispatch(struct exc_frame *f);
void exc_dispatch(struct exc_frame *f)
{
    u32 code = (f->cause & CA_EXCCODE_MASK) >> CA_EXCCODE_SHIFT;
    exc_count++;
    exc_last_code = code;
    exc_last_vector = f->vector;
    exc_handler_t h = f->vector == VEC_REFILL ? refill_handler : handlers[code];
    (h ? h : exc_default_handler)(f);
}

/* ------------------------------------------------------------------ */
/* TLB                                                                 */

u32 tlb_size(void) { return ((mfc0(CP0_CONFIG, 1) >> 25) & 0x3f) + 1; }

void tlb_write(int index, u32 entryhi, u32 lo0, u32 lo1, u32 pagemask, u32 asid_after)
{
    mtc0(CP0_PAGEMASK, 0, pagemask);
    mtc0(CP0_ENTRYHI, 0, entryhi);
    mtc0(CP0_ENTRYLO0, 0, lo0);
    mtc0(CP0_ENTRYLO1, 0, lo1);
    if (index < 0) {
        tlbwr();
    } else {
        mtc0(CP0_INDEX, 0, (u32)index);
        tlbwi();
    }
    mtc0(CP0_PAGEMASK, 0, 0);
    mtc0(CP0_ENTRYHI, 0, asid_after & 0xff);
}

void tlb_init(void)
{
    u32 n = tlb_size();
    mtc0(CP0_WIRED, 0, 0);
    for (u32 i = 0; i < n; i++)
        tlb_write((int)i, 0x80000000u + (i << 13), 0, 0, PM_4K, 0);
}

/* ------------------------------------------------------------------ */
/* RT_CALL targets (see guest.h)                                       */

void __rt_puts(struct exc_frame *f, const u32 *args);
void __rt_print_reg(struct exc_frame *f, const u32 *args);
void __rt_dump_regs(struct exc_frame *f, const u32 *args);
void __rt_dump_mem(struct exc_frame *f, const u32 *args);
void __rt_set_handler(struct exc_frame *f, const u32 *args);
void __rt_set_default_action(struct exc_frame *f, const u32 *args);
void __rt_exit(struct exc_frame *f, const u32 *args);

void __rt_puts(struct exc_frame *f, const u32 *args)
{
    (void)f;
    puts((const char *)args[0]);
}

void __rt_print_reg(struct exc_frame *f, const u32 *args)
{
    /* args[0] is the instruction "or $0, reg, $0": reg is its rs field. */
    kprintf("%s=%08x\n", (const char *)args[1], f->regs[(args[0] >> 21) & 31]);
}

void __rt_dump_regs(struct exc_frame *f, const u32 *args) { dump_regs(f, args[0]); }

void __rt_dump_mem(struct exc_frame *f, const u32 *args)
{
    (void)f;
    dump_mem((const void *)args[0], args[1]);
}

void __rt_set_handler(struct exc_frame *f, const u32 *args)
{
    (void)f;
    exc_set_handler(args[0], (exc_handler_t)args[1]);
}

void __rt_set_default_action(struct exc_frame *f, const u32 *args)
{
    (void)f;
    exc_default_action = args[0];
}

void __rt_exit(struct exc_frame *f, const u32 *args)
{
    (void)f;
    exit((int)args[0]);
}
