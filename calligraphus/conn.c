/* One connection: messages in, answers out, for its protocol (see conn.h). */
#include "conn.h"

#include "error.h"
#include "log.h"
#include "net.h"

#include <stdlib.h>
#include <string.h>

#define READ_CHUNK (64u << 10)
/* Input read ahead while the protocol holds the connection. */
#define HELD_READ_MAX (256u << 10)

typedef struct write_req_s {
    uv_write_t req;
    cal_conn_t *conn;
    fw_buf_t buf;
    int close_after;
} write_req_t;

static void maybe_free(cal_conn_t *c);

static void on_closed(uv_handle_t *h)
{
    cal_conn_t *c = h->data;
    cal_server_t *s = c->server;
    s->handles--;
    c->tcp.data = NULL; /* closed */
    maybe_free(c);
}

static void maybe_free(cal_conn_t *c)
{
    if (!c->closing || c->refs > 0 || c->writes > 0 || c->tcp.data != NULL)
        return;
    cal_server_t *s = c->server;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    fw_metric_gauge_add(s->stats->connections, -1);
    fw_buf_free(&c->in);
    free(c);
}

void cal_conn_close(cal_conn_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    c->reading = 0;
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->tcp, on_closed);
    if (c->proto->closed != NULL)
        c->proto->closed(c);
}

void cal_conn_ref(cal_conn_t *c)
{
    c->refs++;
}

void cal_conn_unref(cal_conn_t *c)
{
    c->refs--;
    maybe_free(c);
}

/* ---- writing -------------------------------------------------------------------------- */

static void on_written(uv_write_t *req, int status)
{
    write_req_t *w = (write_req_t *)req;
    cal_conn_t *c = w->conn;
    c->writes--;
    if ((status < 0 || w->close_after || (c->server->closing_conns && c->writes == 0)) &&
        !c->closing)
        cal_conn_close(c);
    fw_buf_free(&w->buf);
    free(w);
    maybe_free(c);
}

static void send_buf(cal_conn_t *c, write_req_t *w)
{
    uv_buf_t b = uv_buf_init((char *)w->buf.data, (unsigned)w->buf.len);
    w->conn = c;
    c->writes++;
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
    if (rc < 0) {
        c->writes--;
        fw_buf_free(&w->buf);
        free(w);
        cal_conn_close(c);
    }
}

void cal_conn_send_buf(cal_conn_t *c, fw_buf_t *buf, int close_after)
{
    if (c->closing) {
        fw_buf_free(buf);
        return;
    }
    write_req_t *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        fw_buf_free(buf);
        cal_conn_close(c);
        return;
    }
    w->close_after = close_after;
    w->buf = *buf;
    *buf = (fw_buf_t)FW_BUF_INIT;
    send_buf(c, w);
}

void cal_conn_send_frame(cal_conn_t *c, uint8_t type, const ProtobufCMessage *meta, int close_after)
{
    if (c->closing)
        return;
    fw_buf_t buf = FW_BUF_INIT;
    if (fw_frame_append(&buf, type, meta, NULL, 0, FW_FRAME_MAX_LIMIT) < 0) {
        fw_buf_free(&buf);
        cal_conn_close(c);
        return;
    }
    cal_conn_send_buf(c, &buf, close_after);
}

void cal_conn_send(cal_conn_t *c, uint8_t type, const ProtobufCMessage *meta)
{
    cal_conn_send_frame(c, type, meta, 0);
}

void cal_conn_fail(cal_conn_t *c, int status, const char *message)
{
    if (c->closing)
        return;
    fw_log_warn("calligraphus", "%s: closing the %s connection: %s", c->peer, c->proto->name,
                message);
    fw_metric_inc(c->server->stats->frames_bad);
    cal_stats_error(c->server->stats, status);
    c->reading = 0;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->proto->fail(c, status, message);
}

/* ---- reading ------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    (void)suggested;
    cal_conn_t *c = h->data;
    size_t want = READ_CHUNK;
    if (c->need > c->in.len && c->need - c->in.len > want)
        want = c->need - c->in.len; /* one read for the rest of a large frame */
    if (fw_buf_reserve(&c->in, want) < 0) {
        *out = uv_buf_init(NULL, 0); /* UV_ENOBUFS follows */
        return;
    }
    *out = uv_buf_init((char *)c->in.data + c->in.len, (unsigned)(c->in.cap - c->in.len));
}

/* Hands every whole message in the buffer to the protocol while reading is allowed. */
static void process_input(cal_conn_t *c)
{
    if (c->processing)
        return; /* an answer given inside the protocol's input resumed reading */
    c->processing = 1;
    size_t off = 0;
    while (!c->closing && c->reading && !c->held && off < c->in.len) {
        size_t need = 0;
        ssize_t n = c->proto->input(c, c->in.data + off, c->in.len - off, &need);
        if (n == 0) {
            c->need = need;
            break;
        }
        if (n < 0)
            break; /* the protocol failed the connection */
        off += (size_t)n;
        c->need = 0;
    }
    if (off > 0) {
        memmove(c->in.data, c->in.data + off, c->in.len - off);
        c->in.len -= off;
    }
    /* Do not keep a large frame's buffer around for small ones. */
    if (c->in.len == 0 && c->in.cap > 4 * READ_CHUNK)
        fw_buf_free(&c->in);
    c->processing = 0;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    cal_conn_t *c = stream->data;
    if (nread < 0) {
        if (nread != UV_EOF)
            fw_log_debug("calligraphus", "%s: %s", c->peer, uv_strerror((int)nread));
        cal_conn_close(c);
        return;
    }
    c->in.len += (size_t)nread;
    if (c->held)
        cal_conn_update_reading(c);
    process_input(c);
}

void cal_conn_update_reading(cal_conn_t *c)
{
    if (c->closing)
        return;
    cal_server_t *s = c->server;
    /* Held, it still reads (so a close is seen at once), up to a little input. */
    int want = !s->stopping && !s->paused_all && !(c->held && c->in.len >= HELD_READ_MAX) &&
               c->inflight < s->limits.conn_inflight_bytes;
    if (want && !c->reading) {
        c->reading = 1;
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        process_input(c); /* frames that arrived before the pause */
    } else if (!want && c->reading) {
        c->reading = 0;
        uv_read_stop((uv_stream_t *)&c->tcp);
        fw_metric_inc(s->stats->reads_paused);
    }
}

void cal_conn_hold(cal_conn_t *c, int hold)
{
    c->held = hold;
    cal_conn_update_reading(c);
    if (!hold)
        process_input(c); /* what came while it was held */
}

int cal_conn_accept(cal_server_t *s, uv_stream_t *listener, const cal_conn_proto_t *proto,
                    void *proto_arg)
{
    cal_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->server = s;
    c->proto = proto;
    c->proto_arg = proto_arg;
    int rc = uv_tcp_init(s->loop, &c->tcp);
    if (rc < 0) {
        free(c);
        return rc;
    }
    c->tcp.data = c;
    s->handles++;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    fw_metric_gauge_add(s->stats->connections, 1);
    rc = uv_accept(listener, (uv_stream_t *)&c->tcp);
    if (rc < 0 || s->nconns > s->limits.max_conns) {
        cal_conn_close(c);
        return rc < 0 ? rc : -EMFILE;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0)
        fw_addr_format((struct sockaddr *)&ss, c->peer, sizeof(c->peer));
    cal_conn_update_reading(c);
    return 0;
}
