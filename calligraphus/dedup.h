/*
 * cal_dedup: per-bucket memory of each producer's sequence numbers, so a
 * retried block is stored once (guarantee 2). For each producer it keeps the
 * last sequence accepted (queued for the disk) and the last one stored; a
 * retry of a block still in flight must wait (its ack would otherwise come
 * before the original is on disk), a retry of a stored one is acked again.
 *
 * The table is rebuilt from the bucket's segments when a writer takes the
 * bucket, so it survives restarts and ownership moves.
 *
 * It grows on demand up to a cap of max producers; past it, the producer seen
 * least recently is forgotten (and is treated as new if it ever comes back),
 * no other. "Seen" is an accept or a learn: the entries are linked in that
 * order, oldest to newest, so the one to forget is at hand. Forgetting costs
 * O(1) whatever the cap: the entry is deleted in place (linear probing's
 * backward shift keeps every probe chain whole), with no rebuild and no
 * allocation, which matters when many short-lived producers come and go (a
 * Scribe connection is a producer). The table is rebuilt only to grow, at
 * most log2(max) times in its life.
 */
#ifndef CAL_DEDUP_H
#define CAL_DEDUP_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    CAL_SEQ_ACCEPT = 0,    /* the next block of this producer (or a producer not known) */
    CAL_SEQ_DUPLICATE = 1, /* already stored: ack it again, store nothing */
    CAL_SEQ_IN_FLIGHT = 2, /* an earlier try is still being written: retry later */
    CAL_SEQ_GAP = 3,       /* skips ahead: the producer lost blocks; *expected says where */
} cal_seq_verdict_t;

typedef struct cal_dedup_entry_s {
    uint64_t producer_id;
    uint64_t accepted;   /* last sequence queued or stored */
    uint64_t stored;     /* last sequence written to the segment */
    uint32_t stored_crc; /* its block's payload CRC, when stored_crc_known */
    uint32_t stored_crc_known;
    int64_t seen_ms; /* when it was last accepted or learned */
    uint32_t older;  /* the slot seen just before this one, or CAL_DEDUP_NONE */
    uint32_t newer;  /* the slot seen just after this one, or CAL_DEDUP_NONE */
    int used;
} cal_dedup_entry_t;

#define CAL_DEDUP_NONE UINT32_MAX

typedef struct cal_dedup_s {
    cal_dedup_entry_t *slots;
    size_t cap; /* power of two */
    size_t used;
    size_t max;         /* producers remembered at most */
    uint32_t oldest;    /* the slot seen least recently, or CAL_DEDUP_NONE */
    uint32_t newest;    /* the slot seen most recently, or CAL_DEDUP_NONE */
    uint64_t rebuilds;  /* tables built (each growth), for tests and metrics */
    uint64_t forgotten; /* producers forgotten at the cap */
} cal_dedup_t;

/* max_producers: the cap (0 is taken as 1, more than 2^30 as 2^30). */
void cal_dedup_init(cal_dedup_t *d, size_t max_producers);
void cal_dedup_free(cal_dedup_t *d);

/* Judges block (producer_id, seq); on CAL_SEQ_GAP, *expected is the next sequence wanted. */
cal_seq_verdict_t cal_dedup_check(const cal_dedup_t *d, uint64_t producer_id, uint64_t seq,
                                  uint64_t *expected);

/* Records that (producer_id, seq) was queued. 0 or -ENOMEM. */
int cal_dedup_accept(cal_dedup_t *d, uint64_t producer_id, uint64_t seq, int64_t now_ms);

/* Records that (producer_id, seq) is stored, its block's payload CRC crc. */
void cal_dedup_stored(cal_dedup_t *d, uint64_t producer_id, uint64_t seq, uint32_t crc);

/*
 * 1 if (producer_id, seq), judged a duplicate, is the producer's last stored
 * block and that block's payload CRC was not crc: not a retry but another
 * block under a sequence already used (a producer's bug), whose records the
 * duplicate ack would drop. 0 when it matches or is not known. The writer
 * still answers a duplicate (a retry rebuilt differently from the same
 * records would look the same) but says so loudly.
 */
int cal_dedup_conflicts(const cal_dedup_t *d, uint64_t producer_id, uint64_t seq, uint32_t crc);

/* The payload CRC of the producer's last stored block (0 if not known), for the log. */
uint32_t cal_dedup_stored_crc(const cal_dedup_t *d, uint64_t producer_id);

/* A queued block failed to be written: forget what was accepted past the last stored. */
void cal_dedup_abort(cal_dedup_t *d, uint64_t producer_id);

/* Rebuild from segments: (producer_id, seq) was found stored, payload CRC crc. 0 or -ENOMEM. */
int cal_dedup_learn(cal_dedup_t *d, uint64_t producer_id, uint64_t seq, uint32_t crc,
                    int64_t now_ms);

#endif
