/*
 * libFuzzer target: checkpoint tokens in binary and text form. When the
 * first byte is odd the harness re-signs the token's CRC, so that mutations
 * reach the field validation.
 */
#include "fuzz.h"
#include "bytes.h"
#include "checkpoint.h"
#include "crc32c.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int resign = data[0] & 1;
    data++, size--;
    uint8_t *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    if (resign && size >= 4)
        fw_store_u32(buf + size - 4, fw_crc32c(0, buf, size - 4));
    fw_checkpoint_t cp;
    if (fw_checkpoint_decode(buf, size, &cp) == 0) {
        /* Whatever decodes re-encodes to the very same bytes. */
        fw_buf_t again = FW_BUF_INIT;
        if (fw_checkpoint_encode(&cp, &again) != 0 || again.len != size ||
            memcmp(again.data, buf, size) != 0)
            abort();
        fw_buf_free(&again);
        fw_checkpoint_free(&cp);
    }
    if (fw_checkpoint_from_text((const char *)data, size, &cp) == 0)
        fw_checkpoint_free(&cp);
    free(buf);
    return 0;
}
