/*
 * A writer's bucket on real files: group commit, acks at each level,
 * retries stored once, recovery of a torn segment left by a crash, rolls,
 * and a full disk. Driven on a real loop with the real disk thread.
 */
#include "fwtest.h"
#include "fwt_proc.h"

#include "bucket.h"
#include "error.h"
#include "fsutil.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
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

static void on_tick(uv_timer_t *t)
{
    (void)t;
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
