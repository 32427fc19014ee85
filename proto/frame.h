/*
 * Frames: how freeway messages travel on a TCP byte stream. Each frame is a
 * 4-byte length, a small fixed header, a protobuf "meta" message saying what
 * the frame is, and an opaque body (blocks travel there byte for byte, so no
 * hop re-encodes them).
 *
 *   0        4        6    7    8            12           12+meta_len
 *   +--------+--------+----+----+------------+------------+-------------+
 *   | length | magic  |ver |type| meta_len   | meta       | body        |
 *   | u32 LE | 'F''W' | 1  | u8 | u32 LE     | protobuf   | raw bytes   |
 *   +--------+--------+----+----+------------+------------+-------------+
 *   length = bytes after the length field = 8 + meta_len + body_len
 *
 * The decoder checks length against the configured maximum as soon as the
 * first 4 bytes arrive, before anything is allocated, and never reads past
 * the bytes it is given.
 */
#ifndef FW_FRAME_H
#define FW_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

#include <protobuf-c/protobuf-c.h>

#define FW_FRAME_HEADER_SIZE 12
#define FW_FRAME_PREFIX_SIZE 4
#define FW_FRAME_VERSION     1
/* Default bound on `length`: one maximal block plus its meta message. */
#define FW_FRAME_MAX_DEFAULT (40u << 20)
/* No configuration may raise the bound past this. */
#define FW_FRAME_MAX_LIMIT (256u << 20)

/* The frame types; the meta message of each is named beside it. */
typedef enum {
    FW_FRAME_PRODUCE_REQ = 1,    /* fwpb.ProduceRequest, body = blocks */
    FW_FRAME_PRODUCE_RESP = 2,   /* fwpb.ProduceResponse */
    FW_FRAME_FORWARD_REQ = 3,    /* fwpb.ForwardRequest, body = blocks */
    FW_FRAME_FORWARD_RESP = 4,   /* fwpb.ProduceResponse */
    FW_FRAME_SUBSCRIBE = 5,      /* fwpb.SubscribeRequest */
    FW_FRAME_STREAM = 6,         /* fwpb.StreamMessage, body = blocks (records) */
    FW_FRAME_CREDIT = 7,         /* fwpb.Credit */
    FW_FRAME_ERROR = 8,          /* fwpb.ErrorReply; the sender closes after it */
    FW_FRAME_METADATA_REQ = 9,   /* fwpb.MetadataRequest */
    FW_FRAME_METADATA_RESP = 10, /* fwpb.MetadataResponse */
    FW_FRAME_TYPE_MAX = 10
} fw_frame_type_t;

typedef struct fw_frame_s {
    uint8_t type;
    const uint8_t *meta; /* points into the decoder's input */
    uint32_t meta_len;
    const uint8_t *body; /* points into the decoder's input */
    uint32_t body_len;
} fw_frame_t;

/*
 * Decodes one frame from buf[0..len). Returns the bytes it spans (> 0) and
 * fills *out; 0 if more input is needed, with *need set to the total bytes
 * the frame will span once known (else FW_FRAME_HEADER_SIZE); or
 * FW_EFRAME_TOO_LARGE / FW_EFRAME_BAD. max_frame bounds `length`.
 */
ssize_t fw_frame_decode(const uint8_t *buf, size_t len, uint32_t max_frame, fw_frame_t *out,
                        size_t *need);

/* Writes the 12-byte header of a frame; 0 or FW_EFRAME_TOO_LARGE / -EINVAL. */
int fw_frame_header_put(uint8_t hdr[FW_FRAME_HEADER_SIZE], uint8_t type, size_t meta_len,
                        size_t body_len, uint32_t max_frame);

/*
 * Appends a whole frame to out: header, meta packed from msg (may be NULL for
 * an empty meta), then body_len bytes of body. 0 or a negative code.
 */
int fw_frame_append(fw_buf_t *out, uint8_t type, const ProtobufCMessage *msg, const void *body,
                    size_t body_len, uint32_t max_frame);

#endif
