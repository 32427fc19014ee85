/*
 * Issue 8: every daemon on a 3-node ZooKeeper ensemble (the connect string
 * "h1:p1,h2:p2,h3:p3/freeway") keeps working while one server is down.
 * Two calligraphus writers share a root, a copier copies it to a file://
 * destination, a ptail serves that copy; `freeway send` reads numbered lines
 * from a FIFO that a thread of the test feeds at a steady pace, and
 * `freeway tail` reads them back through ptail, while ZooKeeper servers are
 * killed with kill -9: the leader (an election follows), or each server in
 * turn. Lines keep coming throughout, so some reach the writers while they
 * wait for their session to come back.
 *
 * Afterwards every line is acked, stored once in the writers' segments, in
 * order per key, copied to the end, and delivered once to the consumer;
 * every daemon answers /readyz with 200. And no daemon lost its session: the
 * client moves to a surviving server within the session timeout, so every
 * ephemeral node (the registrations under nodes/<kind>, the bucket owners,
 * the copier's claims) is the very node it was before the fault, created
 * by the same session.
 */
#include "fwt_cal.h"
#include "fwt_proc.h"
#include "fwt_root.h"
#include "fwt_zk.h"
#include "fwtest.h"

#include "names.h"

#include <zookeeper/zookeeper.h>

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#define BUCKETS 4
#define KEYS    16
/* The feed: PACE_LINES lines (about 30 bytes each) every PACE_MS, at most 20,000 lines/s. */
#define PACE_LINES 100
#define PACE_MS    5

/* ---- the fabric ------------------------------------------------------------------------------ */

typedef struct fabric_s {
    fwt_zk_t zk[3];
    char spec[160]; /* the ensemble with the chroot */
    char root[FWT_PATH_MAX];
    char copy[FWT_PATH_MAX];
    char url[FWT_PATH_MAX + 16];
    fwt_cal_t w[2], cp, pt;
    fwt_cal_t *daemons[4];
    long mark[4]; /* where each daemon's log stood when the faults began */
    /* the producer, fed through a FIFO by the feeder thread */
    fwt_proc_t send;
    FILE *fifo;
    char send_log[FWT_PATH_MAX];
    pthread_t feeder;
    atomic_int stop;          /* the feeder ends after its current step */
    atomic_uint_fast64_t fed; /* lines given to the producer so far */
    int feed_error;           /* errno of a failed write, read after the join */
    /* the consumer */
    fwt_proc_t tail;
    char tail_out[FWT_PATH_MAX], tail_err[FWT_PATH_MAX];
} fabric_t;

/* Small raw blocks: many requests in flight when a server dies, and segments that roll. */
static const char *send_flags[] = {"--batch-bytes", "16K",  "--codec", "none",
                                   "--timeout",     "120s", NULL};
static const char *cat_flags[] = {"--roll-bytes", "1M", NULL};
static const char *poll_flags[] = {"--poll", "200ms", NULL};

static void fabric_start(fabric_t *f)
{
    memset(f, 0, sizeof(*f));
    fwt_zk_ensemble_start(f->zk);
    snprintf(f->spec, sizeof(f->spec), "%s/freeway", fwt_zk_ensemble_connect(f->zk));
    snprintf(f->root, sizeof(f->root), "%s/root", fwt_tmpdir_mem());
    snprintf(f->copy, sizeof(f->copy), "%s/copy", fwt_tmpdir_mem());
    snprintf(f->url, sizeof(f->url), "file://%s", f->copy);
    fprintf(stderr, "ensemble %s\n", f->spec);
    fwt_category_create(f->spec, "web", BUCKETS, cat_flags);
    /* The daemons' own session timeout (10 s, the most the servers grant). */
    fwt_cal_start(&f->w[0], "w1", f->spec, f->root, NULL);
    fwt_cal_start(&f->w[1], "w2", f->spec, f->root, NULL);
    fwt_cal_wait_balanced(&f->w[0], &f->w[1], BUCKETS / 2, "the writers to share the buckets");
    fwt_copier_start(&f->cp, "c1", f->spec, f->root, f->url, poll_flags);
    fwt_ptail_start(&f->pt, "p1", f->spec, f->copy, poll_flags);
    f->daemons[0] = &f->w[0];
    f->daemons[1] = &f->w[1];
    f->daemons[2] = &f->cp;
    f->daemons[3] = &f->pt;
}

/* ---- waits ----------------------------------------------------------------------------------- */

static int all_ready(void *arg)
{
    fabric_t *f = arg;
    for (int i = 0; i < 4; i++)
        if (fwt_cal_http_status(f->daemons[i], "/readyz") != 200)
            return 0;
    return 1;
}

static void wait_ready(fabric_t *f, const char *what)
{
    fwt_wait_until(all_ready, f, 60000, what);
}

/* The records the writers acked, in all; -1 if one cannot be asked. */
static double acked_now(fabric_t *f)
{
    double sum = 0;
    for (int i = 0; i < 2; i++) {
        double v = fwt_cal_metric_sum(&f->w[i], "freeway_calligraphus_records_acked_total");
        if (v < 0)
            return -1;
        sum += v;
    }
    return sum;
}

typedef struct acked_s {
    fabric_t *f;
    uint64_t records;
} acked_t;

static int acked_reach(void *arg)
{
    acked_t *a = arg;
    return acked_now(a->f) >= (double)a->records;
}

/* Waits until the writers have acked at least `records` records in all. */
static void wait_acked(fabric_t *f, uint64_t records, const char *what)
{
    acked_t a = {f, records};
    fwt_wait_until(acked_reach, &a, 60000, what);
}

static int copier_owns_all(void *arg)
{
    fabric_t *f = arg;
    return fwt_cal_metric_sum(&f->cp, "freeway_copier_bucket_owned") == BUCKETS;
}

/* Both survivors serve, one as leader, one as follower. */
typedef struct pair_s {
    fwt_zk_t *a, *b;
} pair_t;

static int pair_serving(void *arg)
{
    pair_t *p = arg;
    char ma[32], mb[32];
    if (fwt_zk_mode(p->a, ma, sizeof(ma)) != 0 || fwt_zk_mode(p->b, mb, sizeof(mb)) != 0)
        return 0;
    return (strcmp(ma, "leader") == 0 && strcmp(mb, "follower") == 0) ||
           (strcmp(ma, "follower") == 0 && strcmp(mb, "leader") == 0);
}

/* ---- the producer and the consumer ----------------------------------------------------------- */

/*
 * The feeder thread: the next PACE_LINES lines every PACE_MS until told to
 * stop. The pause paces the load, so that lines keep coming for as long as
 * the faults take; nothing waits on it. A write blocks while the producer
 * holds back (its buffer full); one that fails (the producer died) ends the
 * feed, and the main thread reports it.
 */
static void *feeder_run(void *arg)
{
    fabric_t *f = arg;
    uint64_t n = 0;
    while (!atomic_load(&f->stop)) {
        fwt_lines_write(f->fifo, n, PACE_LINES, KEYS);
        if (fflush(f->fifo) != 0) {
            f->feed_error = errno;
            break;
        }
        n += PACE_LINES;
        atomic_store(&f->fed, n);
        struct timespec pace = {0, PACE_MS * 1000000L};
        nanosleep(&pace, NULL);
    }
    return NULL;
}

static uint64_t fed(fabric_t *f)
{
    return atomic_load(&f->fed);
}

/* Starts `freeway send` on a FIFO and the thread that feeds it. */
static void producer_start(fabric_t *f)
{
    char fifo[FWT_PATH_MAX];
    snprintf(fifo, sizeof(fifo), "%s/lines.fifo", fwt_tmpdir());
    snprintf(f->send_log, sizeof(f->send_log), "%s/send.log", fwt_tmpdir());
    FWT_ASSERT_OK(mkfifo(fifo, 0600) < 0 ? -errno : 0);
    fwt_send_spawn(&f->send, f->spec, "web", fifo, f->send_log, send_flags);
    f->fifo = fopen(fifo, "w"); /* waits for the producer to open its end */
    FWT_ASSERT(f->fifo != NULL);
    FWT_ASSERT_INT_EQ(pthread_create(&f->feeder, NULL, feeder_run, f), 0);
}

/* Stops the feed and ends the input; the producer must exit 0: every line acked. */
static void producer_finish(fabric_t *f)
{
    atomic_store(&f->stop, 1);
    FWT_ASSERT_INT_EQ(pthread_join(f->feeder, NULL), 0);
    if (f->feed_error != 0)
        FWT_FAIL("feeding the producer: %s", strerror(f->feed_error));
    FWT_ASSERT(fclose(f->fifo) == 0);
    f->fifo = NULL;
    int rc = fwt_send_wait(&f->send, 180000);
    char tail[4096];
    if (rc != 0)
        FWT_FAIL("freeway send exited %d:\n%s", rc,
                 fwt_file_tail(f->send_log, 30, tail, sizeof(tail)));
}

/* `freeway tail` from the earliest record on, through a ptail it finds in ZooKeeper. */
static void consumer_start(fabric_t *f)
{
    snprintf(f->tail_out, sizeof(f->tail_out), "%s/tail.out", fwt_tmpdir());
    snprintf(f->tail_err, sizeof(f->tail_err), "%s/tail.err", fwt_tmpdir());
    char cmd[4096], log[FWT_PATH_MAX];
    snprintf(cmd, sizeof(cmd), "exec '%s' tail -c web --zk '%s' --from earliest >'%s' 2>'%s'",
             fwt_bin("freeway"), f->spec, f->tail_out, f->tail_err);
    snprintf(log, sizeof(log), "%s/tail-sh.log", fwt_tmpdir());
    char *const argv[] = {"/bin/sh", "-c", cmd, NULL};
    fwt_proc_spawn(&f->tail, "tail", argv, log);
}

/* The lines in a growing file, counted as they come (the consumer flushes after each poll). */
typedef struct lines_in_s {
    const char *path;
    long offset;
    uint64_t lines, want;
} lines_in_t;

static int lines_reach(void *arg)
{
    lines_in_t *l = arg;
    FILE *fp = fopen(l->path, "r");
    if (fp != NULL) {
        fseek(fp, l->offset, SEEK_SET);
        char buf[65536];
        size_t n;
        while ((n = fread(buf, 1, sizeof(buf), fp)) > 0) {
            l->offset += (long)n;
            for (size_t i = 0; i < n; i++)
                l->lines += buf[i] == '\n';
        }
        fclose(fp);
    }
    return l->lines >= l->want;
}

typedef struct delivered_s {
    uint64_t lines, missing, dups, disorder, foreign;
    uint64_t first_missing, first_dup;
} delivered_t;

/* What the consumer printed: raw values "<9 digits> freeway-log-line", n lines expected. */
static void count_delivered(const char *path, uint64_t n, delivered_t *d)
{
    memset(d, 0, sizeof(*d));
    uint8_t *seen = calloc(n, 1);
    int64_t last[KEYS];
    FWT_ASSERT(seen != NULL);
    for (int k = 0; k < KEYS; k++)
        last[k] = -1;
    FILE *fp = fopen(path, "r");
    FWT_ASSERT(fp != NULL);
    char line[256];
    while (fgets(line, sizeof(line), fp) != NULL) {
        char *end;
        unsigned long long v = strtoull(line, &end, 10);
        if (end - line != 9 || v >= n) {
            d->foreign++;
            continue;
        }
        d->lines++;
        if (seen[v]++ > 0 && d->dups++ == 0)
            d->first_dup = v;
        int key = (int)(v % KEYS);
        if ((int64_t)v <= last[key])
            d->disorder++;
        last[key] = (int64_t)v;
    }
    fclose(fp);
    for (uint64_t i = 0; i < n; i++)
        if (seen[i] == 0 && d->missing++ == 0)
            d->first_missing = i;
    free(seen);
}

/* ---- the copy -------------------------------------------------------------------------------- */

/* 1 if the files at a and b hold the same bytes. */
static int same_file(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa != NULL && fb != NULL;
    char ba[65536], bb[65536];
    while (same) {
        size_t na = fread(ba, 1, sizeof(ba), fa), nb = fread(bb, 1, sizeof(bb), fb);
        if (na != nb || memcmp(ba, bb, na) != 0)
            same = 0;
        if (na < sizeof(ba))
            break;
    }
    if (fa != NULL)
        fclose(fa);
    if (fb != NULL)
        fclose(fb);
    return same;
}

typedef struct copied_s {
    fabric_t *f;
    int files; /* source segments compared */
} copied_t;

/* Every segment of the root has a byte-identical copy. */
static int copy_identical(void *arg)
{
    copied_t *c = arg;
    c->files = 0;
    for (int b = 0; b < BUCKETS; b++) {
        char dir[FWT_PATH_MAX + 32];
        snprintf(dir, sizeof(dir), "%s/web/%d", c->f->root, b);
        DIR *d = opendir(dir);
        if (d == NULL)
            return 0;
        struct dirent *e;
        int same = 1;
        while (same && (e = readdir(d)) != NULL) {
            uint64_t id;
            if (fw_seg_name_parse(e->d_name, &id) < 0)
                continue;
            char src[2 * FWT_PATH_MAX], dst[2 * FWT_PATH_MAX];
            snprintf(src, sizeof(src), "%s/%s", dir, e->d_name);
            snprintf(dst, sizeof(dst), "%s/web/%d/%s", c->f->copy, b, e->d_name);
            c->files++;
            same = same_file(src, dst);
        }
        closedir(d);
        if (!same)
            return 0;
    }
    return c->files > 0;
}

/* ---- ZooKeeper's view: the ephemeral nodes and who made them --------------------------------- */

typedef struct eph_s {
    char path[256];
    int64_t czxid; /* the create: a node made again has a new one */
    int64_t owner; /* the session */
} eph_t;

typedef struct snap_s {
    eph_t v[64];
    int n;
    int rc; /* the last ZooKeeper error while walking, ZOK if none */
} snap_t;

static atomic_int zk_state;

static void snap_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    (void)zh;
    (void)path;
    (void)ctx;
    if (type == ZOO_SESSION_EVENT)
        atomic_store(&zk_state, state);
}

static int zk_connected(void *arg)
{
    (void)arg;
    return atomic_load(&zk_state) == ZOO_CONNECTED_STATE;
}

static void walk(zhandle_t *zh, const char *path, snap_t *s)
{
    struct Stat st;
    int rc = zoo_exists(zh, path, 0, &st);
    if (rc == ZNONODE)
        return;
    if (rc != ZOK) {
        s->rc = rc;
        return;
    }
    if (st.ephemeralOwner != 0) {
        if (s->n == (int)(sizeof(s->v) / sizeof(s->v[0])))
            FWT_FAIL("more than %d ephemeral nodes", s->n);
        eph_t *e = &s->v[s->n++];
        snprintf(e->path, sizeof(e->path), "%s", path);
        e->czxid = st.czxid;
        e->owner = st.ephemeralOwner;
        return;
    }
    struct String_vector kids;
    rc = zoo_get_children(zh, path, 0, &kids);
    if (rc == ZNONODE)
        return;
    if (rc != ZOK) {
        s->rc = rc;
        return;
    }
    for (int i = 0; i < kids.count && s->rc == ZOK; i++) {
        char child[256];
        snprintf(child, sizeof(child), "%s/%s", strcmp(path, "/") == 0 ? "" : path, kids.data[i]);
        walk(zh, child, s);
    }
    deallocate_String_vector(&kids);
}

static int snap_once(void *arg)
{
    struct {
        zhandle_t *zh;
        snap_t *s;
    } *w = arg;
    memset(w->s, 0, sizeof(*w->s));
    walk(w->zh, "/", w->s);
    return w->s->rc == ZOK;
}

/* Every ephemeral node under the chroot, through a session of the test's own. */
static void snapshot(fabric_t *f, snap_t *s)
{
    atomic_store(&zk_state, 0);
    zoo_set_debug_level(0); /* no chatter about the dead server; failures are reported here */
    zhandle_t *zh = zookeeper_init(f->spec, snap_watcher, 10000, NULL, NULL, ZOO_NO_LOG_CLIENTENV);
    if (zh == NULL)
        FWT_FAIL("zookeeper_init(%s): %s", f->spec, strerror(errno));
    fwt_wait_until(zk_connected, NULL, 30000, "the test's ZooKeeper session");
    struct {
        zhandle_t *zh;
        snap_t *s;
    } w = {zh, s};
    fwt_wait_until(snap_once, &w, 30000, "a walk of the ZooKeeper tree");
    zookeeper_close(zh);
}

static const eph_t *snap_find(const snap_t *s, const char *path)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->v[i].path, path) == 0)
            return &s->v[i];
    return NULL;
}

static int snap_count_suffix(const snap_t *s, const char *suffix)
{
    int n = 0;
    size_t sl = strlen(suffix);
    for (int i = 0; i < s->n; i++) {
        size_t pl = strlen(s->v[i].path);
        if (pl >= sl && strcmp(s->v[i].path + pl - sl, suffix) == 0)
            n++;
    }
    return n;
}

/* The daemons' nodes before the faults: registered, owning and claiming everything. */
static void snap_check_complete(const snap_t *s)
{
    const char *nodes[] = {"/nodes/calligraphus/w1", "/nodes/calligraphus/w2", "/nodes/copier/c1",
                           "/nodes/ptail/p1"};
    for (size_t i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++)
        if (snap_find(s, nodes[i]) == NULL)
            FWT_FAIL("%s is not registered", nodes[i]);
    FWT_ASSERT_INT_EQ(snap_count_suffix(s, "/owner"), BUCKETS);
    FWT_ASSERT_INT_EQ(snap_count_suffix(s, "/claim"), BUCKETS);
}

/* Every node of before is there after, the same node of the same session; nothing new. */
static void snap_check_same(const snap_t *before, const snap_t *after)
{
    for (int i = 0; i < before->n; i++) {
        const eph_t *b = &before->v[i], *a = snap_find(after, b->path);
        if (a == NULL)
            FWT_FAIL("%s is gone after the faults", b->path);
        if (a->czxid != b->czxid || a->owner != b->owner)
            FWT_FAIL("%s was made again: czxid 0x%llx -> 0x%llx, session 0x%llx -> 0x%llx", b->path,
                     (unsigned long long)b->czxid, (unsigned long long)a->czxid,
                     (unsigned long long)b->owner, (unsigned long long)a->owner);
    }
    for (int i = 0; i < after->n; i++)
        if (snap_find(before, after->v[i].path) == NULL)
            FWT_FAIL("%s is new after the faults", after->v[i].path);
    fprintf(stderr, "%d ephemeral nodes unchanged across the faults\n", before->n);
}

/* ---- the daemons' logs ----------------------------------------------------------------------- */

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* How often needle occurs in the file at path from byte `from` on. */
static int log_count(const char *path, long from, const char *needle)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return 0;
    fseek(fp, from, SEEK_SET);
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof(line), fp) != NULL)
        if (strstr(line, needle) != NULL)
            n++;
    fclose(fp);
    return n;
}

static void mark_logs(fabric_t *f)
{
    for (int i = 0; i < 4; i++)
        f->mark[i] = file_size(f->daemons[i]->log_path);
}

/*
 * Fails if a daemon lost its session or anything it owned since the mark:
 * what the logs say when a session expires, a writer gives up its buckets
 * (a session timeout without ZooKeeper, a lapsed lease), finds itself
 * fenced or hands a bucket back, or a daemon logs an error.
 */
static void check_no_loss(fabric_t *f)
{
    const char *bad[] = {"expired", "dropping",     "lease lapsed",
                         "fenced",  "handing back", " ERROR "};
    for (int i = 0; i < 4; i++) {
        const char *log = f->daemons[i]->log_path;
        for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
            if (log_count(log, f->mark[i], bad[k]) > 0) {
                char tail[4096];
                FWT_FAIL("%s logged \"%s\" after the faults began:\n%s", f->daemons[i]->id, bad[k],
                         fwt_file_tail(log, 30, tail, sizeof(tail)));
            }
        }
    }
}

/* Each daemon whose connection broke since the mark has its session back: as many resumes. */
static int sessions_resumed(void *arg)
{
    fabric_t *f = arg;
    check_no_loss(f);
    for (int i = 0; i < 4; i++) {
        const char *log = f->daemons[i]->log_path;
        if (log_count(log, f->mark[i], "resumed") < log_count(log, f->mark[i], "suspended"))
            return 0;
    }
    return 1;
}

/* How many times the daemons lost their connection since the mark (each came back). */
static int count_suspensions(fabric_t *f)
{
    int all = 0;
    for (int i = 0; i < 4; i++) {
        const char *log = f->daemons[i]->log_path;
        int n = log_count(log, f->mark[i], "suspended");
        fprintf(stderr, "%s: connection lost %d times, session resumed %d times\n",
                f->daemons[i]->id, n, log_count(log, f->mark[i], "resumed"));
        all += n;
    }
    return all;
}

/* ---- the whole check ------------------------------------------------------------------------- */

/* Before the faults: lines flow end to end, and the ZooKeeper nodes are recorded. */
static void steady(fabric_t *f, snap_t *before)
{
    consumer_start(f);
    producer_start(f);
    wait_acked(f, 10000, "the first lines to be acked");
    fwt_wait_until(copier_owns_all, f, 30000, "the copier to claim every bucket");
    wait_ready(f, "every daemon to be ready");
    snapshot(f, before);
    snap_check_complete(before);
    mark_logs(f);
}

/*
 * After a kill: the survivors serve, every daemon that was cut off has its
 * session back and is ready, and every line given to the producer so far,
 * those given while the writers waited included, is acked.
 */
static void recovered(fabric_t *f, int dead)
{
    pair_t survivors = {&f->zk[(dead + 1) % 3], &f->zk[(dead + 2) % 3]};
    fwt_wait_until(pair_serving, &survivors, 60000, "the two survivors to serve");
    fwt_wait_until(sessions_resumed, f, 60000, "every cut-off daemon's session to resume");
    wait_ready(f, "every daemon to be ready with one server down");
    wait_acked(f, fed(f), "the lines given so far to be acked with one server down");
}

/* Kills server i while lines flow. */
static void kill_server(fabric_t *f, int i, const char *role)
{
    fwt_zk_kill(&f->zk[i]);
    fprintf(stderr, "killed zk%d (%s) with %.0f of %llu lines acked\n", f->zk[i].id, role,
            acked_now(f), (unsigned long long)fed(f));
}

/* After the faults: the input ends and every guarantee is checked. */
static void verify(fabric_t *f, const snap_t *before, int expect_suspensions)
{
    producer_finish(f);
    uint64_t n = fed(f);
    const char *retry = "freeway_calligraphus_errors_total{code=\"FW_ERETRY_LATER\"}";
    double retries = 0;
    for (int i = 0; i < 2; i++)
        retries += fwt_cal_metric(&f->w[i], retry) > 0 ? fwt_cal_metric(&f->w[i], retry) : 0;
    fprintf(stderr, "%llu lines acked; the writers answered retry-later %.0f times\n",
            (unsigned long long)n, retries);

    /* The writers' segments: every line once, in order per key. */
    fwt_lines_report_t r;
    fwt_lines_check(f->root, "web", n, KEYS, &r);
    if (r.dups || r.missing || r.disorder || r.foreign)
        FWT_FAIL("in the writers' segments: %llu duplicates (first %llu), %llu missing (first "
                 "%llu), %llu out of key order, %llu foreign",
                 (unsigned long long)r.dups, (unsigned long long)r.first_dup,
                 (unsigned long long)r.missing, (unsigned long long)r.first_missing,
                 (unsigned long long)r.disorder, (unsigned long long)r.foreign);
    FWT_ASSERT_UINT_EQ(r.records, n);

    /* The copy: byte-identical to the root, so it holds the same. */
    copied_t c = {.f = f};
    fwt_wait_until(copy_identical, &c, 60000, "the copy to be byte-identical to the root");
    fprintf(stderr, "%d segments copied byte for byte\n", c.files);
    fwt_lines_check(f->copy, "web", n, KEYS, &r);
    FWT_ASSERT_UINT_EQ(r.records, n);
    FWT_ASSERT_UINT_EQ(r.dups + r.missing + r.disorder, 0);
    FWT_ASSERT(fwt_cal_metric_sum(&f->cp, "freeway_copier_damaged_blocks_total") == 0);

    /* The consumer, through ptail on the copy: n lines, then it is stopped; every line once. */
    lines_in_t got = {.path = f->tail_out, .want = n};
    fwt_wait_until(lines_reach, &got, 120000, "the consumer to print every line");
    FWT_ASSERT_OK(fwt_proc_signal(&f->tail, SIGTERM));
    int status = 0;
    if (fwt_proc_wait(&f->tail, 30000, &status) < 0)
        FWT_FAIL("freeway tail did not exit within 30 s of SIGTERM");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char tail[2048];
        FWT_FAIL("freeway tail ended with status 0x%x:\n%s", status,
                 fwt_file_tail(f->tail_err, 20, tail, sizeof(tail)));
    }
    FWT_ASSERT(!fwt_file_contains(f->tail_err, "Sanitizer"));
    FWT_ASSERT(!fwt_file_contains(f->tail_err, "runtime error:"));
    delivered_t d;
    count_delivered(f->tail_out, n, &d);
    if (d.dups || d.missing || d.disorder || d.foreign)
        FWT_FAIL("the consumer: %llu duplicates (first %llu), %llu missing (first %llu), %llu "
                 "out of key order, %llu foreign",
                 (unsigned long long)d.dups, (unsigned long long)d.first_dup,
                 (unsigned long long)d.missing, (unsigned long long)d.first_missing,
                 (unsigned long long)d.disorder, (unsigned long long)d.foreign);
    FWT_ASSERT_UINT_EQ(d.lines, n);

    /* Every daemon ready, still registered, still owning what it owned, by the same session. */
    wait_ready(f, "every daemon to be ready after the faults");
    for (int i = 0; i < 2; i++)
        FWT_ASSERT(fwt_cal_metric(&f->w[i], "freeway_calligraphus_owned_buckets") == BUCKETS / 2);
    FWT_ASSERT(copier_owns_all(f));
    snap_t after;
    snapshot(f, &after);
    snap_check_same(before, &after);
    check_no_loss(f);
    FWT_ASSERT(sessions_resumed(f));
    FWT_ASSERT_INT_OP(count_suspensions(f), >=, expect_suspensions);

    fwt_cal_stop(&f->pt);
    fwt_cal_stop(&f->cp);
    fwt_cal_stop(&f->w[1]);
    fwt_cal_stop(&f->w[0]);
}

/* ---- tests ----------------------------------------------------------------------------------- */

/*
 * The leader dies (kill -9) while lines flow: the two survivors elect a new
 * one, and meanwhile every client, the daemons included, loses its
 * connection (a follower without a leader serves nobody). Every daemon gets
 * its session back from a survivor and goes on.
 */
FWT_TEST(the_leader_killed_every_daemon_keeps_working)
{
    /* Static: the feeder thread uses it until it is joined, even on a failure's way out. */
    static fabric_t f;
    static snap_t before;
    fabric_start(&f);
    steady(&f, &before);
    int leader = fwt_zk_ensemble_leader(f.zk);
    FWT_ASSERT_INT_OP(leader, >=, 0);
    kill_server(&f, leader, "the leader");
    recovered(&f, leader);
    /* Every daemon was cut off by the election, and came back. */
    verify(&f, &before, 4);
}

/* The index of a server that is a follower, or -1. */
static int follower(fabric_t *f)
{
    for (int i = 0; i < 3; i++) {
        char mode[32];
        if (fwt_zk_mode(&f->zk[i], mode, sizeof(mode)) == 0 && strcmp(mode, "follower") == 0)
            return i;
    }
    return -1;
}

/*
 * Each server down once, with lines flowing throughout: a follower is
 * killed and started again, then the other follower, then the leader, which
 * stays dead. While a follower is down only its own clients move; when the
 * leader dies, all of them do.
 */
FWT_TEST(each_server_killed_in_turn_every_daemon_keeps_working)
{
    static fabric_t f; /* static, as above */
    static snap_t before;
    fabric_start(&f);
    steady(&f, &before);
    int leader = fwt_zk_ensemble_leader(f.zk);
    FWT_ASSERT_INT_OP(leader, >=, 0);
    int first = follower(&f);
    FWT_ASSERT_INT_OP(first, >=, 0);
    int victims[3] = {first, 3 - leader - first, leader};
    for (int k = 0; k < 3; k++) {
        kill_server(&f, victims[k], k < 2 ? "a follower" : "the leader");
        recovered(&f, victims[k]);
        if (k < 2) {
            fwt_zk_restart(&f.zk[victims[k]]);
            fprintf(stderr, "zk%d serves again\n", f.zk[victims[k]].id);
            wait_acked(&f, fed(&f), "the lines given so far to be acked with three servers");
        }
    }
    verify(&f, &before, 4);
}
