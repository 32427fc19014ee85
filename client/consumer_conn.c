/*
 * The consumer's connection to one ptail: connect, SUBSCRIBE from where the
 * consumer stands, read frames and hand them to consumer.c, grant credit as
 * they are handled, and on any failure close and try again (the next
 * address, after a backoff unless the connection had made progress). What
 * the frames mean is consumer.c's business.
 *
 * Flow control: ptail may send credit_bytes of STREAM frames beyond what
 * was granted. A frame is credited once handled, so unread or buffered
 * frames hold the window shut; and when a poll ends inside a block, reading
 * stops until the next poll has handled what is buffered. So at most the
 * window plus one frame is ever held.
 */
#include "consumer_int.h"

#include "error.h"
#include "net.h"
#include "proto/stream.pb-c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READ_CHUNK         (64u << 10)
#define CONNECT_TIMEOUT_MS 10000
#define BACKOFF_MIN_MS     100
#define BACKOFF_MAX_MS     5000
#define KEEPALIVE_S        10
/* A buffer this large is given back once empty: one big block must not pin it forever. */
#define RBUF_KEEP (1u << 20)

/* ---- writes ---------------------------------------------------------------------------------- */

typedef struct cwrite_s {
    uv_write_t req;
    fw_cconn_t *k;
    fw_buf_t buf;
} cwrite_t;

static void on_write(uv_write_t *w, int status)
{
    cwrite_t *cw = w->data;
    fw_cconn_t *k = cw->k;
    fw_buf_free(&cw->buf);
    free(cw);
    if (status < 0 && status != UV_ECANCELED && k->state != FW_CCONN_CLOSING) {
        char why[200];
        snprintf(why, sizeof(why), "writing to ptail %s: %s", k->addr, uv_strerror(status));
        fw_cconn_close(k, 1, why);
    }
}

/* Frames msg and writes it; on failure the connection is closed. */
static int send_frame(fw_cconn_t *k, uint8_t type, const ProtobufCMessage *msg)
{
    cwrite_t *cw = calloc(1, sizeof(*cw));
    int rc = -ENOMEM;
    if (cw != NULL) {
        cw->k = k;
        cw->req.data = cw;
        rc = fw_frame_append(&cw->buf, type, msg, NULL, 0, FW_FRAME_MAX_DEFAULT);
        if (rc == 0) {
            uv_buf_t b = uv_buf_init((char *)cw->buf.data, (unsigned)cw->buf.len);
            rc = uv_write(&cw->req, (uv_stream_t *)&k->tcp, &b, 1, on_write);
        }
        if (rc < 0) {
            fw_buf_free(&cw->buf);
            free(cw);
        }
    }
    if (rc < 0) {
        char why[200];
        snprintf(why, sizeof(why), "writing to ptail %s: %s", k->addr, fw_strerror(rc));
        fw_cconn_close(k, 1, why);
    }
    return rc;
}

static void send_credit(fw_cconn_t *k)
{
    Fwpb__Credit m = FWPB__CREDIT__INIT;
    m.bytes = k->owed;
    k->owed = 0;
    send_frame(k, FW_FRAME_CREDIT, &m.base);
}

static int send_subscribe(fw_cconn_t *k)
{
    fw_consumer_t *c = k->c;
    fw_cstart_t s;
    int rc = fw_consumer_resume_point(c, &s);
    if (rc < 0) {
        fw_cconn_close(k, 1, "cannot build the resume token");
        return rc;
    }
    Fwpb__SubscribeRequest m = FWPB__SUBSCRIBE_REQUEST__INIT;
    m.category = c->category;
    m.n_buckets = c->nbuckets;
    m.buckets = c->buckets;
    m.start = (Fwpb__StartKind)s.kind;
    if (s.kind == FW_START_CHECKPOINT) {
        m.has_checkpoint = 1;
        m.checkpoint.data = (uint8_t *)s.token;
        m.checkpoint.len = s.token_len;
    } else if (s.kind == FW_START_TIMESTAMP) {
        m.has_timestamp_ms = 1;
        m.timestamp_ms = s.ts_ms;
    }
    m.has_checkpoint_every_records = 1;
    m.checkpoint_every_records = c->o.checkpoint_every_records;
    m.has_checkpoint_every_ms = 1;
    m.checkpoint_every_ms = c->o.checkpoint_every_ms;
    m.has_initial_credit_bytes = 1;
    m.initial_credit_bytes = c->o.credit_bytes;
    m.consumer_name = c->name;
    static const char *kinds[] = {"the earliest record", "the latest record", "a checkpoint",
                                  "a time"};
    fw_clog(c, FW_CONSUMER_LOG_DEBUG, "subscribing to %s at ptail %s from %s", c->category, k->addr,
            kinds[s.kind]);
    return send_frame(k, FW_FRAME_SUBSCRIBE, &m.base);
}

/* ---- reading --------------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    fw_cconn_t *k = h->data;
    /* Room for the rest of the frame being read, when its length is known. */
    size_t want = READ_CHUNK;
    if (k->need > k->rbuf.len - k->roff && k->need - (k->rbuf.len - k->roff) > want)
        want = k->need - (k->rbuf.len - k->roff);
    if (fw_buf_reserve(&k->rbuf, want) < 0) {
        *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
        return;
    }
    *buf = uv_buf_init((char *)k->rbuf.data + k->rbuf.len, (unsigned)(k->rbuf.cap - k->rbuf.len));
}

static void set_reading(fw_cconn_t *k, int on);

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    fw_cconn_t *k = s->data;
    if (k->state == FW_CCONN_CLOSING)
        return;
    if (nread < 0) {
        char why[200];
        snprintf(why, sizeof(why), "ptail %s %s", k->addr,
                 nread == UV_EOF ? "closed the connection" : uv_strerror((int)nread));
        fw_cconn_close(k, 1, why);
        return;
    }
    k->rbuf.len += (size_t)nread;
    fw_cconn_drain(k->c);
}

static void set_reading(fw_cconn_t *k, int on)
{
    if (on == k->reading || k->state == FW_CCONN_CLOSING)
        return;
    int rc = on ? uv_read_start((uv_stream_t *)&k->tcp, on_alloc, on_read)
                : uv_read_stop((uv_stream_t *)&k->tcp);
    if (rc < 0) {
        char why[200];
        snprintf(why, sizeof(why), "reading from ptail %s: %s", k->addr, uv_strerror(rc));
        fw_cconn_close(k, 1, why);
        return;
    }
    k->reading = on;
}

void fw_cconn_drain(fw_consumer_t *c)
{
    fw_cconn_t *k = c->conn;
    if (k == NULL || k->state == FW_CCONN_CONNECTING)
        return;
    uint64_t threshold = c->o.credit_bytes / 4 ? c->o.credit_bytes / 4 : 1;
    while (k->state != FW_CCONN_CLOSING && !c->break_req && !c->fatal && k->rbuf.len > k->roff) {
        fw_frame_t f;
        size_t need = 0;
        ssize_t n = fw_frame_decode(k->rbuf.data + k->roff, k->rbuf.len - k->roff,
                                    FW_FRAME_MAX_DEFAULT, &f, &need);
        if (n == 0) {
            k->need = need;
            break;
        }
        if (n < 0) {
            char why[200];
            snprintf(why, sizeof(why), "ptail %s sent a bad frame: %s", k->addr,
                     fw_strerror((int)n));
            fw_cconn_close(k, 1, why);
            return;
        }
        uint32_t resume = k->resume_index;
        int rc = fw_consumer_on_frame(c, k, &f, &resume);
        if (rc < 0) {
            fw_cconn_close(k, 1, c->error);
            return;
        }
        if (rc == FW_CFRAME_PAUSED) {
            k->resume_index = resume;
            break;
        }
        k->resume_index = 0;
        k->roff += (size_t)n;
        k->need = 0;
        if (f.type == FW_FRAME_STREAM) {
            k->owed += (uint64_t)n;
            if (k->owed >= threshold)
                send_credit(k);
        }
    }
    if (k->state == FW_CCONN_CLOSING)
        return;
    if (k->roff > 0) {
        memmove(k->rbuf.data, k->rbuf.data + k->roff, k->rbuf.len - k->roff);
        k->rbuf.len -= k->roff;
        k->roff = 0;
    }
    if (k->rbuf.len == 0) {
        if (k->rbuf.cap > RBUF_KEEP)
            fw_buf_free(&k->rbuf);
        /* Everything received is handled: the whole window is open again. */
        if (k->owed > 0)
            send_credit(k);
    }
    /* A poll that ended with frames still buffered reads no more until they are handled. */
    int stopped = c->break_req && k->rbuf.len > 0;
    set_reading(k, !stopped);
}

/* ---- connections ----------------------------------------------------------------------------- */

static void on_closed(uv_handle_t *h)
{
    fw_cconn_t *k = h->data;
    k->c->handles_open--;
    fw_buf_free(&k->rbuf);
    free(k);
}

static void on_retry(uv_timer_t *t)
{
    fw_consumer_t *c = t->data;
    if (c->conn == NULL && !c->closing && !c->fatal)
        fw_cfind_lookup(c);
}

void fw_cconn_retry(fw_consumer_t *c, uint32_t delay_ms)
{
    if (c->closing || c->fatal)
        return;
    uv_timer_start(&c->retry_timer, on_retry, delay_ms, 0);
}

/* After a failed attempt: the next delay, doubling from BACKOFF_MIN_MS to BACKOFF_MAX_MS. */
static uint32_t backoff_next(fw_consumer_t *c)
{
    c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (c->backoff_ms > BACKOFF_MAX_MS)
        c->backoff_ms = BACKOFF_MAX_MS;
    return c->backoff_ms;
}

void fw_cconn_close(fw_cconn_t *k, int failed, const char *why)
{
    if (k->state == FW_CCONN_CLOSING)
        return;
    fw_consumer_t *c = k->c;
    k->state = FW_CCONN_CLOSING;
    if (c->conn == k) {
        c->conn = NULL;
        uv_timer_stop(&c->conn_timer);
    }
    if (failed) {
        c->stats.disconnects++;
        if (why != c->error)
            snprintf(c->error, sizeof(c->error), "%s", why);
        fw_clog(c, c->fatal ? FW_CONSUMER_LOG_ERROR : FW_CONSUMER_LOG_WARN, "%s", why);
    }
    if (k->connecting != NULL) {
        fw_connect_abandon(k->connecting);
        k->connecting = NULL;
    }
    uv_close((uv_handle_t *)&k->tcp, on_closed);
    if (failed && !c->closing && !c->fatal) {
        /* A connection that got somewhere is followed at once (on the next ptail). */
        if (k->progress) {
            c->backoff_ms = 0;
            fw_cconn_retry(c, 0);
        } else {
            fw_cconn_retry(c, backoff_next(c));
        }
    }
}

static void on_conn_timeout(uv_timer_t *t)
{
    fw_consumer_t *c = t->data;
    fw_cconn_t *k = c->conn;
    if (k == NULL || k->state == FW_CCONN_STREAMING)
        return;
    char why[200];
    snprintf(why, sizeof(why), "ptail %s did not %s within %d ms", k->addr,
             k->state == FW_CCONN_CONNECTING ? "accept the connection" : "answer the subscription",
             CONNECT_TIMEOUT_MS);
    fw_cconn_close(k, 1, why);
}

static void on_connect(void *arg, int status)
{
    fw_cconn_t *k = arg;
    k->connecting = NULL;
    if (k->state != FW_CCONN_CONNECTING)
        return;
    char why[200];
    if (status < 0) {
        snprintf(why, sizeof(why), "cannot connect to ptail %s: %s", k->addr, uv_strerror(status));
        fw_cconn_close(k, 1, why);
        return;
    }
    uv_tcp_nodelay(&k->tcp, 1);
    /* A stream may be idle for hours; keepalive notices a peer that vanished. */
    uv_tcp_keepalive(&k->tcp, 1, KEEPALIVE_S);
    k->state = FW_CCONN_SUBSCRIBING;
    set_reading(k, 1);
    if (k->state == FW_CCONN_CLOSING)
        return;
    send_subscribe(k);
}

void fw_cconn_connect_next(fw_consumer_t *c)
{
    if (c->conn != NULL || c->closing || c->fatal)
        return;
    if (c->naddrs == 0) {
        if (c->zk_used)
            snprintf(c->error, sizeof(c->error), "no ptail registered in ZooKeeper at %s",
                     c->zk_spec);
        fw_clog(c, FW_CONSUMER_LOG_DEBUG, "%s", c->error);
        fw_cconn_retry(c, backoff_next(c));
        return;
    }
    const char *addr = c->addrs[c->next_addr++ % c->naddrs];
    fw_cconn_t *k = calloc(1, sizeof(*k));
    int rc = k == NULL ? -ENOMEM : uv_tcp_init(&c->loop, &k->tcp);
    if (rc < 0) {
        free(k);
        snprintf(c->error, sizeof(c->error), "cannot connect to ptail %s: %s", addr,
                 fw_strerror(rc));
        fw_clog(c, FW_CONSUMER_LOG_WARN, "%s", c->error);
        fw_cconn_retry(c, backoff_next(c));
        return;
    }
    k->c = c;
    k->tcp.data = k;
    snprintf(k->addr, sizeof(k->addr), "%s", addr);
    k->state = FW_CCONN_CONNECTING;
    c->handles_open++;
    c->conn = k;
    uv_timer_start(&c->conn_timer, on_conn_timeout, CONNECT_TIMEOUT_MS, 0);
    rc = fw_connect_start(&k->tcp, addr, on_connect, k, &k->connecting);
    if (rc < 0) {
        char why[200];
        snprintf(why, sizeof(why), "cannot connect to ptail %s: %s", addr, uv_strerror(rc));
        fw_cconn_close(k, 1, why);
    }
}
