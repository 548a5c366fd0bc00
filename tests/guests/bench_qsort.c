/* Benchmark size of c_qsort.c (about 1-3 s under QEMU TCG). */
#define QS_N 200000
#define QS_ROUNDS 40
#include "c_qsort.c"
