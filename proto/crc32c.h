/*
 * CRC32C (Castagnoli), the checksum of every freeway block, segment header
 * and checkpoint token. Uses the CPU's CRC32 instruction (SSE4.2) where
 * present and a slicing-by-8 table otherwise; both give the same values.
 */
#ifndef FW_CRC32C_H
#define FW_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/*
 * Extends crc (0 to start) over buf[0..len). fw_crc32c(0, "123456789", 9) is
 * 0xe3069283, the standard check value.
 */
uint32_t fw_crc32c(uint32_t crc, const void *buf, size_t len);

/*
 * A hash for placing things (keys in buckets, buckets on writers): CRC32C,
 * then MurmurHash3's 32-bit finalizer. CRC is linear, so inputs that differ
 * in a few bits share its low bits and `crc % n` would leave slots empty;
 * the finalizer spreads every input bit over every output bit.
 */
static inline uint32_t fw_hash32(const void *buf, size_t len)
{
    uint32_t h = fw_crc32c(0, buf, len);
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

/* The table-driven implementation, always available. */
uint32_t fw_crc32c_portable(uint32_t crc, const void *buf, size_t len);

/* 1 if the hardware implementation can run on this CPU. */
int fw_crc32c_hw_available(void);

/* The hardware implementation; call only if fw_crc32c_hw_available(). */
uint32_t fw_crc32c_hw(uint32_t crc, const void *buf, size_t len);

#endif
