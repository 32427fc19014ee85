/*
 * The fault-injection run's two processes (tests/chaos/chaos_producer.c and chaos_consumer.c)
 * against a real ZooKeeper, calligraphus and ptail, before the run (test_chaos) relies on
 * them: a producer stopped by SIGTERM leaves an acked file whose every line is stored
 * exactly once; one killed -9 while it spools leaves a spool that --drain-only delivers; a
 * consumer killed -9 mid-stream and started again commits every stored record exactly once.
 */
#include "fwt_cal.h"
#include "fwt_root.h"
#include "fwt_zk.h"
#include "fwtest.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define CAT     "chaos"
#define BUCKETS 4
#define LIVES   4
#define MAX_SEQ (1u << 18)

/* ---- the fabric ------------------------------------------------------------------------------ */

typedef struct fabric_s {
    fwt_zk_t zk;
    char spec[128];
    char root[FWT_PATH_MAX];
    fwt_cal_t w;
    fwt_cal_t pt;
    int with_ptail;
    char producer[FWT_PATH_MAX];
    char consumer[FWT_PATH_MAX];
    char spool[FWT_PATH_MAX];
    char acked[FWT_PATH_MAX];
} fabric_t;

static const char *ptail_flags[] = {"--session-timeout", "2s", "--poll", "200ms", NULL};

static void fabric_start(fabric_t *f, int with_ptail)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->producer, sizeof(f->producer), "%s", fwt_tool("chaos_producer"));
    snprintf(f->consumer, sizeof(f->consumer), "%s", fwt_tool("chaos_consumer"));
    snprintf(f->root, sizeof(f->root), "%s/root", fwt_tmpdir_mem());
    snprintf(f->spool, sizeof(f->spool), "%s/spool", fwt_tmpdir());
    snprintf(f->acked, sizeof(f->acked), "%s/acked", fwt_tmpdir());
    fwt_zk_start(&f->zk);
    snprintf(f->spec, sizeof(f->spec), "%s/freeway", f->zk.connect);
    fwt_category_create(f->spec, CAT, BUCKETS, NULL);
    /* The producers' audit reports (on by default) have somewhere to go. */
    fwt_category_create(f->spec, "freeway.audit", 1, NULL);
    fwt_cal_start(&f->w, "w1", f->spec, f->root, NULL);
    fwt_cal_wait_owns(&f->w, BUCKETS + 1, "the writer to own every bucket");
    if (with_ptail)
        fwt_ptail_start(&f->pt, "p1", f->spec, f->root, ptail_flags);
    f->with_ptail = with_ptail;
}

static void fabric_stop(fabric_t *f)
{
    if (f->with_ptail)
        fwt_cal_stop(&f->pt);
    fwt_cal_stop(&f->w);
    fwt_zk_stop(&f->zk);
}

/* Starts chaos_producer --index 1 --life LIFE plus extra flags (NULL-terminated). */
static void producer_spawn(fabric_t *f, fwt_proc_t *p, int life, const char *const *extra)
{
    char life_text[16], log[FWT_PATH_MAX + 32];
    snprintf(life_text, sizeof(life_text), "%d", life);
    snprintf(log, sizeof(log), "%s/producer.l%d.log", fwt_tmpdir(), life);
    const char *argv[32] = {f->producer, "--zk",    f->spec,  "--category", CAT,
                            "--index",   "1",       "--life", life_text,    "--spool",
                            f->spool,    "--acked", f->acked};
    int n = 13;
    for (int i = 0; extra != NULL && extra[i] != NULL; i++) {
        FWT_ASSERT(n < 31);
        argv[n++] = extra[i];
    }
    fwt_proc_spawn(p, "chaos_producer", (char *const *)argv, log);
}

/* Fails the test unless p exits with status want within timeout_ms. */
static void expect_exit(fwt_proc_t *p, int want, int timeout_ms)
{
    int status = 0;
    char tail[4096];
    if (fwt_proc_wait(p, timeout_ms, &status) < 0)
        FWT_FAIL("%s still runs after %d ms:\n%s", p->name, timeout_ms,
                 fwt_file_tail(p->log_path, 30, tail, sizeof(tail)));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != want)
        FWT_FAIL("%s ended with wait status 0x%x, want exit %d:\n%s", p->name, status, want,
                 fwt_file_tail(p->log_path, 30, tail, sizeof(tail)));
}

/* A tool that ended by SIGTERM logged nothing at error level, nor a sanitizer report. */
static void expect_no_error(const fwt_proc_t *p)
{
    char tail[4096];
    if (fwt_file_contains(p->log_path, " ERROR ") || fwt_file_contains(p->log_path, "Sanitizer") ||
        fwt_file_contains(p->log_path, "runtime error:"))
        FWT_FAIL("%s logged an error:\n%s", p->name,
                 fwt_file_tail(p->log_path, 30, tail, sizeof(tail)));
}

/* ---- values, files and tallies --------------------------------------------------------------- */

/* How often each value p1.l<life>.s<seq> was seen, and what else was. */
typedef struct tally_s {
    uint8_t n[LIVES][MAX_SEQ];
    uint64_t values;
    uint64_t foreign;
} tally_t;

static tally_t *tally_new(void)
{
    tally_t *t = calloc(1, sizeof(*t));
    FWT_ASSERT(t != NULL);
    return t;
}

/* Counts the value v (len bytes) in t. */
static void tally_add(tally_t *t, const void *v, size_t len)
{
    char text[64];
    unsigned life = 0;
    uint64_t seq = 0;
    int used = -1;
    if (len < sizeof(text)) {
        memcpy(text, v, len);
        text[len] = '\0';
        if (sscanf(text, "p1.l%u.s%" SCNu64 "%n", &life, &seq, &used) != 2)
            used = -1;
    }
    if (used != (int)len || life >= LIVES || seq >= MAX_SEQ) {
        t->foreign++;
        return;
    }
    t->values++;
    if (t->n[life][seq] < UINT8_MAX)
        t->n[life][seq]++;
}

/* The whole file at path, NUL-terminated (malloc'd); "" if there is none. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    size_t cap = 1 << 16, len = 0, n;
    char *buf = malloc(cap + 1);
    FWT_ASSERT(buf != NULL);
    while (f != NULL && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            buf = realloc(buf, 2 * cap + 1);
            FWT_ASSERT(buf != NULL);
            cap *= 2;
        }
    }
    if (f != NULL)
        fclose(f);
    buf[len] = '\0';
    return buf;
}

/* What an acked file holds: every value acked (spooled or not), and the counts by kind. */
typedef struct acked_s {
    tally_t *values;
    uint64_t lines, spooled, failed, malformed;
} acked_t;

static void acked_read(const char *path, acked_t *a)
{
    memset(a, 0, sizeof(*a));
    a->values = tally_new();
    char *text = slurp(path), *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        a->lines++;
        char *sp = strchr(line, ' ');
        if (sp == NULL) {
            a->malformed++;
        } else if (strncmp(sp, " fail ", 6) == 0) {
            a->failed++;
        } else if (strcmp(sp, " 0") == 0 || strcmp(sp, " 1") == 0) {
            a->spooled += sp[1] == '1';
            tally_add(a->values, line, (size_t)(sp - line));
        } else {
            a->malformed++;
        }
    }
    free(text);
}

static void on_stored(void *arg, uint32_t bucket, uint64_t segment_id, const fw_block_header_t *h,
                      const fw_record_t *rec)
{
    (void)bucket;
    (void)segment_id;
    (void)h;
    tally_add(arg, rec->value, rec->value_len);
}

/* Every value CAT's segments hold under root. */
static tally_t *stored_read(const char *root)
{
    tally_t *t = tally_new();
    fwt_root_records(root, CAT, on_stored, t);
    FWT_ASSERT_UINT_EQ(t->foreign, 0);
    return t;
}

/* Fails unless every value of `want` is in `got` exactly once and `got` repeats nothing. */
static void expect_once(const tally_t *want, const char *want_name, const tally_t *got,
                        const char *got_name)
{
    for (int l = 0; l < LIVES; l++)
        for (uint32_t s = 0; s < MAX_SEQ; s++)
            if ((want->n[l][s] && got->n[l][s] != 1) || got->n[l][s] > 1)
                FWT_FAIL("p1.l%d.s%" PRIu32 ": %u times in %s, %u times in %s", l, s, want->n[l][s],
                         want_name, got->n[l][s], got_name);
}

/* fwt_wait_until conditions on an acked file: at least `lines` lines (ending " 1" if spooled). */
typedef struct lines_wait_s {
    const char *path;
    uint64_t lines;
    int spooled;
} lines_wait_t;

static int acked_lines_reach(void *arg)
{
    lines_wait_t *w = arg;
    acked_t a;
    acked_read(w->path, &a);
    free(a.values);
    return (w->spooled ? a.spooled : a.lines) >= w->lines;
}

/* ---- the producer ---------------------------------------------------------------------------- */

/*
 * About 2 s at 500 records a second, then SIGTERM: exit 0, every record acked (seq 0..n-1,
 * none failed) and stored exactly once.
 */
FWT_TEST(producer_stopped_by_sigterm_acks_what_it_sent)
{
    fabric_t f;
    fabric_start(&f, 0);
    fwt_proc_t p;
    const char *extra[] = {"--rate", "500", NULL};
    producer_spawn(&f, &p, 0, extra);
    lines_wait_t w = {f.acked, 1000, 0};
    fwt_wait_until(acked_lines_reach, &w, 30000, "1000 acked lines");
    FWT_ASSERT_OK(fwt_proc_signal(&p, SIGTERM));
    expect_exit(&p, 0, 30000);
    expect_no_error(&p);
    FWT_ASSERT(fwt_file_contains(p.log_path, "chaos_producer[1.0] INFO summary: sent "));

    acked_t a;
    acked_read(f.acked, &a);
    FWT_ASSERT_UINT_EQ(a.failed, 0);
    FWT_ASSERT_UINT_EQ(a.malformed, 0);
    FWT_ASSERT_INT_OP(a.lines, >=, 1000);
    /* Every send was taken and answered: the acked values are exactly seq 0..lines-1. */
    for (uint64_t s = 0; s < a.lines; s++)
        if (a.values->n[0][s] != 1)
            FWT_FAIL("p1.l0.s%" PRIu64 " acked %u times", s, a.values->n[0][s]);
    tally_t *stored = stored_read(f.root);
    expect_once(a.values, "the acked file", stored, "the store");
    FWT_ASSERT_UINT_EQ(stored->values, a.lines);
    printf("%" PRIu64 " records acked (%" PRIu64 " spooled), each stored once\n", a.lines,
           a.spooled);
    free(a.values);
    free(stored);
    fabric_stop(&f);
}

/*
 * The writer stops, the producer spools (lines "<value> 1") and is killed -9; with the writer
 * back, --drain-only (a new life on the same spool) delivers the spool: every acked value,
 * spooled or not, is stored exactly once and the spool ends empty.
 */
FWT_TEST(producer_killed_while_spooling_then_drain_only)
{
    fabric_t f;
    fabric_start(&f, 0);
    fwt_proc_t p;
    const char *extra[] = {"--rate", "500", "--spool-after", "300", NULL};
    producer_spawn(&f, &p, 0, extra);
    lines_wait_t w = {f.acked, 200, 0};
    fwt_wait_until(acked_lines_reach, &w, 30000, "200 acked lines");
    fwt_cal_stop(&f.w);
    lines_wait_t ws = {f.acked, 300, 1};
    fwt_wait_until(acked_lines_reach, &ws, 30000, "300 spooled lines");
    FWT_ASSERT_OK(fwt_proc_signal(&p, SIGKILL));
    FWT_ASSERT_OK(fwt_proc_wait(&p, 10000, NULL));

    fwt_cal_restart(&f.w);
    fwt_cal_wait_owns(&f.w, BUCKETS + 1, "the writer to own every bucket again");
    fwt_proc_t d;
    const char *drain[] = {"--drain-only", "--timeout", "30000", NULL};
    producer_spawn(&f, &d, 1, drain);
    expect_exit(&d, 0, 60000);
    expect_no_error(&d);
    FWT_ASSERT(fwt_file_contains(d.log_path, "left in the spool 0"));

    acked_t a;
    acked_read(f.acked, &a);
    FWT_ASSERT_UINT_EQ(a.failed, 0);
    FWT_ASSERT_UINT_EQ(a.malformed, 0);
    FWT_ASSERT_INT_OP(a.spooled, >=, 300);
    tally_t *stored = stored_read(f.root);
    expect_once(a.values, "the acked file", stored, "the store");
    fwt_seg_tree_t spool;
    fwt_seg_tree(f.spool, &spool);
    FWT_ASSERT_UINT_EQ(spool.records, 0);
    printf("%" PRIu64 " records acked (%" PRIu64 " spooled), %" PRIu64 " stored, each once\n",
           a.lines, a.spooled, stored->values);
    free(a.values);
    free(stored);
    fabric_stop(&f);
}

/* ---- the consumer ---------------------------------------------------------------------------- */

/* A state file: the committed part (up to its last whole C line) and what follows it. */
typedef struct state_view_s {
    tally_t *committed;
    uint64_t checkpoints, gaps, lines_after;
} state_view_t;

static void state_read(const char *path, state_view_t *v)
{
    memset(v, 0, sizeof(*v));
    v->committed = tally_new();
    char *text = slurp(path), *end = text, *line, *nl;
    /* Only whole lines count: a kill -9 may leave a torn one at the end. */
    for (line = text; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        v->lines_after++;
        if (line[0] == 'C') {
            end = nl + 1;
            v->checkpoints++;
            v->lines_after = 0;
        }
    }
    for (line = text; line < end; line = nl + 1) {
        nl = strchr(line, '\n');
        *nl = '\0';
        char *value = line[0] == 'R' && line[1] == ' ' ? strchr(line + 2, ' ') : NULL;
        if (value != NULL)
            tally_add(v->committed, value + 1, strlen(value + 1));
        else if (line[0] == 'G' && line[1] == ' ')
            v->gaps++;
        else if (line[0] != 'C' || line[1] != ' ')
            FWT_FAIL("%s: a line that is not R, G or C: %s", path, line);
    }
    free(text);
}

/* ptail marks a checkpoint before the first record too: mid-stream is after one with records. */
static int uncommitted_after_a_checkpoint(void *arg)
{
    state_view_t v;
    state_read(arg, &v);
    uint64_t committed = v.committed->values;
    free(v.committed);
    return committed > 0 && v.lines_after > 0;
}

typedef struct committed_wait_s {
    const char *path;
    uint64_t records;
} committed_wait_t;

static int committed_reach(void *arg)
{
    committed_wait_t *w = arg;
    state_view_t v;
    state_read(w->path, &v);
    uint64_t n = v.committed->values;
    free(v.committed);
    return n >= w->records;
}

static int cut_said(void *arg)
{
    return fwt_file_contains(arg, "uncommitted bytes cut");
}

/* Starts chaos_consumer --name c1 on the state file (with --audit if asked). */
static void consumer_spawn(fabric_t *f, fwt_proc_t *p, const char *state, int life, int audit)
{
    char log[FWT_PATH_MAX + 32];
    snprintf(log, sizeof(log), "%s/consumer.%d.log", fwt_tmpdir(), life);
    const char *argv[] = {f->consumer, "--zk", f->spec,   "--category", CAT,
                          "--name",    "c1",   "--state", state,        audit ? "--audit" : NULL,
                          NULL};
    fwt_proc_spawn(p, "chaos_consumer", (char *const *)argv, log);
}

/*
 * A consumer follows a producer's live stream, is killed -9 with records written after its
 * last checkpoint, and starts again on its state file; once the producer has stopped and the
 * committed state holds as many records as are stored, SIGTERM: the committed state holds
 * each stored value exactly once, and no gap.
 */
FWT_TEST(consumer_killed_mid_stream_commits_each_record_once)
{
    fabric_t f;
    fabric_start(&f, 1);
    char state[FWT_PATH_MAX + 16];
    snprintf(state, sizeof(state), "%s/state", fwt_tmpdir());
    fwt_proc_t p, c1, c2;
    const char *extra[] = {"--rate", "1000", NULL};
    producer_spawn(&f, &p, 0, extra);
    consumer_spawn(&f, &c1, state, 1, 0);
    /* Frozen (SIGSTOP) while the file is read, so that it is killed in the state seen. */
    for (;;) {
        fwt_wait_until(uncommitted_after_a_checkpoint, state, 30000,
                       "lines after a checkpoint in the consumer's state");
        FWT_ASSERT_OK(fwt_proc_signal(&c1, SIGSTOP));
        if (uncommitted_after_a_checkpoint(state))
            break;
        FWT_ASSERT_OK(fwt_proc_signal(&c1, SIGCONT));
    }
    FWT_ASSERT_OK(fwt_proc_signal(&c1, SIGKILL));
    FWT_ASSERT_OK(fwt_proc_wait(&c1, 10000, NULL));

    consumer_spawn(&f, &c2, state, 2, 1);
    /* The restart cuts the lines after the last checkpoint (there were some). */
    fwt_wait_until(cut_said, c2.log_path, 30000, "the restarted consumer to cut its state");
    FWT_ASSERT(!fwt_file_contains(c2.log_path, ", 0 uncommitted bytes cut"));
    lines_wait_t w = {f.acked, 2000, 0};
    fwt_wait_until(acked_lines_reach, &w, 30000, "2000 acked lines");
    FWT_ASSERT_OK(fwt_proc_signal(&p, SIGTERM));
    expect_exit(&p, 0, 30000);
    expect_no_error(&p);

    tally_t *stored = stored_read(f.root);
    committed_wait_t cw = {state, stored->values};
    fwt_wait_until(committed_reach, &cw, 30000, "every stored record in the committed state");
    FWT_ASSERT_OK(fwt_proc_signal(&c2, SIGTERM));
    expect_exit(&c2, 0, 30000);
    expect_no_error(&c2);

    state_view_t v;
    state_read(state, &v);
    FWT_ASSERT_UINT_EQ(v.gaps, 0);
    FWT_ASSERT_UINT_EQ(v.committed->foreign, 0);
    expect_once(stored, "the store", v.committed, "the committed state");
    FWT_ASSERT_UINT_EQ(v.committed->values, stored->values);
    acked_t a;
    acked_read(f.acked, &a);
    expect_once(a.values, "the acked file", stored, "the store");
    printf("%" PRIu64 " records stored and committed once, %" PRIu64 " checkpoints\n",
           stored->values, v.checkpoints);
    free(a.values);
    free(v.committed);
    free(stored);
    fabric_stop(&f);
}
