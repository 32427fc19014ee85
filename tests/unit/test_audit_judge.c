/*
 * The audit's arithmetic (client/cli/audit_judge.c) and counting table
 * (client/audit.c) on hand-made stores: stretches that start and end inside
 * blocks, a consumer's lives that overlap, a copy behind or missing a block,
 * repeated (producer, sequence) pairs, and a table grown past many cells.
 */
#include "fwtest.h"

#include "client/cli/audit_model.h"

#include <stdlib.h>
#include <string.h>

/* One bucket (0) of blocks: segment 1 at offsets 100, 200, 300, segment 2 at 100. */
static fw_astore_t store4(void)
{
    fw_astore_t s;
    memset(&s, 0, sizeof(s));
    s.nbuckets = 1;
    s.buckets = calloc(1, sizeof(*s.buckets));
    static const fw_ablock_t blocks[] = {
        {1, 100, 7, 1, 10, 5}, {1, 200, 7, 2, 10, 5}, {1, 300, 7, 3, 11, 5}, {2, 100, 7, 4, 11, 5}};
    s.buckets[0].n = s.buckets[0].cap = 4;
    s.buckets[0].blocks = malloc(sizeof(blocks));
    memcpy(s.buckets[0].blocks, blocks, sizeof(blocks));
    return s;
}

static void store_free(fw_astore_t *s)
{
    free(s->buckets[0].blocks);
    free(s->buckets);
}

static fw_audit_range_t range(uint64_t s1, uint64_t o1, uint32_t i1, uint64_t s2, uint64_t o2,
                              uint32_t i2)
{
    return (fw_audit_range_t){0, s1, o1, i1, s2, o2, i2};
}

static fw_alife_t life(uint64_t id, int64_t sent, const fw_audit_range_t *r, size_t n,
                       const uint64_t m10, const uint64_t m11)
{
    fw_alife_t l;
    memset(&l, 0, sizeof(l));
    l.life = id;
    l.first_sent_ms = sent;
    l.ranges = malloc(n * sizeof(*r));
    memcpy(l.ranges, r, n * sizeof(*r));
    l.nranges = l.ranges_cap = n;
    FWT_ASSERT_OK(fw_audit_table_add(&l.counts, 0, 0, 10, m10));
    FWT_ASSERT_OK(fw_audit_table_add(&l.counts, 0, 0, 11, m11));
    return l;
}

FWT_TEST(a_range_counts_the_records_inside_it_only)
{
    fw_astore_t s = store4();
    fw_audit_table_t t = {0};
    /* From record 2 of the first block to record 1 of the third: 3 + 5 in minute 10, 2 in 11. */
    fw_audit_range_t r = range(1, 100, 2, 1, 300, 1);
    FWT_ASSERT_OK(fw_audit_count_range(fw_audit_bucket(&s, 0), 0, &r, &t));
    FWT_ASSERT_UINT_EQ(fw_audit_table_get(&t, 0, 0, 10), 8);
    FWT_ASSERT_UINT_EQ(fw_audit_table_get(&t, 0, 0, 11), 2);
    /* One record. */
    fw_audit_table_clear(&t);
    r = range(2, 100, 4, 2, 100, 4);
    FWT_ASSERT_OK(fw_audit_count_range(fw_audit_bucket(&s, 0), 0, &r, &t));
    FWT_ASSERT_UINT_EQ(fw_audit_table_get(&t, 0, 0, 11), 1);
    FWT_ASSERT_UINT_EQ(fw_audit_table_get(&t, 0, 0, 10), 0);
    /* A record index past the block's (a report's, unchecked): the block to its end, no less. */
    fw_audit_table_clear(&t);
    r = range(1, 100, 0, 1, 100, UINT32_MAX);
    FWT_ASSERT_OK(fw_audit_count_range(fw_audit_bucket(&s, 0), 0, &r, &t));
    FWT_ASSERT_UINT_EQ(fw_audit_table_get(&t, 0, 0, 10), 5);
    fw_audit_table_free(&t);
    store_free(&s);
}

/* A life whose only report was an empty final one: no counts, no stretches. */
FWT_TEST(a_consumer_life_without_stretches_counts_nothing)
{
    fw_astore_t s = store4();
    fw_aconsumer_t c;
    memset(&c, 0, sizeof(c));
    fw_alife_t l;
    memset(&l, 0, sizeof(l));
    l.life = 1;
    l.final = 1;
    c.lives = &l;
    c.nlives = 1;
    fw_audit_table_t own = {0}, again = {0}, expected = {0};
    FWT_ASSERT_OK(fw_audit_consumer(&s, &c, &own, &again, &expected));
    FWT_ASSERT_UINT_EQ(own.used + again.used + expected.used, 0);
    store_free(&s);
}

FWT_TEST(a_consumer_restarted_from_an_older_checkpoint_counts_once)
{
    fw_astore_t s = store4();
    fw_aconsumer_t c;
    memset(&c, 0, sizeof(c));
    /* Life 1 read everything; life 2 started again at the second block and read to the end. */
    fw_audit_range_t r1 = range(1, 100, 0, 2, 100, 4), r2 = range(1, 200, 0, 2, 100, 4);
    fw_alife_t lives[2] = {life(1, 1000, &r1, 1, 10, 10), life(2, 2000, &r2, 1, 5, 10)};
    c.lives = lives;
    c.nlives = 2;
    fw_audit_table_t own = {0}, again = {0}, expected = {0};
    FWT_ASSERT_OK(fw_audit_consumer(&s, &c, &own, &again, &expected));
    FWT_ASSERT_UINT_EQ(fw_audit_table_get(&own, 0, 0, 10) - fw_audit_table_get(&again, 0, 0, 10),
                       10);
    FWT_ASSERT_UINT_EQ(fw_audit_table_get(&own, 0, 0, 11) - fw_audit_table_get(&again, 0, 0, 11),
                       10);
    FWT_ASSERT_UINT_EQ(fw_audit_table_get(&expected, 0, 0, 10), 10);
    FWT_ASSERT_UINT_EQ(fw_audit_table_get(&expected, 0, 0, 11), 10);
    for (int i = 0; i < 2; i++) {
        free(lives[i].ranges);
        fw_audit_table_free(&lives[i].counts);
    }
    fw_audit_table_free(&own);
    fw_audit_table_free(&again);
    fw_audit_table_free(&expected);
    store_free(&s);
}

FWT_TEST(a_skipped_block_inside_a_stretch_is_a_difference)
{
    fw_astore_t s = store4();
    fw_aconsumer_t c;
    memset(&c, 0, sizeof(c));
    /* The stretch covers everything but the consumer counted one block too few in minute 10. */
    fw_audit_range_t r = range(1, 100, 0, 2, 100, 4);
    fw_alife_t l = life(1, 1000, &r, 1, 5, 10);
    c.lives = &l;
    c.nlives = 1;
    fw_audit_table_t own = {0}, again = {0}, expected = {0};
    FWT_ASSERT_OK(fw_audit_consumer(&s, &c, &own, &again, &expected));
    FWT_ASSERT_UINT_EQ(fw_audit_table_get(&own, 0, 0, 10), 5);
    FWT_ASSERT_UINT_EQ(fw_audit_table_get(&expected, 0, 0, 10), 10);
    free(l.ranges);
    fw_audit_table_free(&l.counts);
    fw_audit_table_free(&own);
    fw_audit_table_free(&again);
    fw_audit_table_free(&expected);
    store_free(&s);
}

FWT_TEST(a_copy_is_expected_to_hold_what_is_written_up_to_its_last_block)
{
    fw_astore_t w = store4(), copy = store4();
    /* The copy misses the second block and stops after the third. */
    copy.buckets[0].blocks[1] = copy.buckets[0].blocks[2];
    copy.buckets[0].n = 2;
    fw_audit_table_t expected = {0}, got = {0};
    FWT_ASSERT_OK(fw_audit_copy_expected(&w, &copy, &expected));
    FWT_ASSERT_OK(fw_audit_count_store(&copy, &got));
    FWT_ASSERT_UINT_EQ(fw_audit_table_get(&expected, 0, 0, 10), 10);
    FWT_ASSERT_UINT_EQ(fw_audit_table_get(&expected, 0, 0, 11), 5); /* not the fourth block */
    FWT_ASSERT_UINT_EQ(fw_audit_table_get(&got, 0, 0, 10), 5);      /* the missing block */
    FWT_ASSERT_UINT_EQ(fw_audit_table_get(&got, 0, 0, 11), 5);
    fw_audit_table_free(&expected);
    fw_audit_table_free(&got);
    store_free(&w);
    store_free(&copy);
}

FWT_TEST(a_block_stored_twice_is_a_duplicate)
{
    fw_astore_t s = store4();
    s.buckets[0].blocks[3].sequence = 2; /* the fourth block repeats the second's identity */
    fw_adup_t *d;
    size_t n;
    FWT_ASSERT_OK(fw_audit_duplicates(&s, &d, &n));
    FWT_ASSERT_UINT_EQ(n, 1);
    FWT_ASSERT_UINT_EQ(d[0].sequence, 2);
    FWT_ASSERT_UINT_EQ(d[0].first_offset, 200);
    FWT_ASSERT_UINT_EQ(d[0].segment_id, 2);
    free(d);
    store_free(&s);
}

FWT_TEST(the_table_keeps_every_cell_as_it_grows)
{
    fw_audit_table_t t = {0};
    for (uint32_t b = 0; b < 300; b++)
        for (int64_t m = 0; m < 20; m++)
            FWT_ASSERT_OK(fw_audit_table_add(&t, b % 3, b, 29000000 + m, b + 1));
    for (uint32_t b = 0; b < 300; b++)
        for (int64_t m = 0; m < 20; m++)
            FWT_ASSERT_UINT_EQ(fw_audit_table_get(&t, b % 3, b, 29000000 + m), b + 1);
    FWT_ASSERT_UINT_EQ(fw_audit_table_get(&t, 1, 0, 29000000), 0);
    FWT_ASSERT_UINT_EQ(t.used, 6000);
    fw_audit_table_free(&t);
}
