/*
 * pt_sub: one consumer connection and its subscription. It reads the
 * SUBSCRIBE frame, places one cursor per bucket at the requested start,
 * and then streams: a round over the buckets takes at most one block from
 * each (so a busy bucket cannot starve the others), frames go into an
 * output buffer of bounded size, and a new round starts only when the
 * socket has taken the last buffer and the consumer's credit allows.
 * Checkpoint messages go in every N records or T ms. Files are watched
 * (inotify through uv_fs_event) for low latency and polled by the server's
 * tick for filesystems without it.
 */
#ifndef PT_SUB_H
#define PT_SUB_H

#include <stdint.h>

#include <uv.h>

#include "buf.h"
#include "checkpoint.h"
#include "cursor.h"
#include "names.h"
#include "server.h"
#include "stats.h"

typedef struct pt_bucket_s {
    pt_cursor_t cur;
    uv_fs_event_t watch;
    int watching;
    int caught_up;    /* the last read found nothing new */
    int64_t last_ts;  /* newest record timestamp sent, for lag */
    int lag_reported; /* its lag series exist (removed when the subscription ends) */
    pt_sub_t *sub;
} pt_bucket_t;

struct pt_sub_s {
    uv_tcp_t tcp;
    pt_server_t *server;
    pt_sub_t *prev, *next;
    char peer[64];
    char name[128]; /* the consumer's name, else its address */
    fw_buf_t in;
    int closing;
    int handles; /* open uv handles of this subscription */
    int subscribed;
    int refused; /* an ERROR frame is on its way; the connection closes after it */
    /* a SUBSCRIBE waiting for ZooKeeper to say whether its category exists */
    struct Fwpb__SubscribeRequest *pending_req;
    /* the subscription */
    char category[FW_CATEGORY_MAX + 1];
    char cat_dir[1024];
    int all_buckets;       /* follows buckets added later */
    pt_bucket_t **buckets; /* by bucket id when all_buckets, else in request order */
    uint32_t nbuckets;
    uint32_t rr; /* the bucket the next round starts at */
    uv_fs_event_t cat_watch;
    int cat_watching;
    pt_cat_stats_t stats;
    /* where buckets start, kept for buckets that appear later (a category grew, a copy caught up)
     */
    int start_kind;
    int64_t start_ts_ms;
    fw_checkpoint_t start_cp; /* START_CHECKPOINT: the token's positions */
    /* flow control */
    int64_t credit;
    /* checkpoints */
    uint32_t every_records, every_ms;
    uint64_t records_since_cp;
    int64_t last_cp_ms;
    int sent_since_cp;
    /* output: one buffer being written, one being filled */
    fw_buf_t out, wbuf;
    int writing;
    uv_write_t wreq;
    uv_timer_t kick; /* coalesces file events into one pump */
};

/* Accepts a consumer from the listener. 0 or a negative errno. */
int pt_sub_accept(pt_server_t *s, uv_stream_t *listener);
/* Reads what is new for the subscription (the server's tick: polling, lag). */
void pt_sub_poll(pt_sub_t *sub);
/* Ends the subscription (server shutdown): closes the connection. */
void pt_sub_close(pt_sub_t *sub);

#endif
