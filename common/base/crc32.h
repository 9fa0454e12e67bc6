/*
 * crc32.h - CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), the same
 * checksum as zlib's crc32() and Python's zlib.crc32(), so files and frames
 * agora checksums can be verified by any tool. Used by checkpoints and by the
 * weights protocol.
 */
#ifndef AG_CRC32_H
#define AG_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* Continues a CRC over n more bytes: start with crc = 0, then feed the
 * result back in for the next piece. ag_crc32(0, "123456789", 9) = 0xCBF43926. */
uint32_t ag_crc32(uint32_t crc, const void *data, size_t n);

#endif
