/*
 * The producer's connections to writers: connecting, framing produce and
 * metadata requests, reading answers and matching them to requests by id,
 * and ending every request exactly once (answered, or lost with its
 * connection). It knows nothing of retries or routing: answers go to
 * sender.c and discovery.c.
 *
 * A request's bytes (its frame header and meta, then the blocks themselves,
 * which are not copied) must stay put until libuv's write callback. An
 * answer can in principle arrive first (a writer that answers before it has
 * read everything); it is then kept and applied when the write ends, so a
 * block is never released while a write may still read it. Requests of a
 * closed connection end as lost in the handle's close callback, after every
 * write callback has run.
 */
#include "producer_int.h"
#include "clock.h"

#include "error.h"
#include "status.h"
#include "frame.h"
#include "net.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READ_CHUNK         (64u << 10)
#define CONNECT_TIMEOUT_MS 10000
#define STACK_BUFS         64

/* ---- requests ---------------------------------------------------------------------------------
 */

fw_wreq_t *fw_wire_req_new(fw_wconn_t *c, fw_wreq_type_t type)
{
    fw_wreq_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->conn = c;
    r->type = type;
    r->id = ++c->next_id;
    r->write.data = r;
    if (type == FW_WREQ_PRODUCE)
        c->nproduce++;
    return r;
}

size_t fw_wire_ref_bound(const fw_batch_t *b)
{
    /* A BlockRef: tag, length, category string, two varints (bucket, length). */
    return 2 + 2 + strlen(b->cat->name) + 2 * 6;
}

int fw_wire_req_add(fw_wreq_t *r, fw_batch_t *b)
{
    if (r->n == r->cap) {
        uint32_t cap = r->cap ? r->cap * 2 : 16;
        fw_batch_t **v = realloc(r->batches, cap * sizeof(*v));
        if (v == NULL)
            return -ENOMEM;
        r->batches = v;
        r->cap = cap;
    }
    r->batches[r->n++] = b;
    r->body_len += b->block.len;
    r->meta_len += fw_wire_ref_bound(b);
    return 0;
}

void fw_wire_req_free(fw_wreq_t *r)
{
    if (r == NULL)
        return;
    if (r->type == FW_WREQ_PRODUCE && r->conn->nproduce > 0)
        r->conn->nproduce--;
    if (r->answer != NULL)
        protobuf_c_message_free_unpacked(r->answer, NULL);
    fw_buf_free(&r->head);
    free(r->batches);
    free(r->cats);
    free(r);
}

static void req_link(fw_wconn_t *c, fw_wreq_t *r)
{
    r->next = NULL;
    r->prev = c->reqs_tail;
    if (c->reqs_tail != NULL)
        c->reqs_tail->next = r;
    else
        c->reqs_head = r;
    c->reqs_tail = r;
}

static void req_unlink(fw_wconn_t *c, fw_wreq_t *r)
{
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        c->reqs_head = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    else
        c->reqs_tail = r->prev;
    r->next = r->prev = NULL;
}

/* An answer for r (unlinked): applies it and frees both. */
static void req_answered(fw_wconn_t *c, fw_wreq_t *r, ProtobufCMessage *answer)
{
    fw_producer_t *p = c->p;
    p->now = fw_clock_mono_ms();
    if (r->type == FW_WREQ_PRODUCE) {
        Fwpb__ProduceResponse *m = (Fwpb__ProduceResponse *)answer;
        for (uint32_t i = 0; i < r->n; i++)
            fw_sender_on_result(p, c, r->batches[i], m->results[i]);
        if (c->w != NULL)
            fw_discovery_writer_ok(p, c->w);
    } else {
        fw_discovery_on_metadata(p, r, (Fwpb__MetadataResponse *)answer);
    }
    protobuf_c_message_free_unpacked(answer, NULL);
    fw_wire_req_free(r);
}

/* r ended without an answer (unlinked); frees it. */
static void req_lost(fw_wconn_t *c, fw_wreq_t *r, const char *why)
{
    fw_producer_t *p = c->p;
    if (r->type == FW_WREQ_PRODUCE) {
        for (uint32_t i = 0; i < r->n; i++)
            fw_sender_on_lost(p, r->batches[i], why);
    } else {
        fw_discovery_on_metadata_lost(p, r);
    }
    fw_wire_req_free(r);
}

static void on_write(uv_write_t *w, int status)
{
    fw_wreq_t *r = w->data;
    fw_wconn_t *c = r->conn;
    r->write_done = 1;
    if (r->answered) {
        void *answer = r->answer;
        r->answer = NULL;
        req_answered(c, r, answer);
    }
    if (status < 0 && status != UV_ECANCELED) {
        char why[300];
        snprintf(why, sizeof(why), "writing to %s: %s", c->w ? c->w->addr : "a writer",
                 uv_strerror(status));
        fw_wire_close(c, 1, why);
    }
}

/* Links r and writes head + bodies; on failure the connection closes (r ends as lost). */
static int req_write(fw_wreq_t *r)
{
    fw_wconn_t *c = r->conn;
    fw_producer_t *p = c->p;
    req_link(c, r);
    r->sent_ms = p->now;
    uv_buf_t stack[STACK_BUFS];
    uint32_t nbufs = 1 + (r->type == FW_WREQ_PRODUCE ? r->n : 0);
    uv_buf_t *bufs = nbufs <= STACK_BUFS ? stack : malloc(nbufs * sizeof(*bufs));
    int rc = -ENOMEM;
    if (bufs != NULL) {
        bufs[0] = uv_buf_init((char *)r->head.data, (unsigned)r->head.len);
        for (uint32_t i = 1; i < nbufs; i++) {
            fw_batch_t *b = r->batches[i - 1];
            bufs[i] = uv_buf_init((char *)b->block.data, (unsigned)b->block.len);
        }
        rc = c->state == FW_WCONN_READY
                 ? uv_write(&r->write, (uv_stream_t *)&c->tcp, bufs, nbufs, on_write)
                 : UV_ENOTCONN;
        if (bufs != stack)
            free(bufs);
    }
    if (rc < 0) {
        r->write_done = 1; /* no callback will come */
        char why[300];
        snprintf(why, sizeof(why), "writing to %s: %s", c->w ? c->w->addr : "a writer",
                 rc == -ENOMEM ? "out of memory" : uv_strerror(rc));
        fw_wire_close(c, 1, why);
        return rc;
    }
    return 0;
}

/* Puts the frame header and the packed meta into r->head. */
static int req_frame(fw_wreq_t *r, uint8_t type, const ProtobufCMessage *meta, size_t body_len)
{
    size_t meta_len = protobuf_c_message_get_packed_size(meta);
    int rc = fw_buf_reserve(&r->head, FW_FRAME_HEADER_SIZE + meta_len);
    if (rc < 0)
        return rc;
    rc = fw_frame_header_put(r->head.data, type, meta_len, body_len, FW_FRAME_MAX_DEFAULT);
    if (rc < 0)
        return rc;
    protobuf_c_message_pack(meta, r->head.data + FW_FRAME_HEADER_SIZE);
    r->head.len = FW_FRAME_HEADER_SIZE + meta_len;
    return 0;
}

int fw_wire_send_produce(fw_wreq_t *r, fw_acks_t acks)
{
    fw_producer_t *p = r->conn->p;
    Fwpb__BlockRef *refs = calloc(r->n, sizeof(*refs));
    Fwpb__BlockRef **refp = calloc(r->n, sizeof(*refp));
    int rc = -ENOMEM;
    if (refs != NULL && refp != NULL) {
        for (uint32_t i = 0; i < r->n; i++) {
            fw_batch_t *b = r->batches[i];
            fwpb__block_ref__init(&refs[i]);
            refs[i].category = b->cat->name;
            refs[i].bucket = b->bucket->id;
            refs[i].length = (uint32_t)b->block.len;
            refp[i] = &refs[i];
        }
        Fwpb__ProduceRequest req = FWPB__PRODUCE_REQUEST__INIT;
        req.request_id = r->id;
        req.has_ack = 1;
        req.ack = acks == FW_ACKS_WRITTEN ? FWPB__ACK_LEVEL__ACK_WRITTEN
                  : acks == FW_ACKS_NONE  ? FWPB__ACK_LEVEL__ACK_NONE
                                          : FWPB__ACK_LEVEL__ACK_DURABLE;
        req.n_blocks = r->n;
        req.blocks = refp;
        rc = req_frame(r, FW_FRAME_PRODUCE_REQ, &req.base, r->body_len);
    }
    free(refs);
    free(refp);
    if (rc < 0) {
        /* Cannot happen short of memory: requests stay far below the frame limit. */
        r->write_done = 1;
        req_link(r->conn, r);
        fw_wire_close(r->conn, 1, "cannot frame a produce request");
        return rc;
    }
    atomic_fetch_add_explicit(&p->stats.requests_sent, 1, memory_order_relaxed);
    return req_write(r);
}

int fw_wire_send_metadata(fw_wreq_t *r)
{
    fw_producer_t *p = r->conn->p;
    const char **names = calloc(r->ncats ? r->ncats : 1, sizeof(*names));
    int rc = -ENOMEM;
    if (names != NULL) {
        for (uint32_t i = 0; i < r->ncats; i++)
            names[i] = r->cats[i]->name;
        Fwpb__MetadataRequest req = FWPB__METADATA_REQUEST__INIT;
        req.request_id = r->id;
        req.n_categories = r->ncats;
        req.categories = (char **)names;
        rc = req_frame(r, FW_FRAME_METADATA_REQ, &req.base, 0);
    }
    free(names);
    if (rc < 0) {
        r->write_done = 1;
        req_link(r->conn, r);
        fw_wire_close(r->conn, 1, "cannot frame a metadata request");
        return rc;
    }
    atomic_fetch_add_explicit(&p->stats.metadata_requests, 1, memory_order_relaxed);
    return req_write(r);
}

/* ---- reading -----------------------------------------------------------------------------------
 */

static fw_wreq_t *req_find(fw_wconn_t *c, uint64_t id, fw_wreq_type_t type)
{
    for (fw_wreq_t *r = c->reqs_head; r != NULL; r = r->next) {
        if (r->id == id)
            return r->type == type ? r : NULL;
    }
    return NULL;
}

/* Handles one frame; < 0 closes the connection (why says why). */
static int on_frame(fw_wconn_t *c, const fw_frame_t *f, char *why, size_t cap)
{
    const char *addr = c->w ? c->w->addr : "a writer";
    ProtobufCMessage *m = NULL;
    fw_wreq_t *r = NULL;
    switch (f->type) {
    case FW_FRAME_PRODUCE_RESP: {
        Fwpb__ProduceResponse *pr = fwpb__produce_response__unpack(NULL, f->meta_len, f->meta);
        if (pr == NULL)
            break;
        m = &pr->base;
        r = req_find(c, pr->request_id, FW_WREQ_PRODUCE);
        if (r == NULL) {
            snprintf(why, cap, "%s answered produce request %" PRIu64 ", which is not in flight",
                     addr, pr->request_id);
            goto bad;
        }
        if (pr->n_results != r->n) {
            snprintf(why, cap, "%s gave %zu results for a request of %" PRIu32 " blocks", addr,
                     pr->n_results, r->n);
            goto bad;
        }
        break;
    }
    case FW_FRAME_METADATA_RESP: {
        Fwpb__MetadataResponse *mr = fwpb__metadata_response__unpack(NULL, f->meta_len, f->meta);
        if (mr == NULL)
            break;
        m = &mr->base;
        r = req_find(c, mr->request_id, FW_WREQ_METADATA);
        if (r == NULL) {
            snprintf(why, cap, "%s answered metadata request %" PRIu64 ", which is not in flight",
                     addr, mr->request_id);
            goto bad;
        }
        break;
    }
    case FW_FRAME_ERROR: {
        Fwpb__ErrorReply *e = fwpb__error_reply__unpack(NULL, f->meta_len, f->meta);
        snprintf(why, cap, "%s sent an error: %s%s%s", addr,
                 e ? fw_status_name((int)e->status) : "(unreadable)", e && e->message ? ": " : "",
                 e && e->message ? e->message : "");
        if (e != NULL)
            fwpb__error_reply__free_unpacked(e, NULL);
        return -1;
    }
    default:
        snprintf(why, cap, "%s sent an unexpected frame of type %u", addr, f->type);
        return -1;
    }
    if (m == NULL) {
        snprintf(why, cap, "%s sent a malformed frame of type %u", addr, f->type);
        return -1;
    }
    req_unlink(c, r);
    if (!r->write_done) {
        r->answered = 1;
        r->answer = m;
        return 0;
    }
    req_answered(c, r, m);
    return 0;
bad:
    protobuf_c_message_free_unpacked(m, NULL);
    return -1;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    fw_wconn_t *c = h->data;
    if (fw_buf_reserve(&c->rbuf, READ_CHUNK) < 0) {
        *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
        return;
    }
    *buf = uv_buf_init((char *)c->rbuf.data + c->rbuf.len, (unsigned)(c->rbuf.cap - c->rbuf.len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    fw_wconn_t *c = s->data;
    char why[256];
    if (nread < 0) {
        snprintf(why, sizeof(why), "%s %s", c->w ? c->w->addr : "a writer",
                 nread == UV_EOF ? "closed the connection" : uv_strerror((int)nread));
        fw_wire_close(c, 1, why);
        return;
    }
    c->rbuf.len += (size_t)nread;
    size_t off = 0;
    while (c->state == FW_WCONN_READY) {
        fw_frame_t f;
        size_t need;
        ssize_t n =
            fw_frame_decode(c->rbuf.data + off, c->rbuf.len - off, FW_FRAME_MAX_DEFAULT, &f, &need);
        if (n == 0)
            break;
        if (n < 0) {
            snprintf(why, sizeof(why), "%s sent a bad frame: %s", c->w ? c->w->addr : "a writer",
                     fw_strerror((int)n));
            fw_wire_close(c, 1, why);
            break;
        }
        if (on_frame(c, &f, why, sizeof(why)) < 0) {
            fw_wire_close(c, 1, why);
            break;
        }
        off += (size_t)n;
    }
    if (off > 0) {
        memmove(c->rbuf.data, c->rbuf.data + off, c->rbuf.len - off);
        c->rbuf.len -= off;
    }
    if (c->state == FW_WCONN_READY)
        fw_sender_pump(c->p);
}

/* ---- connections ------------------------------------------------------------------------------
 */

static void on_connect(void *arg, int status)
{
    fw_wconn_t *c = arg;
    fw_producer_t *p = c->p;
    c->connecting = NULL;
    p->now = fw_clock_mono_ms();
    if (c->state != FW_WCONN_CONNECTING)
        return;
    if (status < 0) {
        char why[300];
        snprintf(why, sizeof(why), "cannot connect to %s: %s", c->w ? c->w->addr : "a writer",
                 uv_strerror(status));
        fw_wire_close(c, 1, why);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc < 0) {
        fw_wire_close(c, 1, uv_strerror(rc));
        return;
    }
    c->state = FW_WCONN_READY;
    atomic_fetch_add_explicit(&p->stats.connects, 1, memory_order_relaxed);
    fw_plog(p, FW_PRODUCER_LOG_DEBUG, "connected to writer %s", c->w ? c->w->addr : "?");
    fw_discovery_pump(p);
    fw_sender_pump(p);
}

static void on_closed(uv_handle_t *h)
{
    fw_wconn_t *c = h->data;
    fw_producer_t *p = c->p;
    p->now = fw_clock_mono_ms();
    /* Every write callback has run: the requests left got no answer. */
    const char *why = c->why;
    while (c->reqs_head != NULL) {
        fw_wreq_t *r = c->reqs_head;
        req_unlink(c, r);
        req_lost(c, r, why);
    }
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        p->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    p->nconns--;
    fw_buf_free(&c->rbuf);
    free(c);
    fw_sender_on_conn_closed(p);
}

void fw_wire_close(fw_wconn_t *c, int failed, const char *why)
{
    if (c->state == FW_WCONN_CLOSING)
        return;
    fw_producer_t *p = c->p;
    int was_ready = c->state == FW_WCONN_READY;
    c->state = FW_WCONN_CLOSING;
    c->failed = failed;
    if (failed) {
        fw_plog(p, FW_PRODUCER_LOG_WARN, "%s", why);
        snprintf(p->last_conn_error, sizeof(p->last_conn_error), "%s", why);
        if (was_ready)
            atomic_fetch_add_explicit(&p->stats.disconnects, 1, memory_order_relaxed);
        if (c->w != NULL)
            fw_discovery_writer_failed(p, c->w);
    }
    /* The requests still in flight learn why when they end (on_closed). */
    snprintf(c->why, sizeof(c->why), "%s", why);
    if (c->w != NULL && c->w->conn == c)
        c->w->conn = NULL;
    c->w = NULL;
    if (c->connecting != NULL) {
        fw_connect_abandon(c->connecting);
        c->connecting = NULL;
    }
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

int fw_wire_connect(fw_producer_t *p, fw_writer_t *w)
{
    fw_wconn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    int rc = uv_tcp_init(&p->loop, &c->tcp);
    if (rc < 0) {
        free(c);
        return rc;
    }
    c->p = p;
    c->w = w;
    c->tcp.data = c;
    c->state = FW_WCONN_CONNECTING;
    c->started_ms = p->now;
    c->next = p->conns;
    if (p->conns != NULL)
        p->conns->prev = c;
    p->conns = c;
    p->nconns++;
    w->conn = c;
    rc = fw_connect_start(&c->tcp, w->addr, on_connect, c, &c->connecting);
    if (rc < 0) {
        char why[300];
        snprintf(why, sizeof(why), "cannot connect to %s: %s", w->addr, uv_strerror(rc));
        fw_wire_close(c, 1, why);
        return rc;
    }
    return 0;
}

void fw_wire_check_timeouts(fw_producer_t *p)
{
    for (fw_wconn_t *c = p->conns; c != NULL; c = c->next) {
        char why[200];
        if (c->state == FW_WCONN_CONNECTING &&
            p->now - c->started_ms > (p->o.request_timeout_ms < CONNECT_TIMEOUT_MS
                                          ? p->o.request_timeout_ms
                                          : CONNECT_TIMEOUT_MS)) {
            snprintf(why, sizeof(why), "cannot connect to %s: timed out",
                     c->w ? c->w->addr : "a writer");
            fw_wire_close(c, 1, why);
        } else if (c->state == FW_WCONN_READY && c->reqs_head != NULL &&
                   p->now - c->reqs_head->sent_ms > p->o.request_timeout_ms) {
            snprintf(why, sizeof(why), "%s left a request unanswered for %" PRIu32 " ms",
                     c->w ? c->w->addr : "a writer", p->o.request_timeout_ms);
            fw_wire_close(c, 1, why);
        }
    }
}
