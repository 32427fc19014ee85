/*
 * The consumer's positions: per bucket, the next record to hand to the
 * application. Pure bookkeeping (no I/O), so the rules that make delivery
 * exactly-once are tested on their own (tests/unit/test_consumer_pos.c).
 *
 * A position is (segment id, block offset, record index), ordered in that
 * order. After the last record of a block the next position is the block
 * that follows: (segment, offset + block size, 0), the form ptail's own
 * checkpoints take, so a token the consumer builds and one ptail sends name
 * the same place the same way.
 *
 * A bucket is "known" once something told where it stands: the start
 * token, a delivered record, a checkpoint or a gap from ptail. Records of a
 * known bucket below its position were delivered already and are skipped.
 * An unknown bucket takes any record.
 */
#ifndef FW_CLIENT_CONSUMER_POS_H
#define FW_CLIENT_CONSUMER_POS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "checkpoint.h"

typedef struct fw_cpos_s {
    fw_position_t *pos; /* indexed by bucket; pos[b].bucket == b */
    uint8_t *known;     /* known[b]: pos[b] is meaningful */
    uint32_t n;         /* entries allocated (buckets below n) */
    uint32_t nknown;
    uint64_t first_offset; /* where a segment's first block starts (its header's length) */
} fw_cpos_t;

/*
 * first_offset: the length of the category's segment headers, where every
 * segment's first block starts. A position inside a header (ptail writes
 * "segment S, offset 0" for the start of S after a gap) means that block,
 * and is kept in that form, the only one a token can carry.
 */
void fw_cpos_init(fw_cpos_t *t, uint64_t first_offset);
void fw_cpos_free(fw_cpos_t *t);

/* <0, 0, >0 as a is before, at or after b (buckets are not compared). */
int fw_pos_cmp(const fw_position_t *a, const fw_position_t *b);

/* The position of bucket b, or NULL if it is unknown. */
const fw_position_t *fw_cpos_get(const fw_cpos_t *t, uint32_t bucket);

/*
 * Moves bucket p->bucket to p if it is unknown or p is after its position
 * (a checkpoint, a gap's end, a start token). Returns 1 if it moved, 0 if
 * not, -EINVAL for a bucket >= FW_BUCKETS_MAX, -ENOMEM.
 */
int fw_cpos_advance(fw_cpos_t *t, const fw_position_t *p);

/* 1 if the record at r (r->bucket) is new: its bucket is unknown or r is at or after it. */
int fw_cpos_is_new(const fw_cpos_t *t, const fw_position_t *r);

/*
 * 1 if the record at r follows its bucket's position with nothing between,
 * or if that cannot be told (unknown bucket, another segment); 0 if r lies
 * beyond the position inside the same segment: records were left out.
 */
int fw_cpos_is_contiguous(const fw_cpos_t *t, const fw_position_t *r);

/*
 * Record r, of a block of block_records records and block_len bytes, was
 * delivered: its bucket moves to the record after it. 0, -EINVAL, -ENOMEM.
 */
int fw_cpos_delivered(fw_cpos_t *t, const fw_position_t *r, uint32_t block_records,
                      uint64_t block_len);

/*
 * Appends the binary token of the known positions to out. Buckets listed in
 * `zero` (sorted, nzero entries) that are unknown are written as segment 0,
 * "nothing consumed yet". 0, -EAGAIN when there is no position at all to
 * write, -EINVAL for a bad category, -ENOMEM.
 */
int fw_cpos_token(const fw_cpos_t *t, const char *category, const uint32_t *zero, uint32_t nzero,
                  fw_buf_t *out);

/* 1 if every bucket of list[0..n) is known. */
int fw_cpos_covers(const fw_cpos_t *t, const uint32_t *list, uint32_t n);

#endif
