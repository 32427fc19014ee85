/*
 * A writer's bucket on real files: group commit, acks at each level,
 * retries stored once, recovery of a torn segment left by a crash, rolls,
 * a full disk, segment ids handed in by the owner, the lease, pause and
 * resume, abandon, and the lock an open segment holds against recovery.
 * Driven on a real loop with the real disk thread.
 */
#include "fwtest.h"
#include "fwt_proc.h"

#include "bucket.h"
#include "error.h"
#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct blk_s {
    cal_append_t a;
    uint8_t *bytes;
    int status;
    int done;
} blk_t;

static uv_loop_t loop;
static uv_timer_t tick;
static cal_disk_t disk;
static int opened, open_status, closed;
static int ticks;

static void on_tick(uv_timer_t *t)
{
    (void)t;
    ticks++;
}

static void setup(void)
{
    FWT_ASSERT_OK(uv_loop_init(&loop));
    FWT_ASSERT_OK(cal_disk_init(&disk, &loop));
    /* A heartbeat so that UV_RUN_ONCE returns even when nothing happens. */
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, on_tick, 5, 5);
}

static void on_disk_closed(cal_disk_t *d)
{
    (void)d;
}

static void teardown(void)
{
    cal_disk_close(&disk, on_disk_closed);
    uv_close((uv_handle_t *)&tick, NULL);
    FWT_ASSERT_OK(uv_run(&loop, UV_RUN_DEFAULT));
    FWT_ASSERT_OK(uv_loop_close(&loop));
}

static void run_until(int *flag, int want)
{
    int64_t deadline = fwt_now_ms() + 20000;
    while (*flag < want) {
        if (fwt_now_ms() > deadline)
            FWT_FAIL("timed out: %d of %d", *flag, want);
        uv_run(&loop, UV_RUN_ONCE);
    }
}

static int acked;

static void on_ack(cal_append_t *a, int status)
{
    blk_t *b = a->arg;
    b->status = status;
    b->done = 1;
    acked++;
}

/* A verified block of `records` records from producer, sequence seq. */
static blk_t *make_block(uint64_t producer, uint64_t seq, int records, size_t value_len,
                         cal_ack_t ack)
{
    fw_block_builder_t bb;
    fw_block_builder_init(&bb, 0);
    uint8_t *value = calloc(1, value_len + 1);
    fwt_rand_bytes(value, value_len);
    for (int i = 0; i < records; i++)
        FWT_ASSERT_OK(fw_block_builder_add(&bb, 1000 + i, NULL, 0, 0, value, value_len));
    free(value);
    const uint8_t *data;
    size_t len;
    FWT_ASSERT_OK(fw_block_builder_finish(&bb, FW_CODEC_NONE, producer, seq, &data, &len));
    blk_t *b = calloc(1, sizeof(*b));
    b->bytes = malloc(len);
    memcpy(b->bytes, data, len);
    fw_block_builder_free(&bb);
    b->a.data = b->bytes;
    b->a.len = len;
    FWT_ASSERT_OK(fw_block_verify(b->bytes, len, &b->a.header));
    b->a.ack = ack;
    b->a.cb = on_ack;
    b->a.arg = b;
    return b;
}

static void free_block(blk_t *b)
{
    free(b->bytes);
    free(b);
}

static void on_open(cal_bucket_t *b, int status)
{
    (void)b;
    open_status = status;
    opened++;
}

static void on_close(cal_bucket_t *b, int status)
{
    (void)b;
    FWT_ASSERT_OK(status);
    closed++;
}

static void open_bucket(cal_bucket_t *b, const char *root, const cal_bucket_config_t *cfg)
{
    int before = opened;
    FWT_ASSERT_OK(cal_bucket_open(b, &loop, &disk, root, "web_clicks", 3, 7, 1, cfg, on_open));
    run_until(&opened, before + 1);
    FWT_ASSERT_OK(open_status);
}

static void close_bucket(cal_bucket_t *b)
{
    int before = closed;
    cal_bucket_close(b, on_close);
    run_until(&closed, before + 1);
}

static void scan_dir(const char *root, uint64_t id, fw_seg_scan_t *s)
{
    char path[1024];
    char name[FW_SEG_NAME_LEN + 1];
    fw_seg_name(name, id);
    snprintf(path, sizeof(path), "%s/web_clicks/3/%s", root, name);
    FWT_ASSERT_OK(fw_seg_scan(path, s));
}

FWT_TEST(group_commit_acks_every_block_once)
{
    setup();
    const char *root = fwt_tmpdir_mem();
    cal_bucket_config_t cfg;
    cal_bucket_config_default(&cfg);
    cfg.sync_interval_ms = 2;
    cal_bucket_t b;
    open_bucket(&b, root, &cfg);
    enum { N = 400 };
    blk_t *blks[N];
    acked = 0;
    for (int i = 0; i < N; i++) {
        blks[i] = make_block(1 + (uint64_t)(i % 2), 1 + (uint64_t)(i / 2), 3, 50,
                             i % 5 == 0 ? CAL_ACK_WRITTEN : CAL_ACK_DURABLE);
        cal_bucket_append(&b, &blks[i]->a);
        if (i % 50 == 49)
            uv_run(&loop, UV_RUN_NOWAIT); /* let some batches go while others arrive */
    }
    run_until(&acked, N);
    uint64_t last = 0;
    for (int i = 0; i < N; i++) {
        FWT_ASSERT_OK(blks[i]->status);
        FWT_ASSERT(!blks[i]->a.duplicate);
        FWT_ASSERT_UINT_EQ(blks[i]->a.segment_id, 1);
        /* Stored in the order appended, back to back. */
        FWT_ASSERT(blks[i]->a.offset > last);
        last = blks[i]->a.offset;
    }
    FWT_ASSERT(b.syncs < N / 4); /* batched: far fewer syncs than blocks */
    fprintf(stderr, "%d blocks in %llu syncs\n", N, (unsigned long long)b.syncs);
    close_bucket(&b);
    fw_seg_scan_t s;
    scan_dir(root, 1, &s);
    FWT_ASSERT(s.sealed);
    FWT_ASSERT_UINT_EQ(s.blocks, N);
    FWT_ASSERT_UINT_EQ(s.records, 3 * N);
    FWT_ASSERT_INT_EQ(s.damage, 0);
    for (int i = 0; i < N; i++)
        free_block(blks[i]);
    teardown();
}

FWT_TEST(retries_are_stored_once)
{
    setup();
    const char *root = fwt_tmpdir_mem();
    cal_bucket_config_t cfg;
    cal_bucket_config_default(&cfg);
    cal_bucket_t b;
    open_bucket(&b, root, &cfg);
    acked = 0;
    blk_t *first = make_block(9, 1, 1, 10, CAL_ACK_DURABLE);
    blk_t *retry_now = make_block(9, 1, 1, 10, CAL_ACK_DURABLE);
    cal_bucket_append(&b, &first->a);
    /* The original is still on its way to disk: the retry must wait. */
    cal_bucket_append(&b, &retry_now->a);
    FWT_ASSERT(retry_now->done);
    FWT_ASSERT_INT_EQ(retry_now->status, FW_ERETRY_LATER);
    run_until(&acked, 2);
    FWT_ASSERT_OK(first->status);
    blk_t *retry_later = make_block(9, 1, 1, 10, CAL_ACK_DURABLE);
    cal_bucket_append(&b, &retry_later->a);
    FWT_ASSERT(retry_later->done);
    FWT_ASSERT_OK(retry_later->status);
    FWT_ASSERT(retry_later->a.duplicate);
    blk_t *gap = make_block(9, 5, 1, 10, CAL_ACK_DURABLE);
    cal_bucket_append(&b, &gap->a);
    FWT_ASSERT_INT_EQ(gap->status, FW_ESEQUENCE_GAP);
    FWT_ASSERT_UINT_EQ(gap->a.expected_seq, 2);
    close_bucket(&b);
    fw_seg_scan_t s;
    scan_dir(root, 1, &s);
    FWT_ASSERT_UINT_EQ(s.blocks, 1);
    free_block(first);
    free_block(retry_now);
    free_block(retry_later);
    free_block(gap);
    teardown();
}

FWT_TEST(recovery_after_a_crash)
{
    setup();
    const char *root = fwt_tmpdir_mem();
    /* What a crashed writer leaves: an unsealed segment with a torn last block. */
    char dir[1024];
    FWT_ASSERT_OK(fw_seg_bucket_dir(dir, sizeof(dir), root, "web_clicks", 3));
    FWT_ASSERT_OK(fw_mkdir_p(dir));
    fw_seg_header_t h = {.segment_id = 41, .epoch = 6, .created_ms = 1, .bucket = 3};
    strcpy(h.category, "web_clicks");
    fw_segw_t *w;
    FWT_ASSERT_OK(fw_segw_create(dir, &h, &w));
    for (uint64_t seq = 1; seq <= 3; seq++) {
        blk_t *x = make_block(77, seq, 2, 20, CAL_ACK_DURABLE);
        struct iovec iov = {x->bytes, x->a.len};
        uint64_t off;
        /* The third is torn: only half of it reaches the file. */
        if (seq == 3)
            iov.iov_len /= 2;
        FWT_ASSERT_OK(fw_segw_append(w, &iov, 1, 1, 2, &off));
        free_block(x);
    }
    fw_segw_close(w);

    cal_bucket_config_t cfg;
    cal_bucket_config_default(&cfg);
    cal_bucket_t b;
    open_bucket(&b, root, &cfg);
    fw_seg_scan_t s;
    scan_dir(root, 41, &s);
    FWT_ASSERT(s.sealed);
    FWT_ASSERT_UINT_EQ(s.blocks, 2);
    /* The table knows what survived: 2 is a retry, 3 (torn, never acked) is new. */
    acked = 0;
    blk_t *two = make_block(77, 2, 2, 20, CAL_ACK_DURABLE);
    blk_t *three = make_block(77, 3, 2, 20, CAL_ACK_DURABLE);
    cal_bucket_append(&b, &two->a);
    cal_bucket_append(&b, &three->a);
    run_until(&acked, 2);
    FWT_ASSERT(two->a.duplicate);
    FWT_ASSERT_OK(three->status);
    FWT_ASSERT(!three->a.duplicate);
    /* New data goes to a new segment above every id on disk. */
    FWT_ASSERT_UINT_EQ(three->a.segment_id, 42);
    close_bucket(&b);
    scan_dir(root, 42, &s);
    FWT_ASSERT(s.sealed);
    FWT_ASSERT_UINT_EQ(s.blocks, 1);
    FWT_ASSERT_UINT_EQ(s.header.epoch, 7);
    free_block(two);
    free_block(three);
    teardown();
}

FWT_TEST(rolls_by_size)
{
    setup();
    const char *root = fwt_tmpdir_mem();
    cal_bucket_config_t cfg;
    cal_bucket_config_default(&cfg);
    cfg.roll_bytes = 8192;
    cfg.sync_interval_ms = 0; /* one write per block, to roll between them */
    cal_bucket_t b;
    open_bucket(&b, root, &cfg);
    acked = 0;
    enum { N = 40 };
    blk_t *blks[N];
    for (int i = 0; i < N; i++) {
        blks[i] = make_block(5, 1 + (uint64_t)i, 1, 900, CAL_ACK_DURABLE);
        cal_bucket_append(&b, &blks[i]->a);
    }
    run_until(&acked, N);
    uint64_t last_seg = blks[N - 1]->a.segment_id;
    FWT_ASSERT(last_seg >= 5);
    close_bucket(&b);
    uint64_t total = 0;
    for (uint64_t id = 1; id <= last_seg; id++) {
        fw_seg_scan_t s;
        scan_dir(root, id, &s);
        FWT_ASSERT(s.sealed);
        FWT_ASSERT(s.file_size <= 8192 + 88);
        total += s.blocks;
    }
    FWT_ASSERT_UINT_EQ(total, N);
    for (int i = 0; i < N; i++)
        free_block(blks[i]);
    teardown();
}

/* A quiet bucket's segment is sealed once it is older than roll_age_ms; the
 * next block goes to a new segment. A fresh or empty segment is left alone. */
FWT_TEST(seals_an_idle_segment_by_age)
{
    setup();
    const char *root = fwt_tmpdir_mem();
    cal_bucket_config_t cfg;
    cal_bucket_config_default(&cfg);
    cfg.roll_age_ms = 50;
    cal_bucket_t b;
    open_bucket(&b, root, &cfg);
    FWT_ASSERT_INT_EQ(cal_bucket_seal_if_idle(&b), 0); /* no segment yet */
    acked = 0;
    blk_t *first = make_block(9, 1, 3, 20, CAL_ACK_DURABLE);
    cal_bucket_append(&b, &first->a);
    run_until(&acked, 1);
    FWT_ASSERT_INT_EQ(cal_bucket_seal_if_idle(&b), 0); /* younger than 50 ms */
    int64_t until = fwt_now_ms() + 60;
    while (fwt_now_ms() < until)
        uv_run(&loop, UV_RUN_ONCE);
    FWT_ASSERT_INT_EQ(cal_bucket_seal_if_idle(&b), 1);
    while (b.job_busy)
        uv_run(&loop, UV_RUN_ONCE);
    fw_seg_scan_t s;
    scan_dir(root, 1, &s);
    FWT_ASSERT(s.sealed);
    FWT_ASSERT_UINT_EQ(s.blocks, 1);
    blk_t *second = make_block(9, 2, 3, 20, CAL_ACK_DURABLE);
    cal_bucket_append(&b, &second->a);
    run_until(&acked, 2);
    FWT_ASSERT_UINT_EQ(second->a.segment_id, 2);
    close_bucket(&b);
    scan_dir(root, 2, &s);
    FWT_ASSERT(s.sealed);
    FWT_ASSERT_UINT_EQ(s.blocks, 1);
    free_block(first);
    free_block(second);
    teardown();
}

/* Frees the block from inside its callback, as the writer's request layer does. */
static void on_ack_free(cal_append_t *a, int status)
{
    blk_t *b = a->arg;
    FWT_ASSERT_OK(status);
    acked++;
    free_block(b);
}

/* An append acked at the written level is its submitter's again at that
 * callback: the bucket must not touch it (or its bytes) afterwards, though
 * the group's fdatasync is still to come. (It once walked its in-flight list
 * through such appends: a use after free under ASan, a crash in release.) */
FWT_TEST(written_acks_hand_the_append_back)
{
    setup();
    const char *root = fwt_tmpdir_mem();
    cal_bucket_config_t cfg;
    cal_bucket_config_default(&cfg);
    cal_bucket_t b;
    open_bucket(&b, root, &cfg);
    acked = 0;
    enum { N = 50 };
    blk_t *durable[N];
    for (int i = 0; i < N; i++) {
        /* Interleave both levels in one group commit. */
        blk_t *w = make_block(11, 1 + (uint64_t)i, 2, 100, CAL_ACK_WRITTEN);
        w->a.cb = on_ack_free;
        cal_bucket_append(&b, &w->a);
        durable[i] = make_block(12, 1 + (uint64_t)i, 2, 100, CAL_ACK_DURABLE);
        cal_bucket_append(&b, &durable[i]->a);
    }
    run_until(&acked, 2 * N);
    for (int i = 0; i < N; i++) {
        FWT_ASSERT_OK(durable[i]->status);
        free_block(durable[i]);
    }
    /* A retry of a written-acked block is a duplicate. */
    blk_t *again = make_block(11, 1, 2, 100, CAL_ACK_DURABLE);
    cal_bucket_append(&b, &again->a);
    run_until(&acked, 2 * N + 1);
    FWT_ASSERT(again->a.duplicate);
    free_block(again);
    close_bucket(&b);
    fw_seg_scan_t s;
    scan_dir(root, 1, &s);
    FWT_ASSERT_UINT_EQ(s.blocks, 2 * N);
    teardown();
}

static struct rlimit saved;

static void restore_limit(void *arg)
{
    (void)arg;
    setrlimit(RLIMIT_FSIZE, &saved);
}

FWT_TEST(full_disk_means_retry_later_then_recovers)
{
    setup();
    signal(SIGXFSZ, SIG_IGN);
    getrlimit(RLIMIT_FSIZE, &saved);
    fwt_defer(restore_limit, NULL);
    const char *root = fwt_tmpdir_mem();
    cal_bucket_config_t cfg;
    cal_bucket_config_default(&cfg);
    cfg.sync_interval_ms = 0;
    cal_bucket_t b;
    open_bucket(&b, root, &cfg);
    acked = 0;
    blk_t *one = make_block(3, 1, 1, 100, CAL_ACK_DURABLE);
    cal_bucket_append(&b, &one->a);
    run_until(&acked, 1);
    FWT_ASSERT_OK(one->status);
    /* The disk is full: files may not grow past what they hold now. */
    struct rlimit lim = saved;
    lim.rlim_cur = one->a.offset + one->a.len + 10;
    FWT_ASSERT_INT_EQ(setrlimit(RLIMIT_FSIZE, &lim), 0);
    blk_t *two = make_block(3, 2, 1, 100, CAL_ACK_DURABLE);
    cal_bucket_append(&b, &two->a);
    run_until(&acked, 2);
    FWT_ASSERT_INT_EQ(two->status, FW_ERETRY_LATER);
    /* Space returns; the producer's retry is stored once. */
    restore_limit(NULL);
    blk_t *again = make_block(3, 2, 1, 100, CAL_ACK_DURABLE);
    cal_bucket_append(&b, &again->a);
    run_until(&acked, 3);
    FWT_ASSERT_OK(again->status);
    FWT_ASSERT(!again->a.duplicate);
    close_bucket(&b);
    fw_seg_scan_t s;
    scan_dir(root, 1, &s);
    FWT_ASSERT_UINT_EQ(s.blocks, 2);
    FWT_ASSERT_INT_EQ(s.damage, 0);
    free_block(one);
    free_block(two);
    free_block(again);
    teardown();
}

/* ---- helpers for ids, leases, pause, abandon and locks ------------------------ */

/* Runs the loop through n heartbeats. Only to show that nothing happens: every
 * wait for something that should happen is a run_until on its event. */
static void run_ticks(int n)
{
    run_until(&ticks, ticks + n);
}

static void seg_file(const char *root, uint64_t id, char *path, size_t cap)
{
    char name[FW_SEG_NAME_LEN + 1];
    fw_seg_name(name, id);
    snprintf(path, cap, "%s/web_clicks/3/%s", root, name);
}

static uint64_t seg_size(const char *root, uint64_t id)
{
    char path[1024];
    struct stat st;
    seg_file(root, id, path, sizeof(path));
    FWT_ASSERT_INT_EQ(stat(path, &st), 0);
    return (uint64_t)st.st_size;
}

/* The segment ids in the bucket's directory, ascending; returns how many. */
static int seg_ids(const char *root, uint64_t *ids, int cap)
{
    char dir[1024];
    FWT_ASSERT_OK(fw_seg_bucket_dir(dir, sizeof(dir), root, "web_clicks", 3));
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint64_t id;
        if (fw_seg_name_parse(e->d_name, &id) < 0)
            continue;
        FWT_ASSERT(n < cap);
        int i = n++;
        for (; i > 0 && ids[i - 1] > id; i--)
            ids[i] = ids[i - 1];
        ids[i] = id;
    }
    closedir(d);
    return n;
}

/* The producer sequences stored in a segment, in file order; returns how many. */
static int seg_sequences(const char *root, uint64_t id, uint64_t *seqs, int cap)
{
    char path[1024];
    seg_file(root, id, path, sizeof(path));
    fw_segr_t *r;
    FWT_ASSERT_OK(fw_segr_open(path, &r));
    fw_seg_block_t blk;
    int n = 0, rc;
    while ((rc = fw_segr_next(r, &blk)) == FW_SEGR_BLOCK) {
        FWT_ASSERT(n < cap);
        seqs[n++] = blk.header.sequence;
    }
    FWT_ASSERT_OK(rc);
    fw_segr_close(r);
    return n;
}

/* Segment id of root's bucket holds exactly the sequences 1..n, in order. */
static void expect_sequences_1_to(const char *root, uint64_t id, int n)
{
    uint64_t got[16];
    FWT_ASSERT(n <= 16);
    FWT_ASSERT_INT_EQ(seg_sequences(root, id, got, 16), n);
    for (int i = 0; i < n; i++)
        FWT_ASSERT_UINT_EQ(got[i], (uint64_t)i + 1);
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * A job that holds the write thread until released. Jobs run in order, so a
 * bucket job submitted after the gate stays in flight for as long as the
 * test wants, and once the gate is entered every job submitted before it
 * has done its write (its sync may still run).
 */
typedef struct gate_s {
    cal_disk_job_t job;
    sem_t entered, go;
    int done;
} gate_t;

static void gate_work(cal_disk_job_t *j)
{
    gate_t *g = j->data;
    sem_post(&g->entered);
    while (sem_wait(&g->go) < 0 && errno == EINTR)
        ;
}

static void gate_done(cal_disk_job_t *j)
{
    gate_t *g = j->data;
    g->done = 1;
}

static gate_t *gate_submit(void)
{
    gate_t *g = calloc(1, sizeof(*g));
    sem_init(&g->entered, 0, 0);
    sem_init(&g->go, 0, 0);
    g->job.work = gate_work;
    g->job.done_cb = gate_done;
    g->job.data = g;
    cal_disk_submit(&disk, &g->job);
    return g;
}

static void nothing(cal_disk_job_t *j)
{
    (void)j;
}

/* A gate on the sync thread: every sync submitted after it waits. */
static gate_t *gate_submit_sync(void)
{
    gate_t *g = calloc(1, sizeof(*g));
    sem_init(&g->entered, 0, 0);
    sem_init(&g->go, 0, 0);
    g->job.work = nothing;
    g->job.sync_work = gate_work;
    g->job.done_cb = gate_done;
    g->job.data = g;
    cal_disk_submit(&disk, &g->job);
    return g;
}

/* Blocks the loop thread until the disk thread is inside the gate. */
static void gate_wait_entered(gate_t *g)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    while (sem_timedwait(&g->entered, &until) < 0) {
        if (errno != EINTR)
            FWT_FAIL("the disk thread never reached the gate: %s", strerror(errno));
    }
}

/* Lets the disk thread go on and waits until the gate's done_cb ran. */
static void gate_release(gate_t *g)
{
    sem_post(&g->go);
    run_until(&g->done, 1);
    sem_destroy(&g->entered);
    sem_destroy(&g->go);
    free(g);
}

static void try_open(cal_bucket_t *b, const char *root, const cal_bucket_config_t *cfg)
{
    int before = opened;
    FWT_ASSERT_OK(cal_bucket_open(b, &loop, &disk, root, "web_clicks", 3, 7, 1, cfg, on_open));
    run_until(&opened, before + 1);
}

/* ---- segment ids from the owner --------------------------------------------- */

static int id_asks;
static uint64_t id_to_give; /* 0: the test gives ids itself, later */

static void on_need_id(cal_bucket_t *b)
{
    id_asks++;
    /* Nothing may be waiting for the id we are asked for: it is reserved ahead. */
    FWT_ASSERT_UINT_EQ(b->next_segment_id, 0);
    if (id_to_give != 0)
        cal_bucket_give_segment_id(b, id_to_give++);
}

FWT_TEST(rolls_use_the_segment_ids_the_owner_gives)
{
    setup();
    const char *root = fwt_tmpdir_mem();
    cal_bucket_config_t cfg;
    cal_bucket_config_default(&cfg);
    cfg.roll_bytes = 8192; /* one 5000-byte block per segment */
    cfg.sync_interval_ms = 0;
    cal_bucket_t b;
    open_bucket(&b, root, &cfg);
    b.need_segment_id = on_need_id;
    id_asks = 0;
    id_to_give = 0;
    acked = 0;
    enum { N = 3 };
    blk_t *blks[N];
    for (int i = 0; i < N; i++)
        blks[i] = make_block(5, 1 + (uint64_t)i, 1, 5000, CAL_ACK_DURABLE);

    /* The first segment takes the id the bucket was opened with and asks for the next. */
    cal_bucket_append(&b, &blks[0]->a);
    run_until(&acked, 1);
    FWT_ASSERT_OK(blks[0]->status);
    FWT_ASSERT_UINT_EQ(blks[0]->a.segment_id, 1);
    FWT_ASSERT_INT_EQ(id_asks, 1);

    /* The next block needs a roll and no id is here yet: it waits, unwritten. */
    uint64_t size1 = seg_size(root, 1);
    cal_bucket_append(&b, &blks[1]->a);
    FWT_ASSERT(b.appends_out == 0);
    run_ticks(3);
    FWT_ASSERT(!blks[1]->done);
    FWT_ASSERT_INT_EQ(acked, 1);
    uint64_t ids[8];
    FWT_ASSERT_INT_EQ(seg_ids(root, ids, 8), 1);
    FWT_ASSERT_UINT_EQ(seg_size(root, 1), size1);
    FWT_ASSERT_INT_EQ(id_asks, 1); /* asked once, not again while waiting */

    /* The id arrives: the block goes to a segment of exactly that id. */
    cal_bucket_give_segment_id(&b, 10);
    run_until(&acked, 2);
    FWT_ASSERT_OK(blks[1]->status);
    FWT_ASSERT_UINT_EQ(blks[1]->a.segment_id, 10);
    FWT_ASSERT_INT_EQ(id_asks, 2);

    /* An id given before it is needed is used at the next roll, without a wait. */
    cal_bucket_give_segment_id(&b, 25);
    cal_bucket_append(&b, &blks[2]->a);
    run_until(&acked, 3);
    FWT_ASSERT_OK(blks[2]->status);
    FWT_ASSERT_UINT_EQ(blks[2]->a.segment_id, 25);
    FWT_ASSERT_INT_EQ(id_asks, 3);

    close_bucket(&b);
    FWT_ASSERT_INT_EQ(seg_ids(root, ids, 8), 3);
    FWT_ASSERT_UINT_EQ(ids[0], 1);
    FWT_ASSERT_UINT_EQ(ids[1], 10);
    FWT_ASSERT_UINT_EQ(ids[2], 25);
    for (int i = 0; i < 3; i++) {
        fw_seg_scan_t s;
        scan_dir(root, ids[i], &s);
        FWT_ASSERT(s.sealed);
        FWT_ASSERT_UINT_EQ(s.blocks, 1);
        FWT_ASSERT_UINT_EQ(s.header.segment_id, ids[i]);
    }
    for (int i = 0; i < N; i++)
        free_block(blks[i]);
    teardown();
}

FWT_TEST(an_id_given_from_inside_need_segment_id)
{
    setup();
    const char *root = fwt_tmpdir_mem();
    cal_bucket_config_t cfg;
    cal_bucket_config_default(&cfg);
    cfg.roll_bytes = 8192;
    cfg.sync_interval_ms = 0;
    cal_bucket_t b;
    open_bucket(&b, root, &cfg);
    b.need_segment_id = on_need_id;
    id_asks = 0;
    id_to_give = 100; /* an owner with an id at hand gives it at once */
    acked = 0;
    blk_t *one = make_block(5, 1, 1, 5000, CAL_ACK_DURABLE);
    blk_t *two = make_block(5, 2, 1, 5000, CAL_ACK_DURABLE);
    cal_bucket_append(&b, &one->a);
    cal_bucket_append(&b, &two->a);
    run_until(&acked, 2);
    FWT_ASSERT_OK(one->status);
    FWT_ASSERT_OK(two->status);
    FWT_ASSERT_UINT_EQ(one->a.segment_id, 1);
    FWT_ASSERT_UINT_EQ(two->a.segment_id, 100);
    FWT_ASSERT_INT_EQ(id_asks, 2);
    FWT_ASSERT_UINT_EQ(b.next_segment_id, 101);
    id_to_give = 0;
    close_bucket(&b);
    uint64_t ids[8];
    FWT_ASSERT_INT_EQ(seg_ids(root, ids, 8), 2);
    FWT_ASSERT_UINT_EQ(ids[1], 100);
    free_block(one);
    free_block(two);
    teardown();
}

/*
 * A full disk at a roll: the new segment cannot be created (nor the old one
 * sealed). Every flush retries the roll; each must not reserve another id in
 * ZooKeeper (one write per flush per bucket while the disk stays full): the
 * id that left no file is used again, and taken when space returns.
 */
FWT_TEST(a_roll_that_leaves_no_file_reuses_its_id)
{
    setup();
    signal(SIGXFSZ, SIG_IGN);
    getrlimit(RLIMIT_FSIZE, &saved);
    fwt_defer(restore_limit, NULL);
    const char *root = fwt_tmpdir_mem();
    cal_bucket_config_t cfg;
    cal_bucket_config_default(&cfg);
    cfg.roll_bytes = 8192; /* one 5000-byte block per segment */
    cfg.sync_interval_ms = 0;
    cal_bucket_t b;
    open_bucket(&b, root, &cfg);
    b.need_segment_id = on_need_id;
    id_asks = 0;
    id_to_give = 10;
    acked = 0;
    blk_t *first = make_block(6, 1, 1, 5000, CAL_ACK_DURABLE);
    cal_bucket_append(&b, &first->a);
    run_until(&acked, 1);
    FWT_ASSERT_OK(first->status);
    FWT_ASSERT_INT_EQ(id_asks, 1); /* 10 is reserved ahead */

    struct rlimit lim = saved;
    lim.rlim_cur = 10; /* no file may hold even a header */
    FWT_ASSERT_INT_EQ(setrlimit(RLIMIT_FSIZE, &lim), 0);
    enum { TRIES = 5 };
    blk_t *tries[TRIES];
    for (int i = 0; i < TRIES; i++) {
        tries[i] = make_block(6, 2, 1, 5000, CAL_ACK_DURABLE);
        cal_bucket_append(&b, &tries[i]->a);
        run_until(&acked, 2 + i);
        FWT_ASSERT_INT_EQ(tries[i]->status, FW_ERETRY_LATER);
    }
    /* The first try used 10 and reserved 11 ahead; the others reused 10. */
    FWT_ASSERT_INT_EQ(id_asks, 2);

    restore_limit(NULL);
    blk_t *ok = make_block(6, 2, 1, 5000, CAL_ACK_DURABLE);
    cal_bucket_append(&b, &ok->a);
    run_until(&acked, 2 + TRIES);
    FWT_ASSERT_OK(ok->status);
    FWT_ASSERT_UINT_EQ(ok->a.segment_id, 10);
    FWT_ASSERT_INT_EQ(id_asks, 2);
    close_bucket(&b);
    free_block(first);
    for (int i = 0; i < TRIES; i++)
        free_block(tries[i]);
    free_block(ok);
    teardown();
}

/* A sealed segment with one block, as an earlier owner left it. */
static void put_sealed_segment(const char *root, uint64_t id, uint64_t producer, uint64_t seq)
{
    char dir[1024];
    FWT_ASSERT_OK(fw_seg_bucket_dir(dir, sizeof(dir), root, "web_clicks", 3));
    FWT_ASSERT_OK(fw_mkdir_p(dir));
    fw_seg_header_t h = {.segment_id = id, .epoch = 6, .created_ms = 1, .bucket = 3};
    strcpy(h.category, "web_clicks");
    fw_segw_t *w;
    FWT_ASSERT_OK(fw_segw_create(dir, &h, &w));
    blk_t *x = make_block(producer, seq, 1, 20, CAL_ACK_DURABLE);
    struct iovec iov = {x->bytes, x->a.len};
    uint64_t off;
    FWT_ASSERT_OK(fw_segw_append(w, &iov, 1, 1, 1, &off));
    FWT_ASSERT_OK(fw_segw_seal(w, 2));
    fw_segw_close(w);
    free_block(x);
}

FWT_TEST(segment_ids_stay_above_the_files_on_disk)
{
    setup();
    const char *root = fwt_tmpdir_mem();
    /* ZooKeeper's counter was reset: it hands out ids the directory already passed. */
    put_sealed_segment(root, 10, 99, 1);
    cal_bucket_config_t cfg;
    cal_bucket_config_default(&cfg);
    cfg.roll_bytes = 8192;
    cfg.sync_interval_ms = 0;
    cal_bucket_t b;
    open_bucket(&b, root, &cfg); /* with first_segment_id 1 */
    b.need_segment_id = on_need_id;
    id_asks = 0;
    id_to_give = 0;
    acked = 0;
    blk_t *one = make_block(5, 1, 1, 5000, CAL_ACK_DURABLE);
    blk_t *two = make_block(5, 2, 1, 5000, CAL_ACK_DURABLE);
    cal_bucket_append(&b, &one->a);
    run_until(&acked, 1);
    FWT_ASSERT_OK(one->status);
    FWT_ASSERT_UINT_EQ(one->a.segment_id, 11);
    cal_bucket_give_segment_id(&b, 2);
    cal_bucket_append(&b, &two->a);
    run_until(&acked, 2);
    FWT_ASSERT_OK(two->status);
    /* Segments are read in id order: a new one may never sort before an older one. */
    FWT_ASSERT_INT_OP(two->a.segment_id, >, 11);
    close_bucket(&b);
    uint64_t ids[8];
    int n = seg_ids(root, ids, 8);
    FWT_ASSERT_INT_EQ(n, 3);
    FWT_ASSERT_UINT_EQ(ids[0], 10);
    FWT_ASSERT_UINT_EQ(ids[1], 11);
    FWT_ASSERT_UINT_EQ(ids[2], two->a.segment_id);
    free_block(one);
    free_block(two);
    teardown();
}

FWT_TEST(closing_while_waiting_for_an_id_fails_what_waits)
{
    setup();
    const char *root = fwt_tmpdir_mem();
    cal_bucket_config_t cfg;
    cal_bucket_config_default(&cfg);
    cfg.roll_bytes = 8192;
    cfg.sync_interval_ms = 0;
    cal_bucket_t b;
    open_bucket(&b, root, &cfg);
    b.need_segment_id = on_need_id;
    id_asks = 0;
    id_to_give = 0;
    acked = 0;
    blk_t *one = make_block(5, 1, 1, 5000, CAL_ACK_DURABLE);
    blk_t *two = make_block(5, 2, 1, 5000, CAL_ACK_DURABLE);
    cal_bucket_append(&b, &one->a);
    run_until(&acked, 1);
    FWT_ASSERT_OK(one->status);
    cal_bucket_append(&b, &two->a);
    FWT_ASSERT(!two->done);
    /* No id will come: the close does not wait for one. */
    close_bucket(&b);
    FWT_ASSERT(two->done);
    FWT_ASSERT_INT_EQ(two->status, FW_ERETRY_LATER);
    uint64_t ids[8];
    FWT_ASSERT_INT_EQ(seg_ids(root, ids, 8), 1);
    fw_seg_scan_t s;
    scan_dir(root, 1, &s);
    FWT_ASSERT(s.sealed);
    FWT_ASSERT_UINT_EQ(s.blocks, 1);
    free_block(one);
    free_block(two);
    teardown();
}

/* ---- the lease ------------------------------------------------------------------- */

static _Atomic int64_t lease;

FWT_TEST(a_lease_in_the_future_changes_nothing)
{
    setup();
    const char *root = fwt_tmpdir_mem();
    cal_bucket_config_t cfg;
    cal_bucket_config_default(&cfg);
    cfg.sync_interval_ms = 1;
    atomic_store(&lease, mono_ns() + 600 * (int64_t)1000000000);
    cal_bucket_t b;
    open_bucket(&b, root, &cfg);
    b.lease_ns = &lease;
    acked = 0;
    enum { N = 20 };
    blk_t *blks[N];
    for (int i = 0; i < N; i++) {
        blks[i] = make_block(4, 1 + (uint64_t)i, 2, 100, i % 2 ? CAL_ACK_WRITTEN : CAL_ACK_DURABLE);
        cal_bucket_append(&b, &blks[i]->a);
    }
    run_until(&acked, N);
    for (int i = 0; i < N; i++) {
        FWT_ASSERT_OK(blks[i]->status);
        FWT_ASSERT(!blks[i]->a.duplicate);
    }
    FWT_ASSERT_INT_EQ(b.state, CAL_BUCKET_READY);
    close_bucket(&b);
    fw_seg_scan_t s;
    scan_dir(root, 1, &s);
    FWT_ASSERT(s.sealed);
    FWT_ASSERT_UINT_EQ(s.blocks, N);
    for (int i = 0; i < N; i++)
        free_block(blks[i]);
    teardown();
}

FWT_TEST(a_lapsed_lease_writes_nothing_and_fails_the_bucket)
{
    setup();
    const char *root = fwt_tmpdir_mem();
    cal_bucket_config_t cfg;
    cal_bucket_config_default(&cfg);
    cfg.sync_interval_ms = 0;
    atomic_store(&lease, mono_ns() + 600 * (int64_t)1000000000);
    cal_bucket_t b;
    open_bucket(&b, root, &cfg);
    b.lease_ns = &lease;
    acked = 0;
    blk_t *one = make_block(4, 1, 1, 100, CAL_ACK_DURABLE);
    cal_bucket_append(&b, &one->a);
    run_until(&acked, 1);
    FWT_ASSERT_OK(one->status);
    uint64_t size = seg_size(root, 1);

    /* The lease ran out (a past deadline): the disk thread refuses the write. */
    atomic_store(&lease, mono_ns() - 1);
    blk_t *two = make_block(4, 2, 1, 100, CAL_ACK_WRITTEN);
    cal_bucket_append(&b, &two->a);
    run_until(&acked, 2);
    FWT_ASSERT_INT_EQ(two->status, FW_ERETRY_LATER);
    FWT_ASSERT_INT_EQ(b.state, CAL_BUCKET_FAILED);
    FWT_ASSERT_UINT_EQ(seg_size(root, 1), size);
    /* ... and takes nothing more. */
    blk_t *three = make_block(4, 2, 1, 100, CAL_ACK_DURABLE);
    cal_bucket_append(&b, &three->a);
    FWT_ASSERT(three->done);
    FWT_ASSERT_INT_EQ(three->status, FW_ERETRY_LATER);

    /* Without the lease the close does not seal either: that is the next owner's. */
    close_bucket(&b);
    FWT_ASSERT_UINT_EQ(seg_size(root, 1), size);
    fw_seg_scan_t s;
    scan_dir(root, 1, &s);
    FWT_ASSERT(!s.sealed);
    FWT_ASSERT_UINT_EQ(s.blocks, 1);
    FWT_ASSERT_INT_EQ(s.damage, 0);
    free_block(one);
    free_block(two);
    free_block(three);
    teardown();
}

FWT_TEST(a_lease_that_lapses_after_the_write_gives_no_ack)
{
    setup();
    const char *root = fwt_tmpdir_mem();
    blk_t *written = make_block(4, 1, 1, 100, CAL_ACK_WRITTEN);
    blk_t *durable = make_block(4, 2, 1, 100, CAL_ACK_DURABLE);
    cal_bucket_config_t cfg;
    cal_bucket_config_default(&cfg);
    cfg.sync_interval_ms = 60000;
    cfg.batch_bytes = written->a.len + durable->a.len; /* the second append flushes both */
    atomic_store(&lease, mono_ns() + 600 * (int64_t)1000000000);
    cal_bucket_t b;
    open_bucket(&b, root, &cfg);
    b.lease_ns = &lease;
    acked = 0;
    cal_bucket_append(&b, &written->a);
    cal_bucket_append(&b, &durable->a);
    FWT_ASSERT(b.appends_out > 0);
    /* Once the write thread reaches the gate the job has written (and maybe synced), but
     * the loop has not seen it yet; then the lease lapses. */
    gate_t *g = gate_submit();
    gate_wait_entered(g);
    atomic_store(&lease, mono_ns() - 1);
    gate_release(g);
    run_until(&acked, 2);
    FWT_ASSERT_INT_EQ(written->status, FW_ERETRY_LATER);
    FWT_ASSERT_INT_EQ(durable->status, FW_ERETRY_LATER);
    FWT_ASSERT_INT_EQ(b.state, CAL_BUCKET_FAILED);
    close_bucket(&b);
    /* The bytes are there (the write was allowed); only the acks were not. */
    fw_seg_scan_t s;
    scan_dir(root, 1, &s);
    FWT_ASSERT_UINT_EQ(s.blocks, 2);
    FWT_ASSERT(!s.sealed);
    free_block(written);
    free_block(durable);
    teardown();
}

/* ---- pause and resume ------------------------------------------------------------ */

FWT_TEST(pause_fails_what_waits_and_writes_nothing_until_resumed)
{
    setup();
    const char *root = fwt_tmpdir_mem();
    enum { N = 7 };
    blk_t *blks[N];
    /* 1, 2 before the pause; 3 waiting at the pause; 3, 4 while paused; 3, 4 after. */
    uint64_t seqs[N] = {1, 2, 3, 3, 4, 3, 4};
    for (int i = 0; i < N; i++)
        blks[i] = make_block(6, seqs[i], 1, 100, CAL_ACK_DURABLE);
    cal_bucket_config_t cfg;
    cal_bucket_config_default(&cfg);
    cfg.sync_interval_ms = 60000;
    cfg.batch_bytes = 2 * blks[0]->a.len; /* every second append flushes */
    cal_bucket_t b;
    open_bucket(&b, root, &cfg);
    acked = 0;
    cal_bucket_append(&b, &blks[0]->a);
    cal_bucket_append(&b, &blks[1]->a);
    run_until(&acked, 2);
    FWT_ASSERT_OK(blks[0]->status);
    FWT_ASSERT_OK(blks[1]->status);
    uint64_t size = seg_size(root, 1);

    cal_bucket_append(&b, &blks[2]->a);
    FWT_ASSERT(!blks[2]->done);
    cal_bucket_pause(&b);
    FWT_ASSERT(blks[2]->done);
    FWT_ASSERT_INT_EQ(blks[2]->status, FW_ERETRY_LATER);
    cal_bucket_append(&b, &blks[3]->a);
    cal_bucket_append(&b, &blks[4]->a);
    FWT_ASSERT(blks[3]->done && blks[4]->done);
    FWT_ASSERT_INT_EQ(blks[3]->status, FW_ERETRY_LATER);
    FWT_ASSERT_INT_EQ(blks[4]->status, FW_ERETRY_LATER);
    FWT_ASSERT(b.pending_head == NULL);
    FWT_ASSERT(b.appends_out == 0);
    run_ticks(3);
    FWT_ASSERT_UINT_EQ(seg_size(root, 1), size);

    /* Resumed: the producer's retries are taken as new, in order, once each. */
    cal_bucket_resume(&b);
    cal_bucket_append(&b, &blks[5]->a);
    cal_bucket_append(&b, &blks[6]->a);
    run_until(&acked, N);
    FWT_ASSERT_OK(blks[5]->status);
    FWT_ASSERT_OK(blks[6]->status);
    FWT_ASSERT(!blks[5]->a.duplicate && !blks[6]->a.duplicate);
    FWT_ASSERT(seg_size(root, 1) > size);
    close_bucket(&b);
    expect_sequences_1_to(root, 1, 4);
    for (int i = 0; i < N; i++)
        free_block(blks[i]);
    teardown();
}

FWT_TEST(pause_with_a_write_in_flight)
{
    setup();
    const char *root = fwt_tmpdir_mem();
    cal_bucket_config_t cfg;
    cal_bucket_config_default(&cfg);
    cfg.sync_interval_ms = 0;
    cal_bucket_t b;
    open_bucket(&b, root, &cfg);
    acked = 0;
    gate_t *g = gate_submit();
    blk_t *one = make_block(8, 1, 1, 100, CAL_ACK_DURABLE);
    blk_t *two = make_block(8, 2, 1, 100, CAL_ACK_DURABLE);
    cal_bucket_append(&b, &one->a); /* on the disk thread, behind the gate */
    cal_bucket_append(&b, &two->a); /* waiting */
    FWT_ASSERT(b.appends_out > 0);
    cal_bucket_pause(&b);
    FWT_ASSERT(two->done);
    FWT_ASSERT_INT_EQ(two->status, FW_ERETRY_LATER);
    FWT_ASSERT(!one->done);
    cal_bucket_resume(&b);
    /* 1 is still being written: a retry of it must wait, not be queued a second time. */
    blk_t *retry_one = make_block(8, 1, 1, 100, CAL_ACK_DURABLE);
    cal_bucket_append(&b, &retry_one->a);
    FWT_ASSERT(retry_one->done);
    FWT_ASSERT_INT_EQ(retry_one->status, FW_ERETRY_LATER);
    /* The write on the disk thread completes and is acked (the lease is fine). */
    gate_release(g);
    run_until(&one->done, 1);
    FWT_ASSERT_OK(one->status);
    /* The retry of the failed 2 is the next in line, not a gap. */
    blk_t *retry_two = make_block(8, 2, 1, 100, CAL_ACK_DURABLE);
    cal_bucket_append(&b, &retry_two->a);
    run_until(&retry_two->done, 1);
    FWT_ASSERT_OK(retry_two->status);
    FWT_ASSERT(!retry_two->a.duplicate);
    close_bucket(&b);
    expect_sequences_1_to(root, 1, 2);
    free_block(one);
    free_block(two);
    free_block(retry_one);
    free_block(retry_two);
    teardown();
}

/* ---- the write / sync pipeline ------------------------------------------------------ */

/*
 * Batch A syncs while batch B waits to be written (held behind a gate on the
 * write thread). A's sync ends first: B is still the batch being written, so
 * a third block waits for B rather than becoming a third job whose iovecs
 * would be B's. The segment holds 1, 2, 3, once each, in order.
 */
FWT_TEST(a_batch_waits_for_the_one_being_written_not_for_the_sync)
{
    setup();
    const char *root = fwt_tmpdir_mem();
    cal_bucket_config_t cfg;
    cal_bucket_config_default(&cfg);
    cfg.sync_interval_ms = 0;
    cal_bucket_t b;
    open_bucket(&b, root, &cfg);
    acked = 0;
    blk_t *blks[3];
    for (int i = 0; i < 3; i++)
        blks[i] = make_block(12, (uint64_t)i + 1, 2, 100 + 10 * (size_t)i, CAL_ACK_DURABLE);
    cal_bucket_append(&b, &blks[0]->a); /* batch A, on its way */
    gate_t *g = gate_submit();          /* the write thread stops after A */
    cal_bucket_append(&b, &blks[1]->a); /* waits for A's write */
    /* A written (B submitted then, behind the gate), synced and acked. */
    run_until(&blks[0]->done, 1);
    FWT_ASSERT_OK(blks[0]->status);
    FWT_ASSERT(cal_bucket_writing(&b));
    FWT_ASSERT_INT_EQ(b.appends_out, 1);
    cal_bucket_append(&b, &blks[2]->a);
    FWT_ASSERT_INT_EQ(b.appends_out, 1); /* 3 waits for B's write */
    FWT_ASSERT(b.pending_head == &blks[2]->a);
    gate_release(g);
    run_until(&acked, 3);
    for (int i = 0; i < 3; i++)
        FWT_ASSERT_OK(blks[i]->status);
    close_bucket(&b);
    expect_sequences_1_to(root, 1, 3);
    for (int i = 0; i < 3; i++)
        free_block(blks[i]);
    teardown();
}

/*
 * A pause with two batches out, the older one in the second slot (its sync
 * held behind a gate on the sync thread): the producer's blocks in flight
 * count as taken up to the newest of them, so after the resume a retry of
 * one in flight is refused, not queued twice, and the next block is next in
 * line, not a gap.
 */
FWT_TEST(pause_with_two_batches_out_keeps_the_newest_sequence)
{
    setup();
    const char *root = fwt_tmpdir_mem();
    cal_bucket_config_t cfg;
    cal_bucket_config_default(&cfg);
    cfg.sync_interval_ms = 0;
    cal_bucket_t b;
    open_bucket(&b, root, &cfg);
    acked = 0;
    blk_t *blks[4];
    for (int i = 0; i < 4; i++)
        blks[i] = make_block(13, (uint64_t)i + 1, 1, 100, CAL_ACK_DURABLE);
    /* 1 goes alone (slot 0) and completes, so 2 takes slot 1 and 3 slot 0. */
    cal_bucket_append(&b, &blks[0]->a);
    run_until(&blks[0]->done, 1);
    gate_t *g = gate_submit_sync();
    cal_bucket_append(&b, &blks[1]->a);
    cal_bucket_append(&b, &blks[2]->a);
    int64_t deadline = fwt_now_ms() + 20000;
    while ((b.appends_out < 2 || cal_bucket_writing(&b)) && fwt_now_ms() < deadline)
        uv_run(&loop, UV_RUN_ONCE);
    FWT_ASSERT_INT_EQ(b.appends_out, 2); /* both written, both waiting for the gated sync */
    FWT_ASSERT(!cal_bucket_writing(&b));
    cal_bucket_pause(&b);
    cal_bucket_resume(&b);
    blk_t *retry3 = make_block(13, 3, 1, 100, CAL_ACK_DURABLE);
    cal_bucket_append(&b, &retry3->a);
    FWT_ASSERT(retry3->done);
    FWT_ASSERT_INT_EQ(retry3->status, FW_ERETRY_LATER);
    cal_bucket_append(&b, &blks[3]->a);
    FWT_ASSERT(!blks[3]->done);
    gate_release(g);
    run_until(&acked, 5);
    for (int i = 0; i < 4; i++)
        FWT_ASSERT_OK(blks[i]->status);
    close_bucket(&b);
    expect_sequences_1_to(root, 1, 4);
    for (int i = 0; i < 4; i++)
        free_block(blks[i]);
    free_block(retry3);
    teardown();
}

/* ---- abandon ------------------------------------------------------------------------ */

FWT_TEST(abandon_leaves_the_segment_for_the_next_owner)
{
    setup();
    const char *root = fwt_tmpdir_mem();
    enum { N = 3 };
    blk_t *blks[N];
    for (int i = 0; i < N; i++)
        blks[i] = make_block(11, 1 + (uint64_t)i, 2, 60, CAL_ACK_DURABLE);
    cal_bucket_config_t cfg;
    cal_bucket_config_default(&cfg);
    cfg.sync_interval_ms = 60000;
    cfg.batch_bytes = 2 * blks[0]->a.len;
    cal_bucket_t b;
    open_bucket(&b, root, &cfg);
    acked = 0;
    cal_bucket_append(&b, &blks[0]->a);
    cal_bucket_append(&b, &blks[1]->a);
    run_until(&acked, 2);
    FWT_ASSERT_OK(blks[0]->status);
    FWT_ASSERT_OK(blks[1]->status);
    uint64_t size = seg_size(root, 1);
    cal_bucket_append(&b, &blks[2]->a);
    FWT_ASSERT(!blks[2]->done);

    int before = closed;
    cal_bucket_abandon(&b, on_close);
    FWT_ASSERT(blks[2]->done);
    FWT_ASSERT_INT_EQ(blks[2]->status, FW_ERETRY_LATER);
    run_until(&closed, before + 1);
    FWT_ASSERT_INT_EQ(b.state, CAL_BUCKET_CLOSED);
    /* No seal and nothing else: the open segment is as the last write left it. */
    FWT_ASSERT_UINT_EQ(seg_size(root, 1), size);
    fw_seg_scan_t s;
    scan_dir(root, 1, &s);
    FWT_ASSERT(!s.sealed);
    FWT_ASSERT_UINT_EQ(s.blocks, 2);
    FWT_ASSERT_INT_EQ(s.damage, 0);

    /* The next owner recovers and seals it and knows what it holds. */
    cal_bucket_config_default(&cfg);
    cfg.sync_interval_ms = 0;
    cal_bucket_t next;
    open_bucket(&next, root, &cfg);
    scan_dir(root, 1, &s);
    FWT_ASSERT(s.sealed);
    FWT_ASSERT_UINT_EQ(s.blocks, 2);
    blk_t *retry_two = make_block(11, 2, 2, 60, CAL_ACK_DURABLE);
    blk_t *retry_three = make_block(11, 3, 2, 60, CAL_ACK_DURABLE);
    cal_bucket_append(&next, &retry_two->a);
    FWT_ASSERT(retry_two->done);
    FWT_ASSERT_OK(retry_two->status);
    FWT_ASSERT(retry_two->a.duplicate);
    cal_bucket_append(&next, &retry_three->a);
    run_until(&retry_three->done, 1);
    FWT_ASSERT_OK(retry_three->status);
    FWT_ASSERT(!retry_three->a.duplicate);
    FWT_ASSERT_UINT_EQ(retry_three->a.segment_id, 2);
    close_bucket(&next);
    for (int i = 0; i < N; i++)
        free_block(blks[i]);
    free_block(retry_two);
    free_block(retry_three);
    teardown();
}

FWT_TEST(abandon_with_a_write_in_flight)
{
    setup();
    const char *root = fwt_tmpdir_mem();
    cal_bucket_config_t cfg;
    cal_bucket_config_default(&cfg);
    cfg.sync_interval_ms = 0;
    cal_bucket_t b;
    open_bucket(&b, root, &cfg);
    acked = 0;
    gate_t *g = gate_submit();
    blk_t *one = make_block(12, 1, 1, 100, CAL_ACK_DURABLE);
    blk_t *two = make_block(12, 2, 1, 100, CAL_ACK_DURABLE);
    cal_bucket_append(&b, &one->a); /* behind the gate */
    cal_bucket_append(&b, &two->a); /* waiting */
    int before = closed;
    cal_bucket_abandon(&b, on_close);
    FWT_ASSERT(two->done);
    FWT_ASSERT_INT_EQ(two->status, FW_ERETRY_LATER);
    FWT_ASSERT(!one->done);
    FWT_ASSERT_INT_EQ(closed, before);
    blk_t *late = make_block(12, 2, 1, 100, CAL_ACK_DURABLE);
    cal_bucket_append(&b, &late->a);
    FWT_ASSERT(late->done);
    FWT_ASSERT_INT_EQ(late->status, FW_ERETRY_LATER);
    gate_release(g);
    run_until(&closed, before + 1);
    /* The write under way finished (the lease allowed it) and was acked first. */
    FWT_ASSERT(one->done);
    FWT_ASSERT_OK(one->status);
    fw_seg_scan_t s;
    scan_dir(root, 1, &s);
    FWT_ASSERT(!s.sealed);
    FWT_ASSERT_UINT_EQ(s.blocks, 1);
    free_block(one);
    free_block(two);
    free_block(late);
    teardown();
}

FWT_TEST(abandon_during_a_close_skips_the_seal)
{
    setup();
    const char *root = fwt_tmpdir_mem();
    cal_bucket_config_t cfg;
    cal_bucket_config_default(&cfg);
    cfg.sync_interval_ms = 0;
    cal_bucket_t b;
    open_bucket(&b, root, &cfg);
    acked = 0;
    blk_t *one = make_block(13, 1, 1, 100, CAL_ACK_DURABLE);
    cal_bucket_append(&b, &one->a);
    run_until(&acked, 1);
    FWT_ASSERT_OK(one->status);
    /* The close's seal job waits behind the gate when the bucket is lost. */
    gate_t *g = gate_submit();
    int before = closed;
    cal_bucket_close(&b, on_close);
    cal_bucket_abandon(&b, on_close);
    gate_release(g);
    run_until(&closed, before + 1);
    run_ticks(2);
    FWT_ASSERT_INT_EQ(closed, before + 1); /* one close_cb, not two */
    fw_seg_scan_t s;
    scan_dir(root, 1, &s);
    FWT_ASSERT(!s.sealed);
    FWT_ASSERT_UINT_EQ(s.blocks, 1);
    free_block(one);
    teardown();
}

/* No gate: the seal job runs on the disk thread while the loop abandons. The
 * seal may or may not be written; the segment stays whole either way (and a
 * TSAN build checks that the flag crossing threads is not a data race). */
FWT_TEST(abandon_right_after_close)
{
    setup();
    const char *root = fwt_tmpdir_mem();
    cal_bucket_config_t cfg;
    cal_bucket_config_default(&cfg);
    cfg.sync_interval_ms = 0;
    cal_bucket_t b;
    open_bucket(&b, root, &cfg);
    acked = 0;
    blk_t *one = make_block(14, 1, 1, 100, CAL_ACK_DURABLE);
    cal_bucket_append(&b, &one->a);
    run_until(&acked, 1);
    FWT_ASSERT_OK(one->status);
    int before = closed;
    cal_bucket_close(&b, on_close);
    cal_bucket_abandon(&b, on_close);
    run_until(&closed, before + 1);
    run_ticks(2);
    FWT_ASSERT_INT_EQ(closed, before + 1);
    fw_seg_scan_t s;
    scan_dir(root, 1, &s);
    FWT_ASSERT_UINT_EQ(s.blocks, 1);
    FWT_ASSERT_INT_EQ(s.damage, 0);
    free_block(one);
    teardown();
}

FWT_TEST(abandon_while_opening)
{
    setup();
    const char *root = fwt_tmpdir_mem();
    cal_bucket_config_t cfg;
    cal_bucket_config_default(&cfg);
    gate_t *g = gate_submit();
    cal_bucket_t b;
    int before = closed;
    FWT_ASSERT_OK(cal_bucket_open(&b, &loop, &disk, root, "web_clicks", 3, 7, 1, &cfg, on_open));
    cal_bucket_abandon(&b, on_close);
    gate_release(g);
    run_until(&closed, before + 1);
    FWT_ASSERT_INT_EQ(b.state, CAL_BUCKET_CLOSED);
    uint64_t ids[4];
    FWT_ASSERT_INT_EQ(seg_ids(root, ids, 4), 0);
    teardown();
}

/* ---- the lock of an open segment ---------------------------------------------------- */

FWT_TEST(open_waits_while_another_writer_holds_a_segment)
{
    setup();
    const char *root = fwt_tmpdir_mem();
    char dir[1024];
    FWT_ASSERT_OK(fw_seg_bucket_dir(dir, sizeof(dir), root, "web_clicks", 3));
    FWT_ASSERT_OK(fw_mkdir_p(dir));
    /* The previous owner, still writing segment 5 (it has not seen it lost the bucket). */
    fw_seg_header_t h = {.segment_id = 5, .epoch = 6, .created_ms = 1, .bucket = 3};
    strcpy(h.category, "web_clicks");
    fw_segw_t *w;
    FWT_ASSERT_OK(fw_segw_create(dir, &h, &w));
    blk_t *x = make_block(21, 1, 2, 20, CAL_ACK_DURABLE);
    struct iovec iov = {x->bytes, x->a.len};
    uint64_t off;
    FWT_ASSERT_OK(fw_segw_append(w, &iov, 1, 1, 2, &off));
    uint64_t size = seg_size(root, 5);

    cal_bucket_config_t cfg;
    cal_bucket_config_default(&cfg);
    cal_bucket_t b;
    try_open(&b, root, &cfg);
    FWT_ASSERT_INT_EQ(open_status, FW_ERETRY_LATER);
    FWT_ASSERT_INT_EQ(b.state, CAL_BUCKET_FAILED);
    close_bucket(&b);
    /* Nothing touched under the writer's feet. */
    FWT_ASSERT_UINT_EQ(seg_size(root, 5), size);
    fw_seg_scan_t s;
    scan_dir(root, 5, &s);
    FWT_ASSERT(!s.sealed);
    uint64_t ids[4];
    FWT_ASSERT_INT_EQ(seg_ids(root, ids, 4), 1);

    /* It lets go: the next open recovers, seals and learns the segment. */
    fw_segw_close(w);
    open_bucket(&b, root, &cfg);
    scan_dir(root, 5, &s);
    FWT_ASSERT(s.sealed);
    FWT_ASSERT_UINT_EQ(s.blocks, 1);
    acked = 0;
    blk_t *retry = make_block(21, 1, 2, 20, CAL_ACK_DURABLE);
    cal_bucket_append(&b, &retry->a);
    FWT_ASSERT(retry->done);
    FWT_ASSERT(retry->a.duplicate);
    blk_t *two = make_block(21, 2, 2, 20, CAL_ACK_DURABLE);
    cal_bucket_append(&b, &two->a);
    run_until(&two->done, 1);
    FWT_ASSERT_OK(two->status);
    FWT_ASSERT_UINT_EQ(two->a.segment_id, 6);
    close_bucket(&b);
    free_block(x);
    free_block(retry);
    free_block(two);
    teardown();
}

/* ---- a group write that fails after whole blocks landed ------------------------------ */

/*
 * Opens a bucket (group commit window of 50 ms), stores producer 31's
 * sequence 1 alone, then limits files to room for its next block and 10
 * bytes, and queues sequences 2 and 3 so that they go out as one group
 * write: 2 lands whole, 3 is torn. Returns the two blocks.
 */
static void group_hits_the_limit(cal_bucket_t *b, const char *root, blk_t **two, blk_t **three)
{
    signal(SIGXFSZ, SIG_IGN);
    getrlimit(RLIMIT_FSIZE, &saved);
    fwt_defer(restore_limit, NULL);
    cal_bucket_config_t cfg;
    cal_bucket_config_default(&cfg);
    cfg.sync_interval_ms = 50;
    open_bucket(b, root, &cfg);
    acked = 0;
    blk_t *one = make_block(31, 1, 1, 100, CAL_ACK_DURABLE);
    cal_bucket_append(b, &one->a);
    run_until(&acked, 1);
    FWT_ASSERT_OK(one->status);
    *two = make_block(31, 2, 1, 3000, CAL_ACK_DURABLE);
    *three = make_block(31, 3, 1, 3000, CAL_ACK_DURABLE);
    struct rlimit lim = saved;
    lim.rlim_cur = one->a.offset + one->a.len + (*two)->a.len + 10;
    FWT_ASSERT_INT_EQ(setrlimit(RLIMIT_FSIZE, &lim), 0);
    free_block(one);
    cal_bucket_append(b, &(*two)->a);
    cal_bucket_append(b, &(*three)->a);
}

/* After the failed group: segment 1 is recovered with sequences 1 and 2 (the
 * torn 3 cut), a retry of 2 is a duplicate, a retry of 3 is stored once. */
static void reopen_and_retry(const char *root)
{
    cal_bucket_config_t cfg;
    cal_bucket_config_default(&cfg);
    cfg.sync_interval_ms = 0;
    cal_bucket_t b;
    open_bucket(&b, root, &cfg);
    fw_seg_scan_t s;
    scan_dir(root, 1, &s);
    FWT_ASSERT(s.sealed);
    FWT_ASSERT_INT_EQ(s.damage, 0);
    expect_sequences_1_to(root, 1, 2);
    int before = acked;
    blk_t *two = make_block(31, 2, 1, 3000, CAL_ACK_DURABLE);
    cal_bucket_append(&b, &two->a);
    FWT_ASSERT(two->done);
    FWT_ASSERT_OK(two->status);
    FWT_ASSERT(two->a.duplicate);
    blk_t *three = make_block(31, 3, 1, 3000, CAL_ACK_DURABLE);
    cal_bucket_append(&b, &three->a);
    run_until(&acked, before + 2);
    FWT_ASSERT_OK(three->status);
    FWT_ASSERT(!three->a.duplicate);
    FWT_ASSERT_UINT_EQ(three->a.segment_id, 2);
    close_bucket(&b);
    uint64_t got[4];
    FWT_ASSERT_INT_EQ(seg_sequences(root, 2, got, 4), 1);
    FWT_ASSERT_UINT_EQ(got[0], 3);
    free_block(two);
    free_block(three);
}

/*
 * The block that landed whole stays (readers may have it), the producers of
 * the group get retry-later, the bucket takes nothing more, and the next
 * owner's recovery keeps the whole block: its retry is a duplicate, the torn
 * block's retry is stored once.
 */
FWT_TEST(a_group_write_that_fails_after_a_whole_block_fails_the_bucket)
{
    setup();
    const char *root = fwt_tmpdir_mem();
    cal_bucket_t b;
    blk_t *two, *three;
    group_hits_the_limit(&b, root, &two, &three);
    run_until(&acked, 3);
    FWT_ASSERT_INT_EQ(two->status, FW_ERETRY_LATER);
    FWT_ASSERT_INT_EQ(three->status, FW_ERETRY_LATER);
    FWT_ASSERT_INT_EQ(b.state, CAL_BUCKET_FAILED);
    restore_limit(NULL);
    /* Not even a retry is taken: the in-memory table does not know 2 landed. */
    blk_t *retry = make_block(31, 2, 1, 3000, CAL_ACK_DURABLE);
    cal_bucket_append(&b, &retry->a);
    FWT_ASSERT(retry->done);
    FWT_ASSERT_INT_EQ(retry->status, FW_ERETRY_LATER);
    close_bucket(&b);
    reopen_and_retry(root);
    free_block(two);
    free_block(three);
    free_block(retry);
    teardown();
}

/*
 * Found in review: the same failure while the bucket is closing (a hand-back,
 * a shutdown flushing what waits). The failure must not turn the closing
 * bucket into a failed one that never closes: close_cb must run, the segment
 * be let go (unsealed, for recovery), and the owner node be released.
 */
FWT_TEST(a_group_write_that_fails_after_a_whole_block_during_a_close_still_closes)
{
    setup();
    const char *root = fwt_tmpdir_mem();
    cal_bucket_t b;
    blk_t *two, *three;
    group_hits_the_limit(&b, root, &two, &three);
    int before = closed;
    cal_bucket_close(&b, on_close); /* flushes 2 and 3 at once */
    run_until(&closed, before + 1);
    FWT_ASSERT_INT_EQ(b.state, CAL_BUCKET_CLOSED);
    FWT_ASSERT(two->done && three->done);
    FWT_ASSERT_INT_EQ(two->status, FW_ERETRY_LATER);
    FWT_ASSERT_INT_EQ(three->status, FW_ERETRY_LATER);
    restore_limit(NULL);
    reopen_and_retry(root);
    free_block(two);
    free_block(three);
    teardown();
}
