/*
 * Segment files: the writer, the reader, scan and recovery, and the names of
 * segments and categories. Torn writes at every offset are test_torn.c's job.
 */
#include "fwtest.h"
#include "fwt_proc.h"

#include "block.h"
#include "error.h"
#include "names.h"
#include "segment.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------- */

/* Names a reader result or an error code, so a failure says what came back. */
static const char *rc_name(int rc)
{
    switch (rc) {
    case 0:
        return "OK or FW_SEGR_AGAIN";
    case FW_SEGR_BLOCK:
        return "FW_SEGR_BLOCK";
    case FW_SEGR_SEALED:
        return "FW_SEGR_SEALED";
    default:
        return fw_err_name(rc);
    }
}

#define ASSERT_RC(got, want)                                                                       \
    do {                                                                                           \
        int got_ = (got), want_ = (want);                                                          \
        if (got_ != want_)                                                                         \
            FWT_FAIL("%s: got %d (%s), want %d (%s)", #got, got_, rc_name(got_), want_,            \
                     rc_name(want_));                                                              \
    } while (0)

/* A fresh directory, removed when the test ends; tmpfs when there is one: fsync is cheap there. */
static const char *tmpdir_make(void)
{
    return fwt_tmpdir_mem();
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        FWT_FAIL("stat %s: %s", path, strerror(errno));
    return (uint64_t)st.st_size;
}

/* The whole file in a heap buffer the caller frees. */
static uint8_t *file_read(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        FWT_FAIL("open %s: %s", path, strerror(errno));
    struct stat st;
    FWT_ASSERT(fstat(fd, &st) == 0);
    size_t n = (size_t)st.st_size;
    uint8_t *p = malloc(n + 1);
    FWT_ASSERT(p != NULL);
    FWT_ASSERT_INT_EQ(pread(fd, p, n, 0), (ssize_t)n);
    close(fd);
    *len = n;
    return p;
}

static void pwrite_at(const char *path, const void *p, size_t n, uint64_t off)
{
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        FWT_FAIL("open %s: %s", path, strerror(errno));
    FWT_ASSERT_INT_EQ(pwrite(fd, p, n, (off_t)off), (ssize_t)n);
    close(fd);
}

static void xor_byte_at(const char *path, uint64_t off, uint8_t x)
{
    int fd = open(path, O_RDWR);
    FWT_ASSERT(fd >= 0);
    uint8_t c;
    FWT_ASSERT_INT_EQ(pread(fd, &c, 1, (off_t)off), 1);
    c ^= x;
    FWT_ASSERT_INT_EQ(pwrite(fd, &c, 1, (off_t)off), 1);
    close(fd);
}

/* One encoded block, copied out of the builder (whose output the next finish overwrites). */
typedef struct {
    uint8_t *data;
    size_t len;
    uint32_t records;
    uint64_t offset; /* where it landed in the segment */
} blk_t;

/* The blocks of one test, freed together when it ends. */
typedef struct {
    blk_t *v;
    size_t n;
    size_t cap;
} blks_t;

static void blks_free(void *arg)
{
    blks_t *bs = arg;
    for (size_t i = 0; i < bs->n; i++)
        free(bs->v[i].data);
    free(bs->v);
    free(bs);
}

static blks_t *blks_new(void)
{
    blks_t *bs = calloc(1, sizeof(*bs));
    FWT_ASSERT(bs != NULL);
    fwt_defer(blks_free, bs);
    return bs;
}

/* A value that lz4 shrinks (a short pattern repeated) or random bytes it cannot. */
static void fill_value(uint8_t *p, size_t n)
{
    if (fwt_rand() % 2 == 0) {
        fwt_rand_bytes(p, n);
        return;
    }
    uint8_t pat[16];
    size_t period = (size_t)fwt_rand_range(1, sizeof(pat));
    fwt_rand_bytes(pat, period);
    for (size_t i = 0; i < n; i++)
        p[i] = pat[i % period];
}

/*
 * Appends a new block of 1..max_records random records (values up to
 * max_value bytes). The pointer is good until the next blk_make on bs.
 */
static blk_t *blk_make(blks_t *bs, uint32_t max_records, size_t max_value)
{
    static fw_block_builder_t builder;
    static int64_t ts = 1700000000000;
    static uint64_t seq;
    static int builder_ready;
    if (!builder_ready) {
        fw_block_builder_init(&builder, 0);
        builder_ready = 1;
    }
    uint8_t *val = malloc(max_value + 1);
    FWT_ASSERT(val != NULL);
    uint32_t nrec = (uint32_t)fwt_rand_range(1, max_records);
    for (uint32_t i = 0; i < nrec; i++) {
        uint8_t key[32];
        size_t klen = (size_t)fwt_rand_range(0, sizeof(key));
        int has_key = fwt_rand() % 2;
        fwt_rand_bytes(key, klen);
        size_t vlen = (size_t)fwt_rand_range(0, max_value);
        fill_value(val, vlen);
        /* Timestamps may step back a little: producers' clocks do. */
        ts += (int64_t)fwt_rand_range(0, 60) - 10;
        FWT_ASSERT_OK(fw_block_builder_add(&builder, ts, key, klen, has_key, val, vlen));
    }
    free(val);
    const uint8_t *p;
    size_t len;
    fw_codec_t codec = fwt_rand() % 2 ? FW_CODEC_LZ4 : FW_CODEC_NONE;
    FWT_ASSERT_OK(fw_block_builder_finish(&builder, codec, 42, ++seq, &p, &len));
    if (bs->n == bs->cap) {
        bs->cap = bs->cap ? 2 * bs->cap : 16;
        bs->v = realloc(bs->v, bs->cap * sizeof(*bs->v));
        FWT_ASSERT(bs->v != NULL);
    }
    blk_t *b = &bs->v[bs->n++];
    b->data = malloc(len);
    FWT_ASSERT(b->data != NULL);
    memcpy(b->data, p, len);
    b->len = len;
    b->records = nrec;
    b->offset = 0;
    return b;
}

static fw_seg_header_t header_make(uint64_t id, const char *category)
{
    fw_seg_header_t h;
    memset(&h, 0, sizeof(h));
    h.segment_id = id;
    h.epoch = fwt_rand_range(1, 1000);
    h.created_ms = 1700000000000 + (int64_t)fwt_rand_range(0, 1u << 30);
    h.bucket = (uint32_t)fwt_rand_range(0, FW_BUCKETS_MAX - 1);
    snprintf(h.category, sizeof(h.category), "%s", category);
    return h;
}

static char *seg_path(const char *dir, uint64_t id)
{
    char name[FW_SEG_NAME_LEN + 1];
    fw_seg_name(name, id);
    size_t n = strlen(dir) + sizeof(name) + 2;
    char *p = malloc(n);
    FWT_ASSERT(p != NULL);
    snprintf(p, n, "%s/%s", dir, name);
    fwt_defer(free, p);
    return p;
}

/* Appends blocks [from, to) of bs in one fw_segw_append and checks where they landed. */
static void append_group(fw_segw_t *w, blks_t *bs, size_t from, size_t to)
{
    struct iovec iov[64];
    uint32_t records = 0;
    uint64_t expect = w->end;
    FWT_ASSERT(to - from <= 64);
    for (size_t i = from; i < to; i++) {
        iov[i - from].iov_base = bs->v[i].data;
        iov[i - from].iov_len = bs->v[i].len;
        bs->v[i].offset = expect;
        expect += bs->v[i].len;
        records += bs->v[i].records;
    }
    uint64_t off = UINT64_MAX;
    FWT_ASSERT_OK(fw_segw_append(w, iov, (int)(to - from), (uint32_t)(to - from), records, &off));
    FWT_ASSERT_UINT_EQ(off, bs->v[from].offset);
    FWT_ASSERT_UINT_EQ(w->end, expect);
}

/*
 * Writes a segment of n random blocks, appended in groups of 1..4, and seals
 * it if asked. Returns its path; the blocks know their offsets.
 */
static const char *seg_write(const char *dir, uint64_t id, blks_t *bs, size_t n, int seal)
{
    fw_seg_header_t h = header_make(id, "segment.test");
    fw_segw_t *w = NULL;
    FWT_ASSERT_OK(fw_segw_create(dir, &h, &w));
    size_t first = bs->n;
    for (size_t i = 0; i < n; i++)
        blk_make(bs, 4, 600);
    for (size_t i = first; i < bs->n;) {
        size_t k = (size_t)fwt_rand_range(1, 4);
        if (k > bs->n - i)
            k = bs->n - i;
        append_group(w, bs, i, i + k);
        i += k;
    }
    FWT_ASSERT_OK(fw_segw_sync(w));
    if (seal)
        FWT_ASSERT_OK(fw_segw_seal(w, 1700000000000));
    fw_segw_close(w);
    return seg_path(dir, id);
}

/* The reader returns blocks [from, to) of bs, byte for byte, at their offsets. */
static void expect_blocks(fw_segr_t *r, const blks_t *bs, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        fw_seg_block_t b;
        ASSERT_RC(fw_segr_next(r, &b), FW_SEGR_BLOCK);
        FWT_ASSERT_UINT_EQ(b.offset, bs->v[i].offset);
        FWT_ASSERT_UINT_EQ(b.len, bs->v[i].len);
        FWT_ASSERT_MEM_EQ(b.data, bs->v[i].data, b.len);
        FWT_ASSERT_UINT_EQ(b.header.record_count, bs->v[i].records);
        FWT_ASSERT_UINT_EQ(fw_segr_position(r), bs->v[i].offset + bs->v[i].len);
    }
}

/* The next read is the seal at offset, and it ends the file. */
static void expect_seal(fw_segr_t *r, uint64_t offset, uint64_t blocks, uint64_t records)
{
    fw_seg_block_t b;
    ASSERT_RC(fw_segr_next(r, &b), FW_SEGR_SEALED);
    FWT_ASSERT_UINT_EQ(b.offset, offset);
    FWT_ASSERT_UINT_EQ(b.len, FW_BLOCK_HEADER_SIZE + FW_SEAL_PAYLOAD_SIZE);
    FWT_ASSERT(fw_block_is_seal(&b.header));
    fw_seal_t seal;
    FWT_ASSERT_OK(fw_seal_parse(b.data, &b.header, &seal));
    FWT_ASSERT_UINT_EQ(seal.blocks, blocks);
    FWT_ASSERT_UINT_EQ(seal.records, records);
    FWT_ASSERT_UINT_EQ(seal.offset, offset);
    FWT_ASSERT_UINT_EQ(fw_segr_position(r), offset + b.len);
}

static uint64_t records_of(const blks_t *bs, size_t from, size_t to)
{
    uint64_t n = 0;
    for (size_t i = from; i < to; i++)
        n += bs->v[i].records;
    return n;
}

static size_t dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    FWT_ASSERT(d != NULL);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    }
    closedir(d);
    return n;
}

/* ---- writer and reader --------------------------------------------------- */

/*
 * Groups of blocks go in with one append each, some blocks split over two
 * iovecs and one group over more than 64 iovecs (the writer's window), and
 * come back byte for byte at the offsets the appends reported.
 */
FWT_TEST(round_trip)
{
    const char *dir = tmpdir_make();
    blks_t *bs = blks_new();
    uint64_t id = fwt_rand();
    fw_seg_header_t h = header_make(id, "Round-trip_1.x");
    fw_segw_t *w = NULL;
    FWT_ASSERT_OK(fw_segw_create(dir, &h, &w));
    FWT_ASSERT_UINT_EQ(w->end, FW_SEG_HEADER_FIXED + strlen(h.category) + 4);

    size_t group_sizes[] = {1, 3, 40, 2, 1, 7, 5};
    uint64_t end = w->end;
    for (size_t g = 0; g < sizeof(group_sizes) / sizeof(group_sizes[0]); g++) {
        size_t first = bs->n;
        struct iovec iov[2 * 40];
        int niov = 0;
        uint32_t records = 0;
        for (size_t i = 0; i < group_sizes[g]; i++) {
            blk_t *b = blk_make(bs, 5, 2000);
            b->offset = end;
            end += b->len;
            records += b->records;
            /* Split a block anywhere, the header included: the file sees only bytes. The
             * 40-block group splits every block, so it crosses the writer's 64-iovec window. */
            int split = group_sizes[g] == 40 || fwt_rand() % 2;
            size_t cut = split ? (size_t)fwt_rand_range(1, b->len - 1) : b->len;
            iov[niov++] = (struct iovec){b->data, cut};
            if (cut < b->len)
                iov[niov++] = (struct iovec){b->data + cut, b->len - cut};
        }
        if (group_sizes[g] == 40)
            FWT_ASSERT_INT_EQ(niov, 80);
        uint64_t off = 0;
        FWT_ASSERT_OK(fw_segw_append(w, iov, niov, (uint32_t)group_sizes[g], records, &off));
        FWT_ASSERT_UINT_EQ(off, bs->v[first].offset);
        FWT_ASSERT_UINT_EQ(w->end, end);
    }
    FWT_ASSERT_OK(fw_segw_sync(w));
    uint64_t seal_off = w->end;
    FWT_ASSERT_OK(fw_segw_seal(w, 1700000001234));
    fw_segw_close(w);

    const char *path = seg_path(dir, id);
    uint64_t size = file_size(path);
    FWT_ASSERT_UINT_EQ(size, seal_off + FW_BLOCK_HEADER_SIZE + FW_SEAL_PAYLOAD_SIZE);

    fw_segr_t *r = NULL;
    FWT_ASSERT_OK(fw_segr_open(path, &r));
    const fw_seg_header_t *rh = fw_segr_header(r);
    FWT_ASSERT_UINT_EQ(rh->segment_id, id);
    FWT_ASSERT_UINT_EQ(rh->epoch, h.epoch);
    FWT_ASSERT_INT_EQ(rh->created_ms, h.created_ms);
    FWT_ASSERT_UINT_EQ(rh->bucket, h.bucket);
    FWT_ASSERT_STR_EQ(rh->category, h.category);
    FWT_ASSERT_UINT_EQ(rh->header_len, FW_SEG_HEADER_FIXED + strlen(h.category) + 4);
    FWT_ASSERT_UINT_EQ(fw_segr_position(r), rh->header_len);
    expect_blocks(r, bs, 0, bs->n);
    expect_seal(r, seal_off, bs->n, records_of(bs, 0, bs->n));
    fw_segr_close(r);

    fw_seg_scan_t s;
    FWT_ASSERT_OK(fw_seg_scan(path, &s));
    FWT_ASSERT_INT_EQ(s.sealed, 1);
    FWT_ASSERT_INT_EQ(s.damage, 0);
    FWT_ASSERT_UINT_EQ(s.blocks, bs->n);
    FWT_ASSERT_UINT_EQ(s.records, records_of(bs, 0, bs->n));
    FWT_ASSERT_UINT_EQ(s.file_size, size);
    FWT_ASSERT_UINT_EQ(s.valid_end, size);
    FWT_ASSERT_UINT_EQ(s.truncated, 0);
    FWT_ASSERT_UINT_EQ(s.header.segment_id, id);
    FWT_ASSERT_STR_EQ(s.header.category, h.category);
}

/*
 * Zero-length iovecs carry nothing, so an append must not trip over them:
 * not between blocks, and not as the only entry left in the writer's second
 * 64-iovec window (a write of zero bytes is not a failed write).
 */
FWT_TEST(append_skips_empty_iovecs)
{
    const char *dir = tmpdir_make();
    blks_t *bs = blks_new();
    fw_seg_header_t h = header_make(7, "empty-iov");
    fw_segw_t *w = NULL;
    FWT_ASSERT_OK(fw_segw_create(dir, &h, &w));

    struct iovec iov[65];
    uint64_t end = w->end;
    uint32_t records = 0;
    for (int i = 0; i < 64; i++) {
        blk_t *b = blk_make(bs, 2, 100);
        b->offset = end;
        end += b->len;
        records += b->records;
        iov[i] = (struct iovec){b->data, b->len};
    }
    iov[64] = (struct iovec){NULL, 0};
    uint64_t off = 0;
    FWT_ASSERT_OK(fw_segw_append(w, iov, 65, 64, records, &off));
    FWT_ASSERT_UINT_EQ(off, bs->v[0].offset);

    /* Empty entries in front of, between and after the pieces of two blocks. */
    blk_make(bs, 2, 100);
    blk_make(bs, 2, 100);
    /* Only now: blk_make may move the array. */
    blk_t *a = &bs->v[bs->n - 2], *b = &bs->v[bs->n - 1];
    a->offset = end;
    b->offset = end + a->len;
    struct iovec mixed[] = {
        {NULL, 0}, {a->data, a->len},           {NULL, 0}, {b->data, 10}, {NULL, 0},
        {NULL, 0}, {b->data + 10, b->len - 10}, {NULL, 0},
    };
    FWT_ASSERT_OK(fw_segw_append(w, mixed, 8, 2, a->records + b->records, &off));
    FWT_ASSERT_UINT_EQ(off, a->offset);
    FWT_ASSERT_OK(fw_segw_seal(w, 0));
    FWT_ASSERT_INT_EQ(w->failed, 0);
    uint64_t seal_off = b->offset + b->len;
    fw_segw_close(w);

    fw_segr_t *r = NULL;
    FWT_ASSERT_OK(fw_segr_open(seg_path(dir, 7), &r));
    expect_blocks(r, bs, 0, bs->n);
    expect_seal(r, seal_off, bs->n, records_of(bs, 0, bs->n));
    fw_segr_close(r);
}

/* O_EXCL: a second create of the same id must not clobber a segment holding data. */
FWT_TEST(create_existing_fails)
{
    const char *dir = tmpdir_make();
    blks_t *bs = blks_new();
    const char *path = seg_write(dir, 12345, bs, 3, 0);
    size_t before_len;
    uint8_t *before = file_read(path, &before_len);
    fwt_defer(free, before);

    fw_seg_header_t h = header_make(12345, "other-category");
    fw_segw_t *w = NULL;
    ASSERT_RC(fw_segw_create(dir, &h, &w), -EEXIST);
    FWT_ASSERT(w == NULL);

    size_t after_len;
    uint8_t *after = file_read(path, &after_len);
    fwt_defer(free, after);
    FWT_ASSERT_UINT_EQ(after_len, before_len);
    FWT_ASSERT_MEM_EQ(after, before, before_len);
    FWT_ASSERT_UINT_EQ(dir_entries(dir), 1);
}

/* A header no reader would accept is refused up front, and no file is made. */
FWT_TEST(create_invalid_header_leaves_nothing)
{
    const char *dir = tmpdir_make();
    char long_name[FW_CATEGORY_MAX + 2];
    memset(long_name, 'c', FW_CATEGORY_MAX + 1);
    long_name[FW_CATEGORY_MAX + 1] = '\0';
    const char *bad[] = {"", "a/b", "..", ".", "sp ace", long_name};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        fw_seg_header_t h = header_make(i, "x");
        snprintf(h.category, sizeof(h.category), "%s", bad[i]);
        /* snprintf stops at 128 chars; keep the 129th so the name really is too long. */
        if (strlen(bad[i]) > FW_CATEGORY_MAX)
            memcpy(h.category, bad[i], sizeof(h.category));
        fw_segw_t *w = NULL;
        ASSERT_RC(fw_segw_create(dir, &h, &w), FW_EBAD_CATEGORY);
        FWT_ASSERT(w == NULL);
        FWT_ASSERT_UINT_EQ(dir_entries(dir), 0);
    }

    /* A bucket the parser rejects would make a segment nobody can ever read. */
    fw_seg_header_t h = header_make(99, "fine");
    h.bucket = FW_BUCKETS_MAX;
    fw_segw_t *w = NULL;
    ASSERT_RC(fw_segw_create(dir, &h, &w), FW_EBUCKET_RANGE);
    FWT_ASSERT_UINT_EQ(dir_entries(dir), 0);

    /* A missing directory: nothing to create the file in, nothing left over. */
    char missing[4096];
    snprintf(missing, sizeof(missing), "%s/no/such/dir", dir);
    h.bucket = 0;
    ASSERT_RC(fw_segw_create(missing, &h, &w), -ENOENT);
    FWT_ASSERT_UINT_EQ(dir_entries(dir), 0);
}

/* A reader at the end of a growing segment waits (AGAIN) and then gets what is appended. */
FWT_TEST(reader_again_at_end_then_block)
{
    const char *dir = tmpdir_make();
    blks_t *bs = blks_new();
    fw_seg_header_t h = header_make(5, "growing");
    fw_segw_t *w = NULL;
    FWT_ASSERT_OK(fw_segw_create(dir, &h, &w));
    const char *path = seg_path(dir, 5);

    /* A new segment with only its header: nothing to read yet. */
    fw_segr_t *r = NULL;
    FWT_ASSERT_OK(fw_segr_open(path, &r));
    fw_seg_block_t b;
    ASSERT_RC(fw_segr_next(r, &b), FW_SEGR_AGAIN);
    FWT_ASSERT_UINT_EQ(fw_segr_position(r), w->end);

    for (size_t round = 0; round < 5; round++) {
        size_t first = bs->n;
        size_t k = (size_t)fwt_rand_range(1, 3);
        for (size_t i = 0; i < k; i++)
            blk_make(bs, 3, 4000);
        append_group(w, bs, first, bs->n);
        expect_blocks(r, bs, first, bs->n);
        /* Caught up: AGAIN, repeatedly, without moving. */
        for (int i = 0; i < 3; i++) {
            ASSERT_RC(fw_segr_next(r, &b), FW_SEGR_AGAIN);
            FWT_ASSERT_UINT_EQ(fw_segr_position(r), w->end);
        }
    }
    uint64_t seal_off = w->end;
    FWT_ASSERT_OK(fw_segw_seal(w, 0));
    expect_seal(r, seal_off, bs->n, records_of(bs, 0, bs->n));
    fw_segr_close(r);
    fw_segw_close(w);
}

/*
 * A block whose first part is on disk and whose rest is not yet (a writer
 * mid-write) is AGAIN, wherever the split falls (inside the magic, inside
 * the header, at the payload, inside it), and the whole block once the rest
 * lands.
 */
FWT_TEST(reader_half_written_block)
{
    const char *dir = tmpdir_make();
    blks_t *bs = blks_new();
    const char *path = seg_write(dir, 6, bs, 1, 0);
    uint64_t end = file_size(path);

    fw_segr_t *r = NULL;
    FWT_ASSERT_OK(fw_segr_open(path, &r));
    expect_blocks(r, bs, 0, 1);

    size_t splits[] = {1, 3, 4, 5, 32, 63, 64, 65, 0 /* random payload */, 0 /* last byte */};
    for (size_t i = 0; i < sizeof(splits) / sizeof(splits[0]); i++) {
        blk_t *b = blk_make(bs, 3, 3000);
        b->offset = end;
        size_t split = splits[i];
        if (split == 0)
            split = i % 2 ? b->len - 1 : (size_t)fwt_rand_range(65, b->len - 1);
        FWT_ASSERT_INT_OP(split, <, b->len);
        pwrite_at(path, b->data, split, end);
        fw_seg_block_t got;
        for (int j = 0; j < 2; j++) {
            ASSERT_RC(fw_segr_next(r, &got), FW_SEGR_AGAIN);
            FWT_ASSERT_UINT_EQ(fw_segr_position(r), end);
        }
        pwrite_at(path, b->data + split, b->len - split, end + split);
        expect_blocks(r, bs, bs->n - 1, bs->n);
        end += b->len;
    }
    fw_segr_close(r);
}

/*
 * Corrupts one byte inside block k (at `at` bytes into the block) and checks
 * the reader returns blocks 0..k-1, then FW_ESEG_DAMAGED at block k for the
 * given reason, and stays there.
 */
static void check_damaged_block(size_t at_header)
{
    const char *dir = tmpdir_make();
    blks_t *bs = blks_new();
    const char *path = seg_write(dir, 77, bs, 8, 1);
    size_t k = (size_t)fwt_rand_range(1, 6);
    blk_t *victim = &bs->v[k];
    uint64_t at = at_header ? fwt_rand_range(0, FW_BLOCK_HEADER_SIZE - 1)
                            : fwt_rand_range(FW_BLOCK_HEADER_SIZE, victim->len - 1);
    xor_byte_at(path, victim->offset + at, (uint8_t)fwt_rand_range(1, 255));

    fw_segr_t *r = NULL;
    FWT_ASSERT_OK(fw_segr_open(path, &r));
    expect_blocks(r, bs, 0, k);
    for (int i = 0; i < 3; i++) {
        fw_seg_block_t b;
        memset(&b, 0, sizeof(b));
        ASSERT_RC(fw_segr_next(r, &b), FW_ESEG_DAMAGED);
        FWT_ASSERT(b.data == NULL);
        uint64_t off = 0;
        int why = 0;
        fw_segr_damage(r, &off, &why);
        FWT_ASSERT_UINT_EQ(off, victim->offset);
        ASSERT_RC(why, at_header ? FW_EBLOCK_HEADER : FW_EBLOCK_CRC);
        FWT_ASSERT_UINT_EQ(fw_segr_position(r), victim->offset);
    }
    fw_segr_close(r);
}

FWT_TEST(damaged_payload_byte)
{
    check_damaged_block(0);
}

FWT_TEST(damaged_header_byte)
{
    check_damaged_block(1);
}

/*
 * Bytes after a seal (garbage, or even a valid block) are damage: the reader
 * stops at the seal's end, scan keeps the seal, recovery cuts exactly the
 * stray bytes.
 */
FWT_TEST(bytes_after_seal)
{
    const char *dir = tmpdir_make();
    for (int kind = 0; kind < 3; kind++) {
        blks_t *bs = blks_new();
        const char *path = seg_write(dir, 100 + (uint64_t)kind, bs, 5, 1);
        uint64_t sealed_size = file_size(path);
        uint64_t seal_off = bs->v[bs->n - 1].offset + bs->v[bs->n - 1].len;
        size_t stray_len;
        uint8_t stray[8192];
        if (kind == 0) {
            stray_len = 1;
            stray[0] = 0;
        } else if (kind == 1) {
            stray_len = (size_t)fwt_rand_range(1, 200);
            fwt_rand_bytes(stray, stray_len);
        } else {
            blks_t *more = blks_new();
            blk_t *b = blk_make(more, 2, 1000);
            stray_len = b->len;
            memcpy(stray, b->data, b->len);
        }
        pwrite_at(path, stray, stray_len, sealed_size);

        fw_segr_t *r = NULL;
        FWT_ASSERT_OK(fw_segr_open(path, &r));
        expect_blocks(r, bs, 0, bs->n);
        fw_seg_block_t b;
        ASSERT_RC(fw_segr_next(r, &b), FW_ESEG_DAMAGED);
        uint64_t off;
        int why;
        fw_segr_damage(r, &off, &why);
        FWT_ASSERT_UINT_EQ(off, sealed_size);
        ASSERT_RC(why, FW_ESEG_SEALED);
        FWT_ASSERT_UINT_EQ(fw_segr_position(r), seal_off);
        fw_segr_close(r);

        fw_seg_scan_t s;
        FWT_ASSERT_OK(fw_seg_scan(path, &s));
        FWT_ASSERT_INT_EQ(s.sealed, 1);
        FWT_ASSERT(s.damage != 0);
        FWT_ASSERT_UINT_EQ(s.valid_end, sealed_size);
        FWT_ASSERT_UINT_EQ(s.file_size, sealed_size + stray_len);
        FWT_ASSERT_UINT_EQ(s.blocks, bs->n);
        FWT_ASSERT_UINT_EQ(file_size(path), sealed_size + stray_len);

        FWT_ASSERT_OK(fw_seg_recover(path, &s));
        FWT_ASSERT_INT_EQ(s.sealed, 1);
        FWT_ASSERT_UINT_EQ(s.truncated, stray_len);
        FWT_ASSERT_UINT_EQ(s.valid_end, sealed_size);
        FWT_ASSERT_UINT_EQ(file_size(path), sealed_size);

        FWT_ASSERT_OK(fw_seg_scan(path, &s));
        FWT_ASSERT_INT_EQ(s.sealed, 1);
        FWT_ASSERT_INT_EQ(s.damage, 0);
        FWT_ASSERT_UINT_EQ(s.valid_end, sealed_size);
        FWT_ASSERT_UINT_EQ(s.file_size, sealed_size);
        FWT_ASSERT_UINT_EQ(s.blocks, bs->n);

        FWT_ASSERT_OK(fw_segr_open(path, &r));
        expect_blocks(r, bs, 0, bs->n);
        expect_seal(r, seal_off, bs->n, records_of(bs, 0, bs->n));
        fw_segr_close(r);
    }
}

/* A seal whose counts disagree with the blocks before it vouches for nothing. */
FWT_TEST(seal_with_wrong_counts_not_trusted)
{
    const char *dir = tmpdir_make();
    blks_t *bs = blks_new();
    const char *path = seg_write(dir, 3, bs, 4, 0);
    uint64_t end = file_size(path);
    uint64_t records = records_of(bs, 0, bs->n);
    fw_seal_t wrong[] = {{bs->n + 1, records, end}, {bs->n, records - 1, end}};
    for (size_t i = 0; i < 2; i++) {
        uint8_t seal[FW_BLOCK_HEADER_SIZE + FW_SEAL_PAYLOAD_SIZE];
        fw_seal_encode(seal, &wrong[i], 0);
        pwrite_at(path, seal, sizeof(seal), end);
        fw_seg_scan_t s;
        FWT_ASSERT_OK(fw_seg_recover(path, &s));
        FWT_ASSERT_INT_EQ(s.sealed, 0);
        ASSERT_RC(s.damage, FW_EBLOCK_CORRUPT);
        FWT_ASSERT_UINT_EQ(s.valid_end, end);
        FWT_ASSERT_UINT_EQ(s.blocks, bs->n);
        FWT_ASSERT_UINT_EQ(s.truncated, sizeof(seal));
        FWT_ASSERT_UINT_EQ(file_size(path), end);
    }
}

FWT_TEST(append_after_seal_fails)
{
    const char *dir = tmpdir_make();
    blks_t *bs = blks_new();
    fw_seg_header_t h = header_make(11, "sealed");
    fw_segw_t *w = NULL;
    FWT_ASSERT_OK(fw_segw_create(dir, &h, &w));
    blk_make(bs, 2, 100);
    append_group(w, bs, 0, 1);
    FWT_ASSERT_OK(fw_segw_seal(w, 0));
    const char *path = seg_path(dir, 11);
    uint64_t size = file_size(path);

    blk_t *b = blk_make(bs, 2, 100);
    struct iovec iov = {b->data, b->len};
    uint64_t off = 12345;
    ASSERT_RC(fw_segw_append(w, &iov, 1, 1, b->records, &off), FW_ESEG_SEALED);
    FWT_ASSERT_UINT_EQ(off, 12345);
    ASSERT_RC(fw_segw_seal(w, 0), FW_ESEG_SEALED);
    FWT_ASSERT_UINT_EQ(file_size(path), size);
    FWT_ASSERT_UINT_EQ(w->end, size);
    fw_segw_close(w);
    fw_segw_close(NULL);

    fw_seg_scan_t s;
    FWT_ASSERT_OK(fw_seg_scan(path, &s));
    FWT_ASSERT_INT_EQ(s.sealed, 1);
    FWT_ASSERT_UINT_EQ(s.blocks, 1);
}

static struct rlimit saved_fsize;

static void restore_fsize(void *arg)
{
    (void)arg;
    setrlimit(RLIMIT_FSIZE, &saved_fsize);
}

static void set_fsize(rlim_t soft)
{
    struct rlimit rl = saved_fsize;
    rl.rlim_cur = soft;
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
        FWT_FAIL("setrlimit(RLIMIT_FSIZE, %llu): %s", (unsigned long long)soft, strerror(errno));
}

/*
 * A full disk, simulated with RLIMIT_FSIZE: an append that does not fit
 * fails, whatever part of it landed (no whole block) is cut off again, and
 * the writer goes on once there is room.
 */
FWT_TEST(full_disk_append_fails_cleanly)
{
    const char *dir = tmpdir_make();
    blks_t *bs = blks_new();
    fw_seg_header_t h = header_make(21, "full");
    fw_segw_t *w = NULL;
    FWT_ASSERT_OK(fw_segw_create(dir, &h, &w));
    const char *path = seg_path(dir, 21);
    for (int i = 0; i < 5; i++) {
        blk_make(bs, 3, 1500);
        append_group(w, bs, bs->n - 1, bs->n);
    }
    FWT_ASSERT_OK(fw_segw_sync(w));
    uint64_t good_end = file_size(path);
    FWT_ASSERT_UINT_EQ(w->end, good_end);

    /* The failed group is built in its own list: none of it may be read back. */
    blks_t *lost = blks_new();
    blk_make(lost, 3, 1500);
    blk_make(lost, 3, 1500);
    struct iovec iov[2] = {{lost->v[0].data, lost->v[0].len}, {lost->v[1].data, lost->v[1].len}};
    uint32_t lost_records = lost->v[0].records + lost->v[1].records;

    FWT_ASSERT(getrlimit(RLIMIT_FSIZE, &saved_fsize) == 0);
    FWT_ASSERT(saved_fsize.rlim_max == RLIM_INFINITY ||
               saved_fsize.rlim_max > good_end + lost->v[0].len + 100);
    fwt_defer(restore_fsize, NULL);
    signal(SIGXFSZ, SIG_IGN);

    /* No room at all, then room for a bit of the first block. */
    rlim_t limits[] = {good_end, good_end + 10};
    for (int i = 0; i < 2; i++) {
        set_fsize(limits[i]);
        uint64_t off = 999;
        ASSERT_RC(fw_segw_append(w, iov, 2, 2, lost_records, &off), -EFBIG);
        FWT_ASSERT_UINT_EQ(off, 999);
        FWT_ASSERT_UINT_EQ(file_size(path), good_end);
        FWT_ASSERT_UINT_EQ(w->end, good_end);
        FWT_ASSERT_INT_EQ(w->failed, 0);
    }

    restore_fsize(NULL);
    size_t first = bs->n;
    blk_make(bs, 3, 1500);
    blk_make(bs, 3, 1500);
    append_group(w, bs, first, bs->n);
    FWT_ASSERT_UINT_EQ(bs->v[first].offset, good_end);
    FWT_ASSERT_OK(fw_segw_sync(w));
    uint64_t seal_off = w->end;
    FWT_ASSERT_OK(fw_segw_seal(w, 0));
    fw_segw_close(w);

    fw_segr_t *r = NULL;
    FWT_ASSERT_OK(fw_segr_open(path, &r));
    expect_blocks(r, bs, 0, bs->n);
    expect_seal(r, seal_off, bs->n, records_of(bs, 0, bs->n));
    fw_segr_close(r);

    fw_seg_scan_t s;
    FWT_ASSERT_OK(fw_seg_scan(path, &s));
    FWT_ASSERT_INT_EQ(s.sealed, 1);
    FWT_ASSERT_INT_EQ(s.damage, 0);
    FWT_ASSERT_UINT_EQ(s.blocks, bs->n);
    FWT_ASSERT_UINT_EQ(s.records, records_of(bs, 0, bs->n));
}

/*
 * The chaos run's finding: a group append that fails after its first block
 * landed whole must not cut that block off again. ptail and the copier read
 * what is written, not only what is synced, and may already have handed it
 * on; a later block written at the same offset would make the copies and
 * the consumers differ from the root. The block stays, the writer fails, and
 * recovery keeps every whole block and cuts only the torn rest.
 */
FWT_TEST(full_disk_after_a_whole_block_keeps_it_for_recovery)
{
    const char *dir = tmpdir_make();
    blks_t *bs = blks_new();
    fw_seg_header_t h = header_make(22, "full");
    fw_segw_t *w = NULL;
    FWT_ASSERT_OK(fw_segw_create(dir, &h, &w));
    const char *path = seg_path(dir, 22);
    for (int i = 0; i < 3; i++) {
        blk_make(bs, 3, 1500);
        append_group(w, bs, bs->n - 1, bs->n);
    }
    FWT_ASSERT_OK(fw_segw_sync(w));
    uint64_t good_end = file_size(path);

    size_t first = bs->n;
    blk_make(bs, 3, 1500);
    blk_make(bs, 3, 1500);
    bs->v[first].offset = good_end;
    struct iovec iov[2] = {{bs->v[first].data, bs->v[first].len},
                           {bs->v[first + 1].data, bs->v[first + 1].len}};
    uint32_t records = bs->v[first].records + bs->v[first + 1].records;

    FWT_ASSERT(getrlimit(RLIMIT_FSIZE, &saved_fsize) == 0);
    FWT_ASSERT(saved_fsize.rlim_max == RLIM_INFINITY ||
               saved_fsize.rlim_max > good_end + bs->v[first].len + 100);
    fwt_defer(restore_fsize, NULL);
    signal(SIGXFSZ, SIG_IGN);
    set_fsize(good_end + bs->v[first].len + 10);
    uint64_t off = 999;
    ASSERT_RC(fw_segw_append(w, iov, 2, 2, records, &off), -EFBIG);
    restore_fsize(NULL);
    FWT_ASSERT_INT_EQ(w->failed, 1);
    FWT_ASSERT_UINT_EQ(file_size(path), good_end + bs->v[first].len + 10);
    ASSERT_RC(fw_segw_append(w, iov, 1, 1, bs->v[first].records, &off), FW_ESEG_FAILED);
    fw_segw_close(w);

    fw_seg_scan_t s;
    FWT_ASSERT_OK(fw_seg_recover(path, &s));
    FWT_ASSERT_UINT_EQ(s.truncated, 10);
    FWT_ASSERT_UINT_EQ(s.blocks, first + 1);
    fw_segr_t *r = NULL;
    FWT_ASSERT_OK(fw_segr_open(path, &r));
    expect_blocks(r, bs, 0, first + 1);
    fw_seg_block_t b;
    ASSERT_RC(fw_segr_next(r, &b), FW_SEGR_AGAIN);
    fw_segr_close(r);
}

/* A header still being written is "try again"; bytes that can never be one are not. */
FWT_TEST(reader_open_short_or_garbage)
{
    const char *dir = tmpdir_make();
    blks_t *bs = blks_new();
    const char *good = seg_write(dir, 1, bs, 1, 0);
    size_t len;
    uint8_t *img = file_read(good, &len);
    fwt_defer(free, img);
    size_t hlen = bs->v[0].offset;

    char path[4096];
    snprintf(path, sizeof(path), "%s/other.seg", dir);
    size_t prefixes[] = {0, 1, 4, 39, 40, hlen - 1};
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        FWT_ASSERT(fd >= 0);
        FWT_ASSERT_INT_EQ(write(fd, img, prefixes[i]), (ssize_t)prefixes[i]);
        close(fd);
        fw_segr_t *r = NULL;
        ASSERT_RC(fw_segr_open(path, &r), -EAGAIN);
        FWT_ASSERT(r == NULL);
    }

    /* Garbage: random bytes (not starting with 'F'), and a wrong magic that starts right. */
    uint8_t junk[300];
    fwt_rand_bytes(junk, sizeof(junk));
    junk[0] = 'X';
    memcpy(junk + 300 - 4, "FWSG", 4);
    uint8_t near[300];
    memcpy(near, img, hlen);
    near[3] = 'X';
    const uint8_t *bad[] = {junk, near, junk};
    size_t bad_len[] = {sizeof(junk), hlen, 2};
    for (size_t i = 0; i < 3; i++) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        FWT_ASSERT(fd >= 0);
        FWT_ASSERT_INT_EQ(write(fd, bad[i], bad_len[i]), (ssize_t)bad_len[i]);
        close(fd);
        fw_segr_t *r = NULL;
        ASSERT_RC(fw_segr_open(path, &r), FW_ESEG_HEADER);
    }

    snprintf(path, sizeof(path), "%s/missing.seg", dir);
    fw_segr_t *r = NULL;
    ASSERT_RC(fw_segr_open(path, &r), -ENOENT);
}

/* Seek moves to a block boundary, forward or back; a bad offset is refused or found out. */
FWT_TEST(reader_seek_resumes)
{
    const char *dir = tmpdir_make();
    blks_t *bs = blks_new();
    const char *path = seg_write(dir, 2, bs, 10, 1);
    uint64_t seal_off = bs->v[9].offset + bs->v[9].len;
    uint64_t records = records_of(bs, 0, bs->n);
    fw_segr_t *r = NULL;
    FWT_ASSERT_OK(fw_segr_open(path, &r));

    FWT_ASSERT_OK(fw_segr_seek(r, bs->v[6].offset));
    FWT_ASSERT_UINT_EQ(fw_segr_position(r), bs->v[6].offset);
    expect_blocks(r, bs, 6, 10);
    expect_seal(r, seal_off, 10, records);

    /* Back from the sealed end to an earlier block. */
    FWT_ASSERT_OK(fw_segr_seek(r, bs->v[2].offset));
    expect_blocks(r, bs, 2, 4);

    /* Into the header: refused, the position stays. */
    ASSERT_RC(fw_segr_seek(r, bs->v[0].offset - 1), -EINVAL);
    FWT_ASSERT_UINT_EQ(fw_segr_position(r), bs->v[4].offset);

    /* Not a boundary: the next read says so, and a seek to a real one recovers. */
    FWT_ASSERT_OK(fw_segr_seek(r, bs->v[5].offset + 1));
    fw_seg_block_t b;
    ASSERT_RC(fw_segr_next(r, &b), FW_ESEG_DAMAGED);
    FWT_ASSERT_OK(fw_segr_seek(r, bs->v[0].offset));
    expect_blocks(r, bs, 0, 10);
    expect_seal(r, seal_off, 10, records);

    /* The seal itself is a position too. */
    FWT_ASSERT_OK(fw_segr_seek(r, seal_off));
    expect_seal(r, seal_off, 10, records);
    fw_segr_close(r);
}

/* ---- names --------------------------------------------------------------- */

static void expect_name(uint64_t id)
{
    char name[FW_SEG_NAME_LEN + 1];
    fw_seg_name(name, id);
    FWT_ASSERT_UINT_EQ(strlen(name), FW_SEG_NAME_LEN);
    char want[64];
    snprintf(want, sizeof(want), "%020" PRIu64 ".seg", id);
    FWT_ASSERT_STR_EQ(name, want);
    uint64_t back = id + 1;
    FWT_ASSERT_OK(fw_seg_name_parse(name, &back));
    FWT_ASSERT_UINT_EQ(back, id);
}

FWT_TEST(seg_name_round_trip)
{
    expect_name(0);
    expect_name(1);
    expect_name(UINT64_MAX);
    expect_name(UINT64_MAX - 1);
    for (int i = 0; i < 1000; i++)
        expect_name(fwt_rand() >> fwt_rand_range(0, 63));

    /* Names sort as ids do: a directory listing in name order is id order. */
    for (int i = 0; i < 1000; i++) {
        uint64_t a = fwt_rand() >> fwt_rand_range(0, 63);
        uint64_t b = fwt_rand() >> fwt_rand_range(0, 63);
        char na[FW_SEG_NAME_LEN + 1], nb[FW_SEG_NAME_LEN + 1];
        fw_seg_name(na, a);
        fw_seg_name(nb, b);
        int c = strcmp(na, nb);
        FWT_ASSERT_INT_EQ(c < 0 ? -1 : c > 0, a < b ? -1 : a > b);
    }
}

FWT_TEST(seg_name_parse_rejects)
{
    const char *bad[] = {
        "",
        ".seg",
        "0000000000000000001.seg",   /* 19 digits */
        "000000000000000000001.seg", /* 21 digits */
        "00000000000000000001.se",
        "00000000000000000001.segx",
        "00000000000000000001.SEG",
        "00000000000000000001_seg",
        "00000000000000000001seg.",
        "0000000000000000000a.seg",
        "a0000000000000000000.seg",
        " 0000000000000000001.seg",
        "+0000000000000000001.seg",
        "-0000000000000000001.seg",
        "0000000000/000000001.seg",
        "18446744073709551616.seg", /* UINT64_MAX + 1 */
        "18446744073709551620.seg",
        "18446744073709552615.seg",
        "19000000000000000000.seg",
        "99999999999999999999.seg",
        "00000000000000000001.seg/",
        "00000000000000000001.tmp",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t id = 777;
        int rc = fw_seg_name_parse(bad[i], &id);
        if (rc != -EINVAL)
            FWT_FAIL("fw_seg_name_parse(\"%s\") = %d (%s), want -EINVAL", bad[i], rc, rc_name(rc));
        FWT_ASSERT_UINT_EQ(id, 777);
    }
    uint64_t id = 0;
    FWT_ASSERT_OK(fw_seg_name_parse("18446744073709551615.seg", &id));
    FWT_ASSERT_UINT_EQ(id, UINT64_MAX);
}

static int allowed_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

FWT_TEST(category_valid)
{
    /* Every single byte, and every byte inside an otherwise good name. */
    for (int c = 1; c < 256; c++) {
        char one[2] = {(char)c, 0};
        char mid[4] = {'a', (char)c, 'b', 0};
        FWT_ASSERT_INT_EQ(fw_category_valid(one), allowed_char(c) && c != '.');
        FWT_ASSERT_INT_EQ(fw_category_valid(mid), allowed_char(c));
    }
    const char *good[] = {"a",
                          "Z",
                          "0",
                          "_",
                          "-",
                          "...",
                          ".a",
                          "a.",
                          "a..b",
                          ".hidden",
                          "web.access-log_2024",
                          "A-Za-z0-9_.-"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (!fw_category_valid(good[i]))
            FWT_FAIL("\"%s\" should be a valid category", good[i]);
    }
    const char *bad[] = {"", ".", "..", "/", "a/b", "/a", " ", "a b", "a\tb", "caf\xc3\xa9", "a\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (fw_category_valid(bad[i]))
            FWT_FAIL("\"%s\" should not be a valid category", bad[i]);
    }

    char name[FW_CATEGORY_MAX + 2];
    for (size_t i = 0; i < sizeof(name); i++)
        name[i] = "aZ9_.-"[fwt_rand_range(0, 5)];
    name[0] = 'x'; /* never "." or ".." */
    name[FW_CATEGORY_MAX] = '\0';
    FWT_ASSERT_INT_EQ(fw_category_valid(name), 1);
    name[FW_CATEGORY_MAX] = 'y';
    name[FW_CATEGORY_MAX + 1] = '\0';
    FWT_ASSERT_INT_EQ(fw_category_valid(name), 0);
}

FWT_TEST(bucket_dir)
{
    char out[64];
    FWT_ASSERT_OK(fw_seg_bucket_dir(out, sizeof(out), "/data", "web.log", 65535));
    FWT_ASSERT_STR_EQ(out, "/data/web.log/65535");
    ASSERT_RC(fw_seg_bucket_dir(out, sizeof(out), "/data", "..", 1), FW_EBAD_CATEGORY);
    ASSERT_RC(fw_seg_bucket_dir(out, sizeof(out), "/data", "a/b", 1), FW_EBAD_CATEGORY);
    /* Exactly fits (19 chars and the NUL), then one byte short. */
    FWT_ASSERT_OK(fw_seg_bucket_dir(out, 20, "/data", "web.log", 65535));
    ASSERT_RC(fw_seg_bucket_dir(out, 19, "/data", "web.log", 65535), -ENAMETOOLONG);
}

FWT_TEST(sealed_stays_sealed)
{
    const char *dir = tmpdir_make();
    blks_t *bs = blks_new();
    const char *path = seg_write(dir, 9, bs, 5, 1);
    fw_segr_t *r;
    FWT_ASSERT_OK(fw_segr_open(path, &r));
    expect_blocks(r, bs, 0, 5);
    uint64_t seal_at = bs->v[4].offset + bs->v[4].len;
    /* Asking again after the seal answers the seal again, not "again later". */
    for (int i = 0; i < 3; i++)
        expect_seal(r, seal_at, 5, records_of(bs, 0, 5));
    fw_segr_close(r);
}

FWT_TEST(recover_seal_cuts_torn_tail_then_seals)
{
    const char *dir = tmpdir_make();
    blks_t *bs = blks_new();
    const char *path = seg_write(dir, 11, bs, 6, 0);
    uint64_t end = bs->v[5].offset + bs->v[5].len;
    /* A torn seventh block: half of a copy of the sixth. */
    pwrite_at(path, bs->v[5].data, bs->v[5].len / 2, end);
    fw_seg_scan_t s;
    FWT_ASSERT_OK(fw_seg_recover_seal(path, 1700000000000, &s));
    FWT_ASSERT(s.sealed);
    FWT_ASSERT_UINT_EQ(s.truncated, bs->v[5].len / 2);
    FWT_ASSERT_UINT_EQ(s.valid_end, end + FW_BLOCK_HEADER_SIZE + FW_SEAL_PAYLOAD_SIZE);
    FWT_ASSERT_UINT_EQ(file_size(path), s.valid_end);
    fw_segr_t *r;
    FWT_ASSERT_OK(fw_segr_open(path, &r));
    expect_blocks(r, bs, 0, 6);
    expect_seal(r, end, 6, records_of(bs, 0, 6));
    fw_segr_close(r);
    /* A sealed segment is left exactly as it is. */
    fw_seg_scan_t again;
    FWT_ASSERT_OK(fw_seg_recover_seal(path, 1700000009999, &again));
    FWT_ASSERT(again.sealed);
    FWT_ASSERT_UINT_EQ(again.truncated, 0);
    FWT_ASSERT_UINT_EQ(file_size(path), s.valid_end);
}
