/* Benchmark size of c_bignum.c (about 1-3 s under QEMU TCG). */
#define BN_FACT 12000
#define BN_POW2 50000
#define BN_PRINT_ALL 0
#include "c_bignum.c"
