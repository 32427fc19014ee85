/* The writer's producer sequence table: verdicts, in-flight retries, rebuild, the cap. */
#include "fwtest.h"

#include "dedup.h"

FWT_TEST(verdicts_follow_the_sequence)
{
    cal_dedup_t d;
    cal_dedup_init(&d, 100);
    uint64_t expected = 0;
    FWT_ASSERT_INT_EQ(cal_dedup_check(&d, 7, 5, &expected), CAL_SEQ_ACCEPT); /* unknown */
    FWT_ASSERT_OK(cal_dedup_accept(&d, 7, 5, 1));
    /* Queued, not yet stored: a retry must wait rather than be acked early. */
    FWT_ASSERT_INT_EQ(cal_dedup_check(&d, 7, 5, &expected), CAL_SEQ_IN_FLIGHT);
    FWT_ASSERT_INT_EQ(cal_dedup_check(&d, 7, 6, &expected), CAL_SEQ_ACCEPT);
    FWT_ASSERT_INT_EQ(cal_dedup_check(&d, 7, 8, &expected), CAL_SEQ_GAP);
    FWT_ASSERT_UINT_EQ(expected, 6);
    cal_dedup_stored(&d, 7, 5);
    FWT_ASSERT_INT_EQ(cal_dedup_check(&d, 7, 5, &expected), CAL_SEQ_DUPLICATE);
    FWT_ASSERT_INT_EQ(cal_dedup_check(&d, 7, 4, &expected), CAL_SEQ_DUPLICATE);
    FWT_ASSERT_OK(cal_dedup_accept(&d, 7, 6, 2));
    FWT_ASSERT_OK(cal_dedup_accept(&d, 7, 7, 2));
    /* The write of 6 and 7 failed: they may come again. */
    cal_dedup_abort(&d, 7);
    FWT_ASSERT_INT_EQ(cal_dedup_check(&d, 7, 6, &expected), CAL_SEQ_ACCEPT);
    FWT_ASSERT_INT_EQ(cal_dedup_check(&d, 7, 7, &expected), CAL_SEQ_GAP);
    /* Producers do not disturb each other. */
    FWT_ASSERT_INT_EQ(cal_dedup_check(&d, 8, 5, &expected), CAL_SEQ_ACCEPT);
    cal_dedup_free(&d);
}

FWT_TEST(rebuilt_table_acks_retries_again)
{
    cal_dedup_t d;
    cal_dedup_init(&d, 100);
    /* What a scan of the segments finds, in any order. */
    FWT_ASSERT_OK(cal_dedup_learn(&d, 1, 10, 0));
    FWT_ASSERT_OK(cal_dedup_learn(&d, 1, 9, 0));
    FWT_ASSERT_OK(cal_dedup_learn(&d, 2, 3, 0));
    uint64_t expected;
    FWT_ASSERT_INT_EQ(cal_dedup_check(&d, 1, 10, &expected), CAL_SEQ_DUPLICATE);
    FWT_ASSERT_INT_EQ(cal_dedup_check(&d, 1, 11, &expected), CAL_SEQ_ACCEPT);
    FWT_ASSERT_INT_EQ(cal_dedup_check(&d, 2, 3, &expected), CAL_SEQ_DUPLICATE);
    FWT_ASSERT_INT_EQ(cal_dedup_check(&d, 2, 5, &expected), CAL_SEQ_GAP);
    FWT_ASSERT_UINT_EQ(expected, 4);
    cal_dedup_free(&d);
}

FWT_TEST(many_producers_and_the_cap)
{
    cal_dedup_t d;
    cal_dedup_init(&d, 1000);
    for (uint64_t p = 1; p <= 1000; p++)
        FWT_ASSERT_OK(cal_dedup_learn(&d, p * 0x9e3779b97f4a7c15ULL, p, (int64_t)p));
    uint64_t expected;
    for (uint64_t p = 1; p <= 1000; p++)
        FWT_ASSERT_INT_EQ(cal_dedup_check(&d, p * 0x9e3779b97f4a7c15ULL, p, &expected),
                          CAL_SEQ_DUPLICATE);
    /* One more: the producer seen least recently (p = 1) is forgotten, no other. */
    FWT_ASSERT_OK(cal_dedup_accept(&d, 42, 1, 5000));
    FWT_ASSERT_UINT_EQ(d.used, 1000);
    FWT_ASSERT_INT_EQ(cal_dedup_check(&d, 0x9e3779b97f4a7c15ULL, 1, &expected), CAL_SEQ_ACCEPT);
    for (uint64_t p = 2; p <= 1000; p++)
        FWT_ASSERT_INT_EQ(cal_dedup_check(&d, p * 0x9e3779b97f4a7c15ULL, p, &expected),
                          CAL_SEQ_DUPLICATE);
    cal_dedup_free(&d);
}
