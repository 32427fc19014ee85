/*
 * Scribe's Thrift codec (layout in scribe_thrift.h). Decoding reads through a
 * bounded cursor and allocates nothing; encoding appends to a fw_buf_t and
 * patches the frame length last.
 */
#include "scribe_thrift.h"

#include "error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define VERSION_MASK 0xffff0000u
#define VERSION_1    0x80010000u

static const struct {
    const char *name;
    int oneway; /* oneway in the IDL: never answered */
} methods[CAL_SCRIBE_METHOD_COUNT] = {
    [CAL_SCRIBE_UNKNOWN] = {"?", 0},
    [CAL_SCRIBE_LOG] = {"Log", 0},
    [CAL_SCRIBE_GET_NAME] = {"getName", 0},
    [CAL_SCRIBE_GET_VERSION] = {"getVersion", 0},
    [CAL_SCRIBE_GET_STATUS] = {"getStatus", 0},
    [CAL_SCRIBE_GET_STATUS_DETAILS] = {"getStatusDetails", 0},
    [CAL_SCRIBE_GET_COUNTERS] = {"getCounters", 0},
    [CAL_SCRIBE_GET_COUNTER] = {"getCounter", 0},
    [CAL_SCRIBE_SET_OPTION] = {"setOption", 0},
    [CAL_SCRIBE_GET_OPTION] = {"getOption", 0},
    [CAL_SCRIBE_GET_OPTIONS] = {"getOptions", 0},
    [CAL_SCRIBE_GET_CPU_PROFILE] = {"getCpuProfile", 0},
    [CAL_SCRIBE_ALIVE_SINCE] = {"aliveSince", 0},
    [CAL_SCRIBE_REINITIALIZE] = {"reinitialize", 1},
    [CAL_SCRIBE_SHUTDOWN] = {"shutdown", 1},
};

const char *cal_scribe_method_name(cal_scribe_method_t m)
{
    if ((unsigned)m >= CAL_SCRIBE_METHOD_COUNT)
        return "?";
    return methods[m].name;
}

static cal_scribe_method_t method_lookup(const char *name, uint32_t len)
{
    for (int m = CAL_SCRIBE_LOG; m < CAL_SCRIBE_METHOD_COUNT; m++) {
        if (strlen(methods[m].name) == len && memcmp(methods[m].name, name, len) == 0)
            return (cal_scribe_method_t)m;
    }
    return CAL_SCRIBE_UNKNOWN;
}

int cal_scribe_call_wants_reply(const cal_scribe_call_t *call)
{
    return call->type == CAL_THRIFT_CALL &&
           !methods[(unsigned)call->method < CAL_SCRIBE_METHOD_COUNT ? call->method : 0].oneway;
}

/* ---- big-endian loads and stores ------------------------------------------------ */

static inline uint16_t be16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t be64(const uint8_t *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static inline void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* ---- the reading cursor --------------------------------------------------------- */

/* A cursor over one frame's message; every read is checked against end. */
typedef struct rd_s {
    const uint8_t *p, *end;
    unsigned max_depth;
} rd_t;

static int rd_u8(rd_t *r, uint8_t *v)
{
    if (r->end - r->p < 1)
        return FW_ETHRIFT_BAD;
    *v = *r->p++;
    return 0;
}

static int rd_i16(rd_t *r, int16_t *v)
{
    if (r->end - r->p < 2)
        return FW_ETHRIFT_BAD;
    *v = (int16_t)be16(r->p);
    r->p += 2;
    return 0;
}

static int rd_i32(rd_t *r, int32_t *v)
{
    if (r->end - r->p < 4)
        return FW_ETHRIFT_BAD;
    *v = (int32_t)be32(r->p);
    r->p += 4;
    return 0;
}

static int rd_i64(rd_t *r, int64_t *v)
{
    if (r->end - r->p < 8)
        return FW_ETHRIFT_BAD;
    *v = (int64_t)be64(r->p);
    r->p += 8;
    return 0;
}

/* A string's i32 length, then its bytes; a negative length is malformed. */
static int rd_str(rd_t *r, cal_thrift_str_t *s)
{
    int32_t len;
    int rc = rd_i32(r, &len);
    if (rc < 0)
        return rc;
    if (len < 0 || (size_t)(r->end - r->p) < (size_t)len)
        return FW_ETHRIFT_BAD;
    s->p = (const char *)r->p;
    s->len = (uint32_t)len;
    r->p += len;
    return 0;
}

/* The fewest bytes a value of this type takes; 0 for a type the protocol does not have. */
static size_t min_size(uint8_t type)
{
    switch (type) {
    case CAL_THRIFT_BOOL:
    case CAL_THRIFT_BYTE:
    case CAL_THRIFT_STRUCT: /* a lone STOP */
        return 1;
    case CAL_THRIFT_I16:
        return 2;
    case CAL_THRIFT_I32:
    case CAL_THRIFT_STRING:
        return 4;
    case CAL_THRIFT_DOUBLE:
    case CAL_THRIFT_I64:
        return 8;
    case CAL_THRIFT_SET:
    case CAL_THRIFT_LIST:
        return 5;
    case CAL_THRIFT_MAP:
        return 6;
    case CAL_THRIFT_UUID:
        return 16;
    default:
        return 0;
    }
}

/*
 * A container's count: non-negative, and small enough that count elements of
 * at least elem_min bytes each fit in what is left, so a forged count fails
 * at once instead of after a long loop.
 */
static int rd_count(rd_t *r, size_t elem_min, uint32_t *count)
{
    int32_t n;
    int rc = rd_i32(r, &n);
    if (rc < 0)
        return rc;
    if (n < 0 || (uint64_t)n * elem_min > (uint64_t)(r->end - r->p))
        return FW_ETHRIFT_BAD;
    *count = (uint32_t)n;
    return 0;
}

static int skip_value(rd_t *r, uint8_t type, unsigned depth);

/* Reads a field header: 1 and *type, *id for a field, 0 at STOP. */
static int next_field(rd_t *r, uint8_t *type, int16_t *id)
{
    int rc = rd_u8(r, type);
    if (rc < 0)
        return rc;
    if (*type == CAL_THRIFT_STOP)
        return 0;
    if (min_size(*type) == 0)
        return FW_ETHRIFT_BAD;
    rc = rd_i16(r, id);
    return rc < 0 ? rc : 1;
}

/* Skips a struct's fields up to its STOP; the struct is at depth. */
static int skip_struct_body(rd_t *r, unsigned depth)
{
    for (;;) {
        uint8_t type;
        int16_t id;
        int rc = next_field(r, &type, &id);
        if (rc <= 0)
            return rc;
        rc = skip_value(r, type, depth + 1);
        if (rc < 0)
            return rc;
    }
}

/*
 * Skips one value of any type, checking it all the way down: the structs,
 * maps, sets and lists in it count toward the depth limit.
 */
static int skip_value(rd_t *r, uint8_t type, unsigned depth)
{
    size_t fixed = 0;
    switch (type) {
    case CAL_THRIFT_BOOL:
    case CAL_THRIFT_BYTE:
        fixed = 1;
        break;
    case CAL_THRIFT_I16:
        fixed = 2;
        break;
    case CAL_THRIFT_I32:
        fixed = 4;
        break;
    case CAL_THRIFT_DOUBLE:
    case CAL_THRIFT_I64:
        fixed = 8;
        break;
    case CAL_THRIFT_UUID:
        fixed = 16;
        break;
    case CAL_THRIFT_STRING: {
        cal_thrift_str_t s;
        return rd_str(r, &s);
    }
    case CAL_THRIFT_STRUCT:
        if (depth > r->max_depth)
            return FW_ETHRIFT_DEPTH;
        return skip_struct_body(r, depth);
    case CAL_THRIFT_MAP: {
        if (depth > r->max_depth)
            return FW_ETHRIFT_DEPTH;
        uint8_t kt, vt;
        uint32_t n;
        int rc = rd_u8(r, &kt);
        if (rc == 0)
            rc = rd_u8(r, &vt);
        if (rc < 0)
            return rc;
        if (min_size(kt) == 0 || min_size(vt) == 0)
            return FW_ETHRIFT_BAD;
        rc = rd_count(r, min_size(kt) + min_size(vt), &n);
        for (uint32_t i = 0; rc == 0 && i < n; i++) {
            rc = skip_value(r, kt, depth + 1);
            if (rc == 0)
                rc = skip_value(r, vt, depth + 1);
        }
        return rc;
    }
    case CAL_THRIFT_SET:
    case CAL_THRIFT_LIST: {
        if (depth > r->max_depth)
            return FW_ETHRIFT_DEPTH;
        uint8_t et;
        uint32_t n;
        int rc = rd_u8(r, &et);
        if (rc < 0)
            return rc;
        if (min_size(et) == 0)
            return FW_ETHRIFT_BAD;
        rc = rd_count(r, min_size(et), &n);
        for (uint32_t i = 0; rc == 0 && i < n; i++)
            rc = skip_value(r, et, depth + 1);
        return rc;
    }
    default:
        return FW_ETHRIFT_BAD;
    }
    if ((size_t)(r->end - r->p) < fixed)
        return FW_ETHRIFT_BAD;
    r->p += fixed;
    return 0;
}

/* ---- frames and message headers -------------------------------------------------- */

static void limits_get(const cal_scribe_limits_t *lim, uint32_t *max_frame, unsigned *max_depth)
{
    *max_frame = lim && lim->max_frame ? lim->max_frame : CAL_SCRIBE_FRAME_MAX_DEFAULT;
    if (*max_frame > CAL_SCRIBE_FRAME_MAX_LIMIT)
        *max_frame = CAL_SCRIBE_FRAME_MAX_LIMIT;
    *max_depth = lim && lim->max_depth ? lim->max_depth : CAL_SCRIBE_DEPTH_DEFAULT;
    if (*max_depth < CAL_SCRIBE_DEPTH_MIN)
        *max_depth = CAL_SCRIBE_DEPTH_MIN;
    if (*max_depth > CAL_SCRIBE_DEPTH_LIMIT)
        *max_depth = CAL_SCRIBE_DEPTH_LIMIT;
}

/*
 * The frame around a message: 0 (need more, *need set), a negative code, or
 * 1 with r over the message. A length whose top byte is 0x80 and next 0x01
 * is a strict message header sent without a frame: a client on buffered
 * transport, worth its own error.
 */
static int frame_open(const uint8_t *buf, size_t len, const cal_scribe_limits_t *lim, rd_t *r,
                      size_t *need)
{
    uint32_t max_frame;
    unsigned max_depth;
    limits_get(lim, &max_frame, &max_depth);
    *need = 4;
    if (len < 4)
        return 0;
    uint32_t length = be32(buf);
    if ((length & VERSION_MASK) == VERSION_1)
        return FW_ETHRIFT_UNFRAMED;
    if (length > max_frame) {
        *need = (size_t)length + 4;
        return FW_EFRAME_TOO_LARGE;
    }
    if (length == 0)
        return FW_ETHRIFT_BAD;
    *need = (size_t)length + 4;
    if (len < *need)
        return 0;
    r->p = buf + 4;
    r->end = buf + *need;
    r->max_depth = max_depth;
    return 1;
}

/* Reads either header style. */
static int read_header(rd_t *r, uint8_t *type, uint8_t *strict, cal_thrift_str_t *name,
                       int32_t *seqid)
{
    int32_t first;
    int rc = rd_i32(r, &first);
    if (rc < 0)
        return rc;
    if (first < 0) {
        if (((uint32_t)first & VERSION_MASK) != VERSION_1)
            return FW_ETHRIFT_VERSION;
        *type = (uint8_t)((uint32_t)first & 0xff);
        *strict = 1;
        rc = rd_str(r, name);
    } else {
        /* The old header: first is the name's length. */
        if ((size_t)(r->end - r->p) < (size_t)first)
            return FW_ETHRIFT_BAD;
        name->p = (const char *)r->p;
        name->len = (uint32_t)first;
        r->p += first;
        *strict = 0;
        rc = rd_u8(r, type);
    }
    if (rc == 0)
        rc = rd_i32(r, seqid);
    if (rc < 0)
        return rc;
    if (name->len > CAL_SCRIBE_NAME_MAX)
        return FW_ETHRIFT_BAD;
    return 0;
}

/* ---- calls ----------------------------------------------------------------------- */

/* One LogEntry struct (its fields; the struct is at depth): category and message. */
static int read_entry(rd_t *r, unsigned depth, cal_scribe_entry_t *e)
{
    memset(e, 0, sizeof(*e));
    for (;;) {
        uint8_t type;
        int16_t id;
        int rc = next_field(r, &type, &id);
        if (rc <= 0)
            return rc;
        if (type == CAL_THRIFT_STRING && (id == 1 || id == 2))
            rc = rd_str(r, id == 1 ? &e->category : &e->message);
        else
            rc = skip_value(r, type, depth + 1);
        if (rc < 0)
            return rc;
    }
}

/* Log_args.messages: a list of LogEntry, at depth 2; each entry checked now. */
static int read_log_list(rd_t *r, cal_scribe_call_t *c)
{
    uint8_t et;
    uint32_t n;
    int rc = rd_u8(r, &et);
    if (rc < 0)
        return rc;
    if (et != CAL_THRIFT_STRUCT)
        return FW_ETHRIFT_BAD;
    rc = rd_count(r, 1, &n);
    if (rc < 0)
        return rc;
    const uint8_t *start = r->p;
    for (uint32_t i = 0; i < n; i++) {
        cal_scribe_entry_t e;
        rc = read_entry(r, 3, &e);
        if (rc < 0)
            return rc;
    }
    c->n_entries = n;
    c->entries = start;
    c->entries_end = r->p;
    return 0;
}

/* The arguments struct of c->method (depth 1). */
static int read_args(rd_t *r, cal_scribe_call_t *c)
{
    for (;;) {
        uint8_t type;
        int16_t id;
        int rc = next_field(r, &type, &id);
        if (rc <= 0)
            return rc;
        switch (c->method) {
        case CAL_SCRIBE_LOG:
            if (id == 1 && type == CAL_THRIFT_LIST) {
                rc = read_log_list(r, c);
                if (rc < 0)
                    return rc;
                continue;
            }
            break;
        case CAL_SCRIBE_GET_COUNTER:
        case CAL_SCRIBE_GET_OPTION:
            if (id == 1 && type == CAL_THRIFT_STRING) {
                rc = rd_str(r, &c->key);
                if (rc < 0)
                    return rc;
                continue;
            }
            break;
        case CAL_SCRIBE_SET_OPTION:
            if ((id == 1 || id == 2) && type == CAL_THRIFT_STRING) {
                rc = rd_str(r, id == 1 ? &c->key : &c->value);
                if (rc < 0)
                    return rc;
                continue;
            }
            break;
        case CAL_SCRIBE_GET_CPU_PROFILE:
            if (id == 1 && type == CAL_THRIFT_I32) {
                rc = rd_i32(r, &c->profile_seconds);
                if (rc < 0)
                    return rc;
                continue;
            }
            break;
        default:
            break;
        }
        rc = skip_value(r, type, 2);
        if (rc < 0)
            return rc;
    }
}

ssize_t cal_scribe_call_decode(const uint8_t *buf, size_t len, const cal_scribe_limits_t *lim,
                               cal_scribe_call_t *out, size_t *need)
{
    rd_t r;
    int rc = frame_open(buf, len, lim, &r, need);
    if (rc <= 0)
        return rc;
    cal_scribe_call_t c;
    memset(&c, 0, sizeof(c));
    rc = read_header(&r, &c.type, &c.strict, &c.name, &c.seqid);
    if (rc < 0)
        return rc;
    if (c.type != CAL_THRIFT_CALL && c.type != CAL_THRIFT_ONEWAY)
        return FW_ETHRIFT_BAD;
    c.method = method_lookup(c.name.p, c.name.len);
    c.args = r.p;
    rc = read_args(&r, &c);
    if (rc < 0)
        return rc;
    c.args_len = (size_t)(r.p - c.args);
    if (r.p != r.end)
        return FW_ETHRIFT_BAD; /* bytes after the message */
    *out = c;
    return (ssize_t)*need;
}

void cal_scribe_entries_begin(const cal_scribe_call_t *call, cal_scribe_entry_iter_t *it)
{
    it->p = call->entries;
    it->end = call->entries_end;
    it->left = call->method == CAL_SCRIBE_LOG ? call->n_entries : 0;
}

int cal_scribe_entries_next(cal_scribe_entry_iter_t *it, cal_scribe_entry_t *e)
{
    if (it->left == 0)
        return 0;
    rd_t r = {it->p, it->end, CAL_SCRIBE_DEPTH_LIMIT};
    int rc = read_entry(&r, 3, e);
    if (rc < 0) {
        it->left = 0;
        return rc;
    }
    it->p = r.p;
    it->left--;
    return 1;
}

/* ---- writing --------------------------------------------------------------------- */

/*
 * A frame being appended to b: the length is patched in at wr_end, and any
 * failure on the way (sticky in err) takes everything appended back out.
 */
typedef struct wr_s {
    fw_buf_t *b;
    size_t start;
    int err;
} wr_t;

static void w_bytes(wr_t *w, const void *p, size_t n)
{
    if (w->err == 0 && n > 0)
        w->err = fw_buf_append(w->b, p, n);
}

static void w_u8(wr_t *w, uint8_t v)
{
    w_bytes(w, &v, 1);
}

static void w_i16(wr_t *w, int16_t v)
{
    uint8_t p[2] = {(uint8_t)((uint16_t)v >> 8), (uint8_t)v};
    w_bytes(w, p, 2);
}

static void w_i32(wr_t *w, int32_t v)
{
    uint8_t p[4];
    put_be32(p, (uint32_t)v);
    w_bytes(w, p, 4);
}

static void w_i64(wr_t *w, int64_t v)
{
    uint8_t p[8];
    put_be32(p, (uint32_t)((uint64_t)v >> 32));
    put_be32(p + 4, (uint32_t)v);
    w_bytes(w, p, 8);
}

static void w_str(wr_t *w, const void *p, size_t n)
{
    if (n > INT32_MAX) {
        if (w->err == 0)
            w->err = FW_EFRAME_TOO_LARGE;
        return;
    }
    w_i32(w, (int32_t)n);
    w_bytes(w, p, n);
}

static void w_field(wr_t *w, uint8_t type, int16_t id)
{
    w_u8(w, type);
    w_i16(w, id);
}

/* Opens a frame and writes the message header in the style asked for. */
static void w_begin(wr_t *w, fw_buf_t *b, int strict, uint8_t type, const char *name,
                    size_t name_len, int32_t seqid)
{
    w->b = b;
    w->start = b->len;
    w->err = 0;
    w_i32(w, 0); /* the frame length, patched by w_end */
    if (strict) {
        w_i32(w, (int32_t)(VERSION_1 | type));
        w_str(w, name, name_len);
    } else {
        w_str(w, name, name_len);
        w_u8(w, type);
    }
    w_i32(w, seqid);
}

static int w_end(wr_t *w)
{
    if (w->err == 0 && w->b->len - w->start - 4 > CAL_SCRIBE_FRAME_MAX_LIMIT)
        w->err = FW_EFRAME_TOO_LARGE;
    if (w->err < 0) {
        if (w->b->data != NULL)
            w->b->len = w->start;
        return w->err;
    }
    put_be32(w->b->data + w->start, (uint32_t)(w->b->len - w->start - 4));
    return 0;
}

/* ---- replies --------------------------------------------------------------------- */

/* A reply names the call's method as the call did (a call built by hand may leave it to us). */
static void w_reply_begin(wr_t *w, fw_buf_t *b, const cal_scribe_call_t *call, uint8_t type)
{
    const char *name = call->name.p;
    size_t len = call->name.len;
    if (name == NULL) {
        name = cal_scribe_method_name(call->method);
        len = strlen(name);
    }
    w_begin(w, b, call->strict, type, name, len, call->seqid);
}

int cal_scribe_reply_log(fw_buf_t *out, const cal_scribe_call_t *call, cal_scribe_result_t rc)
{
    if (call->method != CAL_SCRIBE_LOG)
        return -EINVAL;
    wr_t w;
    w_reply_begin(&w, out, call, CAL_THRIFT_REPLY);
    w_field(&w, CAL_THRIFT_I32, 0);
    w_i32(&w, (int32_t)rc);
    w_u8(&w, CAL_THRIFT_STOP);
    return w_end(&w);
}

int cal_scribe_reply_status(fw_buf_t *out, const cal_scribe_call_t *call, cal_fb_status_t st)
{
    if (call->method != CAL_SCRIBE_GET_STATUS)
        return -EINVAL;
    wr_t w;
    w_reply_begin(&w, out, call, CAL_THRIFT_REPLY);
    w_field(&w, CAL_THRIFT_I32, 0);
    w_i32(&w, (int32_t)st);
    w_u8(&w, CAL_THRIFT_STOP);
    return w_end(&w);
}

int cal_scribe_reply_string(fw_buf_t *out, const cal_scribe_call_t *call, const char *s, size_t len)
{
    switch (call->method) {
    case CAL_SCRIBE_GET_NAME:
    case CAL_SCRIBE_GET_VERSION:
    case CAL_SCRIBE_GET_STATUS_DETAILS:
    case CAL_SCRIBE_GET_OPTION:
    case CAL_SCRIBE_GET_CPU_PROFILE:
        break;
    default:
        return -EINVAL;
    }
    wr_t w;
    w_reply_begin(&w, out, call, CAL_THRIFT_REPLY);
    w_field(&w, CAL_THRIFT_STRING, 0);
    w_str(&w, s, len);
    w_u8(&w, CAL_THRIFT_STOP);
    return w_end(&w);
}

int cal_scribe_reply_i64(fw_buf_t *out, const cal_scribe_call_t *call, int64_t v)
{
    if (call->method != CAL_SCRIBE_ALIVE_SINCE && call->method != CAL_SCRIBE_GET_COUNTER)
        return -EINVAL;
    wr_t w;
    w_reply_begin(&w, out, call, CAL_THRIFT_REPLY);
    w_field(&w, CAL_THRIFT_I64, 0);
    w_i64(&w, v);
    w_u8(&w, CAL_THRIFT_STOP);
    return w_end(&w);
}

int cal_scribe_reply_counters(fw_buf_t *out, const cal_scribe_call_t *call,
                              const cal_scribe_counter_t *c, size_t n)
{
    if (call->method != CAL_SCRIBE_GET_COUNTERS || n > INT32_MAX)
        return -EINVAL;
    wr_t w;
    w_reply_begin(&w, out, call, CAL_THRIFT_REPLY);
    w_field(&w, CAL_THRIFT_MAP, 0);
    w_u8(&w, CAL_THRIFT_STRING);
    w_u8(&w, CAL_THRIFT_I64);
    w_i32(&w, (int32_t)n);
    for (size_t i = 0; i < n; i++) {
        w_str(&w, c[i].name, strlen(c[i].name));
        w_i64(&w, c[i].value);
    }
    w_u8(&w, CAL_THRIFT_STOP);
    return w_end(&w);
}

int cal_scribe_reply_options(fw_buf_t *out, const cal_scribe_call_t *call,
                             const cal_scribe_option_t *o, size_t n)
{
    if (call->method != CAL_SCRIBE_GET_OPTIONS || n > INT32_MAX)
        return -EINVAL;
    wr_t w;
    w_reply_begin(&w, out, call, CAL_THRIFT_REPLY);
    w_field(&w, CAL_THRIFT_MAP, 0);
    w_u8(&w, CAL_THRIFT_STRING);
    w_u8(&w, CAL_THRIFT_STRING);
    w_i32(&w, (int32_t)n);
    for (size_t i = 0; i < n; i++) {
        w_str(&w, o[i].key, strlen(o[i].key));
        w_str(&w, o[i].value, strlen(o[i].value));
    }
    w_u8(&w, CAL_THRIFT_STOP);
    return w_end(&w);
}

int cal_scribe_reply_void(fw_buf_t *out, const cal_scribe_call_t *call)
{
    if (call->method != CAL_SCRIBE_SET_OPTION)
        return -EINVAL;
    wr_t w;
    w_reply_begin(&w, out, call, CAL_THRIFT_REPLY);
    w_u8(&w, CAL_THRIFT_STOP);
    return w_end(&w);
}

int cal_scribe_reply_exception(fw_buf_t *out, const cal_scribe_call_t *call,
                               cal_thrift_exc_type_t type, const char *message)
{
    wr_t w;
    w_reply_begin(&w, out, call, CAL_THRIFT_EXCEPTION);
    w_field(&w, CAL_THRIFT_STRING, 1);
    w_str(&w, message, strlen(message));
    w_field(&w, CAL_THRIFT_I32, 2);
    w_i32(&w, (int32_t)type);
    w_u8(&w, CAL_THRIFT_STOP);
    return w_end(&w);
}

int cal_scribe_reply_unknown_method(fw_buf_t *out, const cal_scribe_call_t *call)
{
    /* The name is at most CAL_SCRIBE_NAME_MAX bytes, so this never cuts. */
    char msg[CAL_SCRIBE_NAME_MAX + 32];
    snprintf(msg, sizeof(msg), "Invalid method name: '%.*s'", (int)call->name.len,
             call->name.p ? call->name.p : "");
    return cal_scribe_reply_exception(out, call, CAL_THRIFT_EXC_UNKNOWN_METHOD, msg);
}

/* ---- the client's side: calls -------------------------------------------------------- */

static void w_str_field(wr_t *w, int16_t id, const cal_thrift_str_t *s)
{
    if (s->p == NULL)
        return;
    w_field(w, CAL_THRIFT_STRING, id);
    w_str(w, s->p, s->len);
}

int cal_scribe_call_encode(fw_buf_t *out, const cal_scribe_call_t *call,
                           const cal_scribe_entry_t *entries, size_t n)
{
    const char *name = call->name.p;
    size_t name_len = call->name.len;
    if (name == NULL) {
        if (call->method == CAL_SCRIBE_UNKNOWN || (unsigned)call->method >= CAL_SCRIBE_METHOD_COUNT)
            return -EINVAL;
        name = methods[call->method].name;
        name_len = strlen(name);
    }
    if (n > INT32_MAX)
        return -EINVAL;
    wr_t w;
    w_begin(&w, out, call->strict, call->type, name, name_len, call->seqid);
    switch (call->method) {
    case CAL_SCRIBE_LOG:
        w_field(&w, CAL_THRIFT_LIST, 1);
        w_u8(&w, CAL_THRIFT_STRUCT);
        w_i32(&w, (int32_t)n);
        for (size_t i = 0; i < n; i++) {
            w_str_field(&w, 1, &entries[i].category);
            w_str_field(&w, 2, &entries[i].message);
            w_u8(&w, CAL_THRIFT_STOP);
        }
        break;
    case CAL_SCRIBE_GET_COUNTER:
    case CAL_SCRIBE_GET_OPTION:
        w_str_field(&w, 1, &call->key);
        break;
    case CAL_SCRIBE_SET_OPTION:
        w_str_field(&w, 1, &call->key);
        w_str_field(&w, 2, &call->value);
        break;
    case CAL_SCRIBE_GET_CPU_PROFILE:
        w_field(&w, CAL_THRIFT_I32, 1);
        w_i32(&w, call->profile_seconds);
        break;
    default:
        break;
    }
    w_u8(&w, CAL_THRIFT_STOP);
    return w_end(&w);
}

/* ---- the client's side: replies ------------------------------------------------------ */

/* The result struct of a REPLY (depth 1): field 0 is the return value. */
static int read_result(rd_t *r, cal_scribe_reply_t *out)
{
    for (;;) {
        uint8_t type;
        int16_t id;
        int rc = next_field(r, &type, &id);
        if (rc <= 0)
            return rc;
        if (id != 0) {
            rc = skip_value(r, type, 2);
            if (rc < 0)
                return rc;
            continue;
        }
        out->value_type = type;
        const uint8_t *start = r->p;
        rc = skip_value(r, type, 2);
        if (rc < 0)
            return rc;
        /* skip_value checked the value's bytes: read them in place. */
        switch (type) {
        case CAL_THRIFT_BOOL:
        case CAL_THRIFT_BYTE:
            out->i = (int8_t)start[0];
            break;
        case CAL_THRIFT_I16:
            out->i = (int16_t)be16(start);
            break;
        case CAL_THRIFT_I32:
            out->i = (int32_t)be32(start);
            break;
        case CAL_THRIFT_I64:
            out->i = (int64_t)be64(start);
            break;
        case CAL_THRIFT_STRING:
            out->s.p = (const char *)start + 4;
            out->s.len = be32(start);
            break;
        case CAL_THRIFT_MAP:
            out->map_ktype = start[0];
            out->map_vtype = start[1];
            out->map_n = be32(start + 2);
            out->map = start + 6;
            out->map_end = r->p;
            break;
        default:
            break;
        }
    }
}

/* TApplicationException {1: string message, 2: i32 type} (depth 1). */
static int read_exception(rd_t *r, cal_scribe_reply_t *out)
{
    for (;;) {
        uint8_t type;
        int16_t id;
        int rc = next_field(r, &type, &id);
        if (rc <= 0)
            return rc;
        if (id == 1 && type == CAL_THRIFT_STRING)
            rc = rd_str(r, &out->s);
        else if (id == 2 && type == CAL_THRIFT_I32)
            rc = rd_i32(r, &out->exc_type);
        else
            rc = skip_value(r, type, 2);
        if (rc < 0)
            return rc;
    }
}

ssize_t cal_scribe_reply_decode(const uint8_t *buf, size_t len, const cal_scribe_limits_t *lim,
                                cal_scribe_reply_t *out, size_t *need)
{
    rd_t r;
    int rc = frame_open(buf, len, lim, &r, need);
    if (rc <= 0)
        return rc;
    cal_scribe_reply_t rep;
    memset(&rep, 0, sizeof(rep));
    rep.exc_type = -1;
    rc = read_header(&r, &rep.type, &rep.strict, &rep.name, &rep.seqid);
    if (rc < 0)
        return rc;
    if (rep.type == CAL_THRIFT_REPLY)
        rc = read_result(&r, &rep);
    else if (rep.type == CAL_THRIFT_EXCEPTION)
        rc = read_exception(&r, &rep);
    else
        rc = FW_ETHRIFT_BAD;
    if (rc < 0)
        return rc;
    if (r.p != r.end)
        return FW_ETHRIFT_BAD;
    *out = rep;
    return (ssize_t)*need;
}

void cal_scribe_map_begin(const cal_scribe_reply_t *r, cal_scribe_map_iter_t *it)
{
    it->p = r->map;
    it->end = r->map_end;
    it->left = r->value_type == CAL_THRIFT_MAP ? r->map_n : 0;
    it->ktype = r->map_ktype;
    it->vtype = r->map_vtype;
}

int cal_scribe_map_next(cal_scribe_map_iter_t *it, cal_thrift_str_t *key, int64_t *ival,
                        cal_thrift_str_t *sval)
{
    if (it->left == 0)
        return 0;
    if (it->ktype != CAL_THRIFT_STRING ||
        (it->vtype != CAL_THRIFT_I64 && it->vtype != CAL_THRIFT_STRING))
        return -EINVAL;
    rd_t r = {it->p, it->end, CAL_SCRIBE_DEPTH_LIMIT};
    int rc = rd_str(&r, key);
    if (rc == 0)
        rc = it->vtype == CAL_THRIFT_I64 ? rd_i64(&r, ival) : rd_str(&r, sval);
    if (rc < 0) {
        it->left = 0;
        return rc;
    }
    it->p = r.p;
    it->left--;
    return 1;
}
