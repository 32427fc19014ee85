/*
 * libFuzzer target: block header parse, verify and decode. When the first
 * byte is odd, the harness re-signs both CRCs of the input first, so that
 * mutations reach the record parser and lz4 instead of stopping at the CRC.
 */
#include "fuzz.h"
#include "block.h"
#include "bytes.h"
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
    if (resign && size >= FW_BLOCK_HEADER_SIZE) {
        uint32_t stored = fw_load_u32(buf + 8);
        if (stored <= size - FW_BLOCK_HEADER_SIZE)
            fw_store_u32(buf + 20, fw_crc32c(0, buf + FW_BLOCK_HEADER_SIZE, stored));
        fw_store_u32(buf + 60, fw_crc32c(0, buf, 60));
    }
    fw_block_header_t h;
    fw_block_header_parse(buf, size, &h);
    if (fw_block_verify(buf, size, &h) == 0 && fw_block_size(&h) > size)
        abort();
    fw_buf_t scratch = FW_BUF_INIT;
    fw_record_iter_t it;
    if (fw_block_decode(buf, size, 1 << 20, &scratch, &h, &it) == 0) {
        fw_record_t rec;
        uint32_t n = 0;
        uint64_t bytes = 0;
        while (fw_record_next(&it, &rec)) {
            bytes += rec.key_len + rec.value_len;
            if (rec.timestamp > h.max_ts || rec.key_len + rec.value_len > (1u << 20))
                abort();
            n++;
        }
        /* A decoded block yields exactly its declared records, within its payload. */
        if (n != h.record_count || bytes > h.raw_len)
            abort();
    }
    fw_seal_t seal;
    if (fw_block_verify(buf, size, &h) == 0 && fw_block_is_seal(&h))
        fw_seal_parse(buf, &h, &seal);
    fw_buf_free(&scratch);
    free(buf);
    return 0;
}
