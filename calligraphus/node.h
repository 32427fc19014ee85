/*
 * cal_node: one writer's place in the cluster. It owns the ZooKeeper
 * session, the disk thread, the catalog of categories, the membership, and
 * one slot per bucket of every category: who owns the bucket (watched in
 * ZooKeeper) and, for the buckets this writer owns, the open cal_bucket.
 *
 * Balance. Every writer aims at ceil(buckets / live writers) buckets: it
 * takes unowned buckets while below that (trying them in its own
 * rendezvous-hash order, so writers rarely race for the same one) and
 * gracefully hands back the excess (seal, then delete the owner node) when
 * writers join. A writer that dies loses its ephemeral owner nodes with its
 * session, and the survivors take its buckets.
 *
 * Scale. Nothing is done one bucket at a time: takes run up to
 * max_parallel_takes at once (claimed or opening), sixteen to a multi when
 * the bucket nodes were read beforehand; hand-backs run max_parallel_moves
 * at once, the next starting as one ends; owner-node reads go through a
 * bounded queue; one pass over the slots picks every move. A new category of
 * 10,000 buckets costs about two ZooKeeper requests per bucket.
 *
 * Safety. Appends need a lease: a monotonic deadline renewed by a ZooKeeper
 * round trip every quarter of the session timeout, reaching 3/4 of the
 * timeout past the request. A writer whose session may have ended (paused,
 * partitioned) stops writing and acking when the lease lapses, before the
 * server can expire the session and hand the bucket on. On SUSPENDED the
 * buckets pause at once; on EXPIRED they are abandoned unsealed (the next
 * owner recovers and seals them: the segment's flock keeps it from doing so
 * while we still hold the file).
 */
#ifndef CAL_NODE_H
#define CAL_NODE_H

#include <stdatomic.h>
#include <stdint.h>

#include <uv.h>

#include "bucket.h"
#include "catalog.h"
#include "disk.h"
#include "members.h"
#include "owner.h"
#include "stats.h"
#include "zk.h"

typedef struct cal_node_s cal_node_t;

typedef struct cal_node_config_s {
    const char *id;
    const char *address; /* host:port producers and peers reach us at */
    const char *metrics_address;
    const char *root;
    const char *zk_connect;
    const char *zk_auth; /* "user:password" or NULL/"" (fw_zk_options_t.auth) */
    int session_timeout_ms;
    size_t batch_bytes;
    size_t max_producers;
    int dedup_segments;
    int max_parallel_moves; /* hand-backs under way at once (0: 4) */
    int max_parallel_takes; /* takes (claim and open) under way at once (0: 256) */
} cal_node_config_t;

typedef enum {
    CAL_SLOT_FREE = 0,  /* not ours */
    CAL_SLOT_TAKING,    /* the takeover multi is in flight */
    CAL_SLOT_OPENING,   /* ours in ZooKeeper; the bucket is recovering */
    CAL_SLOT_OWNED,     /* ours, open for appends */
    CAL_SLOT_CLOSING,   /* handing back: sealing first */
    CAL_SLOT_RELEASING, /* handing back: deleting the owner node */
    CAL_SLOT_DROPPING,  /* lost: closing the bucket without a seal */
} cal_slot_state_t;

typedef struct cal_cat_state_s cal_cat_state_t;

typedef struct cal_slot_s {
    cal_node_t *node;
    cal_cat_state_t *cs;
    uint32_t bucket;
    cal_slot_state_t state;
    cal_owner_t owner; /* the ZooKeeper recipe; also remembers our epoch */
    cal_bucket_t *b;   /* while OPENING .. DROPPING */
    uint32_t weight;   /* rendezvous hash of (category, bucket, our id) */
    int64_t retry_at_ms;
    int reserving;
    /* the owner node as last read */
    int owner_watch;   /* a watch is set on it, or a read that sets one is under way */
    int owner_reading; /* a read is under way (counted in the node's owner_reads) */
    int owner_queued;  /* waiting in the node's queue for a read */
    int owner_present; /* it was there when last seen: read it with get, not exists */
    int probed;        /* the bucket node was read (owner.meta_*, and whether it had an owner) */
    int need_meta;     /* read the bucket node again before taking it (owner.meta_* is stale) */
    int meta_failed;   /* that read did not give it: take it alone (reading it again) */
    int no_bucket;     /* the bucket node was missing when last read: nobody can own it */
    struct cal_slot_s *owner_next;
    int owner_known;
    char owner_id[CAL_ID_MAX];
    char owner_address[CAL_ADDR_MAX];
    int64_t owner_session;
} cal_slot_t;

struct cal_cat_state_s {
    cal_category_t *c;
    /* One per bucket the category ever had here: a category deleted and
     * created again may have fewer (c->buckets); the rest lie idle. */
    cal_slot_t **slots;
    uint32_t nslots;
    int64_t czxid; /* the category node the slots' bucket nodes belong to */
    cal_cat_stats_t *stats;
};

/* The slots of buckets the category has now: slots[0 .. this). */
static inline uint32_t cal_cat_state_live(const cal_cat_state_t *cs)
{
    return cs->nslots < cs->c->buckets ? cs->nslots : cs->c->buckets;
}

typedef void (*cal_node_cb)(cal_node_t *n);

struct cal_node_s {
    uv_loop_t *loop;
    cal_node_config_t cfg;
    fw_zk_t zk;
    cal_disk_t disk;
    cal_catalog_t catalog;
    cal_members_t members;
    cal_stats_t *stats;
    _Atomic int64_t lease_ns;
    int64_t session; /* the session the lease and the owned buckets belong to */
    uv_timer_t tick;
    uv_timer_t kick;
    uv_timer_t heartbeat;
    uv_timer_t suspend_timer;
    int suspended;
    int resume_pending; /* reconnected: resume the buckets once the lease is renewed */
    int stopping;
    int closing_handles;
    cal_node_cb stopped_cb;
    int owned_count; /* slots OPENING or OWNED */
    int open_count;  /* slots OWNED: open and taking blocks */
    /* Owner nodes to read, and the reads under way (bounded, so that a new
     * category of 10,000 buckets does not put 10,000 requests in flight at
     * once ahead of the lease's heartbeat). */
    cal_slot_t *read_head, *read_tail;
    int owner_reads;
    int taking;         /* slots TAKING */
    uint32_t unowned;   /* buckets nobody owned at the last rebalance (for /readyz) */
    int64_t census_ms;  /* when that was */
    int moving;         /* slots CLOSING, RELEASING or DROPPING */
    int claiming;       /* the only writer, short of its share (see watch_later) */
    cal_slot_t **picks; /* rebalance's scratch: 2 * max_parallel_takes */
    /* The hand-backs the last rebalance chose, lowest weight first, started
     * (max_parallel_moves at a time) as earlier ones finish. */
    cal_slot_t **give;
    uint32_t ngive, give_at;
    uint32_t give_share, give_total, give_live;
};

/*
 * Starts the node: session, disk thread, watches. 0 or a negative errno. n
 * must outlive stats' registry (it reads the session's request counts).
 */
int cal_node_init(cal_node_t *n, uv_loop_t *loop, const cal_node_config_t *cfg, cal_stats_t *stats);

/*
 * Seals and closes every owned bucket (every append's callback runs), closes
 * the session (so the owner nodes and our registration vanish at once),
 * stops the disk thread, then calls cb; n may be freed then.
 */
void cal_node_stop(cal_node_t *n, cal_node_cb cb);

/* Where a block for (category, bucket) goes. */
typedef struct cal_route_s {
    cal_cat_state_t *cs;       /* set unless the category is unknown or not known yet */
    cal_bucket_t *bucket;      /* 0: the open bucket to append to */
    const char *owner_address; /* FW_ENOT_OWNER: the owner, or NULL if unknown */
} cal_route_t;

/*
 * 0 (ours and open), FW_EUNKNOWN_CATEGORY, FW_EBUCKET_RANGE, FW_ENOT_OWNER
 * (someone else's, or nobody's yet: owner_address says), FW_ERETRY_LATER
 * (ours but not ready: opening, paused), FW_ESHUTTING_DOWN.
 */
int cal_node_route(cal_node_t *n, const char *category, uint32_t bucket, cal_route_t *r);
/*
 * The category as this writer knows it (*out, or NULL): 0 if it can take
 * blocks, FW_EUNKNOWN_CATEGORY if it does not exist (the catalog was read
 * and has no such category, or it was deleted), FW_ERETRY_LATER if it is
 * not known yet (the catalog or the category's config not read).
 */
int cal_node_category(cal_node_t *n, const char *category, cal_category_t **out);

/*
 * For /readyz: 1 when the session is up, we are registered, the disk takes
 * writes, and every bucket has an owner (ours open); else 0 and why.
 */
int cal_node_ready(cal_node_t *n, char *reason, size_t cap);

#endif
