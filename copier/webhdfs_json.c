/*
 * The JSON reader for WebHDFS answers (see webhdfs_json.h). One recursive
 * descent checks the whole document and notes the value at the path asked
 * for; values are decoded only when read. Nothing is allocated.
 */
#include "webhdfs_json.h"
#include "hex.h"

#include <errno.h>
#include <string.h>

/* The path marker of a value that is not on the path asked for. */
#define OFF_PATH ((size_t)-1)

typedef struct parser_s {
    const char *p;
    const char *end;
    const char *const *path;
    size_t npath;
    int found;
    cp_wh_json_val_t val;
} parser_t;

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static void skip_ws(parser_t *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

/* A string at j->p (its opening quote); leaves j->p after the closing quote. */
static int scan_string(parser_t *j)
{
    if (j->p >= j->end || *j->p != '"')
        return -EINVAL;
    j->p++;
    while (j->p < j->end) {
        unsigned char c = (unsigned char)*j->p++;
        if (c == '"')
            return 0;
        if (c < 0x20)
            return -EINVAL;
        if (c != '\\')
            continue;
        if (j->p >= j->end)
            return -EINVAL;
        switch (*j->p++) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            break;
        case 'u':
            for (int i = 0; i < 4; i++) {
                if (j->p >= j->end || fw_hex_digit((unsigned char)*j->p) < 0)
                    return -EINVAL;
                j->p++;
            }
            break;
        default:
            return -EINVAL;
        }
    }
    return -EINVAL;
}

static int scan_digits(parser_t *j)
{
    if (j->p >= j->end || !is_digit(*j->p))
        return -EINVAL;
    while (j->p < j->end && is_digit(*j->p))
        j->p++;
    return 0;
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int scan_number(parser_t *j)
{
    if (j->p < j->end && *j->p == '-')
        j->p++;
    if (j->p < j->end && *j->p == '0')
        j->p++;
    else if (scan_digits(j) < 0)
        return -EINVAL;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (scan_digits(j) < 0)
            return -EINVAL;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (scan_digits(j) < 0)
            return -EINVAL;
    }
    return 0;
}

static int scan_literal(parser_t *j, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
        return -EINVAL;
    j->p += n;
    return 0;
}

static size_t put_utf8(char *out, unsigned cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The 4 hex digits at p (checked by scan_string). */
static unsigned hex4(const char *p)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++)
        v = v << 4 | (unsigned)fw_hex_digit((unsigned char)p[i]);
    return v;
}

/* Drops a multi-byte UTF-8 sequence left incomplete at the end of out[0..n). */
static size_t utf8_trim(const char *out, size_t n)
{
    size_t i = n;
    while (i > 0 && ((unsigned char)out[i - 1] & 0xC0) == 0x80)
        i--;
    if (i == 0)
        return n;
    unsigned char lead = (unsigned char)out[i - 1];
    size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (want > 1 && n - (i - 1) < want)
        return i - 1;
    return n;
}

/*
 * Decodes the string s[0..len) (with its quotes, already checked by
 * scan_string) into out[0..cap) with a NUL. 0; -ENOSPC if cut; -EINVAL if it
 * holds a NUL character, which a C string cannot carry.
 */
static int decode_string(const char *s, size_t len, char *out, size_t cap)
{
    if (cap == 0)
        return -ENOSPC;
    const char *p = s + 1, *end = s + len - 1;
    size_t n = 0;
    while (p < end) {
        char unit[4];
        size_t ulen;
        if (*p != '\\') {
            unit[0] = *p++;
            ulen = 1;
        } else {
            p++;
            char e = *p++;
            switch (e) {
            case 'b':
                unit[0] = '\b';
                ulen = 1;
                break;
            case 'f':
                unit[0] = '\f';
                ulen = 1;
                break;
            case 'n':
                unit[0] = '\n';
                ulen = 1;
                break;
            case 'r':
                unit[0] = '\r';
                ulen = 1;
                break;
            case 't':
                unit[0] = '\t';
                ulen = 1;
                break;
            case 'u': {
                unsigned cp = hex4(p);
                p += 4;
                if (cp >= 0xD800 && cp <= 0xDBFF && end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
                    unsigned lo = hex4(p + 2);
                    if (lo >= 0xDC00 && lo <= 0xDFFF) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        p += 6;
                    }
                }
                if (cp >= 0xD800 && cp <= 0xDFFF)
                    cp = 0xFFFD; /* a lone surrogate */
                if (cp == 0) {
                    out[n] = '\0';
                    return -EINVAL;
                }
                ulen = put_utf8(unit, cp);
                break;
            }
            default: /* '"', '\\', '/' */
                unit[0] = e;
                ulen = 1;
                break;
            }
        }
        if (n + ulen >= cap) {
            n = utf8_trim(out, n);
            out[n] = '\0';
            return -ENOSPC;
        }
        memcpy(out + n, unit, ulen);
        n += ulen;
    }
    out[n] = '\0';
    return 0;
}

/* Whether the key s[0..len) (with quotes) decodes to want. */
static int key_is(const char *s, size_t len, const char *want)
{
    char buf[64];
    if (decode_string(s, len, buf, sizeof(buf)) < 0)
        return 0; /* longer than any key we look for, or holds a NUL */
    return strcmp(buf, want) == 0;
}

static int parse_value(parser_t *j, int depth, size_t m);

static int parse_object(parser_t *j, int depth, size_t m)
{
    j->p++; /* '{' */
    skip_ws(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
        return 0;
    }
    for (;;) {
        skip_ws(j);
        const char *key = j->p;
        int rc = scan_string(j);
        if (rc < 0)
            return rc;
        size_t child = OFF_PATH;
        if (m != OFF_PATH && m < j->npath && key_is(key, (size_t)(j->p - key), j->path[m]))
            child = m + 1;
        skip_ws(j);
        if (j->p >= j->end || *j->p != ':')
            return -EINVAL;
        j->p++;
        if ((rc = parse_value(j, depth + 1, child)) < 0)
            return rc;
        skip_ws(j);
        if (j->p >= j->end)
            return -EINVAL;
        if (*j->p == '}') {
            j->p++;
            return 0;
        }
        if (*j->p != ',')
            return -EINVAL;
        j->p++;
    }
}

static int parse_array(parser_t *j, int depth)
{
    j->p++; /* '[' */
    skip_ws(j);
    if (j->p < j->end && *j->p == ']') {
        j->p++;
        return 0;
    }
    for (;;) {
        int rc = parse_value(j, depth + 1, OFF_PATH);
        if (rc < 0)
            return rc;
        skip_ws(j);
        if (j->p >= j->end)
            return -EINVAL;
        if (*j->p == ']') {
            j->p++;
            return 0;
        }
        if (*j->p != ',')
            return -EINVAL;
        j->p++;
    }
}

/* m: how many keys of the path lead here, or OFF_PATH. */
static int parse_value(parser_t *j, int depth, size_t m)
{
    if (depth > CP_WH_JSON_DEPTH)
        return -EINVAL;
    skip_ws(j);
    if (j->p >= j->end)
        return -EINVAL;
    const char *start = j->p;
    cp_wh_json_type_t type;
    int rc;
    switch (*j->p) {
    case '{':
        type = CP_WH_JSON_OBJECT;
        rc = parse_object(j, depth, m);
        break;
    case '[':
        type = CP_WH_JSON_ARRAY;
        rc = parse_array(j, depth);
        break;
    case '"':
        type = CP_WH_JSON_STRING;
        rc = scan_string(j);
        break;
    case 't':
        type = CP_WH_JSON_TRUE;
        rc = scan_literal(j, "true");
        break;
    case 'f':
        type = CP_WH_JSON_FALSE;
        rc = scan_literal(j, "false");
        break;
    case 'n':
        type = CP_WH_JSON_NULL;
        rc = scan_literal(j, "null");
        break;
    default:
        type = CP_WH_JSON_NUMBER;
        rc = scan_number(j);
        break;
    }
    if (rc < 0)
        return rc;
    if (m == j->npath && !j->found) {
        j->found = 1;
        j->val.type = type;
        j->val.p = start;
        j->val.len = (size_t)(j->p - start);
    }
    return 0;
}

int cp_wh_json_find(const char *doc, size_t len, const char *const *path, size_t npath,
                    cp_wh_json_val_t *out)
{
    if (doc == NULL)
        return -EINVAL;
    parser_t j = {.p = doc, .end = doc + len, .path = path, .npath = npath};
    int rc = parse_value(&j, 0, 0);
    if (rc < 0)
        return rc;
    skip_ws(&j);
    if (j.p != j.end)
        return -EINVAL; /* something after the document */
    if (!j.found)
        return -ENOENT;
    *out = j.val;
    return 0;
}

int cp_wh_json_bool(const cp_wh_json_val_t *v, int *out)
{
    if (v->type != CP_WH_JSON_TRUE && v->type != CP_WH_JSON_FALSE)
        return -EINVAL;
    *out = v->type == CP_WH_JSON_TRUE;
    return 0;
}

int cp_wh_json_u64(const cp_wh_json_val_t *v, uint64_t *out)
{
    if (v->type != CP_WH_JSON_NUMBER || v->len == 0)
        return -EINVAL;
    uint64_t n = 0;
    for (size_t i = 0; i < v->len; i++) {
        if (!is_digit(v->p[i]))
            return -EINVAL; /* a sign, fraction or exponent */
        unsigned d = (unsigned)(v->p[i] - '0');
        if (n > (UINT64_MAX - d) / 10)
            return -ERANGE;
        n = n * 10 + d;
    }
    *out = n;
    return 0;
}

int cp_wh_json_str(const cp_wh_json_val_t *v, char *out, size_t cap)
{
    if (v->type != CP_WH_JSON_STRING) {
        if (cap > 0)
            out[0] = '\0';
        return -EINVAL;
    }
    return decode_string(v->p, v->len, out, cap);
}

int cp_wh_json_get_bool(const char *doc, size_t len, const char *const *path, size_t npath,
                        int *out)
{
    cp_wh_json_val_t v;
    int rc = cp_wh_json_find(doc, len, path, npath, &v);
    return rc < 0 ? rc : cp_wh_json_bool(&v, out);
}

int cp_wh_json_get_u64(const char *doc, size_t len, const char *const *path, size_t npath,
                       uint64_t *out)
{
    cp_wh_json_val_t v;
    int rc = cp_wh_json_find(doc, len, path, npath, &v);
    return rc < 0 ? rc : cp_wh_json_u64(&v, out);
}

int cp_wh_json_get_str(const char *doc, size_t len, const char *const *path, size_t npath,
                       char *out, size_t cap)
{
    cp_wh_json_val_t v;
    int rc = cp_wh_json_find(doc, len, path, npath, &v);
    if (rc < 0) {
        if (cap > 0)
            out[0] = '\0';
        return rc;
    }
    return cp_wh_json_str(&v, out, cap);
}

/* One field of the exception object; a cut value is kept, anything else is "". */
static void exc_field(const cp_wh_json_val_t *obj, const char *key, char *out, size_t cap)
{
    const char *path[] = {key};
    int rc = cp_wh_json_get_str(obj->p, obj->len, path, 1, out, cap);
    if (rc < 0 && rc != -ENOSPC)
        out[0] = '\0';
}

int cp_wh_json_remote_exception(const char *doc, size_t len, cp_wh_remote_exc_t *out)
{
    static const char *const path[] = {"RemoteException"};
    memset(out, 0, sizeof(*out));
    cp_wh_json_val_t obj;
    int rc = cp_wh_json_find(doc, len, path, 1, &obj);
    if (rc < 0)
        return rc;
    if (obj.type != CP_WH_JSON_OBJECT)
        return -ENOENT;
    /* The object is a valid document of its own: look inside it alone. */
    exc_field(&obj, "exception", out->exception, sizeof(out->exception));
    exc_field(&obj, "javaClassName", out->java_class, sizeof(out->java_class));
    exc_field(&obj, "message", out->message, sizeof(out->message));
    return out->exception[0] != '\0' || out->message[0] != '\0' ? 0 : -ENOENT;
}
