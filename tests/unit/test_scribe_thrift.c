/*
 * Scribe's Thrift codec (calligraphus/scribe_thrift.c): hand-written byte
 * vectors for both header styles, round trips of every method and reply,
 * input a byte at a time, and every malformed frame we could think of.
 */
#include "fwtest.h"

#include "error.h"
#include "scribe_thrift.h"

#include <errno.h>
#include <stdlib.h>

/* ---- helpers ----------------------------------------------------------------------- */

/* A heap copy of exactly len bytes, so ASan catches any read past the end. */
static uint8_t *exact_copy(const uint8_t *p, size_t len)
{
    uint8_t *c = malloc(len ? len : 1);
    FWT_ASSERT(c != NULL);
    memcpy(c, p, len);
    return c;
}

static ssize_t decode_exact(const uint8_t *p, size_t len, const cal_scribe_limits_t *lim,
                            cal_scribe_call_t *c)
{
    uint8_t *in = exact_copy(p, len);
    size_t need = 0;
    ssize_t n = cal_scribe_call_decode(in, len, lim, c, &need);
    free(in); /* c points into in: only the return value is used by callers of this */
    return n;
}

/*
 * A hand builder for test frames, independent of the codec's own writer:
 * bytes appended big-endian, the frame length patched by hb_frame.
 */
typedef struct {
    uint8_t b[1 << 16];
    size_t n;
} hb_t;

static void hb_u8(hb_t *h, uint8_t v)
{
    FWT_ASSERT(h->n < sizeof(h->b));
    h->b[h->n++] = v;
}

static void hb_i16(hb_t *h, int v)
{
    hb_u8(h, (uint8_t)((unsigned)v >> 8));
    hb_u8(h, (uint8_t)v);
}

static void hb_i32(hb_t *h, int64_t v)
{
    uint32_t u = (uint32_t)v;
    for (int i = 3; i >= 0; i--)
        hb_u8(h, (uint8_t)(u >> (8 * i)));
}

static void hb_raw(hb_t *h, const void *p, size_t len)
{
    FWT_ASSERT(h->n + len <= sizeof(h->b));
    memcpy(h->b + h->n, p, len);
    h->n += len;
}

static void hb_str(hb_t *h, const char *s)
{
    hb_i32(h, (int64_t)strlen(s));
    hb_raw(h, s, strlen(s));
}

static void hb_field(hb_t *h, uint8_t type, int id)
{
    hb_u8(h, type);
    hb_i16(h, id);
}

/* Starts a frame with a strict header. */
static void hb_call(hb_t *h, const char *name, uint8_t type, int32_t seqid)
{
    h->n = 0;
    hb_i32(h, 0);
    hb_i32(h, (int64_t)(0x80010000u | type));
    hb_str(h, name);
    hb_i32(h, seqid);
}

/* Starts a frame with an old (non-strict) header. */
static void hb_call_old(hb_t *h, const char *name, uint8_t type, int32_t seqid)
{
    h->n = 0;
    hb_i32(h, 0);
    hb_str(h, name);
    hb_u8(h, type);
    hb_i32(h, seqid);
}

/* Patches the frame length: everything after the 4-byte prefix. */
static void hb_frame(hb_t *h)
{
    uint32_t len = (uint32_t)(h->n - 4);
    h->b[0] = (uint8_t)(len >> 24);
    h->b[1] = (uint8_t)(len >> 16);
    h->b[2] = (uint8_t)(len >> 8);
    h->b[3] = (uint8_t)len;
}

static hb_t *hb_new(void)
{
    hb_t *h = calloc(1, sizeof(hb_t));
    FWT_ASSERT(h != NULL);
    fwt_defer(free, h);
    return h;
}

static void assert_str(cal_thrift_str_t s, const char *want)
{
    FWT_ASSERT(s.p != NULL);
    if (s.len != strlen(want) || memcmp(s.p, want, s.len) != 0)
        FWT_FAIL("string \"%.*s\" != \"%s\"", (int)s.len, s.p, want);
}

static cal_scribe_call_t call_of(cal_scribe_method_t m, int strict, int32_t seqid)
{
    cal_scribe_call_t c;
    memset(&c, 0, sizeof(c));
    c.method = m;
    c.type = CAL_THRIFT_CALL;
    c.strict = (uint8_t)strict;
    c.seqid = seqid;
    return c;
}

static cal_thrift_str_t str_of(const char *s)
{
    cal_thrift_str_t t = {s, (uint32_t)strlen(s)};
    return t;
}

/* ---- the hand-written vectors --------------------------------------------------------- */

/* Log([{category: "a", message: "hi"}]), seqid 1, strict: the example in scribe_thrift.h. */
static const uint8_t LOG_STRICT[] = {
    0x00, 0x00, 0x00, 0x2a,                             /* frame length 42 */
    0x80, 0x01, 0x00, 0x01,                             /* version 1, CALL */
    0x00, 0x00, 0x00, 0x03, 'L',  'o',  'g',            /* name */
    0x00, 0x00, 0x00, 0x01,                             /* seqid */
    0x0f, 0x00, 0x01,                                   /* field 1: LIST */
    0x0c, 0x00, 0x00, 0x00, 0x01,                       /* of STRUCT, 1 */
    0x0b, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 'a',      /* category */
    0x0b, 0x00, 0x02, 0x00, 0x00, 0x00, 0x02, 'h', 'i', /* message */
    0x00,                                               /* STOP (LogEntry) */
    0x00,                                               /* STOP (args) */
};

/* Its answer, OK. */
static const uint8_t LOG_OK_STRICT[] = {
    0x00, 0x00, 0x00, 0x17, 0x80, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x03, 'L',  'o',
    'g',  0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};

/* The same call as scribe_cat sends it (strictWrite=False), seqid 0, two entries. */
static const uint8_t LOG_OLD[] = {
    0x00,
    0x00,
    0x00,
    0x3a, /* frame length 58 */
    0x00,
    0x00,
    0x00,
    0x03,
    'L',
    'o',
    'g',  /* name */
    0x01, /* CALL */
    0x00,
    0x00,
    0x00,
    0x00, /* seqid 0 */
    0x0f,
    0x00,
    0x01,
    0x0c,
    0x00,
    0x00,
    0x00,
    0x02, /* list of 2 structs */
    0x0b,
    0x00,
    0x01,
    0x00,
    0x00,
    0x00,
    0x03,
    'w',
    'e',
    'b',
    0x0b,
    0x00,
    0x02,
    0x00,
    0x00,
    0x00,
    0x03,
    'G',
    'E',
    'T',
    0x00,
    /* the second entry's fields in the other order */
    0x0b,
    0x00,
    0x02,
    0x00,
    0x00,
    0x00,
    0x00,
    0x0b,
    0x00,
    0x01,
    0x00,
    0x00,
    0x00,
    0x01,
    'x',
    0x00,
    0x00,
};

/* Its answer TRY_LATER, old header like the call. */
static const uint8_t LOG_TRY_LATER_OLD[] = {
    0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x03, 'L',  'o',  'g',  0x02,
    0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
};

FWT_TEST(log_call_strict_hand_written)
{
    uint8_t *in = exact_copy(LOG_STRICT, sizeof(LOG_STRICT));
    cal_scribe_call_t c;
    size_t need = 0;
    FWT_ASSERT_INT_EQ(cal_scribe_call_decode(in, sizeof(LOG_STRICT), NULL, &c, &need),
                      (ssize_t)sizeof(LOG_STRICT));
    FWT_ASSERT_UINT_EQ(need, sizeof(LOG_STRICT));
    FWT_ASSERT_INT_EQ(c.method, CAL_SCRIBE_LOG);
    FWT_ASSERT_INT_EQ(c.type, CAL_THRIFT_CALL);
    FWT_ASSERT_INT_EQ(c.strict, 1);
    FWT_ASSERT_INT_EQ(c.seqid, 1);
    assert_str(c.name, "Log");
    FWT_ASSERT_UINT_EQ(c.n_entries, 1);
    FWT_ASSERT(cal_scribe_call_wants_reply(&c));
    /* The arguments: from the list's field header to the last STOP. */
    FWT_ASSERT(c.args == in + 19);
    FWT_ASSERT_UINT_EQ(c.args_len, sizeof(LOG_STRICT) - 19);

    cal_scribe_entry_iter_t it;
    cal_scribe_entry_t e;
    cal_scribe_entries_begin(&c, &it);
    FWT_ASSERT_INT_EQ(cal_scribe_entries_next(&it, &e), 1);
    assert_str(e.category, "a");
    assert_str(e.message, "hi");
    FWT_ASSERT_INT_EQ(cal_scribe_entries_next(&it, &e), 0);

    fw_buf_t out = FW_BUF_INIT;
    FWT_ASSERT_OK(cal_scribe_reply_log(&out, &c, CAL_SCRIBE_OK));
    FWT_ASSERT_UINT_EQ(out.len, sizeof(LOG_OK_STRICT));
    FWT_ASSERT_MEM_EQ(out.data, LOG_OK_STRICT, sizeof(LOG_OK_STRICT));
    fw_buf_free(&out);
    free(in);
}

FWT_TEST(log_call_old_header_hand_written)
{
    uint8_t *in = exact_copy(LOG_OLD, sizeof(LOG_OLD));
    cal_scribe_call_t c;
    size_t need = 0;
    FWT_ASSERT_INT_EQ(cal_scribe_call_decode(in, sizeof(LOG_OLD), NULL, &c, &need),
                      (ssize_t)sizeof(LOG_OLD));
    FWT_ASSERT_INT_EQ(c.method, CAL_SCRIBE_LOG);
    FWT_ASSERT_INT_EQ(c.strict, 0);
    FWT_ASSERT_INT_EQ(c.seqid, 0);
    FWT_ASSERT_UINT_EQ(c.n_entries, 2);
    FWT_ASSERT(c.args == in + 16);
    FWT_ASSERT_UINT_EQ(c.args_len, sizeof(LOG_OLD) - 16);

    cal_scribe_entry_iter_t it;
    cal_scribe_entry_t e;
    cal_scribe_entries_begin(&c, &it);
    FWT_ASSERT_INT_EQ(cal_scribe_entries_next(&it, &e), 1);
    assert_str(e.category, "web");
    assert_str(e.message, "GET");
    FWT_ASSERT_INT_EQ(cal_scribe_entries_next(&it, &e), 1);
    assert_str(e.category, "x");
    assert_str(e.message, ""); /* present and empty: p is set */
    FWT_ASSERT_INT_EQ(cal_scribe_entries_next(&it, &e), 0);

    /* The answer copies the old header style. */
    fw_buf_t out = FW_BUF_INIT;
    FWT_ASSERT_OK(cal_scribe_reply_log(&out, &c, CAL_SCRIBE_TRY_LATER));
    FWT_ASSERT_UINT_EQ(out.len, sizeof(LOG_TRY_LATER_OLD));
    FWT_ASSERT_MEM_EQ(out.data, LOG_TRY_LATER_OLD, sizeof(LOG_TRY_LATER_OLD));
    fw_buf_free(&out);
    free(in);
}

FWT_TEST(our_encoder_writes_the_hand_written_bytes)
{
    cal_scribe_call_t c = call_of(CAL_SCRIBE_LOG, 1, 1);
    cal_scribe_entry_t e = {str_of("a"), str_of("hi")};
    fw_buf_t out = FW_BUF_INIT;
    FWT_ASSERT_OK(cal_scribe_call_encode(&out, &c, &e, 1));
    FWT_ASSERT_UINT_EQ(out.len, sizeof(LOG_STRICT));
    FWT_ASSERT_MEM_EQ(out.data, LOG_STRICT, sizeof(LOG_STRICT));
    fw_buf_free(&out);
}

FWT_TEST(counters_and_exception_replies_hand_written)
{
    /* getCounters, old header, seqid 7: {"a": 1, "bc": -2}. */
    static const uint8_t want_counters[] = {
        0x00, 0x00, 0x00, 0x39, /* length 57 */
        0x00, 0x00, 0x00, 0x0b, 'g',  'e',  't',  'C',  'o',  'u',  'n',  't',  'e',  'r',
        's',  0x02,                                           /* REPLY */
        0x00, 0x00, 0x00, 0x07,                               /* seqid */
        0x0d, 0x00, 0x00, 0x0b, 0x0a, 0x00, 0x00, 0x00, 0x02, /* map<string,i64> of 2 */
        0x00, 0x00, 0x00, 0x01, 'a',  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
        0x00, 0x00, 0x02, 'b',  'c',  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0x00,
    };
    cal_scribe_call_t c = call_of(CAL_SCRIBE_GET_COUNTERS, 0, 7);
    c.name = str_of("getCounters");
    cal_scribe_counter_t counters[] = {{"a", 1}, {"bc", -2}};
    fw_buf_t out = FW_BUF_INIT;
    FWT_ASSERT_OK(cal_scribe_reply_counters(&out, &c, counters, 2));
    FWT_ASSERT_UINT_EQ(out.len, sizeof(want_counters));
    FWT_ASSERT_MEM_EQ(out.data, want_counters, sizeof(want_counters));

    /* An unknown method "foo", strict, seqid 9. */
    static const uint8_t want_exc[] = {
        0x00, 0x00, 0x00, 0x38, 0x80, 0x01, 0x00, 0x03, /* EXCEPTION */
        0x00, 0x00, 0x00, 0x03, 'f',  'o',  'o',  0x00, 0x00, 0x00, 0x09, 0x0b, 0x00,
        0x01, 0x00, 0x00, 0x00, 0x1a, 'I',  'n',  'v',  'a',  'l',  'i',  'd',  ' ',
        'm',  'e',  't',  'h',  'o',  'd',  ' ',  'n',  'a',  'm',  'e',  ':',  ' ',
        '\'', 'f',  'o',  'o',  '\'', 0x08, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, /* type 1 */
        0x00,
    };
    cal_scribe_call_t u = call_of(CAL_SCRIBE_UNKNOWN, 1, 9);
    u.name = str_of("foo");
    fw_buf_reset(&out);
    FWT_ASSERT_OK(cal_scribe_reply_unknown_method(&out, &u));
    FWT_ASSERT_UINT_EQ(out.len, sizeof(want_exc));
    FWT_ASSERT_MEM_EQ(out.data, want_exc, sizeof(want_exc));
    fw_buf_free(&out);
}

/* ---- round trips ---------------------------------------------------------------------- */

/* Encodes c, decodes it back and checks every field; returns the decoded call's reply. */
static void round_trip_call(const cal_scribe_call_t *c, fw_buf_t *frame, cal_scribe_call_t *back)
{
    fw_buf_reset(frame);
    FWT_ASSERT_OK(cal_scribe_call_encode(frame, c, NULL, 0));
    size_t need = 0;
    FWT_ASSERT_INT_EQ(cal_scribe_call_decode(frame->data, frame->len, NULL, back, &need),
                      (ssize_t)frame->len);
    FWT_ASSERT_INT_EQ(back->method, c->method);
    FWT_ASSERT_INT_EQ(back->type, c->type);
    FWT_ASSERT_INT_EQ(back->strict, c->strict);
    FWT_ASSERT_INT_EQ(back->seqid, c->seqid);
    assert_str(back->name, cal_scribe_method_name(c->method));
    if (c->key.p != NULL)
        assert_str(back->key, c->key.p);
    else
        FWT_ASSERT(back->key.p == NULL);
    if (c->value.p != NULL)
        assert_str(back->value, c->value.p);
    FWT_ASSERT_INT_EQ(back->profile_seconds, c->profile_seconds);
}

static void decode_reply(const fw_buf_t *b, const cal_scribe_call_t *c, uint8_t type,
                         cal_scribe_reply_t *r)
{
    size_t need = 0;
    FWT_ASSERT_INT_EQ(cal_scribe_reply_decode(b->data, b->len, NULL, r, &need), (ssize_t)b->len);
    FWT_ASSERT_INT_EQ(r->type, type);
    FWT_ASSERT_INT_EQ(r->strict, c->strict);
    FWT_ASSERT_INT_EQ(r->seqid, c->seqid);
    FWT_ASSERT_UINT_EQ(r->name.len, c->name.len);
    FWT_ASSERT_MEM_EQ(r->name.p, c->name.p, c->name.len);
}

FWT_TEST(every_method_and_its_reply_round_trip_in_both_styles)
{
    fw_buf_t frame = FW_BUF_INIT, out = FW_BUF_INIT;
    for (int strict = 0; strict <= 1; strict++) {
        for (int m = CAL_SCRIBE_LOG; m < CAL_SCRIBE_METHOD_COUNT; m++) {
            cal_scribe_call_t c = call_of((cal_scribe_method_t)m, strict, -5 + m * 1000003);
            if (m == CAL_SCRIBE_GET_COUNTER || m == CAL_SCRIBE_GET_OPTION ||
                m == CAL_SCRIBE_SET_OPTION)
                c.key = str_of("max_msg_per_second");
            if (m == CAL_SCRIBE_SET_OPTION)
                c.value = str_of("2000000");
            if (m == CAL_SCRIBE_GET_CPU_PROFILE)
                c.profile_seconds = -3;
            if (m == CAL_SCRIBE_REINITIALIZE || m == CAL_SCRIBE_SHUTDOWN)
                c.type = CAL_THRIFT_ONEWAY;
            cal_scribe_call_t d;
            round_trip_call(&c, &frame, &d);
            FWT_ASSERT_INT_EQ(cal_scribe_call_wants_reply(&d),
                              m != CAL_SCRIBE_REINITIALIZE && m != CAL_SCRIBE_SHUTDOWN);

            cal_scribe_reply_t r;
            fw_buf_reset(&out);
            switch (m) {
            case CAL_SCRIBE_LOG:
                FWT_ASSERT_OK(cal_scribe_reply_log(&out, &d, CAL_SCRIBE_TRY_LATER));
                decode_reply(&out, &d, CAL_THRIFT_REPLY, &r);
                FWT_ASSERT_INT_EQ(r.value_type, CAL_THRIFT_I32);
                FWT_ASSERT_INT_EQ(r.i, 1);
                break;
            case CAL_SCRIBE_GET_STATUS:
                FWT_ASSERT_OK(cal_scribe_reply_status(&out, &d, CAL_FB_WARNING));
                decode_reply(&out, &d, CAL_THRIFT_REPLY, &r);
                FWT_ASSERT_INT_EQ(r.value_type, CAL_THRIFT_I32);
                FWT_ASSERT_INT_EQ(r.i, 5);
                break;
            case CAL_SCRIBE_GET_NAME:
            case CAL_SCRIBE_GET_VERSION:
            case CAL_SCRIBE_GET_STATUS_DETAILS:
            case CAL_SCRIBE_GET_OPTION:
            case CAL_SCRIBE_GET_CPU_PROFILE:
                FWT_ASSERT_OK(cal_scribe_reply_string(&out, &d, "calligraphus\0x", 14));
                decode_reply(&out, &d, CAL_THRIFT_REPLY, &r);
                FWT_ASSERT_INT_EQ(r.value_type, CAL_THRIFT_STRING);
                FWT_ASSERT_UINT_EQ(r.s.len, 14);
                FWT_ASSERT_MEM_EQ(r.s.p, "calligraphus\0x", 14);
                break;
            case CAL_SCRIBE_ALIVE_SINCE:
            case CAL_SCRIBE_GET_COUNTER:
                FWT_ASSERT_OK(cal_scribe_reply_i64(&out, &d, INT64_MIN + 7));
                decode_reply(&out, &d, CAL_THRIFT_REPLY, &r);
                FWT_ASSERT_INT_EQ(r.value_type, CAL_THRIFT_I64);
                FWT_ASSERT(r.i == INT64_MIN + 7);
                break;
            case CAL_SCRIBE_GET_COUNTERS: {
                cal_scribe_counter_t cs[] = {{"received good", 100000}, {"", -1}};
                FWT_ASSERT_OK(cal_scribe_reply_counters(&out, &d, cs, 2));
                decode_reply(&out, &d, CAL_THRIFT_REPLY, &r);
                FWT_ASSERT_INT_EQ(r.value_type, CAL_THRIFT_MAP);
                cal_scribe_map_iter_t it;
                cal_thrift_str_t k, sv;
                int64_t iv;
                cal_scribe_map_begin(&r, &it);
                for (int i = 0; i < 2; i++) {
                    FWT_ASSERT_INT_EQ(cal_scribe_map_next(&it, &k, &iv, &sv), 1);
                    assert_str(k, cs[i].name);
                    FWT_ASSERT_INT_EQ(iv, cs[i].value);
                }
                FWT_ASSERT_INT_EQ(cal_scribe_map_next(&it, &k, &iv, &sv), 0);
                break;
            }
            case CAL_SCRIBE_GET_OPTIONS: {
                cal_scribe_option_t os[] = {{"port", "1463"}, {"x", ""}, {"y", "z"}};
                FWT_ASSERT_OK(cal_scribe_reply_options(&out, &d, os, 3));
                decode_reply(&out, &d, CAL_THRIFT_REPLY, &r);
                cal_scribe_map_iter_t it;
                cal_thrift_str_t k, sv;
                int64_t iv;
                cal_scribe_map_begin(&r, &it);
                for (int i = 0; i < 3; i++) {
                    FWT_ASSERT_INT_EQ(cal_scribe_map_next(&it, &k, &iv, &sv), 1);
                    assert_str(k, os[i].key);
                    assert_str(sv, os[i].value);
                }
                FWT_ASSERT_INT_EQ(cal_scribe_map_next(&it, &k, &iv, &sv), 0);
                break;
            }
            case CAL_SCRIBE_SET_OPTION:
                FWT_ASSERT_OK(cal_scribe_reply_void(&out, &d));
                decode_reply(&out, &d, CAL_THRIFT_REPLY, &r);
                FWT_ASSERT_INT_EQ(r.value_type, 0);
                break;
            default:
                /* Oneway methods get no reply; an exception fits any call. */
                FWT_ASSERT_OK(
                    cal_scribe_reply_exception(&out, &d, CAL_THRIFT_EXC_INTERNAL_ERROR, "no"));
                decode_reply(&out, &d, CAL_THRIFT_EXCEPTION, &r);
                FWT_ASSERT_INT_EQ(r.exc_type, CAL_THRIFT_EXC_INTERNAL_ERROR);
                assert_str(r.s, "no");
                break;
            }
        }
    }
    fw_buf_free(&frame);
    fw_buf_free(&out);
}

FWT_TEST(log_round_trip_random_entries)
{
    fw_buf_t frame = FW_BUF_INIT;
    for (int round = 0; round < 50; round++) {
        size_t n = (size_t)fwt_rand_range(0, round < 40 ? 50 : 2000);
        cal_scribe_entry_t *es = calloc(n ? n : 1, sizeof(*es));
        char *pool = malloc(n * 64 + 1);
        FWT_ASSERT(es != NULL && pool != NULL);
        fwt_rand_bytes(pool, n * 64 + 1); /* NULs and high bytes included */
        for (size_t i = 0; i < n; i++) {
            char *p = pool + i * 64;
            uint32_t clen = (uint32_t)fwt_rand_range(0, 20), mlen = (uint32_t)fwt_rand_range(0, 44);
            es[i].category.p = fwt_rand_range(0, 9) ? p : NULL;
            es[i].category.len = es[i].category.p ? clen : 0;
            es[i].message.p = fwt_rand_range(0, 9) ? p + 20 : NULL;
            es[i].message.len = es[i].message.p ? mlen : 0;
        }
        cal_scribe_call_t c =
            call_of(CAL_SCRIBE_LOG, (int)fwt_rand_range(0, 1), (int32_t)fwt_rand());
        fw_buf_reset(&frame);
        FWT_ASSERT_OK(cal_scribe_call_encode(&frame, &c, es, n));
        uint8_t *in = exact_copy(frame.data, frame.len);
        cal_scribe_call_t d;
        size_t need;
        FWT_ASSERT_INT_EQ(cal_scribe_call_decode(in, frame.len, NULL, &d, &need),
                          (ssize_t)frame.len);
        FWT_ASSERT_UINT_EQ(d.n_entries, n);
        FWT_ASSERT_INT_EQ(d.seqid, c.seqid);
        cal_scribe_entry_iter_t it;
        cal_scribe_entry_t e;
        cal_scribe_entries_begin(&d, &it);
        for (size_t i = 0; i < n; i++) {
            FWT_ASSERT_INT_EQ(cal_scribe_entries_next(&it, &e), 1);
            FWT_ASSERT_INT_EQ(e.category.p == NULL, es[i].category.p == NULL);
            FWT_ASSERT_INT_EQ(e.message.p == NULL, es[i].message.p == NULL);
            FWT_ASSERT_UINT_EQ(e.category.len, es[i].category.len);
            FWT_ASSERT_UINT_EQ(e.message.len, es[i].message.len);
            FWT_ASSERT_MEM_EQ(e.category.p, es[i].category.p, e.category.len);
            FWT_ASSERT_MEM_EQ(e.message.p, es[i].message.p, e.message.len);
        }
        FWT_ASSERT_INT_EQ(cal_scribe_entries_next(&it, &e), 0);
        free(in);
        free(pool);
        free(es);
    }
    fw_buf_free(&frame);
}

/* ---- incremental input ---------------------------------------------------------------- */

FWT_TEST(input_a_byte_at_a_time)
{
    /* Three calls back to back, both header styles, fed one byte at a time. */
    fw_buf_t all = FW_BUF_INIT;
    FWT_ASSERT_OK(fw_buf_append(&all, LOG_STRICT, sizeof(LOG_STRICT)));
    FWT_ASSERT_OK(fw_buf_append(&all, LOG_OLD, sizeof(LOG_OLD)));
    cal_scribe_call_t g = call_of(CAL_SCRIBE_GET_COUNTER, 1, 3);
    g.key = str_of("k");
    FWT_ASSERT_OK(cal_scribe_call_encode(&all, &g, NULL, 0));
    size_t sizes[] = {sizeof(LOG_STRICT), sizeof(LOG_OLD),
                      all.len - sizeof(LOG_STRICT) - sizeof(LOG_OLD)};

    size_t off = 0, have = 0;
    int got = 0;
    while (have < all.len) {
        have++; /* one more byte arrives */
        uint8_t *in = exact_copy(all.data + off, have - off);
        cal_scribe_call_t c;
        size_t need = 0;
        ssize_t n = cal_scribe_call_decode(in, have - off, NULL, &c, &need);
        if (have - off < 4) {
            FWT_ASSERT_INT_EQ(n, 0);
            FWT_ASSERT_UINT_EQ(need, 4);
        } else if (have - off < sizes[got]) {
            FWT_ASSERT_INT_EQ(n, 0);
            FWT_ASSERT_UINT_EQ(need, sizes[got]); /* the size is known from the length */
        } else {
            FWT_ASSERT_INT_EQ(n, (ssize_t)sizes[got]);
            FWT_ASSERT_INT_EQ(c.method, got == 2 ? CAL_SCRIBE_GET_COUNTER : CAL_SCRIBE_LOG);
            off += (size_t)n;
            got++;
        }
        free(in);
    }
    FWT_ASSERT_INT_EQ(got, 3);
    fw_buf_free(&all);
}

/* ---- frames ------------------------------------------------------------------------- */

FWT_TEST(oversize_frame_refused_from_its_length)
{
    uint8_t hdr[4] = {0x00, 0x00, 0x04, 0x01}; /* 1025 */
    cal_scribe_limits_t lim = {.max_frame = 1024};
    cal_scribe_call_t c;
    size_t need = 0;
    FWT_ASSERT_INT_EQ(cal_scribe_call_decode(hdr, 4, &lim, &c, &need), FW_EFRAME_TOO_LARGE);
    FWT_ASSERT_UINT_EQ(need, 1029); /* what it claimed, for the log line */
    hdr[3] = 0x00;                  /* 1024: allowed, so more is needed */
    FWT_ASSERT_INT_EQ(cal_scribe_call_decode(hdr, 4, &lim, &c, &need), 0);
    FWT_ASSERT_UINT_EQ(need, 1028);

    /* The default is 16 MiB. */
    uint8_t big[4] = {0x01, 0x00, 0x00, 0x01};
    FWT_ASSERT_INT_EQ(cal_scribe_call_decode(big, 4, NULL, &c, &need), FW_EFRAME_TOO_LARGE);
    big[3] = 0x00;
    FWT_ASSERT_INT_EQ(cal_scribe_call_decode(big, 4, NULL, &c, &need), 0);
    /* A negative length is too large for any limit; an HTTP request too. */
    uint8_t neg[4] = {0xff, 0xff, 0xff, 0xff};
    lim.max_frame = UINT32_MAX;
    FWT_ASSERT_INT_EQ(cal_scribe_call_decode(neg, 4, &lim, &c, &need), FW_EFRAME_TOO_LARGE);
    FWT_ASSERT_INT_EQ(
        cal_scribe_call_decode((const uint8_t *)"GET / HTTP/1.1\r\n", 16, NULL, &c, &need),
        FW_EFRAME_TOO_LARGE);
    /* Fewer than 4 bytes: need more, whatever they are. */
    FWT_ASSERT_INT_EQ(cal_scribe_call_decode(neg, 3, NULL, &c, &need), 0);
    FWT_ASSERT_UINT_EQ(need, 4);
}

FWT_TEST(a_client_without_framing_gets_its_own_error)
{
    /* Buffered transport: the strict header comes first. */
    FWT_ASSERT_INT_EQ(
        decode_exact(LOG_STRICT + 4, sizeof(LOG_STRICT) - 4, NULL, &(cal_scribe_call_t){0}),
        FW_ETHRIFT_UNFRAMED);
    FWT_ASSERT_STR_EQ(fw_err_name(FW_ETHRIFT_UNFRAMED), "FW_ETHRIFT_UNFRAMED");
}

FWT_TEST(zero_length_and_trailing_bytes_are_malformed)
{
    uint8_t zero[4] = {0};
    cal_scribe_call_t c;
    FWT_ASSERT_INT_EQ(decode_exact(zero, 4, NULL, &c), FW_ETHRIFT_BAD);

    hb_t *h = hb_new();
    hb_call(h, "getName", CAL_THRIFT_CALL, 1);
    hb_u8(h, 0);
    hb_frame(h);
    FWT_ASSERT_INT_EQ(decode_exact(h->b, h->n, NULL, &c), (ssize_t)h->n);
    hb_u8(h, 0); /* one byte after the message, inside the frame */
    hb_frame(h);
    FWT_ASSERT_INT_EQ(decode_exact(h->b, h->n, NULL, &c), FW_ETHRIFT_BAD);
}

FWT_TEST(bad_version)
{
    hb_t *h = hb_new();
    cal_scribe_call_t c;
    static const uint32_t bad[] = {0x80020001u, 0xffff0001u, 0x80000001u, 0x90010001u};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        h->n = 0;
        hb_i32(h, 0);
        hb_i32(h, bad[i]);
        hb_str(h, "Log");
        hb_i32(h, 1);
        hb_u8(h, 0);
        hb_frame(h);
        FWT_ASSERT_INT_EQ(decode_exact(h->b, h->n, NULL, &c), FW_ETHRIFT_VERSION);
    }
    /* Thrift ignores the byte between version and type; so do we. */
    h->n = 0;
    hb_i32(h, 0);
    hb_i32(h, 0x80017f01u);
    hb_str(h, "getName");
    hb_i32(h, 1);
    hb_u8(h, 0);
    hb_frame(h);
    FWT_ASSERT_INT_EQ(decode_exact(h->b, h->n, NULL, &c), (ssize_t)h->n);
    FWT_ASSERT_INT_EQ(c.type, CAL_THRIFT_CALL);
}

FWT_TEST(only_calls_and_oneways_are_decoded_as_calls)
{
    hb_t *h = hb_new();
    cal_scribe_call_t c;
    for (int type = 0; type < 256; type++) {
        hb_call(h, "getStatus", (uint8_t)type, 1);
        hb_u8(h, 0);
        hb_frame(h);
        ssize_t n = decode_exact(h->b, h->n, NULL, &c);
        if (type == CAL_THRIFT_CALL || type == CAL_THRIFT_ONEWAY)
            FWT_ASSERT_INT_EQ(n, (ssize_t)h->n);
        else
            FWT_ASSERT_INT_EQ(n, FW_ETHRIFT_BAD);
    }
    /* Old header too. */
    hb_call_old(h, "getStatus", CAL_THRIFT_REPLY, 1);
    hb_u8(h, 0);
    hb_frame(h);
    FWT_ASSERT_INT_EQ(decode_exact(h->b, h->n, NULL, &c), FW_ETHRIFT_BAD);
    /* A oneway Log is decoded, and wants no answer. */
    hb_call_old(h, "Log", CAL_THRIFT_ONEWAY, 1);
    hb_u8(h, 0);
    hb_frame(h);
    uint8_t *in = exact_copy(h->b, h->n);
    size_t need;
    FWT_ASSERT_INT_EQ(cal_scribe_call_decode(in, h->n, NULL, &c, &need), (ssize_t)h->n);
    FWT_ASSERT_INT_EQ(c.method, CAL_SCRIBE_LOG);
    FWT_ASSERT_UINT_EQ(c.n_entries, 0);
    FWT_ASSERT(!cal_scribe_call_wants_reply(&c));
    free(in);
}

FWT_TEST(every_cut_of_a_message_inside_its_frame_is_malformed)
{
    /* A frame that ends before its message does: each prefix, length patched. */
    hb_t *h = hb_new();
    const uint8_t *msgs[] = {LOG_STRICT, LOG_OLD};
    size_t lens[] = {sizeof(LOG_STRICT), sizeof(LOG_OLD)};
    for (int k = 0; k < 2; k++) {
        for (size_t cut = 4 + 1; cut < lens[k]; cut++) {
            h->n = 0;
            hb_raw(h, msgs[k], cut);
            hb_frame(h);
            cal_scribe_call_t c;
            ssize_t n = decode_exact(h->b, h->n, NULL, &c);
            if (n != FW_ETHRIFT_BAD)
                FWT_FAIL("message %d cut at %zu: %zd (%s)", k, cut, n, fw_err_name((int)n));
        }
    }
}

FWT_TEST(truncated_strings)
{
    hb_t *h = hb_new();
    cal_scribe_call_t c;
    /* The name's length runs past the frame (strict and old). */
    h->n = 0;
    hb_i32(h, 0);
    hb_i32(h, 0x80010001u);
    hb_i32(h, 100);
    hb_raw(h, "Log", 3);
    hb_frame(h);
    FWT_ASSERT_INT_EQ(decode_exact(h->b, h->n, NULL, &c), FW_ETHRIFT_BAD);
    h->n = 0;
    hb_i32(h, 0);
    hb_i32(h, 100);
    hb_raw(h, "Log", 3);
    hb_frame(h);
    FWT_ASSERT_INT_EQ(decode_exact(h->b, h->n, NULL, &c), FW_ETHRIFT_BAD);
    /* A message string one byte longer than what is left. */
    hb_call(h, "Log", CAL_THRIFT_CALL, 1);
    hb_field(h, CAL_THRIFT_LIST, 1);
    hb_u8(h, CAL_THRIFT_STRUCT);
    hb_i32(h, 1);
    hb_field(h, CAL_THRIFT_STRING, 2);
    hb_i32(h, 4);
    hb_raw(h, "abc", 3);
    hb_u8(h, 0);
    hb_u8(h, 0); /* the two STOPs are read as the last string bytes: then nothing is left */
    hb_frame(h);
    FWT_ASSERT_INT_EQ(decode_exact(h->b, h->n, NULL, &c), FW_ETHRIFT_BAD);
    /* A getCounter key past the end. */
    hb_call(h, "getCounter", CAL_THRIFT_CALL, 1);
    hb_field(h, CAL_THRIFT_STRING, 1);
    hb_i32(h, 0x7fffffff);
    hb_u8(h, 0);
    hb_frame(h);
    FWT_ASSERT_INT_EQ(decode_exact(h->b, h->n, NULL, &c), FW_ETHRIFT_BAD);
}

FWT_TEST(negative_lengths_and_counts)
{
    hb_t *h = hb_new();
    cal_scribe_call_t c;
    /* A negative name length in a strict header. */
    h->n = 0;
    hb_i32(h, 0);
    hb_i32(h, 0x80010001u);
    hb_i32(h, -1);
    hb_i32(h, 1);
    hb_u8(h, 0);
    hb_frame(h);
    FWT_ASSERT_INT_EQ(decode_exact(h->b, h->n, NULL, &c), FW_ETHRIFT_BAD);

    /* Then each kind of length, set to -1 in an otherwise valid Log. */
    for (int which = 0; which < 5; which++) {
        hb_call(h, "Log", CAL_THRIFT_CALL, 1);
        hb_field(h, CAL_THRIFT_LIST, 1);
        hb_u8(h, CAL_THRIFT_STRUCT);
        hb_i32(h, which == 0 ? -1 : 1);
        hb_field(h, CAL_THRIFT_STRING, 1);
        hb_i32(h, which == 1 ? -1 : 1);
        hb_u8(h, 'c');
        hb_field(h, CAL_THRIFT_MAP, 9); /* an unknown map in the entry */
        hb_u8(h, CAL_THRIFT_STRING);
        hb_u8(h, CAL_THRIFT_I32);
        hb_i32(h, which == 2 ? -1 : 0);
        hb_field(h, CAL_THRIFT_SET, 10);
        hb_u8(h, CAL_THRIFT_I64);
        hb_i32(h, which == 3 ? -1 : 0);
        hb_field(h, CAL_THRIFT_STRING, 11);
        hb_i32(h, which == 4 ? INT32_MIN : 0);
        hb_u8(h, 0);
        hb_u8(h, 0);
        hb_frame(h);
        FWT_ASSERT_INT_EQ(decode_exact(h->b, h->n, NULL, &c), FW_ETHRIFT_BAD);
    }
    /* With none negative, the same call is fine. */
    hb_call(h, "Log", CAL_THRIFT_CALL, 1);
    hb_field(h, CAL_THRIFT_LIST, 1);
    hb_u8(h, CAL_THRIFT_STRUCT);
    hb_i32(h, 0);
    hb_u8(h, 0);
    hb_frame(h);
    FWT_ASSERT_INT_EQ(decode_exact(h->b, h->n, NULL, &c), (ssize_t)h->n);
}

FWT_TEST(forged_counts_fail_at_once)
{
    /* 2^31-1 elements announced, none there: refused before any loop. */
    static const uint8_t types[] = {CAL_THRIFT_STRUCT, CAL_THRIFT_BOOL, CAL_THRIFT_LIST,
                                    CAL_THRIFT_MAP, CAL_THRIFT_UUID};
    hb_t *h = hb_new();
    cal_scribe_call_t c;
    for (size_t i = 0; i < sizeof(types); i++) {
        hb_call(h, "Log", CAL_THRIFT_CALL, 1);
        hb_field(h, CAL_THRIFT_LIST, i == 0 ? 1 : 5);
        hb_u8(h, types[i]);
        hb_i32(h, 0x7fffffff);
        hb_u8(h, 0);
        hb_frame(h);
        int64_t t0 = fwt_now_ms();
        FWT_ASSERT_INT_EQ(decode_exact(h->b, h->n, NULL, &c), FW_ETHRIFT_BAD);
        FWT_ASSERT_INT_OP(fwt_now_ms() - t0, <, 100);
    }
}

/* Nests depth containers of kind (list, set, map or struct) as an unknown field 5. */
static void put_nested(hb_t *h, int kind, int depth)
{
    for (int i = 0; i < depth; i++) {
        switch (kind) {
        case 0:
        case 1:
            hb_u8(h, kind == 0 ? CAL_THRIFT_LIST : CAL_THRIFT_SET);
            hb_i32(h, 1);
            break;
        case 2:
            hb_u8(h, CAL_THRIFT_I32);
            hb_u8(h, CAL_THRIFT_MAP);
            hb_i32(h, 1);
            hb_i32(h, 42); /* the key; the value is the next map */
            break;
        default:
            hb_field(h, CAL_THRIFT_STRUCT, 1);
            break;
        }
    }
    /* The innermost: an empty list, map, or struct. */
    if (kind == 0 || kind == 1) {
        hb_u8(h, CAL_THRIFT_I32);
        hb_i32(h, 0);
    } else if (kind == 2) {
        hb_u8(h, CAL_THRIFT_I32);
        hb_u8(h, CAL_THRIFT_I32);
        hb_i32(h, 0);
    } else {
        hb_u8(h, 0);
    }
    if (kind == 3) {
        for (int i = 0; i < depth; i++)
            hb_u8(h, 0); /* the STOPs of the structs */
    }
}

static ssize_t nested_in_args(hb_t *h, int kind, int depth, const cal_scribe_limits_t *lim)
{
    hb_call(h, "Log", CAL_THRIFT_CALL, 1);
    static const uint8_t head[] = {CAL_THRIFT_LIST, CAL_THRIFT_SET, CAL_THRIFT_MAP,
                                   CAL_THRIFT_STRUCT};
    hb_field(h, head[kind], 5);
    put_nested(h, kind, depth - 1);
    hb_u8(h, 0);
    hb_frame(h);
    cal_scribe_call_t c;
    return decode_exact(h->b, h->n, lim, &c);
}

FWT_TEST(deep_nesting_is_bounded)
{
    hb_t *h = hb_new();
    /*
     * The args struct is depth 1, so an unknown field holding n nested
     * containers reaches depth n + 1: 63 is within the default 64, 64 is not.
     */
    for (int kind = 0; kind < 4; kind++) {
        FWT_ASSERT_INT_EQ(nested_in_args(h, kind, 63, NULL), (ssize_t)h->n);
        FWT_ASSERT_INT_EQ(nested_in_args(h, kind, 64, NULL), FW_ETHRIFT_DEPTH);
        FWT_ASSERT_INT_EQ(nested_in_args(h, kind, 5000, NULL), FW_ETHRIFT_DEPTH);
        cal_scribe_limits_t lim = {.max_depth = 8};
        FWT_ASSERT_INT_EQ(nested_in_args(h, kind, 7, &lim), (ssize_t)h->n);
        FWT_ASSERT_INT_EQ(nested_in_args(h, kind, 8, &lim), FW_ETHRIFT_DEPTH);
        /* A limit above the hard one is clamped to it. */
        lim.max_depth = 1000000;
        FWT_ASSERT_INT_EQ(nested_in_args(h, kind, CAL_SCRIBE_DEPTH_LIMIT, &lim), FW_ETHRIFT_DEPTH);
    }
    /* Inside a LogEntry (depth 3), the same limit holds. */
    hb_call(h, "Log", CAL_THRIFT_CALL, 1);
    hb_field(h, CAL_THRIFT_LIST, 1);
    hb_u8(h, CAL_THRIFT_STRUCT);
    hb_i32(h, 1);
    hb_field(h, CAL_THRIFT_LIST, 3);
    put_nested(h, 0, 61); /* the field is depth 4: 4 + 61 = 65 */
    hb_u8(h, 0);
    hb_u8(h, 0);
    hb_frame(h);
    cal_scribe_call_t c;
    FWT_ASSERT_INT_EQ(decode_exact(h->b, h->n, NULL, &c), FW_ETHRIFT_DEPTH);
}

/* Every value type once, as unknown field id, into h. */
static void put_every_type(hb_t *h, int id)
{
    hb_field(h, CAL_THRIFT_BOOL, id);
    hb_u8(h, 7);
    hb_field(h, CAL_THRIFT_BYTE, id);
    hb_u8(h, 0x80);
    hb_field(h, CAL_THRIFT_DOUBLE, id);
    hb_raw(h, "\x40\x09\x21\xfb\x54\x44\x2d\x18", 8);
    hb_field(h, CAL_THRIFT_I16, id);
    hb_i16(h, -1);
    hb_field(h, CAL_THRIFT_I32, id);
    hb_i32(h, 1);
    hb_field(h, CAL_THRIFT_I64, id);
    hb_i32(h, 1);
    hb_i32(h, 2);
    hb_field(h, CAL_THRIFT_STRING, id);
    hb_str(h, "ignored");
    hb_field(h, CAL_THRIFT_UUID, id);
    hb_raw(h, "0123456789abcdef", 16);
    hb_field(h, CAL_THRIFT_STRUCT, id);
    {
        hb_field(h, CAL_THRIFT_MAP, 1);
        hb_u8(h, CAL_THRIFT_STRING);
        hb_u8(h, CAL_THRIFT_LIST);
        hb_i32(h, 1);
        hb_str(h, "k");
        hb_u8(h, CAL_THRIFT_SET);
        hb_i32(h, 2);
        hb_u8(h, CAL_THRIFT_I16);
        hb_i32(h, 1);
        hb_i16(h, 3);
        hb_u8(h, CAL_THRIFT_BOOL);
        hb_i32(h, 0);
        hb_field(h, CAL_THRIFT_STRING, -32768);
        hb_str(h, "");
        hb_u8(h, 0);
    }
    hb_field(h, CAL_THRIFT_LIST, id);
    hb_u8(h, CAL_THRIFT_DOUBLE);
    hb_i32(h, 2);
    hb_raw(h, "0123456789abcdef", 16);
}

FWT_TEST(unknown_fields_of_every_type_are_skipped)
{
    hb_t *h = hb_new();
    hb_call(h, "Log", CAL_THRIFT_CALL, 77);
    put_every_type(h, 9);
    hb_field(h, CAL_THRIFT_STRING, 1); /* field 1 with the wrong type: skipped too */
    hb_str(h, "not a list");
    hb_field(h, CAL_THRIFT_LIST, 1);
    hb_u8(h, CAL_THRIFT_STRUCT);
    hb_i32(h, 2);
    /* entry 0: unknown fields around, category given as the wrong type first */
    put_every_type(h, 3);
    hb_field(h, CAL_THRIFT_I32, 1);
    hb_i32(h, 5);
    hb_field(h, CAL_THRIFT_STRING, 1);
    hb_str(h, "cat");
    put_every_type(h, -1);
    hb_field(h, CAL_THRIFT_STRING, 2);
    hb_str(h, "msg");
    hb_u8(h, 0);
    /* entry 1: only unknown fields, strings among them */
    put_every_type(h, 3);
    hb_field(h, CAL_THRIFT_STRING, 0);
    hb_str(h, "zero");
    hb_u8(h, 0);
    put_every_type(h, 2);
    hb_u8(h, 0);
    hb_frame(h);

    uint8_t *in = exact_copy(h->b, h->n);
    cal_scribe_call_t c;
    size_t need;
    FWT_ASSERT_INT_EQ(cal_scribe_call_decode(in, h->n, NULL, &c, &need), (ssize_t)h->n);
    FWT_ASSERT_INT_EQ(c.seqid, 77);
    FWT_ASSERT_UINT_EQ(c.n_entries, 2);
    cal_scribe_entry_iter_t it;
    cal_scribe_entry_t e;
    cal_scribe_entries_begin(&c, &it);
    FWT_ASSERT_INT_EQ(cal_scribe_entries_next(&it, &e), 1);
    assert_str(e.category, "cat");
    assert_str(e.message, "msg");
    FWT_ASSERT_INT_EQ(cal_scribe_entries_next(&it, &e), 1);
    FWT_ASSERT(e.category.p == NULL && e.message.p == NULL);
    FWT_ASSERT_INT_EQ(cal_scribe_entries_next(&it, &e), 0);
    free(in);

    /* The same for an unknown method: its arguments checked and skipped. */
    hb_call(h, "getLimits", CAL_THRIFT_CALL, 78);
    put_every_type(h, 1);
    hb_u8(h, 0);
    hb_frame(h);
    in = exact_copy(h->b, h->n);
    FWT_ASSERT_INT_EQ(cal_scribe_call_decode(in, h->n, NULL, &c, &need), (ssize_t)h->n);
    FWT_ASSERT_INT_EQ(c.method, CAL_SCRIBE_UNKNOWN);
    assert_str(c.name, "getLimits");
    FWT_ASSERT(cal_scribe_call_wants_reply(&c));
    fw_buf_t out = FW_BUF_INIT;
    FWT_ASSERT_OK(cal_scribe_reply_unknown_method(&out, &c));
    cal_scribe_reply_t r;
    FWT_ASSERT_INT_EQ(cal_scribe_reply_decode(out.data, out.len, NULL, &r, &need),
                      (ssize_t)out.len);
    FWT_ASSERT_INT_EQ(r.type, CAL_THRIFT_EXCEPTION);
    FWT_ASSERT_INT_EQ(r.exc_type, CAL_THRIFT_EXC_UNKNOWN_METHOD);
    FWT_ASSERT_INT_EQ(r.seqid, 78);
    assert_str(r.s, "Invalid method name: 'getLimits'");
    fw_buf_free(&out);
    free(in);
}

FWT_TEST(types_the_protocol_does_not_have_are_malformed)
{
    static const uint8_t bad[] = {1, 5, 7, 9, 17, 0x80, 0xff};
    hb_t *h = hb_new();
    cal_scribe_call_t c;
    for (size_t i = 0; i < sizeof(bad); i++) {
        /* as a field type */
        hb_call(h, "getName", CAL_THRIFT_CALL, 1);
        hb_field(h, bad[i], 1);
        hb_i32(h, 0);
        hb_u8(h, 0);
        hb_frame(h);
        FWT_ASSERT_INT_EQ(decode_exact(h->b, h->n, NULL, &c), FW_ETHRIFT_BAD);
        /* as a list's element type, even with no elements */
        hb_call(h, "getName", CAL_THRIFT_CALL, 1);
        hb_field(h, CAL_THRIFT_LIST, 1);
        hb_u8(h, bad[i]);
        hb_i32(h, 0);
        hb_u8(h, 0);
        hb_frame(h);
        FWT_ASSERT_INT_EQ(decode_exact(h->b, h->n, NULL, &c), FW_ETHRIFT_BAD);
        /* as a map's value type */
        hb_call(h, "getName", CAL_THRIFT_CALL, 1);
        hb_field(h, CAL_THRIFT_MAP, 1);
        hb_u8(h, CAL_THRIFT_STRING);
        hb_u8(h, bad[i]);
        hb_i32(h, 0);
        hb_u8(h, 0);
        hb_frame(h);
        FWT_ASSERT_INT_EQ(decode_exact(h->b, h->n, NULL, &c), FW_ETHRIFT_BAD);
    }
    /* Log's list must hold structs. */
    hb_call(h, "Log", CAL_THRIFT_CALL, 1);
    hb_field(h, CAL_THRIFT_LIST, 1);
    hb_u8(h, CAL_THRIFT_STRING);
    hb_i32(h, 1);
    hb_str(h, "a line");
    hb_u8(h, 0);
    hb_frame(h);
    FWT_ASSERT_INT_EQ(decode_exact(h->b, h->n, NULL, &c), FW_ETHRIFT_BAD);
}

FWT_TEST(a_field_given_twice_keeps_its_last_value)
{
    hb_t *h = hb_new();
    hb_call_old(h, "setOption", CAL_THRIFT_CALL, 1);
    hb_field(h, CAL_THRIFT_STRING, 1);
    hb_str(h, "first");
    hb_field(h, CAL_THRIFT_STRING, 2);
    hb_str(h, "v");
    hb_field(h, CAL_THRIFT_STRING, 1);
    hb_str(h, "second");
    hb_u8(h, 0);
    hb_frame(h);
    uint8_t *in = exact_copy(h->b, h->n);
    cal_scribe_call_t c;
    size_t need;
    FWT_ASSERT_INT_EQ(cal_scribe_call_decode(in, h->n, NULL, &c, &need), (ssize_t)h->n);
    FWT_ASSERT_INT_EQ(c.method, CAL_SCRIBE_SET_OPTION);
    assert_str(c.key, "second");
    assert_str(c.value, "v");
    free(in);
}

FWT_TEST(method_names_are_exact_and_bounded)
{
    hb_t *h = hb_new();
    cal_scribe_call_t c;
    static const char *near[] = {"log", "Log ", "getstatus", "", "LogX"};
    for (size_t i = 0; i < sizeof(near) / sizeof(near[0]); i++) {
        hb_call(h, near[i], CAL_THRIFT_CALL, 1);
        hb_u8(h, 0);
        hb_frame(h);
        uint8_t *in = exact_copy(h->b, h->n);
        size_t need;
        FWT_ASSERT_INT_EQ(cal_scribe_call_decode(in, h->n, NULL, &c, &need), (ssize_t)h->n);
        FWT_ASSERT_INT_EQ(c.method, CAL_SCRIBE_UNKNOWN);
        free(in);
    }
    char name[CAL_SCRIBE_NAME_MAX + 2];
    memset(name, 'x', sizeof(name) - 1);
    name[CAL_SCRIBE_NAME_MAX] = '\0';
    hb_call(h, name, CAL_THRIFT_CALL, 1);
    hb_u8(h, 0);
    hb_frame(h);
    FWT_ASSERT_INT_EQ(decode_exact(h->b, h->n, NULL, &c), (ssize_t)h->n);
    name[CAL_SCRIBE_NAME_MAX] = 'x';
    name[CAL_SCRIBE_NAME_MAX + 1] = '\0';
    hb_call_old(h, name, CAL_THRIFT_CALL, 1);
    hb_u8(h, 0);
    hb_frame(h);
    FWT_ASSERT_INT_EQ(decode_exact(h->b, h->n, NULL, &c), FW_ETHRIFT_BAD);
}

FWT_TEST(a_reply_that_does_not_fit_the_call_is_refused)
{
    fw_buf_t out = FW_BUF_INIT;
    FWT_ASSERT_OK(fw_buf_append(&out, "keep", 4));
    cal_scribe_call_t c = call_of(CAL_SCRIBE_GET_NAME, 1, 1);
    c.name = str_of("getName");
    FWT_ASSERT_INT_EQ(cal_scribe_reply_log(&out, &c, CAL_SCRIBE_OK), -EINVAL);
    FWT_ASSERT_INT_EQ(cal_scribe_reply_status(&out, &c, CAL_FB_ALIVE), -EINVAL);
    FWT_ASSERT_INT_EQ(cal_scribe_reply_i64(&out, &c, 1), -EINVAL);
    FWT_ASSERT_INT_EQ(cal_scribe_reply_counters(&out, &c, NULL, 0), -EINVAL);
    FWT_ASSERT_INT_EQ(cal_scribe_reply_options(&out, &c, NULL, 0), -EINVAL);
    FWT_ASSERT_INT_EQ(cal_scribe_reply_void(&out, &c), -EINVAL);
    c.method = CAL_SCRIBE_LOG;
    FWT_ASSERT_INT_EQ(cal_scribe_reply_string(&out, &c, "x", 1), -EINVAL);
    /* Nothing was appended. */
    FWT_ASSERT_UINT_EQ(out.len, 4);
    /* A call built by hand without a name is answered with its method's. */
    cal_scribe_call_t g = call_of(CAL_SCRIBE_GET_STATUS, 0, 4);
    FWT_ASSERT_OK(cal_scribe_reply_status(&out, &g, CAL_FB_ALIVE));
    cal_scribe_reply_t r;
    size_t need;
    FWT_ASSERT_INT_EQ(cal_scribe_reply_decode(out.data + 4, out.len - 4, NULL, &r, &need),
                      (ssize_t)out.len - 4);
    assert_str(r.name, "getStatus");
    FWT_ASSERT_INT_EQ(r.i, CAL_FB_ALIVE);
    out.len = 4;
    /* An unknown method cannot be encoded without a name. */
    cal_scribe_call_t u = call_of(CAL_SCRIBE_UNKNOWN, 1, 1);
    FWT_ASSERT_INT_EQ(cal_scribe_call_encode(&out, &u, NULL, 0), -EINVAL);
    FWT_ASSERT_UINT_EQ(out.len, 4);
    fw_buf_free(&out);
}

FWT_TEST(replies_decode_with_the_same_checks)
{
    /* A call is not a reply, and a reply is not a call. */
    cal_scribe_reply_t r;
    cal_scribe_call_t c;
    size_t need;
    FWT_ASSERT_INT_EQ(cal_scribe_reply_decode(LOG_STRICT, sizeof(LOG_STRICT), NULL, &r, &need),
                      FW_ETHRIFT_BAD);
    FWT_ASSERT_INT_EQ(decode_exact(LOG_OK_STRICT, sizeof(LOG_OK_STRICT), NULL, &c), FW_ETHRIFT_BAD);
    FWT_ASSERT_INT_EQ(
        cal_scribe_reply_decode(LOG_OK_STRICT, sizeof(LOG_OK_STRICT), NULL, &r, &need),
        (ssize_t)sizeof(LOG_OK_STRICT));
    FWT_ASSERT_INT_EQ(r.i, CAL_SCRIBE_OK);
    FWT_ASSERT_INT_EQ(
        cal_scribe_reply_decode(LOG_TRY_LATER_OLD, sizeof(LOG_TRY_LATER_OLD), NULL, &r, &need),
        (ssize_t)sizeof(LOG_TRY_LATER_OLD));
    FWT_ASSERT_INT_EQ(r.strict, 0);
    FWT_ASSERT_INT_EQ(r.i, CAL_SCRIBE_TRY_LATER);
    /* Partial input. */
    FWT_ASSERT_INT_EQ(cal_scribe_reply_decode(LOG_OK_STRICT, 10, NULL, &r, &need), 0);
    FWT_ASSERT_UINT_EQ(need, sizeof(LOG_OK_STRICT));
}

FWT_TEST(error_codes_have_names_and_messages)
{
    static const int codes[] = {FW_ETHRIFT_BAD, FW_ETHRIFT_VERSION, FW_ETHRIFT_DEPTH,
                                FW_ETHRIFT_UNFRAMED};
    static const char *names[] = {"FW_ETHRIFT_BAD", "FW_ETHRIFT_VERSION", "FW_ETHRIFT_DEPTH",
                                  "FW_ETHRIFT_UNFRAMED"};
    for (size_t i = 0; i < 4; i++) {
        FWT_ASSERT_STR_EQ(fw_err_name(codes[i]), names[i]);
        FWT_ASSERT(strstr(fw_strerror(codes[i]), "Thrift") != NULL);
    }
}
