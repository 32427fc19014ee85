/* Text form of ZooKeeper metadata, driven by protobuf-c descriptors (see pbtext.h). */
#include "pbtext.h"

#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FIELDS 64
#define MAX_TEXT   (1u << 20) /* a znode holds at most about 1 MB */

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
        case PROTOBUF_C_TYPE_STRING: {
            const char *s = *(char **)p;
            /* A value is one line: refuse what would not read back the same. */
            for (const char *c = s; *c; c++)
                if ((unsigned char)*c < 0x20 || *c == 0x7f)
                    return -EINVAL;
            if (*s != '\0' &&
                (isspace((unsigned char)s[0]) || isspace((unsigned char)s[strlen(s) - 1])))
                return -EINVAL;
            rc = printf_buf(out, "%s = %s\n", f->name, s);
            break;
        }
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
        char *copy = strdup(value);
        if (copy == NULL)
            return -ENOMEM;
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
    char line[4096];
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
