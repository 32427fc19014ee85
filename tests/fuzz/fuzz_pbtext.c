/*
 * libFuzzer target: the text form of ZooKeeper metadata (anyone who can
 * write to the tree can put bytes there). Whatever parses must format and
 * parse again to the same text.
 */
#include "fuzz.h"
#include "pbtext.h"
#include "proto/meta.pb-c.h"

#include <stdlib.h>
#include <string.h>

static const ProtobufCMessageDescriptor *const types[] = {
    &fwpb__category_config__descriptor, &fwpb__bucket_meta__descriptor,
    &fwpb__owner_info__descriptor,      &fwpb__node_info__descriptor,
    &fwpb__copier_progress__descriptor,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const ProtobufCMessageDescriptor *d = types[data[0] % 5];
    char err[256];
    ProtobufCMessage *m = NULL;
    if (fw_pbtext_parse(d, (const char *)data + 1, size - 1, &m, err, sizeof(err)) != 0)
        return 0;
    fw_buf_t once = FW_BUF_INIT, twice = FW_BUF_INIT;
    if (fw_pbtext_format(m, &once) == 0) {
        ProtobufCMessage *again = NULL;
        if (fw_pbtext_parse(d, (char *)once.data, once.len, &again, err, sizeof(err)) != 0)
            abort();
        if (fw_pbtext_format(again, &twice) != 0 || twice.len != once.len ||
            memcmp(once.data, twice.data, once.len) != 0)
            abort();
        protobuf_c_message_free_unpacked(again, NULL);
    }
    protobuf_c_message_free_unpacked(m, NULL);
    fw_buf_free(&once);
    fw_buf_free(&twice);
    return 0;
}
