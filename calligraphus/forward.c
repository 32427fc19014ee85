/* Relaying blocks to their owner over pooled peer connections (see forward.h). */
#include "forward.h"

#include "clock.h"
#include "connect.h"
#include "error.h"
#include "frame.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHECK_MS 250

typedef struct fwd_op_s {
    struct fwd_op_s *next;
    uint64_t id;
    int64_t deadline_ms;
    cal_forward_cb cb;
    void *arg;
} fwd_op_t;

struct cal_peer_s {
    cal_peer_t *next;
    cal_server_t *server;
    char address[CAL_ADDR_MAX];
    uv_tcp_t tcp;
    fw_connect_t *connecting; /* while connecting */
    uv_timer_t timer;
    int64_t started_ms; /* when the connect began */
    int connected;
    int dead;
    int handles;
    fw_buf_t queued; /* frames written before the connection was up */
    fw_buf_t in;
    fwd_op_t *ops;
};

typedef struct peer_write_s {
    uv_write_t req;
    cal_peer_t *peer;
    fw_buf_t buf;
} peer_write_t;

static void on_peer_handle_closed(uv_handle_t *h)
{
    cal_peer_t *p = h->data;
    if (--p->handles > 0)
        return;
    fw_buf_free(&p->queued);
    fw_buf_free(&p->in);
    free(p);
}

/* Fails what is under way and closes the peer; the next forward opens a new one. */
static void peer_fail(cal_peer_t *p, int err)
{
    if (p->dead)
        return;
    p->dead = 1;
    cal_server_t *s = p->server;
    for (cal_peer_t **pp = &s->peers; *pp != NULL; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    fwd_op_t *ops = p->ops;
    p->ops = NULL;
    while (ops != NULL) {
        fwd_op_t *next = ops->next;
        ops->cb(ops->arg, NULL, err);
        free(ops);
        ops = next;
    }
    if (p->connecting != NULL) {
        fw_connect_abandon(p->connecting);
        p->connecting = NULL;
    }
    uv_close((uv_handle_t *)&p->timer, on_peer_handle_closed);
    uv_close((uv_handle_t *)&p->tcp, on_peer_handle_closed);
}

static void on_peer_written(uv_write_t *req, int status)
{
    peer_write_t *w = (peer_write_t *)req;
    cal_peer_t *p = w->peer;
    fw_buf_free(&w->buf);
    free(w);
    if (status < 0 && status != UV_ECANCELED) {
        fw_log_warn("calligraphus", "forwarding to %s: %s", p->address, uv_strerror(status));
        peer_fail(p, FW_ERETRY_LATER);
    }
}

static int peer_write(cal_peer_t *p, fw_buf_t *frame)
{
    peer_write_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return -ENOMEM;
    w->peer = p;
    w->buf = *frame;
    *frame = (fw_buf_t)FW_BUF_INIT;
    uv_buf_t b = uv_buf_init((char *)w->buf.data, (unsigned)w->buf.len);
    int rc = uv_write(&w->req, (uv_stream_t *)&p->tcp, &b, 1, on_peer_written);
    if (rc < 0) {
        fw_buf_free(&w->buf);
        free(w);
    }
    return rc;
}

static void on_response(cal_peer_t *p, const fw_frame_t *f)
{
    if (f->type != FW_FRAME_FORWARD_RESP) {
        fw_log_warn("calligraphus", "peer %s answered with frame type %u; dropping it", p->address,
                    f->type);
        peer_fail(p, FW_ERETRY_LATER);
        return;
    }
    Fwpb__ProduceResponse *resp = fwpb__produce_response__unpack(NULL, f->meta_len, f->meta);
    if (resp == NULL) {
        peer_fail(p, FW_ERETRY_LATER);
        return;
    }
    for (fwd_op_t **pp = &p->ops; *pp != NULL; pp = &(*pp)->next) {
        fwd_op_t *op = *pp;
        if (op->id != resp->request_id)
            continue;
        *pp = op->next;
        if (resp->n_results == 1)
            op->cb(op->arg, resp->results[0], 0);
        else
            op->cb(op->arg, NULL, FW_EPROTOCOL);
        free(op);
        break;
    }
    fwpb__produce_response__free_unpacked(resp, NULL);
}

static void on_peer_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    (void)suggested;
    cal_peer_t *p = h->data;
    if (fw_buf_reserve(&p->in, 64u << 10) < 0) {
        *out = uv_buf_init(NULL, 0);
        return;
    }
    *out = uv_buf_init((char *)p->in.data + p->in.len, (unsigned)(p->in.cap - p->in.len));
}

static void on_peer_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    cal_peer_t *p = stream->data;
    if (nread < 0) {
        peer_fail(p, FW_ERETRY_LATER);
        return;
    }
    p->in.len += (size_t)nread;
    size_t off = 0;
    while (!p->dead) {
        fw_frame_t f;
        size_t need;
        ssize_t n =
            fw_frame_decode(p->in.data + off, p->in.len - off, FW_FRAME_MAX_DEFAULT, &f, &need);
        if (n == 0)
            break;
        if (n < 0) {
            peer_fail(p, FW_ERETRY_LATER);
            return;
        }
        off += (size_t)n;
        on_response(p, &f);
    }
    if (p->dead)
        return;
    memmove(p->in.data, p->in.data + off, p->in.len - off);
    p->in.len -= off;
}

static void on_peer_connected(void *arg, int status)
{
    cal_peer_t *p = arg;
    p->connecting = NULL;
    if (p->dead)
        return;
    if (status < 0) {
        fw_log_warn("calligraphus", "cannot reach writer %s: %s", p->address, uv_strerror(status));
        peer_fail(p, FW_ERETRY_LATER);
        return;
    }
    p->connected = 1;
    uv_tcp_nodelay(&p->tcp, 1);
    uv_read_start((uv_stream_t *)&p->tcp, on_peer_alloc, on_peer_read);
    if (p->queued.len > 0 && peer_write(p, &p->queued) < 0)
        peer_fail(p, FW_ERETRY_LATER);
}

static uint32_t forward_timeout_ms(const cal_server_t *s)
{
    return s->limits.forward_timeout_ms ? s->limits.forward_timeout_ms : 10000;
}

static void on_peer_timer(uv_timer_t *t)
{
    cal_peer_t *p = t->data;
    int64_t now = fw_clock_mono_ms();
    /* A peer that never answers the connect (a lookup stuck on DNS, SYNs dropped) would keep
     * every frame forwarded to it queued: give it up; the next forward starts afresh. */
    if (!p->connected && now - p->started_ms > (int64_t)forward_timeout_ms(p->server)) {
        fw_log_warn("calligraphus", "cannot reach writer %s: no connection within %u ms",
                    p->address, forward_timeout_ms(p->server));
        peer_fail(p, FW_ERETRY_LATER);
        return;
    }
    for (fwd_op_t **pp = &p->ops; *pp != NULL;) {
        fwd_op_t *op = *pp;
        if (op->deadline_ms > now) {
            pp = &op->next;
            continue;
        }
        *pp = op->next;
        op->cb(op->arg, NULL, FW_ERETRY_LATER);
        free(op);
    }
}

static cal_peer_t *peer_get(cal_server_t *s, const char *address)
{
    for (cal_peer_t *p = s->peers; p != NULL; p = p->next)
        if (strcmp(p->address, address) == 0)
            return p;
    cal_peer_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->server = s;
    snprintf(p->address, sizeof(p->address), "%s", address);
    uv_tcp_init(s->loop, &p->tcp);
    uv_timer_init(s->loop, &p->timer);
    p->tcp.data = p->timer.data = p;
    p->handles = 2;
    p->started_ms = fw_clock_mono_ms();
    int rc = fw_connect_start(&p->tcp, address, on_peer_connected, p, &p->connecting);
    if (rc < 0) {
        fw_log_warn("calligraphus", "cannot reach writer %s: %s", address, uv_strerror(rc));
        p->dead = 1;
        uv_close((uv_handle_t *)&p->timer, on_peer_handle_closed);
        uv_close((uv_handle_t *)&p->tcp, on_peer_handle_closed);
        return NULL;
    }
    uv_timer_start(&p->timer, on_peer_timer, CHECK_MS, CHECK_MS);
    p->next = s->peers;
    s->peers = p;
    return p;
}

int cal_forward(cal_server_t *s, const char *address, const char *category, uint32_t bucket,
                int ack, const uint8_t *block, size_t len, cal_forward_cb cb, void *arg)
{
    if (s->stopping)
        return FW_ESHUTTING_DOWN;
    cal_peer_t *p = peer_get(s, address);
    if (p == NULL)
        return FW_ERETRY_LATER;
    fwd_op_t *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return -ENOMEM;
    op->id = ++s->next_forward_id;
    op->deadline_ms = fw_clock_mono_ms() + forward_timeout_ms(s);
    op->cb = cb;
    op->arg = arg;

    Fwpb__BlockRef ref = FWPB__BLOCK_REF__INIT;
    ref.category = (char *)category;
    ref.bucket = bucket;
    ref.length = (uint32_t)len;
    Fwpb__BlockRef *refs[1] = {&ref};
    Fwpb__ForwardRequest req = FWPB__FORWARD_REQUEST__INIT;
    req.request_id = op->id;
    req.origin_node = (char *)s->node->cfg.id;
    req.hops = 1;
    req.has_ack = 1;
    req.ack = (Fwpb__AckLevel)ack;
    req.n_blocks = 1;
    req.blocks = refs;
    fw_buf_t frame = FW_BUF_INIT;
    fw_buf_t *dst = p->connected ? &frame : &p->queued;
    int rc = fw_frame_append(dst, FW_FRAME_FORWARD_REQ, &req.base, block, len, FW_FRAME_MAX_LIMIT);
    if (rc == 0 && p->connected)
        rc = peer_write(p, &frame);
    fw_buf_free(&frame);
    if (rc < 0) {
        free(op);
        return rc;
    }
    op->next = p->ops;
    p->ops = op;
    return 0;
}

void cal_forward_close_all(cal_server_t *s)
{
    while (s->peers != NULL)
        peer_fail(s->peers, FW_ESHUTTING_DOWN);
}
