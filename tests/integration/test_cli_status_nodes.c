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
    f->port = ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                       : ((struct sockaddr_in *)&ss)->sin_port);
    f->readyz = (answer_t){200, "ok\n", 0};
    f->metrics = (answer_t){200, "", 0};
    FWT_ASSERT(pthread_create(&f->thread, NULL, fake_serve, f) == 0);
    fwt_defer(fake_stop, f);
    return f;
}

/* ---- registrations in ZooKeeper, written by the test ------------------------------------------ */

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
    char *const argv[] = {(char *)fwt_bin("freeway"),
                          "status",
                          "--zk",
                          (char *)w->spec,
                          "--timeout",
                          "5s",
                          json ? "--json" : NULL,
                          NULL};
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
