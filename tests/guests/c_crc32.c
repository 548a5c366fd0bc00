/*
 * CRC-32 (IEEE 802.3, reflected polynomial 0xedb88320, as zlib.crc32) of
 * a pseudo-random buffer, table driven. The buffer is CRC_BUF_SIZE bytes
 * from the LCG x' = 1664525 x + 1013904223 (x0 = 1), byte = x' >> 24; the
 * CRC is chained over CRC_ROUNDS passes (= CRC of the buffer repeated).
 */
#include "lib.h"

#ifndef CRC_BUF_SIZE
#define CRC_BUF_SIZE 16384
#endif
#ifndef CRC_ROUNDS
#define CRC_ROUNDS 1
#endif

static u8 buf[CRC_BUF_SIZE];
static u32 table[256];

static void make_table(void)
{
    for (u32 i = 0; i < 256; i++) {
        u32 c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
}

/* zlib-style: crc32(crc32(0, a), b) == crc32(0, a + b) */
static u32 crc32_update(u32 crc, const u8 *p, u32 n)
{
    crc = ~crc;
    while (n--)
        crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

int main(void)
{
    puts("crc32\n");
    make_table();
    kprintf("table[1]=%08x table[255]=%08x\n", table[1], table[255]);
    kprintf("crc32(\"123456789\")=%08x\n", crc32_update(0, (const u8 *)"123456789", 9));
    kprintf("crc32(\"\")=%08x\n", crc32_update(0, (const u8 *)"", 0));
    u32 x = 1;
    for (u32 i = 0; i < CRC_BUF_SIZE; i++) {
        x = x * 1664525u + 1013904223u;
        buf[i] = (u8)(x >> 24);
    }
    u32 crc = 0;
    for (u32 r = 0; r < CRC_ROUNDS; r++)
        crc = crc32_update(crc, buf, CRC_BUF_SIZE);
    kprintf("size=%u rounds=%u crc=%08x\n", CRC_BUF_SIZE, CRC_ROUNDS, crc);
    return 0;
}
