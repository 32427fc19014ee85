/* The frame codec (layout in frame.h). It allocates nothing while decoding. */
#include "frame.h"

#include "bytes.h"
#include "error.h"

#include <errno.h>

#define MAGIC0 'F'
#define MAGIC1 'W'

ssize_t fw_frame_decode(const uint8_t *buf, size_t len, uint32_t max_frame, fw_frame_t *out,
                        size_t *need)
{
    if (max_frame == 0 || max_frame > FW_FRAME_MAX_LIMIT)
        max_frame = FW_FRAME_MAX_LIMIT;
    *need = FW_FRAME_HEADER_SIZE;
    if (len < FW_FRAME_PREFIX_SIZE)
        return 0;
    uint32_t length = fw_load_u32(buf);
    /* Reject an oversized frame before its bytes arrive or are buffered. */
    if (length > max_frame)
        return FW_EFRAME_TOO_LARGE;
    if (length < FW_FRAME_HEADER_SIZE - FW_FRAME_PREFIX_SIZE)
        return FW_EFRAME_BAD;
    if (len >= 6 && (buf[4] != MAGIC0 || buf[5] != MAGIC1))
        return FW_EFRAME_BAD;
    if (len < FW_FRAME_HEADER_SIZE)
        return 0;
    uint8_t version = buf[6];
    uint8_t type = buf[7];
    uint32_t meta_len = fw_load_u32(buf + 8);
    if (version != FW_FRAME_VERSION || type == 0 || type > FW_FRAME_TYPE_MAX)
        return FW_EFRAME_BAD;
    if (meta_len > length - (FW_FRAME_HEADER_SIZE - FW_FRAME_PREFIX_SIZE))
        return FW_EFRAME_BAD;
    size_t total = (size_t)length + FW_FRAME_PREFIX_SIZE;
    *need = total;
    if (len < total)
        return 0;
    out->type = type;
    out->meta = buf + FW_FRAME_HEADER_SIZE;
    out->meta_len = meta_len;
    out->body = out->meta + meta_len;
    out->body_len = (uint32_t)(total - FW_FRAME_HEADER_SIZE - meta_len);
    return (ssize_t)total;
}

int fw_frame_header_put(uint8_t hdr[FW_FRAME_HEADER_SIZE], uint8_t type, size_t meta_len,
                        size_t body_len, uint32_t max_frame)
{
    if (max_frame == 0 || max_frame > FW_FRAME_MAX_LIMIT)
        max_frame = FW_FRAME_MAX_LIMIT;
    if (type == 0 || type > FW_FRAME_TYPE_MAX)
        return -EINVAL;
    size_t inner = FW_FRAME_HEADER_SIZE - FW_FRAME_PREFIX_SIZE;
    if (meta_len > max_frame || body_len > max_frame || inner + meta_len + body_len > max_frame)
        return FW_EFRAME_TOO_LARGE;
    fw_store_u32(hdr, (uint32_t)(inner + meta_len + body_len));
    hdr[4] = MAGIC0;
    hdr[5] = MAGIC1;
    hdr[6] = FW_FRAME_VERSION;
    hdr[7] = type;
    fw_store_u32(hdr + 8, (uint32_t)meta_len);
    return 0;
}

int fw_frame_append(fw_buf_t *out, uint8_t type, const ProtobufCMessage *msg, const void *body,
                    size_t body_len, uint32_t max_frame)
{
    size_t meta_len = msg ? protobuf_c_message_get_packed_size(msg) : 0;
    uint8_t hdr[FW_FRAME_HEADER_SIZE];
    int rc = fw_frame_header_put(hdr, type, meta_len, body_len, max_frame);
    if (rc < 0)
        return rc;
    rc = fw_buf_reserve(out, FW_FRAME_HEADER_SIZE + meta_len + body_len);
    if (rc < 0)
        return rc;
    uint8_t *p = out->data + out->len;
    memcpy(p, hdr, FW_FRAME_HEADER_SIZE);
    if (msg != NULL && protobuf_c_message_pack(msg, p + FW_FRAME_HEADER_SIZE) != meta_len)
        return -EINVAL; /* out->len is untouched, so nothing partial is appended */
    if (body_len > 0)
        memcpy(p + FW_FRAME_HEADER_SIZE + meta_len, body, body_len);
    out->len += FW_FRAME_HEADER_SIZE + meta_len + body_len;
    return 0;
}
