/*
 * The metrics/health HTTP server (see http.h): the request-head parser, the
 * listener and the per-connection state machine. It renders the registry it
 * is given but owns none of it.
 *
 * A connection goes READING (the request head, under the timeout) ->
 * WRITING (one response, under the timeout) -> LINGERING (our side shut
 * down; what the client still sends is read and dropped until it closes, a
 * short linger time passes or too much arrives) -> CLOSING. Lingering is
 * there because closing a socket with unread input makes the kernel send a
 * reset, which can destroy the response before the client has read it; a
 * pipelining or keep-alive client would see that.
 */
#include "http.h"

#include "error.h"
#include "log.h"
#include "net.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define LISTEN_BACKLOG 128
/* How long and how much a lingering client may still send. */
#define LINGER_MS        1000
#define LINGER_MAX_BYTES (64 * 1024)

#define CONTENT_TYPE_TEXT    "text/plain; charset=utf-8"
#define CONTENT_TYPE_METRICS "text/plain; version=0.0.4; charset=utf-8"

/* ---- the request-head parser ------------------------------------------------ */

/* tchar of RFC 9110 §5.6.2: the characters of a method or a field name. */
static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/*
 * Finds the end of the line that starts at pos. Returns the offset just past
 * its CRLF or LF and stores where its content ends in *end; 0 if the line
 * does not end before lim; -EINVAL for a CR that is not followed by LF.
 */
static ssize_t line_end(const char *b, size_t lim, size_t pos, size_t *end)
{
    for (size_t i = pos; i < lim; i++) {
        if (b[i] == '\n') {
            *end = i;
            return (ssize_t)(i + 1);
        }
        if (b[i] == '\r') {
            if (i + 1 == lim)
                return 0;
            if (b[i + 1] != '\n')
                return -EINVAL;
            *end = i;
            return (ssize_t)(i + 2);
        }
    }
    return 0;
}

/*
 * Takes the path out of a request target: origin-form "/p?q", absolute-form
 * "http://host/p?q" (which RFC 9112 §3.2.2 says a server must accept), or
 * the asterisk-form "*". The caller has checked that every byte is visible
 * ASCII.
 */
static int parse_target(const char *t, size_t n, fw_http_req_t *req)
{
    if (n == 1 && t[0] == '*') {
        req->path = t;
        req->path_len = 1;
        return 0;
    }
    if (t[0] != '/') {
        /* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then "://". */
        size_t i = 0;
        while (i < n && ((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= 'A' && t[i] <= 'Z') ||
                         (i > 0 && ((t[i] >= '0' && t[i] <= '9') || t[i] == '+' || t[i] == '-' ||
                                    t[i] == '.'))))
            i++;
        if (i == 0 || n - i < 3 || memcmp(t + i, "://", 3) != 0)
            return -EINVAL;
        i += 3;
        size_t authority = i;
        while (i < n && t[i] != '/' && t[i] != '?')
            i++;
        if (i == authority)
            return -EINVAL;
        if (i == n || t[i] == '?') {
            req->path = "/";
            req->path_len = 1;
            return 0;
        }
        t += i;
        n -= i;
    }
    const char *q = memchr(t, '?', n);
    req->path = t;
    req->path_len = q != NULL ? (size_t)(q - t) : n;
    return 0;
}

/* request-line = method SP request-target SP HTTP-version (RFC 9112 §3) */
static int parse_request_line(const char *l, size_t n, fw_http_req_t *req)
{
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)l[i]))
        i++;
    if (i == 0 || i == n || l[i] != ' ')
        return -EINVAL;
    req->method_name = l;
    req->method_len = i;
    if (i == 3 && memcmp(l, "GET", 3) == 0)
        req->method = FW_HTTP_METHOD_GET;
    else if (i == 4 && memcmp(l, "HEAD", 4) == 0)
        req->method = FW_HTTP_METHOD_HEAD;
    else
        req->method = FW_HTTP_METHOD_OTHER;

    size_t target = ++i;
    while (i < n && (unsigned char)l[i] > 0x20 && (unsigned char)l[i] < 0x7f)
        i++;
    if (i == target || i == n || l[i] != ' ')
        return -EINVAL;
    size_t target_len = i - target;

    const char *v = l + i + 1;
    size_t vlen = n - i - 1;
    if (vlen != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' || v[6] != '.' ||
        v[7] < '0' || v[7] > '9')
        return -EINVAL;
    if (v[5] != '1')
        return -EPROTONOSUPPORT;
    req->version_minor = v[7] - '0';
    return parse_target(l + target, target_len, req);
}

/* field-line = field-name ":" OWS field-value OWS (RFC 9112 §5); counts Host. */
static int parse_field(const char *l, size_t n, int *hosts)
{
    size_t i = 0;
    /* A line that starts with whitespace is obsolete folding (or junk). */
    while (i < n && is_tchar((unsigned char)l[i]))
        i++;
    if (i == 0 || i == n || l[i] != ':')
        return -EINVAL;
    if (i == 4 && strncasecmp(l, "host", 4) == 0 && ++*hosts > 1)
        return -EINVAL;
    for (i++; i < n; i++) {
        unsigned char c = (unsigned char)l[i];
        /* HTAB, SP, VCHAR and obs-text; no other control characters. */
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return -EINVAL;
    }
    return 0;
}

ssize_t fw_http_parse_head(const char *buf, size_t len, size_t max, fw_http_req_t *req)
{
    size_t lim = len < max ? len : max;
    size_t pos = 0, end = 0;
    ssize_t next;
    int hosts = 0, rc;

    memset(req, 0, sizeof(*req));
    /* Empty lines before the request line are skipped (RFC 9112 §2.2). */
    for (;;) {
        next = line_end(buf, lim, pos, &end);
        if (next <= 0)
            goto incomplete;
        if (end > pos)
            break;
        pos = (size_t)next;
    }
    rc = parse_request_line(buf + pos, end - pos, req);
    if (rc < 0)
        return rc;
    pos = (size_t)next;
    for (;;) {
        next = line_end(buf, lim, pos, &end);
        if (next <= 0)
            goto incomplete;
        if (end == pos)
            break;
        rc = parse_field(buf + pos, end - pos, &hosts);
        if (rc < 0)
            return rc;
        pos = (size_t)next;
    }
    /* RFC 9112 §3.2: an HTTP/1.1 request without a Host field is a 400. */
    if (req->version_minor >= 1 && hosts != 1)
        return -EINVAL;
    return next;

incomplete:
    if (next < 0)
        return next;
    return len >= max ? -EMSGSIZE : 0;
}

int fw_http_error_status(int err)
{
    switch (err) {
    case -EMSGSIZE:
        return 431;
    case -EPROTONOSUPPORT:
        return 505;
    default:
        return 400;
    }
}

/* ---- the server ------------------------------------------------------------- */

enum conn_state { CONN_READING, CONN_WRITING, CONN_LINGERING, CONN_CLOSING };

/* One client connection. Heap-allocated, freed when both handles are closed. */
struct fw_http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t write_req;
    uv_shutdown_t shutdown_req;
    fw_http_t *http;
    struct fw_http_conn *prev, *next;
    enum conn_state state;
    int open_handles;
    size_t len;     /* bytes of the request head read so far */
    size_t drained; /* bytes dropped while lingering */
    fw_buf_t body;
    char head_out[512]; /* the response's status line and header fields */
    char in[FW_HTTP_HEAD_MAX];
};

static const char *status_text(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

/* One handle of the server's is gone; the last one finishes fw_http_close. */
static void http_handle_done(fw_http_t *http)
{
    http->nhandles--;
    if (http->closing && http->nhandles == 0 && http->close_cb != NULL)
        http->close_cb(http);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    struct fw_http_conn *c = h->data;
    if (--c->open_handles > 0)
        return;
    fw_http_t *http = c->http;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        http->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    http->nconns--;
    fw_buf_free(&c->body);
    free(c);
    http_handle_done(http);
}

/* Idempotent; the connection is freed once both handles have closed. */
static void conn_close(struct fw_http_conn *c)
{
    if (c->state == CONN_CLOSING)
        return;
    c->state = CONN_CLOSING;
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

static void on_timeout(uv_timer_t *timer)
{
    conn_close(timer->data);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct fw_http_conn *c = h->data;
    (void)suggested;
    if (c->state == CONN_READING) {
        /* The head goes straight into its fixed buffer: nothing grows. */
        buf->base = c->in + c->len;
        buf->len = sizeof(c->in) - c->len;
    } else {
        /* Lingering: the buffer is scratch space for input we drop. */
        buf->base = c->in;
        buf->len = sizeof(c->in);
    }
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct fw_http_conn *c = req->data;
    if (status < 0)
        conn_close(c);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void on_write(uv_write_t *req, int status)
{
    struct fw_http_conn *c = req->data;
    if (c->state == CONN_CLOSING)
        return; /* cancelled by conn_close */
    if (status < 0) {
        conn_close(c);
        return;
    }
    c->state = CONN_LINGERING;
    uint64_t linger = c->http->timeout_ms < LINGER_MS ? c->http->timeout_ms : LINGER_MS;
    uv_timer_start(&c->timer, on_timeout, linger, 0);
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) < 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
        conn_close(c);
}

/* Sends status with c->body (only its length for HEAD), then lingers. */
static void respond(struct fw_http_conn *c, int status, const char *content_type,
                    const char *extra_fields, int head_only)
{
    int n = snprintf(c->head_out, sizeof(c->head_out),
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Length: %zu\r\n"
                     "%s"
                     "Connection: close\r\n"
                     "\r\n",
                     status, status_text(status), content_type, c->body.len, extra_fields);
    if (n < 0 || (size_t)n >= sizeof(c->head_out)) {
        conn_close(c);
        return;
    }
    uv_buf_t bufs[2] = {
        uv_buf_init(c->head_out, (unsigned)n),
        uv_buf_init((char *)c->body.data, (unsigned)c->body.len),
    };
    unsigned nbufs = head_only || c->body.len == 0 ? 1 : 2;
    c->state = CONN_WRITING;
    /* A client that does not read the response gets the same deadline. */
    uv_timer_start(&c->timer, on_timeout, c->http->timeout_ms, 0);
    c->write_req.data = c;
    if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, bufs, nbufs, on_write) < 0)
        conn_close(c);
}

static void respond_text(struct fw_http_conn *c, int status, const char *text,
                         const char *extra_fields, int head_only)
{
    fw_buf_reset(&c->body);
    if (fw_buf_append(&c->body, text, strlen(text)) < 0) {
        conn_close(c);
        return;
    }
    respond(c, status, CONTENT_TYPE_TEXT, extra_fields, head_only);
}

static int path_is(const fw_http_req_t *req, const char *path)
{
    size_t n = strlen(path);
    return req->path_len == n && memcmp(req->path, path, n) == 0;
}

static void handle_request(struct fw_http_conn *c, const fw_http_req_t *req)
{
    fw_http_t *http = c->http;
    int head_only = req->method == FW_HTTP_METHOD_HEAD;
    int metrics = path_is(req, "/metrics"), healthz = path_is(req, "/healthz"),
        readyz = path_is(req, "/readyz");

    if (!metrics && !healthz && !readyz) {
        respond_text(c, 404, "not found\n", "", head_only);
    } else if (req->method == FW_HTTP_METHOD_OTHER) {
        respond_text(c, 405, "method not allowed\n", "Allow: GET, HEAD\r\n", 0);
    } else if (metrics) {
        fw_buf_reset(&c->body);
        if (http->metrics != NULL && fw_metrics_render(http->metrics, &c->body) < 0)
            respond_text(c, 500, "out of memory\n", "", head_only);
        else
            respond(c, 200, CONTENT_TYPE_METRICS, "", head_only);
    } else if (healthz) {
        respond_text(c, 200, "ok\n", "", head_only);
    } else {
        char reason[256] = "";
        int ready =
            http->ready_cb == NULL || http->ready_cb(http->ready_arg, reason, sizeof(reason));
        reason[sizeof(reason) - 1] = '\0';
        if (ready) {
            respond_text(c, 200, "ok\n", "", head_only);
            return;
        }
        char body[sizeof(reason) + 16];
        snprintf(body, sizeof(body), "%s\n", reason[0] != '\0' ? reason : "not ready");
        respond_text(c, 503, body, "", head_only);
    }
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct fw_http_conn *c = stream->data;
    (void)buf;
    if (nread < 0) {
        /* EOF or an error: a client gone before its request ends, or the
         * end of lingering. */
        conn_close(c);
        return;
    }
    if (c->state == CONN_LINGERING) {
        c->drained += (size_t)nread;
        if (c->drained > LINGER_MAX_BYTES)
            conn_close(c);
        return;
    }
    if (c->state != CONN_READING || nread == 0)
        return;

    size_t old = c->len;
    c->len += (size_t)nread;
    /* The parser starts over on every call, so call it only when a line has
     * ended (or the buffer is full): a client that dribbles one byte at a
     * time then costs a reparse per line, not per byte. */
    if (memchr(c->in + old, '\n', (size_t)nread) == NULL && c->len < sizeof(c->in))
        return;
    fw_http_req_t req;
    ssize_t n = fw_http_parse_head(c->in, c->len, sizeof(c->in), &req);
    if (n == 0)
        return;
    uv_read_stop(stream);
    if (n > 0) {
        handle_request(c, &req);
        return;
    }
    int status = fw_http_error_status((int)n);
    fw_log_debug("http", "answering %d to a malformed request: %s", status, fw_strerror((int)n));
    const char *text = status == 431 ? "request head too large\n" : "bad request\n";
    if (status == 505)
        text = "http version not supported\n";
    respond_text(c, status, text, "", 0);
}

static void on_refused_closed(uv_handle_t *h)
{
    fw_http_t *http = h->data;
    free(h);
    http_handle_done(http);
}

/*
 * Over the connection cap: accept (libuv stops watching the listener until
 * the pending connection is accepted), say 503 without waiting, and close.
 * The socket's buffer is empty, so the try-write either fits or is dropped.
 */
static void refuse(fw_http_t *http)
{
    static const char msg[] = "HTTP/1.1 503 Service Unavailable\r\n"
                              "Content-Type: " CONTENT_TYPE_TEXT "\r\n"
                              "Content-Length: 21\r\n"
                              "Connection: close\r\n"
                              "\r\n"
                              "too many connections\n";
    uv_tcp_t *t = malloc(sizeof(*t));
    if (t == NULL) {
        /* Daemons abort on out-of-memory (style.md); skipping the accept
         * would silently stop the listener for good. */
        fw_log_error("http", "out of memory accepting a connection");
        abort();
    }
    uv_tcp_init(http->loop, t);
    t->data = http;
    http->nhandles++;
    if (uv_accept((uv_stream_t *)&http->listener, (uv_stream_t *)t) == 0) {
        uv_buf_t b = uv_buf_init((char *)msg, sizeof(msg) - 1);
        (void)uv_try_write((uv_stream_t *)t, &b, 1);
    }
    uv_close((uv_handle_t *)t, on_refused_closed);
}

static void on_connection(uv_stream_t *listener, int status)
{
    fw_http_t *http = listener->data;
    if (status < 0) {
        /* libuv has already dropped the connection it could not accept. */
        fw_log_warn("http", "accept failed: %s", uv_strerror(status));
        return;
    }
    struct fw_http_conn *c = NULL;
    if (http->nconns < http->max_conns)
        c = calloc(1, sizeof(*c));
    if (c == NULL) {
        refuse(http);
        return;
    }
    c->http = http;
    uv_tcp_init(http->loop, &c->tcp);
    uv_timer_init(http->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->open_handles = 2;
    c->state = CONN_READING;
    c->next = http->conns;
    if (http->conns != NULL)
        http->conns->prev = c;
    http->conns = c;
    http->nconns++;
    http->nhandles++;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_timeout, http->timeout_ms, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
        conn_close(c);
}

int fw_http_init(fw_http_t *http, uv_loop_t *loop, const char *listen_addr, fw_metrics_t *metrics,
                 fw_http_ready_cb ready_cb, void *ready_arg)
{
    struct sockaddr_storage ss;
    memset(http, 0, sizeof(*http));
    if (listen_addr == NULL || fw_addr_parse(listen_addr, &ss) < 0)
        return -EINVAL;
    socklen_t slen =
        ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);

    /*
     * The socket is bound with plain system calls before libuv sees it: every
     * way this can really fail (address in use, permission, no such address)
     * then happens before a handle exists, so a failed init has nothing
     * asynchronous to undo and the caller may free http at once.
     */
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0 ||
        bind(fd, (struct sockaddr *)&ss, slen) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    int rc = uv_tcp_init(loop, &http->listener);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    /*
     * On a fresh, listening, non-blocking socket neither of these can fail
     * (libuv's tcp.c: no fd to clash with, nothing deferred, listen() again
     * only updates the backlog). If one ever did, the handle would have to be
     * closed asynchronously in memory the caller may free, so it is a bug.
     */
    if (uv_tcp_open(&http->listener, fd) < 0 ||
        uv_listen((uv_stream_t *)&http->listener, LISTEN_BACKLOG, on_connection) < 0)
        abort();
    http->listener.data = http;
    http->loop = loop;
    http->metrics = metrics;
    http->ready_cb = ready_cb;
    http->ready_arg = ready_arg;
    http->max_conns = FW_HTTP_MAX_CONNS_DEFAULT;
    http->timeout_ms = FW_HTTP_TIMEOUT_MS_DEFAULT;
    http->nhandles = 1;
    return 0;
}

int fw_http_address(const fw_http_t *http, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    int rc = uv_tcp_getsockname(&http->listener, (struct sockaddr *)&ss, &len);
    if (rc < 0)
        return rc;
    fw_addr_format((struct sockaddr *)&ss, out, cap);
    return 0;
}

void fw_http_set_timeout(fw_http_t *http, uint64_t timeout_ms)
{
    http->timeout_ms = timeout_ms;
}

void fw_http_set_max_conns(fw_http_t *http, unsigned max_conns)
{
    http->max_conns = max_conns;
}

static void on_listener_closed(uv_handle_t *h)
{
    http_handle_done(h->data);
}

void fw_http_close(fw_http_t *http, fw_http_close_cb close_cb)
{
    http->closing = 1;
    http->close_cb = close_cb;
    uv_close((uv_handle_t *)&http->listener, on_listener_closed);
    /* conn_close does not unlink; the list changes only in close callbacks. */
    for (struct fw_http_conn *c = http->conns; c != NULL; c = c->next)
        conn_close(c);
}
