/*
 * fw_http_t: the tiny HTTP/1.1 server every daemon runs on its loop for
 * GET /metrics, /healthz and /readyz, plus its pure request-head parser.
 * Owns its listener and connections; the registry and the loop belong to
 * the caller. One request per connection: every response says
 * "Connection: close".
 *
 *   GET /metrics   200, the registry in Prometheus text format 0.0.4
 *   GET /healthz   200 "ok" (served by the loop, so it proves the loop runs)
 *   GET /readyz    200 "ok", or 503 with the reason ready_cb gave
 *   HEAD of each   the same headers, no body
 *   other paths 404; other methods 405 (Allow: GET, HEAD); a malformed head
 *   400; a head over FW_HTTP_HEAD_MAX 431; an HTTP major version other than
 *   1 505; over the connection cap 503.
 *
 * A client that has not sent its whole request head, or not read the whole
 * response, within the timeout is disconnected; so is one that keeps the
 * connection open after the response. Connections beyond the cap are
 * refused at once, so a misbehaving client holds at most its own slots.
 */
#ifndef FW_HTTP_H
#define FW_HTTP_H

#include "metrics.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

/* The longest request head (request line, header fields, blank line). */
#define FW_HTTP_HEAD_MAX 8192

#define FW_HTTP_TIMEOUT_MS_DEFAULT 5000
#define FW_HTTP_MAX_CONNS_DEFAULT  64

/* ---- the request-head parser ------------------------------------------------ */

typedef enum {
    FW_HTTP_METHOD_OTHER = 0,
    FW_HTTP_METHOD_GET,
    FW_HTTP_METHOD_HEAD,
} fw_http_method_t;

/* A parsed request head. The pointers point into the parser's input (path
 * may also be a static "/"). */
typedef struct fw_http_req_s {
    fw_http_method_t method;
    /** The method token as sent, e.g. "GET" or "DELETE". */
    const char *method_name;
    size_t method_len;
    /** The path of the request target: "/metrics" for "/metrics?x=1" and
     *  for "http://host:9100/metrics"; "*" for "OPTIONS *". Never empty. */
    const char *path;
    size_t path_len;
    /** x in HTTP/1.x. */
    int version_minor;
} fw_http_req_t;

/*
 * Parses the request head at the start of buf[0..len), looking at no more
 * than max bytes of it. Returns the length of the head (through its blank
 * line) once it is complete, 0 if more bytes are needed, or an error as soon
 * as the complete lines seen so far are wrong:
 *   -EINVAL           malformed (400)
 *   -EMSGSIZE         no complete head within max bytes (431)
 *   -EPROTONOSUPPORT  an HTTP version other than 1.x (505)
 * Accepts CRLF or bare LF line ends and empty lines before the request line
 * (RFC 9112 §2.2); rejects obsolete line folding, whitespace before a
 * field's colon, control characters, and an HTTP/1.1 request without exactly
 * one Host field. Bodies are not its business: the server never reads one.
 */
ssize_t fw_http_parse_head(const char *buf, size_t len, size_t max, fw_http_req_t *req);

/* The status code a server answers a parse error with (400 if unknown). */
int fw_http_error_status(int err);

/* ---- the server ------------------------------------------------------------- */

typedef struct fw_http_s fw_http_t;

/*
 * Asked on each GET /readyz: returns 1 if ready; if not, returns 0 and may
 * write a NUL-terminated reason into reason[0..cap). Runs on the loop.
 */
typedef int (*fw_http_ready_cb)(void *arg, char *reason, size_t cap);

/* Runs once everything fw_http_close closed is freed; http may be freed then. */
typedef void (*fw_http_close_cb)(fw_http_t *http);

struct fw_http_conn;

/*
 * The caller owns the struct (embed it anywhere) and must keep it alive from
 * fw_http_init until the close callback. Fields are private.
 */
struct fw_http_s {
    uv_loop_t *loop;
    uv_tcp_t listener;
    fw_metrics_t *metrics;
    fw_http_ready_cb ready_cb;
    void *ready_arg;
    fw_http_close_cb close_cb;
    /** Every connection not yet freed, newest first. */
    struct fw_http_conn *conns;
    /** Connections counted against max_conns (freed ones are not). */
    unsigned nconns;
    /** The listener, connections and refused sockets not yet closed. */
    unsigned nhandles;
    unsigned max_conns;
    uint64_t timeout_ms;
    int closing;
};

/*
 * Binds listen_addr ("HOST:PORT"; port 0 picks a free port) and starts
 * serving on loop, which must be the thread that runs it. metrics may be
 * NULL (then /metrics is an empty page); ready_cb may be NULL (always
 * ready). Returns 0, -EINVAL for a bad address, or the bind/listen error
 * (e.g. -EADDRINUSE). On error there is nothing to close.
 */
int fw_http_init(fw_http_t *http, uv_loop_t *loop, const char *listen_addr, fw_metrics_t *metrics,
                 fw_http_ready_cb ready_cb, void *ready_arg);

/* The bound address as "HOST:PORT", e.g. for a daemon to print. 0 or < 0. */
int fw_http_address(const fw_http_t *http, char *out, size_t cap);

/* Changes the per-connection timeout (default 5 s) and the connection cap
 * (default 64) for connections accepted from now on. */
void fw_http_set_timeout(fw_http_t *http, uint64_t timeout_ms);
void fw_http_set_max_conns(fw_http_t *http, unsigned max_conns);

/*
 * Closes the listener and every connection (responses being written are cut
 * off). close_cb (may be NULL) runs on the loop once the last handle is
 * closed and freed. Call it once, on the loop's thread.
 */
void fw_http_close(fw_http_t *http, fw_http_close_cb close_cb);

#endif
