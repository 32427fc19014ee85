/*
 * libFuzzer target: the frame decoder, and the protobuf meta message of each
 * frame type, on a byte stream as a peer could send it.
 */
#include "fuzz.h"
#include "error.h"
#include "frame.h"
#include "proto/produce.pb-c.h"
#include "proto/stream.pb-c.h"

#include <stdlib.h>

static void unpack_meta(const fw_frame_t *f)
{
    ProtobufCMessage *m = NULL;
    const ProtobufCMessageDescriptor *d = NULL;
    switch (f->type) {
    case FW_FRAME_PRODUCE_REQ:
        d = &fwpb__produce_request__descriptor;
        break;
    case FW_FRAME_PRODUCE_RESP:
    case FW_FRAME_FORWARD_RESP:
        d = &fwpb__produce_response__descriptor;
        break;
    case FW_FRAME_FORWARD_REQ:
        d = &fwpb__forward_request__descriptor;
        break;
    case FW_FRAME_SUBSCRIBE:
        d = &fwpb__subscribe_request__descriptor;
        break;
    case FW_FRAME_STREAM:
        d = &fwpb__stream_message__descriptor;
        break;
    case FW_FRAME_CREDIT:
        d = &fwpb__credit__descriptor;
        break;
    case FW_FRAME_ERROR:
        d = &fwpb__error_reply__descriptor;
        break;
    case FW_FRAME_METADATA_REQ:
        d = &fwpb__metadata_request__descriptor;
        break;
    case FW_FRAME_METADATA_RESP:
        d = &fwpb__metadata_response__descriptor;
        break;
    default:
        abort(); /* the decoder admitted an unknown type */
    }
    m = protobuf_c_message_unpack(d, NULL, f->meta_len, f->meta);
    if (m != NULL)
        protobuf_c_message_free_unpacked(m, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A small maximum, so the fuzzer reaches the "too large" path often. */
    const uint32_t max_frame = 1 << 16;
    size_t off = 0;
    while (off < size) {
        fw_frame_t f;
        size_t need = 0;
        ssize_t n = fw_frame_decode(data + off, size - off, max_frame, &f, &need);
        if (n <= 0) {
            if (n == 0 && need < FW_FRAME_HEADER_SIZE)
                abort();
            break;
        }
        if ((size_t)n > size - off || (size_t)n != FW_FRAME_HEADER_SIZE + f.meta_len + f.body_len)
            abort();
        unpack_meta(&f);
        off += (size_t)n;
    }
    return 0;
}
