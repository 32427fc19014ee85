/* Checkpoint tokens: binary and base64url forms (layout in checkpoint.h). */
#include "checkpoint.h"

#include "bytes.h"
#include "crc32c.h"
#include "error.h"
#include "segment.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A position inside a segment is never below the category's segment header. */
static int position_valid(const fw_position_t *p, size_t cat_len)
{
    if (p->bucket >= FW_BUCKETS_MAX)
        return 0;
    if (p->segment_id == 0)
        return p->offset == 0 && p->record_index == 0;
    return p->offset >= fw_seg_first_block(cat_len);
}

int fw_checkpoint_encode(const fw_checkpoint_t *cp, fw_buf_t *out)
{
    if (!fw_category_valid(cp->category) || cp->count == 0 || cp->count > FW_BUCKETS_MAX)
        return -EINVAL;
    size_t cat_len = strlen(cp->category);
    size_t max = 3 + 1 + cat_len + FW_VARINT_MAX + (size_t)cp->count * 4 * FW_VARINT_MAX + 4;
    int rc = fw_buf_reserve(out, max);
    if (rc < 0)
        return rc;
    uint8_t *start = out->data + out->len, *p = start;
    *p++ = 'F';
    *p++ = 'C';
    *p++ = FW_TOKEN_VERSION;
    *p++ = (uint8_t)cat_len;
    memcpy(p, cp->category, cat_len);
    p += cat_len;
    p += fw_varint_put(p, cp->count);
    for (uint32_t i = 0; i < cp->count; i++) {
        const fw_position_t *pos = &cp->positions[i];
        if (!position_valid(pos, cat_len) || (i > 0 && pos->bucket <= cp->positions[i - 1].bucket))
            return -EINVAL;
        p += fw_varint_put(p, i == 0 ? pos->bucket : pos->bucket - cp->positions[i - 1].bucket);
        p += fw_varint_put(p, pos->segment_id);
        p += fw_varint_put(p, pos->offset);
        p += fw_varint_put(p, pos->record_index);
    }
    fw_store_u32(p, fw_crc32c(0, start, (size_t)(p - start)));
    p += 4;
    out->len += (size_t)(p - start);
    return 0;
}

/* Reads one varint no larger than max; 0 on any violation. */
static int get_bounded(const uint8_t **p, const uint8_t *end, uint64_t max, uint64_t *v)
{
    size_t n = fw_varint_get(*p, (size_t)(end - *p), v);
    if (n == 0 || *v > max)
        return 0;
    *p += n;
    return 1;
}

int fw_checkpoint_decode(const uint8_t *buf, size_t len, fw_checkpoint_t *cp)
{
    memset(cp, 0, sizeof(*cp));
    if (len < 3 + 1 + 1 + 1 + 4 || buf[0] != 'F' || buf[1] != 'C')
        return FW_ETOKEN_BAD;
    if (buf[2] != FW_TOKEN_VERSION)
        return FW_ETOKEN_VERSION;
    if (fw_load_u32(buf + len - 4) != fw_crc32c(0, buf, len - 4))
        return FW_ETOKEN_CRC;
    const uint8_t *p = buf + 3, *end = buf + len - 4;
    size_t cat_len = *p++;
    if (cat_len == 0 || cat_len > FW_CATEGORY_MAX || cat_len > (size_t)(end - p))
        return FW_ETOKEN_BAD;
    memcpy(cp->category, p, cat_len);
    cp->category[cat_len] = '\0';
    p += cat_len;
    /* strlen catches a NUL inside the name, which the validator would not see. */
    if (strlen(cp->category) != cat_len || !fw_category_valid(cp->category))
        return FW_ETOKEN_BAD;
    uint64_t count;
    /* Each position takes at least four bytes: bound the allocation by the input. */
    if (!get_bounded(&p, end, FW_BUCKETS_MAX, &count) || count == 0 ||
        count > (uint64_t)(end - p) / 4)
        return FW_ETOKEN_BAD;
    cp->positions = calloc((size_t)count, sizeof(*cp->positions));
    if (cp->positions == NULL)
        return -ENOMEM;
    cp->count = (uint32_t)count;
    for (uint32_t i = 0; i < cp->count; i++) {
        fw_position_t *pos = &cp->positions[i];
        uint64_t bucket, seg, off, idx;
        if (!get_bounded(&p, end, FW_BUCKETS_MAX - 1, &bucket) ||
            !get_bounded(&p, end, UINT64_MAX, &seg) || !get_bounded(&p, end, INT64_MAX, &off) ||
            !get_bounded(&p, end, UINT32_MAX, &idx))
            goto bad;
        if (i > 0) {
            if (bucket == 0)
                goto bad;
            bucket += cp->positions[i - 1].bucket;
        }
        pos->bucket = (uint32_t)bucket;
        pos->segment_id = seg;
        pos->offset = off;
        pos->record_index = (uint32_t)idx;
        if (!position_valid(pos, cat_len))
            goto bad;
    }
    if (p != end)
        goto bad;
    return 0;
bad:
    fw_checkpoint_free(cp);
    return FW_ETOKEN_BAD;
}

void fw_checkpoint_free(fw_checkpoint_t *cp)
{
    free(cp->positions);
    cp->positions = NULL;
    cp->count = 0;
}

const fw_position_t *fw_checkpoint_find(const fw_checkpoint_t *cp, uint32_t bucket)
{
    size_t lo = 0, hi = cp->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp->positions[mid].bucket < bucket)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < cp->count && cp->positions[lo].bucket == bucket)
        return &cp->positions[lo];
    return NULL;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int fw_base64url_encode(const uint8_t *in, size_t len, fw_buf_t *out)
{
    int rc = fw_buf_reserve(out, (len + 2) / 3 * 4 + 1);
    if (rc < 0)
        return rc;
    char *o = (char *)out->data + out->len;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *o++ = b64[v >> 18];
        *o++ = b64[(v >> 12) & 63];
        *o++ = b64[(v >> 6) & 63];
        *o++ = b64[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *o++ = b64[v >> 18];
        *o++ = b64[(v >> 12) & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *o++ = b64[v >> 18];
        *o++ = b64[(v >> 12) & 63];
        *o++ = b64[(v >> 6) & 63];
    }
    *o = '\0';
    out->len = (size_t)((uint8_t *)o - out->data);
    return 0;
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

int fw_base64url_decode(const char *in, size_t len, fw_buf_t *out)
{
    if (len % 4 == 1)
        return -EINVAL;
    int rc = fw_buf_reserve(out, len / 4 * 3 + 2);
    if (rc < 0)
        return rc;
    uint8_t *o = out->data + out->len;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value(in[i]);
        if (v < 0)
            return -EINVAL;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            *o++ = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* Leftover bits must be zero, so that one byte string has one text form. */
    if (acc != 0)
        return -EINVAL;
    out->len = (size_t)(o - out->data);
    return 0;
}

int fw_checkpoint_to_text(const fw_checkpoint_t *cp, fw_buf_t *out)
{
    fw_buf_t bin = FW_BUF_INIT;
    int rc = fw_checkpoint_encode(cp, &bin);
    if (rc == 0)
        rc = fw_base64url_encode(bin.data, bin.len, out);
    fw_buf_free(&bin);
    return rc;
}

int fw_checkpoint_from_text(const char *text, size_t len, fw_checkpoint_t *cp)
{
    fw_buf_t bin = FW_BUF_INIT;
    memset(cp, 0, sizeof(*cp));
    int rc = fw_base64url_decode(text, len, &bin);
    if (rc == -EINVAL)
        rc = FW_ETOKEN_BAD;
    if (rc == 0)
        rc = fw_checkpoint_decode(bin.data, bin.len, cp);
    fw_buf_free(&bin);
    return rc;
}
