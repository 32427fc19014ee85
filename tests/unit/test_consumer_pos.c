/*
 * The consumer's position bookkeeping (client/consumer_pos.c): what counts
 * as new after a resume, where "the next record" is after a block, how
 * checkpoints and gaps move a bucket, and the tokens built from it.
 */
#include "fwtest.h"

#include "checkpoint.h"
#include "consumer_pos.h"
#include "error.h"

#include <errno.h>
#include <stdlib.h>

#define FIRST 47 /* the header length of category "web" */

static fw_position_t P(uint32_t b, uint64_t seg, uint64_t off, uint32_t idx)
{
    return (fw_position_t){.bucket = b, .segment_id = seg, .offset = off, .record_index = idx};
}

static void decode(const fw_buf_t *token, fw_checkpoint_t *cp)
{
    FWT_ASSERT_OK(fw_checkpoint_decode(token->data, token->len, cp));
    FWT_ASSERT_STR_EQ(cp->category, "web");
}

FWT_TEST(orders_by_segment_then_offset_then_index)
{
    fw_position_t a = P(0, 1, 100, 5), b = P(9, 1, 100, 6), c = P(0, 1, 101, 0), d = P(0, 2, 47, 0);
    FWT_ASSERT_INT_EQ(fw_pos_cmp(&a, &a), 0);
    FWT_ASSERT_INT_OP(fw_pos_cmp(&a, &b), <, 0); /* buckets are not compared */
    FWT_ASSERT_INT_OP(fw_pos_cmp(&b, &c), <, 0);
    FWT_ASSERT_INT_OP(fw_pos_cmp(&c, &d), <, 0);
    FWT_ASSERT_INT_OP(fw_pos_cmp(&d, &a), >, 0);
    fw_position_t none = P(0, 0, 0, 0);
    FWT_ASSERT_INT_OP(fw_pos_cmp(&none, &a), <, 0); /* "nothing consumed" is before everything */
}

FWT_TEST(unknown_buckets_take_everything_known_ones_skip_what_came_before)
{
    fw_cpos_t t;
    fw_cpos_init(&t, FIRST);
    fw_position_t r = P(3, 7, 500, 2);
    FWT_ASSERT(fw_cpos_get(&t, 3) == NULL);
    FWT_ASSERT_INT_EQ(fw_cpos_is_new(&t, &r), 1);
    FWT_ASSERT_INT_EQ(fw_cpos_advance(&t, &r), 1);
    FWT_ASSERT_UINT_EQ(t.nknown, 1);
    fw_position_t before = P(3, 7, 500, 1), same = r, after = P(3, 7, 500, 3),
                  older_seg = P(3, 6, 9000, 0);
    FWT_ASSERT_INT_EQ(fw_cpos_is_new(&t, &before), 0);
    FWT_ASSERT_INT_EQ(fw_cpos_is_new(&t, &older_seg), 0);
    FWT_ASSERT_INT_EQ(fw_cpos_is_new(&t, &same), 1);
    FWT_ASSERT_INT_EQ(fw_cpos_is_new(&t, &after), 1);
    /* Other buckets are not affected. */
    fw_position_t other = P(4, 1, 47, 0);
    FWT_ASSERT_INT_EQ(fw_cpos_is_new(&t, &other), 1);
    fw_cpos_free(&t);
}

FWT_TEST(after_a_block_the_next_position_is_the_following_block)
{
    fw_cpos_t t;
    fw_cpos_init(&t, FIRST);
    fw_position_t r = P(0, 1, 47, 0);
    FWT_ASSERT_OK(fw_cpos_delivered(&t, &r, 3, 200));
    FWT_ASSERT_INT_EQ(fw_pos_cmp(fw_cpos_get(&t, 0), &(fw_position_t){0, 1, 47, 1}), 0);
    r.record_index = 2; /* the last record of the block */
    FWT_ASSERT_OK(fw_cpos_delivered(&t, &r, 3, 200));
    const fw_position_t *p = fw_cpos_get(&t, 0);
    FWT_ASSERT_UINT_EQ(p->segment_id, 1);
    FWT_ASSERT_UINT_EQ(p->offset, 247);
    FWT_ASSERT_UINT_EQ(p->record_index, 0);
    /* Every record of that block is old now; the next block's first is new. */
    for (uint32_t i = 0; i < 3; i++)
        FWT_ASSERT_INT_EQ(fw_cpos_is_new(&t, &(fw_position_t){0, 1, 47, i}), 0);
    FWT_ASSERT_INT_EQ(fw_cpos_is_new(&t, &(fw_position_t){0, 1, 247, 0}), 1);
    fw_cpos_free(&t);
}

FWT_TEST(contiguity_is_checked_inside_a_segment_only)
{
    fw_cpos_t t;
    fw_cpos_init(&t, FIRST);
    fw_position_t r = P(0, 5, 1000, 0);
    FWT_ASSERT_INT_EQ(fw_cpos_is_contiguous(&t, &r), 1); /* unknown bucket */
    FWT_ASSERT_OK(fw_cpos_advance(&t, &(fw_position_t){0, 0, 0, 0}));
    FWT_ASSERT_INT_EQ(fw_cpos_is_contiguous(&t, &r), 1); /* "nothing consumed" */
    FWT_ASSERT_OK(fw_cpos_advance(&t, &(fw_position_t){0, 5, 1000, 0}));
    FWT_ASSERT_INT_EQ(fw_cpos_is_contiguous(&t, &r), 1);
    FWT_ASSERT_INT_EQ(fw_cpos_is_contiguous(&t, &(fw_position_t){0, 5, 1000, 1}), 0);
    FWT_ASSERT_INT_EQ(fw_cpos_is_contiguous(&t, &(fw_position_t){0, 5, 2000, 0}), 0);
    /* A later segment: ids need not be contiguous, nothing to tell. */
    FWT_ASSERT_INT_EQ(fw_cpos_is_contiguous(&t, &(fw_position_t){0, 9, 47, 0}), 1);
    fw_cpos_free(&t);
}

FWT_TEST(checkpoints_only_move_positions_forward)
{
    fw_cpos_t t;
    fw_cpos_init(&t, FIRST);
    FWT_ASSERT_OK(fw_cpos_delivered(&t, &(fw_position_t){1, 2, 300, 4}, 10, 500));
    FWT_ASSERT_INT_EQ(fw_cpos_advance(&t, &(fw_position_t){1, 2, 300, 1}), 0);
    FWT_ASSERT_UINT_EQ(fw_cpos_get(&t, 1)->record_index, 5);
    FWT_ASSERT_INT_EQ(fw_cpos_advance(&t, &(fw_position_t){1, 3, 47, 0}), 1);
    FWT_ASSERT_UINT_EQ(fw_cpos_get(&t, 1)->segment_id, 3);
    /* A gap's end at "segment 4, offset 0" is that segment's first block. */
    FWT_ASSERT_INT_EQ(fw_cpos_advance(&t, &(fw_position_t){1, 4, 0, 0}), 1);
    FWT_ASSERT_UINT_EQ(fw_cpos_get(&t, 1)->offset, FIRST);
    FWT_ASSERT_INT_EQ(fw_cpos_is_new(&t, &(fw_position_t){1, 4, FIRST, 0}), 1);
    FWT_ASSERT_INT_EQ(fw_cpos_advance(&t, &(fw_position_t){1, 4, 0, 0}), 0);
    FWT_ASSERT_INT_EQ(fw_cpos_advance(&t, &(fw_position_t){FW_BUCKETS_MAX, 1, 47, 0}), -EINVAL);
    fw_cpos_free(&t);
}

FWT_TEST(tokens_hold_known_positions_and_zero_fill_listed_buckets)
{
    fw_cpos_t t;
    fw_cpos_init(&t, FIRST);
    fw_buf_t token = FW_BUF_INIT;
    FWT_ASSERT_INT_EQ(fw_cpos_token(&t, "web", NULL, 0, &token), -EAGAIN);
    FWT_ASSERT_OK(fw_cpos_delivered(&t, &(fw_position_t){5, 3, 100, 0}, 2, 80));
    FWT_ASSERT_OK(fw_cpos_advance(&t, &(fw_position_t){2, 1, 47, 0}));
    FWT_ASSERT_OK(fw_cpos_token(&t, "web", NULL, 0, &token));
    fw_checkpoint_t cp;
    decode(&token, &cp);
    FWT_ASSERT_UINT_EQ(cp.count, 2);
    FWT_ASSERT_UINT_EQ(cp.positions[0].bucket, 2);
    FWT_ASSERT_UINT_EQ(cp.positions[1].bucket, 5);
    FWT_ASSERT_UINT_EQ(cp.positions[1].record_index, 1);
    fw_checkpoint_free(&cp);

    /* Listed buckets without a position are "nothing consumed"; known ones keep theirs. */
    uint32_t zero[] = {0, 2, 3, 9};
    fw_buf_reset(&token);
    FWT_ASSERT_OK(fw_cpos_token(&t, "web", zero, 4, &token));
    decode(&token, &cp);
    FWT_ASSERT_UINT_EQ(cp.count, 5);
    uint32_t want[] = {0, 2, 3, 5, 9};
    for (uint32_t i = 0; i < 5; i++)
        FWT_ASSERT_UINT_EQ(cp.positions[i].bucket, want[i]);
    FWT_ASSERT_UINT_EQ(cp.positions[0].segment_id, 0);
    FWT_ASSERT_UINT_EQ(cp.positions[1].segment_id, 1);
    FWT_ASSERT_UINT_EQ(cp.positions[2].segment_id, 0);
    FWT_ASSERT_UINT_EQ(cp.positions[3].segment_id, 3);
    FWT_ASSERT_UINT_EQ(cp.positions[4].segment_id, 0);
    fw_checkpoint_free(&cp);
    FWT_ASSERT_INT_EQ(fw_cpos_token(&t, "bad/name", NULL, 0, &token), -EINVAL);
    fw_buf_free(&token);

    uint32_t cover_yes[] = {2, 5}, cover_no[] = {2, 4};
    FWT_ASSERT_INT_EQ(fw_cpos_covers(&t, cover_yes, 2), 1);
    FWT_ASSERT_INT_EQ(fw_cpos_covers(&t, cover_no, 2), 0);
    fw_cpos_free(&t);
}

/*
 * A random stream of blocks per bucket, delivered through restarts that
 * resume at random earlier points (as ptail does from a checkpoint that is
 * older than what was delivered, or inside a block): every record is
 * delivered exactly once, in order per bucket.
 */
FWT_TEST(replays_from_older_points_deliver_each_record_once)
{
    enum { BUCKETS = 4, BLOCKS = 200 };
    typedef struct {
        uint64_t seg, off, len;
        uint32_t n;
    } blk_t;
    blk_t *blocks = calloc(BUCKETS * BLOCKS, sizeof(*blocks));
    uint32_t total[BUCKETS] = {0};
    for (uint32_t b = 0; b < BUCKETS; b++) {
        uint64_t seg = 1, off = FIRST;
        for (uint32_t i = 0; i < BLOCKS; i++) {
            blk_t *k = &blocks[b * BLOCKS + i];
            if (fwt_rand_range(0, 20) == 0) {
                seg += fwt_rand_range(1, 3);
                off = FIRST;
            }
            k->seg = seg;
            k->off = off;
            k->len = fwt_rand_range(70, 400);
            k->n = (uint32_t)fwt_rand_range(1, 9);
            off += k->len;
            total[b] += k->n;
        }
    }
    fw_cpos_t t;
    fw_cpos_init(&t, FIRST);
    uint32_t got[BUCKETS] = {0}; /* records delivered, which is also the next record's number */
    uint32_t next_block[BUCKETS] = {0};
    for (int round = 0; round < 10000; round++) {
        uint32_t b = (uint32_t)fwt_rand_range(0, BUCKETS - 1);
        if (fwt_rand_range(0, 30) == 0 && next_block[b] > 0) {
            /* A resume from an older point: some blocks back, maybe inside one. */
            next_block[b] -= (uint32_t)fwt_rand_range(1, next_block[b] < 5 ? next_block[b] : 5);
            continue;
        }
        if (next_block[b] == BLOCKS)
            continue;
        blk_t *k = &blocks[b * BLOCKS + next_block[b]++];
        /* ptail skips records before a token's position inside its block, never more. */
        uint32_t first = 0;
        const fw_position_t *cur = fw_cpos_get(&t, b);
        if (cur != NULL && cur->segment_id == k->seg && cur->offset == k->off)
            first = (uint32_t)fwt_rand_range(0, cur->record_index);
        else if (cur != NULL && !fw_cpos_is_new(&t, &(fw_position_t){b, k->seg, k->off, 0}))
            first = (uint32_t)fwt_rand_range(0, k->n - 1); /* all of it delivered already */
        for (uint32_t i = first; i < k->n; i++) {
            fw_position_t r = P(b, k->seg, k->off, i);
            if (!fw_cpos_is_new(&t, &r))
                continue;
            /* The record's number: blocks before it plus i. */
            uint32_t number = 0;
            for (blk_t *x = &blocks[b * BLOCKS]; x != k; x++)
                number += x->n;
            number += i;
            FWT_ASSERT_UINT_EQ(number, got[b]);
            FWT_ASSERT_OK(fw_cpos_delivered(&t, &r, k->n, k->len));
            got[b]++;
        }
    }
    /* Whatever was not reached is still ahead; deliver the rest in order. */
    for (uint32_t b = 0; b < BUCKETS; b++) {
        for (uint32_t j = 0; j < BLOCKS; j++) {
            blk_t *k = &blocks[b * BLOCKS + j];
            for (uint32_t i = 0; i < k->n; i++) {
                fw_position_t r = P(b, k->seg, k->off, i);
                if (fw_cpos_is_new(&t, &r)) {
                    FWT_ASSERT_OK(fw_cpos_delivered(&t, &r, k->n, k->len));
                    got[b]++;
                }
            }
        }
        FWT_ASSERT_UINT_EQ(got[b], total[b]);
    }
    fw_cpos_free(&t);
    free(blocks);
}
