/* CRC32C: check values, and the hardware and table implementations agree. */
#include "fwtest.h"

#include "crc32c.h"

#include <stdlib.h>

FWT_TEST(check_values)
{
    /* The standard check value, and RFC 3720 (iSCSI) B.4 test vectors. */
    FWT_ASSERT_UINT_EQ(fw_crc32c_portable(0, "123456789", 9), 0xe3069283u);
    uint8_t buf[32];
    memset(buf, 0, sizeof(buf));
    FWT_ASSERT_UINT_EQ(fw_crc32c_portable(0, buf, 32), 0x8a9136aau);
    memset(buf, 0xff, sizeof(buf));
    FWT_ASSERT_UINT_EQ(fw_crc32c_portable(0, buf, 32), 0x62a8ab43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)i;
    FWT_ASSERT_UINT_EQ(fw_crc32c_portable(0, buf, 32), 0x46dd794eu);
    FWT_ASSERT_UINT_EQ(fw_crc32c(0, "123456789", 9), 0xe3069283u);
    FWT_ASSERT_UINT_EQ(fw_crc32c(0, "", 0), 0);
}

FWT_TEST(hardware_matches_portable)
{
    if (!fw_crc32c_hw_available()) {
        fprintf(stderr, "no CRC32C instruction on this CPU: only the portable path runs\n");
        return;
    }
    FWT_ASSERT_UINT_EQ(fw_crc32c_hw(0, "123456789", 9), 0xe3069283u);
    size_t cap = 1 << 16;
    uint8_t *buf = malloc(cap + 16);
    FWT_ASSERT(buf != NULL);
    fwt_defer(free, buf);
    fwt_rand_bytes(buf, cap + 16);
    /* Random lengths and misalignments exercise every head/body/tail split. */
    for (int i = 0; i < 2000; i++) {
        size_t off = (size_t)fwt_rand_range(0, 15);
        size_t len = (size_t)fwt_rand_range(0, i < 1000 ? 64 : cap);
        uint32_t seed = (uint32_t)fwt_rand();
        FWT_ASSERT_UINT_EQ(fw_crc32c_hw(seed, buf + off, len),
                           fw_crc32c_portable(seed, buf + off, len));
    }
}

FWT_TEST(incremental_equals_one_shot)
{
    uint8_t buf[4096];
    fwt_rand_bytes(buf, sizeof(buf));
    uint32_t whole = fw_crc32c(0, buf, sizeof(buf));
    for (int i = 0; i < 200; i++) {
        size_t cut = (size_t)fwt_rand_range(0, sizeof(buf));
        uint32_t part = fw_crc32c(0, buf, cut);
        FWT_ASSERT_UINT_EQ(fw_crc32c(part, buf + cut, sizeof(buf) - cut), whole);
        FWT_ASSERT_UINT_EQ(
            fw_crc32c_portable(fw_crc32c_portable(0, buf, cut), buf + cut, sizeof(buf) - cut),
            whole);
    }
}
