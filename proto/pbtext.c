/* Text form of ZooKeeper metadata, driven by protobuf-c descriptors (see pbtext.h). */
#include "pbtext.h"
#include "hex.h"

#include "config.h"
#include "utf8.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FIELDS    64
#define MAX_TEXT      (1u << 20) /* a znode holds at most about 1 MB */
#define LINE_MAX_TEXT 4096       /* the longest line parsed, its newline included */

static void *field_ptr(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    return (char *)msg + f->offset;
}

static int field_is_set(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    if (f->label == PROTOBUF_C_LABEL_REQUIRED)
        return 1;
    if (f->type == PROTOBUF_C_TYPE_STRING)
        return *(char **)field_ptr(msg, f) != NULL &&
               *(char **)field_ptr(msg, f) != (char *)f->default_value;
    return *(protobuf_c_boolean *)((char *)msg + f->quantifier_offset);
}

static int supported(const ProtobufCFieldDescriptor *f)
{
    if (f->label == PROTOBUF_C_LABEL_REPEATED || (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
        return 0;
    switch (f->type) {
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
    case PROTOBUF_C_TYPE_BYTES:
    case PROTOBUF_C_TYPE_MESSAGE:
        return 0;
    default:
        return 1;
    }
}

static int printf_buf(fw_buf_t *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || fw_buf_reserve(out, (size_t)n + 1) < 0)
        return -ENOMEM;
    va_start(ap, fmt);
    vsnprintf((char *)out->data + out->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    out->len += (size_t)n;
    return 0;
}

/*
 * A string reads back the same as it is unless it holds a control byte,
 * begins or ends with a space, begins with a quote or is not UTF-8; such a
 * one is quoted, with C escapes for the quote, the backslash and every byte
 * outside printable ASCII.
 */
static int needs_quotes(const char *s)
{
    size_t n = strlen(s);
    if (n == 0)
        return 0;
    if (s[0] == '"' || isspace((unsigned char)s[0]) || isspace((unsigned char)s[n - 1]) ||
        !fw_utf8_valid(s, n))
        return 1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 1;
    return 0;
}

static int format_string(fw_buf_t *out, const char *name, const char *s)
{
    if (!needs_quotes(s))
        return printf_buf(out, "%s = %s\n", name, s);
    size_t start = out->len;
    int rc = printf_buf(out, "%s = \"", name);
    for (const unsigned char *c = (const unsigned char *)s; rc == 0 && *c; c++) {
        if (*c == '"' || *c == '\\')
            rc = printf_buf(out, "\\%c", *c);
        else if (*c == '\t')
            rc = printf_buf(out, "\\t");
        else if (*c == '\n')
            rc = printf_buf(out, "\\n");
        else if (*c == '\r')
            rc = printf_buf(out, "\\r");
        else if (*c < 0x20 || *c >= 0x7f)
            rc = printf_buf(out, "\\x%02x", *c);
        else
            rc = printf_buf(out, "%c", *c);
    }
    if (rc == 0)
        rc = printf_buf(out, "\"\n");
    /* What is written must parse back: within the line limit. */
    if (rc == 0 && out->len - start > LINE_MAX_TEXT) {
        out->len = start;
        out->data[start] = '\0';
        rc = -EINVAL;
    }
    return rc;
}

/* A quoted value ("..." with the escapes format_string writes) into a new string. */
static int unquote(const char *value, char **out)
{
    size_t n = strlen(value);
    if (n < 2 || value[n - 1] != '"')
        return -EINVAL;
    char *s = malloc(n), *w = s;
    if (s == NULL)
        return -ENOMEM;
    for (size_t i = 1; i < n - 1; i++) {
        unsigned char c = (unsigned char)value[i];
        if (c == '"' || c < 0x20 || c == 0x7f)
            goto bad;
        if (c != '\\') {
            *w++ = (char)c;
            continue;
        }
        if (++i >= n - 1)
            goto bad;
        switch (value[i]) {
        case '"':
        case '\\':
            *w++ = value[i];
            break;
        case 't':
            *w++ = '\t';
            break;
        case 'n':
            *w++ = '\n';
            break;
        case 'r':
            *w++ = '\r';
            break;
        case 'x': {
            int hi = i + 2 < n - 1 ? fw_hex_digit(value[i + 1]) : -1;
            int lo = hi >= 0 ? fw_hex_digit(value[i + 2]) : -1;
            if (lo < 0 || (hi == 0 && lo == 0))
                goto bad;
            *w++ = (char)(hi * 16 + lo);
            i += 2;
            break;
        }
        default:
            goto bad;
        }
    }
    *w = '\0';
    *out = s;
    return 0;
bad:
    free(s);
    return -EINVAL;
}

int fw_pbtext_format(const ProtobufCMessage *msg, fw_buf_t *out)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    if (fw_buf_reserve(out, 1) < 0)
        return -ENOMEM;
    out->data[out->len] = '\0';
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (!supported(f))
            return -EINVAL;
        if (!field_is_set(msg, f))
            continue;
        void *p = field_ptr(msg, f);
        int rc;
        switch (f->type) {
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_SINT32:
        case PROTOBUF_C_TYPE_SFIXED32:
            rc = printf_buf(out, "%s = %" PRId32 "\n", f->name, *(int32_t *)p);
            break;
        case PROTOBUF_C_TYPE_UINT32:
        case PROTOBUF_C_TYPE_FIXED32:
            rc = printf_buf(out, "%s = %" PRIu32 "\n", f->name, *(uint32_t *)p);
            break;
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_SINT64:
        case PROTOBUF_C_TYPE_SFIXED64:
            rc = printf_buf(out, "%s = %" PRId64 "\n", f->name, *(int64_t *)p);
            break;
        case PROTOBUF_C_TYPE_UINT64:
        case PROTOBUF_C_TYPE_FIXED64:
            rc = printf_buf(out, "%s = %" PRIu64 "\n", f->name, *(uint64_t *)p);
            break;
        case PROTOBUF_C_TYPE_BOOL:
            rc = printf_buf(out, "%s = %s\n", f->name, *(protobuf_c_boolean *)p ? "true" : "false");
            break;
        case PROTOBUF_C_TYPE_ENUM: {
            const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
                (const ProtobufCEnumDescriptor *)f->descriptor, *(int *)p);
            if (v == NULL)
                return -EINVAL;
            rc = printf_buf(out, "%s = %s\n", f->name, v->name);
            break;
        }
        case PROTOBUF_C_TYPE_STRING:
            rc = format_string(out, f->name, *(char **)p);
            break;
        default:
            return -EINVAL;
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int fail(char *err, size_t errlen, int line, const char *fmt, ...)
{
    int n = line > 0 ? snprintf(err, errlen, "line %d: ", line) : 0;
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < errlen)
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* At most 20 digits: metadata numbers are not zero-padded past uint64's width. */
static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    return strlen(s) > 20 ? -EINVAL : fw_parse_u64(s, max, out);
}

static int parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    return strlen(s + (*s == '-')) > 20 ? -EINVAL : fw_parse_i64(s, min, max, out);
}

static int set_field(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f, const char *value)
{
    void *p = field_ptr(msg, f);
    uint64_t u;
    int64_t i;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        if (parse_i64(value, INT32_MIN, INT32_MAX, &i) < 0)
            return -EINVAL;
        *(int32_t *)p = (int32_t)i;
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if (parse_u64(value, UINT32_MAX, &u) < 0)
            return -EINVAL;
        *(uint32_t *)p = (uint32_t)u;
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if (parse_i64(value, INT64_MIN, INT64_MAX, &i) < 0)
            return -EINVAL;
        *(int64_t *)p = i;
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if (parse_u64(value, UINT64_MAX, &u) < 0)
            return -EINVAL;
        *(uint64_t *)p = u;
        break;
    case PROTOBUF_C_TYPE_BOOL:
        if (strcmp(value, "true") == 0)
            *(protobuf_c_boolean *)p = 1;
        else if (strcmp(value, "false") == 0)
            *(protobuf_c_boolean *)p = 0;
        else
            return -EINVAL;
        break;
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value_by_name(
            (const ProtobufCEnumDescriptor *)f->descriptor, value);
        if (v == NULL)
            return -EINVAL;
        *(int *)p = v->value;
        break;
    }
    case PROTOBUF_C_TYPE_STRING: {
        char *copy;
        if (value[0] == '"') {
            int rc = unquote(value, &copy);
            if (rc < 0)
                return rc;
        } else if ((copy = strdup(value)) == NULL) {
            return -ENOMEM;
        }
        *(char **)p = copy;
        break;
    }
    default:
        return -EINVAL;
    }
    if (f->label != PROTOBUF_C_LABEL_REQUIRED && f->type != PROTOBUF_C_TYPE_STRING)
        *(protobuf_c_boolean *)((char *)msg + f->quantifier_offset) = 1;
    return 0;
}

int fw_pbtext_parse(const ProtobufCMessageDescriptor *desc, const char *text, size_t len,
                    ProtobufCMessage **out, char *err, size_t errlen)
{
    *out = NULL;
    if (desc->n_fields > MAX_FIELDS)
        return fail(err, errlen, 0, "message %s has too many fields", desc->name);
    if (len > MAX_TEXT)
        return fail(err, errlen, 0, "text of %zu bytes is too long", len);
    ProtobufCMessage *msg = malloc(desc->sizeof_message);
    if (msg == NULL)
        return -ENOMEM;
    protobuf_c_message_init(desc, msg);
    char seen[MAX_FIELDS] = {0};
    char line[LINE_MAX_TEXT];
    int lineno = 0, rc = 0;
    size_t pos = 0;
    while (rc == 0 && pos < len) {
        lineno++;
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
        if (n >= sizeof(line)) {
            rc = fail(err, errlen, lineno, "line too long");
            break;
        }
        memcpy(line, text + pos, n);
        line[n] = '\0';
        pos += n + (nl ? 1 : 0);
        if (memchr(line, '\0', n) != NULL || strchr(line, '\r') != NULL) {
            rc = fail(err, errlen, lineno, "control character in line");
            break;
        }
        char *p, *value;
        int kind = fw_config_split_line(line, &p, &value);
        if (kind == 0)
            continue;
        if (kind < 0) {
            rc = fail(err, errlen, lineno, "expected `name = value`");
            break;
        }
        /* What parses must format back within the line limit ("name = value"). */
        if (strlen(p) + 3 + strlen(value) >= sizeof(line)) {
            rc = fail(err, errlen, lineno, "value too long");
            break;
        }
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field_by_name(desc, p);
        if (f == NULL || !supported(f)) {
            rc = fail(err, errlen, lineno, "unknown field \"%s\" for %s", p, desc->short_name);
            break;
        }
        size_t idx = (size_t)(f - desc->fields);
        if (seen[idx]) {
            rc = fail(err, errlen, lineno, "field \"%s\" given twice", f->name);
            break;
        }
        seen[idx] = 1;
        rc = set_field(msg, f, value);
        if (rc == -EINVAL)
            fail(err, errlen, lineno, "bad value \"%s\" for field \"%s\"", value, f->name);
    }
    for (unsigned i = 0; rc == 0 && i < desc->n_fields; i++) {
        if (desc->fields[i].label == PROTOBUF_C_LABEL_REQUIRED && !seen[i])
            rc = fail(err, errlen, 0, "required field \"%s\" is missing", desc->fields[i].name);
    }
    if (rc < 0) {
        protobuf_c_message_free_unpacked(msg, NULL);
        return rc;
    }
    *out = msg;
    return 0;
}
