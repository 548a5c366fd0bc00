/* Smoke test: console output, kprintf, a few loops. */
#include "lib.h"

static u32 fib(u32 n)
{
    u32 a = 0, b = 1;
    while (n--) {
        u32 t = a + b;
        a = b;
        b = t;
    }
    return a;
}

int main(void)
{
    puts("hello from kvmpy test guest\n");
    kprintf("dec %d %d %u\n", 0, -12345, 4000000000u);
    kprintf("hex %x %08x %p\n", 0xbeef, 0x1234, 0xdeadbeef);
    kprintf("str [%s] char [%c] pct [%%] width [%5d] [%05u]\n", "abc", 'Z', 42, 42);
    /* fib(47) = 2971215073 is the largest Fibonacci number below 2^32. */
    kprintf("fib(10)=%u fib(47)=%u\n", fib(10), fib(47));
    return 0;
}
