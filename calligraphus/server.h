/*
 * cal_server: the produce endpoint. It owns the listener, every client and
 * peer connection (conn.c), the forwarding pool to other writers
 * (forward.c) and the memory bounds: bytes of blocks received and not yet
 * answered, per connection, per category and in all. Past the connection
 * or global bound it stops reading sockets; past a category's share it
 * answers that category's blocks retry-later, so a hot category slows only
 * itself. Requests are handled in produce.c.
 */
#ifndef CAL_SERVER_H
#define CAL_SERVER_H

#include <stdint.h>

#include <uv.h>

#include "buf.h"
#include "node.h"
#include "stats.h"

typedef struct cal_conn_s cal_conn_t;
typedef struct cal_peer_s cal_peer_t;
typedef struct cal_server_s cal_server_t;

typedef struct cal_server_limits_s {
    uint32_t max_frame;               /* bytes; bounds one request */
    uint64_t conn_inflight_bytes;     /* stop reading a connection past this */
    uint64_t total_inflight_bytes;    /* stop reading every connection past this */
    uint64_t category_inflight_bytes; /* answer a category retry-later past this */
    uint32_t forward_timeout_ms;
    uint32_t max_conns;
} cal_server_limits_t;

typedef void (*cal_server_cb)(cal_server_t *s);

typedef struct cal_conn_proto_s cal_conn_proto_t;

/* A listening socket and the protocol its connections speak. */
typedef struct cal_listener_s {
    uv_tcp_t tcp;
    cal_server_t *server;
    const cal_conn_proto_t *proto;
    void *proto_arg;   /* given to each connection it accepts */
    char address[128]; /* as bound */
} cal_listener_t;

/* The produce listener, and Scribe's (--scribe-listen). */
#define CAL_SERVER_LISTENERS 2

struct cal_server_s {
    uv_loop_t *loop;
    cal_node_t *node;
    cal_stats_t *stats;
    cal_server_limits_t limits;
    cal_listener_t listeners[CAL_SERVER_LISTENERS];
    int nlisteners;
    char address[128]; /* the produce listener's, as bound */
    cal_conn_t *conns; /* every open connection (clients and peers) */
    unsigned nconns;
    cal_peer_t *peers; /* outgoing forwarding connections, by address */
    uint64_t inflight; /* bytes received and not answered, all connections */
    uint64_t inflight_peak;
    int paused_all; /* reading stopped everywhere: the global bound */
    int stopping;
    int closing_conns; /* cal_server_close: a connection closes after its last write */
    uv_idle_t close_idle;
    fw_buf_t scratch; /* decoding blocks to check them (loop thread) */
    int handles;      /* open uv handles of ours (listener, connections) */
    cal_server_cb closed_cb;
    uint64_t next_forward_id;
};

/* Binds and listens for producers; s->address then says where. 0 or a negative errno. */
int cal_server_init(cal_server_t *s, uv_loop_t *loop, const char *listen, cal_node_t *node,
                    cal_stats_t *stats, const cal_server_limits_t *limits);
/*
 * Binds and listens on another address whose connections speak proto
 * (Scribe's), each with proto_arg; bound (cap bytes) then says where. 0 or
 * a negative errno.
 */
int cal_server_listen(cal_server_t *s, const char *listen, const cal_conn_proto_t *proto,
                      void *proto_arg, char *bound, size_t cap);

/* Stops accepting and stops reading; requests under way still get their answers. */
void cal_server_drain(cal_server_t *s);
/* Closes every connection (after flushing what is queued) and the listener; then cb. */
void cal_server_close(cal_server_t *s, cal_server_cb cb);

/* ---- for conn.c, produce.c and forward.c ---- */

/* Bytes of a request taken on (positive) or answered (negative). */
void cal_server_account(cal_server_t *s, cal_conn_t *c, int64_t delta);

#endif
