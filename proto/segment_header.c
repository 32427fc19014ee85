/* The segment file header: encode and strict parse (layout in segment.h). */
#include "segment.h"

#include "bytes.h"
#include "crc32c.h"
#include "error.h"

#include <errno.h>
#include <string.h>

static const uint8_t seg_magic[4] = {'F', 'W', 'S', 'G'};

int fw_seg_header_encode(uint8_t *out, fw_seg_header_t *h)
{
    if (!fw_category_valid(h->category))
        return FW_EBAD_CATEGORY;
    /* The parser rejects such a bucket, so a segment written with it could never be read. */
    if (h->bucket >= FW_BUCKETS_MAX)
        return FW_EBUCKET_RANGE;
    size_t n = strlen(h->category);
    uint32_t len = fw_seg_first_block(n);
    memcpy(out, seg_magic, 4);
    out[4] = FW_SEG_VERSION;
    out[5] = (uint8_t)n;
    fw_store_u16(out + 6, (uint16_t)len);
    fw_store_u64(out + 8, h->segment_id);
    fw_store_u64(out + 16, h->epoch);
    fw_store_u64(out + 24, (uint64_t)h->created_ms);
    fw_store_u32(out + 32, h->bucket);
    fw_store_u32(out + 36, 0);
    memcpy(out + FW_SEG_HEADER_FIXED, h->category, n);
    fw_store_u32(out + FW_SEG_HEADER_FIXED + n, fw_crc32c(0, out, FW_SEG_HEADER_FIXED + n));
    h->header_len = len;
    return (int)len;
}

int fw_seg_header_parse(const uint8_t *buf, size_t len, fw_seg_header_t *h)
{
    /* Judge what is there as soon as it is there: a wrong magic is not "wait". */
    if (memcmp(buf, seg_magic, len < 4 ? len : 4) != 0)
        return FW_ESEG_HEADER;
    if (len < FW_SEG_HEADER_FIXED)
        return -EAGAIN;
    size_t n = buf[5];
    uint32_t hlen = fw_load_u16(buf + 6);
    if (buf[4] != FW_SEG_VERSION || n == 0 || n > FW_CATEGORY_MAX ||
        hlen != fw_seg_first_block(n) || fw_load_u32(buf + 36) != 0)
        return FW_ESEG_HEADER;
    if (len < hlen)
        return -EAGAIN;
    if (fw_load_u32(buf + FW_SEG_HEADER_FIXED + n) != fw_crc32c(0, buf, FW_SEG_HEADER_FIXED + n))
        return FW_ESEG_HEADER;
    h->segment_id = fw_load_u64(buf + 8);
    h->epoch = fw_load_u64(buf + 16);
    h->created_ms = (int64_t)fw_load_u64(buf + 24);
    h->bucket = fw_load_u32(buf + 32);
    memcpy(h->category, buf + FW_SEG_HEADER_FIXED, n);
    h->category[n] = '\0';
    h->header_len = hlen;
    if (strlen(h->category) != n || !fw_category_valid(h->category) || h->bucket >= FW_BUCKETS_MAX)
        return FW_ESEG_HEADER;
    return 0;
}
