/*
 * The producer's insides, shared by its five files:
 *
 *   producer.c   the public API, the caller side (categories, batches being
 *                filled, the memory bound, flush generations), the I/O thread
 *   sender.c     the I/O thread's work on blocks: sealing and building them,
 *                routing buckets to connections, applying answers, timers
 *   spooler.c    the spool in the send path: when a bucket spools, writing
 *                its blocks there, reading them back to send (storage: spool.c)
 *   wire.c       connections to writers: connect, frames, requests in flight
 *   discovery.c  where the writers are (ZooKeeper or bootstrap) and what each
 *                category looks like (metadata requests)
 *
 * Threads. Fields marked [mu] are guarded by p->mu and touched by senders
 * and the I/O thread; fields marked [io] belong to the I/O thread alone.
 * Everything a sender hands over (sealed batches, new categories, flush and
 * close requests) goes through [mu] fields plus uv_async_send(&p->wake).
 */
#ifndef FW_CLIENT_PRODUCER_INT_H
#define FW_CLIENT_PRODUCER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "audit.h"
#include "batch.h"
#include "connect.h"
#include "freeway.h"
#include "names.h"
#include "net.h"
#include "zk.h"

#include "proto/produce.pb-c.h"

typedef struct fw_pcat_s fw_pcat_t;
typedef struct fw_writer_s fw_writer_t;
typedef struct fw_wconn_s fw_wconn_t;
typedef struct fw_wreq_s fw_wreq_t;

/* A category the producer has been asked to send to. Lives until the producer is freed. */
struct fw_pcat_s {
    char name[FW_CATEGORY_MAX + 1];
    uint32_t hash;
    fw_pcat_t *hnext;   /* [mu] hash chain */
    fw_pcat_t *newnext; /* [mu] in p->new_cats until the I/O thread adopts it */
    /* [mu] what senders need to place a record */
    uint32_t nbuckets;       /* 0 until metadata arrived */
    fw_bucket_t **buckets;   /* nbuckets entries, never moved once made */
    uint32_t sticky;         /* the bucket of records without a key */
    uint32_t max_record;     /* key + value limit (metadata; else the hard cap) */
    fw_codec_t codec;        /* for its blocks */
    int missing;             /* metadata said UNKNOWN_CATEGORY */
    fw_batch_t *staged_head; /* records sent before the bucket count was known */
    fw_batch_t *staged_tail;
    uint64_t staged_records;
    /* [io] */
    fw_pcat_t *ionext;      /* in p->cats */
    int meta_known;         /* a metadata answer has arrived (OK or missing) */
    int meta_pending;       /* a metadata request for it is in flight */
    int meta_wanted;        /* a refresh is due as soon as the rate limit allows */
    int64_t meta_asked_ms;  /* when the last request went out */
    int64_t meta_ok_ms;     /* when the last answer arrived */
    uint32_t meta_nbuckets; /* the bucket count the I/O side has made buckets for */
    char last_error[200];   /* the last reason a block of it was not delivered */
    /* the audit (producer_audit.c) */
    int audit_internal; /* the audit category itself: not counted, not in the stats */
    uint64_t audit_seq; /* [audit_mu] reports of it sent so far */
};

/* A writer address: from ZooKeeper, bootstrap, metadata or a NOT_OWNER answer. [io] */
struct fw_writer_s {
    fw_writer_t *next;
    char addr[FW_ADDR_MAX];
    int live;               /* listed now by ZooKeeper, bootstrap or metadata */
    int bootstrap;          /* from the bootstrap list: always live */
    int64_t down_until;     /* after a failure: not used before then */
    uint32_t fail_ms;       /* the next failure's down time */
    int64_t draining_until; /* answered SHUTTING_DOWN: send elsewhere until then */
    fw_wconn_t *conn;       /* the connection now, or NULL */
    int mark;               /* scratch for discovery.c */
};

typedef enum {
    FW_WCONN_CONNECTING = 0,
    FW_WCONN_READY = 1,
    FW_WCONN_CLOSING = 2,
} fw_wconn_state_t;

/* One TCP connection to a writer. Freed in its close callback. [io] */
struct fw_wconn_s {
    uv_tcp_t tcp;
    fw_connect_t *connecting; /* while connecting */
    fw_producer_t *p;
    fw_writer_t *w; /* NULL once the writer let go of it */
    fw_wconn_t *next, *prev;
    fw_wconn_state_t state;
    int failed;    /* closed because of an error (the writer is marked down) */
    char why[200]; /* why it closed */
    int64_t started_ms;
    uint64_t next_id;
    fw_buf_t rbuf;
    fw_wreq_t *reqs_head, *reqs_tail; /* awaiting an answer, oldest first */
    fw_wreq_t *building;              /* being filled by fw_sender_pump */
    uint32_t nproduce;                /* produce requests among them */
};

typedef enum {
    FW_WREQ_PRODUCE = 1,
    FW_WREQ_METADATA = 2,
} fw_wreq_type_t;

/* One request on a connection, from its write to its answer. [io] */
struct fw_wreq_s {
    fw_wreq_t *next, *prev;
    fw_wconn_t *conn;
    fw_wreq_type_t type;
    uint64_t id;
    int64_t sent_ms;
    uv_write_t write;
    int write_done;
    int answered;  /* the answer came before the write finished: handled at write end */
    void *answer;  /* ... the unpacked answer, meanwhile */
    fw_buf_t head; /* frame header and meta */
    /* PRODUCE: the blocks it carries */
    fw_batch_t **batches;
    uint32_t n, cap;
    size_t body_len;
    size_t meta_len; /* an upper bound of the meta its BlockRefs will take */
    /* METADATA: the categories it asks about */
    fw_pcat_t **cats;
    uint32_t ncats;
};

/* Incomplete batches of one flush generation (see producer.c). [mu] */
typedef struct fw_gen_count_s {
    uint64_t gen;
    uint64_t batches;
} fw_gen_count_t;

/*
 * The generation of the audit category's batches (the producer's own
 * reports, and consumers' reports sent through it): after every other, so
 * the application's fw_producer_flush never waits for them; only
 * fw_producer_close does, for what is left of its timeout.
 */
#define FW_GEN_INTERNAL UINT64_MAX

/* The application's records in b, for the record counts of the stats: none in a report's. */
static inline uint32_t fw_batch_app_records(const fw_batch_t *b)
{
    return b->cat->audit_internal ? 0 : b->ncbs;
}

typedef struct fw_pstats_s {
    _Atomic uint64_t in_flight;
    _Atomic uint64_t acked;
    _Atomic uint64_t failed;
    _Atomic uint64_t duplicate;
    _Atomic uint64_t bytes_acked;
    _Atomic uint64_t block_bytes_acked;
    _Atomic uint64_t blocks_acked;
    _Atomic uint64_t blocks_sent;
    _Atomic uint64_t blocks_retried;
    _Atomic uint64_t blocks_renumbered;
    _Atomic uint64_t requests_sent;
    _Atomic uint64_t metadata_requests;
    _Atomic uint64_t connects;
    _Atomic uint64_t disconnects;
    _Atomic uint64_t records_spooled;
    _Atomic uint64_t spool_blocks;
    _Atomic uint64_t spool_records;
    _Atomic uint64_t spool_bytes;
    _Atomic uint64_t blocks_replayed;
    _Atomic uint64_t records_replay_acked;
    _Atomic uint64_t records_replay_failed;
} fw_pstats_t;

struct fw_producer_s {
    fw_producer_options_t o; /* zk and bootstrap point at the copies below */
    char *zk_spec;
    char *bootstrap_spec;
    char *spool_dir;
    uint64_t id;

    pthread_t thread;
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t linger_timer;
    uv_timer_t retry_timer;
    uv_timer_t tick_timer;

    pthread_mutex_t mu;
    pthread_cond_t space_cv; /* room in the buffer, or closing */
    pthread_cond_t flush_cv; /* a flush generation completed, or the I/O thread ended */

    /* [mu] */
    fw_pcat_t **table; /* hash table of categories */
    uint32_t table_cap;
    uint32_t ncats;
    fw_pcat_t *new_cats;                 /* made by senders, not yet adopted by the I/O thread */
    fw_batch_t *open_head, *open_tail;   /* open batches of buckets, oldest first */
    fw_batch_t *ready_head, *ready_tail; /* sealed, waiting to be built */
    fw_batch_t *free_batches;
    uint32_t nfree_batches;
    fw_block_builder_t **free_builders;
    uint32_t nfree_builders;
    uint32_t pool_max;    /* of each pool (fixed at create) */
    size_t buffered;      /* bytes of undelivered records */
    uint64_t outstanding; /* records whose callback has not run */
    uint64_t gen;         /* the flush generation new batches join */
    fw_gen_count_t *gens; /* incomplete batches per generation, by gen */
    uint32_t ngens, gens_cap;
    size_t batch_limit; /* batch_bytes, lowered to fit the writers' max frame */
    int seal_all;       /* a flush asks the I/O thread to seal every open batch */
    int want_meta;      /* a sender saw a category that needs metadata */
    int closing;        /* fw_producer_close began: no more sends */
    int stopping;       /* the I/O thread is to fail what is left and end */
    int io_done;        /* the I/O thread has ended */
    pthread_t io_tid;
    int io_tid_set;
    int spool_wanted;          /* a sender found the buffer full: spool what can be */
    int spool_full;            /* the spool refused a block for room ... */
    uint64_t spool_full_bytes; /* ... when it held this much (room again below it) */
    int spool_drained;         /* the spool holds nothing to send, nothing waits for it */
    int replay_pause;          /* close: send nothing more from the spool ... */
    int replay_quiet;          /* ... and no block from it awaits an answer any more */

    /* [io] */
    int64_t now;     /* monotonic ms, refreshed at each callback */
    fw_pcat_t *cats; /* every category, adopted from new_cats */
    fw_writer_t *writers;
    fw_wconn_t *conns;
    uint32_t nconns;
    fw_bucket_t *sendable_head, *sendable_tail;
    fw_bucket_t *backoff_head;
    int64_t retry_armed_at; /* when retry_timer fires; 0 if idle */
    int linger_armed;
    fw_buf_t *spare_bufs; /* block buffers to reuse */
    uint32_t nspare_bufs;
    uint64_t rng;
    int stop_phase; /* 0 running, 1 closing connections, 2 closing handles */
    int handles_open;
    /* the spool (spooler.c); NULL without one */
    fw_spool_t *spool;
    uv_timer_t spool_timer;                    /* syncs it every spool_sync_interval_ms */
    fw_bucket_t *spooling_head;                /* buckets spooling */
    fw_batch_t *unsynced_head, *unsynced_tail; /* written, callbacks wait for the sync */
    size_t replay_bytes;                       /* of blocks read back and not resolved */
    int replay_paused;                         /* fw_spooler_pause ran */
    size_t replay_max;
    /* discovery */
    int zk_used;
    int zk_open;
    fw_zk_t zk;
    uint64_t zk_list_gen;
    int64_t zk_retry_at; /* list the writers again then (0: not needed) */
    int zk_listing;
    int64_t meta_next_ms; /* the next time a metadata round may go out */
    uint32_t writer_rr;
    uint32_t frame_cap;        /* smallest max frame a writer advertised; 0 while unknown */
    char last_conn_error[200]; /* why the last connection failed, for timeouts' messages */

    fw_pstats_t stats;

    /* the audit (producer_audit.c) */
    char *audit_category;          /* NULL: no reports */
    char audit_reporter[128];      /* "host pid" */
    pthread_mutex_t audit_mu;      /* guards the counts and each category's audit_seq */
    fw_audit_table_t audit_counts; /* [audit_mu] acked since the last report; tag: the fw_pcat_t */
    fw_buf_t audit_buf;            /* [audit_mu] a report being encoded */
    atomic_int audit_off;          /* the audit category does not exist: stop reporting */
    int64_t audit_next_ms;         /* [io] the next periodic report */
};

/* ---- producer.c ------------------------------------------------------------------- */

/* A random non-zero 64-bit id (getrandom, else time, pid and an address): producer ids,
 * consumers' audit lives. */
uint64_t fw_random_id(void);
/* The producer's random source (I/O thread). */
uint32_t fw_prand(fw_producer_t *p);
/* Formats a line for the log callback (I/O thread). */
__attribute__((format(printf, 3, 4))) void fw_plog(fw_producer_t *p, fw_producer_log_level_t level,
                                                   const char *fmt, ...);

/*
 * Runs b's callbacks with status (0: delivered), then gives its bytes and
 * memory back (takes the lock). b must be unlinked from every list. A block
 * read back from the spool goes to fw_spooler_done instead.
 */
void fw_producer_complete(fw_producer_t *p, fw_batch_t *b, int status, const char *message,
                          uint64_t segment_id, uint64_t offset, int duplicate);
/* b's records are safe in the spool: their callbacks say so (status 0, spooled). */
void fw_producer_complete_spooled(fw_producer_t *p, fw_batch_t *b);
/* [mu held] The category of this name, made if new; NULL on -ENOMEM or a bad name. */
fw_pcat_t *fw_producer_category_locked(fw_producer_t *p, const char *name);

/* [mu held] Seals bucket's open batch (onto the ready list). */
void fw_producer_seal_locked(fw_producer_t *p, fw_bucket_t *bk);
/*
 * [mu held] Adds a record to bk's open batch (the category's staged list if bk
 * is NULL), opening one if needed; the batch joins generation gen if that is
 * older (UINT64_MAX: the current one). *wake is set if the I/O thread must hear.
 */
int fw_producer_append_locked(fw_producer_t *p, fw_pcat_t *cat, fw_bucket_t *bk, int64_t ts,
                              const void *key, size_t key_len, int has_key, const void *value,
                              size_t value_len, fw_delivery_cb cb, void *arg, size_t cost,
                              uint64_t gen, int *wake);
/*
 * [io] The category's metadata arrived: grows its buckets to n (never
 * shrinks), sets its limits, and places the records that waited for it
 * (failing those over max_record). 0 or -ENOMEM (nothing changed).
 */
int fw_producer_set_buckets(fw_producer_t *p, fw_pcat_t *cat, uint32_t n, uint32_t max_record,
                            fw_codec_t codec);
/* [io] The category does not exist: fails the records that waited for its metadata. */
void fw_producer_set_missing(fw_producer_t *p, fw_pcat_t *cat);
/* [mu held] Returns a block builder to the pool. */
void fw_producer_builder_give_locked(fw_producer_t *p, fw_block_builder_t *bld);
/* A block buffer to encode into, from the I/O thread's pool (maybe empty). */
fw_buf_t fw_producer_spare_take(fw_producer_t *p);
/* Keeps a block buffer's memory for a later block (or frees it). */
void fw_producer_spare_give(fw_producer_t *p, fw_buf_t *buf);
/* [mu held] Returns a batch and its builder to the pools. */
void fw_producer_recycle_locked(fw_producer_t *p, fw_batch_t *b);
/* [mu held] Lowers batch b's generation to gen (records moved into it from older batches). */
void fw_producer_gen_lower_locked(fw_producer_t *p, fw_batch_t *b, uint64_t gen);

/* ---- sender.c --------------------------------------------------------------------- */

int fw_sender_start(fw_producer_t *p);
void fw_sender_wake_cb(uv_async_t *h);
/* After senders' batches or metadata changed: builds, arms linger, sends. */
void fw_sender_kick(fw_producer_t *p);
/* Sends what can be sent now. */
void fw_sender_pump(fw_producer_t *p);
/* Builds the batches on the ready list (takes the lock). */
void fw_sender_build_ready(fw_producer_t *p);
/* A writer answered block b (result). */
void fw_sender_on_result(fw_producer_t *p, fw_wconn_t *c, fw_batch_t *b,
                         const Fwpb__BlockResult *r);
/* Block b's try ended without an answer (why: for logs and timeouts). */
void fw_sender_on_lost(fw_producer_t *p, fw_batch_t *b, const char *why);
/* A connection ended (and is freed); the buckets routed over it route again. */
void fw_sender_on_conn_closed(fw_producer_t *p);
/* A category's buckets or owners changed. */
void fw_sender_on_metadata(fw_producer_t *p, fw_pcat_t *cat);
/* Adds a bucket to the sendable list (if it has blocks to send). */
void fw_sender_mark_sendable(fw_producer_t *p, fw_bucket_t *bk);

/* ---- spooler.c -------------------------------------------------------------------- */

/*
 * Opens the spool (before the I/O thread starts) and makes the categories
 * of what it holds known, so their metadata is asked for. 0 or an error
 * described in err.
 */
int fw_spooler_open(fw_producer_t *p, char *err, size_t errcap);
/* Starts the sync timer (with the other handles). */
void fw_spooler_start(fw_producer_t *p);
/* A category's metadata changed: its shape is saved in the spool (see spooler.c). */
void fw_spooler_shape(fw_producer_t *p, fw_pcat_t *cat, uint32_t max_record, fw_codec_t codec);
/* A bucket was made: if the spool holds blocks of it, it starts spooling (behind them). */
void fw_spooler_attach(fw_producer_t *p, fw_bucket_t *bk);
/* Built block b of a spooling bucket, just unlinked from its queue, goes to the spool. */
void fw_spooler_take(fw_producer_t *p, fw_batch_t *b);
/* Block b, read back from the spool, was renumbered: its file says so too. */
void fw_spooler_renumbered(fw_producer_t *p, fw_batch_t *b);
/* A block read back from the spool ended with status (0: stored); frees it. */
void fw_spooler_done(fw_producer_t *p, fw_batch_t *b, int status, int duplicate);
/* A try of bk ended: switch it if it waited to, read more back if it spools. */
void fw_spooler_after_try(fw_producer_t *p, fw_bucket_t *bk);
/* The tick: buckets stalled for spool_after_ms start to spool. */
void fw_spooler_tick(fw_producer_t *p);
/* A sender found the memory buffer full: every bucket with blocks waiting spools. */
void fw_spooler_memory_full(fw_producer_t *p);
/*
 * Close, before the audit's final report: nothing more is read back or sent
 * from the spool, and replay_quiet is published once no block from it
 * awaits an answer, so every replay ack this life gets is in its report.
 */
void fw_spooler_pause(fw_producer_t *p);
/* Shutdown (no try in flight): leftovers of direct buckets go to the spool, then it closes. */
void fw_spooler_stop(fw_producer_t *p);

/* ---- wire.c ----------------------------------------------------------------------- */

/* Opens a connection to w (w->conn). 0 or a negative code (w is then marked down). */
int fw_wire_connect(fw_producer_t *p, fw_writer_t *w);
/* Closes c; its requests end as lost in the close callback. why is logged. */
void fw_wire_close(fw_wconn_t *c, int failed, const char *why);
/* A new produce request on c (not yet sent); NULL on -ENOMEM. */
fw_wreq_t *fw_wire_req_new(fw_wconn_t *c, fw_wreq_type_t type);
/* Bytes of request meta block b's reference may take, at most. */
size_t fw_wire_ref_bound(const fw_batch_t *b);
/* Adds block b to produce request r; 0 or -ENOMEM. */
int fw_wire_req_add(fw_wreq_t *r, fw_batch_t *b);
/* Frames and writes r (produce); on error r is freed and the connection closed. */
int fw_wire_send_produce(fw_wreq_t *r, fw_acks_t acks);
/* Frames and writes r asking metadata for r->cats. */
int fw_wire_send_metadata(fw_wreq_t *r);
/* Frees a request that was never sent. */
void fw_wire_req_free(fw_wreq_t *r);
/* Closes connections whose oldest request or connect is older than the timeout. */
void fw_wire_check_timeouts(fw_producer_t *p);

/* ---- discovery.c ------------------------------------------------------------------ */

/* Starts ZooKeeper or adds the bootstrap writers. 0 or -EINVAL. */
int fw_discovery_start(fw_producer_t *p);
/* Closes the ZooKeeper session (asynchronously; counts in p->handles_open). */
void fw_discovery_stop(fw_producer_t *p);
/* Periodic work: refreshes due, ZooKeeper listing retries, metadata requests. */
void fw_discovery_tick(fw_producer_t *p);
/* Asks for cat's metadata soon (rate-limited). */
void fw_discovery_want(fw_producer_t *p, fw_pcat_t *cat);
/* Sends the metadata requests that are due, if a connection allows. */
void fw_discovery_pump(fw_producer_t *p);
/* The writer with this address, made (not live) if new; NULL if unparsable or -ENOMEM. */
fw_writer_t *fw_discovery_writer(fw_producer_t *p, const char *addr);
/* A usable writer for a bucket without a usable owner, or NULL. */
fw_writer_t *fw_discovery_pick(fw_producer_t *p, const fw_bucket_t *bk);
/* 1 if w may be sent to now (not down, not draining). */
int fw_discovery_usable(const fw_producer_t *p, const fw_writer_t *w);
/* Why a category has no metadata yet, for people. */
void fw_discovery_why_no_metadata(const fw_producer_t *p, char *out, size_t cap);
/* A metadata answer (the request is freed by the caller). */
void fw_discovery_on_metadata(fw_producer_t *p, fw_wreq_t *r, const Fwpb__MetadataResponse *m);
/* A metadata request ended without an answer. */
void fw_discovery_on_metadata_lost(fw_producer_t *p, fw_wreq_t *r);
/* A connection to w failed: keep away from it for a while. */
void fw_discovery_writer_failed(fw_producer_t *p, fw_writer_t *w);
/* A connection to w works. */
void fw_discovery_writer_ok(fw_producer_t *p, fw_writer_t *w);

/* ---- producer_audit.c ------------------------------------------------------------- */

/* Sets up the audit from p->o (before the I/O thread starts). 0 or -ENOMEM. */
int fw_paudit_init(fw_producer_t *p);
/* Once the I/O thread runs: the audit category's metadata is asked for at once. */
void fw_paudit_start(fw_producer_t *p);
/* Frees the audit's memory. */
void fw_paudit_free(fw_producer_t *p);
/* A writer acked block b (its records count once, whatever the tries). */
void fw_paudit_acked(fw_producer_t *p, const fw_batch_t *b);
/* The periodic report, from the tick (I/O thread). */
void fw_paudit_tick(fw_producer_t *p);
/*
 * fw_producer_close, after its flush: the last counts of every category
 * reported in this life, marked final. Returns how many reports were sent
 * (the caller then waits for FW_GEN_INTERNAL).
 */
int fw_paudit_final(fw_producer_t *p);

/*
 * The bytes a report record of audit_category may take in p (key and value):
 * the category's max_record_bytes once known, at most the 1 MiB default.
 * For consumers that report through p.
 */
size_t fw_paudit_report_room(fw_producer_t *p, const char *audit_category);

/* fw_producer_send for the producer's own records: never waits, works while closing. */
int fw_producer_send_internal(fw_producer_t *p, const char *category, const void *key,
                              size_t key_len, const void *value, size_t value_len,
                              int64_t timestamp_ms, fw_delivery_cb cb, void *arg);

#endif
