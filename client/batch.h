/*
 * Batches and per-bucket send queues of the producer: records go into a
 * batch, a batch becomes a block with the bucket's next sequence number, and
 * each writer's answer to a block decides whether it is done, failed, or
 * resent. Owns the retry rules that keep guarantees 2 and 3 (a retried
 * block is stored once; a bucket's blocks are stored in send order).
 *
 * Pure bookkeeping: no locks, no sockets, no clock (callers pass `now` and a
 * random number for the jitter), so the rules are unit-tested on their own
 * (tests/unit/test_producer_batch.c). The producer decides which thread and
 * lock guards each field; see producer_int.h.
 *
 * The retry state machine of one bucket:
 *
 *   SENDING --(RETRY_LATER, NOT_OWNER, SHUTTING_DOWN, INTERNAL, SEQUENCE_GAP,
 *              connection lost, first UNKNOWN_CATEGORY/BUCKET_OUT_OF_RANGE)--> BACKOFF
 *   BACKOFF --(backoff elapsed and no try of the bucket still in flight)--> SENDING,
 *              resending every unacked block from the first one, in sequence order
 *
 * Answers that arrive during BACKOFF are honoured (an OK completes its
 * block) but do not extend the backoff.
 *
 * Probing. A writer accepts any sequence from a producer it does not know
 * (a new producer, or one it forgot). If a bucket's first block got
 * RETRY_LATER while a pipelined second one was accepted, the first block's
 * resend would be acked as a duplicate and never stored. So a bucket sends
 * one block alone until a writer acks one (the writer then knows where the
 * bucket stands), and again after every rewind; then it pipelines. Waiting for every try in flight
 * to end before resending means a block is never in two tries at once, so a block's bytes are never
 * rewritten while a write may still read them.
 *
 * Renumbering. A SEQUENCE_GAP whose expected sequence is below the first
 * unacked block's means the writer lost blocks it had acked (possible only
 * at the weak ack levels, after a writer crash): nothing the bucket still
 * holds can be stored there, so on resume the unacked blocks are renumbered
 * from the expected sequence. Any OK answer after the gap cancels that (the
 * writer's state moved on; a new gap will say where it is now).
 */
#ifndef FW_CLIENT_BATCH_H
#define FW_CLIENT_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "block.h"
#include "buf.h"
#include "freeway.h"
#include "spool.h"

/* Backoff of a bucket after a retryable answer: doubles from MIN to MAX, with jitter. */
#define FW_BACKOFF_MIN_MS 10
#define FW_BACKOFF_MAX_MS 1000
/* Bytes a record costs against max_buffer_bytes beyond its key and value. */
#define FW_RECORD_OVERHEAD 32

struct fw_pcat_s;
struct fw_writer_s;
struct fw_wconn_s;

typedef struct fw_batch_s fw_batch_t;
typedef struct fw_bucket_s fw_bucket_t;

/* One record's callback. */
typedef struct fw_pcb_s {
    fw_delivery_cb cb;
    void *arg;
} fw_pcb_t;

/*
 * A batch of records of one bucket, from its first record to its last
 * callback. Open: records go into bld. Built: block holds the encoded block
 * with sequence seq. A batch is owned by exactly one list at a time (the
 * bucket's open slot, the category's staged list, the ready list, the
 * bucket's queue, or the free pool); a request only borrows it (req).
 */
struct fw_batch_s {
    fw_batch_t *next, *prev;   /* in whichever list owns it */
    fw_batch_t *lnext, *lprev; /* in the open list (linger order), while open */
    fw_bucket_t *bucket;       /* NULL while staged (bucket count not known yet) */
    struct fw_pcat_s *cat;
    fw_block_builder_t *bld; /* the records, while open; lent from a pool */
    fw_buf_t block;          /* the encoded block, once built (owned) */
    fw_pcb_t *cbs;           /* one per record, in record order */
    uint32_t ncbs;
    uint32_t cbs_cap;
    uint64_t seq;     /* once built */
    uint64_t gen;     /* flush generation (see producer.c) */
    size_t cost;      /* bytes held against max_buffer_bytes */
    size_t rec_bytes; /* key + value bytes of its records */
    int64_t first_ms; /* monotonic ms of its first record: the delivery deadline counts from here */
    fw_codec_t codec; /* chosen when it was sealed */
    void *req;        /* the request carrying its current try, or NULL */
    uint32_t tries;   /* sends so far */
    uint8_t meta_fails; /* UNKNOWN_CATEGORY / BUCKET_OUT_OF_RANGE answers so far */
    uint8_t linked_open;
    /* Read back from the spool: no callbacks, no buffer cost, never expires (spooler.c). */
    uint8_t from_spool;
    uint8_t spool_warned;     /* said once that it cannot fit the spool */
    uint64_t producer_id;     /* from_spool: the id in its block (an earlier producer's maybe) */
    fw_spool_ref_t spool_ref; /* from_spool: where it came from */
};

typedef enum {
    FW_BUCKET_SENDING = 0,
    FW_BUCKET_BACKOFF = 1,
} fw_bucket_state_t;

/*
 * One bucket of a category as the producer sees it: the batch being filled
 * and the queue of built blocks not yet resolved, in sequence order.
 */
struct fw_bucket_s {
    uint32_t id;
    struct fw_pcat_s *cat;
    /* Filled by senders (under the producer's mutex). */
    fw_batch_t *open;
    /* The send queue (I/O thread). */
    uint64_t next_seq;  /* the sequence of the next block built */
    uint64_t acked_max; /* the highest sequence acked (in the writer's numbering) */
    fw_batch_t *head;   /* unresolved blocks, in sequence order */
    fw_batch_t *tail;
    fw_batch_t *send_next; /* the next block to send; NULL when every one is sent */
    uint32_t nqueued;
    uint32_t inflight; /* blocks whose try awaits an answer */
    int probing;       /* one block in flight until an ack (see the file comment) */
    fw_bucket_state_t state;
    int64_t retry_at; /* BACKOFF: resend from then on */
    uint32_t backoff_ms;
    int have_gap;          /* a SEQUENCE_GAP below the sequence it answered ... */
    uint64_t gap_expected; /* ... said the writer wants this next */
    /* Routing (I/O thread; see sender.c). */
    struct fw_writer_s *owner;  /* from metadata or a NOT_OWNER answer; NULL if not known */
    struct fw_wconn_s *conn;    /* where its tries go while any is in flight */
    fw_bucket_t *snext, *sprev; /* in the producer's list of buckets with blocks to send */
    int in_sendable;
    fw_bucket_t *bnext; /* in the producer's list of buckets in BACKOFF */
    int in_backoff_list;
    int64_t last_ack_ms; /* when a writer last acked one of its blocks */
    /*
     * The spool (spooler.c). A bucket is direct (its queue holds the blocks
     * it built) or spooling (every block it builds goes to the spool, and its
     * queue holds blocks read back from there, oldest first); want_spool
     * stops its sends until nothing is in flight, then it switches.
     */
    int spooling;
    int want_spool;
    int replay_paused; /* closing: no more blocks read back go out (fw_spooler_pause) */
    fw_spool_bucket_t *spool;
    fw_batch_t *pend_head, *pend_tail; /* built, waiting for room in the spool */
    fw_batch_t *held;                  /* read back, but of another producer id than the queue's */
    uint64_t window_pid;               /* the producer id of the blocks read back into the queue */
    size_t window_bytes;               /* of the blocks read back and not resolved */
    uint64_t shift_pid;                /* blocks of this id read back from now on get ... */
    int64_t seq_shift;                 /* ... this added to their sequence (after a renumbering) */
    fw_bucket_t *spnext;               /* in the producer's list of spooling buckets */
};

/* What to do with a block after a writer's answer (fw_bucket_on_result). */
typedef enum {
    FW_VERDICT_ACKED = 0,  /* stored: unlinked; run its callbacks with status 0 */
    FW_VERDICT_FAILED = 1, /* cannot be delivered: unlinked; run its callbacks with status */
    FW_VERDICT_RETRY = 2,  /* kept: the bucket backs off and resends it */
} fw_verdict_kind_t;

typedef struct fw_verdict_s {
    fw_verdict_kind_t kind;
    int status;           /* FAILED: a freeway code for the callbacks */
    int refresh_metadata; /* the category's metadata is stale */
    int writer_draining;  /* the writer is shutting down: route elsewhere */
    int backoff_started;  /* the bucket just entered BACKOFF: arm a timer for retry_at */
} fw_verdict_t;

/* What fw_bucket_resume did. */
typedef struct fw_resume_s {
    uint32_t renumbered;           /* blocks given new sequence numbers */
    int64_t shift;                 /* what renumbering added to blocks read back from the spool */
    uint64_t expected;             /* ... starting here, what the writer asked for */
    uint64_t first_unacked_before; /* the first unacked sequence before renumbering */
    int lost_acked;                /* the writer misses blocks it had acked, not only failed ones */
} fw_resume_t;

void fw_bucket_init(fw_bucket_t *bk, struct fw_pcat_s *cat, uint32_t id);

/*
 * Adds a record to an open batch: encodes it into b->bld and keeps its
 * callback. 0, or what fw_block_builder_add returns (FW_EBLOCK_TOO_LARGE:
 * the batch is full, build it first; FW_ERECORD_TOO_LARGE; -ENOMEM), in
 * which case the batch is unchanged.
 */
int fw_batch_add(fw_batch_t *b, int64_t ts, const void *key, size_t key_len, int has_key,
                 const void *value, size_t value_len, fw_delivery_cb cb, void *arg, size_t cost);

/*
 * Encodes open batch b as a block with its bucket's next sequence number,
 * b->codec and producer_id, and appends it to the bucket's queue. The
 * encoded bytes go into *spare's memory (swapped in, so block buffers are
 * reused; *spare is left empty). b->bld is left for the caller to recycle.
 * 0, or a negative code with nothing changed but the builder emptied.
 */
int fw_batch_build(fw_batch_t *b, uint64_t producer_id, fw_buf_t *spare);

/* Runs every record's callback of b with d (d->status etc.); clears them. */
void fw_batch_deliver(fw_batch_t *b, fw_delivery_t *d);

/* Appends a built block to the bucket's queue (fw_batch_build does it). */
void fw_bucket_push(fw_bucket_t *bk, fw_batch_t *b);

/* The block to send next, or NULL (all sent, backing off, or a probe in flight). */
fw_batch_t *fw_bucket_next_to_send(const fw_bucket_t *bk);

/* b (fw_bucket_next_to_send) now travels in request req. */
void fw_bucket_sent(fw_bucket_t *bk, fw_batch_t *b, void *req);

/*
 * Applies a writer's answer to b's try: status is a Fwpb__Status value,
 * expected the SEQUENCE_GAP's expected_sequence when has_expected. rnd
 * jitters the backoff. Fills *v; ACKED and FAILED blocks are unlinked.
 */
void fw_bucket_on_result(fw_bucket_t *bk, fw_batch_t *b, int status, int has_expected,
                         uint64_t expected, int64_t now, uint32_t rnd, fw_verdict_t *v);

/* b's try ended without an answer (its connection broke): RETRY. */
void fw_bucket_on_lost(fw_bucket_t *bk, fw_batch_t *b, int64_t now, uint32_t rnd, fw_verdict_t *v);

/* Enters BACKOFF without a block's answer (say, no writer to send to). */
void fw_bucket_backoff(fw_bucket_t *bk, int64_t now, uint32_t rnd, fw_verdict_t *v);

/* 1 if the bucket is in BACKOFF, its time is up, and no try is in flight. */
int fw_bucket_resume_due(const fw_bucket_t *bk, int64_t now);

/*
 * Leaves BACKOFF: renumbers the unacked blocks if a gap said the writer lost
 * acked ones (see the file comment), and resends from the first unacked
 * block. Fills *r.
 */
void fw_bucket_resume(fw_bucket_t *bk, fw_resume_t *r);

/*
 * Unlinks and returns the first block not in flight whose first record is
 * older than timeout_ms at now, or NULL.
 */
fw_batch_t *fw_bucket_take_expired(fw_bucket_t *bk, int64_t now, int64_t timeout_ms);

/* Unlinks and returns the first block if it is not in flight, else NULL. */
fw_batch_t *fw_bucket_take_head(fw_bucket_t *bk);
/* Unlinks b, which is not in flight, to fail it. */
void fw_bucket_take(fw_bucket_t *bk, fw_batch_t *b);

/* The first unacked sequence: the head's, or next_seq if the queue is empty. */
uint64_t fw_bucket_first_unacked(const fw_bucket_t *bk);

/* The freeway code a non-OK block status maps to (for callbacks and logs). */
int fw_status_code(int status);

#endif
