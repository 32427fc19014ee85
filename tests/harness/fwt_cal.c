/* Starting, stopping and observing calligraphus in tests (see fwt_cal.h). */
#include "fwt_cal.h"

#include "fwt_root.h"
#include "fwt_wire.h"
#include "proto/produce.pb-c.h"
#include "fwtest.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* Copies the address after `marker` in the log (up to a blank or ')') into out. */
static int log_address(const char *log, long from, const char *marker, char *out, size_t cap)
{
    FILE *f = fopen(log, "r");
    if (f == NULL)
        return 0;
    fseek(f, from, SEEK_SET);
    char line[1024];
    int found = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        char *p = strstr(line, marker);
        if (p == NULL)
            continue;
        p += strlen(marker);
        size_t n = strcspn(p, " )/\n");
        if (n > 0 && n < cap) {
            memcpy(out, p, n);
            out[n] = '\0';
            found = 1;
        }
    }
    fclose(f);
    return found;
}

static int listening(void *arg)
{
    fwt_cal_t *c = arg;
    char scratch[256];
    if (!fwt_proc_running(&c->proc)) {
        char tail[2048];
        FWT_FAIL("%s %s exited at start:\n%s", c->program, c->id,
                 fwt_file_tail(c->log_path, 20, tail, sizeof(tail)));
    }
    if (strcmp(c->program, "copier") == 0) /* it listens for nothing but scrapes */
        return log_address(c->log_path, c->log_offset, "registered as ", scratch,
                           sizeof(scratch)) &&
               log_address(c->log_path, c->log_offset, "metrics on http://", c->metrics,
                           sizeof(c->metrics));
    /* "<id> listening on": a writer's Scribe listener logs "scribe listening on" too. */
    char marker[96];
    snprintf(marker, sizeof(marker), "%s listening on ", c->id);
    return log_address(c->log_path, c->log_offset, marker, c->address, sizeof(c->address)) &&
           log_address(c->log_path, c->log_offset, "metrics on http://", c->metrics,
                       sizeof(c->metrics));
}

static void spawn(fwt_cal_t *c)
{
    const char *argv[40];
    int n = 0;
    argv[n++] = fwt_bin(c->program);
    argv[n++] = "--id";
    argv[n++] = c->id;
    argv[n++] = "--zk";
    argv[n++] = c->zk;
    if (strcmp(c->program, "copier") == 0) {
        argv[n++] = "--source";
        argv[n++] = c->root;
        argv[n++] = "--dest";
        argv[n++] = c->dest;
    } else {
        argv[n++] = "--root";
        argv[n++] = c->root;
        argv[n++] = "--listen";
        argv[n++] = "127.0.0.1:0";
    }
    argv[n++] = "--metrics";
    argv[n++] = "127.0.0.1:0";
    for (int i = 0; c->extra[i] != NULL && n < 38; i++)
        argv[n++] = c->extra[i];
    argv[n] = NULL;
    /* A restart must not find the previous life's address in the log. */
    FILE *f = fopen(c->log_path, "a");
    if (f != NULL) {
        fprintf(f, "---- start ----\n");
        c->log_offset = ftell(f);
        fclose(f);
    }
    c->address[0] = c->metrics[0] = '\0';
    fwt_proc_spawn(&c->proc, c->id, (char *const *)argv, c->log_path);
    fwt_wait_until(listening, c, 20000, "the daemon to listen");
}

static void start(fwt_cal_t *c, const char *program, const char *id, const char *zk,
                  const char *root, const char *const *extra)
{
    memset(c, 0, sizeof(*c));
    c->program = program;
    snprintf(c->id, sizeof(c->id), "%s", id);
    snprintf(c->zk, sizeof(c->zk), "%s", zk);
    snprintf(c->root, sizeof(c->root), "%s", root);
    snprintf(c->log_path, sizeof(c->log_path), "%s/%s.log", fwt_tmpdir(), id);
    for (int i = 0; extra != NULL && extra[i] != NULL && i < 15; i++)
        c->extra[i] = extra[i];
    spawn(c);
}

void fwt_cal_start(fwt_cal_t *c, const char *id, const char *zk, const char *root,
                   const char *const *extra)
{
    start(c, "calligraphus", id, zk, root, extra);
}

void fwt_ptail_start(fwt_cal_t *c, const char *id, const char *zk, const char *root,
                     const char *const *extra)
{
    start(c, "ptail", id, zk, root, extra);
}

void fwt_copier_start(fwt_cal_t *c, const char *id, const char *zk, const char *source,
                      const char *dests, const char *const *extra)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->dest, sizeof(c->dest), "%s", dests);
    c->program = "copier";
    snprintf(c->id, sizeof(c->id), "%s", id);
    snprintf(c->zk, sizeof(c->zk), "%s", zk);
    snprintf(c->root, sizeof(c->root), "%s", source);
    snprintf(c->log_path, sizeof(c->log_path), "%s/%s.log", fwt_tmpdir(), id);
    for (int i = 0; extra != NULL && extra[i] != NULL && i < 15; i++)
        c->extra[i] = extra[i];
    spawn(c);
}

void fwt_cal_restart(fwt_cal_t *c)
{
    spawn(c); /* the log keeps every life; only this one's lines are read */
}

void fwt_cal_stop(fwt_cal_t *c)
{
    fwt_proc_signal(&c->proc, SIGTERM);
    int status = 0;
    if (fwt_proc_wait(&c->proc, 20000, &status) < 0) {
        fwt_proc_signal(&c->proc, SIGKILL);
        fwt_proc_wait(&c->proc, 5000, &status);
        FWT_FAIL("%s %s did not stop within 20 s of SIGTERM", c->program, c->id);
    }
    const char *reports[] = {"AddressSanitizer", "LeakSanitizer", "runtime error:"};
    for (size_t i = 0; i < 3; i++)
        if (fwt_file_contains(c->log_path, reports[i]))
            FWT_FAIL("%s %s: %s report in %s", c->program, c->id, reports[i], c->log_path);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char tail[2048];
        FWT_FAIL("%s %s ended with status 0x%x:\n%s", c->program, c->id, status,
                 fwt_file_tail(c->log_path, 20, tail, sizeof(tail)));
    }
}

void fwt_cal_kill(fwt_cal_t *c)
{
    fwt_proc_signal(&c->proc, SIGKILL);
    fwt_proc_wait(&c->proc, 10000, NULL);
}

char *fwt_cal_get(const fwt_cal_t *c, const char *path, int *status)
{
    char host[64];
    snprintf(host, sizeof(host), "%s", c->metrics);
    char *colon = strrchr(host, ':');
    if (colon == NULL)
        return NULL;
    *colon = '\0';
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    inet_pton(AF_INET, host, &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return NULL;
    }
    char req[256];
    int rlen = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\n\r\n", path);
    if (rlen <= 0 || (size_t)rlen >= sizeof(req) || write(fd, req, (size_t)rlen) != rlen) {
        close(fd);
        return NULL;
    }
    size_t cap = 4 << 20, len = 0;
    char *buf = malloc(cap);
    ssize_t n;
    while (buf != NULL && len + 1 < cap && (n = read(fd, buf + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    close(fd);
    if (buf == NULL)
        return NULL;
    buf[len] = '\0';
    if (status != NULL)
        *status = strncmp(buf, "HTTP/1.", 7) == 0 ? atoi(buf + 9) : 0;
    char *body = strstr(buf, "\r\n\r\n");
    if (body != NULL)
        memmove(buf, body + 4, len - (size_t)(body + 4 - buf) + 1);
    return buf;
}

/* GET /metrics from the daemon; the body (malloc'd), or NULL. */
static char *scrape(const fwt_cal_t *c)
{
    return fwt_cal_get(c, "/metrics", NULL);
}

typedef struct ready_wait_s {
    const fwt_cal_t *c;
    const char *reason; /* NULL: wait for ready */
} ready_wait_t;

static int ready_is(void *arg)
{
    ready_wait_t *w = arg;
    int status = 0;
    char *body = fwt_cal_get(w->c, "/readyz", &status);
    int done = w->reason == NULL ? status == 200
                                 : status == 503 && body != NULL && strstr(body, w->reason) != NULL;
    free(body);
    return done;
}

void fwt_cal_wait_ready(const fwt_cal_t *c, const char *what)
{
    ready_wait_t w = {c, NULL};
    fwt_wait_until(ready_is, &w, 60000, what);
}

void fwt_cal_wait_unready(const fwt_cal_t *c, const char *reason, const char *what)
{
    ready_wait_t w = {c, reason};
    fwt_wait_until(ready_is, &w, 60000, what);
}

int fwt_cal_http_status(const fwt_cal_t *c, const char *path)
{
    int status = -1;
    char *body = fwt_cal_get(c, path, &status);
    if (body == NULL)
        return -1;
    free(body);
    return status;
}

double fwt_cal_metric(const fwt_cal_t *c, const char *series)
{
    char *buf = scrape(c);
    if (buf == NULL)
        return -1;
    double value = -1;
    size_t slen = strlen(series);
    for (char *line = buf; line != NULL && *line != '\0';) {
        char *next = strchr(line, '\n');
        if (strncmp(line, series, slen) == 0 && line[slen] == ' ') {
            value = strtod(line + slen + 1, NULL);
            break;
        }
        line = next ? next + 1 : NULL;
    }
    free(buf);
    return value;
}

double fwt_cal_metric_sum(const fwt_cal_t *c, const char *family)
{
    char *buf = scrape(c);
    if (buf == NULL)
        return -1;
    double sum = 0;
    size_t flen = strlen(family);
    for (char *line = buf; line != NULL && *line != '\0';) {
        char *next = strchr(line, '\n');
        if (strncmp(line, family, flen) == 0 && (line[flen] == ' ' || line[flen] == '{')) {
            char *value = line[flen] == ' ' ? line + flen : strstr(line, "} ");
            if (value != NULL)
                sum += strtod(value + (line[flen] == ' ' ? 1 : 2), NULL);
        }
        line = next ? next + 1 : NULL;
    }
    free(buf);
    return sum;
}

typedef struct owns_s {
    fwt_cal_t *w[2];
    int n;
    const char *gauge;
} owns_t;

static int owns(void *arg)
{
    owns_t *o = arg;
    for (int i = 0; i < 2; i++)
        if (o->w[i] != NULL && fwt_cal_metric(o->w[i], o->gauge) != o->n)
            return 0;
    return 1;
}

void fwt_cal_wait_owns(fwt_cal_t *c, int n, const char *what)
{
    owns_t o = {{c, NULL}, n, "freeway_calligraphus_open_buckets"};
    fwt_wait_until(owns, &o, 30000, what);
}

void fwt_cal_wait_claimed(fwt_cal_t *c, int n, const char *what)
{
    owns_t o = {{c, NULL}, n, "freeway_calligraphus_owned_buckets"};
    fwt_wait_until(owns, &o, 30000, what);
}

void fwt_cal_wait_balanced(fwt_cal_t *a, fwt_cal_t *b, int each, const char *what)
{
    owns_t o = {{a, b}, each, "freeway_calligraphus_open_buckets"};
    fwt_wait_until(owns, &o, 30000, what);
}

typedef struct routed_s {
    const fwt_cal_t *c;
    const char *category;
    uint64_t request_id;
} routed_t;

/* Asks c's metadata for the category: 1 when every bucket has an owner address. */
static int routed(void *arg)
{
    routed_t *r = arg;
    int fd = fwt_wire_connect(r->c->address);
    char *cats[] = {(char *)r->category};
    Fwpb__MetadataRequest req = FWPB__METADATA_REQUEST__INIT;
    req.request_id = ++r->request_id;
    req.n_categories = 1;
    req.categories = cats;
    fw_buf_t frame = FW_BUF_INIT, store = FW_BUF_INIT;
    fw_frame_t f;
    int all = 0;
    if (fw_frame_append(&frame, FW_FRAME_METADATA_REQ, &req.base, NULL, 0, FW_FRAME_MAX_LIMIT) ==
            0 &&
        fwt_wire_write(fd, frame.data, frame.len) == 0 &&
        fwt_wire_read(fd, 10000, &store, &f) == 1 && f.type == FW_FRAME_METADATA_RESP) {
        Fwpb__MetadataResponse *m = fwpb__metadata_response__unpack(NULL, f.meta_len, f.meta);
        if (m != NULL && m->n_categories == 1 &&
            m->categories[0]->status == FWPB__STATUS__STATUS_OK &&
            m->categories[0]->n_owners == m->categories[0]->buckets) {
            all = 1;
            for (size_t i = 0; i < m->categories[0]->n_owners; i++)
                if (m->categories[0]->owners[i]->address == NULL)
                    all = 0;
        }
        fwpb__metadata_response__free_unpacked(m, NULL);
    }
    fw_buf_free(&frame);
    fw_buf_free(&store);
    close(fd);
    return all;
}

void fwt_cal_wait_routed(const fwt_cal_t *c, const char *category, const char *what)
{
    routed_t r = {c, category, 0};
    fwt_wait_until(routed, &r, 30000, what);
}

typedef struct scribe_address_s {
    const fwt_cal_t *c;
    char *out;
    size_t cap;
} scribe_address_t;

static int scribe_logged(void *arg)
{
    scribe_address_t *a = arg;
    return log_address(a->c->log_path, a->c->log_offset, "scribe listening on ", a->out, a->cap);
}

void fwt_cal_scribe_address(const fwt_cal_t *c, char *out, size_t cap)
{
    scribe_address_t a = {c, out, cap};
    fwt_wait_until(scribe_logged, &a, 30000, "the writer to log its Scribe address");
}

void fwt_category_create(const char *zk, const char *name, int buckets, const char *const *extra)
{
    char nb[16];
    snprintf(nb, sizeof(nb), "%d", buckets);
    const char *argv[32] = {fwt_bin("freeway"), "category", "create", name,
                            "--buckets",        nb,         "--zk",   zk};
    int n = 8;
    for (int i = 0; extra != NULL && extra[i] != NULL && n < 31; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    char *out = NULL;
    int rc = fwt_run((char *const *)argv, 30000, &out);
    if (rc != 0)
        FWT_FAIL("freeway category create %s failed (%d):\n%s", name, rc, out ? out : "");
    free(out);
}

void fwt_send_spawn(fwt_proc_t *p, const char *zk, const char *category, const char *input,
                    const char *log, const char *const *extra)
{
    /* The shell only redirects stdin (fwt_proc_spawn gives children /dev/null). */
    char cmd[4096];
    int n = snprintf(cmd, sizeof(cmd), "exec '%s' send -c '%s' --zk '%s' --key-sep ' '",
                     fwt_bin("freeway"), category, zk);
    for (int i = 0; extra != NULL && extra[i] != NULL; i++)
        n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, " '%s'", extra[i]);
    snprintf(cmd + n, sizeof(cmd) - (size_t)n, " < '%s'", input);
    char *const argv[] = {"/bin/sh", "-c", cmd, NULL};
    fwt_proc_spawn(p, "send", argv, log);
}

int fwt_send_wait(fwt_proc_t *p, int timeout_ms)
{
    int status = 0;
    if (fwt_proc_wait(p, timeout_ms, &status) < 0)
        return -1;
    return WIFEXITED(status)     ? WEXITSTATUS(status)
           : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
                                 : -1;
}

void fwt_send_lines_spawn(fwt_proc_t *p, const char *zk, const char *category, uint64_t first,
                          uint64_t n, int nkeys, const char *const *extra, char *log, size_t cap)
{
    static int serial;
    char input[FWT_PATH_MAX];
    serial++;
    snprintf(input, sizeof(input), "%.*s/lines-%d-%llu", FWT_PATH_MAX - 64, fwt_tmpdir(), serial,
             (unsigned long long)first);
    snprintf(log, cap, "%.*s/send-%d-%llu.log", FWT_PATH_MAX - 64, fwt_tmpdir(), serial,
             (unsigned long long)first);
    FILE *f = fopen(input, "w");
    FWT_ASSERT(f != NULL);
    fwt_lines_write(f, first, n, nkeys);
    fclose(f);
    fwt_send_spawn(p, zk, category, input, log, extra);
}

void fwt_send_wait_ok(fwt_proc_t *p, const char *log)
{
    int rc = fwt_send_wait(p, 120000);
    char tail[2048];
    if (rc != 0)
        FWT_FAIL("freeway send exited %d:\n%s", rc, fwt_file_tail(log, 20, tail, sizeof(tail)));
}

void fwt_send_lines(const char *zk, const char *category, uint64_t first, uint64_t n, int nkeys,
                    const char *const *extra)
{
    fwt_proc_t p;
    char log[FWT_PATH_MAX];
    fwt_send_lines_spawn(&p, zk, category, first, n, nkeys, extra, log, sizeof(log));
    fwt_send_wait_ok(&p, log);
}

int fwt_copier_caught_up(const fwt_cal_t *cp, const char *root, int buckets)
{
    uint64_t bytes = fwt_root_segment_bytes(root);
    return fwt_cal_metric_sum(cp, "freeway_copier_bucket_owned") == buckets && bytes > 0 &&
           fwt_cal_metric_sum(cp, "freeway_copier_copied_bytes_total") == (double)bytes;
}
