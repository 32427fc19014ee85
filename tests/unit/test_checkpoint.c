/* Checkpoint tokens: round trips, and strict refusal of damaged or forged tokens. */
#include "fwtest.h"

#include "bytes.h"
#include "checkpoint.h"
#include "segment.h"
#include "crc32c.h"
#include "error.h"

#include <errno.h>
#include <stdlib.h>

static void random_checkpoint(fw_checkpoint_t *cp, uint32_t count)
{
    memset(cp, 0, sizeof(*cp));
    strcpy(cp->category, "web.clicks-v2_eu");
    cp->count = count;
    cp->positions = calloc(count, sizeof(*cp->positions));
    FWT_ASSERT(cp->positions != NULL);
    uint32_t bucket = (uint32_t)fwt_rand_range(0, 10);
    for (uint32_t i = 0; i < count; i++) {
        fw_position_t *p = &cp->positions[i];
        p->bucket = bucket;
        bucket += (uint32_t)fwt_rand_range(1, 3);
        if (fwt_rand() % 5 == 0)
            continue; /* nothing consumed yet: all zero */
        p->segment_id = fwt_rand_range(1, UINT64_MAX);
        p->offset = fwt_rand_range(fw_seg_first_block(strlen(cp->category)),
                                   (uint64_t)1 << fwt_rand_range(7, 62));
        p->record_index = (uint32_t)fwt_rand();
    }
}

static void assert_same(const fw_checkpoint_t *a, const fw_checkpoint_t *b)
{
    FWT_ASSERT_STR_EQ(a->category, b->category);
    FWT_ASSERT_UINT_EQ(a->count, b->count);
    for (uint32_t i = 0; i < a->count; i++) {
        FWT_ASSERT_UINT_EQ(a->positions[i].bucket, b->positions[i].bucket);
        FWT_ASSERT_UINT_EQ(a->positions[i].segment_id, b->positions[i].segment_id);
        FWT_ASSERT_UINT_EQ(a->positions[i].offset, b->positions[i].offset);
        FWT_ASSERT_UINT_EQ(a->positions[i].record_index, b->positions[i].record_index);
    }
}

FWT_TEST(round_trip_binary_and_text)
{
    for (int iter = 0; iter < 200; iter++) {
        fw_checkpoint_t cp, back;
        random_checkpoint(&cp, (uint32_t)fwt_rand_range(1, iter < 190 ? 20 : 3000));
        fw_buf_t bin = FW_BUF_INIT, text = FW_BUF_INIT;
        FWT_ASSERT_OK(fw_checkpoint_encode(&cp, &bin));
        FWT_ASSERT_OK(fw_checkpoint_decode(bin.data, bin.len, &back));
        assert_same(&cp, &back);
        fw_checkpoint_free(&back);

        FWT_ASSERT_OK(fw_checkpoint_to_text(&cp, &text));
        FWT_ASSERT_UINT_EQ(strlen((char *)text.data), text.len);
        FWT_ASSERT_OK(fw_checkpoint_from_text((char *)text.data, text.len, &back));
        assert_same(&cp, &back);
        const fw_position_t *p = fw_checkpoint_find(&back, cp.positions[cp.count - 1].bucket);
        FWT_ASSERT(p == &back.positions[cp.count - 1]);
        FWT_ASSERT(fw_checkpoint_find(&back, cp.positions[cp.count - 1].bucket + 1) == NULL);
        fw_checkpoint_free(&back);
        fw_checkpoint_free(&cp);
        fw_buf_free(&bin);
        fw_buf_free(&text);
    }
}

FWT_TEST(every_damaged_byte_and_truncation_is_refused)
{
    fw_checkpoint_t cp, back;
    random_checkpoint(&cp, 8);
    fw_buf_t bin = FW_BUF_INIT;
    FWT_ASSERT_OK(fw_checkpoint_encode(&cp, &bin));
    for (size_t i = 0; i < bin.len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            uint8_t *bad = malloc(bin.len);
            memcpy(bad, bin.data, bin.len);
            bad[i] ^= (uint8_t)(1u << bit);
            int rc = fw_checkpoint_decode(bad, bin.len, &back);
            free(bad);
            if (rc >= 0)
                FWT_FAIL("flip of bit %d in byte %zu accepted", bit, i);
            FWT_ASSERT(back.positions == NULL);
        }
    }
    for (size_t len = 0; len < bin.len; len++) {
        uint8_t *cut = malloc(len + 1);
        memcpy(cut, bin.data, len);
        int rc = fw_checkpoint_decode(cut, len, &back);
        free(cut);
        if (rc >= 0)
            FWT_FAIL("token cut to %zu of %zu bytes accepted", len, bin.len);
    }
    fw_checkpoint_free(&cp);
    fw_buf_free(&bin);
}

/* Builds a token from raw fields and signs it, so only validation can refuse it. */
static int decode_forged(uint8_t version, const char *category, const uint8_t *body, size_t n)
{
    uint8_t buf[512];
    size_t len = 0;
    buf[len++] = 'F';
    buf[len++] = 'C';
    buf[len++] = version;
    buf[len++] = (uint8_t)strlen(category);
    memcpy(buf + len, category, strlen(category));
    len += strlen(category);
    memcpy(buf + len, body, n);
    len += n;
    fw_store_u32(buf + len, fw_crc32c(0, buf, len));
    len += 4;
    fw_checkpoint_t cp;
    int rc = fw_checkpoint_decode(buf, len, &cp);
    fw_checkpoint_free(&cp);
    return rc;
}

FWT_TEST(forged_tokens)
{
    struct {
        uint8_t version;
        const char *category;
        uint8_t body[32];
        size_t n;
        int want;
        const char *what;
    } cases[] = {
        {1, "c", {1, 3, 1, 45, 0}, 5, 0, "a valid token"},
        {1, "c", {1, 3, 0, 0, 0}, 5, 0, "a bucket with nothing consumed"},
        {2, "c", {1, 3, 1, 45, 0}, 5, FW_ETOKEN_VERSION, "version 2"},
        {0, "c", {1, 3, 1, 45, 0}, 5, FW_ETOKEN_VERSION, "version 0"},
        {1, "c/d", {1, 3, 1, 45, 0}, 5, FW_ETOKEN_BAD, "a slash in the category"},
        {1, "c", {0}, 1, FW_ETOKEN_BAD, "no positions"},
        {1, "c", {2, 3, 1, 45, 0}, 5, FW_ETOKEN_BAD, "more positions than bytes"},
        {1, "c", {1, 3, 1, 44, 0}, 5, FW_ETOKEN_BAD, "offset inside the segment header"},
        {1, "c", {1, 3, 0, 45, 0}, 5, FW_ETOKEN_BAD, "segment 0 with an offset"},
        {1, "c", {1, 3, 0, 0, 1}, 5, FW_ETOKEN_BAD, "segment 0 with a record index"},
        {1, "c", {2, 3, 1, 45, 0, 0, 1, 45, 0}, 9, FW_ETOKEN_BAD, "the same bucket twice"},
        {1, "c", {2, 3, 1, 45, 0, 1, 1, 45, 0}, 9, 0, "two buckets in order"},
        {1, "c", {1, 0x80, 0x80, 0x04, 1, 45, 0}, 7, FW_ETOKEN_BAD, "bucket 65536"},
        {1, "c", {1, 0x83, 0x00, 1, 45, 0}, 6, FW_ETOKEN_BAD, "overlong varint"},
        {1,
         "c",
         {1, 3, 1, 45, 0x80, 0x80, 0x80, 0x80, 0x10},
         9,
         FW_ETOKEN_BAD,
         "record index over 32 bits"},
        {1, "c", {1, 3, 1, 45, 0, 0}, 6, FW_ETOKEN_BAD, "a trailing byte"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = decode_forged(cases[i].version, cases[i].category, cases[i].body, cases[i].n);
        if (rc != cases[i].want)
            FWT_FAIL("%s: got %d (%s), want %d", cases[i].what, rc, fw_err_name(rc), cases[i].want);
    }
}

FWT_TEST(encode_refuses_invalid_checkpoints)
{
    fw_position_t pos[2] = {{1, 5, 100, 0}, {1, 6, 100, 0}};
    fw_checkpoint_t cp = {"cat", 2, pos};
    fw_buf_t bin = FW_BUF_INIT;
    FWT_ASSERT_INT_EQ(fw_checkpoint_encode(&cp, &bin), -EINVAL); /* bucket twice */
    pos[1].bucket = 2;
    pos[1].offset = 3;
    FWT_ASSERT_INT_EQ(fw_checkpoint_encode(&cp, &bin), -EINVAL); /* offset in the header */
    /* The header of "cat"'s segments is 47 bytes: its first block is the lowest place. */
    pos[1].offset = fw_seg_first_block(3) - 1;
    FWT_ASSERT_INT_EQ(fw_checkpoint_encode(&cp, &bin), -EINVAL);
    pos[1].offset = fw_seg_first_block(3);
    FWT_ASSERT_OK(fw_checkpoint_encode(&cp, &bin));
    fw_checkpoint_t back = {0};
    FWT_ASSERT_OK(fw_checkpoint_decode(bin.data, bin.len, &back));
    FWT_ASSERT_UINT_EQ(back.positions[1].offset, 47);
    fw_checkpoint_free(&back);
    fw_buf_reset(&bin);
    pos[1].offset = 100;
    strcpy(cp.category, "bad name");
    FWT_ASSERT_INT_EQ(fw_checkpoint_encode(&cp, &bin), -EINVAL);
    strcpy(cp.category, "cat");
    cp.count = 0;
    FWT_ASSERT_INT_EQ(fw_checkpoint_encode(&cp, &bin), -EINVAL);
    FWT_ASSERT_UINT_EQ(bin.len, 0); /* nothing partial was appended */
    cp.count = 2;
    FWT_ASSERT_OK(fw_checkpoint_encode(&cp, &bin));
    fw_buf_free(&bin);
}

FWT_TEST(base64url_is_canonical)
{
    fw_buf_t out = FW_BUF_INIT;
    const uint8_t raw[] = {0xfb, 0xff, 0xbf, 0x00, 0x10};
    FWT_ASSERT_OK(fw_base64url_encode(raw, sizeof(raw), &out));
    FWT_ASSERT_STR_EQ((char *)out.data, "-_-_ABA");
    fw_buf_t back = FW_BUF_INIT;
    FWT_ASSERT_OK(fw_base64url_decode("-_-_ABA", 7, &back));
    FWT_ASSERT_UINT_EQ(back.len, sizeof(raw));
    FWT_ASSERT_MEM_EQ(back.data, raw, sizeof(raw));
    const char *bad[] = {"-_-_ABB", "-_-_AB=", "A", "-_-+ABA", "-_-/ABA", "-_ -ABA", "AB\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        fw_buf_reset(&back);
        if (fw_base64url_decode(bad[i], strlen(bad[i]), &back) != -EINVAL)
            FWT_FAIL("\"%s\" accepted", bad[i]);
    }
    fw_checkpoint_t cp;
    FWT_ASSERT_INT_EQ(fw_checkpoint_from_text("earliest", 8, &cp), FW_ETOKEN_BAD);
    FWT_ASSERT_INT_EQ(fw_checkpoint_from_text("", 0, &cp), FW_ETOKEN_BAD);
    for (int i = 0; i < 1000; i++) {
        uint8_t r[64];
        size_t n = (size_t)fwt_rand_range(0, sizeof(r));
        fwt_rand_bytes(r, n);
        fw_buf_reset(&out);
        fw_buf_reset(&back);
        FWT_ASSERT_OK(fw_base64url_encode(r, n, &out));
        FWT_ASSERT_OK(fw_base64url_decode((char *)out.data, out.len, &back));
        FWT_ASSERT_UINT_EQ(back.len, n);
        FWT_ASSERT_MEM_EQ(back.data, r, n);
    }
    fw_buf_free(&out);
    fw_buf_free(&back);
}

/* Found by fuzz_checkpoint: a NUL inside the category hid the rest of the name. */
FWT_TEST(nul_inside_category_is_refused)
{
    uint8_t buf[32] = {'F', 'C', 1, 3, 'a', 0, 'b', 1, 3, 1, 45, 0};
    size_t len = 12;
    fw_store_u32(buf + len, fw_crc32c(0, buf, len));
    fw_checkpoint_t cp;
    FWT_ASSERT_INT_EQ(fw_checkpoint_decode(buf, len + 4, &cp), FW_ETOKEN_BAD);
}
