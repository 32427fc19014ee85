/* Little-endian helpers and strict LEB128 varints. */
#include "fwtest.h"

#include "bytes.h"

FWT_TEST(varint_round_trip)
{
    uint64_t values[] = {
        0, 1, 127, 128, 255, 300, 16383, 16384, UINT32_MAX, (uint64_t)1 << 63, UINT64_MAX};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        uint8_t buf[FW_VARINT_MAX];
        size_t n = fw_varint_put(buf, values[i]);
        FWT_ASSERT_UINT_EQ(n, fw_varint_len(values[i]));
        uint64_t back = 0;
        FWT_ASSERT_UINT_EQ(fw_varint_get(buf, n, &back), n);
        FWT_ASSERT_UINT_EQ(back, values[i]);
        /* One byte short is "incomplete", never a value. */
        FWT_ASSERT_UINT_EQ(fw_varint_get(buf, n - 1, &back), 0);
    }
    for (int i = 0; i < 10000; i++) {
        uint64_t v = fwt_rand() >> fwt_rand_range(0, 63);
        uint8_t buf[FW_VARINT_MAX];
        size_t n = fw_varint_put(buf, v);
        uint64_t back = 0;
        FWT_ASSERT_UINT_EQ(fw_varint_get(buf, n, &back), n);
        FWT_ASSERT_UINT_EQ(back, v);
    }
}

FWT_TEST(varint_rejects_non_canonical)
{
    uint64_t v;
    const uint8_t overlong_zero[] = {0x80, 0x00};
    FWT_ASSERT_UINT_EQ(fw_varint_get(overlong_zero, 2, &v), 0);
    const uint8_t overlong_one[] = {0x81, 0x80, 0x00};
    FWT_ASSERT_UINT_EQ(fw_varint_get(overlong_one, 3, &v), 0);
    /* 2^64 does not fit: the tenth byte may only be 0 or 1. */
    const uint8_t too_big[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
    FWT_ASSERT_UINT_EQ(fw_varint_get(too_big, 10, &v), 0);
    const uint8_t eleven[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    FWT_ASSERT_UINT_EQ(fw_varint_get(eleven, 11, &v), 0);
    FWT_ASSERT_UINT_EQ(fw_varint_get(eleven, 0, &v), 0);
}

FWT_TEST(little_endian)
{
    uint8_t b[8];
    fw_store_u64(b, 0x0102030405060708ULL);
    FWT_ASSERT_UINT_EQ(b[0], 0x08);
    FWT_ASSERT_UINT_EQ(b[7], 0x01);
    FWT_ASSERT_UINT_EQ(fw_load_u64(b), 0x0102030405060708ULL);
    FWT_ASSERT_UINT_EQ(fw_load_u32(b), 0x05060708u);
    FWT_ASSERT_UINT_EQ(fw_load_u16(b), 0x0708u);
    fw_store_u16(b, 0xbeef);
    FWT_ASSERT_UINT_EQ(b[0], 0xef);
}
