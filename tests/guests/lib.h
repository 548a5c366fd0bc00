/*
 * Tiny freestanding runtime for kvmpy test guests (C side).
 * See README.md in this directory for the conventions.
 */
#ifndef GUEST_LIB_H
#define GUEST_LIB_H

#include "mips.h"

typedef unsigned int u32;
typedef int s32;
typedef unsigned short u16;
typedef unsigned char u8;
typedef unsigned long long u64;
typedef unsigned int size_t;

/* ---- console (16550 UART, polled) ---- */
void uart_init(void);
void putc(int c);
void puts(const char *s); /* no newline appended */
void puthex32(u32 v);     /* exactly 8 lower-case hex digits */
void putdec(s32 v);
void putudec(u32 v);
/* printf subset: %s %c %d %u %x %08x %p %% (width and '0' flag supported) */
void kprintf(const char *fmt, ...);

/* ---- termination ---- */
/* Prints "EXIT <code>\n", waits for the UART to drain, resets the board. */
__attribute__((noreturn)) void exit(int code);

/* ---- freestanding libc bits (gcc may emit calls to these) ---- */
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);

/* ---- dumps ---- */
struct exc_frame {
    u32 regs[32];
    u32 hi, lo;
    u32 epc, cause, status, badvaddr;
    u32 vector; /* VEC_REFILL or VEC_GENERAL */
    u32 pad;
};

void dump_regs(const struct exc_frame *f, u32 tag);
void dump_mem(const void *addr, u32 nbytes);

/* ---- exceptions ---- */
typedef void (*exc_handler_t)(struct exc_frame *f);

/* Handler for one ExcCode taken through the general vector (0x180). */
void exc_set_handler(u32 exccode, exc_handler_t h);
/* Handler for the TLB refill vector (0x000). */
void exc_set_refill_handler(exc_handler_t h);

enum exc_action { EXC_ACTION_SKIP = 0, EXC_ACTION_EXIT = 1 };
/* What exc_default_handler does after printing (default: skip). */
extern volatile u32 exc_default_action;

/* Statistics kept by the dispatcher (for every exception taken). */
extern volatile u32 exc_count;
extern volatile u32 exc_last_code;
extern volatile u32 exc_last_vector;

/* Prints the standard "EXC ..." line for f. */
void exc_print(const struct exc_frame *f);
/* Standard handler: exc_print, then skip the instruction or exit. */
void exc_default_handler(struct exc_frame *f);
/* Resume after the faulting instruction: EPC+4, or if Cause.BD the
 * branch's outcome (target if taken, EPC+8 if not), found by decoding the
 * branch at EPC against the saved registers. */
void exc_skip(struct exc_frame *f);
/* The address where execution continues after the instruction at f->epc
 * (the branch if BD) completes. */
u32 exc_resume_pc(const struct exc_frame *f);
const char *exc_name(u32 exccode);

/* ---- probes: one access that may fault ----
 * Each returns 0 if the access completed, else the ExcCode of the exception
 * it raised (the access is then skipped and *out is left untouched).
 * Exceptions are reported by exc_default_handler only if probe_verbose. */
u32 probe_lw(u32 addr, u32 *out);
u32 probe_lh(u32 addr, u32 *out);
u32 probe_lb(u32 addr, u32 *out);
u32 probe_sw(u32 addr, u32 val);
u32 probe_sh(u32 addr, u32 val);
u32 probe_sb(u32 addr, u32 val);
extern volatile u32 probe_verbose;

/* ---- CP0 access ---- */
#define mfc0(reg, sel) ({ u32 __v; \
    __asm__ __volatile__("mfc0 %0, $%1, %2" : "=r"(__v) : "i"(reg), "i"(sel)); __v; })
#define mtc0(reg, sel, v) do { \
    __asm__ __volatile__("mtc0 %z0, $%1, %2\n\tehb" :: "Jr"((u32)(v)), "i"(reg), "i"(sel) : "memory"); \
} while (0)

static inline void tlbwi(void) { __asm__ __volatile__("tlbwi\n\tehb" ::: "memory"); }
static inline void tlbwr(void) { __asm__ __volatile__("tlbwr\n\tehb" ::: "memory"); }
static inline void tlbp(void) { __asm__ __volatile__("tlbp\n\tehb" ::: "memory"); }
static inline void tlbr(void) { __asm__ __volatile__("tlbr\n\tehb" ::: "memory"); }

static inline u32 irq_disable(void)
{
    u32 v;
    __asm__ __volatile__("di %0\n\tehb" : "=r"(v) :: "memory");
    return v;
}
static inline void irq_enable(void) { __asm__ __volatile__("ei\n\tehb" ::: "memory"); }

/* ---- TLB helpers ---- */
/* Number of TLB entries (Config1.MMUSize + 1). */
u32 tlb_size(void);
/* Make every TLB entry invalid with a unique VPN2 in kseg0 (never looked
 * up), PageMask 4K; sets Wired = 0 and EntryHi = 0 (ASID 0). */
void tlb_init(void);
/* Write one entry: index < 0 means tlbwr (random). Leaves EntryHi = ASID
 * 'asid_after' so the current address space is well defined. */
void tlb_write(int index, u32 entryhi, u32 lo0, u32 lo1, u32 pagemask, u32 asid_after);

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
