/*
 * libFuzzer target: Scribe's Thrift codec (calligraphus/scribe_thrift.c) on a
 * byte stream as a Scribe client could send it, calls back to back. Besides
 * not crashing: a frame decodes the same whatever the limits it fits, every
 * prefix of a good frame asks for more, everything decoded points inside the
 * frame, a call re-encoded decodes to the same call (and encodes to the same
 * bytes again), and each reply the server could give decodes back with the
 * call's header style, name and seqid. The same bytes go through the reply
 * decoder too.
 *
 * An input whose first byte is odd is one message without its frame: the
 * target frames the rest itself, so that mutations inside a message keep
 * its frame length right and reach the parsers behind it (as the block and
 * token targets re-sign CRCs). An even first byte: the input is the stream.
 */
#include "fuzz.h"

#include "error.h"
#include "scribe_thrift.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const cal_scribe_limits_t tight = {.max_frame = 512, .max_depth = 8};

static int known_error(ssize_t n)
{
    return n == FW_EFRAME_TOO_LARGE || n == FW_ETHRIFT_BAD || n == FW_ETHRIFT_VERSION ||
           n == FW_ETHRIFT_DEPTH || n == FW_ETHRIFT_UNFRAMED;
}

static void inside(const void *p, size_t len, const uint8_t *lo, const uint8_t *hi)
{
    if (p == NULL) {
        if (len != 0)
            abort();
        return;
    }
    const uint8_t *q = p;
    if (q < lo || q > hi || len > (size_t)(hi - q))
        abort();
}

static int str_eq(cal_thrift_str_t a, cal_thrift_str_t b)
{
    if ((a.p == NULL) != (b.p == NULL) || a.len != b.len)
        return 0;
    return a.len == 0 || memcmp(a.p, b.p, a.len) == 0;
}

/* Reads a call's entries into a new array (n_entries of them, all checked inside the frame). */
static cal_scribe_entry_t *entries_of(const cal_scribe_call_t *c, const uint8_t *lo,
                                      const uint8_t *hi)
{
    cal_scribe_entry_t *es = malloc((c->n_entries ? c->n_entries : 1) * sizeof(*es));
    if (es == NULL)
        abort();
    cal_scribe_entry_iter_t it;
    cal_scribe_entries_begin(c, &it);
    for (uint32_t i = 0; i < c->n_entries; i++) {
        if (cal_scribe_entries_next(&it, &es[i]) != 1)
            abort(); /* a decoded call's entries never fail */
        inside(es[i].category.p, es[i].category.len, lo, hi);
        inside(es[i].message.p, es[i].message.len, lo, hi);
    }
    cal_scribe_entry_t extra;
    if (cal_scribe_entries_next(&it, &extra) != 0)
        abort();
    return es;
}

static void same_call(const cal_scribe_call_t *a, const cal_scribe_entry_t *ea,
                      const cal_scribe_call_t *b, const cal_scribe_entry_t *eb)
{
    if (a->method != b->method || a->type != b->type || a->strict != b->strict ||
        a->seqid != b->seqid || !str_eq(a->name, b->name) || a->n_entries != b->n_entries ||
        !str_eq(a->key, b->key) || !str_eq(a->value, b->value) ||
        a->profile_seconds != b->profile_seconds)
        abort();
    for (uint32_t i = 0; i < a->n_entries; i++) {
        if (!str_eq(ea[i].category, eb[i].category) || !str_eq(ea[i].message, eb[i].message))
            abort();
    }
}

/* Two decodings of the same bytes: the same fields, pointing at the same places. */
static int same_decoding(const cal_scribe_call_t *a, const cal_scribe_call_t *b)
{
    return a->method == b->method && a->type == b->type && a->strict == b->strict &&
           a->seqid == b->seqid && a->name.p == b->name.p && a->name.len == b->name.len &&
           a->n_entries == b->n_entries && a->entries == b->entries &&
           a->entries_end == b->entries_end && a->key.p == b->key.p && a->key.len == b->key.len &&
           a->value.p == b->value.p && a->value.len == b->value.len &&
           a->profile_seconds == b->profile_seconds && a->args == b->args &&
           a->args_len == b->args_len;
}

/* A reply frame decodes as a whole, with the call's style, name and seqid. */
static void check_reply(const fw_buf_t *b, const cal_scribe_call_t *c, uint8_t type,
                        uint8_t value_type)
{
    cal_scribe_reply_t r;
    size_t need;
    ssize_t n = cal_scribe_reply_decode(b->data, b->len, NULL, &r, &need);
    if (n != (ssize_t)b->len || r.type != type || r.strict != c->strict || r.seqid != c->seqid ||
        r.name.len != c->name.len || memcmp(r.name.p, c->name.p, c->name.len) != 0)
        abort();
    if (type == CAL_THRIFT_REPLY && r.value_type != value_type)
        abort();
}

static void check_replies(const cal_scribe_call_t *c)
{
    fw_buf_t b = FW_BUF_INIT;
    int rc = 0;
    uint8_t vt = 0;
    switch (c->method) {
    case CAL_SCRIBE_LOG:
        rc = cal_scribe_reply_log(&b, c, CAL_SCRIBE_TRY_LATER);
        vt = CAL_THRIFT_I32;
        break;
    case CAL_SCRIBE_GET_STATUS:
        rc = cal_scribe_reply_status(&b, c, CAL_FB_ALIVE);
        vt = CAL_THRIFT_I32;
        break;
    case CAL_SCRIBE_GET_NAME:
    case CAL_SCRIBE_GET_VERSION:
    case CAL_SCRIBE_GET_STATUS_DETAILS:
    case CAL_SCRIBE_GET_OPTION:
    case CAL_SCRIBE_GET_CPU_PROFILE:
        rc = cal_scribe_reply_string(&b, c, c->key.p ? c->key.p : "", c->key.len);
        vt = CAL_THRIFT_STRING;
        break;
    case CAL_SCRIBE_ALIVE_SINCE:
    case CAL_SCRIBE_GET_COUNTER:
        rc = cal_scribe_reply_i64(&b, c, c->seqid);
        vt = CAL_THRIFT_I64;
        break;
    case CAL_SCRIBE_GET_COUNTERS: {
        cal_scribe_counter_t cs[] = {{"a", 1}, {"b", -1}};
        rc = cal_scribe_reply_counters(&b, c, cs, 2);
        vt = CAL_THRIFT_MAP;
        break;
    }
    case CAL_SCRIBE_GET_OPTIONS: {
        cal_scribe_option_t os[] = {{"a", "b"}};
        rc = cal_scribe_reply_options(&b, c, os, 1);
        vt = CAL_THRIFT_MAP;
        break;
    }
    case CAL_SCRIBE_SET_OPTION:
        rc = cal_scribe_reply_void(&b, c);
        break;
    default:
        rc = cal_scribe_reply_unknown_method(&b, c);
        if (rc != 0)
            abort();
        check_reply(&b, c, CAL_THRIFT_EXCEPTION, 0);
        fw_buf_free(&b);
        return;
    }
    if (rc != 0)
        abort();
    check_reply(&b, c, CAL_THRIFT_REPLY, vt);
    /* A reply that does not fit the method is refused and appends nothing. */
    size_t len = b.len;
    if (c->method != CAL_SCRIBE_LOG &&
        (cal_scribe_reply_log(&b, c, CAL_SCRIBE_OK) != -EINVAL || b.len != len))
        abort();
    fw_buf_reset(&b);
    if (cal_scribe_reply_exception(&b, c, CAL_THRIFT_EXC_INTERNAL_ERROR, "x") != 0)
        abort();
    check_reply(&b, c, CAL_THRIFT_EXCEPTION, 0);
    fw_buf_free(&b);
}

static void check_call(const cal_scribe_call_t *c, const uint8_t *frame, size_t n)
{
    const uint8_t *lo = frame, *hi = frame + n;
    if (c->type != CAL_THRIFT_CALL && c->type != CAL_THRIFT_ONEWAY)
        abort();
    inside(c->name.p, c->name.len, lo, hi);
    inside(c->key.p, c->key.len, lo, hi);
    inside(c->value.p, c->value.len, lo, hi);
    /* The arguments end the frame (nothing may follow them). */
    inside(c->args, c->args_len, lo, hi);
    if (c->args == NULL || c->args + c->args_len != hi || c->args_len == 0)
        abort();
    if (c->name.len > CAL_SCRIBE_NAME_MAX)
        abort();
    if (c->method != CAL_SCRIBE_LOG && c->n_entries != 0)
        abort();
    cal_scribe_entry_t *es = entries_of(c, lo, hi);

    /* Re-encoded, it decodes to the same call; encoded again, to the same bytes. */
    fw_buf_t enc = FW_BUF_INIT, enc2 = FW_BUF_INIT;
    if (cal_scribe_call_encode(&enc, c, es, c->n_entries) != 0)
        abort();
    cal_scribe_call_t d;
    size_t need;
    if (cal_scribe_call_decode(enc.data, enc.len, NULL, &d, &need) != (ssize_t)enc.len)
        abort();
    cal_scribe_entry_t *ed = entries_of(&d, enc.data, enc.data + enc.len);
    same_call(c, es, &d, ed);
    if (cal_scribe_call_encode(&enc2, &d, ed, d.n_entries) != 0 || enc2.len != enc.len ||
        memcmp(enc2.data, enc.data, enc.len) != 0)
        abort();

    check_replies(c);
    free(ed);
    free(es);
    fw_buf_free(&enc);
    fw_buf_free(&enc2);
}

static void fuzz_calls(const uint8_t *buf, size_t size)
{
    size_t off = 0;
    while (off < size) {
        const uint8_t *p = buf + off;
        size_t left = size - off;
        cal_scribe_call_t c, t;
        size_t need = 0, tneed = 0;
        ssize_t n = cal_scribe_call_decode(p, left, NULL, &c, &need);
        ssize_t tn = cal_scribe_call_decode(p, left, &tight, &t, &tneed);
        /* What the tight limits accept, the default ones accept the same way. */
        if (tn > 0 && (n != tn || !same_decoding(&c, &t)))
            abort();
        if (n == 0) {
            if (need < 4 || need <= left)
                abort();
            break;
        }
        if (n < 0) {
            if (!known_error(n))
                abort();
            /* Malformed bytes are malformed under any limits (or hit a limit first). */
            if ((n == FW_ETHRIFT_BAD || n == FW_ETHRIFT_VERSION || n == FW_ETHRIFT_UNFRAMED) &&
                tn >= 0)
                abort();
            break;
        }
        if ((size_t)n > left || (size_t)n != need)
            abort();
        /* Every prefix of the frame asks for more. */
        size_t cuts[] = {0, 3, 4, (size_t)n / 2, (size_t)n - 1};
        for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
            cal_scribe_call_t x;
            size_t xneed;
            if (cuts[i] < (size_t)n && cal_scribe_call_decode(p, cuts[i], NULL, &x, &xneed) != 0)
                abort();
        }
        check_call(&c, p, (size_t)n);
        off += (size_t)n;
    }
}

static void fuzz_replies(const uint8_t *buf, size_t size)
{
    size_t off = 0;
    while (off < size) {
        cal_scribe_reply_t r;
        size_t need = 0;
        ssize_t n = cal_scribe_reply_decode(buf + off, size - off, NULL, &r, &need);
        if (n == 0 && (need < 4 || need <= size - off))
            abort();
        if (n < 0 && !known_error(n))
            abort();
        if (n <= 0)
            break;
        const uint8_t *lo = buf + off, *hi = buf + off + n;
        inside(r.name.p, r.name.len, lo, hi);
        inside(r.s.p, r.s.len, lo, hi);
        if (r.type != CAL_THRIFT_REPLY && r.type != CAL_THRIFT_EXCEPTION)
            abort();
        if (r.value_type == CAL_THRIFT_MAP) {
            inside(r.map, (size_t)(r.map_end - r.map), lo, hi);
            cal_scribe_map_iter_t it;
            cal_thrift_str_t k, sv;
            int64_t iv;
            cal_scribe_map_begin(&r, &it);
            uint32_t got = 0;
            int rc;
            while ((rc = cal_scribe_map_next(&it, &k, &iv, &sv)) == 1) {
                inside(k.p, k.len, lo, hi);
                got++;
            }
            if (rc == 0 && got != r.map_n)
                abort();
            if (rc < 0 && got != 0)
                abort(); /* types are checked before the first pair */
        }
        off += (size_t)n;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact heap copy, so ASan sees any read past the end. */
    uint8_t *buf = malloc(size + 4);
    if (buf == NULL)
        return 0;
    size_t len = size;
    if (size > 0 && (data[0] & 1)) {
        len = size - 1 + 4;
        uint32_t n = (uint32_t)(size - 1);
        buf[0] = (uint8_t)(n >> 24);
        buf[1] = (uint8_t)(n >> 16);
        buf[2] = (uint8_t)(n >> 8);
        buf[3] = (uint8_t)n;
        memcpy(buf + 4, data + 1, size - 1);
    } else {
        memcpy(buf, data, size);
    }
    uint8_t *exact = malloc(len ? len : 1);
    if (exact == NULL) {
        free(buf);
        return 0;
    }
    memcpy(exact, buf, len);
    free(buf);
    fuzz_calls(exact, len);
    fuzz_replies(exact, len);
    free(exact);
    return 0;
}
