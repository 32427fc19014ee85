/*
 * The audit at its edges, against a real ZooKeeper and writer:
 * - the audit category's absence costs nothing once known: a producer whose
 *   reports are off keeps no counts;
 * - a record with a timestamp outside the years an audit can judge does not
 *   cost the other records of its report;
 * - a report too large for the audit category's max_record_bytes goes out in
 *   parts, a producer's or a consumer's;
 * - a report stored twice counts once;
 * - `freeway audit` refuses a root or a copy it cannot find, a category it
 *   finds nothing of, and an empty window, instead of saying that every
 *   count agrees;
 * - `freeway tail --audit` says when its reports have nowhere to go;
 * - a producer whose records went to the spool (writers gone) closes without
 *   waiting out its timeout for its last report;
 * - a producer closed in the middle of its replay reports every ack it counted;
 * - records of a producer killed before its report are unreported, not a loss,
 *   and excuse no other producer's doubled records;
 * - a copy that lost what its copier had recorded as copied differs;
 * - without any producer report, "produced" is not judged;
 * - reports lost to damage in the audit category's segments are said to be.
 */
#include "fwt_cal.h"
#include "fwt_proc.h"
#include "fwt_zk.h"
#include "fwtest.h"

#include "client/audit.h"
#include "client/freeway.h"
#include "block.h"
#include "client/producer_int.h"
#include "clock.h"
#include "error.h"
#include "names.h"
#include "segment.h"

#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define BUCKETS 4

typedef struct fab_s {
    fwt_zk_t zk;
    char spec[160], root[FWT_PATH_MAX];
    fwt_cal_t w;
} fab_t;

/* ZooKeeper, category web, the audit category if audit_extra is not NULL (its flags), a writer. */
static void fab_start(fab_t *f, int with_audit, const char *const *audit_extra)
{
    memset(f, 0, sizeof(*f));
    fwt_zk_start(&f->zk);
    snprintf(f->spec, sizeof(f->spec), "%s/freeway", f->zk.connect);
    snprintf(f->root, sizeof(f->root), "%s/root", fwt_tmpdir_mem());
    fwt_category_create(f->spec, "web", BUCKETS, NULL);
    if (with_audit)
        fwt_category_create(f->spec, "freeway.audit", 1, audit_extra);
    fwt_cal_start(&f->w, "w1", f->spec, f->root, NULL);
    fwt_cal_wait_owns(&f->w, BUCKETS + (with_audit ? 1 : 0), "the writer to own every bucket");
}

static void fab_stop(fab_t *f)
{
    fwt_cal_stop(&f->w);
    fwt_zk_stop(&f->zk);
}

/* ---- the producer's log ------------------------------------------------------------------- */

typedef struct logbook_s {
    pthread_mutex_t mu;
    int info_audit_off, warnings;
    char first_warning[300];
} logbook_t;

static void on_log(fw_producer_log_level_t level, const char *message, void *arg)
{
    logbook_t *l = arg;
    pthread_mutex_lock(&l->mu);
    if (level >= FW_PRODUCER_LOG_WARN && l->warnings++ == 0)
        snprintf(l->first_warning, sizeof(l->first_warning), "%s", message);
    if (level == FW_PRODUCER_LOG_INFO && strstr(message, "audit reports off") != NULL)
        l->info_audit_off++;
    pthread_mutex_unlock(&l->mu);
}

static fw_producer_t *producer(const fab_t *f, logbook_t *l, const char *audit_category,
                               uint32_t interval_ms)
{
    fw_producer_options_t o;
    fw_producer_options_init(&o);
    o.zk = f->spec;
    o.audit_category = audit_category;
    o.audit_interval_ms = interval_ms;
    o.log_cb = on_log;
    o.log_arg = l;
    fw_producer_t *p = NULL;
    FWT_ASSERT_OK(fw_producer_create(&p, &o));
    return p;
}

/* Sends one record of web and waits for it: its own block. */
static void send_one(fw_producer_t *p, const char *key, int64_t ts)
{
    FWT_ASSERT_OK(fw_producer_send(p, "web", key, strlen(key), "v", 1, ts, NULL, NULL));
    FWT_ASSERT_OK(fw_producer_flush(p, 10000));
}

/* The producer knows the audit category's max_record_bytes (its metadata came). */
static int audit_limit_known(void *arg)
{
    fw_producer_t *p = arg;
    int known = 0;
    pthread_mutex_lock(&p->mu);
    for (uint32_t i = 0; i < p->table_cap; i++)
        for (fw_pcat_t *c = p->table[i]; c != NULL; c = c->hnext)
            known |= c->audit_internal && c->max_record < FW_RECORD_MAX_HARD;
    pthread_mutex_unlock(&p->mu);
    return known;
}

static int audit_off(void *arg)
{
    return atomic_load(&((fw_producer_t *)arg)->audit_off) != 0;
}

/* `freeway audit -c web --root ROOT --copies COPIES --settle 0`: exit status, output in *out. */
static int audit_root(const char *root, const char *copies, char **out)
{
    char *const argv[] = {(char *)fwt_bin("freeway"),
                          "audit",
                          "-c",
                          "web",
                          "--root",
                          (char *)root,
                          "--copies",
                          (char *)copies,
                          "--settle",
                          "0",
                          "--verbose",
                          NULL};
    return fwt_run(argv, 60000, out);
}

/* ---- tests ------------------------------------------------------------------------------- */

/*
 * Without the audit category (every existing fabric), reports stop after
 * one info line; the counts of blocks acked afterwards must not pile up in
 * memory for as long as the producer lives (one cell per bucket and minute).
 */
FWT_TEST(a_producer_whose_reports_are_off_keeps_no_counts)
{
    fab_t f;
    fab_start(&f, 0, NULL);
    logbook_t l = {.mu = PTHREAD_MUTEX_INITIALIZER};
    fw_producer_t *p = producer(&f, &l, FW_AUDIT_CATEGORY_DEFAULT, 100);
    int64_t now = fw_clock_wall_ms();
    send_one(p, "a", now);
    fwt_wait_until(audit_off, p, 20000, "the producer to find the audit category missing");
    /* A day of minutes, one block each: a long-running producer's history. */
    for (int i = 0; i < 200; i++)
        send_one(p, "a", now - (int64_t)i * 60000);
    pthread_mutex_lock(&p->audit_mu);
    uint32_t cells = p->audit_counts.used;
    pthread_mutex_unlock(&p->audit_mu);
    FWT_ASSERT_UINT_EQ(cells, 0);
    fw_producer_stats_t s;
    fw_producer_stats(p, &s);
    FWT_ASSERT_UINT_EQ(s.records_acked, 201);
    FWT_ASSERT_UINT_EQ(s.records_failed, 0);
    FWT_ASSERT_OK(fw_producer_close(p, 10000));
    FWT_ASSERT_INT_EQ(l.info_audit_off, 1);
    if (l.warnings != 0)
        FWT_FAIL("%d warnings, the first: %s", l.warnings, l.first_warning);
    fab_stop(&f);
}

/*
 * One record stamped in microseconds (year ~56000) lies outside what the
 * audit's reports may carry; it must not make the whole report unreadable,
 * which would take every other record of it out of "produced".
 */
FWT_TEST(a_timestamp_outside_the_audits_years_does_not_spoil_its_report)
{
    fab_t f;
    fab_start(&f, 1, NULL);
    logbook_t l = {.mu = PTHREAD_MUTEX_INITIALIZER};
    fw_producer_t *p = producer(&f, &l, FW_AUDIT_CATEGORY_DEFAULT, 100);
    int64_t now = fw_clock_wall_ms();
    for (int i = 0; i < 10; i++)
        FWT_ASSERT_OK(fw_producer_send(p, "web", "a", 1, "v", 1, now - 120000, NULL, NULL));
    FWT_ASSERT_OK(fw_producer_flush(p, 10000));
    send_one(p, "b", now * 1000);
    send_one(p, "c", -5);
    FWT_ASSERT_OK(fw_producer_close(p, 10000));
    fab_stop(&f);

    char *out = NULL;
    int rc = audit_root(f.root, "none", &out);
    if (rc != 0 || strstr(out, "every count agrees") == NULL || strstr(out, "unreadable") != NULL)
        FWT_FAIL("freeway audit exited %d:\n%s", rc, out);
    free(out);
}

/*
 * An audit category with a small max_record_bytes (an operator's choice):
 * a report of many buckets and minutes must still get there, in parts,
 * not fail every interval while its counts pile up.
 */
FWT_TEST(a_report_larger_than_the_audit_categorys_records_goes_in_parts)
{
    fab_t f;
    const char *const extra[] = {"--max-record-bytes", "1K", NULL};
    fab_start(&f, 1, extra);
    logbook_t l = {.mu = PTHREAD_MUTEX_INITIALIZER};
    fw_producer_t *p = producer(&f, &l, FW_AUDIT_CATEGORY_DEFAULT, 3000);
    int64_t now = fw_clock_wall_ms();
    /* A first report makes the producer learn the audit category's limit. */
    send_one(p, "a", now);
    fwt_wait_until(audit_limit_known, p, 20000, "a first report to bring the audit's metadata");
    /* 4 buckets x 60 minutes: 240 counts, some 3 KiB of report. */
    for (int m = 1; m <= 60; m++)
        for (int k = 0; k < 4; k++) {
            char key[8];
            snprintf(key, sizeof(key), "k%d", k);
            FWT_ASSERT_OK(
                fw_producer_send(p, "web", key, strlen(key), "v", 1, now - m * 60000, NULL, NULL));
            if (k == 3)
                FWT_ASSERT_OK(fw_producer_flush(p, 10000));
        }
    FWT_ASSERT_OK(fw_producer_close(p, 10000));
    fab_stop(&f);
    if (l.warnings != 0)
        FWT_FAIL("%d warnings, the first: %s", l.warnings, l.first_warning);

    char *out = NULL;
    int rc = audit_root(f.root, "none", &out);
    if (rc != 0 || strstr(out, "every count agrees") == NULL)
        FWT_FAIL("freeway audit exited %d:\n%s", rc, out);
    free(out);
}

/*
 * The reports travel through the very storage the audit checks: a report
 * block stored twice (the kind of fault the audit is there to find) must
 * count once, not show the category's records as lost.
 */
FWT_TEST(a_report_stored_twice_counts_once)
{
    fab_t f;
    fab_start(&f, 1, NULL);
    logbook_t l = {.mu = PTHREAD_MUTEX_INITIALIZER};
    /* Sends the records and, by hand, their report, twice; reports of its own off. */
    fw_producer_t *p = producer(&f, &l, NULL, 100);
    int64_t ts = (fw_clock_wall_ms() - 180000) / 60000 * 60000;
    for (int i = 0; i < 10; i++)
        FWT_ASSERT_OK(fw_producer_send(p, "web", "k", 1, "v", 1, ts, NULL, NULL));
    FWT_ASSERT_OK(fw_producer_flush(p, 10000));
    fw_audit_table_t t = {0};
    FWT_ASSERT_OK(fw_audit_table_add(&t, 0, fw_key_bucket("k", 1, BUCKETS), ts / 60000, 10));
    fw_audit_report_t r = {
        .hop = FWPB__AUDIT_HOP__AUDIT_PRODUCED,
        .category = "web",
        .reporter = "test 1",
        .life = 77,
        .seq = 1,
        .final = 1,
        .sent_ms = fw_clock_wall_ms(),
        .table = &t,
    };
    fw_buf_t buf = FW_BUF_INIT;
    FWT_ASSERT_OK(fw_audit_report_encode(&r, &buf));
    for (int i = 0; i < 2; i++) {
        FWT_ASSERT_OK(fw_producer_send(p, FW_AUDIT_CATEGORY_DEFAULT, "web", 3, buf.data, buf.len, 0,
                                       NULL, NULL));
        FWT_ASSERT_OK(fw_producer_flush(p, 10000));
    }
    fw_buf_free(&buf);
    fw_audit_table_free(&t);
    FWT_ASSERT_OK(fw_producer_close(p, 10000));
    fab_stop(&f);

    char *out = NULL;
    int rc = audit_root(f.root, "none", &out);
    if (rc != 0 || strstr(out, "every count agrees") == NULL || strstr(out, "missing") != NULL ||
        strstr(out, "reports stored more than once: 1 (counted once)") == NULL)
        FWT_FAIL("freeway audit exited %d:\n%s", rc, out);
    free(out);
}

/* A mistyped root or copy is not an empty fabric in which every count agrees. */
FWT_TEST(a_root_or_copy_that_is_not_there_is_an_error)
{
    char missing[FWT_PATH_MAX + 16], root[FWT_PATH_MAX + 16], url[FWT_PATH_MAX + 32];
    snprintf(missing, sizeof(missing), "%s/no-such-root", fwt_tmpdir());
    char *out = NULL;
    int rc = audit_root(missing, "none", &out);
    if (rc != 2)
        FWT_FAIL("freeway audit of a missing root exited %d:\n%s", rc, out);
    free(out);

    /* A root that is there, a copy that is not. */
    snprintf(root, sizeof(root), "%s", fwt_tmpdir());
    snprintf(url, sizeof(url), "file://%s/no-such-copy", fwt_tmpdir());
    rc = audit_root(root, url, &out);
    if (rc != 2)
        FWT_FAIL("freeway audit of a missing copy exited %d:\n%s", rc, out);
    free(out);

    /* A root without the category (a mistyped -c), nothing reported of it. */
    rc = audit_root(root, "none", &out);
    if (rc != 2 || strstr(out, "nothing of category web") == NULL)
        FWT_FAIL("freeway audit of a category never stored exited %d:\n%s", rc, out);
    free(out);

    /* A window with no minute in it. */
    char *const argv[] = {(char *)fwt_bin("freeway"),
                          "audit",
                          "-c",
                          "web",
                          "--root",
                          root,
                          "--copies",
                          "none",
                          "--since",
                          "1h",
                          "--until",
                          "2h",
                          NULL};
    rc = fwt_run(argv, 60000, &out);
    if (rc != 2 || strstr(out, "no minute from --since 1h to --until 2h") == NULL)
        FWT_FAIL("freeway audit of an empty window exited %d:\n%s", rc, out);
    free(out);
}

/*
 * `freeway tail --audit` asks for reports: if they cannot be stored (no
 * audit category), it must say so rather than print records as if the
 * audit saw them.
 */
FWT_TEST(tail_audit_without_the_audit_category_says_so)
{
    fab_t f;
    fab_start(&f, 0, NULL);
    fwt_cal_t pt;
    fwt_ptail_start(&pt, "p1", f.spec, f.root, NULL);
    fwt_send_lines(f.spec, "web", 0, 10, 2, NULL);
    char *const argv[] = {(char *)fwt_bin("freeway"),
                          "tail",
                          "-c",
                          "web",
                          "--zk",
                          f.spec,
                          "--from",
                          "earliest",
                          "--count",
                          "10",
                          "--audit",
                          "--name",
                          "t1",
                          NULL};
    char *out = NULL;
    int rc = fwt_run(argv, 60000, &out);
    if (rc != 0 || strstr(out, "freeway.audit does not exist") == NULL)
        FWT_FAIL("freeway tail --audit exited %d without saying its reports go nowhere:\n%s", rc,
                 out);
    free(out);
    fwt_cal_stop(&pt);
    fab_stop(&f);
}

/*
 * With the writers gone, a producer with a spool closes as soon as its
 * records are spooled; its final audit report (for which the audit
 * category's metadata may not even be had) must not make the close take
 * the application's whole timeout.
 */
FWT_TEST(a_producer_that_spools_closes_without_waiting_out_its_timeout)
{
    for (int with_audit = 0; with_audit < 2; with_audit++) {
        fab_t f;
        fab_start(&f, with_audit, NULL);
        char dir[FWT_PATH_MAX + 16];
        snprintf(dir, sizeof(dir), "%s/spool%d", fwt_tmpdir_mem(), with_audit);
        fw_producer_options_t o;
        fw_producer_options_init(&o);
        o.zk = f.spec;
        o.spool_dir = dir;
        o.spool_after_ms = 100;
        fw_producer_t *p = NULL;
        FWT_ASSERT_OK(fw_producer_create(&p, &o));
        send_one(p, "k", 0);
        fwt_cal_stop(&f.w);
        for (int i = 0; i < 100; i++)
            FWT_ASSERT_OK(fw_producer_send(p, "web", "k", 1, "v", 1, 0, NULL, NULL));
        int64_t t0 = fwt_now_ms();
        FWT_ASSERT_OK(fw_producer_close(p, 10000));
        int64_t took = fwt_now_ms() - t0;
        /* The records spool after 100 ms; the report may take at most another second. Waiting
         * out the timeout would take 10 s: 5 s leaves room for a loaded machine and fsyncs. */
        if (took > 5000)
            FWT_FAIL("close took %lld ms (audit category %s)", (long long)took,
                     with_audit ? "there" : "missing");
        fwt_zk_stop(&f.zk);
    }
}

static int replay_began(void *arg)
{
    fw_producer_stats_t st;
    fw_producer_stats((fw_producer_t *)arg, &st);
    return st.records_replay_acked > 0;
}

/* A producer with a spool (spooling after 100 ms), small blocks. */
static fw_producer_t *spooling_producer(const fab_t *f, const char *dir)
{
    fw_producer_options_t o;
    fw_producer_options_init(&o);
    o.zk = f->spec;
    o.spool_dir = dir;
    o.spool_after_ms = 100;
    o.batch_bytes = 512;
    fw_producer_t *p = NULL;
    FWT_ASSERT_OK(fw_producer_create(&p, &o));
    return p;
}

/*
 * A producer closed while it replays its spool: every replay ack it counts
 * must be in its final report (replays stop before it is taken), and what
 * it left in the spool is counted once by the next life that sends it. The
 * audit of the whole run agrees.
 */
FWT_TEST(a_producer_closed_while_it_replays_reports_every_ack_it_counted)
{
    fab_t f;
    fab_start(&f, 1, NULL);
    char dir[FWT_PATH_MAX + 16];
    snprintf(dir, sizeof(dir), "%s/spool", fwt_tmpdir_mem());

    /* Life 1: the writer gone, thousands of small blocks go to the spool. */
    fw_producer_t *p = spooling_producer(&f, dir);
    send_one(p, "k", 0);
    fwt_cal_stop(&f.w);
    char value[200];
    memset(value, 'v', sizeof(value));
    for (int i = 0; i < 8000; i++)
        FWT_ASSERT_OK(fw_producer_send(p, "web", "k", 1, value, sizeof(value), 0, NULL, NULL));
    FWT_ASSERT_OK(fw_producer_close(p, 30000));

    /* Life 2: closed as soon as the first replayed block is acked. */
    fwt_cal_start(&f.w, "w1", f.spec, f.root, NULL);
    fwt_cal_wait_owns(&f.w, BUCKETS + 1, "the writer to own every bucket again");
    p = spooling_producer(&f, dir);
    fwt_wait_until(replay_began, p, 30000, "the replay to begin");
    FWT_ASSERT_OK(fw_producer_close(p, 30000));

    /* Life 3: sends the rest. */
    p = spooling_producer(&f, dir);
    FWT_ASSERT_OK(fw_producer_drain_spool(p, 60000));
    FWT_ASSERT_OK(fw_producer_close(p, 30000));

    char *out = NULL;
    int rc = audit_root(f.root, "none", &out);
    if (rc != 0)
        FWT_FAIL("freeway audit after a close in the middle of a replay exited %d:\n%s", rc, out);
    free(out);
    fab_stop(&f);
}

/*
 * A producer in a child process gets 10 records stamped ts acked, then is
 * killed (kill -9) before its first report (they come every 10 s).
 */
static void kill_after_acks(const fab_t *f, int64_t ts)
{
    int ready[2];
    FWT_ASSERT(pipe(ready) == 0);
    pid_t pid = fork();
    FWT_ASSERT(pid >= 0);
    if (pid == 0) {
        close(ready[0]);
        fw_producer_options_t o;
        fw_producer_options_init(&o);
        o.zk = f->spec;
        fw_producer_t *c = NULL;
        if (fw_producer_create(&c, &o) < 0)
            _exit(2);
        for (int i = 0; i < 10; i++)
            if (fw_producer_send(c, "web", "k", 1, "v", 1, ts, NULL, NULL) < 0)
                _exit(3);
        if (fw_producer_flush(c, 10000) < 0 || write(ready[1], "y", 1) != 1)
            _exit(4);
        for (;;)
            pause();
    }
    close(ready[1]);
    char y = 0;
    ssize_t n = read(ready[0], &y, 1);
    close(ready[0]);
    kill(pid, SIGKILL);
    int status;
    FWT_ASSERT(waitpid(pid, &status, 0) == pid);
    FWT_ASSERT(n == 1 && y == 'y');
}

/*
 * A producer killed (kill -9) after its records were acked and before its
 * first report: the audit finds its producer id in the written blocks with
 * no report, and says that the written records no report counted are
 * unreported -- fewer produced than written is never a loss -- instead of a
 * difference. A loss (more produced than written) is still one.
 */
FWT_TEST(a_producer_killed_before_its_report_is_unreported_not_a_difference)
{
    fab_t f;
    fab_start(&f, 1, NULL);
    /* A producer that closes: its final report counts its records. */
    logbook_t l = {.mu = PTHREAD_MUTEX_INITIALIZER};
    fw_producer_t *p = producer(&f, &l, FW_AUDIT_CATEGORY_DEFAULT, 10000);
    send_one(p, "a", 0);
    FWT_ASSERT_OK(fw_producer_close(p, 10000));

    kill_after_acks(&f, 0);

    char *out = NULL;
    int rc = audit_root(f.root, "none", &out);
    if (rc != 0 || strstr(out, "10 records written that no report counted") == NULL ||
        strstr(out, "1 producer ids that wrote without any report") == NULL)
        FWT_FAIL("freeway audit after a producer killed before its report exited %d:\n%s", rc, out);
    free(out);
    fab_stop(&f);
}

/*
 * Stores a block of producer pid again under another sequence, in a new
 * segment of its bucket: what a writer that forgot the producer does with a
 * block sent twice (renumbered, or replayed by a later life). 1 if found.
 */
static int store_again_renumbered(const char *root, uint64_t pid)
{
    for (uint32_t bucket = 0; bucket < BUCKETS; bucket++) {
        char dir[FWT_PATH_MAX + 32];
        snprintf(dir, sizeof(dir), "%s/web/%" PRIu32, root, bucket);
        uint64_t *ids;
        size_t n;
        if (fw_seg_list(dir, &ids, &n) < 0)
            continue;
        for (size_t i = 0; i < n; i++) {
            char path[FWT_PATH_MAX + 64], name[FW_SEG_NAME_LEN + 1];
            fw_seg_name(name, ids[i]);
            snprintf(path, sizeof(path), "%s/%s", dir, name);
            fw_segr_t *r = NULL;
            FWT_ASSERT_OK(fw_segr_open(path, &r));
            fw_seg_block_t sb;
            while (fw_segr_next(r, &sb) == FW_SEGR_BLOCK) {
                if (sb.header.producer_id != pid)
                    continue;
                uint8_t *copy = malloc(sb.len);
                FWT_ASSERT(copy != NULL);
                memcpy(copy, sb.data, sb.len);
                FWT_ASSERT_OK(fw_block_set_sequence(copy, sb.len, sb.header.sequence + 1000));
                fw_seg_header_t h = *fw_segr_header(r);
                h.segment_id = ids[n - 1] + 1;
                fw_segw_t *w = NULL;
                FWT_ASSERT_OK(fw_segw_create(dir, &h, &w));
                struct iovec iov = {copy, sb.len};
                uint64_t at;
                FWT_ASSERT_OK(fw_segw_append(w, &iov, 1, 1, sb.header.record_count, &at));
                FWT_ASSERT_OK(fw_segw_sync(w));
                fw_segw_close(w);
                free(copy);
                fw_segr_close(r);
                free(ids);
                return 1;
            }
            fw_segr_close(r);
        }
        free(ids);
    }
    return 0;
}

/*
 * A producer life with its final report whose records are written twice
 * (a block stored again under another sequence) differs, even when another
 * producer, in another minute, was killed before its report: that one's
 * unreported records excuse only what it wrote, not every cell.
 */
FWT_TEST(an_unreported_life_does_not_excuse_another_lifes_doubled_records)
{
    fab_t f;
    fab_start(&f, 1, NULL);
    int64_t now = fw_clock_wall_ms();
    logbook_t l = {.mu = PTHREAD_MUTEX_INITIALIZER};
    fw_producer_t *p = producer(&f, &l, FW_AUDIT_CATEGORY_DEFAULT, 10000);
    uint64_t pid = p->id;
    send_one(p, "a", now - 5 * 60000);
    FWT_ASSERT_OK(fw_producer_close(p, 10000));
    kill_after_acks(&f, now);
    fwt_cal_stop(&f.w);
    FWT_ASSERT(store_again_renumbered(f.root, pid));

    char *out = NULL;
    int rc = audit_root(f.root, "none", &out);
    if (rc != 1 || strstr(out, "10 records written that no report counted") == NULL)
        FWT_FAIL("freeway audit with a doubled block of a reported life exited %d:\n%s", rc, out);
    free(out);
    fwt_zk_stop(&f.zk);
}

typedef struct copy_s {
    fwt_cal_t *cp;
    const char *root;
} copy_t;

static int copier_caught_up(void *arg)
{
    copy_t *c = arg;
    return fwt_copier_caught_up(c->cp, c->root, BUCKETS + 1);
}

/*
 * A copy that lost files the copier had copied (its recorded progress says
 * so) is not "behind": the copier will not copy them again. Here bucket 0
 * of the copy is gone altogether.
 */
FWT_TEST(a_copy_that_lost_what_its_copier_recorded_differs)
{
    fab_t f;
    fab_start(&f, 1, NULL);
    char dest[FWT_PATH_MAX + 16], url[FWT_PATH_MAX + 32];
    snprintf(dest, sizeof(dest), "%s/copy", fwt_tmpdir_mem());
    snprintf(url, sizeof(url), "file://%s", dest);
    fwt_cal_t cp;
    fwt_copier_start(&cp, "c1", f.spec, f.root, url, NULL);
    fwt_send_lines(f.spec, "web", 0, 200, 8, NULL);
    copy_t copy = {&cp, f.root};
    fwt_wait_until(copier_caught_up, &copy, 60000, "the copier to catch up");
    fwt_cal_stop(&cp);
    fwt_cal_stop(&f.w);

    /* The copies come from ZooKeeper: every copier destination of web, with its progress. */
    char *const argv[] = {(char *)fwt_bin("freeway"),
                          "audit",
                          "-c",
                          "web",
                          "--zk",
                          f.spec,
                          "--root",
                          f.root,
                          "--settle",
                          "0",
                          NULL};
    char *out = NULL;
    int rc = fwt_run(argv, 60000, &out);
    if (rc != 0)
        FWT_FAIL("freeway audit of a healthy copy exited %d:\n%s", rc, out);
    free(out);

    char bucket0[FWT_PATH_MAX + 32];
    snprintf(bucket0, sizeof(bucket0), "%s/web/0", dest);
    char *const rm[] = {"/bin/rm", "-rf", bucket0, NULL};
    FWT_ASSERT_INT_EQ(fwt_run(rm, 10000, NULL), 0);
    rc = fwt_run(argv, 60000, &out);
    if (rc != 1 || strstr(out, "DIFFERS: copy1") == NULL)
        FWT_FAIL("freeway audit of a copy that lost a bucket exited %d:\n%s", rc, out);
    free(out);
    fwt_zk_stop(&f.zk);
}

/*
 * Without the audit category no producer reports: "produced" cannot be
 * judged, and is said to be so, rather than differ in every minute.
 */
FWT_TEST(without_producer_reports_produced_is_not_judged)
{
    fab_t f;
    fab_start(&f, 0, NULL);
    fwt_send_lines(f.spec, "web", 0, 100, 4, NULL);
    fab_stop(&f);
    char *out = NULL;
    int rc = audit_root(f.root, "none", &out);
    if (rc != 0 || strstr(out, "no producer reports: not judged") == NULL ||
        strstr(out, "every count agrees") == NULL)
        FWT_FAIL("freeway audit without reports exited %d:\n%s", rc, out);
    free(out);
}

/* Flips a bit of the byte at offset in path. */
static void flip_byte(const char *path, off_t offset)
{
    int fd = open(path, O_RDWR);
    FWT_ASSERT(fd >= 0);
    uint8_t c;
    FWT_ASSERT_INT_EQ(pread(fd, &c, 1, offset), 1);
    c ^= 0x10;
    FWT_ASSERT_INT_EQ(pwrite(fd, &c, 1, offset), 1);
    close(fd);
}

/*
 * Damage in the audit category's segments takes the reports after it out
 * of "produced": the audit must say so, not only show the loss it makes.
 */
FWT_TEST(damaged_reports_are_said_to_be_unread)
{
    fab_t f;
    fab_start(&f, 1, NULL);
    fwt_send_lines(f.spec, "web", 0, 100, 4, NULL);
    fab_stop(&f);
    char seg[FWT_PATH_MAX + 64];
    snprintf(seg, sizeof(seg), "%s/freeway.audit/0/00000000000000000001.seg", f.root);
    /* Inside the payload of the first block (57: the header of a freeway.audit segment). */
    flip_byte(seg, 57 + FW_BLOCK_HEADER_SIZE + 4);
    char *out = NULL;
    int rc = audit_root(f.root, "none", &out);
    if (rc != 1 || strstr(out, "unreadable reports: 1") == NULL ||
        strstr(out, "the reports after it are not read") == NULL)
        FWT_FAIL("freeway audit exited %d:\n%s", rc, out);
    free(out);
}

typedef struct reader_s {
    int records, warnings;
} reader_t;

static void reader_record(const fw_consumer_record_t *r, void *arg)
{
    (void)r;
    ((reader_t *)arg)->records++;
}

static void reader_log(fw_consumer_log_level_t level, const char *message, void *arg)
{
    if (level >= FW_CONSUMER_LOG_WARN) {
        ((reader_t *)arg)->warnings++;
        fprintf(stderr, "consumer: %s\n", message);
    }
}

/* As a producer's, a consumer's report too large for one record goes in parts. */
FWT_TEST(a_consumer_report_larger_than_the_audit_categorys_records_goes_in_parts)
{
    fab_t f;
    const char *const extra[] = {"--max-record-bytes", "1K", NULL};
    fab_start(&f, 1, extra);
    fwt_cal_t pt;
    fwt_ptail_start(&pt, "p1", f.spec, f.root, NULL);
    logbook_t l = {.mu = PTHREAD_MUTEX_INITIALIZER};
    fw_producer_t *p = producer(&f, &l, FW_AUDIT_CATEGORY_DEFAULT, 100);
    int64_t now = fw_clock_wall_ms();
    send_one(p, "a", now);
    fwt_wait_until(audit_limit_known, p, 20000, "a first report to bring the audit's metadata");
    /* 4 buckets x 60 minutes, a block each: some 240 counts for the consumer to report. */
    for (int m = 1; m <= 60; m++) {
        for (int k = 0; k < 4; k++) {
            char key[8];
            snprintf(key, sizeof(key), "k%d", k);
            FWT_ASSERT_OK(
                fw_producer_send(p, "web", key, strlen(key), "v", 1, now - m * 60000, NULL, NULL));
        }
        FWT_ASSERT_OK(fw_producer_flush(p, 10000));
    }

    reader_t rd = {0};
    fw_consumer_options_t o;
    fw_consumer_options_init(&o);
    o.zk = f.spec;
    o.category = "web";
    o.start = FW_START_EARLIEST;
    o.on_record = reader_record;
    o.arg = &rd;
    o.log_cb = reader_log;
    o.log_arg = &rd;
    o.name = "t1";
    o.audit_producer = p;
    o.audit_interval_ms = 3600000; /* one report, at close */
    fw_consumer_t *c = NULL;
    FWT_ASSERT_OK(fw_consumer_create(&c, &o));
    int64_t deadline = fwt_now_ms() + 30000;
    while (rd.records < 241 && fwt_now_ms() < deadline)
        FWT_ASSERT_INT_OP(fw_consumer_poll(c, 100), >=, 0);
    FWT_ASSERT_INT_EQ(rd.records, 241);
    FWT_ASSERT_OK(fw_consumer_close(c));
    FWT_ASSERT_OK(fw_producer_close(p, 10000));
    FWT_ASSERT_INT_EQ(rd.warnings, 0);
    fwt_cal_stop(&pt);
    fab_stop(&f);

    char *out = NULL;
    int rc = audit_root(f.root, "none", &out);
    if (rc != 0 || strstr(out, "consumer t1 (1 lives)") == NULL ||
        strstr(out, "every count agrees") == NULL)
        FWT_FAIL("freeway audit exited %d:\n%s", rc, out);
    free(out);
}
