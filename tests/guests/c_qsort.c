/*
 * Quicksort of QS_N pseudo-random u32 (LCG x' = 1103515245 x + 12345,
 * x0 = 42, value = x'), repeated QS_ROUNDS times on fresh data (round r
 * continues the same LCG stream). Prints, for the last round, whether the
 * array is sorted, a position-weighted checksum sum((i + 1) * a[i]) mod
 * 2^32 and a few elements.
 */
#include "lib.h"

#ifndef QS_N
#define QS_N 3000
#endif
#ifndef QS_ROUNDS
#define QS_ROUNDS 1
#endif

static u32 a[QS_N];

static void insertion_sort(u32 *v, int lo, int hi)
{
    for (int i = lo + 1; i <= hi; i++) {
        u32 key = v[i];
        int j = i - 1;
        while (j >= lo && v[j] > key) {
            v[j + 1] = v[j];
            j--;
        }
        v[j + 1] = key;
    }
}

static void quicksort(u32 *v, int lo, int hi)
{
    while (hi - lo > 16) {
        /* median of three, Hoare partition */
        int mid = lo + (hi - lo) / 2;
        u32 p0 = v[lo], p1 = v[mid], p2 = v[hi];
        u32 pivot = p0 < p1 ? (p1 < p2 ? p1 : (p0 < p2 ? p2 : p0))
                            : (p0 < p2 ? p0 : (p1 < p2 ? p2 : p1));
        int i = lo - 1, j = hi + 1;
        for (;;) {
            do i++; while (v[i] < pivot);
            do j--; while (v[j] > pivot);
            if (i >= j)
                break;
            u32 t = v[i];
            v[i] = v[j];
            v[j] = t;
        }
        /* recurse into the smaller half, loop on the larger */
        if (j - lo < hi - j) {
            quicksort(v, lo, j);
            lo = j + 1;
        } else {
            quicksort(v, j + 1, hi);
            hi = j;
        }
    }
    insertion_sort(v, lo, hi);
}

int main(void)
{
    puts("qsort\n");
    u32 x = 42;
    for (u32 r = 0; r < QS_ROUNDS; r++) {
        for (u32 i = 0; i < QS_N; i++) {
            x = x * 1103515245u + 12345u;
            a[i] = x;
        }
        quicksort(a, 0, QS_N - 1);
    }
    u32 sorted = 1, sum = 0;
    for (u32 i = 0; i < QS_N; i++) {
        if (i && a[i - 1] > a[i])
            sorted = 0;
        sum += (i + 1) * a[i];
    }
    kprintf("n=%u rounds=%u sorted=%u checksum=%08x\n", QS_N, QS_ROUNDS, sorted, sum);
    kprintf("a[0]=%08x a[1]=%08x a[n/2]=%08x a[n-1]=%08x\n", a[0], a[1], a[QS_N / 2], a[QS_N - 1]);
    return 0;
}
