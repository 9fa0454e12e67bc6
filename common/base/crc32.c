/*
 * crc32.c - table-driven CRC-32 (slicing by 8: eight table lookups per eight
 * input bytes, about 1 byte per cycle, so checksumming a checkpoint or a
 * weights frame costs little next to writing it). The tables are built once,
 * thread-safely, on first use.
 */
#include "crc32.h"

#include <pthread.h>

static uint32_t s_table[8][256];
static pthread_once_t s_once = PTHREAD_ONCE_INIT;

static void s_build(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        s_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            s_table[t][i] = (s_table[t - 1][i] >> 8) ^ s_table[0][s_table[t - 1][i] & 0xff];
}

uint32_t ag_crc32(uint32_t crc, const void *data, size_t n)
{
    pthread_once(&s_once, s_build);
    const unsigned char *p = data;
    uint32_t c = ~crc;
    while (n >= 8) {
        /* Byte-wise loads keep this independent of host endianness. */
        uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                           (uint32_t)p[3] << 24);
        c = s_table[7][lo & 0xff] ^ s_table[6][(lo >> 8) & 0xff] ^ s_table[5][(lo >> 16) & 0xff] ^
            s_table[4][lo >> 24] ^ s_table[3][p[4]] ^ s_table[2][p[5]] ^ s_table[1][p[6]] ^
            s_table[0][p[7]];
        p += 8;
        n -= 8;
    }
    while (n--)
        c = s_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    return ~c;
}
