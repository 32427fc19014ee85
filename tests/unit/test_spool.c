/*
 * The producer's spool (client/spool.c) on real files: appends and replay in
 * order per bucket, deletion of resolved files, rolling, the size bound, a
 * restart on the same directory, torn and damaged files, the LOCK, the bound
 * on open appenders and the sync policies. Blocks are built with the block
 * builder, each with its own producer id and sequence, so every block read
 * back can be told from every other.
 */
#include "fwtest.h"
#include "fwt_proc.h"

#include "block.h"
#include "error.h"
#include "names.h"
#include "segment.h"
#include "spool.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/* ---- blocks ---------------------------------------------------------------- */

/* A block as appended: its bytes and what fw_spool_read must say of it. */
typedef struct tblock_s {
    uint8_t *data;
    size_t len;
    uint64_t producer_id;
    uint64_t sequence;
    uint32_t records;
    int64_t base_ts;
} tblock_t;

#define POOL_MAX 256
static tblock_t pool[POOL_MAX];
static size_t npool;

static void pool_free(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < npool; i++)
        free(pool[i].data);
    npool = 0;
}

/*
 * A raw (uncompressed) block of `records` records whose keys and values name
 * the producer, sequence and record. Every field has a fixed width, so all
 * blocks with the same record count have the same length.
 */
static const tblock_t *block_make(uint64_t producer_id, uint64_t sequence, uint32_t records)
{
    if (npool == 0)
        fwt_defer(pool_free, NULL);
    FWT_ASSERT(npool < POOL_MAX);
    fw_block_builder_t bld;
    fw_block_builder_init(&bld, 0);
    int64_t base_ts = 1700000000000 + (int64_t)sequence * 1000;
    for (uint32_t i = 0; i < records; i++) {
        char key[32], value[96];
        int klen = snprintf(key, sizeof(key), "p%016" PRIx64, producer_id);
        int vlen = snprintf(value, sizeof(value),
                            "producer %016" PRIx64 " sequence %08" PRIu64 " record %04" PRIu32,
                            producer_id, sequence, i);
        FWT_ASSERT_OK(
            fw_block_builder_add(&bld, base_ts + i, key, (size_t)klen, 1, value, (size_t)vlen));
    }
    const uint8_t *p;
    size_t len;
    FWT_ASSERT_OK(fw_block_builder_finish(&bld, FW_CODEC_NONE, producer_id, sequence, &p, &len));
    tblock_t *t = &pool[npool++];
    t->data = malloc(len);
    FWT_ASSERT(t->data != NULL);
    memcpy(t->data, p, len);
    t->len = len;
    t->producer_id = producer_id;
    t->sequence = sequence;
    t->records = records;
    t->base_ts = base_ts;
    fw_block_builder_free(&bld);
    return t;
}

/* ---- what the spool logs --------------------------------------------------- */

#define LOG_MAX 64

typedef struct logcap_s {
    int n;
    fw_producer_log_level_t level[LOG_MAX];
    char msg[LOG_MAX][800];
} logcap_t;

static logcap_t logs;

static void log_capture(fw_producer_log_level_t level, const char *message, void *arg)
{
    logcap_t *l = arg;
    fprintf(stderr, "spool log (level %d): %s\n", (int)level, message);
    if (l->n < LOG_MAX) {
        l->level[l->n] = level;
        snprintf(l->msg[l->n], sizeof(l->msg[l->n]), "%s", message);
        l->n++;
    }
}

static void logs_reset(void)
{
    memset(&logs, 0, sizeof(logs));
}

/* The first message logged that contains both a and b (b may be NULL), or NULL. */
static const char *log_find(const char *a, const char *b)
{
    for (int i = 0; i < logs.n; i++) {
        if (strstr(logs.msg[i], a) != NULL && (b == NULL || strstr(logs.msg[i], b) != NULL))
            return logs.msg[i];
    }
    return NULL;
}

/* ---- spools ------------------------------------------------------------------ */

/* Spools still open, closed by a cleanup if the test fails. */
#define SPOOLS_MAX 4
static fw_spool_t *spools[SPOOLS_MAX];
static int spools_deferred;

static void spools_close_all(void *arg)
{
    (void)arg;
    for (int i = 0; i < SPOOLS_MAX; i++) {
        fw_spool_close(spools[i]);
        spools[i] = NULL;
    }
}

static fw_spool_config_t config(const char *dir)
{
    fw_spool_config_t c;
    memset(&c, 0, sizeof(c));
    c.dir = dir;
    c.max_bytes = 1ull << 30;
    c.sync = FW_SPOOL_SYNC_INTERVAL;
    c.log_cb = log_capture;
    c.log_arg = &logs;
    return c;
}

static fw_spool_t *spool_open(const fw_spool_config_t *c)
{
    if (!spools_deferred) {
        fwt_defer(spools_close_all, NULL);
        spools_deferred = 1;
    }
    char err[512];
    fw_spool_t *s = NULL;
    int rc = fw_spool_open(c, &s, err, sizeof(err));
    if (rc < 0)
        FWT_FAIL("fw_spool_open %s: %d (%s): %s", c->dir, rc, fw_err_name(rc), err);
    FWT_ASSERT(s != NULL);
    for (int i = 0; i < SPOOLS_MAX; i++) {
        if (spools[i] == NULL) {
            spools[i] = s;
            return s;
        }
    }
    FWT_FAIL("too many spools open");
}

static void spool_close(fw_spool_t *s)
{
    for (int i = 0; i < SPOOLS_MAX; i++) {
        if (spools[i] == s)
            spools[i] = NULL;
    }
    fw_spool_close(s);
}

static fw_spool_bucket_t *bucket_make(fw_spool_t *s, const char *category, uint32_t id)
{
    fw_spool_bucket_t *b = fw_spool_bucket(s, category, id, 1);
    FWT_ASSERT(b != NULL);
    FWT_ASSERT_STR_EQ(fw_spool_bucket_category(b), category);
    FWT_ASSERT_UINT_EQ(fw_spool_bucket_id(b), id);
    return b;
}

static void append(fw_spool_t *s, fw_spool_bucket_t *b, const tblock_t *t)
{
    int rc = fw_spool_append(s, b, t->data, t->len, t->records);
    if (rc != 0)
        FWT_FAIL("appending sequence %" PRIu64 " to %s/%" PRIu32 ": %d (%s)", t->sequence,
                 fw_spool_bucket_category(b), fw_spool_bucket_id(b), rc, fw_err_name(rc));
}

/* ---- reading back -------------------------------------------------------------- */

static fw_buf_t rbuf = FW_BUF_INIT;

static void rbuf_free(void *arg)
{
    (void)arg;
    fw_buf_free(&rbuf);
}

/* Reads the bucket's next block, which must be `want`, byte for byte; returns its ref. */
static fw_spool_ref_t read_expect_at(int line, fw_spool_t *s, fw_spool_bucket_t *b,
                                     const tblock_t *want)
{
    static int deferred;
    if (!deferred) {
        fwt_defer(rbuf_free, NULL);
        deferred = 1;
    }
    fw_spool_block_t blk;
    memset(&blk, 0xa5, sizeof(blk));
    int rc = fw_spool_read(s, b, &rbuf, &blk);
    const char *cat = fw_spool_bucket_category(b);
    uint32_t id = fw_spool_bucket_id(b);
    if (rc != 1)
        fwt_fail(__FILE__, line, "%s/%" PRIu32 ": want sequence %" PRIu64 ", read returned %d (%s)",
                 cat, id, want->sequence, rc, rc < 0 ? fw_err_name(rc) : "no block");
    if (blk.producer_id != want->producer_id || blk.sequence != want->sequence)
        fwt_fail(__FILE__, line,
                 "%s/%" PRIu32 ": read producer %" PRIx64 " sequence %" PRIu64
                 ", want producer %" PRIx64 " sequence %" PRIu64,
                 cat, id, blk.producer_id, blk.sequence, want->producer_id, want->sequence);
    if (blk.records != want->records || blk.ref.records != want->records ||
        blk.base_ts != want->base_ts)
        fwt_fail(__FILE__, line,
                 "%s/%" PRIu32 " sequence %" PRIu64 ": records %" PRIu32 " (ref %" PRIu32
                 ") base_ts %" PRId64 ", want %" PRIu32 " and %" PRId64,
                 cat, id, want->sequence, blk.records, blk.ref.records, blk.base_ts, want->records,
                 want->base_ts);
    if (rbuf.len != want->len || memcmp(rbuf.data, want->data, want->len) != 0)
        fwt_fail(__FILE__, line, "%s/%" PRIu32 " sequence %" PRIu64 ": the bytes differ (%zu, %zu)",
                 cat, id, want->sequence, rbuf.len, want->len);
    return blk.ref;
}

static void read_none_at(int line, fw_spool_t *s, fw_spool_bucket_t *b)
{
    fw_spool_block_t blk;
    int rc = fw_spool_read(s, b, &rbuf, &blk);
    if (rc != 0)
        fwt_fail(__FILE__, line,
                 "%s/%" PRIu32 ": want nothing unread, read returned %d (sequence %" PRIu64 ")",
                 fw_spool_bucket_category(b), fw_spool_bucket_id(b), rc,
                 rc == 1 ? blk.sequence : 0);
}

#define READ_EXPECT(s, b, want) read_expect_at(__LINE__, (s), (b), (want))
#define READ_NONE(s, b)         read_none_at(__LINE__, (s), (b))

static void usage_expect_at(int line, const fw_spool_t *s, uint64_t bytes, uint64_t blocks,
                            uint64_t records, uint32_t buckets)
{
    fw_spool_usage_t u;
    memset(&u, 0xa5, sizeof(u));
    fw_spool_usage(s, &u);
    if (u.bytes != bytes || u.blocks != blocks || u.records != records || u.buckets != buckets)
        fwt_fail(__FILE__, line,
                 "usage: %" PRIu64 " bytes, %" PRIu64 " blocks, %" PRIu64 " records, %" PRIu32
                 " buckets; want %" PRIu64 ", %" PRIu64 ", %" PRIu64 ", %" PRIu32,
                 u.bytes, u.blocks, u.records, u.buckets, bytes, blocks, records, buckets);
}

#define USAGE_EXPECT(s, bytes, blocks, records, buckets)                                           \
    usage_expect_at(__LINE__, (s), (bytes), (blocks), (records), (buckets))

/* ---- files ---------------------------------------------------------------------- */

/* Where the first block of a spool file of this category starts. */
static uint64_t header_len(const char *category)
{
    return fw_seg_first_block(strlen(category));
}

static void bucket_dir(char *out, const char *root, const char *category, uint32_t bucket)
{
    FWT_ASSERT_OK(fw_seg_bucket_dir(out, PATH_MAX, root, category, bucket));
}

static void seg_path(char *out, const char *root, const char *category, uint32_t bucket,
                     uint64_t file_id)
{
    char dir[PATH_MAX], name[FW_SEG_NAME_LEN + 1];
    bucket_dir(dir, root, category, bucket);
    fw_seg_name(name, file_id);
    FWT_ASSERT(snprintf(out, PATH_MAX, "%s/%s", dir, name) < PATH_MAX);
}

/* The .seg files of a bucket directory (none if it does not exist), and their bytes. */
static size_t seg_count(const char *root, const char *category, uint32_t bucket, uint64_t *bytes)
{
    char dir[PATH_MAX];
    bucket_dir(dir, root, category, bucket);
    uint64_t *ids = NULL;
    size_t n = 0;
    int rc = fw_seg_list(dir, &ids, &n);
    if (bytes != NULL)
        *bytes = 0;
    if (rc == -ENOENT)
        return 0;
    FWT_ASSERT_OK(rc);
    for (size_t i = 0; i < n && bytes != NULL; i++) {
        char path[PATH_MAX];
        struct stat st;
        seg_path(path, root, category, bucket, ids[i]);
        FWT_ASSERT(stat(path, &st) == 0);
        *bytes += (uint64_t)st.st_size;
    }
    free(ids);
    return n;
}

static int seg_exists(const char *root, const char *category, uint32_t bucket, uint64_t file_id)
{
    char path[PATH_MAX];
    struct stat st;
    seg_path(path, root, category, bucket, file_id);
    return stat(path, &st) == 0;
}

static uint64_t seg_size(const char *root, const char *category, uint32_t bucket, uint64_t file_id)
{
    char path[PATH_MAX];
    struct stat st;
    seg_path(path, root, category, bucket, file_id);
    if (stat(path, &st) != 0)
        FWT_FAIL("stat %s: %s", path, strerror(errno));
    return (uint64_t)st.st_size;
}

/* A subdirectory of the test's directory (made by the spool itself). */
static const char *subdir(const char *name)
{
    static char paths[4][PATH_MAX];
    static int next;
    char *p = paths[next++ % 4];
    FWT_ASSERT(snprintf(p, PATH_MAX, "%s/%s", fwt_tmpdir_mem(), name) < PATH_MAX);
    return p;
}

/* ---- tests ------------------------------------------------------------------------ */

/*
 * Two buckets (of two categories) take interleaved appends; each reads back
 * its own blocks in append order, byte for byte, then says nothing is
 * unread; reading resolves nothing; a block appended after the reader
 * reached the end of the open file is read next. Usage counts every file's
 * bytes (headers included, as on disk), blocks, records and buckets.
 */
FWT_TEST(blocks_of_two_buckets_read_back_in_append_order_per_bucket_with_usage_counted)
{
    const char *dir = subdir("spool");
    fw_spool_config_t c = config(dir);
    fw_spool_t *s = spool_open(&c);
    USAGE_EXPECT(s, 0, 0, 0, 0);
    FWT_ASSERT(fw_spool_next_bucket(s, NULL) == NULL);
    FWT_ASSERT(fw_spool_bucket(s, "alpha", 3, 0) == NULL);

    fw_spool_bucket_t *a = bucket_make(s, "alpha", 3);
    fw_spool_bucket_t *b = bucket_make(s, "beta.logs", 0);
    FWT_ASSERT(fw_spool_bucket(s, "alpha", 3, 0) == a);
    FWT_ASSERT(fw_spool_bucket(s, "alpha", 3, 1) == a);
    FWT_ASSERT(fw_spool_bucket(s, "beta.logs", 0, 0) == b);
    FWT_ASSERT(fw_spool_bucket(s, "alpha", 4, 0) == NULL);
    /* Made but empty: not listed. */
    FWT_ASSERT(fw_spool_next_bucket(s, NULL) == NULL);
    FWT_ASSERT(fw_spool_bucket_empty(a));

    const tblock_t *ta[6], *tb[3];
    uint64_t bytes = header_len("alpha") + header_len("beta.logs"), records = 0;
    for (int i = 0; i < 5; i++) {
        ta[i] = block_make(0xa11ce, (uint64_t)i + 1, (uint32_t)i + 1);
        append(s, a, ta[i]);
        bytes += ta[i]->len;
        records += ta[i]->records;
        if (i < 3) {
            tb[i] = block_make(0xb0b, (uint64_t)i + 1, 2);
            append(s, b, tb[i]);
            bytes += tb[i]->len;
            records += tb[i]->records;
        }
    }
    USAGE_EXPECT(s, bytes, 8, records, 2);
    uint64_t disk_a, disk_b;
    FWT_ASSERT_UINT_EQ(seg_count(dir, "alpha", 3, &disk_a), 1);
    FWT_ASSERT_UINT_EQ(seg_count(dir, "beta.logs", 0, &disk_b), 1);
    FWT_ASSERT_UINT_EQ(disk_a + disk_b, bytes);
    FWT_ASSERT(!fw_spool_bucket_empty(a));
    FWT_ASSERT(!fw_spool_bucket_empty(b));

    /* Listed in the order they were made. */
    FWT_ASSERT(fw_spool_next_bucket(s, NULL) == a);
    FWT_ASSERT(fw_spool_next_bucket(s, a) == b);
    FWT_ASSERT(fw_spool_next_bucket(s, b) == NULL);

    /* B first, then A: each bucket has its own reader. */
    READ_EXPECT(s, b, tb[0]);
    for (int i = 0; i < 5; i++)
        READ_EXPECT(s, a, ta[i]);
    READ_NONE(s, a);
    READ_NONE(s, a);
    READ_EXPECT(s, b, tb[1]);
    READ_EXPECT(s, b, tb[2]);
    READ_NONE(s, b);
    /* Reading is not resolving. */
    USAGE_EXPECT(s, bytes, 8, records, 2);
    FWT_ASSERT(!fw_spool_bucket_empty(a));

    /* The reader stopped at the end of the file still being appended to: it goes on from there. */
    ta[5] = block_make(0xa11ce, 6, 1);
    append(s, a, ta[5]);
    bytes += ta[5]->len;
    records += ta[5]->records;
    USAGE_EXPECT(s, bytes, 9, records, 2);
    READ_EXPECT(s, a, ta[5]);
    READ_NONE(s, a);
    READ_NONE(s, b);
    FWT_ASSERT_UINT_EQ(seg_count(dir, "alpha", 3, NULL), 1);
    spool_close(s);
}

/*
 * A file stays while any block in it is unread or unresolved, and goes
 * (with its bytes, blocks and records in the usage) once every block is
 * read and resolved, even the file still open for appending.
 */
FWT_TEST(resolving_every_block_of_a_file_deletes_it_and_resolving_some_keeps_it)
{
    const char *dir = subdir("spool");
    fw_spool_config_t c = config(dir);
    fw_spool_t *s = spool_open(&c);
    fw_spool_bucket_t *b = bucket_make(s, "cat", 7);
    const uint64_t hlen = header_len("cat");

    const tblock_t *t[4];
    uint64_t bytes = hlen;
    for (int i = 0; i < 4; i++) {
        t[i] = block_make(0x5eed, (uint64_t)i + 1, (uint32_t)(i * 2 + 1));
        append(s, b, t[i]);
        bytes += t[i]->len;
    }
    USAGE_EXPECT(s, bytes, 4, 1 + 3 + 5 + 7, 1);
    fw_spool_ref_t ref[4];
    for (int i = 0; i < 4; i++)
        ref[i] = READ_EXPECT(s, b, t[i]);
    READ_NONE(s, b);

    for (int i = 0; i < 3; i++)
        fw_spool_resolved(s, b, &ref[i]);
    /* One block left unresolved: the file, and its bytes, stay. */
    FWT_ASSERT_UINT_EQ(seg_count(dir, "cat", 7, NULL), 1);
    USAGE_EXPECT(s, bytes, 1, 7, 1);
    FWT_ASSERT(!fw_spool_bucket_empty(b));
    FWT_ASSERT(fw_spool_next_bucket(s, NULL) == b);

    fw_spool_resolved(s, b, &ref[3]);
    FWT_ASSERT_UINT_EQ(seg_count(dir, "cat", 7, NULL), 0);
    USAGE_EXPECT(s, 0, 0, 0, 0);
    FWT_ASSERT(fw_spool_bucket_empty(b));
    FWT_ASSERT(fw_spool_next_bucket(s, NULL) == NULL);
    READ_NONE(s, b);

    /* Every block read resolved, but one not read yet: the file stays. */
    const tblock_t *u[2] = {block_make(0x5eed, 5, 2), block_make(0x5eed, 6, 2)};
    append(s, b, u[0]);
    append(s, b, u[1]);
    bytes = hlen + u[0]->len + u[1]->len;
    fw_spool_ref_t r0 = READ_EXPECT(s, b, u[0]);
    fw_spool_resolved(s, b, &r0);
    FWT_ASSERT_UINT_EQ(seg_count(dir, "cat", 7, NULL), 1);
    USAGE_EXPECT(s, bytes, 1, 2, 1);
    FWT_ASSERT(!fw_spool_bucket_empty(b));
    fw_spool_ref_t r1 = READ_EXPECT(s, b, u[1]);
    FWT_ASSERT_UINT_EQ(seg_count(dir, "cat", 7, NULL), 1);
    fw_spool_resolved(s, b, &r1);
    FWT_ASSERT_UINT_EQ(seg_count(dir, "cat", 7, NULL), 0);
    USAGE_EXPECT(s, 0, 0, 0, 0);
    FWT_ASSERT(fw_spool_bucket_empty(b));
    spool_close(s);
}

/*
 * With file_bytes room for three blocks a file, eleven appends make four
 * files; the reader crosses them in order (and goes on in the open file
 * after more appends); resolving in order deletes each file as its last
 * block is resolved, oldest first, and the newest file, open for appends,
 * only once its own blocks are resolved. Resolving a newer file first
 * deletes nothing until the older one is resolved too.
 */
FWT_TEST(a_rolled_bucket_reads_across_its_files_in_order_and_deletes_them_oldest_first)
{
    const char *dir = subdir("spool");
    const uint64_t hlen = header_len("roll");
    const tblock_t *t[11];
    for (int i = 0; i < 11; i++)
        t[i] = block_make(0x0011, (uint64_t)i + 1, 3);
    const uint64_t len = t[0]->len;
    for (int i = 0; i < 11; i++)
        FWT_ASSERT_UINT_EQ(t[i]->len, len);

    fw_spool_config_t c = config(dir);
    c.file_bytes = hlen + 3 * len;
    fw_spool_t *s = spool_open(&c);
    fw_spool_bucket_t *b = bucket_make(s, "roll", 1);
    for (int i = 0; i < 10; i++)
        append(s, b, t[i]);
    uint64_t disk;
    FWT_ASSERT_UINT_EQ(seg_count(dir, "roll", 1, &disk), 4);
    for (uint64_t id = 1; id <= 4; id++)
        FWT_ASSERT(seg_exists(dir, "roll", 1, id));
    FWT_ASSERT_UINT_EQ(seg_size(dir, "roll", 1, 1), hlen + 3 * len);
    FWT_ASSERT_UINT_EQ(seg_size(dir, "roll", 1, 4), hlen + len);
    FWT_ASSERT_UINT_EQ(disk, 4 * hlen + 10 * len);
    USAGE_EXPECT(s, disk, 10, 30, 1);

    fw_spool_ref_t ref[11];
    for (int i = 0; i < 10; i++) {
        ref[i] = READ_EXPECT(s, b, t[i]);
        FWT_ASSERT_UINT_EQ(ref[i].file_id, (uint64_t)i / 3 + 1);
    }
    READ_NONE(s, b);
    /* The open file takes one more; the reader finds it there. */
    append(s, b, t[10]);
    FWT_ASSERT_UINT_EQ(seg_count(dir, "roll", 1, NULL), 4);
    ref[10] = READ_EXPECT(s, b, t[10]);
    FWT_ASSERT_UINT_EQ(ref[10].file_id, 4);
    READ_NONE(s, b);

    for (int i = 0; i < 11; i++) {
        fw_spool_resolved(s, b, &ref[i]);
        /* File k (1..3) holds blocks 3(k-1)..3k-1; file 4 holds blocks 9 and 10. */
        size_t files = 0;
        for (int k = 1; k <= 4; k++) {
            int last = k < 4 ? 3 * k - 1 : 10;
            int want = i < last;
            files += (size_t)want;
            if (seg_exists(dir, "roll", 1, (uint64_t)k) != want)
                FWT_FAIL("after resolving block %d, file %d %s", i, k,
                         want ? "is gone" : "is still there");
        }
        uint64_t left = (uint64_t)(10 - i);
        FWT_ASSERT_UINT_EQ(seg_count(dir, "roll", 1, &disk), files);
        USAGE_EXPECT(s, disk, left, 3 * left, left > 0 ? 1 : 0);
    }
    FWT_ASSERT_UINT_EQ(seg_count(dir, "roll", 1, NULL), 0);

    /* Out of order: file 2 resolved first stays until file 1 is resolved. */
    fw_spool_bucket_t *o = bucket_make(s, "roll", 2);
    const tblock_t *u[7];
    for (int i = 0; i < 7; i++) {
        u[i] = block_make(0x0022, (uint64_t)i + 1, 3);
        append(s, o, u[i]);
    }
    FWT_ASSERT_UINT_EQ(seg_count(dir, "roll", 2, NULL), 3);
    fw_spool_ref_t oref[7];
    for (int i = 0; i < 7; i++)
        oref[i] = READ_EXPECT(s, o, u[i]);
    for (int i = 3; i < 6; i++)
        fw_spool_resolved(s, o, &oref[i]);
    FWT_ASSERT(seg_exists(dir, "roll", 2, 1));
    FWT_ASSERT(seg_exists(dir, "roll", 2, 2));
    FWT_ASSERT(seg_exists(dir, "roll", 2, 3));
    USAGE_EXPECT(s, 3 * hlen + 7 * len, 4, 12, 1);
    for (int i = 0; i < 3; i++)
        fw_spool_resolved(s, o, &oref[i]);
    FWT_ASSERT(!seg_exists(dir, "roll", 2, 1));
    FWT_ASSERT(!seg_exists(dir, "roll", 2, 2));
    FWT_ASSERT(seg_exists(dir, "roll", 2, 3));
    USAGE_EXPECT(s, hlen + len, 1, 3, 1);
    fw_spool_resolved(s, o, &oref[6]);
    FWT_ASSERT_UINT_EQ(seg_count(dir, "roll", 2, NULL), 0);
    USAGE_EXPECT(s, 0, 0, 0, 0);
    spool_close(s);
}

/*
 * max_bytes bounds the files' bytes: an append that would pass it fails
 * with -ENOSPC and changes nothing (on disk or in the usage), in this
 * bucket and in a new one; resolving frees nothing while the file stays;
 * once the file is deleted, appends fit again.
 */
FWT_TEST(an_append_past_max_bytes_fails_with_enospc_and_writes_nothing_until_files_are_deleted)
{
    const char *dir = subdir("spool");
    const uint64_t hlen = header_len("full");
    const tblock_t *t[5];
    for (int i = 0; i < 5; i++)
        t[i] = block_make(0xf011, (uint64_t)i + 1, 4);
    const uint64_t len = t[0]->len;

    fw_spool_config_t c = config(dir);
    c.max_bytes = hlen + 3 * len;
    fw_spool_t *s = spool_open(&c);
    fw_spool_bucket_t *b = bucket_make(s, "full", 0);
    for (int i = 0; i < 3; i++)
        append(s, b, t[i]);
    USAGE_EXPECT(s, hlen + 3 * len, 3, 12, 1);

    FWT_ASSERT_INT_EQ(fw_spool_append(s, b, t[3]->data, t[3]->len, t[3]->records), -ENOSPC);
    FWT_ASSERT_INT_EQ(fw_spool_append(s, b, t[3]->data, t[3]->len, t[3]->records), -ENOSPC);
    USAGE_EXPECT(s, hlen + 3 * len, 3, 12, 1);
    FWT_ASSERT_UINT_EQ(seg_count(dir, "full", 0, NULL), 1);
    FWT_ASSERT_UINT_EQ(seg_size(dir, "full", 0, 1), hlen + 3 * len);

    /* Another bucket: no room for its file either, and no directory made for it. */
    fw_spool_bucket_t *other = bucket_make(s, "full", 1);
    FWT_ASSERT_INT_EQ(fw_spool_append(s, other, t[3]->data, t[3]->len, t[3]->records), -ENOSPC);
    char odir[PATH_MAX];
    struct stat st;
    bucket_dir(odir, dir, "full", 1);
    FWT_ASSERT(stat(odir, &st) != 0 && errno == ENOENT);
    USAGE_EXPECT(s, hlen + 3 * len, 3, 12, 1);
    FWT_ASSERT(fw_spool_next_bucket(s, NULL) == b);
    FWT_ASSERT(fw_spool_next_bucket(s, b) == NULL);

    /* The three blocks read back intact, and the refused one is not among them. */
    fw_spool_ref_t ref[3];
    for (int i = 0; i < 3; i++)
        ref[i] = READ_EXPECT(s, b, t[i]);
    READ_NONE(s, b);

    /* Resolved blocks of a file that stays still take their room. */
    fw_spool_resolved(s, b, &ref[0]);
    fw_spool_resolved(s, b, &ref[1]);
    USAGE_EXPECT(s, hlen + 3 * len, 1, 4, 1);
    FWT_ASSERT_INT_EQ(fw_spool_append(s, b, t[3]->data, t[3]->len, t[3]->records), -ENOSPC);

    fw_spool_resolved(s, b, &ref[2]);
    FWT_ASSERT_UINT_EQ(seg_count(dir, "full", 0, NULL), 0);
    USAGE_EXPECT(s, 0, 0, 0, 0);

    append(s, b, t[3]);
    append(s, b, t[4]);
    USAGE_EXPECT(s, hlen + 2 * len, 2, 8, 1);
    READ_EXPECT(s, b, t[3]);
    READ_EXPECT(s, b, t[4]);
    READ_NONE(s, b);
    spool_close(s);
}

/*
 * A spool closed with blocks in it and opened again (as by a restarted
 * producer): the buckets holding blocks are listed (an emptied one is not),
 * the usage counts what is on disk, and every block not resolved reads back
 * with its producer id and sequence, in order; a block resolved in a file
 * that was deleted is not read again, one read but not resolved is. New
 * appends go to a new file after the old ones.
 */
FWT_TEST(a_reopened_spool_lists_its_buckets_and_replays_every_unresolved_block_with_its_ids)
{
    const char *dir = subdir("spool");
    const uint64_t hlen = header_len("alpha");
    FWT_ASSERT_UINT_EQ(header_len("gamma"), hlen);
    const tblock_t *ta[7], *tb[3];
    for (int i = 0; i < 7; i++)
        ta[i] = block_make(0xaaaa0001, (uint64_t)i + 101, 2);
    for (int i = 0; i < 3; i++)
        tb[i] = block_make(0xbbbb0002, (uint64_t)i + 1, 2);
    const uint64_t len = ta[0]->len;

    fw_spool_config_t c = config(dir);
    c.file_bytes = hlen + 2 * len;
    fw_spool_t *s = spool_open(&c);
    fw_spool_bucket_t *a = bucket_make(s, "alpha", 1);
    fw_spool_bucket_t *b = bucket_make(s, "beta", 2);
    fw_spool_bucket_t *g = bucket_make(s, "gamma", 5);
    for (int i = 0; i < 6; i++) {
        append(s, a, ta[i]);
        if (i < 3)
            append(s, b, tb[i]);
    }
    const tblock_t *tg = block_make(0x9999, 1, 1);
    append(s, g, tg);
    fw_spool_ref_t rg = READ_EXPECT(s, g, tg);
    fw_spool_resolved(s, g, &rg);
    FWT_ASSERT_UINT_EQ(seg_count(dir, "gamma", 5, NULL), 0);
    FWT_ASSERT_UINT_EQ(seg_count(dir, "alpha", 1, NULL), 3);
    FWT_ASSERT_UINT_EQ(seg_count(dir, "beta", 2, NULL), 2);

    /* A's first file resolved (and deleted), its third block read but not resolved. */
    fw_spool_ref_t r[3];
    for (int i = 0; i < 3; i++)
        r[i] = READ_EXPECT(s, a, ta[i]);
    fw_spool_resolved(s, a, &r[0]);
    fw_spool_resolved(s, a, &r[1]);
    FWT_ASSERT(!seg_exists(dir, "alpha", 1, 1));
    FWT_ASSERT_UINT_EQ(seg_count(dir, "alpha", 1, NULL), 2);
    spool_close(s);

    logs_reset();
    s = spool_open(&c);
    uint64_t disk_a, disk_b;
    FWT_ASSERT_UINT_EQ(seg_count(dir, "alpha", 1, &disk_a), 2);
    FWT_ASSERT_UINT_EQ(seg_count(dir, "beta", 2, &disk_b), 2);
    FWT_ASSERT_UINT_EQ(disk_a + disk_b, 2 * hlen + 2 * header_len("beta") + 7 * len);
    USAGE_EXPECT(s, disk_a + disk_b, 7, 14, 2);
    FWT_ASSERT(log_find("7 blocks", dir) != NULL);

    /* The listing, in whatever order the directory gave. */
    fw_spool_bucket_t *ra = NULL, *rb = NULL;
    int listed = 0;
    for (fw_spool_bucket_t *x = fw_spool_next_bucket(s, NULL); x != NULL;
         x = fw_spool_next_bucket(s, x)) {
        listed++;
        FWT_ASSERT(listed <= 2);
        const char *cat = fw_spool_bucket_category(x);
        if (strcmp(cat, "alpha") == 0 && fw_spool_bucket_id(x) == 1)
            ra = x;
        else if (strcmp(cat, "beta") == 0 && fw_spool_bucket_id(x) == 2)
            rb = x;
        else
            FWT_FAIL("listed %s/%" PRIu32 ", which holds no block", cat, fw_spool_bucket_id(x));
        FWT_ASSERT(!fw_spool_bucket_empty(x));
    }
    FWT_ASSERT(ra != NULL && rb != NULL);
    FWT_ASSERT(fw_spool_bucket(s, "alpha", 1, 0) == ra);
    FWT_ASSERT(fw_spool_bucket(s, "beta", 2, 0) == rb);

    fw_spool_ref_t ref[6];
    for (int i = 2; i < 6; i++)
        ref[i] = READ_EXPECT(s, ra, ta[i]);
    READ_NONE(s, ra);
    fw_spool_ref_t refb[3];
    for (int i = 0; i < 3; i++)
        refb[i] = READ_EXPECT(s, rb, tb[i]);
    READ_NONE(s, rb);

    /* A new append goes behind the old files, in a file of its own. */
    append(s, ra, ta[6]);
    FWT_ASSERT(seg_exists(dir, "alpha", 1, 4));
    ref[0] = READ_EXPECT(s, ra, ta[6]);
    FWT_ASSERT_UINT_EQ(ref[0].file_id, 4);
    READ_NONE(s, ra);

    for (int i = 2; i < 6; i++)
        fw_spool_resolved(s, ra, &ref[i]);
    fw_spool_resolved(s, ra, &ref[0]);
    for (int i = 0; i < 3; i++)
        fw_spool_resolved(s, rb, &refb[i]);
    FWT_ASSERT_UINT_EQ(seg_count(dir, "alpha", 1, NULL), 0);
    FWT_ASSERT_UINT_EQ(seg_count(dir, "beta", 2, NULL), 0);
    USAGE_EXPECT(s, 0, 0, 0, 0);
    spool_close(s);

    /* Nothing left: a third open finds nothing to replay. */
    logs_reset();
    s = spool_open(&c);
    USAGE_EXPECT(s, 0, 0, 0, 0);
    FWT_ASSERT(fw_spool_next_bucket(s, NULL) == NULL);
    spool_close(s);
}

/*
 * After a crash: bucket 1's newest file is cut in the middle of its last
 * block, bucket 3's newest file inside its header, bucket 2 is intact. The
 * reopened spool cuts the torn block (and logs how many bytes), removes the
 * file without a whole header (logged), and every other block of the three
 * buckets reads back; the torn block can be spooled again.
 */
FWT_TEST(a_torn_tail_is_cut_at_open_and_a_file_torn_in_its_header_is_removed)
{
    const char *dir = subdir("spool");
    const uint64_t hlen = header_len("torn");
    const tblock_t *t[3][6];
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < 6; i++)
            t[k][i] = block_make(0x70e0 + (uint64_t)k, (uint64_t)i + 1, 2);
    }
    const uint64_t len = t[0][0]->len;

    fw_spool_config_t c = config(dir);
    c.file_bytes = hlen + 2 * len;
    fw_spool_t *s = spool_open(&c);
    fw_spool_bucket_t *b[3];
    for (int k = 0; k < 3; k++)
        b[k] = bucket_make(s, "torn", (uint32_t)k + 1);
    for (int i = 0; i < 6; i++) {
        append(s, b[0], t[0][i]);
        if (i < 4) {
            append(s, b[1], t[1][i]);
            append(s, b[2], t[2][i]);
        }
    }
    spool_close(s);
    FWT_ASSERT_UINT_EQ(seg_count(dir, "torn", 1, NULL), 3);
    FWT_ASSERT_UINT_EQ(seg_count(dir, "torn", 2, NULL), 2);
    FWT_ASSERT_UINT_EQ(seg_count(dir, "torn", 3, NULL), 2);

    char torn[PATH_MAX], headless[PATH_MAX];
    seg_path(torn, dir, "torn", 1, 3);
    FWT_ASSERT_UINT_EQ(seg_size(dir, "torn", 1, 3), hlen + 2 * len);
    const uint64_t cut_at = hlen + len + len / 2;
    FWT_ASSERT(truncate(torn, (off_t)cut_at) == 0);
    seg_path(headless, dir, "torn", 3, 2);
    FWT_ASSERT(truncate(headless, (off_t)(hlen / 2)) == 0);
    uint64_t size2_before;
    FWT_ASSERT_UINT_EQ(seg_count(dir, "torn", 2, &size2_before), 2);

    logs_reset();
    s = spool_open(&c);
    char cut[64];
    snprintf(cut, sizeof(cut), " %" PRIu64 " bytes", cut_at - (hlen + len));
    if (log_find(torn, cut) == NULL)
        FWT_FAIL("no log of cutting%s off %s", cut, torn);
    FWT_ASSERT(log_find(headless, NULL) != NULL);
    FWT_ASSERT(!seg_exists(dir, "torn", 3, 2));
    FWT_ASSERT_UINT_EQ(seg_size(dir, "torn", 1, 3), hlen + len);
    uint64_t size2_after;
    FWT_ASSERT_UINT_EQ(seg_count(dir, "torn", 2, &size2_after), 2);
    FWT_ASSERT_UINT_EQ(size2_after, size2_before);
    USAGE_EXPECT(s, 3 * hlen + 5 * len + 2 * hlen + 4 * len + hlen + 2 * len, 5 + 4 + 2,
                 2 * (5 + 4 + 2), 3);

    for (int k = 0; k < 3; k++) {
        b[k] = fw_spool_bucket(s, "torn", (uint32_t)k + 1, 0);
        FWT_ASSERT(b[k] != NULL);
    }
    for (int i = 0; i < 5; i++)
        READ_EXPECT(s, b[0], t[0][i]);
    READ_NONE(s, b[0]);
    for (int i = 0; i < 4; i++)
        READ_EXPECT(s, b[1], t[1][i]);
    READ_NONE(s, b[1]);
    for (int i = 0; i < 2; i++)
        READ_EXPECT(s, b[2], t[2][i]);
    READ_NONE(s, b[2]);

    /* The torn block, spooled again, goes behind the rest in a new file. */
    append(s, b[0], t[0][5]);
    FWT_ASSERT(seg_exists(dir, "torn", 1, 4));
    READ_EXPECT(s, b[0], t[0][5]);
    READ_NONE(s, b[0]);
    spool_close(s);
}

/*
 * One producer per spool directory: a second open while the first holds it
 * fails with FW_ESPOOL_LOCKED and a sentence naming the directory (and the
 * holder's pid), and leaves the first spool working; once the first closes,
 * the directory opens again, with what the first left in it.
 */
FWT_TEST(a_second_open_of_a_spool_in_use_fails_naming_the_directory_until_the_first_closes)
{
    const char *dir = subdir("spool");
    fw_spool_config_t c = config(dir);
    fw_spool_t *first = spool_open(&c);

    for (int attempt = 0; attempt < 2; attempt++) {
        fw_spool_t *second = NULL;
        char err[512];
        int rc = fw_spool_open(&c, &second, err, sizeof(err));
        if (rc == 0)
            spools[SPOOLS_MAX - 1] = second; /* closed by the cleanup */
        FWT_ASSERT_INT_EQ(rc, FW_ESPOOL_LOCKED);
        FWT_ASSERT(second == NULL);
        if (strstr(err, dir) == NULL)
            FWT_FAIL("the error does not name %s: \"%s\"", dir, err);
        char pid[32];
        snprintf(pid, sizeof(pid), "%ld", (long)getpid());
        if (strstr(err, pid) == NULL)
            FWT_FAIL("the error does not name the holder's pid %s: \"%s\"", pid, err);
    }

    fw_spool_bucket_t *b = bucket_make(first, "lock", 0);
    const tblock_t *t = block_make(0x10c, 1, 3);
    append(first, b, t);
    READ_EXPECT(first, b, t);
    spool_close(first);

    fw_spool_t *again = spool_open(&c);
    USAGE_EXPECT(again, header_len("lock") + t->len, 1, 3, 1);
    b = fw_spool_bucket(again, "lock", 0, 0);
    FWT_ASSERT(b != NULL);
    READ_EXPECT(again, b, t);
    READ_NONE(again, b);
    spool_close(again);
}

/*
 * With max_open 2, a third bucket's append closes the least recently
 * appended-to bucket's file (A B A C: B's, not A's) and later appends to a
 * closed bucket start a new file; round-robin appends over three buckets
 * then start a file each. Every bucket still reads back in order.
 */
FWT_TEST(with_max_open_the_least_recently_used_appender_is_closed_and_order_holds)
{
    const char *dir = subdir("spool");
    fw_spool_config_t c = config(dir);
    c.max_open = 2;
    fw_spool_t *s = spool_open(&c);
    fw_spool_bucket_t *b[3];
    const tblock_t *t[3][8];
    int n[3] = {0, 0, 0};
    for (int k = 0; k < 3; k++)
        b[k] = bucket_make(s, "lru", (uint32_t)k);

    int order[] = {0, 1, 0, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1};
    int norder = (int)(sizeof(order) / sizeof(order[0]));
    for (int i = 0; i < norder; i++) {
        int k = order[i];
        t[k][n[k]] = block_make(0x1000 + (uint64_t)k, (uint64_t)n[k] + 1, (uint32_t)n[k] % 4 + 1);
        append(s, b[k], t[k][n[k]]);
        n[k]++;
        if (i == 5) {
            /* A B A C A B: C closed B's file (A was used since), then B started another. */
            FWT_ASSERT_UINT_EQ(seg_count(dir, "lru", 0, NULL), 1);
            FWT_ASSERT_UINT_EQ(seg_count(dir, "lru", 1, NULL), 2);
            FWT_ASSERT_UINT_EQ(seg_count(dir, "lru", 2, NULL), 1);
        }
    }
    /* Round robin over three with two open: every append started a file. */
    FWT_ASSERT_UINT_EQ(seg_count(dir, "lru", 0, NULL), 1 + 3);
    FWT_ASSERT_UINT_EQ(seg_count(dir, "lru", 1, NULL), 2 + 3);
    FWT_ASSERT_UINT_EQ(seg_count(dir, "lru", 2, NULL), 1 + 3);

    uint64_t blocks = 0, records = 0, disk = 0;
    for (int k = 0; k < 3; k++) {
        uint64_t d;
        seg_count(dir, "lru", (uint32_t)k, &d);
        disk += d;
        for (int i = 0; i < n[k]; i++) {
            blocks++;
            records += t[k][i]->records;
        }
    }
    USAGE_EXPECT(s, disk, blocks, records, 3);

    fw_spool_ref_t ref[3][8];
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < n[k]; i++)
            ref[k][i] = READ_EXPECT(s, b[k], t[k][i]);
        READ_NONE(s, b[k]);
    }
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < n[k]; i++)
            fw_spool_resolved(s, b[k], &ref[k][i]);
        FWT_ASSERT_UINT_EQ(seg_count(dir, "lru", (uint32_t)k, NULL), 0);
    }
    USAGE_EXPECT(s, 0, 0, 0, 0);
    spool_close(s);

    /* And after a restart, the same order from the files alone. */
    s = spool_open(&c);
    for (int k = 0; k < 3; k++)
        b[k] = bucket_make(s, "lru", (uint32_t)k);
    for (int i = 0; i < norder; i++) {
        int k = order[i];
        append(s, b[k], t[k][i / 3 % n[k]]);
    }
    spool_close(s);
    s = spool_open(&c);
    int m[3] = {0, 0, 0};
    for (int i = 0; i < norder; i++)
        m[order[i]]++;
    for (int k = 0; k < 3; k++) {
        fw_spool_bucket_t *x = fw_spool_bucket(s, "lru", (uint32_t)k, 0);
        FWT_ASSERT(x != NULL);
        int seen = 0;
        for (int i = 0; i < norder; i++) {
            if (order[i] == k) {
                READ_EXPECT(s, x, t[k][i / 3 % n[k]]);
                seen++;
            }
        }
        FWT_ASSERT_INT_EQ(seen, m[k]);
        READ_NONE(s, x);
    }
    spool_close(s);
}

/*
 * fw_spool_dirty says whether an append waits for fw_spool_sync: under
 * INTERVAL from the append until the next sync, under ALWAYS never (the
 * append synced), under NEVER never (nothing is synced).
 */
FWT_TEST(dirty_is_set_by_an_append_until_sync_under_interval_and_never_under_always)
{
    const tblock_t *t = block_make(0xd1, 1, 2);

    fw_spool_config_t c = config(subdir("interval"));
    fw_spool_t *s = spool_open(&c);
    fw_spool_bucket_t *a = bucket_make(s, "sync", 0);
    fw_spool_bucket_t *b = bucket_make(s, "sync", 1);
    FWT_ASSERT_INT_EQ(fw_spool_dirty(s), 0);
    append(s, a, t);
    FWT_ASSERT_INT_EQ(fw_spool_dirty(s), 1);
    FWT_ASSERT_OK(fw_spool_sync(s));
    FWT_ASSERT_INT_EQ(fw_spool_dirty(s), 0);
    FWT_ASSERT_OK(fw_spool_sync(s));
    FWT_ASSERT_INT_EQ(fw_spool_dirty(s), 0);
    /* Two files dirty; one sync clears both. */
    append(s, a, t);
    append(s, b, t);
    FWT_ASSERT_INT_EQ(fw_spool_dirty(s), 1);
    FWT_ASSERT_OK(fw_spool_sync(s));
    FWT_ASSERT_INT_EQ(fw_spool_dirty(s), 0);
    append(s, b, t);
    FWT_ASSERT_INT_EQ(fw_spool_dirty(s), 1);
    spool_close(s);

    c = config(subdir("always"));
    c.sync = FW_SPOOL_SYNC_ALWAYS;
    s = spool_open(&c);
    a = bucket_make(s, "sync", 0);
    b = bucket_make(s, "sync", 1);
    for (int i = 0; i < 3; i++) {
        append(s, i % 2 ? b : a, t);
        FWT_ASSERT_INT_EQ(fw_spool_dirty(s), 0);
    }
    FWT_ASSERT_OK(fw_spool_sync(s));
    FWT_ASSERT_INT_EQ(fw_spool_dirty(s), 0);
    READ_EXPECT(s, a, t);
    READ_EXPECT(s, a, t);
    READ_EXPECT(s, b, t);
    spool_close(s);

    c = config(subdir("never"));
    c.sync = FW_SPOOL_SYNC_NEVER;
    s = spool_open(&c);
    a = bucket_make(s, "sync", 0);
    append(s, a, t);
    FWT_ASSERT_INT_EQ(fw_spool_dirty(s), 0);
    FWT_ASSERT_OK(fw_spool_sync(s));
    READ_EXPECT(s, a, t);
    spool_close(s);
}

/*
 * Bit rot in a closed file: one payload byte of the second of four blocks
 * in a bucket's first file flipped. Open cuts that file at the damaged
 * block (logged, with the bytes cut), the block before it reads back, and
 * so does the bucket's next file, whole.
 */
FWT_TEST(a_block_damaged_inside_a_closed_file_is_cut_at_open_and_the_blocks_before_it_replay)
{
    const char *dir = subdir("spool");
    const uint64_t hlen = header_len("rot");
    const tblock_t *t[8];
    for (int i = 0; i < 8; i++)
        t[i] = block_make(0x7070, (uint64_t)i + 1, 3);
    const uint64_t len = t[0]->len;

    fw_spool_config_t c = config(dir);
    c.file_bytes = hlen + 4 * len;
    fw_spool_t *s = spool_open(&c);
    fw_spool_bucket_t *b = bucket_make(s, "rot", 9);
    for (int i = 0; i < 8; i++)
        append(s, b, t[i]);
    spool_close(s);
    FWT_ASSERT_UINT_EQ(seg_count(dir, "rot", 9, NULL), 2);
    FWT_ASSERT_UINT_EQ(seg_size(dir, "rot", 9, 1), hlen + 4 * len);

    char path[PATH_MAX];
    seg_path(path, dir, "rot", 9, 1);
    uint64_t at = hlen + len + FW_BLOCK_HEADER_SIZE + 5;
    int fd = open(path, O_RDWR);
    FWT_ASSERT(fd >= 0);
    uint8_t byte;
    FWT_ASSERT_INT_EQ(pread(fd, &byte, 1, (off_t)at), 1);
    byte ^= 0x40;
    FWT_ASSERT_INT_EQ(pwrite(fd, &byte, 1, (off_t)at), 1);
    close(fd);

    logs_reset();
    s = spool_open(&c);
    char cut[64];
    snprintf(cut, sizeof(cut), " %" PRIu64 " bytes", 3 * len);
    if (log_find(path, cut) == NULL)
        FWT_FAIL("no log of cutting%s off %s", cut, path);
    FWT_ASSERT_UINT_EQ(seg_size(dir, "rot", 9, 1), hlen + len);
    FWT_ASSERT_UINT_EQ(seg_size(dir, "rot", 9, 2), hlen + 4 * len);
    USAGE_EXPECT(s, 2 * hlen + 5 * len, 5, 15, 1);

    b = fw_spool_bucket(s, "rot", 9, 0);
    FWT_ASSERT(b != NULL);
    fw_spool_ref_t ref[5];
    ref[0] = READ_EXPECT(s, b, t[0]);
    for (int i = 4; i < 8; i++)
        ref[i - 3] = READ_EXPECT(s, b, t[i]);
    READ_NONE(s, b);
    for (int i = 0; i < 5; i++)
        fw_spool_resolved(s, b, &ref[i]);
    FWT_ASSERT_UINT_EQ(seg_count(dir, "rot", 9, NULL), 0);
    USAGE_EXPECT(s, 0, 0, 0, 0);
    spool_close(s);
}

/*
 * Damage that appears after open (a file changed under the spool): the
 * read that meets it gives up the rest of that file (logged), replay goes
 * on with the bucket's next file, the lost blocks leave the usage, and the
 * damaged file is deleted once the blocks read from it are resolved.
 */
FWT_TEST(a_block_damaged_after_open_is_skipped_by_the_reader_which_goes_on_with_the_next_file)
{
    const char *dir = subdir("spool");
    const uint64_t hlen = header_len("rot");
    const tblock_t *t[8];
    for (int i = 0; i < 8; i++)
        t[i] = block_make(0x7171, (uint64_t)i + 1, 3);
    const uint64_t len = t[0]->len;

    fw_spool_config_t c = config(dir);
    c.file_bytes = hlen + 4 * len;
    fw_spool_t *s = spool_open(&c);
    fw_spool_bucket_t *b = bucket_make(s, "rot", 4);
    for (int i = 0; i < 8; i++)
        append(s, b, t[i]);
    spool_close(s);

    logs_reset();
    s = spool_open(&c);
    FWT_ASSERT(log_find("cut", NULL) == NULL);
    b = fw_spool_bucket(s, "rot", 4, 0);
    FWT_ASSERT(b != NULL);
    fw_spool_ref_t ref[8];

    /* The third block of file 1 rots while the spool is open, before replay reads the file. */
    char path[PATH_MAX];
    seg_path(path, dir, "rot", 4, 1);
    uint64_t at = hlen + 2 * len + FW_BLOCK_HEADER_SIZE + 7;
    int fd = open(path, O_RDWR);
    FWT_ASSERT(fd >= 0);
    uint8_t byte;
    FWT_ASSERT_INT_EQ(pread(fd, &byte, 1, (off_t)at), 1);
    byte ^= 0x01;
    FWT_ASSERT_INT_EQ(pwrite(fd, &byte, 1, (off_t)at), 1);
    close(fd);

    ref[0] = READ_EXPECT(s, b, t[0]);
    ref[1] = READ_EXPECT(s, b, t[1]);
    /* The header allows the read that meets the damage to return an error; the next goes on. */
    fw_spool_block_t blk;
    int rc = fw_spool_read(s, b, &rbuf, &blk);
    if (rc < 0) {
        fprintf(stderr, "the read at the damage returned %d (%s)\n", rc, fw_err_name(rc));
        ref[4] = READ_EXPECT(s, b, t[4]);
    } else {
        FWT_ASSERT_INT_EQ(rc, 1);
        FWT_ASSERT_UINT_EQ(blk.sequence, t[4]->sequence);
        ref[4] = blk.ref;
    }
    char at_s[64];
    snprintf(at_s, sizeof(at_s), "%" PRIu64, hlen + 2 * len);
    FWT_ASSERT(log_find("file 1", at_s) != NULL);
    for (int i = 5; i < 8; i++)
        ref[i] = READ_EXPECT(s, b, t[i]);
    READ_NONE(s, b);
    /* Blocks 3 and 4 are lost; 1, 2 and 5..8 wait to be resolved. */
    uint64_t disk;
    FWT_ASSERT_UINT_EQ(seg_count(dir, "rot", 4, &disk), 2);
    fw_spool_usage_t u;
    fw_spool_usage(s, &u);
    FWT_ASSERT_UINT_EQ(u.blocks, 6);
    FWT_ASSERT_UINT_EQ(u.bytes, disk);

    fw_spool_resolved(s, b, &ref[0]);
    FWT_ASSERT(seg_exists(dir, "rot", 4, 1));
    fw_spool_resolved(s, b, &ref[1]);
    FWT_ASSERT(!seg_exists(dir, "rot", 4, 1));
    USAGE_EXPECT(s, hlen + 4 * len, 4, 12, 1);
    for (int i = 4; i < 8; i++)
        fw_spool_resolved(s, b, &ref[i]);
    FWT_ASSERT_UINT_EQ(seg_count(dir, "rot", 4, NULL), 0);
    USAGE_EXPECT(s, 0, 0, 0, 0);
    spool_close(s);
}

static void resolved_file_path(char *out, const char *root, const char *category, uint32_t bucket,
                               uint64_t file_id)
{
    char seg[PATH_MAX];
    seg_path(seg, root, category, bucket, file_id);
    FWT_ASSERT(snprintf(out, PATH_MAX, "%s.resolved", seg) < PATH_MAX);
}

/*
 * A file that must stay (some of its blocks unresolved) remembers the blocks
 * resolved in it, out of order too: the next producer's replay skips them
 * and reads only the rest, so a block a writer acked is never sent by two
 * producer lives (its dedup table may have forgotten the first; the audit
 * would count both acks). Usage counts the skipped blocks once they are
 * passed, and the file and its .resolved go when everything is resolved.
 */
FWT_TEST(blocks_resolved_before_a_reopen_are_not_read_again)
{
    const char *dir = subdir("spool");
    const tblock_t *t[5];
    for (int i = 0; i < 5; i++)
        t[i] = block_make(0xcccc0003, (uint64_t)i + 1, 3);
    fw_spool_config_t c = config(dir);
    fw_spool_t *s = spool_open(&c);
    fw_spool_bucket_t *b = bucket_make(s, "alpha", 0);
    for (int i = 0; i < 5; i++)
        append(s, b, t[i]);
    fw_spool_ref_t r[5];
    for (int i = 0; i < 4; i++)
        r[i] = READ_EXPECT(s, b, t[i]);
    /* Acks out of order; block 2 read but not acked, block 4 never read. */
    fw_spool_resolved(s, b, &r[3]);
    fw_spool_resolved(s, b, &r[0]);
    fw_spool_resolved(s, b, &r[1]);
    spool_close(s);

    char rpath[PATH_MAX];
    resolved_file_path(rpath, dir, "alpha", 0, 1);
    struct stat st;
    FWT_ASSERT(stat(rpath, &st) == 0);
    FWT_ASSERT_UINT_EQ(st.st_size, 3 * 8);
    /* A crash inside the next entry's write leaves a torn entry: not read. */
    int fd = open(rpath, O_WRONLY | O_APPEND);
    FWT_ASSERT(fd >= 0);
    FWT_ASSERT(write(fd, "\x01\x02\x03", 3) == 3);
    close(fd);

    s = spool_open(&c);
    b = fw_spool_bucket(s, "alpha", 0, 0);
    FWT_ASSERT(b != NULL && !fw_spool_bucket_empty(b));
    fw_spool_ref_t r2 = READ_EXPECT(s, b, t[2]);
    fw_spool_ref_t r4 = READ_EXPECT(s, b, t[4]);
    READ_NONE(s, b);
    USAGE_EXPECT(s, seg_size(dir, "alpha", 0, 1), 2, 6, 1);
    fw_spool_resolved(s, b, &r4);
    fw_spool_resolved(s, b, &r2);
    FWT_ASSERT(!seg_exists(dir, "alpha", 0, 1));
    FWT_ASSERT(stat(rpath, &st) < 0 && errno == ENOENT);
    USAGE_EXPECT(s, 0, 0, 0, 0);
    spool_close(s);
}

/*
 * A .resolved whose segment is gone (a crash between the two unlinks) names
 * offsets of a file id that a later file may take again: that file's blocks
 * are all read, by this producer and the next.
 */
FWT_TEST(a_resolved_list_left_by_a_deleted_file_does_not_hide_a_new_files_blocks)
{
    const char *dir = subdir("spool");
    const tblock_t *t[2];
    for (int i = 0; i < 2; i++)
        t[i] = block_make(0xdddd0004, (uint64_t)i + 1, 1);
    fw_spool_config_t c = config(dir);
    fw_spool_t *s = spool_open(&c);
    fw_spool_bucket_t *b = bucket_make(s, "alpha", 0);
    append(s, b, t[0]);
    spool_close(s);

    /* Left over: file 1's first block listed as resolved, then file 1 removed. */
    char rpath[PATH_MAX], seg[PATH_MAX];
    resolved_file_path(rpath, dir, "alpha", 0, 1);
    seg_path(seg, dir, "alpha", 0, 1);
    uint64_t first = header_len("alpha");
    uint8_t le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)(first >> (8 * i));
    int fd = open(rpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    FWT_ASSERT(fd >= 0);
    FWT_ASSERT(write(fd, le, sizeof(le)) == (ssize_t)sizeof(le));
    close(fd);
    FWT_ASSERT(unlink(seg) == 0);

    s = spool_open(&c);
    b = bucket_make(s, "alpha", 0);
    append(s, b, t[0]);
    append(s, b, t[1]);
    FWT_ASSERT(seg_exists(dir, "alpha", 0, 1));
    spool_close(s);

    /* The next producer reads both. */
    s = spool_open(&c);
    b = fw_spool_bucket(s, "alpha", 0, 0);
    FWT_ASSERT(b != NULL);
    READ_EXPECT(s, b, t[0]);
    READ_EXPECT(s, b, t[1]);
    READ_NONE(s, b);
    spool_close(s);
}
