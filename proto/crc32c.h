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

/* The table-driven implementation, always available. */
uint32_t fw_crc32c_portable(uint32_t crc, const void *buf, size_t len);

/* 1 if the hardware implementation can run on this CPU. */
int fw_crc32c_hw_available(void);

/* The hardware implementation; call only if fw_crc32c_hw_available(). */
uint32_t fw_crc32c_hw(uint32_t crc, const void *buf, size_t len);

#endif
