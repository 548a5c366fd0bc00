/* Benchmark size of c_crc32.c (about 1-3 s under QEMU TCG). */
#define CRC_BUF_SIZE (1024 * 1024)
#define CRC_ROUNDS 128
#include "c_crc32.c"
