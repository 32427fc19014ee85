/*
 * Little-endian loads and stores and LEB128 varints: the primitives every
 * freeway byte layout is written with. All are bounds-checked by the caller
 * (fixed widths) or by the function itself (varints).
 */
#ifndef FW_BYTES_H
#define FW_BYTES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint16_t fw_load_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}

static inline uint32_t fw_load_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t fw_load_u64(const uint8_t *p)
{
    return (uint64_t)fw_load_u32(p) | (uint64_t)fw_load_u32(p + 4) << 32;
}

static inline void fw_store_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void fw_store_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline void fw_store_u64(uint8_t *p, uint64_t v)
{
    fw_store_u32(p, (uint32_t)v);
    fw_store_u32(p + 4, (uint32_t)(v >> 32));
}

#define FW_VARINT_MAX 10

/* Writes v as LEB128 into p (room for FW_VARINT_MAX); returns bytes written. */
static inline size_t fw_varint_put(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static inline size_t fw_varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/*
 * Reads a LEB128 varint from p[0..len). Returns the bytes consumed, or 0 if
 * the input ends first, is longer than 10 bytes, overflows 64 bits or is not
 * in its shortest form (strict, so that one value has one encoding).
 */
static inline size_t fw_varint_get(const uint8_t *p, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    for (size_t i = 0; i < len && i < FW_VARINT_MAX; i++) {
        uint8_t b = p[i];
        if (i == 9 && b > 1)
            return 0;
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            if (b == 0 && i > 0)
                return 0;
            *out = v;
            return i + 1;
        }
    }
    return 0;
}

#endif
