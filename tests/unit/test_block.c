/*
 * The block format: random round trips with and without lz4, every sanity
 * check of the header, and corrupt payloads that still carry a valid CRC.
 */
#include "fwtest.h"

#include "block.h"
#include "bytes.h"
#include "crc32c.h"
#include "error.h"

#include <errno.h>
#include <stdlib.h>

typedef struct rec_s {
    int64_t ts;
    int has_key;
    uint8_t *key;
    size_t key_len;
    uint8_t *value;
    size_t value_len;
} rec_t;

static void rec_free_all(void *arg);

typedef struct recs_s {
    rec_t *r;
    size_t n;
} recs_t;

static void rec_free_all(void *arg)
{
    recs_t *rs = arg;
    for (size_t i = 0; i < rs->n; i++) {
        free(rs->r[i].key);
        free(rs->r[i].value);
    }
    free(rs->r);
    free(rs);
}

/* Random bytes, or a repetitive log-like line (compressible), of a given size. */
static void fill_payload(uint8_t *p, size_t n, int compressible)
{
    if (!compressible) {
        fwt_rand_bytes(p, n);
        return;
    }
    static const char line[] = "GET /index.html 200 user=42 agent=curl/8.0 ms=3\n";
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)line[i % (sizeof(line) - 1)];
}

static size_t random_size(void)
{
    /* Mostly small, sometimes up to 1 MiB, and 0 bytes often enough. */
    switch (fwt_rand() % 8) {
    case 0:
        return 0;
    case 1:
        return (size_t)fwt_rand_range(0, 1 << 20);
    case 2:
        return (size_t)fwt_rand_range(0, 65536);
    default:
        return (size_t)fwt_rand_range(0, 300);
    }
}

static recs_t *random_records(size_t n, int compressible)
{
    recs_t *rs = calloc(1, sizeof(*rs));
    rs->r = calloc(n, sizeof(rec_t));
    rs->n = n;
    fwt_defer(rec_free_all, rs);
    int64_t ts = (int64_t)fwt_rand_range(0, (uint64_t)1 << 42) - ((int64_t)1 << 41);
    for (size_t i = 0; i < n; i++) {
        rec_t *r = &rs->r[i];
        /* Clocks go back too: deltas are signed. */
        ts += (int64_t)fwt_rand_range(0, 2000) - 500;
        r->ts = ts;
        r->has_key = fwt_rand() % 3 != 0;
        r->key_len = r->has_key ? (size_t)fwt_rand_range(0, 40) : 0;
        r->key = malloc(r->key_len + 1);
        fwt_rand_bytes(r->key, r->key_len);
        r->value_len = random_size();
        r->value = malloc(r->value_len + 1);
        fill_payload(r->value, r->value_len, compressible);
    }
    return rs;
}

static void check_decodes_to(const uint8_t *blk, size_t len, const recs_t *rs, size_t from,
                             size_t count)
{
    fw_buf_t scratch = FW_BUF_INIT;
    fw_block_header_t h;
    fw_record_iter_t it;
    FWT_ASSERT_OK(fw_block_decode(blk, len, FW_RECORD_MAX_HARD, &scratch, &h, &it));
    FWT_ASSERT_UINT_EQ(h.record_count, count);
    fw_record_t rec;
    for (size_t i = 0; i < count; i++) {
        const rec_t *want = &rs->r[from + i];
        FWT_ASSERT_INT_EQ(fw_record_next(&it, &rec), 1);
        FWT_ASSERT_INT_EQ(rec.timestamp, want->ts);
        FWT_ASSERT_INT_EQ(rec.has_key, want->has_key);
        FWT_ASSERT_UINT_EQ(rec.key_len, want->key_len);
        FWT_ASSERT_MEM_EQ(rec.key, want->key, want->key_len);
        FWT_ASSERT_UINT_EQ(rec.value_len, want->value_len);
        FWT_ASSERT_MEM_EQ(rec.value, want->value, want->value_len);
        FWT_ASSERT(rec.timestamp <= h.max_ts);
    }
    FWT_ASSERT_INT_EQ(fw_record_next(&it, &rec), 0);
    fw_buf_free(&scratch);
}

static void round_trip(int compressible, fw_codec_t codec)
{
    recs_t *rs = random_records(400, compressible);
    fw_block_builder_t b;
    fw_block_builder_init(&b, FW_RECORD_MAX_HARD);
    size_t from = 0;
    uint64_t seq = 1;
    int saw_lz4 = 0;
    while (from < rs->n) {
        size_t count = (size_t)fwt_rand_range(1, 60);
        if (count > rs->n - from)
            count = rs->n - from;
        for (size_t i = 0; i < count; i++) {
            const rec_t *r = &rs->r[from + i];
            FWT_ASSERT_OK(fw_block_builder_add(&b, r->ts, r->key, r->key_len, r->has_key, r->value,
                                               r->value_len));
        }
        FWT_ASSERT_UINT_EQ(fw_block_builder_count(&b), count);
        const uint8_t *blk;
        size_t len;
        FWT_ASSERT_OK(fw_block_builder_finish(&b, codec, 0xfeedULL, seq, &blk, &len));
        fw_block_header_t h;
        FWT_ASSERT_OK(fw_block_verify(blk, len, &h));
        FWT_ASSERT_UINT_EQ(h.producer_id, 0xfeedULL);
        FWT_ASSERT_UINT_EQ(h.sequence, seq);
        FWT_ASSERT_INT_EQ(h.base_ts, rs->r[from].ts);
        if (h.codec == FW_CODEC_LZ4)
            saw_lz4 = 1;
        if (codec == FW_CODEC_NONE)
            FWT_ASSERT_INT_EQ(h.codec, FW_CODEC_NONE);
        check_decodes_to(blk, len, rs, from, count);
        from += count;
        seq++;
    }
    /* lz4 is used when it pays, and never for random bytes that it cannot shrink. */
    if (codec == FW_CODEC_LZ4 && compressible)
        FWT_ASSERT(saw_lz4);
    fw_block_builder_free(&b);
}

FWT_TEST(round_trip_random_records_raw)
{
    round_trip(0, FW_CODEC_NONE);
}

FWT_TEST(round_trip_random_records_lz4_incompressible)
{
    round_trip(0, FW_CODEC_LZ4);
}

FWT_TEST(round_trip_compressible_records_lz4)
{
    round_trip(1, FW_CODEC_LZ4);
}

FWT_TEST(record_and_block_limits)
{
    fw_block_builder_t b;
    fw_block_builder_init(&b, 1000);
    uint8_t *big = calloc(1, FW_RECORD_MAX_HARD + 1);
    fwt_defer(free, big);
    FWT_ASSERT_INT_EQ(fw_block_builder_add(&b, 0, "k", 1, 1, big, 1000), FW_ERECORD_TOO_LARGE);
    FWT_ASSERT_OK(fw_block_builder_add(&b, 0, "k", 1, 1, big, 999));
    /* Without a key, the key bytes do not count. */
    FWT_ASSERT_OK(fw_block_builder_add(&b, 0, "k", 1, 0, big, 1000));
    const uint8_t *blk;
    size_t len;
    FWT_ASSERT_OK(fw_block_builder_finish(&b, FW_CODEC_NONE, 1, 1, &blk, &len));
    /* A reader with a smaller limit refuses the block as a whole. */
    fw_buf_t scratch = FW_BUF_INIT;
    fw_block_header_t h;
    fw_record_iter_t it;
    FWT_ASSERT_INT_EQ(fw_block_decode(blk, len, 999, &scratch, &h, &it), FW_ERECORD_TOO_LARGE);
    FWT_ASSERT_OK(fw_block_decode(blk, len, 1000, &scratch, &h, &it));
    /* Nothing to finish. */
    FWT_ASSERT_INT_EQ(fw_block_builder_finish(&b, FW_CODEC_NONE, 1, 2, &blk, &len), -EINVAL);
    fw_block_builder_free(&b);

    /* The hard cap holds whatever the configured limit says, and a block never passes its cap. */
    fw_block_builder_init(&b, 0);
    FWT_ASSERT_INT_EQ(fw_block_builder_add(&b, 0, NULL, 0, 0, big, FW_RECORD_MAX_HARD + 1),
                      FW_ERECORD_TOO_LARGE);
    FWT_ASSERT_OK(fw_block_builder_add(&b, 0, NULL, 0, 0, big, FW_RECORD_MAX_HARD));
    FWT_ASSERT_INT_EQ(fw_block_builder_add(&b, 0, NULL, 0, 0, big, FW_RECORD_MAX_HARD),
                      FW_EBLOCK_TOO_LARGE);
    FWT_ASSERT_OK(fw_block_builder_finish(&b, FW_CODEC_LZ4, 1, 1, &blk, &len));
    FWT_ASSERT_OK(fw_block_decode(blk, len, 0, &scratch, &h, &it));
    FWT_ASSERT_INT_EQ(h.codec, FW_CODEC_LZ4); /* zeros compress */
    fw_block_builder_free(&b);
    fw_buf_free(&scratch);
}

/* Builds a small valid raw block into out (which must hold 256 bytes); returns its length. */
static size_t small_block(uint8_t *out)
{
    fw_block_builder_t b;
    fw_block_builder_init(&b, 0);
    FWT_ASSERT_OK(fw_block_builder_add(&b, 1000, "key", 3, 1, "hello", 5));
    FWT_ASSERT_OK(fw_block_builder_add(&b, 1003, NULL, 0, 0, "world!", 6));
    const uint8_t *blk;
    size_t len;
    FWT_ASSERT_OK(fw_block_builder_finish(&b, FW_CODEC_NONE, 9, 77, &blk, &len));
    FWT_ASSERT(len <= 256);
    memcpy(out, blk, len);
    fw_block_builder_free(&b);
    return len;
}

/* Re-signs a block after tampering, so only the sanity checks can catch it. */
static void resign(uint8_t *blk)
{
    uint32_t stored = fw_load_u32(blk + 8);
    if (stored <= 256 - FW_BLOCK_HEADER_SIZE) /* the test buffers hold 256 bytes */
        fw_store_u32(blk + 20, fw_crc32c(0, blk + FW_BLOCK_HEADER_SIZE, stored));
    fw_store_u32(blk + 60, fw_crc32c(0, blk, 60));
}

FWT_TEST(every_flipped_byte_is_caught)
{
    uint8_t good[256];
    size_t len = small_block(good);
    fw_buf_t scratch = FW_BUF_INIT;
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            uint8_t bad[256];
            memcpy(bad, good, len);
            bad[i] ^= (uint8_t)(1u << bit);
            fw_block_header_t h;
            fw_record_iter_t it;
            int rc = fw_block_verify(bad, len, &h);
            if (rc >= 0)
                FWT_FAIL("flip of bit %d in byte %zu went unnoticed", bit, i);
            FWT_ASSERT(fw_block_decode(bad, len, 0, &scratch, &h, &it) < 0);
        }
    }
    fw_buf_free(&scratch);
}

FWT_TEST(header_sanity_checks)
{
    uint8_t good[256];
    size_t len = small_block(good);
    fw_block_header_t h;
    FWT_ASSERT_OK(fw_block_verify(good, len, &h));
    FWT_ASSERT_INT_EQ(fw_block_header_parse(good, 63, &h), -EAGAIN);
    FWT_ASSERT_INT_EQ(fw_block_verify(good, len - 1, &h), -EAGAIN);

    struct {
        size_t at, width;
        uint64_t value;
        int want;
        const char *what;
    } cases[] = {
        {0, 1, 'X', FW_EBLOCK_HEADER, "magic"},
        {4, 1, 2, FW_EBLOCK_HEADER, "version"},
        {5, 1, 7, FW_EBLOCK_HEADER, "codec"},
        {6, 2, 2, FW_EBLOCK_HEADER, "unknown flag"},
        {6, 2, 1, FW_EBLOCK_HEADER, "seal flag on a data block"},
        {8, 4, FW_BLOCK_MAX_PAYLOAD + 1, FW_EBLOCK_TOO_LARGE, "stored_len over the cap"},
        {12, 4, 9, FW_EBLOCK_HEADER, "raw_len != stored_len without codec"},
        {16, 4, 0, FW_EBLOCK_HEADER, "no records"},
        {16, 4, 1000, FW_EBLOCK_HEADER, "more records than bytes allow"},
        {48, 8, 999, FW_EBLOCK_HEADER, "max_ts below base_ts"},
        {56, 4, 1, FW_EBLOCK_HEADER, "reserved bits"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t bad[256];
        memcpy(bad, good, len);
        if (cases[i].width == 1)
            bad[cases[i].at] = (uint8_t)cases[i].value;
        else if (cases[i].width == 2)
            fw_store_u16(bad + cases[i].at, (uint16_t)cases[i].value);
        else if (cases[i].width == 4)
            fw_store_u32(bad + cases[i].at, (uint32_t)cases[i].value);
        else
            fw_store_u64(bad + cases[i].at, cases[i].value);
        if (cases[i].at != 0 && cases[i].at != 4)
            resign(bad);
        int rc = fw_block_header_parse(bad, len, &h);
        if (rc != cases[i].want)
            FWT_FAIL("%s: got %d (%s), want %d", cases[i].what, rc, fw_err_name(rc), cases[i].want);
    }
}

/*
 * A raw block whose payload is given verbatim and then signed: it passes
 * both CRCs, so only the record parser can refuse it.
 */
static size_t forge(uint8_t *out, const uint8_t *payload, size_t n, uint32_t count, int64_t base_ts,
                    int64_t max_ts)
{
    uint8_t good[256];
    small_block(good);
    memcpy(out, good, FW_BLOCK_HEADER_SIZE);
    memcpy(out + FW_BLOCK_HEADER_SIZE, payload, n);
    fw_store_u32(out + 8, (uint32_t)n);
    fw_store_u32(out + 12, (uint32_t)n);
    fw_store_u32(out + 16, count);
    fw_store_u64(out + 40, (uint64_t)base_ts);
    fw_store_u64(out + 48, (uint64_t)max_ts);
    resign(out);
    return FW_BLOCK_HEADER_SIZE + n;
}

FWT_TEST(corrupt_payload_with_valid_crc)
{
    struct {
        uint8_t payload[16];
        size_t n;
        uint32_t count;
        int64_t max_ts;
        int want;
        const char *what;
    } cases[] = {
        {{0, 0, 1, 'a'}, 4, 1, 0, 0, "a valid one-record block"},
        {{0, 0, 1, 'a', 0}, 5, 1, 0, FW_EBLOCK_CORRUPT, "a trailing byte"},
        {{0, 0, 1, 'a', 0, 0, 0}, 7, 1, 0, FW_EBLOCK_CORRUPT, "fewer records declared"},
        {{0, 0, 2, 'a'}, 4, 1, 0, FW_EBLOCK_CORRUPT, "value runs past the end"},
        {{0, 5, 1, 'a'}, 4, 1, 0, FW_EBLOCK_CORRUPT, "key runs past the end"},
        {{0x80, 0, 0, 1, 'a'}, 5, 1, 0, FW_EBLOCK_CORRUPT, "overlong varint"},
        {{2, 0, 1, 'a'}, 4, 1, 10, FW_EBLOCK_CORRUPT, "first ts differs from base_ts"},
        {{0, 0, 1, 'a', 4, 0, 0}, 7, 2, 1, FW_EBLOCK_CORRUPT, "ts beyond max_ts"},
        {{0, 0, 1, 'a', 4, 0, 0}, 7, 2, 2, 0, "ts at max_ts"},
        {{0, 0x80, 0x80, 0x80, 0x80, 0x10, 1, 'a'},
         8,
         1,
         0,
         FW_EBLOCK_CORRUPT,
         "key length of 2^32 - 1"},
    };
    fw_buf_t scratch = FW_BUF_INIT;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t blk[256];
        size_t len = forge(blk, cases[i].payload, cases[i].n, cases[i].count, 0, cases[i].max_ts);
        fw_block_header_t h;
        fw_record_iter_t it;
        int rc = fw_block_decode(blk, len, 0, &scratch, &h, &it);
        if (rc != cases[i].want)
            FWT_FAIL("%s: got %d (%s), want %d", cases[i].what, rc, fw_err_name(rc), cases[i].want);
        if (rc == 0)
            FWT_ASSERT_OK(fw_block_verify(blk, len, &h));
    }
    fw_buf_free(&scratch);
}

FWT_TEST(lz4_garbage_with_valid_crc)
{
    uint8_t blk[256];
    uint8_t junk[40];
    fwt_rand_bytes(junk, sizeof(junk));
    size_t len = forge(blk, junk, sizeof(junk), 1, 0, 0);
    blk[5] = FW_CODEC_LZ4;
    fw_store_u32(blk + 12, 200); /* raw_len: more than stored, as lz4 requires */
    resign(blk);
    fw_buf_t scratch = FW_BUF_INIT;
    fw_block_header_t h;
    fw_record_iter_t it;
    FWT_ASSERT_OK(fw_block_verify(blk, len, &h));
    FWT_ASSERT_INT_EQ(fw_block_decode(blk, len, 0, &scratch, &h, &it), FW_EBLOCK_CORRUPT);
    /* lz4 that claims to be larger than raw is refused from the header. */
    fw_store_u32(blk + 12, 30);
    resign(blk);
    FWT_ASSERT_INT_EQ(fw_block_header_parse(blk, len, &h), FW_EBLOCK_HEADER);
    fw_buf_free(&scratch);
}

FWT_TEST(seal_round_trip)
{
    uint8_t blk[FW_BLOCK_HEADER_SIZE + FW_SEAL_PAYLOAD_SIZE];
    fw_seal_t s = {12, 3456, 789012}, back;
    fw_seal_encode(blk, &s, 1700000000000);
    fw_block_header_t h;
    FWT_ASSERT_OK(fw_block_verify(blk, sizeof(blk), &h));
    FWT_ASSERT(fw_block_is_seal(&h));
    FWT_ASSERT_UINT_EQ(h.record_count, 0);
    FWT_ASSERT_OK(fw_seal_parse(blk, &h, &back));
    FWT_ASSERT_UINT_EQ(back.blocks, 12);
    FWT_ASSERT_UINT_EQ(back.records, 3456);
    FWT_ASSERT_UINT_EQ(back.offset, 789012);
    /* A seal is not a data block: decode refuses it. */
    fw_buf_t scratch = FW_BUF_INIT;
    fw_record_iter_t it;
    FWT_ASSERT_INT_EQ(fw_block_decode(blk, sizeof(blk), 0, &scratch, &h, &it), -EINVAL);
    /* A seal that carries records or a producer is malformed. */
    fw_store_u64(blk + 24, 5);
    resign(blk);
    FWT_ASSERT_INT_EQ(fw_block_header_parse(blk, sizeof(blk), &h), FW_EBLOCK_HEADER);
}

FWT_TEST(set_sequence_rewrites_header_only)
{
    fw_block_builder_t b;
    fw_block_builder_init(&b, 0);
    FWT_ASSERT_OK(fw_block_builder_add(&b, 1000, "k", 1, 1, "hello", 5));
    FWT_ASSERT_OK(fw_block_builder_add(&b, 1001, NULL, 0, 0, "world", 5));
    const uint8_t *out;
    size_t len;
    FWT_ASSERT_OK(fw_block_builder_finish(&b, FW_CODEC_LZ4, 77, 5, &out, &len));
    uint8_t *blk = malloc(len);
    FWT_ASSERT(blk != NULL);
    memcpy(blk, out, len);
    fw_block_builder_free(&b);

    FWT_ASSERT_OK(fw_block_set_sequence(blk, len, 123456789012ULL));
    fw_block_header_t h;
    fw_buf_t scratch = FW_BUF_INIT;
    fw_record_iter_t it;
    FWT_ASSERT_OK(fw_block_decode(blk, len, 0, &scratch, &h, &it));
    FWT_ASSERT_UINT_EQ(h.sequence, 123456789012ULL);
    FWT_ASSERT_UINT_EQ(h.producer_id, 77);
    FWT_ASSERT_UINT_EQ(h.record_count, 2);
    fw_record_t rec;
    FWT_ASSERT(fw_record_next(&it, &rec));
    FWT_ASSERT_MEM_EQ(rec.value, "hello", 5);

    /* A short buffer or a damaged header is refused, and nothing is written. */
    FWT_ASSERT_INT_EQ(fw_block_set_sequence(blk, 10, 1), -EAGAIN);
    blk[0] ^= 1;
    FWT_ASSERT_INT_EQ(fw_block_set_sequence(blk, len, 1), FW_EBLOCK_HEADER);
    blk[0] ^= 1;
    FWT_ASSERT_OK(fw_block_verify(blk, len, &h));
    FWT_ASSERT_UINT_EQ(h.sequence, 123456789012ULL);

    /* The producer id moves with the sequence; the payload stays as it was. */
    uint32_t payload_crc = h.payload_crc;
    FWT_ASSERT_OK(fw_block_set_origin(blk, len, 0xfeedfacecafeULL, 1));
    FWT_ASSERT_OK(fw_block_decode(blk, len, 0, &scratch, &h, &it));
    FWT_ASSERT_UINT_EQ(h.producer_id, 0xfeedfacecafeULL);
    FWT_ASSERT_UINT_EQ(h.sequence, 1);
    FWT_ASSERT_UINT_EQ(h.payload_crc, payload_crc);
    FWT_ASSERT(fw_record_next(&it, &rec));
    FWT_ASSERT_MEM_EQ(rec.value, "hello", 5);

    /* Seal blocks carry no sequence. */
    uint8_t seal[FW_BLOCK_HEADER_SIZE + FW_SEAL_PAYLOAD_SIZE];
    fw_seal_t s = {1, 2, 3};
    fw_seal_encode(seal, &s, 1);
    FWT_ASSERT_INT_EQ(fw_block_set_sequence(seal, sizeof(seal), 9), -EINVAL);
    FWT_ASSERT_INT_EQ(fw_block_set_origin(seal, sizeof(seal), 1, 9), -EINVAL);
    fw_buf_free(&scratch);
    free(blk);
}
