/* Block encode, verify and decode (layout in block.h). */
#include "block.h"

#include "bytes.h"
#include "crc32c.h"
#include "error.h"

#include <errno.h>
#include <lz4.h>
#include <string.h>

static const uint8_t block_magic[4] = {'F', 'W', 'B', 'K'};

#define OFF_HEADER_CRC 60

static uint64_t zigzag_encode(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static int64_t zigzag_decode(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

static void header_put(uint8_t *p, const fw_block_header_t *h)
{
    memcpy(p, block_magic, 4);
    p[4] = FW_BLOCK_VERSION;
    p[5] = h->codec;
    fw_store_u16(p + 6, h->flags);
    fw_store_u32(p + 8, h->stored_len);
    fw_store_u32(p + 12, h->raw_len);
    fw_store_u32(p + 16, h->record_count);
    fw_store_u32(p + 20, h->payload_crc);
    fw_store_u64(p + 24, h->producer_id);
    fw_store_u64(p + 32, h->sequence);
    fw_store_u64(p + 40, (uint64_t)h->base_ts);
    fw_store_u64(p + 48, (uint64_t)h->max_ts);
    fw_store_u32(p + 56, 0);
    fw_store_u32(p + OFF_HEADER_CRC, fw_crc32c(0, p, OFF_HEADER_CRC));
}

int fw_block_magic_prefix(const uint8_t *buf, size_t len)
{
    return memcmp(buf, block_magic, len < 4 ? len : 4) == 0;
}

int fw_block_header_parse(const uint8_t *buf, size_t len, fw_block_header_t *h)
{
    if (len < FW_BLOCK_HEADER_SIZE)
        return -EAGAIN;
    if (memcmp(buf, block_magic, 4) != 0 || buf[4] != FW_BLOCK_VERSION)
        return FW_EBLOCK_HEADER;
    if (fw_load_u32(buf + OFF_HEADER_CRC) != fw_crc32c(0, buf, OFF_HEADER_CRC))
        return FW_EBLOCK_HEADER;
    h->codec = buf[5];
    h->flags = fw_load_u16(buf + 6);
    h->stored_len = fw_load_u32(buf + 8);
    h->raw_len = fw_load_u32(buf + 12);
    h->record_count = fw_load_u32(buf + 16);
    h->payload_crc = fw_load_u32(buf + 20);
    h->producer_id = fw_load_u64(buf + 24);
    h->sequence = fw_load_u64(buf + 32);
    h->base_ts = (int64_t)fw_load_u64(buf + 40);
    h->max_ts = (int64_t)fw_load_u64(buf + 48);
    if (fw_load_u32(buf + 56) != 0 || (h->flags & ~FW_BLOCK_FLAG_SEAL) != 0)
        return FW_EBLOCK_HEADER;
    if (h->stored_len > FW_BLOCK_MAX_PAYLOAD || h->raw_len > FW_BLOCK_MAX_PAYLOAD)
        return FW_EBLOCK_TOO_LARGE;
    if (h->max_ts < h->base_ts)
        return FW_EBLOCK_HEADER;
    switch (h->codec) {
    case FW_CODEC_NONE:
        if (h->stored_len != h->raw_len)
            return FW_EBLOCK_HEADER;
        break;
    case FW_CODEC_LZ4:
        /* The encoder stores lz4 only when it is smaller; lz4 expands by at most ~255x. */
        if (h->stored_len == 0 || h->stored_len >= h->raw_len || h->raw_len / 255 > h->stored_len)
            return FW_EBLOCK_HEADER;
        break;
    default:
        return FW_EBLOCK_HEADER;
    }
    if (fw_block_is_seal(h)) {
        if (h->codec != FW_CODEC_NONE || h->record_count != 0 ||
            h->stored_len != FW_SEAL_PAYLOAD_SIZE || h->producer_id != 0 || h->sequence != 0)
            return FW_EBLOCK_HEADER;
    } else {
        /* Every record takes at least three bytes (three one-byte varints). */
        if (h->record_count == 0 || h->record_count > h->raw_len / 3)
            return FW_EBLOCK_HEADER;
    }
    return 0;
}

int fw_block_verify(const uint8_t *buf, size_t len, fw_block_header_t *h)
{
    int rc = fw_block_header_parse(buf, len, h);
    if (rc < 0)
        return rc;
    if (len < fw_block_size(h))
        return -EAGAIN;
    if (fw_crc32c(0, buf + FW_BLOCK_HEADER_SIZE, h->stored_len) != h->payload_crc)
        return FW_EBLOCK_CRC;
    return 0;
}

/* Parses one record at it->p, checking it against the payload's bounds. */
static int record_parse(fw_record_iter_t *it, int64_t max_ts, uint32_t max_record, fw_record_t *rec)
{
    const uint8_t *p = it->p;
    size_t left = (size_t)(it->end - p);
    uint64_t v;
    size_t n;

    if ((n = fw_varint_get(p, left, &v)) == 0)
        return FW_EBLOCK_CORRUPT;
    p += n, left -= n;
    int64_t ts;
    if (__builtin_add_overflow(it->prev_ts, zigzag_decode(v), &ts) || ts > max_ts)
        return FW_EBLOCK_CORRUPT;

    if ((n = fw_varint_get(p, left, &v)) == 0)
        return FW_EBLOCK_CORRUPT;
    p += n, left -= n;
    rec->has_key = v != 0;
    uint64_t key_len = v ? v - 1 : 0;
    if (key_len > left)
        return FW_EBLOCK_CORRUPT;
    rec->key = p;
    p += key_len, left -= key_len;

    if ((n = fw_varint_get(p, left, &v)) == 0)
        return FW_EBLOCK_CORRUPT;
    p += n, left -= n;
    if (v > left)
        return FW_EBLOCK_CORRUPT;
    if (key_len + v > max_record)
        return FW_ERECORD_TOO_LARGE;
    rec->value = p;
    p += v;

    rec->timestamp = ts;
    rec->key_len = (uint32_t)key_len;
    rec->value_len = (uint32_t)v;
    it->prev_ts = ts;
    it->p = p;
    return 0;
}

int fw_block_decode(const uint8_t *buf, size_t len, uint32_t max_record, fw_buf_t *scratch,
                    fw_block_header_t *h, fw_record_iter_t *it)
{
    int rc = fw_block_verify(buf, len, h);
    if (rc < 0)
        return rc;
    if (fw_block_is_seal(h))
        return -EINVAL;
    if (max_record == 0 || max_record > FW_RECORD_MAX_HARD)
        max_record = FW_RECORD_MAX_HARD;

    const uint8_t *raw = buf + FW_BLOCK_HEADER_SIZE;
    if (h->codec == FW_CODEC_LZ4) {
        fw_buf_reset(scratch);
        if ((rc = fw_buf_reserve(scratch, h->raw_len)) < 0)
            return rc;
        int got = LZ4_decompress_safe((const char *)raw, (char *)scratch->data, (int)h->stored_len,
                                      (int)h->raw_len);
        if (got < 0 || (uint32_t)got != h->raw_len)
            return FW_EBLOCK_CORRUPT;
        scratch->len = h->raw_len;
        raw = scratch->data;
    }

    /* Check every record first, so the caller never sees part of a bad block. */
    fw_record_iter_t check = {raw, raw + h->raw_len, h->base_ts, h->record_count};
    fw_record_t rec;
    for (uint32_t i = 0; i < h->record_count; i++) {
        if ((rc = record_parse(&check, h->max_ts, max_record, &rec)) < 0)
            return rc;
        if (i == 0 && rec.timestamp != h->base_ts)
            return FW_EBLOCK_CORRUPT;
    }
    if (check.p != check.end)
        return FW_EBLOCK_CORRUPT;

    it->p = raw;
    it->end = raw + h->raw_len;
    it->prev_ts = h->base_ts;
    it->remaining = h->record_count;
    return 0;
}

int fw_record_next(fw_record_iter_t *it, fw_record_t *rec)
{
    if (it->remaining == 0)
        return 0;
    /* Already validated by fw_block_decode; bounds are checked again anyway. */
    if (record_parse(it, INT64_MAX, FW_RECORD_MAX_HARD, rec) < 0) {
        it->remaining = 0;
        return 0;
    }
    it->remaining--;
    return 1;
}

int fw_block_set_origin(uint8_t *block, size_t len, uint64_t producer_id, uint64_t seq)
{
    fw_block_header_t h;
    int rc = fw_block_header_parse(block, len, &h);
    if (rc < 0)
        return rc;
    if (fw_block_is_seal(&h))
        return -EINVAL;
    fw_store_u64(block + 24, producer_id);
    fw_store_u64(block + 32, seq);
    fw_store_u32(block + OFF_HEADER_CRC, fw_crc32c(0, block, OFF_HEADER_CRC));
    return 0;
}

int fw_block_set_sequence(uint8_t *block, size_t len, uint64_t seq)
{
    fw_block_header_t h;
    int rc = fw_block_header_parse(block, len, &h);
    return rc < 0 ? rc : fw_block_set_origin(block, len, h.producer_id, seq);
}

int fw_seal_parse(const uint8_t *block, const fw_block_header_t *h, fw_seal_t *seal)
{
    if (!fw_block_is_seal(h) || h->stored_len != FW_SEAL_PAYLOAD_SIZE)
        return FW_EBLOCK_CORRUPT;
    const uint8_t *p = block + FW_BLOCK_HEADER_SIZE;
    seal->blocks = fw_load_u64(p);
    seal->records = fw_load_u64(p + 8);
    seal->offset = fw_load_u64(p + 16);
    return 0;
}

void fw_seal_encode(uint8_t *out, const fw_seal_t *seal, int64_t now_ms)
{
    uint8_t *p = out + FW_BLOCK_HEADER_SIZE;
    fw_store_u64(p, seal->blocks);
    fw_store_u64(p + 8, seal->records);
    fw_store_u64(p + 16, seal->offset);
    fw_block_header_t h = {
        .codec = FW_CODEC_NONE,
        .flags = FW_BLOCK_FLAG_SEAL,
        .stored_len = FW_SEAL_PAYLOAD_SIZE,
        .raw_len = FW_SEAL_PAYLOAD_SIZE,
        .payload_crc = fw_crc32c(0, p, FW_SEAL_PAYLOAD_SIZE),
        .base_ts = now_ms,
        .max_ts = now_ms,
    };
    header_put(out, &h);
}

void fw_block_builder_init(fw_block_builder_t *b, uint32_t max_record)
{
    memset(b, 0, sizeof(*b));
    if (max_record == 0 || max_record > FW_RECORD_MAX_HARD)
        max_record = FW_RECORD_MAX_HARD;
    b->max_record = max_record;
}

void fw_block_builder_free(fw_block_builder_t *b)
{
    fw_buf_free(&b->raw);
    fw_buf_free(&b->out);
}

int fw_block_builder_add(fw_block_builder_t *b, int64_t ts, const void *key, size_t key_len,
                         int has_key, const void *value, size_t value_len)
{
    if (!has_key)
        key_len = 0;
    if (key_len > b->max_record || value_len > b->max_record - key_len)
        return FW_ERECORD_TOO_LARGE;
    if (b->count == 0) {
        b->base_ts = ts;
        b->prev_ts = ts;
        b->max_ts = ts;
    }
    int64_t delta;
    if (__builtin_sub_overflow(ts, b->prev_ts, &delta) || delta == INT64_MIN)
        return -EINVAL; /* timestamps more than 2^62 ms apart: not a clock */
    uint8_t hdr[3 * FW_VARINT_MAX];
    size_t n = fw_varint_put(hdr, zigzag_encode(delta));
    n += fw_varint_put(hdr + n, has_key ? (uint64_t)key_len + 1 : 0);
    size_t tail = fw_varint_len(value_len);
    size_t need = n + key_len + tail + value_len;
    if (need > FW_BLOCK_MAX_PAYLOAD - b->raw.len)
        return FW_EBLOCK_TOO_LARGE;
    int rc = fw_buf_reserve(&b->raw, need);
    if (rc < 0)
        return rc;
    uint8_t *p = b->raw.data + b->raw.len;
    memcpy(p, hdr, n);
    p += n;
    if (key_len > 0)
        memcpy(p, key, key_len);
    p += key_len;
    p += fw_varint_put(p, value_len);
    if (value_len > 0)
        memcpy(p, value, value_len);
    b->raw.len += need;
    b->prev_ts = ts;
    if (ts > b->max_ts)
        b->max_ts = ts;
    b->count++;
    return 0;
}

int fw_block_builder_finish(fw_block_builder_t *b, fw_codec_t codec, uint64_t producer_id,
                            uint64_t sequence, const uint8_t **block, size_t *len)
{
    if (b->count == 0)
        return -EINVAL;
    size_t raw_len = b->raw.len;
    size_t bound = (size_t)LZ4_COMPRESSBOUND((int)raw_len);
    fw_buf_reset(&b->out);
    int rc = fw_buf_reserve(&b->out, FW_BLOCK_HEADER_SIZE + (bound > raw_len ? bound : raw_len));
    if (rc < 0)
        return rc;
    uint8_t *payload = b->out.data + FW_BLOCK_HEADER_SIZE;
    fw_block_header_t h = {
        .codec = FW_CODEC_NONE,
        .stored_len = (uint32_t)raw_len,
        .raw_len = (uint32_t)raw_len,
        .record_count = b->count,
        .producer_id = producer_id,
        .sequence = sequence,
        .base_ts = b->base_ts,
        .max_ts = b->max_ts,
    };
    int packed = 0;
    if (codec == FW_CODEC_LZ4) {
        packed = LZ4_compress_default((const char *)b->raw.data, (char *)payload, (int)raw_len,
                                      (int)bound);
    }
    if (packed > 0 && (size_t)packed < raw_len) {
        h.codec = FW_CODEC_LZ4;
        h.stored_len = (uint32_t)packed;
    } else {
        memcpy(payload, b->raw.data, raw_len);
    }
    h.payload_crc = fw_crc32c(0, payload, h.stored_len);
    header_put(b->out.data, &h);
    b->out.len = fw_block_size(&h);
    *block = b->out.data;
    *len = b->out.len;
    fw_buf_reset(&b->raw);
    b->count = 0;
    return 0;
}
