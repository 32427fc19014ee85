/*
 * ptail against the files as they really look: a segment growing a few
 * bytes at a time (a reader racing a writer), a torn tail left by a writer
 * killed mid-append, and a block damaged beyond repair. ptail must never
 * send a partial or damaged block, must wait at a torn tail until the
 * writer's recovery settles it, and must report damage it cannot wait out
 * as an explicit gap, then go on.
 */
#include "fwt_cal.h"
#include "fwt_root.h"
#include "fwt_stream.h"
#include "fwt_zk.h"
#include "fwtest.h"

#include "block.h"
#include "checkpoint.h"
#include "fsutil.h"
#include "names.h"
#include "segment.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    FWT_ASSERT(f != NULL);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *data = malloc((size_t)n + 1);
    FWT_ASSERT(data != NULL);
    FWT_ASSERT_UINT_EQ(fread(data, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return data;
}

static void segment_path(const char *dir, uint64_t id, char *out, size_t n)
{
    char name[FW_SEG_NAME_LEN + 1];
    fw_seg_name(name, id);
    snprintf(out, n, "%s/%s", dir, name);
}

/* Records must come as "<segment>:<block>:<record>" in exactly the order written. */
typedef struct order_s {
    uint64_t segment;
    int block, record;
    int per_block, blocks_of[16];
} order_t;

static void check_order(fwt_stream_t *s, const fw_position_t *pos, const fw_record_t *rec)
{
    (void)pos;
    order_t *o = s->arg;
    char want[64];
    snprintf(want, sizeof(want), "%llu:%d:%d", (unsigned long long)o->segment, o->block, o->record);
    if (rec->value_len != strlen(want) || memcmp(rec->value, want, rec->value_len) != 0)
        FWT_FAIL("record %llu: got \"%.*s\", want \"%s\"", (unsigned long long)s->records,
                 (int)rec->value_len, (const char *)rec->value, want);
    if (++o->record == o->per_block) {
        o->record = 0;
        if (++o->block == o->blocks_of[o->segment]) {
            o->block = 0;
            o->segment++;
        }
    }
}

/* ---- a reader racing a writer ----------------------------------------------------------- */

typedef struct dribble_s {
    const char *dir;
    char *bytes[3];
    size_t len[3];
} dribble_t;

/* Copies segments 1 and 2 into the bucket directory a few bytes at a time. */
static void *dribble(void *arg)
{
    dribble_t *d = arg;
    for (int s = 1; s <= 2; s++) {
        char path[1200];
        segment_path(d->dir, (uint64_t)s, path, sizeof(path));
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (fd < 0)
            abort();
        for (size_t off = 0; off < d->len[s];) {
            size_t n = (size_t)fwt_rand_range(1, 700);
            if (n > d->len[s] - off)
                n = d->len[s] - off;
            if (write(fd, d->bytes[s] + off, n) != (ssize_t)n)
                abort();
            off += n;
            /* Give ptail moments in which the file ends anywhere: mid-header, mid-payload. */
            if (fwt_rand() % 8 == 0)
                usleep((useconds_t)fwt_rand_range(0, 300));
        }
        close(fd);
    }
    return NULL;
}

FWT_TEST(a_reader_racing_a_writer_never_sees_a_partial_block)
{
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char spec[128], root[FWT_PATH_MAX], dir[FWT_PATH_MAX + 16], scratch[FWT_PATH_MAX];
    snprintf(spec, sizeof(spec), "%s/freeway", zk.connect);
    snprintf(root, sizeof(root), "%s/root", fwt_tmpdir_mem());
    snprintf(dir, sizeof(dir), "%s/web/0", root);
    snprintf(scratch, sizeof(scratch), "%s/scratch", fwt_tmpdir_mem());
    FWT_ASSERT_OK(fw_mkdir_p(dir));
    FWT_ASSERT_OK(fw_mkdir_p(scratch));
    /* The segments are made aside, then copied in slowly, as if being written. */
    order_t o = {.segment = 1, .per_block = 5, .blocks_of = {0, 300, 200}};
    fwt_segment_write(scratch, "web", 1, 300, 5, 1000, 1);
    fwt_segment_write(scratch, "web", 2, 200, 5, 2000, 0);
    dribble_t d = {.dir = dir};
    for (int s = 1; s <= 2; s++) {
        char path[1200];
        segment_path(scratch, (uint64_t)s, path, sizeof(path));
        d.bytes[s] = read_file(path, &d.len[s]);
    }
    fwt_cal_t pt;
    fwt_ptail_start(&pt, "p1", spec, root, NULL);
    Fwpb__SubscribeRequest req = FWPB__SUBSCRIBE_REQUEST__INIT;
    req.category = "web";
    fwt_stream_t st;
    fwt_stream_open(&st, pt.address, &req, check_order, &o);
    pthread_t writer;
    FWT_ASSERT_INT_EQ(pthread_create(&writer, NULL, dribble, &d), 0);
    fwt_stream_until(&st, 500 * 5, 20000); /* every block checked again by the harness */
    pthread_join(writer, NULL);
    FWT_ASSERT_UINT_EQ(st.gaps, 0);
    printf("%llu records in %d blocks, all whole, in order\n", (unsigned long long)st.records, 500);
    fwt_stream_close(&st);
    free(d.bytes[1]);
    free(d.bytes[2]);
    fwt_cal_stop(&pt);
    fwt_zk_stop(&zk);
}

/* ---- a torn tail, then recovery ---------------------------------------------------------- */

typedef struct lines_seen_s {
    uint8_t seen[4000];
    uint64_t dups;
} lines_seen_t;

static void count_line(fwt_stream_t *s, const fw_position_t *pos, const fw_record_t *rec)
{
    (void)pos;
    lines_seen_t *l = s->arg;
    uint64_t n = fwt_stream_line_number(rec);
    FWT_ASSERT(n < 4000);
    if (l->seen[n]++)
        l->dups++;
}

/* The newest segment file of a bucket directory. */
static void newest_segment(const char *dir, char *out, size_t n)
{
    uint64_t *ids;
    size_t count;
    FWT_ASSERT_OK(fw_seg_list(dir, &ids, &count));
    FWT_ASSERT(count > 0);
    segment_path(dir, ids[count - 1], out, n);
    free(ids);
}

FWT_TEST(a_torn_tail_waits_for_the_writers_recovery)
{
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char spec[128], root[FWT_PATH_MAX], dir[FWT_PATH_MAX + 16], seg[1200];
    snprintf(spec, sizeof(spec), "%s/freeway", zk.connect);
    snprintf(root, sizeof(root), "%s/root", fwt_tmpdir_mem());
    snprintf(dir, sizeof(dir), "%s/web/0", root);
    fwt_category_create(spec, "web", 1, NULL);
    fwt_cal_t cal, pt;
    fwt_cal_start(&cal, "w1", spec, root, NULL);
    fwt_cal_wait_owns(&cal, 1, "the writer to own the bucket");
    /* A short damage grace: the torn tail must hold the stream even so. */
    const char *pt_flags[] = {"--damage-grace", "100ms", NULL};
    fwt_ptail_start(&pt, "p1", spec, root, pt_flags);
    fwt_send_lines(spec, "web", 0, 2000, 64, NULL);
    lines_seen_t *seen = calloc(1, sizeof(*seen));
    FWT_ASSERT(seen != NULL);
    Fwpb__SubscribeRequest req = FWPB__SUBSCRIBE_REQUEST__INIT;
    req.category = "web";
    fwt_stream_t st;
    fwt_stream_open(&st, pt.address, &req, count_line, seen);
    fwt_stream_until(&st, 2000, 10000);

    /*
     * The writer dies mid-append. kill -9 alone cannot be made to tear a
     * write, so the torn tail it would leave is put there by hand: the first
     * half of a valid block.
     */
    fwt_cal_kill(&cal);
    newest_segment(dir, seg, sizeof(seg));
    fw_buf_t blk = FW_BUF_INIT;
    fwt_wire_block(&blk, 99, 1, 50, 100);
    int fd = open(seg, O_WRONLY | O_APPEND);
    FWT_ASSERT(fd >= 0);
    FWT_ASSERT_INT_EQ(write(fd, blk.data, blk.len / 2), (ssize_t)(blk.len / 2));
    close(fd);
    fw_buf_free(&blk);
    /* Nothing from the torn block, and no gap: the open segment's writer may still settle it. */
    int rc;
    while ((rc = fwt_stream_step(&st, 1000)) == 1) {
        FWT_ASSERT_UINT_EQ(st.records, 2000); /* checkpoints may come; records may not */
        FWT_ASSERT_UINT_EQ(st.gaps, 0);
    }
    FWT_ASSERT_INT_EQ(rc, -ETIMEDOUT);

    /* Recovery cuts the torn tail and seals; the stream goes on with new records, once each. */
    fwt_cal_restart(&cal);
    fwt_cal_wait_owns(&cal, 1, "the restarted writer to own the bucket");
    fwt_send_lines(spec, "web", 2000, 2000, 64, NULL);
    fwt_stream_until(&st, 4000, 20000);
    FWT_ASSERT_UINT_EQ(st.gaps, 0);
    FWT_ASSERT_UINT_EQ(seen->dups, 0);
    for (int i = 0; i < 4000; i++)
        FWT_ASSERT_INT_EQ(seen->seen[i], 1);
    fwt_stream_close(&st);
    free(seen);
    fwt_cal_stop(&pt);
    fwt_cal_stop(&cal);
    fwt_zk_stop(&zk);
}

/* ---- damage beyond repair ---------------------------------------------------------------- */

FWT_TEST(a_damaged_block_in_a_finished_segment_becomes_a_gap)
{
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char spec[128], root[FWT_PATH_MAX], dir[FWT_PATH_MAX + 16], path[1200];
    snprintf(spec, sizeof(spec), "%s/freeway", zk.connect);
    snprintf(root, sizeof(root), "%s/root", fwt_tmpdir_mem());
    snprintf(dir, sizeof(dir), "%s/web/0", root);
    FWT_ASSERT_OK(fw_mkdir_p(dir));
    fwt_segment_write(dir, "web", 1, 5, 3, 1000, 1);
    fwt_segment_write(dir, "web", 2, 3, 3, 2000, 1);
    fwt_segment_write(dir, "web", 3, 2, 3, 3000, 0);
    /* One byte of block 2's payload in segment 1 flips: its CRC no longer checks. */
    segment_path(dir, 1, path, sizeof(path));
    fw_segr_t *r;
    FWT_ASSERT_OK(fw_segr_open(path, &r));
    fw_seg_block_t b;
    for (int i = 0; i < 3; i++)
        FWT_ASSERT_INT_EQ(fw_segr_next(r, &b), FW_SEGR_BLOCK);
    uint64_t damaged_at = b.offset;
    fw_segr_close(r);
    int fd = open(path, O_RDWR);
    FWT_ASSERT(fd >= 0);
    uint8_t byte;
    FWT_ASSERT_INT_EQ(pread(fd, &byte, 1, (off_t)(damaged_at + FW_BLOCK_HEADER_SIZE + 2)), 1);
    byte ^= 0x10;
    FWT_ASSERT_INT_EQ(pwrite(fd, &byte, 1, (off_t)(damaged_at + FW_BLOCK_HEADER_SIZE + 2)), 1);
    close(fd);

    const char *pt_flags[] = {"--damage-grace", "200ms", NULL};
    fwt_cal_t pt;
    fwt_ptail_start(&pt, "p1", spec, root, pt_flags);
    Fwpb__SubscribeRequest req = FWPB__SUBSCRIBE_REQUEST__INIT;
    req.category = "web";
    fwt_stream_t st;
    fwt_stream_open(&st, pt.address, &req, NULL, NULL);
    /* Blocks 0 and 1 of segment 1, then the gap, then segments 2 and 3: (2 + 3 + 2) * 3. */
    fwt_stream_until(&st, 21, 10000);
    FWT_ASSERT_UINT_EQ(st.gaps, 1);
    FWT_ASSERT_UINT_EQ(st.last_gap_from.segment_id, 1);
    FWT_ASSERT_UINT_EQ(st.last_gap_from.offset, damaged_at);
    FWT_ASSERT_UINT_EQ(st.last_gap_to.segment_id, 2);
    FWT_ASSERT_UINT_EQ(st.last_gap_to.offset, fw_seg_first_block(3));
    FWT_ASSERT(strstr(st.last_gap_reason, "damaged") != NULL);
    printf("gap: %s\n", st.last_gap_reason);
    FWT_ASSERT(fwt_cal_metric(&pt, "freeway_ptail_gaps_sent_total{category=\"web\"}") == 1);
    fwt_stream_close(&st);
    fwt_cal_stop(&pt);
    fwt_zk_stop(&zk);
}

/* ---- a category that grows ---------------------------------------------------------------- */

typedef struct by_bucket_s {
    lines_seen_t lines;
    uint64_t per_bucket[4];
} by_bucket_t;

static void count_bucket(fwt_stream_t *s, const fw_position_t *pos, const fw_record_t *rec)
{
    by_bucket_t *b = s->arg;
    FWT_ASSERT(pos->bucket < 4);
    b->per_bucket[pos->bucket]++;
    uint64_t n = fwt_stream_line_number(rec);
    FWT_ASSERT(n < 4000);
    if (b->lines.seen[n]++)
        b->lines.dups++;
}

FWT_TEST(a_growing_category_joins_the_stream_and_buckets_split_between_consumers)
{
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char spec[128], root[FWT_PATH_MAX];
    snprintf(spec, sizeof(spec), "%s/freeway", zk.connect);
    snprintf(root, sizeof(root), "%s/root", fwt_tmpdir_mem());
    fwt_category_create(spec, "web", 2, NULL);
    fwt_cal_t cal, pt;
    fwt_cal_start(&cal, "w1", spec, root, NULL);
    fwt_cal_wait_owns(&cal, 2, "the writer to own both buckets");
    fwt_ptail_start(&pt, "p1", spec, root, NULL);
    fwt_send_lines(spec, "web", 0, 2000, 64, NULL);

    by_bucket_t *all = calloc(1, sizeof(*all)), *split = calloc(1, sizeof(*split));
    FWT_ASSERT(all != NULL && split != NULL);
    Fwpb__SubscribeRequest req = FWPB__SUBSCRIBE_REQUEST__INIT;
    req.category = "web";
    fwt_stream_t st;
    fwt_stream_open(&st, pt.address, &req, count_bucket, all);
    fwt_stream_until(&st, 2000, 10000);

    /* Two more buckets: the subscription to every bucket takes them in. */
    char *grow[] = {(char *)fwt_bin("freeway"),
                    "category",
                    "alter",
                    "web",
                    "--buckets",
                    "4",
                    "--zk",
                    spec,
                    NULL};
    FWT_ASSERT_INT_EQ(fwt_run(grow, 20000, NULL), 0);
    fwt_cal_wait_owns(&cal, 4, "the writer to own the new buckets");
    fwt_send_lines(spec, "web", 2000, 2000, 64, NULL);
    fwt_stream_until(&st, 4000, 20000);
    FWT_ASSERT_UINT_EQ(all->lines.dups, 0);
    FWT_ASSERT(all->per_bucket[2] > 0 && all->per_bucket[3] > 0);
    /* Its checkpoints name all four buckets now. */
    while (fwt_stream_step(&st, 1500) == 1)
        ;
    fw_checkpoint_t cp;
    FWT_ASSERT_OK(fw_checkpoint_decode(st.last_token.data, st.last_token.len, &cp));
    FWT_ASSERT_UINT_EQ(cp.count, 4);
    fw_checkpoint_free(&cp);

    /* A consumer of buckets 0 and 2 gets exactly their records: K consumers split a category. */
    uint32_t mine[] = {2, 0};
    req.buckets = mine;
    req.n_buckets = 2;
    fwt_stream_t half;
    fwt_stream_open(&half, pt.address, &req, count_bucket, split);
    fwt_stream_until(&half, all->per_bucket[0] + all->per_bucket[2], 10000);
    while (fwt_stream_step(&half, 300) == 1)
        ; /* checkpoints; no more records may come */
    FWT_ASSERT_UINT_EQ(half.records, all->per_bucket[0] + all->per_bucket[2]);
    FWT_ASSERT_UINT_EQ(split->per_bucket[0], all->per_bucket[0]);
    FWT_ASSERT_UINT_EQ(split->per_bucket[2], all->per_bucket[2]);
    FWT_ASSERT_UINT_EQ(split->per_bucket[1] + split->per_bucket[3], 0);
    fwt_stream_close(&half);
    fwt_stream_close(&st);
    free(all);
    free(split);
    fwt_cal_stop(&pt);
    fwt_cal_stop(&cal);
    fwt_zk_stop(&zk);
}

/* ---- a category with no files yet ------------------------------------------------------- */

static int ptail_registered(void *arg)
{
    fwt_cal_t *pt = arg;
    return fwt_file_contains(pt->log_path, "registered as");
}

FWT_TEST(a_category_with_no_files_yet_is_served_once_they_come)
{
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char spec[128], root[FWT_PATH_MAX];
    snprintf(spec, sizeof(spec), "%s/freeway", zk.connect);
    snprintf(root, sizeof(root), "%s/root", fwt_tmpdir_mem());
    fwt_category_create(spec, "web", 2, NULL);
    /* No writer yet: the category exists only in ZooKeeper. */
    fwt_cal_t cal, pt;
    fwt_ptail_start(&pt, "p1", spec, root, NULL);
    /* Until its ZooKeeper session is up, ptail could only say "try again". */
    fwt_wait_until(ptail_registered, &pt, 20000, "ptail to register in ZooKeeper");
    lines_seen_t *seen = calloc(1, sizeof(*seen));
    FWT_ASSERT(seen != NULL);
    Fwpb__SubscribeRequest req = FWPB__SUBSCRIBE_REQUEST__INIT;
    req.category = "web";
    req.start = FWPB__START_KIND__START_LATEST; /* all of a category's first records are new */
    fwt_stream_t st;
    fwt_stream_open(&st, pt.address, &req, count_line, seen);
    FWT_ASSERT_INT_EQ(fwt_stream_step(&st, 10000), 1);
    FWT_ASSERT(st.subscribed);

    fwt_cal_start(&cal, "w1", spec, root, NULL);
    fwt_cal_wait_owns(&cal, 2, "the writer to own both buckets");
    fwt_send_lines(spec, "web", 0, 3000, 64, NULL);
    fwt_stream_until(&st, 3000, 20000);
    FWT_ASSERT_UINT_EQ(seen->dups, 0);

    /* A category in neither place is still refused. */
    Fwpb__SubscribeRequest nosuch = FWPB__SUBSCRIBE_REQUEST__INIT;
    nosuch.category = "nosuch";
    fwt_stream_t bad;
    fwt_stream_open(&bad, pt.address, &nosuch, NULL, NULL);
    fw_frame_t f;
    FWT_ASSERT_INT_EQ(fwt_wire_next(bad.fd, 10000, &bad.in, &f), 1);
    FWT_ASSERT_INT_EQ(f.type, FW_FRAME_ERROR);
    fwt_stream_close(&bad);
    fwt_stream_close(&st);
    free(seen);
    fwt_cal_stop(&pt);
    fwt_cal_stop(&cal);
    fwt_zk_stop(&zk);
}
