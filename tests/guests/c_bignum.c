/*
 * Arbitrary precision in base 10^4 limbs: BN_FACT! and 2^BN_POW2 in
 * decimal. The full numbers are printed when BN_PRINT_ALL; otherwise the
 * digit count, digit sum and the first and last 30 digits.
 */
#include "lib.h"

#ifndef BN_FACT
#define BN_FACT 100
#endif
#ifndef BN_POW2
#define BN_POW2 1000
#endif
#ifndef BN_PRINT_ALL
#define BN_PRINT_ALL 1
#endif
#define BN_LIMBS 40000 /* 160000 decimal digits */
#define BASE 10000u

static u32 limbs[BN_LIMBS]; /* little-endian: limbs[0] is the lowest */
static u32 nlimbs;
static char digits[BN_LIMBS * 4 + 1];

static void bn_set(u32 v)
{
    nlimbs = 0;
    do {
        limbs[nlimbs++] = v % BASE;
        v /= BASE;
    } while (v);
}

/* limbs *= m, m <= 100000 (limb * m + carry < 2^32) */
static void bn_mul_small(u32 m)
{
    u32 carry = 0;
    for (u32 i = 0; i < nlimbs; i++) {
        u32 t = limbs[i] * m + carry;
        limbs[i] = t % BASE;
        carry = t / BASE;
    }
    while (carry) {
        limbs[nlimbs++] = carry % BASE;
        carry /= BASE;
    }
}

static u32 bn_to_decimal(void)
{
    u32 n = 0;
    u32 top = limbs[nlimbs - 1];
    char tmp[4];
    int k = 0;
    do {
        tmp[k++] = (char)('0' + top % 10);
        top /= 10;
    } while (top);
    while (k)
        digits[n++] = tmp[--k];
    for (int i = (int)nlimbs - 2; i >= 0; i--) {
        u32 v = limbs[i];
        digits[n + 3] = (char)('0' + v % 10);
        v /= 10;
        digits[n + 2] = (char)('0' + v % 10);
        v /= 10;
        digits[n + 1] = (char)('0' + v % 10);
        v /= 10;
        digits[n] = (char)('0' + v);
        n += 4;
    }
    digits[n] = 0;
    return n;
}

static void report(const char *name)
{
    u32 n = bn_to_decimal();
    u32 sum = 0;
    for (u32 i = 0; i < n; i++)
        sum += (u32)(digits[i] - '0');
    kprintf("%s: digits=%u digitsum=%u\n", name, n, sum);
    if (BN_PRINT_ALL) {
        kprintf("%s=%s\n", name, digits);
    } else {
        char head[31];
        memcpy(head, digits, 30);
        head[30] = 0;
        kprintf("%s head=%s tail=%s\n", name, head, digits + n - 30);
    }
}

int main(void)
{
    puts("bignum\n");
    bn_set(1);
    for (u32 i = 2; i <= BN_FACT; i++)
        bn_mul_small(i);
    kprintf("n=%u ", BN_FACT);
    report("fact");
    bn_set(1);
    for (u32 i = 0; i < BN_POW2; i++)
        bn_mul_small(2);
    kprintf("n=%u ", BN_POW2);
    report("pow2");
    return 0;
}
