/*
 * `freeway status` against nodes that answer badly. The nodes are the
 * test's own: a registration it writes to a real ZooKeeper and an HTTP
 * endpoint it serves itself on a loopback address, so each node answers
 * exactly what a case needs: a wildcard metrics address, a body cut short,
 * a bad line half way, an error status, text that is no UTF-8 or holds
 * control characters, destination URLs of the longest kind.
 */
#include "fwt_cal.h"
#include "fwt_proc.h"
#include "fwt_zk.h"
#include "fwtest.h"

#include "copier/dest.h"
#include "copier/webhdfs_json.h"
#include "utf8.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- a node's HTTP endpoint, served by the test ---------------------------------------------- */

/* What one path answers. */
typedef struct answer_s {
    int status;
    const char *body;
    size_t cut; /* > 0: send only this many bytes of the body, its whole length still claimed */
} answer_t;

typedef struct fake_s {
    int fd;
    char host[48]; /* "127.0.0.2", "[::1]" */
    int port;
    answer_t readyz, metrics;
    pthread_t thread;
} fake_t;

static void send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0)
            return;
        p += n;
        len -= (size_t)n;
    }
}

/* One request per connection, answered and closed; ends when the listener is shut down. */
static void *fake_serve(void *arg)
{
    fake_t *f = arg;
    for (;;) {
        int c = accept(f->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        char req[4096];
        size_t len = 0;
        while (len + 1 < sizeof(req)) {
            ssize_t n = recv(c, req + len, sizeof(req) - 1 - len, 0);
            if (n <= 0)
                break;
            len += (size_t)n;
            req[len] = '\0';
            if (strstr(req, "\r\n\r\n") != NULL)
                break;
        }
        req[len] = '\0';
        const answer_t *a = strncmp(req, "GET /readyz ", 12) == 0    ? &f->readyz
                            : strncmp(req, "GET /metrics ", 13) == 0 ? &f->metrics
                                                                     : NULL;
        static const answer_t none = {404, "not found\n", 0};
        if (a == NULL || a->body == NULL)
            a = &none;
        char head[256];
        size_t blen = strlen(a->body);
        int n = snprintf(head, sizeof(head),
                         "HTTP/1.1 %d Answer\r\nContent-Type: text/plain\r\nContent-Length: "
                         "%zu\r\nConnection: close\r\n\r\n",
                         a->status, blen);
        send_all(c, head, (size_t)n);
        send_all(c, a->body, a->cut > 0 ? a->cut : blen);
        close(c);
    }
}

static void fake_stop(void *arg)
{
    fake_t *f = arg;
    shutdown(f->fd, SHUT_RDWR); /* wakes the accept */
    pthread_join(f->thread, NULL);
    close(f->fd);
    free(f);
}

/* An endpoint on ip ("127.0.0.2", "::1") and a free port; stopped when the test ends. NULL if
 * ip cannot be bound here (no IPv6). */
static fake_t *fake_start(const char *ip)
{
    fake_t *f = calloc(1, sizeof(*f));
    FWT_ASSERT(f != NULL);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t slen;
    int v6 = strchr(ip, ':') != NULL;
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        FWT_ASSERT_INT_EQ(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
        slen = sizeof(*a);
        snprintf(f->host, sizeof(f->host), "[%s]", ip);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        FWT_ASSERT_INT_EQ(inet_pton(AF_INET, ip, &a->sin_addr), 1);
        slen = sizeof(*a);
        snprintf(f->host, sizeof(f->host), "%s", ip);
    }
    f->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    FWT_ASSERT(f->fd >= 0);
    if (bind(f->fd, (struct sockaddr *)&ss, slen) < 0 || listen(f->fd, 16) < 0) {
        close(f->fd);
        free(f);
        return NULL;
    }
    FWT_ASSERT(getsockname(f->fd, (struct sockaddr *)&ss, &slen) == 0);
    f->port =
        ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
    f->readyz = (answer_t){200, "ok\n", 0};
    f->metrics = (answer_t){200, "", 0};
    FWT_ASSERT(pthread_create(&f->thread, NULL, fake_serve, f) == 0);
    fwt_defer(fake_stop, f);
    return f;
}

/* ---- registrations in ZooKeeper, written by the test ------------------------------------------
 */

typedef struct world_s {
    fwt_zk_t zk;
    char spec[160];
    zhandle_t *zh; /* holds the test's ephemeral registrations */
} world_t;

/* Creates path (and its parents) holding data; a persistent path that exists is overwritten. */
static void zk_put(zhandle_t *zh, const char *path, const char *data, int flags)
{
    char parent[2048];
    FWT_ASSERT(strlen(path) < sizeof(parent));
    for (const char *p = strchr(path + 1, '/'); p != NULL; p = strchr(p + 1, '/')) {
        memcpy(parent, path, (size_t)(p - path));
        parent[p - path] = '\0';
        int rc = zoo_create(zh, parent, NULL, -1, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
        if (rc != ZOK && rc != ZNODEEXISTS)
            FWT_FAIL("cannot create %s: %s", parent, zerror(rc));
    }
    int rc = zoo_create(zh, path, data, (int)strlen(data), &ZOO_OPEN_ACL_UNSAFE, flags, NULL, 0);
    if (rc == ZNODEEXISTS && flags == 0)
        rc = zoo_set(zh, path, data, (int)strlen(data), -1);
    if (rc != ZOK)
        FWT_FAIL("cannot write %s: %s", path, zerror(rc));
}

/* nodes/KIND/ID as a daemon registers itself (NodeInfo in pbtext); dests for a copier. */
static void node_register(world_t *w, const char *kind, const char *id, const char *address,
                          const char *metrics, const char *dests)
{
    char path[256];
    static char data[8192];
    snprintf(path, sizeof(path), "/freeway/nodes/%s/%s", kind, id);
    int n = snprintf(data, sizeof(data),
                     "kind = %s\nid = %s\naddress = %s\nmetrics_address = %s\nversion = test\n",
                     kind, id, address, metrics);
    if (dests != NULL)
        snprintf(data + n, sizeof(data) - (size_t)n, "destinations = %s\n", dests);
    zk_put(w->zh, path, data, ZOO_EPHEMERAL);
}

/* "HOST:PORT" of a fake endpoint. */
static const char *fake_addr(const fake_t *f, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s:%d", f->host, f->port);
    return buf;
}

static void world_start(world_t *w, int buckets)
{
    memset(w, 0, sizeof(*w));
    fwt_zk_start(&w->zk);
    snprintf(w->spec, sizeof(w->spec), "%s/freeway", w->zk.connect);
    fwt_category_create(w->spec, "web", buckets, NULL);
    w->zh = fwt_zk_client(w->zk.connect);
}

static void world_stop(world_t *w)
{
    zookeeper_close(w->zh);
    fwt_zk_stop(&w->zk);
}

/* ---- running freeway status ------------------------------------------------------------------ */

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static void expect(const char *doc, const char *needle, int n)
{
    int got = count(doc, needle);
    if (got != n)
        FWT_FAIL("expected %d of %s, found %d in:\n%s", n, needle, got, doc);
}

/* `freeway status --zk SPEC [--json]`: exit status 0 expected; the output in *out (free it). */
static void status_run(const world_t *w, int json, char **out)
{
    char *const argv[] = {
        (char *)fwt_bin("freeway"), "status", "--zk", (char *)w->spec, "--timeout", "5s",
        json ? "--json" : NULL,     NULL};
    int rc = fwt_run(argv, 60000, out);
    if (rc != 0)
        FWT_FAIL("freeway status exited %d:\n%s", rc, *out);
}

/* The JSON line of the output, checked: UTF-8 throughout, and JSON (no raw control bytes). */
static char *json_line(char *out)
{
    char *j = strstr(out, "{\"time_ms\":");
    if (j == NULL)
        FWT_FAIL("no JSON in:\n%s", out);
    char *nl = strchr(j, '\n');
    if (nl != NULL)
        *nl = '\0';
    if (!fw_utf8_valid(j, strlen(j)))
        FWT_FAIL("freeway status --json printed bytes that are not UTF-8: %s", j);
    cp_wh_json_val_t whole;
    if (cp_wh_json_find(j, strlen(j), NULL, 0, &whole) != 0 || whole.len != strlen(j))
        FWT_FAIL("freeway status --json printed invalid JSON: %s", j);
    return j;
}

/* ---- the cases ------------------------------------------------------------------------------- */

/*
 * --metrics 0.0.0.0:PORT is published as bound; asking 0.0.0.0 asks the
 * local host. Each fake listens only on its own loopback address, so an
 * answer proves status asked the node's advertised host with the metrics
 * port. A copier publishes its metrics address as its address, so with a
 * wildcard there is no host to ask: unknown, saying why.
 */
FWT_TEST(status_asks_a_wildcard_metrics_address_at_the_advertised_host)
{
    world_t w;
    world_start(&w, 2);
    fake_t *w1 = fake_start("127.0.0.2");
    FWT_ASSERT(w1 != NULL);
    w1->metrics.body = "freeway_calligraphus_recent_records{category=\"web\",window=\"1m\"} 7\n";
    char metrics[96];
    snprintf(metrics, sizeof(metrics), "0.0.0.0:%d", w1->port);
    node_register(&w, "calligraphus", "w1", "127.0.0.2:7410", metrics, NULL);
    node_register(&w, "copier", "c1", "0.0.0.0:7431", "0.0.0.0:7431", "file:///srv/copy");
    fake_t *p1 = fake_start("::1");
    if (p1 != NULL) {
        snprintf(metrics, sizeof(metrics), "[::]:%d", p1->port);
        node_register(&w, "ptail", "p1", "[::1]:7420", metrics, NULL);
    } else {
        fprintf(stderr, "no IPv6 loopback here: [::] not tried\n");
    }

    char *out = NULL;
    status_run(&w, 1, &out);
    char *j = json_line(out);
    expect(j, "{\"kind\":\"calligraphus\",\"id\":\"w1\"", 1);
    expect(j, "\"ready\":true,\"reason\":\"\",\"metrics_read\":true", p1 != NULL ? 2 : 1);
    expect(j, "\"records_1m\":7,", 1);
    expect(j,
           "\"ready\":null,\"reason\":\"metrics address 0.0.0.0:7431 names no host: give "
           "--metrics the node's own address\",\"metrics_read\":false",
           1);
    free(out);
    world_stop(&w);
}

/*
 * A node's /metrics counts whole or not at all: a body cut short (the
 * connection closed before Content-Length), a bad line after good ones, an
 * error status, each adds nothing to the picture, and the node still shows
 * with the rest. A /readyz that fails says how; a node that does not answer
 * at all is "unreachable" with curl's reason.
 */
FWT_TEST(status_takes_a_node_metrics_whole_or_not_at_all)
{
    world_t w;
    world_start(&w, 2);
    static const char records5[] =
        "freeway_calligraphus_recent_records{category=\"web\",window=\"1m\"} 5\n";
    char addr[96];

    /* w1: the body cut short after a whole line (a line-by-line parse alone would take it). */
    fake_t *w1 = fake_start("127.0.0.2");
    FWT_ASSERT(w1 != NULL);
    w1->metrics = (answer_t){200,
                             "freeway_calligraphus_recent_records{category=\"web\",window=\"1m\"} "
                             "5\nfreeway_calligraphus_recent_records{category=\"web\","
                             "window=\"1h\"} 5\n",
                             sizeof(records5) - 1};
    node_register(&w, "calligraphus", "w1", "127.0.0.2:7410", fake_addr(w1, addr, sizeof(addr)),
                  NULL);
    /* w2: a good line, then a bad one. */
    fake_t *w2 = fake_start("127.0.0.2");
    FWT_ASSERT(w2 != NULL);
    w2->metrics.body =
        "freeway_calligraphus_recent_records{category=\"web\",window=\"1m\"} 5\nnot a sample\n";
    node_register(&w, "calligraphus", "w2", "127.0.0.2:7411", fake_addr(w2, addr, sizeof(addr)),
                  NULL);
    /* w3: /metrics answers 500 (with a body that would parse), /readyz is cut short. */
    fake_t *w3 = fake_start("127.0.0.2");
    FWT_ASSERT(w3 != NULL);
    w3->metrics = (answer_t){500, records5, 0};
    w3->readyz = (answer_t){200, "ok\n", 1};
    node_register(&w, "calligraphus", "w3", "127.0.0.2:7412", fake_addr(w3, addr, sizeof(addr)),
                  NULL);
    /* w4: all good: its 2 records are the category's only figure. */
    fake_t *w4 = fake_start("127.0.0.2");
    FWT_ASSERT(w4 != NULL);
    w4->metrics.body = "freeway_calligraphus_recent_records{category=\"web\",window=\"1m\"} 2\n";
    node_register(&w, "calligraphus", "w4", "127.0.0.2:7413", fake_addr(w4, addr, sizeof(addr)),
                  NULL);
    /* p1: a subscriber in a body cut short. */
    fake_t *p1 = fake_start("127.0.0.2");
    FWT_ASSERT(p1 != NULL);
    static const char sub[] =
        "freeway_ptail_lag_bytes{category=\"web\",consumer=\"ghost\",bucket=\"0\"} 0\n";
    p1->metrics = (answer_t){200,
                             "freeway_ptail_lag_bytes{category=\"web\",consumer=\"ghost\","
                             "bucket=\"0\"} 0\nfreeway_ptail_lag_bytes{category=\"web\","
                             "consumer=\"ghost\",bucket=\"1\"} 0\n",
                             sizeof(sub) - 1};
    node_register(&w, "ptail", "p1", "127.0.0.2:7420", fake_addr(p1, addr, sizeof(addr)), NULL);
    /* p2: registered, but nothing listens at its metrics address. */
    snprintf(addr, sizeof(addr), "127.0.0.2:%d", fwt_free_port());
    node_register(&w, "ptail", "p2", "127.0.0.2:7421", addr, NULL);

    char *out = NULL;
    status_run(&w, 1, &out);
    char *j = json_line(out);
    expect(j, "\"id\":\"w1\"", 1);
    expect(j, "\"ready\":true,\"reason\":\"\",\"metrics_read\":false", 3);    /* w1, w2, p1 */
    expect(j, "\"ready\":true,\"reason\":\"\",\"metrics_read\":true", 1);     /* w4 */
    expect(j, "\"ready\":null,\"reason\":\"unreachable: transfer closed", 1); /* w3 */
    expect(j, "\"ready\":null,\"reason\":\"unreachable: Failed to connect to 127.0.0.2", 1);
    expect(j, "\"records_1m\":2,\"bytes_1m\":null,\"records_1h\":null,", 1);
    expect(j, "\"subscribers\":[]", 1);
    expect(out, "freeway status: calligraphus w1: /metrics: transfer closed", 1);
    expect(out, "freeway status: calligraphus w2: bad /metrics (line 2)", 1);
    expect(out, "freeway status: calligraphus w3: /metrics answered 500", 1);
    expect(out, "p2: /metrics", 0); /* its reason says it already */
    free(out);

    /* The table says the same. */
    status_run(&w, 0, &out);
    expect(out, "NODES (6)", 1);
    expect(out, "yes (metrics unreadable)", 3);
    expect(out, "unknown: unreachable: ", 2);
    expect(out, "last minute 2 records", 1);
    expect(out, "SUBSCRIBERS (0)", 1);
    free(out);
    world_stop(&w);
}

/* A 3-byte character placed to straddle the end of a field of cap bytes, after prefix. */
static void straddle(char *out, size_t outcap, const char *prefix, size_t cap)
{
    size_t n = strlen(prefix);
    FWT_ASSERT(n + 2 < cap - 1 && cap + 8 < outcap);
    memcpy(out, prefix, n);
    memset(out + n, 'x', cap - 2 - n); /* the character starts at the field's last byte */
    memcpy(out + cap - 2,
           "\xe2\x82\xac"
           "tail",
           8);
}

/*
 * Ids, reasons and label values are the nodes' bytes: control characters,
 * bytes that are no UTF-8, text longer than status keeps. The JSON stays
 * UTF-8 and JSON (escapes; U+FFFD for a bad byte), nothing is cut inside a
 * character, and the table prints control characters as \xNN.
 */
FWT_TEST(status_output_stays_text_whatever_the_nodes_say)
{
    world_t w;
    world_start(&w, 2);
    fake_t *p1 = fake_start("127.0.0.2");
    FWT_ASSERT(p1 != NULL);
    /* The reason: a screen clear, a bell, stray bytes, then a euro sign across byte 255. */
    static char reason[512];
    straddle(reason, sizeof(reason), "disk \x1b[2J\x07 bad \xff\xc3 ", 256);
    strcat(reason, "\nsecond line\n");
    p1->readyz = (answer_t){503, reason, 0};
    /* Consumers: a terminal title escape and a stray byte; a newline; one longer than kept. */
    static char metrics[2048], long_consumer[256];
    memset(long_consumer, 'a', 126);
    strcpy(long_consumer + 126, "\xc3\xa9z"); /* é across byte 127 */
    snprintf(metrics, sizeof(metrics),
             "freeway_ptail_lag_bytes{category=\"web\",consumer=\"t\x1b]0;pwned\x07\xfe\","
             "bucket=\"0\"} 1\n"
             "freeway_ptail_lag_bytes{category=\"web\",consumer=\"two\\nlines\",bucket=\"0\"} 2\n"
             "freeway_ptail_lag_bytes{category=\"web\",consumer=\"%s\",bucket=\"0\"} 3\n",
             long_consumer);
    p1->metrics.body = metrics;
    char addr[96];
    node_register(&w, "ptail", "p1", "127.0.0.2:7420", fake_addr(p1, addr, sizeof(addr)), NULL);
    /* A bucket owner whose id ends in ESC and half a character. */
    zk_put(w.zh, "/freeway/buckets/web/0/owner",
           "node_id = own\x1b[1m\xe2\x82\naddress = 127.0.0.2:1\nepoch = 1\n", ZOO_EPHEMERAL);

    char *out = NULL;
    status_run(&w, 1, &out);
    char *j = json_line(out);
    /* The reason: escapes, U+FFFD per bad byte, cut before the euro sign, first line only. */
    expect(j,
           "\"ready\":false,\"reason\":\"disk \\u001b[2J\\u0007 bad \xef\xbf\xbd\xef\xbf\xbd xxx",
           1);
    expect(j, "xxx\",\"metrics_read\":true", 1);
    char want[512];
    expect(j, "\"consumer\":\"t\\u001b]0;pwned\\u0007\xef\xbf\xbd\"", 1);
    expect(j, "\"consumer\":\"two\\nlines\"", 1);
    snprintf(want, sizeof(want), "\"consumer\":\"%.126s\",", long_consumer);
    expect(j, want, 1);
    expect(j, "\"owner\":\"own\\u001b[1m\xef\xbf\xbd\xef\xbf\xbd\"", 1);
    free(out);

    /* The table: no control byte but newlines, UTF-8 throughout, the escapes readable. */
    status_run(&w, 0, &out);
    for (const char *p = out; *p != '\0'; p++)
        if (((unsigned char)*p < 0x20 && *p != '\n') || *p == 0x7f)
            FWT_FAIL("the table holds control byte 0x%02x at %zu:\n%s", (unsigned char)*p,
                     (size_t)(p - out), out);
    FWT_ASSERT(fw_utf8_valid(out, strlen(out)));
    expect(out, "no: disk \\x1b[2J\\x07 bad \\xff\\xc3 xxx", 1);
    expect(out, "t\\x1b]0;pwned\\x07\\xfe", 1);
    expect(out, "two\\x0alines", 1);
    expect(out, "own\\x1b[1m\\xe2\\x82", 1);
    free(out);
    world_stop(&w);
}

/*
 * A destination URL may be 1,023 bytes, and its ZooKeeper key (the URL with
 * '/' and '%' percent-encoded) about 1,100: progress under such a key is
 * read for every bucket, and a copier listing two such URLs shows both.
 */
FWT_TEST(status_reads_progress_under_the_longest_destination_keys)
{
    world_t w;
    world_start(&w, 2);
    static char url1[1024], url2[1024], dests[2100];
    static cp_dest_t d1;
    /* As many path segments as fit the key: each '/' costs 3 bytes there. */
    snprintf(url1, sizeof(url1), "file:///srv/copy");
    while (strlen(url1) + 6 < sizeof(url1) && cp_dest_set_url(&d1, url1) == 0 &&
           strlen(d1.key) + 8 < sizeof(d1.key))
        strcat(url1, "/a%b");
    FWT_ASSERT_OK(cp_dest_set_url(&d1, url1));
    FWT_ASSERT(strlen(d1.key) > 1000);
    snprintf(url2, sizeof(url2), "file:///srv/other%0*d", 1000 - (int)strlen("file:///srv/other"),
             7);
    snprintf(dests, sizeof(dests), "%s %s", url1, url2);

    fake_t *c1 = fake_start("127.0.0.2");
    FWT_ASSERT(c1 != NULL);
    static char metrics[8192];
    size_t n = 0;
    for (int b = 0; b < 2; b++)
        n += (size_t)snprintf(metrics + n, sizeof(metrics) - n,
                              "freeway_copier_lag_bytes{category=\"web\",bucket=\"%d\","
                              "destination=\"%s\"} %d\n"
                              "freeway_copier_bucket_owned{category=\"web\",bucket=\"%d\","
                              "destination=\"%s\"} 1\n",
                              b, url1, 10 + b, b, url1);
    c1->metrics.body = metrics;
    char addr[96];
    node_register(&w, "copier", "c1", fake_addr(c1, addr, sizeof(addr)), addr, dests);
    for (int b = 0; b < 2; b++) {
        char path[1400];
        snprintf(path, sizeof(path), "/freeway/copier/%s/web/%d", d1.key, b);
        zk_put(w.zh, path, "segment_id = 3\noffset = 4096\n", 0);
    }

    char *out = NULL;
    status_run(&w, 1, &out);
    char *j = json_line(out);
    static char want[2200];
    snprintf(want, sizeof(want), "\"destinations\":[\"%s\",\"%s\"]", url1, url2);
    expect(j, want, 1);
    snprintf(want, sizeof(want),
             "{\"destination\":\"%s\",\"copier\":\"c1\",\"segment_id\":3,\"offset\":4096,", url1);
    expect(j, want, 2);
    expect(j, "\"lag_bytes\":10,", 1);
    expect(j, "\"lag_bytes\":11,", 1);
    free(out);
    world_stop(&w);
}
