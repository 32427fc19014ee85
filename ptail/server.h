/*
 * pt_server: the subscription endpoint. It owns the listener, the list of
 * subscriptions (sub.c, one per connection), the limits every subscription
 * lives within, and a one-second tick that polls for file changes the
 * watches may have missed and refreshes the lag metrics.
 */
#ifndef PT_SERVER_H
#define PT_SERVER_H

#include <stdint.h>

#include <uv.h>

#include "stats.h"
#include "zk.h"

typedef struct pt_sub_s pt_sub_t;
typedef struct pt_server_s pt_server_t;

typedef struct pt_limits_s {
    uint32_t max_subscribers;
    uint32_t max_frame;        /* largest frame a consumer may send */
    uint32_t out_buffer_bytes; /* per subscriber: what is read ahead of the socket */
    uint32_t poll_ms;          /* rescan for changes the watches missed */
    uint32_t damage_grace_ms;  /* how long damage may wait for a writer's recovery */
} pt_limits_t;

typedef void (*pt_server_cb)(pt_server_t *s);

struct pt_server_s {
    uv_loop_t *loop;
    char root[1024];
    pt_limits_t limits;
    pt_stats_t *stats;
    fw_zk_t *zk; /* the registry's session, to ask the catalog; NULL: files only */
    uv_tcp_t listener;
    char address[128]; /* as bound */
    pt_sub_t *subs;
    uint32_t nsubs;
    uv_timer_t tick;
    int handles; /* listener, tick, subscriptions */
    int stopping;
    pt_server_cb closed_cb;
};

/* Binds and listens; s->address says where. 0 or a negative errno. */
int pt_server_init(pt_server_t *s, uv_loop_t *loop, const char *listen, const char *root,
                   const pt_limits_t *limits, pt_stats_t *stats);
/* Stops accepting, ends every subscription; cb once every handle is closed. */
void pt_server_close(pt_server_t *s, pt_server_cb cb);
/* A subscription's handles are closed (sub.c). */
void pt_server_sub_gone(pt_server_t *s);

#endif
