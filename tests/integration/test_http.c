/*
 * The metrics/health HTTP server: its request-head parser on every error
 * path, then a real server on a loop thread against libcurl and raw sockets:
 * each endpoint and status, oversized and malformed heads, idle and slow
 * clients, the connection cap, pipelining, many requests and closing with
 * clients attached (the asan build checks that everything is freed).
 */
#include "fwt_proc.h"
#include "fwtest.h"

#include "error.h"
#include "http.h"
#include "metrics.h"
#include "net.h"

#include <curl/curl.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the parser ---------------------------------------------------------------- */

static ssize_t parse(const char *text, fw_http_req_t *req)
{
    /* An exact heap copy, so ASan sees any read past the end. */
    size_t len = strlen(text);
    char *copy = malloc(len ? len : 1);
    FWT_ASSERT(copy != NULL);
    memcpy(copy, text, len);
    ssize_t n = fw_http_parse_head(copy, len, FW_HTTP_HEAD_MAX, req);
    if (n > 0) {
        /* Point the results back into text, which outlives the copy. */
        if (req->path != NULL && req->path >= copy && req->path < copy + len)
            req->path = text + (req->path - copy);
        req->method_name = text + (req->method_name - copy);
    }
    free(copy);
    return n;
}

static void assert_path(const fw_http_req_t *req, const char *want)
{
    if (req->path_len != strlen(want) || memcmp(req->path, want, req->path_len) != 0)
        FWT_FAIL("path \"%.*s\", want \"%s\"", (int)req->path_len, req->path, want);
}

FWT_TEST(parser_accepts_valid_heads)
{
    fw_http_req_t req;
    const char *get = "GET /metrics HTTP/1.1\r\nHost: localhost:9100\r\nAccept: */*\r\n\r\n";
    FWT_ASSERT_INT_EQ(parse(get, &req), strlen(get));
    FWT_ASSERT_INT_EQ(req.method, FW_HTTP_METHOD_GET);
    FWT_ASSERT_INT_EQ(req.version_minor, 1);
    assert_path(&req, "/metrics");

    const char *head = "HEAD /readyz?verbose=1 HTTP/1.0\r\n\r\n"; /* 1.0 needs no Host */
    FWT_ASSERT_INT_EQ(parse(head, &req), strlen(head));
    FWT_ASSERT_INT_EQ(req.method, FW_HTTP_METHOD_HEAD);
    FWT_ASSERT_INT_EQ(req.version_minor, 0);
    assert_path(&req, "/readyz");

    const char *other = "DELETE /metrics HTTP/1.1\r\nhOsT:\r\n\r\n";
    FWT_ASSERT_INT_EQ(parse(other, &req), strlen(other));
    FWT_ASSERT_INT_EQ(req.method, FW_HTTP_METHOD_OTHER);
    FWT_ASSERT_INT_EQ(req.method_len, 6);
    FWT_ASSERT_MEM_EQ(req.method_name, "DELETE", 6);

    /* Bare LF line ends, and empty lines before the request line. */
    const char *lf = "\r\n\nGET /healthz HTTP/1.1\nHost: h\n\n";
    FWT_ASSERT_INT_EQ(parse(lf, &req), strlen(lf));
    assert_path(&req, "/healthz");

    /* absolute-form, with and without a path, and asterisk-form. */
    FWT_ASSERT(parse("GET http://h:9100/metrics?a HTTP/1.1\r\nHost: h\r\n\r\n", &req) > 0);
    assert_path(&req, "/metrics");
    FWT_ASSERT(parse("GET HTTPS://h:9100 HTTP/1.1\r\nHost: h\r\n\r\n", &req) > 0);
    assert_path(&req, "/");
    FWT_ASSERT(parse("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", &req) > 0);
    assert_path(&req, "*");

    /* Field values may hold tabs, spaces and obs-text. */
    FWT_ASSERT(parse("GET / HTTP/1.1\r\nHost: h\r\nX: a\tb \xe9\r\n\r\n", &req) > 0);

    /* A pipelined second request is not part of the head. */
    const char *two = "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\n";
    FWT_ASSERT_INT_EQ(parse(two, &req), strstr(two, "GET /b") - two);
    assert_path(&req, "/a");
}

FWT_TEST(parser_needs_more_for_every_prefix)
{
    const char *get = "\r\nGET /metrics?x=1 HTTP/1.1\r\nHost: h\r\nUser-Agent: t\r\n\r\n";
    size_t len = strlen(get);
    for (size_t k = 0; k < len; k++) {
        fw_http_req_t req;
        char *copy = malloc(k ? k : 1);
        memcpy(copy, get, k);
        ssize_t n = fw_http_parse_head(copy, k, FW_HTTP_HEAD_MAX, &req);
        free(copy);
        if (n != 0)
            FWT_FAIL("prefix of %zu bytes: %zd, want 0", k, n);
    }
}

FWT_TEST(parser_rejects_malformed_heads)
{
    static const struct {
        const char *text;
        int rc;
    } cases[] = {
        {"GARBAGE\r\n\r\n", -EINVAL},
        {" GET / HTTP/1.1\r\nHost: h\r\n\r\n", -EINVAL},
        {"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", -EINVAL},
        {"GET / HTTP/1.1 \r\nHost: h\r\n\r\n", -EINVAL},
        {"GET /\r\n\r\n", -EINVAL}, /* HTTP/0.9 */
        {"GET / http/1.1\r\nHost: h\r\n\r\n", -EINVAL},
        {"GET / HTTP/1.10\r\nHost: h\r\n\r\n", -EINVAL},
        {"GET / HTTP/1\r\nHost: h\r\n\r\n", -EINVAL},
        {"G(T / HTTP/1.1\r\nHost: h\r\n\r\n", -EINVAL},
        {"GET /\x01 HTTP/1.1\r\nHost: h\r\n\r\n", -EINVAL},
        {"GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", -EINVAL},
        {"GET metrics HTTP/1.1\r\nHost: h\r\n\r\n", -EINVAL},
        {"GET http:///metrics HTTP/1.1\r\nHost: h\r\n\r\n", -EINVAL},
        {"GET 1http://h/ HTTP/1.1\r\nHost: h\r\n\r\n", -EINVAL},
        {"GET / HTTP/2.0\r\nHost: h\r\n\r\n", -EPROTONOSUPPORT},
        {"GET / HTTP/0.9\r\n\r\n", -EPROTONOSUPPORT},
        {"GET / HTTP/1.1\r\n\r\n", -EINVAL}, /* no Host */
        {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", -EINVAL},
        {"GET / HTTP/1.1\r\nHost : h\r\n\r\n", -EINVAL},
        {"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", -EINVAL}, /* obs-fold */
        {"GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", -EINVAL},
        {"GET / HTTP/1.1\r\nHost: h\r\n: empty\r\n\r\n", -EINVAL},
        {"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", -EINVAL}, /* bare CR */
        {"GET / HTTP/1.1\r\nHost: h\r\nX: a\x7f\r\n\r\n", -EINVAL},
        {"GET / HTTP/1.1\r\nHost: h\r\nX: \x1b[0m\r\n\r\n", -EINVAL},
        /* Errors are found as soon as a line is complete, before the end. */
        {"BAD LINE\r\n", -EINVAL},
        {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n", -EINVAL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fw_http_req_t req;
        ssize_t n = parse(cases[i].text, &req);
        if (n != cases[i].rc)
            FWT_FAIL("case %zu: got %zd, want %d", i, n, cases[i].rc);
    }
    /* A NUL inside a field value (strlen cannot carry it). */
    static const char nul[] = "GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n";
    fw_http_req_t req;
    FWT_ASSERT_INT_EQ(fw_http_parse_head(nul, sizeof(nul) - 1, FW_HTTP_HEAD_MAX, &req), -EINVAL);
    FWT_ASSERT_INT_EQ(fw_http_error_status(-EINVAL), 400);
    FWT_ASSERT_INT_EQ(fw_http_error_status(-EMSGSIZE), 431);
    FWT_ASSERT_INT_EQ(fw_http_error_status(-EPROTONOSUPPORT), 505);
}

FWT_TEST(parser_limits_the_head_size)
{
    const size_t max = 64;
    const char *start = "GET / HTTP/1.1\r\nHost: h\r\nX: ";
    char buf[256];
    fw_http_req_t req;
    /* A head of exactly max bytes is fine; one more byte is not. */
    for (size_t total = max - 2; total <= max + 2; total++) {
        size_t pad = total - strlen(start) - 4;
        snprintf(buf, sizeof(buf), "%s%.*s\r\n\r\n", start, (int)pad,
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        FWT_ASSERT_UINT_EQ(strlen(buf), total);
        ssize_t want = total <= max ? (ssize_t)total : -EMSGSIZE;
        FWT_ASSERT_INT_EQ(fw_http_parse_head(buf, total, max, &req), want);
        /* With only max bytes in hand the answer is already known. */
        if (total > max)
            FWT_ASSERT_INT_EQ(fw_http_parse_head(buf, max, max, &req), -EMSGSIZE);
        else
            FWT_ASSERT_INT_EQ(fw_http_parse_head(buf, total - 1, max, &req), 0);
    }
    /* An error inside the first max bytes wins over the size. */
    memset(buf, 'a', sizeof(buf));
    memcpy(buf, "BAD\r\n", 5);
    FWT_ASSERT_INT_EQ(fw_http_parse_head(buf, sizeof(buf), max, &req), -EINVAL);
    /* Endless empty lines count against the limit too. */
    memset(buf, '\n', sizeof(buf));
    FWT_ASSERT_INT_EQ(fw_http_parse_head(buf, sizeof(buf), max, &req), -EMSGSIZE);
}

/* ---- a server on a loop thread ------------------------------------------------ */

struct server {
    uv_loop_t loop;
    fw_http_t http;
    fw_metrics_t *reg;
    uv_async_t stop;
    pthread_t thread;
    char addr[64];
    int running;
    int closed; /* the close callback ran (written on the loop thread) */
    /* /readyz: the test thread writes reason, then ready (release). */
    atomic_int ready;
    char reason[128];
};

static int ready_cb(void *arg, char *reason, size_t cap)
{
    struct server *s = arg;
    if (atomic_load_explicit(&s->ready, memory_order_acquire))
        return 1;
    snprintf(reason, cap, "%s", s->reason);
    return 0;
}

static void on_http_closed(fw_http_t *http)
{
    struct server *s = (struct server *)((char *)http - offsetof(struct server, http));
    s->closed = 1;
}

static void on_stop(uv_async_t *a)
{
    struct server *s = a->data;
    fw_http_close(&s->http, on_http_closed);
    uv_close((uv_handle_t *)a, NULL);
}

static void *loop_thread(void *arg)
{
    struct server *s = arg;
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* Stops the loop thread and checks that the server left no handle behind. */
static void server_stop(struct server *s)
{
    if (!s->running)
        return;
    s->running = 0;
    uv_async_send(&s->stop);
    pthread_join(s->thread, NULL);
    FWT_ASSERT(s->closed);
    FWT_ASSERT_INT_EQ(uv_loop_close(&s->loop), 0);
    fw_metrics_destroy(s->reg);
    s->reg = NULL;
}

static void server_cleanup(void *arg)
{
    server_stop(arg);
}

/* Starts a server on 127.0.0.1:0; timeout_ms and max_conns 0 keep the
 * defaults; without a registry s->reg stays NULL. */
static void server_start_opts(struct server *s, uint64_t timeout_ms, unsigned max_conns,
                              int registry)
{
    memset(s, 0, sizeof(*s));
    atomic_init(&s->ready, 1);
    if (registry) {
        s->reg = fw_metrics_create();
        FWT_ASSERT(s->reg != NULL);
    }
    FWT_ASSERT_OK(uv_loop_init(&s->loop));
    FWT_ASSERT_OK(fw_http_init(&s->http, &s->loop, "127.0.0.1:0", s->reg, ready_cb, s));
    if (timeout_ms > 0)
        fw_http_set_timeout(&s->http, timeout_ms);
    if (max_conns > 0)
        fw_http_set_max_conns(&s->http, max_conns);
    FWT_ASSERT_OK(fw_http_address(&s->http, s->addr, sizeof(s->addr)));
    FWT_ASSERT(strncmp(s->addr, "127.0.0.1:", 10) == 0 && strcmp(s->addr, "127.0.0.1:0") != 0);
    FWT_ASSERT_OK(uv_async_init(&s->loop, &s->stop, on_stop));
    s->stop.data = s;
    FWT_ASSERT_INT_EQ(pthread_create(&s->thread, NULL, loop_thread, s), 0);
    s->running = 1;
    fwt_defer(server_cleanup, s);
}

static void server_start(struct server *s, uint64_t timeout_ms, unsigned max_conns)
{
    server_start_opts(s, timeout_ms, max_conns, 1);
}

/* ---- clients ------------------------------------------------------------------ */

static void curl_cleanup(void *arg)
{
    (void)arg;
    curl_global_cleanup();
}

static void curl_setup(void)
{
    FWT_ASSERT_INT_EQ(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
    fwt_defer(curl_cleanup, NULL);
}

static size_t on_curl_data(char *p, size_t size, size_t n, void *arg)
{
    return fw_buf_append(arg, p, size * n) == 0 ? size * n : 0;
}

struct reply {
    long status;
    char body[1 << 16];
    size_t body_len;
    char headers[4096];
};

/* One request with libcurl; method NULL is GET. Fills r (body NUL-terminated)
 * unless it returns an error. */
static CURLcode curl_try(const struct server *s, const char *method, const char *path,
                         struct reply *r)
{
    char url[256];
    fw_buf_t body = FW_BUF_INIT, headers = FW_BUF_INIT;
    snprintf(url, sizeof(url), "http://%s%s", s->addr, path);
    CURL *h = curl_easy_init();
    FWT_ASSERT(h != NULL);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_curl_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_curl_data);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &headers);
    if (method != NULL && strcmp(method, "HEAD") == 0)
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    else if (method != NULL)
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_cleanup(h);
    FWT_ASSERT(body.len < sizeof(r->body) && headers.len < sizeof(r->headers));
    if (body.len > 0)
        memcpy(r->body, body.data, body.len);
    r->body[body.len] = '\0';
    r->body_len = body.len;
    if (headers.len > 0)
        memcpy(r->headers, headers.data, headers.len);
    r->headers[headers.len] = '\0';
    fw_buf_free(&body);
    fw_buf_free(&headers);
    return rc;
}

static void curl_request(const struct server *s, const char *method, const char *path,
                         struct reply *r)
{
    CURLcode rc = curl_try(s, method, path, r);
    if (rc != CURLE_OK)
        FWT_FAIL("%s %s: %s", method ? method : "GET", path, curl_easy_strerror(rc));
}

static void assert_header(const struct reply *r, const char *line)
{
    if (strstr(r->headers, line) == NULL)
        FWT_FAIL("no \"%s\" in the response head:\n%s", line, r->headers);
}

/* Every raw client socket of the test, closed when it ends (-1: free slot). */
static int raw_fds[16] = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1};

static void raw_close_all(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < sizeof(raw_fds) / sizeof(raw_fds[0]); i++)
        if (raw_fds[i] >= 0)
            close(raw_fds[i]);
}

static void raw_close(int fd)
{
    for (size_t i = 0; i < sizeof(raw_fds) / sizeof(raw_fds[0]); i++)
        if (raw_fds[i] == fd)
            raw_fds[i] = -1;
    close(fd);
}

/* A blocking TCP connection to the server, with a receive buffer of rcvbuf
 * bytes unless 0. */
static int raw_connect_rcvbuf(const struct server *s, int rcvbuf)
{
    struct sockaddr_storage ss;
    size_t slot = 0;
    while (slot < sizeof(raw_fds) / sizeof(raw_fds[0]) && raw_fds[slot] >= 0)
        slot++;
    FWT_ASSERT(slot < sizeof(raw_fds) / sizeof(raw_fds[0]));
    if (slot == 0)
        fwt_defer(raw_close_all, NULL);
    FWT_ASSERT_OK(fw_addr_parse(s->addr, &ss));
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    FWT_ASSERT(fd >= 0);
    raw_fds[slot] = fd;
    if (rcvbuf > 0)
        FWT_ASSERT_INT_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
    if (connect(fd, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)) < 0)
        FWT_FAIL("connect %s: %s", s->addr, strerror(errno));
    return fd;
}

static int raw_connect(const struct server *s)
{
    return raw_connect_rcvbuf(s, 0);
}

static void raw_send(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0)
            FWT_FAIL("send: %s", strerror(errno));
        c += w;
        n -= (size_t)w;
    }
}

static void raw_send_str(int fd, const char *s)
{
    raw_send(fd, s, strlen(s));
}

/*
 * Reads until the server closes (returns the byte count, out NUL-terminated)
 * or timeout_ms passes (fails the test). A reset instead of a clean close
 * is reported through *reset (or fails the test if reset is NULL).
 */
static size_t raw_read_all(int fd, char *out, size_t cap, int timeout_ms, int *reset)
{
    size_t len = 0;
    int64_t deadline = fwt_now_ms() + timeout_ms;
    if (reset != NULL)
        *reset = 0;
    for (;;) {
        int64_t left = deadline - fwt_now_ms();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, (int)left) == 0)
            FWT_FAIL("the server did not close within %d ms (read %zu bytes)", timeout_ms, len);
        char tmp[4096];
        ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
        if (n == 0)
            break;
        if (n < 0 && errno == ECONNRESET && reset != NULL) {
            *reset = 1;
            break;
        }
        if (n < 0)
            FWT_FAIL("recv: %s", strerror(errno));
        size_t keep = (size_t)n < cap - 1 - len ? (size_t)n : cap - 1 - len;
        memcpy(out + len, tmp, keep);
        len += keep;
    }
    out[len] = '\0';
    return len;
}

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ---- server tests -------------------------------------------------------------- */

FWT_TEST(metrics_returns_the_rendered_registry)
{
    static struct server s;
    static struct reply r;
    curl_setup();
    server_start(&s, 0, 0);
    fw_metric_counter_t *c;
    fw_metric_gauge_t *g;
    FWT_ASSERT_OK(fw_metrics_counter(s.reg, &c, "freeway_test_records_received_total",
                                     "Records \"received\".", "category", "web\\clicks", NULL));
    FWT_ASSERT_OK(fw_metrics_gauge(s.reg, &g, "freeway_test_inflight_bytes", "In flight.", NULL));
    fw_metric_add(c, 42);
    fw_metric_set(g, 0.25);

    curl_request(&s, NULL, "/metrics", &r);
    FWT_ASSERT_INT_EQ(r.status, 200);
    assert_header(&r, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n");
    assert_header(&r, "Connection: close\r\n");
    fw_buf_t want = FW_BUF_INIT;
    FWT_ASSERT_OK(fw_metrics_render(s.reg, &want));
    FWT_ASSERT_OK(fw_buf_append(&want, "", 1));
    FWT_ASSERT_STR_EQ(r.body, (char *)want.data);
    FWT_ASSERT(strstr(r.body, "freeway_test_records_received_total{category=\"web\\\\clicks\"} "
                              "42\n") != NULL);

    /* The query string does not change the path; HEAD gets the length only. */
    curl_request(&s, NULL, "/metrics?name[]=x", &r);
    FWT_ASSERT_INT_EQ(r.status, 200);
    FWT_ASSERT_STR_EQ(r.body, (char *)want.data);
    curl_request(&s, "HEAD", "/metrics", &r);
    FWT_ASSERT_INT_EQ(r.status, 200);
    FWT_ASSERT_UINT_EQ(r.body_len, 0);
    char cl[64];
    snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", want.len - 1);
    assert_header(&r, cl);
    fw_buf_free(&want);
    server_stop(&s);
}

FWT_TEST(healthz_and_readyz)
{
    static struct server s;
    static struct reply r;
    curl_setup();
    server_start(&s, 0, 0);
    curl_request(&s, NULL, "/healthz", &r);
    FWT_ASSERT_INT_EQ(r.status, 200);
    FWT_ASSERT_STR_EQ(r.body, "ok\n");
    assert_header(&r, "Content-Type: text/plain; charset=utf-8\r\n");
    curl_request(&s, NULL, "/readyz", &r);
    FWT_ASSERT_INT_EQ(r.status, 200);
    FWT_ASSERT_STR_EQ(r.body, "ok\n");

    snprintf(s.reason, sizeof(s.reason), "zookeeper session is CONNECTING");
    atomic_store_explicit(&s.ready, 0, memory_order_release);
    curl_request(&s, NULL, "/readyz", &r);
    FWT_ASSERT_INT_EQ(r.status, 503);
    FWT_ASSERT_STR_EQ(r.body, "zookeeper session is CONNECTING\n");
    curl_request(&s, "HEAD", "/readyz", &r);
    FWT_ASSERT_INT_EQ(r.status, 503);
    FWT_ASSERT_UINT_EQ(r.body_len, 0);
    /* Not ready does not mean unhealthy. */
    curl_request(&s, NULL, "/healthz", &r);
    FWT_ASSERT_INT_EQ(r.status, 200);

    atomic_store_explicit(&s.ready, 1, memory_order_release);
    curl_request(&s, NULL, "/readyz", &r);
    FWT_ASSERT_INT_EQ(r.status, 200);
    server_stop(&s);
}

FWT_TEST(errors_404_405_400_505)
{
    static struct server s;
    static struct reply r;
    static char buf[8192];
    int fd;
    curl_setup();
    server_start(&s, 0, 0);
    curl_request(&s, NULL, "/nope", &r);
    FWT_ASSERT_INT_EQ(r.status, 404);
    curl_request(&s, NULL, "/metrics/", &r);
    FWT_ASSERT_INT_EQ(r.status, 404);
    curl_request(&s, "POST", "/metrics", &r);
    FWT_ASSERT_INT_EQ(r.status, 405);
    assert_header(&r, "Allow: GET, HEAD\r\n");
    curl_request(&s, "DELETE", "/healthz", &r);
    FWT_ASSERT_INT_EQ(r.status, 405);

    fd = raw_connect(&s);
    raw_send_str(fd, "GARBAGE\r\n\r\n");
    raw_read_all(fd, buf, sizeof(buf), 5000, NULL);
    if (!starts_with(buf, "HTTP/1.1 400 Bad Request\r\n"))
        FWT_FAIL("response: %s", buf);
    FWT_ASSERT(strstr(buf, "Connection: close\r\n") != NULL);

    int fd2 = raw_connect(&s);
    raw_send_str(fd2, "GET /healthz HTTP/2.0\r\nHost: h\r\n\r\n");
    raw_read_all(fd2, buf, sizeof(buf), 5000, NULL);
    if (!starts_with(buf, "HTTP/1.1 505 "))
        FWT_FAIL("response: %s", buf);

    /* HTTP/1.1 without Host. */
    int fd3 = raw_connect(&s);
    raw_send_str(fd3, "GET /healthz HTTP/1.1\r\n\r\n");
    raw_read_all(fd3, buf, sizeof(buf), 5000, NULL);
    if (!starts_with(buf, "HTTP/1.1 400 "))
        FWT_FAIL("response: %s", buf);
    server_stop(&s);
}

FWT_TEST(oversized_head_gets_431_and_the_next_client_is_served)
{
    static struct server s;
    static struct reply r;
    static char pad[20000], buf[8192];
    int fd, reset;
    curl_setup();
    server_start(&s, 0, 0);
    fd = raw_connect(&s);
    /* More than the limit and no end of head: the server must not wait. */
    int n = snprintf(pad, sizeof(pad), "GET /metrics HTTP/1.1\r\nHost: h\r\nX-Pad: ");
    memset(pad + n, 'a', sizeof(pad) - (size_t)n);
    raw_send(fd, pad, sizeof(pad));
    raw_read_all(fd, buf, sizeof(buf), 5000, &reset);
    if (!starts_with(buf, "HTTP/1.1 431 Request Header Fields Too Large\r\n"))
        FWT_FAIL("response (reset=%d): %s", reset, buf);

    curl_request(&s, NULL, "/healthz", &r);
    FWT_ASSERT_INT_EQ(r.status, 200);
    server_stop(&s);
}

FWT_TEST(pipelined_requests_get_one_answer_and_a_clean_close)
{
    static struct server s;
    static char buf[8192];
    int fd, reset;
    server_start(&s, 0, 0);
    fd = raw_connect(&s);
    const char *two = "GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n"
                      "GET /readyz HTTP/1.1\r\nHost: h\r\n\r\n";
    raw_send(fd, two, strlen(two));
    size_t len = raw_read_all(fd, buf, sizeof(buf), 5000, &reset);
    FWT_ASSERT_INT_EQ(reset, 0);
    const char *want = "HTTP/1.1 200 OK\r\n"
                       "Content-Type: text/plain; charset=utf-8\r\n"
                       "Content-Length: 3\r\n"
                       "Connection: close\r\n"
                       "\r\n"
                       "ok\n";
    FWT_ASSERT_UINT_EQ(len, strlen(want));
    FWT_ASSERT_STR_EQ(buf, want);
    server_stop(&s);
}

static int healthz_ok(void *arg)
{
    struct server *s = arg;
    static struct reply r;
    return curl_try(s, NULL, "/healthz", &r) == CURLE_OK && r.status == 200;
}

/* Reads until the end of the first response's head and body ("ok\n"). */
static void read_ok_response(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    buf[0] = '\0';
    while (strstr(buf, "\r\n\r\nok\n") == NULL) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        FWT_ASSERT_INT_EQ(poll(&p, 1, 5000), 1);
        ssize_t n = recv(fd, buf + got, cap - 1 - got, 0);
        FWT_ASSERT(n > 0);
        got += (size_t)n;
        buf[got] = '\0';
    }
}

/*
 * After its response the server shuts down its side at once (the client
 * sees EOF) but keeps reading for a while, so the connection's slot is held
 * until the client closes, the linger time passes or the client sends too
 * much. With a cap of one connection the slot shows when that happens.
 */
FWT_TEST(clients_that_stay_after_the_response_are_closed)
{
    static struct server quiet_srv, loud_srv;
    static struct reply r;
    static char buf[4096], junk[256 * 1024];
    curl_setup();

    /* A keep-alive client that ignores "Connection: close" and just waits. */
    /* 1 s: room for the second request to come while the first still lingers. */
    server_start(&quiet_srv, 1000, 1);
    int quiet = raw_connect(&quiet_srv);
    int64_t t0 = fwt_now_ms();
    raw_send_str(quiet, "GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n");
    read_ok_response(quiet, buf, sizeof(buf));
    CURLcode rc = curl_try(&quiet_srv, NULL, "/healthz", &r);
    FWT_ASSERT(rc != CURLE_OK || r.status == 503);
    fwt_wait_until(healthz_ok, &quiet_srv, 8000, "the lingering connection to go");
    int64_t waited = fwt_now_ms() - t0;
    FWT_ASSERT_INT_OP(waited, >=, 900);
    FWT_ASSERT_INT_OP(waited, <, 5000);
    server_stop(&quiet_srv);

    /* One that keeps sending is cut off long before its timeout. */
    server_start(&loud_srv, 60000, 1);
    int loud = raw_connect(&loud_srv);
    raw_send_str(loud, "GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n");
    read_ok_response(loud, buf, sizeof(buf));
    t0 = fwt_now_ms();
    for (int i = 0; i < 64; i++)
        if (send(loud, junk, sizeof(junk), MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno != EAGAIN)
            break;
    fwt_wait_until(healthz_ok, &loud_srv, 5000, "the flooding connection to go");
    FWT_ASSERT_INT_OP(fwt_now_ms() - t0, <, 3000);
    server_stop(&loud_srv);
}

FWT_TEST(idle_client_is_closed_after_the_timeout_while_others_are_served)
{
    static struct server s;
    static struct reply r;
    static char buf[256];
    int idle;
    curl_setup();
    /* 1 s: room for the other request to be served before the idle one is closed. */
    server_start(&s, 1000, 0);
    int64_t t0 = fwt_now_ms();
    idle = raw_connect(&s);
    curl_request(&s, NULL, "/healthz", &r);
    FWT_ASSERT_INT_EQ(r.status, 200);
    FWT_ASSERT_INT_OP(fwt_now_ms() - t0, <, 1000);
    size_t len = raw_read_all(idle, buf, sizeof(buf), 8000, NULL);
    int64_t waited = fwt_now_ms() - t0;
    FWT_ASSERT_UINT_EQ(len, 0);
    FWT_ASSERT_INT_OP(waited, >=, 900);
    FWT_ASSERT_INT_OP(waited, <, 5000);
    fprintf(stderr, "idle client closed after %lld ms\n", (long long)waited);
    server_stop(&s);
}

FWT_TEST(slow_client_is_closed_at_the_deadline_even_while_sending)
{
    static struct server s;
    static char buf[256];
    int fd;
    server_start(&s, 300, 0);
    fd = raw_connect(&s);
    int64_t t0 = fwt_now_ms();
    const char *head =
        "GET /healthz HTTP/1.1\r\nHost: h\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    /* One byte every 20 ms: each arrives well within the timeout, but the
     * head as a whole does not. */
    for (const char *p = head; *p; p++) {
        if (send(fd, p, 1, MSG_NOSIGNAL) < 0)
            break; /* closed by the server: what we expect */
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 20) > 0)
            break;
    }
    int reset;
    size_t len = raw_read_all(fd, buf, sizeof(buf), 5000, &reset);
    int64_t waited = fwt_now_ms() - t0;
    FWT_ASSERT_UINT_EQ(len, 0);
    FWT_ASSERT_INT_OP(waited, >=, 250);
    FWT_ASSERT_INT_OP(waited, <, 3000);
    server_stop(&s);
}

FWT_TEST(connections_over_the_cap_are_refused_and_slots_come_back)
{
    static struct server s;
    static struct reply r;
    static char buf[1024];
    curl_setup();
    server_start(&s, 0, 2);
    int a = raw_connect(&s);
    (void)raw_connect(&s); /* holds the second slot */
    int c = raw_connect(&s);
    /* The server accepts in connect order, so the third is over the cap. */
    raw_read_all(c, buf, sizeof(buf), 5000, NULL);
    if (!starts_with(buf, "HTTP/1.1 503 Service Unavailable\r\n") ||
        strstr(buf, "\r\n\r\ntoo many connections\n") == NULL)
        FWT_FAIL("response: %s", buf);
    /* curl has sent its request before the refusal, so the close may reset
     * the connection before curl reads the 503; either is a refusal. */
    CURLcode rc = curl_try(&s, NULL, "/healthz", &r);
    if (rc == CURLE_OK)
        FWT_ASSERT_INT_EQ(r.status, 503);
    else
        fprintf(stderr, "refused with: %s\n", curl_easy_strerror(rc));

    /* A slot comes back once the server has freed a closed connection. */
    raw_close(a);
    fwt_wait_until(healthz_ok, &s, 5000, "a free connection slot");
    server_stop(&s);
}

FWT_TEST(hundred_sequential_requests)
{
    static struct server s;
    static struct reply r;
    static const char *const paths[] = {"/metrics", "/healthz", "/readyz", "/nope"};
    static const long codes[] = {200, 200, 200, 404};
    curl_setup();
    server_start(&s, 0, 0);
    fw_metric_counter_t *c;
    for (int i = 0; i < 100; i++) {
        char cat[16];
        snprintf(cat, sizeof(cat), "c%d", i);
        FWT_ASSERT_OK(fw_metrics_counter(s.reg, &c, "freeway_test_requests_total", "Requests.",
                                         "category", cat, NULL));
        fw_metric_inc(c);
        curl_request(&s, i % 10 == 9 ? "HEAD" : NULL, paths[i % 4], &r);
        if (r.status != codes[i % 4])
            FWT_FAIL("request %d for %s: %ld", i, paths[i % 4], r.status);
    }
    /* Everything the requests allocated is gone once the server is; the
     * asan build's LeakSanitizer checks the rest at exit. */
    server_stop(&s);
}

FWT_TEST(close_with_clients_attached_frees_everything)
{
    static struct server s;
    static char buf[4096];
    int idle, partial, lingering, unread;
    server_start(&s, 60000, 0);
    /* A page of a few MB, more than socket buffers hold, for a client that
     * never reads it: the server is still writing when it closes. */
    for (int i = 0; i < 100000; i++) {
        char cat[32];
        fw_metric_counter_t *c;
        snprintf(cat, sizeof(cat), "category_%d_with_a_long_name", i);
        FWT_ASSERT_OK(fw_metrics_counter(s.reg, &c, "freeway_test_records_received_total",
                                         "Records.", "category", cat, NULL));
    }
    idle = raw_connect(&s);
    partial = raw_connect(&s);
    raw_send_str(partial, "GET /metrics HTTP/1.1\r\nHo");
    unread = raw_connect_rcvbuf(&s, 4096);
    raw_send_str(unread, "GET /metrics HTTP/1.1\r\nHost: h\r\n\r\n");
    lingering = raw_connect(&s);
    raw_send_str(lingering, "GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n");
    /* Wait for the lingering client's answer, so it is in that state. */
    size_t got = 0;
    while (strstr(buf, "ok\n") == NULL) {
        ssize_t n = recv(lingering, buf + got, sizeof(buf) - 1 - got, 0);
        FWT_ASSERT(n > 0);
        got += (size_t)n;
        buf[got] = '\0';
    }
    /* Let the unread response fill the socket buffers. */
    struct pollfd p = {.fd = unread, .events = POLLIN};
    FWT_ASSERT_INT_EQ(poll(&p, 1, 5000), 1);
    server_stop(&s);
    /* Every client sees the end, and the loop had nothing left (checked in
     * server_stop). */
    int reset;
    raw_read_all(idle, buf, sizeof(buf), 5000, &reset);
    raw_read_all(partial, buf, sizeof(buf), 5000, &reset);
    raw_read_all(lingering, buf, sizeof(buf), 5000, &reset);
}

FWT_TEST(failed_init_leaves_nothing_to_close)
{
    uv_loop_t loop;
    fw_http_t http;
    FWT_ASSERT_OK(uv_loop_init(&loop));
    FWT_ASSERT_INT_EQ(fw_http_init(&http, &loop, "nonsense", NULL, NULL, NULL), -EINVAL);
    FWT_ASSERT_INT_EQ(fw_http_init(&http, &loop, "127.0.0.1:99999", NULL, NULL, NULL), -EINVAL);
    FWT_ASSERT_INT_EQ(fw_http_init(&http, &loop, "192.0.2.1:0", NULL, NULL, NULL), -EADDRNOTAVAIL);

    /* Port in use: a server that holds it, then a second on the same port. */
    fw_http_t first;
    char addr[64];
    FWT_ASSERT_OK(fw_http_init(&first, &loop, "127.0.0.1:0", NULL, NULL, NULL));
    FWT_ASSERT_OK(fw_http_address(&first, addr, sizeof(addr)));
    FWT_ASSERT_INT_EQ(fw_http_init(&http, &loop, addr, NULL, NULL, NULL), -EADDRINUSE);
    fw_http_close(&first, NULL);

    /* IPv6, where the machine has it; the address prints in brackets. */
    fw_http_t v6;
    int rc = fw_http_init(&v6, &loop, "[::1]:0", NULL, NULL, NULL);
    if (rc == 0) {
        FWT_ASSERT_OK(fw_http_address(&v6, addr, sizeof(addr)));
        FWT_ASSERT(strncmp(addr, "[::1]:", 6) == 0 && strcmp(addr, "[::1]:0") != 0);
        fw_http_close(&v6, NULL);
    } else if (rc != -EADDRNOTAVAIL && rc != -EAFNOSUPPORT) {
        FWT_FAIL("listening on [::1]:0: %s", fw_strerror(rc));
    }
    FWT_ASSERT_INT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    FWT_ASSERT_INT_EQ(uv_loop_close(&loop), 0);
}

FWT_TEST(no_registry_serves_an_empty_page)
{
    static struct server s;
    static struct reply r;
    curl_setup();
    server_start_opts(&s, 0, 0, 0);
    curl_request(&s, NULL, "/metrics", &r);
    FWT_ASSERT_INT_EQ(r.status, 200);
    FWT_ASSERT_UINT_EQ(r.body_len, 0);
    assert_header(&r, "Content-Length: 0\r\n");
    server_stop(&s);
}
