/*
 * Guarantee 5 through libfreeway's consumer and `freeway tail`, with real
 * processes: numbered lines sent through a calligraphus are read back
 * through ptail exactly once, in each bucket's stored order; a consumer
 * resumed from a token (its own or one ptail marked) gets exactly the
 * records after it; a consumer whose ptail is killed (kill -9) and started
 * again, or which moves to a second ptail on the same root, sees no gap and
 * no duplicate.
 */
#include "fwt_cal.h"
#include "fwt_root.h"
#include "fwt_zk.h"
#include "fwtest.h"

#include "checkpoint.h"
#include "freeway.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define N       150000
#define KEYS    16
#define BUCKETS 4

/* ---- the fabric ------------------------------------------------------------------------------ */

typedef struct fabric_s {
    fwt_zk_t zk;
    char spec[128];
    char root[FWT_PATH_MAX];
    fwt_cal_t cal;
    fwt_cal_t pt[2];
    int npt;
} fabric_t;

static const char *ptail_flags[] = {"--session-timeout", "2s", "--poll", "200ms", NULL};

static void fabric_start(fabric_t *f, int nptail)
{
    memset(f, 0, sizeof(*f));
    fwt_zk_start(&f->zk);
    snprintf(f->spec, sizeof(f->spec), "%s/freeway", f->zk.connect);
    snprintf(f->root, sizeof(f->root), "%s/root", fwt_tmpdir_mem());
    /* Small segments: streams cross seals. */
    const char *cat_flags[] = {"--roll-bytes", "1M", NULL};
    fwt_category_create(f->spec, "web", BUCKETS, cat_flags);
    fwt_cal_start(&f->cal, "w1", f->spec, f->root, NULL);
    fwt_cal_wait_owns(&f->cal, BUCKETS, "the writer to own every bucket");
    for (int i = 0; i < nptail; i++) {
        char id[16];
        snprintf(id, sizeof(id), "p%d", i + 1);
        fwt_ptail_start(&f->pt[i], id, f->spec, f->root, ptail_flags);
    }
    f->npt = nptail;
}

static void fabric_stop(fabric_t *f)
{
    for (int i = 0; i < f->npt; i++)
        if (fwt_proc_running(&f->pt[i].proc))
            fwt_cal_stop(&f->pt[i]);
    fwt_cal_stop(&f->cal);
    fwt_zk_stop(&f->zk);
}

/* Small raw blocks: many blocks and checkpoints, and segments that roll. */
static const char *send_flags[] = {"--batch-bytes", "8K", "--codec", "none", NULL};

/* Starts `freeway send` with lines [first, first + count); returns at once. */
static void send_spawn(fabric_t *f, fwt_proc_t *send, uint64_t first, uint64_t count, char *log,
                       size_t cap)
{
    fwt_send_lines_spawn(send, f->spec, "web", first, count, KEYS, send_flags, log, cap);
}

/* Sends lines [first, first + count) and returns once `freeway send` has exited 0. */
static void send_lines(fabric_t *f, uint64_t first, uint64_t count)
{
    fwt_send_lines(f->spec, "web", first, count, KEYS, send_flags);
}

/* ---- a consumer and what it saw -------------------------------------------------------------- */

typedef struct sink_s {
    fw_consumer_t *c;
    uint32_t *seen;   /* deliveries per line */
    uint64_t *order;  /* line numbers in delivery order */
    uint64_t records; /* deliveries */
    uint64_t unique;  /* lines seen at least once */
    uint64_t dups;
    uint64_t disorder;  /* a line of a key before an earlier line of it */
    uint64_t misplaced; /* a record at or before the previous one of its bucket */
    int64_t last[KEYS];
    fw_consumer_position_t pos[BUCKETS];
    int has_pos[BUCKETS];
    uint64_t stop_at; /* fw_consumer_break at this many deliveries (0: never) */
    /* the last token ptail marked, and how many deliveries came before it */
    void *ckpt;
    size_t ckpt_len;
    uint64_t ckpt_at;
    uint64_t gaps;
} sink_t;

static void sink_init(sink_t *s)
{
    memset(s, 0, sizeof(*s));
    s->seen = calloc(N, sizeof(*s->seen));
    s->order = calloc(4 * N, sizeof(*s->order));
    FWT_ASSERT(s->seen != NULL && s->order != NULL);
    for (int k = 0; k < KEYS; k++)
        s->last[k] = -1;
}

static void sink_free(sink_t *s)
{
    free(s->seen);
    free(s->order);
    free(s->ckpt);
}

static void on_record(const fw_consumer_record_t *r, void *arg)
{
    sink_t *s = arg;
    char text[16];
    if (!r->has_key || r->key_len < 2 || r->value_len < 9)
        FWT_FAIL("a record that is not a numbered line");
    memcpy(text, r->value, 9);
    text[9] = '\0';
    uint64_t n = strtoull(text, NULL, 10);
    FWT_ASSERT(n < N);
    memcpy(text, (const char *)r->key + 1, r->key_len - 1);
    text[r->key_len - 1] = '\0';
    int key = atoi(text);
    FWT_ASSERT(key >= 0 && key < KEYS);
    FWT_ASSERT(r->bucket < BUCKETS);
    if (s->seen[n]++ == 0)
        s->unique++;
    else
        s->dups++;
    if ((int64_t)n <= s->last[key])
        s->disorder++;
    s->last[key] = (int64_t)n;
    fw_consumer_position_t *p = &s->pos[r->bucket];
    if (s->has_pos[r->bucket] &&
        (r->segment_id < p->segment_id ||
         (r->segment_id == p->segment_id &&
          (r->offset < p->offset ||
           (r->offset == p->offset && r->record_index <= p->record_index)))))
        s->misplaced++;
    *p = (fw_consumer_position_t){r->bucket, r->segment_id, r->offset, r->record_index};
    s->has_pos[r->bucket] = 1;
    FWT_ASSERT(s->records < 4 * N);
    s->order[s->records++] = n;
    if (s->stop_at != 0 && s->records == s->stop_at)
        fw_consumer_break(s->c);
}

static void on_checkpoint(const void *token, size_t len, void *arg)
{
    sink_t *s = arg;
    free(s->ckpt);
    s->ckpt = malloc(len);
    FWT_ASSERT(s->ckpt != NULL);
    memcpy(s->ckpt, token, len);
    s->ckpt_len = len;
    s->ckpt_at = s->records;
}

static void on_gap(const fw_consumer_gap_t *g, void *arg)
{
    sink_t *s = arg;
    s->gaps++;
    fprintf(stderr, "gap in bucket %u: %s\n", g->bucket, g->reason);
}

static void on_log(fw_consumer_log_level_t level, const char *message, void *arg)
{
    (void)arg;
    fprintf(stderr, "consumer [%d]: %s\n", (int)level, message);
}

/* A consumer of "web" (zk, or a ptail address when addr is set) into s. */
static fw_consumer_t *consumer_open(sink_t *s, const fabric_t *f, const char *addr,
                                    fw_start_t start, const void *token, size_t len, size_t credit)
{
    fw_consumer_options_t o;
    fw_consumer_options_init(&o);
    o.zk = f->spec;
    o.ptail = addr;
    o.category = "web";
    o.start = start;
    o.start_token = token;
    o.start_token_len = len;
    o.checkpoint_every_records = 500;
    o.checkpoint_every_ms = 100;
    if (credit != 0)
        o.credit_bytes = credit;
    o.name = "test";
    o.on_record = on_record;
    o.on_checkpoint = on_checkpoint;
    o.on_gap = on_gap;
    o.arg = s;
    o.log_cb = on_log;
    o.log_level = FW_CONSUMER_LOG_INFO;
    FWT_ASSERT_OK(fw_consumer_create(&s->c, &o));
    return s->c;
}

/* Polls until s has `deliveries` deliveries (or stops at its stop_at); fails after 120 s. */
static void consume_until(sink_t *s, uint64_t deliveries)
{
    int64_t deadline = fwt_now_ms() + 120000;
    while (s->records < deliveries) {
        int rc = fw_consumer_poll(s->c, 200);
        if (rc < 0)
            FWT_FAIL("fw_consumer_poll: %d (%s): %s", rc, fwt_strerror_hook(rc),
                     fw_consumer_error(s->c));
        if (s->stop_at != 0 && s->records >= s->stop_at)
            break;
        if (fwt_now_ms() > deadline)
            FWT_FAIL("%llu of %llu records after 120 s (last problem: %s)",
                     (unsigned long long)s->records, (unsigned long long)deliveries,
                     fw_consumer_error(s->c));
    }
}

static void assert_clean(const sink_t *s, const char *who)
{
    fw_consumer_stats_t st;
    fw_consumer_stats(s->c, &st);
    if (s->dups || s->disorder || s->misplaced || s->gaps || st.jumps || st.bad_blocks)
        FWT_FAIL("%s: %llu duplicates, %llu out of key order, %llu out of bucket order, %llu "
                 "gaps, %llu jumps, %llu bad blocks",
                 who, (unsigned long long)s->dups, (unsigned long long)s->disorder,
                 (unsigned long long)s->misplaced, (unsigned long long)s->gaps,
                 (unsigned long long)st.jumps, (unsigned long long)st.bad_blocks);
}

/* ---- stored order ---------------------------------------------------------------------------- */

typedef struct stored_s {
    uint64_t *lines[BUCKETS];
    uint64_t n[BUCKETS];
} stored_t;

static void on_stored(void *arg, uint32_t bucket, uint64_t segment_id, const fw_block_header_t *h,
                      const fw_record_t *rec)
{
    (void)segment_id;
    (void)h;
    stored_t *st = arg;
    FWT_ASSERT(bucket < BUCKETS && rec->value_len >= 9);
    char text[16];
    memcpy(text, rec->value, 9);
    text[9] = '\0';
    st->lines[bucket][st->n[bucket]++] = strtoull(text, NULL, 10);
}

/* ---- tests ----------------------------------------------------------------------------------- */

FWT_TEST(every_record_once_in_stored_order)
{
    fabric_t f;
    fabric_start(&f, 1);
    sink_t s;
    sink_init(&s);
    /* The consumer is there first: it follows the segments as they grow. */
    consumer_open(&s, &f, NULL, FW_START_EARLIEST, NULL, 0, 0);
    FWT_ASSERT_INT_EQ(fw_consumer_poll(s.c, 0), 0);
    send_lines(&f, 0, N);
    consume_until(&s, N);
    assert_clean(&s, "the consumer");
    FWT_ASSERT_UINT_EQ(s.unique, N);

    /* Per bucket, the delivery order is the order on disk. */
    stored_t st;
    memset(&st, 0, sizeof(st));
    for (int b = 0; b < BUCKETS; b++)
        st.lines[b] = calloc(N, sizeof(uint64_t));
    FWT_ASSERT_UINT_EQ(fwt_root_records(f.root, "web", on_stored, &st), N);
    uint64_t k[BUCKETS] = {0};
    for (uint64_t i = 0; i < s.records; i++) {
        uint64_t line = s.order[i];
        int found = 0;
        for (int b = 0; b < BUCKETS && !found; b++) {
            if (k[b] < st.n[b] && st.lines[b][k[b]] == line) {
                k[b]++;
                found = 1;
            }
        }
        if (!found)
            FWT_FAIL("delivery %llu (line %llu) is not the next stored record of any bucket",
                     (unsigned long long)i, (unsigned long long)line);
    }
    fw_consumer_stats_t cs;
    fw_consumer_stats(s.c, &cs);
    FWT_ASSERT_UINT_EQ(cs.records, N);
    FWT_ASSERT(cs.checkpoints > 0);
    printf("%llu records in %llu blocks, %llu checkpoints\n", (unsigned long long)cs.records,
           (unsigned long long)cs.blocks, (unsigned long long)cs.checkpoints);
    FWT_ASSERT_OK(fw_consumer_close(s.c));
    for (int b = 0; b < BUCKETS; b++)
        free(st.lines[b]);
    sink_free(&s);
    fabric_stop(&f);
}

FWT_TEST(resume_from_a_token_gets_exactly_the_rest)
{
    fabric_t f;
    fabric_start(&f, 1);
    send_lines(&f, 0, N);

    /* A stops in the middle of a block and takes its own token. */
    sink_t a;
    sink_init(&a);
    a.stop_at = N / 3 + 7;
    consumer_open(&a, &f, f.pt[0].address, FW_START_EARLIEST, NULL, 0, 0);
    consume_until(&a, N);
    FWT_ASSERT_UINT_EQ(a.records, N / 3 + 7);
    void *token;
    size_t len;
    FWT_ASSERT_OK(fw_consumer_checkpoint(a.c, &token, &len));
    FWT_ASSERT(a.ckpt != NULL); /* ptail marked some on the way */
    assert_clean(&a, "A");
    FWT_ASSERT_OK(fw_consumer_close(a.c));

    /* B from A's token: exactly the lines A did not get. */
    sink_t b;
    sink_init(&b);
    consumer_open(&b, &f, NULL, FW_START_CHECKPOINT, token, len, 0);
    consume_until(&b, N - a.records);
    assert_clean(&b, "B");
    FWT_ASSERT_OK(fw_consumer_close(b.c));
    for (uint64_t n = 0; n < N; n++)
        if (a.seen[n] + b.seen[n] != 1)
            FWT_FAIL("line %llu: %u times in A, %u times in B", (unsigned long long)n, a.seen[n],
                     b.seen[n]);

    /* C from the last token ptail marked for A: exactly what A got after it, and the rest. */
    sink_t c;
    sink_init(&c);
    c.stop_at = N - a.ckpt_at;
    consumer_open(&c, &f, NULL, FW_START_CHECKPOINT, a.ckpt, a.ckpt_len, 0);
    consume_until(&c, N - a.ckpt_at);
    assert_clean(&c, "C");
    uint8_t *want = calloc(N, 1);
    for (uint64_t n = 0; n < N; n++)
        want[n] = a.seen[n] == 0;
    for (uint64_t i = a.ckpt_at; i < a.records; i++)
        want[a.order[i]] = 1;
    for (uint64_t n = 0; n < N; n++)
        if (c.seen[n] != want[n])
            FWT_FAIL("line %llu: %u times from A's checkpoint after %llu records, want %u",
                     (unsigned long long)n, c.seen[n], (unsigned long long)a.ckpt_at, want[n]);
    /* And nothing more comes: the stream is idle once C has it all. */
    FWT_ASSERT_INT_EQ(fw_consumer_poll(c.c, 300), 0);
    FWT_ASSERT_UINT_EQ(c.records, N - a.ckpt_at);
    FWT_ASSERT_OK(fw_consumer_close(c.c));
    free(want);
    free(token);
    sink_free(&a);
    sink_free(&b);
    sink_free(&c);
    fabric_stop(&f);
}

FWT_TEST(kill_9_of_ptail_mid_stream_loses_and_repeats_nothing)
{
    fabric_t f;
    fabric_start(&f, 1);
    send_lines(&f, 0, N / 2);
    sink_t s;
    sink_init(&s);
    /* A small window: ptail is mid-stream, not done, when it dies. */
    consumer_open(&s, &f, NULL, FW_START_EARLIEST, NULL, 0, 64 << 10);
    s.stop_at = N / 4;
    consume_until(&s, N);
    fwt_cal_kill(&f.pt[0]);
    /* The consumer notices and keeps trying while ptail is down. */
    s.stop_at = 0;
    for (int i = 0; i < 5; i++)
        FWT_ASSERT_INT_OP(fw_consumer_poll(s.c, 100), >=, 0);
    fwt_cal_restart(&f.pt[0]);
    send_lines(&f, N / 2, N / 2);
    consume_until(&s, N);
    assert_clean(&s, "the consumer");
    FWT_ASSERT_UINT_EQ(s.unique, N);
    fw_consumer_stats_t cs;
    fw_consumer_stats(s.c, &cs);
    FWT_ASSERT_INT_OP(cs.subscriptions, >=, 2);
    FWT_ASSERT_INT_OP(cs.disconnects, >=, 1);
    printf("%llu subscriptions, %llu disconnects, %llu records skipped on resume\n",
           (unsigned long long)cs.subscriptions, (unsigned long long)cs.disconnects,
           (unsigned long long)cs.records_skipped);
    FWT_ASSERT_OK(fw_consumer_close(s.c));
    sink_free(&s);
    fabric_stop(&f);
}

/*
 * A consumer moves between a ptail on the writer's root and a ptail on a
 * copy of it (byte-identical segments, as the copier makes them) and back:
 * the positions it resumes from mean the same on both, so it sees every
 * record once. The copy is taken halfway (cp of the root, the copier's job
 * until it exists), so the copy also lags, as a real one does.
 */
FWT_TEST(moving_between_a_root_and_its_copy_loses_and_repeats_nothing)
{
    fabric_t f;
    fabric_start(&f, 0);
    /* Fixed ports: the consumer's list must still name them after restarts. */
    int ports[2];
    fwt_free_ports(ports, 2);
    char listen[2][64], addrs[160];
    for (int i = 0; i < 2; i++)
        snprintf(listen[i], sizeof(listen[i]), "127.0.0.1:%d", ports[i]);
    snprintf(addrs, sizeof(addrs), "%s %s", listen[0], listen[1]);
    const char *root_flags[] = {"--listen", listen[0], "--poll", "200ms", NULL};
    fwt_ptail_start(&f.pt[0], "p1", f.spec, f.root, root_flags);
    f.npt = 1;
    send_lines(&f, 0, N / 2);
    char copy[FWT_PATH_MAX + 8];
    snprintf(copy, sizeof(copy), "%s/copy", fwt_tmpdir_mem());
    char *cp[] = {"/bin/cp", "-a", f.root, copy, NULL};
    FWT_ASSERT_INT_EQ(fwt_run(cp, 30000, NULL), 0);
    send_lines(&f, N / 2, N / 2); /* the copy does not have these */

    /* Both ptails in its list, the copy's not started yet: it begins on the root. */
    sink_t s;
    sink_init(&s);
    consumer_open(&s, &f, addrs, FW_START_EARLIEST, NULL, 0, 64 << 10);
    s.stop_at = N / 4;
    consume_until(&s, N);
    FWT_ASSERT(fwt_cal_metric(&f.pt[0], "freeway_ptail_subscribers") == 1);

    /* The root's ptail dies: the consumer goes on from the copy, up to its end. */
    const char *copy_flags[] = {"--listen", listen[1], "--poll", "200ms", NULL};
    fwt_ptail_start(&f.pt[1], "p2", f.spec, copy, copy_flags);
    f.npt = 2;
    fwt_cal_kill(&f.pt[0]);
    s.stop_at = N / 2;
    consume_until(&s, N);
    FWT_ASSERT_UINT_EQ(s.records, N / 2);
    FWT_ASSERT(fwt_cal_metric(&f.pt[1], "freeway_ptail_subscribers") == 1);

    /* And back: the copy's ptail dies, the root's is up again, the rest comes from there. */
    fwt_cal_restart(&f.pt[0]);
    fwt_cal_kill(&f.pt[1]);
    s.stop_at = 0;
    consume_until(&s, N);
    assert_clean(&s, "the consumer");
    FWT_ASSERT_UINT_EQ(s.unique, N);
    fw_consumer_stats_t cs;
    fw_consumer_stats(s.c, &cs);
    FWT_ASSERT_INT_OP(cs.subscriptions, >=, 3);
    printf("%llu subscriptions over a root and its copy, %llu records skipped on resume\n",
           (unsigned long long)cs.subscriptions, (unsigned long long)cs.records_skipped);
    FWT_ASSERT_OK(fw_consumer_close(s.c));
    sink_free(&s);
    fabric_stop(&f);
}

/* The stored lines of one bucket, for a subset check. */
typedef struct bucket_lines_s {
    uint8_t *in_bucket; /* 1 if the line is stored in a wanted bucket */
    int want[BUCKETS];
} bucket_lines_t;

static void on_stored_subset(void *arg, uint32_t bucket, uint64_t segment_id,
                             const fw_block_header_t *h, const fw_record_t *rec)
{
    (void)segment_id;
    (void)h;
    bucket_lines_t *bl = arg;
    char text[16];
    memcpy(text, rec->value, 9);
    text[9] = '\0';
    if (bl->want[bucket])
        bl->in_bucket[strtoull(text, NULL, 10)] = 1;
}

/* Polls until the consumer has subscribed once. */
static void wait_subscribed(sink_t *s)
{
    int64_t deadline = fwt_now_ms() + 30000;
    fw_consumer_stats_t st;
    do {
        FWT_ASSERT_INT_OP(fw_consumer_poll(s->c, 50), >=, 0);
        fw_consumer_stats(s->c, &st);
        if (fwt_now_ms() > deadline)
            FWT_FAIL("no subscription after 30 s: %s", fw_consumer_error(s->c));
    } while (st.subscriptions == 0);
}

FWT_TEST(buckets_latest_and_time_starts)
{
    fabric_t f;
    fabric_start(&f, 1);
    send_lines(&f, 0, N / 2);
    /* Every record of the first half is older than this (the producer stamps at send). */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t t_half = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + 1;

    /* Buckets 1 and 3 only: exactly the lines stored there. */
    sink_t sub;
    sink_init(&sub);
    fw_consumer_options_t o;
    fw_consumer_options_init(&o);
    o.zk = f.spec;
    o.category = "web";
    o.start = FW_START_EARLIEST;
    uint32_t buckets[] = {3, 1};
    o.buckets = buckets;
    o.nbuckets = 2;
    o.on_record = on_record;
    o.arg = &sub;
    o.log_cb = on_log;
    FWT_ASSERT_OK(fw_consumer_create(&sub.c, &o));
    bucket_lines_t bl = {.in_bucket = calloc(N, 1), .want = {0, 1, 0, 1}};
    fwt_root_records(f.root, "web", on_stored_subset, &bl);
    uint64_t want = 0;
    for (uint64_t n = 0; n < N; n++)
        want += bl.in_bucket[n];
    FWT_ASSERT(want > 0 && want < N / 2);
    consume_until(&sub, want);
    assert_clean(&sub, "buckets 1 and 3");
    for (uint64_t n = 0; n < N; n++)
        if (sub.seen[n] != bl.in_bucket[n])
            FWT_FAIL("line %llu: delivered %u times, stored in bucket 1 or 3: %d",
                     (unsigned long long)n, sub.seen[n], bl.in_bucket[n]);
    FWT_ASSERT_OK(fw_consumer_close(sub.c));
    free(bl.in_bucket);

    /* LATEST, once subscribed, and a time after the first half: exactly the second half. */
    sink_t latest, timed;
    sink_init(&latest);
    sink_init(&timed);
    consumer_open(&latest, &f, NULL, FW_START_LATEST, NULL, 0, 0);
    wait_subscribed(&latest);
    send_lines(&f, N / 2, N / 2);
    consume_until(&latest, N / 2);
    assert_clean(&latest, "latest");
    fw_consumer_options_init(&o);
    o.zk = f.spec;
    o.category = "web";
    o.start = FW_START_TIMESTAMP;
    o.start_ts_ms = t_half;
    o.on_record = on_record;
    o.arg = &timed;
    o.log_cb = on_log;
    FWT_ASSERT_OK(fw_consumer_create(&timed.c, &o));
    consume_until(&timed, N / 2);
    assert_clean(&timed, "timed");
    for (uint64_t n = 0; n < N; n++) {
        FWT_ASSERT_UINT_EQ(latest.seen[n], n >= N / 2);
        FWT_ASSERT_UINT_EQ(timed.seen[n], n >= N / 2);
    }
    FWT_ASSERT_OK(fw_consumer_close(latest.c));
    FWT_ASSERT_OK(fw_consumer_close(timed.c));
    sink_free(&sub);
    sink_free(&latest);
    sink_free(&timed);
    fabric_stop(&f);
}

/* ---- freeway tail ---------------------------------------------------------------------------- */

typedef struct outcheck_s {
    uint32_t *seen;
    uint64_t lines, dups, foreign;
    char token[4096]; /* from "freeway tail: checkpoint TOKEN" */
} outcheck_t;

/* Counts the numbered lines in a file of raw output (value = "<9 digits> ..."); 0 if none. */
static void count_output(const char *path, outcheck_t *oc)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return; /* not created yet */
    char line[256];
    while (fgets(line, sizeof(line), fp) != NULL) {
        char *end;
        unsigned long long n = strtoull(line, &end, 10);
        if (end - line != 9 || n >= N) {
            oc->foreign++;
            continue;
        }
        oc->lines++;
        if (oc->seen[n]++ > 0)
            oc->dups++;
    }
    fclose(fp);
}

static void stderr_token(const char *path, char *out, size_t cap)
{
    FILE *fp = fopen(path, "r");
    FWT_ASSERT(fp != NULL);
    char line[8192];
    out[0] = '\0';
    while (fgets(line, sizeof(line), fp) != NULL) {
        const char *m = "freeway tail: checkpoint ";
        if (strncmp(line, m, strlen(m)) == 0) {
            const char *token = line + strlen(m);
            size_t len = strcspn(token, "\n");
            if (len >= cap)
                FWT_FAIL("a checkpoint of %zu characters in %s", len, path);
            memcpy(out, token, len);
            out[len] = '\0';
        }
    }
    fclose(fp);
}

/* Runs `freeway tail ARGS` with stdout to out and stderr to err; returns its exit status. */
static int run_tail(const char *const *args, const char *out, const char *err)
{
    char cmd[4096];
    int n = snprintf(cmd, sizeof(cmd), "exec '%s' tail", fwt_bin("freeway"));
    for (int i = 0; args[i] != NULL; i++)
        n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, " '%s'", args[i]);
    snprintf(cmd + n, sizeof(cmd) - (size_t)n, " >'%s' 2>'%s'", out, err);
    char *const argv[] = {"/bin/sh", "-c", cmd, NULL};
    fwt_proc_t p;
    char log[FWT_PATH_MAX];
    snprintf(log, sizeof(log), "%s/tail-sh.log", fwt_tmpdir());
    fwt_proc_spawn(&p, "tail", argv, log);
    int status = 0;
    if (fwt_proc_wait(&p, 120000, &status) < 0)
        FWT_FAIL("freeway tail did not exit within 120 s");
    if (fwt_file_contains(err, "Sanitizer") || fwt_file_contains(err, "runtime error:"))
        FWT_FAIL("a sanitizer report in %s", err);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

FWT_TEST(tail_resumes_from_its_checkpoint_file)
{
    fabric_t f;
    fabric_start(&f, 1);
    send_lines(&f, 0, N);
    char file[FWT_PATH_MAX], out1[FWT_PATH_MAX], out2[FWT_PATH_MAX], out3[FWT_PATH_MAX],
        err[FWT_PATH_MAX];
    snprintf(file, sizeof(file), "%s/web.ckpt", fwt_tmpdir());
    snprintf(out1, sizeof(out1), "%s/tail1.out", fwt_tmpdir());
    snprintf(out2, sizeof(out2), "%s/tail2.out", fwt_tmpdir());
    snprintf(out3, sizeof(out3), "%s/tail3.out", fwt_tmpdir());
    snprintf(err, sizeof(err), "%s/tail.err", fwt_tmpdir());
    char count1[16];
    snprintf(count1, sizeof(count1), "%d", N / 3 + 11);
    const char *a1[] = {
        "-c", "web", "--zk", f.spec, "--from", "earliest", "--count", count1, "--checkpoint-file",
        file, NULL};
    FWT_ASSERT_INT_EQ(run_tail(a1, out1, err), 0);
    outcheck_t oc;
    memset(&oc, 0, sizeof(oc));
    oc.seen = calloc(N, sizeof(uint32_t));
    count_output(out1, &oc);
    FWT_ASSERT_UINT_EQ(oc.lines, N / 3 + 11);
    /* The file holds the token printed at exit: exactly what was printed. */
    stderr_token(err, oc.token, sizeof(oc.token));
    FWT_ASSERT(oc.token[0] != '\0');
    char saved[4096] = "";
    FILE *fp = fopen(file, "r");
    FWT_ASSERT(fp != NULL);
    FWT_ASSERT(fgets(saved, sizeof(saved), fp) != NULL);
    fclose(fp);
    saved[strcspn(saved, "\n")] = '\0';
    FWT_ASSERT_STR_EQ(saved, oc.token);

    /* The rest, from the file (--from is ignored when the file exists); raw and by ptail address.
     */
    char count2[16];
    snprintf(count2, sizeof(count2), "%d", N - (N / 3 + 11));
    const char *a2[] = {"-c",     "web",     "--ptail", f.pt[0].address,     "--from",
                        "latest", "--count", count2,    "--checkpoint-file", file,
                        NULL};
    FWT_ASSERT_INT_EQ(run_tail(a2, out2, err), 0);
    count_output(out2, &oc);
    FWT_ASSERT_UINT_EQ(oc.lines, N);
    FWT_ASSERT_UINT_EQ(oc.dups, 0);
    FWT_ASSERT_UINT_EQ(oc.foreign, 0);

    /* Nothing is left: a run with --timeout ends idle, prints nothing and exits 0. */
    const char *a3[] = {"-c", "web", "--zk", f.spec, "--timeout", "1s", "--checkpoint-file",
                        file, NULL};
    FWT_ASSERT_INT_EQ(run_tail(a3, out3, err), 0);
    count_output(out3, &oc);
    FWT_ASSERT_UINT_EQ(oc.lines, N);
    FWT_ASSERT(fwt_file_contains(err, "freeway tail: 0 records"));

    /*
     * A stdout that cannot take the records (a full disk) is an error, and
     * the checkpoint file never covers records that did not reach it.
     */
    char full_file[FWT_PATH_MAX];
    snprintf(full_file, sizeof(full_file), "%s/full.ckpt", fwt_tmpdir());
    const char *afull[] = {"-c",      "web",    "--zk",
                           f.spec,    "--from", "earliest",
                           "--count", "500",    "--checkpoint-file",
                           full_file, NULL};
    FWT_ASSERT_INT_EQ(run_tail(afull, "/dev/full", err), 1);
    FWT_ASSERT(fwt_file_contains(err, "writing records"));
    /* ptail's first checkpoint (right after Subscribed) may be saved: it covers no record. */
    if (access(full_file, F_OK) == 0) {
        char text[1024] = "";
        FILE *tf = fopen(full_file, "r");
        FWT_ASSERT(tf != NULL);
        FWT_ASSERT(fgets(text, sizeof(text), tf) != NULL);
        fclose(tf);
        text[strcspn(text, "\n")] = '\0';
        fw_checkpoint_t left;
        FWT_ASSERT_OK(fw_checkpoint_from_text(text, strlen(text), &left));
        for (uint32_t i = 0; i < left.count; i++)
            FWT_ASSERT_UINT_EQ(left.positions[i].segment_id, 0);
        fw_checkpoint_free(&left);
    }

    /* json: one object per line, keys and values as strings. */
    const char *a4[] = {"-c",      "web", "--zk",     f.spec, "--from", "earliest",
                        "--count", "3",   "--format", "json", NULL};
    FWT_ASSERT_INT_EQ(run_tail(a4, out3, err), 0);
    FWT_ASSERT(fwt_file_contains(out3, "{\"bucket\":"));
    FWT_ASSERT(fwt_file_contains(out3, ",\"key\":\"k0"));
    FWT_ASSERT(fwt_file_contains(out3, "freeway-log-line\"}"));

    /* An unknown category is fatal (exit 1); a bad flag is a usage error (exit 2). */
    const char *a5[] = {"-c", "nosuch", "--zk", f.spec, "--from", "earliest", NULL};
    FWT_ASSERT_INT_EQ(run_tail(a5, out3, err), 1);
    FWT_ASSERT(fwt_file_contains(err, "UNKNOWN_CATEGORY"));
    const char *a6[] = {"-c", "web", "--from", "yesterday", NULL};
    FWT_ASSERT_INT_EQ(run_tail(a6, out3, err), 2);
    free(oc.seen);
    fabric_stop(&f);
}

static int count_lines_with(const char *path, const char *needle)
{
    FILE *fp = fopen(path, "r");
    FWT_ASSERT(fp != NULL);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof(line), fp) != NULL)
        n += strstr(line, needle) != NULL;
    fclose(fp);
    return n;
}

typedef struct tailwait_s {
    const char *out;
    uint64_t want;
} tailwait_t;

static int tail_has(void *arg)
{
    tailwait_t *w = arg;
    outcheck_t oc;
    memset(&oc, 0, sizeof(oc));
    oc.seen = calloc(N, sizeof(uint32_t));
    count_output(w->out, &oc);
    free(oc.seen);
    return oc.lines >= w->want;
}

static int one_subscriber(void *arg)
{
    return fwt_cal_metric(arg, "freeway_ptail_subscribers") == 1;
}

/*
 * `freeway tail` runs as a process while the ptail it reads from is killed;
 * it moves to the other ptail on the same root and prints every line once.
 */
FWT_TEST(tail_moves_to_a_second_ptail_when_its_ptail_dies)
{
    fabric_t f;
    fabric_start(&f, 2);
    send_lines(&f, 0, N / 2);
    char out[FWT_PATH_MAX], err[FWT_PATH_MAX], file[FWT_PATH_MAX];
    snprintf(out, sizeof(out), "%s/tail.out", fwt_tmpdir());
    snprintf(err, sizeof(err), "%s/tail.err", fwt_tmpdir());
    snprintf(file, sizeof(file), "%s/web.ckpt", fwt_tmpdir());
    char cmd[4096];
    snprintf(cmd, sizeof(cmd),
             "exec '%s' tail -c web --zk '%s' --from earliest --credit 64K --verbose "
             "--checkpoint-file '%s' >'%s' 2>'%s'",
             fwt_bin("freeway"), f.spec, file, out, err);
    char *const argv[] = {"/bin/sh", "-c", cmd, NULL};
    fwt_proc_t tail;
    char log[FWT_PATH_MAX];
    snprintf(log, sizeof(log), "%s/tail-sh.log", fwt_tmpdir());
    fwt_proc_spawn(&tail, "tail", argv, log);
    tailwait_t w = {out, N / 4};
    fwt_wait_until(tail_has, &w, 60000, "tail to print a quarter of the lines");

    /* The second half streams while the ptail that serves tail is killed. */
    fwt_proc_t send;
    char send_log[FWT_PATH_MAX];
    send_spawn(&f, &send, N / 2, N / 2, send_log, sizeof(send_log));
    w.want = N / 2 + N / 20;
    fwt_wait_until(tail_has, &w, 60000, "tail to print some of the second half");
    int victim = fwt_cal_metric(&f.pt[0], "freeway_ptail_subscribers") == 1 ? 0 : 1;
    FWT_ASSERT(fwt_cal_metric(&f.pt[victim], "freeway_ptail_subscribers") == 1);
    fwt_cal_kill(&f.pt[victim]);
    fwt_send_wait_ok(&send, send_log);
    w.want = N;
    fwt_wait_until(tail_has, &w, 60000, "tail to print every line");
    /* The last lines may have come before the move: the new subscription can still be on its way.
     */
    fwt_wait_until(one_subscriber, &f.pt[1 - victim], 30000,
                   "tail to subscribe at the other ptail");

    fwt_proc_signal(&tail, SIGTERM);
    int status = 0;
    FWT_ASSERT_OK(fwt_proc_wait(&tail, 20000, &status));
    char tailtext[4096];
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        FWT_FAIL("freeway tail ended with status 0x%x:\n%s", status,
                 fwt_file_tail(err, 20, tailtext, sizeof(tailtext)));
    FWT_ASSERT(!fwt_file_contains(err, "Sanitizer") && !fwt_file_contains(err, "runtime error:"));
    outcheck_t oc;
    memset(&oc, 0, sizeof(oc));
    oc.seen = calloc(N, sizeof(uint32_t));
    count_output(out, &oc);
    FWT_ASSERT_UINT_EQ(oc.lines, N);
    FWT_ASSERT_UINT_EQ(oc.dups, 0);
    FWT_ASSERT_UINT_EQ(oc.foreign, 0);
    FWT_ASSERT(!fwt_file_contains(err, "skipped records"));
    FWT_ASSERT_INT_OP(count_lines_with(err, "subscribed to web at ptail"), >=, 2);
    stderr_token(err, oc.token, sizeof(oc.token));
    FWT_ASSERT(oc.token[0] != '\0');
    free(oc.seen);
    f.npt = 2;
    fabric_stop(&f);
}

/*
 * A record stored while the subscription waits for its next time-based
 * checkpoint goes out at once, not when that checkpoint is due: ptail armed
 * one timer for both and new data waited up to checkpoint_every_ms (found by
 * bench/bench's latency run: p50 250 ms at 1,000 records/s, bounded only by
 * ptail's 1 s rescan). With the checkpoint and the rescan a minute away, the
 * second record must come long before them.
 */
FWT_TEST(new_records_do_not_wait_for_the_checkpoint_timer)
{
    fabric_t f;
    fabric_start(&f, 0);
    /* ptail's own rescan (--poll) would also find it: a minute out too. */
    const char *slow_poll[] = {"--poll", "60s", NULL};
    fwt_ptail_start(&f.pt[0], "p1", f.spec, f.root, slow_poll);
    f.npt = 1;
    sink_t s;
    sink_init(&s);
    fw_consumer_options_t o;
    fw_consumer_options_init(&o);
    o.zk = f.spec;
    o.category = "web";
    o.start = FW_START_EARLIEST;
    o.checkpoint_every_records = 0;
    o.checkpoint_every_ms = 60000;
    o.on_record = on_record;
    o.arg = &s;
    o.log_cb = on_log;
    FWT_ASSERT_OK(fw_consumer_create(&s.c, &o));
    send_lines(&f, 0, 1);
    consume_until(&s, 1);
    /* ptail has now sent a record since its last checkpoint: its timer is a minute out. */
    send_lines(&f, 1, 1);
    int64_t deadline = fwt_now_ms() + 20000;
    while (s.records < 2 && fwt_now_ms() < deadline)
        FWT_ASSERT(fw_consumer_poll(s.c, 200) >= 0);
    if (s.records < 2)
        FWT_FAIL("the second record did not come within 20 s (checkpoint due in 60 s)");
    assert_clean(&s, "the consumer");
    FWT_ASSERT_OK(fw_consumer_close(s.c));
    sink_free(&s);
    fabric_stop(&f);
}
