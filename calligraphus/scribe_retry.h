/*
 * cal_scribe_retry: what the Scribe listener remembers of a Log call, so
 * that the same call sent again stores nothing twice. Scribe's Log carries
 * no id: a call is known by its sender's IP address (not the port: a client
 * reconnects to retry) and a digest of its arguments' bytes (a client
 * resends the same batch byte for byte).
 *
 * An entry holds the call's plan: the records' timestamp; for each
 * category (in the order the call names them) the bucket count, the bucket
 * its unkeyed messages went to and the codec; and for each block the producer id and sequence it
 * was sent under and whether it is stored. A retry is built from the same messages into the same
 * blocks; stored ones are skipped and the others go out under the same (producer id, sequence), so
 * an owner that stored one whose answer never came back drops it as a duplicate.
 *
 * Every call has an entry while it runs (busy); a call answered OK on a
 * live connection removes its entry; one answered TRY_LATER, or whose
 * connection closed before the answer was written, leaves it for the
 * window. Past the cap the oldest idle entry goes first.
 */
#ifndef CAL_SCRIBE_RETRY_H
#define CAL_SCRIBE_RETRY_H

#include <stddef.h>
#include <stdint.h>

/* A call's name: its sender and its arguments' digest. */
typedef struct cal_scribe_key_s {
    char ip[48];
    uint64_t digest[2];
} cal_scribe_key_t;

/* One category of a call: where its messages went. */
typedef struct cal_scribe_cat_plan_s {
    uint32_t buckets;        /* the category's bucket count at the first try (keys hash over it) */
    uint32_t unkeyed_bucket; /* where messages without a key went */
    int lz4;                 /* its blocks' codec at the first try (a category's may change) */
} cal_scribe_cat_plan_t;

/* One block of a call. */
typedef struct cal_scribe_block_plan_s {
    uint64_t producer_id;
    uint64_t seq;
    int stored;
    int maybe_stored; /* a try reached a bucket or an owner and failed: stored or not, unknown */
    int resend_safe;  /* and the block before it under the id was stored (or it is the first) */
} cal_scribe_block_plan_t;

typedef struct cal_scribe_plan_s {
    int64_t ts_ms; /* the records' timestamp, from the first try: a retry builds the same bytes */
    uint32_t ncats, nblocks;
    cal_scribe_cat_plan_t *cats;
    cal_scribe_block_plan_t *blocks;
} cal_scribe_plan_t;

typedef struct cal_scribe_memo_s cal_scribe_memo_t;
struct cal_scribe_memo_s {
    cal_scribe_key_t key;
    cal_scribe_plan_t plan; /* empty until the call that made the entry planned it */
    int64_t expires_ms;
    int busy; /* a call runs on it now: never expired or evicted */
    cal_scribe_memo_t *hnext, *older, *newer;
};

typedef struct cal_scribe_retry_s {
    cal_scribe_memo_t **table;
    size_t table_cap; /* power of two */
    size_t count, max;
    int64_t window_ms;
    cal_scribe_memo_t *oldest, *newest;
} cal_scribe_retry_t;

/* The digest of a call's argument bytes (two independent 64-bit hashes). */
void cal_scribe_digest(const void *buf, size_t len, uint64_t out[2]);

/* An empty table of at most max entries, each kept window_ms after its call. 0 or -ENOMEM. */
int cal_scribe_retry_init(cal_scribe_retry_t *r, size_t max, int64_t window_ms);
void cal_scribe_retry_free(cal_scribe_retry_t *r);

/* The live entry of key, or NULL (an expired one is dropped first). */
cal_scribe_memo_t *cal_scribe_retry_find(cal_scribe_retry_t *r, const cal_scribe_key_t *key,
                                         int64_t now_ms);

/*
 * A new busy entry for key (which has none), with an empty plan. NULL when
 * out of memory or when every entry is busy at the cap (too many calls at
 * once: the caller answers TRY_LATER).
 */
cal_scribe_memo_t *cal_scribe_retry_add(cal_scribe_retry_t *r, const cal_scribe_key_t *key,
                                        int64_t now_ms);

/* The call on e ended, leaving something to retry: idle, kept for the window from now. */
void cal_scribe_retry_keep(cal_scribe_retry_t *r, cal_scribe_memo_t *e, int64_t now_ms);

/* The call on e ended with nothing to retry: the entry and its plan go. */
void cal_scribe_retry_remove(cal_scribe_retry_t *r, cal_scribe_memo_t *e);

/* Drops idle entries past their window (the listener's timer). */
void cal_scribe_retry_expire(cal_scribe_retry_t *r, int64_t now_ms);

void cal_scribe_plan_free(cal_scribe_plan_t *p);

#endif
