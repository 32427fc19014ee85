/*
 * Blocks: the unit of transport and storage. A block is a batch of records of
 * one category and bucket from one producer. The client builds it, the writer
 * appends it to a segment byte for byte, copier and ptail pass it on
 * unchanged; every hop can verify it with the two CRCs.
 *
 *   0       4   5     6       8           12        16           20
 *   +-------+---+-----+-------+-----------+---------+------------+-------------+
 *   | magic |ver|codec| flags | stored_len| raw_len | rec_count  | payload_crc |
 *   | FWBK  | 1 | u8  | u16   | u32       | u32     | u32        | u32         |
 *   +-------+---+-----+-------+-----------+---------+------------+-------------+
 *   24            32           40          48          56         60
 *   +-------------+------------+-----------+-----------+----------+------------+
 *   | producer_id | sequence   | base_ts   | max_ts    | reserved | header_crc |
 *   | u64         | u64        | i64 ms    | i64 ms    | u32 = 0  | u32        |
 *   +-------------+------------+-----------+-----------+----------+------------+
 *   64: payload, stored_len bytes (lz4 block when codec = 1)
 *
 * All integers little-endian. header_crc = CRC32C(bytes 0..59) protects the
 * lengths, so a reader of a growing file can trust stored_len before the
 * payload arrives; payload_crc = CRC32C(stored payload).
 *
 * The raw (decompressed) payload is record_count records, each:
 *   varint ts_delta   zigzag(ts - previous ts); the first is relative to base_ts
 *   varint key_len+1  0 = no key
 *   key bytes
 *   varint value_len
 *   value bytes
 *
 * A seal block (flags bit 0) ends a segment: codec none, no records, producer
 * and sequence 0, and a 24-byte payload: data blocks u64, records u64, and its
 * own offset in the segment u64.
 */
#ifndef FW_BLOCK_H
#define FW_BLOCK_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define FW_BLOCK_HEADER_SIZE 64
#define FW_BLOCK_VERSION     1
#define FW_BLOCK_FLAG_SEAL   0x0001u
/* Bound on a block's stored and raw payload: one hard-cap record fits. */
#define FW_BLOCK_MAX_PAYLOAD  (32u << 20)
#define FW_RECORD_MAX_HARD    (16u << 20)
#define FW_RECORD_MAX_DEFAULT (1u << 20)
#define FW_SEAL_PAYLOAD_SIZE  24

typedef enum { FW_CODEC_NONE = 0, FW_CODEC_LZ4 = 1 } fw_codec_t;

typedef struct fw_block_header_s {
    uint8_t codec;
    uint16_t flags;
    uint32_t stored_len;
    uint32_t raw_len;
    uint32_t record_count;
    uint32_t payload_crc;
    uint64_t producer_id;
    uint64_t sequence;
    int64_t base_ts;
    int64_t max_ts;
} fw_block_header_t;

typedef struct fw_record_s {
    int64_t timestamp; /* ms since the epoch, set by the producer */
    int has_key;
    const uint8_t *key; /* valid while the block (or scratch) is */
    uint32_t key_len;
    const uint8_t *value;
    uint32_t value_len;
} fw_record_t;

/* Walks the records of a decoded block; see fw_block_decode. */
typedef struct fw_record_iter_s {
    const uint8_t *p;
    const uint8_t *end;
    int64_t prev_ts;
    uint32_t remaining;
} fw_record_iter_t;

typedef struct fw_seal_s {
    uint64_t blocks;  /* data blocks in the segment */
    uint64_t records; /* records in the segment */
    uint64_t offset;  /* where the seal block itself starts */
} fw_seal_t;

static inline size_t fw_block_size(const fw_block_header_t *h)
{
    return FW_BLOCK_HEADER_SIZE + (size_t)h->stored_len;
}

static inline int fw_block_is_seal(const fw_block_header_t *h)
{
    return (h->flags & FW_BLOCK_FLAG_SEAL) != 0;
}

/*
 * 1 if buf[0..len) could begin a block: its first min(len, 4) bytes are the
 * block magic. Lets a reader call a partial header garbage before it is whole.
 */
int fw_block_magic_prefix(const uint8_t *buf, size_t len);

/*
 * Parses and checks a header from buf[0..len) (len >= 64): magic, version,
 * header CRC, and that the lengths and counts are consistent. 0 or
 * FW_EBLOCK_HEADER / FW_EBLOCK_TOO_LARGE (-EAGAIN if len < 64).
 */
int fw_block_header_parse(const uint8_t *buf, size_t len, fw_block_header_t *h);

/*
 * Verifies a whole block at buf (header and payload CRC) without decoding
 * records. len may exceed the block; -EAGAIN if it is shorter than the block.
 */
int fw_block_verify(const uint8_t *buf, size_t len, fw_block_header_t *h);

/*
 * Verifies and decodes the block at buf: checks the CRCs, decompresses into
 * scratch when the codec asks for it, and checks every record against
 * max_record (key + value bytes) before returning, so a caller never sees
 * part of a bad block. On success *it yields the records. 0 or a code.
 */
int fw_block_decode(const uint8_t *buf, size_t len, uint32_t max_record, fw_buf_t *scratch,
                    fw_block_header_t *h, fw_record_iter_t *it);

/* Yields the next record: 1, or 0 at the end. */
int fw_record_next(fw_record_iter_t *it, fw_record_t *rec);

/*
 * Rewrites the sequence number of the data block at block[0..len) in place and
 * re-signs its header CRC; the payload and its CRC are untouched. A producer
 * renumbers blocks a writer has confirmed it does not hold. 0, -EINVAL for a
 * seal block, or what fw_block_header_parse returns for a bad header.
 */
int fw_block_set_sequence(uint8_t *block, size_t len, uint64_t seq);

/* The same for the producer id and the sequence together: a block that no writer holds moved
 * under an id of its own (calligraphus's Scribe listener). */
int fw_block_set_origin(uint8_t *block, size_t len, uint64_t producer_id, uint64_t seq);

/* Reads a seal block's payload (block already verified). 0 or FW_EBLOCK_CORRUPT. */
int fw_seal_parse(const uint8_t *block, const fw_block_header_t *h, fw_seal_t *seal);

/* Writes a seal block (FW_BLOCK_HEADER_SIZE + FW_SEAL_PAYLOAD_SIZE bytes). */
void fw_seal_encode(uint8_t *out, const fw_seal_t *seal, int64_t now_ms);

/*
 * The block builder: records in, one encoded block out. It owns two buffers
 * and is reused across blocks; free it with fw_block_builder_free.
 */
typedef struct fw_block_builder_s {
    fw_buf_t raw;
    fw_buf_t out;
    uint32_t max_record;
    uint32_t count;
    int64_t base_ts;
    int64_t prev_ts;
    int64_t max_ts;
} fw_block_builder_t;

void fw_block_builder_init(fw_block_builder_t *b, uint32_t max_record);
void fw_block_builder_free(fw_block_builder_t *b);

/*
 * Adds a record. FW_ERECORD_TOO_LARGE if key + value exceed max_record,
 * FW_EBLOCK_TOO_LARGE if it would not fit this block (finish first), -ENOMEM.
 */
int fw_block_builder_add(fw_block_builder_t *b, int64_t ts, const void *key, size_t key_len,
                         int has_key, const void *value, size_t value_len);

/* Raw payload bytes and records added since the last finish. */
static inline size_t fw_block_builder_raw_len(const fw_block_builder_t *b)
{
    return b->raw.len;
}
static inline uint32_t fw_block_builder_count(const fw_block_builder_t *b)
{
    return b->count;
}

/*
 * Encodes the records added so far as one block (lz4 if asked and smaller,
 * else raw) and starts a new, empty one. *block stays valid until the next
 * finish or free. -EINVAL if no record was added.
 */
int fw_block_builder_finish(fw_block_builder_t *b, fw_codec_t codec, uint64_t producer_id,
                            uint64_t sequence, const uint8_t **block, size_t *len);

#endif
