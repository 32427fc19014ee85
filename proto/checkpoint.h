/*
 * Checkpoint tokens: a set of positions, one per bucket of a subscription,
 * that a consumer stores with its own state and hands back to resume. A
 * position names the next record to deliver: (segment id, byte offset of its
 * block, index of the record in that block). Segment id 0 with offset 0 and
 * index 0 means "nothing of this bucket consumed yet".
 *
 * Binary form (varints are LEB128, shortest form only):
 *
 *   +-----+-----+-----+---------+----------+-------+-------------+-----------+
 *   | 'F' | 'C' | ver | cat_len | category | count | positions.. | crc32c    |
 *   |     |     | 1   | u8      | bytes    | varint| see below   | u32 LE    |
 *   +-----+-----+-----+---------+----------+-------+-------------+-----------+
 *   position: bucket (varint; after the first, the increase over the previous
 *             bucket, at least 1), segment id, offset, record index (varints)
 *   crc32c covers every byte before it.
 *
 * Text form (CLI, files): the binary form in base64url without padding.
 */
#ifndef FW_CHECKPOINT_H
#define FW_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "names.h"

#define FW_TOKEN_VERSION 1

typedef struct fw_position_s {
    uint32_t bucket;
    uint64_t segment_id;
    uint64_t offset;
    uint32_t record_index;
} fw_position_t;

typedef struct fw_checkpoint_s {
    char category[FW_CATEGORY_MAX + 1];
    uint32_t count;           /* 1 .. FW_BUCKETS_MAX */
    fw_position_t *positions; /* sorted by bucket, no bucket twice; owned */
} fw_checkpoint_t;

/* Appends the binary token to out. -EINVAL if cp breaks the rules above. */
int fw_checkpoint_encode(const fw_checkpoint_t *cp, fw_buf_t *out);

/*
 * Decodes and strictly validates a binary token; allocates cp->positions
 * (free with fw_checkpoint_free). FW_ETOKEN_BAD, FW_ETOKEN_VERSION,
 * FW_ETOKEN_CRC or -ENOMEM; cp is left empty on error.
 */
int fw_checkpoint_decode(const uint8_t *buf, size_t len, fw_checkpoint_t *cp);

/* Appends the text token and a terminating NUL (not counted in out->len). */
int fw_checkpoint_to_text(const fw_checkpoint_t *cp, fw_buf_t *out);

/* Decodes a text token (base64url, no padding, no whitespace). */
int fw_checkpoint_from_text(const char *text, size_t len, fw_checkpoint_t *cp);

void fw_checkpoint_free(fw_checkpoint_t *cp);

/* The position of bucket in cp, or NULL. */
const fw_position_t *fw_checkpoint_find(const fw_checkpoint_t *cp, uint32_t bucket);

/* base64url without padding; decode rejects anything non-canonical. */
int fw_base64url_encode(const uint8_t *in, size_t len, fw_buf_t *out);
int fw_base64url_decode(const char *in, size_t len, fw_buf_t *out);

#endif
