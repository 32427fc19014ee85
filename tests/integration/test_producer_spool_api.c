/*
 * Issue 7: the producer's spool through the library API and at its edges:
 * a full spool under each policy (the refusal reaches fw_producer_send, and
 * nothing a callback called spooled is lost or stored twice), one producer
 * per spool directory (in-process and through `freeway send`), and a spool
 * file torn mid-block (cut at open, the rest sent once).
 *
 * The records are the harness's numbered lines (fwt_lines_write's format),
 * so fwt_lines_check and a per-line count over the writers' segments say
 * what was stored. Every check reads real calligraphus segments.
 */
#include "fwt_cal.h"
#include "fwt_root.h"
#include "fwt_zk.h"
#include "fwtest.h"

#include "client/freeway.h"
#include "error.h"
#include "segment.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEYS     50
#define BUCKETS  4
#define MAX_RECS 400000 /* bound on the fill loop: the spool is full long before */

/* ---- what the delivery callbacks said, per line ---------------------------------------------- */

enum {
    ST_UNSENT = 0, /* not given to fw_producer_send, or refused by it */
    ST_PENDING,    /* accepted, no callback yet */
    ST_ACKED,      /* status 0, stored by a writer */
    ST_SPOOLED,    /* status 0, spooled */
    ST_CANCELED,   /* -ECANCELED */
    ST_FAILED,     /* any other status */
};

static _Atomic uint8_t state[MAX_RECS];
static atomic_int twice; /* callbacks run a second time for one record */
static atomic_int first_failure;

static void on_delivery(const fw_delivery_t *d, void *arg)
{
    uint64_t n = (uint64_t)(uintptr_t)arg;
    uint8_t s = d->status == 0            ? (d->spooled ? ST_SPOOLED : ST_ACKED)
                : d->status == -ECANCELED ? ST_CANCELED
                                          : ST_FAILED;
    if (s == ST_FAILED) {
        int none = 0;
        if (atomic_compare_exchange_strong(&first_failure, &none, d->status))
            fprintf(stderr, "line %" PRIu64 " failed: %s (%s)\n", n, fw_strerror(d->status),
                    d->message);
    }
    if (atomic_exchange(&state[n], s) != ST_PENDING)
        atomic_fetch_add(&twice, 1);
}

typedef struct tally_s {
    uint64_t unsent, pending, acked, spooled, canceled, failed;
} tally_t;

static tally_t tally(uint64_t n)
{
    tally_t t = {0};
    for (uint64_t i = 0; i < n; i++) {
        switch (atomic_load(&state[i])) {
        case ST_UNSENT:
            t.unsent++;
            break;
        case ST_PENDING:
            t.pending++;
            break;
        case ST_ACKED:
            t.acked++;
            break;
        case ST_SPOOLED:
            t.spooled++;
            break;
        case ST_CANCELED:
            t.canceled++;
            break;
        default:
            t.failed++;
            break;
        }
    }
    return t;
}

/* Sends line n (fwt_lines_write's key and value) with on_delivery. */
static int send_line(fw_producer_t *p, const char *category, uint64_t n)
{
    char key[16], value[64];
    int klen = snprintf(key, sizeof(key), "k%03d", (int)(n % KEYS));
    int vlen = snprintf(value, sizeof(value), "%09" PRIu64 " freeway-log-line", n);
    atomic_store(&state[n], ST_PENDING);
    int rc = fw_producer_send(p, category, key, (size_t)klen, value, (size_t)vlen, 0, on_delivery,
                              (void *)(uintptr_t)n);
    if (rc != 0)
        atomic_store(&state[n], ST_UNSENT);
    return rc;
}

/* ---- a producer's log, kept for checks ------------------------------------------------------- */

typedef struct plog_s {
    const char *name;
    pthread_mutex_t mu;
    char text[16384];
    size_t len;
} plog_t;

static void on_log(fw_producer_log_level_t level, const char *message, void *arg)
{
    plog_t *l = arg;
    fprintf(stderr, "[%s %d] %s\n", l->name, (int)level, message);
    pthread_mutex_lock(&l->mu);
    int n = snprintf(l->text + l->len, sizeof(l->text) - l->len, "%s\n", message);
    if (n > 0)
        l->len += (size_t)n < sizeof(l->text) - l->len ? (size_t)n : sizeof(l->text) - l->len - 1;
    pthread_mutex_unlock(&l->mu);
}

static void plog_init(plog_t *l, const char *name)
{
    memset(l, 0, sizeof(*l));
    l->name = name;
    pthread_mutex_init(&l->mu, NULL);
}

static int plog_contains(plog_t *l, const char *needle)
{
    pthread_mutex_lock(&l->mu);
    int found = strstr(l->text, needle) != NULL;
    pthread_mutex_unlock(&l->mu);
    return found;
}

/* ---- the spool directory and the writers' segments, read from outside ------------------------ */

/* The spool, read from outside. */
static fwt_seg_tree_t spool_count(const char *dir)
{
    fwt_seg_tree_t t;
    fwt_seg_tree(dir, &t);
    return t;
}

typedef struct acked_wait_s {
    fwt_cal_t *w;
    double records;
} acked_wait_t;

static int writer_acked(void *arg)
{
    acked_wait_t *a = arg;
    return fwt_cal_metric_sum(a->w, "freeway_calligraphus_records_acked_total") >= a->records;
}

/* How many times each line [0, n) is stored under root (stored[] has n entries). */
typedef struct stored_s {
    uint8_t *count;
    uint64_t n;
    uint64_t foreign;
} stored_t;

static void count_record(void *arg, uint32_t bucket, uint64_t segment_id,
                         const fw_block_header_t *h, const fw_record_t *rec)
{
    (void)bucket;
    (void)segment_id;
    (void)h;
    stored_t *s = arg;
    char value[64];
    if (rec->value_len < 9 || rec->value_len >= sizeof(value)) {
        s->foreign++;
        return;
    }
    memcpy(value, rec->value, rec->value_len);
    value[rec->value_len] = '\0';
    char *end;
    uint64_t n = strtoull(value, &end, 10);
    if (end != value + 9 || n >= s->n) {
        s->foreign++;
        return;
    }
    if (s->count[n] < 255)
        s->count[n]++;
}

static stored_t stored_lines(const char *root, const char *category, uint64_t n)
{
    stored_t s = {.count = calloc(n ? n : 1, 1), .n = n};
    FWT_ASSERT(s.count != NULL);
    fwt_root_records(root, category, count_record, &s);
    return s;
}

/* fwt_lines_check over [0, n): no copy twice, none out of order per key, nothing foreign. */
static fwt_lines_report_t expect_once_in_order(const char *root, const char *category, uint64_t n)
{
    fwt_lines_report_t r;
    fwt_lines_check(root, category, n, KEYS, &r);
    if (r.dups != 0)
        FWT_FAIL("%" PRIu64 " lines stored twice (the first: %" PRIu64 ")", r.dups, r.first_dup);
    FWT_ASSERT_UINT_EQ(r.disorder, 0);
    FWT_ASSERT_UINT_EQ(r.foreign, 0);
    return r;
}

/* ---- the test bed: ZooKeeper, one category, one writer --------------------------------------- */

typedef struct bed_s {
    fwt_zk_t zk;
    char spec[128];
    char root[FWT_PATH_MAX];
    char spool[FWT_PATH_MAX];
} bed_t;

static fwt_cal_t w1; /* static: the harness's cleanups outlive the test's stack */

static void bed_start(bed_t *b, int with_writer)
{
    signal(SIGPIPE, SIG_IGN);
    fwt_zk_start(&b->zk);
    snprintf(b->spec, sizeof(b->spec), "%s/freeway", b->zk.connect);
    snprintf(b->root, sizeof(b->root), "%s/root", fwt_tmpdir());
    snprintf(b->spool, sizeof(b->spool), "%s/spool", fwt_tmpdir());
    fwt_category_create(b->spec, "web", BUCKETS, NULL);
    if (with_writer) {
        fwt_cal_start(&w1, "w1", b->spec, b->root, NULL);
        fwt_cal_wait_owns(&w1, BUCKETS, "w1 owns every bucket");
    }
}

/* ---- 1 and 2: a full spool ------------------------------------------------------------------- */

static void full_options(fw_producer_options_t *o, const bed_t *b, fw_spool_full_t policy,
                         plog_t *log)
{
    fw_producer_options_init(o);
    o->zk = b->spec;
    o->spool_dir = b->spool;
    o->spool_max_bytes = 1u << 20;
    o->max_buffer_bytes = 1u << 20;
    o->batch_bytes = 16u << 10; /* many small blocks: the spool fills a block at a time */
    o->codec = FW_PRODUCER_CODEC_NONE;
    o->spool_after_ms = 200;
    o->spool_full = policy;
    o->spool_block_ms = 300;
    o->send_timeout_ms = 60000;
    o->log_cb = on_log;
    o->log_arg = log;
}

/*
 * A producer whose writer took line 0 and then died sends lines until the
 * spool and the memory buffer are both full and fw_producer_send refuses
 * one with want_rc. Then it is closed, a writer starts again and a second
 * producer on the spool drains it. Every line a callback called spooled
 * (or acked) is stored exactly once; lines cancelled at close may be
 * absent; the refused line is absent.
 *
 * Line 0 goes first because a producer learns the category's bucket count
 * from a writer's metadata: lines sent before that have no bucket, and
 * today they are never spooled (held in memory, cancelled at close).
 */
static void fill_the_spool(fw_spool_full_t policy, int want_rc)
{
    bed_t b;
    bed_start(&b, 1);
    static plog_t log1, log2;
    plog_init(&log1, "p1");
    plog_init(&log2, "p2");

    fw_producer_options_t o;
    full_options(&o, &b, policy, &log1);
    fw_producer_t *p;
    FWT_ASSERT_OK(fw_producer_create(&p, &o));
    FWT_ASSERT_OK(send_line(p, "web", 0));
    FWT_ASSERT_OK(fw_producer_flush(p, 20000));
    FWT_ASSERT_INT_EQ(atomic_load(&state[0]), ST_ACKED);

    fwt_cal_kill(&w1);
    int rc = 0;
    uint64_t n;
    int64_t took = 0;
    for (n = 1; n < MAX_RECS; n++) {
        int64_t t0 = fwt_now_ms();
        rc = send_line(p, "web", n);
        took = fwt_now_ms() - t0;
        if (rc != 0)
            break;
    }
    if (rc == 0)
        FWT_FAIL("fw_producer_send took %d lines and never said the spool was full", MAX_RECS);
    uint64_t refused = n;
    fw_producer_stats_t st;
    fw_producer_stats(p, &st);
    tally_t t = tally(refused);
    printf("line %" PRIu64 " refused after %" PRId64 " ms: %d (%s); %" PRIu64 " spooled, %" PRIu64
           " pending; spool %" PRIu64 " bytes, %" PRIu64 " blocks\n",
           refused, took, rc, fw_strerror(rc), t.spooled, t.pending, st.spool_bytes,
           st.spool_blocks);
    FWT_ASSERT_INT_EQ(rc, want_rc);
    /* A lower bound only: it waited spool_block_ms (300) for room (FAIL's "at once" is the
     * -ENOSPC itself; an upper bound on time would be a timer assertion). */
    if (policy == FW_SPOOL_FULL_BLOCK)
        FWT_ASSERT_INT_OP(took, >=, 290);
    /* Until now: line 0 acked, the rest spooled or still waiting; nothing failed. */
    FWT_ASSERT_UINT_EQ(t.acked, 1);
    FWT_ASSERT_UINT_EQ(t.canceled + t.failed, 0);
    FWT_ASSERT_UINT_EQ(t.spooled + t.pending, refused - 1);
    FWT_ASSERT(t.spooled > 0 && t.pending > 0);
    /* The counter moves after the callbacks run, and it was read first. */
    FWT_ASSERT(st.records_spooled <= t.spooled);
    FWT_ASSERT(st.spool_bytes <= o.spool_max_bytes);
    FWT_ASSERT_UINT_EQ(atomic_load(&twice), 0);
    /*
     * With block, the spool stays full and so does the memory (its last
     * periodic fdatasyncs ran during the wait): the next line is refused the
     * same way. (With fail, the next sync may free memory held by blocks
     * waiting for it, so the next line may be taken, to wait in memory.)
     */
    if (policy == FW_SPOOL_FULL_BLOCK)
        FWT_ASSERT_INT_EQ(send_line(p, "web", refused), want_rc);

    /* What waits in memory goes to the spool if it fits, else it is cancelled. */
    int close_rc = fw_producer_close(p, 500);
    t = tally(refused);
    printf("closed (%d): %" PRIu64 " spooled, %" PRIu64 " cancelled, %" PRIu64 " pending\n",
           close_rc, t.spooled, t.canceled, t.pending);
    FWT_ASSERT_INT_EQ(close_rc, -ETIMEDOUT);
    FWT_ASSERT_UINT_EQ(t.pending, 0);
    FWT_ASSERT_UINT_EQ(t.failed, 0);
    FWT_ASSERT_UINT_EQ(t.acked + t.spooled + t.canceled, refused);
    FWT_ASSERT_UINT_EQ(atomic_load(&twice), 0);
    FWT_ASSERT_UINT_EQ(spool_count(b.spool).records, t.spooled);

    /* A writer again, and a second producer on the spool sends what it holds. */
    fwt_cal_restart(&w1);
    fw_producer_options_init(&o);
    o.zk = b.spec;
    o.spool_dir = b.spool;
    o.log_cb = on_log;
    o.log_arg = &log2;
    FWT_ASSERT_OK(fw_producer_create(&p, &o));
    FWT_ASSERT(plog_contains(&log2, "sending them first"));
    FWT_ASSERT_OK(fw_producer_drain_spool(p, 20000));
    fw_producer_stats(p, &st);
    FWT_ASSERT_UINT_EQ(st.records_replay_acked, t.spooled);
    FWT_ASSERT_UINT_EQ(st.records_replay_failed, 0);
    FWT_ASSERT_UINT_EQ(st.spool_blocks, 0);
    FWT_ASSERT_OK(fw_producer_close(p, 5000));
    FWT_ASSERT_UINT_EQ(spool_count(b.spool).records, 0);
    fwt_cal_stop(&w1);

    expect_once_in_order(b.root, "web", refused + 1);
    stored_t s = stored_lines(b.root, "web", refused + 1);
    FWT_ASSERT_UINT_EQ(s.foreign, 0);
    uint64_t canceled_stored = 0;
    for (uint64_t i = 0; i < refused; i++) {
        uint8_t st_i = atomic_load(&state[i]);
        if ((st_i == ST_SPOOLED || st_i == ST_ACKED) && s.count[i] != 1)
            FWT_FAIL("line %" PRIu64 " (%s) is stored %d times", i,
                     st_i == ST_SPOOLED ? "spooled" : "acked", s.count[i]);
        if (st_i == ST_CANCELED)
            canceled_stored += s.count[i];
    }
    FWT_ASSERT_INT_EQ(s.count[refused], 0);
    printf("%" PRIu64 " of %" PRIu64 " cancelled lines stored anyway\n", canceled_stored,
           t.canceled);
    free(s.count);
    fwt_zk_stop(&b.zk);
}

/*
 * spool_full = fail: once the spool and the memory buffer are full,
 * fw_producer_send refuses at once with -ENOSPC, and every line reported
 * spooled is stored exactly once after a later producer drains the spool.
 */
FWT_TEST(a_full_spool_with_fail_refuses_sends_and_keeps_what_it_spooled)
{
    fill_the_spool(FW_SPOOL_FULL_FAIL, -ENOSPC);
}

/*
 * spool_full = block: fw_producer_send waits spool_block_ms for room and
 * then fails with -ETIMEDOUT (not -ENOSPC); nothing already spooled is lost.
 */
FWT_TEST(a_full_spool_with_block_times_out_sends_and_keeps_what_it_spooled)
{
    fill_the_spool(FW_SPOOL_FULL_BLOCK, -ETIMEDOUT);
}

/* ---- 3: one producer per spool directory ----------------------------------------------------- */

/*
 * A second producer on a spool directory in use is refused with
 * FW_ESPOOL_LOCKED and a log line naming the directory (and the holder's
 * pid); so is `freeway send --spool` on it. Once the first producer is
 * closed, the directory takes a new one.
 */
FWT_TEST(a_second_producer_on_a_spool_directory_is_refused_until_the_first_closes)
{
    bed_t b;
    bed_start(&b, 0);
    static plog_t log1, log2, log3;
    plog_init(&log1, "p1");
    plog_init(&log2, "p2");
    plog_init(&log3, "p3");

    fw_producer_options_t o;
    fw_producer_options_init(&o);
    o.zk = b.spec;
    o.spool_dir = b.spool;
    o.log_cb = on_log;
    o.log_arg = &log1;
    fw_producer_t *p1, *p2 = NULL;
    FWT_ASSERT_OK(fw_producer_create(&p1, &o));

    o.log_arg = &log2;
    FWT_ASSERT_INT_EQ(fw_producer_create(&p2, &o), FW_ESPOOL_LOCKED);
    FWT_ASSERT(p2 == NULL);
    char want[FWT_PATH_MAX + 64];
    snprintf(want, sizeof(want), "spool directory %s is in use by another producer (pid %ld",
             b.spool, (long)getpid());
    if (!plog_contains(&log2, want))
        FWT_FAIL("the refused producer's log lacks \"%s\":\n%s", want, log2.text);

    /* The refusal took nothing from the holder: the CLI is refused too. */
    char *out = NULL;
    char *const argv[] = {
        (char *)fwt_bin("freeway"), "send", "-c", "web", "--zk", b.spec, "--spool", b.spool, NULL};
    int rc = fwt_run(argv, 30000, &out);
    printf("freeway send on the held spool: exit %d\n%s", rc, out);
    FWT_ASSERT(rc != 0);
    FWT_ASSERT(strstr(out, "in use by another producer") != NULL);
    FWT_ASSERT(strstr(out, b.spool) != NULL);
    free(out);

    FWT_ASSERT_OK(fw_producer_close(p1, 5000));
    o.log_arg = &log3;
    fw_producer_t *p3;
    FWT_ASSERT_OK(fw_producer_create(&p3, &o));
    FWT_ASSERT(!plog_contains(&log3, "in use"));
    FWT_ASSERT_OK(fw_producer_close(p3, 5000));

    /* And another process takes it once nobody holds it. */
    rc = fwt_run(argv, 30000, &out);
    if (rc != 0)
        FWT_FAIL("freeway send on the free spool exited %d:\n%s", rc, out);
    free(out);
    fwt_zk_stop(&b.zk);
}

/* ---- 4: a torn spool file -------------------------------------------------------------------- */

typedef struct feeder_s {
    fwt_proc_t send;
    FILE *fifo;
    char log[FWT_PATH_MAX];
} feeder_t;

/* `freeway send --spool` reading the lines the test writes to a FIFO. */
static void feeder_start(feeder_t *f, const char *zk, const char *spool)
{
    char fifo[FWT_PATH_MAX];
    snprintf(fifo, sizeof(fifo), "%s/send1.fifo", fwt_tmpdir());
    snprintf(f->log, sizeof(f->log), "%s/send1.log", fwt_tmpdir());
    FWT_ASSERT(mkfifo(fifo, 0600) == 0);
    /* Small blocks: the spool files hold many, and the torn one costs few lines. */
    const char *extra[] = {"--spool",       spool,       "--spool-after",
                           "300ms",         "--timeout", "100s",
                           "--batch-bytes", "4K",        NULL};
    fwt_send_spawn(&f->send, zk, "web", fifo, f->log, extra);
    f->fifo = fopen(fifo, "w"); /* waits for the producer to open its end */
    FWT_ASSERT(f->fifo != NULL);
}

static void feeder_lines(feeder_t *f, uint64_t first, uint64_t n)
{
    fwt_lines_write(f->fifo, first, n, KEYS);
    FWT_ASSERT(fflush(f->fifo) == 0);
}

/* The last block of a segment file: its offset and the line numbers it holds. */
typedef struct last_block_s {
    uint64_t blocks;
    uint64_t offset;
    uint64_t end;
    uint64_t lines[4096];
    uint32_t nlines;
} last_block_t;

static void find_last_block(const char *path, last_block_t *lb)
{
    memset(lb, 0, sizeof(*lb));
    fw_seg_scan_t scan;
    FWT_ASSERT_OK(fw_seg_scan(path, &scan));
    FWT_ASSERT_INT_EQ(scan.damage, 0);
    fw_segr_t *r;
    FWT_ASSERT_OK(fw_segr_open(path, &r));
    fw_seg_block_t blk;
    fw_buf_t scratch = FW_BUF_INIT;
    int rc;
    while ((rc = fw_segr_next(r, &blk)) == FW_SEGR_BLOCK) {
        lb->blocks++;
        lb->offset = blk.offset;
        lb->end = blk.offset + blk.len;
        fw_block_header_t h;
        fw_record_iter_t it;
        FWT_ASSERT_OK(fw_block_decode(blk.data, blk.len, FW_RECORD_MAX_HARD, &scratch, &h, &it));
        fw_record_t rec;
        lb->nlines = 0;
        while (fw_record_next(&it, &rec)) {
            FWT_ASSERT(lb->nlines < sizeof(lb->lines) / sizeof(lb->lines[0]));
            FWT_ASSERT(rec.value_len >= 9);
            char num[10];
            memcpy(num, rec.value, 9);
            num[9] = '\0';
            lb->lines[lb->nlines++] = strtoull(num, NULL, 10);
        }
    }
    FWT_ASSERT_INT_EQ(rc, FW_SEGR_AGAIN); /* a spool file has no seal */
    fw_segr_close(r);
    fw_buf_free(&scratch);
    FWT_ASSERT_UINT_EQ(lb->blocks, scan.blocks);
    FWT_ASSERT_UINT_EQ(lb->end, scan.valid_end);
    FWT_ASSERT_UINT_EQ(lb->end, scan.file_size);
}

/*
 * A producer killed -9 while spooling leaves spool files; the test cuts the
 * fullest one 10 bytes into its last block. The next `freeway send --spool`
 * says it cut the torn tail, sends the rest, and ends with an empty spool:
 * every line is stored once, in order per key, except exactly the torn
 * block's lines.
 */
FWT_TEST(a_spool_file_torn_mid_block_loses_only_that_block)
{
    bed_t b;
    bed_start(&b, 1);
    feeder_t f;
    feeder_start(&f, b.spec, b.spool);
    feeder_lines(&f, 0, 2000);
    acked_wait_t acked = {&w1, 2000};
    fwt_wait_until(writer_acked, &acked, 60000, "the first 2000 lines acked");

    fwt_cal_kill(&w1);
    feeder_lines(&f, 2000, 6000);
    fwt_seg_records_t sw = {b.spool, 6000};
    fwt_wait_until(fwt_seg_records_reach, &sw, 60000, "6000 lines in the spool");
    fwt_proc_signal(&f.send, SIGKILL);
    fwt_proc_wait(&f.send, 10000, NULL);
    fclose(f.fifo);

    /* Lines 2000..7999 (and any of the first 2000 whose ack the kill cut off). */
    fwt_seg_tree_t c = spool_count(b.spool);
    FWT_ASSERT(c.records >= 6000);
    FWT_ASSERT(c.most_blocks >= 2);
    static last_block_t lb;
    find_last_block(c.most, &lb);
    printf("tearing %s: %" PRIu64 " blocks, the last at byte %" PRIu64 " with %" PRIu32 " lines\n",
           c.most, lb.blocks, lb.offset, lb.nlines);
    FWT_ASSERT(lb.nlines > 0);
    FWT_ASSERT(truncate(c.most, (off_t)lb.offset + 10) == 0);

    fwt_cal_restart(&w1);
    fwt_proc_t send2;
    char log2[FWT_PATH_MAX];
    const char *extra[] = {"--spool", b.spool, NULL};
    fwt_send_lines_spawn(&send2, b.spec, "web", 8000, 200, KEYS, extra, log2, sizeof(log2));
    fwt_send_wait_ok(&send2, log2);
    char cut[128];
    snprintf(cut, sizeof(cut),
             "cut 10 bytes of a torn or damaged tail (an incomplete last block) "
             "after %" PRIu64 " whole blocks",
             lb.blocks - 1);
    if (!fwt_file_contains(log2, cut)) {
        char tail[4096];
        FWT_FAIL("the second send did not say \"%s\":\n%s", cut,
                 fwt_file_tail(log2, 30, tail, sizeof(tail)));
    }
    c = spool_count(b.spool);
    FWT_ASSERT_UINT_EQ(c.records, 0);
    FWT_ASSERT_UINT_EQ(c.files, 0);
    fwt_cal_stop(&w1);

    /* The torn block's lines are lost, unless a writer had stored them before it died. */
    static uint8_t torn[8200];
    uint64_t lost = 0;
    for (uint32_t i = 0; i < lb.nlines; i++) {
        FWT_ASSERT(lb.lines[i] < 8000);
        if (lb.lines[i] >= 2000) {
            torn[lb.lines[i]] = 1;
            lost++;
        }
    }
    FWT_ASSERT(lost > 0);
    fwt_lines_report_t r = expect_once_in_order(b.root, "web", 8200);
    FWT_ASSERT_UINT_EQ(r.missing, lost);
    stored_t s = stored_lines(b.root, "web", 8200);
    for (uint64_t i = 0; i < 8200; i++) {
        if (s.count[i] != (torn[i] ? 0 : 1))
            FWT_FAIL("line %" PRIu64 " (%s) is stored %d times", i,
                     torn[i] ? "in the torn block" : "not torn", s.count[i]);
    }
    free(s.count);
    fwt_zk_stop(&b.zk);
}
