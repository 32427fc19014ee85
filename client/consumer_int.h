/*
 * The consumer's insides, shared by its files:
 *
 *   consumer.c       the public API, fw_consumer_poll's loop, and what each
 *                    stream message means (records, checkpoints, gaps,
 *                    errors): delivery and the positions it moves
 *   consumer_pos.c   per-bucket positions (pure bookkeeping)
 *   consumer_conn.c  the connection to one ptail: connect, SUBSCRIBE, read
 *                    frames, grant credit, close, and reconnect with backoff
 *   consumer_find.c  where ptail is: a fixed list or nodes/ptail in ZooKeeper
 *
 * Everything runs on the consumer's own loop, inside fw_consumer_poll or
 * fw_consumer_close, in the caller's thread. Only c->woken is touched from
 * elsewhere (fw_consumer_wakeup).
 */
#ifndef FW_CLIENT_CONSUMER_INT_H
#define FW_CLIENT_CONSUMER_INT_H

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "audit.h"
#include "buf.h"
#include "checkpoint.h"
#include "connect.h"
#include "consumer_pos.h"
#include "frame.h"
#include "freeway.h"
#include "names.h"
#include "net.h"
#include "zk.h"

#define FW_CADDR_MAX FW_ADDR_MAX

typedef struct fw_cconn_s fw_cconn_t;

typedef enum {
    FW_CCONN_CONNECTING = 0,
    FW_CCONN_SUBSCRIBING, /* SUBSCRIBE sent, waiting for Subscribed */
    FW_CCONN_STREAMING,
    FW_CCONN_CLOSING,
} fw_cconn_state_t;

/* One connection to a ptail. Freed in its close callback. */
struct fw_cconn_s {
    uv_tcp_t tcp;
    fw_connect_t *connecting; /* while connecting */
    fw_consumer_t *c;
    char addr[FW_CADDR_MAX];
    fw_cconn_state_t state;
    int reading; /* uv_read_start is in effect */
    /* Bytes read; rbuf[roff..len) is not handled yet. */
    fw_buf_t rbuf;
    size_t roff;
    /* Records of the frame at roff already handled (a poll ended inside its block). */
    uint32_t resume_index;
    /* STREAM bytes handled since the last CREDIT. */
    uint64_t owed;
    size_t need;  /* bytes the frame being read will span, once known */
    int progress; /* delivered a record or marked a checkpoint: reconnect at once if it breaks */
};

/* The audit's state for one bucket (consumer_audit.c). */
typedef struct fw_caudit_bucket_s {
    uint32_t bucket;
    int open;       /* a stretch is being counted: first..last */
    int have_prev;  /* prev is the last record delivered (no gap since) */
    int have_start; /* no record yet (or since a gap): the bucket was placed at start */
    fw_position_t first, last, prev, start;
} fw_caudit_bucket_t;

/* The consumer's half of the audit; off while category is NULL. */
typedef struct fw_caudit_s {
    char *category; /* the audit category */
    uint64_t life;
    uint64_t seq;    /* reports sent */
    int64_t next_ms; /* monotonic: the next report */
    fw_audit_table_t counts;
    fw_caudit_bucket_t *buckets; /* sorted by bucket */
    size_t nbuckets, buckets_cap;
    fw_audit_range_t *closed; /* stretches ended by a gap since the last report */
    size_t nclosed, closed_cap;
    fw_buf_t buf;
    int warned; /* said once that a report could not be sent */
} fw_caudit_t;

struct fw_consumer_s {
    fw_consumer_options_t o; /* the pointers lead to the copies below */
    char category[FW_CATEGORY_MAX + 1];
    char *zk_spec;
    char *ptail_spec;
    char *name;
    uint32_t *buckets; /* sorted, no repeats; NULL: every bucket */
    uint32_t nbuckets;
    fw_buf_t start_token;

    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t poll_timer;
    uv_timer_t retry_timer; /* the next connection attempt */
    uv_timer_t conn_timer;  /* bounds connecting and subscribing */
    int handles_open;       /* handles and connections not yet through their close callback */

    /* Positions: the start token's, then what was delivered or marked. */
    fw_cpos_t pos;
    /* The buckets the last Subscribed said the subscription covers (sorted). */
    uint32_t *covered;
    uint32_t ncovered;

    fw_cconn_t *conn;    /* the connection now, or NULL */
    int conn_wanted;     /* a connection should be made once addresses are known */
    uint32_t backoff_ms; /* the delay before the next attempt after a failure */
    int last_subscribed; /* the last connection got as far as Subscribed */

    /* consumer_find.c */
    char (*addrs)[FW_CADDR_MAX];
    uint32_t naddrs;
    uint32_t next_addr; /* round robin over addrs */
    int zk_used;
    int zk_open;
    fw_zk_t zk;
    int zk_listing;
    uint64_t list_gen;

    /* poll */
    int in_poll;
    int in_callback;
    int break_req; /* fw_consumer_break: end this poll */
    int timed_out;
    atomic_int woken; /* fw_consumer_wakeup */
    uint64_t poll_records;
    uint32_t poll_callbacks;
    int fatal; /* a fatal error code, else 0 */
    char error[400];
    int closing;

    fw_buf_t scratch; /* decompressed blocks */
    fw_buf_t token;   /* tokens built for callbacks */
    fw_consumer_stats_t stats;
    fw_caudit_t audit;
};

/* ---- consumer.c ---------------------------------------------------------------------------- */

/* Formats a line for the log callback. */
__attribute__((format(printf, 3, 4))) void fw_clog(fw_consumer_t *c, fw_consumer_log_level_t level,
                                                   const char *fmt, ...);

/* Results of fw_consumer_on_frame. */
#define FW_CFRAME_DONE   0 /* handled; go on with the next frame */
#define FW_CFRAME_PAUSED 1 /* a poll ended inside the frame's block: *resume says where */

/*
 * Handles one frame of connection k, whose first *resume records (of a
 * Records block) were handled before. FW_CFRAME_DONE, FW_CFRAME_PAUSED, or
 * < 0: close the connection (why in c->error; c->fatal set if it is fatal).
 */
int fw_consumer_on_frame(fw_consumer_t *c, fw_cconn_t *k, const fw_frame_t *f, uint32_t *resume);

/* The subscription's start for a new connection, as a SubscribeRequest would carry it. */
typedef struct fw_cstart_s {
    fw_start_t kind;
    const uint8_t *token; /* START_CHECKPOINT; valid until the next call */
    size_t token_len;
    int64_t ts_ms;
} fw_cstart_t;
/* Where a new subscription starts: the tracked positions, else the original start. */
int fw_consumer_resume_point(fw_consumer_t *c, fw_cstart_t *s);

/* ---- consumer_conn.c ----------------------------------------------------------------------- */

/* Starts a connection to the next address now (addresses are known). */
void fw_cconn_connect_next(fw_consumer_t *c);
/* Handles what is buffered on the connection (after a poll ended inside it). */
void fw_cconn_drain(fw_consumer_t *c);
/* Closes the connection; failed: count it, log why, and retry later (unless fatal or closing). */
void fw_cconn_close(fw_cconn_t *k, int failed, const char *why);
/* Tries again after the backoff (or now if delay is 0). */
void fw_cconn_retry(fw_consumer_t *c, uint32_t delay_ms);

/* ---- consumer_find.c ----------------------------------------------------------------------- */

/* Takes the ptail list or opens the ZooKeeper session. 0 or -EINVAL. */
int fw_cfind_start(fw_consumer_t *c);
/* Closes the ZooKeeper session (asynchronously; counts in handles_open). */
void fw_cfind_stop(fw_consumer_t *c);
/*
 * Refreshes the addresses (a ZooKeeper listing; nothing for a fixed list),
 * then calls fw_cconn_connect_next, or retries later if there are none.
 */
void fw_cfind_lookup(fw_consumer_t *c);

/* ---- consumer_audit.c ---------------------------------------------------------------------- */

/* Sets up the audit if c->o.audit_producer is set. 0, -EINVAL (no name) or -ENOMEM. */
int fw_caudit_init(fw_consumer_t *c);
void fw_caudit_free(fw_consumer_t *c);
/* A record of a block that began at base_ts is about to go to on_record. */
void fw_caudit_record(fw_consumer_t *c, const fw_position_t *at, int64_t base_ts);
/*
 * The bucket at->bucket was placed at `at` (the start token, a checkpoint):
 * before its first record, that is where its first stretch starts.
 */
void fw_caudit_placed(fw_consumer_t *c, const fw_position_t *at);
/* ptail declared a gap up to `to`: the stretch being counted ends; the next starts at to. */
void fw_caudit_gap(fw_consumer_t *c, const fw_position_t *to);
/* Sends a report if one is due (final: at close, always, marked final). */
void fw_caudit_report(fw_consumer_t *c, int final);

#endif
