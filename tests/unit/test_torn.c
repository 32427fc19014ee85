/*
 * Torn writes and bit rot against the segment reader and recovery. The
 * guarantee under test: recovery keeps exactly the whole valid blocks before
 * the first damage, and the reader never returns a damaged block. Each test
 * writes a real sealed segment, then cuts it short, flips one byte of it, or
 * replaces its tail with garbage, at random or at every offset.
 */
#include "fwtest.h"
#include "fwt_proc.h"

#include "block.h"
#include "error.h"
#include "segment.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------- */

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

/* What the current trial did to the file, so a failure among thousands says which one. */
static char trial[128];

#define CHECK_RC(got, want)                                                                        \
    do {                                                                                           \
        int got_ = (got), want_ = (want);                                                          \
        if (got_ != want_)                                                                         \
            FWT_FAIL("%s: %s: got %d (%s), want %d (%s)", trial, #got, got_, rc_name(got_), want_, \
                     rc_name(want_));                                                              \
    } while (0)

#define CHECK_U(got, want)                                                                         \
    do {                                                                                           \
        unsigned long long got_ = (got), want_ = (want);                                           \
        if (got_ != want_)                                                                         \
            FWT_FAIL("%s: %s == %s: %llu != %llu", trial, #got, #want, got_, want_);               \
    } while (0)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            FWT_FAIL("%s: assertion failed: %s", trial, #cond);                                    \
    } while (0)

/* A fresh directory, removed when the test ends; tmpfs when there is one: fsync is cheap there. */
static const char *tmpdir_make(void)
{
    return fwt_tmpdir_mem();
}

static void pwrite_all(int fd, const void *p, size_t n, uint64_t off)
{
    ssize_t done = pwrite(fd, p, n, (off_t)off);
    if (done != (ssize_t)n)
        FWT_FAIL("%s: pwrite %zu at %llu: %zd (%s)", trial, n, (unsigned long long)off, done,
                 strerror(errno));
}

static uint64_t fd_size(int fd)
{
    struct stat st;
    FWT_ASSERT(fstat(fd, &st) == 0);
    return (uint64_t)st.st_size;
}

/* ---- the segment under test ---------------------------------------------- */

/*
 * A sealed segment and where its blocks are: block i is [start[i],
 * start[i + 1]); the last block (index nblk - 1) is the seal, and
 * start[nblk] is the file size.
 */
typedef struct {
    fw_seg_header_t header;
    uint8_t *data; /* the whole file */
    uint64_t size;
    uint64_t hlen;
    size_t nblk;          /* blocks, the seal included */
    uint64_t *start;      /* nblk + 1 entries */
    uint64_t *rec_before; /* records in blocks [0, i), nblk + 1 entries */
} image_t;

typedef struct {
    uint32_t blocks;
    uint32_t max_records;
    uint32_t max_value;   /* most records are in [0, max_value] */
    int log_uniform;      /* ... log-uniformly, else uniformly */
    uint32_t big_records; /* this many records of 64 KiB .. 1 MiB, in random blocks */
} shape_t;

static void image_free(void *arg)
{
    image_t *img = arg;
    free(img->data);
    free(img->start);
    free(img->rec_before);
    free(img);
}

/* A value that lz4 shrinks (a short pattern repeated, or text-like) or random bytes. */
static void fill_value(uint8_t *p, size_t n)
{
    switch (fwt_rand() % 3) {
    case 0:
        fwt_rand_bytes(p, n);
        break;
    case 1: {
        uint8_t pat[16];
        size_t period = (size_t)fwt_rand_range(1, sizeof(pat));
        fwt_rand_bytes(pat, period);
        for (size_t i = 0; i < n; i++)
            p[i] = pat[i % period];
        break;
    }
    default:
        for (size_t i = 0; i < n; i++)
            p[i] = (uint8_t) "GET /index.html 200 ok\n"[fwt_rand_range(0, 22)];
        break;
    }
}

/*
 * Log-uniform (mostly small, sometimes up to max: sizes spread evenly over
 * powers of two) for the big segment; uniform for the small one, whose size
 * must stay near 10-20 KB.
 */
static size_t value_size(uint32_t max, int log_uniform)
{
    if (!log_uniform)
        return (size_t)fwt_rand_range(0, max);
    unsigned bits = 0;
    while ((1ull << bits) < max)
        bits++;
    uint64_t cap = 1ull << fwt_rand_range(0, bits);
    return (size_t)fwt_rand_range(0, cap < max ? cap : max);
}

/*
 * Writes a sealed segment of random blocks with the real writer (appends of
 * 1..4 blocks each), checks every block landed byte for byte where the
 * writer said, and keeps the file's bytes as the reference.
 */
static image_t *image_make(const char *dir, const shape_t *shape)
{
    image_t *img = calloc(1, sizeof(*img));
    FWT_ASSERT(img != NULL);
    fwt_defer(image_free, img);
    img->nblk = shape->blocks + 1;
    img->start = calloc(img->nblk + 1, sizeof(*img->start));
    img->rec_before = calloc(img->nblk + 1, sizeof(*img->rec_before));
    uint8_t **copies = calloc(shape->blocks, sizeof(*copies));
    size_t *lens = calloc(shape->blocks, sizeof(*lens));
    uint32_t *big_in = calloc(shape->blocks, sizeof(*big_in));
    FWT_ASSERT(img->start && img->rec_before && copies && lens && big_in);
    for (uint32_t i = 0; i < shape->big_records; i++)
        big_in[fwt_rand_range(0, shape->blocks - 1)]++;

    fw_seg_header_t *h = &img->header;
    h->segment_id = fwt_rand();
    h->epoch = fwt_rand_range(1, 100);
    h->created_ms = 1700000000000;
    h->bucket = (uint32_t)fwt_rand_range(0, FW_BUCKETS_MAX - 1);
    snprintf(h->category, sizeof(h->category), "torn.test-%u", (unsigned)fwt_rand_range(0, 999));
    fw_segw_t *w = NULL;
    FWT_ASSERT_OK(fw_segw_create(dir, h, &w));
    img->hlen = w->end;

    fw_block_builder_t bld;
    fw_block_builder_init(&bld, 0);
    uint8_t *val = malloc(1u << 20);
    FWT_ASSERT(val != NULL);
    int64_t ts = 1700000000000;
    for (uint32_t i = 0; i < shape->blocks; i++) {
        uint32_t nrec = (uint32_t)fwt_rand_range(1, shape->max_records);
        for (uint32_t j = 0; j < nrec + big_in[i]; j++) {
            uint8_t key[24];
            size_t klen = (size_t)fwt_rand_range(0, sizeof(key));
            fwt_rand_bytes(key, klen);
            size_t vlen = j < nrec ? value_size(shape->max_value, shape->log_uniform)
                                   : (size_t)fwt_rand_range(64u << 10, 1u << 20);
            fill_value(val, vlen);
            ts += (int64_t)fwt_rand_range(0, 100) - 20;
            FWT_ASSERT_OK(fw_block_builder_add(&bld, ts, key, klen, fwt_rand() % 2, val, vlen));
        }
        const uint8_t *p;
        fw_codec_t codec = fwt_rand() % 2 ? FW_CODEC_LZ4 : FW_CODEC_NONE;
        FWT_ASSERT_OK(fw_block_builder_finish(&bld, codec, 9, i + 1, &p, &lens[i]));
        copies[i] = malloc(lens[i]);
        FWT_ASSERT(copies[i] != NULL);
        memcpy(copies[i], p, lens[i]);
        img->rec_before[i + 1] = img->rec_before[i] + nrec + big_in[i];
    }
    free(val);
    fw_block_builder_free(&bld);

    for (uint32_t i = 0; i < shape->blocks;) {
        uint32_t k = (uint32_t)fwt_rand_range(1, 4);
        if (k > shape->blocks - i)
            k = shape->blocks - i;
        struct iovec iov[4];
        uint32_t recs = (uint32_t)(img->rec_before[i + k] - img->rec_before[i]);
        for (uint32_t j = 0; j < k; j++)
            iov[j] = (struct iovec){copies[i + j], lens[i + j]};
        uint64_t off;
        FWT_ASSERT_OK(fw_segw_append(w, iov, (int)k, k, recs, &off));
        for (uint32_t j = 0; j < k; j++) {
            img->start[i + j] = off;
            off += lens[i + j];
        }
        i += k;
    }
    img->start[shape->blocks] = w->end;
    img->rec_before[img->nblk] = img->rec_before[shape->blocks];
    FWT_ASSERT_OK(fw_segw_seal(w, 1700000000000));
    char *path = strdup(w->path);
    FWT_ASSERT(path != NULL);
    fw_segw_close(w);

    int fd = open(path, O_RDONLY);
    FWT_ASSERT(fd >= 0);
    img->size = fd_size(fd);
    img->start[img->nblk] = img->size;
    FWT_ASSERT_UINT_EQ(img->size - img->start[shape->blocks],
                       FW_BLOCK_HEADER_SIZE + FW_SEAL_PAYLOAD_SIZE);
    img->data = malloc(img->size);
    FWT_ASSERT(img->data != NULL);
    FWT_ASSERT_INT_EQ(pread(fd, img->data, img->size, 0), (ssize_t)img->size);
    close(fd);
    unlink(path);
    free(path);

    /* The reference is only as good as this check: the file holds what was appended. */
    FWT_ASSERT_UINT_EQ(img->start[0], img->hlen);
    for (uint32_t i = 0; i < shape->blocks; i++) {
        FWT_ASSERT_UINT_EQ(img->start[i + 1] - img->start[i], lens[i]);
        FWT_ASSERT_MEM_EQ(img->data + img->start[i], copies[i], lens[i]);
        free(copies[i]);
    }
    free(copies);
    free(lens);
    free(big_in);
    fprintf(stderr, "segment: %zu blocks (seal included), %llu bytes, header %llu\n", img->nblk,
            (unsigned long long)img->size, (unsigned long long)img->hlen);
    return img;
}

/* How many blocks lie wholly in [0, c): the largest k with start[k] <= c. */
static size_t blocks_within(const image_t *img, uint64_t c)
{
    size_t lo = 0, hi = img->nblk; /* start[lo] <= c is known (c >= hlen) */
    while (lo < hi) {
        size_t mid = (lo + hi + 1) / 2;
        if (img->start[mid] <= c)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

/*
 * The scratch copy the trials damage. It always holds img->data[0, len)
 * between trials, so a trial only rewrites what the last one changed
 * instead of copying the whole segment again.
 */
typedef struct {
    char path[4096];
    int fd;
    uint64_t len;
} scratch_t;

static void scratch_close(void *arg)
{
    scratch_t *s = arg;
    if (s->fd >= 0)
        close(s->fd);
    free(s);
}

static scratch_t *scratch_open(const char *dir)
{
    scratch_t *s = calloc(1, sizeof(*s));
    FWT_ASSERT(s != NULL);
    s->fd = -1;
    fwt_defer(scratch_close, s);
    snprintf(s->path, sizeof(s->path), "%s/scratch.seg", dir);
    s->fd = open(s->path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    FWT_ASSERT(s->fd >= 0);
    return s;
}

/* Makes the scratch file exactly img->data[0, c). */
static void scratch_prefix(scratch_t *s, const image_t *img, uint64_t c)
{
    if (s->len < c)
        pwrite_all(s->fd, img->data + s->len, c - s->len, s->len);
    else if (s->len > c)
        FWT_ASSERT(ftruncate(s->fd, (off_t)c) == 0);
    s->len = c;
}

/*
 * Reads the scratch file from the start: blocks [0, k) come back byte for
 * byte, then `final`. For FW_SEGR_SEALED block k is the seal and must be
 * whole; for AGAIN and DAMAGED the reader must stay at block k, asked twice.
 */
static void expect_reader(const image_t *img, const char *path, size_t k, int final, int why,
                          uint64_t damage_at)
{
    fw_segr_t *r = NULL;
    CHECK_RC(fw_segr_open(path, &r), 0);
    CHECK_U(fw_segr_header(r)->header_len, img->hlen);
    fw_seg_block_t b;
    for (size_t i = 0; i < k; i++) {
        CHECK_RC(fw_segr_next(r, &b), FW_SEGR_BLOCK);
        CHECK_U(b.offset, img->start[i]);
        CHECK_U(b.len, img->start[i + 1] - img->start[i]);
        CHECK(memcmp(b.data, img->data + img->start[i], b.len) == 0);
    }
    if (final == FW_SEGR_SEALED) {
        CHECK_RC(fw_segr_next(r, &b), FW_SEGR_SEALED);
        CHECK_U(b.offset, img->start[k]);
        CHECK_U(b.len, img->start[k + 1] - img->start[k]);
        CHECK(memcmp(b.data, img->data + img->start[k], b.len) == 0);
    } else {
        for (int i = 0; i < 2; i++) {
            CHECK_RC(fw_segr_next(r, &b), final);
            CHECK_U(fw_segr_position(r), img->start[k]);
            if (final == FW_ESEG_DAMAGED) {
                uint64_t off;
                int got_why;
                fw_segr_damage(r, &off, &got_why);
                CHECK_U(off, damage_at);
                CHECK_RC(got_why, why);
            }
        }
    }
    fw_segr_close(r);
}

/*
 * Recovers the scratch file (of length n) and checks it kept exactly blocks
 * [0, k), plus the seal if `sealed`, and reported `damage`. Then reads what
 * is left, which must be exactly those blocks and nothing else.
 */
static void expect_recover(const image_t *img, scratch_t *s, size_t k, int sealed, uint64_t n,
                           int damage)
{
    uint64_t keep = sealed ? img->size : img->start[k];
    fw_seg_scan_t sc;
    CHECK_RC(fw_seg_recover(s->path, &sc), 0);
    CHECK_U(sc.header.segment_id, img->header.segment_id);
    CHECK_U(sc.valid_end, keep);
    CHECK_U(sc.blocks, k);
    CHECK_U(sc.records, img->rec_before[k]);
    CHECK_RC(sc.sealed, sealed);
    CHECK_RC(sc.damage, damage);
    CHECK_U(sc.truncated, n - keep);
    CHECK_U(sc.file_size, keep);
    CHECK_U(fd_size(s->fd), keep);
    s->len = keep;
    expect_reader(img, s->path, k, sealed ? FW_SEGR_SEALED : FW_SEGR_AGAIN, 0, 0);
}

/*
 * The file ends at c, as after a crash mid-append: the reader sees the whole
 * blocks before c and then waits, never calls it damage; recovery keeps
 * those blocks and cuts the partial one.
 */
static void trial_cut(const image_t *img, scratch_t *s, uint64_t c)
{
    snprintf(trial, sizeof(trial), "cut at %llu of %llu", (unsigned long long)c,
             (unsigned long long)img->size);
    scratch_prefix(s, img, c);
    if (c < img->hlen) {
        /* A header still being written: wait, and recovery must not touch it. */
        fw_segr_t *r = NULL;
        CHECK_RC(fw_segr_open(s->path, &r), -EAGAIN);
        fw_seg_scan_t sc;
        CHECK_RC(fw_seg_recover(s->path, &sc), -EAGAIN);
        CHECK_U(fd_size(s->fd), c);
        return;
    }
    size_t k = blocks_within(img, c);
    if (k == img->nblk) {
        expect_reader(img, s->path, k - 1, FW_SEGR_SEALED, 0, 0);
        expect_recover(img, s, k - 1, 1, c, 0);
        return;
    }
    expect_reader(img, s->path, k, FW_SEGR_AGAIN, 0, 0);
    expect_recover(img, s, k, 0, c, c > img->start[k] ? FW_ESEG_DAMAGED : 0);
}

/*
 * One byte of the whole segment is flipped (bit rot, a misdirected write):
 * in the file header nothing opens; in block k (the seal included) the
 * reader stops at block k with the reason, and recovery keeps blocks
 * [0, k) only.
 */
static void trial_flip(const image_t *img, scratch_t *s, uint64_t pos, uint8_t x)
{
    snprintf(trial, sizeof(trial), "byte %llu of %llu xor 0x%02x", (unsigned long long)pos,
             (unsigned long long)img->size, x);
    scratch_prefix(s, img, img->size);
    uint8_t bad = img->data[pos] ^ x;
    pwrite_all(s->fd, &bad, 1, pos);
    if (pos < img->hlen) {
        fw_segr_t *r = NULL;
        CHECK_RC(fw_segr_open(s->path, &r), FW_ESEG_HEADER);
        fw_seg_scan_t sc;
        CHECK_RC(fw_seg_recover(s->path, &sc), FW_ESEG_HEADER);
        CHECK_U(fd_size(s->fd), img->size);
        pwrite_all(s->fd, &img->data[pos], 1, pos);
        return;
    }
    size_t k = blocks_within(img, pos);
    int why = pos - img->start[k] < FW_BLOCK_HEADER_SIZE ? FW_EBLOCK_HEADER : FW_EBLOCK_CRC;
    expect_reader(img, s->path, k, FW_ESEG_DAMAGED, why, img->start[k]);
    /* Recovery cuts at block k, so the flipped byte goes with it. */
    expect_recover(img, s, k, 0, img->size, why);
}

/*
 * The file is cut at c and then continues with len bytes of garbage, as
 * when a crash leaves a file's size updated but not its data (zeros) or
 * leaves other bytes behind. Whatever the garbage, the reader returns only
 * whole original blocks and recovery keeps exactly those.
 */
static void trial_garbage(const image_t *img, scratch_t *s, uint64_t c, const uint8_t *junk,
                          size_t len, int zeros)
{
    snprintf(trial, sizeof(trial), "cut at %llu of %llu, then %zu %s bytes", (unsigned long long)c,
             (unsigned long long)img->size, len, zeros ? "zero" : "random");
    scratch_prefix(s, img, c);
    pwrite_all(s->fd, junk, len, c);
    uint64_t n = c + len;

    /* Garbage can repeat the original bytes by chance (zeros often do): count what matches. */
    uint64_t m = c;
    while (m < n && m < img->size && junk[m - c] == img->data[m])
        m++;
    size_t k = blocks_within(img, m);
    if (k == img->nblk) {
        /* The seal survived whole; anything after it is stray. */
        if (n == img->size) {
            expect_reader(img, s->path, k - 1, FW_SEGR_SEALED, 0, 0);
            expect_recover(img, s, k - 1, 1, n, 0);
        } else {
            expect_reader(img, s->path, k - 1, FW_ESEG_DAMAGED, FW_ESEG_SEALED, img->size);
            expect_recover(img, s, k - 1, 1, n, FW_ESEG_DAMAGED);
        }
        return;
    }
    /*
     * Block k is what the reader judges. Less than a header there: it waits
     * while the bytes could still begin a block (they match the magic so
     * far), else it is damage. A whole header that garbage touched fails its
     * CRC; an intact header vouches for the length, so a short block waits
     * and a whole one fails its payload CRC.
     */
    uint64_t at = img->start[k], avail = n - at;
    uint64_t size_k = img->start[k + 1] - at;
    int final = FW_ESEG_DAMAGED, why = 0;
    uint8_t head[4];
    for (size_t i = 0; i < 4 && i < avail; i++)
        head[i] = at + i < c ? img->data[at + i] : junk[at + i - c];
    if (avail < FW_BLOCK_HEADER_SIZE) {
        why = FW_EBLOCK_HEADER;
        if (memcmp(head, "FWBK", avail < 4 ? avail : 4) == 0)
            final = FW_SEGR_AGAIN;
    } else if (m < at + FW_BLOCK_HEADER_SIZE) {
        why = FW_EBLOCK_HEADER;
    } else if (avail < size_k) {
        final = FW_SEGR_AGAIN;
    } else {
        why = FW_EBLOCK_CRC;
    }
    expect_reader(img, s->path, k, final, why, at);
    expect_recover(img, s, k, 0, n, final == FW_ESEG_DAMAGED ? why : n > at ? FW_ESEG_DAMAGED : 0);
}

static void report(const char *what, int64_t t0, int trials)
{
    fprintf(stderr, "%s: %d trials in %lld ms\n", what, trials, (long long)(fwt_now_ms() - t0));
}

/* ---- tests ------------------------------------------------------------------ */

/*
 * A ~300-block segment (records up to 64 KiB, a few up to 1 MiB, lz4 and
 * raw, compressible and not), 1,000 random cuts and 1,000 random one-byte
 * flips. Half of each land near block boundaries and headers, where a
 * uniform pick over megabytes of payload would rarely go.
 */
FWT_TEST(random_cuts_and_flips)
{
    const char *dir = tmpdir_make();
    shape_t shape = {300, 6, 64u << 10, 1, 4};
    image_t *img = image_make(dir, &shape);
    scratch_t *s = scratch_open(dir);

    int64_t t0 = fwt_now_ms();
    uint64_t fixed[] = {0,
                        1,
                        img->hlen - 1,
                        img->hlen,
                        img->hlen + 1,
                        img->start[img->nblk - 1],
                        img->size - 1,
                        img->size};
    int n = 0;
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++, n++)
        trial_cut(img, s, fixed[i]);
    for (; n < 1000; n++) {
        uint64_t c;
        if (n % 2) {
            c = fwt_rand_range(0, img->size);
        } else {
            size_t b = (size_t)fwt_rand_range(0, img->nblk);
            int64_t at = (int64_t)img->start[b] + (int64_t)fwt_rand_range(0, 72) - 4;
            c = at < 0 ? 0 : (uint64_t)at > img->size ? img->size : (uint64_t)at;
        }
        trial_cut(img, s, c);
    }
    report("cuts", t0, n);

    t0 = fwt_now_ms();
    for (n = 0; n < 1000; n++) {
        uint64_t pos;
        switch (n % 4) {
        case 0:
        case 1:
            pos = fwt_rand_range(0, img->size - 1);
            break;
        case 2:
            pos = img->start[fwt_rand_range(0, img->nblk - 1)] +
                  fwt_rand_range(0, FW_BLOCK_HEADER_SIZE - 1);
            break;
        default:
            pos = fwt_rand_range(0, img->hlen - 1);
            break;
        }
        trial_flip(img, s, pos, (uint8_t)fwt_rand_range(1, 255));
    }
    report("flips", t0, n);
}

/*
 * The same checks at every offset of a small segment (~40 blocks): every
 * cut from 0 to the full size, and every byte flipped (with a random
 * non-zero mask), so no offset is left to chance.
 */
FWT_TEST(every_cut_and_every_flip)
{
    const char *dir = tmpdir_make();
    shape_t shape = {40, 3, 360, 0, 0};
    image_t *img = image_make(dir, &shape);
    FWT_ASSERT_INT_OP(img->size, >=, 8000);
    FWT_ASSERT_INT_OP(img->size, <=, 40000);
    scratch_t *s = scratch_open(dir);

    int64_t t0 = fwt_now_ms();
    for (uint64_t c = 0; c <= img->size; c++)
        trial_cut(img, s, c);
    report("cuts", t0, (int)img->size + 1);

    t0 = fwt_now_ms();
    for (uint64_t pos = 0; pos < img->size; pos++)
        trial_flip(img, s, pos, (uint8_t)fwt_rand_range(1, 255));
    report("flips", t0, (int)img->size);
}

/*
 * Cuts followed by garbage instead of nothing: zeros (a file whose size
 * reached the disk before its data) or random bytes, at random offsets of a
 * small segment, block boundaries and the seal's end included.
 */
FWT_TEST(cut_then_garbage)
{
    const char *dir = tmpdir_make();
    shape_t shape = {40, 3, 360, 0, 0};
    image_t *img = image_make(dir, &shape);
    scratch_t *s = scratch_open(dir);
    uint8_t junk[512];

    int64_t t0 = fwt_now_ms();
    int n;
    for (n = 0; n < 3000; n++) {
        uint64_t c;
        if (n % 2) {
            c = fwt_rand_range(img->hlen, img->size);
        } else {
            /* At or just past a boundary, where a partial header meets the garbage. */
            size_t b = (size_t)fwt_rand_range(0, img->nblk);
            c = img->start[b] + fwt_rand_range(0, 8);
            if (c > img->size)
                c = img->size;
        }
        size_t len = (size_t)fwt_rand_range(1, sizeof(junk));
        int zeros = fwt_rand() % 2;
        if (zeros)
            memset(junk, 0, len);
        else
            fwt_rand_bytes(junk, len);
        trial_garbage(img, s, c, junk, len, zeros);
    }
    report("garbage tails", t0, n);
}
