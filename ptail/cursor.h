/*
 * A cursor reads one bucket of a category in stored order: segment after
 * segment (ids rise, not always by one), block after block, and knows the
 * position of the next record to deliver. It tells "nothing new yet" from
 * "this segment is done" and from damage; it never hands out a block whose
 * CRCs did not check. Reads are blocking preads, normally served from the
 * page cache (see docs/decisions.md, "ptail").
 */
#ifndef PT_CURSOR_H
#define PT_CURSOR_H

#include <stdint.h>

#include "checkpoint.h"
#include "segment.h"

typedef enum {
    PT_CURSOR_AGAIN = 0, /* nothing new: wait for the files to change */
    PT_CURSOR_BLOCK = 1, /* a block to send (pt_cursor_block) */
    PT_CURSOR_GAP = 2,   /* data that cannot be delivered: send a gap, then go on */
} pt_cursor_result_t;

typedef struct pt_cursor_s {
    char dir[1024]; /* ROOT/<category>/<bucket> */
    uint32_t bucket;
    uint32_t first_block; /* offset of every segment's first block (the header's length) */
    fw_position_t pos;    /* the next record to deliver: always a place a token can name */
    fw_segr_t *reader;    /* open on pos.segment_id, or NULL */
    int at_seal;          /* pos is the seal of its segment: the next segment follows */
    /* The block just read (PT_CURSOR_BLOCK): valid until the next call. */
    fw_seg_block_t block;
    uint32_t first_record;
    /* PT_CURSOR_GAP: from pos (before) to gap_to, and why. */
    fw_position_t gap_from, gap_to;
    char gap_reason[200];
    /* Damage seen at a position: when, to give a writer's recovery time. */
    uint64_t damage_segment, damage_offset;
    int64_t damage_since_ms;
} pt_cursor_t;

/* Starts at the earliest record of the bucket (position 0/0/0). */
void pt_cursor_init(pt_cursor_t *c, const char *dir, const char *category, uint32_t bucket);

/* Starts at pos (from a checkpoint); segment id 0 means the earliest, offset 0 a segment's start.
 */
void pt_cursor_seek(pt_cursor_t *c, const fw_position_t *pos);

/* Moves to the end of the bucket as it is now (the newest segment's last block). */
int pt_cursor_seek_latest(pt_cursor_t *c);

/* Moves to the first block whose newest record is at or after ts_ms. */
int pt_cursor_seek_time(pt_cursor_t *c, int64_t ts_ms);

/*
 * Reads the next block. BLOCK: c->block and c->first_record say what to
 * send; the position moves past it. GAP: c->gap_* say what to report; the
 * position already moved to gap_to. AGAIN: nothing now. Negative: an error
 * reading the files (logged by the caller; the cursor stays where it was).
 * damage_grace_ms: how long damage in a bucket that has moved on to a newer
 * segment may wait for a writer's recovery before it becomes a gap.
 */
int pt_cursor_next(pt_cursor_t *c, int64_t now_ms, int64_t damage_grace_ms);

void pt_cursor_close(pt_cursor_t *c);

/* The file of one of the bucket's segments: dir/<segment-id>.seg. */
#define PT_CURSOR_PATH_MAX (1024 + 1 + FW_SEG_NAME_LEN + 1)
void pt_cursor_path(const pt_cursor_t *c, uint64_t segment_id, char out[PT_CURSOR_PATH_MAX]);

#endif
